"""Hyper-parameters of a decoder-only LM: one frozen dataclass for every family.

`DecoderConfig.family` names the architecture ("gpt2", "gpt_neo", "gptj", "qwen2"); what
differs between families is a handful of switches (`FamilyTraits`: which norm, which
positions, parallel or sequential residual, which MLP, which biases, score scaling). The
network reads the switches, never the family name, so a new Llama-like family is one row
of `TRAITS` plus its Hugging Face key table below.

Like `T5Config`, it is read-only after start-up and strict in every direction: unknown
fields (ours, gin's or a Hugging Face `config.json`'s) are errors that name them, and HF
switches we do not implement (e.g. Qwen2's sliding window) are refused rather than
silently computed differently. Only the standard library and gin are imported here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gin

from coderl_jax.models.config import JsonConfig, check_fields

DTYPES = ("float32", "bfloat16", "float16")
ATTENTION_KINDS = ("global", "local")


@dataclasses.dataclass(frozen=True)
class FamilyTraits:
    """The architectural switches a family sets (see `TRAITS`)."""

    norm: str  # "layer": LayerNorm with bias (mean-centred); "rms": RMSNorm, scale only
    positions: str  # "learned": absolute table added to the embedding; "rotary": RoPE
    rotary_interleaved: bool  # GPT-J pairs (x0, x1), (x2, x3)...; NeoX/Llama halves
    parallel_residual: bool  # GPT-J: x + attn(ln(x)) + mlp(ln(x)), one norm per layer
    mlp: str  # "gelu": fc -> tanh-GELU -> proj (with biases); "swiglu": silu(gate) * up
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    scale_scores: bool  # 1/sqrt(head_dim); GPT-Neo does not scale
    lm_head_bias: bool  # GPT-J's untied head has a bias
    hf_architecture: str  # what export writes as `architectures`
    hf_model_type: str


TRAITS: dict[str, FamilyTraits] = {
    "gpt2": FamilyTraits("layer", "learned", False, False, "gelu", True, True, True, True,
                         False, "GPT2LMHeadModel", "gpt2"),
    "gpt_neo": FamilyTraits("layer", "learned", False, False, "gelu", False, True, True, False,
                            False, "GPTNeoForCausalLM", "gpt_neo"),
    "gptj": FamilyTraits("layer", "rotary", True, True, "gelu", False, False, True, True,
                         True, "GPTJForCausalLM", "gptj"),
    "qwen2": FamilyTraits("rms", "rotary", False, False, "swiglu", True, False, False, True,
                          False, "Qwen2ForCausalLM", "qwen2"),
}
FAMILIES = tuple(TRAITS)


@dataclasses.dataclass(frozen=True)
class DecoderConfig(JsonConfig):
    """Shape and numerics of a decoder-only LM.

    num_kv_heads < num_heads is grouped-query attention (Qwen2); None means num_heads.
    head_dim None means d_model // num_heads; d_ff None means 4 * d_model (GPT-2's n_inner).
    rotary_dim: how many of each head's dims are rotated (GPT-J; None = all of them).
    attention_layers: per layer "global" or "local" (GPT-Neo; None = all global); a local
    layer attends to the previous `window_size` positions (itself included).
    pad_token_id None (GPT-2 has no pad token) pads with eos_token_id (`pad_id`).
    dropout_rate is one rate for the embedding, attention weights and residual branches
    (read from HF's resid_pdrop / resid_dropout, or Qwen2's attention_dropout; written back
    to all of HF's dropout keys).
    dtype is the activation dtype, param_dtype the storage dtype; logits are float32.
    """

    family: str = "gpt2"
    vocab_size: int = 50257
    d_model: int = 768
    num_layers: int = 12
    num_heads: int = 12
    num_kv_heads: int | None = None
    head_dim: int | None = None
    d_ff: int | None = None
    max_position_embeddings: int = 1024
    rotary_dim: int | None = None
    rope_theta: float = 10000.0
    attention_layers: tuple[str, ...] | None = None
    window_size: int = 256
    layer_norm_epsilon: float = 1e-5
    tie_word_embeddings: bool = True
    dropout_rate: float = 0.0
    bos_token_id: int | None = None
    eos_token_id: int = 50256
    pad_token_id: int | None = None
    dtype: str = "float32"
    param_dtype: str = "float32"

    def __post_init__(self):
        if self.family not in TRAITS:
            raise ValueError(f"DecoderConfig.family must be one of {FAMILIES}, got {self.family!r}")
        if isinstance(self.attention_layers, list):  # gin / JSON give lists
            object.__setattr__(self, "attention_layers", tuple(self.attention_layers))
        for name in ("vocab_size", "d_model", "num_layers", "num_heads",
                     "max_position_embeddings", "window_size"):
            _check_positive_int(name, getattr(self, name))
        for name in ("num_kv_heads", "head_dim", "d_ff", "rotary_dim"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        if self.num_heads % self.kv_heads:
            raise ValueError(f"DecoderConfig.num_heads={self.num_heads} must be a multiple of "
                             f"num_kv_heads={self.kv_heads}")
        if self.head_dim is None and self.d_model % self.num_heads:
            raise ValueError(f"DecoderConfig.d_model={self.d_model} is not divisible by "
                             f"num_heads={self.num_heads}; set head_dim")
        if self.traits.positions == "rotary":
            if self.rotary_dim is not None and (self.rotary_dim > self.dim_per_head
                                                or self.rotary_dim % 2):
                raise ValueError(f"DecoderConfig.rotary_dim={self.rotary_dim} must be even and "
                                 f"<= head_dim={self.dim_per_head}")
            if self.dim_per_head % 2:
                raise ValueError(f"rotary positions need an even head_dim, got {self.dim_per_head}")
        elif self.rotary_dim is not None:
            raise ValueError(f"family {self.family!r} has no rotary positions; rotary_dim "
                             "must be None")
        if self.attention_layers is not None:
            if len(self.attention_layers) != self.num_layers or any(
                    a not in ATTENTION_KINDS for a in self.attention_layers):
                raise ValueError(f"DecoderConfig.attention_layers must be {self.num_layers} "
                                 f"entries of {ATTENTION_KINDS}, got {self.attention_layers}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"DecoderConfig.{name} must be one of {DTYPES}, "
                                 f"got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"DecoderConfig.dropout_rate must be in [0, 1), got {self.dropout_rate}")
        for name in ("layer_norm_epsilon", "rope_theta"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"DecoderConfig.{name} must be a positive float, got {value!r}")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is None and name != "eos_token_id":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not (
                    0 <= value < self.vocab_size):
                raise ValueError(f"DecoderConfig.{name} must be a token id in "
                                 f"[0, {self.vocab_size}), got {value!r}")

    # -- derived -------------------------------------------------------------------------------
    @property
    def traits(self) -> FamilyTraits:
        return TRAITS[self.family]

    @property
    def kv_heads(self) -> int:
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def dim_per_head(self) -> int:
        return self.d_model // self.num_heads if self.head_dim is None else self.head_dim

    @property
    def mlp_dim(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    @property
    def rotary_dims(self) -> int:
        """Dims of each head that RoPE rotates (0 without rotary positions)."""
        if self.traits.positions != "rotary":
            return 0
        return self.dim_per_head if self.rotary_dim is None else self.rotary_dim

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        return self.attention_layers or ("global",) * self.num_layers

    @property
    def pad_id(self) -> int:
        """The id written into padding (pad_token_id, or EOS for tokenizers without one)."""
        return self.eos_token_id if self.pad_token_id is None else self.pad_token_id

    def replace(self, **changes) -> DecoderConfig:
        check_fields(DecoderConfig, changes, "DecoderConfig.replace")
        return dataclasses.replace(self, **changes)

    # -- our own JSON --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["attention_layers"] is not None:
            d["attention_layers"] = list(d["attention_layers"])
        return d

    # -- Hugging Face config.json ----------------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], *, source: str = "Hugging Face config",
                     **overrides) -> DecoderConfig:
        """Build from a Hugging Face `config.json` dict of a supported family.

        The family comes from `model_type`. Keys are read through the family's table
        (`_HF_KEYS`); keys that fix behaviour we do not implement must have the value we
        compute (`_HF_REQUIRED`); bookkeeping keys are dropped; anything else is an error.
        `overrides` set our-only fields such as `dtype`.
        """
        d = dict(d)
        model_type = d.get("model_type")
        family = _FAMILY_OF_MODEL_TYPE.get(model_type)
        if family is None:
            raise ValueError(f"{source}: model_type {model_type!r} is not a supported decoder-only "
                             f"family (supported: {sorted(_FAMILY_OF_MODEL_TYPE)})")
        kwargs: dict[str, Any] = {"family": family}
        keys = _HF_KEYS[family]
        required = _HF_REQUIRED.get(family, {})
        for key, expected in required.items():
            if key in d and d[key] != expected and not (expected is None and d[key] in (None, [])):
                raise ValueError(f"{source}: {key}={d[key]!r} is not supported for {family} "
                                 f"(only {expected!r})")
        if family == "qwen2":
            _qwen2_rope(d, source, kwargs)
            if d.get("layer_types") and any(t != "full_attention" for t in d["layer_types"]):
                raise ValueError(f"{source}: Qwen2 layer_types other than full_attention "
                                 "(sliding windows) are not supported")
        if family == "gpt_neo":
            kwargs["attention_layers"] = _neo_attention_layers(d, source)
        unknown = sorted(k for k in d if k not in keys and k not in required
                         and k not in _HF_IGNORED_KEYS and k not in _HF_EXTRA_IGNORED.get(family, ()))
        if unknown:
            raise ValueError(f"{source}: unknown {family} config field(s) {unknown}")
        for hf_key, ours in keys.items():
            if hf_key in d and d[hf_key] is not None:
                kwargs[ours] = d[hf_key]
            elif hf_key in d and ours in ("pad_token_id", "bos_token_id", "d_ff", "head_dim",
                                          "rotary_dim", "num_kv_heads"):
                kwargs[ours] = None
        eos = kwargs.get("eos_token_id")
        if isinstance(eos, list):
            if not eos:
                raise ValueError(f"{source}: eos_token_id is an empty list")
            kwargs["eos_token_id"] = eos[0]  # generation stops at the first listed
        if "rope_theta" in kwargs:
            kwargs["rope_theta"] = float(kwargs["rope_theta"])
        check_fields(cls, overrides, f"{source} overrides")
        if kwargs.get("eos_token_id") is None and overrides.get("eos_token_id") is None:
            raise ValueError(f"{source}: eos_token_id is missing or null; sampling needs it "
                             "(set it in config.json or pass eos_token_id=... to load_hf)")
        return cls(**{**kwargs, **overrides})

    def to_hf_dict(self) -> dict[str, Any]:
        """A `config.json` dict that transformers' config class of the family reads back."""
        traits = self.traits
        d: dict[str, Any] = {"architectures": [traits.hf_architecture],
                             "model_type": traits.hf_model_type}
        values = self.to_dict()
        for hf_key, ours in _HF_KEYS[self.family].items():
            if ours in values:
                d.setdefault(hf_key, values[ours])
        d.update({k: v for k, v in _HF_REQUIRED.get(self.family, {}).items()
                  if k not in _HF_CHECK_ONLY})
        if self.family == "gpt_neo":
            d["attention_types"] = [[[kind], 1] for kind in self.layer_kinds]
            d["attention_layers"] = list(self.layer_kinds)
        if self.family == "qwen2":
            d["rope_parameters"] = {"rope_theta": self.rope_theta, "rope_type": "default"}
            d.pop("rope_theta", None)
            d["layer_types"] = ["full_attention"] * self.num_layers
            # Resolved: transformers' Qwen2 reads a null head_dim as a number.
            d["head_dim"], d["num_key_value_heads"] = self.dim_per_head, self.kv_heads
        for key in _HF_DROPOUT_COPIES.get(self.family, ()):
            d[key] = self.dropout_rate
        d["use_cache"] = True
        return d


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"DecoderConfig.{name} must be a positive int, got {value!r}")



