"""Critic head: per-token logits, masked max-pool (hand-computed), and the T5Critic wiring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.models.critic import CRITIC_HIDDEN, CriticHead, T5Critic
from coderl_jax.models.t5 import T5
from coderl_jax.outcomes import BINARY_OUTCOMES, OUTCOMES
from model_utils import random_batch, tiny_config


def _identity_head_params(d_model, num_classes, out_bias):
    """Hand-set weights: token_logits[..., c] = relu(hidden[..., c]) + out_bias[c] for c < 2,
    and out_bias[c] for the other classes."""
    k1 = np.zeros((d_model, CRITIC_HIDDEN), np.float32)
    k1[0, 0] = k1[1, 1] = 1.0
    k2 = np.zeros((CRITIC_HIDDEN, num_classes), np.float32)
    k2[0, 0] = k2[1, 1] = 1.0
    return {"hidden": {"kernel": k1, "bias": np.zeros(CRITIC_HIDDEN, np.float32)},
            "out": {"kernel": k2, "bias": np.asarray(out_bias, np.float32)}}


@pytest.mark.parametrize("num_classes", [len(OUTCOMES), len(BINARY_OUTCOMES)])
def test_shapes(num_classes):
    head = CriticHead(num_classes)
    hidden = jnp.ones((3, 5, 16))
    variables = head.init(jax.random.key(0), hidden, jnp.ones((3, 5)))
    tokens, pooled = head.apply(variables, hidden, jnp.ones((3, 5)))
    assert tokens.shape == (3, 5, num_classes) and pooled.shape == (3, num_classes)
    assert tokens.dtype == pooled.dtype == jnp.float32


def test_max_pool_ignores_masked_positions_hand_computed():
    head = CriticHead(4)
    params = _identity_head_params(2, 4, out_bias=[0.0, 0.0, 0.5, -1.0])
    # hidden [batch=2, len=3, d_model=2]; the largest values sit at masked positions.
    hidden = np.array([[[1.0, -2.0], [3.0, 0.5], [9.0, 9.0]],
                       [[-1.0, 4.0], [7.0, 8.0], [2.0, 1.0]]], np.float32)
    mask = np.array([[1, 1, 0], [1, 0, 1]], bool)
    tokens, pooled = head.apply({"params": params}, hidden, mask)
    expected_tokens = np.array([[[1, 0, .5, -1], [3, .5, .5, -1], [9, 9, .5, -1]],
                                [[0, 4, .5, -1], [7, 8, .5, -1], [2, 1, .5, -1]]], np.float32)
    np.testing.assert_allclose(np.asarray(tokens), expected_tokens)
    # Row 0: max over t in {0, 1}; row 1: max over t in {0, 2}.
    np.testing.assert_allclose(np.asarray(pooled), [[3, .5, .5, -1], [2, 4, .5, -1]])


def test_a_row_without_valid_tokens_pools_to_zeros():
    head = CriticHead(2)
    params = _identity_head_params(2, 2, out_bias=[1.0, 2.0])
    hidden = np.ones((2, 3, 2), np.float32)
    _, pooled = head.apply({"params": params}, hidden, np.array([[0, 0, 0], [1, 0, 0]], bool))
    np.testing.assert_allclose(np.asarray(pooled), [[0, 0], [2, 3]])


def test_mask_shape_mismatch_is_a_clear_error():
    head = CriticHead(4)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        head.init(jax.random.key(0), jnp.ones((2, 3, 8)), jnp.ones((2, 4)))


def test_t5_critic_is_the_head_on_the_decoder_states():
    config = tiny_config()
    critic = T5Critic(config, num_classes=4)
    ids, mask, dec = random_batch(config, np.random.default_rng(0), batch=2, tgt_len=6)
    dec_mask = np.ones(dec.shape, bool)
    dec_mask[0, 4:] = False
    variables = jax.jit(critic.init)(jax.random.key(0, impl="rbg"), ids, dec, mask, dec_mask)
    params = variables["params"]
    assert set(params) == {"backbone", "head"}
    tokens, pooled = jax.jit(critic.apply)(variables, ids, dec, mask, dec_mask)
    assert tokens.shape == (2, 6, 4) and pooled.shape == (2, 4)

    _, hidden = jax.jit(lambda p: T5(config).apply({"params": p}, ids, dec, mask, dec_mask,
                                                   return_hidden=True))(params["backbone"])
    assert hidden.shape == (2, 6, config.d_model)
    ref_tokens, ref_pooled = CriticHead(4).apply({"params": params["head"]}, hidden, dec_mask)
    np.testing.assert_allclose(np.asarray(tokens), np.asarray(ref_tokens), atol=1e-5)
    np.testing.assert_allclose(np.asarray(pooled), np.asarray(ref_pooled), atol=1e-5)
    np.testing.assert_allclose(np.asarray(pooled[0]), np.asarray(tokens[0, :4].max(axis=0)),
                               atol=1e-6)
