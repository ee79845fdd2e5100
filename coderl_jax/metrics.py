"""Evaluation metrics over sandbox results: pass@k, n@k, difficulty breakdowns, outcome counts.

Input are the rows of results files (docs/design.md "Formats": one dict per sample with
`task_id`, `sample_index`, `outcome`, `error_type`, ...), as returned by the one results
reader `coderl_jax.data.jsonl.read_results`. Everything here is pure Python (no numpy, no JAX)
so `coderl evaluate` starts fast; rates are fractions in [0, 1], the CLI turns them into
percent.

A sample *passes* when its outcome is PassedTest. `InternalError` samples (the harness could not
judge the program) count as not passed and are reported by `outcome_counts`, never dropped.
"""

from __future__ import annotations

import collections
import math
from typing import Iterable, Mapping, Sequence

from coderl_jax.outcomes import INTERNAL_ERROR, OUTCOMES, PASSED_TEST

# Canonical row order of difficulty tables: APPS levels, then synthetic levels; any other
# difficulty string follows alphabetically.
DIFFICULTY_ORDER: tuple[str, ...] = (
    "introductory",
    "interview",
    "competition",
    "level1",
    "level2",
    "level3",
)
ALL = "All"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k for one problem (Chen et al. 2021, Codex paper, Fig. 3).

    pass@k = 1 - C(n - c, k) / C(n, k): the probability that at least one of k samples drawn
    without replacement from the n generated ones is correct. Computed in the numerically
    stable product form 1 - prod_{i=n-c+1}^{n} (1 - k / i), which never forms the huge
    binomials (n up to thousands).

    Args:
      n: number of samples generated for the problem.
      c: number of them that pass (0 <= c <= n).
      k: the budget (1 <= k <= n).
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        # Every draw of k samples contains a correct one.
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def group_by_task(rows: Iterable[Mapping]) -> dict[str, list[Mapping]]:
    """Rows grouped by task_id (as str), each group ordered by sample_index.

    Sample order matters for n@k (ties are broken by it), so a duplicated
    (task_id, sample_index) pair is an error rather than silently kept twice.
    """
    groups: dict[str, list[Mapping]] = collections.defaultdict(list)
    for row in rows:
        groups[str(row["task_id"])].append(row)
    for task_id, group in groups.items():
        group.sort(key=lambda r: r["sample_index"])
        indices = [r["sample_index"] for r in group]
        if len(set(indices)) != len(indices):
            dup = next(i for i in indices if indices.count(i) > 1)
            raise ValueError(f"task {task_id!r}: sample_index {dup} appears more than once")
    return dict(groups)


