"""Shared test fixtures: the read-only real sample data beside the repository (../shared/data)."""

import os
from pathlib import Path

# before torch loads: busy-waiting OpenMP threads make CPU tests 10x slower on a shared machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import importlib.util  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def bench_script():
    """``bench_script("bench_anatomy")``: a script of ``bench/`` loaded as a module by its path (they are not a package)."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return load


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
