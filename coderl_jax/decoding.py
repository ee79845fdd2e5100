"""Decoding through whichever model family a config names: `sample` (one padded batch of
prompt rows -> `SampleOutput`) and the token-id wrappers that generation, critic sampling and
RL rollouts all use.

    out = sample(config, params, input_ids, input_mask, rng, SamplingParams(...))
    programs = decode_ids(config, params, prompts, rng, sampling)   # per prompt, N id lists
    texts = decode_texts(config, params, tokenizer, prompts, rng, sampling)

`sample` hands the batch to `family_for(config).sample`: the T5 sampler
(`models/t5_sampling.py`) or the decoder-only one (`models/decoder/sampling.py`), which take
the same arguments and return the same rows (R = B * N; row b * N + n is sample n of prompt
b), with the same randomness per sample id and the same prefix forcing. `decode_ids` /
`decode_texts` pad prompts (and prefixes), call the family's sampler chunk by chunk, and trim
each row at its EOS. The shared settings and output types live in `coderl_jax.nucleus` and
are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from coderl_jax.models.family import family_for
from coderl_jax.nucleus import SampleOutput, SamplingParams, bucket

__all__ = ["SampleOutput", "SamplingParams", "bucket", "sample", "pad_rows", "decode_chunks",
           "decode_ids", "decode_texts"]


def sample(config: Any, params: Any, input_ids: Any, input_mask: Any, rng: jax.Array,
           sampling: SamplingParams, **options: Any) -> SampleOutput:
    """`sampling.num_samples` continuations of each prompt row [B, S], by the config's model
    family (options: prefix_ids, prefix_len, sample_ids, pad_batch_to, as in
    `models.t5_sampling.sample`)."""
    return family_for(config).sample(params, input_ids, input_mask, rng, sampling, **options)


# ------------------------------------------------------------------ token-id lists in and out
def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids [len(rows), W] int32 and their mask (1 = token), W = `width`, or the
    longest row if larger or `width` is None."""
    longest = max((len(r) for r in rows), default=0)
    width = longest if width is None else max(width, longest)
    ids = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for j, r in enumerate(rows):
        ids[j, :len(r)] = r
        mask[j, :len(r)] = 1
    return ids, mask


Programs = list[list[list[int]]]  # per prompt, N token-id lists


def decode_chunks(
    config: Any,  # a T5Config or DecoderConfig (`models.family.family_for`)
    params: Any,
    prompts: Sequence[Sequence[int]],
    rng: jax.Array,
    sampling: SamplingParams,
    *,
    prefixes: Sequence[Sequence[int]] | None = None,
    sample_ids: Sequence[int] | None = None,
    chunk: int | None = None,
    sort_by_length: bool = False,
) -> Iterator[tuple[list[int], Programs]]:
    """`sampling.num_samples` programs per prompt, as token-id lists, one `sample` call per
    chunk of prompts; yields (prompt indices, their programs) as each call finishes, so a
    caller can start on them (write them out, submit them to the sandbox).

    Args:
      prompts: B encoder inputs (framed as the model reads them, already cut to length).
      prefixes: optional B decoder prefixes to force (each at most max_new_tokens, may be
        empty). They are padded to max_new_tokens, so any prefix lengths share one compile.
      sample_ids: optional [B * N] ids seeding each sample's randomness (`sample`); default
        b * N + n over all B prompts, so a sample does not depend on `chunk`.
      chunk: prompts per `sample` call, each call padded to `chunk` rows (full and partial
        chunks share one compile); default: all B in one call.
      sort_by_length: chunk the prompts in order of length (stable), so a call pads little.

    Yields:
      (indices into `prompts`, per prompt N token-id lists: the decoder tokens up to and
      including the first EOS, a forced prefix included; max_new_tokens if no EOS).
    """
    n = sampling.num_samples
    sample_ids = list(range(len(prompts) * n) if sample_ids is None else sample_ids)
    if len(sample_ids) != len(prompts) * n:
        raise ValueError(f"sample_ids must hold {len(prompts) * n} ids (prompts x num_samples), "
                         f"got {len(sample_ids)}")
    if prefixes is not None and len(prefixes) != len(prompts):
        raise ValueError(f"prefixes must hold one list per prompt ({len(prompts)}), "
                         f"got {len(prefixes)}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    order = list(range(len(prompts)))
    if sort_by_length:
        order.sort(key=lambda i: len(prompts[i]))
    size = chunk or max(len(prompts), 1)
    return (_decode_chunk(config, params, prompts, rng, sampling, order[start:start + size],
                          prefixes, sample_ids, chunk)
            for start in range(0, len(order), size))


def _decode_chunk(config, params, prompts, rng, sampling, idx: list[int], prefixes,
                  sample_ids: list[int], pad_batch_to: int | None
                  ) -> tuple[list[int], Programs]:
    """Pad the prompts `idx` (and their prefixes), sample with the config's model family
    (`family.sample`: T5's `sample` here, or the decoder-only sampler), trim each row at
    its length."""
    family = family_for(config)
    n = sampling.num_samples
    ids, mask = pad_rows([prompts[i] for i in idx], family.pad_id)
    forced = {}
    if prefixes is not None:
        rows = [prefixes[i] for i in idx]
        forced["prefix_ids"] = pad_rows(rows, family.pad_id, sampling.max_new_tokens)[0]
        forced["prefix_len"] = np.asarray([len(r) for r in rows], np.int32)
    out = family.sample(params, ids, mask, rng, sampling,
                        sample_ids=np.asarray([sample_ids[i * n + k] for i in idx
                                               for k in range(n)], np.int32),
                        pad_batch_to=pad_batch_to, **forced)
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    return idx, [[tokens[r, :lengths[r]].tolist() for r in range(j * n, (j + 1) * n)]
                 for j in range(len(idx))]


def decode_ids(config: Any, params: Any, prompts: Sequence[Sequence[int]],
               rng: jax.Array, sampling: SamplingParams, **options: Any) -> Programs:
    """All of `decode_chunks(..., **options)`, in prompt order: per prompt N id lists."""
    programs: Programs = [[] for _ in prompts]
    for idx, chunk_programs in decode_chunks(config, params, prompts, rng, sampling, **options):
        for i, rows in zip(idx, chunk_programs):
            programs[i] = rows
    return programs


def decode_texts(
    config: Any,  # a T5Config or DecoderConfig (`models.family.family_for`)
    params: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    rng: jax.Array,
    sampling: SamplingParams,
    *,
    on_chunk: Callable[[list[int], list[list[str]]], None] | None = None,
    **options: Any,
) -> list[list[str]]:
    """`decode_ids` as text: per prompt N programs decoded without special tokens.

    on_chunk: called after each `sample` call with (prompt indices, their texts).
    options: those of `decode_chunks`.
    """
    texts: list[list[str]] = [[] for _ in prompts]
    for idx, chunk_programs in decode_chunks(config, params, prompts, rng, sampling, **options):
        chunk_texts = [[tokenizer.decode(row, skip_special_tokens=True) for row in rows]
                       for rows in chunk_programs]
        for i, rows in zip(idx, chunk_texts):
            texts[i] = rows
        if on_chunk is not None:
            on_chunk(idx, chunk_texts)
    return texts
