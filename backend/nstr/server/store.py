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

A write that fails (a full disk, a broken index) raises :class:`StorageError` naming the folder and
its free space, never a bare ``sqlite3``/``OSError``: the queue turns it into a refused request (507)
or a halted worker, so what clients see never runs ahead of the index. ``min_free`` bytes are kept
spare: uploads and results that would eat into them are refused up front (the index and the logs
need that room to record the refusal).
"""

from __future__ import annotations

import contextlib
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
from typing import Any, Callable, Iterator, Mapping

from nstr.errors import ConfigError, NSTRError
from nstr.jsonable import jsonable
from nstr.remote import wire

STATES = ("queued", "running", "done", "failed", "cancelled")
TERMINAL = ("done", "failed", "cancelled")
JOB_ID = re.compile(r"^[0-9]{6}-[0-9a-f]{8}$")
INPUT = "input.nstr"
RESULT = "result.nstr.gz"
INTERRUPTED = "the server stopped while this job was running, so it was interrupted"
INTERRUPTED_FIX = "Resubmit it (nstr submit, the add-on, or POST /v1/jobs/ID/resubmit)"
FAULTS_ENV = "NSTR_FAULT"  # comma-separated test hooks, see fault()
MIB = 2**20


class StorageError(NSTRError):
    """The jobs folder cannot take a write: its disk is (nearly) full, or the index failed. HTTP 507."""


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s file system."""
    st = os.statvfs(path)
    return int(st.f_bavail * st.f_frsize)


def check_room(folder: Path, need: int, min_free: int, what: str) -> None:
    """Refuse (StorageError) a write of ``need`` bytes that would leave less than ``min_free`` free."""
    free = free_bytes(folder)
    if free - need < min_free:
        problem = (f"the jobs folder's disk has {free / MIB:.1f} MiB free: too little for {what} ({need / MIB:.1f} MiB) "
                   f"and the {min_free / MIB:.1f} MiB the server keeps spare" if need else
                   f"the jobs folder's disk has {free / MIB:.1f} MiB free, less than the {min_free / MIB:.1f} MiB the "
                   f"server keeps spare, so {what} is refused")
        raise StorageError(problem, f"Free disk space where {folder} lives (or start the server with a smaller "
                                    "--min-free-mb)")


def storage_error(folder: Path, what: str, err: BaseException) -> StorageError:
    """A failed write as a one-line StorageError that names the free space."""
    try:
        free = f"{free_bytes(folder) / MIB:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return StorageError(f"{what} failed in {folder} ({detail}; {free} on its disk)",
                        "Free disk space there, or check the folder's permissions; nothing was changed")


_FIRED: set[str] = set()


def fault(name: str) -> bool:
    """Test hooks that make a real failure happen once in a real server process: ``NSTR_FAULT=save``
    (the first result save raises EMFILE), ``NSTR_FAULT=worker_exit`` (the worker thread ends),
    ``NSTR_FAULT=index_end`` (the first job end written to the index fails as on a full disk)."""
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
        """The record as JSON-ready data: a copy one level deep (config and metrics hold plain JSON
        values), about 10x cheaper than ``dataclasses.asdict``'s recursion on every status request."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["config"], out["metrics"] = dict(self.config), dict(self.metrics)
        return out

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


def write_result(folder: Path, meta: Mapping[str, Any], arrays: Mapping[str, Any], report: Mapping[str, Any],
                 min_free: int = 0) -> None:
    """The result, gzip-compressed (float attributes and colours compress ~2-4x), and its report.
    Temporary names and renames: a crash leaves no half-written result behind. Refused (StorageError,
    naming the free space) when the disk already has less than ``min_free`` bytes free, and undone
    when the disk fills while writing or the written result leaves less than that: the spare room
    stays for the index, which must still record the job's end."""
    if fault("save"):  # NSTR_FAULT=save: the open-file limit is hit at the end of a job
        raise OSError(errno.EMFILE, "Too many open files (injected by NSTR_FAULT=save)")
    check_room(folder, 0, min_free, "the result")
    tmp = folder / (RESULT + ".tmp")
    written = [folder / "report.json.tmp", tmp]
    try:
        write_atomic(folder / "report.json", json.dumps(report, indent=2, default=jsonable).encode())
        written.append(folder / "report.json")
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            for part in wire.encode_parts(meta, arrays):
                gz.write(part)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        check_room(folder, 0, min_free, f"the result ({tmp.stat().st_size / MIB:.1f} MiB compressed)")
        os.replace(tmp, folder / RESULT)
    except (OSError, StorageError) as err:
        for leftover in written:
            leftover.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise storage_error(folder, "saving the result", err) from None
        raise


