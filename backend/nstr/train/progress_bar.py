"""A terminal progress bar for training: bar, step, loss, metrics and ETA on one self-rewriting line."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from nstr.train.loop import Progress


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressBar:
    """Call with each Progress. On a terminal it redraws one line; in a log it prints every ~10%."""

    def __init__(self, label: str = "fit", stream: TextIO | None = None, width: int = 24) -> None:
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.tty = self.stream.isatty()
        self._last_decile = -1
        self._last_draw = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if self.tty and not p.done and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        filled = int(round(self.width * p.fraction))
        bar = "#" * filled + "-" * (self.width - filled)
        extras = "".join(f" {k} {v:.4g}" for k, v in p.metrics.items())
        pde = f" pde {p.terms['pde']:.3g}" if "pde" in p.terms else ""
        eta = f"ETA {format_seconds(p.eta)}" if not p.done else f"in {format_seconds(p.elapsed)}"
        line = (f"{self.label} [{bar}] {100 * p.fraction:5.1f}% step {p.step}/{p.total} "
                f"loss {p.loss:.4g}{pde}{extras} {eta}")
        if self.tty:
            self.stream.write("\r" + line.ljust(100) + ("\n" if p.done else ""))
            self.stream.flush()
            return
        decile = int(10 * p.fraction)
        if p.done or decile > self._last_decile:
            self._last_decile = decile
            self.stream.write(line + "\n")
            self.stream.flush()
