"""The CodeRL critic on a decoder-only backbone (the paper's GPT-2-small critic for GPT actors).

The critic reads prompt + program as one sequence. The state h_t at program token w_t has
seen the prompt and w_1..w_t (causal attention includes the token itself), so the per-token
head gives P(outcome | prompt, w_1..t), like the T5 critic's unshifted decoder states. The
head is `models.critic.CriticHead` unchanged (Linear(d, 128)-ReLU-Linear(128, C) per token,
masked max-pool over the program tokens for the loss); only program positions are scored
or pooled. The backbone has no LM head (`DecoderLM(head=False)`): its params are the LM's
minus `lm_head`, so a critic starts from any LM checkpoint of the family.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from coderl_jax.models.critic import CriticHead
from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.decoder.model import DecoderLM


class DecoderCritic(nn.Module):
    """DecoderLM backbone ("backbone", no LM head) + CriticHead ("head")."""

    config: DecoderConfig
    num_classes: int

    def setup(self):
        self.backbone = DecoderLM(self.config)
        self.head = CriticHead(self.num_classes, dtype=self.config.dtype,
                               param_dtype=self.config.param_dtype)

    def __call__(self, input_ids: jax.Array, input_mask: jax.Array, program_index: jax.Array,
                 program_mask: jax.Array, *, deterministic: bool = True
                 ) -> tuple[jax.Array, jax.Array]:
        """input_ids/input_mask [batch, len]: prompt + program; program_index [batch, T]: the
        sequence index of each program token; program_mask [batch, T] (1 = real token).

        Returns (token_logits [batch, T, C] at the program tokens, pooled_logits [batch, C]
        max-pooled over the real program tokens).
        """
        hidden = self.backbone(input_ids, input_mask, deterministic=deterministic,
                               gather=program_index, head=False)
        return self.head(hidden, program_mask)


def _init_critic_variables(config: DecoderConfig, num_classes: int, rng: jax.Array):
    ids = jnp.ones((1, 4), jnp.int32)
    index = jnp.arange(2, 4)[None]
    return DecoderCritic(config, num_classes).init({"params": rng}, ids, ids, index,
                                                   jnp.ones((1, 2), jnp.int32))


def init_critic_params(config: DecoderConfig, num_classes: int, rng: jax.Array) -> dict:
    """Random critic params {"backbone": <DecoderLM params without lm_head>, "head": ...}."""
    init = jax.jit(_init_critic_variables, static_argnums=(0, 1))
    return nn.meta.unbox(init(config, num_classes, rng))["params"]


def critic_logical_axes(config: DecoderConfig, num_classes: int) -> dict:
    abstract = jax.eval_shape(lambda r: _init_critic_variables(config, num_classes, r),
                              jax.random.key(0))
    return nn.get_partition_spec(abstract)["params"]


def backbone_from_lm(lm_params: dict) -> dict:
    """The critic backbone's params from an LM's (a warm start): everything but `lm_head`."""
    return {k: v for k, v in lm_params.items() if k != "lm_head"}
