"""Shared helpers for the model tests: a tiny T5 config and tiny Hugging Face checkpoints.

The vocabulary is CodeT5-like in its special tokens (<pad>=0, <s>=1, </s>=2, decoder start
= pad) but tiny, so every test runs in seconds on CPU.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from coderl_jax.models.config import T5Config

TINY = dict(vocab_size=96, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
            num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
            dropout_rate=0.0, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0)


def tiny_config(**overrides) -> T5Config:
    """A T5Config small enough for unit tests (v1.0 by default)."""
    return T5Config(**{**TINY, **overrides})


def v11(config: T5Config) -> T5Config:
    """The v1.1 variant of `config`: gated-GELU MLP, untied LM head without rescale."""
    return config.replace(feed_forward_proj="gated-gelu", tie_word_embeddings=False)


def save_hf_model(config: T5Config, out_dir: pathlib.Path, seed: int = 0):
    """A randomly initialised transformers.T5ForConditionalGeneration saved to `out_dir`.

    For v1.1 the LM head is replaced by its own random matrix: transformers 5 initialises it
    tied to the embedding, which would hide a head-mapping bug.
    """
    import torch
    import transformers

    torch.manual_seed(seed)
    hf_config = transformers.T5Config(bos_token_id=1, **config.to_hf_dict())
    model = transformers.T5ForConditionalGeneration(hf_config).eval()
    if not config.tie_word_embeddings:
        model.lm_head.weight = torch.nn.Parameter(torch.randn(config.vocab_size, config.d_model))
    model.save_pretrained(out_dir)
    return model


def random_batch(config: T5Config, rng: np.random.Generator, batch: int = 3, src_len: int = 11,
                 tgt_len: int = 7):
    """Source ids with right padding of different lengths, and decoder inputs that start with
    the decoder start token. Returns (input_ids, input_mask, decoder_input_ids) as int32/bool
    numpy arrays [batch, src_len], [batch, src_len], [batch, tgt_len]."""
    ids = rng.integers(3, config.vocab_size, size=(batch, src_len)).astype(np.int32)
    lengths = np.linspace(src_len, max(2, src_len // 3), batch).astype(int)
    mask = np.arange(src_len)[None, :] < lengths[:, None]
    ids = np.where(mask, ids, config.pad_token_id).astype(np.int32)
    dec = rng.integers(3, config.vocab_size, size=(batch, tgt_len)).astype(np.int32)
    dec[:, 0] = config.decoder_start_token_id
    return ids, mask, dec


@functools.cache
def forward_fn(config: T5Config, deterministic: bool = True):
    """Jitted teacher-forced forward f(params, ids, dec, mask, dec_mask, rng) -> logits.

    Tests go through jit: eager Flax compiles every op for every new shape, which costs
    tens of seconds on a shared 2-core machine; one jit compile of a tiny T5 is ~1 s.
    """
    import jax

    from coderl_jax.models.t5 import T5

    model = T5(config)

    def forward(params, ids, dec, mask, dec_mask=None, rng=None):
        rngs = None if deterministic else {"dropout": rng}
        return model.apply({"params": params}, ids, dec, mask, dec_mask,
                           deterministic=deterministic, rngs=rngs)

    return jax.jit(forward)
