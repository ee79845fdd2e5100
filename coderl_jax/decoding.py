"""Jitted batched sampling from the T5 actor: greedy, temperature, top-p, from forced prefixes.

The whole decode loop runs inside one `jax.jit`: the encoder runs once per prompt, its output
is repeated for the N samples of that prompt, the decoder advances one token per iteration of a
`lax.while_loop` over a key/value cache (cross-attention keys/values are projected once, when
the cache is built), and the loop exits as soon as every row has emitted EOS. Nothing leaves the
device until the loop is done.

Shapes are bucketed (`sample` pads the batch, the source length and the prefix length up to
powers of two) so prompts of varying length reuse one compiled program per bucket;
temperature and top-p are traced scalars, so changing them does not recompile either.

Randomness is per sample: row r draws from `fold_in(fold_in(rng, sample_ids[r]), step)`, so a
sample depends only on (params, its prompt, rng, its sample id) and not on which other prompts
share its batch, the batch size or the padding.

Prefix forcing (for critic sampling, which resamples continuations of seed programs): row b
may carry `prefix_ids[b, :prefix_len[b]]`; those tokens are emitted (teacher-forced through
the cache) before sampling takes over. The prefix counts towards `max_new_tokens` and is part
of the returned tokens.

`decode_ids` / `decode_texts` wrap `sample` for token-id lists: they pad prompts (and
prefixes), call `sample` chunk by chunk, and trim each row at its EOS; generation, critic
sampling and RL rollouts all decode through them.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.models.config import T5Config
from coderl_jax.models.t5 import T5, init_cache
from coderl_jax.nucleus import sample_categorical, top_p_mask

# Number of times the jitted sampler was traced (= compiled) per (num_samples, max_new_tokens,
# greedy) key; tests read it to prove that one shape bucket compiles once.
TRACE_COUNTS: collections.Counter = collections.Counter()


@flax.struct.dataclass
class SampleOutput:
    """What `sample` returns (R = batch * num_samples rows; row b * num_samples + n is sample n
    of prompt b).

    tokens:    [R, max_new_tokens] int32: decoder tokens (prefix included), the first EOS kept,
               pad_token_id after it.
    lengths:   [R] int32: tokens up to and including the first EOS (max_new_tokens if none).
    log_probs: [R, max_new_tokens] float32: log-probability of each emitted token under the
               distribution it was sampled from (logits / temperature, before top-p truncation;
               plain logits for greedy); 0 after EOS. Forced prefix tokens are scored the same way.
    """

    tokens: jax.Array
    lengths: jax.Array
    log_probs: jax.Array


def _decode_loop(
    params: Any,
    input_ids: jax.Array,
    input_mask: jax.Array,
    rng: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    prefix_ids: jax.Array,
    prefix_len: jax.Array,
    sample_ids: jax.Array,
    min_new_tokens: jax.Array,
    *,
    config: T5Config,
    num_samples: int,
    max_new_tokens: int,
    greedy: bool,
) -> SampleOutput:
    """The jitted body of `sample` (shapes already bucketed).

    input_ids/input_mask [B, S]; prefix_ids [B, P]; prefix_len [B]; sample_ids [B * N];
    temperature, top_p, min_new_tokens: scalars.
    """
    TRACE_COUNTS[(num_samples, max_new_tokens, greedy)] += 1
    model = T5(config)
    rows = input_ids.shape[0] * num_samples
    length = max_new_tokens

    encoded = model.apply({"params": params}, input_ids, input_mask, method=T5.encode)
    # Encode each prompt once; its N samples share the encoder output.
    encoded = jnp.repeat(encoded, num_samples, axis=0)  # [R, S, d]
    mask = jnp.repeat(input_mask, num_samples, axis=0)  # [R, S]
    prefix_ids = jnp.repeat(prefix_ids, num_samples, axis=0)  # [R, P]
    prefix_len = jnp.repeat(prefix_len, num_samples, axis=0)  # [R]
    cache = init_cache(config, params, rows, length, encoded, mask)
    row_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, sample_ids)

    pad, eos = config.pad_token_id, config.eos_token_id
    last_prefix = prefix_ids.shape[1] - 1

    def cond(state):
        t, _, _, _, _, done, _ = state
        return (t < length) & ~jnp.all(done)

    def body(state):
        t, cur, cache, tokens, log_probs, done, lengths = state
        logits, updated = model.apply(
            {"params": params, "cache": cache}, encoded, mask, cur[:, None],
            decode=True, method=T5.decode, mutable=["cache"],
        )
        logits = logits[:, 0].astype(jnp.float32)  # [R, V]
        # EOS is not allowed before min_new_tokens (benchmarks force a fixed length with it).
        logits = logits.at[:, eos].set(jnp.where(t < min_new_tokens, -jnp.inf, logits[:, eos]))
        if greedy:
            lp = jax.nn.log_softmax(logits)
            sampled = jnp.argmax(logits, axis=-1)
        else:
            lp = jax.nn.log_softmax(logits / temperature)
            step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(row_keys, t)
            # top_p = 1 (plain temperature sampling) skips the nucleus search at run time.
            allowed = jax.lax.cond(top_p < 1.0, top_p_mask, lambda x, _: x, lp, top_p)
            sampled = sample_categorical(step_keys, allowed)
        forced = prefix_ids[:, jnp.minimum(t, last_prefix)]
        tok = jnp.where(t < prefix_len, forced, sampled)
        tok = jnp.where(done, pad, tok).astype(jnp.int32)
        tok_lp = jnp.take_along_axis(lp, tok[:, None], axis=-1)[:, 0]
        tok_lp = jnp.where(done, 0.0, tok_lp)
        tokens = jax.lax.dynamic_update_slice(tokens, tok[:, None], (0, t))
        log_probs = jax.lax.dynamic_update_slice(log_probs, tok_lp[:, None], (0, t))
        lengths = jnp.where(done, lengths, t + 1)
        done = done | (tok == eos)
        return t + 1, tok, updated["cache"], tokens, log_probs, done, lengths

    init = (
        jnp.int32(0),
        jnp.full((rows,), config.decoder_start_token_id, jnp.int32),
        cache,
        jnp.full((rows, length), pad, jnp.int32),
        jnp.zeros((rows, length), jnp.float32),
        jnp.zeros((rows,), bool),
        jnp.zeros((rows,), jnp.int32),
    )
    _, _, _, tokens, log_probs, _, lengths = jax.lax.while_loop(cond, body, init)
    return SampleOutput(tokens=tokens, lengths=lengths, log_probs=log_probs)


_decode_loop_jit = jax.jit(
    _decode_loop, static_argnames=("config", "num_samples", "max_new_tokens", "greedy")
)


def bucket(n: int, minimum: int = 1) -> int:
    """The shape bucket of a size: the next power of two >= max(n, minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def _pad_axis(x: np.ndarray, axis: int, size: int, value: Any = None) -> np.ndarray:
    """Pad `x` along `axis` to `size` with `value`, or by repeating the last entry if None."""
    extra = size - x.shape[axis]
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    if value is None:
        return np.pad(x, widths, mode="edge")
    return np.pad(x, widths, constant_values=value)


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to sample. greedy=True ignores temperature/top_p (argmax at every step).

    Only num_samples, max_new_tokens and greedy are compile-time constants; temperature,
    top_p and min_new_tokens are traced, so sweeping them reuses one compile.
    """

    num_samples: int = 1
    max_new_tokens: int = 128
    greedy: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    min_new_tokens: int = 0  # EOS is suppressed before this many tokens

    def __post_init__(self):
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens must be in [0, max_new_tokens={self.max_new_tokens}], "
                f"got {self.min_new_tokens}"
            )
        if not self.greedy:
            if not self.temperature > 0:
                raise ValueError(f"temperature must be > 0 (use greedy), got {self.temperature}")
            if not 0 < self.top_p <= 1:
                raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def _checked_rows(batch: int, sampling: SamplingParams, prefix_ids: Any, prefix_len: Any,
                  sample_ids: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`sample`'s per-row inputs as int32 arrays (defaults filled in), or a ValueError."""
    n = sampling.num_samples
    if prefix_ids is None:
        if prefix_len is not None:
            raise ValueError("prefix_len given without prefix_ids")
        prefix_ids = np.zeros((batch, 1), np.int32)
        prefix_len = np.zeros((batch,), np.int32)
    prefix_ids = np.asarray(prefix_ids, np.int32)
    prefix_len = np.asarray(prefix_len, np.int32)
    if prefix_ids.ndim != 2 or prefix_ids.shape[0] != batch or prefix_len.shape != (batch,):
        raise ValueError(
            f"prefix_ids must be [batch={batch}, P] and prefix_len [batch]; got "
            f"{prefix_ids.shape} and {prefix_len.shape}"
        )
    if prefix_len.size and (prefix_len.min() < 0 or prefix_len.max() > prefix_ids.shape[1]):
        raise ValueError(f"prefix_len must be in [0, {prefix_ids.shape[1]}], got {prefix_len}")
    if prefix_len.size and prefix_len.max() > sampling.max_new_tokens:
        raise ValueError(
            f"a prefix of {prefix_len.max()} tokens does not fit max_new_tokens="
            f"{sampling.max_new_tokens} (the prefix counts towards it)"
        )
    if sample_ids is None:
        sample_ids = np.arange(batch * n, dtype=np.int32)
    sample_ids = np.asarray(sample_ids, np.int32)
    if sample_ids.shape != (batch * n,):
        raise ValueError(f"sample_ids must be [batch * num_samples = {batch * n}], "
                         f"got {sample_ids.shape}")
    return prefix_ids, prefix_len, sample_ids


def sample(
    config: T5Config,
    params: Any,
    input_ids: Any,
    input_mask: Any,
    rng: jax.Array,
    sampling: SamplingParams,
    *,
    prefix_ids: Any = None,
    prefix_len: Any = None,
    sample_ids: Any = None,
    pad_batch_to: int | None = None,
    min_source_bucket: int = 16,
) -> SampleOutput:
    """Sample `sampling.num_samples` continuations for each prompt row.

    Args:
      config: the model config (static: one compile per config).
      params: model params (any sharding; the loop is jitted around them).
      input_ids: [B, S] int source tokens; input_mask: [B, S] (1 = token, 0 = padding).
      rng: a PRNG key.
      sampling: greedy / temperature / top_p / num_samples / max_new_tokens.
      prefix_ids: optional [B, P] decoder tokens to force; prefix_len: [B] how many of them
        (0 = free sampling for that row). Must be <= max_new_tokens.
      sample_ids: optional [B * N] int ids that seed each row's randomness (default
        0..B*N-1). Pass global ids (prompt_index * N + n) to make results independent of
        batching.
      pad_batch_to: pad the batch to this size (default: the next power of two).
      min_source_bucket: smallest source-length bucket.

    Returns:
      `SampleOutput` with R = B * N rows, as numpy-convertible jax arrays.
    """
    input_ids = np.asarray(input_ids)
    input_mask = np.asarray(input_mask)
    if input_ids.ndim != 2 or input_mask.shape != input_ids.shape:
        raise ValueError(
            f"input_ids must be [batch, length] and input_mask the same shape; got "
            f"{input_ids.shape} and {input_mask.shape}"
        )
    batch, src_len = input_ids.shape
    n = sampling.num_samples
    prefix_ids, prefix_len, sample_ids = _checked_rows(batch, sampling, prefix_ids, prefix_len,
                                                       sample_ids)

    # Bucket every varying dimension so new prompt lengths / batch sizes reuse a compile.
    # Padded rows repeat the last real row (a valid input, so no NaN paths) and are dropped.
    b_pad = bucket(batch) if pad_batch_to is None else pad_batch_to
    if b_pad < batch:
        raise ValueError(f"pad_batch_to={pad_batch_to} is smaller than the batch ({batch})")
    s_pad = bucket(src_len, min_source_bucket)
    p_pad = bucket(prefix_ids.shape[1])
    input_ids = _pad_axis(_pad_axis(input_ids, 1, s_pad, config.pad_token_id), 0, b_pad)
    input_mask = _pad_axis(_pad_axis(input_mask, 1, s_pad, 0), 0, b_pad)
    prefix_ids = _pad_axis(_pad_axis(prefix_ids, 1, p_pad, config.pad_token_id), 0, b_pad)
    prefix_len = _pad_axis(prefix_len, 0, b_pad)
    sample_ids = _pad_axis(sample_ids, 0, b_pad * n)

    out = _decode_loop_jit(
        params,
        jnp.asarray(input_ids, jnp.int32),
        jnp.asarray(input_mask, jnp.int32),
        rng,
        jnp.float32(sampling.temperature),
        jnp.float32(sampling.top_p),
        jnp.asarray(prefix_ids),
        jnp.asarray(prefix_len),
        jnp.asarray(sample_ids),
        jnp.int32(sampling.min_new_tokens),
        config=config,
        num_samples=n,
        max_new_tokens=sampling.max_new_tokens,
        greedy=sampling.greedy,
    )
    rows = batch * n
    return SampleOutput(
        tokens=out.tokens[:rows], lengths=out.lengths[:rows], log_probs=out.log_probs[:rows]
    )


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
    from coderl_jax.models.family import family_for

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
