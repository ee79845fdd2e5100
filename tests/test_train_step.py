"""The one train step (coderl_jax/training/step.py) and the optimizer, on tiny models.

What is proved here:
  * the step compiles once for a run's fixed batch shape and donates the state;
  * gradient accumulation is exact: 4 microbatches give the full batch's loss and update
    (actor with CE + signed RL + KL weights, and critic), on one device;
  * on 8 simulated CPU devices, a (data=4, model=2) mesh gives the 1-device loss and update,
    microbatched or not, with params and optimizer moments sharded per the rules (this half
    runs this file as a script in a subprocess with XLA_FLAGS set before JAX starts, as
    tests/test_partitioning.py does);
  * it learns: a tiny actor overfits 8 (prompt, program) pairs until greedy decoding gives
    each program back exactly, and a tiny critic separates two classes of programs on
    held-out rows;
  * the schedules give hand-computed learning rates and weight decay skips norms and biases.

One random init (`init_params` costs a ~10 s XLA compile on a loaded 2-core machine) serves
every test and the subprocess: the critic reuses it as its backbone.
"""

import functools
import os
import pathlib
import subprocess
import sys

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import tiny_config  # noqa: E402

from coderl_jax import partitioning as pt  # noqa: E402
from coderl_jax.training import batch as batch_lib  # noqa: E402
from coderl_jax.training import forward  # noqa: E402
from coderl_jax.training import optimizer as opt_lib  # noqa: E402
from coderl_jax.training import state as state_lib  # noqa: E402
from coderl_jax.training import step as step_lib  # noqa: E402

HERE = pathlib.Path(__file__).resolve()
ENC, DEC = 12, 8  # fixed encoder / decoder lengths of every batch here
EOS = 2
NUM_CLASSES = 4


# -- helpers (also used by the subprocess) -------------------------------------------------------
def host_params_of(seed: int = 0) -> dict:
    """A random tiny T5 init as numpy arrays (fresh device buffers on every device_put, so a
    donated state never frees another state's params)."""
    from coderl_jax.models.t5 import init_params

    return jax.device_get(init_params(tiny_config(), jax.random.key(seed)))


def critic_params_of(actor_params: dict, seed: int = 0) -> dict:
    """Critic params = the actor's T5 as backbone + a lecun-normal error head (numpy)."""
    from coderl_jax.models.critic import init_critic_params

    abstract = jax.eval_shape(
        lambda r: init_critic_params(tiny_config(), NUM_CLASSES, r), jax.random.key(0))
    assert jax.tree.structure(abstract["backbone"]) == jax.tree.structure(actor_params)
    rng = np.random.default_rng(seed)

    def leaf(s):
        if len(s.shape) == 1:
            return np.zeros(s.shape, np.float32)
        return (rng.normal(size=s.shape) / np.sqrt(s.shape[0])).astype(np.float32)

    head = jax.tree.map(leaf, abstract["head"])
    return {"backbone": jax.tree.map(np.copy, actor_params), "head": head}


def actor_examples(rng: np.random.Generator, n: int) -> list[dict]:
    """n (prompt, program) pairs of varying lengths; programs end in EOS."""
    vocab = tiny_config().vocab_size
    return [{"inputs": rng.integers(3, vocab, size=int(rng.integers(4, ENC + 1))),
             "targets": list(rng.integers(3, vocab, size=int(rng.integers(2, DEC)))) + [EOS]}
            for _ in range(n)]


def mixed_actor_batch(rng: np.random.Generator, rows: int, real: int) -> batch_lib.Batch:
    """`real` examples in `rows` rows (the rest padding) with every kind of weight the step
    sees: L_ce (mask / N) + L_rl (signed (r - b) * q / N) and a KL penalty on odd rows."""
    b = batch_lib.ce_batch(actor_examples(rng, real), rows, ENC, DEC)
    mask = b.decoder_mask.astype(np.float32)
    n = mask.sum()
    advantages = rng.uniform(-1.3, 2.0, size=(rows, 1))
    q = rng.uniform(0.0, 1.0, size=(rows, DEC))
    odd = (np.arange(rows)[:, None] % 2).astype(np.float32)
    reference = np.log(rng.uniform(0.005, 0.2, size=(rows, DEC))) * mask
    return b.replace(
        token_weights=(b.token_weights + advantages * q * mask / n).astype(np.float32),
        kl_weights=(0.1 * odd * mask / n).astype(np.float32),
        reference_log_probs=reference.astype(np.float32))


