"""The add-on's live state (backend session, job tracker) and the timer that drives it.

Only the main thread touches bpy. The one background thread here launches the
local backend process (a few seconds of ``import torch``) and touches nothing but
plain Python objects; the timer notices when it is done.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import bpy

from ..core.errors import AddonError
from ..core.jobs import POLL_RETRY_S, JobTracker
from ..core.session import BackendSession, describe
from ..core.settings import BackendSettings
from . import results

HEALTH_EVERY_S = 5.0      # refresh device / GPU memory while idle and connected


class Runtime:
    """One per Blender session (module global ``RUNTIME``)."""

    def __init__(self) -> None:
        self.tracker = JobTracker()
        self.session: BackendSession | None = None
        self.message = ""                    # last one-line problem, shown in the panel
        self.starting: threading.Thread | None = None
        self.start_error: str = ""
        self.last_health = 0.0
        self.display = "local_frequency"     # which attribute new results show first
        self.on_result: Any = None           # optional callback(obj) (the headless script prints)

    # ------------------------------------------------------------------ backend
    def log(self, text: str) -> None:
        """Progress notes go to Blender's console (the backend's own log is server.log)."""
        print(f"NSTR: {text}")

    def configure(self, settings: BackendSettings) -> BackendSession:
        """(Re)create the session when the settings changed; keep it when they did not."""
        if self.session is not None and self.session.settings == settings:
            return self.session
        if self.session is not None:
            self.session.stop()
        self.session = BackendSession(settings, log=self.log)
        return self.session

    @property
    def is_starting(self) -> bool:
        return self.starting is not None and self.starting.is_alive()

    def start_backend(self, settings: BackendSettings, block: bool = False, timeout: float = 120.0) -> None:
        """Launch/connect. Non-blocking by default: a thread starts it, the timer picks it up."""
        session = self.configure(settings)
        settings.check()                       # bad paths fail at once, with the fix
        self.start_error = ""
        if block:
            session.start(timeout=timeout)
            self.message = ""
            return
        if self.is_starting:
            return

        def run() -> None:
            try:
                session.start(timeout=timeout)
            except AddonError as err:
                self.start_error = str(err)
            except Exception as err:  # noqa: BLE001 - reported in the panel, not lost
                self.start_error = describe(err)

        self.starting = threading.Thread(target=run, name="nstr-backend-start", daemon=True)
        self.starting.start()
        ensure_timer()

    def stop_backend(self) -> None:
        if self.session is not None:
            self.session.stop()
        self.message = ""

    # ------------------------------------------------------------------ polling
    def step(self) -> float | None:
        """One poll: finish a start, resubmit, update progress, collect results. Returns the
        next interval (None stops the timer)."""
        if self.is_starting:
            return 0.25
        if self.starting is not None:              # a start just finished
            self.starting = None
            if self.start_error:
                self.message = self.start_error
                for record in self.tracker.unsent():
                    record.mark_error(self.start_error)
                return None
            self.message = ""
            self.last_health = time.monotonic()
        session = self.session
        if session is None or session.client is None:
            return None
        try:
            collected = session.poll(self.tracker)
        except AddonError as err:
            self.message = str(err)
            return POLL_RETRY_S if self.tracker.needs_polling() else None
        if session.last_error:
            self.message = session.last_error
            return POLL_RETRY_S
        self.message = ""
        for record, result in collected:
            try:
                scene = bpy.context.scene
                obj = results.create_result_object(scene, record.source, result, record.job_id or "",
                                                   display=self.display)
            except Exception as err:  # noqa: BLE001 - becomes the job's message
                record.mark_error(f"could not build the result mesh: {describe(err)}")
                continue
            record.mark_collected(obj.name)
            self.log(f"{record.source}: result -> {obj.name} ({len(result.vertices)} vertices)")
            push_undo(f"NSTR result {obj.name}")
            if self.on_result is not None:
                self.on_result(obj)
        interval = self.tracker.next_interval(backend_answered=True)
        if interval is None and session.connected:
            if time.monotonic() - self.last_health > HEALTH_EVERY_S:
                self.last_health = time.monotonic()
                try:
                    session.refresh()
                except AddonError as err:
                    self.message = str(err)
            interval = HEALTH_EVERY_S
        return interval


RUNTIME = Runtime()


def poll_timer() -> float | None:
    """The bpy.app.timers callback (main thread). Never raises: errors go to the panel."""
    try:
        interval = RUNTIME.step()
    except Exception as err:  # noqa: BLE001
        RUNTIME.message = describe(err)
        interval = POLL_RETRY_S
    redraw_panels()
    return interval


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(poll_timer):
        bpy.app.timers.register(poll_timer, first_interval=0.1, persistent=True)


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
    """Make the new result one undo step (Ctrl+Z removes it; the original stays)."""
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
