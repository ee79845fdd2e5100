"""RL batch options (issue 19): CE rows drawn per sample, and the L_rl normalisations'
weights by hand, on hand-built rows."""

import dataclasses

import numpy as np
import pytest

from coderl_jax import outcomes
from coderl_jax.rl import batch as batch_lib
from coderl_jax.rl.batch import Group, build_rl_batch
from coderl_jax.rl.config import RLConfig
from coderl_jax.rl.rewards import table_rewards

FT, PT, CE = outcomes.FAILED_TEST, outcomes.PASSED_TEST, outcomes.COMPILE_ERROR


def groups():
    """Two problems, K = 2; problem a has two references, b one."""
    gs = [Group("a", [1, 10, 2], [20, 2], samples=[[30, 2], [31, 32, 33, 2]],
                outcomes=[PT, FT], baseline_outcome=FT, references=[[20, 2], [21, 22, 23, 2]]),
          Group("b", [1, 11, 2], [24, 25, 2], samples=[[40, 2], [41, 2]],
                outcomes=[CE, PT], baseline_outcome=PT, references=[[24, 25, 2]])]
    return [dataclasses.replace(g, rewards=table_rewards(g.outcomes, outcomes.RETURNS),
                                baseline_reward=outcomes.RETURNS[g.baseline_outcome])
            for g in gs]


def build(seed=0, **kw):
    cfg = RLConfig(problems_per_step=2, num_samples=2, estimator="A", **kw)
    return build_rl_batch(groups(), None, None, cfg, batch_rows=cfg.rows, encoder_length=4,
                          decoder_length=5, seed=seed), cfg


def targets(batch, row):
    n = int(batch.decoder_mask[row].sum())
    return batch.decoder_target_tokens[row, :n].tolist()


def test_ce_rows_are_drawn_per_sample_from_the_samples_problem():
    (batch, stats), cfg = build()
    assert cfg.rows == 8 and stats["ce_rows"] == 4 and stats["rl_rows"] == 4
    a_refs, b_refs = [[20, 2], [21, 22, 23, 2]], [[24, 25, 2]]
    assert [targets(batch, r) in a_refs for r in (0, 1)] == [True, True]
    assert [targets(batch, r) for r in (2, 3)] == b_refs * 2
    np.testing.assert_array_equal(batch.encoder_input_tokens[0, :3], [1, 10, 2])
    np.testing.assert_array_equal(batch.encoder_input_tokens[2, :3], [1, 11, 2])
    # Seeded: the same seed draws the same references, the draws vary over seeds.
    assert targets(build(seed=0)[0][0], 0) == targets(batch, 0)
    draws = {tuple(map(tuple, (targets(build(seed=s)[0][0], r) for r in (0, 1))))
             for s in range(12)}
    assert len(draws) > 1
    # Drawn from ce_rows itself: rng(seed) picks index integers(len(pool)) per sample.
    rng = np.random.default_rng(0)
    expected = [a_refs[int(rng.integers(2))] for _ in range(2)]
    assert [targets(batch, r) for r in (0, 1)] == expected
    # CE weights: ce_weight / N_ce per token.
    n_ce = sum(len(targets(batch, r)) for r in range(4))
    np.testing.assert_allclose(batch.token_weights[0, :len(expected[0])], 1.0 / n_ce)


def test_two_ce_rows_per_sample_and_per_problem_mode():
    (batch, stats), cfg = build(ce_per_sample=2)
    assert cfg.rows == 12 and stats["ce_rows"] == 8
    (batch, stats), cfg = build(ce_per_sample=0)
    assert cfg.rows == 6 and stats["ce_rows"] == 2
    assert [targets(batch, 0), targets(batch, 1)] == [[20, 2], [24, 25, 2]]


# Advantages of estimator A (r - greedy r): a: PT 1 - (-0.3), FT 0; b: CE -1 - 1, PT 0.
ADV = [1.3, 0.0, -2.0, 0.0]
LENGTHS = [2, 4, 2, 2]


@pytest.mark.parametrize("norm,scale", [
    ("sequence", [1 / (t * 4) for t in LENGTHS]),  # each sequence's mean, over 4 sequences
    ("token", [1 / 10] * 4),                       # over the step's 10 RL tokens
    ("sum", [1 / 4] * 4),                          # each sequence's sum, over 4 sequences
])
def test_each_normalisation_by_hand(norm, scale):
    (batch, stats), _ = build(rl_normalisation=norm, rl_weight=2.0, kl_coef=0.5)
    assert stats["rl_tokens"] == 10
    for i, (adv, t, c) in enumerate(zip(ADV, LENGTHS, scale)):
        row = 4 + i
        np.testing.assert_allclose(batch.token_weights[row, :t], adv * 2.0 * c, rtol=1e-6,
                                   atol=1e-9)
        assert not batch.token_weights[row, t:].any()


def test_default_is_the_official_release_and_bad_names_fail():
    cfg = RLConfig()
    assert (cfg.ce_per_sample, cfg.rl_normalisation, cfg.objective) == (1, "sequence", "sum")
    with pytest.raises(ValueError, match="rl_normalisation"):
        RLConfig(rl_normalisation="mean")
    with pytest.raises(ValueError, match="ce_per_sample"):
        RLConfig(ce_per_sample=-1)
    batch_lib.register_normalisation("double_token", lambda lengths, n, s: np.full(
        len(lengths), 2.0 / n))
    try:
        (batch, _), _ = build(rl_normalisation="double_token")
        np.testing.assert_allclose(batch.token_weights[4, :2], 1.3 * 2.0 / 10, rtol=1e-6)
    finally:
        del batch_lib.NORMALISATIONS["double_token"]
