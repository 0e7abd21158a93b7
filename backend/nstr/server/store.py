"""Jobs on disk: one folder per job, so a restarted server finds every job where it left it.

Each job folder holds ``job.json`` (the status record), ``config.json``, ``input.nstr`` (the
submitted arrays, kept so a failed or interrupted job can be resubmitted), ``log.txt``,
``result.nstr`` + ``report.json`` when done, and ``error.txt`` when it failed.
Every JSON file and result is written to a temporary name and renamed, so a crash
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nstr.remote import wire

STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL = ("done", "failed", "cancelled")
JOB_ID = re.compile(r"^[0-9]{6}-[0-9a-f]{8}$")
INTERRUPTED = "the server stopped while this job was running, so it was interrupted"
INTERRUPTED_FIX = "Resubmit it (nstr submit, the add-on, or POST /v1/jobs/ID/resubmit)"


@dataclass
class Job:
    """A job's status record: what ``GET /v1/jobs/ID`` returns, minus the live queue position."""

    id: str
    seq: int
    task: str
    config: dict[str, Any]
    state: str = "queued"
    phase: str | None = None
    step: int = 0
    total: int = 0
    progress: float = 0.0
    loss: float | None = None
    eta_s: float | None = None
    message: str = "waiting in the queue"
    error: str | None = None
    fix: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    resubmitted_from: str | None = None
    cancel_requested: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Job":
        names = {f.name for f in dataclasses.fields(cls)}
        job = cls(**{k: v for k, v in data.items() if k in names})
        if job.state not in STATES or not JOB_ID.match(job.id):
            raise ValueError(f"invalid job record {job.id!r} in state {job.state!r}")
        return job


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class JobStore:
    """The jobs folder. Thread-safe for distinct jobs; the caller serialises writes to one job."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    @staticmethod
    def new_id(seq: int) -> str:
        return f"{seq:06d}-{secrets.token_hex(4)}"

    def stage(self, arrays: Mapping[str, Any] | None, copy_input_from: str | None = None) -> Path:
        """Write a submission's inputs into a temporary folder (slow for big meshes: done outside any lock)."""
        staged = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        if copy_input_from is not None:
            shutil.copyfile(self.folder(copy_input_from) / "input.nstr", staged / "input.nstr")
        else:
            wire.write_file(staged / "input.nstr", {}, arrays or {})
        return staged

    def commit(self, job: Job, staged: Path) -> None:
        """Turn a staged folder into the job's folder; the record is written last (a record means a complete job)."""
        folder = self.folder(job.id)
        _write_atomic(staged / "config.json", json.dumps(job.config, indent=2).encode())
        os.replace(staged, folder)
        self.save(job)

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def save(self, job: Job) -> None:
        _write_atomic(self.folder(job.id) / "job.json", json.dumps(job.to_dict(), indent=1).encode())

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def load_input(self, job_id: str) -> dict[str, wire.Array]:
        return wire.read_file(self.folder(job_id) / "input.nstr")[1]

    def log(self, job_id: str, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.folder(job_id) / "log.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line.rstrip()}\n")

    def read_log(self, job_id: str) -> str:
        path = self.folder(job_id) / "log.txt"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def save_result(self, job: Job, arrays: Mapping[str, Any], report: Mapping[str, Any]) -> None:
        folder = self.folder(job.id)
        _write_atomic(folder / "report.json", json.dumps(report, indent=2, default=_jsonable).encode())
        meta = {"job": job.id, "task": job.task, "report": json.loads(json.dumps(report, default=_jsonable))}
        wire.write_file(folder / "result.nstr", meta, arrays)

    def result_path(self, job_id: str) -> Path:
        return self.folder(job_id) / "result.nstr"

    def save_error(self, job_id: str, text: str) -> None:
        _write_atomic(self.folder(job_id) / "error.txt", text.encode("utf-8"))

    def load_all(self) -> tuple[list[Job], list[str]]:
        """Every readable job record, oldest first, and a warning per folder that could not be read
        (left untouched: user data is never deleted)."""
        jobs, warnings = [], []
        for leftover in self.root.glob(".incoming-*"):  # an upload cut short by a crash: never a job
            self.discard(leftover)
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or not JOB_ID.match(folder.name):
                continue
            try:
                job = Job.from_dict(json.loads((folder / "job.json").read_text()))
                if job.id != folder.name:
                    raise ValueError(f"record names job {job.id}")
                jobs.append(job)
            except (OSError, ValueError, TypeError) as err:
                warnings.append(f"skipped job folder {folder.name}: {err}")
        jobs.sort(key=lambda j: j.seq)
        return jobs, warnings


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)
