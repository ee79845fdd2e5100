"""Training examples (masked span prediction, next-token prediction, problem -> solution)
and their fixed-shape batching.

Everything here is numpy, pure and seeded: the same arguments give the same arrays. The
seqio tasks (`seqio_tasks.py`) wrap these functions; nothing is written twice.

Examples. One example is a dict `{"inputs": int32 [n], "targets": int32 [m]}` of token ids
(the seqio feature names), already framed with EOS:

  * Supervised (the warm start, L_ce): inputs = the problem's prompt, targets = a reference
    solution (`supervised_examples`).
  * MSP, masked span prediction (T5 span corruption, CodeT5's MSP). A noise mask marks
    about `noise_density` (15%) of the tokens in spans of mean length
    `mean_noise_span_length` (3), drawn by `random_spans_noise_mask` (the algorithm of T5's
    `random_spans_noise_mask`: span counts fixed by the length, span lengths a uniformly
    random composition; the mask starts with a kept span and ends with a noise span). Each
    noise span k (k = 0, 1, ...) is replaced in the inputs by sentinel k and, in the targets,
    follows sentinel k:
        tokens   a b c d e f g h      mask   . . X X . . . X
        inputs   a b <S0> e f g <S1> </s>
        targets  <S0> c d <S1> h </s>
    where <Sk> is `sentinel_ids[k]` (for our tokenizer and CodeT5's: <extra_id_k>, id V-1-k).
  * NTP, next-token prediction (CodeRL's CodeT5-NTP). A pivot p is drawn uniformly among the
    integers of [ceil(0.1 n), floor(0.9 n)] (then clamped to [1, n-1], so both halves are
    non-empty); inputs = tokens[:p] + </s>, targets = tokens[p:] + </s>.
  With `bos_id` set, the inputs start with <s> (CodeT5's RobertaTokenizer framing, so
  pretraining inputs look like the fine-tuning prompts `tokenizer(text)` gives).

Batches. A batch is a dict of numpy arrays with T5X's feature names, every one of shape
`[batch, encoder_length]` or `[batch, decoder_length]`, fixed for a run so the jitted step
compiles once:

    encoder_input_tokens   int32   [batch, encoder_length]  0 (<pad>) after the tokens
    encoder_segment_ids    int32   [batch, encoder_length]  1, 2, ... per example, 0 = pad
    encoder_positions      int32   [batch, encoder_length]  0.. within each example
    decoder_target_tokens  int32   [batch, decoder_length]  the targets
    decoder_input_tokens   int32   [batch, decoder_length]  targets shifted right by one
                                                             within each example, starting
                                                             with 0 (T5's decoder start id)
    decoder_segment_ids    int32   [batch, decoder_length]
    decoder_positions      int32   [batch, decoder_length]
    decoder_loss_weights   float32 [batch, decoder_length]  1.0 on target tokens, else 0.0

`pad_batch` puts one example per row (segment ids are then 1/0, i.e. the attention/loss
masks: `mask = segment_ids != 0`). `pack_examples` puts several examples per row; a model
that packs must keep attention inside a segment (`segment_ids[q] == segment_ids[k]`) and
restart the decoder at each segment. A model whose attention only knows a padding mask must
use the unpacked layout. Examples are never truncated here: the corpus is cut into windows
(`chunk_document`) whose length guarantees every example fits (`max_chunk_length`), and an
example that does not fit is an error naming it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

Example = dict  # {"inputs": np.ndarray int32 [n], "targets": np.ndarray int32 [m]}

# Decoder start token of T5 (and CodeT5): the <pad> id.
DECODER_START_ID = 0

BATCH_FEATURES: tuple[str, ...] = (
    "encoder_input_tokens",
    "encoder_segment_ids",
    "encoder_positions",
    "decoder_target_tokens",
    "decoder_input_tokens",
    "decoder_segment_ids",
    "decoder_positions",
    "decoder_loss_weights",
)


# --------------------------------------------------------------------------- MSP


def noise_span_counts(
    length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """(num_noise_tokens, num_noise_spans) for a sequence of `length` tokens, as T5 counts:
    round(length * density) noise tokens, clamped to [1, length - 1]; round(noise / mean)
    spans, at least 1. The counts depend on the length only; the positions are random.
    (T5 also treats a length-1 sequence as length 2; here length must be >= 2.) One more
    clamp T5 lacks: spans <= kept tokens, since every span is preceded by a kept span.
    """
    if length < 2:
        raise ValueError(f"span corruption needs a sequence of >= 2 tokens, got {length}")
    num_noise = round(length * noise_density)
    num_noise = min(max(num_noise, 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    num_spans = min(num_spans, num_noise, length - num_noise)
    return num_noise, num_spans


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Split `num_items` into `num_segments` positive lengths, uniformly among all such
    compositions: the segment starts are item 0 plus `num_segments - 1` distinct items of
    1..num_items-1 chosen at random. Returns int64 [num_segments], summing to num_items."""
    is_start = np.zeros(num_items, dtype=bool)
    is_start[1:] = rng.permutation(num_items - 1) < num_segments - 1
    segment_id = np.cumsum(is_start)
    return np.bincount(segment_id, minlength=num_segments)


