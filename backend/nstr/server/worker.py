"""The job queue: submission order, cancel, the public status records, and the engine's callback.

Jobs run on an :class:`~nstr.server.engine.Engine` (by default one worker thread in this process);
the queue starts the next job whenever the engine has a free slot, and learns everything about a
running job through one callback, :meth:`JobQueue.on_event`. Every state change is one SQLite
transaction (:mod:`nstr.server.store`), so a killed server restarts where it stopped: queued jobs
stay queued, a job that was running is marked failed (interrupted) with a message.
Cancelling a running job asks the engine to stop it; the task sees that through ``should_stop()``
and through its next progress report, so it stops within one step.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

from nstr.errors import ConfigError
from nstr.remote import wire
from nstr.server import device_info
from nstr.server.admission import Admission
from nstr.server.engine import Engine, JobSpec, describe_crash, plain  # noqa: F401 - describe_crash re-exported
from nstr.server.registry import TaskRegistry
from nstr.server.store import INPUT, INTERRUPTED, INTERRUPTED_FIX, TERMINAL, Job, JobStore

# Share of the whole job that each phase covers, for the overall progress fraction.
PHASE_SPANS: dict[str, tuple[float, float]] = {
    "loading": (0.0, 0.05), "sampling": (0.0, 0.05), "fitting": (0.05, 0.85),
    "extracting": (0.85, 0.95), "attributes": (0.95, 1.0),
}
SAVE_EVERY_S = 2.0  # progress is persisted at most this often (state changes always are)
_describe_crash = describe_crash  # the name earlier tests and callers use


class JobNotFound(KeyError):
    pass


class JobConflict(Exception):
    """The job is in a state that does not allow the action (e.g. the result of a running job)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


