"""Critic-sampling planning (coderl_jax.critic_sampling): cuts, counts, refine/repair plans."""

import subprocess
import sys

import numpy as np
import pytest

from coderl_jax import critic_sampling as cs
from coderl_jax.critic_sampling import Plan, RepairSeed, Seed, plan, refine_cut, split_count


# ------------------------------------------------------------------------------ refine_cut

def test_cut_at_t_max_keeps_t_max_inclusive():
    # t_max = 2 (0.9); every p(Pass) before it is >= 0.5, so keep w_0..w_2.
    assert refine_cut([0.6, 0.7, 0.9, 0.8, 0.4]) == 3
    # p(Fail) > p(Pass) *after* t_max does not matter.
    assert refine_cut([0.9, 0.1, 0.05]) == 1


def test_cut_at_first_fail_token_before_t_max():
    # t_max = 4 (0.95); tokens 1 and 3 have p(Fail) > p(Pass): cut before token 1.
    assert refine_cut([0.6, 0.4, 0.7, 0.3, 0.95, 0.5]) == 1
    # The very first token already fails: resample from scratch.
    assert refine_cut([0.2, 0.9]) == 0
    # t_max = 0 with p(Pass) < 0.5 there: nothing lies before t_max, keep token 0.
    assert refine_cut([0.3, 0.1]) == 1


def test_cut_ties_and_equal_probabilities():
    # Equal maxima: the earliest wins.
    assert refine_cut([0.5, 0.8, 0.8]) == 2
    # p(Fail) == p(Pass) = 0.5 is not "Fail > Pass".
    assert refine_cut([0.5, 0.8]) == 2


def test_cut_with_explicit_fail_probs():
    # e.g. from a 4-way critic (pass + fail < 1): t_max = 2; token 1 has fail 0.4 > pass 0.35.
    assert refine_cut([0.3, 0.35, 0.6], [0.2, 0.4, 0.1]) == 1
    # Same pass probabilities, fail never above pass: cut at t_max.
    assert refine_cut([0.3, 0.35, 0.6], [0.2, 0.3, 0.1]) == 3


def test_cut_of_an_empty_program_is_zero():
    assert refine_cut(np.zeros(0)) == 0
    assert refine_cut([], []) == 0


@pytest.mark.parametrize("args, message", [
    (([[0.5, 0.5]],), r"pass_probs must be a vector \[T\]"),
    (([0.5, 1.5],), r"probabilities in \[0, 1\]"),
    (([0.5, np.nan],), r"probabilities in \[0, 1\]"),
    (([0.5, 0.5], [0.5]), r"fail_probs must have shape \(2,\)"),
])
def test_cut_input_errors(args, message):
    with pytest.raises(ValueError, match=message):
        refine_cut(*args)


# ------------------------------------------------------------------------------ split_count

@pytest.mark.parametrize("total, parts, expected", [
    (6, 3, [2, 2, 2]),
    (7, 3, [3, 2, 2]),
    (8, 3, [3, 3, 2]),
    (2, 4, [1, 1, 0, 0]),
    (0, 2, [0, 0]),
    (5, 1, [5]),
])
def test_split_count(total, parts, expected):
    assert split_count(total, parts) == expected
    assert sum(split_count(total, parts)) == total


@pytest.mark.parametrize("total, parts", [(3, 0), (-1, 2), (2.5, 2), (True, 2)])
def test_split_count_errors(total, parts):
    with pytest.raises(ValueError):
        split_count(total, parts)


# ------------------------------------------------------------------------------ plan: refine

def test_refine_plan_ranks_passing_programs_and_splits_counts():
    passed = [False, True, False, True]
    probs = [np.array([0.99, 0.99]),      # failed: ignored although it scores best
             np.array([0.6, 0.8, 0.7]),   # score 0.8, cut after t_max = 1 -> prefix 2
             np.array([0.1]),
             np.array([0.7, 0.4, 0.9])]   # score 0.9, fail at token 1 before t_max = 2 -> 1
    p = plan(passed, probs, num_samples=5, repair_top_m=2)
    # Rank: program 3 (0.9) then 1 (0.8); 5 = 3 + 2, remainder to the better seed.
    assert p == Plan(refine=(Seed(source=3, prefix_len=1, count=3),
                             Seed(source=1, prefix_len=2, count=2)))
    assert p.mode == "refine" and p.total == 5 and p.repair == ()


def test_refine_with_more_passing_programs_than_samples_keeps_the_best_n():
    passed = [True, True, True, True]
    probs = [np.array([0.6]), np.array([0.9]), np.array([0.7, 0.6]), np.array([0.9, 0.8])]
    p = plan(passed, probs, num_samples=2, repair_top_m=1)
    # Scores 0.6, 0.9, 0.7, 0.9: programs 1 and 3 tie at 0.9, the lower index first; 0 and
    # 2 get no sample and are dropped.
    assert p.refine == (Seed(1, 1, 1), Seed(3, 1, 1))
    assert p.total == 2


