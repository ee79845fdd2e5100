"""Reference formulas the tests check the library's losses against (test-only).

The library has one weighted token cross-entropy (`training/losses.py`) whose weights are
built on the host; these are the paper's losses written out on their own, for comparison.
"""

import jax
import jax.numpy as jnp

from coderl_jax.training.losses import token_log_probs, weighted_nll


def ce_weights(mask: jax.Array, num_tokens=None) -> jax.Array:
    """L_ce's token weights: mask [B, T] / num_tokens (default: mask.sum(), at least 1)."""
    mask = jnp.asarray(mask, jnp.float32)
    n = jnp.maximum(jnp.sum(mask) if num_tokens is None else num_tokens, 1.0)
    return mask / n


def ce_loss(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """The mean token cross-entropy over real target tokens (scalar; 0 without any)."""
    return weighted_nll(token_log_probs(logits, targets), ce_weights(mask))


def rl_loss(log_probs: jax.Array, advantages: jax.Array, token_values: jax.Array,
            mask: jax.Array, num_tokens=None) -> jax.Array:
    """L_rl = -(1/N) sum_b advantages[b] * sum_t q[b, t] * log p[b, t] (scalar)."""
    mask = jnp.asarray(mask, jnp.float32)
    n = jnp.maximum(jnp.sum(mask) if num_tokens is None else num_tokens, 1.0)
    weights = advantages[:, None] * token_values * mask / n
    return weighted_nll(log_probs, weights)
