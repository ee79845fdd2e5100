"""Token draws of one decode step: nucleus (top-p) filtering and inverse-CDF sampling.

Both avoid full-vocabulary work that XLA does slowly on CPU (a sort of [rows, 32k], Gumbel
noise per vocabulary entry); `decoding._decode_loop` calls them once per generated token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
