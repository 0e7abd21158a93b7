"""Start the server: lock and recover the jobs folder, pick the engine, decide on the token, listen.

Signals: SIGTERM and SIGINT stop the server cleanly (exit 0): uvicorn finishes the open requests,
the running job is marked interrupted, the engine stops, whichever engine it is. Both are unblocked
and given handlers at start, whatever mask and dispositions the parent (Blender) left us, and taken
back once the engine is up: Ray's driver installs a SIGTERM handler that exits at once with code 15,
which left the running job "running" in the index and its Ray task unstopped. With ``--parent-pid`` a watchdog
thread asks the server to stop when that process is gone, and ends the process outright if the
graceful stop has not finished a few seconds later: an orphan never keeps the GPU.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from nstr.errors import ConfigError
from nstr.server.guard import is_loopback

DEFAULT_PORT = 8765
DEFAULT_MAX_BODY_MB = 512
MAX_BODY_MB_LIMIT = 64 * 1024  # a body limit past 64 GiB is a typo
HEADER_TIMEOUT_S = 10.0  # a request line and headers must arrive within this (nstr.server.header_timeout)
REQUEST_TIMEOUT_S = 300.0  # a request body must be complete this long after its head (nstr.server.bodies)
MIN_BODY_RATE_KIB = 64.0  # KiB/s a request body must average after a 5 s grace
DEFAULT_MIN_FREE_MB = 64.0  # disk kept free in the jobs folder: uploads and results that would eat it get 507
CONCURRENCY_LIMIT = 256  # open connections at once; more get 503 (no thread per connection)
PER_CLIENT_CONNECTIONS = 128  # one client address may hold this many of them
GIL_SWITCH_S = 0.001  # a fit in the worker thread hands the interpreter to requests this often (Python: 5 ms)
UPLOADS = 64  # request bodies received at once (nstr.server.bodies), at most half of them from one client
PARENT_GRACE_S = 6.0  # after the parent is gone: graceful stop first, then os._exit


def default_jobs_dir() -> Path:
    """Results are user data: keep them in the user's data folder, not a temporary one."""
    base = os.environ.get("XDG_DATA_HOME") or (Path.home() / ".local" / "share")
    return Path(base) / "nstr" / "jobs"


