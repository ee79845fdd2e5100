"""Hugging Face interop: load T5/CodeT5 checkpoints into Flax params, export them back.

    config, params = load_hf("Salesforce/codet5-large-ntp-py")   # hub id (downloads once)
    config, params = load_hf("/path/to/hf_dir")                    # config.json + weights
    (short names such as "codet5-base" and hub ids are resolved by `coderl_jax.hub`)
    export_hf(config, params, "/path/to/out")   # transformers.T5ForConditionalGeneration
                                                # .from_pretrained(out) loads it

One table (`_layout`) names, for every parameter, its Hugging Face tensor and how the
layout differs: PyTorch `nn.Linear` stores [out, in] while our kernels are [in, out], and
our attention kernels keep heads as their own axis ([embed, heads, d_kv]) so they can be
sharded by name. Loading and exporting both read that table, so they cannot drift apart.

Weights are read with `safetensors` (any dtype, bf16 included, widened to float32);
`pytorch_model.bin` (the format of the original CodeT5 uploads) is read with torch when
torch is importable, otherwise the error says how to convert it. torch is never imported
at module import time.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import numpy as np

from coderl_jax.hub import WEIGHT_FILES, resolve_model_dir
from coderl_jax.models.config import T5Config

# Tensors some checkpoints carry that the network never uses (Hugging Face ignores them too).
_IGNORED_TENSORS = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
# Copies of the shared embedding that older checkpoints store under their own names.
_EMBEDDING_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")

# Layout kinds: how a Hugging Face tensor maps to our parameter.
#   copy:   same array (norm scales, relative position embeddings, token embedding)
#   linear: nn.Linear [out, in] -> kernel [in, out]
#   qkv:    nn.Linear [heads*d_kv, embed] -> kernel [embed, heads, d_kv]
#   out:    nn.Linear [embed, heads*d_kv] -> kernel [heads, d_kv, embed]


def _attention(hf_prefix: str, path: tuple[str, ...]) -> list[tuple[str, tuple, str]]:
    return ([(f"{hf_prefix}.{n}.weight", path + (ours, "kernel"), "qkv")
             for n, ours in (("q", "query"), ("k", "key"), ("v", "value"))]
            + [(f"{hf_prefix}.o.weight", path + ("out", "kernel"), "out")])


def _mlp(config: T5Config, hf_prefix: str, path: tuple[str, ...]) -> list[tuple[str, tuple, str]]:
    wis = ("wi_0", "wi_1") if config.is_gated else ("wi",)
    return ([(f"{hf_prefix}.DenseReluDense.{w}.weight", path + ("mlp", w, "kernel"), "linear")
             for w in wis + ("wo",)])


def _layout(config: T5Config) -> list[tuple[str, tuple[str, ...], str]]:
    """(Hugging Face tensor name, our param path, layout kind) for every parameter."""
    rows = [("shared.weight", ("token_embedder", "embedding"), "copy")]
    for stack, n_layers in (("encoder", config.num_layers), ("decoder", config.decoder_layers)):
        rows.append((f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                     (stack, "relpos_bias", "rel_embedding"), "copy"))
        rows.append((f"{stack}.final_layer_norm.weight", (stack, f"{stack}_norm", "scale"),
                     "copy"))
        for i in range(n_layers):
            hf, ours = f"{stack}.block.{i}.layer", (stack, f"layers_{i}")
            if stack == "encoder":
                rows += _attention(f"{hf}.0.SelfAttention", ours + ("attention",))
                rows.append((f"{hf}.0.layer_norm.weight",
                             ours + ("pre_attention_layer_norm", "scale"), "copy"))
                rows += _mlp(config, f"{hf}.1", ours)
                rows.append((f"{hf}.1.layer_norm.weight", ours + ("pre_mlp_layer_norm", "scale"),
                             "copy"))
            else:
                rows += _attention(f"{hf}.0.SelfAttention", ours + ("self_attention",))
                rows.append((f"{hf}.0.layer_norm.weight",
                             ours + ("pre_self_attention_layer_norm", "scale"), "copy"))
                rows += _attention(f"{hf}.1.EncDecAttention", ours + ("encoder_decoder_attention",))
                rows.append((f"{hf}.1.layer_norm.weight",
                             ours + ("pre_cross_attention_layer_norm", "scale"), "copy"))
                rows += _mlp(config, f"{hf}.2", ours)
                rows.append((f"{hf}.2.layer_norm.weight", ours + ("pre_mlp_layer_norm", "scale"),
                             "copy"))
    if not config.tie_word_embeddings:
        rows.append(("lm_head.weight", ("logits_dense", "kernel"), "linear"))
    return rows


def _hf_shape(kind: str, our_shape: tuple[int, ...]) -> tuple[int, ...]:
    if kind == "copy":
        return tuple(our_shape)
    if kind == "linear":
        return tuple(our_shape[::-1])
    if kind == "qkv":  # ours [embed, heads, kv]
        return (our_shape[1] * our_shape[2], our_shape[0])
    if kind == "out":  # ours [heads, kv, embed]
        return (our_shape[2], our_shape[0] * our_shape[1])
    raise ValueError(f"unknown layout kind {kind!r}")


def _to_ours(kind: str, w: np.ndarray, our_shape: tuple[int, ...]) -> np.ndarray:
    if kind == "copy":
        return w
    if kind == "linear":
        return w.T
    if kind == "qkv":
        return w.T.reshape(our_shape)
    if kind == "out":
        return w.T.reshape(our_shape)
    raise ValueError(f"unknown layout kind {kind!r}")


def _to_hf(kind: str, w: np.ndarray) -> np.ndarray:
    if kind == "copy":
        return w
    if kind == "linear":
        return w.T
    if kind == "qkv":  # [embed, heads, kv] -> [heads*kv, embed]
        return w.reshape(w.shape[0], -1).T
    if kind == "out":  # [heads, kv, embed] -> [embed, heads*kv]
        return w.reshape(-1, w.shape[-1]).T
    raise ValueError(f"unknown layout kind {kind!r}")


def _param_shapes(config: T5Config) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Our param path -> shape, from an abstract init (nothing allocated)."""
    import flax.linen as nn
    import jax

    from coderl_jax.models.t5 import abstract_variables

    params = nn.meta.unbox(abstract_variables(config))["params"]
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        flat[tuple(k.key for k in path)] = tuple(leaf.shape)
    return flat


