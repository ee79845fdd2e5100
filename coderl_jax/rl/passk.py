"""The Pass@k Training advantage (Chen et al. 2025, arXiv 2508.10751, the analytical form).

A group of N samples of one problem, N_pos of them passing (return >= pass_return), N_neg =
N - N_pos failing. The group's reward is pass@k of the group (does a random k-subset hold a
pass?), its expectation over k-subsets and its std:

    R = 1 - C(N_neg, k) / C(N, k)            sigma = sqrt(R * (1 - R))

and each sample is credited with the expected (normalised) reward change of the k-subsets
that contain it:

    A_pos = (1 - R) / sigma
    A_neg = (1 - R - C(N_neg - 1, k - 1) / C(N - 1, k - 1)) / sigma

so a failing sample is penalised only in proportion to the subsets it shares with other
failures only, and a group that already holds a pass rewards its passes and barely blames
its failures: the advantage rewards a group for containing a pass, not every sample for
passing (the answer to RL's narrowing of pass@k). sigma = 0 (all pass or all fail, or
k > N - 1 leaves no failing subset) gives advantage 0. Our own code from the formula;
pure numpy, shapes [N].
"""

from __future__ import annotations

from math import comb

import numpy as np


def group_pass_at_k(n: int, n_neg: int, k: int) -> float:
    """R = 1 - C(n_neg, k) / C(n, k) (1 when fewer than k samples fail)."""
    return 1.0 - comb(n_neg, k) / comb(n, k)


def pass_at_k_advantage(r: np.ndarray, b, g: np.ndarray, *, k: int = 4,
                        pass_return: float = 1.0) -> np.ndarray:
    """Per-sample advantage [N] of Pass@k Training; r [N] returns, g [N] group ids (b, the
    greedy baseline, is unused). k is clipped to each group's size."""
    del b
    if k < 1:
        raise ValueError(f"pass_at_k needs k >= 1, got {k}")
    r = np.asarray(r, np.float64)
    out = np.zeros_like(r)
    passed = r >= pass_return
    for group in np.unique(g):
        idx = np.flatnonzero(g == group)
        n, n_neg = len(idx), int((~passed[idx]).sum())
        kk = min(k, n)
        mean = group_pass_at_k(n, n_neg, kk)
        sigma = np.sqrt(mean * (1.0 - mean))
        if sigma == 0:
            continue
        a_pos = (1.0 - mean) / sigma
        shared = comb(n_neg - 1, kk - 1) / comb(n - 1, kk - 1) if n_neg else 0.0
        a_neg = (1.0 - mean - shared) / sigma
        out[idx] = np.where(passed[idx], a_pos, a_neg)
    return out


def positive_advantage(r: np.ndarray, b, g, *, pass_return: float = 1.0) -> np.ndarray:
    """1 for a passing sample (return >= pass_return), 0 otherwise [N]: with the ones scale
    this is L_ce on the samples with r = 1 (the paper's Table 3 row)."""
    del b, g
    return (np.asarray(r, np.float64) >= pass_return).astype(np.float64)
