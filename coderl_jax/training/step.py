"""The one train step: `step(state, batch) -> (state, metrics)`, jitted once, sharded, donated.

Every trainer (pretrain, warm start, repair model, critic, RL actor) runs this step; what
differs is data: the batch's per-token weights and labels (`batch.py`), and which network
computes the loss (`ActorModel`: the family's LM, or `CriticModel`: its backbone + error
head; the family, `models.family.family_for(config)`, is T5 or a decoder-only one). Both are
small frozen dataclasses (hashable: they are static arguments of the jit) with
`init(rng) -> params`, `logical_axes()` and `loss(params, batch, rng) -> (objective, sums)`.

Gradient accumulation: with `num_microbatches = M > 1` the batch is cut into M microbatches
(row b goes to microbatch b % M, so every microbatch spans every data shard), a `lax.scan`
sums their gradients and metric sums, and one update follows. Because the weights in the
batch are already normalised over the whole batch, the accumulated gradient *equals* the
full-batch gradient (tests/test_train_step.py checks it on 8 simulated devices).

Metrics are sums inside the step and become means at its end: `loss` (the objective),
`token_nll` (mean -log p over real target tokens), `kl` (mean KL estimate over tokens with a
KL weight), critic `accuracy` and `confusion` [C, C], `grad_norm`, `learning_rate`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from coderl_jax import partitioning
from coderl_jax.models.config import T5Config
from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.family import family_for
from coderl_jax.training import losses
from coderl_jax.training.batch import Batch
from coderl_jax.training.state import TrainState

ModelConfig = T5Config | DecoderConfig

# Times the step was traced (= compiled), per model kind; tests read it.
TRACE_COUNTS: collections.Counter = collections.Counter()


@dataclasses.dataclass(frozen=True)
class ActorModel:
    """The actor (any model family): loss = sum(token_weights * -log p) + sum(kl_weights * KL_t)."""

    config: ModelConfig
    kind: str = "actor"

    @property
    def family(self):
        return family_for(self.config)

    def init(self, rng: jax.Array) -> dict:
        return self.family.init(rng)

    def logical_axes(self) -> dict:
        return self.family.logical_axes()

    def log_probs(self, params, batch: Batch, rng=None, deterministic: bool = True):
        """log p of every target token at its row's temperature: [B, T] float32.

        log softmax(logits / T_b): T_b = 1 for supervised rows; for RL samples the sampling
        temperature, so the policy gradient is that of the distribution that drew them
        (scored at T = 1, the greedy baseline's share of the gradient no longer averages to
        zero and pushes the policy flatter). Top-p truncation is not modelled (as in TRL
        and verl): it only removes tokens that were not sampled.
        """
        logits = self.family.target_logits(params, batch, deterministic=deterministic, rng=rng)
        logits = logits / batch.temperature.astype(jnp.float32)[:, None, None]
        return losses.token_log_probs(logits, batch.decoder_target_tokens)

    def loss(self, params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict]:
        log_p = self.log_probs(params, batch, rng, deterministic=self.config.dropout_rate == 0)
        mask = batch.decoder_mask.astype(jnp.float32)
        kl_on = (batch.kl_weights != 0).astype(jnp.float32)
        kl = losses.kl_estimate(log_p, batch.reference_log_probs)
        objective = (losses.weighted_nll(log_p, batch.token_weights)
                     + losses.kl_penalty(log_p, batch.reference_log_probs, batch.kl_weights))
        sums = {"nll_sum": -jnp.sum(mask * log_p), "tokens": jnp.sum(mask),
                "kl_sum": jnp.sum(kl_on * kl), "kl_tokens": jnp.sum(kl_on)}
        return objective, sums


@dataclasses.dataclass(frozen=True)
class CriticModel:
    """The critic (any family's backbone + error head); loss = sum(label_weights *
    CE(pooled, label))."""

    config: ModelConfig
    num_classes: int
    kind: str = "critic"

    @property
    def family(self):
        return family_for(self.config)

    def init(self, rng: jax.Array) -> dict:
        return self.family.critic_init(self.num_classes, rng)

    def logical_axes(self) -> dict:
        return self.family.critic_logical_axes(self.num_classes)

    def logits(self, params, batch: Batch, rng=None, deterministic: bool = True):
        """(token_logits [B, T, C], pooled_logits [B, C]) of the batch's programs (read
        unshifted from decoder_target_tokens: `batch.critic_inputs` layout)."""
        return self.family.critic_logits(params, batch, self.num_classes,
                                         deterministic=deterministic, rng=rng)

    def loss(self, params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict]:
        _, pooled = self.logits(params, batch, rng, deterministic=self.config.dropout_rate == 0)
        objective = losses.critic_loss(pooled, batch.labels, batch.label_weights)
        confusion = losses.critic_confusion(pooled, batch.labels, batch.label_weights)
        return objective, {"confusion": confusion}


def _split_microbatches(batch: Batch, m: int) -> Batch:
    """[B, ...] -> [M, B/M, ...] with row b in microbatch b % M (strided: each microbatch
    keeps rows from every data shard)."""
    def split(x):
        if x.shape[0] % m:
            raise ValueError(f"batch size {x.shape[0]} is not divisible by {m} microbatches")
        y = x.reshape((x.shape[0] // m, m) + x.shape[1:])
        y = jnp.swapaxes(y, 0, 1)
        return nn.with_logical_constraint(y, (None, "batch") + (None,) * (x.ndim - 1))
    return jax.tree.map(split, batch)


def _finish_metrics(objective, sums: dict, grads, lr) -> dict:
    metrics = {"loss": objective, "grad_norm": optax.tree.norm(grads), "learning_rate": lr}
    if "tokens" in sums:
        metrics["token_nll"] = sums["nll_sum"] / jnp.maximum(sums["tokens"], 1.0)
        metrics["tokens"] = sums["tokens"]
        metrics["kl"] = sums["kl_sum"] / jnp.maximum(sums["kl_tokens"], 1.0)
    if "confusion" in sums:
        confusion = sums["confusion"]
        total = jnp.sum(confusion)
        metrics["accuracy"] = jnp.trace(confusion) / jnp.maximum(total, 1.0)
        metrics["confusion"] = confusion
        metrics["rows"] = total
    return metrics


def train_step(state: TrainState, batch: Batch, *, model, tx: optax.GradientTransformation,
               schedule: Callable, num_microbatches: int = 1) -> tuple[TrainState, dict]:
    """One update. state, batch -> (new state, metrics dict of scalars (+ confusion)).

    Pure: the dropout key of microbatch i is fold_in(fold_in(state.rng, state.step), i).
    """
    TRACE_COUNTS[model.kind] += 1
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    grad_fn = jax.value_and_grad(model.loss, has_aux=True)
    if num_microbatches == 1:
        (objective, sums), grads = grad_fn(state.params, batch, jax.random.fold_in(rng, 0))
    else:
        micro = _split_microbatches(batch, num_microbatches)

        def accumulate(carry, inputs):
            index, mb = inputs
            (obj, sums), grads = grad_fn(state.params, mb, jax.random.fold_in(rng, index))
            return jax.tree.map(jnp.add, carry, (obj, sums, grads)), None

        (first_obj, first_sums), first_grads = jax.eval_shape(
            grad_fn, state.params, jax.tree.map(lambda x: x[0], micro), rng)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, jnp.float32),
                             (first_obj, first_sums, first_grads))
        (objective, sums, grads), _ = jax.lax.scan(
            accumulate, zeros, (jnp.arange(num_microbatches), micro))
        grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = _finish_metrics(objective, sums, grads, schedule(state.step))
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics


def batch_shardings(mesh) -> Batch:
    """Every batch field split over "data" along its leading axis."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return Batch(**{f.name: sharding for f in dataclasses.fields(Batch)})


def make_train_step(model, tx: optax.GradientTransformation, schedule: Callable, mesh,
                    shardings: TrainState, num_microbatches: int = 1):
    """`train_step` jitted with explicit in/out shardings and a donated state.

    Returns `step(state, batch) -> (state, metrics)`; it binds the mesh and logical rules
    while tracing, so the model's activation constraints apply.
    """
    if num_microbatches < 1:
        raise ValueError(f"num_microbatches must be >= 1, got {num_microbatches}")
    fn = functools.partial(train_step, model=model, tx=tx, schedule=schedule,
                           num_microbatches=num_microbatches)
    jitted = jax.jit(fn, in_shardings=(shardings, batch_shardings(mesh)),
                     out_shardings=(shardings, partitioning.replicated(mesh)),
                     donate_argnums=(0,))

    def step(state: TrainState, batch: Batch):
        with partitioning.activate(mesh):
            return jitted(state, batch)

    step.jitted = jitted
    return step
