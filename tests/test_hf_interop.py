"""Hugging Face interop: export -> from_pretrained round trip, .bin checkpoints, tokenizer,
and clear errors for bad checkpoints (missing file, wrong shape, missing/unexpected tensor,
unknown config field)."""

import json
import sys

import jax
import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

from coderl_jax.data.tokenizer import load_tokenizer
from coderl_jax.hub import resolve_model_dir
from coderl_jax.models.hf import export_hf, load_hf
from coderl_jax.models.t5 import init_params
from model_utils import forward_fn, random_batch, save_hf_model, tiny_config, v11


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A saved v1.0 tiny HF model directory (config.json + model.safetensors)."""
    out = tmp_path_factory.mktemp("hf_v10")
    save_hf_model(tiny_config(), out, seed=1)
    return out


def _copy_dir(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("config", [tiny_config(), v11(tiny_config())], ids=["v1.0", "v1.1"])
def test_export_then_hf_from_pretrained_gives_the_same_logits(config, tmp_path):
    params = init_params(config, jax.random.key(3, impl="rbg"))
    export_hf(config, params, tmp_path)
    hf_model = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    ids, mask, dec = random_batch(config, np.random.default_rng(0))
    ours = np.asarray(forward_fn(config)(params, ids, dec, mask))
    with torch.no_grad():
        ref = hf_model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(mask).long(),
                       decoder_input_ids=torch.tensor(dec).long()).logits.numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    # And back: load_hf(export) is the identity on params and config.
    config2, params2 = load_hf(tmp_path)
    assert config2 == config
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 params, params2)


def test_pytorch_bin_checkpoint_loads_like_safetensors(hf_dir, tmp_path):
    # Old-style .bin files store the tied copies (encoder/decoder embed_tokens, lm_head) too.
    model = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir)
    (tmp_path / "config.json").write_text((hf_dir / "config.json").read_text())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert "lm_head.weight" in state and "encoder.embed_tokens.weight" in state
    torch.save(state, tmp_path / "pytorch_model.bin")
    _, from_bin = load_hf(tmp_path)
    _, from_st = load_hf(hf_dir)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 from_bin, from_st)


def test_pytorch_bin_without_torch_says_how_to_convert(hf_dir, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text((hf_dir / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError,
                       match=r"pytorch_model.bin is a PyTorch checkpoint.*safetensors"):
        load_hf(tmp_path)


def test_missing_weight_file_names_dir_and_files(hf_dir, tmp_path):
    (tmp_path / "config.json").write_text((hf_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError,
                       match=rf"no weight file in {tmp_path}: looked for .*model.safetensors"
                             r".*pytorch_model.bin"):
        load_hf(tmp_path)


def test_missing_config_and_bad_path_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"no config.json in {tmp_path}"):
        load_hf(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a model directory, a hub id"):
        resolve_model_dir(str(tmp_path / "nope" / "deeper"))


def _rewrite(src, dst, edit):
    _copy_dir(src, dst)
    tensors = load_file(str(dst / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_wrong_shaped_tensor_is_named_with_both_shapes(hf_dir, tmp_path):
    name = "decoder.block.1.layer.2.DenseReluDense.wi.weight"

    def edit(t):
        t[name] = t[name][:-1]

    _rewrite(hf_dir, tmp_path / "m", edit)
    with pytest.raises(ValueError,
                       match=rf"{name.replace('.', '[.]')}: expected shape \(64, 32\), "
                             r"got \(63, 32\)"):
        load_hf(tmp_path / "m")


def test_missing_and_unexpected_tensors_are_named(hf_dir, tmp_path):
    def edit(t):
        t["encoder.block.9.layer.0.SelfAttention.q.weight"] = t.pop(
            "encoder.block.1.layer.0.SelfAttention.q.weight")

    _rewrite(hf_dir, tmp_path / "m", edit)
    with pytest.raises(ValueError) as info:
        load_hf(tmp_path / "m")
    message = str(info.value)
    assert "missing tensor(s) (1): ['encoder.block.1.layer.0.SelfAttention.q.weight']" in message
    assert "unexpected tensor(s) (1): ['encoder.block.9.layer.0.SelfAttention.q.weight']" in message


def test_tied_config_with_a_different_lm_head_is_an_error(hf_dir, tmp_path):
    def edit(t):
        t["lm_head.weight"] = t["shared.weight"] + 1.0

    _rewrite(hf_dir, tmp_path / "m", edit)
    with pytest.raises(ValueError, match="lm_head.weight differs from shared.weight"):
        load_hf(tmp_path / "m")


def test_unknown_config_field_is_named(hf_dir, tmp_path):
    _copy_dir(hf_dir, tmp_path / "m")
    config = json.loads((hf_dir / "config.json").read_text())
    config["num_expertz"] = 8
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError,
                       match=r"config.json: unknown T5 config field\(s\) \['num_expertz'\]"):
        load_hf(tmp_path / "m")


def test_load_hf_dtype_sets_compute_dtype_only(hf_dir):
    config, params = load_hf(hf_dir, dtype="bfloat16")
    assert config.dtype == "bfloat16" and config.param_dtype == "float32"
    assert {str(x.dtype) for x in jax.tree.leaves(params)} == {"float32"}


def test_tokenizer_is_exported_and_loaded_from_the_same_dir(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "def": 4, "f": 5, "(": 6, ")": 7}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        unk_token="<unk>")
    config = tiny_config()
    export_hf(config, init_params(config, jax.random.key(0, impl="rbg")), tmp_path,
              tokenizer=tokenizer)
    loaded = load_tokenizer(tmp_path)
    assert loaded("def f ( )")["input_ids"] == tokenizer("def f ( )")["input_ids"] == [4, 5, 6, 7]
    assert (loaded.pad_token_id, loaded.eos_token_id) == (0, 2)


def test_hub_ids_resolve_through_snapshot_download(hf_dir, monkeypatch):
    """The hub code path, without the network: a short name maps to its Salesforce repo and
    a repo with only pytorch_model.bin (the original CodeT5 uploads) gets a second fetch."""
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, allow_patterns):
        calls.append((repo_id, tuple(allow_patterns)))
        return str(hf_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    config, _ = load_hf("codet5-large-ntp-py")
    assert config.d_model == tiny_config().d_model
    assert calls == [("Salesforce/codet5-large-ntp-py",
                      ("*.json", "*.txt", "*.model", "model.safetensors*"))]
    (hf_dir / "model.safetensors").rename(hf_dir / "hidden.safetensors")
    try:
        calls.clear()
        with pytest.raises(FileNotFoundError, match="no weight file"):
            load_hf("Salesforce/codet5-small")
        assert [c[0] for c in calls] == ["Salesforce/codet5-small"] * 2
        assert "*.bin" in calls[1][1]
    finally:
        (hf_dir / "hidden.safetensors").rename(hf_dir / "model.safetensors")


def test_bfloat16_checkpoint_loads_as_float32(hf_dir, tmp_path):
    """numpy has no bfloat16; a bf16 safetensors file (common on the hub) must still load."""
    from safetensors.torch import load_file as torch_load, save_file as torch_save

    _copy_dir(hf_dir, tmp_path)
    tensors = torch_load(str(hf_dir / "model.safetensors"))
    torch_save({k: v.bfloat16() for k, v in tensors.items()}, str(tmp_path / "model.safetensors"),
               metadata={"format": "pt"})
    _, params = load_hf(tmp_path)
    _, ref = load_hf(hf_dir)
    emb, ref_emb = params["token_embedder"]["embedding"], ref["token_embedder"]["embedding"]
    assert emb.dtype == np.float32
    expected = tensors["shared.weight"].bfloat16().float().numpy()
    np.testing.assert_array_equal(np.asarray(emb), expected)
    assert 0 < np.abs(np.asarray(emb) - np.asarray(ref_emb)).max() < 0.05
