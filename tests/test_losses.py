"""CodeRL's losses (coderl_jax/training/losses.py) against hand-computed values.

Expected numbers are written out from first principles (softmax of literal logits, the
REINFORCE sum built from per-token gradients), never by calling the function under test.
The last tests check the paper's RL gradient (CodeRL eq. 5):

    grad L_rl = -(1/N) * sum_b (r_b - b_b) * sum_t q_bt * grad log p(w_t)

by taking the gradient of every token's log-probability on its own and summing them with
those weights, for a linear softmax policy and for the tiny T5 through the train step's own
objective (`ActorModel.loss` with the batch's token weights).
"""

import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import tiny_config  # noqa: E402

import reference_losses as ref  # noqa: E402
from coderl_jax.training import losses  # noqa: E402

LN2, LN3 = math.log(2.0), math.log(3.0)

# Two rows of three positions over a vocabulary of 3. Softmaxes by hand:
#   [0, 0, ln2]   -> [1/4, 1/4, 1/2]
#   [ln3, 0, 0]   -> [3/5, 1/5, 1/5]
#   [ln2, ln2, 0] -> [2/5, 2/5, 1/5]
#   [0, ln3, 0]   -> [1/5, 3/5, 1/5]
#   [7, -1, 3]    (padding position: never counted)
LOGITS = np.array([[[0.0, 0.0, LN2], [LN3, 0.0, 0.0], [7.0, -1.0, 3.0]],
                   [[LN2, LN2, 0.0], [0.0, LN3, 0.0], [7.0, -1.0, 3.0]]], np.float32)
TARGETS = np.array([[2, 0, 1], [2, 1, 0]], np.int32)
MASK = np.array([[1, 1, 0], [1, 1, 0]], np.int32)
# log p of each target: [[1/2, 3/5, pad], [1/5, 3/5, pad]].
EXPECTED_LOG_P = np.log([[1 / 2, 3 / 5, math.exp(-1.0 - 7.0) / (math.exp(0.0) + math.exp(-8.0)
                                                                   + math.exp(-4.0))],
                         [1 / 5, 3 / 5, 1.0 / (1.0 + math.exp(-8.0) + math.exp(-4.0))]])


def test_token_log_probs_of_literal_logits():
    log_p = np.asarray(losses.token_log_probs(jnp.asarray(LOGITS), jnp.asarray(TARGETS)))
    assert log_p.shape == (2, 3) and log_p.dtype == np.float32
    np.testing.assert_allclose(log_p, EXPECTED_LOG_P, rtol=1e-6, atol=1e-6)
    # bf16 logits are scored in float32.
    low = losses.token_log_probs(jnp.asarray(LOGITS, jnp.bfloat16), jnp.asarray(TARGETS))
    assert low.dtype == jnp.float32


def test_ce_loss_is_the_mean_nll_over_real_tokens():
    expected = -(math.log(1 / 2) + math.log(3 / 5) + math.log(1 / 5) + math.log(3 / 5)) / 4
    got = float(ref.ce_loss(jnp.asarray(LOGITS), jnp.asarray(TARGETS), jnp.asarray(MASK)))
    assert got == pytest.approx(expected, rel=1e-6)
    # No real token at all: 0, not NaN.
    assert float(ref.ce_loss(jnp.asarray(LOGITS), jnp.asarray(TARGETS),
                                jnp.zeros_like(MASK))) == 0.0


def test_weighted_nll_with_signed_weights():
    weights = np.array([[0.5, -0.25, 9.0], [0.0, 2.0, 0.0]], np.float32)
    log_p = np.log([[1 / 2, 3 / 5, 1 / 7], [1 / 5, 3 / 5, 1.0]]).astype(np.float32)
    expected = -(0.5 * math.log(1 / 2) - 0.25 * math.log(3 / 5) + 9.0 * math.log(1 / 7)
                 + 2.0 * math.log(3 / 5))
    assert float(losses.weighted_nll(jnp.asarray(log_p), jnp.asarray(weights))) == \
        pytest.approx(expected, rel=1e-6)


