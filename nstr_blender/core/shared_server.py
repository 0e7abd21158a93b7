"""One local backend for all of this user's Blenders.

A local server locks its jobs folder, so a second Blender that launched its own would fail on the
lock. Instead, the Blender that launches the server records it in ``<user folder>/local_server.json``
(pid, URL, token, the Python and device it was launched with; readable by this user only), and a
second Blender with the same backend settings connects to that server when the pid lives and the
server answers with that token. Only the launching Blender stops it; the others then find its
process gone, say so, and send their unfinished jobs again once a backend is started.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .settings import user_dir

RECORD_NAME = "local_server.json"


@dataclass(frozen=True)
class SharedServer:
    pid: int
    url: str
    token: str
    python: str
    device: str


def record_path() -> Path:
    return user_dir() / RECORD_NAME


def write(server: SharedServer) -> None:
    """Record the server this Blender launched (the file is the user's alone: it holds the token)."""
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(server), fh)
    os.replace(tmp, path)


def read() -> SharedServer | None:
    try:
        data = json.loads(record_path().read_text())
        return SharedServer(int(data["pid"]), str(data["url"]), str(data["token"]), str(data["python"]),
                            str(data["device"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clear(pid: int) -> None:
    """Forget the record when it is this server's (a newer one of another Blender stays)."""
    found = read()
    if found is not None and found.pid == pid:
        record_path().unlink(missing_ok=True)


def still_shared(server: SharedServer) -> bool:
    """The server is still offered: its record still names it and its process lives. The Blender that
    launched it clears the record BEFORE stopping it, so a sharer never mistakes the shutdown for a
    network fault."""
    found = read()
    return found is not None and found.pid == server.pid and pid_alive(server.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # alive, another user's: not ours to share
        return False
    return True


def find(python: str, device: str, answers: Callable[[SharedServer], Any]) -> SharedServer | None:
    """The recorded server, when it was launched with this Python and device, its process lives and
    ``answers(server)`` (a health call with its token) does not raise; else None."""
    found = read()
    if found is None or found.python != python or found.device != device or not pid_alive(found.pid):
        return None
    try:
        answers(found)
    except Exception:  # noqa: BLE001 - any failure: not usable, launch our own
        return None
    return found
