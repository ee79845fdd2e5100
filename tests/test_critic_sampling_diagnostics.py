"""Critic sampling's cut diagnostics (share of seeds cut at token 0, mean cut) by hand."""

import math

from coderl_jax.critic_sampling import (KEPT_REFINE_OFF, CriticSamplingResult, Plan, RepairSeed,
                                        Seed, cut_diagnostics, summarize, trace)


def result(task, mode, plan, repair_plan=None, kept=None):
    return CriticSamplingResult(task, ("x",), mode, kept, 1, plan, ("x",),
                                repair_plan=repair_plan)


def test_cut_diagnostics_by_hand():
    results = [
        result("a", "refine", Plan(refine=(Seed(0, 0, 2), Seed(1, 6, 2)))),
        # repair+refine: the deciding plan is the repair plan's refine seeds.
        result("b", "repair+refine", Plan(repair=(RepairSeed(0, 4),)),
               repair_plan=Plan(refine=(Seed(2, 3, 4),))),
        result("c", "repair", Plan(repair=(RepairSeed(0, 4),))),
        result("d", "none", Plan(refine=(Seed(0, 0, 4),)), kept=KEPT_REFINE_OFF),
    ]
    d = cut_diagnostics(results)
    assert d["refine_seeds"] == 3
    assert d["cut_at_0_share"] == 1 / 3 and d["mean_cut"] == (0 + 6 + 3) / 3
    assert trace(results)["cuts"] == d
    assert summarize(results)[KEPT_REFINE_OFF] == 1
    empty = cut_diagnostics(results[2:3])
    assert empty["refine_seeds"] == 0 and math.isnan(empty["mean_cut"])
