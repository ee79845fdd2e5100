"""The optimizer: AdamW with gradient clipping by global norm, and the paper's schedules.

CodeRL fine-tunes with AdamW (weight decay 0.05) and a linear warm-up; its released scripts
use a linear or a polynomial (power 0.5) decay after it. All three are optax schedules:

    constant     lr at every step (after an optional linear warm-up from 0)
    linear       warm-up from 0 to lr, then linear decay to end_learning_rate at total_steps
    polynomial   warm-up, then lr -> end_learning_rate as (1 - progress) ** power (0.5)

Weight decay applies to matrices only (ndim >= 2), not to norm scales or biases, as Hugging
Face's Trainer (which the official release used) does for LayerNorm weights and biases.
"""

from __future__ import annotations

import dataclasses

import jax
import optax

SCHEDULES = ("constant", "linear", "polynomial")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW + clipping + schedule; `total_steps` None means the trainer's number of steps."""

    learning_rate: float = 5e-5
    schedule: str = "constant"
    warmup_steps: int = 0
    end_learning_rate: float = 0.0
    power: float = 0.5
    total_steps: int | None = None
    weight_decay: float = 0.05
    clip_norm: float | None = 1.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"OptimizerConfig.schedule must be one of {SCHEDULES}, "
                             f"got {self.schedule!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm}")


def make_schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """The learning rate as a function of the (0-based) update count."""
    total = cfg.total_steps or total_steps
    warmup = cfg.warmup_steps
    if cfg.schedule == "constant":
        after = optax.constant_schedule(cfg.learning_rate)
    else:
        decay_steps = max(total - warmup, 1)
        power = 1.0 if cfg.schedule == "linear" else cfg.power
        after = optax.polynomial_schedule(cfg.learning_rate, cfg.end_learning_rate, power,
                                          decay_steps)
    if warmup == 0:
        return after
    ramp = optax.linear_schedule(0.0, cfg.learning_rate, warmup)
    return optax.join_schedules([ramp, after], [warmup])


def _decay_mask(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: OptimizerConfig, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(AdamW chained after global-norm clipping, its schedule)."""
    schedule = make_schedule(cfg, total_steps)
    parts = []
    if cfg.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    parts.append(optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                             weight_decay=cfg.weight_decay, mask=_decay_mask))
    return optax.chain(*parts), schedule