def test_ce_weights_divide_by_the_given_global_count():
    mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    np.testing.assert_allclose(np.asarray(ref.ce_weights(mask)), mask / 3)
    # One shard of a batch with 12 real tokens in all: its weights use the global count.
    np.testing.assert_allclose(np.asarray(ref.ce_weights(mask, 12.0)), mask / 12)


def test_rl_loss_value_by_hand():
    log_p = np.log([[1 / 2, 3 / 5, 1.0], [1 / 5, 3 / 5, 1.0]]).astype(np.float32)
    adv = np.array([1.3, -0.7], np.float32)  # e.g. r = 1.0 vs baseline -0.3; -1.0 vs -0.3
    q = np.array([[0.9, 0.5, 0.3], [0.2, 0.4, 0.8]], np.float32)
    n = 4.0
    expected = -(1.3 * (0.9 * math.log(1 / 2) + 0.5 * math.log(3 / 5))
                 - 0.7 * (0.2 * math.log(1 / 5) + 0.4 * math.log(3 / 5))) / n
    got = ref.rl_loss(jnp.asarray(log_p), jnp.asarray(adv), jnp.asarray(q), jnp.asarray(MASK))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    got = ref.rl_loss(jnp.asarray(log_p), jnp.asarray(adv), jnp.asarray(q),
                         jnp.asarray(MASK), num_tokens=8.0)
    assert float(got) == pytest.approx(expected * n / 8.0, rel=1e-6)


