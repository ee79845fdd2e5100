"""Jitted batched sampling from a decoder-only LM: greedy, temperature, top-p, forced prefixes.

The decoder-only counterpart of `coderl_jax.models.t5_sampling.sample` (same arguments and row
checks, same `SampleOutput`, same per-sample randomness and shape buckets, the same draws
from `coderl_jax.nucleus`). What differs is the prompt: there is no encoder, so the prompt
is LEFT-aligned into one [rows, S] block (pads first), written into the KV cache in one
prefill call, and generation continues from its last position. Prompts may be passed
right- or left-padded; `sample` left-aligns them. A row's positions count its real tokens
only (`models/decoder/model.py`), so padding changes nothing it computes.

The loop: prefill gives the logits of the first new token; each `lax.while_loop` iteration
picks a token (forced from the prefix while t < prefix_len, else sampled), records it and
feeds it through the cache to get the next logits; it exits when every row has emitted EOS.
The cache holds S + max_new_tokens positions.
"""

from __future__ import annotations

import collections
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.nucleus import (SampleOutput, SamplingParams, bucket, checked_rows,
                                next_tokens)
from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.decoder.model import DecoderLM, init_cache

# Traces (= compiles) per (num_samples, max_new_tokens, greedy); tests read it.
TRACE_COUNTS: collections.Counter = collections.Counter()

__all__ = ["SampleOutput", "SamplingParams", "left_align", "sample"]


