"""`build_rl_batch` (the host function both RL modes share) against hand-computed weights.

Rows: CE rows (one reference per problem) first, then one RL row per kept sample. Token
weights: CE rows ce_weight / N_ce, RL rows estimator weight * rl_weight / N_rl (N = the real
target tokens of the rows of that kind); InternalError samples never get a row.
"""

import dataclasses
import types

import numpy as np
import pytest

from coderl_jax import outcomes
from coderl_jax.rl import stats as stats_lib
from coderl_jax.rl.batch import Group, build_rl_batch
from coderl_jax.rl.config import RLConfig
from coderl_jax.rl.rewards import table_rewards

CE, RE, FT, PT, IE = (outcomes.COMPILE_ERROR, outcomes.RUNTIME_ERROR, outcomes.FAILED_TEST,
                      outcomes.PASSED_TEST, outcomes.INTERNAL_ERROR)
ENC, DEC, ROWS = 8, 6, 12


def groups() -> list[Group]:
    """Two problems, K = 3. Problem a: greedy FailedTest; problem b: greedy PassedTest and
    one sample the sandbox could not judge."""
    return [
        Group("a", [1, 10, 2], [20, 21, 2], samples=[[30, 2], [31, 32, 2], [33, 34, 35, 2]],
              outcomes=[PT, CE, FT], baseline_outcome=FT),
        Group("b", [1, 11, 12, 2], [22, 2], samples=[[40, 41, 2], [42, 2], [43, 2]],
              outcomes=[RE, IE, PT], baseline_outcome=PT),
    ]


def probs_of(groups_, fill):
    """Per sample (all of them, InternalError included) a [T, 4] array from fill(i, t, c)."""
    out, i = [], 0
    for g in groups_:
        for ids in g.samples:
            out.append(np.array([[fill(i, t, c) for c in range(4)] for t in range(len(ids))],
                                np.float32))
            i += 1
    return out


def with_rewards(groups_, table=outcomes.RETURNS):
    """The groups with the rewards of `table` (what the rollout's "coderl" reward gives)."""
    return [dataclasses.replace(g, rewards=table_rewards(g.outcomes, table),
                                baseline_reward=(table_rewards([g.baseline_outcome], table)[0]
                                                 if g.baseline_outcome else None))
            for g in groups_]


def build(groups_, probs=None, ref=None, part="both", **cfg):
    """The batch under the per-problem CE rows and the "token" normalisation (the tests
    below hand-compute those); tests/test_rl_batch_options.py covers the defaults."""
    cfg.setdefault("ce_per_sample", 0)
    cfg.setdefault("rl_normalisation", "token")
    config = RLConfig(problems_per_step=2, num_samples=3, **cfg)
    return build_rl_batch(with_rewards(groups_, config.return_table), probs, ref, config,
                          batch_rows=ROWS, encoder_length=ENC,
                          decoder_length=DEC, part=part)


def row_weights(batch, row):
    n = int(batch.decoder_mask[row].sum())
    return batch.token_weights[row, :n]


def test_rows_and_hand_computed_weights_of_estimator_a():
    batch, stats = build(groups(), estimator="A", ce_weight=0.5, rl_weight=2.0)
    # CE rows first (references of a and b), then the 5 judged samples in order.
    targets = [[20, 21, 2], [22, 2], [30, 2], [31, 32, 2], [33, 34, 35, 2], [40, 41, 2],
               [43, 2]]
    for row, t in enumerate(targets):
        np.testing.assert_array_equal(batch.decoder_target_tokens[row, :len(t)], t)
        assert batch.decoder_mask[row].sum() == len(t)
    assert batch.decoder_mask[len(targets):].sum() == 0
    assert not batch.token_weights[len(targets):].any()
    np.testing.assert_array_equal(batch.encoder_input_tokens[0, :3], [1, 10, 2])
    np.testing.assert_array_equal(batch.encoder_input_tokens[6, :4], [1, 11, 12, 2])
    np.testing.assert_array_equal(batch.decoder_input_tokens[3, :3], [0, 31, 32])

    n_ce, n_rl = 3 + 2, 2 + 3 + 4 + 3 + 2  # the InternalError sample's 2 tokens not counted
    assert (stats["ce_tokens"], stats["rl_tokens"]) == (n_ce, n_rl)
    for row in (0, 1):
        np.testing.assert_allclose(row_weights(batch, row), 0.5 / n_ce)
    # A: (r - b) on every token, times rl_weight / N_rl.
    advantages = [1.0 + 0.3, -1.0 + 0.3, -0.3 + 0.3, -0.6 - 1.0, 1.0 - 1.0]
    for row, adv in zip(range(2, 7), advantages):
        np.testing.assert_allclose(row_weights(batch, row), adv * 2.0 / n_rl, rtol=1e-6)
    assert stats["dropped_internal"] == 1 and stats["dropped_no_baseline"] == 0
    assert (stats["rl_rows"], stats["ce_rows"]) == (5, 2)
    # RL samples are scored at the sampling temperature, references (and padding) at 1.
    np.testing.assert_allclose(batch.temperature[:2], 1.0)
    np.testing.assert_allclose(batch.temperature[2:7], RLConfig().temperature)
    np.testing.assert_allclose(batch.temperature[7:], 1.0)
    # No KL without kl_coef, even when reference log-probs are given.
    ref = [np.full(len(ids), -1.0, np.float32) for g in groups() for ids in g.samples]
    batch_ref, _ = build(groups(), ref=ref, estimator="A")
    assert not batch_ref.kl_weights.any() and not batch_ref.reference_log_probs.any()