def _qwen2_rope(d: dict[str, Any], source: str, kwargs: dict[str, Any]) -> None:
    """RoPE theta from `rope_parameters` (transformers 5) or top-level `rope_theta` (4.x)."""
    theta = d.get("rope_theta")
    for key in ("rope_parameters", "rope_scaling"):
        params = d.pop(key, None) or {}
        rope_type = params.get("rope_type", params.get("type", "default"))
        if rope_type != "default":
            raise ValueError(f"{source}: {key} has rope_type {rope_type!r}; only 'default' "
                             "RoPE is supported")
        theta = params.get("rope_theta", theta)
    if theta is not None:
        kwargs["rope_theta"] = float(theta)
    d.pop("rope_theta", None)


def _neo_attention_layers(d: dict[str, Any], source: str) -> tuple[str, ...]:
    """GPT-Neo's `attention_types` [[["global", "local"], 12]] expanded per layer."""
    layers: list[str] = []
    for pattern, repeat in d.get("attention_types") or []:
        layers += list(pattern) * int(repeat)
    explicit = d.get("attention_layers")
    if explicit is not None and layers and list(explicit) != layers:
        raise ValueError(f"{source}: attention_layers disagrees with attention_types")
    layers = list(explicit) if explicit is not None else layers
    if layers and len(layers) != d.get("num_layers"):
        raise ValueError(f"{source}: attention_types give {len(layers)} layers, "
                         f"num_layers is {d.get('num_layers')}")
    return tuple(layers) if layers else None


