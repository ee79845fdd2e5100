"""`coderl execute` end to end, its errors, and that it never imports JAX."""

import json
import subprocess
import sys
import time

import pytest

from coderl_jax import cli, metrics
from coderl_jax.data import jsonl

TASKS = ("2", "3", "4")  # MBPP tasks present in the packaged copy


@pytest.fixture(scope="module")
def mbpp(benchmark_data):
    return benchmark_data / "mbpp" / "mbpp.jsonl"


def _references(mbpp):
    refs = {}
    for line in open(mbpp):
        r = json.loads(line)
        if str(r["task_id"]) in TASKS:
            refs[str(r["task_id"])] = r["code"]
    return refs


def _samples(tmp_path, mbpp):
    refs = _references(mbpp)
    rows = [
        {"task_id": 2, "code": refs["2"]},                      # passes
        {"task_id": "3", "code": "def is_not_prime(n):\n    return 0\n"},  # fails
        {"task_id": 4, "code": "def heap_queue_largest(:"},      # compile error
        {"task_id": 3, "code": refs["3"]},                      # passes
        {"task_id": 4, "code": "import os\nos._exit(0)"},        # exits early
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_execute_end_to_end(tmp_path, mbpp, capsys):
    out = tmp_path / "results.jsonl"
    argv = ["execute", "--dataset", "mbpp", "--data", str(mbpp), "--samples",
            str(_samples(tmp_path, mbpp)), "--out", str(out), "--workers", "2",
            "--timeout", "5", "--no-progress"]
    assert cli.main(argv) == 0
    results = jsonl.read_results(out)  # validates the format too
    assert [(r["task_id"], r["sample_index"], r["outcome"], r["error_type"]) for r in results] \
        == [("2", 0, "PassedTest", None), ("3", 1, "FailedTest", None),
            ("4", 2, "CompileError", "syntaxerror"), ("3", 3, "PassedTest", None),
            ("4", 4, "RuntimeError", "systemexit")]
    assert results[0]["test_results"] == [True, True, True] and results[0]["reward"] == 1.0
    table = capsys.readouterr().out
    assert "PassedTest" in table and "InternalError        0" in table
    assert "wrote 5 results" in table


def test_task_ids_keep_the_type_the_samples_file_gave_them(tmp_path, mbpp, capsys):
    """MBPP's own ids are ints: a results file repeats each id as written (int stays int,
    str stays str), and `coderl evaluate` groups both spellings as one problem."""
    refs = _references(mbpp)
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in [
        {"task_id": 2, "code": refs["2"]},
        {"task_id": "2", "code": "def similar_elements(a, b):\n    return ()\n"},
        {"task_id": 3, "code": refs["3"]},
    ]))
    out = tmp_path / "r.jsonl"
    assert cli.main(["execute", "--dataset", "mbpp", "--data", str(mbpp), "--samples",
                     str(samples), "--out", str(out), "--workers", "2",
                     "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    raw = [r["task_id"] for r in rows]
    assert raw == [2, "2", 3] and [type(t) for t in raw] == [int, str, int]
    assert [r["task_id"] for r in jsonl.read_results(out)] == ["2", "2", "3"]
    # The raw rows (what execute_file returns to the demo) group by the string id too.
    assert list(metrics.group_by_task(rows)) == ["2", "3"]
    summary = tmp_path / "summary.json"
    assert cli.main(["evaluate", "--results", str(out), "--k", "1", "--json", str(summary),
                     "--problems-dataset", "mbpp", "--data", str(mbpp)]) == 0
    report = json.loads(summary.read_text())
    assert report["num_problems"] == 2 and report["num_samples"] == 3
    assert report["pass@1"] == 75.0  # task 2: 1 of 2 samples, task 3: 1 of 1


def test_stop_at_first_failure_and_example_tests(tmp_path, mbpp):
    out = tmp_path / "r.jsonl"
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": 3, "code": "def is_not_prime(n):\n    return None"})
                       + "\n")
    assert cli.main(["execute", "--dataset", "mbpp", "--data", str(mbpp), "--samples",
                     str(samples), "--out", str(out), "--tests", "example",
                     "--stop-at-first-failure", "--no-progress"]) == 0
    (result,) = jsonl.read_results(out)
    assert result["test_results"] == [False]


def test_unknown_task_id_names_samples_file_and_line(tmp_path, mbpp):
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": 2, "code": "x"}) + "\n" +
                       json.dumps({"task_id": 411, "code": "x"}) + "\n")
    with pytest.raises(jsonl.JsonlError, match=rf"{samples}:2: unknown task_id '411'"):
        cli.main(["execute", "--dataset", "mbpp", "--data", str(mbpp), "--samples",
                  str(samples), "--out", str(tmp_path / "r.jsonl"), "--no-progress"])
    assert not (tmp_path / "r.jsonl").exists()


def test_bad_samples_line_fails_before_running(tmp_path, mbpp):
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": 2, "code": "x"}\n{"task_id": 2 "code": "x"}\n')
    with pytest.raises(jsonl.JsonlError, match=rf"{samples}:2: invalid JSON"):
        cli.main(["execute", "--dataset", "mbpp", "--data", str(mbpp), "--samples",
                  str(samples), "--out", str(tmp_path / "r.jsonl"), "--no-progress"])


def test_humaneval_completions(tmp_path):
    from coderl_jax.data import loaders

    problem = loaders.load_problems("humaneval")[0]
    canonical = problem.solutions[0][len(problem.question):]
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": problem.task_id, "completion": canonical}) + "\n"
                       + json.dumps({"task_id": problem.task_id, "completion": "    return 0\n"})
                       + "\n" + json.dumps({"task_id": problem.task_id,
                                            "code": problem.solutions[0]}) + "\n")
    out = tmp_path / "r.jsonl"
    assert cli.main(["execute", "--dataset", "humaneval", "--samples", str(samples),
                     "--out", str(out), "--no-progress"]) == 0
    # `return 0` is a wrong answer: check()'s assert fails in the worker (a FailedTest).
    assert [r["outcome"] for r in jsonl.read_results(out)] == [
        "PassedTest", "FailedTest", "PassedTest"]


def test_execute_never_imports_jax_and_starts_fast(tmp_path, mbpp):
    out = tmp_path / "r.jsonl"
    code = (
        "import sys, time\n"
        "t = time.monotonic()\n"
        "from coderl_jax.cli import main\n"
        f"main(['execute', '--dataset', 'mbpp', '--data', {str(mbpp)!r}, '--samples', "
        f"{str(_samples(tmp_path, mbpp))!r}, '--out', {str(out)!r}, '--no-progress'])\n"
        "heavy = [m for m in ('jax', 'flax', 'numpy', 'torch', 'transformers') "
        "if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    elapsed = time.monotonic() - start
    assert "HEAVY=\n" in proc.stdout, proc.stdout
    # Five programs, whole command with interpreter and pool start-up; generous for CI.
    assert elapsed < 5.0, elapsed
