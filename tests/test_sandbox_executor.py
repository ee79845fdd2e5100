"""The executor: verdicts per test kind, classification, options, the pool, isolation."""

import os
import sys

import pytest

from coderl_jax import outcomes
from coderl_jax.data.problem import Problem
from coderl_jax.data.problem import Test as Case
from coderl_jax.sandbox import Executor, Verdict
from coderl_jax.sandbox.executor import build_job
from sandbox_utils import live_processes_of

STDIO = Problem("io", "add two numbers", hidden_tests=(
    Case("stdio", "1 2\n", "3\n"), Case("stdio", "5 5\n", "10\n"), Case("stdio", "0 0\n", "0\n")),
    example_tests=(Case("stdio", "1 2\n", "3\n"),))
CALL = Problem("call", "add", fn_name="add", hidden_tests=(
    Case("call", [1, 2], 3), Case("call", [2, 2], [4]), Case("call", [[1], [2]], [1, 2])))
ASSERT = Problem("assert", "add", test_setup="import math", hidden_tests=(
    Case("assert", "assert add(1, 2) == 3"), Case("assert", "assert add(2, 2) == 4"),
    Case("assert", "assert math.isclose(add(0.1, 0.2), 0.3)")))

ADD_STDIO = "a, b = map(int, input().split())\nprint(a + b)\n"
ADD_FN = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def executor():
    with Executor(2, timeout=2.0) as ex:
        yield ex


def run1(executor, problem, code, **kw) -> Verdict:
    return executor.submit(problem, code, **kw).result(timeout=60)


def test_passing_programs_of_each_kind(executor):
    for problem, code in ((STDIO, ADD_STDIO), (CALL, ADD_FN), (ASSERT, ADD_FN)):
        v = run1(executor, problem, code)
        assert v == Verdict(outcomes.PASSED_TEST, None, (True, True, True), 1.0, ""), problem


def test_stdin_forms_and_exit_after_printing(executor):
    # open(0), sys.stdin.buffer and exit() after the answer are all normal stdin programs.
    code = "import sys\nprint(sum(map(int, open(0).read().split())))\nsys.exit(0)\n"
    assert run1(executor, STDIO, code).passed
    code = "import sys\nd = sys.stdin.buffer.read().split()\nsys.stdout.buffer.write(b'%d\\n' % (int(d[0]) + int(d[1])))"
    assert run1(executor, STDIO, code).passed
    code = "import os\nos.write(1, (str(sum(map(int, input().split()))) + '\\n').encode())"
    assert run1(executor, STDIO, code).passed


def test_wrong_answers_are_failed_tests(executor):
    v = run1(executor, STDIO, "print(3)")
    assert (v.outcome, v.error_type, v.test_results, v.reward) == (
        outcomes.FAILED_TEST, None, (True, False, False), outcomes.RETURNS[outcomes.FAILED_TEST])
    v = run1(executor, CALL, "def add(a, b):\n    return 3")
    assert v.test_results == (True, False, False)


@pytest.mark.parametrize("code,error", [
    ("def f(:\n", "syntaxerror"),
    ("def f():\nreturn 1\n", "indentationerror"),
    ("if True:\n\tx = 1\n        y = 2\n", "taberror"),
])
def test_compile_errors(executor, code, error):
    v = run1(executor, CALL, code)
    assert (v.outcome, v.error_type, v.reward) == (outcomes.COMPILE_ERROR, error, -1.0)
    assert v.test_results == (outcomes.TEST_RESULT_COMPILE_ERROR,) * 3


@pytest.mark.parametrize("body,error", [
    ("return undefined_name", "nameerror"),
    ("return [][a]", "indexerror"),
    ("return {}[a]", "keyerror"),
    ("return a / 0", "zerodivisionerror"),
    ("return None + a", "typeerror"),
    ("return int('x')", "valueerror"),
    ("return a.nope", "attributeerror"),
])
def test_runtime_error_subtypes(executor, body, error):
    v = run1(executor, CALL, f"def add(a, b):\n    {body}\n")
    assert (v.outcome, v.error_type, v.reward) == (outcomes.RUNTIME_ERROR, error, -0.6)
    assert v.test_results[0] == outcomes.TEST_RESULT_RUNTIME_ERROR