def check_max_body_mb(value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= MAX_BODY_MB_LIMIT:
        raise ConfigError(f"--max-body-mb must be a number of MiB between 0 and {MAX_BODY_MB_LIMIT}, not {value}",
                          f"Use e.g. --max-body-mb {DEFAULT_MAX_BODY_MB}")
    return float(value)


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
          jobs_dir: Path | None = None, device: str = "auto", max_body_mb: float = DEFAULT_MAX_BODY_MB,
          url_file: Path | None = None, parent_pid: int | None = None, engine: str = "local",
          data_roots: Sequence[str | os.PathLike[str]] = (), retention: Any = None,
          engine_options: dict[str, Any] | None = None, header_timeout_s: float = HEADER_TIMEOUT_S,
          request_timeout_s: float = REQUEST_TIMEOUT_S, min_body_rate_kib: float = MIN_BODY_RATE_KIB,
          min_free_mb: float = DEFAULT_MIN_FREE_MB) -> int:
    """Run until SIGINT/SIGTERM (or the parent's death). A token is required off loopback."""
    _take_signals()
    sys.setswitchinterval(GIL_SWITCH_S)
    import uvicorn

    from nstr.device import resolve_device
    from nstr.server.admission import Admission, DataRoots
    from nstr.server.app import build_app
    from nstr.server.bodies import BodyLimits, RequestStats
    from nstr.server.engine_choice import ENGINES
    from nstr.server.header_timeout import protocol_with_header_timeout
    from nstr.server.registry import TaskRegistry
    from nstr.server.retention import Retention
    from nstr.server.store import JobStore
    from nstr.server.worker import JobQueue

    token = token or os.environ.get("NSTR_TOKEN") or None
    generated = False
    if token is None and not is_loopback(host):
        token, generated = secrets.token_urlsafe(24), True
    max_body = int(check_max_body_mb(max_body_mb) * 2**20)
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'", "Choose one of: " + ", ".join(ENGINES))
    for flag, value in (("--request-timeout", request_timeout_s), ("--min-body-rate", min_body_rate_kib)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{flag} must be a positive number, not {value}", f"Leave {flag} out for its default")
    if not isinstance(min_free_mb, (int, float)) or not math.isfinite(min_free_mb) or min_free_mb < 0:
        raise ConfigError(f"--min-free-mb must be 0 or more, not {min_free_mb}", "Leave it out for its default")
    roots = DataRoots(data_roots)
    for root in roots.roots:
        if not root.is_dir():
            raise ConfigError(f"--data-root {root} is not a folder", "Pass existing dataset folders with --data-root")
    dev = resolve_device(device)
    jobs_dir = Path(jobs_dir).expanduser() if jobs_dir is not None else default_jobs_dir()
    limits = BodyLimits(max_body=max_body, request_timeout_s=request_timeout_s,
                        min_rate=min_body_rate_kib * 1024, uploads=UPLOADS, uploads_per_client=UPLOADS // 2)
    # takes the folder's lock: a second server stops here with a clear message
    store = JobStore(jobs_dir, min_free=int(min_free_mb * 2**20))
    try:
        registry = TaskRegistry()
        for warning in registry.preload():
            _say(f"warning: {warning}")
        policy = retention or Retention()
        runner = ENGINES[engine](device=dev, **(engine_options or {}))
        _take_signals()  # the engine may have installed its own (Ray's exits with code 15 on SIGTERM)
        jobs = JobQueue(store, registry, dev, runner, Admission(dev, roots), retention=policy, say=_say)
        for note in jobs.recover():
            _say(note)
        pruned = policy.apply(jobs)["removed"]
        if pruned:
            _say(f"retention: removed {len(pruned)} finished job(s) past {policy.max_age_days:g} days or "
                 f"{policy.max_total_gb:g} GB")
        try:
            sock = _listen(host, port)
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err})",
                              "Choose another --port (0 picks a free one) or stop the program using it") from None
        stats = RequestStats(say=_say)
        app = build_app(jobs, token, limits, policy, stats)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                limit_concurrency=CONCURRENCY_LIMIT, timeout_keep_alive=5,
                                timeout_graceful_shutdown=5, h11_max_incomplete_event_size=64 * 1024,
                                http=protocol_with_header_timeout(header_timeout_s, PER_CLIENT_CONNECTIONS, stats))
        server = uvicorn.Server(config)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"http://{shown}:{bound_port}"
        jobs.start()
        if store.lock is not None:
            store.lock.note(f"pid {os.getpid()}, {url}")
        _say(f"NSTR backend listening on {url} (device: {dev}, engine: {runner.name}, jobs: {jobs_dir}, "
             f"data roots: {', '.join(map(str, roots.roots)) or 'none'}, tasks: {', '.join(registry.available()) or 'none'})")
        if generated:
            _say(f"token: {token}   (not on loopback, so clients must pass --token {token})")
        elif token:
            _say("token: required (as given)")
        if url_file is not None:
            tmp = Path(str(url_file) + ".tmp")
            tmp.write_text(url + "\n")
            os.replace(tmp, url_file)
        if parent_pid is not None:
            _watch_parent(parent_pid, server, jobs)
        server.run(sockets=[sock])
        stopped = jobs.shutdown(timeout=3.0)
    finally:
        store.close()
    _say("NSTR backend stopped")
    if not stopped:  # a job is still inside torch: leave without running its C++ destructors
        _exit_now(0)
    return 0


def _take_signals() -> None:
    """Blender may hand us SIGINT ignored or blocked, and an engine may install its own handlers;
    take both stop signals back."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    # uvicorn installs its own handlers while serving and re-raises the signal it caught when it is
    # done; these are what it re-raises into, so the clean-up after server.run() still happens
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _note_signal)


def _note_signal(signum: int, frame: object) -> None:
    _say(f"received {signal.Signals(signum).name}; stopping")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def _watch_parent(parent_pid: int, server: Any, jobs: Any, every_s: float = 1.0) -> None:
    """Stop once the process that launched us is gone, even if it crashed and could not stop us."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        _say(f"the parent process {parent_pid} is gone; stopping")
        server.should_exit = True
        time.sleep(PARENT_GRACE_S)
        _say("graceful stop took too long; exiting")
        jobs.shutdown(timeout=0.5)
        _exit_now(0)

    threading.Thread(target=watch, name="nstr-parent-watch", daemon=True).start()


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _say(line: str) -> None:
    print(line, flush=True)
