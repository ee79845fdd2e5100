"""The model-family interface: what the stages talk to, whatever the architecture.

    family = load_family("gpt2-dir-or-hub-id")   -> (family, params); or family_for(config)
    params = family.init(rng);  axes = family.logical_axes()
    logits = family.target_logits(params, batch)              # [B, T, V] at program tokens
    token_logits, pooled = family.critic_logits(params, batch, num_classes)
    out = family.sample(params, prompt_ids, prompt_mask, rng, sampling, prefix_ids=...)
    family.export_hf(params, out_dir)

Two families exist: `T5Family` (encoder-decoder, a thin adapter over models/t5.py, critic.py,
hf.py and t5_sampling.py, which stay as they are) and `DecoderFamily` (GPT-2, GPT-Neo, GPT-J,
Qwen2: models/decoder/). Code outside a family's own module never branches on the
architecture; it calls these methods.

A (prompt, program) pair becomes model inputs the same way for both: the training batch
(`training/batch.py`'s fields, duck-typed here as `PairBatch`) holds the prompt in
encoder_input_tokens/encoder_mask [B, S] and the program in decoder_target_tokens /
decoder_mask [B, T] (EOS included), and the per-token loss weights are [B, T] over the
program. Each family maps that to its network:

* encoder-decoder: prompt -> encoder, program shifted right (decoder_input_tokens) ->
  decoder; logits [B, T, V] predict the program tokens.
* decoder-only: one sequence [prompt (S, padded either side) | program[:-1]] with the
  masks concatenated; positions count real tokens only, so the prompt's pads change
  nothing. The logits that predict program token t are gathered (at the last real prompt
  token for t = 0, at program token t - 1 after) before the LM head, so the result is the
  same [B, T, V] and the loss falls on program tokens only. No prompt-position logits are
  ever computed.

The critic likewise returns [B, T, C] token logits over the program tokens and [B, C]
pooled logits (max over the real program tokens), for both families; the program enters
unshifted (the state at w_t has seen w_1..w_t).

Logical axis names are the rules of `coderl_jax.partitioning` ("batch", "length", "embed",
"heads", "kv", "mlp", "vocab"); K/V heads of grouped-query attention are named "heads" too
(so a "model" mesh axis must divide num_kv_heads).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, ClassVar, Protocol

import gin
import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.models.config import T5Config
from coderl_jax.models.decoder.config import DecoderConfig


class PairBatch(Protocol):
    """The fields a family reads from a batch (`training.batch.Batch` has them all)."""

    encoder_input_tokens: Any  # [B, S] prompt
    encoder_mask: Any  # [B, S]
    decoder_input_tokens: Any  # [B, T] program shifted right (T5's decoder input)
    decoder_target_tokens: Any  # [B, T] program (EOS included)
    decoder_mask: Any  # [B, T]


def _rngs(rng, deterministic):
    return None if deterministic else {"dropout": rng}


@dataclasses.dataclass(frozen=True)
class T5Family:
    """Encoder-decoder (T5 / CodeT5): prompt -> encoder, program -> decoder."""

    config: T5Config
    name: ClassVar[str] = "t5"
    is_encoder_decoder: ClassVar[bool] = True

    def init(self, rng: jax.Array) -> dict:
        from coderl_jax.models.t5 import init_params
        return init_params(self.config, rng)

    def logical_axes(self) -> dict:
        from coderl_jax.models.t5 import param_logical_axes
        return param_logical_axes(self.config)

    def target_logits(self, params, batch: PairBatch, *, deterministic: bool = True,
                      rng=None) -> jax.Array:
        """[B, T, V] float32: logits[:, t] predict decoder_target_tokens[:, t]."""
        from coderl_jax.models.t5 import T5
        return T5(self.config).apply(
            {"params": params}, batch.encoder_input_tokens, batch.decoder_input_tokens,
            batch.encoder_mask, batch.decoder_mask, deterministic=deterministic,
            rngs=_rngs(rng, deterministic))

    def critic_init(self, num_classes: int, rng: jax.Array) -> dict:
        from coderl_jax.models.critic import init_critic_params
        return init_critic_params(self.config, num_classes, rng)

    def critic_backbone(self, lm_params: dict) -> dict:
        """A critic backbone warm-started from this family's LM params: the whole T5."""
        return lm_params

    def critic_logical_axes(self, num_classes: int) -> dict:
        from coderl_jax.models.critic import critic_logical_axes
        return critic_logical_axes(self.config, num_classes)

    def critic_logits(self, params, batch: PairBatch, num_classes: int, *,
                      deterministic: bool = True, rng=None) -> tuple[jax.Array, jax.Array]:
        """(token_logits [B, T, C], pooled [B, C]); the program enters unshifted."""
        from coderl_jax.models.critic import T5Critic
        return T5Critic(self.config, num_classes).apply(
            {"params": params}, batch.encoder_input_tokens, batch.decoder_target_tokens,
            batch.encoder_mask, batch.decoder_mask, deterministic=deterministic,
            rngs=_rngs(rng, deterministic))

    def sample(self, params, input_ids, input_mask, rng, sampling, **kwargs):
        from coderl_jax.models import t5_sampling
        return t5_sampling.sample(self.config, params, input_ids, input_mask, rng, sampling,
                                  **kwargs)

    def export_hf(self, params, out_dir, tokenizer=None) -> None:
        from coderl_jax.models.hf import export_hf
        export_hf(self.config, params, out_dir, tokenizer)

    @property
    def pad_id(self) -> int:
        return self.config.pad_token_id

    @property
    def eos_id(self) -> int:
        return self.config.eos_token_id


