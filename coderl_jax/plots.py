"""PNG plots of an evaluation report (the dict of `coderl_jax.metrics.evaluate`).

matplotlib is imported inside the functions, with the non-interactive Agg backend, so importing
this module is free and plotting works on headless machines.
"""

from __future__ import annotations

import pathlib
from typing import Mapping


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pass_at_k(report: Mapping, path: pathlib.Path) -> pathlib.Path:
    """pass@k (percent) against k, one line per difficulty and one for all problems."""
    plt = _pyplot()
    keys = [key for key in report if key.startswith("pass@")]
    ks = [int(key.split("@")[1]) for key in keys]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    series = [*report["by_difficulty"].items(), ("All", report)]
    for name, summary in series:
        ax.plot(ks, [summary[key] for key in keys], marker="o",
                label=f"{name} ({summary['num_problems']})",
                linewidth=2.5 if name == "All" else 1.2)
    if len(ks) > 1 and max(ks) / min(ks) >= 10:
        ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    # A rate axis: never zoom in on an all-zero (or tiny) curve as if it were a signal.
    highest = max((summary[key] for _, summary in series for key in keys), default=0.0)
    ax.set_ylim(0, min(100.0, max(10.0, 1.15 * highest)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_outcomes(report: Mapping, path: pathlib.Path) -> pathlib.Path:
    """Share of samples per outcome (paper Fig. 8), InternalError included when present."""
    plt = _pyplot()
    counts = {o: c for o, c in report["outcomes"].items() if c or o != "InternalError"}
    total = sum(counts.values())
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bars = ax.bar(list(counts), [100.0 * c / total for c in counts.values()],
                  color=["#d62728", "#ff7f0e", "#bcbd22", "#2ca02c", "#7f7f7f"][: len(counts)])
    ax.bar_label(bars, labels=[str(c) for c in counts.values()], fontsize="small")
    ax.set_ylabel(f"% of {total} samples")
    ax.tick_params(axis="x", labelsize="small")
    return _save(fig, path)


def plot_error_types(report: Mapping, path: pathlib.Path) -> pathlib.Path:
    """Error-subtype histogram (paper Fig. 10): horizontal bars, colored by outcome."""
    plt = _pyplot()
    labels, values, outcomes = [], [], []
    for outcome, hist in report["error_types"].items():
        for error_type, count in hist.items():
            labels.append(error_type)
            values.append(count)
            outcomes.append(outcome)
    fig, ax = plt.subplots(figsize=(5, 0.8 + 0.3 * max(len(labels), 1)))
    if labels:
        palette = {o: f"C{i}" for i, o in enumerate(dict.fromkeys(outcomes))}
        ax.barh(range(len(labels)), values, color=[palette[o] for o in outcomes])
        ax.set_yticks(range(len(labels)), labels, fontsize="small")
        ax.invert_yaxis()
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in palette.values()]
        ax.legend(handles, list(palette), fontsize="small")
    else:
        ax.text(0.5, 0.5, "no errors", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("samples")
    return _save(fig, path)


def plot_report(report: Mapping, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """All plots of a report into `out_dir`; returns the files written."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_pass_at_k(report, out_dir / "pass_at_k.png"),
        plot_outcomes(report, out_dir / "outcomes.png"),
        plot_error_types(report, out_dir / "error_types.png"),
    ]


def _save(fig, path: pathlib.Path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return pathlib.Path(path)


def plot_systems_pass_at_k(curves: Mapping[str, Mapping[int, float]],
                           path: pathlib.Path) -> pathlib.Path:
    """pass@k (percent) against k for several systems (e.g. CE, CE+, CodeRL, + critic
    sampling) on the same problems: {system: {k: pass@k}}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    highest = 0.0
    for name, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], marker="o", label=name)
        highest = max([highest, *curve.values()])
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    ax.set_ylim(0, min(100.0, max(10.0, 1.15 * highest)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_systems_outcomes(reports: Mapping[str, Mapping], path: pathlib.Path) -> pathlib.Path:
    """Outcome shares of several systems' samples side by side (paper Fig. 8)."""
    plt = _pyplot()
    names = list(reports)
    outcome_names = [o for o in next(iter(reports.values()))["outcomes"]
                     if o != "InternalError" or any(r["outcomes"].get(o) for r in reports.values())]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        counts = reports[name]["outcomes"]
        total = max(sum(counts.values()), 1)
        xs = [j + i * width for j in range(len(outcome_names))]
        ax.bar(xs, [100.0 * counts.get(o, 0) / total for o in outcome_names], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(outcome_names))], outcome_names)
    ax.tick_params(axis="x", labelsize="small")
    ax.set_ylabel("% of samples")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
