"""`coderl demo`: the whole pipeline so far on the embedded synthetic benchmark.

    coderl demo [--workdir DIR] [--num-test-problems N] [--num-samples N] ...

Argument wiring only; the stages are `coderl_jax.demo.run_demo`.
"""

from __future__ import annotations

import argparse
import dataclasses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coderl_jax.demo import DemoConfig  # pure Python: no JAX at import

    for field in dataclasses.fields(DemoConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str}.get(
            str(field.type).replace(" | None", ""), str)
        parser.add_argument(flag, type=kind, default=field.default,
                            help=f"(default: {field.default})")


def main(args: argparse.Namespace) -> int:
    from coderl_jax.host_memory import retain_freed_memory

    retain_freed_memory()  # before JAX starts its threads
    from coderl_jax.demo import DemoConfig, run_demo

    cfg = DemoConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DemoConfig)})
    run_demo(cfg)
    return 0
