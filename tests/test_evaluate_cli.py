"""`coderl evaluate` end to end on hand-made results files with hand-computed numbers."""

import json
import subprocess
import sys

import pytest

from coderl_jax import cli
from coderl_jax.data import synthetic
from coderl_jax.outcomes import COMPILE_ERROR, FAILED_TEST, PASSED_TEST, RETURNS, RUNTIME_ERROR

C, R, F, P = COMPILE_ERROR, RUNTIME_ERROR, FAILED_TEST, PASSED_TEST
ERROR_TYPE = {C: "syntaxerror", R: "indexerror", F: None, P: None}
TEST_RESULT = {C: -2, R: -1, F: False, P: True}

# Three problems (difficulty level1/2/3), four samples each, sample_index 0..11.
HIDDEN = {0: [P, F, P, C], 1: [F, F, F, R], 2: [R, P, F, F]}
EXAMPLE = {0: [F, P, P, F], 1: [F, F, F, F], 2: [P, P, F, F]}


def write_results(path, outcomes_by_problem, task_ids):
    rows = []
    for p, outcomes in outcomes_by_problem.items():
        for i, outcome in enumerate(outcomes):
            rows.append({
                "task_id": task_ids[p], "sample_index": 4 * p + i, "outcome": outcome,
                "error_type": ERROR_TYPE[outcome], "test_results": [TEST_RESULT[outcome]],
                "reward": RETURNS[outcome],
            })
    # Interleave problems: grouping must not depend on the file order.
    rows.sort(key=lambda r: (r["sample_index"] % 4, r["sample_index"]))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


@pytest.fixture
def files(tmp_path):
    problems = synthetic.generate_problems("test", 3, seed=0)
    assert [p.difficulty for p in problems] == ["level1", "level2", "level3"]
    synthetic.save_problems(problems, tmp_path / "problems.jsonl")
    task_ids = [p.task_id for p in problems]
    write_results(tmp_path / "hidden.jsonl", HIDDEN, task_ids)
    write_results(tmp_path / "example.jsonl", EXAMPLE, task_ids)
    return tmp_path


def test_evaluate_end_to_end(files, capsys):
    out_json = files / "report" / "out.json"
    code = cli.main([
        "evaluate", "--results", str(files / "hidden.jsonl"),
        "--example-results", str(files / "example.jsonl"),
        "--k", "1,2,4", "--n", "1,2", "--json", str(out_json), "--plots", str(files / "plots"),
        "--problems-dataset", "synthetic", "--data", str(files / "problems.jsonl"),
    ])
    assert code == 0
    report = json.loads(out_json.read_text())
    # pass@1 per problem: 2/4, 0, 1/4. pass@2: 1 - C(2,2)/C(4,2) = 5/6, 0, 1 - C(3,2)/C(4,2)
    # = 1/2. pass@4: 1, 0, 1.
    assert report["pass@1"] == pytest.approx(100 * 0.75 / 3)
    assert report["pass@2"] == pytest.approx(100 * (5 / 6 + 0.5) / 3)
    assert report["pass@4"] == pytest.approx(200 / 3)
    # n@k, ranking example-passing samples first:
    #   problem 0 ranks samples [1, 2, 0, 3] (k=4) / [1, 0] (k=2); problem 2 ranks [0, 1, ...].
    #   1@1: sample 0 of each: P, F, R -> 1/3.  1@2 and 1@4: samples 1 (F), -, 0 (R) -> 0.
    #   2@2: {1, 0} -> P; {0, 1} -> P -> 2/3.   2@4: {1, 2} -> P; {0, 1} -> P -> 2/3.
    assert report["n@k"] == pytest.approx(
        {"1@1": 100 / 3, "1@2": 0.0, "1@4": 0.0, "2@2": 200 / 3, "2@4": 200 / 3})
    assert report["num_problems"] == 3 and report["num_samples"] == 12
    assert list(report["by_difficulty"]) == ["level1", "level2", "level3"]
    level1 = report["by_difficulty"]["level1"]
    assert level1["pass@2"] == pytest.approx(500 / 6) and level1["n@k"]["2@4"] == 100.0
    assert report["outcomes"] == {C: 1, R: 2, F: 6, P: 3, "InternalError": 0}
    assert report["error_types"] == {C: {"syntaxerror": 1}, R: {"indexerror": 2}}

    out = capsys.readouterr().out
    header = "| difficulty | problems | pass@1 | pass@2 | pass@4 | 1@1 | 1@2 | 1@4 | 2@2 | 2@4 |"
    assert header in out
    assert "| level2 | 1 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 |" in out
    assert "| All | 3 | 25.00 | 44.44 | 66.67 | 33.33 | 0.00 | 0.00 | 66.67 | 66.67 |" in out
    for name in ("pass_at_k.png", "outcomes.png", "error_types.png"):
        data = (files / "plots" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_default_k_and_k_too_large(files, capsys):
    assert cli.main(["evaluate", "--results", str(files / "hidden.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "--k not given: using k=1" in out
    assert "| All | 3 | 25.00 |" in out
    assert cli.main(["evaluate", "--results", str(files / "hidden.jsonl"), "--k", "1,5"]) == 2
    err = capsys.readouterr().err
    assert "k=5" in err and "synthetic/test/0" in err


@pytest.mark.parametrize(
    "bad_line, what",
    [
        ({"task_id": "a", "sample_index": 1, "outcome": "Passed", "error_type": None,
          "test_results": [True], "reward": 1.0}, "Passed"),
        ({"task_id": "a", "sample_index": 1, "error_type": None, "test_results": [True],
          "reward": 1.0}, "outcome"),
    ],
    ids=["unknown-outcome", "missing-field"],
)
def test_bad_results_file_names_file_and_line(tmp_path, capsys, bad_line, what):
    good = {"task_id": "a", "sample_index": 0, "outcome": P, "error_type": None,
            "test_results": [True], "reward": 1.0}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad_line) + "\n")
    assert cli.main(["evaluate", "--results", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and what in err
    assert ":2" in err or "line 2" in err


def test_evaluate_run_does_not_import_jax(files):
    code = (
        "import sys\n"
        "from coderl_jax.cli import main\n"
        f"rc = main(['evaluate', '--results', {str(files / 'hidden.jsonl')!r},"
        f" '--plots', {str(files / 'plots')!r}])\n"
        "heavy = [m for m in ('jax', 'flax', 'transformers', 'torch') if m in sys.modules]\n"
        "print('HEAVY', rc, ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY 0"
