"""The engine seam: what runs a job, apart from what queues it.

:class:`~nstr.server.worker.JobQueue` owns the jobs (the index, the queue order, cancel, the
public status). An :class:`Engine` only executes: the queue calls ``start(spec)`` when a slot is
free, ``cancel(job_id)`` when the user cancels, ``alive()`` for the health check and ``stop()`` at
shutdown. The engine reports back through ONE callback, ``report(job_id, event)``, with events:

* ``{"type": "log", "line": str}``                 a line for the job's log.txt
* ``{"type": "progress", "phase", "step", "total", "loss", "eta_s", "metrics"}``
* ``{"type": "end", "state": "done"|"failed"|"cancelled", "message", "error", "fix", "trace", "metrics"}``

exactly one ``end`` per started job, whatever happens. A job is a :class:`nstr.job.JobSpec` whose
input is the upload in its folder; :func:`execute` is the whole life of one job (the task run by
:func:`nstr.job.run_job_spec`, as every engine of the server and the batch command runs it, then the
compressed result written) and never raises, so any engine gets the same failure handling.
Engines are chosen with ``nstr serve --engine NAME`` from :data:`nstr.server.engine_choice.ENGINES`.
"""

from __future__ import annotations

import abc
import gc
import json
import math
import queue
import threading
import traceback
from typing import Any, Callable, Mapping

from nstr.errors import Cancelled
from nstr.job import JobSpec, run_job_spec
from nstr.job_failure import Failure, describe_failure
from nstr.jsonable import jsonable
from nstr.server.store import StorageError, fault, write_result

Report = Callable[[str, dict[str, Any]], None]


class Engine(abc.ABC):
    """Runs jobs. ``slots`` jobs at once; the queue never starts more."""

    name = "abstract"
    slots = 1

    def bind(self, report: Report) -> None:
        self.report = report

    @abc.abstractmethod
    def start(self, spec: JobSpec) -> None:
        """Begin running ``spec`` (returns at once); report an ``end`` event later."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> None:
        """Ask a started job to stop (it then ends as cancelled, or as whatever it reached first)."""

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether jobs can still run (the health check answers 503 otherwise)."""

    @abc.abstractmethod
    def stop(self, timeout: float = 5.0) -> bool:
        """Stop running jobs and the engine; True when everything stopped within ``timeout``."""

    def release(self) -> dict[str, Any] | None:
        """Optional: free cached device memory between jobs (``POST /v1/release-gpu``)."""
        return None


def execute(spec: JobSpec, report: Report, should_stop: Callable[[], bool]) -> None:
    """Run one job to its end event. Never raises: an exception anywhere, saving the result included,
    becomes a failed job with a one-line message (the traceback goes to its log)."""
    end: dict[str, Any]
    try:
        report(spec.id, {"type": "log", "line": "started"})

        def progress(ev: Mapping[str, Any]) -> None:
            if should_stop():
                raise Cancelled("cancelled by the user")
            report(spec.id, {**ev, "type": "progress"})

        result, job_report = run_job_spec(spec, progress=progress, should_stop=should_stop)
        if should_stop():
            raise Cancelled("cancelled by the user")
        end = save_result(spec, result, job_report)
    except BaseException as err:  # a bug, an out-of-memory, a full disk: this job fails, the server carries on
        end = failure_end(describe_failure(err), traceback.format_exc())
    try:
        report(spec.id, {"type": "end", **end})
    except BaseException:  # the queue's own bookkeeping failed; it logs that itself
        traceback.print_exc()


def save_result(spec: JobSpec, result: Mapping[str, Any], job_report: Any) -> dict[str, Any]:
    """Write a finished job's result into its folder; the ``end`` event: done, or failed with why it
    could not be saved (a disk without room is named with its free space). Every engine ends a job here."""
    assert spec.folder is not None, "a server job has a folder"
    try:
        meta = {"job": spec.id, "task": spec.task, "report": json.loads(json.dumps(job_report, default=jsonable))}
        write_result(spec.folder, meta, result, job_report, min_free=spec.min_free)
    except StorageError as err:
        return {"state": "failed", "message": "failed", "error": f"the result could not be saved: {err.problem}",
                "fix": err.fix, "trace": traceback.format_exc()}
    except Exception as err:
        return {"state": "failed", "message": "failed", "trace": traceback.format_exc(),
                "error": f"the result could not be saved ({type(err).__name__}: {err})".splitlines()[0][:300],
                "fix": "Check the disk space, the open-file limit and the permissions of the jobs folder"}
    metrics = job_report.get("metrics", {}) if isinstance(job_report, dict) else {}
    return {"state": "done", "message": "done", "metrics": plain(metrics if isinstance(metrics, dict) else {})}


class LocalEngine(Engine):
    """One worker thread in this process: a fit uses the whole device, a second at once only slows both."""

    name = "local"
    slots = 1

    def __init__(self, device: Any) -> None:
        self.device = device
        self._inbox: queue.Queue[JobSpec | None] = queue.Queue()
        self._cancelled: set[str] = set()
        self._stopping = False
        self._lock = threading.Lock()
        self.ready = threading.Event()  # set once the job thread runs, at its own priority
        self._thread = threading.Thread(target=self._loop, name="nstr-job-worker", daemon=True)
        self._thread.start()

    def start(self, spec: JobSpec) -> None:
        self._inbox.put(spec)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def stop(self, timeout: float = 5.0) -> bool:
        self._stopping = True
        self._inbox.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        _lower_priority()
        self.ready.set()
        settled = True
        while True:
            try:  # idle for a while after a job: the one full collection, where no job waits for it
                spec = self._inbox.get(timeout=None if settled else IDLE_SETTLE_S)
            except queue.Empty:
                settle_heap()
                settled = True
                continue
            if spec is None or self._stopping:
                return
            try:
                execute(spec, self.report, lambda: self._stopping or spec.id in self._cancelled)
            except BaseException:  # execute() never raises; this is the last line of defence
                traceback.print_exc()
            finally:
                with self._lock:
                    self._cancelled.discard(spec.id)
                self._free_memory()
                settled = False
            if fault("worker_exit"):  # NSTR_FAULT=worker_exit: the worker thread dies after one job
                return

    def _free_memory(self) -> None:
        """After a job: its garbage collected (only what is not frozen: about what the job made), what
        lives on frozen out of the collector's later passes (``gc.freeze``), and on CUDA the cache
        emptied. A full pass over this process (torch and the rest imported, a few fits done) holds
        the interpreter for 100-140 ms; left to itself the collector ran such passes in the middle of
        request bursts, and every request waited (50 submits at once while a fit ran, after 50
        finished jobs: p95 430 ms). Frozen objects are not scanned again; the full pass that also
        collects cycles among them runs once the worker has been idle for IDLE_SETTLE_S
        (:func:`settle_heap`), so nothing leaks and no finished job's download waits for it."""
        gc.collect()
        gc.freeze()
        if getattr(self.device, "type", "cpu") == "cuda":
            import torch

            torch.cuda.empty_cache()


IDLE_SETTLE_S = 2.0  # the worker settles the heap after this long without a job


def settle_heap() -> None:
    """One full garbage collection, frozen objects included, then the survivors frozen again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


JOB_NICENESS = 10  # the job thread's niceness: requests come first when they compete for the CPU


def _lower_priority() -> None:
    """Run this thread, and the compute threads it starts (torch's pool inherits it), at a lower CPU
    priority than the request threads: a fit is throughput and a request is latency. Linux sets a
    niceness per thread; where that is not possible nothing changes."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)
    except (AttributeError, OSError):
        pass


def failure_end(failure: Failure, trace: str) -> dict[str, Any]:
    """The ``end`` event of a job that raised (every engine's, from :func:`nstr.job_failure.describe_failure`)."""
    if failure.state == "cancelled":
        return {"state": "cancelled", "message": failure.problem}
    return {"state": "failed", "message": "failed", "error": failure.problem, "fix": failure.fix or None,
            "trace": trace}


def plain(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as JSON scalars (tensors and numpy scalars unwrapped, NaN/inf as None)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if hasattr(v, "item") and callable(v.item):
            try:
                v = v.item()
            except (ValueError, RuntimeError):
                continue
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[str(k)] = v
    return out
