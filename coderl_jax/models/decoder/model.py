"""A decoder-only transformer LM (Flax Linen) for GPT-2, GPT-Neo, GPT-J and Qwen2.

    model = DecoderLM(config)
    params = init_params(config, jax.random.key(0))
    logits = model.apply({"params": params}, ids, mask)          # [batch, len, vocab] float32

One network; the family's switches (`config.traits`) choose the norm (LayerNorm / RMSNorm),
the positions (a learned table / RoPE, half-split or interleaved, on all or `rotary_dim`
dims), sequential or parallel (GPT-J) residuals, the MLP (tanh-GELU / SwiGLU), which
projections have biases, whether scores are scaled, global or local (GPT-Neo) layers, and
grouped-query attention (Qwen2). Semantics follow Hugging Face's PyTorch modeling files, which
the parity tests compare against.

Padding and positions. `mask` [batch, len] marks real tokens. Masked tokens are never
attended to, and a token's position is the number of real tokens before it, so a LEFT-padded
row computes exactly what its unpadded sequence computes (this is how Hugging Face
`generate` treats left padding, with `position_ids = cumsum(mask) - 1`), and so does a row
with pads in the middle (a right-padded prompt followed by a program).

Incremental decoding (apply with decode=True, mutable=["cache"]) keeps every shape fixed:

    cache = init_cache(config, params, batch, max_len)
    logits, vars = model.apply({"params": params, "cache": cache}, ids, mask, decode=True,
                               mutable=["cache"])

The cache holds per layer `cached_key`/`cached_value` [batch, kv_heads, max_len, head_dim]
(keys after RoPE), and at the top `cache_index` (the next write position, one scalar for the
batch) and `key_valid` [batch, max_len] (which written positions hold real tokens). A call
of length L writes positions [index, index + L); a whole left-padded prompt can be written in
one call (prefill), then one token per call. Writing past max_len is not checked inside jit
(XLA clamps the write); callers size the cache.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.layers import MASK_VALUE, Dropout, constrain, contract

INIT_STDDEV = 0.02  # Hugging Face's initializer_range for all four families


def _param(module: nn.Module, name: str, init, shape, names, cfg: DecoderConfig):
    return module.param(name, nn.with_logical_partitioning(init, names), shape,
                        jnp.dtype(cfg.param_dtype))


class Dense(nn.Module):
    """x [..., *in] @ kernel [*in, *features] (+ bias [*features]); named, unflattened kernel.

    Uses `layers.contract` (float32 accumulation, CPU-friendly backward) like T5's layers.
    """

    config: DecoderConfig
    features: tuple[int, ...]
    kernel_axes: tuple[str | None, ...]
    use_bias: bool
    num_in: int = 1
    float32_output: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        kernel_shape = tuple(x.shape[x.ndim - self.num_in:]) + tuple(self.features)
        kernel = _param(self, "kernel", jax.nn.initializers.normal(INIT_STDDEV), kernel_shape,
                        self.kernel_axes, cfg)
        dtype = jnp.dtype(cfg.dtype)
        y = contract(jnp.asarray(x, dtype), jnp.asarray(kernel, dtype), self.num_in,
                     self.float32_output)
        if self.use_bias:
            bias = _param(self, "bias", jax.nn.initializers.zeros, tuple(self.features),
                          self.kernel_axes[self.num_in:], cfg)
            y = y + jnp.asarray(bias, y.dtype)
        return y


class Norm(nn.Module):
    """LayerNorm (mean-centred, scale + bias) or RMSNorm (scale only); fp32 statistics."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        d = x.shape[-1]
        scale = _param(self, "scale", jax.nn.initializers.ones, (d,), ("embed",), cfg)
        x32 = jnp.asarray(x, jnp.float32)
        if cfg.traits.norm == "rms":
            y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), -1, keepdims=True)
                                    + cfg.layer_norm_epsilon)
            y = y * jnp.asarray(scale, jnp.float32)
        else:
            mean = jnp.mean(x32, -1, keepdims=True)
            var = jnp.mean(jnp.square(x32 - mean), -1, keepdims=True)
            y = (x32 - mean) * jax.lax.rsqrt(var + cfg.layer_norm_epsilon)
            bias = _param(self, "bias", jax.nn.initializers.zeros, (d,), ("embed",), cfg)
            y = y * jnp.asarray(scale, jnp.float32) + jnp.asarray(bias, jnp.float32)
        return y.astype(jnp.dtype(cfg.dtype))


