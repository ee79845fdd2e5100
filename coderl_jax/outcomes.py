"""Execution outcomes, their returns and error subtypes: stated once, used everywhere.

The paper (CodeRL, Le et al. 2022, Sec. 3.2 and Table 11) gives four outcomes per program and
a return for each. The sandbox produces them, the critic learns them (as class indices), the RL
loss turns them into returns, and the metrics count them. No module repeats these literals.

This module is pure Python with no third-party imports so that the sandbox (which must never
import JAX) and the fast CLI commands can use it.
"""

from __future__ import annotations

# Order matters: it is the class index of the 4-way critic.
OUTCOMES: tuple[str, ...] = ("CompileError", "RuntimeError", "FailedTest", "PassedTest")
COMPILE_ERROR, RUNTIME_ERROR, FAILED_TEST, PASSED_TEST = OUTCOMES

# Classes of the binary critic used at inference (critic sampling).
BINARY_OUTCOMES: tuple[str, ...] = (FAILED_TEST, PASSED_TEST)

# A sample the executor could not judge (a bug or resource failure of the harness itself,
# not of the program). It is reported, never counted as a pass, and carries no return:
# training code must drop it explicitly, evaluation counts it as not passed and says so.
INTERNAL_ERROR = "InternalError"

# The return r(W) of a program, by outcome (paper Sec. 3.2).
RETURNS: dict[str, float] = {
    COMPILE_ERROR: -1.0,
    RUNTIME_ERROR: -0.6,
    FAILED_TEST: -0.3,
    PASSED_TEST: 1.0,
}

# Per-test result codes in the APPS convention (testing_util): -2 compile error,
# -1 runtime error, False failed, True passed.
TEST_RESULT_COMPILE_ERROR = -2
TEST_RESULT_RUNTIME_ERROR = -1

# Error subtypes (paper Table 11 plus the ones our sandbox can name). Lower-case exception
# names; the sandbox reports any other exception by its lower-cased class name too.
ERROR_SUBTYPES: tuple[str, ...] = (
    "syntaxerror",
    "indentationerror",
    "taberror",
    "nameerror",
    "typeerror",
    "valueerror",
    "indexerror",
    "keyerror",
    "attributeerror",
    "zerodivisionerror",
    "eoferror",
    "unboundlocalerror",
    "recursionerror",
    "importerror",
    "modulenotfounderror",
    "assertionerror",
    "overflowerror",
    "stopiteration",
    "notimplementederror",
    "systemexit",
    "timeoutexception",
    "memoryerror",
    "outputlimit",
)


def outcome_index(outcome: str, binary: bool = False) -> int:
    """Class index of `outcome` for the 4-way critic, or the binary one (Fail=0, Pass=1)."""
    if binary:
        return int(outcome == PASSED_TEST)
    try:
        return OUTCOMES.index(outcome)
    except ValueError:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}") from None


def outcome_return(outcome: str) -> float:
    """The return r(W) for an outcome; InternalError (or anything unknown) is an error."""
    try:
        return RETURNS[outcome]
    except KeyError:
        raise ValueError(
            f"outcome {outcome!r} has no return; expected one of {OUTCOMES}"
        ) from None
