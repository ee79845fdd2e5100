"""Device mesh, logical-axis rules and sharded initialization.

Model code names *logical* axes only ("batch", "embed", "heads", ...); this module is the one
place that maps them to the two *mesh* axes, "data" (batch parallelism) and "model" (tensor
parallelism), through a rules table that is plain data (T5X / MaxText style). The mesh shape
comes from configuration (`make_mesh(data=-1, model=1)`), never from model code.

Typical use::

    mesh = make_mesh(data=-1, model=2)
    params, param_shardings = sharded_init(
        functools.partial(init_params, config), param_logical_axes(config), mesh)(rng)
    opt_state, opt_shardings = sharded_optimizer_init(optimizer, params, param_shardings, mesh)
    step = jax.jit(train_step, in_shardings=(param_shardings, opt_shardings, batch_sharding(mesh)),
                   out_shardings=..., donate_argnums=(0, 1))

XLA propagates shardings from the jit boundary through the step. `activate(mesh)` additionally
binds the model's activation constraints (`nn.with_logical_constraint`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES: tuple[str, str] = ("data", "model")

# Logical axis name -> mesh axis (or None: replicated along that dimension). A name may appear
# more than once: the first rule whose mesh axis is not already used by another dimension of the
# same array wins (T5X semantics), so e.g. a [heads, mlp] array never shards both on "model".
LogicalRules = Sequence[tuple[str, str | None]]
DEFAULT_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"),
    ("vocab", "model"),
    ("heads", "model"),
    ("mlp", "model"),
    ("embed", None),
    ("kv", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),
    # Small critic-head dimensions: replicated (they are tiny, sharding them only adds traffic).
    ("critic_hidden", None),
    ("classes", None),
)

# A logical spec is a tuple with one entry (a logical name or None) per array dimension.
LogicalSpec = tuple[str | None, ...]


def make_mesh(data: int = -1, model: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """A ("data", "model") mesh over `devices` (default: all devices).

    Args:
      data: size of the data-parallel axis; -1 means "all devices not used by `model`".
      model: size of the tensor-parallel axis.
      devices: devices to use (default `jax.devices()`).

    Axis types are `Auto`: shardings propagate through `jit` from the in/out shardings and the
    logical constraints in the model, as in T5X.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if model < 1 or (data < 1 and data != -1):
        raise ValueError(f"mesh sizes must be positive (or data=-1): got data={data}, model={model}")
    if data == -1:
        if n % model:
            raise ValueError(f"model={model} does not divide the {n} available devices")
        data = n // model
    if data * model != n:
        raise ValueError(
            f"mesh data={data} x model={model} needs {data * model} devices, but {n} are given"
        )
    auto = jax.sharding.AxisType.Auto
    return jax.make_mesh((data, model), MESH_AXES, axis_types=(auto, auto), devices=devices)


def _is_logical_spec(x: Any) -> bool:
    return x is None or (isinstance(x, tuple) and all(e is None or isinstance(e, str) for e in x))


def logical_to_spec(logical: LogicalSpec | None, rules: LogicalRules = DEFAULT_RULES) -> PartitionSpec:
    """Translate one logical spec, e.g. ("embed", "heads"), to a `PartitionSpec`.

    An unknown logical name is an error (a typo must not silently replicate a weight).
    """
    if logical is None:
        return PartitionSpec()
    known = {name for name, _ in rules}
    used: set[str] = set()
    out: list[str | None] = []
    for name in logical:
        if name is None:
            out.append(None)
            continue
        if name not in known:
            raise ValueError(
                f"logical axis {name!r} (in spec {logical}) has no rule; known axes: {sorted(known)}"
            )
        choice = None
        for rule_name, mesh_axis in rules:
            if rule_name == name and (mesh_axis is None or mesh_axis not in used):
                choice = mesh_axis
                break
        if choice is not None:
            used.add(choice)
        out.append(choice)
    return PartitionSpec(*out)


def logical_to_shardings(
    logical_tree: Any, mesh: Mesh, rules: LogicalRules = DEFAULT_RULES
) -> Any:
    """Map a pytree of logical specs (tuples of names) to a pytree of `NamedSharding`s."""
    return jax.tree.map(
        lambda spec: NamedSharding(mesh, logical_to_spec(spec, rules)),
        logical_tree,
        is_leaf=_is_logical_spec,
    )


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device (scalars, step counters, rng keys)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a batch array: leading axis split over "data", the rest replicated."""
    return NamedSharding(mesh, PartitionSpec("data"))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Put every array of `batch` (leading axis = batch) on `mesh`, split over "data"."""
    return jax.device_put(batch, jax.tree.map(lambda _: batch_sharding(mesh), batch))