def test_eof_and_timeout_subtypes(executor):
    v = run1(executor, STDIO, "input()\ninput()\n")
    assert (v.outcome, v.error_type) == (outcomes.RUNTIME_ERROR, "eoferror")
    v = run1(executor, STDIO, "while True:\n    pass\n")
    assert (v.outcome, v.error_type) == (outcomes.RUNTIME_ERROR, "timeoutexception")


def test_mixed_results_follow_apps_precedence(executor):
    # Runtime error on one test and a wrong answer on another -> RuntimeError (CodeRL order).
    code = "def add(a, b):\n    if a == 2:\n        raise KeyError(a)\n    return 0\n"
    v = run1(executor, CALL, code)
    assert v.test_results == (False, -1, False)
    assert (v.outcome, v.error_type) == (outcomes.RUNTIME_ERROR, "keyerror")


def test_stop_at_first_failure(executor):
    v = run1(executor, STDIO, "print(3)", stop_at_first_failure=True)
    assert v.outcome == outcomes.FAILED_TEST and v.test_results == (True, False)
    v = run1(executor, STDIO, "print(0)", stop_at_first_failure=True)
    assert v.test_results == (False,)


def test_example_tests(executor):
    assert run1(executor, STDIO, "print(3)", tests="example").test_results == (True,)


def test_apps_solution_class_and_wrapped_outputs(executor):
    code = "class Solution:\n    def add(self, a, b):\n        return a + b\n"
    assert run1(executor, CALL, code).passed


def test_call_arguments_are_fresh_per_test(executor):
    problem = Problem("mut", "", fn_name="f", hidden_tests=(Case("call", [[1]], 1),) * 2)
    assert run1(executor, problem, "def f(x):\n    x.append(2)\n    return len(x) - 1\n").passed


def test_assert_tests_mbpp_setup_and_state(executor):
    # test_setup runs after the program; module state carries over between asserts.
    problem = Problem("s", "", test_setup="BASE = 10", hidden_tests=(
        Case("assert", "assert f() == 11"), Case("assert", "assert f() == 12")))
    code = "n = 0\ndef f():\n    global n\n    n += 1\n    return BASE + n\n"
    assert run1(executor, problem, code).passed


def test_assert_modes():
    setup = "import math\ndef helper(x):\n    return x"
    problem = Problem("m", "", test_setup=setup, hidden_tests=(
        Case("assert", "assert f(1) == [1, (2,)]"), Case("assert", "assert 3 == f(2)"),
        Case("assert", "assert not f(3)"), Case("assert", "assert f(4)"),
        Case("assert", "assert set(f(5)) == {1}"), Case("assert", "assert f(6) < 2"),
        Case("assert", "assert math.isclose(f(7), 0.25)"), Case("assert", "assert all(f(8))"),
        Case("assert", "assert helper(f(9))"), Case("assert", "assert f(10)[0]")))
    part_a, part_b = build_job(problem, problem.hidden_tests)
    modes = ["value", "value", "truth", "truth", "value"] + ["worker"] * 5
    assert [t["mode"] for t in part_a["inputs"]] == modes == part_b["modes"]
    # The expected side of split asserts never goes to the child.
    assert [t["src"] for t in part_a["inputs"][:3]] == ["(f(1))", "(f(2))", "(f(3))"]
    assert part_b["expected"][:4] == ["([1, (2,)])", "(3)", False, True]
    assert "{1}" not in str(part_a)
    # Nor does any part of a worker-judged test: the worker runs it, f is a stub there.
    assert all(t == {"mode": "worker"} for t in part_a["inputs"][5:])
    assert "0.25" not in str(part_a) and "isclose" not in str(part_a)
    worker = part_b["worker"]
    assert worker["tests"][5:] == [c.input for c in problem.hidden_tests[5:]]
    assert worker["stubs"] == ["f"] and worker["modules"] == []
    assert worker["setup"] == problem.test_setup


def test_humaneval_test_code_stays_in_the_worker():
    prompt = 'def poly(xs, x):\n    return 0\n\n\ndef inc(x):\n    """x + 1"""\n'
    test = "METADATA = {}\n\ndef check(candidate):\n    assert candidate(1) == 2\n"
    problem = Problem("he", prompt, fn_name="inc", test_setup=test, source="humaneval",
                      hidden_tests=(Case("assert", "check(inc)"),))
    part_a, part_b = build_job(problem, problem.hidden_tests)
    assert part_a["inputs"] == [{"mode": "worker"}] and part_a["setup"] is None
    assert "check" not in str(part_a) and "== 2" not in str(part_a)
    # The prompt's helpers (poly) are the dataset's; only the entry point is the program's.
    assert part_b["worker"] == {"setup": prompt + "\n" + test, "tests": ["check(inc)"],
                                "stubs": ["inc"], "modules": []}