@dataclass
class _Commit:
    """One submit waiting for the index (:meth:`JobStore.commit`)."""

    staged: Path
    task: str
    config: dict[str, Any]
    key: str | None
    resubmitted_from: str | None
    then: Callable[[Job], None] | None = None
    done: bool = False
    result: tuple[Job, bool] | None = None
    error: BaseException | None = None


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

    def __init__(self, root: Path, lock: bool = True, min_free: int = 0) -> None:
        self.root = Path(root)
        self.min_free = int(min_free)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot use the jobs folder {self.root} ({err.strerror or err})",
                              "Pass a writable folder with --jobs-dir") from None
        self.lock = FolderLock(self.root) if lock else None
        self._db_lock = threading.RLock()
        self._waiting_lock = threading.Lock()
        self._waiting: list[_Commit] = []  # commits queued for the next transaction (group commit)
        self._db = sqlite3.connect(self.root / "jobs.sqlite", isolation_level=None, check_same_thread=False,
                                   timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY, seq INTEGER UNIQUE NOT NULL, state TEXT NOT NULL,
            idempotency_key TEXT UNIQUE, created REAL NOT NULL, finished REAL, record TEXT NOT NULL)""")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        # lookups read through their own connection: in WAL mode they never wait for a commit's disk sync
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(self.root / "jobs.sqlite", isolation_level=None, check_same_thread=False,
                                       timeout=10)

    def free_bytes(self) -> int:
        return free_bytes(self.root)

    def check_room(self, need: int, what: str) -> None:
        """StorageError (507) when writing ``need`` bytes would leave less than the spare room."""
        check_room(self.root, need, self.min_free, what)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """An index write: any failure becomes a StorageError naming the folder and its free space."""
        try:
            yield
        except StorageError:
            raise
        except (sqlite3.Error, OSError) as err:
            raise storage_error(self.root, what, err) from None

    def probe(self) -> None:
        """One small write transaction: StorageError while the index still cannot be written."""
        with self._db_lock, self._writing("writing the job index"):
            self._db.execute("INSERT OR REPLACE INTO counters VALUES ('probe', ?)", (int(time.time()),))

    def close(self) -> None:
        with self._db_lock, self._read_lock:
            for connection in (self._reader, self._db):
                try:
                    connection.close()
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
        """The job an idempotency key made, as committed (a commit in progress is not seen)."""
        with self._read_lock:
            row = self._reader.execute("SELECT record FROM jobs WHERE idempotency_key=?", (key,)).fetchone()
        return Job.from_dict(json.loads(row[0])) if row else None

    def _find_key_in_batch(self, key: str) -> Job | None:
        """The same, inside the commit's own transaction: it sees the rows this batch added."""
        row = self._db.execute("SELECT record FROM jobs WHERE idempotency_key=?", (key,)).fetchone()
        return Job.from_dict(json.loads(row[0])) if row else None

    def commit(self, staged: Path, task: str, config: dict[str, Any], key: str | None,
               resubmitted_from: str | None, then: Callable[[Job], None] | None = None) -> tuple[Job, bool]:
        """Turn a staged folder into a queued job: (job, created). With an idempotency key that is
        already taken, the staged folder is dropped and the existing job is returned. ``then(job)``
        is called for a created job right after its transaction, in sequence order and before any
        later job's: the queue keeps submission order through it.

        Group commit: whoever holds the index takes every commit waiting at that moment into one
        transaction, so a burst of submits costs a few disk syncs instead of one each (a sync is
        ~4 ms here, and commits are serial). Each job is still acknowledged only once its row is on
        disk."""
        # a copy for people and tools (the index row holds the config): no sync of its own
        (staged / "config.json").write_bytes(json.dumps(config, indent=2).encode())
        mine = _Commit(staged, task, config, key, resubmitted_from, then)
        with self._waiting_lock:
            self._waiting.append(mine)
        with self._db_lock:
            if not mine.done:  # no earlier holder took it: commit it, and whatever waits with it
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                self._commit_batch(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _commit_batch(self, batch: list["_Commit"]) -> None:
        moved: list[tuple[Path, Path]] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM counters WHERE name='seq'").fetchone()
            top = self._db.execute("SELECT MAX(seq) FROM jobs").fetchone()[0] or 0
            seq = max(row[0] if row else 0, top)
            for c in batch:
                existing = self._find_key_in_batch(c.key) if c.key is not None else None
                if existing is not None:
                    c.result = (existing, False)
                    continue
                seq += 1
                job = Job(id=f"{seq:06d}-{secrets.token_hex(4)}", seq=seq, task=c.task, config=c.config,
                          resubmitted_from=c.resubmitted_from)
                os.replace(c.staged, self.folder(job.id))
                moved.append((self.folder(job.id), c.staged))
                self._db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (job.id, seq, job.state, c.key, job.created, None, json.dumps(job.to_dict())))
                c.result = (job, True)
            self._db.execute("INSERT OR REPLACE INTO counters VALUES ('seq', ?)", (seq,))
            self._db.execute("COMMIT")
        except BaseException as err:
            try:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for folder, staged in moved:  # back where each caller discards it: no folder without a row
                if folder.exists():
                    os.replace(folder, staged)
            failure = err if isinstance(err, StorageError) or not isinstance(err, (sqlite3.Error, OSError)) \
                else storage_error(self.root, "queueing the job", err)
            for c in batch:
                c.result, c.error = None, failure
        else:
            for c in batch:
                if c.result is not None and not c.result[1]:
                    self.discard(c.staged)  # a repeated idempotency key: the first job stands
                elif c.result is not None and c.then is not None:
                    c.then(c.result[0])
        finally:
            for c in batch:
                c.done = True

    def save(self, job: Job) -> None:
        with self._db_lock, self._writing(f"recording job {job.id} as {job.state}"):
            if job.state in TERMINAL and fault("index_end"):  # NSTR_FAULT=index_end: a full disk, once
                raise sqlite3.OperationalError("database or disk is full (injected by NSTR_FAULT=index_end)")
            self._db.execute("UPDATE jobs SET state=?, finished=?, record=? WHERE id=?",
                             (job.state, job.finished, json.dumps(job.to_dict(), allow_nan=False), job.id))

    def delete(self, job_id: str) -> None:
        with self._db_lock, self._writing(f"deleting job {job_id}"):
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