def critic_examples(rng: np.random.Generator, n: int, separable: bool = False) -> list[dict]:
    """Labelled programs. separable: label 0 programs use token ids 10..49 only, label 3
    programs 50..89 only (alternating rows); otherwise random labels and tokens."""
    vocab = tiny_config().vocab_size
    out = []
    for i in range(n):
        if separable:
            label = 0 if i % 2 == 0 else 3
            lo, hi = (10, 50) if label == 0 else (50, 90)
        else:
            label, lo, hi = int(rng.integers(0, NUM_CLASSES)), 3, vocab
        out.append({"inputs": rng.integers(3, vocab, size=int(rng.integers(4, ENC + 1))),
                    "targets": list(rng.integers(lo, hi, size=int(rng.integers(2, DEC)))) + [EOS],
                    "label": label})
    return out


def make_trainer(model, mesh, optimizer: opt_lib.OptimizerConfig, total_steps: int = 100,
                 num_microbatches: int = 1):
    """(step fn, tx, schedule, shardings, new_state(params) -> TrainState) for `model`."""
    tx, schedule = opt_lib.make_optimizer(optimizer, total_steps)
    abstract = jax.eval_shape(model.init, jax.random.key(0))
    param_shardings = pt.logical_to_shardings(model.logical_axes(), mesh)
    shardings = state_lib.state_shardings(tx, abstract, param_shardings, mesh)
    step = step_lib.make_train_step(model, tx, schedule, mesh, shardings, num_microbatches)

    def new_state(params):
        return state_lib.create_state(model, tx, mesh, seed=0, params=params)[0]

    return step, tx, schedule, shardings, new_state


def run_step(step, state, batch, mesh):
    """One step on a numpy batch; (new state, metrics) on the host."""
    new, metrics = step(state, batch_lib.to_global(batch, step_lib.batch_shardings(mesh)))
    return new, jax.device_get(metrics)


def adam_mu(opt_state):
    """Adam's first moment (= (1 - b1) * clipped gradient after one step) of our chain."""
    return opt_state[1][0].mu


def assert_same_update(metrics_a, state_a, metrics_b, state_b, what: str):
    """Same loss / metrics, gradient (Adam's first moment) and updated params."""
    for key in metrics_a:
        np.testing.assert_allclose(metrics_b[key], metrics_a[key], rtol=2e-5, atol=1e-6,
                                   err_msg=f"{what}: metric {key}")
    host = functools.partial(jax.tree.map, lambda x: np.asarray(jax.device_get(x)))
    mu_a, mu_b = host(adam_mu(state_a.opt_state)), host(adam_mu(state_b.opt_state))
    scale = max(float(np.abs(x).max()) for x in jax.tree.leaves(mu_a))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * scale,
                                                         err_msg=f"{what}: gradient"),
                 mu_a, mu_b)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6,
                                                         err_msg=f"{what}: params"),
                 host(state_a.params), host(state_b.params))


