"""Hugging Face interop for the decoder-only families: load PyTorch checkpoints, export back.

    config, params = load_hf("/path/to/hf_dir")        # or a hub id such as "gpt2"
    export_hf(config, params, "/path/to/out")          # AutoModelForCausalLM loads it

As in `models/hf.py` (T5), one table per family (`_layout`) names, for every parameter,
its Hugging Face tensor and how the layouts differ, and both directions read it:

  copy:    same array (norms, biases of un-split dims, embeddings)
  linear:  nn.Linear [out, in] -> kernel [in, out]
  conv1d:  GPT-2's Conv1D stores [in, out] already -> same array
  heads:   nn.Linear [heads*hd, embed] -> [embed, heads, hd]   (q/k/v projections)
  heads_b: bias [heads*hd] -> [heads, hd]
  out:     nn.Linear [embed, heads*hd] -> [heads, hd, embed]
  c_attn:  GPT-2's fused Conv1D [embed, 3*embed] (q|k|v); part 0/1/2 -> [embed, heads, hd]
  c_attn_b: its bias [3*embed]; part -> [heads, hd]
  c_proj:  GPT-2's Conv1D [heads*hd, embed] -> [heads, hd, embed]

Every expected tensor must be present with the right shape and every tensor used
(buffers such as GPT-2's `attn.bias` causal masks excepted), else a ValueError names them.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any

import numpy as np

from coderl_jax.hub import resolve_model_dir
from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.hf import read_hf_tensors

# Non-persistent buffers older checkpoints carry (causal masks, GPT-J's sin/cos table).
_BUFFER = re.compile(r".*\.attn(\.attention)?\.(bias|masked_bias)$|.*embed_positions$"
                     r"|.*rotary_emb\.inv_freq$")

Row = tuple[str, tuple[str, ...], str, int | None]  # (HF name, our path, kind, part)


def _row(hf: str, path: tuple[str, ...], kind: str, part: int | None = None) -> Row:
    return (hf, path, kind, part)


def _layer_rows(config: DecoderConfig, i: int) -> list[Row]:
    fam, t = config.family, config.traits
    ours = (f"layers_{i}",)
    att, mlp = ours + ("attention",), ours + ("mlp",)
    rows: list[Row] = []

    def norm(hf, name):
        rows.append(_row(f"{hf}.weight", ours + (name, "scale"), "copy"))
        if t.norm == "layer":
            rows.append(_row(f"{hf}.bias", ours + (name, "bias"), "copy"))

    if fam == "gpt2":
        p = f"transformer.h.{i}"
        norm(f"{p}.ln_1", "attention_norm")
        norm(f"{p}.ln_2", "mlp_norm")
        for part, name in enumerate(("query", "key", "value")):
            rows.append(_row(f"{p}.attn.c_attn.weight", att + (name, "kernel"), "c_attn", part))
            rows.append(_row(f"{p}.attn.c_attn.bias", att + (name, "bias"), "c_attn_b", part))
        rows += [_row(f"{p}.attn.c_proj.weight", att + ("out", "kernel"), "c_proj"),
                 _row(f"{p}.attn.c_proj.bias", att + ("out", "bias"), "copy"),
                 _row(f"{p}.mlp.c_fc.weight", mlp + ("wi", "kernel"), "conv1d"),
                 _row(f"{p}.mlp.c_fc.bias", mlp + ("wi", "bias"), "copy"),
                 _row(f"{p}.mlp.c_proj.weight", mlp + ("wo", "kernel"), "conv1d"),
                 _row(f"{p}.mlp.c_proj.bias", mlp + ("wo", "bias"), "copy")]
        return rows
    if fam == "gpt_neo":
        p, a = f"transformer.h.{i}", f"transformer.h.{i}.attn.attention"
        norm(f"{p}.ln_1", "attention_norm")
        norm(f"{p}.ln_2", "mlp_norm")
        fc_in, fc_out = f"{p}.mlp.c_fc", f"{p}.mlp.c_proj"
        out = f"{a}.out_proj"
    elif fam == "gptj":
        p, a = f"transformer.h.{i}", f"transformer.h.{i}.attn"
        norm(f"{p}.ln_1", "attention_norm")
        fc_in, fc_out = f"{p}.mlp.fc_in", f"{p}.mlp.fc_out"
        out = f"{a}.out_proj"
    else:  # qwen2
        p, a = f"model.layers.{i}", f"model.layers.{i}.self_attn"
        norm(f"{p}.input_layernorm", "attention_norm")
        norm(f"{p}.post_attention_layernorm", "mlp_norm")
        out = f"{a}.o_proj"
    for name, hf in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
        rows.append(_row(f"{a}.{hf}.weight", att + (name, "kernel"), "heads"))
        if t.qkv_bias:
            rows.append(_row(f"{a}.{hf}.bias", att + (name, "bias"), "heads_b"))
    rows.append(_row(f"{out}.weight", att + ("out", "kernel"), "out"))
    if t.out_bias:
        rows.append(_row(f"{out}.bias", att + ("out", "bias"), "copy"))
    if fam == "qwen2":
        for name, hf in (("wi_gate", "gate_proj"), ("wi_up", "up_proj"), ("wo", "down_proj")):
            rows.append(_row(f"{p}.mlp.{hf}.weight", mlp + (name, "kernel"), "linear"))
    else:
        rows += [_row(f"{fc_in}.weight", mlp + ("wi", "kernel"), "linear"),
                 _row(f"{fc_in}.bias", mlp + ("wi", "bias"), "copy"),
                 _row(f"{fc_out}.weight", mlp + ("wo", "kernel"), "linear"),
                 _row(f"{fc_out}.bias", mlp + ("wo", "bias"), "copy")]
    return rows


def _layout(config: DecoderConfig) -> list[Row]:
    """Every parameter: (Hugging Face tensor, our param path, layout kind, part)."""
    t = config.traits
    root = "model" if config.family == "qwen2" else "transformer"
    embed = f"{root}.embed_tokens" if config.family == "qwen2" else f"{root}.wte"
    rows = [_row(f"{embed}.weight", ("token_embedder", "embedding"), "copy")]
    if t.positions == "learned":
        rows.append(_row(f"{root}.wpe.weight", ("position_embedding",), "copy"))
    for i in range(config.num_layers):
        rows += _layer_rows(config, i)
    final = f"{root}.norm" if config.family == "qwen2" else f"{root}.ln_f"
    rows.append(_row(f"{final}.weight", ("final_norm", "scale"), "copy"))
    if t.norm == "layer":
        rows.append(_row(f"{final}.bias", ("final_norm", "bias"), "copy"))
    if not config.tie_word_embeddings:
        rows.append(_row("lm_head.weight", ("lm_head", "kernel"), "linear"))
        if t.lm_head_bias:
            rows.append(_row("lm_head.bias", ("lm_head", "bias"), "copy"))
    return rows


def _to_ours(kind: str, w: np.ndarray, shape: tuple[int, ...], part: int | None) -> np.ndarray:
    if kind in ("copy", "conv1d"):
        return w
    if kind == "linear":
        return w.T
    if kind in ("heads", "out"):
        return w.T.reshape(shape)
    if kind in ("heads_b", "c_proj"):
        return w.reshape(shape)
    if kind == "c_attn":
        return np.split(w, 3, axis=1)[part].reshape(shape)
    if kind == "c_attn_b":
        return np.split(w, 3)[part].reshape(shape)
    raise ValueError(f"unknown layout kind {kind!r}")


def _to_hf(kind: str, w: np.ndarray) -> np.ndarray:
    if kind in ("copy", "conv1d"):
        return w
    if kind == "linear":
        return w.T
    if kind == "heads":  # [embed, heads, hd] -> [heads*hd, embed]
        return w.reshape(w.shape[0], -1).T
    if kind == "out":  # [heads, hd, embed] -> [embed, heads*hd]
        return w.reshape(-1, w.shape[-1]).T
    if kind in ("heads_b", "c_attn_b"):
        return w.reshape(-1)
    if kind == "c_proj":
        return w.reshape(-1, w.shape[-1])
    if kind == "c_attn":
        return w.reshape(w.shape[0], -1)
    raise ValueError(f"unknown layout kind {kind!r}")


def _param_shapes(config: DecoderConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    import flax.linen as nn
    import jax

    from coderl_jax.models.decoder.model import abstract_variables

    params = nn.meta.unbox(abstract_variables(config))["params"]
    return {tuple(k.key for k in path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def hf_tensors_to_params(config: DecoderConfig, tensors: dict[str, np.ndarray], *,
                         source: str = "checkpoint") -> dict:
    """Hugging Face tensors {name: array} -> our params pytree (float32 numpy)."""
    shapes = _param_shapes(config)
    layout = _layout(config)
    remaining = {k: v for k, v in tensors.items() if not _BUFFER.match(k)}
    embed_name = layout[0][0]
    if config.tie_word_embeddings and "lm_head.weight" in remaining:
        # .bin files (and some safetensors) store the tied head too: accept an exact copy.
        head = remaining.pop("lm_head.weight")
        embed = remaining.get(embed_name)
        if embed is None or head.shape != embed.shape or not np.array_equal(head, embed):
            raise ValueError(f"{source}: config ties the LM head to the embedding "
                             f"(tie_word_embeddings) but lm_head.weight differs from {embed_name}")
    params: dict[str, Any] = {}
    used, missing, bad = set(), [], []
    for hf_name, path, kind, part in layout:
        if path not in shapes:
            raise AssertionError(f"layout names {path} which the model does not have")
        if hf_name not in remaining:
            missing.append(hf_name)
            continue
        w = np.asarray(remaining[hf_name], np.float32)
        used.add(hf_name)
        try:
            value = _to_ours(kind, w, shapes[path], part)
        except ValueError:
            value = None
        if value is None or value.shape != shapes[path]:
            bad.append(f"{hf_name}: shape {tuple(w.shape)} does not give {shapes[path]} "
                       f"({kind})")
            continue
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = np.ascontiguousarray(value)
    extra = sorted(set(remaining) - used)
    problems = []
    if bad:
        problems.append("tensor(s) with the wrong shape: " + "; ".join(bad))
    if missing:
        missing = sorted(set(missing))
        problems.append(f"missing tensor(s) ({len(missing)}): {missing[:8]}"
                        + (" ..." if len(missing) > 8 else ""))
    if extra:
        problems.append(f"unexpected tensor(s) ({len(extra)}): {extra[:8]}"
                        + (" ..." if len(extra) > 8 else ""))
    if problems:
        raise ValueError(f"{source} does not match the {config.family} config: "
                         + " | ".join(problems))
    unused = set(shapes) - {row[1] for row in layout}
    if unused:
        raise AssertionError(f"layout misses model params {sorted(unused)}")
    return params


def params_to_hf_tensors(config: DecoderConfig, params: dict) -> dict[str, np.ndarray]:
    """Our params -> {Hugging Face name: float32 array} (inverse of loading)."""
    parts: dict[str, dict[int, np.ndarray]] = {}
    tensors = {}
    for hf_name, path, kind, part in _layout(config):
        node = params
        for key in path:
            if key not in node:
                raise KeyError(f"params have no {'/'.join(path)} (needed for {hf_name})")
            node = node[key]
        value = _to_hf(kind, np.asarray(node, np.float32))
        if part is None:
            tensors[hf_name] = np.ascontiguousarray(value)
        else:
            parts.setdefault(hf_name, {})[part] = value
    for hf_name, pieces in parts.items():  # GPT-2's fused q|k|v
        tensors[hf_name] = np.ascontiguousarray(
            np.concatenate([pieces[i] for i in range(3)], axis=-1))
    return tensors


def read_config(model_dir: str | os.PathLike, **overrides) -> DecoderConfig:
    """The DecoderConfig of a Hugging Face model directory's config.json."""
    path = pathlib.Path(model_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"no config.json in {model_dir}")
    with open(path) as f:
        return DecoderConfig.from_hf_dict(json.load(f), source=str(path), **overrides)


