"""`coderl finetune`: the warm start, L_ce on (problem, reference solution) pairs.

    coderl finetune --workdir DIR --dataset {synthetic,apps,mbpp} --data PATH \
        [--init-model MODEL] [--tokenizer DIR] [--gin_file F] [--gin.TRAIN_STEPS=200 ...]

Wiring only; the stage is `coderl_jax.training.finetune.finetune`, configured by gin
(`coderl_jax.train.configurables`).
"""

from __future__ import annotations

import argparse

SHORTCUTS = (
    ("--dataset", "finetune.dataset", "problem set: synthetic, apps or mbpp"),
    ("--data", "finetune.data", "problems file or folder"),
    ("--init-model", "finetune.init_model", "start from a model dir / HF dir / hub id"),
    ("--tokenizer", "finetune.tokenizer", "tokenizer dir (training from scratch)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.train.wiring import add_common

    add_common(parser, SHORTCUTS)


def main(args: argparse.Namespace) -> int:
    from coderl_jax.train.wiring import run_stage

    def stage(workdir: str):
        from coderl_jax.train import configurables as c

        return c.finetune(workdir, **c.training_configs())

    return run_stage(args, "runs/finetune.gin", SHORTCUTS, stage, "finetune")
