"""Tests judged in the worker: the dataset's test code runs here; the program's functions in
it are stubs that call into the child.

Which tests (split by `executor._split_assert`): HumanEval's `check(candidate)`, and every
assert that is not `assert EXPR == LITERAL` or `assert [not] f(...)` with `f` the program's
own function, e.g. `assert math.isclose(f(2), 12.56)`, `assert set(f(x)) == set((1, 2))`,
`assert f(6) < 2`. Run inside the child, such code could be bent by the program: an `__eq__`
that always answers True, an `int` subclass, a patched `math.isclose` or `builtins.compile`
(reading the test source as it is compiled), a passing record forged on the report channel.
Here nothing of the program exists but the plain values it answers with.

Per job the worker builds a fresh namespace and runs in it the trusted setup (HumanEval: the
prompt, whose helper functions such as `poly` the check calls, then the `test` field that
defines `check`; MBPP: its test setup code or imports), then each worker-judged test's
source in turn. The program's names in that code are stubs: the entry point (`fn_name`),
and every other name a test uses that the setup does not define, that is not a builtin, and
that is not a standard module used as `module.attr` (imported here). A stub call sends its
arguments to the child (marshal: plain built-in values only; anything else is the harness's
InternalError, never a pass), which calls the real function and answers with its result
encoded by `runner.encode_value`; the stub returns it decoded by `compare.decode_value`
(`ast.literal_eval`), so the test code only ever sees plain built-in values.

Result of one test (APPS convention):
  the test code runs to its end                         True
  it raises AssertionError (or any other exception)     False: the answers did not satisfy it
  an answer is not a plain value (object(), nan, ...)   False
  the program raised in a call                          -1 with the exception's subtype
  the test's time budget is spent                       -1, "timeoutexception"

What the worker guards against while it runs this code (the code is trusted, the values
are not): time, with an alarm over the test's budget (the per-test timeout, for the test
code and its calls together) plus a deadline on every call; memory, with the worker's own
RLIMIT_AS (worker.main) and capped report lines (worker._Channel); its own state, which the
forked children share: the namespace is per job; while test code runs, at-fork hooks are not
registered (`random` would otherwise reseed in every later child: ~45 more page faults per
fork, measured) and the modules that asked are dropped from sys.modules afterwards; the
recursion limit is restored; and the worker refreezes its heap after the job.
"""

from __future__ import annotations

import builtins
import marshal
import os
import signal
import sys
import time

from coderl_jax import outcomes
from coderl_jax.sandbox import compare


# Raised by the worker's call channel (worker.py); they end the run, not just the test.
class ChildGone(BaseException):
    """The child exited or closed its report channel."""


class Deadline(BaseException):
    """No answer by the deadline (the program ignored its alarm)."""


class BadEvidence(BaseException):
    """The child sent a report the protocol does not allow at this point."""


class HarnessError(BaseException):
    """The test cannot be judged this way (e.g. it passes a non-plain argument)."""


# Raised inside the test code; BaseException, so a test's own `except Exception` cannot
# swallow them.
class _ProgramRaised(BaseException):
    def __init__(self, error: str, msg: str):
        super().__init__(msg)
        self.error = error


class _NotPlain(BaseException):
    pass


class _TestTimeout(BaseException):
    pass


# Compiled setup and test code by source, kept across jobs (a HumanEval setup, prompt plus
# `check`, takes ~1 ms to compile; problems repeat, once per sample). Frozen with the heap.
_CODE: dict[tuple[str, str], object] = {}
MAX_CACHED_CODE = 2048


def _compiled(source: str, filename: str):
    code = _CODE.get((source, filename))
    if code is None:
        if len(_CODE) >= MAX_CACHED_CODE:
            _CODE.clear()
        code = _CODE[source, filename] = compile(source, filename, "exec")
    return code


