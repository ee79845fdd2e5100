"""The model-family interface: the T5 adapter computes exactly what the T5 modules compute,
the decoder-only family trains (gradients through the pair layout), and the gin model
files of every family parse into configs."""

import dataclasses

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax import gin_utils
from coderl_jax.decoding import SamplingParams
from coderl_jax.models.critic import CriticHead, T5Critic
from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.family import DecoderFamily, T5Family, family_config, family_for
from coderl_jax.models.t5 import init_params
from model_utils import forward_fn, random_batch, tiny_config


@flax.struct.dataclass
class Pair:
    encoder_input_tokens: np.ndarray
    encoder_mask: np.ndarray
    decoder_input_tokens: np.ndarray
    decoder_target_tokens: np.ndarray
    decoder_mask: np.ndarray


def _t5_pair():
    config = tiny_config()
    ids, mask, dec = random_batch(config, np.random.default_rng(0), batch=2, src_len=9,
                                  tgt_len=6)
    targets = np.concatenate([dec[:, 1:], np.full((2, 1), config.eos_token_id)], 1)
    return config, Pair(ids, mask.astype(np.int32), dec, targets.astype(np.int32),
                        np.ones((2, 6), np.int32))


def test_t5_family_is_a_thin_adapter():
    config, batch = _t5_pair()
    family = family_for(config)
    assert isinstance(family, T5Family) and family.is_encoder_decoder
    params = family.init(jax.random.key(0, impl="rbg"))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 params, init_params(config, jax.random.key(0, impl="rbg")))
    logits = jax.jit(lambda p, b: family.target_logits(p, b))(params, batch)
    ref = forward_fn(config)(params, batch.encoder_input_tokens, batch.decoder_input_tokens,
                             batch.encoder_mask, batch.decoder_mask)
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(ref))
    # The backbone plus a fresh head (family.critic_init is init_critic_params, a slow
    # compile of the whole T5 on a shared CPU).
    head = CriticHead(2).init(jax.random.key(1), jnp.zeros((1, 2, config.d_model)),
                              jnp.ones((1, 2)))["params"]
    critic = {"backbone": params, "head": jax.tree.map(np.asarray, nn.meta.unbox(head))}
    tok, pooled = jax.jit(lambda p, b: family.critic_logits(p, b, 2))(critic, batch)
    ref_tok, ref_pooled = jax.jit(lambda p: T5Critic(config, 2).apply(
        {"params": p}, batch.encoder_input_tokens, batch.decoder_target_tokens,
        batch.encoder_mask, batch.decoder_mask))(critic)
    np.testing.assert_array_equal(np.asarray(tok), np.asarray(ref_tok))
    np.testing.assert_array_equal(np.asarray(pooled), np.asarray(ref_pooled))


def test_t5_family_sample_is_decoding_sample(monkeypatch):
    from coderl_jax import decoding

    calls = []
    monkeypatch.setattr(decoding, "sample", lambda *a, **k: calls.append((a, k)) or "out")
    config = tiny_config()
    sampling = SamplingParams(max_new_tokens=4, greedy=True)
    out = T5Family(config).sample("params", "ids", "mask", "rng", sampling, prefix_ids="p")
    assert out == "out"
    assert calls == [((config, "params", "ids", "mask", "rng", sampling), {"prefix_ids": "p"})]


def test_decoder_family_gradient_step_lowers_the_program_nll():
    """The CE loss on program tokens through the pair layout trains: a few SGD steps on one
    batch lower it, and prompt tokens get no gradient signal of their own."""
    config = DecoderConfig(family="qwen2", vocab_size=64, d_model=32, d_ff=64, num_layers=1,
                           num_heads=4, num_kv_heads=2, eos_token_id=2, pad_token_id=0)
    family = DecoderFamily(config)
    rng = np.random.default_rng(0)
    prompt = np.zeros((2, 6), np.int32)
    prompt[0, :4], prompt[1, :6] = rng.integers(3, 64, 4), rng.integers(3, 64, 6)
    program = rng.integers(3, 64, (2, 5)).astype(np.int32)
    batch = Pair(prompt, (prompt != 0).astype(np.int32), program, program,
                 np.ones((2, 5), np.int32))

    def loss(params):
        logits = family.target_logits(params, batch)
        log_p = jax.nn.log_softmax(logits)
        nll = -jnp.take_along_axis(log_p, batch.decoder_target_tokens[..., None], -1)[..., 0]
        return jnp.mean(nll)

    @jax.jit
    def step(params):
        value, grads = jax.value_and_grad(loss)(params)
        return value, jax.tree.map(lambda w, g: w - 0.5 * g, params, grads)

    params = family.init(jax.random.key(0))
    losses = []
    for _ in range(6):
        value, params = step(params)
        losses.append(float(value))
    assert losses[-1] < losses[0] - 0.1, losses


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_gpt_neo", "tiny_gptj", "tiny_qwen2", "gpt2",
                                  "gpt_neo_125m", "qwen2_0_5b"])
def test_gin_model_files_parse(name):
    gin_utils.parse([f"models/{name}.gin"])
    config = family_config()
    assert isinstance(config, DecoderConfig)
    assert DecoderConfig.from_dict(config.to_dict()) == config  # our JSON round-trips
    hf = config.to_hf_dict()
    assert DecoderConfig.from_hf_dict(hf).traits == config.traits
    if name == "qwen2_0_5b":
        assert (config.kv_heads, config.dim_per_head, config.mlp_dim) == (2, 64, 4864)
    if name == "gpt_neo_125m":
        assert config.layer_kinds[:2] == ("global", "local") and len(config.layer_kinds) == 12


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="num_heads=6 must be a multiple of num_kv_heads=4"):
        DecoderConfig(family="qwen2", d_model=48, num_heads=6, num_kv_heads=4)
    with pytest.raises(ValueError, match="family must be one of"):
        DecoderConfig(family="llama9")
    with pytest.raises(ValueError, match="unknown DecoderConfig field"):
        DecoderConfig().replace(n_layerz=3)
    with pytest.raises(ValueError, match="no rotary positions"):
        DecoderConfig(family="gpt2", rotary_dim=8)
    assert dataclasses.replace(DecoderConfig(), pad_token_id=None).pad_id == 50256


def test_load_family_reads_the_architecture_from_config_json(tmp_path, monkeypatch):
    """A T5 dir gives T5Family; a decoder-only hub id resolves through the hub code path
    (snapshot_download, faked here: no network) and gives DecoderFamily."""
    import huggingface_hub
    import transformers

    from coderl_jax.models.family import load_family
    from model_utils import save_hf_model

    save_hf_model(tiny_config(), tmp_path / "t5")
    family, _ = load_family(tmp_path / "t5")
    assert isinstance(family, T5Family) and family.config.d_model == 32

    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=1,
        eos_token_id=2))
    gpt2.save_pretrained(tmp_path / "gpt2")
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, allow_patterns: calls.append(repo_id)
                        or str(tmp_path / "gpt2"))
    family, params = load_family("openai-community/gpt2", dtype="bfloat16")
    assert calls == ["openai-community/gpt2"]
    assert isinstance(family, DecoderFamily) and family.name == "gpt2"
    assert family.config.dtype == "bfloat16" and family.pad_id == 2  # no pad token: EOS
    np.testing.assert_array_equal(np.asarray(params["position_embedding"]),
                                  gpt2.transformer.wpe.weight.detach().numpy())
