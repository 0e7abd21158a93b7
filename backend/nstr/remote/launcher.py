"""Start the fitting server as a child process of Blender (or of any Python), standard library only.

Blender's own Python has no torch, so the server runs under a Python the user points to
(a venv with the ``nstr`` backend installed). Before starting, that Python is asked to
``import torch, nstr.server`` so a missing piece is reported by name instead of as a dead server.
The child gets a random token through its environment (not argv, which other users can read),
listens on a free loopback port it picks itself, and writes its URL to a file the launcher waits on.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Sequence

from .client import BackendClient, RemoteError

_PROBE = r"""
import json, sys
out = {"python": sys.version.split()[0], "missing": {}}
for name in ("torch", "nstr.server"):
    try:
        __import__(name)
    except BaseException as err:
        out["missing"][name] = (type(err).__name__ + ": " + str(err)).splitlines()[0][:300]
print(json.dumps(out))
"""


class LaunchError(RemoteError):
    """The server could not be started; ``str(err)`` says why and what to do."""


class LocalBackend:
    """A server process on this machine, owned by the caller and stopped at exit."""

    def __init__(self, python: str | os.PathLike[str], log_dir: str | os.PathLike[str], device: str = "auto",
                 jobs_dir: str | os.PathLike[str] | None = None, extra_args: Sequence[str] = ()) -> None:
        self.python = str(python)
        self.log_dir = Path(log_dir)
        self.device = device
        self.jobs_dir = Path(jobs_dir) if jobs_dir is not None else None
        self.extra_args = list(extra_args)
        self.token = secrets.token_urlsafe(24)
        self.url: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._registered = False
        self._checked: str | None = None  # the python that passed check_python (restarts skip the probe)

    @property
    def log_path(self) -> Path:
        return self.log_dir / "server.log"

    def client(self, timeout: float = 10.0) -> BackendClient:
        if self.url is None:
            raise LaunchError("the local backend is not running", "Start it first")
        return BackendClient(self.url, token=self.token, timeout=timeout)

    def check_python(self, timeout: float = 120.0) -> str:
        """Fail with a clear reason unless ``python`` can import torch and the backend; returns its version."""
        exe = Path(self.python)
        if not exe.is_file() or not os.access(exe, os.X_OK):
            raise LaunchError(f"the Python executable '{self.python}' does not exist or cannot be run",
                              "Set the backend Python in the add-on preferences to a python with torch and nstr")
        try:
            proc = subprocess.run([self.python, "-c", _PROBE], capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, env=self._child_env())
        except subprocess.TimeoutExpired:
            raise LaunchError(f"'{self.python}' took over {timeout:g} s to import torch",
                              "Check that Python installation from a terminal") from None
        except OSError as err:
            raise LaunchError(f"cannot run '{self.python}' ({err.strerror or err})",
                              "Point the add-on to a working Python executable") from None
        try:
            info = json.loads(proc.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise LaunchError(f"'{self.python}' is not a usable Python ({tail[0][:200]})",
                              "Point the add-on to a Python 3.10+ executable") from None
        missing = info.get("missing", {})
        if "torch" in missing:
            raise LaunchError(f"'{self.python}' has no torch ({missing['torch']})",
                              f"Install it: '{self.python}' -m pip install torch, then the backend package nstr")
        if "nstr.server" in missing:
            raise LaunchError(f"'{self.python}' cannot import the NSTR backend package ({missing['nstr.server']})",
                              f"Install it: '{self.python}' -m pip install -e PATH/TO/backend")
        return str(info.get("python", "?"))

    def start(self, timeout: float = 60.0) -> str:
        """Start the server and wait until it answers its health check; returns its URL."""
        if self.alive():
            return str(self.url)
        self.stop()
        if self._checked != self.python:
            self.check_python()
            self._checked = self.python
        self.log_dir.mkdir(parents=True, exist_ok=True)
        url_file = self.log_dir / "server.url"
        url_file.unlink(missing_ok=True)
        cmd = [self.python, "-m", "nstr", "serve", "--host", "127.0.0.1", "--port", "0",
               "--device", self.device, "--url-file", str(url_file), *self.extra_args]
        if os.name == "posix":  # the server exits by itself if this process dies without calling stop()
            cmd += ["--parent-pid", str(os.getpid())]
        if self.jobs_dir is not None:
            cmd += ["--jobs-dir", str(self.jobs_dir)]
        env = self._child_env()
        log = open(self.log_path, "ab")
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        kwargs: dict = {"start_new_session": True} if os.name == "posix" else \
            {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        try:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, **kwargs)
        except OSError as err:
            raise LaunchError(f"cannot start '{self.python}' ({err.strerror or err})",
                              "Point the add-on to a working Python executable") from None
        finally:
            log.close()
        if not self._registered:
            atexit.register(self.stop)
            self._registered = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise LaunchError(f"the backend exited during start-up: {self._log_tail()}",
                                  f"See the full log in {self.log_path}")
            if url_file.is_file():
                text = url_file.read_text().strip()
                if text:
                    self.url = text
                    try:
                        self.client(timeout=2.0).health()
                        return text
                    except RemoteError:
                        pass
            time.sleep(0.1)
        self.stop()
        raise LaunchError(f"the backend did not become healthy within {timeout:g} s",
                          f"See the log in {self.log_path}")

    def alive(self) -> bool:
        """The process runs and answers its health check."""
        if self.process is None or self.process.poll() is not None or self.url is None:
            return False
        try:
            self.client(timeout=2.0).health()
            return True
        except RemoteError:
            return False

    def restart(self, timeout: float = 60.0) -> str:
        self.stop()
        return self.start(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout``). Safe to call twice."""
        proc, self.process = self.process, None
        self.url = None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ, NSTR_TOKEN=self.token, PYTHONUNBUFFERED="1")
        env.pop("PYTHONHOME", None)  # set for Blender's bundled Python, it would break any other one
        return env

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        tail = [ln for ln in text[-lines:] if ln.strip()]
        return " | ".join(tail)[-400:] or "no output"


__all__ = ["LocalBackend", "LaunchError"]
