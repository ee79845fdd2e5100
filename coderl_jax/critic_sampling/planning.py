"""Critic sampling planning (CodeRL, Le et al. 2022, Sec. 3.3): which programs to refine or repair.

At inference the actor draws N programs for a problem and runs them on the problem's
*example* tests (those in the statement, never the hidden ones). P = the programs that pass
them, F = the others. A binary critic {FailedTest, PassedTest} (`coderl_jax.models.critic`)
reads each program and gives, per token t, p(Pass | w_1..t) and p(Fail | w_1..t).

* Refine (P non-empty). Each program of P is cut into a seed prefix and the actor resamples
  continuations of it, about N / |P| per seed:
    - t_max = argmax_t p(Pass | w_1..t): the prefix the critic likes best. The cut keeps
      w_1..w_{t_max} *inclusive*: prefix_len = t_max + 1 (t_max 0-based). On ties the
      earliest maximum wins (a shorter prefix leaves the resampler more room, and np.argmax
      does the same).
    - If a token *before* t_max already has p(Fail) > p(Pass) (strictly), the critic thinks
      the program went wrong there, so the cut moves to the first such token t_f and keeps
      only the tokens *before* it: prefix_len = t_f (0-based), possibly 0, which means
      "resample from scratch" (the seed is the empty prefix).
  `refine_cut` implements exactly this. With the binary critic p(Fail) = 1 - p(Pass), so the
  fail test is p(Pass) < 0.5.
* Repair (P empty). The top-M programs of F by their program-level critic score p(Pass) go
  to the repair model (input: problem + failed program + outcome + error subtype), N / M
  repairs each; if M > |F| all of F is used. The repaired programs are judged on the example
  tests and refined like any others: the driver calls `plan` again on them.

Choices made here (the paper leaves them open):

* Program-level score = max over tokens of p(Pass | w_1..t). The critic was trained on the
  max-pool over tokens of its per-token logits (paper Sec. 3.2), so its sequence-level
  judgement is a max over positions, not the last position (which the pooled loss never
  trains on its own); the max also equals p(Pass) at t_max, so repair ranks programs by the
  same number refine cuts at. A program with no tokens has no evidence and scores -inf
  (ranks last). Callers holding the exact pooled prediction can pass `scores` instead.
* Ranking = score descending, ties broken by the lower program index (deterministic).
* Counts: `split_count(N, k)` splits N as evenly as possible over the k ranked seeds, the
  remainder going to the first (best-ranked) ones, so the counts always sum to exactly N.
  When there are more candidates than samples (|P| > N, or M > N in repair), the first N by
  rank get one sample each and the others get none and are *dropped* from the plan: every
  Seed / RepairSeed in a Plan has count >= 1, and the tuple is in rank order.

This module is pure Python + numpy (no JAX, no model, no sandbox, no I/O):
`plan(passed, pass_probs, ...) -> Plan` is a function of test results and critic scores only.
`driver.critic_sample` runs it on sampled, judged and scored programs.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Sequence

import numpy as np

@dataclasses.dataclass(frozen=True)
class Seed:
    """Resample `count` continuations of program `source`'s first `prefix_len` tokens.

    source: index of the program in the inputs of `plan`; prefix_len: number of the
    program's tokens kept (0 = sample from scratch); count >= 1.
    """

    source: int
    prefix_len: int
    count: int


@dataclasses.dataclass(frozen=True)
class RepairSeed:
    """Ask the repair model for `count` repairs of failed program `source` (count >= 1)."""

    source: int
    count: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to sample next for one problem. Both tuples are in rank order (best first).

    Exactly one of `refine` / `repair` is non-empty, unless there were no programs at all
    (then both are empty). The counts of the non-empty one sum to `num_samples`.
    """

    refine: tuple[Seed, ...] = ()
    repair: tuple[RepairSeed, ...] = ()

    @property
    def mode(self) -> str:
        """"refine", "repair" or "none"."""
        return "refine" if self.refine else "repair" if self.repair else "none"

    @property
    def total(self) -> int:
        """Number of programs the plan asks for."""
        return sum(s.count for s in self.refine) + sum(s.count for s in self.repair)


