"""`coderl train-rl`: online CodeRL (sample -> execute -> critic-weighted update), or offline
RL from sample files (the official release's setting).

    coderl train-rl --workdir DIR --actor WARM_MODEL --critic CRITIC_MODEL \
        --dataset synthetic --data train.jsonl [--gin_file experiments/demo_cpu.gin] \
        [--gin.RLConfig.estimator='A'] [--samples S --results R \
         --baseline-samples SB --baseline-results RB]

Ctrl-C or SIGTERM stops the run within seconds: the sandbox pool shuts down (no program
survives) and the last checkpoint stays intact; run the same command again to resume.
Wiring only; the stage is `coderl_jax.rl.stage.train_rl`, configured by gin
(`coderl_jax.train.configurables`).
"""

from __future__ import annotations

import argparse

SHORTCUTS = (
    ("--actor", "train_rl.actor", "warm-started actor: model dir, HF dir or hub id"),
    ("--critic", "train_rl.critic", "4-class critic model dir (coderl train-critic)"),
    ("--reference", "train_rl.reference", "frozen reference policy for the KL term"),
    ("--dataset", "train_rl.dataset", "problem set: synthetic, apps or mbpp"),
    ("--data", "train_rl.data", "problems file or folder"),
    ("--samples", "train_rl.samples", "offline: samples JSONL"),
    ("--results", "train_rl.results", "offline: its results JSONL"),
    ("--baseline-samples", "train_rl.baseline_samples", "offline: greedy programs JSONL"),
    ("--baseline-results", "train_rl.baseline_results", "offline: their results JSONL"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.train.wiring import add_common

    add_common(parser, SHORTCUTS)


def main(args: argparse.Namespace) -> int:
    from coderl_jax.train.wiring import run_stage

    def stage(workdir: str):
        from coderl_jax.train import configurables as c

        # RLConfig first: a bad estimator or reward name fails before anything is loaded.
        rl = c.RLConfig()
        return c.train_rl(workdir, rl=rl, **c.training_configs())

    return run_stage(args, "runs/rl.gin", SHORTCUTS, stage, "train-rl")
