"""RL as batch sources of the one loop (`training/loop.py`): online rollouts, offline files.

Each draw takes the next problem batch of a seeded epoch-by-epoch order (the data position
is the number of problem batches consumed, so a resumed run draws what an uninterrupted
run would have), judges this process's share of it (`OnlineSource`: sample with the
current params + execute, `rl/rollout.py`; `OfflineSource`: read from files and score with
the frozen models), and turns it into the weighted batch(es) of `rl/batch.py`: one update
for the "sum" objective, two ("ce/", "rl/") for "alternate". Its metrics (returns, outcome
shares, pass rates, critic accuracy, dropped samples, the time split) are summed over
processes and logged by the loop.
"""

from __future__ import annotations

import abc

from collections.abc import Callable, Sequence

import jax
import numpy as np

from coderl_jax.rl import stats as stats_lib
from coderl_jax.rl.batch import bucket_lengths, build_rl_batch
from coderl_jax.rl.rollout import Judged, ProblemData, score_samples
from coderl_jax.training import batch as batch_lib
from coderl_jax.training.sources import Draw, epoch_order, process_rows


def problem_batch(num_problems: int, per_step: int, seed: int, position: int) -> list[int]:
    """Problem indices of batch `position` of the seeded epoch-by-epoch order."""
    out = []
    for k in range(position * per_step, (position + 1) * per_step):
        epoch, offset = divmod(k, num_problems)
        out.append(int(epoch_order(num_problems, seed, epoch)[offset]))
    return out


def rl_draw(judged: Judged, cfg, timings: dict, seed: int = 0) -> Draw:
    """The draw of one RL iteration: its batch(es) and its (global) metrics; `seed` draws
    the CE rows' references (RLConfig.ce_per_sample)."""
    parts = ("both",) if cfg.objective == "sum" else ("ce", "rl")
    encoder_length, decoder_length = bucket_lengths(judged.groups, cfg)
    batches, stats = [], {}
    for part in parts:
        batch, stats = build_rl_batch(
            judged.groups, judged.token_probs, judged.reference_log_probs, cfg,
            batch_rows=cfg.rows // jax.process_count(), encoder_length=encoder_length,
            decoder_length=decoder_length, part=part,
            seed=seed + 7919 * jax.process_index())
        batches.append(batch)
    groups = judged.groups
    # Counts summed over processes: process 0 logs the whole batch's figures.
    local = np.concatenate([stats_lib.step_counts(groups, judged.pooled),
                            [stats["dropped_internal"], stats["dropped_no_baseline"],
                             sum(len(ids) for g in groups for ids in g.samples)]])
    total = batch_lib.global_sum(local)
    metrics = stats_lib.statistics_from_counts(total[:-3])
    metrics["dropped_internal"], metrics["dropped_no_baseline"], metrics["sampled_tokens"] = \
        total[-3:].tolist()
    metrics.update({f"time/{k}": v for k, v in timings.items()})
    prefixes = ("",) if len(parts) == 1 else ("ce/", "rl/")
    return Draw(batches, prefixes, metrics)


class _RLSource(abc.ABC):
    """The problem order and the draw; subclasses judge a problem batch (`_judge`)."""

    timed = True

    def __init__(self, cfg, num_problems: int, seed: int):
        self.cfg, self.num_problems, self.seed = cfg, num_problems, seed
        self.updates_per_draw = 1 if cfg.objective == "sum" else 2
        self.position = 0

    def start(self, position: int) -> None:
        self.position = position

    def next(self, state) -> Draw:
        indices = problem_batch(self.num_problems, self.cfg.problems_per_step, self.seed,
                                self.position)
        timings: dict[str, float] = {}
        judged = self._judge(state.params, process_rows(indices), timings)
        self.position += 1
        return rl_draw(judged, self.cfg, timings, seed=self.seed * 1_000_003 + self.position)

    @abc.abstractmethod
    def _judge(self, params, indices: Sequence[int], timings: dict) -> Judged:
        """The judged rollouts of the problems `indices` (this process's share)."""

    def close(self) -> None:
        pass


class OnlineSource(_RLSource):
    """Online CodeRL: each draw samples this process's problems with the current params.

    make_executor: () -> the sandbox `Executor`, created when the loop starts the source
    and shut down by `close` (the loop closes its source whatever happens, so no sandbox
    process outlives the run).
    """

    def __init__(self, cfg, problems: Sequence[ProblemData], make_rollout: Callable,
                 make_executor: Callable, seed: int):
        super().__init__(cfg, len(problems), seed)
        self.problems, self.make_rollout, self.make_executor = problems, make_rollout, \
            make_executor
        self.executor = self.rollout = None

    def start(self, position: int) -> None:
        super().start(position)
        self.executor = self.make_executor()
        self.rollout = self.make_rollout(self.executor)

    def _judge(self, params, indices, timings) -> Judged:
        # The policy step seeds the sampling: the data position, as an uninterrupted run.
        return self.rollout.collect(params, [self.problems[i] for i in indices],
                                    self.position, timings)

    def close(self) -> None:
        if self.rollout is not None:
            self.rollout.cancel_pending()
        if self.executor is not None:
            self.executor.close()
        self.executor = self.rollout = None


class OfflineSource(_RLSource):
    """Offline RL: each draw takes judged groups from files (`rl/offline.py`) and scores
    them with the frozen critic / reference (`scoring.Scorer`s, None when unused)."""

    def __init__(self, cfg, groups: Sequence, critic, reference, seed: int):
        super().__init__(cfg, len(groups), seed)
        self.groups, self.critic, self.reference = groups, critic, reference

    def _judge(self, params, indices, timings) -> Judged:
        del params  # the samples were drawn before
        groups = [self.groups[i] for i in indices]
        token_probs, pooled, ref_logp = score_samples(
            self.critic, self.reference, [g.prompt_ids for g in groups for _ in g.samples],
            [ids for g in groups for ids in g.samples], self.cfg.temperature, timings)
        return Judged(groups, token_probs, pooled, ref_logp)
