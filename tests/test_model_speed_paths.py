"""The fast paths behind benchmarks/model_speed.py equal (or are statistically) the reference.

- Dropout masks come from a counter-based hash (`layers.dropout_bits`) instead of threefry
  bits per element: the bits must be uniform and independent enough that the drop rate and
  the scaling are right, masks must vary with the key and be reproducible from it, and the
  deterministic path must be the identity.
- The KV cache is stored heads-first; tests/test_t5_cache.py proves cached == full forward.
- Every projection (and the tied LM head) goes through `layers.contract`, whose custom
  backward pass transposes an operand explicitly: its gradients equal autodiff of the plain
  dot_general, for each branch and dtype.
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import random_batch, tiny_config

from coderl_jax.models import layers
from coderl_jax.models.layers import Dropout, contract, dropout_bits
from coderl_jax.models.t5 import T5, init_params


def _bits(seed, shape):
    return np.asarray(jax.jit(dropout_bits, static_argnums=1)(jax.random.key(seed), shape))


def test_dropout_bits_are_uniform_and_independent():
    n = 1 << 20
    u = _bits(0, (n,)).astype(np.float64) / 2.0 ** 32
    # Mean and variance of U(0, 1), each within ~5 standard errors.
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)
    # Each of the 16 equal bins holds 1/16 of the mass (chi-square, 15 dof; 99.99% < 45).
    counts = np.bincount((u * 16).astype(int), minlength=16)
    assert ((counts - n / 16) ** 2 / (n / 16)).sum() < 45
    # Neighbouring counters (consecutive elements, and the same element one row apart) are
    # uncorrelated.
    for lag in (1, 2, 256):
        corr = np.corrcoef(u[:-lag], u[lag:])[0, 1]
        assert abs(corr) < 5 / np.sqrt(n), (lag, corr)
    # Every bit position is a fair coin.
    bits = _bits(0, (n,))
    ones = np.array([((bits >> b) & 1).mean() for b in range(32)])
    assert np.all(np.abs(ones - 0.5) < 5 * 0.5 / np.sqrt(n)), ones


def test_dropout_bits_depend_on_the_key_only():
    a, b = _bits(0, (64, 128)), _bits(0, (64, 128))
    np.testing.assert_array_equal(a, b)
    c = _bits(1, (64, 128))
    # Two keys: masks agree on ~10% x 10% + 90% x 90% of elements at rate 0.1, not all.
    threshold = np.uint32(round(0.1 * 2 ** 32))
    agree = ((a < threshold) == (c < threshold)).mean()
    assert 0.78 < agree < 0.86, agree
    # Uncorrelated across keys as values, too.
    assert abs(np.corrcoef(a.ravel().astype(float), c.ravel().astype(float))[0, 1]) < 0.05


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_rate_and_scaling(rate):
    x = jnp.ones((256, 1024), jnp.float32)
    y = np.asarray(Dropout(rate).apply({}, x, deterministic=False,
                                       rngs={"dropout": jax.random.key(3)}))
    dropped = (y == 0).mean()
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / y.size), dropped
    np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6)
    # Inverted dropout keeps the expectation.
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(rate / (1 - rate) / y.size)


def test_dropout_deterministic_or_zero_rate_is_the_identity():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 7, 5)), jnp.float32)
    out = Dropout(0.3).apply({}, x, deterministic=True)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))
    out = Dropout(0.0).apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))


def test_model_dropout_varies_with_the_rng_and_not_in_eval():
    config = tiny_config(dropout_rate=0.1)
    params = init_params(config, jax.random.key(0))
    ids, mask, dec = random_batch(config, np.random.default_rng(0), batch=2, src_len=9,
                                  tgt_len=6)
    model = T5(config)

    def run(rng=None):
        if rng is None:
            return np.asarray(model.apply({"params": params}, ids, dec, mask))
        return np.asarray(model.apply({"params": params}, ids, dec, mask, deterministic=False,
                                      rngs={"dropout": rng}))

    np.testing.assert_array_equal(run(), run())
    a, b = run(jax.random.key(1)), run(jax.random.key(2))
    np.testing.assert_array_equal(a, run(jax.random.key(1)))
    assert not np.allclose(a, b) and not np.allclose(a, run())


@pytest.mark.parametrize("x_shape,k_shape,num_in", [
    ((3, 5, 8), (8, 16), 1),         # x smaller than the cotangent: x is transposed
    ((3, 5, 16), (16, 4), 1),        # cotangent smaller: (g^T x)^T
    ((2, 7, 4, 6), (4, 6, 10), 2),   # two contracted axes (the attention out-projection)
    ((2, 3, 12), (12, 4, 5), 1),     # two feature axes (query/key/value)
])
@pytest.mark.parametrize("dtype,float32_output", [
    (jnp.float32, False), (jnp.bfloat16, False), (jnp.bfloat16, True)])
def test_contract_gradients_equal_autodiff(x_shape, k_shape, num_in, dtype, float32_output):
    kx, kk, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, x_shape).astype(dtype)
    kernel = jax.random.normal(kk, k_shape).astype(dtype)
    dims = ((tuple(range(len(x_shape) - num_in, len(x_shape))), tuple(range(num_in))),
            ((), ()))

    def reference(x, kernel):
        return jax.lax.dot_general(x, kernel, dims, preferred_element_type=(
            jnp.float32 if float32_output else None))

    def ours(x, kernel):
        return contract(x, kernel, num_in, float32_output)

    out = reference(x, kernel)
    np.testing.assert_array_equal(np.asarray(ours(x, kernel), np.float32),
                                  np.asarray(out, np.float32))
    g = jax.random.normal(kg, out.shape).astype(out.dtype)
    want = jax.vjp(reference, x, kernel)[1](g)
    got = jax.jit(lambda x, k, g: jax.vjp(ours, x, k)[1](g))(x, kernel, g)
    tol = 1e-5 if dtype == jnp.float32 else 2e-2
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                   rtol=tol, atol=tol)
    # Both kernel-gradient forms (CPU layout and the plain one other backends use) agree.
    for form in (layers._kernel_grad, layers._kernel_grad_cpu):
        np.testing.assert_allclose(np.asarray(form(x, g.astype(dtype), num_in), np.float32),
                                   np.asarray(want[1], np.float32), rtol=tol, atol=tol)


def test_bf16_contract_accumulates_in_float32_and_its_gradients_run():
    # bf16 products ask for float32 results (cast back afterwards): that is the form XLA's
    # CPU library runs on the bf16 matrix units (AMX), ~5x a bf16-out dot
    # (benchmarks/model_speed.py --dtype bfloat16). Every dot of the forward and backward
    # pass must then be one the CPU runtime can execute: when XLA folded the transpose of
    # (g^T x)^T into its dot, it became a bf16 x bf16 -> f32 dot the CPU runtime rejects
    # (UNIMPLEMENTED), so the mlp/wo-shaped case (x wider than the cotangent) runs here.
    x = jax.random.normal(jax.random.key(0), (4, 128, 512), jnp.bfloat16)
    kernel = jax.random.normal(jax.random.key(1), (512, 64), jnp.bfloat16)
    text = jax.jit(lambda x, k: contract(x, k)).lower(x, kernel).as_text()
    assert "bf16>, tensor<512x64xbf16>) -> tensor<4x128x64xf32>" in text, text

    def loss(x, k):
        return jnp.sum(contract(x, k).astype(jnp.float32) ** 2)

    dx, dk = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, kernel)
    want = jax.grad(loss, argnums=(0, 1))(x.astype(jnp.float32), kernel.astype(jnp.float32))
    assert dx.dtype == dk.dtype == jnp.bfloat16
    for got, ref in ((dx, want[0]), (dk, want[1])):
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(ref),
                                   rtol=5e-2, atol=5e-2 * float(jnp.abs(ref).max()))
