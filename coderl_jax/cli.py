"""The `coderl` command: one subcommand per main in train/ and eval/.

Start-up stays fast: this module imports only argparse and importlib, and each main module
imports its heavy dependencies (JAX, transformers) inside its `main`, so `coderl --help`,
`coderl execute` and `coderl evaluate` never load JAX (tests/test_cli.py checks this).

Every main module exposes `add_arguments(parser)` and `main(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module holding add_arguments/main, one-line help). Data, not code paths.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("coderl_jax.eval.demo", "run the whole pipeline on the embedded synthetic benchmark"),
    "pretrain": ("coderl_jax.train.pretrain", "pretrain a T5 with MSP + NTP on a folder of .py files"),
    "finetune": ("coderl_jax.train.finetune", "warm start: L_ce on (problem, reference) pairs"),
    "train-critic": ("coderl_jax.train.critic", "train the critic on sandbox-labelled samples"),
    "train-repair": ("coderl_jax.train.repair", "train the repair model on failed samples"),
    "train-rl": ("coderl_jax.train.rl", "online CodeRL: sample, execute, critic-weighted update"),
    "generate": ("coderl_jax.eval.generate", "sample programs for a problem set or a prompts file (+ critic sampling)"),
    "execute": ("coderl_jax.eval.execute", "run samples against unit tests in the sandbox"),
    "evaluate": ("coderl_jax.eval.evaluate", "pass@k / n@k tables and plots from results files"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser; only the module of the subcommand named in `argv` is imported."""
    parser = argparse.ArgumentParser(
        prog="coderl",
        description="CodeRL in JAX/Flax: train code LMs with RL from unit tests, sample, "
        "execute and evaluate programs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `--gin.BINDING=VALUE` flags are free-form; they are collected here for the mains that
    # take gin (their own `--gin_file` flags are ordinary options).
    from coderl_jax.gin_utils import GinBindingError, split_gin_args

    try:
        argv, gin_bindings = split_gin_args(argv)
    except GinBindingError as e:
        print(f"coderl: {e}", file=sys.stderr)
        return 2
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if gin_bindings and not getattr(args, "takes_gin", False):
        parser.error(f"{args.command} takes no --gin.* bindings")
    args.gin_bindings = gin_bindings
    return int(args._main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