def last_real_index(mask: jax.Array) -> jax.Array:
    """Index of the last 1 of each row of mask [B, S] (0 for an all-zero row): [B] int32."""
    s = mask.shape[1]
    return (s - 1 - jnp.argmax(mask[:, ::-1].astype(bool), axis=1)).astype(jnp.int32)


def decoder_sequence(batch: PairBatch, shift: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A pair batch as one decoder-only sequence.

    shift=True (the LM): ids = [prompt | program[:-1]] [B, S+T-1] and gather [B, T], the
    index whose logits predict program token t. shift=False (the critic): ids =
    [prompt | program] [B, S+T] and gather = the index of program token t itself.
    Returns (ids, mask, gather).
    """
    prompt, prompt_mask = batch.encoder_input_tokens, batch.encoder_mask
    program, program_mask = batch.decoder_target_tokens, batch.decoder_mask
    s, t = prompt.shape[1], program.shape[1]
    if shift:
        program, program_mask = program[:, :-1], program_mask[:, :-1]
        steps = s - 1 + jnp.arange(t)  # program token t is predicted at s + t - 1 ...
        gather = jnp.broadcast_to(steps, (prompt.shape[0], t))
        # ... except t = 0: by the last real prompt token (prompts may be right-padded).
        gather = gather.at[:, 0].set(last_real_index(prompt_mask))
    else:
        gather = jnp.broadcast_to(s + jnp.arange(t), (prompt.shape[0], t))
    ids = jnp.concatenate([prompt, program], axis=1).astype(jnp.int32)
    mask = jnp.concatenate([prompt_mask, program_mask], axis=1).astype(jnp.int32)
    return ids, mask, gather


@dataclasses.dataclass(frozen=True)
class DecoderFamily:
    """Decoder-only (GPT-2, GPT-Neo, GPT-J, Qwen2): prompt + program as one sequence."""

    config: DecoderConfig
    is_encoder_decoder: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.config.family

    def init(self, rng: jax.Array) -> dict:
        from coderl_jax.models.decoder.model import init_params
        return init_params(self.config, rng)

    def logical_axes(self) -> dict:
        from coderl_jax.models.decoder.model import param_logical_axes
        return param_logical_axes(self.config)

    def target_logits(self, params, batch: PairBatch, *, deterministic: bool = True,
                      rng=None) -> jax.Array:
        """[B, T, V] float32: logits[:, t] predict decoder_target_tokens[:, t]."""
        from coderl_jax.models.decoder.model import DecoderLM
        ids, mask, gather = decoder_sequence(batch, shift=True)
        return DecoderLM(self.config).apply({"params": params}, ids, mask,
                                            deterministic=deterministic, gather=gather,
                                            rngs=_rngs(rng, deterministic))

    def critic_init(self, num_classes: int, rng: jax.Array) -> dict:
        from coderl_jax.models.decoder.critic import init_critic_params
        return init_critic_params(self.config, num_classes, rng)

    def critic_backbone(self, lm_params: dict) -> dict:
        """A critic backbone warm-started from this family's LM params (no LM head)."""
        from coderl_jax.models.decoder.critic import backbone_from_lm
        return backbone_from_lm(lm_params)

    def critic_logical_axes(self, num_classes: int) -> dict:
        from coderl_jax.models.decoder.critic import critic_logical_axes
        return critic_logical_axes(self.config, num_classes)

    def critic_logits(self, params, batch: PairBatch, num_classes: int, *,
                      deterministic: bool = True, rng=None) -> tuple[jax.Array, jax.Array]:
        """(token_logits [B, T, C] at the program tokens, pooled [B, C])."""
        from coderl_jax.models.decoder.critic import DecoderCritic
        ids, mask, gather = decoder_sequence(batch, shift=False)
        return DecoderCritic(self.config, num_classes).apply(
            {"params": params}, ids, mask, gather, batch.decoder_mask,
            deterministic=deterministic, rngs=_rngs(rng, deterministic))

    def sample(self, params, input_ids, input_mask, rng, sampling, **kwargs):
        from coderl_jax.models.decoder import sampling as decoder_sampling
        return decoder_sampling.sample(self.config, params, input_ids, input_mask, rng,
                                       sampling, **kwargs)

    def export_hf(self, params, out_dir, tokenizer=None) -> None:
        from coderl_jax.models.decoder.hf import export_hf
        export_hf(self.config, params, out_dir, tokenizer)

    @property
    def pad_id(self) -> int:
        return self.config.pad_id

    @property
    def eos_id(self) -> int:
        return self.config.eos_token_id


Family = T5Family | DecoderFamily


def family_for(config: T5Config | DecoderConfig) -> Family:
    """The family of a model config."""
    if isinstance(config, T5Config):
        return T5Family(config)
    if isinstance(config, DecoderConfig):
        return DecoderFamily(config)
    raise TypeError(f"no model family for a {type(config).__name__}")


def hf_model_type(model_dir: str | os.PathLike) -> str:
    """`model_type` of a Hugging Face model directory's config.json."""
    path = pathlib.Path(model_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no config.json in {model_dir}")
    with open(path) as f:
        return json.load(f).get("model_type", "t5")


def load_family(path_or_hub_id: str | os.PathLike, *, dtype: str | None = None
                ) -> tuple[Family, dict]:
    """Load any supported Hugging Face checkpoint (dir or hub id) -> (family, params).

    The architecture comes from config.json's `model_type`: "t5" -> T5Family; "gpt2",
    "gpt_neo", "gptj", "qwen2" -> DecoderFamily.
    """
    from coderl_jax.hub import resolve_model_dir

    model_dir = resolve_model_dir(path_or_hub_id)
    if hf_model_type(model_dir) == "t5":
        from coderl_jax.models.hf import load_hf
        config, params = load_hf(model_dir, dtype=dtype)
    else:
        from coderl_jax.models.decoder.hf import load_hf
        config, params = load_hf(model_dir, dtype=dtype)
    return family_for(config), params


def config_from_dict(d: dict[str, Any], *, source: str = "dict") -> T5Config | DecoderConfig:
    """Our own config JSON (`config.to_dict()`) of either family: a `family` key marks a
    DecoderConfig (T5Config has no such field); unknown fields are errors either way."""
    if "family" in d:
        return DecoderConfig.from_dict(d, source=source)
    return T5Config.from_dict(d, source=source)


def config_from_json(path: str | os.PathLike) -> T5Config | DecoderConfig:
    """Inverse of `config.to_json(path)` for either family."""
    with open(path) as f:
        d = json.load(f)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object of config fields")
    return config_from_dict(d, source=str(path))


def pack_pair(prompt: np.ndarray, program: np.ndarray, length: int, pad_id: int
              ) -> dict[str, np.ndarray]:
    """One decoder-only training row from token lists, right-padded to `length`:
    inputs = prompt + program[:-1], targets = (prompt + program)[1:], loss_mask = 1 exactly
    where the target is a program token. For code that wants the packed one-sequence form
    (the family methods above take the pair batch directly)."""
    prompt, program = np.asarray(prompt, np.int32), np.asarray(program, np.int32)
    seq = np.concatenate([prompt, program])
    n = len(seq) - 1
    if n > length or not len(prompt) or not len(program):
        raise ValueError(f"{len(prompt)} prompt + {len(program)} program tokens do not fit "
                         f"length={length} (+1), or one of them is empty")
    out = {k: np.full(length, pad_id if k != "loss_mask" and k != "input_mask" else 0, np.int32)
           for k in ("inputs", "targets", "input_mask", "loss_mask")}
    out["inputs"][:n], out["targets"][:n], out["input_mask"][:n] = seq[:-1], seq[1:], 1
    out["loss_mask"][len(prompt) - 1:n] = 1
    return out


@gin.configurable(module="coderl_jax.models")
def family_config(config: T5Config | DecoderConfig = gin.REQUIRED) -> T5Config | DecoderConfig:
    """The model config as bound by gin for either family
    (`family_config.config = @DecoderConfig()` in gin_configs/models/gpt2.gin)."""
    if not isinstance(config, (T5Config, DecoderConfig)):
        raise TypeError(f"family_config.config must be a T5Config or DecoderConfig, got "
                        f"{type(config).__name__}")
    return config
