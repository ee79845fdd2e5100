"""The benchmark files shipped inside the package (`coderl_jax/data/benchmarks/`, see its
README for provenance and licences): MBPP (CC-BY-4.0), an APPS train subset (MIT) and
CodeRL's APPS test example tests (BSD-3-Clause).

    path("mbpp/mbpp.jsonl")                     # an installed file's path
    loaders.load_problems("mbpp", "packaged")   # the default file of a dataset
    loaders.load_problems("mbpp", "packaged:sanitized-mbpp.json")

Found through `importlib.resources`, so they are there in an editable install, a wheel and
a Docker image alike; nothing here reads a path outside the package.
"""

from __future__ import annotations

import importlib.resources
import pathlib

PACKAGED = "packaged"
# dataset -> its default file under benchmarks/ (the folder named by the dataset).
DEFAULT_FILES = {"mbpp": "mbpp.jsonl", "apps": "train.jsonl"}


def root() -> pathlib.Path:
    """The folder that holds the shipped benchmark files."""
    return pathlib.Path(str(importlib.resources.files("coderl_jax.data") / "benchmarks"))


def path(name: str) -> pathlib.Path:
    """The shipped file `name` (e.g. "mbpp/mbpp.jsonl"); an unknown name says what exists."""
    out = root() / name
    if not out.is_file():
        have = sorted(str(p.relative_to(root())) for p in root().rglob("*.json*"))
        raise FileNotFoundError(f"no packaged benchmark file {name!r} (in {root()}); "
                                f"shipped: {have}")
    return out


def is_packaged(spec: str | None) -> bool:
    return spec is not None and (spec == PACKAGED or spec.startswith(PACKAGED + ":"))


def resolve(dataset: str, spec: str) -> pathlib.Path:
    """`"packaged"` -> the dataset's default shipped file; `"packaged:FILE"` -> that file
    of the dataset's folder (e.g. "packaged:sanitized-mbpp.json")."""
    name = spec.partition(":")[2] or DEFAULT_FILES.get(dataset)
    if name is None:
        raise ValueError(f"dataset {dataset!r} has no packaged copy; packaged datasets: "
                         f"{sorted(DEFAULT_FILES)}")
    return path(f"{dataset}/{name}")
