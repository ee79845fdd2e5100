"""Gin at the edge: the library's dataclasses and stages, made configurable for the mains.

The library (`coderl_jax.training`, `coderl_jax.rl`, `coderl_jax.models`) never reads gin:
its stages take `TrainerConfig`, `OptimizerConfig`, `RLConfig`, a T5Config and plain
arguments. This module registers them with gin under the names the gin files have always
used (`TrainerConfig.train_steps`, `finetune.dataset`, `RLConfig.estimator`,
`T5Config.d_model`, `model_config.config`, `load_init.dtype`, ...), so `gin_configs/` and
every `--gin.X=V` flag keep working, and a binding to anything else still fails at parse.

    from coderl_jax.train import configurables as c
    c.finetune(workdir, trainer=c.TrainerConfig(), optimizer=c.OptimizerConfig(),
               loader=c.loader())              # every argument not passed comes from gin

Importing it twice (or under two names) registers nothing twice.
"""

from __future__ import annotations

import functools

import gin
from gin import config as _gin_config

from coderl_jax.models import family as _family  # noqa: F401  (DecoderConfig, family_config)
from coderl_jax.models.config import T5Config as _T5Config


def _external(fn_or_cls, name: str, module: str):
    """gin.external_configurable, or the wrapper registered by an earlier import."""
    selector = f"{module}.{name}"
    if selector in _gin_config._REGISTRY:
        return _gin_config._REGISTRY[selector].wrapper
    return gin.external_configurable(fn_or_cls, name=name, module=module)


def _model_config(config=gin.REQUIRED):
    """The model config as bound by gin (`model_config.config = @T5Config()`)."""
    if not isinstance(config, _T5Config):
        raise TypeError(f"model_config.config must be a T5Config, got {type(config).__name__}")
    return config


T5Config = _external(_T5Config, "T5Config", "coderl_jax.models")
model_config = _external(_model_config, "model_config", "coderl_jax.models")


def _register_training():
    from coderl_jax.training import critic, finetune, loop, model_io, optimizer, pretrain, repair

    m = "coderl_jax.training"
    return (_external(loop.TrainerConfig, "TrainerConfig", m),
            _external(optimizer.OptimizerConfig, "OptimizerConfig", m),
            _external(model_io.load_init, "load_init", m),
            _external(pretrain.pretrain, "pretrain", m),
            _external(finetune.finetune, "finetune", m),
            _external(critic.train_critic, "train_critic", m),
            _external(repair.train_repair, "train_repair", m))


def _register_rl():
    from coderl_jax.rl import config, stage

    m = "coderl_jax.rl"
    return (_external(config.RLConfig, "RLConfig", m),
            _external(stage.train_rl, "train_rl", m))


(TrainerConfig, OptimizerConfig, load_init, pretrain, finetune, train_critic,
 train_repair) = _register_training()
RLConfig, train_rl = _register_rl()


def _register_stopping():
    from coderl_jax.training import stopping

    # finetune.stopping = @EarlyStopping() + EarlyStopping.metric = 'heldout_greedy_pass@1'
    return _external(stopping.EarlyStopping, "EarlyStopping", "coderl_jax.training")


EarlyStopping = _register_stopping()


def scratch_config():
    """The config of a model built from scratch: the gin-bound `family_config` (either
    family: `--gin_file models/tiny_gpt2.gin`) if bound, else `model_config` (T5)."""
    try:
        gin.query_parameter("coderl_jax.models.family_config.config")
    except ValueError:
        return model_config()
    return _family.family_config()


def loader():
    """(init_model, tokenizer) -> InitModel with the gin-bound `load_init` options and the
    gin-bound `family_config` / `model_config` for a model built from scratch (called only
    then)."""
    return functools.partial(load_init, scratch_config=scratch_config)


def training_configs() -> dict:
    """The trainer and optimizer every stage takes, built from gin (call after parsing: a
    bad run config fails here, before any work)."""
    return {"trainer": TrainerConfig(), "optimizer": OptimizerConfig(), "loader": loader()}
