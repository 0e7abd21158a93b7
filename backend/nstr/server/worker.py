"""The job queue: jobs run one at a time, in submission order, in one worker thread.

One worker because a fit uses the whole GPU; a second concurrent fit would only make
both slower and risk running out of memory. A job that raises (a bug, CUDA out of memory)
fails alone with its message, the CUDA cache is emptied, and the next job starts.
Cancelling a running job sets a flag that the task sees through ``should_stop()``, and
the next progress report raises :class:`~nstr.errors.Cancelled` as well, so a task that
only reports progress still stops within one step.
"""

from __future__ import annotations

import gc
import math
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

import torch

from nstr.errors import Cancelled, ConfigError, NSTRError
from nstr.remote.wire import Array
from nstr.server import device_info
from nstr.server.registry import TaskRegistry, to_numpy
from nstr.server.store import INTERRUPTED, INTERRUPTED_FIX, TERMINAL, Job, JobStore

# Share of the whole job that each phase covers, for the overall progress fraction.
PHASE_SPANS: dict[str, tuple[float, float]] = {
    "loading": (0.0, 0.05), "sampling": (0.0, 0.05), "fitting": (0.05, 0.85),
    "extracting": (0.85, 0.95), "attributes": (0.95, 1.0),
}
SAVE_EVERY_S = 2.0  # progress is persisted at most this often (state changes always are)


class JobNotFound(KeyError):
    pass


class JobConflict(Exception):
    """The job is in a state that does not allow the action (e.g. the result of a running job)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


class JobQueue:
    def __init__(self, store: JobStore, registry: TaskRegistry, device: torch.device) -> None:
        self.store = store
        self.registry = registry
        self.device = device
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._queue: list[str] = []  # queued ids in submission order
        self._running: str | None = None
        self._next_seq = 1
        self._stopping = False
        self._last_save: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, name="nstr-job-worker", daemon=True)

    # ------------------------------------------------------------ start / stop
    def recover(self) -> list[str]:
        """Load the jobs folder: finished jobs are listed again, queued ones queued again, and a
        job that was running when the server died is marked failed with the reason."""
        jobs, notes = self.store.load_all()
        with self._lock:
            for job in jobs:
                self._jobs[job.id] = job
                self._next_seq = max(self._next_seq, job.seq + 1)
                if job.state == "running":
                    self._finish(job, "failed", error=INTERRUPTED, fix=INTERRUPTED_FIX, message="interrupted")
                    self.store.log(job.id, "marked failed at server start: " + INTERRUPTED)
                    self.store.save_error(job.id, f"{INTERRUPTED}\n{INTERRUPTED_FIX}\n")
                    notes.append(f"job {job.id} was interrupted by the last shutdown; marked failed")
                elif job.state == "queued":
                    self._queue.append(job.id)
        return notes

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        """Stop taking jobs; a running job is recorded as failed (interrupted) so it can be resubmitted."""
        with self._lock:
            self._stopping = True
            job = self._jobs.get(self._running) if self._running else None
            if job is not None:
                job.cancel_requested = True
                self._finish(job, "failed", error="the server was stopped while this job was running",
                             fix=INTERRUPTED_FIX, message="interrupted")
                self.store.log(job.id, "server stopped: job interrupted")
                self.store.save_error(job.id, f"{job.error}\n{INTERRUPTED_FIX}\n")
            self._wake.notify_all()

    # --------------------------------------------------------------- requests
    def submit(self, task: Any, config: Any, arrays: Mapping[str, Array], resubmitted_from: str | None = None) -> Job:
        """Validate (synchronously, so bad input is a 400, not a failed job) and queue."""
        module = self.registry.get(task)
        if not isinstance(config, dict):
            raise ConfigError(f"'config' must be an object, not {type(config).__name__}",
                              'Send e.g. {"preset": "quick", "steps": 200}')
        module.validate_job(self._with_device(config), to_numpy(arrays))
        if self._stopping:
            raise ConfigError("the server is shutting down", "Submit again once it has restarted")
        # inputs are written outside the lock (a large mesh must not stall status polls); the
        # sequence number is taken when the job is committed, so queue order is acceptance order
        staged = self.store.stage(None if resubmitted_from else arrays, copy_input_from=resubmitted_from)
        try:
            with self._lock:
                seq = self._next_seq
                job = Job(id=self.store.new_id(seq), seq=seq, task=task, config=config,
                          resubmitted_from=resubmitted_from)
                self.store.commit(job, staged)
                self.store.log(job.id, f"queued: task={task} config={config}"
                               + (f" (resubmission of {resubmitted_from})" if resubmitted_from else ""))
                self._next_seq += 1
                self._jobs[job.id] = job
                self._queue.append(job.id)
                self._wake.notify_all()
        except BaseException:
            self.store.discard(staged)
            raise
        return job

    def resubmit(self, job_id: str) -> Job:
        old = self._get(job_id)
        with self._lock:
            if old.state not in TERMINAL:
                raise JobConflict(f"job {job_id} is {old.state}; only finished jobs can be resubmitted",
                                  "Wait until it ends, or cancel it first")
            task, config = old.task, dict(old.config)
        return self.submit(task, config, self.store.load_input(job_id), resubmitted_from=job_id)

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._get(job_id)
        with self._lock:
            if job.state == "queued":
                self._queue.remove(job.id)
                self._finish(job, "cancelled", message="cancelled before it started")
                self.store.log(job.id, "cancelled while queued")
            elif job.state == "running":
                job.cancel_requested = True
                job.message = "cancelling..."
                self.store.save(job)
                self.store.log(job.id, "cancel requested")
            return self._public(job)

    def delete(self, job_id: str) -> None:
        """Forget a finished job and remove its folder (inputs, log, result). Queued or running jobs
        must be cancelled first, so nothing the worker is using disappears."""
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
            raise JobConflict(f"job {job_id} is done but its result file is missing from {path.parent}",
                              "Resubmit the job")
        return path

    def log(self, job_id: str) -> str:
        self._get(job_id)
        return self.store.read_log(job_id)

    def queue_length(self) -> int:
        with self._lock:
            return len(self._queue) + (1 if self._running else 0)

    def release_gpu(self) -> dict[str, Any]:
        with self._lock:
            busy = self._running
        out = device_info.release(self.device, self.registry.loaded())
        if busy:
            out["note"] = f"job {busy} is running; only memory it does not hold was released"
        return out

    # ---------------------------------------------------------------- worker
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job = self._jobs[self._queue.pop(0)]
                self._running = job.id
                job.state, job.started, job.message = "running", time.time(), "starting"
                self.store.save(job)
            try:
                self.store.log(job.id, "started")
                self._run(job)
            except BaseException as err:  # the worker must outlive anything a job does, or the queue stalls
                try:
                    self._end(job, "failed", error=f"{type(err).__name__}: {err}".splitlines()[0][:300],
                              fix="See the job's log.txt; other jobs are unaffected", message="failed",
                              trace=traceback.format_exc())
                except Exception:
                    traceback.print_exc()
            finally:
                with self._lock:
                    self._running = None
                self._free_memory()

    def _run(self, job: Job) -> None:
        workdir = self.store.folder(job.id)
        try:
            module = self.registry.get(job.task)
            arrays = to_numpy(self.store.load_input(job.id))
            result, report = module.run_job(self._with_device(job.config), arrays, workdir=workdir,
                                            progress=lambda ev: self._progress(job, ev),
                                            should_stop=lambda: job.cancel_requested or self._stopping)
        except Cancelled:
            self._end(job, "cancelled", message="cancelled while running")
            return
        except NSTRError as err:
            self._end(job, "failed", error=err.problem, fix=err.fix, message="failed", trace=traceback.format_exc())
            return
        except Exception as err:  # a bug or an out-of-memory: this job fails, the server carries on
            error, fix = _describe_crash(err)
            self._end(job, "failed", error=error, fix=fix, message="failed", trace=traceback.format_exc())
            return
        try:
            self.store.save_result(job, result, report)
        except Exception as err:
            self._end(job, "failed", error=f"the result could not be saved ({type(err).__name__}: {err})",
                      fix="Check the disk space and permissions of the jobs folder", trace=traceback.format_exc())
            return
        metrics = report.get("metrics", {}) if isinstance(report, dict) else {}
        self._end(job, "done", message="done", metrics=metrics if isinstance(metrics, dict) else {})

    def _end(self, job: Job, state: str, *, message: str, error: str | None = None, fix: str | None = None,
             trace: str | None = None, metrics: dict[str, Any] | None = None) -> None:
        with self._lock:
            if job.state != "running":  # the shutdown already recorded it
                return
            # the files first, the state last: whoever sees the new state also finds its log and error
            if trace:
                self.store.log(job.id, trace)
            if error:
                self.store.save_error(job.id, error + (f"\n{fix}\n" if fix else "\n") + (trace or ""))
            self.store.log(job.id, f"{state}" + (f": {error}" if error else ""))
            if metrics is not None:
                job.metrics = _plain(metrics)
            if state == "done":
                job.progress, job.eta_s = 1.0, 0.0
            self._finish(job, state, error=error, fix=fix, message=message)

    def _finish(self, job: Job, state: str, *, message: str, error: str | None = None, fix: str | None = None) -> None:
        job.state, job.message, job.error, job.fix = state, message, error, fix
        job.finished = time.time()
        if state != "done":
            job.eta_s = None
        self.store.save(job)

    def _progress(self, job: Job, ev: Mapping[str, Any]) -> None:
        if job.cancel_requested or self._stopping:
            raise Cancelled()
        now = time.time()
        with self._lock:
            phase = str(ev.get("phase") or job.phase or "")
            changed = phase != job.phase
            job.phase = phase
            job.step = int(ev.get("step") or 0)
            job.total = int(ev.get("total") or 0)
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
                job.metrics = _plain(ev["metrics"])
            job.message = f"{phase} {job.step}/{job.total}" if job.total else phase
            due = changed or now - self._last_save.get(job.id, 0.0) > SAVE_EVERY_S
            if due:
                self._last_save[job.id] = now
                self.store.save(job)
        if due:
            loss_txt = f" loss={job.loss:.4g}" if job.loss is not None else ""
            self.store.log(job.id, f"{phase} step {job.step}/{job.total}{loss_txt}")

    # ---------------------------------------------------------------- helpers
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
        """Jobs run on the server's device unless their config names one (the stored config stays as sent,
        so a resubmission follows the server's current --device)."""
        train = config.get("train")
        if "device" in config or "train.device" in config or (isinstance(train, dict) and "device" in train):
            return dict(config)
        return {**config, "device": self.device.type}

    def _free_memory(self) -> None:
        """Give the finished job's GPU memory back before the next job. Only on CUDA: a full garbage
        collection holds the interpreter for ~0.15 s, which every status request would wait for."""
        if self.device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()


def _describe_crash(err: Exception) -> tuple[str, str]:
    """One line for a job that raised something other than an NSTRError; memory exhaustion is named as such."""
    first = (str(err).strip().splitlines() or [""])[0][:300]
    if isinstance(err, torch.cuda.OutOfMemoryError) or "cuda out of memory" in first.lower():
        return (f"the GPU ran out of memory ({first})",
                "Use a smaller preset or parameter budget, release GPU memory, or close other GPU programs, "
                "then resubmit")
    if isinstance(err, MemoryError) or "can't allocate memory" in first or "out of memory" in first.lower():
        return (f"the job ran out of memory ({first})",
                "Use a smaller preset, batch size or resolution, then resubmit")
    return (f"{type(err).__name__}: {first}" if first else type(err).__name__,
            "This is a bug in the backend; the job's log.txt has the traceback. Other jobs are unaffected")


def _plain(metrics: Mapping[str, Any]) -> dict[str, Any]:
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

