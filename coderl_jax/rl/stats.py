"""What an RL step reports about its rollouts: returns, outcome shares, pass rates, the
share of problems without a learning signal, the critic's accuracy.

Counted per process (`step_counts`), summed over processes (`batch.global_sum`), turned
into means (`statistics_from_counts`), so process 0 logs the whole batch's figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coderl_jax import outcomes

COUNT_NAMES = ("judged", "return_sum", *(f"n/{o}" for o in outcomes.OUTCOMES), "internal",
               "baselines", "baseline_return_sum", "baseline_passed", "groups",
               "no_signal_groups", "critic_hits", "critic_judged")


def step_counts(groups: Sequence, pooled: np.ndarray | None) -> np.ndarray:
    """The sums behind `step_statistics`, as a vector in COUNT_NAMES order (groups: judged
    `rl.batch.Group`s with rewards; pooled: the critic's sequence-level prediction of every
    sample [N, C], or None)."""
    flat = [o for g in groups for o in g.outcomes]
    judged = [(o, r) for g in groups for o, r in zip(g.outcomes, g.rewards)
              if o != outcomes.INTERNAL_ERROR]
    base = [(g.baseline_outcome, g.baseline_reward) for g in groups if g.baseline_judged]
    same = [len({r for i, r in enumerate(g.rewards) if g.judged(i)}) <= 1 for g in groups]
    hits = []
    if pooled is not None:  # [every sample, C], InternalError ones included (no truth)
        pred = np.argmax(pooled, axis=-1)
        hits = [pred[i] == outcomes.outcome_index(o) for i, o in enumerate(flat)
                if o != outcomes.INTERNAL_ERROR]
    values = [len(judged), sum(r for _, r in judged),
              *(sum(o == name for o, _ in judged) for name in outcomes.OUTCOMES),
              len(flat) - len(judged), len(base), sum(r for _, r in base),
              sum(o == outcomes.PASSED_TEST for o, _ in base), len(groups), sum(same),
              sum(hits), len(hits)]
    return np.asarray(values, np.float64)


def statistics_from_counts(counts: np.ndarray) -> dict[str, float]:
    """Per-step RL metrics from (summed) `step_counts`: returns, outcome shares, pass rate,
    no-signal share (problems whose samples all got one return), critic accuracy (its
    sequence-level prediction vs the sandbox's outcome); NaN where nothing was counted."""
    c = dict(zip(COUNT_NAMES, counts.tolist()))
    ratio = lambda a, b: a / b if b > 0 else float("nan")  # noqa: E731
    out = {"sample_return": ratio(c["return_sum"], c["judged"]),
           "baseline_return": ratio(c["baseline_return_sum"], c["baselines"]),
           "baseline_pass_rate": ratio(c["baseline_passed"], c["baselines"])}
    for name in outcomes.OUTCOMES:
        out[f"outcome/{name}"] = c[f"n/{name}"] / max(c["judged"], 1.0)
    out["internal_errors"] = c["internal"]
    out["sample_pass_rate"] = out[f"outcome/{outcomes.PASSED_TEST}"]
    out["no_signal_share"] = ratio(c["no_signal_groups"], c["groups"])
    if c["critic_judged"] > 0:
        out["critic_accuracy"] = c["critic_hits"] / c["critic_judged"]
    return out


def step_statistics(groups: Sequence, pooled: np.ndarray | None) -> dict[str, float]:
    """Per-step RL metrics of these groups (this process's; see `statistics_from_counts`)."""
    return statistics_from_counts(step_counts(groups, pooled))
