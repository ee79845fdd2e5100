"""The T5 encoder-decoder (Flax Linen), used as pure `apply(params, ...)` functions.

    model = T5(config)
    params = init_params(config, jax.random.key(0))
    logits = model.apply({"params": params}, input_ids, decoder_input_ids)     # teacher forcing
    encoded = model.apply({"params": params}, input_ids, method=T5.encode)

Incremental decoding keeps every shape fixed, so a whole sampling loop can live inside one
`jax.lax.while_loop`/`scan` under one jit:

    cache = init_cache(config, params, batch, max_len, encoded, input_mask)
    logits, vars = model.apply({"params": params, "cache": cache}, encoded, input_mask,
                               tok[:, None], decode=True, method=T5.decode, mutable=["cache"])
    cache = vars["cache"]

The cache holds, per decoder layer, the self-attention keys/values [batch, heads, max_len,
d_kv] and the cross-attention keys/values [batch, heads, src_len, d_kv] (projected once
from `encoded` in `init_cache`); the decoder stack holds the write position `cache_index`
(a scalar shared by the batch) and `key_valid` [batch, max_len], which decoder positions
may be attended to. A decode step of length L writes positions [index, index + L); its
queries see keys at positions <= their own that were marked valid. Prefixes of different
lengths can therefore share one batch by left-padding them with `decoder_mask = 0` at the
pads: relative positions are unchanged by a common shift and the pads are never attended.
Writing past `max_len` is not checked inside jit (XLA clamps the write); callers size the
cache for prefix + new tokens.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from coderl_jax.models.config import T5Config
from coderl_jax.models.layers import (
    MASK_VALUE,
    DecoderLayer,
    DenseGeneral,
    Dropout,
    EncoderLayer,
    RelativePositionBias,
    RMSNorm,
    constrain,
    contract,
)


def _check_rank(name: str, x, rank: int) -> None:
    if x is not None and jnp.ndim(x) != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {jnp.shape(x)}")


def _mask_to_bias(allowed: jax.Array) -> jax.Array:
    """Boolean `allowed` -> additive float32 bias: 0 where allowed, MASK_VALUE elsewhere."""
    return jnp.where(allowed, 0.0, MASK_VALUE).astype(jnp.float32)


class Encoder(nn.Module):
    """Stack of bidirectional self-attention layers over embedded source tokens."""

    config: T5Config

    @nn.compact
    def __call__(self, x: jax.Array, input_mask: jax.Array, *,
                 deterministic: bool) -> jax.Array:
        """x [batch, src_len, embed] (embedded), input_mask [batch, src_len] -> encoded.

        Padding is masked on the key side only (as in Hugging Face T5): pad positions still
        get outputs, computed from the real tokens, and nobody attends to them.
        """
        cfg = self.config
        positions = jnp.arange(x.shape[1])
        # Layer 0 owns the relative position bias; every later layer reuses it.
        bias = RelativePositionBias(cfg, bidirectional=True, name="relpos_bias")(
            positions, positions)
        bias = bias + _mask_to_bias(input_mask[:, None, None, :].astype(bool))
        x = Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        for i in range(cfg.num_layers):
            x = EncoderLayer(cfg, name=f"layers_{i}")(x, bias, deterministic=deterministic)
        x = RMSNorm(cfg, name="encoder_norm")(x)
        return Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class Decoder(nn.Module):
    """Stack of causal self-attention + cross-attention layers; owns the decode position."""

    config: T5Config

    @nn.compact
    def __call__(self, x: jax.Array, encoded: jax.Array | None, input_mask: jax.Array,
                 decoder_mask: jax.Array | None, *, deterministic: bool,
                 decode: bool) -> jax.Array:
        """x [batch, tgt_len, embed] (embedded) -> hidden [batch, tgt_len, embed].

        decoder_mask [batch, tgt_len] marks decoder positions that may be attended to (key
        side, combined with the causal mask); None means all of them.
        """
        cfg = self.config
        batch, length = x.shape[:2]
        step_valid = (jnp.ones((batch, length), bool) if decoder_mask is None
                      else decoder_mask.astype(bool))
        cache_index = None
        query_positions = key_positions = jnp.arange(length)
        key_valid = step_valid
        if decode:
            initialized = self.has_variable("cache", "cache_index")
            index_var = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
            valid_var = self.variable("cache", "key_valid", jnp.zeros, (batch, length), bool)
            if initialized:  # a decode step; otherwise this call only creates the cache
                cache_index = index_var.value
                max_len = valid_var.value.shape[1]
                key_valid = jax.lax.dynamic_update_slice(valid_var.value, step_valid,
                                                         (0, cache_index))
                valid_var.value = key_valid
                index_var.value = cache_index + length
                query_positions = cache_index + jnp.arange(length)
                key_positions = jnp.arange(max_len)
        causal = key_positions[None, :] <= query_positions[:, None]  # [q, k]
        allowed = causal[None, None] & key_valid[:, None, None, :]  # [batch, 1, q, k]
        self_bias = RelativePositionBias(cfg, bidirectional=False, name="relpos_bias")(
            query_positions, key_positions) + _mask_to_bias(allowed)
        cross_bias = _mask_to_bias(input_mask[:, None, None, :].astype(bool))

        x = Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        for i in range(cfg.decoder_layers):
            x = DecoderLayer(cfg, name=f"layers_{i}")(
                x, encoded, self_bias, cross_bias, deterministic=deterministic,
                decode=decode, cache_index=cache_index)
        x = RMSNorm(cfg, name="decoder_norm")(x)
        return Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class T5(nn.Module):
    """T5 encoder-decoder with a shared token embedding and an LM head.

    v1.0 (`tie_word_embeddings=True`): logits = (hidden * d_model**-0.5) @ embedding.T.
    v1.1 (False): logits = hidden @ logits_dense, a separate [embed, vocab] kernel.
    """

    config: T5Config

    def setup(self):
        cfg = self.config
        self.token_embedder = nn.Embed(
            cfg.vocab_size, cfg.d_model, dtype=jnp.dtype(cfg.dtype),
            param_dtype=jnp.dtype(cfg.param_dtype),
            embedding_init=nn.with_logical_partitioning(
                jax.nn.initializers.normal(stddev=1.0), ("vocab", "embed")))
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if not cfg.tie_word_embeddings:
            self.logits_dense = DenseGeneral((cfg.vocab_size,), ("embed", "vocab"), stddev=1.0,
                                             dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                                             float32_output=True)

    def encode(self, input_ids: jax.Array, input_mask: jax.Array | None = None, *,
               deterministic: bool = True) -> jax.Array:
        """input_ids [batch, src_len] int -> encoded [batch, src_len, d_model].

        input_mask [batch, src_len] (1 = real token); None -> input_ids != pad_token_id.
        """
        _check_rank("input_ids", input_ids, 2)
        _check_rank("input_mask", input_mask, 2)
        if input_mask is None:
            input_mask = input_ids != self.config.pad_token_id
        x = self.token_embedder(input_ids.astype(jnp.int32))
        x = constrain(x, ("batch", "length", "embed"))
        return self.encoder(x, input_mask, deterministic=deterministic)

    def decode(self, encoded: jax.Array | None, input_mask: jax.Array,
               decoder_input_ids: jax.Array, decoder_mask: jax.Array | None = None, *,
               deterministic: bool = True, decode: bool = False, return_hidden: bool = False):
        """Decoder + LM head.

        encoded [batch, src_len, d_model] (may be None in decode mode once the cache holds
        the cross-attention keys/values), input_mask [batch, src_len],
        decoder_input_ids [batch, tgt_len] (shifted right: they start with
        decoder_start_token_id), decoder_mask [batch, tgt_len] or None (causal only:
        padding cannot be inferred from ids because the start token is the pad id).
        With decode=True the step's tokens are written into the "cache" collection
        (apply with mutable=["cache"]); tgt_len is usually 1 but a longer chunk (e.g. a
        seed prefix) is allowed.

        Returns logits [batch, tgt_len, vocab] float32, or (logits, hidden) with hidden
        [batch, tgt_len, d_model] the final decoder states after the final layer norm.
        """
        _check_rank("encoded", encoded, 3)
        _check_rank("input_mask", input_mask, 2)
        _check_rank("decoder_input_ids", decoder_input_ids, 2)
        _check_rank("decoder_mask", decoder_mask, 2)
        cfg = self.config
        y = self.token_embedder(decoder_input_ids.astype(jnp.int32))
        y = constrain(y, ("batch", "length", "embed"))
        hidden = self.decoder(y, encoded, input_mask, decoder_mask,
                              deterministic=deterministic, decode=decode)
        if cfg.tie_word_embeddings:
            # v1.0 rescales before reusing the embedding as the output projection.
            scaled = hidden * jnp.asarray(cfg.d_model ** -0.5, hidden.dtype)
            embedding = jnp.asarray(self.token_embedder.embedding, hidden.dtype)
            # [b, l, e] . [e, v]: the transpose folds into the forward matmul; `contract`
            # lays out the embedding gradient (the largest of the step) for the CPU library.
            logits = contract(scaled, embedding.T, 1, True)
        else:
            logits = self.logits_dense(hidden)
        logits = constrain(logits.astype(jnp.float32), ("batch", "length", "vocab"))
        if return_hidden:
            return logits, hidden
        return logits

    def __call__(self, input_ids: jax.Array, decoder_input_ids: jax.Array,
                 input_mask: jax.Array | None = None, decoder_mask: jax.Array | None = None,
                 *, deterministic: bool = True, return_hidden: bool = False):
        """Teacher-forced forward: encode + decode. Shapes as in `encode` and `decode`."""
        if input_mask is None:
            input_mask = input_ids != self.config.pad_token_id
        encoded = self.encode(input_ids, input_mask, deterministic=deterministic)
        return self.decode(encoded, input_mask, decoder_input_ids, decoder_mask,
                           deterministic=deterministic, return_hidden=return_hidden)


# ------------------------------------------------------------------------------------------------
# Pure helpers around the module
# ------------------------------------------------------------------------------------------------
def _init_variables(config: T5Config, rng: jax.Array, batch: int, src_len: int, tgt_len: int):
    ids = jnp.ones((batch, src_len), jnp.int32)
    dec = jnp.ones((batch, tgt_len), jnp.int32)
    return T5(config).init({"params": rng}, ids, dec)


def init_params(config: T5Config, rng: jax.Array, batch: int = 1, src_len: int = 8,
                tgt_len: int = 8) -> dict:
    """Random parameters as a plain nested dict of arrays (logical-axis metadata removed).

    The initialisers follow Hugging Face's T5 (normal with std 1.0 for embeddings and the
    untied head, d_model**-0.5 / (d_model*d_kv)**-0.5 / d_ff**-0.5 for projections).
    """
    init = jax.jit(_init_variables, static_argnums=(0, 2, 3, 4))
    return nn.meta.unbox(init(config, rng, batch, src_len, tgt_len))["params"]


def abstract_variables(config: T5Config) -> dict:
    """The boxed (LogicallyPartitioned) variables of an init, as ShapeDtypeStructs."""
    return jax.eval_shape(
        functools.partial(_init_variables, config, batch=1, src_len=2, tgt_len=2),
        jax.random.key(0))


def param_logical_axes(config: T5Config) -> dict:
    """Logical axis names of every parameter: the params pytree with a PartitionSpec of
    logical names ("vocab", "embed", "heads", "kv", "mlp", "relpos_buckets") per leaf.
    Computed from an abstract init (no arrays allocated)."""
    return nn.get_partition_spec(abstract_variables(config))["params"]


@functools.cache
def _cache_initializer(config: T5Config, max_decode_length: int):
    def fn(params, encoded, input_mask):
        dummy = jnp.full((encoded.shape[0], max_decode_length), config.decoder_start_token_id,
                         jnp.int32)
        # A decode-mode call on an empty cache only creates it: zeros for self-attention,
        # projected encoder states for cross-attention. The logits are discarded, and under
        # jit XLA drops the computation that produced them.
        _, variables = T5(config).apply({"params": params}, encoded, input_mask, dummy,
                                        decode=True, method=T5.decode, mutable=["cache"])
        return variables["cache"]
    return jax.jit(fn)


def init_cache(config: T5Config, params: dict, batch: int, max_decode_length: int,
               encoded: jax.Array, input_mask: jax.Array) -> dict:
    """An empty decoding cache for `max_decode_length` decoder positions.

    encoded [batch, src_len, d_model], input_mask [batch, src_len]. Returns the "cache"
    collection: per layer self-attention K/V zeros [batch, heads, max_len, d_kv] and
    cross-attention K/V [batch, heads, src_len, d_kv] computed from `encoded`; decoder
    `cache_index` = 0 and `key_valid` [batch, max_len] all False.
    """
    if encoded.ndim != 3 or encoded.shape[0] != batch or encoded.shape[2] != config.d_model:
        raise ValueError(f"encoded must have shape [batch={batch}, src_len, "
                         f"d_model={config.d_model}], got {encoded.shape}")
    if input_mask.shape != encoded.shape[:2]:
        raise ValueError(f"input_mask must have shape {encoded.shape[:2]}, got {input_mask.shape}")
    if max_decode_length <= 0:
        raise ValueError(f"max_decode_length must be positive, got {max_decode_length}")
    return _cache_initializer(config, int(max_decode_length))(params, encoded, input_mask)
