"""Shared test fixtures: the read-only real sample data beside the repository (../shared/data)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` seen from the repo root; skips the test when it is absent."""
    path = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"real sample data not found at {path}: these tests need the shared data folder beside the repository")
    return path