def test_critic_loss_and_confusion_by_hand():
    # 4 classes; softmaxes: row0 [1,1,1,3]/6, row1 [2,1,1,1]/5 (ln2 on class 0),
    # row2 [1,1,1,1]/4, row3 is padding (weight 0).
    pooled = np.array([[0.0, 0.0, 0.0, LN3], [LN2, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                       [9.0, 0.0, 0.0, 0.0]], np.float32)
    labels = np.array([3, 2, 1, 3], np.int32)
    weights = np.array([1 / 3, 1 / 3, 1 / 3, 0.0], np.float32)
    expected = -(math.log(3 / 6) + math.log(1 / 5) + math.log(1 / 4)) / 3
    got = losses.critic_loss(jnp.asarray(pooled), jnp.asarray(labels), jnp.asarray(weights))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # Predictions (argmax, first index on ties): 3, 0, 0, (0: padding, not counted).
    confusion = np.asarray(losses.critic_confusion(jnp.asarray(pooled), jnp.asarray(labels),
                                                   jnp.asarray(weights)))
    expected_confusion = np.zeros((4, 4))
    expected_confusion[3, 3] = 1  # true PassedTest, predicted PassedTest
    expected_confusion[2, 0] = 1  # true FailedTest, predicted CompileError
    expected_confusion[1, 0] = 1  # true RuntimeError, predicted CompileError
    np.testing.assert_array_equal(confusion, expected_confusion)
    assert np.trace(confusion) / confusion.sum() == pytest.approx(1 / 3)


def test_kl_estimate_zero_when_equal_positive_otherwise():
    log_p = jnp.log(jnp.array([[0.5, 0.2, 0.3]]))
    np.testing.assert_allclose(np.asarray(losses.kl_estimate(log_p, log_p)), 0.0, atol=1e-7)
    ref = jnp.log(jnp.array([[0.25, 0.4, 0.3]]))
    kl = np.asarray(losses.kl_estimate(log_p, ref))
    # delta = log(ref / p): ln(1/2) and ln 2; k3 = exp(delta) - delta - 1.
    expected = [0.5 + LN2 - 1.0, 2.0 - LN2 - 1.0, 0.0]
    np.testing.assert_allclose(kl[0], expected, rtol=1e-5, atol=1e-7)
    assert kl[0, 0] > 0 and kl[0, 1] > 0


def test_kl_estimate_is_unbiased_for_the_exact_kl():
    """sum_x p(x) * k3(x) = sum_x ref(x) - sum_x p log(ref/p) - 1 = KL(p || ref) exactly."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    ref = np.array([0.4, 0.3, 0.2, 0.1])
    k3 = np.asarray(losses.kl_estimate(jnp.log(jnp.asarray(p, jnp.float32)),
                                       jnp.log(jnp.asarray(ref, jnp.float32))))
    assert float(np.sum(p * k3)) == pytest.approx(float(np.sum(p * np.log(p / ref))), rel=1e-5)


def test_kl_penalty_gradient_by_hand():
    """d/dl [w * (exp(r - l) - (r - l) - 1)] = w * (1 - exp(r - l)): 0 at l = r, pushes l
    towards r from either side."""
    log_p = jnp.log(jnp.array([[0.5, 0.2, 0.3]]))
    ref = jnp.log(jnp.array([[0.25, 0.4, 0.3]]))
    w = jnp.array([[0.5, 0.5, 0.5]])
    grad = np.asarray(jax.grad(losses.kl_penalty)(log_p, ref, w))
    np.testing.assert_allclose(grad[0], [0.5 * (1 - 0.5), 0.5 * (1 - 2.0), 0.0], rtol=1e-5,
                               atol=1e-7)
    # Zero gradient when the policy equals the reference.
    np.testing.assert_allclose(np.asarray(jax.grad(losses.kl_penalty)(ref, ref, w)), 0.0,
                               atol=1e-7)


# -- the REINFORCE gradient ----------------------------------------------------------------------
def _reinforce_weights():
    """Advantages r - b per row, critic values q per token, mask, N: a toy RL batch."""
    adv = np.array([1.3, -0.7, 0.0], np.float32)
    q = np.array([[0.9, 0.5, 0.3, 0.6], [0.2, 0.4, 0.8, 0.1], [0.5, 0.5, 0.5, 0.5]], np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
    return adv, q, mask, float(mask.sum())


def _direct_reinforce(per_token_grad, adv, q, mask, n):
    """-(1/N) sum_b adv_b sum_t q_bt grad log p_bt, summed token by token on the host."""
    total = None
    for b in range(q.shape[0]):
        for t in range(q.shape[1]):
            if not mask[b, t]:
                continue
            g = jax.tree.map(lambda x: -(adv[b] * q[b, t] / n) * np.asarray(x, np.float64),
                             per_token_grad(b, t))
            total = g if total is None else jax.tree.map(np.add, total, g)
    return total


def test_rl_loss_gradient_is_reinforce_for_a_linear_softmax_policy():
    rng = np.random.default_rng(0)
    vocab, dim = 5, 3
    feats = jnp.asarray(rng.normal(size=(3, 4, dim)), jnp.float32)  # one context per token
    actions = jnp.asarray(rng.integers(0, vocab, size=(3, 4)), jnp.int32)
    theta = {"w": jnp.asarray(rng.normal(size=(dim, vocab)), jnp.float32),
             "b": jnp.asarray(rng.normal(size=(vocab,)), jnp.float32)}
    adv, q, mask, n = _reinforce_weights()

    def log_probs(params):
        return losses.token_log_probs(feats @ params["w"] + params["b"], actions)

    def per_token_grad(b, t):
        return jax.grad(lambda p: log_probs(p)[b, t])(theta)

    expected = _direct_reinforce(per_token_grad, adv, q, mask, n)
    got = jax.grad(lambda p: ref.rl_loss(log_probs(p), jnp.asarray(adv), jnp.asarray(q),
                                            jnp.asarray(mask)))(theta)
    # For a softmax policy grad log p(a) = x (onehot(a) - softmax) w.r.t. the logits: check
    # one token's gradient against that closed form too.
    logits = np.asarray(feats[0, 1] @ theta["w"] + theta["b"], np.float64)
    soft = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    closed = np.asarray(feats[0, 1], np.float64)[:, None] * (np.eye(vocab)[int(actions[0, 1])]
                                                             - soft)[None, :]
    np.testing.assert_allclose(np.asarray(per_token_grad(0, 1)["w"]), closed, rtol=1e-5,
                               atol=1e-6)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(np.asarray(a), e, rtol=1e-5,
                                                         atol=1e-6), got, expected)
    # The weighted-CE form (weights precomputed on the host) gives the same gradient.
    weights = jnp.asarray(adv[:, None] * q * mask / n)
    got_ce = jax.grad(lambda p: losses.weighted_nll(log_probs(p), weights))(theta)
    jax.tree.map(lambda a, e: np.testing.assert_allclose(np.asarray(a), e, rtol=1e-5,
                                                         atol=1e-6), got_ce, expected)


def test_train_step_objective_gradient_is_reinforce_on_a_tiny_t5():
    """The step's actual objective (`ActorModel.loss` on a batch whose token_weights are the
    RL weights) has the REINFORCE gradient, with the per-token gradients taken through T5."""
    from coderl_jax.models.t5 import init_params
    from coderl_jax.training import batch as batch_lib
    from coderl_jax.training.step import ActorModel

    config = tiny_config()
    model = ActorModel(config)
    # Any params prove the identity; numpy ones skip the init's XLA compile (~10 s here).
    abstract = jax.eval_shape(lambda r: init_params(config, r), jax.random.key(0))
    prng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(prng.normal(scale=0.3, size=s.shape),
                                                jnp.float32), abstract)
    adv, q, mask, n = _reinforce_weights()
    rng = np.random.default_rng(1)
    lengths = mask.sum(1).astype(int)
    examples = []
    for b, m in enumerate(lengths):
        targets = list(rng.integers(3, config.vocab_size, size=m - 1)) + [2]
        examples.append({"inputs": rng.integers(3, config.vocab_size, size=5 + b),
                         "targets": targets,
                         "token_weights": adv[b] * q[b, :m] / n})
    batch = batch_lib.build_batch(examples, 3, 8, 4)
    np.testing.assert_array_equal(batch.decoder_mask, mask)
    batch = jax.tree.map(jnp.asarray, batch)

    @jax.jit
    def grads(p):
        # Every token's grad log p on its own: the Jacobian of the [B, T] log-probs.
        per_token = jax.jacrev(lambda p: model.log_probs(p, batch))(p)
        step_objective = jax.grad(lambda p: model.loss(p, batch, jax.random.key(0))[0])(p)
        rl = jax.grad(lambda p: ref.rl_loss(model.log_probs(p, batch), jnp.asarray(adv),
                                               jnp.asarray(q), jnp.asarray(mask)))(p)
        return per_token, step_objective, rl

    per_token, got, got_rl = jax.device_get(grads(params))
    expected = _direct_reinforce(lambda b, t: jax.tree.map(lambda g: g[b, t], per_token),
                                 adv, q, mask, n)
    scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(expected))
    assert scale > 0
    for g in (got, got_rl):
        jax.tree.map(lambda a, e: np.testing.assert_allclose(np.asarray(a), e, rtol=1e-4,
                                                             atol=1e-5 * scale), g, expected)


def test_rl_rows_are_scored_at_their_sampling_temperature():
    """The actor's log p of a row is log softmax(logits / T_row): RL samples are scored under
    the distribution that drew them, references at T = 1."""
    from coderl_jax.models.t5 import T5, init_params
    from coderl_jax.training import batch as batch_lib
    from coderl_jax.training.step import ActorModel

    config = tiny_config()
    params = init_params(config, jax.random.key(0))
    rng = np.random.default_rng(0)
    examples = [{"inputs": rng.integers(5, 90, 7), "targets": rng.integers(5, 90, 5),
                 "temperature": t} for t in (1.0, 0.6)]
    b = batch_lib.build_batch(examples, 2, 8, 6)
    np.testing.assert_allclose(b.temperature, [1.0, 0.6])
    got = np.asarray(jax.jit(ActorModel(config).log_probs)(params, b))
    logits = np.asarray(T5(config).apply({"params": params}, b.encoder_input_tokens,
                                         b.decoder_input_tokens, b.encoder_mask,
                                         b.decoder_mask), np.float64)
    for row, t in enumerate((1.0, 0.6)):
        z = logits[row] / t
        logp = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - z.max(-1, keepdims=True)
        want = np.take_along_axis(logp, b.decoder_target_tokens[row][:, None], -1)[:, 0]
        np.testing.assert_allclose(got[row], want, rtol=1e-4, atol=1e-4)