class JobQueue:
    def __init__(self, store: JobStore, registry: TaskRegistry, device: Any, engine: Engine,
                 admission: Admission, retention: Any = None) -> None:
        self.store = store
        self.registry = registry
        self.device = device
        self.engine = engine
        self.admission = admission
        self.retention = retention
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[str] = []  # queued ids in submission order
        self._running: set[str] = set()
        self._stopping = False
        self._last_save: dict[str, float] = {}

    # ------------------------------------------------------------ start / stop
    def recover(self) -> list[str]:
        """Load the index: finished jobs are listed again, queued ones queued again, and a job that
        was running when the server died is marked failed (interrupted) with the reason."""
        jobs, notes = self.store.load_all()
        with self._lock:
            for job in jobs:
                self._jobs[job.id] = job
                if job.state == "running":
                    job.cancel_requested = False
                    self._finish(job, "failed", error=INTERRUPTED, fix=INTERRUPTED_FIX, message="interrupted")
                    self._safe_log(job.id, "marked failed at server start: " + INTERRUPTED)
                    self._safe(self.store.save_error, job.id, f"{INTERRUPTED}\n{INTERRUPTED_FIX}\n")
                    notes.append(f"job {job.id} was interrupted by the last shutdown; marked failed")
                elif job.state == "queued":
                    self._queue.append(job.id)
        return notes

    def start(self) -> None:
        self.engine.bind(self.on_event)
        self._dispatch()

    def alive(self) -> bool:
        return self.engine.alive()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stop taking jobs; a running job is recorded as failed (interrupted) so it can be resubmitted.
        True when the engine stopped within ``timeout``."""
        with self._lock:
            self._stopping = True
            for job_id in list(self._running):
                job = self._jobs[job_id]
                job.cancel_requested = True
                self._finish(job, "failed", error="the server was stopped while this job was running",
                             fix=INTERRUPTED_FIX, message="interrupted")
                self._safe_log(job.id, "server stopped: job interrupted")
                self._safe(self.store.save_error, job.id, f"{job.error}\n{INTERRUPTED_FIX}\n")
                self.engine.cancel(job_id)
        return self.engine.stop(timeout)

    # --------------------------------------------------------------- requests
    def submit(self, task: Any, config: Any, staged: Path, *, key: str | None = None,
               resubmitted_from: str | None = None) -> tuple[Job, bool]:
        """Validate the staged upload (synchronously, so bad input is a 400, not a failed job) and queue
        it. Returns (job, created); with a known idempotency key, the job it made the first time."""
        try:
            if key is not None:
                existing = self.store.find_key(key)
                if existing is not None:
                    self.store.discard(staged)
                    return self._get(existing.id), False
            module = self.registry.get(task)
            if not isinstance(config, dict):
                raise ConfigError(f"'config' must be an object, not {type(config).__name__}",
                                  'Send e.g. {"preset": "quick", "steps": 200}')
            _meta, arrays = wire.read_file(staged / INPUT)
            config = self.admission.admit(task, module, config, self._with_device(config), arrays)
            if self._stopping:
                raise ConfigError("the server is shutting down", "Submit again once it has restarted")
            with self._lock:
                job, created = self.store.commit(staged, task, config, key, resubmitted_from)
                if created:
                    self._jobs[job.id] = job
                    self._queue.append(job.id)
                    self._safe_log(job.id, f"queued: task={task} config={config}"
                                   + (f" (resubmission of {resubmitted_from})" if resubmitted_from else ""))
                job = self._jobs[job.id]
        except BaseException:
            self.store.discard(staged)
            raise
        self._dispatch()
        return job, created

    def resubmit(self, job_id: str) -> Job:
        old = self._get(job_id)
        with self._lock:
            if old.state not in TERMINAL:
                raise JobConflict(f"job {job_id} is {old.state}; only finished jobs can be resubmitted",
                                  "Wait until it ends, or cancel it first")
            task, config = old.task, dict(old.config)
        staged = self.store.staging()
        import shutil

        shutil.copyfile(self.store.folder(job_id) / INPUT, staged / INPUT)
        return self.submit(task, config, staged, resubmitted_from=job_id)[0]

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._get(job_id)
        with self._lock:
            if job.state == "queued":
                self._queue.remove(job.id)
                self._finish(job, "cancelled", message="cancelled before it started")
                self._safe_log(job.id, "cancelled while queued")
            elif job.state == "running" and not job.cancel_requested:
                job.cancel_requested = True
                job.message = "cancelling..."
                self._safe(self.store.save, job)
                self._safe_log(job.id, "cancel requested")
                self.engine.cancel(job.id)
            return self._public(job)

    def delete(self, job_id: str) -> None:
        """Forget a finished job and remove its folder (inputs, log, result). Queued or running jobs
        must be cancelled first, so nothing the engine is using disappears."""
        job = self._get(job_id)
        with self._lock:
            if job.state not in TERMINAL:
                raise JobConflict(f"job {job_id} is {job.state}; it cannot be deleted yet", "Cancel it first")
            del self._jobs[job_id]
            self.store.delete(job_id)

    def status(self, job_id: str) -> dict[str, Any]:
        job = self._get(job_id)
        with self._lock:
            return self._public(job)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._public(j) for j in sorted(self._jobs.values(), key=lambda j: j.seq)]

    def finished(self) -> list[Job]:
        with self._lock:
            return [j for j in sorted(self._jobs.values(), key=lambda j: j.seq) if j.state in TERMINAL]

    def result_path(self, job_id: str) -> Path:
        job = self._get(job_id)
        with self._lock:
            if job.state != "done":
                detail = f": {job.error}" if job.error else ""
                fix = ("Wait until it is done (poll its status)" if job.state in ("queued", "running")
                       else "Resubmit it to get a result")
                raise JobConflict(f"job {job_id} has no result: it is {job.state}{detail}", fix)
        path = self.store.result_path(job_id)
        if not path.is_file():
            raise JobConflict(f"job {job_id} is done but its result file is missing", "Resubmit the job")
        return path

    def log(self, job_id: str) -> str:
        self._get(job_id)
        return self.store.read_log(job_id)

    def queue_length(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._running)

    def release_gpu(self) -> dict[str, Any]:
        with self._lock:
            busy = sorted(self._running)
        out = self.engine.release() or device_info.release(self.device, self.registry.loaded())
        if busy:
            out["note"] = f"job {busy[0]} is running; only memory it does not hold was released"
        return out

    # ---------------------------------------------------------------- engine
    def on_event(self, job_id: str, ev: Mapping[str, Any]) -> None:
        """The engine's one callback. Bookkeeping failures (a full disk) never stop the queue."""
        kind = ev.get("type")
        try:
            if kind == "log":
                self._safe_log(job_id, str(ev.get("line", "")))
            elif kind == "progress":
                self._progress(job_id, ev)
            elif kind == "end":
                self._end(job_id, ev)
        finally:
            if kind == "end":
                with self._lock:
                    self._running.discard(job_id)
                self._dispatch()
                if self.retention is not None:
                    self._safe(self.retention.apply, self)

    def _dispatch(self) -> None:
        """Start queued jobs while the engine has free slots."""
        while True:
            with self._lock:
                if self._stopping or not self._queue or len(self._running) >= self.engine.slots \
                        or not self.engine.alive():
                    return
                job = self._jobs[self._queue.pop(0)]
                self._running.add(job.id)
                job.state, job.started, job.message = "running", time.time(), "starting"
                self._safe(self.store.save, job)
                spec = JobSpec(id=job.id, task=job.task, config=self._with_device(job.config), folder=self.store.folder(job.id))
            try:
                self.engine.start(spec)
            except BaseException as err:  # the engine refused: this job fails, the next one is tried
                self.on_event(job.id, {"type": "end", "state": "failed", "message": "failed",
                                       "error": f"the engine could not start the job ({type(err).__name__}: {err})",
                                       "fix": "See the server's log", "trace": traceback.format_exc()})

    def _end(self, job_id: str, ev: Mapping[str, Any]) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != "running":  # the shutdown already recorded it
                return
            state = str(ev.get("state"))
            error, fix, trace = ev.get("error"), ev.get("fix"), ev.get("trace")
            if state not in TERMINAL:
                state, error, fix = "failed", f"the engine ended the job in state {state!r}", "See the server's log"
            if job.cancel_requested and state == "failed" and not error:
                state = "cancelled"
            # the files first, the state last: whoever sees the new state also finds its log and error
            if trace:
                self._safe_log(job.id, str(trace))
            if error:
                self._safe(self.store.save_error, job.id, f"{error}\n{fix or ''}\n{trace or ''}")
            self._safe_log(job.id, state + (f": {error}" if error else ""))
            if isinstance(ev.get("metrics"), dict):
                job.metrics = plain(ev["metrics"])
            if state == "done":
                job.progress, job.eta_s = 1.0, 0.0
            self._finish(job, state, error=error, fix=fix, message=str(ev.get("message") or state))

    def _finish(self, job: Job, state: str, *, message: str, error: str | None = None, fix: str | None = None) -> None:
        job.state, job.message, job.error, job.fix = state, message, error, fix
        job.finished = time.time()
        if state != "done":
            job.eta_s = None
        self._safe(self.store.save, job)

    def _progress(self, job_id: str, ev: Mapping[str, Any]) -> None:
        now = time.time()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != "running":
                return
            phase = str(ev.get("phase") or job.phase or "")
            changed = phase != job.phase
            job.phase = phase
            job.step = _int(ev.get("step"))
            job.total = _int(ev.get("total"))
            loss = ev.get("loss")
            job.loss = float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else None
            lo, hi = PHASE_SPANS.get(phase, (job.progress, job.progress))
            frac = job.step / job.total if job.total else 0.0
            job.progress = max(job.progress, min(1.0, lo + (hi - lo) * frac))
            eta = ev.get("eta_s")
            elapsed = now - (job.started or now)
            if isinstance(eta, (int, float)) and math.isfinite(eta):
                job.eta_s = float(eta)
            elif job.progress > 0.02:
                job.eta_s = elapsed * (1 - job.progress) / job.progress
            if isinstance(ev.get("metrics"), dict) and ev["metrics"]:
                job.metrics = plain(ev["metrics"])
            if not job.cancel_requested:
                job.message = f"{phase} {job.step}/{job.total}" if job.total else phase
            due = changed or now - self._last_save.get(job.id, 0.0) > SAVE_EVERY_S
            if due:
                self._last_save[job.id] = now
                self._safe(self.store.save, job)
        if due:
            loss_txt = f" loss={job.loss:.4g}" if job.loss is not None else ""
            self._safe_log(job.id, f"{phase} step {job.step}/{job.total}{loss_txt}")

    # ---------------------------------------------------------------- helpers
    def _safe(self, fn: Any, *a: Any) -> None:
        """Bookkeeping that may fail (disk full, open-file limit) without taking the queue down."""
        try:
            fn(*a)
        except Exception:
            traceback.print_exc()

    def _safe_log(self, job_id: str, line: str) -> None:
        self._safe(self.store.log, job_id, line)

    def _get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def _public(self, job: Job) -> dict[str, Any]:
        out = job.to_dict()
        out.pop("seq")
        if job.state == "running":
            out["queue_position"] = 0
        elif job.state == "queued":
            out["queue_position"] = self._queue.index(job.id) + 1
        else:
            out["queue_position"] = None
        return out

    def _with_device(self, config: dict[str, Any]) -> dict[str, Any]:
        """Jobs run on the server's device unless their config names one."""
        train = config.get("train")
        if "device" in config or "train.device" in config or (isinstance(train, dict) and "device" in train):
            return dict(config)
        return {**config, "device": self.device.type}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0
