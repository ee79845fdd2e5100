"""loading.load_model on tiny model dirs: our actor and critic dirs (any step), a
Hugging Face dir, tokenizer and dtype overrides, and clear errors."""

import pathlib
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from model_utils import tiny_config  # noqa: E402

from coderl_jax import checkpoints, outcomes  # noqa: E402
from coderl_jax.data import synthetic  # noqa: E402
from coderl_jax.data.tokenizer import save_tokenizer, train_tokenizer  # noqa: E402
from coderl_jax.models.critic import init_critic_params  # noqa: E402
from coderl_jax.models.hf import export_hf  # noqa: E402
from coderl_jax.loading import LoadedModel, load_model  # noqa: E402
from coderl_jax.models.t5 import init_params  # noqa: E402

VOCAB = 512


def assert_same_params(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(root, config, tokenizer, params at step 5, params at step 7): our actor dir holds
    both steps, our critic dir and a Hugging Face dir hold one each."""
    root = tmp_path_factory.mktemp("loading")
    problems = synthetic.generate_problems("train", 40)
    tok = train_tokenizer([p.question for p in problems] + [p.solutions[0] for p in problems],
                          VOCAB)
    config = tiny_config(vocab_size=VOCAB)
    p5, p7 = init_params(config, jax.random.key(5)), init_params(config, jax.random.key(7))
    checkpoints.save_model_dir(root / "actor", config, p5, tokenizer=tok, step=5)
    checkpoints.save_model_dir(root / "actor", config, p7, tokenizer=tok, step=7)
    critic = init_critic_params(config, len(outcomes.BINARY_OUTCOMES), jax.random.key(2))
    checkpoints.save_model_dir(root / "critic", config, critic, tokenizer=tok,
                               critic_classes=outcomes.BINARY_OUTCOMES)
    export_hf(config, p5, root / "hf", tokenizer=tok)
    save_tokenizer(tok, root / "tokenizer")
    return root, config, tok, p5, p7, critic


def test_our_actor_dir_latest_and_given_step(tiny):
    root, config, tok, p5, p7, _ = tiny
    model = load_model(root / "actor")
    assert isinstance(model, LoadedModel)
    assert model.config == config and model.critic_classes is None
    assert model.source == str(root / "actor")
    assert_same_params(model.params, p7)
    assert len(model.tokenizer) == len(tok)
    assert model.tokenizer.encode("x = 1") == tok.encode("x = 1")
    assert_same_params(load_model(str(root / "actor"), step=5).params, p5)


def test_our_critic_dir_gives_its_classes(tiny):
    root, config, _, _, _, critic = tiny
    model = load_model(str(root / "critic"), with_tokenizer=False)
    assert model.critic_classes == tuple(outcomes.BINARY_OUTCOMES)
    assert model.tokenizer is None and model.config == config
    assert_same_params(model.params, critic)


def test_hugging_face_dir_loads_like_our_dir(tiny):
    root, config, tok, p5, _, _ = tiny
    model = load_model(str(root / "hf"))
    assert model.config == config and model.critic_classes is None
    assert_same_params(model.params, p5)
    assert model.tokenizer.encode("y = 2") == tok.encode("y = 2")
    with pytest.raises(ValueError, match="--step applies to our checkpoint dirs only"):
        load_model(str(root / "hf"), step=5)


def test_dtype_dropout_and_tokenizer_overrides(tiny):
    root, config, tok, _, _, _ = tiny
    model = load_model(str(root / "hf"), dtype="bfloat16", dropout_rate=0.25,
                       tokenizer=str(root / "tokenizer"))
    assert model.config == config.replace(dtype="bfloat16", dropout_rate=0.25)
    # Mixed precision: the activations change dtype, the master weights stay float32.
    assert {x.dtype for x in jax.tree.leaves(model.params)} == {np.dtype("float32")}
    assert len(model.tokenizer) == len(tok)
    assert load_model(str(root / "actor"), tokenizer=tok).tokenizer is tok


def test_generation_load_model_is_the_tuple_of_the_same(tiny):
    from coderl_jax import generation

    root, _, _, _, p7, _ = tiny
    config, params, tokenizer = generation.load_model(str(root / "actor"))
    assert config == load_model(str(root / "actor")).config
    assert_same_params(params, p7)
    assert tokenizer is not None


def test_clear_errors(tiny, tmp_path):
    root, _, _, _, _, _ = tiny

    class Huge:
        def __len__(self):
            return VOCAB + 1

    with pytest.raises(ValueError, match="tokenizer has 513 tokens but the model's vocab_size"):
        load_model(str(root / "actor"), tokenizer=Huge())
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "no" / "such" / "model"))
