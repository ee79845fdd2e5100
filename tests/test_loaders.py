"""Loaders read the published files unchanged into Problems; bad files fail naming the place."""

import gzip
import json

import pytest

from coderl_jax.data import loaders
from coderl_jax.data.example_tests import extract_example_tests
from coderl_jax.data.jsonl import JsonlError


def test_mbpp_jsonl(benchmark_data):
    problems = loaders.load_problems("mbpp", benchmark_data / "mbpp" / "mbpp.jsonl")
    assert len(problems) == 874
    by_id = {p.task_id: p for p in problems}
    p = by_id["2"]
    assert p.source == "mbpp" and p.question.startswith("Write a function")
    assert [t.kind for t in p.hidden_tests] == ["assert"] * 3
    assert p.example_tests == p.hidden_tests  # shown in the prompt, as in the paper
    assert p.hidden_tests[0].input.startswith("assert ")
    assert "\r\n" in p.solutions[0]  # the reference is kept byte for byte
    assert by_id["367"].test_setup and by_id["927"].test_setup
    assert sum(bool(q.test_setup) for q in problems) == 2


def test_mbpp_sanitized(benchmark_data):
    problems = loaders.load_problems("mbpp", benchmark_data / "mbpp" / "sanitized-mbpp.json")
    assert len(problems) == 364
    with_imports = [p for p in problems if p.test_setup]
    assert with_imports and all("import" in p.test_setup for p in with_imports)


def test_apps_jsonl(benchmark_data):
    problems = loaders.load_problems("apps", benchmark_data / "apps" / "train.jsonl")
    assert len(problems) == 84
    assert sum(len(p.solutions) for p in problems) == 1322
    by_id = {p.task_id: p for p in problems}
    assert {p.task_id for p in problems if p.fn_name} == {"2404", "4184"}
    assert len(by_id["4184"].hidden_tests) == 8 and by_id["4184"].hidden_tests[0].kind == "call"
    assert len(by_id["2287"].hidden_tests) == 3 and by_id["2287"].difficulty == "competition"
    assert by_id["2404"].starter_code.startswith("class Solution")
    assert all(t.kind == "stdio" and isinstance(t.input, str)
               for t in by_id["1"].hidden_tests)
    # No example-test file given: the examples are extracted from the statement.
    assert by_id["1"].example_tests == extract_example_tests(by_id["1"].question)
    assert len(by_id["1"].example_tests) >= 1
    assert by_id["1"].example_tests[0].input == by_id["1"].hidden_tests[0].input


def test_apps_example_tests_file(benchmark_data):
    examples = loaders.load_apps_example_tests(benchmark_data / "apps" / "test_example_tests.jsonl")
    assert len(examples) == 5000
    present = [v for v in examples.values() if v is not None]
    assert len(present) == 4937 and sum(len(v["inputs"]) for v in present) == 9882


def _write_apps_folder(root, example=True):
    p = root / "0007"
    p.mkdir(parents=True)
    (p / "question.txt").write_text("Add two numbers.")
    (p / "solutions.json").write_text(json.dumps(["print(sum(map(int, input().split())))"]))
    (p / "input_output.json").write_text(json.dumps({"inputs": ["1 2\n", ["3 4"]],
                                                     "outputs": ["3\n", ["7"]]}))
    (p / "metadata.json").write_text(json.dumps({"difficulty": "interview", "url": "u"}))
    if example:
        (p / "example_input_output.json").write_text(json.dumps({"inputs": ["1 2\n"],
                                                                 "outputs": ["3\n"]}))
    q = root / "0008"
    q.mkdir()
    (q / "question.txt").write_text("Call f.")
    (q / "starter_code.py").write_text("def f(x):\n")
    (q / "input_output.json").write_text(json.dumps({"fn_name": "f", "inputs": [[1]],
                                                     "outputs": [[2]]}))
    return root


