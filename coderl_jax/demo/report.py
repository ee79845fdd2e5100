"""The demo's report: report.md (the systems side by side), report.json and plots/.

`render_report` is a pure function of the result dict `run_demo` builds; `write_report`
writes the three outputs.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from coderl_jax.demo.config import SYSTEM_NAMES, SYSTEMS, DemoConfig

# The keys every report.json has (issue 19): the systems, both critics beside their
# majority-class baselines, the run's time and its stages' times.
REPORT_KEYS = (*SYSTEMS, "critic_accuracy", "binary_critic_accuracy",
               "critic_majority_baseline", "binary_critic_majority_baseline", "seconds",
               "stages")
OUTCOME_COLUMNS = ("CompileError", "RuntimeError", "FailedTest", "PassedTest", "InternalError")


def _pct(x: float) -> str:
    return f"{x:.1f}"


def render_report(result: dict, cfg: DemoConfig) -> str:
    """report.md: the four systems side by side, by difficulty, critics, outcomes."""
    lines = [*_header(result, cfg), *_pass_at_k_table(result, cfg),
             *_difficulty_table(result), *_critics(result), *_outcome_table(result),
             *_error_subtypes(result), *_critic_sampling_paths(result),
             *_ablation_table(result, cfg), *_objective_table(result, cfg),
             *_cs_ablation_table(result, cfg),
             *_stage_times(result)]
    return "\n".join(lines) + "\n"


def _header(result: dict, cfg: DemoConfig) -> list[str]:
    return ["# coderl demo", "",
            f"Synthetic benchmark: {cfg.num_train_problems} train / {cfg.num_test_problems} "
            f"test problems (disjoint compositions), {cfg.eval_samples} samples per test "
            f"problem (temperature {cfg.temperature}, top-p {cfg.top_p}), seed {cfg.seed}. "
            f"Total {result['seconds']:.0f} s.", ""]


def _pass_at_k_table(result: dict, cfg: DemoConfig) -> list[str]:
    from coderl_jax.demo.evaluation import REPORTED_K

    n, k5 = cfg.eval_samples, min(5, cfg.eval_samples)
    ks = sorted({k for k in REPORTED_K if k <= n} | {n})
    lines = ["## pass@k and n@k on the test split (%)", "",
             "| system | " + " | ".join(f"pass@{k}" for k in ks) + f" | 1@{n} | {k5}@{n} |",
             "|---|" + "---:|" * (len(ks) + 2)]
    for key in SYSTEMS:
        r = result[key]
        lines.append(f"| {SYSTEM_NAMES[key]} | "
                     + " | ".join(_pct(r[f"pass@{k}"]) for k in ks)
                     + f" | {_pct(r['n@k'][f'1@{n}'])} | {_pct(r['n@k'][f'{k5}@{n}'])} |")
    return lines


def _difficulty_table(result: dict) -> list[str]:
    from coderl_jax import metrics

    ce = result["ce"]["by_difficulty"]
    levels = sorted(ce, key=metrics.difficulty_sort_key)
    lines = ["", "## pass@1 by difficulty (%)", "",
             "| system | " + " | ".join(f"{lv} ({ce[lv]['num_problems']})" for lv in levels)
             + " |",
             "|---|" + "---:|" * len(levels)]
    for key in SYSTEMS:
        by = result[key]["by_difficulty"]
        lines.append(f"| {SYSTEM_NAMES[key]} | " + " | ".join(
            _pct(by[lv]["pass@1"]) if lv in by else "-" for lv in levels) + " |")
    return lines


def _critics(result: dict) -> list[str]:
    lines = ["", "## Critics (held-out problems of the train split)", "",
             "| critic | accuracy | majority-class baseline | balanced accuracy | recall |",
             "|---|---:|---:|---:|---|"]
    for name, key in (("4-class", "critic"), ("binary", "binary_critic")):
        d = result.get(f"{key}_accuracy_detail", {})
        recall = ", ".join(f"{c} {'-' if v is None else f'{v:.2f}'}"
                           for c, v in d.get("recall", {}).items())
        lines.append(f"| {name} | {result[f'{key}_accuracy']:.3f} | "
                     f"{result.get(f'{key}_majority_baseline', float('nan')):.3f} "
                     f"({d.get('majority_class', '-')}) | "
                     f"{d.get('balanced_accuracy', float('nan')):.3f} | {recall} |")
    return lines + ["", "(paper: 4-class accuracy > 0.75 on APPS)"]


def _outcome_table(result: dict) -> list[str]:
    lines = ["", "## Outcomes of the test samples (paper Fig. 8)", "",
             "| system | " + " | ".join(OUTCOME_COLUMNS) + " |",
             "|---|" + "---:|" * len(OUTCOME_COLUMNS)]
    for key in SYSTEMS:
        o = result[key]["outcomes"]
        lines.append(f"| {SYSTEM_NAMES[key]} | "
                     + " | ".join(str(o.get(name, 0)) for name in OUTCOME_COLUMNS) + " |")
    return lines


def _error_subtypes(result: dict) -> list[str]:
    lines = ["", "## Error subtypes (paper Fig. 10)", ""]
    for key in SYSTEMS:
        subtypes = result[key]["error_types"]
        flat = ", ".join(f"{o}/{t} {c}" for o, ts in subtypes.items() for t, c in ts.items())
        lines.append(f"- {SYSTEM_NAMES[key]}: {flat or 'none'}")
    return lines


def _critic_sampling_paths(result: dict) -> list[str]:
    if "critic_sampling" not in result:
        return []
    lines = ["", "## Critic sampling paths (test problems)", "",
             ", ".join(f"{k} {v}" for k, v in result["critic_sampling"].items()), "",
             "| path | problems | CodeRL sample pass rate | + critic sampling |",
             "|---|---:|---:|---:|"]
    for mode, entry in result.get("critic_sampling_by_path", {}).items():
        lines.append(f"| {mode} | {entry['problems']} | {_pct(entry['coderl'])} | "
                     f"{_pct(entry['coderl_cs'])} |")
    return lines


def _ablation_table(result: dict, cfg: DemoConfig) -> list[str]:
    if "ablation" not in result:
        return []
    n = cfg.eval_samples
    lines = ["", "## Return estimators (same budget and seed)", "",
             f"| estimator | pass@1 | pass@{n} | train sample pass rate (last step) |",
             "|---|---:|---:|---:|"]
    for name, row in result["ablation"].items():
        lines.append(f"| {name} | {_pct(row['pass@1'])} | {_pct(row[f'pass@{n}'])} | "
                     f"{row['last_sample_pass_rate']:.2f} |")
    return lines


def _objective_table(result: dict, cfg: DemoConfig) -> list[str]:
    if "ablation_objective" not in result:
        return []
    n = cfg.eval_samples
    return ["", "## RL objectives (paper Table 3)", "", f"| objective | pass@1 | pass@{n} |",
            "|---|---:|---:|",
            *(f"| {name} | {_pct(row['pass@1'])} | {_pct(row[f'pass@{n}'])} |"
              for name, row in result["ablation_objective"].items())]


def _cs_ablation_table(result: dict, cfg: DemoConfig) -> list[str]:
    if "ablation_critic_sampling" not in result:
        return []
    n = cfg.eval_samples
    lines = ["", "## Critic sampling parts (paper Table 4)", "",
             f"| variant | pass@1 | pass@{n} | seeds cut at token 0 | mean cut (tokens) |",
             "|---|---:|---:|---:|---:|"]
    for name, row in result["ablation_critic_sampling"].items():
        cut0, mean = row.get("cut_at_0_share", float("nan")), row.get("mean_cut", float("nan"))
        lines.append(f"| {name} | {_pct(row['pass@1'])} | {_pct(row[f'pass@{n}'])} | "
                     f"{cut0:.2f} | {mean:.1f} |")
    return lines


def _stage_times(result: dict) -> list[str]:
    return ["", "## Stages (s)", "", "| stage | seconds |", "|---|---:|",
            *(f"| {k} | {v} |" for k, v in result["stages"].items())]


def write_markdown_and_plots(result: dict, cfg: DemoConfig, workdir: pathlib.Path
                             ) -> tuple[str, list[pathlib.Path]]:
    """Write report.md and plots/ (pass@k curves, outcomes); returns (the Markdown, plots)."""
    from coderl_jax import plots

    text = render_report(result, cfg)
    (workdir / "report.md").write_text(text)
    plot_dir = workdir / "plots"
    paths = [plots.plot_systems_pass_at_k({SYSTEM_NAMES[k]: result[k]["curve"]
                                           for k in SYSTEMS}, plot_dir / "pass_at_k.png"),
             plots.plot_systems_outcomes({SYSTEM_NAMES[k]: result[k] for k in SYSTEMS},
                                         plot_dir / "outcomes.png")]
    return text, paths


def write_json(result: dict[str, Any], workdir: pathlib.Path) -> pathlib.Path:
    """Write report.json (every number of the run, its stage times and config); a result
    without one of REPORT_KEYS is an error."""
    missing = [k for k in REPORT_KEYS if k not in result]
    if missing:
        raise ValueError(f"report.json would miss {missing}")
    path = workdir / "report.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path
