"""Where the loop's batches come from: the `BatchSource` protocol and the dataset streams.

`loop.run_training` asks a source for the next batch given the current train state; the
source decides what a batch is:

    dataset stream  pretrain / finetune / critic / repair: examples in a seeded epoch order
                    (`StreamSource` over `supervised_stream(...)` or any `make(start)`)
    rollouts        online RL: sample with the current params, execute, score (`rl/source.py`)
    files           offline RL: samples + results files, scored by the frozen models

A source is resumable by its *data position* (draws consumed, checkpointed with the state):
`start(position)` puts it where an uninterrupted run would be, so the batches after a
resume are the batches the run would have seen.

Also the data order every stream shares: `split_holdout` (by problem), `epoch_order`,
`example_stream` and `process_rows` (each process feeds its own rows of a global batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import jax
import numpy as np

from coderl_jax.training import batch as batch_lib


@dataclasses.dataclass
class Draw:
    """One draw of a source: the batches of one iteration and what the source measured.

    batches: host numpy `Batch`es (this process's rows), one optimizer update each, in order.
    prefixes: a metric prefix per update ("" for one update; "ce/", "rl/" for RL's
      "alternate" objective), applied to the step's metrics.
    metrics: host-side figures of this draw (returns, outcome shares, timings, ...), logged
      with the step's metrics when the loop logs.
    """

    batches: Sequence[batch_lib.Batch]
    prefixes: Sequence[str] = ("",)
    metrics: dict = dataclasses.field(default_factory=dict)


class BatchSource(Protocol):
    """What `loop.run_training` pulls batches from (see the module docstring).

    updates_per_draw: the optimizer updates of every draw (the loop's train_steps count
      updates); timed: the loop waits for each update and logs time/update, time/draw (for
      sources whose draws take long anyway, e.g. RL, where they are worth knowing).
    """

    updates_per_draw: int
    timed: bool

    def start(self, position: int) -> None: ...

    def next(self, state) -> Draw: ...

    def close(self) -> None: ...


class StreamSource:
    """A source over `make(start) -> iterator of numpy Batch`es, deterministic in `start`."""

    updates_per_draw = 1
    timed = False

    def __init__(self, make: Callable[[int], Iterator[batch_lib.Batch]]):
        self._make = make
        self._batches: Iterator[batch_lib.Batch] | None = None

    def start(self, position: int) -> None:
        self._batches = self._make(position)

    def next(self, state) -> Draw:
        del state  # a dataset does not depend on the model
        return Draw((next(self._batches),))

    def close(self) -> None:
        self._batches = None


def split_holdout(problems: Sequence[Any], fraction: float, seed: int
                  ) -> tuple[list[Any], list[Any]]:
    """(train, held-out) by problem: a seeded `fraction` of the problems is held out, so
    held-out numbers measure new problems, never a reference or sample seen in training."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    n_hold = int(round(fraction * len(problems)))
    order = np.random.default_rng([seed, 7919]).permutation(len(problems))
    held = set(order[:n_hold].tolist())
    train = [p for i, p in enumerate(problems) if i not in held]
    return train, [p for i, p in enumerate(problems) if i in held]


def process_rows(rows: Sequence[Any]) -> list[Any]:
    """This process's contiguous share of a global batch's rows (process order)."""
    n, p = jax.process_count(), jax.process_index()
    if len(rows) % n:
        raise ValueError(f"a global batch of {len(rows)} rows does not split over {n} processes")
    share = len(rows) // n
    return list(rows[p * share:(p + 1) * share])


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of an epoch: a permutation drawn from (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def example_stream(examples: Sequence[Any], batch_size: int, seed: int,
                   start_batch: int = 0) -> Iterator[list[Any]]:
    """Global batches of `batch_size` examples, forever, epoch after epoch (each shuffled by
    (seed, epoch)); batch i is the same whatever `start_batch` the stream started from."""
    if not examples:
        raise ValueError("no training examples")
    n = len(examples)
    index = start_batch
    orders: dict[int, np.ndarray] = {}
    while True:
        first = index * batch_size
        rows = []
        for position in range(first, first + batch_size):
            epoch, offset = divmod(position, n)
            if epoch not in orders:
                orders = {e: o for e, o in orders.items() if e >= epoch - 1}
                orders[epoch] = epoch_order(n, seed, epoch)
            rows.append(examples[int(orders[epoch][offset])])
        yield rows
        index += 1


def ce_rows(rows: Sequence[dict], mine: Sequence[dict], local_size: int, encoder_length: int,
            decoder_length: int) -> batch_lib.Batch:
    """This process's CE batch of a global batch `rows`: weights / the global token count."""
    tokens = sum(len(r["targets"]) for r in rows)
    return batch_lib.ce_batch(mine, local_size, encoder_length, decoder_length,
                              num_tokens=tokens)


def critic_rows(rows: Sequence[dict], mine: Sequence[dict], local_size: int,
                encoder_length: int, decoder_length: int) -> batch_lib.Batch:
    """This process's critic batch of a global batch `rows`: label weights / global rows."""
    return batch_lib.critic_batch(mine, local_size, encoder_length, decoder_length,
                                  num_rows=len(rows))


def supervised_stream(examples: Sequence[dict], batch_size: int, encoder_length: int,
                      decoder_length: int, seed: int, weighting: Callable = ce_rows
                      ) -> StreamSource:
    """A source of this process's rows of each global batch, weighted by `weighting`
    (`ce_rows` or `critic_rows`: the normaliser is the global batch's, computed from the
    global rows every process knows, so shards add up to the full-batch loss)."""
    def make(start: int) -> Iterator[batch_lib.Batch]:
        local_size = batch_size // jax.process_count()
        for rows in example_stream(examples, batch_size, seed, start):
            yield weighting(rows, process_rows(rows), local_size, encoder_length,
                            decoder_length)
    return StreamSource(make)
