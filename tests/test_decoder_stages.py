"""Decoder-only models (a tiny GPT-2) through the stages' shared code (issue 18):

  * the one train step: 4 microbatches give the full batch's loss and update, actor (CE +
    signed RL + KL weights) and critic, as tests/test_train_step.py shows for T5;
  * our model dirs save and load a DecoderConfig (`checkpoints`, `loading`), and a
    Hugging Face GPT-2 dir loads through the same `load_model`;
  * `decoding.decode_ids` samples through the family (`family.sample`, `family.pad_id`);
  * the frozen scorers (`scoring.Scorer`) read a decoder-only actor and critic.
"""

import jax
import numpy as np
import pytest

from coderl_jax import checkpoints, decoding
from coderl_jax import partitioning as pt
from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.family import family_for
from coderl_jax.loading import load_model
from coderl_jax.scoring import Scorer
from coderl_jax.training import batch as batch_lib
from coderl_jax.training import step as step_lib
from test_train_step import (ACTOR_OPT, CRITIC_OPT, DEC, ENC, NUM_CLASSES,  # noqa: F401
                             assert_same_update, critic_examples, make_trainer,
                             mixed_actor_batch, run_step)


def tiny_gpt2() -> DecoderConfig:
    """A tiny GPT-2 over test_train_step's 96-token vocabulary (pad 0, bos 1, eos 2)."""
    return DecoderConfig(family="gpt2", vocab_size=96, d_model=32, num_layers=2, num_heads=4,
                         max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2)


@pytest.fixture(scope="module")
def mesh1():
    return pt.make_mesh(devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def actor_params():
    return jax.device_get(family_for(tiny_gpt2()).init(jax.random.key(0)))


@pytest.fixture(scope="module")
def critic_params():
    return jax.device_get(family_for(tiny_gpt2()).critic_init(NUM_CLASSES, jax.random.key(1)))


def test_actor_microbatches_equal_the_full_batch(mesh1, actor_params):
    model = step_lib.ActorModel(tiny_gpt2())
    full, *_, new_full = make_trainer(model, mesh1, ACTOR_OPT)
    micro, *_, new_micro = make_trainer(model, mesh1, ACTOR_OPT, num_microbatches=4)
    batch = mixed_actor_batch(np.random.default_rng(1), rows=8, real=7)
    state_a, metrics_a = run_step(full, new_full(actor_params), batch, mesh1)
    state_b, metrics_b = run_step(micro, new_micro(actor_params), batch, mesh1)
    assert metrics_a["kl"] > 0 and metrics_a["tokens"] == batch.decoder_mask.sum()
    assert_same_update(metrics_a, state_a, metrics_b, state_b, "gpt2 actor, 4 microbatches")


def test_critic_microbatches_equal_the_full_batch(mesh1, critic_params):
    model = step_lib.CriticModel(tiny_gpt2(), NUM_CLASSES)
    full, *_, new_full = make_trainer(model, mesh1, CRITIC_OPT)
    micro, *_, new_micro = make_trainer(model, mesh1, CRITIC_OPT, num_microbatches=4)
    batch = batch_lib.critic_batch(critic_examples(np.random.default_rng(2), 13), 16, ENC, DEC)
    state_a, metrics_a = run_step(full, new_full(critic_params), batch, mesh1)
    state_b, metrics_b = run_step(micro, new_micro(critic_params), batch, mesh1)
    assert metrics_a["rows"] == 13 and metrics_a["confusion"].shape == (4, 4)
    assert_same_update(metrics_a, state_a, metrics_b, state_b, "gpt2 critic, 4 microbatches")


def _same_tree(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_model_dirs_and_hf_dirs_load_decoder_configs(tmp_path, actor_params, critic_params):
    config = tiny_gpt2()
    checkpoints.save_model_dir(tmp_path / "actor", config, actor_params, step=3)
    checkpoints.save_model_dir(tmp_path / "critic", config, critic_params, step=3,
                               critic_classes=["a", "b", "c", "d"])
    actor = load_model(tmp_path / "actor", with_tokenizer=False)
    assert actor.config == config and actor.critic_classes is None
    _same_tree(actor.params, actor_params)
    critic = load_model(tmp_path / "critic", with_tokenizer=False)
    assert critic.critic_classes == ("a", "b", "c", "d")
    _same_tree(critic.params, critic_params)
    family_for(config).export_hf(actor_params, tmp_path / "hf")
    hf = load_model(tmp_path / "hf", with_tokenizer=False)
    assert hf.config.family == "gpt2" and hf.config.d_model == 32
    _same_tree(hf.params, actor_params)


def test_decode_ids_and_scorers_run_the_family(tmp_path, actor_params, critic_params):
    config = tiny_gpt2()
    family = family_for(config)
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    sampling = decoding.SamplingParams(num_samples=2, temperature=1.0, max_new_tokens=6)
    rng = jax.random.key(3)
    got = decoding.decode_ids(config, actor_params, prompts, rng, sampling)
    ids, mask = decoding.pad_rows(prompts, family.pad_id)
    out = family.sample(actor_params, ids, mask, rng, sampling,
                        sample_ids=np.arange(6, dtype=np.int32))
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    assert got == [[tokens[r, :lengths[r]].tolist() for r in (2 * i, 2 * i + 1)]
                   for i in range(3)]
    programs = [rows[0] or [config.eos_token_id] for rows in got]
    logp = Scorer(config, actor_params).log_probs(prompts, programs)
    assert [len(x) for x in logp] == [len(p) for p in programs]
    assert all(np.all(x <= 0) and np.all(np.isfinite(x)) for x in logp)
    checkpoints.save_model_dir(tmp_path / "critic", config, critic_params, step=1,
                               critic_classes=["a", "b", "c", "d"])
    probs = Scorer.load(str(tmp_path / "critic")).critic_probs(prompts, programs)
    assert [p.shape for p in probs] == [(len(p), NUM_CLASSES) for p in programs]
    np.testing.assert_allclose([p.sum(-1) for p in probs][0], 1.0, rtol=1e-5)
