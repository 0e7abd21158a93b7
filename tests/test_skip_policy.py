"""The suite's skip policy (tests/conftest.py): a skip fails the run unless it is on the named list, so a
missing tool or package cannot turn whole areas green in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ALLOWED_SKIPS, skip_allowed

TESTS = Path(__file__).resolve().parent


def _run(tmp_path: Path, body: str, workers: list[str], target: str = "test_probe.py",
         **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(body)
    environ = {k: v for k, v in os.environ.items() if k not in ("NSTR_ALLOW_SKIPS", "PYTEST_XDIST_WORKER")}
    environ.update(PYTHONPATH=str(TESTS), **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", *workers,
                           target], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)


# one process, and the README's two workers (a worker's skips reach the policy through the controller)
WORKERS = pytest.mark.parametrize("workers", [[], ["-n", "2", "--dist", "loadfile"]], ids=["one", "xdist"])


@WORKERS
def test_a_skip_off_the_list_fails_the_run_and_is_named(tmp_path, workers):
    body = "import pytest\ndef test_tool():\n    pytest.skip('blender is not installed')\ndef test_ok():\n    pass\n"
    run = _run(tmp_path, body, workers)
    assert run.returncode == 1, run.stdout
    assert "test_probe.py::test_tool: blender is not installed" in run.stdout
    assert "NSTR_ALLOW_SKIPS=1" in run.stdout                     # the way out for a partial machine
    assert _run(tmp_path, body, workers, NSTR_ALLOW_SKIPS="1").returncode == 0
    assert _run(tmp_path, "def test_ok():\n    pass\n", workers).returncode == 0


@WORKERS
def test_a_module_that_skips_itself_fails_the_run(tmp_path, workers):
    """A missing package skips a whole file at import (``importorskip``) while the other files pass: that too
    is a skip off the list."""
    (tmp_path / "test_other.py").write_text("def test_ok():\n    pass\n")
    run = _run(tmp_path, "import pytest\npytest.importorskip('no_such_package_here')\ndef test_x():\n    pass\n",
               workers, target=".")
    assert run.returncode == 1, run.stdout
    assert "no_such_package_here" in run.stdout


def test_the_named_list_matches_by_file_and_reason():
    assert skip_allowed("tests/test_marching_cubes_torch.py::test_cuda_matches_the_cpu", "needs CUDA")
    assert not skip_allowed("tests/test_marching_cubes_torch.py::test_cuda_matches_the_cpu", "blender is missing")
    assert not skip_allowed("tests/test_blender_ui.py::test_screenshots_from_the_real_ui", "needs CUDA")
    for path, _reason in ALLOWED_SKIPS:                              # every entry names a real test file
        assert (TESTS.parent / path).is_file(), path
