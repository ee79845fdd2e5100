"""`coderl demo`: the whole CodeRL pipeline on the embedded synthetic benchmark.

    coderl demo [--workdir DIR] [--seed S] [--quick] [--ablation] [--workers N]
                [--set FIELD=VALUE ...]

tokenizer -> pretrain (MSP + NTP) -> warm start (L_ce) -> sample + execute on the train
split -> 4-class critic, binary critic, repair model -> online CodeRL -> CE+ control ->
evaluate CE, CE+, CodeRL and CodeRL + critic sampling on the test split. About 15 minutes
on 2 CPU cores (--quick: about 3). Argument wiring only; the stages are
`coderl_jax.demo.run_demo`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="demo_workdir", help="where every stage's files go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", choices=("t5", "gpt2"), default="t5",
                        help="the actor / critic / repair model family: the demo's T5 "
                             "(models/demo_cpu.gin) or a GPT-2 of the same size "
                             "(models/demo_gpt2.gin)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (about 3 minutes): a smoke run of every stage")
    parser.add_argument("--ablation", action="store_true",
                        help="also RL with each return estimator (A, B, C, D, group, pass_at_k), "
                        "the RL objectives (Table 3) and critic sampling's parts (Table 4)")
    parser.add_argument("--workers", type=int, default=None,
                        help="sandbox workers (default: CPU count)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a DemoConfig field (coderl_jax/demo/config.py), e.g. "
                        "--set rl_steps=80 --set warm_stop_metric=heldout_nll; repeatable")


def main(args: argparse.Namespace) -> int:
    from coderl_jax.host_memory import retain_freed_memory

    retain_freed_memory()  # before JAX starts its threads
    from coderl_jax.demo import DemoConfig, run_demo

    options = dict(workdir=args.workdir, seed=args.seed, ablation=args.ablation,
                   workers=args.workers, family=args.family, **DemoConfig.overrides(args.set))
    cfg = DemoConfig.quick(**options) if args.quick else DemoConfig(**options)
    run_demo(cfg)
    return 0
