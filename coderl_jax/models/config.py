"""The T5 network's hyper-parameters: one frozen dataclass, strict in every direction.

`T5Config` is read-only after start-up (STYLE.md). It is built from keyword arguments, from
gin in the mains (`gin_configs/models/*.gin` bind `T5Config.<field>`, registered by
`coderl_jax.train.configurables`), from our own JSON (`to_json` /
`from_json`), or from a Hugging Face `config.json` (`from_hf_dict` / `to_hf_dict`). Every
path rejects unknown fields with an error naming them, so a typo never silently falls back
to a default.

This module imports only the standard library, so the light CLI paths can read configs
without pulling in JAX.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

FEED_FORWARD_PROJS = ("relu", "gated-gelu")
DTYPES = ("float32", "bfloat16", "float16")

# Keys a Hugging Face T5 `config.json` may carry that do not change the function the network
# computes (bookkeeping, generation defaults, label maps, training switches). They are
# accepted and dropped by `from_hf_dict`; any key neither here nor a `T5Config` field is an
# error. `dense_act_fn` / `is_gated_act` are derived from `feed_forward_proj` and checked
# for consistency rather than ignored.
_HF_IGNORED_KEYS = frozenset({
    "_name_or_path", "architectures", "model_type", "transformers_version", "dtype",
    "torch_dtype", "use_cache", "is_encoder_decoder", "is_decoder", "initializer_factor",
    "bos_token_id", "sep_token_id", "classifier_dropout", "gradient_checkpointing",
    "output_past", "n_positions", "task_specific_params", "id2label", "label2id",
    "num_labels", "problem_type", "return_dict", "output_hidden_states", "output_attentions",
    "torchscript", "use_bfloat16", "pruned_heads", "chunk_size_feed_forward",
    "add_cross_attention", "tie_encoder_decoder", "finetuning_task", "tokenizer_class",
    "prefix", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
    "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p",
    "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences",
    "output_scores", "return_dict_in_generate", "forced_bos_token_id",
    "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
    "suppress_tokens", "begin_suppress_tokens", "cross_attention_hidden_size",
    "is_composition", "_attn_implementation_autoset", "_commit_hash",
})
# Our fields that have no Hugging Face counterpart (they choose how we compute, not what).
_OURS_ONLY = ("dtype", "param_dtype")


def check_fields(config_class: type, d: dict[str, Any], source: str) -> None:
    """A ValueError naming `source` when `d` has keys that are not fields of the dataclass."""
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{source}: unknown {config_class.__name__} field(s) {unknown}; "
                         f"known fields are {sorted(known)}")


class JsonConfig:
    """Our own JSON form of a frozen config dataclass (T5Config, DecoderConfig): `to_dict` /
    `from_dict` / `to_json` / `from_json`, unknown keys an error naming the file."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "dict"):
        """Inverse of `to_dict`; unknown keys are a ValueError naming them and `source`."""
        check_fields(cls, d, source)
        return cls(**d)

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike):
        with open(path) as f:
            d = json.load(f)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a JSON object of {cls.__name__} fields")
        return cls.from_dict(d, source=str(path))


@dataclasses.dataclass(frozen=True)
class T5Config(JsonConfig):
    """Shape and numerics of a T5 encoder-decoder (v1.0 as in CodeT5, or v1.1).

    `feed_forward_proj` picks the variant: "relu" (T5 v1.0 / CodeT5: ReLU MLP) or
    "gated-gelu" (v1.1: gated tanh-GELU MLP). `tie_word_embeddings=True` is the v1.0 head:
    the LM head reuses the input embedding and its input is rescaled by d_model**-0.5;
    False is the v1.1 head: a separate `[embed, vocab]` kernel and no rescale.
    `dtype` is the activation (compute) dtype; parameters are stored in `param_dtype`;
    logits are always returned in float32.
    """

    vocab_size: int = 32100
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None  # None -> num_layers
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"
    tie_word_embeddings: bool = True
    pad_token_id: int = 0
    eos_token_id: int = 2  # CodeT5: <pad>=0 <s>=1 </s>=2
    decoder_start_token_id: int = 0
    dtype: str = "float32"
    param_dtype: str = "float32"

    def __post_init__(self):
        positive = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                    "relative_attention_num_buckets", "relative_attention_max_distance")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"T5Config.{name} must be a positive int, got {value!r}")
        if self.num_decoder_layers is not None and (
                not isinstance(self.num_decoder_layers, int) or self.num_decoder_layers <= 0):
            raise ValueError("T5Config.num_decoder_layers must be None or a positive int, "
                             f"got {self.num_decoder_layers!r}")
        if self.relative_attention_num_buckets < 4:
            # Buckets are halved (bidirectional) and halved again (exact vs log-spaced).
            raise ValueError("T5Config.relative_attention_num_buckets must be >= 4, got "
                             f"{self.relative_attention_num_buckets}")
        if self.feed_forward_proj not in FEED_FORWARD_PROJS:
            raise ValueError(f"T5Config.feed_forward_proj must be one of {FEED_FORWARD_PROJS}, "
                             f"got {self.feed_forward_proj!r}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"T5Config.{name} must be one of {DTYPES}, "
                                 f"got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"T5Config.dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if not (isinstance(self.layer_norm_epsilon, (int, float))
                and math.isfinite(self.layer_norm_epsilon) and self.layer_norm_epsilon > 0):
            raise ValueError("T5Config.layer_norm_epsilon must be a positive float, got "
                             f"{self.layer_norm_epsilon!r}")
        for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise ValueError(f"T5Config.{name} must be a token id in [0, {self.vocab_size}), "
                                 f"got {value!r}")

    # -- derived -------------------------------------------------------------------------------
    @property
    def decoder_layers(self) -> int:
        """Number of decoder layers (num_decoder_layers, defaulting to num_layers)."""
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers

    @property
    def is_gated(self) -> bool:
        """True for the v1.1 gated MLP (two input projections wi_0, wi_1)."""
        return self.feed_forward_proj.startswith("gated-")

    def replace(self, **changes) -> T5Config:
        """A copy with `changes` applied (validated like a fresh config)."""
        check_fields(T5Config, changes, "T5Config.replace")
        return dataclasses.replace(self, **changes)

    # -- our own JSON --------------------------------------------------------------------------
    # -- Hugging Face config.json ----------------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], *, source: str = "Hugging Face config",
                     **overrides) -> T5Config:
        """Build from a Hugging Face T5 `config.json` dict.

        Keys that are `T5Config` fields are used; HF bookkeeping/generation keys (see
        `_HF_IGNORED_KEYS`) are dropped; anything else is a ValueError naming the keys and
        `source`. The v1.0/v1.1 head is read from `scale_decoder_outputs` when present
        (transformers >= 5 always writes `tie_word_embeddings: true` and records the real
        choice there), else from `tie_word_embeddings`. `overrides` set our-only fields
        such as `dtype`.
        """
        d = dict(d)
        model_type = d.get("model_type", "t5")
        if model_type != "t5":
            raise ValueError(f"{source}: model_type is {model_type!r}, expected 't5'")
        scale = d.pop("scale_decoder_outputs", None)
        if scale is not None:
            d["tie_word_embeddings"] = bool(scale)
        ff = d.get("feed_forward_proj", "relu")
        expected_act = "gelu_new" if ff == "gated-gelu" else ff.split("-")[-1]
        if "dense_act_fn" in d and d.pop("dense_act_fn") != expected_act:
            raise ValueError(f"{source}: dense_act_fn does not match feed_forward_proj={ff!r}")
        if "is_gated_act" in d and bool(d.pop("is_gated_act")) != ff.startswith("gated-"):
            raise ValueError(f"{source}: is_gated_act does not match feed_forward_proj={ff!r}")
        fields = {f.name for f in dataclasses.fields(cls)} - set(_OURS_ONLY)
        unknown = sorted(k for k in d if k not in fields and k not in _HF_IGNORED_KEYS)
        if unknown:
            raise ValueError(f"{source}: unknown T5 config field(s) {unknown}; known fields "
                             f"are {sorted(fields)} (plus ignored HF bookkeeping keys)")
        kwargs = {k: v for k, v in d.items() if k in fields}
        if isinstance(kwargs.get("eos_token_id"), list):
            raise ValueError(f"{source}: eos_token_id must be a single id, "
                             f"got {kwargs['eos_token_id']}")
        for key in ("pad_token_id", "decoder_start_token_id", "eos_token_id"):
            if key in kwargs and kwargs[key] is None:
                raise ValueError(f"{source}: {key} is null; T5 needs it")
        check_fields(cls, overrides, f"{source} overrides")
        return cls(**{**kwargs, **overrides})

    def to_hf_dict(self) -> dict[str, Any]:
        """A `config.json` dict that `transformers.T5Config` (4.x and 5.x) reads back."""
        d = {k: v for k, v in self.to_dict().items() if k not in _OURS_ONLY}
        d["num_decoder_layers"] = self.decoder_layers
        d.update(
            architectures=["T5ForConditionalGeneration"],
            model_type="t5",
            is_encoder_decoder=True,
            # transformers 5 derives the head rescale from this key and then forces it to
            # True; transformers 4 reads it directly. Both read `False` as the v1.1 head.
            tie_word_embeddings=self.tie_word_embeddings,
            initializer_factor=1.0,
            use_cache=True,
        )
        return d

