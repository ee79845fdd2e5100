"""Decoder-only families (GPT-2, GPT-Neo, GPT-J, Qwen2) compute what Hugging Face's PyTorch
models compute.

Each variant is a random tiny HF model built here (no download), its weights perturbed so
that zero biases and unit norms cannot hide a mapping bug, saved with `save_pretrained` and
read back with our `load_hf`. Shown: logits agree in float32 on a left-padded batch; greedy
sampling with our KV cache is token-identical to HF `generate` on left-padded prompts of
different lengths; export -> `from_pretrained` -> load round-trips; cached decoding equals
the full forward; the family interface's pair layout (prompt | program, loss on program
tokens) and critic read the right positions.
"""

import functools

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from coderl_jax import partitioning
from coderl_jax.decoding import SamplingParams
from coderl_jax.models.critic import CriticHead
from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.decoder.critic import backbone_from_lm
from coderl_jax.models.decoder.hf import export_hf, load_hf
from coderl_jax.models.decoder.model import DecoderLM, init_cache
from coderl_jax.models.decoder.sampling import sample
from coderl_jax.models.family import DecoderFamily, decoder_sequence, load_family, pack_pair

V, PAD, BOS, EOS = 96, 0, 1, 2


@flax.struct.dataclass
class Pair:
    """The fields of training.batch.Batch a family reads (a pytree, so it crosses jit)."""

    encoder_input_tokens: np.ndarray
    encoder_mask: np.ndarray
    decoder_input_tokens: np.ndarray | None
    decoder_target_tokens: np.ndarray
    decoder_mask: np.ndarray

IDS = dict(vocab_size=V, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
VARIANTS = {
    "gpt2": (transformers.GPT2LMHeadModel, transformers.GPT2Config(
        n_positions=64, n_embd=32, n_layer=2, n_head=4, **IDS)),
    # global + local layers; a window shorter than the test sequences so locality matters
    "gpt_neo": (transformers.GPTNeoForCausalLM, transformers.GPTNeoConfig(
        max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=4,
        attention_types=[[["global", "local"], 1]], window_size=5, **IDS)),
    # rotary on 4 of each head's 8 dims, parallel residual, untied head with bias
    "gptj": (transformers.GPTJForCausalLM, transformers.GPTJConfig(
        n_positions=64, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, **IDS)),
    "qwen2-tied-gqa": (transformers.Qwen2ForCausalLM, transformers.Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True, **IDS)),
    "qwen2-untied-mqa": (transformers.Qwen2ForCausalLM, transformers.Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, max_position_embeddings=64, tie_word_embeddings=False,
        rope_theta=500.0, **IDS)),
}


ALL = sorted(VARIANTS)


@pytest.fixture(scope="module")
def load_pair(tmp_path_factory):
    """name -> (name, HF torch model, its dir, our config, our params), built once each."""
    built = {}

    def get(name):
        if name not in built:
            cls, hf_config = VARIANTS[name]
            torch.manual_seed(0)
            model = cls(hf_config).eval()
            with torch.no_grad():
                for p in model.parameters():  # biases 0, norms 1 at init: move them all
                    p.add_(torch.randn_like(p) * 0.3)
            out = tmp_path_factory.mktemp(name)
            model.save_pretrained(out)
            built[name] = (name, model, out) + load_hf(out)
        return built[name]
    return get


@functools.cache
def _forward(config):
    return jax.jit(lambda p, ids, mask: DecoderLM(config).apply({"params": p}, ids, mask))


def _left_padded(rng, lengths, width):
    ids = np.full((len(lengths), width), PAD, np.int64)
    mask = np.zeros((len(lengths), width), np.int64)
    for r, n in enumerate(lengths):
        ids[r, width - n:] = rng.integers(3, V, n)
        mask[r, width - n:] = 1
    return ids, mask


