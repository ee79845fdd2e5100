"""The CodeRL critic: a T5 backbone whose decoder states feed a small per-token error head.

The critic reads a (problem, program) pair with teacher forcing, exactly like the actor, and
predicts the program's execution outcome (`coderl_jax.outcomes.OUTCOMES`, C = 4, or
`BINARY_OUTCOMES`, C = 2, for the inference-time critic).

* token_logits [batch, len, C]: the head applied to every decoder state h_t. Their softmax at
  the true outcome u is the token value q(w_t) used to weight the RL loss, and their
  P(Pass | w_1..t) drives critic sampling (where to cut a program).
* pooled_logits [batch, C]: the elementwise max over the valid positions t of token_logits,
  i.e. max-pool over t followed by softmax in the loss (paper Sec. 3.2). We pool the
  per-token *logits* rather than the hidden states so that the sequence-level prediction the
  loss trains and the per-token predictions used as values come from one and the same head.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from coderl_jax.models.config import T5Config
from coderl_jax.models.t5 import T5

CRITIC_HIDDEN = 128  # width of the head's hidden layer (paper / official CodeRL release)


class CriticHead(nn.Module):
    """Linear(d_model, 128) - ReLU - Linear(128, C) per token, plus a masked max-pool."""

    num_classes: int
    dtype: str = "float32"
    param_dtype: str = "float32"

    @nn.compact
    def __call__(self, hidden: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """hidden [batch, len, d_model], mask [batch, len] (1 = real token).

        Returns (token_logits [batch, len, C], pooled_logits [batch, C]), float32.
        pooled_logits[b, c] = max over t with mask[b, t] of token_logits[b, t, c]; padding
        never wins the max. A row with no valid position has no evidence, so it pools to
        all-zero logits (a uniform distribution) instead of the -inf a plain max would give.
        """
        if hidden.ndim != 3:
            raise ValueError(f"hidden must be [batch, len, d_model], got shape {hidden.shape}")
        if mask.shape != hidden.shape[:2]:
            raise ValueError(f"mask must have shape {hidden.shape[:2]} (hidden's [batch, len]), "
                             f"got {mask.shape}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        dense = lambda features, names, name: nn.Dense(  # noqa: E731
            features, dtype=jnp.dtype(self.dtype), param_dtype=jnp.dtype(self.param_dtype),
            kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]),
            name=name)
        x = jax.nn.relu(dense(CRITIC_HIDDEN, ("embed", None), "hidden")(hidden))
        token_logits = dense(self.num_classes, (None, None), "out")(x).astype(jnp.float32)
        valid = mask.astype(bool)[..., None]
        masked = jnp.where(valid, token_logits, -jnp.inf)
        pooled = jnp.max(masked, axis=1)
        pooled = jnp.where(jnp.any(valid, axis=1), pooled, 0.0)
        return token_logits, pooled


class T5Critic(nn.Module):
    """T5 backbone (params under "backbone", same layout as `T5`) + CriticHead ("head")."""

    config: T5Config
    num_classes: int

    def setup(self):
        self.backbone = T5(self.config)
        self.head = CriticHead(self.num_classes, dtype=self.config.dtype,
                               param_dtype=self.config.param_dtype)

    def __call__(self, input_ids: jax.Array, decoder_input_ids: jax.Array,
                 input_mask: jax.Array | None = None, decoder_mask: jax.Array | None = None,
                 *, deterministic: bool = True) -> tuple[jax.Array, jax.Array]:
        """input_ids [batch, src_len], decoder_input_ids [batch, tgt_len] (shifted right),
        masks as in `T5.__call__` (decoder_mask None -> every decoder position is valid).

        Returns (token_logits [batch, tgt_len, C], pooled_logits [batch, C]).
        """
        _, hidden = self.backbone(input_ids, decoder_input_ids, input_mask, decoder_mask,
                                  deterministic=deterministic, return_hidden=True)
        if decoder_mask is None:
            decoder_mask = jnp.ones(decoder_input_ids.shape, bool)
        return self.head(hidden, decoder_mask)


# ------------------------------------------------------------------------------------------------
# Pure helpers around the module
# ------------------------------------------------------------------------------------------------
def _init_critic_variables(config: T5Config, num_classes: int, rng: jax.Array):
    ids = jnp.ones((1, 2), jnp.int32)
    return T5Critic(config, num_classes).init({"params": rng}, ids, ids)


def init_critic_params(config: T5Config, num_classes: int, rng: jax.Array) -> dict:
    """Random critic params {"backbone": <T5 params>, "head": {...}} as a plain dict."""
    init = jax.jit(_init_critic_variables, static_argnums=(0, 1))
    return nn.meta.unbox(init(config, num_classes, rng))["params"]


def critic_logical_axes(config: T5Config, num_classes: int) -> dict:
    """Logical axis names of every critic parameter (abstract init, nothing allocated)."""
    abstract = jax.eval_shape(lambda r: _init_critic_variables(config, num_classes, r),
                              jax.random.key(0))
    return nn.get_partition_spec(abstract)["params"]


def token_probabilities(token_logits: jax.Array) -> jax.Array:
    """softmax over classes per token: [batch, len, C] -> [batch, len, C] float32.

    probs[b, t, u] is the critic's P(outcome u | w_1..t): q(w_t) at the true outcome u for
    the RL token values, P(PassedTest | w_1..t) for critic sampling's cuts.
    """
    return jax.nn.softmax(token_logits.astype(jnp.float32), axis=-1)
