"""The one batch type of every trainer, and its host-side builders.

A `Batch` is a typed pytree with fixed shapes (a run's batch size and encoder/decoder lengths
never change, so the jitted step compiles once; RL rounds its lengths up to a few buckets,
`rl/batch.py`, so it compiles once per bucket). Every field has the batch as its leading
axis, so one rule shards it ("batch" -> "data"):

    encoder_input_tokens  int32   [B, S]  prompt tokens, 0 (<pad>) after them
    encoder_mask          int32   [B, S]  1 = real token
    decoder_input_tokens  int32   [B, T]  targets shifted right, starting with 0 (T5's start)
    decoder_target_tokens int32   [B, T]  the program tokens (EOS included), 0 after them
    decoder_mask          int32   [B, T]  1 = real target token
    token_weights         float32 [B, T]  signed weight of -log p per token (losses.py):
                                          mask / N for L_ce, (r - b) * q / N for L_rl; 0 pads
    kl_weights            float32 [B, T]  weight of the per-token KL penalty (0 = off)
    reference_log_probs   float32 [B, T]  log p_ref of each target token (KL penalty only)
    labels                int32   [B]     the critic's outcome class of the row
    label_weights         float32 [B]     weight of the row in the critic loss (1/rows; 0 pads)
    temperature           float32 [B]     the actor scores the row at softmax(logits / T): the
                                          sampling temperature for RL samples (REINFORCE
                                          needs log pi of the distribution that drew them),
                                          1.0 for references and padding

Weights are data and already normalised on the host, so the actor's L_ce, L_rl, their sum,
the critic loss and the KL term are all one step (docs/design.md "one weighted loss").
Rows past the examples are empty: all zero, weight 0, so a short last batch keeps the shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.struct
import jax
import numpy as np

DECODER_START_ID = 0


@flax.struct.dataclass
class Batch:
    """See the module docstring for shapes and meaning."""

    encoder_input_tokens: Any
    encoder_mask: Any
    decoder_input_tokens: Any
    decoder_target_tokens: Any
    decoder_mask: Any
    token_weights: Any
    kl_weights: Any
    reference_log_probs: Any
    labels: Any
    label_weights: Any
    temperature: Any

    @property
    def batch_size(self) -> int:
        return int(self.encoder_input_tokens.shape[0])


def empty_batch(batch_size: int, encoder_length: int, decoder_length: int) -> Batch:
    """An all-zero numpy `Batch` of the given shape (every row is padding)."""
    enc = lambda dtype=np.int32: np.zeros((batch_size, encoder_length), dtype)  # noqa: E731
    dec = lambda dtype=np.int32: np.zeros((batch_size, decoder_length), dtype)  # noqa: E731
    return Batch(
        encoder_input_tokens=enc(), encoder_mask=enc(),
        decoder_input_tokens=dec(), decoder_target_tokens=dec(), decoder_mask=dec(),
        token_weights=dec(np.float32), kl_weights=dec(np.float32),
        reference_log_probs=dec(np.float32),
        labels=np.zeros((batch_size,), np.int32), label_weights=np.zeros((batch_size,), np.float32),
        temperature=np.ones((batch_size,), np.float32),
    )


def build_batch(examples: Sequence[Mapping[str, Any]], batch_size: int, encoder_length: int,
                decoder_length: int) -> Batch:
    """One example per row, padded to the fixed lengths (numpy).

    Each example has "inputs" int [n] (framed prompt tokens) and "targets" int [m] (program
    tokens ending in EOS), and optionally "token_weights" [m], "kl_weights" [m],
    "reference_log_probs" [m] (default 0: no loss on the row unless weights are set later),
    "label" int and "label_weight" float (default 0), "temperature" float (default 1). Too
    long an example is an error naming it (a truncated program is a wrong program; the
    callers size the lengths).
    """
    if len(examples) > batch_size:
        raise ValueError(f"{len(examples)} examples do not fit a batch of {batch_size} rows")
    batch = empty_batch(batch_size, encoder_length, decoder_length)
    for row, ex in enumerate(examples):
        inputs = np.asarray(ex["inputs"], np.int32)
        targets = np.asarray(ex["targets"], np.int32)
        name = ex.get("task_id", row)
        if len(inputs) > encoder_length or len(targets) > decoder_length:
            raise ValueError(
                f"example {name!r}: {len(inputs)} input / {len(targets)} target tokens do not fit "
                f"encoder_length={encoder_length} / decoder_length={decoder_length}")
        if len(inputs) == 0 or len(targets) == 0:
            raise ValueError(f"example {name!r}: empty inputs or targets")
        n, m = len(inputs), len(targets)
        batch.encoder_input_tokens[row, :n] = inputs
        batch.encoder_mask[row, :n] = 1
        batch.decoder_target_tokens[row, :m] = targets
        batch.decoder_input_tokens[row, :m] = np.concatenate([[DECODER_START_ID], targets[:-1]])
        batch.decoder_mask[row, :m] = 1
        for key in ("token_weights", "kl_weights", "reference_log_probs"):
            if key in ex and ex[key] is not None:
                values = np.asarray(ex[key], np.float32)
                if values.shape != (m,):
                    raise ValueError(f"example {name!r}: {key} has shape {values.shape}, "
                                     f"expected ({m},) like its targets")
                getattr(batch, key)[row, :m] = values
        if ex.get("temperature") is not None:
            if not ex["temperature"] > 0:
                raise ValueError(f"example {name!r}: temperature must be > 0, got "
                                 f"{ex['temperature']}")
            batch.temperature[row] = float(ex["temperature"])
        if "label" in ex:
            batch.labels[row] = int(ex["label"])
            batch.label_weights[row] = float(ex.get("label_weight", 1.0))
    return batch


def ce_batch(examples: Sequence[Mapping[str, Any]], batch_size: int, encoder_length: int,
             decoder_length: int, num_tokens: float | None = None) -> Batch:
    """A batch whose loss is L_ce: token_weights = decoder_mask / num_tokens.

    num_tokens: the normaliser N (default: the real target tokens of this batch; give the
    global count when this is one host's shard of a larger batch).
    """
    batch = build_batch(examples, batch_size, encoder_length, decoder_length)
    n = float(batch.decoder_mask.sum()) if num_tokens is None else float(num_tokens)
    return batch.replace(token_weights=batch.decoder_mask.astype(np.float32) / max(n, 1.0))


def critic_inputs(batch: Batch) -> Batch:
    """The critic reads the program itself: decoder inputs = the program tokens, unshifted.

    Its decoder state at position t has then seen w_1..w_t (causal attention includes the
    token itself), so the per-token head predicts P(outcome | w_1..t): the paper's q(w_t)
    and the quantity critic sampling cuts by. (Shifted inputs would lag by one token.)
    """
    return batch.replace(decoder_input_tokens=batch.decoder_target_tokens.copy())


def critic_batch(examples: Sequence[Mapping[str, Any]], batch_size: int, encoder_length: int,
                 decoder_length: int, num_rows: float | None = None) -> Batch:
    """A batch whose loss is the critic's: each example has a "label"; label_weights =
    (the example's "class_weight", default 1) / rows.

    Decoder inputs are the programs themselves (`critic_inputs`).
    """
    for i, ex in enumerate(examples):
        if "label" not in ex:
            raise ValueError(f"critic example {ex.get('task_id', i)!r} has no label")
    batch = critic_inputs(build_batch(examples, batch_size, encoder_length, decoder_length))
    n = float(len(examples)) if num_rows is None else float(num_rows)
    weights = np.zeros((batch_size,), np.float32)
    weights[:len(examples)] = [float(ex.get("class_weight", 1.0)) / max(n, 1.0)
                               for ex in examples]
    return batch.replace(label_weights=weights)


def global_sum(local) -> np.ndarray:
    """Elementwise sum of a host-local scalar or vector over all processes (float64)."""
    if jax.process_count() == 1:
        return np.asarray(local, np.float64)
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.asarray(local, np.float32))
    return np.asarray(gathered, np.float64).sum(axis=0)


def global_max(local) -> np.ndarray:
    """Elementwise max of a host-local scalar or vector over all processes (so that every
    process picks the same batch shape)."""
    if jax.process_count() == 1:
        return np.asarray(local)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(np.asarray(local))).max(axis=0)


def global_count(local: float) -> float:
    """Sum of a host-local count over all processes (the normaliser of a multi-host batch)."""
    return float(global_sum(local))


def to_global(batch: Batch, sharding: Any) -> Batch:
    """Host-local numpy rows -> one global jax `Batch` split over the mesh's "data" axis.

    With one process this is a `device_put`; with several, each process passes its own rows
    (its shard of the global batch, in process order) and the global array is assembled from
    those process-local pieces without any host holding the whole batch.
    """
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    # `sharding` is a Batch of shardings (one per field) or one sharding for every field.
    if not isinstance(sharding, Batch):
        sharding = jax.tree.map(lambda _: sharding, batch)
    return jax.tree.map(
        lambda x, s: jax.make_array_from_process_local_data(s, np.asarray(x)), batch, sharding)