# ------------------------------------------------------------------------------------------------
# Rotary position embedding
# ------------------------------------------------------------------------------------------------
def rotary_angles(positions: jax.Array, dims: int, theta: float) -> jax.Array:
    """positions [batch, len] int -> angles [batch, len, dims // 2] float32 (pos * inv_freq)."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, dims, 2, dtype=jnp.float32) / dims))
    return positions.astype(jnp.float32)[..., None] * inv_freq


def apply_rotary(x: jax.Array, angles: jax.Array, dims: int, interleaved: bool) -> jax.Array:
    """Rotate the first `dims` features of every head: x [batch, len, heads, head_dim].

    interleaved (GPT-J, "rotate_every_two"): feature pairs (0, 1), (2, 3), ... rotate by
    angle i = pair index. Otherwise (GPT-NeoX / Llama / Qwen2, "rotate_half"): pairs
    (i, i + dims/2). The rest of the head passes through unchanged.
    """
    rot, rest = x[..., :dims].astype(jnp.float32), x[..., dims:]
    sin, cos = jnp.sin(angles)[:, :, None], jnp.cos(angles)[:, :, None]  # [b, l, 1, dims/2]
    if interleaved:
        sin, cos = jnp.repeat(sin, 2, axis=-1), jnp.repeat(cos, 2, axis=-1)
        turned = jnp.stack([-rot[..., 1::2], rot[..., ::2]], axis=-1).reshape(rot.shape)
    else:
        sin, cos = jnp.concatenate([sin, sin], -1), jnp.concatenate([cos, cos], -1)
        half = dims // 2
        turned = jnp.concatenate([-rot[..., half:], rot[..., :half]], axis=-1)
    out = (rot * cos + turned * sin).astype(x.dtype)
    return jnp.concatenate([out, rest], axis=-1) if rest.shape[-1] else out


# ------------------------------------------------------------------------------------------------
# Attention, MLP, layer
# ------------------------------------------------------------------------------------------------
class Attention(nn.Module):
    """Causal self-attention with grouped K/V heads, optional RoPE and a KV cache.

    Queries are grouped [batch, len, kv_heads, group, head_dim] so each K/V head serves
    `num_heads / kv_heads` query heads without materialising repeated keys.
    """

    config: DecoderConfig

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, allowed: jax.Array, *,
                 deterministic: bool, decode: bool, cache_index: jax.Array | None) -> jax.Array:
        """x [batch, len, embed], positions [batch, len], allowed [batch, len, kv_len] bool
        (kv_len = len, or the cache length in decode mode) -> [batch, len, embed]."""
        cfg, traits = self.config, self.config.traits
        h, kvh, d = cfg.num_heads, cfg.kv_heads, cfg.dim_per_head
        proj = functools.partial(Dense, cfg, kernel_axes=("embed", "heads", "kv"),
                                 use_bias=traits.qkv_bias)
        q = proj((h, d), name="query")(x)
        k = proj((kvh, d), name="key")(x)
        v = proj((kvh, d), name="value")(x)
        if cfg.rotary_dims:
            angles = rotary_angles(positions, cfg.rotary_dims, cfg.rope_theta)
            q = apply_rotary(q, angles, cfg.rotary_dims, traits.rotary_interleaved)
            k = apply_rotary(k, angles, cfg.rotary_dims, traits.rotary_interleaved)
        # Heads before length in K/V (and the cache): see layers.MultiHeadAttention.
        k, v = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)
        if decode:
            initialized = self.has_variable("cache", "cached_key")
            cached_key = self.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
            cached_value = self.variable("cache", "cached_value", jnp.zeros, v.shape, v.dtype)
            if initialized:
                start = (0, 0, cache_index, 0)
                cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, k, start)
                cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, v, start)
                k, v = cached_key.value, cached_value.value
        b, length = x.shape[:2]
        q = q.reshape(b, length, kvh, h // kvh, d)
        q = constrain(q, ("batch", "length", "heads", None, "kv"))
        k = constrain(k, ("batch", "heads", "length", "kv"))
        v = constrain(v, ("batch", "heads", "length", "kv"))
        # Scores and softmax in float32 (GPT-Neo upcasts too; bf16 loses the normaliser).
        scores = jnp.einsum("blkgd,bksd->bkgls", q, k, preferred_element_type=jnp.float32)
        if traits.scale_scores:
            scores = scores * jnp.float32(d ** -0.5)
        scores = scores + jnp.where(allowed, 0.0, MASK_VALUE)[:, None, None]
        weights = jax.nn.softmax(scores, axis=-1)
        weights = Dropout(cfg.dropout_rate)(weights, deterministic=deterministic)
        out = jnp.einsum("bkgls,bksd->blkgd", weights.astype(v.dtype), v).reshape(b, length, h, d)
        return Dense(cfg, (cfg.d_model,), ("heads", "kv", "embed"), traits.out_bias, num_in=2,
                     name="out")(out)


class Mlp(nn.Module):
    """tanh-GELU MLP (GPT-2/Neo/J, HF "gelu_new") or SwiGLU (Qwen2)."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        cfg, traits = self.config, self.config.traits
        up = functools.partial(Dense, cfg, (cfg.mlp_dim,), ("embed", "mlp"), traits.mlp_bias)
        if traits.mlp == "swiglu":
            hidden = jax.nn.silu(up(name="wi_gate")(x)) * up(name="wi_up")(x)
        else:
            hidden = jax.nn.gelu(up(name="wi")(x), approximate=True)
        hidden = constrain(hidden, ("batch", "length", "mlp"))
        return Dense(cfg, (cfg.d_model,), ("mlp", "embed"), traits.mlp_bias, name="wo")(hidden)