def test_worker_spec_names():
    """Names a worker-judged assert reads: a standard module used as module.attr is
    imported by the worker, builtins stay builtins, every other free name is the program's."""
    problem = Problem("n", "", test_setup="from math import pi as PI", hidden_tests=(
        Case("assert", "assert tuple_size((1, 2)) == sys.getsizeof((1, 2))"),
        Case("assert", "assert sorted(g(x) for x in range(3)) <= [PI, string(1)]"),
        Case("assert", "assert (lambda t: t + h(1))(2) > 0")))
    _, part_b = build_job(problem, problem.hidden_tests)
    assert part_b["worker"]["stubs"] == ["g", "h", "string", "tuple_size"]
    assert part_b["worker"]["modules"] == ["sys"]


TRICKY_ASSERTS = [
    "assert f(1) == [1, (2,)]", "assert 3 == f(2)", "assert not f(3)", "assert f(4)",
    "assert (f(1)) == (2)", "assert f((1, 2)) == (1,)", "assert f('é', 'x') == 'éx'",
    "assert f(1,\n   2) == ('a'\n  'b')", "assert f(1) == \\\n  -1",
    "assert (y := f(2)) == 3", "assert f(x for x in 'ab') == {'a': [1]}",
    "assert not (f(1) or g)", "assert f.attr[0]", "  assert  f( 1 )  ==  2  # note",
]


@pytest.mark.parametrize("source", TRICKY_ASSERTS)
def test_split_assert_source_equals_unparse(source):
    _check_split_assert(source)


def test_split_assert_source_equals_unparse_on_mbpp(benchmark_data):
    from coderl_jax.data import loaders

    for problem in loaders.load_problems("mbpp", benchmark_data / "mbpp" / "mbpp.jsonl"):
        for case in problem.hidden_tests:
            _check_split_assert(case.input)


def _check_split_assert(source):
    """The text sent for each side is the expression `ast.unparse` gives (the reference)."""
    import ast

    from coderl_jax.sandbox.executor import _split_assert

    mode, src, want = _split_assert(source.strip())
    if mode == "worker":
        return
    test = ast.parse(source.strip()).body[0].test
    if mode == "truth":
        node = test.operand if isinstance(test, ast.UnaryOp) else test
        nodes = [node]
    else:
        nodes = [test.left, test.comparators[0]]
        if not _is_literal(nodes[1]):  # `assert LITERAL == EXPR`
            nodes.reverse()
        assert ast.literal_eval(want) == ast.literal_eval(ast.unparse(nodes[1]))
        assert ast.dump(ast.parse(want, mode="eval").body) == ast.dump(
            ast.parse(ast.unparse(nodes[1]), mode="eval").body)
    assert ast.dump(ast.parse(src, mode="eval").body) == ast.dump(
        ast.parse(ast.unparse(nodes[0]), mode="eval").body)


def _is_literal(node):
    import ast

    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def test_program_environment_is_minimal(executor):
    # Worker-only settings (LD_BIND_NOW, PYTHONPATH) and the caller's variables never reach
    # programs.
    problem = Problem("env", "", hidden_tests=(Case("assert", "assert f() == []"),))
    code = ("import os\nKEEP = {'PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', "
            "'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'}\n"
            "def f():\n    return sorted(set(os.environ) - KEEP)\n")
    verdict = run1(executor, problem, code)
    assert verdict.passed, verdict


