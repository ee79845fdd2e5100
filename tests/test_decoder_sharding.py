"""The decoder-only family sharded by name equals the single-device model.

Runs this file as a script in a subprocess with 4 simulated CPU devices (the flag must be
set before JAX starts). There, on a (data=2, model=2) mesh, a Qwen2 with grouped-query
attention (4 query heads, 2 K/V heads: both divide the model axis) gives the same pair-batch
loss and gradients as on one device, with params created directly in their shardings from
the logical-axis rules. (One family: the rules and constraints are shared by all four.)
"""

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve()


@pytest.mark.slow
def test_sharded_equals_single_device_on_4_simulated_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(HERE)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "qwen2 ok" in proc.stdout


def _main():
    import flax.struct
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from coderl_jax import partitioning as pt
    from coderl_jax.models.decoder.config import DecoderConfig
    from coderl_jax.models.family import DecoderFamily

    assert jax.device_count() == 4

    @flax.struct.dataclass
    class Pair:
        encoder_input_tokens: jax.Array
        encoder_mask: jax.Array
        decoder_input_tokens: jax.Array
        decoder_target_tokens: jax.Array
        decoder_mask: jax.Array

    rng = np.random.default_rng(0)
    prompt = rng.integers(3, 64, (4, 6)).astype(np.int32)
    prompt_mask = (np.arange(6)[None] < np.array([[6], [4], [5], [2]])).astype(np.int32)
    program = rng.integers(3, 64, (4, 5)).astype(np.int32)
    batch = Pair(prompt * prompt_mask, prompt_mask, program, program, np.ones_like(program))
    configs = {
        "qwen2": DecoderConfig(family="qwen2", vocab_size=64, d_model=32, d_ff=64,
                               num_layers=2, num_heads=4, num_kv_heads=2, eos_token_id=2,
                               pad_token_id=0),
    }
    mesh = pt.make_mesh(data=2, model=2)
    for name, config in configs.items():
        family = DecoderFamily(config)

        def loss(params, batch):
            logits = family.target_logits(params, batch)
            log_p = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(log_p, batch.decoder_target_tokens[..., None],
                                                 -1))

        sharded, shardings = pt.sharded_init(family.init, family.logical_axes(), mesh)(
            jax.random.key(0))
        # The reference: the same params, whole, on one device.
        params = jax.device_put(jax.device_get(sharded), jax.devices()[0])
        ref_loss, ref_grads = jax.jit(jax.value_and_grad(loss))(params, batch)
        if name == "qwen2":
            kernel = sharded["layers_0"]["attention"]["key"]["kernel"]
            assert kernel.sharding.spec == P(None, "model", None), kernel.sharding
        with pt.activate(mesh):
            data = jax.device_put(batch, NamedSharding(mesh, P("data")))
            out_loss, out_grads = jax.jit(jax.value_and_grad(loss))(sharded, data)
        np.testing.assert_allclose(float(out_loss), float(ref_loss), rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                                             atol=1e-6, rtol=1e-5),
                     out_grads, ref_grads)
        print(name, "ok", flush=True)


if __name__ == "__main__":
    _main()
