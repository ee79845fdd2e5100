"""What critic sampling reports per problem (`CriticSamplingResult`), and its summaries.

Pure data: no JAX, no model, no I/O (`eval/generate.py` writes `trace` to a file).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from coderl_jax.critic_sampling.planning import Plan

# Modes of a result (`CriticSamplingResult.mode`).
MODES: tuple[str, ...] = ("refine", "repair", "repair+refine", "none")
# Why a problem kept its initial programs (`CriticSamplingResult.kept`).
KEPT_NO_EXAMPLE_TESTS = "no_example_tests"
KEPT_NO_REPAIR_MODEL = "no_repair_model"
KEPT_REFINE_OFF = "refine_off"  # critic_sample(refine=False): the Table 4 ablation


@dataclasses.dataclass(frozen=True)
class CriticSamplingResult:
    """Critic sampling's outcome for one problem.

    task_id: the problem's id.
    programs [N]: the final programs, in the order of the deciding plan (`repair_plan` for
      "repair+refine", else `plan`): each seed's `count` programs consecutively. These are
      what the caller judges on the hidden tests.
    mode: "refine" (some initial program passed the example tests), "repair" (none did; the
      final programs are the repair model's, none of which passed either), "repair+refine"
      (a repaired program passed and was refined) or "none" (initial programs kept).
    kept: why mode is "none": KEPT_NO_EXAMPLE_TESTS or KEPT_NO_REPAIR_MODEL; else None.
    num_passed: |P|, the initial programs that passed the example tests.
    plan: `plan` on the initial programs (Plan() when they were not judged).
    initial [N]: the initial programs; initial_outcomes [N]: their example-test outcomes
      (() when not judged).
    repaired [N], repaired_outcomes [N]: the repair model's programs and their example-test
      outcomes, in `plan.repair` order (() when repair did not run); repair_plan: `plan` on
      them (None when repair did not run).
    prefix_lens [N]: for refined programs, the number of seed tokens forced into the actor
      for each final program (the seed's prefix_len, clipped to max_new_tokens); () when
      the final programs were not refined.
    """

    task_id: str
    programs: tuple[str, ...]
    mode: str
    kept: str | None
    num_passed: int
    plan: Plan
    initial: tuple[str, ...]
    initial_outcomes: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()
    repaired_outcomes: tuple[str, ...] = ()
    repair_plan: Plan | None = None
    prefix_lens: tuple[int, ...] = ()

    @property
    def num_repaired_passed(self) -> int:
        """Repaired programs that passed the example tests."""
        from coderl_jax import outcomes

        return sum(o == outcomes.PASSED_TEST for o in self.repaired_outcomes)


def summarize(results: Sequence[CriticSamplingResult]) -> dict[str, int]:
    """Counts for a report: problems, each mode, each `kept` reason, problems with P empty
    (refine_off only when some problem has it)."""
    counts = {"problems": len(results), **{m: 0 for m in MODES},
              KEPT_NO_EXAMPLE_TESTS: 0, KEPT_NO_REPAIR_MODEL: 0, "no_initial_pass": 0}
    for r in results:
        counts[r.mode] += 1
        if r.kept:
            counts[r.kept] = counts.get(r.kept, 0) + 1
        if r.initial_outcomes and r.num_passed == 0:
            counts["no_initial_pass"] += 1
    return counts


def cut_diagnostics(results: Sequence[CriticSamplingResult]) -> dict[str, float]:
    """The refine cuts of the deciding plans (`repair_plan` for "repair+refine", else
    `plan`), per seed: how many, the share cut at token 0 (the refine becomes a fresh
    resample: the critic never preferred Pass) and the mean cut position (tokens kept);
    NaN without seeds."""
    cuts = [seed.prefix_len for r in results if r.mode in ("refine", "repair+refine")
            for seed in (r.repair_plan or r.plan).refine]
    n = len(cuts)
    return {"refine_seeds": n,
            "cut_at_0_share": sum(c == 0 for c in cuts) / n if n else float("nan"),
            "mean_cut": sum(cuts) / n if n else float("nan")}


def trace(results: Sequence[CriticSamplingResult]) -> dict[str, Any]:
    """The per-problem path of a run as JSON-ready data: the summary, then per problem its
    mode, kept reason, |P| and the seeds of the deciding refine plan and of the repair plan."""
    return {"summary": summarize(results), "cuts": cut_diagnostics(results),
            "problems": [{"task_id": r.task_id, "mode": r.mode, "kept": r.kept,
                          "num_passed": r.num_passed,
                          "refine": [dataclasses.asdict(s) for s in
                                     (r.repair_plan or r.plan).refine],
                          "repair": [dataclasses.asdict(s) for s in r.plan.repair]}
                         for r in results]}
