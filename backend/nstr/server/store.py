"""Jobs on disk: an SQLite index (WAL, one transaction per change) over one folder per job.

The index (``jobs.sqlite``) holds every job's status record; the folders hold the files:
``input.nstr`` (the upload as it arrived, kept so a job can be resubmitted), ``log.txt``,
``result.nstr.gz`` + ``report.json`` when done, ``error.txt`` when it failed.

Why SQLite: a ``kill -9`` at any moment leaves the index as of its last committed transaction
(WAL journal), and an id, a sequence number and an idempotency key are each unique by
constraint rather than by convention. A job exists once its row is committed; the folder is moved
into place just before, so a crash in between leaves a folder with no row, which the next start
removes (no client was ever told about that job). A lock file stops a second server from sharing
the folder: two schedulers on one index would run queued jobs twice.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import gzip
import json
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nstr.errors import ConfigError
from nstr.remote import wire

STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL = ("done", "failed", "cancelled")
JOB_ID = re.compile(r"^[0-9]{6}-[0-9a-f]{8}$")
INPUT = "input.nstr"
RESULT = "result.nstr.gz"
INTERRUPTED = "the server stopped while this job was running, so it was interrupted"
INTERRUPTED_FIX = "Resubmit it (nstr submit, the add-on, or POST /v1/jobs/ID/resubmit)"
FAULTS_ENV = "NSTR_FAULT"  # comma-separated test hooks, see fault()


_FIRED: set[str] = set()


def fault(name: str) -> bool:
    """Test hooks that make a real failure happen once in a real server process: ``NSTR_FAULT=save``
    (the first result save raises EMFILE), ``NSTR_FAULT=worker_exit`` (the worker thread ends)."""
    if name in _FIRED or name not in os.environ.get(FAULTS_ENV, "").split(","):
        return False
    _FIRED.add(name)
    return True


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


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_result(folder: Path, meta: Mapping[str, Any], arrays: Mapping[str, Any], report: Mapping[str, Any]) -> None:
    """The result, gzip-compressed (float attributes and colours compress ~2-4x), and its report.
    Temporary names and renames: a crash leaves no half-written result behind."""
    if fault("save"):  # NSTR_FAULT=save: the open-file limit is hit at the end of a job
        raise OSError(errno.EMFILE, "Too many open files (injected by NSTR_FAULT=save)")
    write_atomic(folder / "report.json", json.dumps(report, indent=2, default=jsonable).encode())
    tmp = folder / (RESULT + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        for part in wire.encode_parts(meta, arrays):
            gz.write(part)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, folder / RESULT)


class FolderLock:
    """An exclusive ``flock`` on ``DIR/server.lock``, held for the server's life; the kernel drops it
    when the process dies, however it dies, so a crash never leaves a stale lock."""

    def __init__(self, root: Path) -> None:
        self.path = root / "server.lock"
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown pid"
            self._fh.close()
            raise ConfigError(f"the jobs folder {root} is in use by another nstr server ({holder})",
                              "Stop that server, or give this one its own folder with --jobs-dir") from None
        self.note(f"pid {os.getpid()}")

    def note(self, text: str) -> None:
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(text + "\n")
        self._fh.flush()

    def release(self) -> None:
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
        except (OSError, ValueError):
            pass


class JobStore:
    """The jobs folder and its index. Thread-safe: one connection, used under one lock."""

    def __init__(self, root: Path, lock: bool = True) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot use the jobs folder {self.root} ({err.strerror or err})",
                              "Pass a writable folder with --jobs-dir") from None
        self.lock = FolderLock(self.root) if lock else None
        self._db_lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "jobs.sqlite", isolation_level=None, check_same_thread=False,
                                   timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY, seq INTEGER UNIQUE NOT NULL, state TEXT NOT NULL,
            idempotency_key TEXT UNIQUE, created REAL NOT NULL, finished REAL, record TEXT NOT NULL)""")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")

    def close(self) -> None:
        with self._db_lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        if self.lock is not None:
            self.lock.release()

    # ---------------------------------------------------------------- folders
    def folder(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def staging(self) -> Path:
        """A fresh folder for an upload in progress; it becomes the job's folder at commit."""
        return Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    # ------------------------------------------------------------------ index
    def find_key(self, key: str) -> Job | None:
        with self._db_lock:
            row = self._db.execute("SELECT record FROM jobs WHERE idempotency_key=?", (key,)).fetchone()
        return Job.from_dict(json.loads(row[0])) if row else None

    def commit(self, staged: Path, task: str, config: dict[str, Any], key: str | None,
               resubmitted_from: str | None) -> tuple[Job, bool]:
        """Turn a staged folder into a queued job: (job, created). With an idempotency key that is
        already taken, the staged folder is dropped and the existing job is returned."""
        with self._db_lock:
            if key is not None:
                existing = self.find_key(key)
                if existing is not None:
                    self.discard(staged)
                    return existing, False
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT value FROM counters WHERE name='seq'").fetchone()
                top = self._db.execute("SELECT MAX(seq) FROM jobs").fetchone()[0] or 0
                seq = max(row[0] if row else 0, top) + 1
                self._db.execute("INSERT OR REPLACE INTO counters VALUES ('seq', ?)", (seq,))
                job = Job(id=f"{seq:06d}-{secrets.token_hex(4)}", seq=seq, task=task, config=config,
                          resubmitted_from=resubmitted_from)
                write_atomic(staged / "config.json", json.dumps(config, indent=2).encode())
                os.replace(staged, self.folder(job.id))
                self._db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (job.id, seq, job.state, key, job.created, None, json.dumps(job.to_dict())))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return job, True

    def save(self, job: Job) -> None:
        with self._db_lock:
            self._db.execute("UPDATE jobs SET state=?, finished=?, record=? WHERE id=?",
                             (job.state, job.finished, json.dumps(job.to_dict(), allow_nan=False), job.id))

    def delete(self, job_id: str) -> None:
        with self._db_lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def load_all(self) -> tuple[list[Job], list[str]]:
        """Every job in the index, oldest first; leftovers of uploads cut short by a crash are removed."""
        warnings = []
        with self._db_lock:
            rows = self._db.execute("SELECT id, record FROM jobs ORDER BY seq").fetchall()
        jobs = []
        for job_id, record in rows:
            try:
                jobs.append(Job.from_dict(json.loads(record)))
            except (ValueError, TypeError) as err:
                warnings.append(f"skipped job {job_id}: {err}")
        known = {j for j, _ in rows}
        for entry in self.root.iterdir():
            if entry.is_dir() and (entry.name.startswith(".incoming-")
                                   or (JOB_ID.match(entry.name) and entry.name not in known)):
                self.discard(entry)  # never acknowledged to a client: not a job
        return jobs, warnings

    # ------------------------------------------------------------------ files
    def log(self, job_id: str, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.folder(job_id) / "log.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line.rstrip()}\n")

    def read_log(self, job_id: str) -> str:
        path = self.folder(job_id) / "log.txt"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def result_path(self, job_id: str) -> Path:
        return self.folder(job_id) / RESULT

    def save_error(self, job_id: str, text: str) -> None:
        write_atomic(self.folder(job_id) / "error.txt", text.encode("utf-8"))

    def folder_bytes(self, job_id: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.folder(job_id)):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return total


def jsonable(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)
