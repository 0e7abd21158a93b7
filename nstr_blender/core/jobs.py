"""Which Blender object became which backend job, where each job stands, and when to poll.

Plain data and decisions only: the network calls live in ``session.py`` and the
Blender calls in ``blender/``. Records keep the submitted arrays until the job is
finished, so a job lost with a crashed backend process can be sent again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator

# The backend's job states (contract.JOB_STATES: queued, running, done, failed, cancelled) plus the
# add-on's own:
#   pending   : recorded, not yet accepted by the backend (or to be resubmitted)
#   collected : done and turned into a Blender object
#   error     : failed on the add-on's side (e.g. the result could not be read)
ADDON_STATES = ("pending", "collected", "error")
ACTIVE_STATES = frozenset({"pending", "queued", "running"})
FINISHED_STATES = frozenset({"collected", "failed", "cancelled", "error"})

POLL_ACTIVE_S = 0.5       # while something runs: progress feels live, costs one loopback request
POLL_QUEUED_S = 1.0       # everything waits in the queue
POLL_RETRY_S = 2.0        # the backend did not answer: don't hammer it
MAX_RESUBMITS = 2         # after that many backend restarts a job is given up


@dataclass
class JobRecord:
    """One object's fit."""

    source: str                       # the Blender object's name
    task: str                         # sdf | nerf
    config: dict[str, Any]
    arrays: dict[str, Any] | None     # inputs, kept until finished (for resubmission)
    job_id: str | None = None
    state: str = "pending"
    phase: str = ""
    step: int = 0
    total: int = 0
    progress: float = 0.0             # 0..1
    eta_s: float | None = None
    loss: float | None = None
    queue_position: int | None = None
    message: str = ""                 # the last one-line message for the panel (errors included)
    result_name: str = ""             # the object made from the result
    in_source_frame: bool = False     # the result mesh is in the source's own frame (a capture's), not world space
    resubmits: int = 0
    submitted_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def apply_status(self, status: dict[str, Any]) -> None:
        """Take a backend status dict (``BackendClient.status``) into the record."""
        state = str(status.get("state") or self.state)
        self.state = state
        self.phase = str(status.get("phase") or self.phase or "")
        self.step = int(status.get("step") or 0)
        self.total = int(status.get("total") or 0)
        progress = status.get("progress")
        if progress is None and self.total:
            progress = self.step / self.total
        self.progress = min(1.0, max(0.0, float(progress or 0.0)))
        eta = status.get("eta_s")
        self.eta_s = float(eta) if eta is not None else None
        loss = status.get("loss")
        self.loss = float(loss) if loss is not None else None
        qp = status.get("queue_position")
        self.queue_position = int(qp) if qp is not None else None
        if state == "failed":
            self.message = str(status.get("error") or status.get("message") or "the job failed").strip()
            fix = str(status.get("fix") or "").strip()
            if fix and fix not in self.message:
                self.message = f"{self.message.rstrip('.')}. {fix}"
            self.finished_at = time.time()
            self.arrays = None
        elif state == "cancelled":
            self.message = "cancelled"
            self.finished_at = time.time()
            self.arrays = None
        elif status.get("message"):
            self.message = str(status["message"])

    def mark_collected(self, result_name: str) -> None:
        self.state = "collected"
        self.result_name = result_name
        self.progress = 1.0
        self.message = f"-> {result_name}"
        self.finished_at = time.time()
        self.arrays = None

    def mark_error(self, message: str) -> None:
        self.state = "error"
        self.message = message
        self.finished_at = time.time()
        self.arrays = None

    def progress_text(self) -> str:
        """'fitting 45%  ETA 12 s' style line for the panel and the terminal."""
        if self.state == "pending":
            return "sending"
        if self.state == "queued":
            pos = f" (#{self.queue_position})" if self.queue_position else ""   # 1: next in line
            return f"queued{pos}"
        if self.state == "running":
            text = f"{self.phase or 'running'} {round(100 * self.progress)}%"
            if self.eta_s is not None and self.eta_s > 0:
                text += f"  ETA {format_duration(self.eta_s)}"
            return text
        if self.state == "done":
            return "done, collecting"
        if self.state == "collected":
            return f"done -> {self.result_name}"
        return f"{self.state}: {self.message}" if self.message else self.state


class JobTracker:
    """All jobs of this Blender session, in submission order."""

    def __init__(self) -> None:
        self.records: list[JobRecord] = []

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def add(self, source: str, task: str, config: dict[str, Any], arrays: dict[str, Any]) -> JobRecord:
        record = JobRecord(source=source, task=task, config=dict(config), arrays=arrays)
        self.records.append(record)
        return record

    def by_job_id(self, job_id: str) -> JobRecord | None:
        return next((r for r in self.records if r.job_id == job_id), None)

    def active(self) -> list[JobRecord]:
        return [r for r in self.records if r.active]

    def to_collect(self) -> list[JobRecord]:
        return [r for r in self.records if r.state == "done"]

    def unsent(self) -> list[JobRecord]:
        return [r for r in self.records if r.state == "pending"]

    def needs_polling(self) -> bool:
        return any(r.active or r.state == "done" for r in self.records)

    def next_interval(self, backend_answered: bool = True) -> float | None:
        """Seconds until the next poll, or None when there is nothing to wait for."""
        if not self.needs_polling():
            return None
        if not backend_answered:
            return POLL_RETRY_S
        if any(r.state in ("running", "done", "pending") for r in self.records):
            return POLL_ACTIVE_S
        return POLL_QUEUED_S

    def lost_with_backend(self) -> list[JobRecord]:
        """Jobs the backend forgot (its process died): back to pending, or given up after
        MAX_RESUBMITS. Returns the records that will be sent again."""
        again = []
        for r in self.records:
            if r.state not in ("queued", "running", "done"):
                continue
            if r.arrays is None or r.resubmits >= MAX_RESUBMITS:
                r.mark_error("the backend stopped during this job. Fit again (see the backend log)")
                continue
            r.state, r.job_id, r.phase, r.progress = "pending", None, "", 0.0
            r.resubmits += 1
            r.message = "backend restarted; sending again"
            again.append(r)
        return again

    def clear_finished(self) -> int:
        before = len(self.records)
        self.records = [r for r in self.records if r.state not in FINISHED_STATES]
        return before - len(self.records)


def job_phases(log: str) -> list[str]:
    """The phases a job went through, in order, from its log ("fitting step 10/20 ..." lines)."""
    phases: list[str] = []
    for line in log.splitlines():
        words = line.split()
        for i, word in enumerate(words[:-1]):
            if words[i + 1] == "step" and (not phases or phases[-1] != word):
                phases.append(word)
                break
    return phases


def format_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {(seconds % 3600) // 60:02.0f} min"
