"""coderl-jax: CodeRL in JAX/Flax. Metadata and dependencies are in pyproject.toml; this file
only says which folders make up the package (setuptools reads both)."""

from setuptools import find_packages, setup

# The thin mains live in top-level train/ and eval/ folders and the gin files in
# gin_configs/ (docs/design.md, "Layout"); they are installed under coderl_jax, so they never
# claim the top-level names `train`/`eval` and an installed package finds its gin files.
MAPPED = {"coderl_jax.train": "train", "coderl_jax.eval": "eval",
          "coderl_jax.gin_configs": "gin_configs"}

setup(
    packages=find_packages(include=["coderl_jax", "coderl_jax.*"]) + sorted(MAPPED),
    package_dir=MAPPED,
    package_data={
        "coderl_jax.gin_configs": ["*/*.gin"],
        "coderl_jax.data": ["benchmarks/*.md", "benchmarks/*/*"],
    },
    include_package_data=False,
)