# Adam's first update is lr * g / (|g| + eps): for a weight whose gradient is ~1e-9 it jumps
# between 0 and lr on rounding noise alone, which no summation order can promise to reproduce.
# eps = 1e-3 makes the update smooth in g, so "same update" is a fair test of "same gradient"
# (the gradients themselves are compared directly too, through Adam's first moment).
ACTOR_OPT = opt_lib.OptimizerConfig(learning_rate=1e-2, weight_decay=0.01, eps=1e-3)
CRITIC_OPT = opt_lib.OptimizerConfig(learning_rate=5e-3, weight_decay=0.0, eps=1e-3)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mesh1():
    return pt.make_mesh(devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def actor_params():
    return host_params_of(0)


@pytest.fixture(scope="module")
def actor(mesh1):
    """The actor's steps (full batch and 4 microbatches) over 8-row batches."""
    model = step_lib.ActorModel(tiny_config())
    full = make_trainer(model, mesh1, ACTOR_OPT)
    micro = make_trainer(model, mesh1, ACTOR_OPT, num_microbatches=4)
    return model, full, micro


@pytest.fixture(scope="module")
def critic(mesh1):
    """The critic's steps (full batch and 4 microbatches) over 16-row batches."""
    model = step_lib.CriticModel(tiny_config(), NUM_CLASSES)
    full = make_trainer(model, mesh1, CRITIC_OPT)
    micro = make_trainer(model, mesh1, CRITIC_OPT, num_microbatches=4)
    return model, full, micro


# -- compile once, donate ------------------------------------------------------------------------
def test_step_compiles_once_and_donates_the_state(mesh1, actor_params):
    model = step_lib.ActorModel(tiny_config())
    # Linear warm-up over 2 steps to 1e-2, then linear decay to 0 at step 6.
    optimizer = opt_lib.OptimizerConfig(learning_rate=1e-2, schedule="linear", warmup_steps=2,
                                        weight_decay=0.0)
    step, _, _, _, new_state = make_trainer(model, mesh1, optimizer, total_steps=6)
    state = new_state(actor_params)
    before = step_lib.TRACE_COUNTS["actor"]
    rng = np.random.default_rng(0)
    rates, losses = [], []
    for i in range(4):
        # Same shape, different contents (lengths, tokens, number of real rows).
        batch = batch_lib.ce_batch(actor_examples(rng, 8 - i), 8, ENC, DEC)
        old_params, old_mu = state.params, adam_mu(state.opt_state)
        state, metrics = run_step(step, state, batch, mesh1)
        assert all(x.is_deleted() for x in jax.tree.leaves(old_params)), "params not donated"
        assert all(x.is_deleted() for x in jax.tree.leaves(old_mu)), "opt state not donated"
        rates.append(float(metrics["learning_rate"]))
        losses.append(float(metrics["loss"]))
    assert step_lib.TRACE_COUNTS["actor"] - before == 1
    assert step.jitted._cache_size() == 1
    assert int(state.step) == 4
    # lr at update k: warm-up k / 2 * 1e-2, then 1e-2 * (1 - (k - 2) / 4).
    np.testing.assert_allclose(rates, [0.0, 0.5e-2, 1e-2, 0.75e-2], rtol=1e-6)
    assert all(np.isfinite(losses))


# -- microbatching == full batch (one device) ----------------------------------------------------
def test_actor_microbatches_equal_the_full_batch(actor, actor_params, mesh1):
    _, (full, *_, new_full), (micro, *_, new_micro) = actor
    batch = mixed_actor_batch(np.random.default_rng(1), rows=8, real=7)
    state_a, metrics_a = run_step(full, new_full(actor_params), batch, mesh1)
    state_b, metrics_b = run_step(micro, new_micro(actor_params), batch, mesh1)
    assert metrics_a["kl"] > 0 and metrics_a["tokens"] == batch.decoder_mask.sum()
    # The objective is the hand-normalised sum: token_nll is the plain mean -log p.
    assert metrics_a["loss"] != pytest.approx(metrics_a["token_nll"])
    assert_same_update(metrics_a, state_a, metrics_b, state_b, "actor, 4 microbatches")


def test_critic_microbatches_equal_the_full_batch(critic, actor_params, mesh1):
    _, (full, *_, new_full), (micro, *_, new_micro) = critic
    params = critic_params_of(actor_params)
    batch = batch_lib.critic_batch(critic_examples(np.random.default_rng(2), 13), 16, ENC, DEC)
    state_a, metrics_a = run_step(full, new_full(params), batch, mesh1)
    state_b, metrics_b = run_step(micro, new_micro(params), batch, mesh1)
    assert metrics_a["rows"] == 13 and metrics_a["confusion"].shape == (4, 4)
    assert_same_update(metrics_a, state_a, metrics_b, state_b, "critic, 4 microbatches")


# -- it learns -----------------------------------------------------------------------------------
def test_tiny_actor_overfits_eight_pairs_until_greedy_decoding_reproduces_them(
        actor, actor_params, mesh1):
    from coderl_jax.decoding import SamplingParams, sample

    model, (step, *_, new_state), _ = actor
    examples = actor_examples(np.random.default_rng(3), 8)
    batch = batch_lib.ce_batch(examples, 8, ENC, DEC)
    device_batch = batch_lib.to_global(batch, step_lib.batch_shardings(mesh1))
    state = new_state(actor_params)
    greedy = SamplingParams(greedy=True, max_new_tokens=DEC)
    for steps in range(25, 301, 25):
        for _ in range(25):
            state, metrics = step(state, device_batch)
        out = sample(model.config, state.params, batch.encoder_input_tokens, batch.encoder_mask,
                     jax.random.key(0), greedy)
        tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
        decoded = [tokens[r, :lengths[r]].tolist() for r in range(8)]
        if decoded == [[int(t) for t in ex["targets"]] for ex in examples]:
            break
    else:
        pytest.fail(f"after {steps} steps (loss {float(metrics['loss']):.4f}) greedy gave "
                    f"{decoded}, wanted {[ex['targets'] for ex in examples]}")
    assert float(metrics["token_nll"]) < 0.5


def test_tiny_critic_separates_two_classes_of_programs(critic, actor_params, mesh1):
    """Programs of ids 10..49 are class 0, of ids 50..89 class 3 (prompts random): after 60
    steps on fresh batches, >= 90% of 64 held-out rows are right (seeds 0-7 of this setup
    gave 97-100%; the few misses are 2-token programs, where the max-pooled head has had the
    fewest updates at each position)."""
    model, (step, _, _, _, new_state), _ = critic
    state = new_state(critic_params_of(actor_params, seed=1))
    rng = np.random.default_rng(4)
    evaluate = forward.critic_fn(model.config, model.num_classes)  # the one forward cache
    before = step_lib.TRACE_COUNTS["critic"]
    for _ in range(60):
        batch = batch_lib.critic_batch(critic_examples(rng, 16, True), 16, ENC, DEC)
        state, metrics = run_step(step, state, batch, mesh1)
    assert step_lib.TRACE_COUNTS["critic"] - before <= 1  # 60 batches, at most one compile
    right, rows = 0, 0
    for k in range(4):
        held = batch_lib.critic_batch(critic_examples(np.random.default_rng(99 + k), 16, True),
                                      16, ENC, DEC)
        probs, pooled = evaluate(state.params, held)
        right += int(np.sum(np.argmax(np.asarray(pooled), axis=-1) == held.labels))
        rows += len(held.labels)
        # Per-token values are distributions over the classes.
        np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, rtol=1e-5)
    assert right / rows >= 0.9, f"{right} / {rows} held-out rows right"


