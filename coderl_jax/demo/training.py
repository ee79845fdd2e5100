"""The demo's calls into the training stages, one small function per stage.

Each binds the gin config its CLI command would parse (its run file, the demo experiment
`experiments/demo_cpu.gin`, the demo's sizes as overrides) and calls the library stage. This
is the only module of the demo that knows how a training stage is configured: when the
stages take their config dataclasses as arguments, only these functions change.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from coderl_jax.demo.config import DemoConfig

Log = Callable[[str], None]


def _gin(run: str, cfg: DemoConfig, bindings: list[str]) -> None:
    """The gin config a CLI command would parse: its run file, the demo experiment, the
    model family's file (`--family gpt2`: models/demo_gpt2.gin), overrides."""
    from coderl_jax import gin_utils

    files = ["experiments/demo_cpu.gin"]  # includes the T5's models/demo_cpu.gin
    if cfg.family != "t5":
        files.append(cfg.model_gin_file)
    gin_utils.parse(files, bindings, defaults=[f"runs/{run}.gin"])


def _common_bindings(cfg: DemoConfig, steps: int, lr: float | None = None) -> list[str]:
    return [f"TRAIN_STEPS = {steps}", f"BATCH_SIZE = {cfg.batch_size}",
            f"LEARNING_RATE = {lr or cfg.learning_rate}", f"SEED = {cfg.seed}",
            f"MAX_SOURCE_LENGTH = {cfg.max_source_length}",
            f"MAX_TARGET_LENGTH = {cfg.max_new_tokens}",
            f"{cfg.config_class}.vocab_size = {cfg.vocab_size}",
            f"CHECKPOINT_PERIOD = {max(steps, 1)}", "PROGRESS = False"]


def pretrain(cfg: DemoConfig, workdir: pathlib.Path, tokenizer_dir: pathlib.Path,
             log: Log) -> pathlib.Path:
    """`coderl pretrain`: MSP + NTP on the standard library corpus."""
    from coderl_jax.training.pretrain import pretrain as run

    _gin("pretrain", cfg, _common_bindings(cfg, cfg.pretrain_steps)
         + ["ENCODER_LENGTH = 128", "DECODER_LENGTH = 64"])
    return run(str(workdir), tokenizer=str(tokenizer_dir),
               corpus_max_bytes=cfg.pretrain_corpus_bytes, log=log)


def finetune(cfg: DemoConfig, workdir: pathlib.Path, train_path: pathlib.Path,
             init_model: pathlib.Path, log: Log, *, steps: int,
             lr: float | None = None) -> pathlib.Path:
    """`coderl finetune`: L_ce on the train split (the warm start, and the CE+ control)."""
    from coderl_jax.training.finetune import finetune as run

    _gin("finetune", cfg, _common_bindings(cfg, steps, lr=lr))
    return run(str(workdir), dataset="synthetic", data=str(train_path),
               init_model=str(init_model), holdout_fraction=0.05, eval_problems=0, log=log)


def train_critic(cfg: DemoConfig, workdir: pathlib.Path, *, binary: bool, samples: pathlib.Path,
                 results: pathlib.Path, data: pathlib.Path, init_model: pathlib.Path,
                 log: Log) -> pathlib.Path:
    """`coderl train-critic` (4-class, or `--binary`) on the labelled train samples."""
    from coderl_jax.training.critic import train_critic as run

    _gin("critic", cfg, _common_bindings(cfg, cfg.critic_steps, lr=cfg.learning_rate / 2))
    return run(str(workdir), binary=binary, samples=str(samples), results=str(results),
               dataset="synthetic", data=str(data), init_model=str(init_model),
               holdout_fraction=0.2, log=log)


def train_repair(cfg: DemoConfig, workdir: pathlib.Path, *, samples: pathlib.Path,
                 results: pathlib.Path, data: pathlib.Path, init_model: pathlib.Path,
                 log: Log) -> pathlib.Path:
    """`coderl train-repair` on the failed train samples."""
    from coderl_jax.training.repair import train_repair as run

    _gin("repair", cfg, _common_bindings(cfg, cfg.repair_steps))
    return run(str(workdir), samples=str(samples), results=str(results), dataset="synthetic",
               data=str(data), init_model=str(init_model), log=log)


def train_rl(cfg: DemoConfig, workdir: pathlib.Path, *, estimator: str,
             actor: pathlib.Path, critic: pathlib.Path, train_path: pathlib.Path,
             log: Log) -> pathlib.Path:
    """`coderl train-rl`: online CodeRL from `actor` with the return `estimator`."""
    from coderl_jax.rl.run import train_rl as run

    _gin("rl", cfg, _common_bindings(cfg, cfg.rl_steps, lr=cfg.rl_learning_rate) + [
        f"PROBLEMS_PER_STEP = {cfg.rl_problems_per_step}", f"NUM_SAMPLES = {cfg.rl_samples}",
        f"ESTIMATOR = '{estimator}'", f"RLConfig.temperature = {cfg.temperature}",
        f"RLConfig.top_p = {cfg.top_p}", f"RLConfig.workers = {cfg.workers}",
        "LOG_PERIOD = 1"])
    return run(str(workdir), actor=str(actor), critic=str(critic), dataset="synthetic",
               data=str(train_path), log=log)


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
