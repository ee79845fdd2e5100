"""What runs inside the per-program child, after isolation is set up: compile, run the tests,
report raw results.

The child is a fork of the worker and shares nothing else with the caller. It is given test
*inputs* only (stdin text, call arguments, or the expression of an `assert EXPR == LITERAL` /
`assert [not] f(...)`), never the expected outputs nor any other test code: the worker
compares outputs itself (`compare.py`) and runs every other test's code itself
(`worker_tests.py`), so nothing the program does in its own memory can turn a wrong answer
into a pass.

Reports go to fd `RESULT_FD` as JSON lines, each prefixed by the per-run nonce the worker
drew before forking:

    {"t": "compile", "error": "syntaxerror", "msg": ...}     program does not compile
    {"t": "load", "error": name, "msg": ...}                 top level / test setup raised
    {"t": "test", "i": i, "status": "ok", "value": ...}     test i ran; value = stdout text,
                                                            or the call result / EXPR value
                                                            as a plain literal
    {"t": "test", "i": i, "status": "error", "error": name, "msg": ...}
    {"t": "test", "i": i, "status": "unencodable", "msg": ...}   result not a plain value
    {"t": "serve", "i": i}                                  test i is judged in the worker:
                                                            ready for its calls
    {"t": "ret", "i": i, "n": n, "status": ..., ...}        the answer to call n of test i
                                                            (status/value/error as "test")
    {"t": "done"}                                           written after the last test

(The worker writes a "ready" line before calling `run`, so a run with no report at all is
the harness's failure, never the program's.)

Worker-judged tests ("worker" mode: HumanEval's `check(candidate)`, and asserts of any other
form): the child reports "serve", then answers call requests read from fd `REQUEST_FD`, one
JSON line each, `{"f": name, "a": marshal.dumps((args, kwargs)).hex(), "t": seconds}`, by
calling `name` in the program's namespace with those arguments under a `t`-second alarm,
until `{"end": true}`. It never learns what the worker does with the answers.

stdin/stdout tests: each test re-executes the compiled program as `__main__` in fresh
globals, with a per-test memfd on fd 0 holding the input (so `input()`, `sys.stdin.read()`,
`sys.stdin.buffer` and `open(0).read()` all work) and a per-test memfd on fd 1 for the
output (so `print`, `sys.stdout.write`, `sys.stdout.buffer.write` and `os.write(1, ...)` are
all captured, in order), capped by RLIMIT_FSIZE (exceeding it is `outputlimit`). `exit()` /
`sys.exit()` ends that test's run normally: its output is judged as printed so far. The
program is run as written: not wrapped in a function as APPS' harness does, so top-level
`return`/`nonlocal` are syntax errors, as in a direct `python program.py` run.

call/assert tests: the program (then the problem's test setup: MBPP's imports and input
objects; never HumanEval's `test`, which is test code) runs once as `__main__`; each test
then calls `fn_name` (on `Solution()` when the program defines that class) with fresh
arguments, evaluates the assert expression, or serves the worker's calls, in that namespace.
Standard streams are /dev/null (output is not judged). `SystemExit` here is a runtime error
(`systemexit`).
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import marshal
import _signal
import os
import sys

RESULT_FD = 3
REQUEST_FD = 4  # worker -> child call requests (worker-judged tests only)
MAX_MESSAGE_CHARS = 300  # error messages are for humans; keep records small
MAX_ENCODE_DEPTH = 100


class TimeoutException(Exception):
    """Raised by the per-test alarm (reported as error subtype `timeoutexception`)."""


class Unencodable(Exception):
    """A call result that is not made of plain built-in values."""


def encode_value(value, depth: int = 0) -> str:
    """Python literal text of `value`, built with the base types' own methods.

    Only None/bool/int/float/complex/str/bytes and list/tuple/dict/set/frozenset of them are
    accepted; subclasses are read through the base type (so an overridden `__eq__`,
    `__repr__` or `__iter__` of a program-defined subclass has no effect). Anything else
    raises Unencodable. `compare.decode_value` reverses it in the worker.
    """
    if depth > MAX_ENCODE_DEPTH:
        raise Unencodable("nested too deeply")
    if value is None or value is True or value is False:
        return repr(value)
    if isinstance(value, bool):  # bool cannot be subclassed; kept for clarity
        return "True" if value else "False"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:  # nan never equals anything; no literal for it
            raise Unencodable("nan")
        if float.__abs__(value) == float("inf"):
            return "1e999" if value > 0 else "-1e999"
        return float.__repr__(value)
    if isinstance(value, complex):
        return complex.__repr__(value)
    if isinstance(value, str):
        return str.__repr__(value)
    if isinstance(value, bytes):
        return bytes.__repr__(value)
    if isinstance(value, list):
        return "[" + ", ".join(encode_value(v, depth + 1) for v in list.__iter__(value)) + "]"
    if isinstance(value, tuple):
        items = [encode_value(v, depth + 1) for v in tuple.__iter__(value)]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, dict):
        items = dict.items(value)
        return "{" + ", ".join(
            f"{encode_value(k, depth + 1)}: {encode_value(v, depth + 1)}" for k, v in items
        ) + "}"
    if isinstance(value, (set, frozenset)):  # set == frozenset in Python, so one form
        iterate = set.__iter__ if isinstance(value, set) else frozenset.__iter__
        items = [encode_value(v, depth + 1) for v in iterate(value)]
        return "{" + ", ".join(items) + "}" if items else "set()"
    raise Unencodable(f"unsupported type {type(value).__name__}")


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, TimeoutException):
        return "timeoutexception"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        # RLIMIT_FSIZE hit (Python ignores SIGXFSZ, so writes fail with EFBIG instead).
        return "outputlimit"
    return type(exc).__name__.lower()[:60]


def _short(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE_CHARS]
    except BaseException:  # a program-defined __str__ may raise anything
        return type(exc).__name__[:MAX_MESSAGE_CHARS]


class _Reporter:
    def __init__(self, nonce: str):
        self.nonce = nonce

    def send(self, record: dict) -> None:
        data = (self.nonce + json.dumps(record) + "\n").encode()
        while data:
            written = os.write(RESULT_FD, data)
            data = data[written:]


def _on_alarm(signum, frame):
    raise TimeoutException("per-test time limit")


def _start_alarm(seconds: float) -> None:
    # Re-installed before every test: a program may replace or ignore the handler, in which
    # case the worker's wall-clock limit kills the whole process group instead.
    # _signal, not signal: the wrapper's enum conversions touch (and so copy) extra pages.
    _signal.signal(_signal.SIGALRM, _on_alarm)
    _signal.setitimer(_signal.ITIMER_REAL, seconds)


def _stop_alarm() -> None:
    _signal.setitimer(_signal.ITIMER_REAL, 0)


def _memfd_on(target_fd: int, data: bytes, name: str) -> None:
    """Puts a new memfd holding `data` (offset 0) on `target_fd`."""
    fd = os.memfd_create(name, 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    if fd != target_fd:  # fd == target when the program closed target_fd itself
        os.dup2(fd, target_fd)
        os.close(fd)


def _fresh_streams(stdin_data: bytes | None) -> None:
    """Points fds 0/1 at new memfds (None: at /dev/null), and sys.stdin/stdout at them."""
    if stdin_data is None:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            if null != fd:
                os.dup2(null, fd)
        if null > 1:
            os.close(null)
    else:
        _memfd_on(0, stdin_data, "stdin")
        _memfd_on(1, b"", "stdout")
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                 encoding="utf-8", errors="replace")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  encoding="utf-8", errors="replace")


def _read_stdout(stream) -> str:
    """Everything written to fd 1 during the test (our stream and the program's, flushed)."""
    for s in (stream, sys.stdout):  # the program may have installed its own buffered stdout
        try:
            s.flush()
        except BaseException:
            pass
    try:
        os.lseek(1, 0, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(1, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:  # the program closed or replaced fd 1 with something unreadable
        return ""
    return b"".join(chunks).decode("utf-8", errors="replace")


def _program_globals() -> dict:
    return {"__name__": "__main__", "__builtins__": builtins, "__file__": "<program>"}


def _restore_interpreter(recursion_limit: int) -> None:
    """Undoes interpreter-wide settings a previous test may have changed.

    (Deliberately not a full reset of builtins/modules: that would touch, and so copy, many
    pages of the forked heap per program; and a program can patch anything while its own
    function runs anyway. Outputs are judged in the worker, which the program cannot reach.)
    """
    sys.settrace(None)
    sys.setprofile(None)
    sys.setrecursionlimit(recursion_limit)


def run(job: dict, nonce: str) -> None:
    """Runs `job` (see executor._job_for) and reports to RESULT_FD; never returns normally."""
    report = _Reporter(nonce)
    recursion_limit = sys.getrecursionlimit()
    timeout = float(job["timeout"])
    kind = job["kind"]
    try:
        code = compile(job["code"], "<program>", "exec")
    except BaseException as e:  # SyntaxError, IndentationError, TabError, ValueError (NUL), ...
        report.send({"t": "compile", "error": _error_name(e), "msg": _short(e)})
        return

    if kind == "stdio":
        _run_stdio(code, job["inputs"], timeout, report, recursion_limit)
    else:
        _run_in_module(code, job, timeout, report, recursion_limit)
    report.send({"t": "done"})


def _run_stdio(code, inputs, timeout, report, recursion_limit):
    for i, stdin_text in enumerate(inputs):
        _restore_interpreter(recursion_limit)
        _fresh_streams(stdin_text.encode("utf-8"))
        stream = sys.stdout
        record = {"t": "test", "i": i, "status": "ok"}
        try:
            _start_alarm(timeout)
            try:
                exec(code, _program_globals())
            finally:
                _stop_alarm()
        except SystemExit:
            pass  # `exit()` after printing the answer is normal for stdin/stdout programs
        except BaseException as e:
            record = {"t": "test", "i": i, "status": "error", "error": _error_name(e),
                      "msg": _short(e)}
        _stop_alarm()
        output = _read_stdout(stream)
        if record["status"] == "ok":
            record["value"] = output
        report.send(record)


def _call_target(namespace: dict, fn_name: str):
    # APPS LeetCode-style problems define `class Solution` with the method to call.
    solution = namespace.get("Solution")
    if isinstance(solution, type) and hasattr(solution, fn_name):
        return getattr(solution(), fn_name)
    if fn_name not in namespace:
        raise NameError(f"name {fn_name!r} is not defined")
    return namespace[fn_name]


def _call(namespace: dict, fn_name: str, args, kwargs, timeout: float) -> dict:
    """Calls the program's `fn_name` under an alarm: the status fields of a report."""
    try:
        _start_alarm(timeout)
        try:
            result = _call_target(namespace, fn_name)(*args, **kwargs)
        finally:
            _stop_alarm()
        return {"status": "ok", "value": encode_value(result)}
    except Unencodable as e:
        return {"status": "unencodable", "msg": str(e)}
    except BaseException as e:
        _stop_alarm()
        return {"status": "error", "error": _error_name(e), "msg": _short(e)}


class _Requests:
    """The worker's call requests on REQUEST_FD, one JSON line each."""

    def __init__(self):
        self.buffer = b""

    def next(self) -> dict | None:
        """The next request; None when the channel is closed or unreadable."""
        while b"\n" not in self.buffer:
            try:
                chunk = os.read(REQUEST_FD, 1 << 16)
            except OSError:  # the program closed or replaced fd 4
                return None
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:  # the program wrote into its own request channel
            return None


def _serve(namespace: dict, i: int, requests: _Requests, report: _Reporter) -> None:
    """Test i is judged in the worker: answer its calls until it says "end"."""
    report.send({"t": "serve", "i": i})
    n = 0
    while True:
        request = requests.next()
        if request is None or request.get("end"):
            return
        try:
            # marshal: the worker's own plain values (trusted data in this direction), decoded
            # ~10x faster than literal text; answers go back as literals (runner.encode_value).
            args, kwargs = marshal.loads(bytes.fromhex(request["a"]))
            timeout = max(float(request["t"]), 0.001)
        except BaseException as e:  # the program broke the decoder; its own loss
            record = {"status": "error", "error": _error_name(e), "msg": _short(e)}
        else:
            record = _call(namespace, request["f"], args, kwargs, timeout)
        record.update(t="ret", i=i, n=n)
        report.send(record)
        n += 1


def _run_in_module(code, job, timeout, report, recursion_limit):
    """call/assert tests: the program (and test setup) run once, then each test in turn."""
    namespace = _program_globals()
    _fresh_streams(None)  # output of call/assert programs is not judged: /dev/null
    streams = (sys.stdin, sys.stdout)
    try:
        _start_alarm(timeout)
        try:
            exec(code, namespace)
            if job.get("setup"):
                exec(compile(job["setup"], "<test setup>", "exec"), namespace)
        finally:
            _stop_alarm()
    except BaseException as e:
        _stop_alarm()
        report.send({"t": "load", "error": _error_name(e), "msg": _short(e)})
        return

    requests = None
    for i, test in enumerate(job["inputs"]):
        _restore_interpreter(recursion_limit)
        if sys.stdin is not streams[0] or sys.stdout is not streams[1]:
            sys.stdin, sys.stdout = streams
        if job["kind"] == "call":
            # A fresh copy of the arguments per call (json.loads): programs mutate them.
            record = _call(namespace, job["fn_name"], json.loads(test), {}, timeout)
            record.update(t="test", i=i)
            report.send(record)
            continue
        if test["mode"] == "worker":
            requests = requests or _Requests()
            _serve(namespace, i, requests, report)
            continue
        try:
            _start_alarm(timeout)
            try:
                result = eval(compile(test["src"], "<test>", "eval"), namespace)
            finally:
                _stop_alarm()
            if test["mode"] == "truth":
                # `assert f(x)` is Python's truth test of f(x), whatever it is (e.g. a
                # re.Match); only used where f is the program's own (executor._split_assert).
                value = "True" if result else "False"
            else:  # "value": the worker holds the literal of `assert EXPR == LITERAL`
                value = encode_value(result)
            record = {"t": "test", "i": i, "status": "ok", "value": value}
        except Unencodable as e:
            record = {"t": "test", "i": i, "status": "unencodable", "msg": str(e)}
        except BaseException as e:
            _stop_alarm()
            record = {"t": "test", "i": i, "status": "error", "error": _error_name(e),
                      "msg": _short(e)}
        report.send(record)