def _check_k(task_id: str, num_samples: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > num_samples:
        raise ValueError(
            f"k={k} is larger than the {num_samples} sample(s) of problem {task_id!r}; "
            f"pass@k and n@k need at least k samples per problem"
        )


def pass_at_k_by_task(groups: Mapping[str, Sequence[Mapping]], k: int) -> dict[str, float]:
    """pass@k of each problem; `groups` as returned by `group_by_task`."""
    out = {}
    for task_id, rows in groups.items():
        _check_k(task_id, len(rows), k)
        c = sum(r["outcome"] == PASSED_TEST for r in rows)
        out[task_id] = pass_at_k(len(rows), c, k)
    return out


def select_submissions(example_passed: Sequence[bool], n: int, k: int) -> list[int]:
    """Indices (into the problem's samples, in sample order) of the n programs submitted by n@k.

    The rule (AlphaCode-style filtering, as in CodeRL Sec. 4): look only at the first k samples;
    rank the programs that pass all example tests first and the rest after them; within each
    group keep sample order; submit the first n of that ranking. So when fewer than n programs
    pass the example tests, the remaining slots go to the earliest failing ones.
    """
    if not 1 <= n <= k:
        raise ValueError(f"n@k needs 1 <= n <= k, got n={n}, k={k}")
    if k > len(example_passed):
        raise ValueError(f"k={k} is larger than the {len(example_passed)} samples")
    first_k = range(k)
    ranked = [i for i in first_k if example_passed[i]] + [
        i for i in first_k if not example_passed[i]
    ]
    return ranked[:n]


def n_at_k_by_task(
    groups: Mapping[str, Sequence[Mapping]],
    example_groups: Mapping[str, Sequence[Mapping]],
    n: int,
    k: int,
) -> dict[str, float]:
    """n@k of each problem: 1.0 if any of the n submitted programs passes the hidden tests.

    Args:
      groups: hidden-test results per task (from `group_by_task`).
      example_groups: example-test results of the same samples per task; a sample passes its
        example tests when its outcome there is PassedTest. Both must list the same
        sample_index values for every task.
    """
    out = {}
    for task_id, rows in groups.items():
        _check_k(task_id, len(rows), k)
        ex_rows = example_groups.get(task_id)
        if ex_rows is None:
            raise ValueError(f"problem {task_id!r} has hidden-test results but no example results")
        hidden_idx = [r["sample_index"] for r in rows]
        ex_idx = [r["sample_index"] for r in ex_rows]
        if hidden_idx != ex_idx:
            missing = sorted(set(hidden_idx) ^ set(ex_idx))
            raise ValueError(
                f"problem {task_id!r}: hidden and example results cover different samples "
                f"(sample_index {missing[:5]} in only one of them)"
            )
        example_passed = [r["outcome"] == PASSED_TEST for r in ex_rows]
        chosen = select_submissions(example_passed, n, k)
        out[task_id] = float(any(rows[i]["outcome"] == PASSED_TEST for i in chosen))
    return out


def mean(values: Iterable[float]) -> float:
    values = list(values)
    if not values:
        raise ValueError("mean of no problems")
    return sum(values) / len(values)


def difficulty_sort_key(difficulty: str) -> tuple[int, str]:
    """Sort key putting known levels in DIFFICULTY_ORDER, unknown ones after, alphabetically."""
    if difficulty in DIFFICULTY_ORDER:
        return (DIFFICULTY_ORDER.index(difficulty), "")
    return (len(DIFFICULTY_ORDER), difficulty)


def outcome_counts(rows: Iterable[Mapping]) -> dict[str, int]:
    """Samples per outcome (paper Fig. 8), InternalError included; all keys always present."""
    counts = {o: 0 for o in (*OUTCOMES, INTERNAL_ERROR)}
    for row in rows:
        if row["outcome"] not in counts:
            raise ValueError(f"unknown outcome {row['outcome']!r} (task {row['task_id']!r})")
        counts[row["outcome"]] += 1
    return counts


def error_type_counts(rows: Iterable[Mapping]) -> dict[str, dict[str, int]]:
    """Error-subtype histogram (paper Fig. 10): {outcome: {error_type: count}}, most frequent first.

    Only samples with a non-null `error_type` are counted (compile and runtime errors, plus
    e.g. timeouts); outcomes without any are absent.
    """
    hist: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        if row.get("error_type"):
            hist[row["outcome"]][row["error_type"]] += 1
    return {
        outcome: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
        for outcome, c in sorted(hist.items(), key=lambda kv: _outcome_rank(kv[0]))
    }


def _outcome_rank(outcome: str) -> int:
    order = (*OUTCOMES, INTERNAL_ERROR)
    return order.index(outcome) if outcome in order else len(order)


def evaluate(
    rows: Sequence[Mapping],
    ks: Sequence[int],
    n_at_k: Sequence[tuple[int, int]] = (),
    example_rows: Sequence[Mapping] | None = None,
    difficulties: Mapping[str, str] | None = None,
) -> dict:
    """All metrics of a results file, as a JSON-ready dict with rates in percent.

    Args:
      rows: hidden-test result rows (one per sample).
      ks: the k of each pass@k.
      n_at_k: (n, k) pairs for n@k; needs `example_rows`.
      example_rows: example-test result rows of the same samples.
      difficulties: task_id -> difficulty; without it every problem is "unknown". A task in
        the results but not in `difficulties` is an error.

    Returns:
      {"pass@1": float, ..., "n@k": {"1@5": float, ...},
       "by_difficulty": {difficulty: {"pass@1": ..., "n@k": {...}, "num_problems": int,
                                      "num_samples": int}},
       "num_problems": int, "num_samples": int,
       "outcomes": {outcome: count}, "error_types": {outcome: {error_type: count}},
       "num_internal_errors": int}
      Rates are the mean over problems of the per-problem values, in percent.
    """
    if not rows:
        raise ValueError("no results to evaluate")
    if n_at_k and example_rows is None:
        raise ValueError("n@k needs the example-test results of the same samples")
    groups = group_by_task(rows)
    example_groups = group_by_task(example_rows) if example_rows is not None else {}

    per_task: dict[str, dict[str, float]] = {t: {} for t in groups}
    for k in ks:
        for task_id, value in pass_at_k_by_task(groups, k).items():
            per_task[task_id][f"pass@{k}"] = value
    for n, k in n_at_k:
        for task_id, value in n_at_k_by_task(groups, example_groups, n, k).items():
            per_task[task_id][f"{n}@{k}"] = value

    if difficulties is None:
        task_difficulty = {t: "unknown" for t in groups}
    else:
        missing = [t for t in groups if t not in difficulties]
        if missing:
            raise ValueError(
                f"{len(missing)} problem(s) of the results are not in the problems data set, "
                f"e.g. {missing[:3]}"
            )
        task_difficulty = {t: difficulties[t] for t in groups}

    def summarize(task_ids: list[str]) -> dict:
        summary: dict = {f"pass@{k}": 100.0 * mean(per_task[t][f"pass@{k}"] for t in task_ids)
                         for k in ks}
        summary["n@k"] = {
            f"{n}@{k}": 100.0 * mean(per_task[t][f"{n}@{k}"] for t in task_ids)
            for n, k in n_at_k
        }
        summary["num_problems"] = len(task_ids)
        summary["num_samples"] = sum(len(groups[t]) for t in task_ids)
        return summary

    report = summarize(list(groups))
    levels = sorted(set(task_difficulty.values()), key=difficulty_sort_key)
    report["by_difficulty"] = {
        level: summarize([t for t in groups if task_difficulty[t] == level]) for level in levels
    }
    report["outcomes"] = outcome_counts(rows)
    report["num_internal_errors"] = report["outcomes"][INTERNAL_ERROR]
    report["error_types"] = error_type_counts(rows)
    return report


def markdown_table(report: Mapping) -> str:
    """The report as a Markdown table: one row per difficulty and `All`, one column per metric."""
    metric_keys = [key for key in report if key.startswith("pass@")]
    nk_keys = list(report.get("n@k", {}))
    header = ["difficulty", "problems", *metric_keys, *nk_keys]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    rows = [*report["by_difficulty"].items(), (ALL, report)]
    for name, summary in rows:
        cells = [name, str(summary["num_problems"])]
        cells += [f"{summary[key]:.2f}" for key in metric_keys]
        cells += [f"{summary['n@k'][key]:.2f}" for key in nk_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