def _probs(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a vector [T], got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return a


def _count(name: str, x, minimum: int) -> int:
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got {x!r}")
    try:
        value = operator.index(x)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {x!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def refine_cut(pass_probs, fail_probs=None) -> int:
    """The seed prefix length of a passing program (see the module docstring).

    pass_probs [T]: p(Pass | w_1..t) per token; fail_probs [T]: p(Fail | w_1..t), default
    1 - pass_probs (binary critic). Returns prefix_len in [0, T]: t_max + 1 with t_max =
    argmax_t pass_probs (first on ties), or t_f = the first t < t_max with fail > pass.
    A program of length 0 gives 0.
    """
    p = _probs("pass_probs", pass_probs)
    f = 1.0 - p if fail_probs is None else _probs("fail_probs", fail_probs)
    if f.shape != p.shape:
        raise ValueError(f"fail_probs must have shape {p.shape} (pass_probs'), got {f.shape}")
    if p.size == 0:
        return 0
    t_max = int(np.argmax(p))
    worse = np.flatnonzero(f[:t_max] > p[:t_max])
    return int(worse[0]) if worse.size else t_max + 1


def split_count(total: int, parts: int) -> list[int]:
    """`total` split into `parts` counts as even as possible, remainder to the first parts.

    split_count(7, 3) == [3, 2, 2]; split_count(2, 4) == [1, 1, 0, 0]. Sums to `total`.
    """
    total = _count("total", total, 0)
    parts = _count("parts", parts, 1)
    base, extra = divmod(total, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def program_score(pass_probs) -> float:
    """Program-level critic score: max_t p(Pass | w_1..t); -inf for a program of length 0."""
    p = _probs("pass_probs", pass_probs)
    return float(p.max()) if p.size else float("-inf")


def rank(scores: Sequence[float]) -> list[int]:
    """Indices of `scores` best first: score descending, ties by the lower index."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def _passed_flags(passed) -> list[bool]:
    a = np.asarray(passed)
    if a.ndim != 1:
        raise ValueError(f"passed must be a sequence of booleans, got shape {a.shape}")
    if a.size and a.dtype != bool:
        if not (np.issubdtype(a.dtype, np.integer) and np.all((a == 0) | (a == 1))):
            raise ValueError(f"passed must hold booleans, got {list(passed)!r}")
    return [bool(x) for x in a]


def plan(passed: Sequence[bool], pass_probs: Sequence, num_samples: int, repair_top_m: int,
         *, fail_probs: Sequence | None = None, scores: Sequence[float] | None = None) -> Plan:
    """Plan critic sampling for one problem's K programs.

    passed [K]: whether program k passed the example tests; pass_probs: K arrays [T_k] of
    p(Pass | w_1..t) (T_k may differ, and may be 0); fail_probs: K arrays [T_k] of
    p(Fail | w_1..t), default 1 - pass_probs (binary critic); scores [K]: program-level
    scores, default `program_score(pass_probs[k])`; num_samples (N) >= 1; repair_top_m
    (M) >= 1.

    If any program passed: refine seeds (`refine_cut`) of the passing programs in rank
    order, counts `split_count(N, |P|)`. Otherwise: repair seeds of the top-min(M, K) failed
    programs by score, counts `split_count(N, min(M, K))`. Zero-count entries are dropped.
    K == 0 gives an empty Plan.
    """
    flags = _passed_flags(passed)
    k = len(flags)
    num_samples = _count("num_samples", num_samples, 1)
    repair_top_m = _count("repair_top_m", repair_top_m, 1)
    if len(pass_probs) != k:
        raise ValueError(f"pass_probs must hold one array per program ({k}), "
                         f"got {len(pass_probs)}")
    if fail_probs is not None and len(fail_probs) != k:
        raise ValueError(f"fail_probs must hold one array per program ({k}), "
                         f"got {len(fail_probs)}")
    if scores is None:
        scores = [program_score(p) for p in pass_probs]
    else:
        scores = [float(s) for s in scores]
        if len(scores) != k:
            raise ValueError(f"scores must hold one value per program ({k}), got {len(scores)}")
        if any(np.isnan(s) for s in scores):
            raise ValueError("scores must not be NaN")
    # Validate every program's arrays up front, also those the chosen branch does not cut.
    cuts = [refine_cut(pass_probs[i], None if fail_probs is None else fail_probs[i])
            for i in range(k)]

    ranked = rank(scores)
    passing = [i for i in ranked if flags[i]]
    if passing:
        counts = split_count(num_samples, len(passing))
        return Plan(refine=tuple(Seed(i, cuts[i], c) for i, c in zip(passing, counts) if c))
    if not ranked:
        return Plan()
    chosen = ranked[:repair_top_m]
    counts = split_count(num_samples, len(chosen))
    return Plan(repair=tuple(RepairSeed(i, c) for i, c in zip(chosen, counts) if c))


def seed_rows(seeds: Sequence[Seed] | Sequence[RepairSeed]) -> list[int]:
    """Per output row (N in all), the index in `seeds` it comes from: each seed's `count`
    rows consecutively: seed_rows((Seed(3, 1, 2), Seed(0, 4, 1))) == [0, 0, 1]."""
    return [k for k, s in enumerate(seeds) for _ in range(s.count)]
