"""Shared test set-up: tiny CPU runs, paths to the shared real data."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"

# Two cores: keep torch from oversubscribing when tests run next to a server process.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# Every server the suite starts, directly or through Blender and fit.py, keeps its jobs under the suite's own
# data folder, never the user's ~/.local/share/nstr: a server the user (or a README demo) is running there
# holds that jobs folder, and a test's server must neither fail on it nor touch the user's jobs.
_DATA_HOME = tempfile.mkdtemp(prefix="nstr-tests-data-")
os.environ["XDG_DATA_HOME"] = _DATA_HOME
atexit.register(shutil.rmtree, _DATA_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA
