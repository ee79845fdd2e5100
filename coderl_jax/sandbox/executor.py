"""The executor: a long-lived pool of sandbox workers that judges programs against tests.

    with Executor(num_workers=2, timeout=4.0) as ex:
        future = ex.submit(problem, code)                 # -> Future[Verdict]
        verdicts = ex.run([(problem, code), ...])         # in order

Workers are fresh interpreters started with `subprocess` (fork+exec, i.e. spawned: never a
fork of this process, which may have imported JAX and its threads) running
`coderl_jax.sandbox.worker`. Each worker forks one child per program and runs all of that
program's tests with it: the child gets test inputs only, and the worker judges (see
worker.py for the protocol and the evidence rule, worker_tests.py for tests whose code the
worker runs itself, isolation.py for the limits, compare.py for the output rules). One
thread per worker here feeds it jobs from a shared queue, so `submit` returns at once and
results arrive as they finish; the RL loop keeps one Executor for a whole run, so no pool
start-up per step.

This module (and the whole sandbox package) imports only the standard library.
"""

from __future__ import annotations

import ast
import builtins
import collections
import concurrent.futures
import dataclasses
import json
import os
import queue
import struct
import subprocess
import sys
import threading
from typing import Sequence

from coderl_jax import outcomes
from coderl_jax.data.problem import Problem, Test, stdio_text

# Jobs kept in a worker's pipe at once, and the largest job that may wait behind another
# (well under the 64 KiB pipe buffer, see Executor._serve).
PIPELINE = 2
PIPELINE_MAX_BYTES = 16 << 10
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER_START_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How a program fared on a problem's tests.

    Attributes:
      outcome: one of coderl_jax.outcomes.OUTCOMES, or outcomes.INTERNAL_ERROR when the
        harness could not judge it.
      error_type: lower-case exception name ("syntaxerror", "timeoutexception", "memoryerror",
        "outputlimit", "systemexit", ...) for CompileError/RuntimeError, else None.
      test_results: per test run, APPS convention: -2 compile error, -1 runtime error, False,
        True. Tests after a stop (stop_at_first_failure, a kill) are not listed.
      reward: outcomes.RETURNS[outcome]; None for InternalError.
      detail: short human-readable reason, for debugging.
    """

    outcome: str
    error_type: str | None
    test_results: tuple
    reward: float | None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == outcomes.PASSED_TEST

    @classmethod
    def internal_error(cls, detail: str) -> "Verdict":
        return cls(outcomes.INTERNAL_ERROR, None, (), None, detail[:500])


# ------------------------------------------------------------------------ problem -> job
_BUILTIN_NAMES = frozenset(dir(builtins))


def _split_assert(source: str, setup_names: frozenset = frozenset()):
    """(mode, child_source, worker_expected) for one assert test.

    `assert EXPR == LITERAL` -> ("value", EXPR, LITERAL): the child evaluates EXPR only and
    the worker compares it with the literal, which the child never sees.
    `assert f(...)` / `assert not f(...)`, `f` a plain name that is neither a builtin nor
    defined by the test setup (`setup_names`), i.e. the program's own function, whose truth
    the program decides anyway -> ("truth", EXPR, True/False).
    Anything else (`assert math.isclose(f(x), 0.3)`, `assert f(x) < 2`, HumanEval's
    `check(f)`) -> ("worker", source, None): the worker runs it (worker_tests.py).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "worker", source, None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return "worker", source, None
    test = tree.body[0].test
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        left, right = test.left, test.comparators[0]
        for expr, literal in ((left, right), (right, left)):
            try:
                ast.literal_eval(literal)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            return "value", _expr_source(source, expr), _expr_source(source, literal)
        return "worker", source, None
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    call = test.operand if negated else test
    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id not in _BUILTIN_NAMES and call.func.id not in setup_names):
        return "truth", _expr_source(source, call), not negated
    return "worker", source, None


def _expr_source(source: str, node: ast.expr) -> str:
    """Source text that evaluates to expression `node` of `source`.

    The node's own text, in parentheses (so that a segment spanning lines, e.g. implicitly
    joined strings, stays one expression): the same expression `ast.unparse` would give,
    at a fraction of its cost (the executor builds one per assert).
    """
    if node.lineno == node.end_lineno == 1 and source.isascii():
        # One line (tests are): the offsets (UTF-8 bytes) index the str directly.
        segment = source[node.col_offset:node.end_col_offset]
    else:
        segment = ast.get_source_segment(source, node)
    return ast.unparse(node) if segment is None else "(" + segment + ")"