def test_private_tmp_is_emptied_between_programs():
    # What one program leaves in the private /tmp, /var/tmp, /dev/shm is gone for the next
    # (the worker skips the listing only when the tmpfs inode count proves it empty).
    with Executor(1, timeout=5.0) as ex:
        if ex.isolation.get("mount_namespace") is not True:
            pytest.skip("no private /tmp here (needs root and mount namespaces)")
        writer = Problem("w", "", hidden_tests=(Case("assert", "assert f() == 1"),))
        litter = (
            "import os\ndef f():\n"
            "    for d in ('/tmp', '/var/tmp', '/dev/shm'):\n"
            "        if not os.path.isdir(d):\n            continue\n"
            "        os.makedirs(d + '/a/b', exist_ok=True)\n"
            "        open(d + '/a/b/f', 'w').write('x')\n"
            "        open(d + '/g', 'w').write('x')\n"
            "        os.link(d + '/g', d + '/h')\n"
            "        os.symlink('/etc/passwd', d + '/s')\n"
            "        os.mkfifo(d + '/p')\n"
            "    return 1\n")
        reader = Problem("r", "", hidden_tests=(Case("assert", "assert f() == []"),))
        look = ("import os\ndef f():\n"
                "    return [(d, os.listdir(d)) for d in ('/tmp', '/var/tmp', '/dev/shm')\n"
                "            if os.path.isdir(d) and os.listdir(d)]\n")
        for _ in range(2):
            assert run1(ex, writer, litter).passed
            verdict = run1(ex, reader, look)
            assert verdict.passed, verdict
            assert run1(ex, reader, look).passed  # and when nothing was written


def test_humaneval_style_check(executor):
    problem = Problem("he", "def inc(x):\n", fn_name="inc",
                      test_setup="def check(candidate):\n    assert candidate(1) == 2\n",
                      hidden_tests=(Case("assert", "check(inc)"),))
    assert run1(executor, problem, "def inc(x):\n    return x + 1\n").passed
    # The assert fails in the worker, on the program's plain answer: a wrong answer.
    v = run1(executor, problem, "def inc(x):\n    return x\n")
    assert (v.outcome, v.error_type, v.test_results) == (outcomes.FAILED_TEST, None, (False,))


@pytest.mark.parametrize("result", ["object()", "float('nan')", "[1, iter(())]",
                                    "type('S', (str,), {})('x').__iter__()"])
@pytest.mark.parametrize("problem", [
    Problem("u-call", "", fn_name="f", hidden_tests=(Case("call", [1], 1),)),
    Problem("u-value", "", hidden_tests=(Case("assert", "assert f(1) == 1"),)),
    Problem("u-worker", "", hidden_tests=(Case("assert", "assert f(1) < 2"),)),
    Problem("u-check", 'def f(x):\n    """"""\n', fn_name="f", source="humaneval",
            test_setup="def check(candidate):\n    assert candidate(1) == 1\n",
            hidden_tests=(Case("assert", "check(f)"),)),
], ids=lambda p: p.task_id)
def test_unencodable_results_are_failed_tests(executor, problem, result):
    """A result that is not made of plain built-in values is a wrong answer, not an error
    of the program (it ran to its end): FailedTest, in every mode."""
    v = run1(executor, problem, f"def f(x):\n    return {result}\n")
    assert (v.outcome, v.error_type, v.test_results) == (outcomes.FAILED_TEST, None, (False,))
    assert "not plain" in v.detail or "unsupported" in v.detail or "nan" in v.detail, v


def test_no_tests_is_an_internal_error(executor):
    v = run1(executor, Problem("empty", ""), "print(1)")
    assert v.outcome == outcomes.INTERNAL_ERROR and v.reward is None and "no hidden" in v.detail


def test_run_keeps_order_and_pool_is_reused(executor):
    jobs = [(CALL, ADD_FN if i % 3 else "def add(a, b): return 0") for i in range(30)]
    verdicts = executor.run(jobs)
    assert [v.passed for v in verdicts] == [bool(i % 3) for i in range(30)]


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and uid drop need root")
def test_isolation_as_root(executor):
    report = executor.isolation
    assert report["network_namespace"] is True
    assert report["mount_namespace"] is True and report["pid_namespace"] is True
    problem = Problem("id", "", fn_name="f", hidden_tests=(Case("call", [], True),))
    probe = ("import os, socket\n"
             "def f():\n"
             "    return (os.getuid() >= 1000000 and os.getgid() >= 1000000 and "
             "os.getpgid(0) == os.getpid() and os.getcwd() == '/tmp' and "
             "os.listdir('/tmp') == [] and os.listdir('/root') == ['.pyenv'])\n")
    assert run1(executor, problem, probe).passed


def test_workers_never_import_jax(executor):
    pytest.importorskip("jax")
    import jax  # noqa: F401  (in this process, like the RL loop)

    with Executor(1, timeout=2.0) as ex:
        problem = Problem("j", "", fn_name="f", hidden_tests=(Case("call", [], False),))
        assert run1(ex, problem, "import sys\ndef f():\n    return 'jax' in sys.modules\n").passed
    assert "jax" in sys.modules


