"""Ray, the distributed engine under ``--engine ray``: import check, connection, the remote fit (the
shared :func:`nstr.job.run_job_spec` on a worker), the progress board that running jobs report to, and
where a job ran. Shared by ``nstr batch`` and ``nstr serve --engine ray``.

Ray is optional: nothing here imports it at module load, and :func:`require_ray` turns its absence
into a one-line error that says how to install it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from nstr.errors import ConfigError
from nstr.job import JobSpec, run_job_spec

INSTALL_FIX = "Install it with: pip install 'nstr[ray]' (Ray 2.60.0), or use --engine local"
NO_CLUSTER_FIX = ("Start one with 'ray start --head' (and 'ray start --address HEAD:6379' on the other machines), "
                  "or leave out --address to start a local Ray instance")
REPORT_EVERY_S = 0.5  # a running job tells the board its progress at most this often (phase changes always)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray, which is not installed", INSTALL_FIX) from None
    return ray


def _check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds, not after Ray's minute of GCS reconnect attempts, when nothing listens there."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"--address '{address}' is not HOST:PORT or 'auto'", "Use e.g. --address 10.0.0.5:6379")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        raise ConfigError(f"no Ray cluster at {address} ({err.strerror or type(err).__name__})",
                          NO_CLUSTER_FIX) from None


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: float | None = None) -> dict[str, Any]:
    """Join the cluster at ``address`` ('auto' = the one this machine belongs to) or, with None, start a
    local Ray instance (loopback only, no dashboard). Returns what the cluster offers (CPU, GPU, nodes)."""
    ray = require_ray()
    if not ray.is_initialized():
        common = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
        if address is None:
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, _node_ip_address="127.0.0.1", **common)
        else:
            if address != "auto":
                _check_reachable(address)
            token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
            if token.is_file() or os.environ.get("RAY_AUTH_TOKEN"):  # 'ray start' clusters use token auth
                os.environ.setdefault("RAY_AUTH_MODE", "token")
            try:
                ray.init(address=address, **common)
            except ConnectionError as err:
                first = (str(err).splitlines() or [""])[0][:160]
                raise ConfigError(f"no Ray cluster at {address} ({first})", NO_CLUSTER_FIX) from None
    resources = ray.cluster_resources()
    return {"cpus": float(resources.get("CPU", 0)), "gpus": float(resources.get("GPU", 0)),
            "nodes": sum(1 for n in ray.nodes() if n.get("Alive"))}


def shutdown() -> None:
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


class ProgressBoard:
    """A Ray actor (on the driver's node) where running jobs post their phase and where each attempt
    signs in, so the driver can draw progress and count retries without waiting on the tasks."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.attempts: dict[str, int] = {}

    def post(self, key: str, event: dict[str, Any]) -> None:
        if event.get("phase") == "starting":
            self.attempts[key] = self.attempts.get(key, 0) + 1
            self.events[key] = {}
        self.events[key] = {**self.events.get(key, {}), **event}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: {**v, "attempts": self.attempts.get(k, 0)} for k, v in self.events.items()}


def make_board() -> Any:
    """The board, pinned to this (the driver's) node so that losing another node never loses it."""
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0)(ProgressBoard)
    return actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)).remote()


def _post(board: Any, key: str, event: dict[str, Any]) -> None:
    try:
        board.post.remote(key, event)
    except Exception:  # progress is best effort: a lost board must never fail a fit
        pass


def worker_info() -> dict[str, Any]:
    """Where this job runs: host, pid and (on Ray) the node id, for the summary's node column."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "node": socket.gethostname()}
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            node_id = ctx.get_node_id()
            info["node_id"] = node_id
            worker = getattr(ray, "_private").worker.global_worker  # the node's own address, not the host's
            ip = getattr(worker, "node_ip_address", None) or ray.util.get_node_ip_address()
            info["node"] = f"{ip}/{node_id[:8]}"
    except ImportError:
        pass
    return info


PROGRESS_KEYS = ("phase", "step", "total", "loss", "eta_s")  # what a job's progress carries on every engine


def run_on_worker(spec: JobSpec, board: Any) -> tuple[dict, dict, dict]:
    """The body of the Ray task: sign in, fit with throttled progress posts, return (arrays, report, where)."""
    info = worker_info()
    _post(board, spec.id, {"phase": "starting", "step": 0, "total": 0, **info})
    last = {"t": 0.0, "phase": None}

    def progress(ev: dict[str, Any]) -> None:
        now = time.monotonic()
        if ev.get("phase") != last["phase"] or now - last["t"] >= REPORT_EVERY_S:
            last["t"], last["phase"] = now, ev.get("phase")
            _post(board, spec.id, {k: ev.get(k) for k in PROGRESS_KEYS})

    arrays, report = run_job_spec(spec, progress=progress, should_stop=lambda: False)
    return arrays, report, info


def remote_fit(*, cpus: float, gpus: float, max_retries: int) -> Any:
    """The Ray remote function with this job's resources. Worker deaths are retried ``max_retries``
    times; an exception raised by the fit is not (it would only raise again): it fails that job alone."""
    ray = require_ray()
    threads = str(max(1, int(cpus)))
    return ray.remote(run_on_worker).options(
        num_cpus=cpus, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}})