def _path_str(path: Sequence[Any]) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def check_shardings(abstract_tree: Any, shardings: Any, what: str = "params") -> None:
    """Fail early, naming the array, when the trees differ or a sharded dim is not divisible.

    Args:
      abstract_tree: pytree of arrays or `jax.ShapeDtypeStruct`s.
      shardings: pytree of `NamedSharding`s with the same structure.
    """
    arrays = jax.tree_util.tree_flatten_with_path(abstract_tree)[0]
    specs = jax.tree_util.tree_flatten_with_path(shardings)[0]
    array_paths = [_path_str(p) for p, _ in arrays]
    spec_paths = [_path_str(p) for p, _ in specs]
    if array_paths != spec_paths:
        missing = sorted(set(array_paths) - set(spec_paths))
        extra = sorted(set(spec_paths) - set(array_paths))
        raise ValueError(
            f"{what}: logical axes do not match the arrays; "
            f"arrays without axes: {missing[:10]}, axes without arrays: {extra[:10]}"
        )
    for (path, arr), (_, sharding) in zip(arrays, specs):
        spec = tuple(sharding.spec)
        if len(spec) > len(arr.shape):
            raise ValueError(
                f"{what}/{_path_str(path)}: spec {spec} has more entries than shape {arr.shape}"
            )
        for dim, axis in zip(arr.shape, spec):
            if axis is None:
                continue
            axes = axis if isinstance(axis, tuple) else (axis,)
            size = math.prod(sharding.mesh.shape[a] for a in axes)
            if dim % size:
                raise ValueError(
                    f"{what}/{_path_str(path)}: dimension {dim} of shape {arr.shape} is sharded "
                    f"over mesh axis {axis!r} of size {size}, which does not divide it; "
                    f"pick a smaller mesh axis or change the rules"
                )


def sharded_init(
    init_fn: Callable[..., Any],
    logical_axes: Any,
    mesh: Mesh,
    rules: LogicalRules = DEFAULT_RULES,
) -> Callable[..., tuple[Any, Any]]:
    """Wrap `init_fn(*args) -> params` so params are created directly in their shardings.

    The shapes come from `jax.eval_shape` (nothing is allocated), the shardings from the
    logical axes and the rules, and the real init runs under `jax.jit(..., out_shardings=...)`
    so no device ever holds a full copy of a sharded weight.

    Returns:
      a function `(*args) -> (params, shardings)`.
    """

    def run(*args: Any) -> tuple[Any, Any]:
        abstract = jax.eval_shape(init_fn, *args)
        shardings = logical_to_shardings(logical_axes, mesh, rules)
        check_shardings(abstract, shardings)
        # No `activate(mesh)` needed: out_shardings alone places every weight.
        params = jax.jit(init_fn, out_shardings=shardings)(*args)
        return params, shardings

    return run


def opt_state_shardings(
    optimizer: optax.GradientTransformation, param_shardings: Any, params: Any, mesh: Mesh
) -> Any:
    """Shardings of `optimizer.init(params)`: every param-shaped subtree (Adam's mu and nu,
    momentum, ...) is sharded like the params; everything else (step counts) is replicated.

    Args:
      optimizer: the optax transformation.
      param_shardings: pytree of `NamedSharding`s, structured like `params`.
      params: the params or their `jax.ShapeDtypeStruct`s (only shapes are used).
    """
    abstract_state = jax.eval_shape(optimizer.init, params)
    return optax.tree_map_params(
        optimizer,
        lambda _, sharding: sharding,
        abstract_state,
        param_shardings,
        transform_non_params=lambda _: replicated(mesh),
    )


def sharded_optimizer_init(
    optimizer: optax.GradientTransformation, params: Any, param_shardings: Any, mesh: Mesh
) -> tuple[Any, Any]:
    """`optimizer.init(params)` created directly in its shardings. Returns (state, shardings)."""
    shardings = opt_state_shardings(optimizer, param_shardings, params, mesh)
    check_shardings(jax.eval_shape(optimizer.init, params), shardings, what="opt_state")
    state = jax.jit(optimizer.init, in_shardings=(param_shardings,), out_shardings=shardings)(params)
    return state, shardings


def with_shardings(abstract_tree: Any, shardings: Any) -> Any:
    """`jax.ShapeDtypeStruct`s carrying shardings: the target for a sharded checkpoint restore."""
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_tree, shardings
    )


@contextlib.contextmanager
def activate(mesh: Mesh, rules: LogicalRules = DEFAULT_RULES) -> Iterator[None]:
    """Make `mesh` and `rules` current, so `nn.with_logical_constraint` in the model binds.

    Outside this context the model's activation constraints are no-ops and shardings come
    from the jit boundary alone. (Why the model has its own `layers.DenseGeneral`: flax's,
    with a multi-dimensional `features`, builds its logically-partitioned kernel at a
    flattened shape, which fails under an active mesh; ours creates kernels at full rank,
    and tests/test_partitioning.py runs the sharded model inside this context.)
    """
    with jax.set_mesh(mesh), nn.logical_axis_rules(tuple(rules)):
        yield


def rules_from_mapping(mapping: Mapping[str, str | None]) -> tuple[tuple[str, str | None], ...]:
    """Rules from a {logical: mesh_axis} mapping (for gin/JSON configs), validated."""
    for logical, mesh_axis in mapping.items():
        if mesh_axis is not None and mesh_axis not in MESH_AXES:
            raise ValueError(f"rule {logical!r} -> {mesh_axis!r}: mesh axis must be one of {MESH_AXES}")
    return tuple(mapping.items())


def mesh_shape(mesh: Mesh) -> dict[str, int]:
    """{"data": n, "model": m} for logging."""
    return {name: int(size) for name, size in zip(mesh.axis_names, np.shape(mesh.devices))}