def load_hf(path_or_hub_id: str | os.PathLike, *, dtype: str | None = None,
            **overrides) -> tuple[DecoderConfig, dict]:
    """Load a GPT-2 / GPT-Neo / GPT-J / Qwen2 directory or hub id -> (config, params).

    Params are jax arrays in the config's param_dtype (float32); `dtype` sets the compute
    dtype of the returned config; `overrides` set other DecoderConfig fields that the
    config.json lacks or that the run changes (e.g. eos_token_id, dropout_rate).
    Weights: safetensors (bf16 widened) or pytorch_model.bin.
    """
    import jax
    import jax.numpy as jnp

    model_dir = resolve_model_dir(path_or_hub_id)
    if dtype is not None:
        overrides["dtype"] = dtype
    config = read_config(model_dir, **overrides)
    params = hf_tensors_to_params(config, read_hf_tensors(model_dir), source=str(model_dir))
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.dtype(config.param_dtype)), params)
    return config, params


def export_hf(config: DecoderConfig, params: dict, out_dir: str | os.PathLike,
              tokenizer=None) -> None:
    """Write config.json + model.safetensors (+ tokenizer files) for
    `transformers.AutoModelForCausalLM.from_pretrained(out_dir)`."""
    from safetensors.numpy import save_file

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "config.json", "w") as f:
        json.dump(config.to_hf_dict(), f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(params_to_hf_tensors(config, params), str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    if tokenizer is not None:
        from coderl_jax.data.tokenizer import save_tokenizer

        save_tokenizer(tokenizer, out_dir)
