"""The demo's calls into the training stages, one small function per stage.

Each builds the config dataclasses the stage takes (`TrainerConfig`, `OptimizerConfig`,
`RLConfig`, the scratch `T5Config`) from the demo's sizes and calls the library stage
directly: no gin. The values are those the CLI would get from its run file plus
`experiments/demo_cpu.gin` (constant schedule, no weight decay, clip 1.0, the demo model),
so `coderl <stage> --gin_file experiments/demo_cpu.gin` reproduces a demo stage.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable

from coderl_jax.demo.config import DemoConfig

Log = Callable[[str], None]


def _configs(cfg: DemoConfig, steps: int, lr: float | None = None, log_period: int = 10,
             schedule: str = "constant", eval_period: int = 0,
             batch_size: int | None = None) -> dict:
    """trainer, optimizer and loader of a demo stage (`experiments/demo_cpu.gin`'s values)."""
    from coderl_jax.training.loop import TrainerConfig
    from coderl_jax.training.model_io import load_init
    from coderl_jax.training.optimizer import OptimizerConfig

    trainer = TrainerConfig(train_steps=steps, batch_size=batch_size or cfg.batch_size,
                            checkpoint_period=max(steps, 1), keep_checkpoints=2,
                            log_period=log_period, eval_period=eval_period, seed=cfg.seed,
                            progress=False)
    optimizer = OptimizerConfig(learning_rate=lr or cfg.learning_rate, schedule=schedule,
                                weight_decay=0.0, clip_norm=1.0)
    scratch = _scratch_config(cfg)
    return {"trainer": trainer, "optimizer": optimizer,
            "loader": functools.partial(load_init, scratch_config=scratch)}


def _scratch_config(cfg: DemoConfig):
    """() -> the config of the demo's models built from scratch, of `cfg.family`: the
    shapes of models/demo_cpu.gin (T5: d128, 2 + 2 layers) and models/demo_gpt2.gin (GPT-2:
    d128, 4 layers), over the demo tokenizer's vocabulary."""
    from coderl_jax.models.config import T5Config
    from coderl_jax.models.decoder.config import DecoderConfig

    if cfg.family == "gpt2":
        return functools.partial(
            DecoderConfig, family="gpt2", vocab_size=cfg.vocab_size, d_model=128, d_ff=512,
            num_layers=4, num_heads=4, max_position_embeddings=512, tie_word_embeddings=True,
            dropout_rate=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return functools.partial(
        T5Config, vocab_size=cfg.vocab_size, d_model=128, d_kv=32, d_ff=512, num_layers=2,
        num_decoder_layers=2, num_heads=4, dropout_rate=0.0, feed_forward_proj="relu",
        tie_word_embeddings=True, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0)


def _lengths(cfg: DemoConfig) -> dict:
    return {"max_source_length": cfg.max_source_length, "max_target_length": cfg.max_new_tokens}


def pretrain(cfg: DemoConfig, workdir: pathlib.Path, tokenizer_dir: pathlib.Path,
             log: Log) -> pathlib.Path:
    """`coderl pretrain`: MSP + NTP on the standard library corpus."""
    from coderl_jax.training.pretrain import pretrain as run

    return run(str(workdir), tokenizer=str(tokenizer_dir),
               corpus_max_bytes=cfg.pretrain_corpus_bytes, encoder_length=128,
               decoder_length=64, msp_rate=0.5, log=log,
               **_configs(cfg, cfg.pretrain_steps))


def finetune(cfg: DemoConfig, workdir: pathlib.Path, train_path: pathlib.Path,
             init_model: pathlib.Path, log: Log, *, steps: int,
             lr: float | None = None, warm: bool = False,
             eval_path: pathlib.Path | None = None,
             batch_size: int | None = None) -> pathlib.Path:
    """`coderl finetune`: L_ce on the train split (the warm start, and the CE+ control).
    warm: with the warm start's schedule, evaluations and stopping rule (DemoConfig.warm_*),
    held out on `eval_path` (the validation split) when given."""
    from coderl_jax.training.finetune import finetune as run
    from coderl_jax.training.stopping import EarlyStopping

    extra, configs = {"eval_problems": 0}, _configs(cfg, steps, lr=lr, batch_size=batch_size)
    if warm:
        configs = _configs(cfg, steps, lr=lr, schedule=cfg.warm_schedule,
                           eval_period=cfg.warm_eval_period)
        extra = {"eval_problems": cfg.warm_eval_problems,
                 "eval_data": str(eval_path) if eval_path else None,
                 "stopping": EarlyStopping(cfg.warm_stop_metric, patience=cfg.warm_patience)}
    return run(str(workdir), dataset="synthetic", data=str(train_path),
               init_model=str(init_model), holdout_fraction=0.05, log=log,
               **extra, **_lengths(cfg), **configs)


def train_critic(cfg: DemoConfig, workdir: pathlib.Path, *, binary: bool, samples: pathlib.Path,
                 results: pathlib.Path, data: pathlib.Path, init_model: pathlib.Path,
                 log: Log) -> pathlib.Path:
    """`coderl train-critic` (4-class, or `--binary`) on the labelled train samples."""
    from coderl_jax.training.critic import train_critic as run

    return run(str(workdir), binary=binary, samples=str(samples), results=str(results),
               dataset="synthetic", data=str(data), init_model=str(init_model),
               holdout_fraction=0.2, include_references=cfg.critic_references,
               class_weighting=cfg.critic_class_weighting,
               verdict_policy=cfg.verdict_policy, log=log, **_lengths(cfg),
               **_configs(cfg, cfg.critic_steps, lr=cfg.learning_rate / 2))


def train_repair(cfg: DemoConfig, workdir: pathlib.Path, *, samples: pathlib.Path,
                 results: pathlib.Path, data: pathlib.Path, init_model: pathlib.Path,
                 log: Log) -> pathlib.Path:
    """`coderl train-repair` on the failed train samples."""
    from coderl_jax.training.repair import train_repair as run

    return run(str(workdir), samples=str(samples), results=str(results), dataset="synthetic",
               data=str(data), init_model=str(init_model), verdict_policy=cfg.verdict_policy,
               log=log, **_lengths(cfg), **_configs(cfg, cfg.repair_steps))


def rl_config(cfg: DemoConfig, estimator: str):
    """The demo's `RLConfig` (runs/rl.gin's values with the demo's sizes)."""
    from coderl_jax.rl.config import RLConfig

    return RLConfig(problems_per_step=cfg.rl_problems_per_step, num_samples=cfg.rl_samples,
                    estimator=estimator, reward="coderl", temperature=cfg.temperature,
                    top_p=cfg.top_p, max_source_length=cfg.max_source_length,
                    max_new_tokens=cfg.max_new_tokens, objective="sum", ce_weight=1.0,
                    rl_weight=1.0, kl_coef=0.0, workers=cfg.workers,
                    verdict_policy=cfg.verdict_policy, ce_per_sample=cfg.rl_ce_per_sample,
                    rl_normalisation=cfg.rl_normalisation)


def train_rl(cfg: DemoConfig, workdir: pathlib.Path, *, estimator: str,
             actor: pathlib.Path, critic: pathlib.Path, train_path: pathlib.Path,
             log: Log, overrides: dict | None = None) -> pathlib.Path:
    """`coderl train-rl`: online CodeRL from `actor` with the return `estimator`
    (`overrides`: other RLConfig fields, e.g. {"ce_weight": 0.0} for an ablation)."""
    import dataclasses

    from coderl_jax.rl.stage import train_rl as run

    configs = _configs(cfg, cfg.rl_steps, lr=cfg.rl_learning_rate, log_period=1)
    return run(str(workdir), actor=str(actor), critic=str(critic), dataset="synthetic",
               data=str(train_path), log=log,
               rl=dataclasses.replace(rl_config(cfg, estimator), **(overrides or {})),
               trainer=configs["trainer"], optimizer=configs["optimizer"],
               loader=configs["loader"])


def critic_eval_report(workdir: pathlib.Path) -> dict:
    """The held-out evaluation a `train-critic` run wrote to its workdir."""
    import json

    from coderl_jax.training.critic import EVAL_FILE

    return json.loads((workdir / EVAL_FILE).read_text())


def metric(workdir: pathlib.Path, key: str, index: int = -1) -> float:
    """metrics.jsonl's `key` at its `index`-th logged record (default: the last); NaN if none."""
    from coderl_jax.training.loop import read_metrics

    values = [r[key] for r in read_metrics(workdir) if key in r]
    return float(values[index]) if values else float("nan")
