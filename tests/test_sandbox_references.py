"""Reference solutions of the real benchmarks pass (MBPP), and APPS verdicts equal a direct run.

Uses the benchmark copies in coderl_jax/data/benchmarks (its README gives the counts used here).
"""

import subprocess
import sys

import pytest

from coderl_jax import outcomes
from coderl_jax.data import loaders
from coderl_jax.sandbox import Executor, compare

# MBPP task 123 needs ~3-5 s of CPU by itself; on a loaded 2-core machine give it room.
TIMEOUT = 20.0
# Reference solutions that do not pass, with the reason. (None in this copy of MBPP.)
MBPP_EXCEPTIONS: dict[str, str] = {}
# APPS: with our rule (per-line strip, token-wise, float tolerant; no set fallback) the
# data README's "lenient" count. Its "strict" count (exact stripped stdout) is 1,072.
APPS_REFERENCE_PASSES = 1209


@pytest.fixture(scope="module")
def executor():
    with Executor(2, timeout=TIMEOUT) as ex:
        yield ex


@pytest.mark.parametrize("name", ["mbpp.jsonl", "sanitized-mbpp.json"])
def test_every_mbpp_reference_passes(benchmark_data, executor, name):
    problems = loaders.load_problems("mbpp", benchmark_data / "mbpp" / name)
    verdicts = executor.run([(p, p.solutions[0]) for p in problems])
    failures = {p.task_id: (v.outcome, v.error_type, v.detail)
                for p, v in zip(problems, verdicts) if not v.passed}
    assert set(failures) == set(MBPP_EXCEPTIONS), failures
    assert all(len(v.test_results) == len(p.hidden_tests) for p, v in zip(problems, verdicts))


def _direct_run(problem, code: str) -> bool:
    """The simplest possible judge: a fresh interpreter per test, stdout compared."""
    for test in problem.hidden_tests:
        try:
            proc = subprocess.run([sys.executable, "-c", code], input=test.input,
                                  capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return False
        if proc.returncode != 0 or not compare.stdout_matches(proc.stdout, test.expected):
            return False
    return True


def test_apps_references_match_a_direct_run(benchmark_data, executor):
    problems = loaders.load_problems("apps", benchmark_data / "apps" / "train.jsonl")
    jobs = [(p, s) for p in problems for s in p.solutions]
    assert len(jobs) == 1322
    verdicts = executor.run(jobs)
    assert not [v for v in verdicts if v.outcome == outcomes.INTERNAL_ERROR]
    assert sum(v.passed for v in verdicts) == APPS_REFERENCE_PASSES
    # Per-solution agreement with the direct run on a fixed subset of stdin/stdout ones.
    subset = [i for i, (p, _) in enumerate(jobs) if p.fn_name is None][::20]
    direct = [_direct_run(*jobs[i]) for i in subset]
    ours = [verdicts[i].passed for i in subset]
    assert ours == direct, [(jobs[i][0].task_id, verdicts[i]) for i, a, b in
                            zip(subset, ours, direct) if a != b]
    assert sum(direct) > 0 and not all(direct)  # the subset holds both kinds


def test_apps_call_based_references(benchmark_data, executor):
    problems = {p.task_id: p for p in
                loaders.load_problems("apps", benchmark_data / "apps" / "train.jsonl")}
    for task_id in ("2404", "4184"):  # LeetCode `class Solution`, Codewars function
        problem = problems[task_id]
        assert problem.fn_name and problem.hidden_tests[0].kind == "call"
        verdicts = executor.run([(problem, s) for s in problem.solutions])
        assert any(v.passed for v in verdicts), (task_id, verdicts[:3])