def _hf_logits(model, ids, mask):
    # HF derives positions from the mask only inside generate; pass them for a plain forward.
    positions = np.maximum(np.cumsum(mask, 1) - 1, 0)
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                     position_ids=torch.tensor(positions)).logits.numpy()


@pytest.mark.parametrize("name", ALL)
def test_logits_match_hf_on_a_left_padded_batch(load_pair, name):
    name, model, _, config, params = load_pair(name)
    ids, mask = _left_padded(np.random.default_rng(1), [12, 9, 4], 12)
    ours = np.asarray(_forward(config)(params, ids, mask))
    ref = _hf_logits(model, ids, mask)
    real = mask.astype(bool)
    assert ours.dtype == np.float32 and ours.shape == (3, 12, V)
    np.testing.assert_allclose(ours[real], ref[real], atol=2e-5 * max(1.0, np.abs(ref).max()),
                               rtol=0)


def _greedy(config, params, ids, mask, prefix=None, prefix_len=None):
    """Greedy sampling with one shape bucket for every call of a config (batch padded to
    4 rows, prefix to 4 tokens, 8 new tokens): one compile per config."""
    prefix = np.zeros((len(ids), 4), np.int32) if prefix is None else prefix
    prefix_len = np.zeros(len(ids), np.int32) if prefix_len is None else prefix_len
    out = sample(config, params, ids, mask, jax.random.key(0),
                 SamplingParams(max_new_tokens=NEW, greedy=True), prefix_ids=prefix,
                 prefix_len=prefix_len, pad_batch_to=4)
    return np.asarray(out.tokens)


NEW = 8


# Every family; one Qwen2 variant (each sampler compile costs seconds on 2 shared cores).
@pytest.mark.parametrize("name", ["gpt2", "gpt_neo", "gptj", "qwen2-untied-mqa"])
def test_greedy_with_kv_cache_equals_hf_generate_left_padded(load_pair, name):
    name, model, _, config, params = load_pair(name)
    ids, mask = _left_padded(np.random.default_rng(2), [7, 5, 2], 7)
    with torch.no_grad():
        ref = model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                             do_sample=False, num_beams=1, max_new_tokens=NEW,
                             pad_token_id=PAD, eos_token_id=EOS).numpy()[:, 7:]
    ours = _greedy(config, params, ids, mask)
    np.testing.assert_array_equal(ours[:, :ref.shape[1]], ref)
    assert (ours[:, ref.shape[1]:] == PAD).all()


@pytest.mark.parametrize("name", ALL)
def test_export_then_hf_from_pretrained_round_trips(load_pair, name, tmp_path):
    name, model, _, config, params = load_pair(name)
    export_hf(config, params, tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(back) is type(model)
    ids, mask = _left_padded(np.random.default_rng(3), [8, 6], 8)
    np.testing.assert_array_equal(_hf_logits(back, ids, mask), _hf_logits(model, ids, mask))
    config2, params2 = load_hf(tmp_path)
    assert config2.traits == config.traits and config2.kv_heads == config.kv_heads
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 params, params2)


@functools.cache
def _prefill_then_steps(config):
    """f(params, cache, prompt [b, s], prompt_mask, tokens [b, t]) -> (prefill logits
    [b, s, V], step logits [b, t, V], cache): the prompt in one chunk, then one decode
    step per token under lax.scan."""
    model = DecoderLM(config)

    def run(params, cache, prompt, prompt_mask, tokens):
        prefill, variables = model.apply({"params": params, "cache": cache}, prompt,
                                         prompt_mask, decode=True, mutable=["cache"])

        def step(cache, tok):
            logits, variables = model.apply({"params": params, "cache": cache}, tok[:, None],
                                            jnp.ones((tok.shape[0], 1), jnp.int32),
                                            decode=True, mutable=["cache"])
            return variables["cache"], logits[:, 0]
        cache, logits = jax.lax.scan(step, variables["cache"], tokens.T)
        return prefill, jnp.swapaxes(logits, 0, 1), cache
    return jax.jit(run)


