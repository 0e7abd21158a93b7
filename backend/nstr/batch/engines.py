"""Where batch jobs run. Both engines take :class:`~nstr.job.JobSpec` s, run each with
:func:`nstr.job.run_job_spec` (as the server does) and hand back :class:`Outcome` s; the runner does
not care which one it drives.

* ``LocalEngine``: in this process, one job at a time (torch uses ``--cpus-per-job`` threads).
* ``RayEngine``: every job is a Ray task with ``--cpus-per-job`` / ``--gpus-per-job`` resources, so
  Ray runs as many at once as the cluster holds. A worker process or node that dies is retried
  (``max_retries``); an exception raised by the fit is not, it fails that job alone.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from nstr.batch.cluster import PROGRESS_KEYS, worker_info
from nstr.errors import ConfigError
from nstr.job import JobSpec, run_job_spec


@dataclass
class Outcome:
    key: str
    state: str  # done | failed | cancelled
    arrays: dict[str, np.ndarray] | None = None
    report: dict[str, Any] | None = None
    message: str = ""
    node: str = ""
    attempts: int = 1
    wall_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


class LocalEngine:
    """Runs the jobs here, in submission order; ``poll`` runs the next one to its end."""

    name = "local"

    def __init__(self, on_event: Callable[[], None] | None = None) -> None:
        self._queue: deque[JobSpec] = deque()
        self._current: JobSpec | None = None
        self._events: dict[str, dict[str, Any]] = {}
        self._on_event = on_event or (lambda: None)

    def submit(self, specs: list[JobSpec]) -> None:
        self._queue.extend(specs)

    def pending(self) -> int:
        return len(self._queue) + (self._current is not None)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._events.items()}

    def poll(self, timeout: float) -> list[Outcome]:
        if not self._queue:
            return []
        from nstr.job_failure import describe_failure

        spec = self._current = self._queue.popleft()
        info = worker_info()
        self._events[spec.id] = {"phase": "starting", "step": 0, "total": 0, "attempts": 1, **info}
        t0 = time.perf_counter()

        def progress(ev: dict[str, Any]) -> None:
            self._events[spec.id].update({k: ev.get(k) for k in PROGRESS_KEYS})
            self._on_event()

        try:
            arrays, report = run_job_spec(spec, progress=progress, should_stop=lambda: False)
            out = Outcome(spec.id, "done", arrays, report, node=info["node"], info=info)
        except Exception as err:  # a bug or out-of-memory in one fit must not end the batch
            failure = describe_failure(err)
            out = Outcome(spec.id, failure.state, message=failure.line(), node=info["node"], info=info)
        out.wall_s = time.perf_counter() - t0
        self._events.pop(spec.id, None)
        self._current = None
        return [out]

    def cancel_all(self) -> list[Outcome]:
        """After Ctrl-C: the job that was running and all queued ones are cancelled."""
        specs = ([self._current] if self._current else []) + list(self._queue)
        self._queue.clear()
        self._current = None
        self._events.clear()
        return [Outcome(s.id, "cancelled", message="cancelled (interrupted)", attempts=0) for s in specs]

    def close(self) -> None:
        pass


class RayEngine:
    """Submits every job at once as a Ray task; Ray schedules them on the cluster's free resources."""

    name = "ray"

    def __init__(self, address: str | None = None, *, cpus_per_job: float = 1.0, gpus_per_job: float = 0.0,
                 max_retries: int = 3, local_cpus: int | None = None) -> None:
        from nstr.batch.cluster import connect, make_board, remote_fit, require_ray

        self.ray = require_ray()
        self._owns = not self.ray.is_initialized()  # an instance we started (or joined) is ours to leave
        self.cluster = connect(address, num_cpus=local_cpus)
        check_fits(self.ray, cpus_per_job, gpus_per_job)
        self.board = make_board()
        self._fn = remote_fit(cpus=cpus_per_job, gpus=gpus_per_job, max_retries=max_retries)
        self._refs: dict[Any, str] = {}
        self._started: dict[str, float] = {}
        self._snap: dict[str, dict[str, Any]] = {}

    def submit(self, specs: list[JobSpec]) -> None:
        for spec in specs:
            self._refs[self._fn.remote(spec, self.board)] = spec.id
            self._started[spec.id] = time.perf_counter()

    def pending(self) -> int:
        return len(self._refs)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self._snap.items() if k in self._refs.values()}

    def _refresh(self) -> None:
        try:
            self._snap = self.ray.get(self.board.snapshot.remote(), timeout=10)
        except Exception:  # the board is for display only
            pass

    def poll(self, timeout: float) -> list[Outcome]:
        refs = list(self._refs)
        if not refs:
            return []
        self.ray.wait(refs, num_returns=1, timeout=timeout)
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        self._refresh()
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref: Any) -> Outcome:
        from nstr.job_failure import describe_failure

        key = self._refs.pop(ref)
        seen = self._snap.get(key, {})
        wall = time.perf_counter() - self._started.get(key, time.perf_counter())
        try:
            arrays, report, info = self.ray.get(ref)
        except Exception as err:
            failure = describe_failure(err)
            return Outcome(key, failure.state, message=failure.line(), node=str(seen.get("node", "")),
                           attempts=int(seen.get("attempts", 0)), wall_s=wall, info=dict(seen))
        attempts = int(self._snap.get(key, {}).get("attempts", 1)) or 1
        return Outcome(key, "done", arrays, report, node=str(info.get("node", "")), attempts=attempts,
                       wall_s=wall, info=info)

    def cancel(self, key: str, force: bool = True) -> None:
        for ref, k in self._refs.items():
            if k == key:
                self.ray.cancel(ref, force=force)

    def cancel_all(self) -> list[Outcome]:
        """Cancel every unfinished task (killing its worker); what finished meanwhile is still kept."""
        for ref in list(self._refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:
                pass
        outs: list[Outcome] = []
        deadline = time.monotonic() + 30
        while self._refs and time.monotonic() < deadline:
            for ref in self.ray.wait(list(self._refs), num_returns=len(self._refs), timeout=1.0)[0]:
                out = self._collect(ref)
                if out.state != "done":
                    out.state, out.message = "cancelled", "cancelled (interrupted)"
                outs.append(out)
        outs += [Outcome(k, "cancelled", message="cancelled (interrupted)", attempts=0) for k in self._refs.values()]
        self._refs.clear()
        return outs

    def close(self) -> None:
        if self._owns:
            self.ray.shutdown()


def check_fits(ray: Any, cpus: float, gpus: float) -> None:
    """A job no node can hold would wait forever: say so now."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    best_cpu = max((r.get("CPU", 0) for r in nodes), default=0)
    best_gpu = max((r.get("GPU", 0) for r in nodes), default=0)
    if gpus > 0 and best_gpu < gpus:
        raise ConfigError(f"--gpus-per-job {gpus:g} but no node of the Ray cluster has "
                          f"{'a GPU' if best_gpu == 0 else f'{gpus:g} GPUs'}",
                          "Use --gpus-per-job 0 (CPU) or add a GPU node to the cluster")
    if cpus > best_cpu:
        raise ConfigError(f"--cpus-per-job {cpus:g} but the largest node of the Ray cluster has {best_cpu:g} CPUs",
                          f"Use --cpus-per-job {max(1, int(best_cpu))} or less")