def test_refine_of_an_empty_passing_program_restarts_from_scratch():
    p = plan([True, True], [np.zeros(0), np.array([0.4, 0.8])], num_samples=3, repair_top_m=1)
    # The empty program scores -inf (last); program 1 cuts before token 0 (0.4 < 0.5).
    assert p.refine == (Seed(1, 0, 2), Seed(0, 0, 1))


def test_counts_always_sum_to_num_samples():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 8))
        n = int(rng.integers(1, 12))
        passed = list(rng.random(k) < 0.4)
        probs = [rng.random(int(rng.integers(0, 6))) for _ in range(k)]
        p = plan(passed, probs, n, int(rng.integers(1, 5)))
        assert p.total == n
        assert bool(p.refine) != bool(p.repair)
        assert all(s.count >= 1 for s in p.refine + p.repair)
        assert all(0 <= s.prefix_len <= len(probs[s.source]) for s in p.refine)


# ------------------------------------------------------------------------------ plan: repair

def test_repair_plan_takes_top_m_failed_programs_with_ties_by_index():
    probs = [np.array([0.2, 0.3]),   # 0.3
             np.array([0.6, 0.1]),   # 0.6
             np.array([0.1, 0.3]),   # 0.3 (ties with program 0)
             np.array([0.5])]        # 0.5
    p = plan([False] * 4, probs, num_samples=7, repair_top_m=3)
    # Rank 1 (0.6), 3 (0.5), 0 (0.3, lower index than 2); 7 = 3 + 2 + 2.
    assert p == Plan(repair=(RepairSeed(1, 3), RepairSeed(3, 2), RepairSeed(0, 2)))
    assert p.mode == "repair" and p.refine == ()
    p = plan([False] * 4, probs, num_samples=7, repair_top_m=4)
    assert p.repair == (RepairSeed(1, 2), RepairSeed(3, 2), RepairSeed(0, 2), RepairSeed(2, 1))


def test_repair_with_m_larger_than_f_uses_all_of_f():
    p = plan([False, False], [np.array([0.1]), np.array([0.2])], num_samples=4, repair_top_m=5)
    assert p.repair == (RepairSeed(1, 2), RepairSeed(0, 2))


def test_repair_with_m_larger_than_n_keeps_the_best_n():
    probs = [np.array([0.1]), np.array([0.3]), np.array([0.2])]
    p = plan([False] * 3, probs, num_samples=2, repair_top_m=3)
    assert p.repair == (RepairSeed(1, 1), RepairSeed(2, 1))


def test_repair_ranks_empty_programs_last():
    p = plan([False, False], [[], [0.0]], num_samples=2, repair_top_m=1)
    assert p.repair == (RepairSeed(1, 2),)


def test_explicit_scores_override_the_token_max():
    probs = [np.array([0.9]), np.array([0.1])]
    p = plan([False, False], probs, num_samples=3, repair_top_m=1, scores=[0.2, 0.7])
    assert p.repair == (RepairSeed(1, 3),)


def test_no_programs_gives_an_empty_plan():
    p = plan([], [], num_samples=4, repair_top_m=2)
    assert p == Plan() and p.mode == "none" and p.total == 0


def test_binary_default_equals_explicit_complement():
    probs = [np.array([0.6, 0.4, 0.7, 0.95]), np.array([0.3, 0.8])]
    fails = [1.0 - x for x in probs]
    assert plan([True, True], probs, 4, 1) == plan([True, True], probs, 4, 1, fail_probs=fails)
    assert plan([True, True], probs, 4, 1).refine[0] == Seed(0, 1, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(pass_probs=[[0.5]]), r"pass_probs must hold one array per program \(2\)"),
    (dict(fail_probs=[[0.5]]), r"fail_probs must hold one array per program \(2\)"),
    (dict(fail_probs=[[0.5], [0.5]]), r"fail_probs must have shape \(2,\)"),
    (dict(scores=[0.5]), r"scores must hold one value per program \(2\)"),
    (dict(scores=[0.5, np.nan]), "scores must not be NaN"),
    (dict(num_samples=0), "num_samples must be >= 1"),
    (dict(num_samples=2.0), "num_samples must be an integer"),
    (dict(repair_top_m=0), "repair_top_m must be >= 1"),
    (dict(passed=["yes", "no"]), "passed must hold booleans"),
    (dict(passed=[2, 0]), "passed must hold booleans"),
    (dict(pass_probs=[[0.5], [1.2, 0.3]]), r"probabilities in \[0, 1\]"),
])
def test_plan_input_errors(kwargs, message):
    args = dict(passed=[True, False], pass_probs=[[0.5], [0.2, 0.3]], num_samples=4,
                repair_top_m=2)
    with pytest.raises(ValueError, match=message):
        plan(**{**args, **kwargs})


def test_program_score_is_the_token_max():
    assert cs.program_score([0.2, 0.7, 0.4]) == 0.7
    assert cs.program_score([]) == float("-inf")
    assert cs.rank([0.3, 0.6, 0.3, float("-inf")]) == [1, 0, 2, 3]


def test_planning_and_returns_import_no_jax():
    code = ("import sys, coderl_jax.critic_sampling, coderl_jax.rl.returns; "
            "sys.exit('jax' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