def random_spans_noise_mask(
    length: int,
    rng: np.random.Generator,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> np.ndarray:
    """T5's noise mask: bool [length], True = noise (see module docstring).

    The sequence alternates kept and noise spans, starting with a kept span and ending with
    a noise span; `noise_span_counts` fixes how many tokens and spans are noise.
    """
    num_noise, num_spans = noise_span_counts(length, noise_density, mean_noise_span_length)
    # Two draws from the one generator: noise span lengths first, then kept span lengths.
    noise_lengths = _random_segmentation(num_noise, num_spans, rng)
    kept_lengths = _random_segmentation(length - num_noise, num_spans, rng)
    interleaved = np.stack([kept_lengths, noise_lengths], axis=1).reshape(-1)  # kept0, noise0, ...
    span_index = np.repeat(np.arange(2 * num_spans), interleaved)
    return span_index % 2 == 1


def msp_example_from_mask(
    tokens: Sequence[int],
    noise_mask: Sequence[bool],
    sentinel_ids: Sequence[int],
    eos_id: int,
    bos_id: int | None = None,
) -> Example:
    """The MSP example for a given noise mask (module docstring).

    Args:
      tokens: int [n] bare token ids.
      noise_mask: bool [n], True = corrupted.
      sentinel_ids: ids of sentinel 0, 1, ... (`tokenizer.sentinel_ids(tok)`).
      eos_id: appended to inputs and targets.
      bos_id: if not None, prepended to the inputs.
    Returns:
      {"inputs": int32 [n - noise + spans + 1 (+1)], "targets": int32 [noise + spans + 1]}.
    """
    tokens = np.asarray(tokens, dtype=np.int32)
    mask = np.asarray(noise_mask, dtype=bool)
    if tokens.ndim != 1 or mask.shape != tokens.shape:
        raise ValueError(
            f"tokens {tokens.shape} and noise_mask {mask.shape} must be equal 1-D shapes"
        )
    span_starts = mask & ~np.concatenate([[False], mask[:-1]])
    num_spans = int(span_starts.sum())
    if num_spans > len(sentinel_ids):
        raise ValueError(
            f"{num_spans} noise spans but only {len(sentinel_ids)} sentinels; use shorter "
            f"sequences or a lower noise density"
        )
    sentinels = np.asarray(sentinel_ids, dtype=np.int32)[:num_spans]
    # Inputs: the kept tokens, with the first position of span k turned into sentinel k
    # (the span starts are in order, so the k-th True of span_starts is span k).
    corrupted = tokens.copy()
    corrupted[span_starts] = sentinels
    body = corrupted[~mask | span_starts]
    # Targets: the noise tokens, with sentinel k inserted before span k's first token.
    spans = np.insert(tokens[mask], np.flatnonzero(span_starts[mask]), sentinels)
    prefix = [bos_id] if bos_id is not None else []
    return {
        "inputs": np.concatenate([np.asarray(prefix, np.int32), body, [eos_id]]).astype(np.int32),
        "targets": np.concatenate([spans, [eos_id]]).astype(np.int32),
    }


def msp_example(
    tokens: Sequence[int],
    rng: np.random.Generator,
    sentinel_ids: Sequence[int],
    eos_id: int,
    bos_id: int | None = None,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> Example:
    """Masked span prediction on `tokens` (int [n], n >= 2) with a noise mask drawn from
    `rng`; see `msp_example_from_mask` for the rest."""
    mask = random_spans_noise_mask(len(tokens), rng, noise_density, mean_noise_span_length)
    return msp_example_from_mask(tokens, mask, sentinel_ids, eos_id, bos_id)


def msp_lengths(
    length: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    with_bos: bool = False,
) -> tuple[int, int]:
    """(len(inputs), len(targets)) of every MSP example of a `length`-token sequence."""
    num_noise, num_spans = noise_span_counts(length, noise_density, mean_noise_span_length)
    return length - num_noise + num_spans + 1 + int(with_bos), num_noise + num_spans + 1


# --------------------------------------------------------------------------- NTP


def ntp_pivot_range(
    length: int, min_fraction: float = 0.1, max_fraction: float = 0.9
) -> tuple[int, int]:
    """Inclusive (low, high) of the NTP pivot for `length` tokens: the integers of
    [min_fraction * length, max_fraction * length], clamped to [1, length - 1]."""
    if length < 2:
        raise ValueError(f"next-token prediction needs a sequence of >= 2 tokens, got {length}")
    if not 0.0 <= min_fraction <= max_fraction <= 1.0:
        raise ValueError(
            f"need 0 <= min_fraction <= max_fraction <= 1, got {min_fraction}, {max_fraction}"
        )
    # The epsilon keeps float error (0.1 * 30 = 3.0000000000000004) from moving a bound.
    low = math.ceil(length * min_fraction - 1e-9)
    high = math.floor(length * max_fraction + 1e-9)
    low, high = min(max(low, 1), length - 1), min(max(high, 1), length - 1)
    return low, max(low, high)


def ntp_example(
    tokens: Sequence[int],
    rng: np.random.Generator | None,
    eos_id: int,
    bos_id: int | None = None,
    pivot: int | None = None,
    min_fraction: float = 0.1,
    max_fraction: float = 0.9,
) -> Example:
    """Next-token prediction: inputs = tokens[:pivot] (+ EOS), targets = tokens[pivot:] + EOS.

    Args:
      tokens: int [n] bare token ids, n >= 2.
      rng: draws the pivot uniformly in `ntp_pivot_range` (unused when `pivot` is given).
      eos_id, bos_id: framing as in `msp_example_from_mask`.
      pivot: a fixed pivot in [1, n-1] instead of a random one.
    Returns:
      {"inputs": int32 [pivot + 1 (+1)], "targets": int32 [n - pivot + 1]}.
    """
    tokens = np.asarray(tokens, dtype=np.int32)
    if pivot is None:
        if rng is None:
            raise ValueError("ntp_example needs an rng or a fixed pivot")
        low, high = ntp_pivot_range(len(tokens), min_fraction, max_fraction)
        pivot = int(rng.integers(low, high + 1))
    elif not 1 <= pivot <= len(tokens) - 1:
        raise ValueError(f"pivot {pivot} outside [1, {len(tokens) - 1}] for {len(tokens)} tokens")
    prefix = [bos_id] if bos_id is not None else []
    inputs = np.concatenate([np.asarray(prefix, np.int32), tokens[:pivot], [eos_id]]).astype(
        np.int32
    )
    targets = np.concatenate([tokens[pivot:], [eos_id]]).astype(np.int32)
    return {"inputs": inputs, "targets": targets}


def ntp_lengths(
    length: int, min_fraction: float = 0.1, max_fraction: float = 0.9, with_bos: bool = False
) -> tuple[int, int]:
    """(max len(inputs), max len(targets)) over the pivots an NTP example of `length`
    tokens can draw."""
    low, high = ntp_pivot_range(length, min_fraction, max_fraction)
    return high + 1 + int(with_bos), length - low + 1


# --------------------------------------------------------------------------- corpus -> examples


@dataclasses.dataclass(frozen=True)
class Objective:
    """A pretraining objective: how to build an example from a window of tokens and how
    long its examples get (to size the windows).

    Attributes:
      name: registry key.
      build: (tokens int [n], rng, sentinel_ids, eos_id, bos_id) -> Example.
      lengths: (n, with_bos) -> (max len(inputs), max len(targets)).
    """

    name: str
    build: Callable[..., Example]
    lengths: Callable[[int, bool], tuple[int, int]]


OBJECTIVES: Mapping[str, Objective] = {
    "msp": Objective(
        name="msp",
        build=lambda tokens, rng, sentinel_ids, eos_id, bos_id: msp_example(
            tokens, rng, sentinel_ids, eos_id, bos_id
        ),
        lengths=lambda n, with_bos: msp_lengths(n, with_bos=with_bos),
    ),
    "ntp": Objective(
        name="ntp",
        build=lambda tokens, rng, sentinel_ids, eos_id, bos_id: ntp_example(
            tokens, rng, eos_id, bos_id
        ),
        lengths=lambda n, with_bos: ntp_lengths(n, with_bos=with_bos),
    ),
}


def get_objective(name: str) -> Objective:
    """The objective registered under `name` ("msp" or "ntp")."""
    if name not in OBJECTIVES:
        raise ValueError(
            f"unknown pretraining objective {name!r}; expected one of {sorted(OBJECTIVES)}"
        )
    return OBJECTIVES[name]


def max_chunk_length(
    objective: str,
    encoder_length: int,
    decoder_length: int,
    with_bos: bool = False,
    upper: int = 1 << 16,
) -> int:
    """The largest window length L such that every window of 2..L tokens gives examples
    that fit `encoder_length` / `decoder_length` (so no example is ever truncated).

    Raises:
      ValueError: not even a 2-token window fits.
    """
    lengths = get_objective(objective).lengths
    best = 0
    for n in range(2, upper + 1):
        enc, dec = lengths(n, with_bos)
        if enc > encoder_length or dec > decoder_length:
            break
        best = n
    if best == 0:
        raise ValueError(
            f"{objective}: encoder_length {encoder_length} / decoder_length {decoder_length} "
            f"cannot hold even a 2-token example"
        )
    return best


def chunk_document(tokens: Sequence[int], chunk_length: int) -> list[np.ndarray]:
    """Cut one document into consecutive windows of `chunk_length` tokens (the last may be
    shorter). Returns a list of int32 [<= chunk_length] arrays covering every token."""
    if chunk_length < 1:
        raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
    tokens = np.asarray(tokens, dtype=np.int32)
    return [tokens[i : i + chunk_length] for i in range(0, len(tokens), chunk_length)]


@dataclasses.dataclass
class ExampleStats:
    """Counts kept by `pretrain_examples` (nothing is skipped without being counted)."""

    documents: int = 0
    windows: int = 0
    examples: int = 0
    short_windows: int = 0  # windows of < 2 tokens: no example can be built from them
    short_window_tokens: int = 0


def pretrain_examples(
    documents: Sequence[Sequence[int]],
    objective: str,
    chunk_length: int,
    *,
    seed: int,
    sentinel_ids: Sequence[int],
    eos_id: int,
    bos_id: int | None = None,
    num_epochs: int | None = 1,
    shuffle: bool = True,
    stats: ExampleStats | None = None,
) -> Iterator[Example]:
    """Examples of `objective` over tokenized documents, epoch after epoch.

    Each epoch visits the documents in an order drawn from (seed, epoch) (or in the given
    order with shuffle=False), cuts each into windows (`chunk_document`), and builds one
    example per window with a generator seeded by (seed, epoch, document index, window
    index): an example depends only on those, never on batching or on other examples.

    Args:
      documents: bare token ids per document (`tokenizer.encode_documents`).
      objective: "msp" or "ntp".
      chunk_length: window length (`max_chunk_length` for a given encoder/decoder length).
      seed: the run's data seed.
      sentinel_ids, eos_id, bos_id: as in `msp_example_from_mask`.
      num_epochs: passes over the data; None = forever.
      shuffle: shuffle the document order each epoch.
      stats: if given, updated with counts as examples are produced.
    Yields:
      {"inputs": int32 [n], "targets": int32 [m]}.
    """
    build = get_objective(objective).build
    stats = stats if stats is not None else ExampleStats()
    if len(documents) == 0:
        raise ValueError("pretrain_examples got no documents")
    epoch = 0
    while num_epochs is None or epoch < num_epochs:
        order = (
            np.random.default_rng([seed, epoch]).permutation(len(documents))
            if shuffle
            else np.arange(len(documents))
        )
        for doc_index in order:
            stats.documents += 1
            for window_index, window in enumerate(
                chunk_document(documents[doc_index], chunk_length)
            ):
                stats.windows += 1
                if len(window) < 2:
                    stats.short_windows += 1
                    stats.short_window_tokens += len(window)
                    continue
                rng = np.random.default_rng([seed, epoch, int(doc_index), window_index])
                stats.examples += 1
                yield build(window, rng, sentinel_ids, eos_id, bos_id)
        epoch += 1


# --------------------------------------------------------------------------- supervised


@dataclasses.dataclass
class SupervisedStats:
    """Counts kept by `supervised_examples` (what was left out, and why)."""

    problems: int = 0
    examples: int = 0
    unsolved: list = dataclasses.field(default_factory=list)  # task ids without a solution
    long_targets: list = dataclasses.field(
        default_factory=list
    )  # (task id, solution index, tokens)


def supervised_examples(
    problems: Iterable,
    tokenizer,
    *,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    add_bos: bool = True,
    stats: SupervisedStats | None = None,
) -> Iterator[dict]:
    """Warm-start (L_ce) examples: one per (problem, reference solution) pair.

    inputs  = [<s>] + prompt tokens + [</s>], the prompt of `prompts.format_prompt`
              (shortened there, keeping its ANSWER marker, to max_source_length tokens
              counted with the tokenizer's own special tokens); with add_bos=True this is
              exactly `tokenizer(prompt)["input_ids"]` for our tokenizer and CodeT5's.
    targets = solution tokens + [</s>].

    A solution longer than max_target_length tokens (EOS included) is left out rather than
    cut (a truncated program is a wrong program), and counted in `stats.long_targets`;
    problems without solutions are counted in `stats.unsolved`.

    Args:
      problems: `Problem`s (any source with a prompt template).
      tokenizer: a transformers tokenizer with bos/eos ids.
    Yields:
      {"task_id": str, "inputs": int32 [n], "targets": int32 [m]}.
    """
    from coderl_jax.data import prompts  # light, but only needed here

    stats = stats if stats is not None else SupervisedStats()
    bos = [tokenizer.bos_token_id] if add_bos else []
    eos = [tokenizer.eos_token_id]
    for problem in problems:
        stats.problems += 1
        if not problem.solutions:
            stats.unsolved.append(problem.task_id)
            continue
        prompt = prompts.format_prompt(problem, tokenizer, max_source_length)
        inputs = np.asarray(
            bos + tokenizer(prompt, add_special_tokens=False)["input_ids"] + eos, np.int32
        )
        solution_ids = tokenizer(list(problem.solutions), add_special_tokens=False)["input_ids"]
        for index, ids in enumerate(solution_ids):
            targets = np.asarray(ids + eos, np.int32)
            if max_target_length is not None and len(targets) > max_target_length:
                stats.long_targets.append((problem.task_id, index, len(targets)))
                continue
            stats.examples += 1
            yield {"task_id": problem.task_id, "inputs": inputs, "targets": targets}


# --------------------------------------------------------------------------- batching


def _empty_batch(
    batch_size: int, encoder_length: int, decoder_length: int
) -> dict[str, np.ndarray]:
    enc = lambda: np.zeros((batch_size, encoder_length), np.int32)
    dec = lambda: np.zeros((batch_size, decoder_length), np.int32)
    return {
        "encoder_input_tokens": enc(),
        "encoder_segment_ids": enc(),
        "encoder_positions": enc(),
        "decoder_target_tokens": dec(),
        "decoder_input_tokens": dec(),
        "decoder_segment_ids": dec(),
        "decoder_positions": dec(),
        "decoder_loss_weights": np.zeros((batch_size, decoder_length), np.float32),
    }


def _check_fits(example: Example, index: int, encoder_length: int, decoder_length: int) -> None:
    for key, limit in (("inputs", encoder_length), ("targets", decoder_length)):
        if len(example[key]) > limit:
            raise ValueError(
                f"example {index}: {key} has {len(example[key])} tokens, more than the "
                f"{'encoder' if key == 'inputs' else 'decoder'} length {limit}; cut the text "
                f"into shorter windows (max_chunk_length) instead of truncating"
            )
        if len(example[key]) == 0:
            raise ValueError(f"example {index}: empty {key}")


def _place(
    batch: dict, row: int, enc_start: int, dec_start: int, segment: int, example: Example
) -> None:
    inputs, targets = example["inputs"], example["targets"]
    e = slice(enc_start, enc_start + len(inputs))
    d = slice(dec_start, dec_start + len(targets))
    batch["encoder_input_tokens"][row, e] = inputs
    batch["encoder_segment_ids"][row, e] = segment
    batch["encoder_positions"][row, e] = np.arange(len(inputs))
    batch["decoder_target_tokens"][row, d] = targets
    # Shift right inside the segment: the decoder sees start, t0, ..., t_{m-2}.
    batch["decoder_input_tokens"][row, d] = np.concatenate([[DECODER_START_ID], targets[:-1]])
    batch["decoder_segment_ids"][row, d] = segment
    batch["decoder_positions"][row, d] = np.arange(len(targets))
    batch["decoder_loss_weights"][row, d] = 1.0


def pad_batch(
    examples: Sequence[Example], batch_size: int, encoder_length: int, decoder_length: int
) -> dict:
    """One example per row, padded to the fixed lengths; rows past len(examples) are empty
    (all zero, loss weight 0), so a short last batch keeps the shape.

    Returns the batch dict of the module docstring, arrays [batch_size, *_length].
    """
    if len(examples) > batch_size:
        raise ValueError(f"{len(examples)} examples do not fit a batch of {batch_size} rows")
    batch = _empty_batch(batch_size, encoder_length, decoder_length)
    for row, example in enumerate(examples):
        _check_fits(example, row, encoder_length, decoder_length)
        _place(batch, row, 0, 0, 1, example)
    return batch


def pack_examples(
    examples: Iterable[Example], batch_size: int, encoder_length: int, decoder_length: int
) -> Iterator[dict]:
    """Pack examples several to a row (first fit, in order) into fixed-shape batches.

    Each example goes into the first row of the batch being filled where both its inputs
    and targets still fit; when none has room the batch is emitted and a new one started.
    Segment ids number the examples of a row 1, 2, ...; positions restart at each example.
    The last batch is emitted even when partly empty.

    Yields:
      batch dicts (module docstring), arrays [batch_size, *_length].
    """
    batch = _empty_batch(batch_size, encoder_length, decoder_length)
    enc_used = [0] * batch_size
    dec_used = [0] * batch_size
    segments = [0] * batch_size
    for index, example in enumerate(examples):
        _check_fits(example, index, encoder_length, decoder_length)
        n, m = len(example["inputs"]), len(example["targets"])
        row = next(
            (
                r
                for r in range(batch_size)
                if enc_used[r] + n <= encoder_length and dec_used[r] + m <= decoder_length
            ),
            None,
        )
        if row is None:
            yield batch
            batch = _empty_batch(batch_size, encoder_length, decoder_length)
            enc_used, dec_used, segments = [0] * batch_size, [0] * batch_size, [0] * batch_size
            row = 0
        segments[row] += 1
        _place(batch, row, enc_used[row], dec_used[row], segments[row], example)
        enc_used[row] += n
        dec_used[row] += m
    if any(segments):
        yield batch


def pad_examples(
    examples: Iterable[Example], batch_size: int, encoder_length: int, decoder_length: int
) -> Iterator[dict]:
    """`pad_batch` over consecutive groups of `batch_size` examples (the last group may be
    short; its batch is completed with empty rows)."""
    group: list[Example] = []
    for example in examples:
        group.append(example)
        if len(group) == batch_size:
            yield pad_batch(group, batch_size, encoder_length, decoder_length)
            group = []
    if group:
        yield pad_batch(group, batch_size, encoder_length, decoder_length)


def pretrain_batches(
    documents: Sequence[Sequence[int]],
    objective: str,
    *,
    batch_size: int,
    encoder_length: int,
    decoder_length: int,
    seed: int,
    sentinel_ids: Sequence[int],
    eos_id: int,
    bos_id: int | None = None,
    pack: bool = False,
    num_epochs: int | None = 1,
    start_batch: int = 0,
    stats: ExampleStats | None = None,
) -> Iterator[dict]:
    """Fixed-shape batches of `objective` over tokenized documents.

    Windows are `max_chunk_length(objective, encoder_length, decoder_length)` tokens, so
    every example fits and none is truncated. `start_batch` skips that many batches (by
    regenerating them: the stream is deterministic), which is how a resumed run continues
    from its checkpointed data position.

    Example:
      docs = tokenizer.encode_documents(tok, corpus.read_corpus(max_files=100).texts())
      batches = pretrain_batches(docs, "msp", batch_size=8, encoder_length=256,
                                 decoder_length=64, seed=0, sentinel_ids=sentinel_ids(tok),
                                 eos_id=tok.eos_token_id, num_epochs=None)
    Yields:
      batch dicts (module docstring), arrays [batch_size, encoder_length|decoder_length].
    """
    chunk = max_chunk_length(objective, encoder_length, decoder_length, with_bos=bos_id is not None)
    examples = pretrain_examples(
        documents,
        objective,
        chunk,
        seed=seed,
        sentinel_ids=sentinel_ids,
        eos_id=eos_id,
        bos_id=bos_id,
        num_epochs=num_epochs,
        stats=stats,
    )
    batcher = pack_examples if pack else pad_examples
    for index, batch in enumerate(batcher(examples, batch_size, encoder_length, decoder_length)):
        if index >= start_batch:
            yield batch
