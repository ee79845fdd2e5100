"""Argument wiring shared by the training mains (train/*.py): gin flags, workdir, shortcuts.

Every training main takes `--workdir DIR`, `--gin_file F` (repeatable; looked up in the
working directory and gin_configs/) and `--gin.BINDING=VALUE` (collected by the CLI), plus a
few shortcut flags that are nothing but gin bindings (`--dataset synthetic` is
`--gin.finetune.dataset='synthetic'`), so there is one way a value reaches a stage. A gin
file may `import` a module of the user's (found in the working directory or beside the gin
file): that is how user code (a registered return estimator or reward) joins a run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def add_common(parser: argparse.ArgumentParser, shortcuts: Sequence[tuple[str, str, str]]
               ) -> None:
    """--workdir, --gin_file and the shortcut flags (flag, gin parameter, help)."""
    parser.add_argument("--workdir", required=True, help="run directory (resumed if present)")
    parser.add_argument("--gin_file", action="append", default=[],
                        help="gin config file (repeatable), e.g. experiments/demo_cpu.gin")
    for flag, _, help_text in shortcuts:
        if flag == "--binary":
            parser.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            parser.add_argument(flag, default=None, help=help_text)
    parser.epilog = ("--gin.NAME=VALUE binds a gin macro or parameter after the gin files, "
                     "e.g. --gin.TRAIN_STEPS=200 --gin.TrainerConfig.log_period=5 "
                     "--gin.T5Config.d_model=64 (strings quoted: --gin.SCHEDULE=\"'linear'\"); "
                     "an unknown name is an error.")
    parser.set_defaults(takes_gin=True)


def shortcut_bindings(args: argparse.Namespace, shortcuts: Sequence[tuple[str, str, str]]
                      ) -> list[str]:
    out = []
    for flag, parameter, _ in shortcuts:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            out.append(f"{parameter} = {value!r}")
    return out


def run_stage(args: argparse.Namespace, run_file: str,
              shortcuts: Sequence[tuple[str, str, str]], stage: Callable[[str], object],
              name: str) -> int:
    """Parse gin (run file, --gin_file, shortcut flags, --gin.* bindings), run the stage.

    Exit codes: 0 done, 2 bad input (named), 130 stopped by Ctrl-C / SIGTERM (the last
    checkpoint is intact: the same command resumes).
    """
    from coderl_jax.host_memory import retain_freed_memory

    retain_freed_memory()  # before JAX starts its threads
    from coderl_jax import gin_utils
    from coderl_jax.checkpoints import CheckpointNotFoundError
    from coderl_jax.train import configurables  # noqa: F401  (the names gin files bind)
    from coderl_jax.training import loop

    _user_modules_importable(args.gin_file)
    try:
        gin_utils.parse(args.gin_file,
                        shortcut_bindings(args, shortcuts) + list(args.gin_bindings),
                        defaults=[run_file])
        loop.maybe_initialize_distributed()
        out = stage(args.workdir)
    except (KeyboardInterrupt, loop.Stop):
        print(f"coderl {name}: stopped; run the same command to resume from the last "
              "checkpoint", file=sys.stderr)
        return 130
    except (gin_utils.GinBindingError, ValueError, FileNotFoundError,
            CheckpointNotFoundError) as e:
        print(f"coderl {name}: {_without_gin_trace(e)}", file=sys.stderr)
        return 2
    except (RuntimeError, TypeError) as e:
        missing = "Required bindings for" in str(e) or "required keyword-only argument" in str(e)
        if not missing:  # gin's / Python's words for a setting nobody gave
            raise
        print(f"coderl {name}: {_without_gin_trace(e)} (bind it in a --gin_file such as "
              "experiments/demo_cpu.gin, whose models/ file sets the network, or with "
              "--gin.NAME=VALUE)", file=sys.stderr)
        return 2
    print(f"coderl {name}: model dir {out}", file=sys.stderr)
    return 0


def _user_modules_importable(gin_files: Sequence[str]) -> None:
    """Put the working directory and the folders of the given gin files on sys.path, so a
    gin file's `import my_rl` line finds the user's module beside it (this is how a return
    estimator or reward of one's own reaches a run: README "Extending")."""
    import os

    for folder in [os.getcwd()] + [os.path.dirname(os.path.abspath(f)) for f in gin_files
                                   if os.path.isfile(f)]:
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _without_gin_trace(e: Exception) -> str:
    """The error's message without the "In call to configurable ..." lines gin appends to
    exceptions raised inside configurables (they name functions, not the user's input)."""
    lines = str(e).splitlines()
    return "\n".join(ln for ln in lines if not ln.strip().startswith("In call to configurable"))
