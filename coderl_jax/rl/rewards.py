"""Rewards: `(problem, verdict) -> float`, registered by name, chosen by `RLConfig.reward`.

A reward reads the problem (`coderl_jax.data.problem.Problem`) and the sandbox's verdict of
one program (`sandbox.Verdict` online; `training.labelled.LabelledSample` offline: both
have `outcome`, `error_type`, `test_results` and `passed`). The rollout turns verdicts into
rewards (`rl/rollout.py`, `rl/offline.py`); nothing downstream knows how they were made.
InternalError verdicts are never rewarded (the rollout drops them before calling).

    "coderl"   the paper's table (Sec. 3.2): -1.0 CompileError, -0.6 RuntimeError,
               -0.3 FailedTest, +1.0 PassedTest (`outcomes.RETURNS`); option `table`
    "partial"  partial credit: the share of the problem's hidden tests the program passed
               (APPS's "test case average"), in [0, 1]; runs every test (no stop at the
               first failure)

A researcher's own reward, in their own module (imported by a gin `import` line or
`--gin_import`), selected with `--gin.RLConfig.reward='mine'`:

    from coderl_jax.rl.rewards import register_reward

    @register_reward("mine")
    def mine(problem, verdict, bonus=0.5):
        return 1.0 + bonus if verdict.passed else -1.0
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping

from coderl_jax import outcomes

DEFAULT_REWARD = "coderl"


@dataclasses.dataclass(frozen=True)
class Reward:
    """A registered reward: fn(problem, verdict, **options) -> float; all_tests: it needs
    every test's result (the sandbox then runs them all); options: its keyword options."""

    name: str
    fn: Callable[..., float]
    all_tests: bool = False
    options: tuple[str, ...] = ()


REWARDS: dict[str, Reward] = {}


def register_reward(name: str, *, all_tests: bool = False):
    """Decorator: register `fn(problem, verdict, **options) -> float` as reward `name`.

    Its keyword parameters after (problem, verdict) are its options (RLConfig.reward_options).
    Registering a taken name is an error (no silent override of a built-in).
    """
    def register(fn):
        if name in REWARDS and REWARDS[name].fn is not fn:
            raise ValueError(f"reward {name!r} is already registered ({REWARDS[name].fn})")
        params = list(inspect.signature(fn).parameters.values())[2:]
        REWARDS[name] = Reward(name, fn, all_tests, tuple(p.name for p in params))
        return fn
    return register


def get_reward(name: str) -> Reward:
    """The reward registered as `name`; unknown names raise ValueError listing the known."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; known: {', '.join(map(repr, REWARDS))}")
    return REWARDS[name]


def make_reward(name: str, **options) -> Callable:
    """`(problem, verdict) -> float` of reward `name` with its options bound; an option it
    does not take is an error."""
    reward = get_reward(name)
    unknown = sorted(set(options) - set(reward.options))
    if unknown:
        takes = ", ".join(reward.options) or "no options"
        raise ValueError(f"reward {name!r} got unknown option(s) {', '.join(unknown)}; it "
                         f"takes {takes}")
    return functools.partial(reward.fn, **options)


def table_rewards(outcome_names, table: Mapping[str, float] = outcomes.RETURNS) -> list[float]:
    """The table's return of each outcome (NaN for InternalError: never rewarded)."""
    return [float(table[o]) if o in table else float("nan") for o in outcome_names]


@register_reward("coderl")
def coderl_reward(problem, verdict, table: Mapping[str, float] = outcomes.RETURNS) -> float:
    """The paper's return of the verdict's outcome."""
    del problem
    return float(table[verdict.outcome])


@register_reward("partial", all_tests=True)
def partial_reward(problem, verdict) -> float:
    """The share of the problem's hidden tests the program passed, in [0, 1]."""
    total = len(problem.hidden_tests) or len(verdict.test_results)
    passed = sum(r is True for r in verdict.test_results)
    return passed / total if total else 0.0
