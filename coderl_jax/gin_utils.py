"""Gin at the edges: the `--gin_file` / `--gin.BINDING=VALUE` flags of every training main.

    files, bindings = gin_utils.split_gin_args(argv)        # in the CLI, before argparse
    gin_utils.parse(files, bindings)                        # in a main, after its imports

Config files are found by path, in the working directory, and among the package's gin files
(`gin_configs/`, installed as package data `coderl_jax.gin_configs`; T5X's three tiers:
`models/`, `runs/`, `experiments/`). A binding names either a
configurable parameter (`TrainerConfig.train_steps=20`) or a macro that the loaded files
define (`TRAIN_STEPS=20`); anything else, a misspelt macro included, fails at start-up
naming it. Gin itself rejects unknown configurables and parameters at parse time.
"""

from __future__ import annotations

import difflib
import importlib.resources
import logging
import pathlib
from collections.abc import Sequence

import gin

# A real folder in an editable install and in a wheel's site-packages alike (never zipped).
GIN_CONFIG_DIR = pathlib.Path(str(importlib.resources.files("coderl_jax.gin_configs")))
GIN_PREFIX = "--gin."


class GinBindingError(ValueError):
    """A gin binding or file that does not fit the loaded configuration."""


def split_gin_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(argv without the `--gin.X=V` / `--gin.X V` items, the bindings as "X = V")."""
    rest, bindings = [], []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg.startswith(GIN_PREFIX):
            name, eq, value = arg[len(GIN_PREFIX):].partition("=")
            if not eq:
                if i + 1 >= len(items):
                    raise GinBindingError(f"{arg} has no value (use {arg}=VALUE)")
                value = items[i + 1]
                i += 1
            if not name:
                raise GinBindingError(f"empty gin binding name in {arg!r}")
            bindings.append(f"{name} = {value}")
        else:
            rest.append(arg)
        i += 1
    return rest, bindings


class _QuietSearch:
    """Drops gin's "Path not found" log lines: it logs one for every search-path candidate
    it tries before the one that exists, which reads like an error when nothing is wrong."""

    @staticmethod
    def filter(record) -> bool:
        return not str(record.msg).startswith("Path not found")


def _defined_macros() -> set[str]:
    return {scope for scope, selector in gin.config._CONFIG if selector == "gin.macro"}


def parse(gin_files: Sequence[str] = (), bindings: Sequence[str] = (),
          defaults: Sequence[str] = ()) -> None:
    """Clear gin, then load `defaults` (files every run of this main needs), `gin_files`
    and `bindings`, in that order. Errors name the bad binding or file."""
    gin.clear_config()
    for path in (str(pathlib.Path.cwd()), str(GIN_CONFIG_DIR)):
        if path not in gin.config._LOCATION_PREFIXES:
            gin.add_config_file_search_path(path)
    files = list(defaults) + list(gin_files)
    root = logging.getLogger()
    root.addFilter(_QuietSearch)
    try:
        gin.parse_config_files_and_bindings(files, None, finalize_config=False)
    except (OSError, IOError) as e:
        raise GinBindingError(f"gin file not found: {e} (looked in the working directory "
                              f"and {GIN_CONFIG_DIR})") from None
    except (ValueError, SyntaxError) as e:  # gin reports malformed values as SyntaxError
        raise GinBindingError(f"bad gin file: {_describe(e)}") from None
    finally:
        root.removeFilter(_QuietSearch)
    macros = _defined_macros()
    for binding in bindings:
        name = binding.split("=", 1)[0].strip()
        if "." not in name and "/" not in name and name not in macros:
            close = difflib.get_close_matches(name, sorted(macros), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise GinBindingError(
                f"unknown gin binding {name!r}: it is neither a configurable's parameter "
                f"nor a macro of the loaded gin files{hint} (macros: {sorted(macros)})")
        try:
            gin.parse_config(binding)
        except (ValueError, SyntaxError) as e:
            raise GinBindingError(f"bad gin binding {binding!r}: {_describe(e)}") from None


def _describe(e: Exception) -> str:
    """Gin's message; a SyntaxError's (a malformed value such as `TRAIN_STEPS=abc`) names
    the text it could not read, which str() of it leaves out."""
    if isinstance(e, SyntaxError):
        where = f"{e.filename}:{e.lineno}: " if e.filename and e.filename != "<string>" else ""
        # gin's msg is Python's literal_eval error (naming an ast node) + "Failed to parse..."
        lines = [ln.strip() for ln in str(e.msg).splitlines() if "<ast." not in ln]
        msg = " ".join(filter(None, lines)) or str(e.msg)
        return f"{where}{msg} in {(e.text or '').strip()!r} (strings need quotes: 'x')"
    return str(e)


def operative_config() -> str:
    """The config as parsed (for writing beside a run's outputs)."""
    return gin.config_str()
