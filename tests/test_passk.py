"""The Pass@k Training estimator (Chen et al. 2025) against hand-computed advantages."""

import math

import numpy as np
import pytest

from coderl_jax.rl import returns
from coderl_jax.rl.config import RLConfig
from coderl_jax.rl.passk import group_pass_at_k, pass_at_k_advantage


def test_group_of_four_one_pass_k2_by_hand():
    # N = 4, N_pos = 1, k = 2: R = 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5, sigma = 0.5.
    # A_pos = 0.5 / 0.5 = 1; A_neg = (1 - 0.5 - C(2,1)/C(3,1)) / 0.5 = (0.5 - 2/3) / 0.5.
    r = np.array([1.0, -0.3, -1.0, -0.6])
    adv = pass_at_k_advantage(r, None, np.zeros(4, int), k=2)
    np.testing.assert_allclose(adv, [1.0, -1 / 3, -1 / 3, -1 / 3], rtol=1e-12)
    assert group_pass_at_k(4, 3, 2) == 0.5


def test_two_passes_and_k1_is_the_normalised_group_baseline():
    # N = 4, N_pos = 2, k = 2: R = 1 - C(2,2)/C(4,2) = 5/6, sigma = sqrt(5/36).
    # A_pos = (1/6)/sigma; A_neg = (1/6 - C(1,1)/C(3,1)) / sigma = (1/6 - 1/3)/sigma.
    sigma = math.sqrt(5 / 36)
    adv = pass_at_k_advantage(np.array([1.0, 1.0, -1.0, -0.3]), None, np.zeros(4, int), k=2)
    np.testing.assert_allclose(adv, [1 / 6 / sigma] * 2 + [-1 / 6 / sigma] * 2, rtol=1e-12)
    # k = 1: R = p = 0.5, A = (pass - p) / sqrt(p(1-p)): GRPO's normalised advantage.
    adv = pass_at_k_advantage(np.array([1.0, 1.0, -1.0, -0.3]), None, np.zeros(4, int), k=1)
    np.testing.assert_allclose(adv, [1, 1, -1, -1], rtol=1e-12)


def test_uniform_groups_get_zero_and_groups_are_separate():
    r = np.array([1.0, 1.0, -1.0, -1.0, 1.0, -0.3, -0.3, -0.3])
    g = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    adv = pass_at_k_advantage(r, None, g, k=2)
    np.testing.assert_array_equal(adv[:4], 0.0)
    np.testing.assert_allclose(adv[4:], [1.0, -1 / 3, -1 / 3, -1 / 3], rtol=1e-12)
    # k larger than the group: clipped to the group size (k = N: every subset holds a pass
    # when one passes, sigma = 0, advantage 0).
    np.testing.assert_array_equal(pass_at_k_advantage(r[4:], None, g[4:], k=9), 0.0)


def test_registered_and_selectable():
    est = returns.get_estimator("pass_at_k")
    assert est.requires == ("group_ids",)
    cfg = RLConfig(estimator="pass_at_k", estimator_options={"k": 2})
    assert not cfg.needs_critic and not cfg.needs_baseline
    w = returns.token_weights("pass_at_k", sample_returns=np.array([1.0, -0.3, -1.0, -0.6]),
                              mask=np.array([[1, 1, 0]] * 4, np.float32),
                              group_ids=np.zeros(4, int), k=2)
    np.testing.assert_allclose(w[:, :2], [[1, 1]] + [[-1 / 3, -1 / 3]] * 3, rtol=1e-6)
    assert not w[:, 2].any()
    with pytest.raises(ValueError, match="k >= 1"):
        pass_at_k_advantage(np.ones(2), None, np.zeros(2, int), k=0)


def test_positive_ce_is_cross_entropy_on_passing_samples():
    w = returns.token_weights("positive_ce", sample_returns=np.array([1.0, -0.3, 1.0]),
                              mask=np.array([[1, 1], [1, 1], [1, 0]], np.float32))
    np.testing.assert_array_equal(w, [[1, 1], [0, 0], [1, 0]])