def left_align(ids: np.ndarray, mask: np.ndarray, length: int, pad_id: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Move every row's real tokens (mask 1, order kept) to the right end of `length` slots.

    ids, mask [B, S] (right-, left- or un-padded) -> (ids, mask) [B, length] int32, pads first.
    """
    ids, mask = np.asarray(ids), np.asarray(mask).astype(bool)
    out_ids = np.full((ids.shape[0], length), pad_id, np.int32)
    out_mask = np.zeros((ids.shape[0], length), np.int32)
    for r in range(ids.shape[0]):
        real = ids[r][mask[r]]
        if len(real) > length:
            raise ValueError(f"row {r}: {len(real)} prompt tokens do not fit {length}")
        if len(real):
            out_ids[r, length - len(real):] = real
            out_mask[r, length - len(real):] = 1
    return out_ids, out_mask


def _decode_loop(params, prompt_ids, prompt_mask, rng, temperature, top_p, prefix_ids,
                 prefix_len, sample_ids, min_new_tokens, *, config: DecoderConfig,
                 num_samples: int, max_new_tokens: int, greedy: bool) -> SampleOutput:
    """The jitted body of `sample`: prompt_ids/prompt_mask [B, S] left-aligned; prefix_ids
    [B, P]; prefix_len [B]; sample_ids [B * N]; temperature, top_p, min_new_tokens scalars."""
    TRACE_COUNTS[(num_samples, max_new_tokens, greedy)] += 1
    model = DecoderLM(config)
    rows = prompt_ids.shape[0] * num_samples
    length = max_new_tokens
    ids = jnp.repeat(prompt_ids, num_samples, axis=0)  # [R, S]
    mask = jnp.repeat(prompt_mask, num_samples, axis=0)
    prefix_ids = jnp.repeat(prefix_ids, num_samples, axis=0)
    prefix_len = jnp.repeat(prefix_len, num_samples, axis=0)
    cache = init_cache(config, params, rows, ids.shape[1] + length)
    # Prefill: only the last (left-aligned: always real) position goes through the LM head;
    # [R, S, vocab] logits would be gigabytes for a 150k vocabulary.
    last = jnp.full((rows, 1), ids.shape[1] - 1, jnp.int32)
    logits, variables = model.apply({"params": params, "cache": cache}, ids, mask, decode=True,
                                    gather=last, mutable=["cache"])
    row_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, sample_ids)
    pad, eos = config.pad_id, config.eos_token_id

    def cond(state):
        t, _, _, _, _, done, _ = state
        return (t < length) & ~jnp.all(done)

    def body(state):
        t, logits, cache, tokens, log_probs, done, lengths = state
        tok, lp = next_tokens(logits, t, row_keys=row_keys, eos=eos,
                              min_new_tokens=min_new_tokens, greedy=greedy,
                              temperature=temperature, top_p=top_p, prefix_ids=prefix_ids,
                              prefix_len=prefix_len, done=done, pad=pad)
        tok_lp = jnp.where(done, 0.0, jnp.take_along_axis(lp, tok[:, None], axis=-1)[:, 0])
        tokens = jax.lax.dynamic_update_slice(tokens, tok[:, None], (0, t))
        log_probs = jax.lax.dynamic_update_slice(log_probs, tok_lp[:, None], (0, t))
        lengths = jnp.where(done, lengths, t + 1)
        done = done | (tok == eos)
        # The next token's logits. (On the last iteration this writes one position past
        # the cache, clamped by XLA; its result is never read.)
        nxt, updated = model.apply({"params": params, "cache": cache}, tok[:, None],
                                   jnp.ones((rows, 1), jnp.int32), decode=True,
                                   mutable=["cache"])
        return t + 1, nxt[:, 0], updated["cache"], tokens, log_probs, done, lengths

    init = (jnp.int32(0), logits[:, 0].astype(jnp.float32), variables["cache"],
            jnp.full((rows, length), pad, jnp.int32), jnp.zeros((rows, length), jnp.float32),
            jnp.zeros((rows,), bool), jnp.zeros((rows,), jnp.int32))
    _, _, _, tokens, log_probs, _, lengths = jax.lax.while_loop(cond, body, init)
    return SampleOutput(tokens=tokens, lengths=lengths, log_probs=log_probs)


_decode_loop_jit = jax.jit(
    _decode_loop, static_argnames=("config", "num_samples", "max_new_tokens", "greedy"))


def _pad_rows(x: np.ndarray, size: int) -> np.ndarray:
    """Pad the leading axis to `size` by repeating the last row (a valid input; dropped)."""
    extra = size - x.shape[0]
    return x if extra == 0 else np.concatenate([x, np.repeat(x[-1:], extra, axis=0)])


def sample(config: DecoderConfig, params: Any, input_ids: Any, input_mask: Any,
           rng: jax.Array, sampling: SamplingParams, *, prefix_ids: Any = None,
           prefix_len: Any = None, sample_ids: Any = None, pad_batch_to: int | None = None,
           min_source_bucket: int = 16) -> SampleOutput:
    """Sample `sampling.num_samples` continuations of each prompt row.

    Args:
      input_ids, input_mask: [B, S] prompt tokens and mask (1 = token), padded on either
        side; every row needs at least one real token.
      prefix_ids [B, P] / prefix_len [B]: program tokens to force before sampling (critic
        sampling's seeds); they count towards max_new_tokens and are returned.
      Other arguments as in `coderl_jax.models.t5_sampling.sample` (R = B * N rows, row
      b * N + n is sample n of prompt b; randomness per sample id).

    Returns:
      `SampleOutput`: tokens [R, max_new_tokens] (the new tokens only, EOS kept, pad_id
      after it), lengths [R], log_probs [R, max_new_tokens].
    """
    input_ids, input_mask = np.asarray(input_ids), np.asarray(input_mask)
    if input_ids.ndim != 2 or input_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids must be [batch, length] and input_mask the same shape; "
                         f"got {input_ids.shape} and {input_mask.shape}")
    batch = input_ids.shape[0]
    real = input_mask.astype(bool).sum(axis=1)
    if (real == 0).any():
        raise ValueError(f"prompt rows {np.flatnonzero(real == 0).tolist()} have no tokens; a "
                         "decoder-only model needs at least one to condition on")
    n = sampling.num_samples
    # The same row checks (and defaults) as the T5 sampler.
    prefix_ids, prefix_len, sample_ids = checked_rows(batch, sampling, prefix_ids, prefix_len,
                                                       sample_ids)
    if int(real.max()) + sampling.max_new_tokens > config.max_position_embeddings and (
            config.traits.positions == "learned"):
        raise ValueError(f"{int(real.max())} prompt + {sampling.max_new_tokens} new tokens "
                         f"exceed max_position_embeddings={config.max_position_embeddings}")

    b_pad = bucket(batch) if pad_batch_to is None else pad_batch_to
    if b_pad < batch:
        raise ValueError(f"pad_batch_to={pad_batch_to} is smaller than the batch ({batch})")
    s_pad = bucket(int(real.max()), min_source_bucket)
    ids, mask = left_align(input_ids, input_mask, s_pad, config.pad_id)
    p_pad = bucket(prefix_ids.shape[1])
    prefix_ids = np.pad(prefix_ids, ((0, 0), (0, p_pad - prefix_ids.shape[1])),
                        constant_values=config.pad_id)
    out = _decode_loop_jit(
        params, jnp.asarray(_pad_rows(ids, b_pad)), jnp.asarray(_pad_rows(mask, b_pad)), rng,
        jnp.float32(sampling.temperature), jnp.float32(sampling.top_p),
        jnp.asarray(_pad_rows(prefix_ids, b_pad)), jnp.asarray(_pad_rows(prefix_len, b_pad)),
        jnp.asarray(_pad_rows(sample_ids, b_pad * n)), jnp.int32(sampling.min_new_tokens),
        config=config, num_samples=n, max_new_tokens=sampling.max_new_tokens,
        greedy=sampling.greedy)
    rows = batch * n
    return SampleOutput(tokens=out.tokens[:rows], lengths=out.lengths[:rows],
                        log_probs=out.log_probs[:rows])
