"""Return estimators of coderl_jax.rl.returns against hand-computed token weights."""

import numpy as np
import pytest

from coderl_jax.rl import returns
from coderl_jax.rl.returns import ESTIMATORS, RolloutBatch, get_estimator, token_weights

# A fixed batch of N = 5 samples, T = 4 tokens. Group ids are deliberately unsorted and
# non-contiguous: groups {0, 2} (id 7), {1, 3} (id 3) and {4} (id 100).
R = [1.0, -0.3, -1.0, -0.6, -0.3]  # PassedTest, FailedTest, CompileError, RuntimeError, Failed
B = [-0.3, -0.3, -0.3, 1.0, 1.0]  # greedy returns; r - b = [1.3, 0, -0.7, -1.6, -1.3]
G = [7, 3, 7, 3, 100]
MASK = [[1, 1, 1, 0],  # T_0 = 3
        [1, 1, 0, 0],  # T_1 = 2
        [1, 1, 1, 1],  # T_2 = 4
        [1, 0, 0, 0],  # T_3 = 1
        [1, 1, 0, 0]]  # T_4 = 2
# Values at masked positions (0.9, 0.7, ...) must never leak into the weights.
Q = [[0.5, 0.25, 1.0, 0.9],
     [0.2, 0.4, 0.7, 0.7],
     [1.0, 0.5, 0.25, 0.75],
     [0.8, 0.3, 0.3, 0.3],
     [0.6, 0.9, 0.1, 0.1]]
FIELDS = dict(sample_returns=R, baseline_returns=B, group_ids=G, token_values=Q, mask=MASK)

EXPECTED = {
    # (r - b) * mask
    ("baseline", "A"): [[1.3, 1.3, 1.3, 0.0],
                        [0.0, 0.0, 0.0, 0.0],
                        [-0.7, -0.7, -0.7, -0.7],
                        [-1.6, 0.0, 0.0, 0.0],
                        [-1.3, -1.3, 0.0, 0.0]],
    # r * q * mask
    ("critic", "B"): [[0.5, 0.25, 1.0, 0.0],
                      [-0.06, -0.12, 0.0, 0.0],
                      [-1.0, -0.5, -0.25, -0.75],
                      [-0.48, 0.0, 0.0, 0.0],
                      [-0.18, -0.27, 0.0, 0.0]],
    # (r - b) * d * mask, d = (T_i - t) / T_i: [1, 2/3, 1/3], [1, 1/2], [1, 3/4, 1/2, 1/4], [1]
    ("decay", "C"): [[1.3, 1.3 * 2 / 3, 1.3 / 3, 0.0],
                     [0.0, 0.0, 0.0, 0.0],
                     [-0.7, -0.525, -0.35, -0.175],
                     [-1.6, 0.0, 0.0, 0.0],
                     [-1.3, -0.65, 0.0, 0.0]],
    # (r - b) * q * mask
    ("coderl", "D"): [[0.65, 0.325, 1.3, 0.0],
                      [0.0, 0.0, 0.0, 0.0],
                      [-0.7, -0.35, -0.175, -0.525],
                      [-1.28, 0.0, 0.0, 0.0],
                      [-0.78, -1.17, 0.0, 0.0]],
    # group means: id 7 -> 0, id 3 -> -0.45, id 100 -> -0.3; advantages [1, 0.15, -1, -0.15, 0]
    ("group", None): [[0.5, 0.25, 1.0, 0.0],
                      [0.03, 0.06, 0.0, 0.0],
                      [-1.0, -0.5, -0.25, -0.75],
                      [-0.12, 0.0, 0.0, 0.0],
                      [0.0, 0.0, 0.0, 0.0]],
}


