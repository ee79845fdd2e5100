"""Test-wide settings: CPU only, repository paths, the shared benchmark data."""

import os
import pathlib

import pytest

# Tests run on CPU everywhere (CI has no accelerator); set before anything imports JAX.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout (DESIGN.md: used in place, never copied into the repo).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Path of ../shared/data; tests that need it fail loudly when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"benchmark data not found at {SHARED_DATA} (expected beside the checkout)")
    return SHARED_DATA
