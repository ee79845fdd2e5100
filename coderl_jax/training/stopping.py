"""Early stopping of a training stage on a held-out metric (the warm start's stopping rule).

    stopping = EarlyStopping(metric="heldout_greedy_pass@1", patience=3)
    tracker = Patience(stopping)
    for step, evals in ...:           # every TrainerConfig.eval_period updates
        if tracker.update(step, evals):
            break                      # not improved for `patience` evaluations
    tracker.best_step, tracker.best_value

The rule: an evaluation improves when its metric beats the best so far by more than
`min_delta` (higher is better for mode "max", lower for "min"; mode "auto" reads "nll" or
"loss" in the name as "min"). Training stops once `patience` evaluations in a row have not
improved. With `restore_best` the loop keeps a host copy of the best evaluation's params
and the stage ends with (and writes) those; otherwise it ends with the last params. The
decaying schedule is the optimizer's (OptimizerConfig.schedule "linear" / "polynomial"
over TrainerConfig.train_steps, the cap). Pure Python.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """metric: the eval_fn key to watch ("" = off: train for train_steps); mode: "max",
    "min" or "auto"; patience >= 1 evaluations; min_delta >= 0; restore_best: end with the
    best evaluation's params."""

    metric: str = ""
    mode: str = "auto"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self):
        if self.mode not in ("max", "min", "auto"):
            raise ValueError(f"EarlyStopping.mode must be max, min or auto, got {self.mode!r}")
        if self.patience < 1 or self.min_delta < 0:
            raise ValueError(f"EarlyStopping needs patience >= 1 and min_delta >= 0, got "
                             f"{self.patience}, {self.min_delta}")

    @property
    def enabled(self) -> bool:
        return bool(self.metric)

    @property
    def maximize(self) -> bool:
        if self.mode != "auto":
            return self.mode == "max"
        return not any(word in self.metric for word in ("nll", "loss"))


class Patience:
    """The stopping rule's state over a sequence of evaluations."""

    def __init__(self, cfg: EarlyStopping):
        self.cfg = cfg
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.bad = 0
        self.improved = False

    def update(self, step: int, evals: dict) -> bool:
        """Records one evaluation; True when training should stop. `improved` tells whether
        this evaluation is the new best. A missing or NaN metric is an error (a stopping
        rule that never sees its metric would silently train to the cap)."""
        value = evals.get(self.cfg.metric)
        if value is None or math.isnan(float(value)):
            raise ValueError(f"early stopping watches {self.cfg.metric!r} but the evaluation "
                             f"gave {sorted(evals)} (value {value!r})")
        value = float(value)
        sign = 1.0 if self.cfg.maximize else -1.0
        self.improved = (self.best_value is None
                         or sign * (value - self.best_value) > self.cfg.min_delta)
        if self.improved:
            self.best_value, self.best_step, self.bad = value, step, 0
        else:
            self.bad += 1
        return self.bad >= self.cfg.patience
