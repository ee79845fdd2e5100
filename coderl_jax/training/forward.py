"""The one cache of compiled forward passes of frozen models (no gradients, no sharding).

    log_prob_fn(config)(params, batch)              -> log p of the targets [B, T]
    critic_fn(config, num_classes)(params, batch)   -> (token class probabilities [B, T, C],
                                                        max-pooled logits [B, C])

Keyed by the (hashable) model config, so every caller shares one compiled program per model
and batch shape: held-out evaluation (`evaluation.py`, every eval_period), the frozen critic
and reference of RL and critic sampling (`coderl_jax.scoring.Scorer`). The critic reads the
batch as given: build it with `batch.critic_inputs` (decoder inputs = the program).
"""

from __future__ import annotations

import functools

import jax


@functools.cache
def log_prob_fn(config):
    """Jitted (params, Batch) -> log p [B, T] of the actor at each row's temperature."""
    from coderl_jax.training.step import ActorModel

    model = ActorModel(config)
    return jax.jit(lambda params, b: model.log_probs(params, b))


@functools.cache
def critic_fn(config, num_classes: int):
    """Jitted (params, Batch) -> (token probabilities [B, T, C], pooled logits [B, C])."""
    from coderl_jax.models.critic import token_probabilities
    from coderl_jax.training.step import CriticModel

    model = CriticModel(config, num_classes)

    def fn(params, b):
        token_logits, pooled = model.logits(params, b)
        return token_probabilities(token_logits), pooled
    return jax.jit(fn)
