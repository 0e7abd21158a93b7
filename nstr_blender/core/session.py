"""The add-on's connection to one backend: launch or connect, submit, poll, collect.

One ``BackendSession`` per Blender session. :meth:`BackendSession.tick` is what Blender's timer
calls: it never waits on the network. Every request (start, health, submit, the one batched
``jobs`` poll, result downloads, cancel) runs on a :class:`~.background.Background` thread; the
tick only starts calls and applies their outcomes to the records, on the main thread. Failures
become one-line messages with a fix, the text the panel shows.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from . import shared_server
from .background import Background
from .errors import AddonError, BackendProblem, ResultError
from .jobs import POLL_RETRY_S, JobRecord, JobTracker
from .meshdata import MeshResult, parse_result
from .settings import BackendSettings
from .wording import PANEL, Wording

Log = Callable[[str], None]
CALL_TIMEOUT_S = 30.0     # every call runs off the main thread, so a slow server only delays, never freezes
HEALTH_EVERY_S = 5.0      # device / GPU memory / queue while connected


def _remote():
    """The client module, imported on first use so bpy-free tests of other modules need no backend."""
    from .. import remote
    return remote


class BackendSession:
    """A launched local backend process or a remote server, and the client that talks to it."""

    def __init__(self, settings: BackendSettings, log: Log | None = None, online_access: bool = True,
                 wording: Wording = PANEL) -> None:
        self.settings = settings
        self.wording = wording          # fixes in the caller's words (panel buttons or fit.py flags)
        self.online_access = online_access
        self.bg = Background()
        self.server_jobs: list[dict[str, Any]] = []
        self.last_poll = 0.0
        self.last_health = 0.0
        self.retry_at = 0.0
        self.log: Log = log or (lambda _msg: None)
        self.client: Any = None
        self.local: Any = None
        self.shared: shared_server.SharedServer | None = None   # another Blender's local server, in use
        self.health: dict[str, Any] = {}
        self.last_error: str = ""
        self.restarts = 0

    # ----------------------------------------------------------------- connection
    @property
    def connected(self) -> bool:
        return self.client is not None and bool(self.health)

    @property
    def on_gpu(self) -> bool:
        """The server said it runs on a CUDA device (its health answer): only then are GPU actions offered."""
        return self.connected and str(self.health.get("device", "")).startswith("cuda")

    @property
    def url(self) -> str:
        return str(getattr(self.client, "url", "") or "")

    def start(self, timeout: float = 90.0) -> dict[str, Any]:
        """Launch the local backend (or connect to the URL) and return its health."""
        remote = _remote()
        self.settings.check(self.online_access, self.wording)
        if self.settings.mode == "local":
            if self.local is not None and self.local.alive() and self.client is not None:
                return self.refresh()
            python, device = self.settings.resolved_python(), self.settings.device
            found = None if self.local is not None else shared_server.find(
                python, device, lambda s: remote.BackendClient(s.url, token=s.token, timeout=2.0).health())
            if found is not None:               # another Blender's server holds the jobs folder: use it
                self.shared = found
                self.client = remote.BackendClient(found.url, token=found.token, timeout=CALL_TIMEOUT_S)
                self.log(f"using the local backend another Blender started at {found.url} (pid {found.pid})")
                return self.refresh()
            log_dir = self.settings.resolved_log_dir()
            log_dir.mkdir(parents=True, exist_ok=True)
            self.local = remote.LocalBackend(python=self.settings.resolved_python(), log_dir=log_dir,
                                             device=self.settings.device,
                                             extra_args=self.settings.data_root_args())
            try:
                url = self.local.start(timeout=timeout)
            except remote.LaunchError as err:
                self.local = None
                raise self._problem(str(err)) from None
            self.client = remote.BackendClient(url, token=getattr(self.local, "token", None), timeout=CALL_TIMEOUT_S)
            self.log(f"backend started at {url} (log: {log_dir})")
            process = getattr(self.local, "process", None)
            if process is not None:             # other Blenders of this user may share it
                shared_server.write(shared_server.SharedServer(process.pid, url, self.local.token, python, device))
        else:
            self.client = remote.BackendClient(self.settings.url.strip(), token=self.settings.token or None,
                                               timeout=CALL_TIMEOUT_S)
            try:
                return self.refresh()
            except BackendProblem:
                self.client = None            # not connected: the next Start/Fit tries again
                raise
        return self.refresh()

    def stop(self) -> None:
        """Stop a launched process (a remote server is only disconnected)."""
        if self.local is not None:
            process = getattr(self.local, "process", None)
            if process is not None:            # withdrawn first: sharers then read the stop as a stop
                shared_server.clear(process.pid)
            self.local.stop()
            self.local = None
        self.shared = None
        self.client = None
        self.health = {}

    def refresh(self) -> dict[str, Any]:
        """Ask the backend how it is (device, GPU memory, queue)."""
        remote = _remote()
        if self.client is None:
            raise self._problem("the backend is not started", self.wording.start)
        try:
            self.health = dict(self.client.health())
        except remote.BackendUnreachable:
            self.health = {}
            raise self._problem(f"Backend not reachable at {self.url or self.settings.url}",
                                self.wording.reach) from None
        except remote.AuthError:
            self.health = {}
            raise self._problem("the backend refused the token", self.wording.token) \
                from None
        except remote.BackendError as err:
            self.health = {}
            raise self._problem(_backend_message(err)) from None
        self.last_error = ""
        return self.health

    # ----------------------------------------------------------------- the timer's tick
    def start_async(self, timeout: float = 120.0) -> None:
        """Launch/connect on a thread; :meth:`tick` picks up the outcome."""
        self.settings.check(self.online_access, self.wording)       # bad paths and forbidden URLs fail at once
        self.last_error = ""
        self.bg.start("start", lambda: self.start(timeout=timeout))

    @property
    def starting(self) -> bool:
        return self.bg.busy("start")

    def tick(self, tracker: JobTracker, now: float) -> list[tuple[JobRecord, MeshResult]]:
        """One non-blocking step: apply finished calls, start the next ones. Returns the results
        downloaded and parsed since the last tick; the caller builds them into Blender data and
        calls ``record.mark_collected`` (or ``mark_error``)."""
        remote = _remote()
        results: list[tuple[JobRecord, MeshResult]] = []
        done = self.bg.take("start")
        if done is not None:
            if done.error is not None:
                self.last_error = describe(done.error)
                for record in tracker.unsent():
                    record.mark_error("not sent: the backend did not start (see the message above)")
            else:
                self.last_error = ""
                self.last_poll = 0.0
        if self.starting or self.client is None:
            return results
        if self.local is not None and (self.local.process is None or self.local.process.poll() is not None):
            self._restart_async(tracker)
            return results
        if self.shared is not None and not shared_server.still_shared(self.shared):
            self._shared_gone(tracker)
            return results

        for key in self.bg.finished("submit:"):
            record = next((r for r in tracker if f"submit:{id(r)}" == key), None)
            out = self.bg.take(key)
            if record is None or out is None:
                continue
            if out.error is None:
                record.job_id, record.state, record.message = str(out.value), "queued", ""
                self.log(f"{record.source}: job {record.job_id} submitted ({record.task}, {record.config})")
            elif isinstance(out.error, remote.BackendUnreachable):
                self.last_error = f"Backend not reachable at {self.url}. It will be tried again"
            else:
                record.mark_error(describe_remote(out.error))
        for record in tracker.unsent():
            if now >= self.retry_at:
                self.bg.start(f"submit:{id(record)}", functools.partial(
                    self.client.submit, record.task, dict(record.config), record.arrays or {}))

        out = self.bg.take("jobs")
        if out is not None:
            self.last_poll = now
            if out.error is None:
                self.server_jobs = list(out.value)
                self._apply_jobs(tracker)
                self.last_error = ""
            else:
                self._connection_failed(out.error, now)
        wanted = any(r.job_id and r.active for r in tracker)
        if wanted and now - self.last_poll >= tracker.next_interval(True) and now >= self.retry_at:
            client = self.client
            self.bg.start("jobs", client.jobs)            # the one batched status call

        for key in self.bg.finished("result:"):
            job_id = key.partition(":")[2]
            out = self.bg.take(key)
            record = tracker.by_job_id(job_id)
            if record is None or out is None or record.state != "done":
                continue
            if out.error is None:
                results.append((record, out.value))
            elif isinstance(out.error, ResultError):
                record.mark_error(str(out.error))
            elif isinstance(out.error, remote.BackendUnreachable):
                self._connection_failed(out.error, now)      # tried again on a later tick
            else:
                record.mark_error(describe_remote(out.error))
        handed_back = {id(record) for record, _result in results}
        for record in tracker.to_collect():      # not the ones handed back now: the caller marks them collected
            if record.job_id and id(record) not in handed_back and now >= self.retry_at:
                self.bg.start(f"result:{record.job_id}", self._download(record.job_id))

        for key in self.bg.finished("cancel:"):
            out = self.bg.take(key)
            record = tracker.by_job_id(key.partition(":")[2])
            if out is None or record is None:
                continue
            if out.error is None:
                record.apply_status(out.value)
            else:
                self.last_error = describe_remote(out.error)

        out = self.bg.take("release_gpu")
        if out is not None:
            if out.error is not None:
                self.last_error = describe_remote(out.error)
            else:
                self.last_health = 0.0                 # show the freed memory on this tick's health call
        out = self.bg.take("health")
        if out is not None:
            if out.error is None:
                self.health = dict(out.value)
            else:
                self._connection_failed(out.error, now)
        if now - self.last_health >= HEALTH_EVERY_S and not self.bg.busy("health"):
            self.last_health = now
            self.bg.start("health", self.client.health)
        return results

    def _download(self, job_id: str) -> Callable[[], MeshResult]:
        client = self.client

        def fetch() -> MeshResult:
            meta, arrays = client.result(job_id)
            numpy_arrays = {k: (v.to_numpy() if hasattr(v, "to_numpy") else v) for k, v in arrays.items()}
            return parse_result(numpy_arrays, meta or None)
        return fetch

    def _apply_jobs(self, tracker: JobTracker) -> None:
        by_id = {str(j.get("id")): j for j in self.server_jobs}
        lost = False
        for record in tracker:
            if not (record.job_id and record.active):
                continue
            status = by_id.get(record.job_id)
            if status is None:                # the server forgot it (a restarted server)
                lost = True
                continue
            record.apply_status(status)
        if lost:
            again = tracker.lost_with_backend()
            self.log(f"the backend no longer knows {len(again)} job(s); sending them again")

    def _connection_failed(self, err: BaseException, now: float) -> None:
        self.last_error = describe_remote(err)
        self.retry_at = now + POLL_RETRY_S

    def _shared_gone(self, tracker: JobTracker) -> None:
        """Another Blender stopped (or quit with) the server we shared: say so; unfinished jobs go
        back to pending and are sent again to the backend the next Start or Fit starts."""
        again = tracker.lost_with_backend()
        url, self.shared, self.client, self.health = self.shared.url if self.shared else "", None, None, {}
        self._problem(f"the shared local backend at {url} was stopped by the Blender that started it",
                      self.wording.start)
        self.log(f"the shared backend at {url} is gone; {len(again)} job(s) wait for the next start")

    def _restart_async(self, tracker: JobTracker) -> None:
        """A launched process died: its unfinished jobs go back to pending; start it again."""
        again = tracker.lost_with_backend()
        self.restarts += 1
        self.log(f"backend process died; restarting it and sending {len(again)} job(s) again")
        self.client = None
        self.bg.start("start", lambda: self.start(timeout=120.0))

    def queue_counts(self) -> tuple[int, int]:
        """(running, queued) on the server, from the last jobs list; our own records when there is none."""
        jobs = self.server_jobs
        running = sum(1 for j in jobs if j.get("state") == "running")
        queued = sum(1 for j in jobs if j.get("state") == "queued")
        return running, queued

    def cancel_async(self, record: JobRecord) -> None:
        if record.job_id is None or self.client is None:
            record.state, record.message, record.arrays = "cancelled", "cancelled", None
            return
        job_id, client = record.job_id, self.client
        self.bg.start(f"cancel:{job_id}", lambda: client.cancel(job_id))

    def capture_async(self, folder: str) -> None:
        """Ask the server for a capture folder's cameras (:func:`~.capture.parse_capture`); the outcome is
        taken with ``bg.take("capture")``. The folder is the server's path, inside its data root."""
        from .capture import parse_capture

        if self.client is None:
            raise self._problem("the backend is not started", self.wording.start)
        client = self.client
        self.bg.start("capture", lambda: parse_capture(client.capture(folder)))

    def release_gpu_async(self) -> None:
        if self.client is None:
            raise self._problem("the backend is not started", self.wording.start)
        self.bg.start("release_gpu", self.client.release_gpu)

    def _problem(self, problem: str, fix: str | None = None) -> BackendProblem:
        err = BackendProblem(problem, fix)
        self.last_error = str(err)
        return err


def describe_remote(err: BaseException) -> str:
    """One panel line for an exception a background call raised."""
    remote = _remote()
    if isinstance(err, remote.AuthError):
        return "the backend refused the token. Set the right token in the add-on preferences"
    if isinstance(err, remote.BackendError):
        return _backend_message(err)
    return describe(err)


def _backend_message(err: Exception) -> str:
    """One line from a BackendError: its message and fix."""
    message = str(getattr(err, "message", "") or err).strip()
    fix = str(getattr(err, "fix", "") or "").strip()
    if fix and fix not in message:
        message = f"{message.rstrip('.')}. {fix}"
    return message


def describe(err: BaseException) -> str:
    """The panel line for any exception from this package."""
    if isinstance(err, AddonError):
        return str(err)
    return f"{type(err).__name__}: {err}"
