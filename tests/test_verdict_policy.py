"""One verdict policy for labels and returns (issue 19, fix 1).

A program that fails test 1 and raises on test 7 is FailedTest under the default policy
("first_failure") in `coderl execute`, in the critic's training labels and in RL's judging;
other policies are recorded in the results file and a mismatch is a clear error.
"""

import json

import pytest

from coderl_jax import cli, outcomes
from coderl_jax.data import jsonl, synthetic
from coderl_jax.data.problem import Problem
from coderl_jax.data.problem import Test as UnitTest
from coderl_jax.rl import stage
from coderl_jax.rl.config import RLConfig
from coderl_jax.training import labelled

# Test 1 expects a wrong answer (fails); input 7 raises; the others pass.
PROGRAM = "n = int(input())\nif n == 7:\n    raise ValueError(n)\nprint(n)\n"
TESTS = (UnitTest("stdio", "1\n", "999\n"),
         *(UnitTest("stdio", f"{i}\n", f"{i}\n") for i in range(2, 9)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("verdict")
    problem = Problem(task_id="p0", question="Print n.", starter_code="", fn_name=None,
                      example_tests=(), hidden_tests=TESTS, difficulty="level1",
                      solutions=("print(int(input()))\n",))
    data = root / "problems.jsonl"
    synthetic.save_problems([problem], data)
    samples = root / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "p0", "code": PROGRAM}) + "\n")
    return root, data, samples, problem


def _execute(root, data, samples, name, *extra):
    out = root / f"{name}.jsonl"
    argv = ["execute", "--dataset", "synthetic", "--data", str(data), "--samples",
            str(samples), "--out", str(out), "--workers", "1", "--timeout", "5",
            "--no-progress", *extra]
    assert cli.main(argv) == 0
    return out


def test_same_outcome_in_execute_critic_labels_and_rl(files):
    root, data, samples, problem = files
    results = _execute(root, data, samples, "default")
    (record,) = jsonl.read_results(results)
    assert record["outcome"] == outcomes.FAILED_TEST
    assert record["verdict_policy"] == outcomes.DEFAULT_VERDICT_POLICY == "first_failure"

    # The critic's / repair model's labels: read with the critic's default policy.
    (sample,), _ = labelled.read_labelled_samples(
        samples, results, {"p0": problem}, verdict_policy=outcomes.DEFAULT_VERDICT_POLICY)
    assert sample.outcome == outcomes.FAILED_TEST

    # RL judges with its resolved policy's sandbox flag (rollout.Rollout._submit).
    from coderl_jax.sandbox import Executor

    cfg = RLConfig()
    assert cfg.policy == outcomes.DEFAULT_VERDICT_POLICY
    with Executor(1, timeout=5) as ex:
        (verdict,) = ex.run([(problem, PROGRAM)],
                            stop_at_first_failure=outcomes.stops_at_first_failure(cfg.policy))
    assert verdict.outcome == outcomes.FAILED_TEST
    assert verdict.reward == outcomes.RETURNS[outcomes.FAILED_TEST]


def test_all_tests_policy_is_recorded_and_mismatch_fails(files):
    root, data, samples, problem = files
    results = _execute(root, data, samples, "all", "--verdict-policy", "all_tests")
    (record,) = jsonl.read_results(results)
    assert record["outcome"] == outcomes.RUNTIME_ERROR
    assert record["verdict_policy"] == "all_tests"
    with pytest.raises(ValueError, match="verdict policy 'all_tests' but 'first_failure'"):
        labelled.read_labelled_samples(samples, results, {"p0": problem},
                                       verdict_policy="first_failure")
    notes = []
    (sample,), _ = labelled.read_labelled_samples(
        samples, results, {"p0": problem}, verdict_policy="first_failure",
        allow_verdict_policy_mismatch=True, log=notes.append)
    assert sample.outcome == outcomes.RUNTIME_ERROR and "override" in notes[0]


def test_rl_start_checks_the_critics_policy(tmp_path):
    critic = tmp_path / "critic"
    critic.mkdir()
    (critic / outcomes.VERDICT_POLICY_FILE).write_text('{"verdict_policy": "all_tests"}')
    with pytest.raises(ValueError, match="critic .* judged with verdict policy 'all_tests'"):
        stage.check_critic_policy(str(critic), RLConfig(), print)
    notes = []
    stage.check_critic_policy(str(critic), RLConfig(allow_verdict_policy_mismatch=True),
                              notes.append)
    assert "override" in notes[0]
    stage.check_critic_policy(str(critic), RLConfig(verdict_policy="all_tests"), print)


def test_rl_config_resolves_the_policy():
    assert RLConfig(reward="partial").policy == "all_tests"
    with pytest.raises(ValueError, match="needs verdict_policy 'all_tests'"):
        RLConfig(reward="partial", verdict_policy="first_failure")
    with pytest.raises(ValueError, match="unknown verdict policy"):
        RLConfig(verdict_policy="some")
