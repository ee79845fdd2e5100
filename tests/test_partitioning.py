"""Sharding by name (coderl_jax/partitioning.py).

The multi-device half runs this file as a script in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the flag must be set before JAX starts,
and the pytest process has already started JAX with one CPU device). There, on a
(data=4, model=2) mesh, the sharded T5's logits, loss gradients and one AdamW step must equal
the single-device results, with params and optimizer moments sharded per the rules.
"""

import functools
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import random_batch, tiny_config  # noqa: E402

from coderl_jax import partitioning as pt  # noqa: E402
from coderl_jax.models.t5 import T5, init_params, param_logical_axes  # noqa: E402

HERE = pathlib.Path(__file__).resolve()


# -- single process ------------------------------------------------------------------------------
def test_logical_to_spec_follows_the_rules_table():
    assert pt.logical_to_spec(("batch", "length", "embed")) == P("data", None, None)
    assert pt.logical_to_spec(("embed", "heads", "kv")) == P(None, "model", None)
    assert pt.logical_to_spec(("vocab", "embed")) == P("model", None)
    assert pt.logical_to_spec(("embed", "mlp")) == P(None, "model")
    assert pt.logical_to_spec(None) == P()
    # A mesh axis is used at most once per array: the second "model" candidate is replicated.
    assert pt.logical_to_spec(("heads", "mlp")) == P("model", None)
    # Rules are data: a fallback rule applies when the first choice is taken.
    rules = (("batch", "data"), ("heads", "model"), ("mlp", "model"), ("mlp", "data"))
    assert pt.logical_to_spec(("heads", "mlp"), rules) == P("model", "data")


def test_unknown_logical_axis_is_an_error():
    with pytest.raises(ValueError, match="'hedas'.*no rule"):
        pt.logical_to_spec(("embed", "hedas"))


def test_every_t5_parameter_has_rules():
    config = tiny_config()
    axes = param_logical_axes(config)
    specs = jax.tree.map(pt.logical_to_spec, axes, is_leaf=pt._is_logical_spec)
    flat = jax.tree_util.tree_leaves(specs, is_leaf=lambda x: isinstance(x, P))
    assert flat and all(isinstance(s, P) for s in flat)
    assert specs["token_embedder"]["embedding"] == P("model", None)


def test_make_mesh_errors_name_the_sizes():
    with pytest.raises(ValueError, match="needs 8 devices, but 1"):
        pt.make_mesh(data=4, model=2, devices=jax.devices()[:1])
    mesh = pt.make_mesh(devices=jax.devices()[:1])
    assert pt.mesh_shape(mesh) == {"data": 1, "model": 1}


def test_indivisible_dimension_names_the_array():
    mesh = pt.make_mesh(devices=jax.devices()[:1])
    tree = {"w": jax.ShapeDtypeStruct((3, 4), jnp.float32)}
    shardings = {"w": jax.sharding.NamedSharding(mesh, P("model"))}
    pt.check_shardings(tree, shardings)  # model axis of size 1 divides everything
    with pytest.raises(ValueError, match="arrays without axes: \\['v'\\]"):
        pt.check_shardings({"v": tree["w"]}, shardings)


def test_sharded_equals_single_device_on_8_simulated_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(HERE)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "MULTI-DEVICE CHECKS PASSED" in proc.stdout


# -- the subprocess ------------------------------------------------------------------------------
def _loss(config, params, batch):
    """Mean token cross-entropy of the teacher-forced T5 (decoder targets = inputs shifted)."""
    logits = T5(config).apply({"params": params}, batch["ids"], batch["dec"], batch["mask"])
    logp = jax.nn.log_softmax(logits[:, :-1])
    nll = -jnp.take_along_axis(logp, batch["dec"][:, 1:, None], axis=-1)[..., 0]
    return nll.mean(), logits


def _multi_device_checks():
    assert jax.device_count() == 8, jax.devices()
    config = tiny_config()
    rng = jax.random.key(0)
    ids, mask, dec = random_batch(config, np.random.default_rng(0), batch=8, src_len=12,
                                  tgt_len=9)
    batch = {"ids": ids, "mask": mask.astype(np.int32), "dec": dec}
    optimizer = optax.adamw(1e-2, weight_decay=0.1)

    def train_step(params, opt_state, batch):
        (loss, logits), grads = jax.value_and_grad(
            functools.partial(_loss, config), has_aux=True)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, logits, grads

    # Single device reference.
    params1 = init_params(config, rng)
    opt1 = optimizer.init(params1)
    new1, _, loss1, logits1, grads1 = jax.jit(train_step)(params1, opt1, batch)

    # (data=4, model=2) mesh: params created sharded, batch split over "data".
    mesh = pt.make_mesh(data=4, model=2)
    params8, shardings = pt.sharded_init(
        functools.partial(init_params, config), param_logical_axes(config), mesh)(rng)
    opt8, opt_shardings = pt.sharded_optimizer_init(optimizer, params8, shardings, mesh)
    batch8 = pt.shard_batch(batch, mesh)

    spec = lambda x: x.sharding.spec  # noqa: E731
    assert spec(params8["token_embedder"]["embedding"]) == P("model", None)
    layer = params8["encoder"]["layers_0"]
    assert spec(layer["attention"]["query"]["kernel"]) == P(None, "model", None)
    assert spec(layer["attention"]["out"]["kernel"]) == P("model", None, None)
    assert spec(layer["mlp"]["wi"]["kernel"]) == P(None, "model")
    assert spec(layer["mlp"]["wo"]["kernel"]) == P("model", None)
    assert len(params8["token_embedder"]["embedding"].addressable_shards) == 8
    assert params8["token_embedder"]["embedding"].addressable_shards[0].data.shape == (
        config.vocab_size // 2, config.d_model)
    # Adam moments are sharded like their params; the step count is replicated.
    adam = opt8[0]
    assert spec(adam.mu["token_embedder"]["embedding"]) == P("model", None)
    assert spec(adam.nu["encoder"]["layers_0"]["mlp"]["wi"]["kernel"]) == P(None, "model")
    assert spec(adam.count) == P()
    assert spec(batch8["ids"]) == P("data")

    # Same random init whatever the sharding (partitionable threefry).
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 params1, params8)

    step8 = jax.jit(train_step, in_shardings=(shardings, opt_shardings, None),
                    out_shardings=(shardings, opt_shardings, None, None, shardings),
                    donate_argnums=(0, 1))
    # Traced with the mesh and rules active, so the model's activation constraints
    # (`with_logical_constraint` on "batch", "heads", "mlp", ...) bind to mesh axes too.
    with pt.activate(mesh):
        lowered = step8.lower(params8, opt8, batch8)
        new8, _, loss8, logits8, grads8 = step8(params8, opt8, batch8)
    assert "sharding_constraint" in lowered.as_text(), "no activation constraint was bound"

    np.testing.assert_allclose(np.asarray(logits8), np.asarray(logits1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(loss8), float(loss1), rtol=1e-6)
    close = functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-6)
    jax.tree.map(lambda a, b: close(np.asarray(a), np.asarray(b)), grads8, grads1)
    jax.tree.map(lambda a, b: close(np.asarray(a), np.asarray(b)), new8, new1)
    assert spec(new8["decoder"]["layers_0"]["mlp"]["wi"]["kernel"]) == P(None, "model")
    print("MULTI-DEVICE CHECKS PASSED")


if __name__ == "__main__":
    _multi_device_checks()