def test_internal_error_sample_never_weighted_nor_counted():
    gs = groups()
    # The same batch without the InternalError sample at all: identical arrays.
    clean = [gs[0], dataclasses.replace(gs[1], samples=[gs[1].samples[0], gs[1].samples[2]],
                                        outcomes=[RE, PT])]
    with_ie, stats = build(gs, estimator="A")
    without, stats_clean = build(clean, estimator="A")
    for name in ("decoder_target_tokens", "token_weights", "decoder_mask"):
        np.testing.assert_array_equal(getattr(with_ie, name), getattr(without, name))
    assert stats["dropped_internal"] == 1 and stats_clean["dropped_internal"] == 0
    assert stats["rl_tokens"] == stats_clean["rl_tokens"]
    assert not any(np.array_equal(with_ie.decoder_target_tokens[r, :2], [42, 2])
                   and with_ie.decoder_mask[r].sum() == 2 for r in range(ROWS))


def test_internal_error_baseline_keeps_only_the_ce_row():
    gs = groups()
    gs[1] = dataclasses.replace(gs[1], baseline_outcome=IE)
    probs = probs_of(gs, lambda i, t, c: 0.5)
    batch, stats = build(gs, probs=probs, estimator="D")
    # b's 3 samples: 1 InternalError (dropped as such) + 2 without a judged baseline.
    assert stats["dropped_internal"] == 1 and stats["dropped_no_baseline"] == 2
    assert (stats["ce_rows"], stats["rl_rows"]) == (2, 3)
    np.testing.assert_array_equal(batch.decoder_target_tokens[1, :2], [22, 2])  # b's CE row
    assert batch.decoder_mask[5:].sum() == 0  # a's 3 samples are the only RL rows
    # An estimator without a baseline ("B") keeps b's judged samples.
    _, stats_b = build(gs, probs=probs, estimator="B")
    assert stats_b["dropped_no_baseline"] == 0 and stats_b["rl_rows"] == 5