@pytest.mark.parametrize("name, alias", list(EXPECTED))
def test_token_weights_hand_computed(name, alias):
    for key in (name, alias) if alias else (name,):
        w = token_weights(key, **FIELDS)
        assert w.shape == (5, 4) and w.dtype == np.float32
        np.testing.assert_allclose(w, EXPECTED[name, alias], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("std_scale, leave_one_out, expected", [
    # std (ddof=0): id 7 -> 1, id 3 -> 0.15, id 100 -> 0; advantages / std -> [1, 1, -1, -1, 0].
    # The FailedTest sample 1 (-0.3) now weighs as much as the pass: the noise amplification
    # the docstring warns about.
    (True, False, [[0.5, 0.25, 1.0, 0.0],
                   [0.2, 0.4, 0.0, 0.0],
                   [-1.0, -0.5, -0.25, -0.75],
                   [-0.8, 0.0, 0.0, 0.0],
                   [0.0, 0.0, 0.0, 0.0]]),
    # leave-one-out baselines: the other sample of the pair; a lone sample gets 0.
    # advantages [1 - -1, -0.3 - -0.6, -1 - 1, -0.6 - -0.3, 0] = [2, 0.3, -2, -0.3, 0]
    (False, True, [[1.0, 0.5, 2.0, 0.0],
                   [0.06, 0.12, 0.0, 0.0],
                   [-2.0, -1.0, -0.5, -1.5],
                   [-0.24, 0.0, 0.0, 0.0],
                   [0.0, 0.0, 0.0, 0.0]]),
    # both: [2, 0.3, -2, -0.3, 0] / [1, 0.15, 1, 0.15, std 0 (advantage 0 anyway)]
    (True, True, [[1.0, 0.5, 2.0, 0.0],
                  [0.4, 0.8, 0.0, 0.0],
                  [-2.0, -1.0, -0.5, -1.5],
                  [-1.6, 0.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 0.0]]),
])
def test_group_options_hand_computed(std_scale, leave_one_out, expected):
    w = token_weights("group", **FIELDS, std_scale=std_scale, leave_one_out=leave_one_out)
    # eps = 1e-6 shifts x / 0.15 by ~7e-6 relative.
    np.testing.assert_allclose(w, expected, rtol=2e-5, atol=1e-7)


def test_group_advantages_of_three_hand_computed():
    r = [1.0, -0.3, -1.0]
    # mean -0.1 (self included)
    np.testing.assert_allclose(returns.advantages("group", sample_returns=r, group_ids=[0, 0, 0]),
                               [1.1, -0.2, -0.9], rtol=1e-6)
    # means of the others: -0.65, 0, 0.35 (= 3/2 times the self-included advantages)
    np.testing.assert_allclose(
        returns.advantages("group", sample_returns=r, group_ids=[0, 0, 0], leave_one_out=True),
        [1.65, -0.3, -1.35], rtol=1e-6)
    # all equal returns: no signal, also with std_scale (0 / eps, not 0 / 0)
    np.testing.assert_array_equal(
        returns.advantages("group", sample_returns=[-0.3] * 3, group_ids=[1, 1, 1],
                           std_scale=True), [0.0, 0.0, 0.0])


def test_advantages_per_estimator():
    for key in ("A", "C", "D"):
        np.testing.assert_allclose(
            returns.advantages(key, sample_returns=R, baseline_returns=B),
            [1.3, 0.0, -0.7, -1.6, -1.3], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(returns.advantages("B", sample_returns=R), R, rtol=1e-6)


def test_constant_critic_makes_coderl_c_times_baseline():
    c = 0.37
    q = np.full((5, 4), c)
    d = token_weights("coderl", **{**FIELDS, "token_values": q})
    a = token_weights("baseline", **FIELDS)
    np.testing.assert_allclose(d, c * a, rtol=1e-6, atol=1e-7)


def test_decay_counts_real_tokens_when_the_mask_is_not_a_prefix():
    # Left padding: the real tokens are columns 1, 2 -> d = [1, 1/2] there.
    w = token_weights("decay", sample_returns=[1.0], baseline_returns=[0.0], mask=[[0, 1, 1]])
    np.testing.assert_allclose(w, [[0.0, 1.0, 0.5]])


def test_padding_is_exactly_positive_zero():
    w = token_weights("coderl", **FIELDS)
    padding = np.asarray(MASK) == 0
    assert np.all(w[padding] == 0) and not np.any(np.signbit(w[padding]))


def test_empty_batch_and_empty_rows():
    w = token_weights("coderl", sample_returns=[], baseline_returns=[],
                      token_values=np.zeros((0, 3)), mask=np.zeros((0, 3)))
    assert w.shape == (0, 3) and w.dtype == np.float32
    w = token_weights("decay", sample_returns=[1.0], baseline_returns=[0.0], mask=[[0, 0]])
    np.testing.assert_array_equal(w, [[0.0, 0.0]])  # T_i = 0: no 0/0
    w = token_weights("group", sample_returns=[], group_ids=[], token_values=np.zeros((0, 2)),
                      mask=np.zeros((0, 2)), std_scale=True)
    assert w.shape == (0, 2)


def test_registry():
    assert returns.DEFAULT_ESTIMATOR == "coderl"
    assert set(ESTIMATORS) == {"baseline", "critic", "decay", "coderl", "group",
                               "pass_at_k", "positive_ce"}
    for alias, name in {"A": "baseline", "B": "critic", "C": "decay", "D": "coderl"}.items():
        assert get_estimator(alias) is ESTIMATORS[name]
        assert get_estimator(alias.lower()) is ESTIMATORS[name]
    assert get_estimator("CodeRL") is ESTIMATORS["coderl"]
    batch = RolloutBatch(**FIELDS)
    np.testing.assert_allclose(get_estimator("D")(batch), EXPECTED["coderl", "D"], rtol=1e-6)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown return estimator 'ppo'.*'baseline' \('A'\)"
                                         r".*'coderl' \('D'\).*'group'"):
        get_estimator("ppo")
    with pytest.raises(ValueError, match="unknown return estimator"):
        token_weights("E", **FIELDS)


def test_unknown_option_and_missing_field_are_errors():
    with pytest.raises(ValueError, match=r"'coderl' got unknown option\(s\) std_scale; "
                                         r"it takes no options"):
        token_weights("coderl", **FIELDS, std_scale=True)
    with pytest.raises(ValueError, match=r"'group' got unknown option\(s\) loo"):
        token_weights("group", **FIELDS, loo=True)
    with pytest.raises(ValueError, match="'coderl' needs baseline_returns"):
        token_weights("coderl", sample_returns=R, token_values=Q, mask=MASK)
    with pytest.raises(ValueError, match="'critic' needs token_values"):
        token_weights("critic", sample_returns=R, mask=MASK)
    with pytest.raises(ValueError, match="'group' needs group_ids"):
        returns.advantages("group", sample_returns=R)


@pytest.mark.parametrize("change, message", [
    (dict(sample_returns=[[1.0, 0.0]]), r"sample_returns must be a vector \[N\]"),
    (dict(mask=np.ones((4, 4))), r"mask must be \[N, T\] with N = 5"),
    (dict(mask=np.ones(5)), r"mask must be \[N, T\]"),
    (dict(baseline_returns=[0.0] * 4), r"baseline_returns must have shape \(5,\)"),
    (dict(group_ids=[0] * 6), r"group_ids must have shape \(5,\)"),
    (dict(token_values=np.ones((5, 3))), r"token_values must have shape \(5, 4\)"),
    (dict(group_ids=[0.0] * 5), "group_ids must be integers"),
    (dict(mask=np.full((5, 4), 0.5)), "mask must hold only 0 and 1"),
    (dict(token_values=np.full((5, 4), 2.0)), r"probabilities in \[0, 1\]"),
    (dict(sample_returns=[np.nan, 0, 0, 0, 0]), "sample_returns must be finite"),
])
def test_input_errors(change, message):
    with pytest.raises(ValueError, match=message):
        token_weights("coderl", **{**FIELDS, **change})
