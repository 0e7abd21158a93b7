"""One-click backend: a virtual environment in the add-on's user folder with the pinned torch (the
CPU or the CUDA build) and the backend package that ships inside the add-on
(``nstr_blender/_backend``, bundled by scripts/build_extension.py). Runs on a thread (``Setup.run``);
the preferences show ``Setup.state``.

Steps: find a Python that can make venvs, ``python -m venv``, ``pip install`` the chosen torch build,
``pip install <bundled backend>``, and a check that the new Python imports torch and the server.
Everything is built in ``backend_venv.partial``; only after the check passed is the ready marker
written and the folder renamed to ``backend_venv``, so a half-built venv is never used. A failure
leaves the ``.partial`` folder (never used, named in the preferences) and a retry resumes in it: pip
skips what it already installed and reuses its download cache.
Each failure ends with a one-line reason and the fix (often the command to run by hand).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AddonError
from .settings import PACKAGE_DIR, READY_MARKER, managed_venv, repo_root, venv_python

TORCH_VERSION = "2.13.0"         # the one torch the backend is tested with (pyproject.toml pins it)


@dataclass(frozen=True)
class TorchBuild:
    """One torch build "Set up backend" can install, with the sizes measured for it (or says it was not)."""

    key: str
    label: str
    requirement: str
    index_args: tuple[str, ...]
    download: str                    # what the first set-up downloads, as measured
    disk: str                        # the finished venv on disk, as measured

    def size_text(self) -> str:
        return f"{self.label}: downloads {self.download}; {self.disk} on disk"


# Measured on Linux x86_64, Python 3.11: a fresh venv with `pip install --report` of torch, then of the
# backend (the wheels pip took: 266 MiB of local files + 29 MiB fetched, as pip's log sized them; torch's
# wheel 191,794,682 bytes), and `du` of the venv: 1304 MiB. (A script repeating this through the add-on's
# own Setup was dropped: its `pip download` waited on the network index here.) The CUDA build's wheels were not downloaded on that machine (no GPU, and no
# local copy of them), so its size is stated as not measured rather than guessed.
TORCH_BUILDS: dict[str, TorchBuild] = {
    "cpu": TorchBuild("cpu", "CPU build", f"torch=={TORCH_VERSION}+cpu",
                      ("--extra-index-url", "https://download.pytorch.org/whl/cpu"),
                      download="295 MiB (the torch wheel: 183 MiB)", disk="1.3 GiB"),
    "cuda": TorchBuild("cuda", "CUDA build (NVIDIA GPU)", f"torch=={TORCH_VERSION}", (),
                       download="a size not measured here (its wheels were not downloaded where the CPU "
                                "build was measured)",
                       disk="a size not measured here"),
}


def offered_build(gpu_found: bool) -> str:
    """The torch build to offer first: CUDA when nvidia-smi lists a GPU, else CPU."""
    return "cuda" if gpu_found else "cpu"


def bundled_backend() -> Path | None:
    """The backend sources inside the installed add-on, else this checkout's backend/."""
    inside = PACKAGE_DIR / "_backend"
    if (inside / "pyproject.toml").is_file():
        return inside
    root = repo_root()
    return root / "backend" if root is not None and (root / "backend" / "pyproject.toml").is_file() else None


@dataclass
class SetupState:
    """What the preferences show: step i of n, its last output line, the outcome."""

    step: int = 0
    total: int = 5
    label: str = "not started"
    line: str = ""
    error: str = ""
    done: bool = False
    python: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.step > 0 and not self.done and not self.error


class SetupError(AddonError):
    """A step failed; str() is 'problem. fix'."""


