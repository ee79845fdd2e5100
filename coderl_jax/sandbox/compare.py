"""Judging a test's output: the stdout rule, the call-result rule, and value transport.

Runs in the trusted worker process, never in the child that ran the program: the child
only ever sees test *inputs*, so a program cannot read the expected outputs from its own
memory, and cannot influence a comparison (no `__eq__` of its objects is ever called here).

Stdout rule (stdin/stdout tests), APPS semantics minus its unsound fallback:

1. Both texts are split into lines, each line is stripped of surrounding whitespace, and
   empty lines are dropped. Equal line lists pass.
2. Otherwise each line is split on whitespace; the outputs pass when they have the same
   number of lines, each line the same number of tokens, and every token pair is either
   equal as strings or both parse as finite floats with |a - b| <= 1e-8 + 1e-5 * |b|
   (numpy.allclose's default tolerance, which APPS uses).
3. Nothing else passes. In particular APPS' last fallback, comparing the *sets* of tokens
   (order and multiplicity ignored), is NOT applied: it accepts "2 1" for "1 2" and
   "1 1 2" for "1 2", so it would reward wrong programs under RL.

Call rule (APPS `fn_name` tests): tuples are compared as lists (recursively, as APPS converts
them); the result passes when it equals the expected value, or when the expected value is a
one-element list holding the result (APPS stores many expected outputs wrapped that way).
APPS/CodeRL's testing_util also accepts `expected[0]` when `expected` is a longer list, which
passes a program that returns only the first element; that is not done here.

Assert rule (`assert EXPR == LITERAL`, split by executor.build_job): Python `==` between the
decoded value of EXPR and the literal, both plain built-in objects.

Values cross the process boundary as Python literal text (see `runner.encode_value`), and
are decoded here with `ast.literal_eval`, which builds only plain built-in objects. The same
goes for the answers to the calls of tests the worker runs itself (worker_tests.py): their
test code only ever sees decoded plain values.
"""

from __future__ import annotations

import ast
import math

# numpy.allclose defaults, which APPS' testing_util relies on for float outputs.
REL_TOL = 1e-5
ABS_TOL = 1e-8


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _as_float(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tokens_match(got: str, want: str) -> bool:
    if got == want:
        return True
    a, b = _as_float(got), _as_float(want)
    return a is not None and b is not None and abs(a - b) <= ABS_TOL + REL_TOL * abs(b)


def stdout_matches(got: str, expected: str) -> bool:
    """Whether program output `got` is accepted for `expected` (rule in the module doc)."""
    got_lines, want_lines = _lines(got), _lines(expected)
    if got_lines == want_lines:
        return True
    if len(got_lines) != len(want_lines):
        return False
    for got_line, want_line in zip(got_lines, want_lines):
        got_tokens, want_tokens = got_line.split(), want_line.split()
        if len(got_tokens) != len(want_tokens):
            return False
        if not all(_tokens_match(g, w) for g, w in zip(got_tokens, want_tokens)):
            return False
    return True


def _tuples_to_lists(value):
    if isinstance(value, (list, tuple)):
        return [_tuples_to_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _tuples_to_lists(v) for k, v in value.items()}
    return value


def call_result_matches(got, expected) -> bool:
    """Whether a decoded call result `got` is accepted for the APPS `expected` value."""
    got = _tuples_to_lists(got)
    expected = _tuples_to_lists(expected)
    if got == expected:
        return True
    return isinstance(expected, list) and len(expected) == 1 and got == expected[0]


class UndecodableValue(ValueError):
    """The child sent something that is not a plain Python literal."""


def decode_value(text: str):
    """Inverse of `runner.encode_value`; raises UndecodableValue on anything else."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise UndecodableValue(f"not a plain literal ({type(e).__name__})") from None