class TestCode:
    """One job's worker-judged tests.

    Args:
      spec: `{"setup": source, "tests": [source or None per test], "stubs": [names],
        "modules": [names]}` (built by executor.build_job, part B: never sent to the child).
      call: `call(name, arguments, seconds) -> record`: sends one call request (`arguments`:
        `marshal.dumps((args, kwargs)).hex()`) to the child and returns its nonce-checked
        answer record; raises ChildGone, Deadline or BadEvidence.
    """

    __test__ = False  # not a pytest class

    def __init__(self, spec: dict, call):
        self.spec = spec
        self.send_call = call
        self.namespace: dict | None = None
        self.test = -1
        self.calls = 0
        self.deadline = 0.0
        self.active = False
        self.in_call = False
        self.expired = False
        self._hooked: set[str] = set()  # modules whose at-fork hooks were not registered
        self._register_at_fork = None

    def run(self, i: int, budget: float):
        """Runs test i within `budget` seconds -> (result, error_type, detail).

        Raises ChildGone, Deadline, BadEvidence, HarnessError (see above).
        """
        self.test, self.calls, self.expired = i, 0, False
        self.deadline = time.monotonic() + budget
        recursion_limit = sys.getrecursionlimit()
        previous = signal.signal(signal.SIGALRM, self._on_alarm)
        self.active = True
        signal.setitimer(signal.ITIMER_REAL, max(budget, 0.001))
        try:
            try:
                if self.namespace is None:
                    self._setup()
                exec(_compiled(self.spec["tests"][i], "<test>"), self.namespace)
            finally:
                self.active = False  # a late alarm is ignored from here on
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                sys.setrecursionlimit(recursion_limit)
        except _TestTimeout:
            return outcomes.TEST_RESULT_RUNTIME_ERROR, "timeoutexception", \
                f"test {i}: time limit"
        except _ProgramRaised as e:
            return outcomes.TEST_RESULT_RUNTIME_ERROR, e.error, f"test {i}: {e}"
        except _NotPlain as e:
            return False, None, f"test {i}: {e}"
        except (ChildGone, Deadline, BadEvidence, HarnessError):
            raise
        except AssertionError:
            return False, None, f"test {i}: wrong answer"
        except BaseException as e:  # the test code failed on the program's answers
            return False, None, f"test {i}: wrong answer ({_short(e)})"
        return True, None, ""

    def close(self) -> None:
        """Drops the namespace, restores os.register_at_fork and drops the modules that
        tried to register an at-fork hook (see the module doc)."""
        self.namespace = None
        if self._register_at_fork is None:
            return
        os.register_at_fork = self._register_at_fork
        self._register_at_fork = None
        # Dropped, so that a program importing them gets them fresh, with their hooks
        # registered in its own process. Other modules stay: the next job that imports
        # them (typing: ~3 ms) finds them, and gc.freeze() keeps them out of the children's
        # collections.
        for name in self._hooked:
            sys.modules.pop(name, None)
        self._hooked = set()

    # ------------------------------------------------------------------------- private
    def _setup(self) -> None:
        self._register_at_fork = os.register_at_fork
        os.register_at_fork = self._no_at_fork
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        try:
            if self.spec.get("setup"):
                exec(_compiled(self.spec["setup"], "<test setup>"), namespace)
            for name in self.spec.get("modules", ()):
                namespace[name] = __import__(name)
        except _TestTimeout:
            raise
        except BaseException as e:
            raise HarnessError(f"test setup failed in the worker: {_short(e)}") from None
        for name in self.spec.get("stubs", ()):
            namespace[name] = self._stub(name)
        self.namespace = namespace

    def _no_at_fork(self, **hooks) -> None:
        """Stands in for os.register_at_fork while test code runs: records who asked."""
        for hook in hooks.values():
            module = getattr(hook, "__module__", None)
            if isinstance(module, str):
                self._hooked.add(module)

    def _stub(self, name: str):
        def stub(*args, **kwargs):
            return self._call(name, args, kwargs)

        stub.__name__ = stub.__qualname__ = name
        return stub

    def _on_alarm(self, signum, frame) -> None:
        if not self.active:
            return
        self.expired = True
        if not self.in_call:  # in a call, the call's own deadline takes over
            raise _TestTimeout()

    def _call(self, name: str, args: tuple, kwargs: dict):
        if self.expired or time.monotonic() >= self.deadline:
            raise _TestTimeout()
        try:
            # marshal takes exactly the plain built-in types (no subclasses), as
            # runner.encode_value does; the child decodes it ~10x faster than a literal.
            arguments = marshal.dumps((args, kwargs)).hex()
        except ValueError as e:
            raise HarnessError(f"test {self.test}: an argument of {name}() is not a plain "
                               f"value ({e})") from None
        n, self.calls = self.calls, self.calls + 1
        self.in_call = True
        try:
            record = self.send_call(name, arguments, self.deadline - time.monotonic())
        finally:
            self.in_call = False
        if record.get("t") != "ret" or record.get("i") != self.test or record.get("n") != n:
            raise BadEvidence(f"unexpected report {str(record)[:80]}")
        if self.expired:
            raise _TestTimeout()
        status = record.get("status")
        if status == "ok":
            value = record.get("value")
            try:
                if not isinstance(value, str):
                    raise compare.UndecodableValue("not a literal")
                return compare.decode_value(value)
            except compare.UndecodableValue as e:
                raise _NotPlain(f"{name}() answered something undecodable ({e})") from None
        if status == "error":
            raise _ProgramRaised(str(record.get("error"))[:60], str(record.get("msg", ""))[:300])
        raise _NotPlain(f"{name}() returned a value that is not plain "
                        f"({str(record.get('msg', status))[:100]})")


def _short(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:200]
    except BaseException:
        return type(exc).__name__