def ready_build(venv: Path) -> str:
    """The torch build a finished set-up installed ("cpu" / "cuda"), from its marker; "" if unknown."""
    try:
        return str(json.loads((venv / READY_MARKER).read_text()).get("torch_build", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def base_pythons() -> list[str]:
    """Pythons that might make the venv: Blender's own (4.x/5.x bundle a full one), then the PATH's."""
    names = []
    exe = Path(sys.executable)
    if exe.name.startswith("python"):
        names.append(str(exe))
    for name in ("python3.11", "python3.12", "python3.10", "python3", "python"):
        found = shutil.which(name)
        if found and found not in names:
            names.append(found)
    return names


class Setup:
    """Make ``<folder>/backend_venv`` with the chosen torch build. ``run`` blocks (call it on a thread)."""

    def __init__(self, folder: Path | None = None, pip_args: tuple[str, ...] = (), build: str = "cpu",
                 source: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else managed_venv().parent
        self.venv = self.folder / "backend_venv"
        self.partial = self.folder / "backend_venv.partial"
        self.pip_args = list(pip_args)
        self.build = TORCH_BUILDS[build]
        self.source = source              # the backend to install; None: the one bundled with the add-on
        self.state = SetupState()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.state = SetupState()
        self.thread = threading.Thread(target=self.run, name="nstr-setup-backend", daemon=True)
        self.thread.start()

    def run(self) -> SetupState:
        st = self.state
        try:
            source = self.source or bundled_backend()
            if source is None:
                raise SetupError("this add-on has no bundled backend",
                                 "Reinstall it from a zip made by scripts/build_extension.py")
            self._step(1, "finding a Python that can make virtual environments")
            base = self._base_python()
            py = str(venv_python(self.partial))
            self._prepare_partial(base)
            self._step(3, f"installing {self.build.requirement} ({self.build.label}: {self.build.download})")
            self._pip("torch", [*self.build.index_args, self.build.requirement],
                      f"pip could not install {self.build.requirement}")
            self._step(4, "installing the NSTR backend")
            copy = self.folder / "backend_src"            # pip builds in the source folder: not the add-on's
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"))
            self._pip("backend", [str(copy)], "pip could not install the NSTR backend")
            self._step(5, "checking that the backend imports")
            self._run([py, "-c", "import torch, nstr.server; print('torch', torch.__version__)"],
                      "the new backend does not import", f"See the log; run {py} -c 'import nstr.server'")
            st.python = str(self._finish())
            st.done, st.label = True, f"ready: {st.python}"
        except SetupError as err:
            st.error = str(err)
            st.label = "failed"
        except Exception as err:  # noqa: BLE001 - a bug still reaches the preferences as one line
            st.error = f"{type(err).__name__}: {err}"
            st.label = "failed"
        return st

    def _prepare_partial(self, base: str) -> None:
        """Resume an unfinished set-up (``.partial``, or an unmarked venv from an older add-on), else make one."""
        if not self.partial.is_dir() and self.venv.is_dir() and not (self.venv / READY_MARKER).is_file():
            self.venv.rename(self.partial)
        if venv_python(self.partial).is_file():
            self._step(2, f"resuming the unfinished set-up in {self.partial}")
            return
        self._step(2, f"creating {self.partial}")
        shutil.rmtree(self.partial, ignore_errors=True)           # a folder with no Python in it: start over
        self._run([base, "-m", "venv", str(self.partial)], f"could not create a virtual environment with {base}",
                  "Install Python 3.10+ with venv (Debian: apt install python3-venv), or set "
                  "'Backend Python' by hand")

    def _pip(self, name: str, args: list[str], problem: str) -> None:
        py = str(venv_python(self.partial))
        report = self.partial / f"pip_{name}.json"        # what pip took: the set-up's size is measured from it
        self._run([py, "-m", "pip", "install", "--disable-pip-version-check", "--report", str(report),
                   *self.pip_args, *args], problem,
                  f"Check the network connection and press 'Set up backend' again (it resumes), or run by hand: "
                  f"{py} -m pip install {' '.join(args)}")

    def _finish(self) -> Path:
        """Mark the venv finished, then move it into place (an older finished one is replaced)."""
        (self.partial / READY_MARKER).write_text(json.dumps(
            {"torch_build": self.build.key, "requirement": self.build.requirement, "finished": time.time()}) + "\n")
        old = self.folder / "backend_venv.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.venv.exists():
            self.venv.rename(old)
        self.partial.rename(self.venv)
        shutil.rmtree(old, ignore_errors=True)
        return venv_python(self.venv)

    def _step(self, i: int, label: str) -> None:
        self.state.step, self.state.label, self.state.line = i, label, ""
        self.state.log.append(f"[{i}/{self.state.total}] {label}")

    def _base_python(self) -> str:
        tried = []
        for exe in base_pythons():
            try:
                ok = subprocess.run([exe, "-c", "import venv, ensurepip, sys; assert sys.version_info >= (3, 10)"],
                                    capture_output=True, timeout=60, env=_clean_env()).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
            if ok:
                return exe
            tried.append(exe)
        raise SetupError(f"no Python 3.10+ with venv found (tried: {', '.join(tried) or 'none'})",
                         "Install Python 3.10+ (Debian: apt install python3-venv), or set 'Backend Python' by hand")

    def _run(self, cmd: list[str], problem: str, fix: str) -> None:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, env=_clean_env())
        tail: list[str] = []
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                self.state.line = line[-200:]
                self.state.log.append(line)
                tail = (tail + [line])[-5:]
        if proc.wait() != 0:
            reason = next((ln for ln in reversed(tail) if "error" in ln.lower()), tail[-1] if tail else "no output")
            raise SetupError(f"{problem} ({reason.strip()[:200]})", fix)


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(key, None)                # Blender's bundled-Python settings would break another Python
    return env
