"""T5 building blocks (Flax Linen): RMS norm, relative position bias, attention, MLP.

Semantics follow Hugging Face `modeling_t5.py` (the reference our parity tests compare to):
no biases anywhere, no 1/sqrt(d_kv) scaling of attention scores (T5 folds it into the query
initialisation), RMS layer norm without mean subtraction, and a relative position bias that
only the first layer of each stack owns and every later layer reuses.

Every parameter carries logical axis names ("vocab", "embed", "heads", "kv", "mlp",
"relpos_buckets") and large activations are constrained by name ("batch", "length", ...);
`coderl_jax.partitioning` maps those names to mesh axes. Nothing here knows about devices.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.models.config import T5Config

# Added to attention scores where attention is not allowed. Finite (not -inf) so that a row
# with every key masked (e.g. a left-padding step) gives a uniform distribution, not NaN.
MASK_VALUE = -1e9

Initializer = jax.nn.initializers.Initializer


def _dtype(name: str):
    return jnp.dtype(name)


def _normal(stddev: float) -> Initializer:
    return jax.nn.initializers.normal(stddev=stddev)


def _partitioned(init: Initializer, names: tuple[str | None, ...]) -> Initializer:
    return nn.with_logical_partitioning(init, names)


def constrain(x: jax.Array, names: tuple[str | None, ...]) -> jax.Array:
    """Sharding hint by logical names; a no-op unless a mesh and axis rules are active."""
    return nn.with_logical_constraint(x, names)


# ------------------------------------------------------------------------------------------------
# Relative position buckets
# ------------------------------------------------------------------------------------------------
@functools.cache
def relative_position_bucket_table(num_buckets: int, max_distance: int,
                                   bidirectional: bool) -> tuple[np.ndarray, int]:
    """Bucket of every relative position in [-max_distance, max_distance], as a lookup table.

    Returns (table [2 * max_distance + 1] int32, offset) with
    bucket(memory_pos - query_pos = r) = table[clip(r, -max_distance, max_distance) + offset].
    Positions beyond +-max_distance all fall in the last bucket of their side, so the table
    is exact for any distance.

    Why a host-side table: the log-spaced buckets truncate a float32 logarithm, and at
    distances like 16, 32, 64 the value lands on an integer, where a 1-ulp difference
    between two `log` implementations (PyTorch vs XLA CPU vs GPU) moves a position to the
    neighbouring bucket. Computing the table once with numpy float32, operation for
    operation as Hugging Face does, makes the buckets integers that every backend shares.
    """
    relative_position = np.arange(-max_distance, max_distance + 1, dtype=np.int64)
    buckets = np.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).astype(np.int64) * num_buckets
        relative_position = np.abs(relative_position)
    else:
        relative_position = -np.minimum(relative_position, 0)
    # Half of the buckets are exact distances, the other half log-spaced up to max_distance.
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    with np.errstate(divide="ignore"):  # log(0) in the branch that `is_small` discards
        scaled = (np.log(relative_position.astype(np.float32) / np.float32(max_exact))
                  / np.float32(math.log(max_distance / max_exact))
                  * np.float32(num_buckets - max_exact))
    large = max_exact + np.where(is_small, 0, scaled).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    buckets += np.where(is_small, relative_position, large)
    table = buckets.astype(np.int32)
    table.setflags(write=False)  # shared by every caller through the lru_cache
    return table, max_distance


def relative_position_buckets(query_positions: jax.Array, key_positions: jax.Array, *,
                              num_buckets: int, max_distance: int,
                              bidirectional: bool) -> jax.Array:
    """Buckets [query_len, key_len] for int positions query_positions [q], key_positions [k]."""
    table, offset = relative_position_bucket_table(num_buckets, max_distance, bidirectional)
    relative = key_positions[None, :] - query_positions[:, None]
    return jnp.asarray(table)[jnp.clip(relative, -max_distance, max_distance) + offset]


class RelativePositionBias(nn.Module):
    """Learned per-head scalar bias for each relative-position bucket."""

    config: T5Config
    bidirectional: bool

    @nn.compact
    def __call__(self, query_positions: jax.Array, key_positions: jax.Array) -> jax.Array:
        """query_positions [q], key_positions [k] int32 -> bias [1, heads, q, k] float32."""
        cfg = self.config
        embedding = self.param(
            "rel_embedding",
            _partitioned(_normal(cfg.d_model ** -0.5), ("relpos_buckets", "heads")),
            (cfg.relative_attention_num_buckets, cfg.num_heads), _dtype(cfg.param_dtype))
        buckets = relative_position_buckets(
            query_positions, key_positions, num_buckets=cfg.relative_attention_num_buckets,
            max_distance=cfg.relative_attention_max_distance, bidirectional=self.bidirectional)
        values = jnp.asarray(embedding, jnp.float32)[buckets]  # [q, k, heads]
        return jnp.transpose(values, (2, 0, 1))[None]


# ------------------------------------------------------------------------------------------------
# Dropout
# ------------------------------------------------------------------------------------------------
def _mix32(x: jax.Array) -> jax.Array:
    """A bijective 32-bit integer mixer (the "lowbias32" constants of C. Wellons' hash
    prospector): every input bit flips each output bit with probability close to 1/2."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def dropout_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform uint32 bits of `shape` for dropout masks: a counter-based hash.

    Two 32-bit seeds are drawn from `key` with the key's own generator (threefry by
    default); every element then hashes its flat index with them, counter-mode, as Philox
    does for PyTorch's dropout. That is an elementwise integer expression XLA fuses into the
    mask itself, ~15x cheaper on CPU than drawing each element's bits with threefry (which
    made dropout a third of a training step), and it is the same for any sharding of the
    array (each shard hashes its own indices).
    """
    size = math.prod(shape)
    if size >= 2 ** 32:  # flat indices must be distinct uint32s
        return jax.random.bits(key, shape, jnp.uint32)
    seeds = jax.random.bits(key, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, size).reshape(shape) if shape else jnp.uint32(0)
    return _mix32(_mix32(index ^ seeds[0]) + seeds[1])


class Dropout(nn.Module):
    """Inverted dropout, as `flax.linen.Dropout` (drop with probability `rate`, scale the
    kept values by 1 / (1 - rate)), with masks from `dropout_bits` and the "dropout" rng."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        bits = dropout_bits(self.make_rng("dropout"), x.shape)
        # P(bits < threshold) = threshold / 2**32 = rate up to 2**-32.
        threshold = jnp.uint32(min(round(self.rate * 2 ** 32), 2 ** 32 - 1))
        scale = jnp.asarray(1.0 / (1.0 - self.rate), x.dtype)
        return jnp.where(bits >= threshold, x * scale, jnp.zeros((), x.dtype))