# ------------------------------------------------------------------------------------------------
# Reading files
# ------------------------------------------------------------------------------------------------
def _read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    # framework="flax" rather than safetensors.numpy: numpy has no bfloat16, and bf16
    # checkpoints are common. Everything is widened to float32 here; load_hf casts after.
    with safe_open(str(path), framework="flax") as f:
        return {name: np.asarray(f.get_tensor(name), np.float32) for name in f.keys()}


def _read_torch_bin(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"{path} is a PyTorch checkpoint and torch is not installed. Convert it once with "
            "torch available (e.g. `T5ForConditionalGeneration.from_pretrained(dir)"
            ".save_pretrained(dir)` writes model.safetensors), or `pip install torch`.") from None
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    # .float() first: numpy has no bfloat16.
    return {k: v.detach().float().numpy() for k, v in state.items()}


def read_hf_tensors(model_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of the checkpoint in `model_dir`, by Hugging Face name."""
    model_dir = pathlib.Path(model_dir)
    for name in WEIGHT_FILES:
        path = model_dir / name
        if not path.exists():
            continue
        reader = _read_safetensors if ".safetensors" in name else _read_torch_bin
        if not name.endswith(".index.json"):
            return reader(path)
        with open(path) as f:
            weight_map = json.load(f).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{path}: no 'weight_map' object")
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            if not (model_dir / shard).exists():
                raise FileNotFoundError(f"{path} names shard {shard!r}, missing in {model_dir}")
            tensors.update(reader(model_dir / shard))
        return tensors
    raise FileNotFoundError(f"no weight file in {model_dir}: looked for {list(WEIGHT_FILES)}")


def hf_tensors_to_params(config: T5Config, tensors: dict[str, np.ndarray], *,
                         source: str = "checkpoint") -> dict:
    """Map Hugging Face tensors {name: array} to our params pytree (float32 numpy).

    Every expected tensor must be present with the right shape and every tensor must be
    used; otherwise a ValueError names the tensors (and the expected and actual shapes).
    """
    shapes = _param_shapes(config)
    remaining = dict(tensors)
    if "shared.weight" not in remaining:
        # Some exports keep the embedding only under a stack's name; it is the same matrix.
        for name in _EMBEDDING_COPIES:
            if name in remaining:
                remaining["shared.weight"] = remaining[name]
                break
    shared = remaining.get("shared.weight")
    for name in _IGNORED_TENSORS:
        remaining.pop(name, None)
    for name in _EMBEDDING_COPIES:
        if name in remaining:
            copy = remaining.pop(name)
            if shared is not None and (copy.shape != shared.shape
                                       or not np.array_equal(copy, shared)):
                raise ValueError(f"{source}: {name} differs from shared.weight; T5 ties them")
    layout = _layout(config)
    if config.tie_word_embeddings and "lm_head.weight" in remaining:
        # PyTorch .bin files store the tied head as its own tensor; accept an exact copy only.
        head = remaining.pop("lm_head.weight")
        if shared is None or head.shape != shared.shape or not np.array_equal(head, shared):
            raise ValueError(
                f"{source}: config ties the LM head to the embedding (v1.0, "
                "tie_word_embeddings/scale_decoder_outputs true) but lm_head.weight differs "
                "from shared.weight")
    if not config.tie_word_embeddings and "lm_head.weight" not in remaining and shared is not None:
        # Hugging Face ties a missing head to the embedding (without the v1.0 rescale).
        remaining["lm_head.weight"] = shared

    params: dict[str, Any] = {}
    missing, bad_shapes = [], []
    for hf_name, path, kind in layout:
        if path not in shapes:
            raise AssertionError(f"layout names {path} which the model does not have")
        if hf_name not in remaining:
            missing.append(hf_name)
            continue
        w = np.asarray(remaining.pop(hf_name))
        expected = _hf_shape(kind, shapes[path])
        if tuple(w.shape) != expected:
            bad_shapes.append(f"{hf_name}: expected shape {expected}, got {tuple(w.shape)}")
            continue
        value = np.ascontiguousarray(_to_ours(kind, w.astype(np.float32), shapes[path]))
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    problems = []
    if bad_shapes:
        problems.append("tensor(s) with the wrong shape: " + "; ".join(bad_shapes))
    if missing:
        problems.append(f"missing tensor(s) ({len(missing)}): {missing[:8]}"
                        + (" ..." if len(missing) > 8 else ""))
    if remaining:
        extra = sorted(remaining)
        problems.append(f"unexpected tensor(s) ({len(extra)}): {extra[:8]}"
                        + (" ..." if len(extra) > 8 else ""))
    if problems:
        raise ValueError(f"{source} does not match the T5 config: " + " | ".join(problems))
    unused = set(shapes) - {path for _, path, _ in layout}
    if unused:
        raise AssertionError(f"layout misses model params {sorted(unused)}")
    return params


def load_hf(path_or_hub_id: str | os.PathLike, *,
            dtype: str | None = None) -> tuple[T5Config, dict]:
    """Load a Hugging Face T5/CodeT5 model directory or hub id.

    Returns (config, params) with params a nested dict of jax arrays in the config's
    param_dtype (float32). `dtype` (e.g. "bfloat16") sets the activation dtype of the
    returned config; parameters stay float32 so training and export keep full precision.
    """
    import jax
    import jax.numpy as jnp

    model_dir = resolve_model_dir(path_or_hub_id)
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"no config.json in {model_dir}")
    with open(config_path) as f:
        hf_config = json.load(f)
    overrides = {} if dtype is None else {"dtype": dtype}
    config = T5Config.from_hf_dict(hf_config, source=str(config_path), **overrides)
    tensors = read_hf_tensors(model_dir)
    params = hf_tensors_to_params(config, tensors, source=str(model_dir))
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.dtype(config.param_dtype)), params)
    return config, params


def params_to_hf_tensors(config: T5Config, params: dict) -> dict[str, np.ndarray]:
    """Our params -> {Hugging Face name: float32 numpy array} (inverse of loading)."""
    tensors = {}
    for hf_name, path, kind in _layout(config):
        node = params
        for key in path:
            if key not in node:
                raise KeyError(f"params have no {'/'.join(path)} (needed for {hf_name})")
            node = node[key]
        tensors[hf_name] = np.ascontiguousarray(_to_hf(kind, np.asarray(node, np.float32)))
    return tensors


def export_hf(config: T5Config, params: dict, out_dir: str | os.PathLike,
              tokenizer=None) -> None:
    """Write config.json + model.safetensors (+ the tokenizer's files when given) so that
    `transformers.T5ForConditionalGeneration.from_pretrained(out_dir)` loads the model."""
    from safetensors.numpy import save_file

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = params_to_hf_tensors(config, params)
    with open(out_dir / "config.json", "w") as f:
        json.dump(config.to_hf_dict(), f, indent=2, sort_keys=True)
        f.write("\n")
    # transformers refuses safetensors files without a framework tag.
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        from coderl_jax.data.tokenizer import save_tokenizer

        save_tokenizer(tokenizer, out_dir)
