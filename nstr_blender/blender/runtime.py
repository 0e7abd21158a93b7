"""The add-on's live state (backend session, job tracker, NeRF views being rendered) and the timer.

The timer (``poll_timer``) is the one driver: the panel's operators, scripts/fit.py and the tests
all queue work and let it run. Each call is short: it renders at most one NeRF view, starts
background network calls and applies their outcomes (:meth:`BackendSession.tick`), and builds
finished results into Blender objects. Only this main thread touches bpy, and it calls ``bpy.ops``
(a result's undo step) only while no network thread runs (``Background.quiet``): Blender 3.4 crashed
when one ran Python during ``ed.undo_push``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import bpy

from ..core.errors import AddonError
from ..core.jobs import POLL_RETRY_S, JobTracker
from ..core.meshdata import simplification_note
from ..core.session import HEALTH_EVERY_S, BackendSession, describe, describe_remote
from ..core.settings import BackendSettings
from ..core.wording import PANEL, Wording
from . import results

BUSY_TICK_S = 0.1          # while a background call runs: pick its outcome up soon (a tick costs ~0.1 ms)
QUIET_WAIT_S = 0.05        # an undo step waits for the network threads to end (see Background.quiet)
KEEP_TICKS = 2000          # per-call durations kept for the timer test and the benchmark


def online_access() -> bool:
    """Blender 4.2+'s "Allow Online Access"; older Blender has no such rule (always allowed)."""
    return bool(getattr(bpy.app, "online_access", True))


