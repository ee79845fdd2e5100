"""Our Flax T5 computes what transformers.T5ForConditionalGeneration (PyTorch) computes.

Random-init tiny models with CodeT5's special tokens, saved with `save_pretrained` and read
back with `load_hf`: logits agree to 1e-4 in float32 (with encoder padding), greedy decoding
is token-identical to HF `generate`, and the relative-position buckets are HF's exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from coderl_jax.models.hf import load_hf
from coderl_jax.models.layers import relative_position_buckets
from coderl_jax.models.t5 import T5, init_params
from model_utils import forward_fn, random_batch, save_hf_model, tiny_config, v11

VARIANTS = {"v1.0-relu": tiny_config(), "v1.1-gated-gelu": v11(tiny_config())}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def hf_pair(request, tmp_path_factory):
    """(HF torch model, our config, our params) for one variant, from one saved directory."""
    out = tmp_path_factory.mktemp(request.param)
    hf_model = save_hf_model(VARIANTS[request.param], out, seed=0)
    config, params = load_hf(out)
    return hf_model, config, params


def _hf_logits(hf_model, ids, mask, dec, dec_mask=None):
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(mask).long(),
                       decoder_input_ids=torch.tensor(dec).long(),
                       decoder_attention_mask=None if dec_mask is None
                       else torch.tensor(dec_mask).long())
    return out.logits.numpy()


def test_loaded_config_is_the_saved_one(hf_pair):
    hf_model, config, _ = hf_pair
    assert config.is_gated == hf_model.config.is_gated_act
    assert config.tie_word_embeddings == hf_model.config.scale_decoder_outputs
    assert (config.d_model, config.num_heads, config.vocab_size) == (32, 4, 96)


def test_logits_match_hf_with_padding(hf_pair):
    hf_model, config, params = hf_pair
    ids, mask, dec = random_batch(config, np.random.default_rng(1), batch=3, src_len=11,
                                  tgt_len=7)
    assert not mask.all()  # the batch really has encoder padding
    ours = np.asarray(forward_fn(config)(params, ids, dec, mask))
    ref = _hf_logits(hf_model, ids, mask, dec)
    assert ours.dtype == np.float32 and ours.shape == (3, 7, config.vocab_size)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    # Sanity: the comparison is sensitive (a wrong mask moves logits far beyond 1e-4).
    unmasked = np.asarray(forward_fn(config)(params, ids, dec, np.ones_like(mask)))
    assert np.abs(unmasked - ref).max() > 1e-2


def test_logits_match_hf_with_decoder_padding(hf_pair):
    hf_model, config, params = hf_pair
    ids, mask, dec = random_batch(config, np.random.default_rng(2), batch=2, src_len=9,
                                  tgt_len=6)
    dec_mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    ours = np.asarray(forward_fn(config)(params, ids, dec, mask, dec_mask))
    np.testing.assert_allclose(ours, _hf_logits(hf_model, ids, mask, dec, dec_mask), atol=1e-4,
                               rtol=0)


def _greedy(config, params, ids, mask, max_new_tokens):
    """A plain greedy loop over the teacher-forced model (no cache), stopping at EOS and
    padding finished rows the way HF generate does. The decoder input lives in a fixed
    [batch, max_new_tokens] buffer (one compile): causal attention means the not yet
    written positions cannot influence the logits at the current one."""
    forward = forward_fn(config)
    batch = ids.shape[0]
    buf = np.full((batch, max_new_tokens), config.pad_token_id, np.int32)
    buf[:, 0] = config.decoder_start_token_id
    generated = []
    done = np.zeros(batch, bool)
    for step in range(max_new_tokens):
        logits = forward(params, ids, buf, mask)
        nxt = np.asarray(jnp.argmax(logits[:, step], axis=-1)).astype(np.int32)
        nxt = np.where(done, config.pad_token_id, nxt)
        generated.append(nxt)
        done |= nxt == config.eos_token_id
        if done.all():
            break
        if step + 1 < max_new_tokens:
            buf[:, step + 1] = nxt
    start = np.full((batch, 1), config.decoder_start_token_id, np.int32)
    return np.concatenate([start, np.stack(generated, axis=1)], axis=1)


def test_greedy_is_token_identical_to_hf_generate(hf_pair):
    hf_model, config, params = hf_pair
    ids, mask, _ = random_batch(config, np.random.default_rng(3), batch=4, src_len=10)
    with torch.no_grad():
        ref = hf_model.generate(input_ids=torch.tensor(ids).long(),
                                attention_mask=torch.tensor(mask).long(), do_sample=False,
                                num_beams=1, max_new_tokens=12).numpy()
    ours = _greedy(config, params, ids, mask, max_new_tokens=12)
    assert ours.shape[1] > 5  # the comparison covers several generated tokens
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 20)])
def test_relative_position_buckets_equal_hf(bidirectional, num_buckets, max_distance):
    from transformers.models.t5.modeling_t5 import T5Attention

    positions = np.arange(-300, 301)
    ref = T5Attention._relative_position_bucket(
        torch.tensor(positions), bidirectional=bidirectional, num_buckets=num_buckets,
        max_distance=max_distance).numpy()
    # Relative position = key - query; query position 0 and keys -300..300 via an offset.
    ours = relative_position_buckets(jnp.array([300]), jnp.arange(601), num_buckets=num_buckets,
                                     max_distance=max_distance, bidirectional=bidirectional)[0]
    np.testing.assert_array_equal(np.asarray(ours), ref)


def test_bfloat16_compute_returns_float32_logits_close_to_float32():
    config = tiny_config()
    params = init_params(config, jax.random.key(0, impl="rbg"))
    ids, mask, dec = random_batch(config, np.random.default_rng(4))
    full = forward_fn(config)(params, ids, dec, mask)
    half = forward_fn(config.replace(dtype="bfloat16"))(params, ids, dec, mask)
    assert half.dtype == jnp.float32
    assert jax.tree.leaves(params)[0].dtype == jnp.float32
    # bf16 has an 8-bit mantissa: close, but visibly not bit-identical.
    err = float(jnp.max(jnp.abs(half - full)))
    assert 0 < err < 0.1 * float(jnp.max(jnp.abs(full)))


def test_dropout_is_active_only_when_not_deterministic():
    config = tiny_config(dropout_rate=0.3)
    params = init_params(config, jax.random.key(0, impl="rbg"))
    ids, mask, dec = random_batch(config, np.random.default_rng(5))
    det = forward_fn(config)(params, ids, dec, mask)
    no_dropout = forward_fn(config.replace(dropout_rate=0.0))(params, ids, dec, mask)
    np.testing.assert_array_equal(np.asarray(det), np.asarray(no_dropout))
    train = forward_fn(config, deterministic=False)
    a = train(params, ids, dec, mask, None, jax.random.key(1, impl="rbg"))
    b = train(params, ids, dec, mask, None, jax.random.key(2, impl="rbg"))
    assert float(jnp.max(jnp.abs(a - det))) > 1e-3
    assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_bad_input_rank_is_a_clear_error():
    config = tiny_config()
    params = init_params(config, jax.random.key(0, impl="rbg"))
    with pytest.raises(ValueError, match=r"input_ids must have rank 2, got shape \(5,\)"):
        T5(config).apply({"params": params}, jnp.ones((5,), jnp.int32), method=T5.encode)


def test_init_and_forward_under_a_mesh_with_logical_rules():
    """Every parameter's axis names match its rank and every activation constraint is
    well-formed: both are only checked when a mesh and rules are active. A 1x1 mesh is
    enough to check them (sharded == single-device on 8 devices is partitioning's test)."""
    import flax.linen as nn
    from jax.sharding import Mesh

    config = v11(tiny_config())
    params = init_params(config, jax.random.key(0, impl="rbg"))
    ids, mask, dec = random_batch(config, np.random.default_rng(6))
    ref = forward_fn(config)(params, ids, dec, mask)
    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    rules = (("batch", "data"), ("heads", "model"), ("mlp", "model"), ("vocab", "model"),
             ("embed", None), ("kv", None), ("length", None), ("relpos_buckets", None))
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        boxed = jax.jit(T5(config).init)(jax.random.key(0, impl="rbg"), ids, dec, mask)
        out = jax.jit(lambda p: T5(config).apply({"params": p}, ids, dec, mask))(params)
    assert jax.tree.structure(nn.meta.unbox(boxed)["params"]) == jax.tree.structure(params)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5, rtol=0)
