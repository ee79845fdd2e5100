"""Statistics over demo runs: each system's mean and spread over seeds, and a paired
bootstrap of one system against another per problem, pooled over seeds.

    python -m coderl_jax.demo.stats demo_seed0 demo_seed1 ...   # workdirs or report.json
    python -m coderl_jax.demo.stats --a coderl --b ce_plus --json out.json runs/seed*

A report.json's systems carry "per_problem" ({task id: pass@1 in [0, 1]} of that seed's
test problems, `demo/evaluation.py`). The bootstrap resamples problems with replacement
inside each seed (the pairs stay paired: a problem's A and B values move together; seeds
are strata), and gives the mean difference A - B in points with its percentile interval
and the share of resamples <= 0. Pure numpy.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

SYSTEMS = ("ce", "ce_plus", "coderl", "coderl_cs")


def load_reports(paths: Sequence[str]) -> list[dict]:
    """report.json dicts from workdirs (their report.json) or report.json files."""
    out = []
    for p in map(pathlib.Path, paths):
        out.append(json.loads((p / "report.json" if p.is_dir() else p).read_text()))
    return out


def paired_differences(reports: Sequence[dict], a: str, b: str) -> list[np.ndarray]:
    """Per seed, the per-problem differences a - b (in points) over the problems both
    systems have; [n_problems] arrays, one per report."""
    out = []
    for r in reports:
        pa, pb = r[a]["per_problem"], r[b]["per_problem"]
        common = sorted(set(pa) & set(pb))
        out.append(100.0 * (np.array([pa[t] for t in common], np.float64)
                            - np.array([pb[t] for t in common], np.float64)))
    return out


def paired_bootstrap(diffs: Sequence[np.ndarray], *, resamples: int = 10_000,
                     seed: int = 0, level: float = 0.95) -> dict:
    """Mean paired difference pooled over seeds (every problem of every seed weighs the
    same), its bootstrap interval (problems resampled within each seed) and the share of
    resamples <= 0 (a one-sided p-value for "A beats B")."""
    diffs = [np.asarray(d, np.float64) for d in diffs if len(d)]
    if not diffs:
        raise ValueError("paired_bootstrap: no paired problems")
    rng = np.random.default_rng(seed)
    total = sum(len(d) for d in diffs)
    means = np.zeros(resamples)
    for d in diffs:
        idx = rng.integers(0, len(d), size=(resamples, len(d)))
        means += d[idx].sum(axis=1)
    means /= total
    alpha = (1.0 - level) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean_difference": float(np.concatenate(diffs).mean()),
            "interval": [float(low), float(high)], "level": level,
            "share_at_or_below_zero": float((means <= 0).mean()),
            "problems": int(total), "seeds": len(diffs)}


def system_summary(reports: Sequence[dict], keys: Sequence[str]) -> dict:
    """{system: {key: {"mean", "std", "min", "max", "values"}}} over the reports (seeds);
    std is the sample std (ddof 1; 0 with one seed)."""
    out = {}
    for system in SYSTEMS:
        if not all(system in r for r in reports):
            continue
        out[system] = {}
        for key in keys:
            values = [float(r[system][key]) for r in reports if key in r[system]]
            if not values:
                continue
            v = np.asarray(values)
            out[system][key] = {"mean": float(v.mean()),
                                "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                                "min": float(v.min()), "max": float(v.max()),
                                "values": values}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="demo workdirs or report.json files")
    parser.add_argument("--a", default="coderl")
    parser.add_argument("--b", default="ce_plus")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--json", default=None, help="write the statistics here too")
    args = parser.parse_args(argv)
    reports = load_reports(args.reports)
    keys = [k for k in ("pass@1", "pass@5", "pass@10", "pass@20") if k in reports[0]["ce"]]
    summary = system_summary(reports, keys)
    test = paired_bootstrap(paired_differences(reports, args.a, args.b),
                            resamples=args.resamples)
    print(f"{len(reports)} seed(s); mean (std) [min, max] in %")
    for system, entry in summary.items():
        print(f"  {system:<10}" + "  ".join(
            f"{k} {v['mean']:.1f} ({v['std']:.1f}) [{v['min']:.1f}, {v['max']:.1f}]"
            for k, v in entry.items()))
    print(f"paired bootstrap {args.a} - {args.b} (pass@1, points, {test['problems']} "
          f"problems over {test['seeds']} seeds): {test['mean_difference']:+.2f}, "
          f"{int(test['level'] * 100)}% interval [{test['interval'][0]:+.2f}, "
          f"{test['interval'][1]:+.2f}], share <= 0: {test['share_at_or_below_zero']:.3f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"summary": summary, "paired_bootstrap": {"a": args.a, "b": args.b, **test}},
            indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
