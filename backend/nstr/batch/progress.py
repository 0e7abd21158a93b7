"""Progress over the jobs of a batch: how many are finished, and each running job's phase.

On a terminal one self-rewriting line; in a log one line per job start and per job end."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

FINAL = ("done", "skipped", "failed", "cancelled")


class BatchProgress:
    def __init__(self, total: int, stream: TextIO | None = None, width: int = 20) -> None:
        self.total, self.stream, self.width = total, stream or sys.stderr, width
        self.tty = self.stream.isatty()
        self.finished: dict[str, str] = {}
        self._seen_running: set[str] = set()
        self._last = 0.0

    def say(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r" + " " * (shutil.get_terminal_size().columns - 1) + "\r")
        self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, key: str, state: str, detail: str = "") -> None:
        self.finished[key] = state
        self.say(f"[{len(self.finished)}/{self.total}] {state} {key}" + (f": {detail}" if detail else ""))

    def update(self, running: dict[str, dict[str, Any]]) -> None:
        """``running``: key -> {"phase", "step", "total", "loss", "eta_s", "node", ...} for jobs that have started."""
        for key, ev in running.items():
            if key not in self._seen_running and key not in self.finished:
                self._seen_running.add(key)
                if not self.tty:
                    self.say(f"started {key}" + (f" on {ev['node']}" if ev.get("node") else ""))
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        done = len(self.finished)
        filled = int(round(self.width * done / max(1, self.total)))
        bad = sum(1 for s in self.finished.values() if s in ("failed", "cancelled"))
        parts = []
        for key, ev in running.items():
            if key in self.finished:
                continue
            phase, step, total = ev.get("phase") or "starting", ev.get("step") or 0, ev.get("total") or 0
            eta = ev.get("eta_s")
            parts.append(f"{key}: {phase}" + (f" {step}/{total}" if total > 1 else "")
                         + (f" ETA {eta:.0f} s" if isinstance(eta, (int, float)) else ""))
        line = (f"batch [{'#' * filled}{'-' * (self.width - filled)}] {done}/{self.total}"
                + (f" ({bad} failed/cancelled)" if bad else "") + (" | " + ", ".join(parts) if parts else ""))
        cols = shutil.get_terminal_size().columns - 1
        self.stream.write("\r" + line[:cols].ljust(cols))
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