def _defined_names(source: str) -> frozenset:
    """Names bound at the top level of `source` (defs, classes, imports, assignments, also
    inside top-level if/for/while/with/try blocks; not inside functions or classes)."""
    names = set()
    pending = list(ast.parse(source).body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif isinstance(child, (ast.stmt, ast.expr, ast.excepthandler, ast.withitem)):
                pending.append(child)
    return frozenset(names)


def _worker_spec(problem: Problem, sources: list) -> dict:
    """What the worker needs to run a problem's worker-judged tests (worker_tests.TestCode).

    The setup is trusted dataset code: HumanEval's prompt (its helper functions, e.g. `poly`,
    are what `check` calls; the program's copies of them are never used) and `test`; MBPP's
    test setup. Stubs: the entry point, and every name a test reads that the setup does not
    define and that is not a builtin or a standard module used as `module.attr` (imported).
    """
    setup = problem.test_setup or ""
    if problem.source == "humaneval":
        setup = problem.question + "\n" + setup
    try:
        defined = _defined_names(setup)
    except SyntaxError as e:
        raise ValueError(f"problem {problem.task_id}: test setup does not parse: {e}") from None
    stubs = {problem.fn_name} if problem.fn_name else set()
    modules = set()
    for i, source in enumerate(sources):
        if source is None:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError as e:
            raise ValueError(f"problem {problem.task_id}: test {i} does not parse: {e}") from None
        read, bound, called = set(), set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                called.add(node.func.id)
        for name in read - bound - defined - stubs - _BUILTIN_NAMES:
            if name in sys.stdlib_module_names and name not in called:
                modules.add(name)
            else:
                stubs.add(name)
    return {"setup": setup, "tests": sources, "stubs": sorted(stubs), "modules": sorted(modules)}


def build_job(problem: Problem, tests: Sequence[Test]) -> tuple[dict, dict]:
    """(part A for the child: inputs only; part B for the worker: expected outputs and the
    code of the tests it runs itself)."""
    kinds = {t.kind for t in tests}
    if len(kinds) != 1:
        raise ValueError(f"problem {problem.task_id}: tests mix kinds {sorted(kinds)}")
    (kind,) = kinds
    # HumanEval's `test` field is test code (it defines `check`, expected values included):
    # it runs in the worker only. MBPP's setup (imports, input objects) also runs in the
    # child, where the program's functions may rely on it, as in MBPP's own harness.
    child_setup = None if problem.source == "humaneval" else problem.test_setup
    worker = None
    if kind == "stdio":
        inputs = [stdio_text(t.input) for t in tests]
        expected = [stdio_text(t.expected) for t in tests]
        modes = ["stdout"] * len(tests)
    elif kind == "call":
        if not problem.fn_name:
            raise ValueError(f"problem {problem.task_id}: call tests need fn_name")
        inputs = [json.dumps(t.input if isinstance(t.input, list) else [t.input])
                  for t in tests]
        expected = [t.expected for t in tests]
        modes = ["call"] * len(tests)
    else:
        try:
            setup_names = _defined_names(problem.test_setup) if problem.test_setup \
                else frozenset()
        except SyntaxError:  # the child reports it as the program's load error, as before
            setup_names = frozenset()
        inputs, expected, modes, sources = [], [], [], []
        for t in tests:
            mode, src, want = _split_assert(t.input, setup_names)
            # A worker-judged test sends the child nothing: not even its source.
            inputs.append({"mode": mode} if mode == "worker" else {"src": src, "mode": mode})
            sources.append(src if mode == "worker" else None)
            expected.append(want)
            modes.append(mode)
        if "worker" in modes:
            worker = _worker_spec(problem, sources)
    part_a = {"kind": kind, "fn_name": problem.fn_name, "setup": child_setup,
              "inputs": inputs}
    part_b = {"expected": expected, "modes": modes}
    if worker is not None:
        part_b["worker"] = worker
    return part_a, part_b


def _message(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


# ------------------------------------------------------------------------------- the pool
class _Worker:
    def __init__(self, config: dict):
        env = dict(os.environ)
        env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("PYTHONSTARTUP", None)
        # Resolve the worker's dynamic symbols at start-up, not lazily: a lazy resolution in
        # a forked child writes the GOT, one copy-on-write page fault (and a symbol lookup)
        # per library function the worker itself never called, in every child (~15 faults
        # of ~450 per MBPP program). Programs never see this variable (isolation.setup
        # clears the environment).
        env["LD_BIND_NOW"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from coderl_jax.sandbox.worker import main; main()",
             json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
            cwd="/")
        hello = self.receive()
        if not hello or not hello.get("ready"):
            raise RuntimeError(f"sandbox worker failed to start: {hello!r}")
        self.isolation = hello["isolation"]

    def send(self, *parts: bytes) -> None:
        self.proc.stdin.write(b"".join(_message(p) for p in parts))
        self.proc.stdin.flush()

    def receive(self):
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            return None
        (length,) = struct.unpack(">I", header)
        body = self.proc.stdout.read(length)
        if len(body) < length:
            return None
        return json.loads(body)

    def close(self, timeout: float = 5.0) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class Executor:
    """A pool of sandbox workers; a context manager. See the module docstring.

    Args:
      num_workers: parallel workers (each runs one program at a time); default os.cpu_count().
      timeout: wall-clock seconds per test (the child's alarm; a program that evades it is
        killed after 2 * timeout + 0.5 s without progress).
      program_timeout: wall-clock cap for a whole program (all tests); default
        timeout * (n_tests + 1) + 1. RLIMIT_CPU is set one second above it.
      memory_mb: address-space limit (RLIMIT_AS) of a program.
      max_output_bytes: cap of a test's stdout and of any file written (RLIMIT_FSIZE).
      max_processes: RLIMIT_NPROC of the program's uid (processes + threads; root only).
      hide_paths: directories made invisible to programs (e.g. the benchmark data, so no
        program can read expected outputs); root's home is always hidden when root.
      privileged: False makes a root process use only what an unprivileged user gets (no
        namespaces, no uid drop: process group, limits, subreaper reaping); for tests of
        that path. `isolation` reports what was in effect.
    """

    def __init__(self, num_workers: int | None = None, *, timeout: float = 4.0,
                 program_timeout: float | None = None, memory_mb: int = 2048,
                 max_output_bytes: int = 16 << 20, max_processes: int = 32,
                 hide_paths: Sequence[str] = (), privileged: bool = True):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.num_workers = num_workers or os.cpu_count() or 1
        self.timeout = float(timeout)
        self.program_timeout = program_timeout
        hidden = [str(p) for p in hide_paths]
        if os.geteuid() == 0:
            hidden.append(os.path.expanduser("~root"))
        config = {"memory_mb": memory_mb, "max_output_bytes": max_output_bytes,
                  "max_processes": max_processes, "hide_paths": hidden,
                  "privileged": privileged}
        self._queue: queue.Queue = queue.Queue()
        self._cache: dict[tuple[int, str], tuple[Problem, bytes, bytes]] = {}
        self._cache_lock = threading.Lock()
        self._closed = False
        self._config = config
        self._workers: list[_Worker] = []
        self._threads: list[threading.Thread] = []
        try:
            # Started in parallel: each pays its own interpreter start-up.
            starters = [threading.Thread(target=self._start_worker) for _ in
                        range(self.num_workers)]
            for t in starters:
                t.start()
            for t in starters:
                t.join()
            if len(self._workers) != self.num_workers:
                raise RuntimeError("sandbox workers failed to start (see stderr)")
        except BaseException:
            self.close()
            raise
        # What the kernel allowed (namespaces, uid), per worker; see isolation.py.
        self.isolation = self._workers[0].isolation
        for i in range(self.num_workers):
            thread = threading.Thread(target=self._serve, args=(i,), daemon=True,
                                      name=f"sandbox-feeder-{i}")
            thread.start()
            self._threads.append(thread)

    @property
    def sandbox_uids(self) -> list[int]:
        """The uids programs run as (root only; one per worker), e.g. to look for strays."""
        return [w.isolation["uid"] for w in self._workers if w.isolation.get("uid")]

    def _start_worker(self):
        try:
            worker = _Worker(self._config)
        except Exception as e:
            print(f"coderl sandbox: {e}", file=sys.stderr)
            return
        with self._cache_lock:
            self._workers.append(worker)

    # ---------------------------------------------------------------------------- public
    def submit(self, problem: Problem, code: str, *, tests: str = "hidden",
               stop_at_first_failure: bool = False) -> concurrent.futures.Future:
        """Queues `code` for `problem`'s "hidden" or "example" tests; -> Future[Verdict]."""
        if self._closed:
            raise RuntimeError("submit on a closed Executor")
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        if tests not in ("hidden", "example"):
            raise ValueError(f"tests must be 'hidden' or 'example', got {tests!r}")
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            part_a_rest, part_b = self._job(problem, tests)
        except ValueError as e:
            future.set_result(Verdict.internal_error(str(e)))
            return future
        head = {"code": code, "timeout": self.timeout, "program_timeout": self.program_timeout,
                "stop_early": bool(stop_at_first_failure)}
        part_a = json.dumps(head)[:-1].encode() + b", " + part_a_rest
        self._queue.put((future, part_a, part_b))
        return future

    def run(self, jobs: Sequence[tuple[Problem, str]], *, tests: str = "hidden",
            stop_at_first_failure: bool = False, progress: bool = False) -> list[Verdict]:
        """Judges all `(problem, code)` jobs; the verdicts are in the order of `jobs`."""
        futures = [self.submit(p, c, tests=tests, stop_at_first_failure=stop_at_first_failure)
                   for p, c in jobs]
        if progress:
            from tqdm import tqdm

            for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                          desc="execute", unit="prog"):
                pass
        else:
            concurrent.futures.wait(futures)  # one wake-up, not one per program
        return [f.result() for f in futures]

    def close(self) -> None:
        """Stops the workers (each reaps its programs first); idempotent."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        for worker in self._workers:
            worker.close()
        # Anything still queued (submitted concurrently with close) is not judged.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].set_result(Verdict.internal_error("executor closed"))

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --------------------------------------------------------------------------- private
    def _job(self, problem: Problem, which: str) -> tuple[bytes, bytes]:
        key = (id(problem), which)
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] is problem:
            return cached[1], cached[2]
        tests = problem.tests(which)
        if not tests:
            raise ValueError(f"problem {problem.task_id} has no {which} tests")
        part_a, part_b = build_job(problem, tests)
        rest = json.dumps(part_a)[1:].encode()  # '"kind": ...}' appended to the head
        entry = (problem, rest, json.dumps(part_b).encode())
        with self._cache_lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = entry
        return entry[1], entry[2]

    def _serve(self, index: int) -> None:
        """Feeds worker `index` from the shared queue, keeping up to PIPELINE jobs in it.

        A second job already waiting in the worker's pipe lets it go on the moment it
        replies, instead of idling until this thread is scheduled. Only small jobs are
        pipelined, so writing one never blocks while the worker waits to write a reply.
        """
        inflight: collections.deque = collections.deque()
        stopping = False
        while True:
            while not stopping and len(inflight) < PIPELINE:  # top up the worker's pipe
                if not inflight:
                    item = self._queue.get()
                else:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None and len(item[1]) + len(item[2]) > PIPELINE_MAX_BYTES:
                        self._queue.put(item)  # too big to wait behind a job: next turn
                        break
                if item is None:  # close() was called
                    stopping = True
                    break
                future, part_a, part_b = item
                if not future.set_running_or_notify_cancel():
                    continue
                inflight.append(future)
                try:
                    self._workers[index].send(part_a, part_b)
                except Exception as e:
                    self._fail(index, inflight, e)
                    break
            if not inflight:
                if stopping:
                    return
                continue
            try:  # the oldest job's verdict (the worker answers in order)
                worker = self._workers[index]
                reply = worker.receive()
                if reply is None:
                    raise RuntimeError(f"sandbox worker exited (status {worker.proc.poll()})")
                inflight.popleft().set_result(_verdict(reply))
            except Exception as e:
                self._fail(index, inflight, e)

    def _fail(self, index: int, inflight: collections.deque, error: Exception) -> None:
        """The worker died or broke the protocol: its jobs are InternalErrors; restart it."""
        while inflight:
            inflight.popleft().set_result(
                Verdict.internal_error(f"{type(error).__name__}: {error}"))
        self._restart(index)

    def _restart(self, index: int) -> None:
        try:
            self._workers[index].close(timeout=1.0)
        except Exception:
            pass
        try:
            self._workers[index] = _Worker(self._config)
        except Exception as e:  # leave the dead one; its next job reports InternalError
            print(f"coderl sandbox: restarting worker {index} failed: {e}", file=sys.stderr)


def _verdict(reply: dict) -> Verdict:
    outcome = reply["outcome"]
    if outcome == outcomes.INTERNAL_ERROR:
        return Verdict.internal_error(reply.get("detail", ""))
    return Verdict(outcome=outcome, error_type=reply.get("error_type"),
                   test_results=tuple(reply["test_results"]),
                   reward=outcomes.RETURNS[outcome], detail=reply.get("detail", ""))
