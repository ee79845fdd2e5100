"""Incremental decoding with the KV cache equals the full teacher-forced forward pass.

The step loop runs as one `jax.lax.scan` inside one jit, which also proves the cache keeps
fixed shapes (the sampling loops in decoding.py rely on that).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.models.t5 import T5, init_cache, init_params
from model_utils import forward_fn, random_batch, tiny_config, v11

VARIANTS = {"v1.0": tiny_config(), "v1.1": v11(tiny_config())}


@functools.cache
def _params(config):
    return init_params(config, jax.random.key(0, impl="rbg"))


@functools.cache
def _encode_fn(config):
    return jax.jit(lambda p, ids, mask: T5(config).apply({"params": p}, ids, mask,
                                                         method=T5.encode))


@functools.cache
def _scan_decode_fn(config):
    """f(params, encoded, mask, cache, dec [b, t], dec_mask [b, t]) -> (logits [b, t, V],
    cache): one decode=True step per position, under lax.scan."""
    model = T5(config)

    def run(params, encoded, mask, cache, dec, dec_mask):
        def step(cache, xs):
            tok, valid = xs
            logits, variables = model.apply(
                {"params": params, "cache": cache}, encoded, mask, tok[:, None], valid[:, None],
                decode=True, method=T5.decode, mutable=["cache"])
            return variables["cache"], logits[:, 0]

        cache, logits = jax.lax.scan(step, cache, (dec.T, dec_mask.T))
        return jnp.swapaxes(logits, 0, 1), cache

    return jax.jit(run)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cached_steps_equal_full_forward(variant):
    config = VARIANTS[variant]
    params = _params(config)
    ids, mask, dec = random_batch(config, np.random.default_rng(0), batch=3, src_len=10,
                                  tgt_len=8)
    full = forward_fn(config)(params, ids, dec, mask)
    encoded = _encode_fn(config)(params, ids, mask)
    # The cache is longer than the sequence: positions past the index must stay masked.
    cache = init_cache(config, params, 3, 12, encoded, mask)
    steps, cache = _scan_decode_fn(config)(params, encoded, mask, cache, dec,
                                           np.ones(dec.shape, bool))
    np.testing.assert_allclose(np.asarray(steps), np.asarray(full), atol=1e-5, rtol=0)
    assert int(cache["decoder"]["cache_index"]) == 8
    valid = np.asarray(cache["decoder"]["key_valid"])
    assert valid[:, :8].all() and not valid[:, 8:].any()


def test_init_cache_layout_and_cross_attention_computed_once():
    config = tiny_config()
    params = _params(config)
    ids, mask, dec = random_batch(config, np.random.default_rng(1), batch=2, src_len=9,
                                  tgt_len=5)
    encoded = _encode_fn(config)(params, ids, mask)
    cache = init_cache(config, params, 2, 6, encoded, mask)
    layer = cache["decoder"]["layers_1"]
    assert layer["self_attention"]["cached_key"].shape == (2, 4, 6, 8)  # heads first
    assert not np.asarray(layer["self_attention"]["cached_value"]).any()
    assert int(cache["decoder"]["cache_index"]) == 0
    # Cross-attention K = encoded @ key kernel, stored once at cache creation.
    kernel = params["decoder"]["layers_1"]["encoder_decoder_attention"]["key"]["kernel"]
    np.testing.assert_allclose(np.asarray(layer["encoder_decoder_attention"]["cached_key"]),
                               np.einsum("bse,ehd->bhsd", encoded, kernel), atol=1e-5)
    # Decoding reads them from the cache: without the encoder output the logits are the same.
    full = forward_fn(config)(params, ids, dec, mask)
    steps, _ = _scan_decode_fn(config)(params, None, mask, cache, dec, np.ones(dec.shape, bool))
    np.testing.assert_allclose(np.asarray(steps), np.asarray(full), atol=1e-5, rtol=0)


def test_chunked_prefix_then_single_steps_equal_full_forward():
    config = tiny_config()
    params = _params(config)
    ids, mask, dec = random_batch(config, np.random.default_rng(2), batch=2, src_len=8,
                                  tgt_len=7)
    full = np.asarray(forward_fn(config)(params, ids, dec, mask))
    encoded = _encode_fn(config)(params, ids, mask)
    cache = init_cache(config, params, 2, 10, encoded, mask)
    prefix_logits, variables = jax.jit(
        lambda p, c, e, m, d: T5(config).apply({"params": p, "cache": c}, e, m, d, decode=True,
                                               method=T5.decode, mutable=["cache"]))(
        params, cache, encoded, mask, dec[:, :3])
    rest, cache = _scan_decode_fn(config)(params, encoded, mask, variables["cache"], dec[:, 3:],
                                          np.ones((2, 4), bool))
    np.testing.assert_allclose(np.asarray(prefix_logits), full[:, :3], atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(rest), full[:, 3:], atol=1e-5, rtol=0)
    assert int(cache["decoder"]["cache_index"]) == 7


def test_left_padded_prefix_gives_the_unpadded_logits():
    """Rows with prefixes of different lengths share a batch by left padding (mask 0)."""
    config = tiny_config()
    params = _params(config)
    ids, mask, dec = random_batch(config, np.random.default_rng(3), batch=1, src_len=8,
                                  tgt_len=5)
    ids, mask = np.repeat(ids, 2, axis=0), np.repeat(mask, 2, axis=0)
    pads = 2
    padded = np.concatenate([np.full((1, pads), 7, np.int32), dec], axis=1)
    batch_dec = np.stack([np.concatenate([dec[0], np.full(pads, 5, np.int32)]), padded[0]])
    batch_mask = np.ones(batch_dec.shape, bool)
    batch_mask[1, :pads] = False
    encoded = _encode_fn(config)(params, ids, mask)
    cache = init_cache(config, params, 2, batch_dec.shape[1], encoded, mask)
    steps, _ = _scan_decode_fn(config)(params, encoded, mask, cache, batch_dec, batch_mask)
    steps = np.asarray(steps)
    np.testing.assert_allclose(steps[1, pads:], steps[0, :5], atol=1e-5, rtol=0)
    full = np.asarray(forward_fn(config)(params, ids[:1], dec, mask[:1]))
    np.testing.assert_allclose(steps[0, :5], full[0], atol=1e-5, rtol=0)


def test_init_cache_rejects_mismatched_encoder_output():
    config = tiny_config()
    params = _params(config)
    encoded = jnp.zeros((3, 4, config.d_model))
    with pytest.raises(ValueError, match=r"encoded must have shape \[batch=2"):
        init_cache(config, params, 2, 5, encoded, jnp.ones((3, 4), bool))
