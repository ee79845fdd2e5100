"""CodeRL's losses as pure functions (shapes in every docstring).

Every actor objective is ONE weighted token-level cross-entropy,

    L(theta) = - sum_{b,t} w[b, t] * log p_theta(y[b, t] | y[b, <t], x[b])

with per-token weights w computed on the host and stored in the batch (docs/design.md "one weighted
loss"); they are *already normalised*, so the train step never divides by anything and
microbatching is exact (a sum of microbatch sums):

  * L_ce (warm start, and the CE part of RL): w = mask / N, N = the number of real target
    tokens of the (global) batch, i.e. the mean token cross-entropy (T5X's
    "NUM_REAL_TARGET_TOKENS" normalisation), built on the host by `batch.ce_batch`.
  * L_rl (REINFORCE with baseline, critic-weighted): w[b, t] = (r(W^s_b) - b_b) * q_b(t) / N_rl
    (or another return estimator of `rl/returns.py`, built by `rl/batch.py`), so that
      grad L_rl = -(1/N_rl) sum_b (r_b - b_b) sum_t q_b(t) grad log p(w_t)
    which is the paper's eq. (5) (CodeRL Sec. 3.2) with the official release's mean over
    tokens.
  * the optional KL penalty to a frozen reference policy: sum_{b,t} k[b, t] * KL_t with the
    per-token estimator KL_t = exp(r - l) - (r - l) - 1 (l = log p_theta, r = log p_ref of the
    sampled token; >= 0, unbiased for KL(p_theta || p_ref) under samples of p_theta;
    Schulman's "k3", as in Tunix).

The critic loss is a weighted cross-entropy of the max-pooled error-head logits against the
sandbox's outcome class, with per-row weights (1 / rows, normalised on the host likewise).

These live with the train step (`training/`), not with RL: every trainer uses them. The
per-formula references the tests check them against (`ce_loss`, `rl_loss`, `ce_weights`)
live in tests/reference_losses.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_log_probs(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """log p(targets) under softmax(logits): logits [B, T, V], targets [B, T] -> [B, T] f32."""
    logits = logits.astype(jnp.float32)
    # log_softmax gathered at the target without materialising [B, T, V] log-probs twice.
    lse = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return picked - lse


def weighted_nll(log_probs: jax.Array, weights: jax.Array) -> jax.Array:
    """-sum(weights * log_probs): log_probs, weights [B, T] -> scalar.

    With CE weights (mask / N) this is L_ce; with RL token weights it is L_rl; with both in
    one batch it is the summed objective L_ce + L_rl.
    """
    return -jnp.sum(weights.astype(jnp.float32) * log_probs)


def kl_estimate(log_probs: jax.Array, reference_log_probs: jax.Array) -> jax.Array:
    """Per-token KL estimate exp(r - l) - (r - l) - 1 >= 0: both [B, T] -> [B, T]."""
    delta = reference_log_probs - log_probs
    return jnp.exp(delta) - delta - 1.0


def kl_penalty(log_probs: jax.Array, reference_log_probs: jax.Array,
               weights: jax.Array) -> jax.Array:
    """sum(weights * kl_estimate): [B, T] each -> scalar (weights carry coefficient / N)."""
    return jnp.sum(weights.astype(jnp.float32) * kl_estimate(log_probs, reference_log_probs))


def critic_loss(pooled_logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
    """sum_b weights[b] * CE(softmax(pooled_logits[b]), labels[b]) (scalar).

    pooled_logits [B, C] (the error head max-pooled over the program's tokens), labels [B]
    int class indices (outcomes.OUTCOMES order, or BINARY_OUTCOMES), weights [B] (1/rows for
    a mean; 0 for padding rows).
    """
    log_p = jax.nn.log_softmax(pooled_logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(log_p, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
    return -jnp.sum(weights.astype(jnp.float32) * picked)


def critic_confusion(pooled_logits: jax.Array, labels: jax.Array,
                     weights: jax.Array) -> jax.Array:
    """Confusion counts [C, C] (rows: true class, columns: predicted) over rows with weight > 0.

    Accuracy is trace / sum; per-class recall is diag / row sums.
    """
    num_classes = pooled_logits.shape[-1]
    predicted = jnp.argmax(pooled_logits, axis=-1)
    valid = (weights > 0).astype(jnp.float32)
    one_true = jax.nn.one_hot(labels, num_classes) * valid[:, None]
    one_pred = jax.nn.one_hot(predicted, num_classes)
    return one_true.T @ one_pred
