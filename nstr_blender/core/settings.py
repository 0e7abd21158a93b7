"""Task and backend settings as plain data, and the job config they turn into.

The panel's properties, the headless script's flags and the tests all go through
these dataclasses, so "preset + overrides -> job config" is written once.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import AddonError
from .wording import PANEL, Wording

from .contract import MC_BACKENDS, OVERRIDE_KEYS, PRESETS, TASKS, preset_value

MC_CHOICES: tuple[str, ...] = ("preset", *MC_BACKENDS)   # the panel's choices: the preset's or one backend

PACKAGE_DIR = Path(__file__).resolve().parents[1]          # .../nstr_blender


@dataclass
class TaskSettings:
    """What to fit and how hard. 0 / 'preset' (or the preset's own value) means: keep the preset's value."""

    task: str = "sdf"
    preset: str = "quick"
    n_freqs: int = 0
    steps: int = 0
    resolution: int = 0
    mc_backend: str = "preset"
    extra: dict[str, Any] = field(default_factory=dict)   # any further override, e.g. from tests

    def job_config(self) -> dict[str, Any]:
        """The ``config`` of an ``sdf`` / ``nerf`` job: {"preset": ..., overrides...}."""
        if self.task not in TASKS:
            raise AddonError(f"unknown task '{self.task}'", f"Choose one of: {', '.join(TASKS)}")
        if self.preset not in PRESETS:
            raise AddonError(f"unknown preset '{self.preset}'", f"Choose one of: {', '.join(PRESETS)}")
        if self.mc_backend not in MC_CHOICES:
            raise AddonError(f"unknown marching-cubes backend '{self.mc_backend}'",
                             f"Choose one of: {', '.join(MC_CHOICES)}")
        config: dict[str, Any] = {"preset": self.preset}
        for name, key in OVERRIDE_KEYS[self.task].items():
            value = getattr(self, name)
            if value in (0, "preset", None) or value == preset_value(self.task, self.preset, name):
                continue                       # the preset's own value: nothing to override
            if key is None:
                raise AddonError(f"the {self.task} task has no '{name}' setting", "Set it back to 'preset'")
            if isinstance(value, int) and value < 0:
                raise AddonError(f"{name} must be 0 (preset) or more, not {value}", "Fix it in the panel")
            config[key] = value
        config.update(self.extra)
        return config


@dataclass
class BackendSettings:
    """Where the fitting runs: a local process we launch, or a server at a URL."""

    mode: str = "local"              # local | url
    python: str = ""                 # local: the Python that has torch and the nstr package
    url: str = "http://127.0.0.1:8765"
    token: str = ""
    log_dir: str = ""
    device: str = "auto"             # auto | cpu | cuda (local only)
    data_root: str = ""              # local: the folder whose captures the backend may read (--data-root)

    def resolved_python(self) -> str:
        """The Python to launch: the preference, else this project's own environment."""
        return self.python.strip() or default_python() or ""

    def resolved_data_root(self) -> Path:
        """The local backend's data root: the preference, else $NSTR_DATA_ROOT, else the user's home folder
        (the local server answers only this user's token on loopback, and lists cameras, never photos)."""
        text = self.data_root.strip() or os.environ.get("NSTR_DATA_ROOT", "").strip()
        return Path(text).expanduser() if text else Path.home()

    def resolved_log_dir(self) -> Path:
        return Path(self.log_dir).expanduser() if self.log_dir.strip() else default_log_dir()

    def check(self, online_access: bool = True, wording: Wording = PANEL) -> None:
        """Cheap checks before anything is launched or contacted, with the fix (in ``wording``: the
        panel's or the command line's). ``online_access`` is Blender's ``bpy.app.online_access``
        (4.2+): off, only loopback URLs may be contacted."""
        if self.mode == "url":
            parsed = urlparse(self.url.strip())
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise AddonError(f"backend URL '{self.url}' is not an http(s) address",
                                 f"{wording.url}, e.g. http://127.0.0.1:8765")
            if not online_access and not is_loopback(parsed.hostname or ""):
                raise AddonError(f"online access is disabled in Blender, so the add-on may not contact {parsed.hostname}",
                                 "Allow it in Preferences > System > Network > Allow Online Access, "
                                 "or use a local backend (127.0.0.1)")
            return
        if self.mode != "local":
            raise AddonError(f"unknown backend mode '{self.mode}'", "Choose 'local' or 'url' in the preferences")
        python = self.resolved_python()
        if not python:
            raise AddonError("no Python for the backend is set",
                             f"{wording.python} with a Python that has torch and nstr "
                             "(e.g. <repo>/.venv/bin/python)")
        path = Path(python).expanduser()
        if not (path.is_file() or shutil.which(python)):
            raise AddonError(f"backend Python '{python}' does not exist",
                             f"{wording.python} with an existing Python (run scripts/setup.sh to make .venv)")
        if self.data_root.strip() and not self.resolved_data_root().is_dir():
            raise AddonError(f"the Captures folder '{self.data_root}' does not exist",
                             "Choose an existing folder in the add-on preferences, or leave it empty (your home)")

    def data_root_args(self) -> list[str]:
        """The local server's ``--data-root`` flag (none when the folder is missing: captures are then refused
        by the server in one line, and meshes and rendered views still fit)."""
        root = self.resolved_data_root()
        return ["--data-root", str(root)] if root.is_dir() else []


def is_loopback(host: str) -> bool:
    """True for this machine's own addresses (no online access needed): localhost, 127.x, ::1."""
    import ipaddress
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_overrides(text: str) -> dict[str, Any]:
    """'train.batch_size=4096 field.width=32' (spaces or commas) -> {key: value}; numbers and
    true/false become JSON values, anything else stays a string (the backend validates)."""
    out: dict[str, Any] = {}
    for item in text.replace(",", " ").split():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise AddonError(f"override '{item}' is not KEY=VALUE", "Write e.g. train.batch_size=4096")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def repo_root() -> Path | None:
    """The checkout this add-on runs from (its parent holds backend/nstr), else None. An installed
    zip records no path of the machine it was built on, so it never points at someone else's disk."""
    here = PACKAGE_DIR.parent
    return here if (here / "backend" / "nstr").is_dir() else None


def default_python() -> str | None:
    """$NSTR_PYTHON, else the venv "Set up backend" finished, else <checkout>/.venv/bin/python."""
    return backend_choice().python or None


@dataclass(frozen=True)
class BackendChoice:
    """Which Python a local backend will launch, where that choice came from, and a set-up that did
    not finish (never used: it is named so the user knows why it is ignored)."""

    python: str = ""                 # "" = nothing usable: not set up
    origin: str = ""                 # "Backend Python", "$NSTR_PYTHON", "Set up backend", "this checkout's .venv"
    unfinished: str = ""             # the folder of an unfinished "Set up backend", if any


def backend_choice(preference: str = "") -> BackendChoice:
    """The preference, else $NSTR_PYTHON, else the finished set-up venv, else this checkout's .venv."""
    unfinished = unfinished_setup()
    left = str(unfinished) if unfinished is not None else ""
    if preference.strip():
        return BackendChoice(preference.strip(), "Backend Python", left)
    env = os.environ.get("NSTR_PYTHON", "").strip()
    if env:
        return BackendChoice(env, "$NSTR_PYTHON", left)
    if managed_ready():
        return BackendChoice(str(managed_python()), "Set up backend", left)
    root = repo_root()
    if root is not None:
        for rel in (".venv/bin/python", ".venv/Scripts/python.exe"):
            if (root / rel).is_file():
                return BackendChoice(str(root / rel), "this checkout's .venv", left)
    return BackendChoice("", "", left)


_USER_DIR: list[Path] = []   # set once by the bpy glue (blender/userdir.py); empty under a plain Python


def set_user_dir(path: Path) -> None:
    """Record the add-on's user folder (Blender's extension_path_user, or the legacy equivalent)."""
    _USER_DIR[:] = [Path(path)]


def user_dir() -> Path:
    """The add-on's own writable folder: logs, backend venv, NeRF views of unsaved files."""
    if _USER_DIR:
        return _USER_DIR[0]
    env = os.environ.get("NSTR_USER_DIR", "").strip()
    if env:
        return Path(env)
    return Path.home() / ".local" / "share" / "nstr_blender"


def default_log_dir() -> Path:
    """Logs of the launched backend: $NSTR_LOG_DIR, else <user folder>/logs."""
    env = os.environ.get("NSTR_LOG_DIR", "").strip()
    if env:
        return Path(env)
    return user_dir() / "logs"


READY_MARKER = ".nstr-ready"      # written into the venv by "Set up backend" after its last check passed


def managed_venv() -> Path:
    """The venv that "Set up backend" makes in the user folder (built in ``<it>.partial``, then renamed)."""
    return user_dir() / "backend_venv"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def managed_python() -> Path:
    """The Python of the venv that "Set up backend" makes in the user folder."""
    return venv_python(managed_venv())


def managed_ready() -> bool:
    """True only for a finished set-up: its marker is the last thing written, after the check step."""
    return (managed_venv() / READY_MARKER).is_file() and managed_python().is_file()


def unfinished_setup() -> Path | None:
    """A set-up that stopped part-way (``backend_venv.partial``, or a venv with no marker): never used;
    "Set up backend" resumes from it."""
    partial = managed_venv().with_name(managed_venv().name + ".partial")
    if partial.is_dir():
        return partial
    if managed_venv().is_dir() and not managed_ready():
        return managed_venv()
    return None