# Greedy == HF generate already covers every family's cache; these two add a local window
# across the chunk boundary and GQA.
@pytest.mark.parametrize("name", ["gpt_neo", "qwen2-tied-gqa"])
def test_prefill_then_cached_steps_equal_full_forward(load_pair, name):
    """A left-padded prompt written in one chunk, then one token per step: the logits
    equal the full forward's (GPT-Neo's local window reaches across the chunk boundary)."""
    name, _, _, config, params = load_pair(name)
    ids, mask = _left_padded(np.random.default_rng(4), [6, 3, 1], 6)
    rest = np.random.default_rng(5).integers(3, V, (3, 6))
    full_ids = np.concatenate([ids, rest], 1)
    full_mask = np.concatenate([mask, np.ones_like(rest)], 1)
    full = np.asarray(_forward(config)(params, full_ids, full_mask))  # [3, 12]: as above
    cache = init_cache(config, params, 3, 16)  # longer than needed: the tail stays masked
    prefill, steps, cache = _prefill_then_steps(config)(params, cache, ids, mask, rest)
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(prefill)[real], full[:, :6][real], atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(steps), full[:, 6:], atol=1e-5, rtol=0)
    assert int(cache["cache_index"]) == 12
    layer = cache["layers_0"]["attention"]["cached_key"]
    assert layer.shape == (3, config.kv_heads, 16, config.dim_per_head)
    assert not np.asarray(cache["key_valid"])[:, 12:].any()


@pytest.mark.parametrize("name", ["qwen2-untied-mqa"])  # the layout is family-independent
def test_pair_batch_scores_program_tokens_only_whatever_the_prompt_padding(load_pair, name):
    """family.target_logits on a RIGHT-padded prompt batch == the plain LM's logits on each
    unpadded prompt + program; the critic reads the program tokens' states."""
    name, _, _, config, params = load_pair(name)
    family = DecoderFamily(config)
    rng = np.random.default_rng(6)
    prompts = [rng.integers(3, V, n) for n in (5, 3)]
    programs = [rng.integers(3, V, n) for n in (4, 6)]
    S, T = 6, 6

    batch = Pair(np.zeros((2, S), np.int32), np.zeros((2, S), np.int32), None,
                 np.zeros((2, T), np.int32), np.zeros((2, T), np.int32))
    for r in range(2):
        batch.encoder_input_tokens[r, :len(prompts[r])] = prompts[r]
        batch.encoder_mask[r, :len(prompts[r])] = 1
        batch.decoder_target_tokens[r, :len(programs[r])] = programs[r]
        batch.decoder_mask[r, :len(programs[r])] = 1
    logits = np.asarray(jax.jit(lambda p, b: family.target_logits(p, b))(params, batch))
    assert logits.shape == (2, T, V)
    for r in range(2):
        seq = np.concatenate([prompts[r], programs[r]])
        # [3, 12] with right padding: the shape the logits test compiled.
        ids = np.zeros((3, 12), np.int32)
        ids[0, :len(seq)] = seq
        ref = np.asarray(_forward(config)(params, ids, (ids != 0).astype(np.int32)))[0]
        n, m = len(prompts[r]), len(programs[r])
        np.testing.assert_allclose(logits[r, :m], ref[n - 1:n + m - 1],
                                   atol=2e-5 * np.abs(ref).max(), rtol=0)
        row = pack_pair(prompts[r], programs[r], 12, config.pad_id)
        assert row["loss_mask"].sum() == m
        np.testing.assert_array_equal(row["targets"][row["loss_mask"] == 1], programs[r])

    # A critic warm-started from the LM (family.critic_init would compile a second init).
    head = CriticHead(4).init(jax.random.key(1), jnp.zeros((1, 2, config.d_model)),
                              jnp.ones((1, 2)))["params"]
    critic = {"backbone": backbone_from_lm(params), "head": nn.meta.unbox(head)}
    assert "lm_head" in params and "lm_head" not in critic["backbone"]
    assert jax.tree.structure(critic) == jax.tree.structure(
        family.critic_logical_axes(4), is_leaf=lambda x: isinstance(x, tuple))
    token_logits, pooled = jax.jit(lambda p, b: family.critic_logits(p, b, 4))(critic, batch)
    assert token_logits.shape == (2, T, 4) and pooled.shape == (2, 4)
    np.testing.assert_allclose(np.asarray(pooled[1]), np.asarray(token_logits[1]).max(0),
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(pooled[0]), np.asarray(token_logits[0, :4]).max(0),
                               atol=1e-6)
    # The critic's state at program token t is the LM's hidden state there.
    ids, mask, gather = decoder_sequence(batch, shift=False)
    np.testing.assert_array_equal(np.asarray(gather[0, :2]), [S, S + 1])
    assert ids.shape == (2, S + T) and int(mask[0].sum()) == 5 + 4


