"""Test-wide settings: CPU only, repository paths, the benchmark data shipped in the package."""

import os
import pathlib

import pytest

# Tests run on CPU everywhere (CI has no accelerator); set before anything imports JAX.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The MBPP / APPS copies inside the repository (coderl_jax/data/benchmarks, with their
# README and licences); the tests never read a path outside the repository.
BENCHMARK_DATA = REPO_ROOT / "coderl_jax" / "data" / "benchmarks"


@pytest.fixture(scope="session")
def benchmark_data() -> pathlib.Path:
    """The repository's benchmark folder (mbpp/, apps/)."""
    if not BENCHMARK_DATA.is_dir():
        pytest.fail(f"benchmark data not found at {BENCHMARK_DATA}")
    return BENCHMARK_DATA