def test_apps_folder_layout(tmp_path):
    problems = loaders.load_problems("apps", _write_apps_folder(tmp_path))
    a, b = problems
    assert (a.task_id, a.difficulty, a.solutions) == ("7", "interview", (
        "print(sum(map(int, input().split())))",))
    assert [(t.kind, t.input, t.expected) for t in a.hidden_tests] == [
        ("stdio", "1 2\n", "3\n"), ("stdio", "3 4", "7")]  # lists of lines are joined
    assert [(t.input, t.expected) for t in a.example_tests] == [("1 2\n", "3\n")]
    assert (b.fn_name, b.starter_code, b.solutions) == ("f", "def f(x):\n", ())
    assert [(t.kind, t.input, t.expected) for t in b.hidden_tests] == [("call", [1], [2])]


def test_apps_examples_from_separate_file(tmp_path):
    root = _write_apps_folder(tmp_path / "apps", example=False)
    examples = tmp_path / "ex.jsonl"
    examples.write_text(json.dumps({"problem_id": 8, "example_input_output": {
        "inputs": [[5]], "outputs": [[6]]}}) + "\n")
    problems = loaders.load_problems("apps", root, example_tests=examples)
    assert problems[0].example_tests == ()
    assert [(t.kind, t.input) for t in problems[1].example_tests] == [("call", [5])]


def test_humaneval_from_the_package():
    problems = loaders.load_problems("humaneval")
    assert len(problems) == 164
    p = problems[0]
    assert p.task_id == "HumanEval/0" and p.question.startswith("from typing import List")
    assert [t.input for t in p.hidden_tests] == [f"check({p.fn_name})"]
    assert "def check(candidate)" in p.test_setup
    assert p.solutions[0].startswith(p.question)


def test_humaneval_custom_path(tmp_path):
    path = tmp_path / "he.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"task_id": "X/1", "prompt": "def f():\n", "entry_point": "f",
                            "canonical_solution": "    return 1\n",
                            "test": "def check(c):\n    assert c() == 1\n"}) + "\n")
    (p,) = loaders.load_problems("humaneval", path)
    assert p.solutions == ("def f():\n    return 1\n",)


def test_unknown_dataset_and_missing_path():
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        loaders.load_problems("nope", "x")
    with pytest.raises(ValueError, match="needs a path"):
        loaders.load_problems("mbpp")


@pytest.mark.parametrize("dataset,lines,message", [
    ("mbpp", ['{"task_id": 1, "text": "t", "code": "c", "test_list": []}', "{bad json"],
     ":2: invalid JSON"),
    ("mbpp", ['{"task_id": 1, "text": "t", "test_list": []}'], ":1: missing field 'code'"),
    ("apps", ['{"problem_id": 1, "question": "q", "input_output": "{"}'],
     ":1: field 'input_output' is not valid JSON"),
    ("apps", ['{"question": "q"}'], ":1: missing field 'problem_id'"),
    ("humaneval", ['{"task_id": "a", "prompt": "p", "test": "t"}'],
     ":1: missing field 'entry_point'"),
    ("apps", ['[1, 2]'], ":1: expected a JSON object"),
])
def test_malformed_files_name_file_and_line(tmp_path, dataset, lines, message):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(JsonlError) as err:
        loaders.load_problems(dataset, path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_duplicate_task_ids_are_an_error(tmp_path):
    path = tmp_path / "d.jsonl"
    row = json.dumps({"task_id": 1, "text": "t", "code": "c", "test_list": []})
    path.write_text(row + "\n" + row + "\n")
    with pytest.raises(ValueError, match="duplicate task_id '1'"):
        loaders.load_problems("mbpp", path)


def test_synthetic_is_dispatched_lazily(monkeypatch):
    import sys
    import types

    from coderl_jax.data.problem import Problem

    calls = []
    fake = types.ModuleType("coderl_jax.data.synthetic")
    fake.load_problems = lambda path: calls.append(path) or [Problem("s1", "q")]
    monkeypatch.setitem(sys.modules, "coderl_jax.data.synthetic", fake)
    import coderl_jax.data as data_pkg
    monkeypatch.setattr(data_pkg, "synthetic", fake, raising=False)
    assert loaders.load_problems("synthetic", None) == [Problem("s1", "q")]
    assert calls == [None]