class DecoderLayer(nn.Module):
    """Pre-norm attention + MLP; sequential (x + attn, then + mlp) or parallel (GPT-J)."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, x, positions, allowed, *, deterministic, decode, cache_index):
        cfg = self.config
        drop = Dropout(cfg.dropout_rate)
        y = Norm(cfg, name="attention_norm")(x)
        attn = Attention(cfg, name="attention")(y, positions, allowed,
                                                deterministic=deterministic, decode=decode,
                                                cache_index=cache_index)
        if cfg.traits.parallel_residual:
            mlp = Mlp(cfg, name="mlp")(y, deterministic=deterministic)
            x = x + drop(attn, deterministic=deterministic) + drop(mlp, deterministic=deterministic)
        else:
            x = x + drop(attn, deterministic=deterministic)
            y = Norm(cfg, name="mlp_norm")(x)
            x = x + drop(Mlp(cfg, name="mlp")(y, deterministic=deterministic),
                         deterministic=deterministic)
        return constrain(x, ("batch", "length", "embed"))


class DecoderLM(nn.Module):
    """Token embedding (+ learned positions), decoder layers, final norm, LM head."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, input_ids: jax.Array, input_mask: jax.Array | None = None, *,
                 deterministic: bool = True, decode: bool = False, return_hidden: bool = False,
                 gather: jax.Array | None = None, head: bool = True):
        """input_ids [batch, len] int, input_mask [batch, len] (1 = real token; None = all).

        Returns logits [batch, len, vocab] float32 (logits[:, t] predict token t + 1), or
        (logits, hidden) with hidden [batch, len, d_model] after the final norm.
        gather [batch, T] int: only the states at these indices go through the LM head
        (logits and hidden are then [batch, T, ...]): training scores program tokens
        without paying the vocab projection for every prompt position.
        head=False returns the (gathered) hidden states alone and creates no LM head
        params (the critic's backbone).
        """
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must have rank 2, got shape {input_ids.shape}")
        cfg, traits = self.config, self.config.traits
        batch, length = input_ids.shape
        if input_mask is not None and input_mask.shape != input_ids.shape:
            raise ValueError(f"input_mask {input_mask.shape} must match input_ids {input_ids.shape}")
        step_valid = (jnp.ones((batch, length), bool) if input_mask is None
                      else input_mask.astype(bool))
        cache_index = None
        query_index = key_index = jnp.arange(length)
        key_valid = step_valid
        real_before = jnp.zeros((batch,), jnp.int32)
        if decode:
            initialized = self.has_variable("cache", "cache_index")
            index_var = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
            valid_var = self.variable("cache", "key_valid", jnp.zeros, (batch, length), bool)
            if initialized:
                cache_index = index_var.value
                real_before = jnp.sum(valid_var.value, axis=1, dtype=jnp.int32)
                key_valid = jax.lax.dynamic_update_slice(valid_var.value, step_valid,
                                                         (0, cache_index))
                valid_var.value = key_valid
                index_var.value = cache_index + length
                query_index = cache_index + jnp.arange(length)
                key_index = jnp.arange(key_valid.shape[1])
        # A token's position counts the real tokens before it: padding anywhere is invisible.
        positions = jnp.maximum(
            real_before[:, None] + jnp.cumsum(step_valid, axis=1, dtype=jnp.int32) - 1, 0)
        distance = query_index[:, None] - key_index[None, :]  # [len, kv_len]
        allowed = (distance >= 0)[None] & key_valid[:, None, :]  # [batch, len, kv_len]
        local_allowed = allowed & (distance < cfg.window_size)[None]

        embed = nn.Embed(cfg.vocab_size, cfg.d_model, dtype=jnp.dtype(cfg.dtype),
                         param_dtype=jnp.dtype(cfg.param_dtype),
                         embedding_init=nn.with_logical_partitioning(
                             jax.nn.initializers.normal(INIT_STDDEV), ("vocab", "embed")),
                         name="token_embedder")
        x = embed(input_ids.astype(jnp.int32))
        if traits.positions == "learned":
            table = _param(self, "position_embedding", jax.nn.initializers.normal(INIT_STDDEV),
                           (cfg.max_position_embeddings, cfg.d_model), (None, "embed"), cfg)
            x = x + jnp.take(jnp.asarray(table, x.dtype), positions, axis=0,
                             mode="clip")
        x = constrain(x, ("batch", "length", "embed"))
        x = Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        for i, kind in enumerate(cfg.layer_kinds):
            x = DecoderLayer(cfg, name=f"layers_{i}")(
                x, positions, local_allowed if kind == "local" else allowed,
                deterministic=deterministic, decode=decode, cache_index=cache_index)
        hidden = Norm(cfg, name="final_norm")(x)
        if gather is not None:
            hidden = jnp.take_along_axis(hidden, gather[..., None].astype(jnp.int32), axis=1)
        if not head:
            return hidden
        if cfg.tie_word_embeddings:
            embedding = jnp.asarray(embed.embedding, hidden.dtype)
            logits = contract(hidden, embedding.T, 1, True)
        else:
            logits = Dense(cfg, (cfg.vocab_size,), ("embed", "vocab"), traits.lm_head_bias,
                           float32_output=True, name="lm_head")(hidden)
        logits = constrain(logits.astype(jnp.float32), ("batch", "length", "vocab"))
        return (logits, hidden) if return_hidden else logits


