"""Shared test fixtures: the read-only real sample data beside the repository (../shared/data)."""

import os
from pathlib import Path

# before torch loads: busy-waiting OpenMP threads make CPU tests 10x slower on a shared machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` seen from the repo root; skips the test when it is absent."""
    path = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"real sample data not found at {path}: these tests need the shared data folder beside the repository")
    return path


@pytest.fixture(autouse=True)
def _keep_process_locale():
    """ITK's DICOM writer (used by fixtures that build DICOM series) resets the process locale to "C"; later tests
    would then read UTF-8 files as ASCII. Each test starts from the locale the session started with."""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    yield
    locale.setlocale(locale.LC_ALL, saved)