class Runtime:
    """One per Blender session (module global ``RUNTIME``)."""

    def __init__(self) -> None:
        self.tracker = JobTracker()
        self.session: BackendSession | None = None
        self.message = ""                    # the last operator problem; cleared when the state changes
        self.display = "detail"              # which attribute new results show first: the detail size
        self.on_result: Callable[[Any], None] | None = None   # optional callback(obj) (fit.py prints)
        self.views: Any = None               # a nerf_render.ViewJob while views are being rendered
        self.views_dir = ""                  # where the last NeRF views went (the panel says it)
        self.tick_seconds: list[float] = []  # how long each timer call took (tests assert on the maximum)
        self.wording: Wording = PANEL        # fixes name the panel's buttons; scripts/fit.py sets its flags
        self.pending_undo: list[str] = []    # results built but not yet one undo step (waiting for quiet())
        self.capture_folder = ""             # a capture to import once the backend answers (Import capture)
        self.capture_sent = False
        self.capture_outcome: tuple[bool, str] | None = None   # (imported, the one line to report)

    # ------------------------------------------------------------------ backend
    def log(self, text: str) -> None:
        """Progress notes go to Blender's console (the backend's own log is server.log)."""
        print(f"NSTR: {text}")

    def configure(self, settings: BackendSettings) -> BackendSession:
        """(Re)create the session when the settings changed; keep it when they did not."""
        allowed = online_access()
        session = self.session
        if session is not None and session.settings == settings and session.online_access == allowed:
            session.wording = self.wording
            return session
        if session is not None:
            session.stop()
        self.session = BackendSession(settings, log=self.log, online_access=allowed, wording=self.wording)
        return self.session

    def quiet(self) -> bool:
        """No network thread of ours runs, so the main thread may call ``bpy.ops`` (Background.quiet)."""
        return self.session is None or self.session.bg.quiet()

    def _push_pending_undo(self) -> bool:
        """Make the built results one undo step once no thread of ours runs; True when none waits."""
        if self.pending_undo and self.quiet():
            push_undo(", ".join(self.pending_undo))
            self.pending_undo.clear()
        return not self.pending_undo

    @property
    def is_starting(self) -> bool:
        return self.session is not None and self.session.starting

    def start_backend(self, settings: BackendSettings) -> None:
        """Launch/connect in the background; the timer picks the outcome up. Bad settings (a missing
        Python, a forbidden URL) raise AddonError at once."""
        session = self.configure(settings)
        self.message = ""
        if session.client is None and not session.starting:
            session.start_async()
        ensure_timer()

    def stop_backend(self) -> None:
        if self.session is not None:
            self.session.stop()
        self.message = ""

    def problem(self) -> str:
        """The one problem line the panel shows (the backend's, else the last operator's)."""
        session_error = self.session.last_error if self.session is not None else ""
        return session_error or self.message

    @property
    def busy(self) -> bool:
        """Something is still to happen: views to render, a backend starting, jobs to wait for."""
        return (self.views is not None or self.is_starting or self.tracker.needs_polling() or bool(self.pending_undo)
                or bool(self.capture_folder))

    # ------------------------------------------------------------------ a capture being imported
    def import_capture(self, folder: str) -> None:
        """Ask the backend for ``folder``'s cameras once it answers; the timer (or :meth:`wait_capture`) builds them."""
        self.capture_folder, self.capture_sent, self.capture_outcome = folder, False, None

    def wait_capture(self, timeout: float) -> tuple[bool, str] | None:
        """Drive the capture import until it ends (an operator with a connected backend); None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.capture_folder and time.monotonic() < deadline:
            self._capture_step()
            if self.capture_folder:
                time.sleep(0.02)
        return None if self.capture_folder else self.capture_outcome

    def _capture_done(self, ok: bool, text: str) -> None:
        self.capture_folder, self.capture_sent, self.capture_outcome = "", False, (ok, text)
        self.message = "" if ok else text
        self.log(text)

    def _capture_step(self) -> None:
        """Send the pending capture request once connected; build its answer into Blender data (main thread)."""
        session, folder = self.session, self.capture_folder
        if not folder or session is None:
            return
        if not self.capture_sent:
            if session.client is None:
                if not session.starting:
                    self._capture_done(False, f"capture {folder} not imported: "
                                              f"{session.last_error or 'the backend is not started'}")
                return
            session.capture_async(folder)
            self.capture_sent = True
            return
        out = session.bg.take("capture")
        if out is None:
            return
        if out.error is not None:
            self._capture_done(False, f"cannot import capture {folder}: {describe_remote(out.error)}")
            return
        from .capture import build_capture

        try:
            root, added, updated = build_capture(bpy.context.scene, out.value)
        except Exception as err:  # noqa: BLE001 - one line, the scene as it was
            self._capture_done(False, f"cannot build capture {folder}: {describe(err)}")
            return
        coll = root.users_collection[0].name if root.users_collection else root.name
        self._capture_done(True, f"Imported {len(out.value.cameras)} cameras into '{coll}' ({added} new, "
                                 f"{updated} updated); move and scale its region box, then Fit")

    # ------------------------------------------------------------------ the timer's work
    def step(self) -> float | None:
        """One short step. Returns the next interval (None stops the timer)."""
        if self.views is not None:
            interval = self._render_one_view()
            if self.views is not None:
                self._tick_session()        # the server's answers (start, health, jobs) between views too
            return interval
        interval = self._tick_session()
        if self.capture_folder:
            self._capture_step()
            return min(interval or BUSY_TICK_S, BUSY_TICK_S)
        return interval

    def _tick_session(self) -> float | None:
        """Apply what the server answered and start the next calls; build finished results."""
        session = self.session
        if session is None:
            return None
        if not self._push_pending_undo():
            return QUIET_WAIT_S                        # start no new call until the undo step is made
        had_client = session.client is not None
        try:
            collected = session.tick(self.tracker, time.monotonic())
        except AddonError as err:
            self.message = str(err)
            return POLL_RETRY_S
        if session.client is not None and not had_client:
            self.message = ""                          # connected: an old problem is gone
        for record, result in collected:
            try:
                scene = bpy.context.scene
                obj = results.create_result_object(scene, record.source, result, record.job_id or "",
                                                   display=self.display, replace=not scene.nstr.keep_versions,
                                                   in_source_frame=record.in_source_frame)
            except Exception as err:  # noqa: BLE001 - becomes the job's message
                record.mark_error(f"could not build the result mesh: {describe(err)}")
                continue
            record.mark_collected(obj.name)
            self.log(f"{record.source}: result -> {obj.name} ({len(result.vertices)} vertices)")
            note = simplification_note(result.meta)
            if note:                                   # e.g. a face budget above the dense count: said, not lost
                self.message = f"{record.source}: {note}"
                self.log(self.message)
            if not bpy.app.background:                 # no undo in background mode
                self.pending_undo.append(f"NSTR result {obj.name}")
            if self.on_result is not None:
                self.on_result(obj)
        if not self._push_pending_undo():
            return QUIET_WAIT_S
        if session.bg.any_busy():
            return BUSY_TICK_S
        interval = self.tracker.next_interval(backend_answered=not session.last_error)
        if interval is None:
            return HEALTH_EVERY_S if session.client is not None else None
        return interval

    def _render_one_view(self) -> float | None:
        job = self.views
        try:
            finished = job.render_next()
        except Exception as err:  # noqa: BLE001 - a failed render ends the view job with one line
            job.close()
            self.views = None
            self.message = f"rendering the NeRF views failed: {describe(err)}"
            return None
        if not finished:
            return 0.01
        try:
            arrays = {} if job.cancelled else job.arrays()
        finally:
            job.close()
        self.views = None
        if job.cancelled:
            self.message = ""
            self.log(f"NeRF views cancelled after {job.done} of {job.total}")
            return None
        record = self.tracker.add(job.source, "nerf", dict(job.config), arrays)   # sent as arrays: no shared folder
        record.message = f"views in {job.out_dir}"
        self.log(f"rendered {job.total} NeRF views to {job.out_dir}; fitting")
        if self.session is not None and self.session.client is None and not self.session.starting:
            try:
                self.session.start_async()
            except AddonError as err:
                record.mark_error(str(err))
        return BUSY_TICK_S


RUNTIME = Runtime()


def poll_timer() -> float | None:
    """The bpy.app.timers callback (main thread). Never raises: errors go to the panel."""
    t0 = time.perf_counter()
    try:
        interval = RUNTIME.step()
    except Exception as err:  # noqa: BLE001
        RUNTIME.message = describe(err)
        interval = POLL_RETRY_S
    redraw_panels()
    ticks = RUNTIME.tick_seconds
    ticks.append(time.perf_counter() - t0)
    if len(ticks) > KEEP_TICKS:
        del ticks[: len(ticks) - KEEP_TICKS]
    return interval


def run_until_idle(timeout: float, on_tick: Callable[[], None] | None = None) -> None:
    """Call the timer's function until nothing is left to do (scripts and tests: in background mode
    Blender's timers do not fire while a script runs). Raises AddonError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while RUNTIME.busy:
        interval = poll_timer()
        if on_tick is not None:
            on_tick()
        if time.monotonic() > deadline:
            raise AddonError(f"still busy after {timeout:.0f} s", "Use a smaller preset or a longer timeout")
        time.sleep(min(interval or BUSY_TICK_S, 0.25))


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(poll_timer):
        bpy.app.timers.register(poll_timer, first_interval=0.05, persistent=True)


def stop_timer() -> None:
    if bpy.app.timers.is_registered(poll_timer):
        bpy.app.timers.unregister(poll_timer)


def redraw_panels() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def push_undo(message: str) -> None:
    """Make the new result one undo step (Ctrl+Z removes it; the original stays). Call it only when
    ``RUNTIME.quiet()``: see Background.quiet."""
    if bpy.app.background:
        return
    wm = bpy.context.window_manager
    window = wm.windows[0] if wm is not None and wm.windows else None
    try:
        if window is not None and hasattr(bpy.context, "temp_override"):
            with bpy.context.temp_override(window=window):
                bpy.ops.ed.undo_push(message=message)
        else:
            bpy.ops.ed.undo_push(message=message)
    except RuntimeError as err:        # no undo here (e.g. a script context): the result stays
        print(f"NSTR: no undo step for {message}: {err}")
