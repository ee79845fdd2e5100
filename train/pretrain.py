"""`coderl pretrain`: MSP + NTP pretraining on a folder of .py files (default: the stdlib).

    coderl pretrain --workdir DIR [--gin_file experiments/demo_cpu.gin] [--corpus FOLDER] \
        [--tokenizer DIR] [--init-model MODEL] [--gin.TRAIN_STEPS=1000 ...]

Wiring only; the stage is `coderl_jax.training.pretrain.pretrain`, configured by gin
(`coderl_jax.train.configurables`).
"""

from __future__ import annotations

import argparse

SHORTCUTS = (
    ("--corpus", "pretrain.corpus", "folder of .py files (default: the standard library)"),
    ("--tokenizer", "pretrain.tokenizer", "tokenizer dir (default: train one on the corpus)"),
    ("--init-model", "pretrain.init_model", "continue from a model dir / HF dir / hub id"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.train.wiring import add_common

    add_common(parser, SHORTCUTS)


def main(args: argparse.Namespace) -> int:
    from coderl_jax.train.wiring import run_stage

    def stage(workdir: str):
        from coderl_jax.train import configurables as c

        return c.pretrain(workdir, **c.training_configs())

    return run_stage(args, "runs/pretrain.gin", SHORTCUTS, stage, "pretrain")