# -- optimizer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg, expected", [
    # constant: lr everywhere; with warm-up 4: 0, 1/4, 1/2, ... of lr, then lr.
    (dict(learning_rate=0.1), {0: 0.1, 7: 0.1, 1000: 0.1}),
    (dict(learning_rate=0.1, warmup_steps=4), {0: 0.0, 1: 0.025, 2: 0.05, 4: 0.1, 50: 0.1}),
    # linear: warm-up 2 to 1.0, then 1.0 -> 0.1 over the remaining 10 of 12 steps.
    (dict(learning_rate=1.0, schedule="linear", warmup_steps=2, end_learning_rate=0.1),
     {0: 0.0, 1: 0.5, 2: 1.0, 7: 1.0 - 0.9 * 5 / 10, 11: 1.0 - 0.9 * 9 / 10, 12: 0.1, 30: 0.1}),
    # polynomial, power 0.5: (1 - progress) ** 0.5 after 2 warm-up steps, 4 decay steps.
    (dict(learning_rate=1.0, schedule="polynomial", warmup_steps=2),
     {1: 0.5, 2: 1.0, 3: 0.75 ** 0.5, 4: 0.5 ** 0.5, 5: 0.25 ** 0.5, 6: 0.0, 9: 0.0}),
    # total_steps in the config overrides the trainer's (here: 12 -> 22 decay steps).
    (dict(learning_rate=2.0, schedule="linear", total_steps=22, end_learning_rate=0.0),
     {0: 2.0, 11: 1.0, 22: 0.0}),
])
def test_schedules_give_hand_computed_learning_rates(cfg, expected):
    schedule = opt_lib.make_schedule(opt_lib.OptimizerConfig(**cfg), total_steps=12 if cfg.get(
        "schedule") != "polynomial" else 6)
    got = {k: float(schedule(k)) for k in expected}
    np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=1e-6,
                               atol=1e-7, err_msg=str(got))


def test_weight_decay_masks_norms_and_biases():
    """With zero gradients AdamW's update is -lr * wd * p on matrices and 0 on vectors."""
    tx, _ = opt_lib.make_optimizer(
        opt_lib.OptimizerConfig(learning_rate=0.1, weight_decay=0.5), total_steps=10)
    rng = np.random.default_rng(0)
    params = {"dense": {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=(4,))},
              "norm": {"scale": rng.normal(size=(4,))},
              "attention": {"query": {"kernel": rng.normal(size=(4, 2, 2))}}}
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    expected = jax.tree.map(lambda p: -0.1 * 0.5 * p if p.ndim >= 2 else 0.0 * p, params)
    jax.tree.map(lambda u, e: np.testing.assert_allclose(np.asarray(u), np.asarray(e),
                                                         rtol=1e-6), updates, expected)
    # One Adam step with a large gradient and no decay moves every weight by ~lr (|m/sqrt v|
    # = 1 at the first step) after clipping to norm 1, whatever the gradient's scale.
    tx, _ = opt_lib.make_optimizer(
        opt_lib.OptimizerConfig(learning_rate=0.1, weight_decay=0.0), total_steps=10)
    grads = jax.tree.map(lambda p: 100.0 * jnp.sign(p), params)
    updates, _ = tx.update(grads, tx.init(params), params)
    jax.tree.map(lambda u, p: np.testing.assert_allclose(np.asarray(u), -0.1 * np.sign(p),
                                                         rtol=1e-5), updates, params)


