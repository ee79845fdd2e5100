"""Gin at the edges: flag splitting, unknown bindings and files fail at start-up by name."""

import pytest

from coderl_jax import gin_utils
from coderl_jax.train import configurables  # registers the names the gin files bind


def test_split_gin_args_takes_both_forms_and_keeps_the_rest():
    rest, bindings = gin_utils.split_gin_args(
        ["finetune", "--workdir", "w", "--gin.TRAIN_STEPS=20", "--gin.SEED", "3",
         "--gin_file", "f.gin"])
    assert rest == ["finetune", "--workdir", "w", "--gin_file", "f.gin"]
    assert bindings == ["TRAIN_STEPS = 20", "SEED = 3"]
    with pytest.raises(gin_utils.GinBindingError, match="has no value"):
        gin_utils.split_gin_args(["--gin.SEED"])


def test_macros_and_parameters_bind():
    gin_utils.parse(["experiments/demo_cpu.gin"],
                    ["TRAIN_STEPS = 7", "TrainerConfig.log_period = 3"],
                    defaults=["runs/finetune.gin"])
    cfg = configurables.TrainerConfig()
    assert (cfg.train_steps, cfg.log_period, cfg.batch_size) == (7, 3, 32)


def test_unknown_macro_is_named():
    with pytest.raises(gin_utils.GinBindingError, match="'TRAN_STEPS'"):
        gin_utils.parse(["experiments/demo_cpu.gin"], ["TRAN_STEPS = 7"],
                        defaults=["runs/finetune.gin"])


def test_misspelt_parameter_is_named():
    with pytest.raises(gin_utils.GinBindingError, match="trian_steps"):
        gin_utils.parse([], ["TrainerConfig.trian_steps = 7"], defaults=["runs/finetune.gin"])


def test_missing_file_names_where_it_looked():
    with pytest.raises(gin_utils.GinBindingError, match="nope.gin.*gin_configs"):
        gin_utils.parse(["experiments/nope.gin"])


def test_required_macro_fails_when_unset():
    gin_utils.parse([], [], defaults=["runs/finetune.gin"])
    with pytest.raises(ValueError, match="TRAIN_STEPS|train_steps|REQUIRED|Required"):
        configurables.TrainerConfig()


def test_configurables_register_once_whatever_the_import():
    """A second import (under another name, or a reload) registers nothing twice."""
    import importlib

    again = importlib.reload(configurables)
    assert again.TrainerConfig is configurables.TrainerConfig
    gin_utils.parse([], ["TRAIN_STEPS = 2"], defaults=["runs/finetune.gin"])
    assert again.TrainerConfig().train_steps == 2


def test_library_reads_no_gin_and_training_never_imports_rl():
    """Gin at the edges (train/), and imports run one way: rl -> training, never back."""
    import pathlib

    import coderl_jax

    root = pathlib.Path(coderl_jax.__file__).parent
    for package in ("training", "rl"):
        paths = list((root / package).glob("*.py"))
        assert len(paths) > 5, root
        for path in paths:
            text = path.read_text()
            assert "import gin" not in text and "gin.configurable" not in text, path
            if package == "training":
                assert "coderl_jax.rl" not in text, path
