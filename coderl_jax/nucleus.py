"""What every model family's sampler shares: the sampling settings (`SamplingParams`), the
output (`SampleOutput`), the per-row input checks, shape buckets, and the token draws of one
decode step (nucleus / top-p filtering and inverse-CDF sampling).

The draws avoid full-vocabulary work that XLA does slowly on CPU (a sort of [rows, 32k],
Gumbel noise per vocabulary entry); the T5 sampler (`models/t5_sampling.py`) and the
decoder-only one (`models/decoder/sampling.py`) call them once per generated token. Nothing
here knows a model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

# How many of the most likely tokens the fast nucleus path looks at (see `top_p_mask`).
NUCLEUS_CANDIDATES = 64


def _nucleus_threshold_bisect(probs: jax.Array, top_p: jax.Array) -> jax.Array:
    """tau* per row by binary search over float32 bit patterns: probs [rows, vocab] -> [rows].

    For non-negative float32s the int32 bit pattern is ordered like the value, and tau* is
    one of the probabilities, so halving [bits(min p), bits(max p)] finds it exactly, each
    halving one masked sum over the vocabulary. Starting at the smallest probability rather
    than 0 changes no mask (every token has p >= min p) and saves a few halvings; the loop
    stops as soon as every row's interval is down to one bit pattern. Each pass reads only
    the bit patterns (the probability is their bitcast), not a second copy of the row.
    """
    bits = jax.lax.bitcast_convert_type(probs, jnp.int32)

    def unfinished(bounds):
        lo, hi = bounds
        return jnp.any(hi - lo > 1)

    def halve(bounds):
        # Invariant: lo is accepted (or the row's smallest probability: keep everything),
        # hi is rejected or out of range.
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        kept = jnp.where(bits >= mid[:, None], jax.lax.bitcast_convert_type(bits, jnp.float32),
                         0.0)
        ok = jnp.sum(kept, axis=-1) >= top_p
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    bounds = (jnp.min(bits, axis=-1), jnp.max(bits, axis=-1) + 1)
    lo, _ = jax.lax.while_loop(unfinished, halve, bounds)
    return jax.lax.bitcast_convert_type(lo, jnp.float32)


def top_p_mask(log_probs: jax.Array, top_p: jax.Array) -> jax.Array:
    """Nucleus filtering: keep the smallest set of most likely tokens with mass >= top_p.

    Args:
      log_probs: [rows, vocab] normalised log-probabilities.
      top_p: scalar in (0, 1]; a value <= 0 keeps only the most likely token (greedy).
    Returns:
      [rows, vocab] log_probs with the dropped tokens set to -inf (the most likely token is
      always kept; tokens tied with the smallest kept probability are kept too).

    The nucleus is {p >= tau*}, tau* = the largest tau whose mass sum(p[p >= tau]) is still
    >= top_p. No full sort (XLA's CPU sort of [rows, 32k] costs tens of milliseconds, more
    than the rest of a decode step): when every row's nucleus lies within its
    `NUCLEUS_CANDIDATES` most likely tokens (the usual case for a trained model at
    temperature <= 1), tau* is read off their `top_k`; otherwise the rows that need it use an
    exact binary search (`_nucleus_threshold_bisect`). Both give the same tau* (up to the
    float32 summation order of the mass), so a row's result never depends on other rows.
    """
    probs = jnp.exp(log_probs.astype(jnp.float32))
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    top = jax.lax.top_k(probs, k)[0]  # [rows, k] descending
    cum = jnp.cumsum(top, axis=-1)
    mass_before = jnp.pad(cum[:, :-1], ((0, 0), (1, 0)))
    count = jnp.maximum(jnp.sum(mass_before < top_p, axis=-1), 1)  # smallest n: cum[n-1] >= p
    fast = jnp.take_along_axis(top, count[:, None] - 1, axis=-1)[:, 0]
    covered = cum[:, -1] >= top_p
    tau = jax.lax.cond(
        jnp.all(covered),
        lambda: fast,
        lambda: jnp.where(covered, fast, _nucleus_threshold_bisect(probs, top_p)),
    )
    return jnp.where(probs >= tau[:, None], log_probs, -jnp.inf)


_CDF_BLOCK = 128


def _last_positive(x: jax.Array) -> jax.Array:
    """Index of the last entry > 0 along the last axis (0 if none): [..., n] -> [...]."""
    return jnp.max(jnp.where(x > 0, jnp.arange(x.shape[-1]), 0), axis=-1)


def _inverse_cdf(weights: jax.Array, u: jax.Array) -> jax.Array:
    """First index whose cumulative weight exceeds u: weights [rows, n] >= 0, u [rows] in
    [0, total). Never an index of zero weight: float cumulative sums are non-decreasing and
    only grow at positive entries, and the one rounding escape (u >= the float total) is
    clamped to the last positive entry."""
    idx = jnp.sum(jnp.cumsum(weights, axis=-1) <= u[:, None], axis=-1)
    return jnp.minimum(idx, _last_positive(weights))


def sample_categorical(keys: jax.Array, log_probs: jax.Array) -> jax.Array:
    """One token per row from exp(log_probs) (entries of -inf are never drawn).

    keys: [rows] PRNG keys; log_probs: [rows, vocab] (need not be normalised).
    Returns [rows] int32.

    Inverse-CDF sampling with one uniform per row, in two levels: pick a block of
    `_CDF_BLOCK` tokens by the cumulative block masses, then a token inside that block.
    `jax.random.categorical` instead draws vocab-size Gumbel noise per row, and a flat
    cumulative sum over 32k entries is itself slow on CPU; both cost more than the rest of a
    small model's decode step. Exact up to float32 rounding.
    """
    rows, vocab = log_probs.shape
    probs = jnp.exp(log_probs - jnp.max(log_probs, axis=-1, keepdims=True))
    n_blocks = -(-vocab // _CDF_BLOCK)
    blocks = jnp.pad(probs, ((0, 0), (0, n_blocks * _CDF_BLOCK - vocab)))
    blocks = blocks.reshape(rows, n_blocks, _CDF_BLOCK)
    block_mass = jnp.sum(blocks, axis=-1)  # [rows, n_blocks]
    block_cdf = jnp.cumsum(block_mass, axis=-1)
    u = jax.vmap(jax.random.uniform)(keys) * block_cdf[:, -1]  # [rows] in [0, total)
    b = _inverse_cdf(block_mass, u)  # [rows]
    inside = jnp.take_along_axis(blocks, b[:, None, None], axis=1)[:, 0]  # [rows, block]
    before = jnp.take_along_axis(block_cdf - block_mass, b[:, None], axis=1)[:, 0]
    j = _inverse_cdf(inside, jnp.maximum(u - before, 0.0))
    return (b * _CDF_BLOCK + j).astype(jnp.int32)


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


def bucket(n: int, minimum: int = 1) -> int:
    """The shape bucket of a size: the next power of two >= max(n, minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def pad_axis(x: np.ndarray, axis: int, size: int, value: Any = None) -> np.ndarray:
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


def checked_rows(batch: int, sampling: SamplingParams, prefix_ids: Any, prefix_len: Any,
                  sample_ids: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sampler's per-row inputs as int32 arrays (defaults filled in), or a ValueError."""
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


def next_tokens(logits: jax.Array, t: jax.Array, *, row_keys: jax.Array, eos: int,
                min_new_tokens: jax.Array, greedy: bool, temperature: jax.Array,
                top_p: jax.Array, prefix_ids: jax.Array, prefix_len: jax.Array,
                done: jax.Array, pad: int) -> tuple[jax.Array, jax.Array]:
    """One decode step's tokens, the same for every model family's sampler.

    logits [R, V] float32 at step t; row_keys [R] (row r draws with fold_in(row_keys[r], t));
    prefix_ids [R, P] / prefix_len [R]: tokens forced while t < prefix_len; done [R]: rows
    past their EOS (they emit `pad`). EOS is not allowed before min_new_tokens (benchmarks
    force a fixed length with it). Returns (tokens [R] int32, log-probs [R, V] of the
    distribution they were drawn from: logits / temperature, or plain logits for greedy).
    """
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
    forced = prefix_ids[:, jnp.minimum(t, prefix_ids.shape[1] - 1)]
    tok = jnp.where(t < prefix_len, forced, sampled)
    return jnp.where(done, pad, tok).astype(jnp.int32), lp

