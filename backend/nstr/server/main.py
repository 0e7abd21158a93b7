"""Start the server: resolve the device, recover the jobs folder, decide on the token, listen."""

from __future__ import annotations

import _thread
import ipaddress
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import NoReturn

from nstr.errors import ConfigError

DEFAULT_PORT = 8765
DEFAULT_MAX_BODY_MB = 512


def default_jobs_dir() -> Path:
    """Results are user data: keep them in the user's data folder, not a temporary one."""
    base = os.environ.get("XDG_DATA_HOME") or (Path.home() / ".local" / "share")
    return Path(base) / "nstr" / "jobs"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
          jobs_dir: Path | None = None, device: str = "auto", max_body_mb: float = DEFAULT_MAX_BODY_MB,
          url_file: Path | None = None, parent_pid: int | None = None) -> int:
    """Run until SIGINT/SIGTERM. A token is required off loopback; one is generated when none is given."""
    from nstr.device import resolve_device
    from nstr.server.app import FittingServer
    from nstr.server.registry import TaskRegistry
    from nstr.server.store import JobStore
    from nstr.server.worker import JobQueue

    token = token or os.environ.get("NSTR_TOKEN") or None
    generated = False
    if token is None and not is_loopback(host):
        token, generated = secrets.token_urlsafe(24), True
    if max_body_mb <= 0:
        raise ConfigError(f"--max-body-mb must be positive, not {max_body_mb}")
    dev = resolve_device(device)
    jobs_dir = Path(jobs_dir) if jobs_dir is not None else default_jobs_dir()
    try:
        store = JobStore(jobs_dir)
    except OSError as err:
        raise ConfigError(f"cannot use the jobs folder {jobs_dir} ({err.strerror or err})",
                          "Pass a writable folder with --jobs-dir") from None
    registry = TaskRegistry()
    for warning in registry.preload():
        _say(f"warning: {warning}")
    jobs = JobQueue(store, registry, dev)
    for note in jobs.recover():
        _say(note)
    try:
        server = FittingServer((host, port), jobs, token, int(max_body_mb * 2**20))
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err})",
                          "Choose another --port (0 picks a free one) or stop the program using it") from None
    jobs.start()
    _say(f"NSTR backend listening on {server.url} (device: {dev}, jobs: {jobs_dir}, "
         f"tasks: {', '.join(registry.available()) or 'none'})")
    if generated:
        _say(f"token: {token}   (not on loopback, so clients must pass --token {token})")
    elif token:
        _say("token: required (as given)")
    if url_file is not None:
        tmp = Path(str(url_file) + ".tmp")
        tmp.write_text(server.url + "\n")
        os.replace(tmp, url_file)

    def _stop(signum: int, frame: object) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        jobs.shutdown()
        server.server_close()
        _say("NSTR backend stopped")
    return 0


def _exit_with_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """Stop (gracefully) once the process that launched us is gone, even if it crashed and could not
    stop us itself: Blender killed or crashing must not leave a server holding the GPU."""
    def watch() -> None:
        while True:
            time.sleep(every_s)
            if os.getppid() != parent_pid:
                _say(f"the parent process {parent_pid} is gone; stopping")
                _thread.interrupt_main()
                return

    threading.Thread(target=watch, name="nstr-parent-watch", daemon=True).start()


def _say(line: str) -> None:
    print(line, flush=True)
