"""Critic sampling (CodeRL, Le et al. 2022, Sec. 3.3): refine passing programs, repair failing ones.

    planning   which programs to refine (and where to cut them) or repair: pure functions of
               example-test results and critic scores (`plan`, `refine_cut`, `split_count`);
    driver     `critic_sample`: sample, judge, score, plan, refine / repair, in named rounds
               over per-problem states, with the models as one `Models` dataclass;
    results    `CriticSamplingResult` per problem, `summarize`, `trace`.

File I/O (`coderl generate --critic-sampling`) lives on the eval side (`eval/generate.py`).
Importing this package loads no JAX.
"""

from coderl_jax.critic_sampling.driver import REFINE_STREAM, REPAIR_STREAM, Models, critic_sample
from coderl_jax.critic_sampling.planning import (Plan, RepairSeed, Seed, plan, program_score,
                                                 rank, refine_cut, seed_rows, split_count)
from coderl_jax.critic_sampling.results import (KEPT_NO_EXAMPLE_TESTS, KEPT_NO_REPAIR_MODEL,
                                                KEPT_REFINE_OFF, MODES, CriticSamplingResult,
                                                cut_diagnostics, summarize, trace)

__all__ = [
    "KEPT_NO_EXAMPLE_TESTS", "KEPT_NO_REPAIR_MODEL", "KEPT_REFINE_OFF", "MODES", "REFINE_STREAM", "REPAIR_STREAM",
    "CriticSamplingResult", "Models", "Plan", "RepairSeed", "Seed", "critic_sample", "plan",
    "program_score", "rank", "refine_cut", "seed_rows", "split_count", "summarize", "trace",
    "cut_diagnostics",
]