# -- 8 simulated devices -------------------------------------------------------------------------
def test_sharded_and_microbatched_equal_one_device_on_8_simulated_devices(actor_params,
                                                                         tmp_path):
    path = tmp_path / "params.npz"
    np.savez(path, **flax.traverse_util.flatten_dict(actor_params, sep="/"))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(HERE), str(path)], env=env, capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "MULTI-DEVICE TRAIN STEP CHECKS PASSED" in proc.stdout


def _multi_device_checks(params_path: str) -> None:
    assert jax.device_count() == 8, jax.devices()
    with np.load(params_path) as f:
        actor_params = flax.traverse_util.unflatten_dict(dict(f), sep="/")
    mesh1 = pt.make_mesh(devices=jax.devices()[:1])
    mesh8 = pt.make_mesh(data=4, model=2)
    spec = lambda x: x.sharding.spec  # noqa: E731

    # Actor: 16 rows (4 per data shard; 4 microbatches of 4 rows, one from each shard).
    model = step_lib.ActorModel(tiny_config())
    batch = mixed_actor_batch(np.random.default_rng(5), rows=16, real=14)
    results = {}
    for name, mesh, m in (("1 device", mesh1, 1), ("data=4 model=2", mesh8, 1),
                          ("data=4 model=2, 4 microbatches", mesh8, 4)):
        step, *_, new_state = make_trainer(model, mesh, ACTOR_OPT, num_microbatches=m)
        state = new_state(actor_params)
        if mesh is mesh8:
            emb = state.params["token_embedder"]["embedding"]
            assert spec(emb) == P("model", None)
            assert len(emb.addressable_shards) == 8
            assert emb.addressable_shards[0].data.shape == (tiny_config().vocab_size // 2,
                                                            tiny_config().d_model)
            layer = state.params["decoder"]["layers_0"]
            assert spec(layer["mlp"]["wi"]["kernel"]) == P(None, "model")
            assert spec(layer["self_attention"]["out"]["kernel"]) == P("model", None, None)
            adam = state.opt_state[1][0]
            assert spec(adam.mu["token_embedder"]["embedding"]) == P("model", None)
            assert spec(adam.nu["decoder"]["layers_0"]["mlp"]["wi"]["kernel"]) == P(None, "model")
            assert spec(adam.count) == P() and spec(state.step) == P()
        results[name] = run_step(step, state, batch, mesh)
        new = results[name][0]
        if mesh is mesh8:  # the update keeps the shardings (out_shardings = in_shardings)
            assert spec(new.params["token_embedder"]["embedding"]) == P("model", None)
            assert spec(adam_mu(new.opt_state)["encoder"]["layers_1"]["mlp"]["wo"]["kernel"]) \
                == P("model", None)
    (ref_state, ref_metrics) = results["1 device"]
    for name in ("data=4 model=2", "data=4 model=2, 4 microbatches"):
        state, metrics = results[name]
        assert_same_update(ref_metrics, ref_state, metrics, state, f"actor, {name}")

    # Critic: the head is replicated, the backbone sharded like the actor; 4 microbatches on
    # the 8-device mesh equal one full batch on one device.
    model = step_lib.CriticModel(tiny_config(), NUM_CLASSES)
    params = critic_params_of(actor_params)
    batch = batch_lib.critic_batch(critic_examples(np.random.default_rng(6), 15), 16, ENC, DEC)
    step1, *_, new1 = make_trainer(model, mesh1, CRITIC_OPT)
    step8, *_, new8 = make_trainer(model, mesh8, CRITIC_OPT, num_microbatches=4)
    state8 = new8(params)
    assert spec(state8.params["head"]["hidden"]["kernel"]) == P(None, None)
    assert spec(state8.params["backbone"]["token_embedder"]["embedding"]) == P("model", None)
    ref_state, ref_metrics = run_step(step1, new1(params), batch, mesh1)
    state, metrics = run_step(step8, state8, batch, mesh8)
    assert ref_metrics["rows"] == 15
    assert_same_update(ref_metrics, ref_state, metrics, state, "critic, 8 devices x 4 micro")
    print("MULTI-DEVICE TRAIN STEP CHECKS PASSED")


if __name__ == "__main__":
    _multi_device_checks(sys.argv[1])
