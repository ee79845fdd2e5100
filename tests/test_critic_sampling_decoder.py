"""Critic sampling's driver end to end with decoder-only models (issue 18): a tiny random
GPT-2 actor, GPT-2 binary critic and GPT-2 repair model saved as our model dirs and loaded
the way `coderl generate` loads them, synthetic problems and a real 2-worker sandbox.

The actor samples the initial programs itself (left-padded KV-cache sampling), the real
critic scores them, problems with a passing program are refined (prefix-forced
resampling), the others repaired then re-planned, as tests/test_critic_sampling_driver.py
shows for T5.
"""

import jax
import pytest

from coderl_jax import checkpoints, outcomes
from coderl_jax import critic_sampling as cs
from coderl_jax.critic_sampling import Models, critic_sample
from coderl_jax.data import synthetic
from coderl_jax.data.tokenizer import train_tokenizer
from coderl_jax.decoding import SamplingParams
from coderl_jax.models.decoder.config import DecoderConfig
from coderl_jax.models.family import family_for
from coderl_jax.loading import load_model
from coderl_jax.sandbox import Executor
from coderl_jax.scoring import Scorer

N = 4
MAX_NEW = 16
MAX_SOURCE = 256
SAMPLING = SamplingParams(num_samples=N, max_new_tokens=MAX_NEW, temperature=1.0, top_p=0.95)
WRONG = ("x = (\n", "print(undefined_name)\n", "def f(:\n", "1 / 0\n")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("critic_sampling_gpt2")
    corpus = synthetic.generate_problems("train", 60)
    tok = train_tokenizer([p.question for p in corpus] + [p.solutions[0] for p in corpus], 512)
    config = DecoderConfig(family="gpt2", vocab_size=512, d_model=32, num_layers=2,
                           num_heads=4, max_position_embeddings=MAX_SOURCE + MAX_NEW,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2)
    family = family_for(config)
    checkpoints.save_model_dir(root / "actor", config, family.init(jax.random.key(0)),
                               tokenizer=tok)
    checkpoints.save_model_dir(root / "repair", config, family.init(jax.random.key(1)),
                               tokenizer=tok)
    checkpoints.save_model_dir(root / "critic", config,
                               family.critic_init(len(outcomes.BINARY_OUTCOMES),
                                                  jax.random.key(2)),
                               tokenizer=tok, critic_classes=outcomes.BINARY_OUTCOMES)
    models = Models(load_model(str(root / "actor")), Scorer.load(str(root / "critic")),
                    load_model(str(root / "repair")))
    with Executor(num_workers=2, timeout=4.0) as ex:
        yield synthetic.generate_problems("train", 3), models, ex


def test_decoder_only_actor_and_critic_refine_and_repair(setting):
    problems, models, executor = setting
    assert isinstance(models.actor.config, DecoderConfig)
    assert models.critic.classes == outcomes.BINARY_OUTCOMES
    # Problem 0 starts from its reference (passes: refine); 1 from broken programs (repair);
    # problem 2's initial programs are sampled by the actor in a second call.
    initial = [[problems[0].solutions[0], *WRONG[:3]], list(WRONG)]
    first = critic_sample(problems[:2], models, executor, SAMPLING, initial=initial,
                          max_source_length=MAX_SOURCE, batch_size=2, repair_top_m=2)
    assert first[0].mode == "refine" and first[0].num_passed >= 1
    assert len(first[0].programs) == N and len(first[0].prefix_lens) == N
    tok = models.actor.tokenizer
    for program, k in zip(first[0].programs, cs.seed_rows(first[0].plan.refine)):
        seed = first[0].plan.refine[k]
        ids = tok.encode(initial[0][seed.source], add_special_tokens=False) + [tok.eos_token_id]
        assert program.startswith(tok.decode(ids[:min(seed.prefix_len, MAX_NEW)],
                                             skip_special_tokens=True))
    assert first[1].num_passed == 0 and first[1].plan.mode == "repair"
    assert len(first[1].repaired) == N and len(first[1].programs) == N
    sampled = critic_sample(problems[2:], models, executor, SAMPLING,
                            max_source_length=MAX_SOURCE, batch_size=2)
    assert len(sampled) == 1 and len(sampled[0].initial) == N
    assert len(sampled[0].programs) == N