@pytest.mark.parametrize("name", ["gpt2"])  # the sampling loop is shared
def test_prefix_forced_sampling_continues_the_prefix(load_pair, name):
    name, _, _, config, params = load_pair(name)
    ids, mask = _left_padded(np.random.default_rng(7), [5, 3], 5)
    prefix = np.array([[11, 12, 13, 0], [21, 22, 0, 0]], np.int32)
    tokens = _greedy(config, params, ids, mask, prefix, np.array([3, 2]))
    np.testing.assert_array_equal(tokens[0, :3], [11, 12, 13])
    np.testing.assert_array_equal(tokens[1, :2], [21, 22])
    # Greedy after the prefix == greedy from prompt + prefix (right-padded prompts accepted).
    longer = np.zeros((2, 8), np.int64)
    longer_mask = np.zeros((2, 8), np.int64)
    for r, k in enumerate((3, 2)):
        seq = np.concatenate([ids[r][mask[r] == 1], prefix[r, :k]])
        longer[r, :len(seq)], longer_mask[r, :len(seq)] = seq, 1
    cont = _greedy(config, params, longer, longer_mask)
    np.testing.assert_array_equal(tokens[0, 3:], cont[0, :NEW - 3])
    np.testing.assert_array_equal(tokens[1, 2:], cont[1, :NEW - 2])


@pytest.mark.parametrize("name", ALL)
def test_load_family_picks_the_architecture(load_pair, name):
    name, _, hf_dir, config, _ = load_pair(name)
    family, params = load_family(hf_dir)
    assert isinstance(family, DecoderFamily) and family.config == config


def test_unsupported_hf_settings_are_refused():
    cfg = transformers.Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   use_sliding_window=True, sliding_window=8, **IDS).to_dict()
    with pytest.raises(ValueError, match="use_sliding_window"):
        DecoderConfig.from_hf_dict(cfg)
    gpt2 = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, **IDS).to_dict()
    with pytest.raises(ValueError, match=r"unknown gpt2 config field\(s\) \['n_expertz'\]"):
        DecoderConfig.from_hf_dict({**gpt2, "n_expertz": 8})
    with pytest.raises(ValueError, match="activation_function"):
        DecoderConfig.from_hf_dict({**gpt2, "activation_function": "relu"})
    with pytest.raises(ValueError, match="not a supported decoder-only family"):
        DecoderConfig.from_hf_dict({"model_type": "bert"})


