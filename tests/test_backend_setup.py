"""Honest set-up, without Blender: the zip carries no path of the machine that built it; "Using:"
names the Python and device that will really be used, or "not set up"; an unfinished set-up is never
used; the torch build offered follows nvidia-smi. Each check runs the add-on's core as installed
(extracted from a freshly built zip) in its own Python, with real folders and a real venv.
(The full set-up with torch, and its resume, runs in real Blender: tests/test_blender_setup.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import build_extension  # noqa: E402

# A real line of `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader`.
NVIDIA_SMI_LINE = "NVIDIA GeForce RTX 4090, 24564 MiB"

REPORT = r'''
import json, sys
from pathlib import Path
from nstr_blender.core.backend_status import offer_lines, using_lines
from nstr_blender.core.gpu_probe import nvidia_gpus
from nstr_blender.core.settings import backend_choice, repo_root
gpus = nvidia_gpus()
choice = backend_choice(sys.argv[1])
print(json.dumps({"repo_root": str(repo_root()), "python": choice.python, "unfinished": choice.unfinished,
                  "using": using_lines(choice, "auto", gpus), "offer": offer_lines(gpus)}))
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The add-on as a user gets it: the zip built from this worktree, extracted."""
    root = tmp_path_factory.mktemp("installed")
    zip_path = build_extension.build(root / "dist")
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "site")
    return root


def report(installed: Path, user_dir: Path, preference: str = "", path_first: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NSTR_PYTHON", "PYTHONPATH")}
    env.update(NSTR_USER_DIR=str(user_dir), PYTHONPATH=str(installed / "site"))
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    proc = subprocess.run([sys.executable, "-c", REPORT, preference], capture_output=True, text=True, env=env,
                          cwd=installed, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_zip_holds_no_path_of_the_build_machine(installed):
    machine_paths = {str(REPO), str(REPO.parent), "/work", str(Path.home()) + "/"}
    zip_path = next((installed / "dist").glob("*.zip"))
    found = []
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            text = zf.read(name).decode("utf-8", errors="replace")
            found += [(name, p) for p in machine_paths if p in text]
    assert found == []
    assert len(zipfile.ZipFile(zip_path).namelist()) > 50          # the whole add-on was searched


def test_using_says_not_set_up_and_ignores_an_unfinished_venv(installed, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    out = report(installed, user)
    assert out["repo_root"] == "None"                  # installed: no checkout is looked for
    assert out["python"] == ""
    assert out["using"] == ["Backend: not set up. Press 'Set up backend', or set 'Backend Python'"]

    venv = user / "backend_venv"                       # a real venv that no set-up finished
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    out = report(installed, user)
    assert out["python"] == ""
    assert out["unfinished"] == str(venv)
    assert out["using"][1] == f"Unfinished set-up in {venv} is not used; 'Set up backend' resumes it"

    (venv / ".nstr-ready").write_text(json.dumps({"torch_build": "cpu"}))    # what Setup writes last
    out = report(installed, user)
    assert out["python"] == str(venv / "bin" / "python") and out["unfinished"] == ""
    assert out["using"] == [f"Using: {venv}/bin/python (from Set up backend) on CPU "
                            "(no NVIDIA GPU found (nvidia-smi))"]

    out = report(installed, user, preference="/usr/bin/python3")              # the preference wins
    assert out["using"][0].startswith("Using: /usr/bin/python3 (from Backend Python) on CPU")


def test_no_nvidia_smi_offers_the_cpu_build(installed, tmp_path):
    import shutil
    assert shutil.which("nvidia-smi") is None          # this machine has no GPU: the absent path, for real
    out = report(installed, tmp_path)
    assert out["offer"][0] == "no NVIDIA GPU found (nvidia-smi): offering the CPU build"
    assert out["offer"][1].startswith("CPU build: downloads ")
    assert out["offer"][2].startswith("CUDA build (NVIDIA GPU): downloads a size not measured here")


def test_an_nvidia_gpu_offers_the_cuda_build(installed, tmp_path):
    # No GPU exists here, so a tiny program named nvidia-smi stands in for the driver's: it answers the
    # query the add-on sends with a real-format line, and fails on anything else (as a wrong query would).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n"
                   '[ "$1" = "--query-gpu=name,memory.total" ] && [ "$2" = "--format=csv,noheader" ] || exit 6\n'
                   f"echo '{NVIDIA_SMI_LINE}'\n")
    smi.chmod(0o755)
    user = tmp_path / "user"
    venv = user / "backend_venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (venv / ".nstr-ready").write_text(json.dumps({"torch_build": "cpu"}))
    out = report(installed, user, path_first=bin_dir)
    assert out["offer"][0] == "NVIDIA GeForce RTX 4090 (24564 MiB): offering the CUDA build (NVIDIA GPU)"
    assert out["offer"][1].startswith("CUDA build (NVIDIA GPU): ")
    # the finished set-up has torch's CPU build, so 'auto' will not use the GPU, and says so
    assert out["using"] == [f"Using: {venv}/bin/python (from Set up backend) on CPU: this set-up has torch's "
                            "CPU build although NVIDIA GeForce RTX 4090 (24564 MiB) is present"]
