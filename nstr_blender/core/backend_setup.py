"""One-click backend: a virtual environment in the add-on's user folder with the pinned torch and
the backend package that ships inside the add-on (``nstr_blender/_backend``, bundled by
scripts/build_extension.py). Runs on a thread (``Setup.run``); the preferences show ``Setup.state``.

Steps: find a Python that can make venvs, ``python -m venv``, ``pip install torch==2.13.0``,
``pip install <bundled backend>``, and a check that the new Python imports torch and the server.
Each failure ends with a one-line reason and the fix (often the command to run by hand).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .settings import PACKAGE_DIR, repo_root, user_dir

TORCH_PIN = "torch==2.13.0"      # the one torch the backend is tested with (pyproject.toml pins it)


def bundled_backend() -> Path | None:
    """The backend sources inside the installed add-on, else this checkout's backend/."""
    inside = PACKAGE_DIR / "_backend"
    if (inside / "pyproject.toml").is_file():
        return inside
    root = repo_root()
    return root / "backend" if root is not None and (root / "backend" / "pyproject.toml").is_file() else None


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


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


class SetupError(Exception):
    """A step failed; str() is 'problem. fix'."""


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
    """Make ``<folder>/backend_venv``. ``run`` blocks (call it on a thread)."""

    def __init__(self, folder: Path | None = None, pip_args: tuple[str, ...] = ()) -> None:
        self.folder = Path(folder) if folder is not None else user_dir()
        self.venv = self.folder / "backend_venv"
        self.pip_args = list(pip_args)
        self.state = SetupState()
        self.thread: threading.Thread | None = None
        self.cancel_requested = False

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.state = SetupState()
        self.thread = threading.Thread(target=self.run, name="nstr-setup-backend", daemon=True)
        self.thread.start()

    def run(self) -> SetupState:
        st = self.state
        try:
            source = bundled_backend()
            if source is None:
                raise SetupError("this add-on has no bundled backend",
                                 "Reinstall it from a zip made by scripts/build_extension.py")
            self._step(1, "finding a Python that can make virtual environments")
            base = self._base_python()
            self._step(2, f"creating {self.venv}")
            if not venv_python(self.venv).is_file():
                self._run([base, "-m", "venv", str(self.venv)],
                          f"could not create a virtual environment with {base}",
                          "Install Python 3.10+ with venv (Debian: apt install python3-venv), or set "
                          "'Backend Python' by hand")
            py = str(venv_python(self.venv))
            self._step(3, f"installing {TORCH_PIN} (large download the first time)")
            self._run([py, "-m", "pip", "install", "--disable-pip-version-check", *self.pip_args, TORCH_PIN],
                      f"pip could not install {TORCH_PIN}",
                      f"Check the network connection, or run by hand: {py} -m pip install {TORCH_PIN}")
            self._step(4, "installing the NSTR backend")
            copy = self.folder / "backend_src"            # pip builds in the source folder: not the add-on's
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"))
            self._run([py, "-m", "pip", "install", "--disable-pip-version-check", *self.pip_args, str(copy)],
                      "pip could not install the NSTR backend",
                      f"Check the network connection, or run by hand: {py} -m pip install {copy}")
            self._step(5, "checking that the backend imports")
            self._run([py, "-c", "import torch, nstr.server; print('torch', torch.__version__)"],
                      "the new backend does not import", f"See the log; run {py} -c 'import nstr.server'")
            st.python, st.done, st.label = py, True, f"ready: {py}"
        except SetupError as err:
            st.error = str(err)
            st.label = "failed"
        except Exception as err:  # noqa: BLE001 - a bug still reaches the preferences as one line
            st.error = f"{type(err).__name__}: {err}"
            st.label = "failed"
        return st

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
