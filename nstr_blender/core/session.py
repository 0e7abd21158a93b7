"""The add-on's connection to one backend: launch or connect, submit, poll, collect.

One ``BackendSession`` per Blender session. Every method is a short call meant to
run on Blender's main thread from a timer (loopback requests, a few ms); none waits
for a fit. Failures become :class:`BackendProblem` with a one-line message and fix,
the text the panel shows.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import AddonError, BackendProblem, ResultError
from .jobs import JobRecord, JobTracker
from .meshdata import MeshResult, parse_result
from .settings import BackendSettings

Log = Callable[[str], None]


def _remote():
    """The client module, imported on first use so bpy-free tests of other modules need no backend."""
    from .. import remote
    return remote


class BackendSession:
    """A launched local backend process or a remote server, and the client that talks to it."""

    def __init__(self, settings: BackendSettings, log: Log | None = None) -> None:
        self.settings = settings
        self.log: Log = log or (lambda _msg: None)
        self.client: Any = None
        self.local: Any = None
        self.health: dict[str, Any] = {}
        self.last_error: str = ""
        self.restarts = 0

    # ----------------------------------------------------------------- connection
    @property
    def connected(self) -> bool:
        return self.client is not None and bool(self.health)

    @property
    def url(self) -> str:
        return getattr(self.client, "base_url", None) or getattr(self.client, "url", "") or ""

    def start(self, timeout: float = 90.0) -> dict[str, Any]:
        """Launch the local backend (or connect to the URL) and return its health."""
        remote = _remote()
        self.settings.check()
        if self.settings.mode == "local":
            if self.local is not None and self.local.alive() and self.client is not None:
                return self.refresh()
            log_dir = self.settings.resolved_log_dir()
            log_dir.mkdir(parents=True, exist_ok=True)
            self.local = remote.LocalBackend(python=self.settings.resolved_python(), log_dir=log_dir,
                                             device=self.settings.device)
            try:
                url = self.local.start(timeout=timeout)
            except remote.LaunchError as err:
                self.local = None
                raise self._problem(str(err)) from None
            self.client = remote.BackendClient(url, token=getattr(self.local, "token", None), timeout=10.0)
            self.log(f"backend started at {url} (log: {log_dir})")
        else:
            self.client = remote.BackendClient(self.settings.url.strip(), token=self.settings.token or None,
                                               timeout=10.0)
            try:
                return self.refresh()
            except BackendProblem:
                self.client = None            # not connected: the next Start/Fit tries again
                raise
        return self.refresh()

    def stop(self) -> None:
        """Stop a launched process (a remote server is only disconnected)."""
        if self.local is not None:
            self.local.stop()
            self.local = None
        self.client = None
        self.health = {}

    def refresh(self) -> dict[str, Any]:
        """Ask the backend how it is (device, GPU memory, queue)."""
        remote = _remote()
        if self.client is None:
            raise self._problem("the backend is not started", "Press Start in the NSTR panel")
        try:
            self.health = dict(self.client.health())
        except remote.BackendUnreachable:
            self.health = {}
            raise self._problem(f"Backend not reachable at {self.url or self.settings.url}",
                                "Press Start in the NSTR panel, or check the URL and that the server runs") from None
        except remote.AuthError:
            self.health = {}
            raise self._problem("the backend refused the token", "Set the right token in the add-on preferences") \
                from None
        except remote.BackendError as err:
            self.health = {}
            raise self._problem(_backend_message(err)) from None
        self.last_error = ""
        return self.health

    def ensure_alive(self, tracker: JobTracker) -> bool:
        """Restart a launched process that died; its unfinished jobs go back to pending.
        Returns True when a restart happened."""
        if self.local is None or self.local.alive():
            return False
        remote = _remote()
        self.log("backend process died; restarting it")
        try:
            url = self.local.restart()
        except remote.LaunchError as err:
            raise self._problem(str(err)) from None
        if not isinstance(url, str):
            url = getattr(self.local, "url", None) or self.url
        self.client = remote.BackendClient(url, token=getattr(self.local, "token", None), timeout=10.0)
        self.restarts += 1
        again = tracker.lost_with_backend()
        self.refresh()
        self.log(f"backend restarted at {url}; sending {len(again)} job(s) again")
        return True

    # ----------------------------------------------------------------- jobs
    def submit_pending(self, tracker: JobTracker) -> list[JobRecord]:
        """Send every pending record. A rejected job (bad config or input) gets its message."""
        remote = _remote()
        if self.client is None:
            raise self._problem("the backend is not started", "Press Start in the NSTR panel")
        sent = []
        for record in tracker.unsent():
            try:
                record.job_id = self.client.submit(record.task, record.config, record.arrays or {})
            except remote.BackendUnreachable:
                raise self._problem(f"Backend not reachable at {self.url}",
                                    "Press Start in the NSTR panel") from None
            except remote.BackendError as err:
                record.mark_error(_backend_message(err))
                continue
            record.state = "queued"
            record.message = ""
            sent.append(record)
            self.log(f"{record.source}: job {record.job_id} submitted ({record.task}, {record.config})")
        return sent

    def poll(self, tracker: JobTracker) -> list[tuple[JobRecord, MeshResult]]:
        """Update every active record; fetch and parse finished results.

        The caller turns each returned result into Blender data and then calls
        ``record.mark_collected(name)`` (or ``mark_error``)."""
        remote = _remote()
        if self.client is None:
            return []
        self.ensure_alive(tracker)
        if tracker.unsent():
            self.submit_pending(tracker)
        try:
            for record in tracker.active():
                if record.job_id is None:
                    continue
                try:
                    record.apply_status(self.client.status(record.job_id))
                except remote.BackendError as err:
                    if getattr(err, "status", None) == 404:   # the server forgot it (it restarted)
                        tracker.lost_with_backend()
                        break
                    record.mark_error(_backend_message(err))
            results = []
            for record in tracker.to_collect():
                try:
                    meta, arrays = self.client.result(record.job_id)
                    numpy_arrays = {k: (v.to_numpy() if hasattr(v, "to_numpy") else v) for k, v in arrays.items()}
                    results.append((record, parse_result(numpy_arrays, meta or None)))
                except ResultError as err:
                    record.mark_error(str(err))
                except remote.BackendError as err:
                    record.mark_error(_backend_message(err))
        except remote.BackendUnreachable:
            self.last_error = f"Backend not reachable at {self.url}. Press Start in the NSTR panel"
            self.health = {}
            return []
        self.last_error = ""
        return results

    def cancel(self, record: JobRecord) -> None:
        remote = _remote()
        if record.job_id is None or self.client is None:
            record.state, record.message, record.arrays = "cancelled", "cancelled", None
            return
        try:
            record.apply_status(self.client.cancel(record.job_id))
        except remote.BackendUnreachable:
            raise self._problem(f"Backend not reachable at {self.url}", "Press Start in the NSTR panel") from None
        except remote.BackendError as err:
            raise self._problem(_backend_message(err)) from None

    def release_gpu(self) -> dict[str, Any]:
        remote = _remote()
        if self.client is None:
            raise self._problem("the backend is not started", "Press Start in the NSTR panel")
        try:
            out = dict(self.client.release_gpu())
        except remote.BackendUnreachable:
            raise self._problem(f"Backend not reachable at {self.url}", "Press Start in the NSTR panel") from None
        except remote.BackendError as err:
            raise self._problem(_backend_message(err)) from None
        self.refresh()
        return out

    def _problem(self, problem: str, fix: str | None = None) -> BackendProblem:
        err = BackendProblem(problem, fix)
        self.last_error = str(err)
        return err


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