# ------------------------------------------------------------------------------------------------
# Norm, MLP, attention
# ------------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """T5 layer norm: x / sqrt(mean(x^2) + eps) * scale; no mean, no bias (fp32 statistics)."""

    config: T5Config

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x [..., embed] -> [..., embed] in the compute dtype."""
        cfg = self.config
        scale = self.param("scale", _partitioned(jax.nn.initializers.ones, ("embed",)),
                           (x.shape[-1],), _dtype(cfg.param_dtype))
        x32 = jnp.asarray(x, jnp.float32)
        variance = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
        y = x32 * jax.lax.rsqrt(variance + cfg.layer_norm_epsilon)
        return (y * jnp.asarray(scale, jnp.float32)).astype(_dtype(cfg.dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def contract(x: jax.Array, kernel: jax.Array, num_in: int = 1,
             float32_output: bool = False) -> jax.Array:
    """x [*batch, *in] . kernel [*in, *features] -> [*batch, *features], a matmul whose
    backward pass is laid out for XLA's CPU matmul library (see `_contract_bwd`).

    Products always accumulate in float32 (`preferred_element_type`); the result is cast
    back to the inputs' dtype unless float32_output (logits). For bf16 inputs that is also
    the form XLA's CPU library runs on the bf16 matrix units (AMX on recent Xeons, ~5x a
    bf16-out dot), and every dot of the backward pass keeps it. Gradients come back in the
    dtype of x and kernel.
    """
    y = jax.lax.dot_general(
        x, kernel, ((tuple(range(x.ndim - num_in, x.ndim)), tuple(range(num_in))), ((), ())),
        preferred_element_type=jnp.float32)
    return y if float32_output else y.astype(jnp.result_type(x, kernel))


def _contract_fwd(x, kernel, num_in, float32_output):
    return contract(x, kernel, num_in, float32_output), (x, kernel)


def _kernel_grad(x: jax.Array, g: jax.Array, num_in: int) -> jax.Array:
    """x [*batch, *in], g [*batch, *features] -> x^T . g [*in, *features] (any backend)."""
    batch = tuple(range(x.ndim - num_in))
    return jax.lax.dot_general(x, g, ((batch, batch), ((), ())),
                               preferred_element_type=jnp.float32)


def _kernel_grad_cpu(x: jax.Array, g: jax.Array, num_in: int) -> jax.Array:
    """`_kernel_grad` laid out for XLA's CPU matmul library.

    Both operands contract their leading axes, a form that library does not take: left to
    itself XLA folds any transpose into the dot and copies g (usually the larger) into a
    transposed layout for a generic, slower dot. Here the smaller of x and g is transposed
    explicitly (an optimization barrier keeps it so) and the product is a plain
    [m, k] x [k, n] matmul. Accelerators' libraries take transposed operands as they are,
    so `contract` uses this on CPU only.
    """
    nb = x.ndim - num_in
    nf = g.ndim - nb
    batch = tuple(range(nb))
    if x.size <= g.size:
        x_t = jax.lax.optimization_barrier(
            jnp.transpose(x, tuple(range(nb, x.ndim)) + batch))  # [*in, *batch]
        return jax.lax.dot_general(x_t, g, ((tuple(range(num_in, x_t.ndim)), batch), ((), ())),
                                   preferred_element_type=jnp.float32)
    # (g^T . x)^T: transposes g and then the kernel-sized result.
    g_t = jax.lax.optimization_barrier(
        jnp.transpose(g, tuple(range(nb, g.ndim)) + batch))  # [*features, *batch]
    dk_t = jax.lax.dot_general(g_t, x, ((tuple(range(nf, g_t.ndim)), batch), ((), ())),
                               preferred_element_type=jnp.float32)
    # Kept as computed: folded into the dot, the transpose below makes it a form the
    # library does not take again.
    dk_t = jax.lax.optimization_barrier(dk_t)
    return jnp.transpose(dk_t, tuple(range(nf, nf + num_in)) + tuple(range(nf)))


def _contract_bwd(num_in, float32_output, residuals, g):
    x, kernel = residuals
    g = g.astype(x.dtype)
    nb = x.ndim - num_in  # batch dims
    # dx = g . kernel^T over the feature dims: [*batch, *features] x [*in, *features].
    dx = jax.lax.dot_general(
        g, kernel, ((tuple(range(nb, g.ndim)), tuple(range(num_in, kernel.ndim))), ((), ())),
        preferred_element_type=jnp.float32)
    dk = jax.lax.platform_dependent(
        x, g, cpu=functools.partial(_kernel_grad_cpu, num_in=num_in),
        default=functools.partial(_kernel_grad, num_in=num_in))
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


contract.defvjp(_contract_fwd, _contract_bwd)


class DenseGeneral(nn.Module):
    """A bias-free linear map over the trailing `num_in` axes, with a named, unflattened kernel.

    x [..., *in_dims] @ kernel [*in_dims, *features] -> [..., *features]. Written out
    rather than using `nn.DenseGeneral`, whose initialiser builds a flattened 2-D kernel and
    reshapes it: its rank then disagrees with the kernel's logical axis names, which fails
    as soon as a mesh is active.
    """

    features: tuple[int, ...]
    kernel_axes: tuple[str | None, ...]
    stddev: float
    num_in: int = 1
    dtype: str = "float32"
    param_dtype: str = "float32"
    float32_output: bool = False  # accumulate and return in float32 (the LM head's logits)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_dims = tuple(x.shape[x.ndim - self.num_in:])
        kernel_shape = in_dims + tuple(self.features)
        if len(kernel_shape) != len(self.kernel_axes):
            raise ValueError(f"{self.name}: kernel {kernel_shape} needs {len(kernel_shape)} "
                             f"axis names, got {self.kernel_axes}")
        kernel = self.param("kernel", _partitioned(_normal(self.stddev), self.kernel_axes),
                            kernel_shape, _dtype(self.param_dtype))
        dtype = _dtype(self.dtype)
        return contract(jnp.asarray(x, dtype), jnp.asarray(kernel, dtype), self.num_in,
                        self.float32_output)


def _dense(features, num_in, names, stddev, cfg: T5Config, name: str) -> DenseGeneral:
    features = features if isinstance(features, tuple) else (features,)
    return DenseGeneral(features, names, stddev, num_in=num_in, dtype=cfg.dtype,
                        param_dtype=cfg.param_dtype, name=name)


class MlpBlock(nn.Module):
    """Feed-forward: ReLU (v1.0) or gated tanh-GELU (v1.1, HF "gelu_new")."""

    config: T5Config

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        """x [batch, length, embed] -> [batch, length, embed]."""
        cfg = self.config
        in_std, out_std = cfg.d_model ** -0.5, cfg.d_ff ** -0.5
        if cfg.is_gated:
            gate = _dense(cfg.d_ff, 1, ("embed", "mlp"), in_std, cfg, "wi_0")(x)
            linear = _dense(cfg.d_ff, 1, ("embed", "mlp"), in_std, cfg, "wi_1")(x)
            h = jax.nn.gelu(gate, approximate=True) * linear
        else:
            h = jax.nn.relu(_dense(cfg.d_ff, 1, ("embed", "mlp"), in_std, cfg, "wi")(x))
        h = constrain(h, ("batch", "length", "mlp"))
        h = Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
        return _dense(cfg.d_model, 1, ("mlp", "embed"), out_std, cfg, "wo")(h)


class MultiHeadAttention(nn.Module):
    """T5 attention (no score scaling, additive bias), optionally with a key/value cache.

    Cache layout (collection "cache"), for incremental decoding:
      self-attention:  cached_key, cached_value [batch, heads, max_len, d_kv]; step inputs
                       are written at `cache_index` (owned by the decoder stack, shared by
                       all layers so there is one position counter).
      cross-attention: cached_key, cached_value [batch, heads, src_len, d_kv], projected
                       from the encoder output once, when the cache is created.
    Heads before length: a decode step's attention contracts each head's [len, d_kv] block,
    and with length outermost XLA would transpose every layer's whole cache on every step.
    """

    config: T5Config
    is_cross_attention: bool = False

    @nn.compact
    def __call__(self, inputs_q: jax.Array, inputs_kv: jax.Array | None, bias: jax.Array, *,
                 deterministic: bool, decode: bool = False,
                 cache_index: jax.Array | None = None) -> jax.Array:
        """Attend from inputs_q [batch, q_len, embed] to inputs_kv [batch, kv_len, embed].

        bias: [batch or 1, heads or 1, q_len, kv_len] float32, added to the scores (relative
        position bias plus MASK_VALUE where attention is not allowed). In decode mode kv_len
        is the cache length and `inputs_kv` may be None for cross-attention once cached.
        Returns [batch, q_len, embed].
        """
        cfg = self.config
        h, d = cfg.num_heads, cfg.d_kv
        q = _dense((h, d), 1, ("embed", "heads", "kv"), (cfg.d_model * d) ** -0.5, cfg,
                   "query")(inputs_q)
        key_proj = _dense((h, d), 1, ("embed", "heads", "kv"), cfg.d_model ** -0.5, cfg, "key")
        value_proj = _dense((h, d), 1, ("embed", "heads", "kv"), cfg.d_model ** -0.5, cfg,
                            "value")

        def heads_first(x):  # [batch, len, heads, d_kv] -> [batch, heads, len, d_kv]
            return jnp.swapaxes(x, 1, 2)

        if decode and self.is_cross_attention:
            # Cross-attention keys/values depend only on the encoder output: project them
            # once, when the cache is created, and only read them on every later step.
            if self.has_variable("cache", "cached_key"):
                k = self.variable("cache", "cached_key").value
                v = self.variable("cache", "cached_value").value
            else:
                if inputs_kv is None:
                    raise ValueError("cross-attention cache is empty: build it with "
                                     "init_cache(...) before decoding with encoded=None")
                k = heads_first(key_proj(inputs_kv))
                v = heads_first(value_proj(inputs_kv))
                self.variable("cache", "cached_key", lambda: k)
                self.variable("cache", "cached_value", lambda: v)
        else:
            k = heads_first(key_proj(inputs_kv))
            v = heads_first(value_proj(inputs_kv))
            if decode:
                initialized = self.has_variable("cache", "cached_key")
                cached_key = self.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
                cached_value = self.variable("cache", "cached_value", jnp.zeros, v.shape,
                                             v.dtype)
                if initialized:
                    if cache_index is None:
                        raise ValueError("decode=True self-attention needs cache_index")
                    start = (0, 0, cache_index, 0)
                    cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, k, start)
                    cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, v,
                                                                      start)
                    k, v = cached_key.value, cached_value.value

        q = constrain(q, ("batch", "length", "heads", "kv"))
        k = constrain(k, ("batch", "heads", "length", "kv"))
        v = constrain(v, ("batch", "heads", "length", "kv"))
        # Scores and softmax in float32 even for bf16 activations: the bias holds MASK_VALUE
        # and the softmax normaliser loses precision in bf16.
        scores = jnp.einsum("bqhd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32)
        weights = jax.nn.softmax(scores + bias, axis=-1)
        weights = Dropout(cfg.dropout_rate)(weights, deterministic=deterministic)
        out = jnp.einsum("bhqk,bhkd->bqhd", weights.astype(v.dtype), v)
        return _dense(cfg.d_model, 2, ("heads", "kv", "embed"), (h * d) ** -0.5, cfg,
                      "out")(out)


# ------------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------------
class EncoderLayer(nn.Module):
    """Pre-norm self-attention + pre-norm MLP, each with a residual connection."""

    config: T5Config

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array, *, deterministic: bool) -> jax.Array:
        """x [batch, src_len, embed], bias [batch, heads, src_len, src_len] -> like x."""
        cfg = self.config
        drop = Dropout(cfg.dropout_rate)
        y = RMSNorm(cfg, name="pre_attention_layer_norm")(x)
        y = MultiHeadAttention(cfg, name="attention")(y, y, bias, deterministic=deterministic)
        x = x + drop(y, deterministic=deterministic)
        y = RMSNorm(cfg, name="pre_mlp_layer_norm")(x)
        y = MlpBlock(cfg, name="mlp")(y, deterministic=deterministic)
        x = x + drop(y, deterministic=deterministic)
        return constrain(x, ("batch", "length", "embed"))


class DecoderLayer(nn.Module):
    """Self-attention, cross-attention to the encoder output, MLP; all pre-norm residual."""

    config: T5Config

    @nn.compact
    def __call__(self, x: jax.Array, encoded: jax.Array | None, self_bias: jax.Array,
                 cross_bias: jax.Array, *, deterministic: bool, decode: bool,
                 cache_index: jax.Array | None) -> jax.Array:
        """x [batch, tgt_len, embed], encoded [batch, src_len, embed] -> like x.

        self_bias [batch, heads, tgt_len, kv_len], cross_bias [batch, 1, 1, src_len].
        """
        cfg = self.config
        drop = Dropout(cfg.dropout_rate)
        y = RMSNorm(cfg, name="pre_self_attention_layer_norm")(x)
        y = MultiHeadAttention(cfg, name="self_attention")(
            y, y, self_bias, deterministic=deterministic, decode=decode, cache_index=cache_index)
        x = x + drop(y, deterministic=deterministic)
        y = RMSNorm(cfg, name="pre_cross_attention_layer_norm")(x)
        y = MultiHeadAttention(cfg, is_cross_attention=True, name="encoder_decoder_attention")(
            y, encoded, cross_bias, deterministic=deterministic, decode=decode)
        x = x + drop(y, deterministic=deterministic)
        y = RMSNorm(cfg, name="pre_mlp_layer_norm")(x)
        y = MlpBlock(cfg, name="mlp")(y, deterministic=deterministic)
        x = x + drop(y, deterministic=deterministic)
        return constrain(x, ("batch", "length", "embed"))
