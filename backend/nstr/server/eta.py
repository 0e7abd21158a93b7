"""A running job's progress and ETA from its progress events: the fit's remaining steps at its
measured step rate, plus what the stages after the fit (extracting, attributes, scoring, saving the
result) cost on this server's earlier jobs of the same task.

Those stages cost seconds that the fit's own ETA does not know about (on a 2-core CPU a quick
Suzanne fit at the automatic resolution spent 48 of its 60 s after the last step). Their cost is
learnt in *fit steps* (seconds after the fit / seconds per step of that job's fit), with the job's
size (an SDF's marching-cubes grid points, which the task reports as ``grid_points`` in a progress
event's metrics before it fits): it carries over between a loaded and an idle machine, a CPU and a
GPU, with the new job's step time, and between sizes as :class:`StageCosts` says. Until a task has
finished once on this server, only the fit's remaining time is known and the ETA says no more.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict, deque

PHASE_SPANS: dict[str, tuple[float, float]] = {
    "loading": (0.0, 0.05), "sampling": (0.0, 0.05), "fitting": (0.05, 0.85),
    "extracting": (0.85, 0.95), "attributes": (0.95, 1.0),
}
FIT_PHASES = ("fitting",)
HISTORY = 20                 # finished jobs per task that the after-fit cost is learnt from


def progress_of(phase: str, step: int, total: int, previous: float) -> float:
    """The job's fraction done: the phase's span, by step/total; never goes back."""
    lo, hi = PHASE_SPANS.get(phase, (previous, previous))
    frac = step / total if total else 0.0
    return max(previous, min(1.0, lo + (hi - lo) * frac))


class StageCosts:
    """Per task, what everything after the fit cost the last jobs, in fit steps, with each job's size.

    A job is predicted from the earlier jobs of the nearest size (the same size when there is one),
    scaled by the size ratio to the 2/3 power: for a grid of ``size`` points that is the surface's
    area (vertices to extract, colour and score), which drove the after-fit cost on the CPU
    (64^3 -> 256^3: 58 -> 830 fit steps, a ratio of 14 for 16 in area, 64 in points).
    """

    def __init__(self) -> None:
        self._after_fit: dict[str, deque[tuple[float, float]]] = defaultdict(lambda: deque(maxlen=HISTORY))

    def record(self, task: str, after_fit_steps: float, size: float = 1.0) -> None:
        if math.isfinite(after_fit_steps) and after_fit_steps >= 0 and size > 0:
            self._after_fit[task].append((size, after_fit_steps))

    def after_fit_steps(self, task: str, size: float = 1.0) -> float | None:
        seen = self._after_fit.get(task)
        if not seen:
            return None
        nearest = min(seen, key=lambda entry: abs(math.log(entry[0] / size)))[0]
        steps = statistics.median(s for z, s in seen if z == nearest)
        return steps * (size / nearest) ** (2 / 3)


class JobEta:
    """One running job: feed it every progress event (``update``) and its end (``finish``)."""

    def __init__(self, task: str, started: float, costs: StageCosts) -> None:
        self.task, self.started, self.costs = task, started, costs
        self.progress = 0.0
        self.fit_start: float | None = None          # time of the first fitting event, and its step
        self.fit_start_step = 0
        self.fit_end: float | None = None            # time the fit's last step was reported
        self.step_seconds: float | None = None       # measured seconds per fit step
        self.size = 1.0                              # the job's size for the after-fit stages (grid points)

    def update(self, now: float, phase: str, step: int, total: int, fit_eta: float | None,
               metrics: dict | None = None) -> float | None:
        """The job's ETA in seconds after this event (None while nothing can be said)."""
        self.progress = progress_of(phase, step, total, self.progress)
        size = (metrics or {}).get("grid_points")
        if isinstance(size, (int, float)) and size > 0:
            self.size = float(size)
        if phase in FIT_PHASES:
            if self.fit_start is None:
                self.fit_start, self.fit_start_step = now, step
            elif step > self.fit_start_step:
                self.step_seconds = (now - self.fit_start) / (step - self.fit_start_step)
            if total and step >= total and self.fit_end is None:
                self.fit_end = now
        after = self.costs.after_fit_steps(self.task, self.size)
        after_s = after * self.step_seconds if after is not None and self.step_seconds else None
        if phase in FIT_PHASES and fit_eta is not None and math.isfinite(fit_eta):
            return fit_eta + (after_s or 0.0)
        if self.fit_end is not None and after_s is not None:
            return max(0.0, after_s - (now - self.fit_end))
        if fit_eta is not None and math.isfinite(fit_eta):
            return fit_eta
        if self.progress > 0.02:                       # no step rate: the elapsed time, extrapolated
            return (now - self.started) * (1 - self.progress) / self.progress
        return None

    def finish(self, now: float) -> None:
        """A finished job teaches its task's after-fit cost (in its own fit steps)."""
        if self.fit_end is not None and self.step_seconds:
            self.costs.record(self.task, (now - self.fit_end) / self.step_seconds, self.size)
