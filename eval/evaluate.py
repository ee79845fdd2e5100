"""`coderl evaluate`: pass@k / n@k tables, a JSON summary and plots from results files.

    coderl evaluate --results RESULTS.jsonl [--example-results RESULTS_EXAMPLE.jsonl] \
        [--k 1,5,100] [--n 1,5] [--json OUT.json] [--plots DIR] \
        [--problems-dataset apps --data /path/to/apps/train.jsonl]

The logic lives in `coderl_jax.metrics` (and `coderl_jax.plots`); this main only wires files.
It never imports JAX: results are plain JSON, and matplotlib is loaded only with --plots.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

# Used when --k is not given: the largest of these not above the fewest samples of a problem.
DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 100, 1000)
DEFAULT_NS: tuple[int, ...] = (1, 5)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, type=pathlib.Path,
                        help="results file of the hidden tests (from `coderl execute`)")
    parser.add_argument("--example-results", type=pathlib.Path, default=None,
                        help="results file of the same samples on the example tests; enables n@k")
    parser.add_argument("--k", type=_int_list, default=None,
                        help="comma-separated k for pass@k (default: those of "
                        f"{','.join(map(str, DEFAULT_KS))} that every problem has samples for)")
    parser.add_argument("--n", type=_int_list, default=list(DEFAULT_NS),
                        help="comma-separated n for n@k, each paired with every k >= n "
                        "(default: 1,5; needs --example-results)")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="write the summary here")
    parser.add_argument("--plots", type=pathlib.Path, default=None,
                        help="write PNG plots (pass@k, outcomes, error subtypes) to this folder")
    parser.add_argument("--problems-dataset", default=None,
                        help="data set name of the problems (apps, mbpp, humaneval, synthetic), "
                        "for the difficulty breakdown")
    parser.add_argument("--data", default=None,
                        help="path of the problems data (with --problems-dataset; synthetic: "
                        "optional, default the embedded test split)")


def _difficulties(dataset: str, path: str | None) -> dict[str, str]:
    from coderl_jax.data import loaders

    return {p.task_id: p.difficulty for p in loaders.load_problems(dataset, path)}


def main(args: argparse.Namespace) -> int:
    # Bad input (a malformed results file, a k above some problem's sample count, results
    # that do not match the problems) is reported as one line naming what is wrong.
    try:
        return _evaluate(args)
    except ValueError as e:
        print(f"coderl evaluate: error: {e}", file=sys.stderr)
        return 2


def _evaluate(args: argparse.Namespace) -> int:
    from coderl_jax import metrics
    from coderl_jax.data.jsonl import read_results

    rows = read_results(args.results)
    example_rows = read_results(args.example_results) if args.example_results else None
    if not rows:
        raise ValueError(f"{args.results}: no results")

    groups = metrics.group_by_task(rows)
    fewest = min(len(g) for g in groups.values())
    ks = args.k
    if ks is None:
        ks = [k for k in DEFAULT_KS if k <= fewest]
        print(f"--k not given: using k={','.join(map(str, ks))} "
              f"(every problem has >= {fewest} samples)")
    n_at_k = []
    if example_rows is not None:
        n_at_k = [(n, k) for n in args.n for k in ks if n <= k]

    difficulties = None
    if args.problems_dataset:
        difficulties = _difficulties(args.problems_dataset, args.data)
        unused = len(set(difficulties) - set(groups))
        if unused:
            print(f"note: {unused} problem(s) of the data set have no results and are not scored")

    report = metrics.evaluate(rows, ks, n_at_k, example_rows, difficulties)
    print(metrics.markdown_table(report))
    counts = report["outcomes"]
    print("\noutcomes: " + ", ".join(f"{o} {c}" for o, c in counts.items()))
    if report["num_internal_errors"]:
        print(f"warning: {report['num_internal_errors']} sample(s) could not be judged "
              "(InternalError); they count as not passed")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plots:
        from coderl_jax import plots

        for path in plots.plot_report(report, args.plots):
            print(f"wrote {path}")
    return 0
