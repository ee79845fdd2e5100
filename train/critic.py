"""`coderl train-critic`: the critic on sandbox-labelled samples (+ references = PassedTest).

    coderl train-critic --workdir DIR --samples S.jsonl --results R.jsonl \
        --dataset synthetic --data train.jsonl [--binary] [--init-model ACTOR] [--gin_file F]

Wiring only; the stage is `coderl_jax.training.critic.train_critic`, configured by gin
(`coderl_jax.train.configurables`).
"""

from __future__ import annotations

import argparse

SHORTCUTS = (
    ("--samples", "train_critic.samples", "samples JSONL (coderl generate)"),
    ("--results", "train_critic.results", "its results JSONL (coderl execute)"),
    ("--dataset", "train_critic.dataset", "problem set of the samples"),
    ("--data", "train_critic.data", "problems file or folder"),
    ("--binary", "train_critic.binary", "train the {FailedTest, PassedTest} inference critic"),
    ("--init-model", "train_critic.init_model", "backbone from a model dir / HF dir / hub id"),
    ("--tokenizer", "train_critic.tokenizer", "tokenizer dir (training from scratch)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.train.wiring import add_common

    add_common(parser, SHORTCUTS)


def main(args: argparse.Namespace) -> int:
    from coderl_jax.train.wiring import run_stage

    def stage(workdir: str):
        from coderl_jax.train import configurables as c

        return c.train_critic(workdir, **c.training_configs())

    return run_stage(args, "runs/critic.gin", SHORTCUTS, stage, "train-critic")