_FAMILY_OF_MODEL_TYPE = {t.hf_model_type: family for family, t in TRAITS.items()}

_COMMON_IDS = {"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id",
               "pad_token_id": "pad_token_id", "tie_word_embeddings": "tie_word_embeddings",
               "vocab_size": "vocab_size"}
# Hugging Face key -> DecoderConfig field, per family.
_HF_KEYS: dict[str, dict[str, str]] = {
    "gpt2": {**_COMMON_IDS, "n_positions": "max_position_embeddings", "n_embd": "d_model",
             "n_layer": "num_layers", "n_head": "num_heads", "n_inner": "d_ff",
             "resid_pdrop": "dropout_rate", "layer_norm_epsilon": "layer_norm_epsilon"},
    "gpt_neo": {**_COMMON_IDS, "max_position_embeddings": "max_position_embeddings",
                "hidden_size": "d_model", "num_layers": "num_layers", "num_heads": "num_heads",
                "intermediate_size": "d_ff", "window_size": "window_size",
                "resid_dropout": "dropout_rate", "layer_norm_epsilon": "layer_norm_epsilon"},
    "gptj": {**_COMMON_IDS, "n_positions": "max_position_embeddings", "n_embd": "d_model",
             "n_layer": "num_layers", "n_head": "num_heads", "n_inner": "d_ff",
             "rotary_dim": "rotary_dim", "resid_pdrop": "dropout_rate",
             "layer_norm_epsilon": "layer_norm_epsilon"},
    "qwen2": {**_COMMON_IDS, "max_position_embeddings": "max_position_embeddings",
              "hidden_size": "d_model", "num_hidden_layers": "num_layers",
              "num_attention_heads": "num_heads", "num_key_value_heads": "num_kv_heads",
              "head_dim": "head_dim", "intermediate_size": "d_ff", "rope_theta": "rope_theta",
              "rms_norm_eps": "layer_norm_epsilon", "attention_dropout": "dropout_rate"},
}
# Keys that switch on behaviour we do not compute: accepted only with these values.
_HF_REQUIRED: dict[str, dict[str, Any]] = {
    "gpt2": {"activation_function": "gelu_new", "scale_attn_weights": True,
             "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False},
    "gpt_neo": {"activation_function": "gelu_new"},
    "gptj": {"activation_function": "gelu_new", "rotary": True, "scale_attn_weights": True},
    "qwen2": {"hidden_act": "silu", "use_sliding_window": False, "use_mrope": False},
}
# Keys some hub configs carry (older GPT-J, Qwen2-VL-derived configs) but transformers'
# config classes do not define: checked when present, never written.
_HF_CHECK_ONLY = frozenset({"rotary", "use_mrope", "scale_attn_weights"})
# Dropout probabilities HF keeps separately; we have one rate and write it to all of them.
_HF_DROPOUT_COPIES = {"gpt2": ("embd_pdrop", "attn_pdrop"),
                      "gpt_neo": ("embed_dropout", "attention_dropout"),
                      "gptj": ("embd_pdrop", "attn_pdrop")}
# Keys that do not change the function computed (bookkeeping, generation defaults, label
# maps, initialisation, other heads' settings, numerics-only switches).
_HF_IGNORED_KEYS = frozenset({
    "_name_or_path", "architectures", "model_type", "transformers_version", "dtype",
    "torch_dtype", "use_cache", "is_encoder_decoder", "initializer_range", "id2label",
    "label2id", "problem_type", "return_dict", "output_hidden_states", "output_attentions",
    "chunk_size_feed_forward", "torchscript", "use_bfloat16", "pruned_heads",
    "tokenizer_class", "task_specific_params", "max_length", "min_length", "do_sample",
    "temperature", "top_k", "top_p", "num_beams", "repetition_penalty", "length_penalty",
    "no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id",
    "gradient_checkpointing", "finetuning_task", "prefix", "sep_token_id", "decoder_start_token_id",
    "_attn_implementation_autoset", "_commit_hash", "classifier_dropout", "num_labels",
    "is_decoder", "tie_encoder_decoder", "cross_attention_hidden_size", "early_stopping",
    "typical_p", "diversity_penalty", "num_beam_groups", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
    "output_past", "n_ctx", "summary_type", "summary_use_proj", "summary_activation",
    "summary_proj_to_labels", "summary_first_dropout", "summary_proj_to_labels",
    "reorder_and_upcast_attn", "embd_pdrop", "attn_pdrop", "embed_dropout",
    "attention_dropout_rate", "gradient_checkpointing_kwargs", "use_return_dict",
})
_HF_EXTRA_IGNORED = {
    "gpt_neo": ("attention_types", "attention_layers", "attention_dropout"),
    # Only meaningful with use_sliding_window=True, which is refused above.
    "qwen2": ("sliding_window", "max_window_layers", "layer_types", "rope_parameters",
              "rope_scaling"),
}


gin.external_configurable(DecoderConfig, name="DecoderConfig", module="coderl_jax.models")
