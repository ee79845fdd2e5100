"""`RLConfig`: the RL-specific settings (the trainer's TrainerConfig / OptimizerConfig do the
rest). A plain frozen dataclass: the mains bind it with gin (`RLConfig.estimator = 'A'`,
`coderl_jax.train.configurables`); library code and `coderl demo` build it directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from coderl_jax import outcomes
from coderl_jax.rl import returns as returns_lib
from coderl_jax.rl import rewards as rewards_lib

OBJECTIVES = ("sum", "alternate")


@dataclasses.dataclass(frozen=True)
class RLConfig:
    """problems_per_step P and num_samples K fix the batch: P * K RL rows + the CE rows.

    ce_per_sample: CE rows per RL sample, each a reference of the sample's problem drawn at
      random (seeded); 1 (default) is the official release's pairing; 0: one CE row per
      problem (P rows, the earlier behaviour of this code).
    rl_normalisation: how L_rl's token weights are normalised (`rl/batch.py`
      NORMALISATIONS, registry): "sequence" (each sequence's token mean, averaged over
      the step's sequences: the official release, default), "token" (over all RL tokens of
      the step) or "sum" (each sequence's token sum, averaged over sequences: the paper's
      equation). The KL term follows it.

    estimator: a registered return estimator (`returns.register_estimator`) or alias
      ("coderl" = D, the default); estimator_options: its keyword options (e.g.
      {"leave_one_out": True} for "group").
    reward: a registered reward `(problem, verdict) -> float` (`rewards.register_reward`;
      "coderl", the paper's table, by default; "partial": the share of tests passed);
      reward_options: its keyword options.
    returns: the "coderl" reward's table, outcome -> return (default None: the paper's
      `outcomes.RETURNS`), e.g. a 0/1 pass reward {"CompileError": 0, "RuntimeError": 0,
      "FailedTest": 0, "PassedTest": 1}; every outcome must be given.
    objective: "sum" (L_ce * ce_weight + L_rl * rl_weight in one update, the paper's text) or
      "alternate": TWO optimizer updates per RL iteration (two optimizer steps, two
      learning-rate steps), a CE-only one then an RL-only one.
      (The official release alternates CE and RL micro-steps inside ONE update, which
      accumulates to the gradient of "sum"; "alternate" here is an ablation.)
    verdict_policy: `outcomes.VERDICT_POLICIES` (None: "first_failure", the default of
      `coderl execute` and the critic, or "all_tests" for a reward that reads every test);
      checked at start-up against the critic's labels and offline results files, a
      mismatch failing unless allow_verdict_policy_mismatch.
    kl_coef: weight of the per-token KL penalty to the reference policy (0 = off).
    chunk_problems: problems decoded per sampling call (programs go to the sandbox per chunk).
    overlap: False waits for every verdict before the critic pass (for measurements).
    length_buckets: the RL batch's encoder / decoder lengths are rounded up to the smallest
      of these fractions of max_source_length / max_new_tokens that fits the batch's rows,
      so each compiles once (STYLE.md practice 4); () pads every batch to the full lengths.
    """

    problems_per_step: int = 8
    num_samples: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 128
    max_source_length: int = 600
    estimator: str = returns_lib.DEFAULT_ESTIMATOR
    estimator_options: dict = dataclasses.field(default_factory=dict)
    reward: str = rewards_lib.DEFAULT_REWARD
    reward_options: dict = dataclasses.field(default_factory=dict)
    objective: str = "sum"
    ce_weight: float = 1.0
    rl_weight: float = 1.0
    kl_coef: float = 0.0
    chunk_problems: int = 4
    overlap: bool = True
    workers: int | None = None
    timeout: float = 4.0
    save_rollouts: bool = False
    returns: dict | None = None
    length_buckets: tuple = (0.5, 0.75, 1.0)
    verdict_policy: str | None = None
    allow_verdict_policy_mismatch: bool = False
    ce_per_sample: int = 1
    rl_normalisation: str = "sequence"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"RLConfig.objective must be one of {OBJECTIVES}, "
                             f"got {self.objective!r}")
        returns_lib.get_estimator(self.estimator)  # unknown names fail at start-up
        rewards_lib.get_reward(self.reward)
        for name in ("problems_per_step", "num_samples", "max_new_tokens", "chunk_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"RLConfig.{name} must be >= 1, got {getattr(self, name)}")
        from coderl_jax.rl.batch import NORMALISATIONS

        if self.rl_normalisation not in NORMALISATIONS:
            raise ValueError(f"RLConfig.rl_normalisation must be one of "
                             f"{tuple(NORMALISATIONS)}, got {self.rl_normalisation!r}")
        if self.ce_per_sample < 0:
            raise ValueError(f"RLConfig.ce_per_sample must be >= 0, got {self.ce_per_sample}")
        if self.kl_coef < 0:
            raise ValueError(f"RLConfig.kl_coef must be >= 0, got {self.kl_coef}")
        if self.returns is not None:
            if set(self.returns) != set(outcomes.OUTCOMES) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool)
                    and np.isfinite(v) for v in self.returns.values()):
                raise ValueError(f"RLConfig.returns must give a finite number for each of "
                                 f"{outcomes.OUTCOMES}, got {self.returns!r}")
        if any(not 0 < f <= 1 for f in self.length_buckets):
            raise ValueError(f"RLConfig.length_buckets are fractions in (0, 1], got "
                             f"{self.length_buckets}")
        self.reward_fn  # noqa: B018  (unknown reward options fail at start-up)
        if self.verdict_policy is not None:
            outcomes.validate_verdict_policy(self.verdict_policy)
            if self.needs_all_tests and self.verdict_policy != "all_tests":
                raise ValueError(f"reward {self.reward!r} reads every test: it needs "
                                 f"verdict_policy 'all_tests', got {self.verdict_policy!r}")

    @property
    def policy(self) -> str:
        """The resolved verdict policy (see verdict_policy)."""
        if self.verdict_policy is not None:
            return self.verdict_policy
        return "all_tests" if self.needs_all_tests else outcomes.DEFAULT_VERDICT_POLICY

    @property
    def return_table(self) -> dict[str, float]:
        """Outcome -> return (RLConfig.returns, or the paper's table)."""
        if self.returns is None:
            return outcomes.RETURNS
        return {k: float(v) for k, v in self.returns.items()}

    @property
    def reward_fn(self) -> Callable:
        """The configured reward, `(problem, verdict) -> float`."""
        options = dict(self.reward_options)
        if self.returns is not None and self.reward == rewards_lib.DEFAULT_REWARD:
            options.setdefault("table", self.return_table)
        return rewards_lib.make_reward(self.reward, **options)

    @property
    def needs_critic(self) -> bool:
        return "token_values" in returns_lib.get_estimator(self.estimator).requires

    @property
    def needs_baseline(self) -> bool:
        return "baseline_returns" in returns_lib.get_estimator(self.estimator).requires

    @property
    def needs_all_tests(self) -> bool:
        """The reward reads every test's result (the sandbox must not stop at a failure)."""
        return rewards_lib.get_reward(self.reward).all_tests

    @property
    def rows(self) -> int:
        """Rows per step: P * K RL rows + P * K * ce_per_sample CE rows (P with 0)."""
        rl = self.problems_per_step * self.num_samples
        return rl + (rl * self.ce_per_sample if self.ce_per_sample else self.problems_per_step)