@pytest.mark.parametrize("name", ALL)
def test_logical_axes_name_every_param_and_the_model_runs_under_a_mesh(load_pair, name):
    """Every parameter has one logical name per dimension from partitioning's rules, and
    the activation constraints are well-formed (both only checked under a mesh)."""
    name, _, _, config, params = load_pair(name)
    family = DecoderFamily(config)
    mesh = partitioning.make_mesh(data=1, model=1, devices=jax.devices()[:1])
    axes = family.logical_axes()
    partitioning.check_shardings(params, partitioning.logical_to_shardings(axes, mesh))
    for spec, leaf in zip(jax.tree.leaves(axes, is_leaf=lambda x: isinstance(x, tuple)),
                          jax.tree.leaves(params)):
        assert len(spec) == leaf.ndim
    if name != "qwen2-untied-mqa":
        return  # one forward under the mesh is enough (the constraints are shared)
    ids, mask = _left_padded(np.random.default_rng(1), [12, 9, 4], 12)
    ref = _forward(config)(params, ids, mask)
    with partitioning.activate(mesh):
        out = jax.jit(lambda p: DecoderLM(config).apply({"params": p}, ids, mask))(params)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["gpt2", "qwen2-tied-gqa"])  # the tied-head variants
def test_pytorch_bin_with_its_tied_head_copy_loads_like_safetensors(load_pair, name, tmp_path):
    """Old-style pytorch_model.bin files store the tied lm_head (and causal-mask buffers)."""
    name, model, hf_dir, _, params = load_pair(name)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert "lm_head.weight" in state
    if name == "gpt2":  # what transformers 4 checkpoints carry
        state["transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text((hf_dir / "config.json").read_text())
    _, from_bin = load_hf(tmp_path)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 from_bin, params)
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="lm_head.weight differs"):
        load_hf(tmp_path)


@pytest.mark.parametrize("name", ["gptj"])  # the dtype path is shared
def test_bfloat16_compute_returns_float32_logits_close_to_float32(load_pair, name):
    name, _, _, config, params = load_pair(name)
    ids, mask = _left_padded(np.random.default_rng(1), [12, 9, 4], 12)
    full = np.asarray(_forward(config)(params, ids, mask))
    half = _forward(config.replace(dtype="bfloat16"))(params, ids, mask)
    assert half.dtype == jnp.float32
    err = float(np.abs(np.asarray(half) - full)[mask.astype(bool)].max())
    assert 0 < err < 0.1 * np.abs(full).max()


@pytest.mark.parametrize("name", ["gpt2"])  # the sampling loop is shared
def test_temperature_top_p_samples_depend_on_their_prompt_and_id_only(load_pair, name):
    """The RL sampling path: a sample is the same whether its prompt shares the call with
    another (longer) prompt or not, a new rng changes it, and one shape bucket compiles the
    loop once."""
    from coderl_jax.models.decoder import sampling as decoder_sampling

    name, _, _, config, params = load_pair(name)
    sampling = SamplingParams(num_samples=2, max_new_tokens=NEW, temperature=0.8, top_p=0.9)
    ids, mask = _left_padded(np.random.default_rng(8), [3, 9], 9)

    def draw(rows, rng, sample_ids):
        out = sample(config, params, ids[rows], mask[rows], rng, sampling,
                     prefix_ids=np.zeros((len(rows), 4), np.int32),
                     prefix_len=np.zeros(len(rows), np.int32), sample_ids=sample_ids,
                     pad_batch_to=4)
        return np.asarray(out.tokens), np.asarray(out.log_probs), np.asarray(out.lengths)

    key = (2, NEW, False)
    both, both_lp, both_len = draw([0, 1], jax.random.key(3), np.arange(4))
    traces = decoder_sampling.TRACE_COUNTS[key]
    alone, _, _ = draw([0], jax.random.key(3), np.arange(2))
    np.testing.assert_array_equal(alone, both[:2])
    assert decoder_sampling.TRACE_COUNTS[key] == traces  # same bucket: no new compile
    other, _, _ = draw([0, 1], jax.random.key(4), np.arange(4))
    assert not np.array_equal(other, both)
    assert (both_lp <= 0).all()
    for r in range(4):
        assert (both_lp[r, both_len[r]:] == 0).all()
        assert (both[r, both_len[r]:] == config.pad_id).all()