@pytest.mark.parametrize("c", [0.25, 0.37])
def test_constant_critic_makes_d_equal_a_times_c(c):
    gs = groups()
    a, _ = build(gs, estimator="A")
    d, _ = build(gs, probs=probs_of(gs, lambda i, t, k: c), estimator="D")
    rl = slice(2, None)
    np.testing.assert_allclose(d.token_weights[rl], a.token_weights[rl] * c, rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_array_equal(d.token_weights[:2], a.token_weights[:2])  # CE rows alike
    assert np.count_nonzero(a.token_weights[rl]) > 0


def test_d_reads_the_critic_at_the_true_outcome_of_each_token():
    gs = groups()
    # probs[i][t, c] = code for (sample i, token t, class c): the weight shows which was read.
    probs = probs_of(gs, lambda i, t, c: (i * 16 + t * 4 + c) / 100.0)
    d, stats = build(gs, probs=probs, estimator="D")
    n_rl = stats["rl_tokens"]
    kept = [(0, PT, 1.3), (1, CE, -0.7), (2, FT, 0.0), (3, RE, -1.6), (5, PT, 0.0)]
    for row, (i, outcome, adv) in zip(range(2, 7), kept):
        u = outcomes.outcome_index(outcome)
        t = np.arange(int(d.decoder_mask[row].sum()))
        np.testing.assert_allclose(row_weights(d, row), adv * (i * 16 + t * 4 + u) / 100 / n_rl,
                                   rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("part", ["both", "ce", "rl"])
def test_alternate_parts_zero_the_other_rows(part):
    both, _ = build(groups(), estimator="A", objective="alternate")
    batch, _ = build(groups(), estimator="A", objective="alternate", part=part)
    for name in ("encoder_input_tokens", "decoder_target_tokens", "decoder_mask"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(both, name))
    ce_on, rl_on = part in ("both", "ce"), part in ("both", "rl")
    np.testing.assert_array_equal(batch.token_weights[:2], both.token_weights[:2] * ce_on)
    np.testing.assert_array_equal(batch.token_weights[2:], both.token_weights[2:] * rl_on)
    assert np.abs(both.token_weights[:2]).sum() > 0 and np.abs(both.token_weights[2:]).sum() > 0


@pytest.mark.parametrize("part", ["both", "ce", "rl"])
def test_kl_weights_only_with_kl_coef_on_rl_rows(part):
    gs = groups()
    ref = [np.linspace(-1, -2, len(ids)).astype(np.float32) for g in gs for ids in g.samples]
    batch, stats = build(gs, ref=ref, estimator="A", kl_coef=0.2, part=part,
                         objective="alternate")
    n_rl = stats["rl_tokens"]
    assert not batch.kl_weights[:2].any() and not batch.reference_log_probs[:2].any()
    on = part in ("both", "rl")
    for row, i in zip(range(2, 7), [0, 1, 2, 3, 5]):
        n = int(batch.decoder_mask[row].sum())
        np.testing.assert_allclose(batch.kl_weights[row, :n], 0.2 / n_rl * on, rtol=1e-6)
        np.testing.assert_array_equal(batch.reference_log_probs[row, :n], ref[i])
    assert not (batch.kl_weights * (1 - batch.decoder_mask)).any()


def test_batch_too_small_is_an_error():
    config = RLConfig(problems_per_step=2, num_samples=3)
    with pytest.raises(ValueError, match="do not fit"):
        build_rl_batch(with_rewards(groups()), None, None, config, batch_rows=3,
                       encoder_length=ENC, decoder_length=DEC)


def test_bad_config_fails_at_construction():
    with pytest.raises(ValueError, match="unknown return estimator 'E'"):
        RLConfig(estimator="E")
    with pytest.raises(ValueError, match="objective"):
        RLConfig(objective="both")
    with pytest.raises(ValueError, match="kl_coef"):
        RLConfig(kl_coef=-1.0)
    assert RLConfig(estimator="A").needs_baseline and not RLConfig(estimator="A").needs_critic
    assert RLConfig(estimator="D").needs_critic and RLConfig(estimator="d").needs_baseline


def test_step_statistics_hand_computed():
    gs = groups()
    pooled = np.zeros((6, 4), np.float32)
    # Predictions: PT, CE, CE (truth FT), RE, (IE: ignored), FT (truth PT).
    for i, c in enumerate([3, 0, 0, 1, 2, 2]):
        pooled[i, c] = 1.0
    s = stats_lib.step_statistics(with_rewards(gs), pooled)
    judged = [1.0, -1.0, -0.3, -0.6, 1.0]
    assert s["sample_return"] == pytest.approx(np.mean(judged))
    assert s["sample_pass_rate"] == pytest.approx(2 / 5)
    assert s[f"outcome/{CE}"] == pytest.approx(1 / 5)
    assert s["internal_errors"] == 1.0
    assert s["baseline_return"] == pytest.approx((-0.3 + 1.0) / 2)
    assert s["baseline_pass_rate"] == pytest.approx(0.5)
    assert s["no_signal_share"] == 0.0
    assert s["critic_accuracy"] == pytest.approx(3 / 5)
    same = [dataclasses.replace(gs[0], outcomes=[CE, CE, CE]), gs[1]]
    assert stats_lib.step_statistics(with_rewards(same), None)["no_signal_share"] == 0.5


def test_constant_critic_through_the_scorer():
    """The real critic path: a critic whose output layer is zero gives q = 1/4 at every
    token and class, so D's weights are A's times 1/4 (tests/rl_utils.constant_critic)."""
    import jax

    from coderl_jax.models.critic import init_critic_params
    from coderl_jax.scoring import Scorer
    from model_utils import tiny_config
    from rl_utils import constant_critic

    config = tiny_config(vocab_size=64)
    params = constant_critic(jax.device_get(init_critic_params(config, 4, jax.random.key(0))))
    scorer = Scorer(config, params, outcomes.OUTCOMES, batch_size=8)
    gs = groups()
    prompts = [g.prompt_ids for g in gs for _ in g.samples]
    programs = [ids for g in gs for ids in g.samples]
    probs, pooled = scorer.critic_outputs(prompts, programs)
    assert [p.shape for p in probs] == [(len(ids), 4) for ids in programs]
    np.testing.assert_allclose(np.concatenate(probs), 0.25, rtol=1e-6)
    a, _ = build(gs, estimator="A")
    d, _ = build(gs, probs=probs, estimator="D")
    np.testing.assert_allclose(d.token_weights[2:], a.token_weights[2:] * 0.25, rtol=1e-6)


def test_return_table_is_config():
    binary = {CE: 0.0, RE: 0.0, FT: 0.0, PT: 1.0}
    gs = groups()
    batch, stats = build(gs, probs=probs_of(gs, lambda i, t, c: 1.0), estimator="B",
                         returns=binary)
    n_rl = stats["rl_tokens"]
    for row, passed in zip(range(2, 7), [True, False, False, False, True]):
        np.testing.assert_allclose(row_weights(batch, row), float(passed) / n_rl)
    assert stats_lib.step_statistics(with_rewards(gs, binary), None)["sample_return"] == \
        pytest.approx(2 / 5)
    # The "coderl" reward reads RLConfig.returns.
    reward = RLConfig(returns=binary).reward_fn
    assert [reward(None, types.SimpleNamespace(outcome=o)) for o in (CE, PT)] == [0.0, 1.0]
    with pytest.raises(ValueError, match="RLConfig.returns"):
        RLConfig(returns={PT: 1.0})
    with pytest.raises(ValueError, match="RLConfig.returns"):
        RLConfig(returns={**binary, PT: float("nan")})


def test_bucketed_batch_has_the_loss_of_the_fully_padded_one():
    """Rounding the RL batch's lengths up to a bucket (RLConfig.length_buckets) instead of
    the full max lengths changes the shapes, never the objective (or its parts)."""
    import jax
    import jax.numpy as jnp

    from coderl_jax.models.t5 import init_params
    from coderl_jax.rl.batch import bucket_length, bucket_lengths
    from coderl_jax.training.step import ActorModel
    from model_utils import tiny_config

    assert [bucket_length(n, 64, (0.25, 0.5, 1.0)) for n in (1, 16, 17, 33, 64)] == \
        [16, 16, 32, 64, 64]
    assert bucket_length(5, 64, ()) == 64
    config = tiny_config(vocab_size=64)
    params = init_params(config, jax.random.key(0))
    gs = with_rewards(groups())
    cfg = RLConfig(problems_per_step=2, num_samples=3, max_source_length=32, max_new_tokens=16,
                   estimator="D", kl_coef=0.1, temperature=0.7,
                   length_buckets=(0.25, 0.5, 1.0))
    assert bucket_lengths(gs, cfg) == (8, 4)  # prompts <= 4 tokens, programs <= 4
    probs = probs_of(gs, lambda i, t, c: 0.1 + 0.2 * c + 0.01 * t)
    rng = np.random.default_rng(0)
    ref = [rng.normal(-2.0, 0.5, size=len(ids)).astype(np.float32)
           for g in gs for ids in g.samples]
    full, _ = build_rl_batch(gs, probs, ref, cfg, batch_rows=ROWS, encoder_length=32,
                             decoder_length=16)
    small, _ = build_rl_batch(gs, probs, ref, cfg, batch_rows=ROWS, encoder_length=8,
                              decoder_length=4)
    model = ActorModel(config)
    loss = jax.jit(lambda b: model.loss(params, b, jax.random.key(1)))
    (got, got_sums), (want, want_sums) = loss(jax.tree.map(jnp.asarray, small)), \
        loss(jax.tree.map(jnp.asarray, full))
    assert abs(float(got) - float(want)) <= 1e-6, (float(got), float(want))
    for key in want_sums:
        np.testing.assert_allclose(got_sums[key], want_sums[key], rtol=1e-6, atol=1e-6)
