"""pass@k, n@k and the report of coderl_jax.metrics against hand-computed values."""

import math
import random

import pytest

from coderl_jax import metrics
from coderl_jax.outcomes import (
    COMPILE_ERROR,
    FAILED_TEST,
    INTERNAL_ERROR,
    PASSED_TEST,
    RUNTIME_ERROR,
)


def closed_form(n, c, k):
    """pass@k = 1 - C(n-c, k) / C(n, k), with exact integers."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (10, 3, 1, 0.3),  # pass@1 is the fraction of correct samples
        (5, 1, 2, 0.4),  # 1 - C(4,2)/C(5,2) = 1 - 6/10
        (4, 2, 2, 5 / 6),  # 1 - C(2,2)/C(4,2) = 1 - 1/6
        (10, 8, 3, 1.0),  # n - c < k: every draw of 3 holds a correct sample
        (100, 0, 100, 0.0),
    ],
)
def test_pass_at_k_hand_cases(n, c, k, expected):
    assert metrics.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert metrics.pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12)


def test_pass_at_k_matches_binomial_formula_on_random_cases():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 200)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        assert metrics.pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-9)


def test_pass_at_k_rejects_bad_arguments():
    with pytest.raises(ValueError):
        metrics.pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        metrics.pass_at_k(5, 1, 6)
    with pytest.raises(ValueError):
        metrics.pass_at_k(5, 1, 0)


def rows_for(task_id, outcomes, start=0, error_types=None):
    error_types = error_types or [None] * len(outcomes)
    return [
        {"task_id": task_id, "sample_index": start + i, "outcome": o, "error_type": e}
        for i, (o, e) in enumerate(zip(outcomes, error_types))
    ]


def test_select_submissions_rule():
    # Example-passing samples first (in sample order), then the rest (in sample order).
    assert metrics.select_submissions([False, True, False, True, True], n=2, k=5) == [1, 3]
    assert metrics.select_submissions([False, True, False, True, True], n=2, k=3) == [1, 0]
    assert metrics.select_submissions([False, False, False], n=2, k=3) == [0, 1]
    with pytest.raises(ValueError):
        metrics.select_submissions([True], n=2, k=1)


def test_n_at_k_hand_built_case():
    P, F, R = PASSED_TEST, FAILED_TEST, RUNTIME_ERROR
    # Problem a: sample 2 passes the examples and the hidden tests -> 1@3 solved.
    # Problem b: sample 0 passes the examples but not the hidden tests, sample 1 would pass
    #   hidden but fails the examples -> 1@2 not solved, 2@2 solved (the rest fill the slots).
    # Problem c: nothing passes the examples; sample 0 passes hidden -> 1@k solved via fill-in.
    hidden = rows_for("a", [F, F, P]) + rows_for("b", [F, P, F]) + rows_for("c", [P, F, F])
    example = rows_for("a", [R, F, P]) + rows_for("b", [P, F, F]) + rows_for("c", [F, F, F])
    groups, ex_groups = metrics.group_by_task(hidden), metrics.group_by_task(example)
    assert metrics.n_at_k_by_task(groups, ex_groups, 1, 3) == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert metrics.n_at_k_by_task(groups, ex_groups, 1, 2) == {"a": 0.0, "b": 0.0, "c": 1.0}
    assert metrics.n_at_k_by_task(groups, ex_groups, 2, 2) == {"a": 0.0, "b": 1.0, "c": 1.0}
    report = metrics.evaluate(hidden, ks=[1, 3], n_at_k=[(1, 3), (2, 2)], example_rows=example)
    assert report["n@k"] == {"1@3": pytest.approx(200 / 3), "2@2": pytest.approx(200 / 3)}


def test_n_at_k_needs_matching_samples():
    hidden = rows_for("a", [PASSED_TEST, FAILED_TEST])
    example = rows_for("a", [PASSED_TEST])
    with pytest.raises(ValueError, match="'a'"):
        metrics.evaluate(hidden, ks=[1], n_at_k=[(1, 1)], example_rows=example)
    with pytest.raises(ValueError, match="no example results"):
        metrics.evaluate(hidden, ks=[1], n_at_k=[(1, 1)], example_rows=rows_for("b", ["x"]))


def test_k_larger_than_samples_names_the_problem():
    rows = rows_for("big", [PASSED_TEST] * 5) + rows_for("small", [FAILED_TEST] * 2)
    with pytest.raises(ValueError, match="'small'"):
        metrics.evaluate(rows, ks=[3])


def test_duplicate_sample_index_is_an_error():
    rows = rows_for("a", [PASSED_TEST]) + rows_for("a", [FAILED_TEST])
    with pytest.raises(ValueError, match="sample_index 0"):
        metrics.group_by_task(rows)


def test_report_by_difficulty_outcomes_and_internal_errors():
    C, R, F, P, IE = COMPILE_ERROR, RUNTIME_ERROR, FAILED_TEST, PASSED_TEST, INTERNAL_ERROR
    rows = (
        rows_for("1", [P, F, F, F], error_types=[None, None, None, None])
        + rows_for("2", [C, R, IE, P], start=4,
                   error_types=["syntaxerror", "indexerror", None, None])
        + rows_for("3", [R, R, C, F], start=8,
                   error_types=["indexerror", "timeoutexception", "syntaxerror", None])
    )
    difficulties = {"1": "interview", "2": "introductory", "3": "interview"}
    report = metrics.evaluate(rows, ks=[1, 2], difficulties=difficulties)
    # pass@1 per problem: 1/4, 1/4, 0 -> mean 1/6.
    assert report["pass@1"] == pytest.approx(100 / 6)
    # pass@2: problem 1: 1 - C(3,2)/C(4,2) = 1/2; problem 2: same (the InternalError is not a
    # pass); problem 3: 0 -> mean 1/3.
    assert report["pass@2"] == pytest.approx(100 / 3)
    assert list(report["by_difficulty"]) == ["introductory", "interview"]
    assert report["by_difficulty"]["interview"]["pass@1"] == pytest.approx(12.5)
    assert report["by_difficulty"]["interview"]["num_problems"] == 2
    assert report["by_difficulty"]["introductory"]["pass@2"] == pytest.approx(50.0)
    assert report["num_problems"] == 3 and report["num_samples"] == 12
    assert report["outcomes"] == {C: 2, R: 3, F: 4, P: 2, IE: 1}
    assert report["num_internal_errors"] == 1
    assert report["error_types"] == {
        C: {"syntaxerror": 2},
        R: {"indexerror": 2, "timeoutexception": 1},
    }
    table = metrics.markdown_table(report)
    assert table.splitlines()[0] == "| difficulty | problems | pass@1 | pass@2 |"
    assert table.splitlines()[-1] == "| All | 3 | 16.67 | 33.33 |"
    with pytest.raises(ValueError, match="not in the problems data set"):
        metrics.evaluate(rows, ks=[1], difficulties={"1": "interview"})
