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


def test_t5_family_sample_is_the_t5_sampler(monkeypatch):
    from coderl_jax.models import t5_sampling

    calls = []
    monkeypatch.setattr(t5_sampling, "sample", lambda *a, **k: calls.append((a, k)) or "out")
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


DECODER_GIN_FILES = ["tiny_gpt2", "tiny_gpt_neo", "tiny_gptj", "tiny_qwen2", "gpt2",
                     "gpt_neo_125m", "qwen2_0_5b", "demo_gpt2"]


def test_every_decoder_gin_file_is_tested():
    found = [p.stem for p in gin_utils.GIN_CONFIG_DIR.joinpath("models").glob("*.gin")
             if "DecoderConfig." in p.read_text()]
    assert sorted(found) == sorted(DECODER_GIN_FILES)


@pytest.mark.parametrize("name", DECODER_GIN_FILES)
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


# config.json of the hub checkpoints the gin files name (as published; abridged only where a
# key repeats): what load_hf must accept as they are.
_SUMMARY = {"summary_activation": None, "summary_first_dropout": 0.1,
            "summary_proj_to_labels": True, "summary_type": "cls_index",
            "summary_use_proj": True}
HUB_CONFIGS = {
    "openai-community/gpt2": {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
        "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
        "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
        "resid_pdrop": 0.1, **_SUMMARY,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": 50257},
    "EleutherAI/gpt-neo-125M": {
        "activation_function": "gelu_new", "architectures": ["GPTNeoForCausalLM"],
        "attention_dropout": 0, "attention_layers": ["global", "local"] * 6,
        "attention_types": [[["global", "local"], 6]], "bos_token_id": 50256,
        "embed_dropout": 0, "eos_token_id": 50256, "gradient_checkpointing": False,
        "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": None,
        "layer_norm_epsilon": 1e-05, "max_position_embeddings": 2048, "model_type": "gpt_neo",
        "num_heads": 12, "num_layers": 12, "resid_dropout": 0, **_SUMMARY,
        "torch_dtype": "float32", "transformers_version": "4.9.0.dev0", "use_cache": True,
        "vocab_size": 50257, "window_size": 256},
    "EleutherAI/gpt-j-6b": {
        "activation_function": "gelu_new", "architectures": ["GPTJForCausalLM"],
        "attn_pdrop": 0.0, "bos_token_id": 50256, "embd_pdrop": 0.0, "eos_token_id": 50256,
        "gradient_checkpointing": False, "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gptj", "n_embd": 4096, "n_head": 16,
        "n_inner": None, "n_layer": 28, "n_positions": 2048, "resid_pdrop": 0.0,
        "rotary": True, "rotary_dim": 64, "scale_attn_weights": True, **_SUMMARY,
        "tie_word_embeddings": False, "tokenizer_class": "GPT2Tokenizer",
        "transformers_version": "4.18.0.dev0", "use_cache": True, "vocab_size": 50400},
    "Qwen/Qwen2.5-0.5B": {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu",
        "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
        "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
        "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.40.1", "use_cache": True, "use_mrope": False,
        "use_sliding_window": False, "vocab_size": 151936},
}
GIN_OF_HUB = {"openai-community/gpt2": "gpt2", "EleutherAI/gpt-neo-125M": "gpt_neo_125m",
              "Qwen/Qwen2.5-0.5B": "qwen2_0_5b"}


@pytest.mark.parametrize("hub_id", sorted(HUB_CONFIGS))
def test_published_hub_configs_parse_and_match_the_gin_shapes(hub_id):
    config = DecoderConfig.from_hf_dict(HUB_CONFIGS[hub_id], source=hub_id)
    if hub_id in GIN_OF_HUB:
        gin_utils.parse([f"models/{GIN_OF_HUB[hub_id]}.gin"])
        bound = family_config()
        # dropout and max positions are run choices in the gin files; the shape must agree
        keys = ("family", "vocab_size", "d_model", "num_layers", "num_heads", "kv_heads",
                "dim_per_head", "mlp_dim", "layer_kinds", "window_size", "rope_theta",
                "tie_word_embeddings", "eos_token_id")
        assert {k: getattr(config, k) for k in keys} == {k: getattr(bound, k) for k in keys}
    if hub_id == "EleutherAI/gpt-j-6b":
        assert (config.rotary_dims, config.dim_per_head, config.traits.lm_head_bias) == (
            64, 256, True)


def test_long_context_rope_scaling_is_refused():
    cfg = {**HUB_CONFIGS["Qwen/Qwen2.5-0.5B"],
           "rope_scaling": {"type": "yarn", "factor": 4.0,
                            "original_max_position_embeddings": 32768}}
    with pytest.raises(ValueError, match="rope_scaling has rope_type 'yarn'"):
        DecoderConfig.from_hf_dict(cfg)


def test_our_config_json_says_which_family(tmp_path):
    from coderl_jax.models.family import config_from_json

    for config in (tiny_config(), DecoderConfig(family="gpt_neo", d_model=32, num_heads=4,
                                                num_layers=2, attention_layers=("global", "local"))):
        config.to_json(tmp_path / "config.json")
        assert config_from_json(tmp_path / "config.json") == config
    (tmp_path / "config.json").write_text('{"family": "gpt2", "n_embd": 8}')
    with pytest.raises(ValueError, match=r"unknown DecoderConfig field\(s\) \['n_embd'\]"):
        config_from_json(tmp_path / "config.json")
