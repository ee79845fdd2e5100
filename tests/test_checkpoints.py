"""Orbax checkpoints (coderl_jax/checkpoints.py): round trips, discovery, keep-N, errors, model
dirs, and (in a subprocess with 8 simulated CPU devices) restoring into given shardings."""

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import tiny_config  # noqa: E402

from coderl_jax import checkpoints  # noqa: E402
from coderl_jax.checkpoints import CheckpointNotFoundError, CheckpointStore  # noqa: E402
from coderl_jax.models.t5 import init_params  # noqa: E402

HERE = pathlib.Path(__file__).resolve()


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


@pytest.fixture(scope="module")
def params():
    return init_params(tiny_config(), jax.random.key(0))


def test_full_train_state_round_trip_and_latest_step(tmp_path, params):
    optimizer = optax.adamw(1e-3)
    opt_state = optimizer.init(params)
    # Make the moments non-trivial so a wrong restore could not pass by being all zeros.
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = optimizer.update(grads, opt_state, params)
    state = {"params": params, "opt_state": opt_state, "step": jnp.int32(30),
             "rng": jax.random.key(42)}
    with CheckpointStore(tmp_path / "run", max_to_keep=2) as store:
        assert store.latest_step() is None
        for step in (10, 20, 30):
            store.save(step, state, metadata={"data_position": step * 8})
        assert store.all_steps() == [20, 30]  # keep-N dropped step 10
        assert store.latest_step() == 30
        assert store.item_names(30) == ["metadata", "opt_state", "params", "rng", "step"]

    # A fresh store (a resumed process) finds the latest step and restores typed trees when
    # given abstract targets (optimizer NamedTuples included).
    store = CheckpointStore(tmp_path / "run", read_only=True)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    restored = store.restore(targets=abstract)
    assert restored["metadata"] == {"step": 30, "data_position": 240}
    for name in state:
        if name == "rng":
            np.testing.assert_array_equal(jax.random.key_data(restored["rng"]),
                                          jax.random.key_data(state["rng"]))
        else:
            assert_trees_equal(restored[name], state[name])
    assert type(restored["opt_state"][0]) is type(opt_state[0])
    # Evaluation restores only the params of the same checkpoint, as saved.
    only = store.restore(20, ["params"])
    assert set(only) == {"params", "metadata"} and only["metadata"]["data_position"] == 160
    assert_trees_equal(only["params"], params)
    store.close()


def test_missing_checkpoint_says_where_it_looked(tmp_path):
    empty = tmp_path / "empty"
    with CheckpointStore(empty) as store:
        with pytest.raises(CheckpointNotFoundError, match=f"no checkpoint found in {empty}"):
            store.restore()
        store.save(5, {"params": {"w": jnp.ones(2)}})
        with pytest.raises(CheckpointNotFoundError, match=r"step 7 in .*available steps: \[5\]"):
            store.restore(7)
        with pytest.raises(KeyError, match="no item.*'opt_state'.*holds"):
            store.restore(5, ["opt_state"])
    with pytest.raises(CheckpointNotFoundError, match=str(tmp_path / "nowhere")):
        CheckpointStore(tmp_path / "nowhere", read_only=True)
    assert not (tmp_path / "nowhere").exists()  # read-only never creates anything
    with pytest.raises(CheckpointNotFoundError, match="no config.json in model dir"):
        checkpoints.load_model_dir(tmp_path / "empty")


def test_save_rejects_bad_items(tmp_path):
    with CheckpointStore(tmp_path) as store:
        with pytest.raises(ValueError, match="empty"):
            store.save(1, {})
        with pytest.raises(ValueError, match="reserved"):
            store.save(1, {"metadata": {"a": jnp.ones(1)}})


def test_model_dir_round_trip(tmp_path, params):
    config = tiny_config()
    out = checkpoints.save_model_dir(tmp_path / "model", config, params, step=3)
    assert checkpoints.is_model_dir(out)
    assert not checkpoints.is_model_dir(tmp_path)
    loaded_config, loaded = checkpoints.load_model_dir(out)
    assert loaded_config == config
    assert_trees_equal(loaded, params)


def test_restore_into_shardings_on_8_simulated_devices(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(HERE), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SHARDED CHECKPOINT CHECKS PASSED" in proc.stdout


def _sharded_checks(tmp: pathlib.Path):
    import functools

    from jax.sharding import PartitionSpec as P

    from coderl_jax import partitioning as pt
    from coderl_jax.models.t5 import param_logical_axes

    config = tiny_config()
    mesh = pt.make_mesh(data=4, model=2)
    params, shardings = pt.sharded_init(
        functools.partial(init_params, config), param_logical_axes(config), mesh)(
            jax.random.key(0))
    embedding = ("token_embedder", "embedding")
    get = lambda tree: tree[embedding[0]][embedding[1]]  # noqa: E731
    assert get(params).sharding.spec == P("model", None)
    with CheckpointStore(tmp / "ck") as store:
        store.save(1, {"params": params})
    store = CheckpointStore(tmp / "ck", read_only=True)
    # Restored into the same shardings: values and shardings kept.
    same = store.restore(1, {"params": pt.with_shardings(params, shardings)})["params"]
    assert_trees_equal(same, params)
    jax.tree.map(lambda a, b: assert_sharding_equal(a.sharding, b.sharding), same, params)
    # Restored onto another mesh (data=2, model=4 over the same devices): resharded on read.
    mesh2 = pt.make_mesh(data=2, model=4)
    shardings2 = pt.logical_to_shardings(param_logical_axes(config), mesh2)
    other = store.restore(1, {"params": pt.with_shardings(params, shardings2)})["params"]
    assert_trees_equal(other, params)
    assert get(other).sharding.mesh.shape == {"data": 2, "model": 4}
    assert get(other).addressable_shards[0].data.shape == (config.vocab_size // 4, config.d_model)
    # A model dir written from sharded params loads on one device.
    checkpoints.save_model_dir(tmp / "model", config, params)
    _, single = checkpoints.load_model_dir(tmp / "model")
    assert_trees_equal(single, params)
    assert len(get(single).sharding.device_set) == 1
    store.close()
    print("SHARDED CHECKPOINT CHECKS PASSED")


def assert_sharding_equal(a, b):
    assert a.mesh == b.mesh and a.spec == b.spec, (a, b)


if __name__ == "__main__":
    _sharded_checks(pathlib.Path(sys.argv[1]))
