"""`coderl train-repair`: the repair model, failed sample + outcome + subtype -> reference.

    coderl train-repair --workdir DIR --samples S.jsonl --results R.jsonl \
        --dataset synthetic --data train.jsonl [--init-model MODEL] [--gin_file F]

Wiring only; the stage is `coderl_jax.training.repair.train_repair`, configured by gin
(`coderl_jax.train.configurables`).
"""

from __future__ import annotations

import argparse

SHORTCUTS = (
    ("--samples", "train_repair.samples", "samples JSONL (coderl generate)"),
    ("--results", "train_repair.results", "its results JSONL (coderl execute)"),
    ("--dataset", "train_repair.dataset", "problem set of the samples"),
    ("--data", "train_repair.data", "problems file or folder"),
    ("--init-model", "train_repair.init_model", "start from a model dir / HF dir / hub id"),
    ("--tokenizer", "train_repair.tokenizer", "tokenizer dir (training from scratch)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.train.wiring import add_common

    add_common(parser, SHORTCUTS)


def main(args: argparse.Namespace) -> int:
    from coderl_jax.train.wiring import run_stage

    def stage(workdir: str):
        from coderl_jax.train import configurables as c

        return c.train_repair(workdir, **c.training_configs())

    return run_stage(args, "runs/repair.gin", SHORTCUTS, stage, "train-repair")