# ------------------------------------------------------------------------------------------------
# Pure helpers around the module
# ------------------------------------------------------------------------------------------------
def _init_variables(config: DecoderConfig, rng: jax.Array, batch: int = 1, length: int = 4):
    return DecoderLM(config).init({"params": rng}, jnp.ones((batch, length), jnp.int32))


def init_params(config: DecoderConfig, rng: jax.Array) -> dict:
    """Random parameters (HF's initialisation: normal(0.02), zero biases, unit norms) as a
    plain nested dict of arrays."""
    init = jax.jit(_init_variables, static_argnums=(0,))
    return nn.meta.unbox(init(config, rng))["params"]


def abstract_variables(config: DecoderConfig) -> dict:
    """The boxed (LogicallyPartitioned) variables of an init, as ShapeDtypeStructs."""
    return jax.eval_shape(functools.partial(_init_variables, config), jax.random.key(0))


def param_logical_axes(config: DecoderConfig) -> dict:
    """Logical axis names ("vocab", "embed", "heads", "kv", "mlp") of every parameter."""
    return nn.get_partition_spec(abstract_variables(config))["params"]


@functools.cache
def _cache_initializer(config: DecoderConfig, batch: int, max_len: int):
    def fn(params):
        # A decode-mode call on an empty cache only creates it (zeros; nothing is written).
        _, variables = DecoderLM(config).apply(
            {"params": params}, jnp.zeros((batch, max_len), jnp.int32), decode=True,
            mutable=["cache"])
        return variables["cache"]
    return jax.jit(fn)


def init_cache(config: DecoderConfig, params: dict, batch: int, max_len: int) -> dict:
    """An empty decoding cache for `max_len` positions (prompt + new tokens)."""
    if batch <= 0 or max_len <= 0:
        raise ValueError(f"batch and max_len must be positive, got {batch}, {max_len}")
    return _cache_initializer(config, int(batch), int(max_len))(params)
