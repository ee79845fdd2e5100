"""T5Config: gin model files, strict JSON / Hugging Face dicts, validation, logical axes."""

import json
import pathlib

import gin
import pytest

from coderl_jax.models.config import T5Config
from coderl_jax.train.configurables import model_config

GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin_configs" / "models"
# (d_model, num_layers, decoder layers, heads, d_ff, vocab) of each model file.
GIN_SHAPES = {
    "tiny.gin": (32, 2, 2, 4, 64, 128),
    "demo_cpu.gin": (128, 2, 2, 4, 512, 2048),
    "codet5_small.gin": (512, 6, 6, 8, 2048, 32100),
    "codet5_base.gin": (768, 12, 12, 12, 3072, 32100),
    "codet5_large.gin": (1024, 24, 24, 16, 4096, 32100),
}


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_every_model_gin_file_is_tested():
    # T5 model files; the decoder-only ones (DecoderConfig) are tests/test_model_family.py's.
    t5_files = [p.name for p in GIN_DIR.glob("*.gin") if "DecoderConfig." not in p.read_text()]
    assert sorted(t5_files) == sorted(GIN_SHAPES)


@pytest.mark.parametrize("name", sorted(GIN_SHAPES))
def test_gin_model_file_binds_t5config(name):
    gin.parse_config_file(str(GIN_DIR / name))
    config = model_config()
    assert isinstance(config, T5Config)
    shape = (config.d_model, config.num_layers, config.decoder_layers, config.num_heads,
             config.d_ff, config.vocab_size)
    assert shape == GIN_SHAPES[name]
    assert (config.pad_token_id, config.eos_token_id, config.decoder_start_token_id) == (0, 2, 0)
    assert config.feed_forward_proj == "relu" and config.tie_word_embeddings
    # Bindings reach only the gin-built config, not plain constructor calls.
    assert T5Config().d_model == 512 and T5Config().num_layers == 6


def test_unknown_gin_binding_fails_loudly():
    with pytest.raises(ValueError, match="T5Config' doesn't have a parameter named 'd_modle'"):
        gin.parse_config("T5Config.d_modle = 32")


def test_unknown_fields_are_named_everywhere(tmp_path):
    with pytest.raises(ValueError, match=r"unknown T5Config field\(s\) \['nheads'\]"):
        T5Config.from_dict({"d_model": 8, "nheads": 2})
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"d_model": 8, "colour": "red"}))
    with pytest.raises(ValueError, match=rf"{path}: unknown T5Config field\(s\) \['colour'\]"):
        T5Config.from_json(path)
    with pytest.raises(ValueError, match=r"unknown T5 config field\(s\) \['moe_layers'\]"):
        T5Config.from_hf_dict({"model_type": "t5", "moe_layers": 2})
    with pytest.raises(ValueError, match=r"unknown T5Config field\(s\) \['vocab'\]"):
        T5Config().replace(vocab=3)


def test_json_round_trip(tmp_path):
    config = T5Config(d_model=64, num_layers=3, feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False, dtype="bfloat16")
    config.to_json(tmp_path / "c.json")
    assert T5Config.from_json(tmp_path / "c.json") == config


@pytest.mark.parametrize("ff,tie", [("relu", True), ("gated-gelu", False)])
def test_hf_dict_round_trip_through_transformers(ff, tie):
    """to_hf_dict -> transformers.T5Config -> its to_dict -> from_hf_dict is the identity,
    including transformers 5 rewriting tie_word_embeddings as scale_decoder_outputs."""
    import transformers

    config = T5Config(vocab_size=100, d_model=16, d_kv=4, d_ff=32, num_layers=2,
                      num_decoder_layers=3, num_heads=4, feed_forward_proj=ff,
                      tie_word_embeddings=tie)
    hf = transformers.T5Config(**config.to_hf_dict())
    assert hf.scale_decoder_outputs == tie and hf.is_gated_act == (ff == "gated-gelu")
    assert T5Config.from_hf_dict(hf.to_dict()) == config


def test_codet5_style_config_json_is_accepted():
    # The keys of Salesforce/codet5-base's config.json (written by transformers 4.4).
    d = {"_name_or_path": "x", "architectures": ["T5ForConditionalGeneration"],
         "bos_token_id": 1, "d_ff": 3072, "d_kv": 64, "d_model": 768,
         "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 2,
         "feed_forward_proj": "relu", "gradient_checkpointing": False,
         "id2label": {"0": "LABEL_0"}, "initializer_factor": 1.0, "is_encoder_decoder": True,
         "label2id": {"LABEL_0": 0}, "layer_norm_epsilon": 1e-06, "model_type": "t5",
         "n_positions": 512, "num_decoder_layers": 12, "num_heads": 12, "num_layers": 12,
         "output_past": True, "pad_token_id": 0, "relative_attention_num_buckets": 32,
         "task_specific_params": {}, "torch_dtype": "float32",
         "transformers_version": "4.4.0.dev0", "use_cache": True, "vocab_size": 32100}
    config = T5Config.from_hf_dict(d)
    assert (config.d_model, config.decoder_layers, config.tie_word_embeddings) == (768, 12, True)


@pytest.mark.parametrize("field,value,match", [
    ("feed_forward_proj", "swiglu", "feed_forward_proj must be one of"),
    ("d_model", 0, "d_model must be a positive int"),
    ("dtype", "float8", "dtype must be one of"),
    ("eos_token_id", 40000, r"eos_token_id must be a token id in \[0, 32100\)"),
    ("dropout_rate", 1.5, r"dropout_rate must be in \[0, 1\)"),
])
def test_invalid_values_are_rejected(field, value, match):
    with pytest.raises(ValueError, match=match):
        T5Config(**{field: value})


def test_hf_dict_with_other_model_type_is_rejected():
    with pytest.raises(ValueError, match="model_type is 'bart', expected 't5'"):
        T5Config.from_hf_dict({"model_type": "bart"})


def test_param_logical_axes_name_every_dimension():
    import jax

    from coderl_jax.models.t5 import abstract_variables, param_logical_axes

    config = T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    axes = param_logical_axes(config)
    shapes = jax.tree.map(lambda x: x.shape,
                          jax.tree.map(lambda b: b.value, abstract_variables(config)["params"],
                                       is_leaf=lambda x: hasattr(x, "names")))
    allowed = {"vocab", "embed", "heads", "kv", "mlp", "relpos_buckets"}
    flat_axes = jax.tree_util.tree_leaves_with_path(axes, is_leaf=lambda x: isinstance(x, tuple))
    flat_shapes = dict(jax.tree_util.tree_leaves_with_path(
        shapes, is_leaf=lambda x: isinstance(x, tuple)))
    assert len(flat_axes) == len(flat_shapes) > 0
    for path, names in flat_axes:
        assert len(names) == len(flat_shapes[path]), path
        assert set(names) <= allowed, (path, names)
    assert tuple(axes["token_embedder"]["embedding"]) == ("vocab", "embed")
    assert tuple(axes["logits_dense"]["kernel"]) == ("embed", "vocab")
    assert tuple(axes["decoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]) == ("embed", "mlp")
