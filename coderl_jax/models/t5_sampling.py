"""Jitted batched sampling from a T5 (encoder-decoder) actor: greedy, temperature, top-p,
from forced prefixes. `T5Family.sample` (models/family.py) is this `sample`; callers decode
through `coderl_jax.decoding`, which picks the family.


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
"""

from __future__ import annotations

import collections
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.models.config import T5Config
from coderl_jax.models.t5 import T5, init_cache
from coderl_jax.nucleus import (SampleOutput, SamplingParams, bucket, checked_rows, pad_axis,
                                next_tokens)

# Number of times the jitted sampler was traced (= compiled) per (num_samples, max_new_tokens,
# greedy) key; tests read it to prove that one shape bucket compiles once.
TRACE_COUNTS: collections.Counter = collections.Counter()


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
        tok, lp = next_tokens(logits, t, row_keys=row_keys, eos=eos,
                              min_new_tokens=min_new_tokens, greedy=greedy,
                              temperature=temperature, top_p=top_p, prefix_ids=prefix_ids,
                              prefix_len=prefix_len, done=done, pad=pad)
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
    prefix_ids, prefix_len, sample_ids = checked_rows(batch, sampling, prefix_ids, prefix_len,
                                                       sample_ids)

    # Bucket every varying dimension so new prompt lengths / batch sizes reuse a compile.
    # Padded rows repeat the last real row (a valid input, so no NaN paths) and are dropped.
    b_pad = bucket(batch) if pad_batch_to is None else pad_batch_to
    if b_pad < batch:
        raise ValueError(f"pad_batch_to={pad_batch_to} is smaller than the batch ({batch})")
    s_pad = bucket(src_len, min_source_bucket)
    p_pad = bucket(prefix_ids.shape[1])
    input_ids = pad_axis(pad_axis(input_ids, 1, s_pad, config.pad_token_id), 0, b_pad)
    input_mask = pad_axis(pad_axis(input_mask, 1, s_pad, 0), 0, b_pad)
    prefix_ids = pad_axis(pad_axis(prefix_ids, 1, p_pad, config.pad_token_id), 0, b_pad)
    prefix_len = pad_axis(prefix_len, 0, b_pad)
    sample_ids = pad_axis(sample_ids, 0, b_pad * n)

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
