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


# The verdict policy: which tests a program runs, and so which outcome it gets. One named
# setting for every consumer of verdicts (`coderl execute`, the critic's and repair model's
# labels, RL's returns), recorded in every results line ("verdict_policy") and checked when
# a critic is trained and when RL starts (`check_verdict_policy`).
#   "first_failure": a program stops at its first failing test and takes that test's
#     outcome (the official release's and RL's setting; the default everywhere).
#   "all_tests": every test runs; any compile error, else any runtime error, else any failed
#     test decides (needed by rewards that read every test, e.g. "partial").
# A program failing test 1 and raising on test 7 is FailedTest under "first_failure" and
# RuntimeError under "all_tests".
VERDICT_POLICIES: tuple[str, ...] = ("first_failure", "all_tests")
DEFAULT_VERDICT_POLICY = "first_failure"
VERDICT_POLICY_FILE = "verdict_policy.json"  # in a critic's / repair model's model dir


def validate_verdict_policy(policy: str) -> str:
    if policy not in VERDICT_POLICIES:
        raise ValueError(f"unknown verdict policy {policy!r}; expected one of "
                         f"{VERDICT_POLICIES}")
    return policy


def stops_at_first_failure(policy: str) -> bool:
    """The sandbox's `stop_at_first_failure` flag of a verdict policy."""
    return validate_verdict_policy(policy) == "first_failure"


def check_verdict_policy(found: str | None, expected: str, *, where: str,
                         allow_mismatch: bool = False) -> str | None:
    """Checks that labels judged under `found` (None: not recorded, an old file) may be used
    where `expected` is configured. A mismatch is an error naming both, unless
    `allow_mismatch` (the explicit override); returns a warning line or None."""
    validate_verdict_policy(expected)
    if found is None:
        return (f"{where}: no verdict policy recorded (an old file); assuming "
                f"{expected!r}")
    if found != expected:
        message = (f"{where} was judged with verdict policy {found!r} but {expected!r} is "
                   f"configured: the same program would get different outcomes. Rejudge "
                   f"(`coderl execute --verdict-policy {expected}`) or set the override "
                   f"(allow_verdict_policy_mismatch)")
        if not allow_mismatch:
            raise ValueError(message)
        return "warning (override): " + message
    return None


def records_verdict_policy(records, where: str) -> str | None:
    """The one verdict policy of a results file's records (None if none records it);
    mixed policies in one file are an error."""
    found = {r.get("verdict_policy") for r in records} - {None}
    if len(found) > 1:
        raise ValueError(f"{where} mixes verdict policies {sorted(found)}")
    return found.pop() if found else None