def test_closed_executor_rejects_work():
    ex = Executor(1, timeout=1.0)
    ex.close()
    ex.close()  # idempotent
    with pytest.raises(RuntimeError):
        ex.submit(CALL, ADD_FN)


def test_a_dead_worker_is_an_internal_error_and_is_replaced():
    import signal
    import time

    with Executor(1, timeout=5.0) as ex:
        future = ex.submit(STDIO, "import time\ntime.sleep(30)")
        time.sleep(0.5)  # let it start
        os.kill(ex._workers[0].proc.pid, signal.SIGKILL)
        v = future.result(timeout=30)
        assert v.outcome == outcomes.INTERNAL_ERROR and v.reward is None
        assert run1(ex, STDIO, ADD_STDIO).passed  # a fresh worker took over
        if ex.sandbox_uids:
            deadline = time.monotonic() + 5
            while live_processes_of(set(ex.sandbox_uids)) and time.monotonic() < deadline:
                time.sleep(0.05)  # the orphaned program dies with its PID namespace
            assert live_processes_of(set(ex.sandbox_uids)) == []


def test_close_leaves_nothing_running():
    ex = Executor(2, timeout=5.0)
    futures = [ex.submit(STDIO, "import time\ntime.sleep(30)") for _ in range(2)]
    workers = [w.proc for w in ex._workers]
    uids = set(ex.sandbox_uids)
    ex._workers[0].proc.kill()  # a crash while busy...
    ex._workers[1].proc.kill()
    ex.close()  # ...and close() still returns, and every future is resolved
    assert all(f.done() and not f.result().passed for f in futures)
    assert all(p.poll() is not None for p in workers)
    if uids:
        assert live_processes_of(uids) == []


def test_bad_arguments_fail_early(executor):
    with pytest.raises(ValueError, match="'hidden' or 'example'"):
        executor.submit(CALL, ADD_FN, tests="secret")
    with pytest.raises(TypeError, match="code must be a str"):
        executor.submit(CALL, b"def add(a, b): return a + b")
    with pytest.raises(ValueError, match="timeout must be positive"):
        Executor(1, timeout=0)
    mixed = Problem("mixed", "", fn_name="f", hidden_tests=(Case("call", [1], 1),
                                                            Case("stdio", "", "")))
    v = run1(executor, mixed, "def f(x): return x")
    assert v.outcome == outcomes.INTERNAL_ERROR and "mix kinds" in v.detail


def test_unprivileged_path_still_judges_and_reaps():
    """The path taken without root: no namespaces or uid drop, but a process group, limits,
    a scratch dir and subreaper-based reaping. Checked even when the tests run as root."""
    import time

    with Executor(1, timeout=0.5, privileged=False, memory_mb=512) as ex:
        report = ex.isolation
        assert report["root"] is False and report["uid"] is None
        assert report["mount_namespace"] == "not root: skipped"
        assert run1(ex, STDIO, ADD_STDIO).passed
        assert run1(ex, CALL, ADD_FN).passed
        marker = f"coderl_unpriv_{os.getpid()}"
        escape = ("import os, sys, time\n"
                  "if os.fork() == 0:\n"
                  "    os.setsid()\n"
                  f"    sys.argv[0] = {marker!r}\n"
                  "    open(os.path.join(os.getcwd(), 'x'), 'w').write('x')\n"
                  "    time.sleep(1000)\n"
                  "time.sleep(0.2)\n"
                  "raise ValueError(os.getcwd())\n")
        v = run1(ex, STDIO, escape)
        assert (v.outcome, v.error_type) == (outcomes.RUNTIME_ERROR, "valueerror")
        scratch = v.detail.split("ValueError: ")[1]
        assert not os.path.exists(scratch)  # the scratch dir is gone
        # The escaped grandchild (own session) was found through the subreaper and killed.
        worker_pid = ex._workers[0].proc.pid
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            children = open(f"/proc/{worker_pid}/task/{worker_pid}/children").read().split()
            if not children:
                break
            time.sleep(0.05)
        assert children == []
        v = run1(ex, STDIO, "while True:\n    pass\n")
        assert (v.outcome, v.error_type) == (outcomes.RUNTIME_ERROR, "timeoutexception")
