"""``nstr serve --engine ray``: the server's queue runs on a Ray cluster, ``slots`` jobs at once.

The job index, the uploads and the results stay where the server keeps them (its jobs folder): the
engine reads ``input.nstr`` here, ships the job with its arrays to a Ray task (:func:`nstr.job.portable`:
cluster nodes need no shared file system), and writes the returned result into the job's folder itself.
Each job is the same Ray task as ``nstr batch`` runs (:func:`nstr.batch.cluster.run_on_worker`, which
runs :func:`nstr.job.run_job_spec` like every engine);
its progress comes back through the shared progress board. Cancel is ``ray.cancel``: first a
KeyboardInterrupt inside the task, then, after ``CANCEL_GRACE_S``, the worker process is killed.
A worker that dies on its own is retried by Ray (``max_retries``).
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from nstr.batch import cluster
from nstr.job import JobSpec, portable
from nstr.job_failure import describe_failure
from nstr.server.engine import Engine, failure_end, save_result

CANCEL_GRACE_S = 5.0
POLL_S = 0.25


class RayEngine(Engine):
    name = "ray"

    def __init__(self, device: Any = None, *, address: str | None = None,
                 cpus_per_job: float = 1.0, gpus_per_job: float = 0.0, max_retries: int = 3,
                 slots: int | None = None, local_cpus: int | None = None) -> None:
        from nstr.batch.engines import check_fits

        self.ray = cluster.require_ray()
        self._owns = not self.ray.is_initialized()
        self.cluster = cluster.connect(address, num_cpus=local_cpus)
        check_fits(self.ray, cpus_per_job, gpus_per_job)
        by_cpu = int(self.cluster["cpus"] // cpus_per_job) if cpus_per_job > 0 else 1 << 10
        by_gpu = int(self.cluster["gpus"] // gpus_per_job) if gpus_per_job > 0 else 1 << 10
        self.slots = max(1, slots or min(by_cpu, by_gpu))  # jobs at once: what the cluster holds
        self.board = cluster.make_board()
        self._fn = cluster.remote_fit(cpus=cpus_per_job, gpus=gpus_per_job, max_retries=max_retries)
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Any, JobSpec]] = {}  # job id -> (ref, spec)
        self._cancel_at: dict[str, float] = {}
        self._posted: dict[str, tuple] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="nstr-ray-engine", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the seam
    def start(self, spec: JobSpec) -> None:
        ref = self._fn.remote(portable(spec), self.board)
        with self._lock:
            self._running[spec.id] = (ref, spec)
        self.report(spec.id, {"type": "log", "line": f"submitted to Ray ({self.cluster['nodes']} node(s))"})

    def cancel(self, job_id: str) -> None:
        with self._lock:
            entry = self._running.get(job_id)
            if entry is None or job_id in self._cancel_at:
                return
            self._cancel_at[job_id] = time.monotonic() + CANCEL_GRACE_S
        self.ray.cancel(entry[0], force=False)  # KeyboardInterrupt inside the task
        self.report(job_id, {"type": "log", "line": "cancel sent to the Ray task"})

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping and self.ray.is_initialized()

    def stop(self, timeout: float = 5.0) -> bool:
        self._stopping = True
        with self._lock:
            refs = [ref for ref, _ in self._running.values()]
        for ref in refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:
                pass
        self._thread.join(timeout)
        if self._owns:
            self.ray.shutdown()
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while not self._stopping:
            try:
                self._tick()
            except Exception:  # the loop must outlive anything one job does
                traceback.print_exc()
                time.sleep(POLL_S)

    def _tick(self) -> None:
        with self._lock:
            refs = {ref: job_id for job_id, (ref, _) in self._running.items()}
            overdue = [j for j, t in self._cancel_at.items() if t < time.monotonic() and j in self._running]
        for job_id in overdue:  # the task did not stop on the interrupt: kill its worker
            self.ray.cancel(self._running[job_id][0], force=True)
            self._cancel_at[job_id] = float("inf")
        if not refs:
            time.sleep(POLL_S)
            return
        self.ray.wait(list(refs), num_returns=1, timeout=POLL_S)
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=0)
        try:
            snap = self.ray.get(self.board.snapshot.remote(), timeout=10)
        except Exception:
            snap = {}
        for job_id in refs.values():
            ev = snap.get(job_id)
            if ev and ev.get("phase") and ev.get("phase") != "starting":
                sig = (ev.get("phase"), ev.get("step"), ev.get("attempts"))
                if self._posted.get(job_id) != sig:
                    self._posted[job_id] = sig
                    self.report(job_id, {"type": "progress", "phase": ev["phase"], "step": ev.get("step") or 0,
                                         "total": ev.get("total") or 0, "loss": ev.get("loss"),
                                         "eta_s": ev.get("eta_s"), "metrics": {}})
        for ref in ready:
            self._finish(refs[ref], ref)

    def _finish(self, job_id: str, ref: Any) -> None:
        with self._lock:
            _, spec = self._running.pop(job_id)
            self._cancel_at.pop(job_id, None)
            self._posted.pop(job_id, None)
        end: dict[str, Any]
        try:
            result, job_report, info = self.ray.get(ref)
            self.report(job_id, {"type": "log", "line": f"ran on Ray node {info.get('node')} (pid {info.get('pid')})"})
            end = save_result(spec, result, job_report)
        except Exception as err:
            end = failure_end(describe_failure(err), str(err))
        self.report(job_id, {"type": "end", **end})
