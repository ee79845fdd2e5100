"""bf16 mixed precision is a config option: bf16 compute, fp32 master weights and optimizer."""

import sys
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import tiny_config  # noqa: E402

from coderl_jax import partitioning  # noqa: E402
from coderl_jax.training import batch as batch_lib  # noqa: E402
from coderl_jax.training import optimizer, state, step  # noqa: E402


def _run(config, steps=10):
    model = step.ActorModel(config)
    tx, schedule = optimizer.make_optimizer(optimizer.OptimizerConfig(learning_rate=1e-2), steps)
    mesh = partitioning.make_mesh()
    st, shardings = state.create_state(model, tx, mesh, 0)
    train = step.make_train_step(model, tx, schedule, mesh, shardings)
    rng = np.random.default_rng(0)
    examples = [{"inputs": rng.integers(5, 90, 9), "targets": rng.integers(5, 90, 6)}
                for _ in range(4)]
    b = batch_lib.to_global(batch_lib.ce_batch(examples, 4, 16, 8), step.batch_shardings(mesh))
    losses = []
    for _ in range(steps):
        st, m = train(st, b)
        losses.append(float(m["loss"]))
    return st, losses


def test_bf16_compute_keeps_fp32_master_weights_and_learns():
    _, l32 = _run(tiny_config(), steps=1)
    st16, l16 = _run(tiny_config(dtype="bfloat16"))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(st16.params))
    mu = [x for x in jax.tree.leaves(st16.opt_state) if hasattr(x, "dtype") and x.ndim >= 1]
    assert mu and all(x.dtype in (jnp.float32, jnp.uint32, jnp.int32) for x in mu)
    assert l16[-1] < 0.5 * l16[0]
    # Same starting point, same data: the first losses agree to bf16 precision.
    assert abs(l16[0] - l32[0]) < 0.05 * l32[0]
