"""The train state: everything a resumed run needs, as one pytree, created in its shardings.

    TrainState(step, params, opt_state, rng)

`rng` is raw key data (uint32 [2]) so that orbax saves it like any array; the step derives
every dropout key from (rng, step, microbatch). The host-side data position (how many batches
were consumed) travels in the checkpoint's JSON metadata (`loop.py`), not in the pytree.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from coderl_jax import partitioning


@flax.struct.dataclass
class TrainState:
    """step: int32 []; params: pytree; opt_state: optax state; rng: uint32 [2] key data."""

    step: Any
    params: Any
    opt_state: Any
    rng: Any


# Checkpoint item names of a TrainState (checkpoints.CheckpointStore items).
STATE_ITEMS = ("params", "opt_state", "step", "rng")


def state_shardings(tx: optax.GradientTransformation, abstract_params: Any,
                    param_shardings: Any, mesh) -> TrainState:
    """A TrainState of `NamedSharding`s: params by the logical rules, the optimizer moments
    like their params, step and rng replicated."""
    rep = partitioning.replicated(mesh)
    opt = partitioning.opt_state_shardings(tx, param_shardings, abstract_params, mesh)
    return TrainState(step=rep, params=param_shardings, opt_state=opt, rng=rep)


def create_state(model, tx: optax.GradientTransformation, mesh, seed: int,
                 params: Any = None) -> tuple[TrainState, TrainState]:
    """A fresh TrainState on `mesh`, and its shardings.

    Args:
      model: a `step.ActorModel` / `step.CriticModel` (init and logical axes).
      tx: the optimizer.
      seed: seeds the params (when `params` is None) and the step's dropout keys.
      params: initial params (a loaded model), placed into their shardings; None = random.
    """
    axes = model.logical_axes()
    param_shardings = partitioning.logical_to_shardings(axes, mesh)
    key = jax.random.key(seed)
    init_key, step_key = jax.random.split(key)
    if params is None:
        params, _ = partitioning.sharded_init(model.init, axes, mesh)(init_key)
    else:
        partitioning.check_shardings(params, param_shardings)
        params = jax.device_put(params, param_shardings)
    opt_state, _ = partitioning.sharded_optimizer_init(tx, params, param_shardings, mesh)
    shardings = state_shardings(tx, params, param_shardings, mesh)
    rep = shardings.step
    state = TrainState(
        step=jax.device_put(jnp.zeros((), jnp.int32), rep), params=params,
        opt_state=opt_state, rng=jax.device_put(jax.random.key_data(step_key), rep))
    return state, shardings


def abstract_state(state_or_shardings: TrainState, model, tx) -> TrainState:
    """ShapeDtypeStructs (with shardings) of a TrainState: the target of a sharded restore."""
    shardings = state_or_shardings
    abstract_params = jax.eval_shape(model.init, jax.random.key(0))
    abstract = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=abstract_params,
        opt_state=jax.eval_shape(tx.init, abstract_params),
        rng=jax.ShapeDtypeStruct((2,), jnp.uint32),
    )
    return partitioning.with_shardings(abstract, shardings)


def state_to_items(state: TrainState) -> dict[str, Any]:
    """{item name: pytree} for `CheckpointStore.save`."""
    return {name: getattr(state, name) for name in STATE_ITEMS}


def items_to_state(items: dict[str, Any]) -> TrainState:
    return TrainState(**{name: items[name] for name in STATE_ITEMS})
