"""The job queue: submission order, cancel, the public status records, and the engine's callback.

Jobs run on an :class:`~nstr.server.engine.Engine` (by default one worker thread in this process);
the queue starts the next job whenever the engine has a free slot, and learns everything about a
running job through one callback, :meth:`JobQueue.on_event`. Every state change is one SQLite
transaction (:mod:`nstr.server.store`), so a killed server restarts where it stopped: queued jobs
stay queued, a job that was running is marked failed (interrupted) with a message.
Cancelling a running job asks the engine to stop it; the task sees that through ``should_stop()``
and through its next progress report, so it stops within one step.

The index is written first and the change applied to what clients see only once that write
succeeded, so the two never disagree on a job's state (progress, persisted every few seconds, may run
ahead: it is not state). A write that fails in a request fails the request (507); one that fails
in the worker halts the queue (health: 503 ``storage_fault``) and keeps the change pending, retried
every ``RETRY_S`` until the index takes it again, then the queue goes on. Nothing is ever reported
failed that the index does not hold as failed, so nothing reported failed runs again after a restart.
Index writes hold their own lock, never the one that status and list requests wait for.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

from nstr.errors import ConfigError, NSTRError
from nstr.remote import wire
from nstr.server import device_info
from nstr.server.admission import Admission
from nstr.job import JobSpec
from nstr.server.engine import Engine, plain
from nstr.server.eta import PHASE_SPANS, JobEta, StageCosts  # noqa: F401 - PHASE_SPANS re-exported
from nstr.server.registry import TaskRegistry
from nstr.server.store import INPUT, INTERRUPTED, INTERRUPTED_FIX, TERMINAL, Job, JobStore, StorageError

# Share of the whole job that each phase covers, for the overall progress fraction.
SAVE_EVERY_S = 2.0  # progress is persisted at most this often (state changes always are)
RETRY_S = 2.0  # a halted queue tries its pending index writes again this often


class JobNotFound(KeyError):
    pass


class JobConflict(NSTRError):
    """The job is in a state that does not allow the action (e.g. the result of a running job). HTTP 409."""


class JobQueue:
    def __init__(self, store: JobStore, registry: TaskRegistry, device: Any, engine: Engine,
                 admission: Admission, retention: Any = None, say: Callable[[str], None] = print) -> None:
        self.store = store
        self.registry = registry
        self.device = device
        self.engine = engine
        self.admission = admission
        self.retention = retention
        self.say = say
        self._lock = threading.RLock()  # what clients see; never held while writing to disk
        self._write = threading.RLock()  # index writes, one at a time: each record written is the newest
        self._jobs: dict[str, Job] = {}
        self._queue: list[str] = []  # queued ids in submission order
        self._running: set[str] = set()
        self._started = False
        self._stopping = False
        self._last_save: dict[str, float] = {}
        self._etas: dict[str, JobEta] = {}          # running jobs' ETAs (fit rate + the stages after it)
        self._stage_costs = StageCosts()            # learnt from this server's finished jobs, per task
        self.fault: StorageError | None = None  # a worker-side index write failed: no job starts meanwhile
        self._pending: dict[str, Callable[[], None]] = {}  # changes the index has not taken yet, by job
        self._retrier: threading.Thread | None = None
        self.write_failures = 0  # best-effort writes (progress, log lines, error.txt) that failed

    # ------------------------------------------------------------ start / stop
    def recover(self) -> list[str]:
        """Load the index: finished jobs are listed again, queued ones queued again, and a job that
        was running when the server died is marked failed (interrupted) with the reason."""
        jobs, notes = self.store.load_all()
        with self._lock:
            for job in jobs:
                self._jobs[job.id] = job
                if job.state == "queued":
                    self._queue.append(job.id)
        for job in jobs:
            if job.state == "running":
                interrupted = {"type": "end", "state": "failed", "message": "interrupted", "error": INTERRUPTED,
                               "fix": INTERRUPTED_FIX}
                self._worker_side(job.id, lambda j=job.id, ev=interrupted: self._end(j, ev, cancel_ok=False))
                self._safe_log(job.id, "marked failed at server start: " + INTERRUPTED)
                notes.append(f"job {job.id} was interrupted by the last shutdown; marked failed")
        return notes

    def start(self) -> None:
        self.engine.bind(self.on_event)
        self._started = True
        self._dispatch()

    def alive(self) -> bool:
        return self.engine.alive()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stop taking jobs; a running job is recorded as failed (interrupted) so it can be resubmitted.
        True when the engine stopped within ``timeout``."""
        with self._write:
            with self._lock:
                self._stopping = True
                running = sorted(self._running)
            for job_id in running:
                job = self._jobs[job_id]
                error = "the server was stopped while this job was running"
                try:
                    self._persist(job, cancel_requested=True,
                                  **_finished("failed", message="interrupted", error=error, fix=INTERRUPTED_FIX))
                except StorageError as err:  # the index still says running: the next start marks it interrupted
                    self.say(f"job {job_id}: {err.problem}; the next start marks it interrupted")
                self._safe_log(job.id, "server stopped: job interrupted")
                self._safe(self.store.save_error, job.id, f"{error}\n{INTERRUPTED_FIX}\n")
                self.engine.cancel(job_id)
        return self.engine.stop(timeout)

    # ---------------------------------------------------------- the index first
    def _persist(self, job: Job, **changes: Any) -> None:
        """Write the job with ``changes`` to the index, then apply them to the record clients see.
        Raises StorageError (and changes nothing) when the index cannot take the write."""
        with self._write:
            with self._lock:
                record = dataclasses.replace(job, **changes)
            self.store.save(record)
            with self._lock:
                for name, value in changes.items():
                    setattr(job, name, value)

    def _worker_side(self, job_id: str | None, change: Callable[[], None]) -> None:
        """Run a change the worker makes; if the index cannot take it, halt the queue and keep it pending."""
        try:
            change()
        except StorageError as err:
            self._halt(err, job_id, change)

    def _halt(self, err: StorageError, job_id: str | None = None, change: Callable[[], None] | None = None) -> None:
        with self._lock:
            first = self.fault is None
            self.fault = err
            if job_id is not None and change is not None:
                self._pending[job_id] = change
            if self._retrier is None or not self._retrier.is_alive():
                self._retrier = threading.Thread(target=self._retry, name="nstr-index-retry", daemon=True)
                self._retrier.start()
        if first:
            self.say(f"storage fault: {err}; no job starts until the index can be written again "
                     f"(retried every {RETRY_S:g} s)")

    def _retry(self) -> None:
        while not self._stopping:
            time.sleep(RETRY_S)
            try:
                self.store.probe()
                with self._lock:
                    pending = sorted(self._pending.items())
                for job_id, change in pending:
                    change()
                    with self._lock:
                        self._pending.pop(job_id, None)
            except StorageError as err:
                with self._lock:
                    self.fault = err
                continue
            with self._lock:
                self.fault = None
            self.say("storage recovered: the index takes writes again; the queue goes on")
            self._dispatch()
            return

    def storage(self) -> dict[str, Any]:
        """The jobs folder as health reports it."""
        try:
            free: int | None = self.store.free_bytes()
        except OSError:
            free = None
        with self._lock:
            return {"free_bytes": free, "min_free_bytes": self.store.min_free,
                    "fault": str(self.fault) if self.fault is not None else None,
                    "pending_writes": len(self._pending), "write_failures": self.write_failures}

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
            job, created = self.store.commit(staged, task, config, key, resubmitted_from, then=self._enqueue)
            with self._lock:
                job = self._jobs[job.id]
            if created:
                self._safe_log(job.id, f"queued: task={task} config={config}"
                               + (f" (resubmission of {resubmitted_from})" if resubmitted_from else ""))
        except BaseException:
            self.store.discard(staged)
            raise
        self._dispatch()
        return job, created

    def _enqueue(self, job: Job) -> None:
        """A job just committed to the index: queued, in the order the index numbered it."""
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job.id)

    def resubmit(self, job_id: str) -> Job:
        old = self._get(job_id)
        with self._lock:
            if old.state not in TERMINAL:
                raise JobConflict(f"job {job_id} is {old.state}; only finished jobs can be resubmitted",
                                  "Wait until it ends, or cancel it first")
            task, config = old.task, dict(old.config)
        source = self.store.folder(job_id) / INPUT
        self.store.check_room(source.stat().st_size, "a copy of the job's input")
        staged = self.store.staging()
        import shutil

        shutil.copyfile(source, staged / INPUT)
        return self.submit(task, config, staged, resubmitted_from=job_id)[0]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued job, or ask the engine to stop a running one. StorageError (507) when the
        index cannot record it: then nothing changed."""
        job = self._get(job_id)
        with self._write:
            if job.state == "queued":
                self._persist(job, **_finished("cancelled", message="cancelled before it started"))
                with self._lock:
                    self._queue.remove(job.id)
                self._safe_log(job.id, "cancelled while queued")
            elif job.state == "running" and not job.cancel_requested:
                self._persist(job, cancel_requested=True, message="cancelling...")
                self._safe_log(job.id, "cancel requested")
                self.engine.cancel(job.id)
            with self._lock:
                return self._public(job)

    def delete(self, job_id: str) -> None:
        """Forget a finished job and remove its folder (inputs, log, result). Queued or running jobs
        must be cancelled first, so nothing the engine is using disappears."""
        job = self._get(job_id)
        with self._write:
            if job.state not in TERMINAL:
                raise JobConflict(f"job {job_id} is {job.state}; it cannot be deleted yet", "Cancel it first")
            self.store.delete(job_id)
            with self._lock:
                del self._jobs[job_id]

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
        """The engine's one callback. A bookkeeping failure never stops the engine: a log line or a
        progress write is skipped and counted; an end the index cannot take halts the queue."""
        kind = ev.get("type")
        try:
            if kind == "log":
                self._safe_log(job_id, str(ev.get("line", "")))
            elif kind == "progress":
                self._progress(job_id, ev)
            elif kind == "end":
                self._worker_side(job_id, lambda: self._end(job_id, ev))
        finally:
            if kind == "end":
                with self._lock:
                    self._running.discard(job_id)
                self._dispatch()
                if self.retention is not None:
                    self._safe(self.retention.apply, self)

    def _dispatch(self) -> None:
        """Start queued jobs while the engine has free slots (and the index takes writes)."""
        while True:
            with self._write:
                with self._lock:
                    if not self._started or self._stopping or self.fault is not None or not self._queue \
                            or len(self._running) >= self.engine.slots or not self.engine.alive():
                        return
                    job = self._jobs[self._queue[0]]
                try:
                    self._persist(job, state="running", started=time.time(), message="starting")
                except StorageError as err:  # the job stays queued, in the index and for clients
                    self._halt(err)
                    return
                with self._lock:
                    self._queue.pop(0)
                    self._running.add(job.id)
                folder = self.store.folder(job.id)
                spec = JobSpec(id=job.id, task=job.task, config=self._with_device(job.config), inputs=folder / INPUT,
                               folder=folder, min_free=self.store.min_free, validated=True)  # admitted at submit
            try:
                self.engine.start(spec)
            except BaseException as err:  # the engine refused: this job fails, the next one is tried
                self.on_event(job.id, {"type": "end", "state": "failed", "message": "failed",
                                       "error": f"the engine could not start the job ({type(err).__name__}: {err})",
                                       "fix": "See the server's log", "trace": traceback.format_exc()})

    def _end(self, job_id: str, ev: Mapping[str, Any], cancel_ok: bool = True) -> None:
        """Record a job's end; raises StorageError (nothing changed) when the index cannot take it."""
        with self._write:
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job.state != "running":  # the shutdown already recorded it
                    return
                state = str(ev.get("state"))
                error, fix, trace = ev.get("error"), ev.get("fix"), ev.get("trace")
                if state not in TERMINAL:
                    state, error, fix = "failed", f"the engine ended the job in state {state!r}", "See the server's log"
                if cancel_ok and job.cancel_requested and state == "failed" and not error:
                    state = "cancelled"
            # the files first, the state last: whoever sees the new state also finds its log and error
            if trace:
                self._safe_log(job.id, str(trace))
            if error:
                self._safe(self.store.save_error, job.id, f"{error}\n{fix or ''}\n{trace or ''}")
            changes = _finished(state, message=str(ev.get("message") or state), error=error, fix=fix)
            if isinstance(ev.get("metrics"), dict):
                changes["metrics"] = plain(ev["metrics"])
            tracker = self._etas.pop(job.id, None)
            if state == "done":
                changes.update(progress=1.0, eta_s=0.0)
                if tracker is not None:
                    tracker.finish(time.time())
            self._persist(job, **changes)
            self._safe_log(job.id, state + (f": {error}" if error else ""))

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
            tracker = self._etas.get(job.id)
            if tracker is None:
                tracker = self._etas[job.id] = JobEta(job.task, job.started or now, self._stage_costs)
            eta = ev.get("eta_s")
            fit_eta = float(eta) if isinstance(eta, (int, float)) and math.isfinite(eta) else None
            metrics = ev.get("metrics") if isinstance(ev.get("metrics"), dict) else None
            estimate = tracker.update(now, phase, job.step, job.total, fit_eta, metrics)
            job.progress = max(job.progress, tracker.progress)
            if estimate is not None:
                job.eta_s = estimate
            if isinstance(ev.get("metrics"), dict) and ev["metrics"]:
                job.metrics = plain(ev["metrics"])
            if not job.cancel_requested:
                job.message = f"{phase} {job.step}/{job.total}" if job.total else phase
            due = changed or now - self._last_save.get(job.id, 0.0) > SAVE_EVERY_S
            if due:
                self._last_save[job.id] = now
        if due:
            self._save_progress(job)
            loss_txt = f" loss={job.loss:.4g}" if job.loss is not None else ""
            self._safe_log(job.id, f"{phase} step {job.step}/{job.total}{loss_txt}")

    def _save_progress(self, job: Job) -> None:
        """Progress is best effort: a snapshot of the record as it is now, skipped (and counted) if the
        write fails, and never written over a newer state."""
        with self._write:
            with self._lock:
                if job.state != "running":
                    return
                record = dataclasses.replace(job)
            self._safe(self.store.save, record)

    # ---------------------------------------------------------------- helpers
    def _safe(self, fn: Any, *a: Any) -> None:
        """Bookkeeping that may fail (disk full, open-file limit) without taking the queue down: counted
        (health's ``storage.write_failures``), with one line in the server's log."""
        try:
            fn(*a)
        except Exception as err:
            with self._lock:
                self.write_failures += 1
                count = self.write_failures
            if count == 1 or count % 100 == 0:
                self.say(f"bookkeeping write failed ({count} so far): {type(err).__name__}: {err}".splitlines()[0])

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


def _finished(state: str, *, message: str, error: str | None = None, fix: str | None = None) -> dict[str, Any]:
    """The record's fields for a job that ends now in ``state``."""
    changes: dict[str, Any] = {"state": state, "message": message, "error": error, "fix": fix, "finished": time.time()}
    if state != "done":
        changes["eta_s"] = None
    return changes


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0
