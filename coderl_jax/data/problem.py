"""The one in-memory problem type shared by loaders, prompts, the sandbox and the metrics.

Pure Python (no JAX, no numpy) so the sandbox and the fast CLI commands can import it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# Test kinds. Each `Test` is run by the sandbox according to its kind:
#   "stdio":  `input` is the text given on standard input, `expected` the expected standard
#             output (compared with the documented APPS-style rule of the sandbox).
#   "call":   `input` is the list of positional arguments for `Problem.fn_name`, `expected`
#             the expected return value (JSON-compatible, as in APPS `input_output`).
#   "assert": `input` is Python source run after the program (MBPP asserts, or a HumanEval
#             `check(entry_point)` call); it passes when it runs to the end; `expected` is None.
TEST_KINDS: tuple[str, ...] = ("stdio", "call", "assert")


def stdio_text(value: Any) -> str:
    """A stdin/stdout test value as text: APPS stores some as lists of lines (joined here)."""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return value if isinstance(value, str) else str(value)


@dataclasses.dataclass(frozen=True)
class Test:
    """One unit test of a problem (see TEST_KINDS for what `input`/`expected` hold)."""

    kind: str
    input: Any
    expected: Any = None

    def __post_init__(self):
        if self.kind not in TEST_KINDS:
            raise ValueError(f"unknown test kind {self.kind!r}; expected one of {TEST_KINDS}")


@dataclasses.dataclass(frozen=True)
class Problem:
    """A program-synthesis problem.

    Attributes:
      task_id: identifier, always a string (APPS/MBPP integer ids are stringified, so a
        samples file may use either `2` or `"2"`).
      question: the natural-language statement (HumanEval: the prompt, i.e. signature and
        docstring, which the completion continues).
      starter_code: code the answer starts from (APPS call-based problems), may be "".
      fn_name: the function called by "call" tests (APPS), else None.
      example_tests: tests visible in the statement (used by n@k and critic sampling).
      hidden_tests: the tests that judge a program (pass@k).
      difficulty: "introductory" / "interview" / "competition" (APPS), "level1".. (synthetic),
        or "unknown".
      solutions: reference programs.
      test_setup: code run after the program and before the tests (MBPP `test_setup_code` or
        sanitized `test_imports`; HumanEval `test`, which defines `check`).
      source: the benchmark it came from: "apps", "mbpp", "humaneval" or "synthetic".
    """

    task_id: str
    question: str
    starter_code: str = ""
    fn_name: str | None = None
    example_tests: tuple[Test, ...] = ()
    hidden_tests: tuple[Test, ...] = ()
    difficulty: str = "unknown"
    solutions: tuple[str, ...] = ()
    test_setup: str = ""
    source: str = ""

    def tests(self, which: str) -> tuple[Test, ...]:
        """The "hidden" or "example" tests."""
        if which == "hidden":
            return self.hidden_tests
        if which == "example":
            return self.example_tests
        raise ValueError(f"unknown test set {which!r}; expected 'hidden' or 'example'")
