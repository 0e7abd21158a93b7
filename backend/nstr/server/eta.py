"""A running job's progress and ETA from its progress events: the fit's remaining steps at its
measured step rate, plus what the stages after the fit (extracting, attributes, scoring, saving the
result) cost on this server's earlier jobs of the same task.

Those stages cost seconds that the fit's own ETA does not know about (on a 2-core CPU a quick
Suzanne fit at the automatic resolution spent 17 of its 24 s after the last step). Their cost is
learnt in *fit steps* (seconds after the fit / seconds per step of that job's fit), with the job's
size (an SDF's surface in extraction-grid cells, which the task reports as ``surface_cells`` in a
progress event's metrics before it fits): it carries over between a loaded and an idle machine, a
CPU and a GPU, with the new job's step time, and between sizes as :class:`StageCosts` says. Until a
task has finished once on this server, an SDF job that reported its size is predicted from a 2-core
CPU's figure (FIRST_JOB); any other counts the fit's remaining time only.
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


PRIOR_EXPONENT = 2 / 3   # after-fit steps ~ surface cells ** this, until two sizes are known (2-core CPU,
#                          quick preset: rotor 32^3 -> 256^3, 67.7x the cells, 53 -> 889 steps: 0.67;
#                          Suzanne 64^3 -> 256^3, 16.4x, 59 -> 518: 0.78; rotor 32^3 -> Suzanne 256^3: 0.65)
DISTINCT_SIZES = 1.5     # two sizes this far apart (ratio) or more set the exponent between them
FIRST_JOB = {"sdf": (2538.0, 53.0)}   # before a task has finished on this server: (surface cells, after-fit
#                                       steps) of a quick rotor fit at 32^3 on a 2-core CPU, scaled as above. A GPU
#                                       fits faster than it scores, so there it errs short, as the fit alone did


class StageCosts:
    """Per task, what everything after the fit cost the last jobs, in fit steps, with each job's size.

    A job is predicted from the earlier jobs of the nearest size (the same size when there is one),
    scaled by the size ratio to a power: the slope, on a log-log scale, between the nearest size and
    the next nearest distinct one, once there are two; PRIOR_EXPONENT before. Not the surface's
    cells to the first power: a fixed part (writing the result, scoring) does not grow with it, and a
    32^3 job scaled so to the automatic 256^3 read 4-5x the time that followed.
    """

    def __init__(self) -> None:
        self._after_fit: dict[str, deque[tuple[float, float]]] = defaultdict(lambda: deque(maxlen=HISTORY))

    def record(self, task: str, after_fit_steps: float, size: float = 1.0) -> None:
        if math.isfinite(after_fit_steps) and after_fit_steps >= 0 and size > 0:
            self._after_fit[task].append((size, after_fit_steps))

    def after_fit_steps(self, task: str, size: float | None = None) -> float | None:
        """The after-fit stages' cost in fit steps for a job of ``size`` (None: the job said none)."""
        seen = self._after_fit.get(task)
        if not seen:
            if size is None or task not in FIRST_JOB:
                return None
            z0, s0 = FIRST_JOB[task]
            return s0 * (size / z0) ** PRIOR_EXPONENT
        size = 1.0 if size is None else size
        by_size: dict[float, list[float]] = defaultdict(list)
        for z, steps in seen:
            by_size[z].append(steps)
        nearest = sorted(by_size, key=lambda z: abs(math.log(z / size)))
        z1, s1 = nearest[0], statistics.median(by_size[nearest[0]])
        exponent = PRIOR_EXPONENT
        apart = [z for z in nearest[1:] if abs(math.log(z / z1)) >= math.log(DISTINCT_SIZES)]
        if apart and s1 > 0:
            s2 = statistics.median(by_size[apart[0]])
            if s2 > 0:
                exponent = min(1.0, max(0.0, math.log(s2 / s1) / math.log(apart[0] / z1)))
        return s1 * (size / z1) ** exponent


class JobEta:
    """One running job: feed it every progress event (``update``) and its end (``finish``)."""

    def __init__(self, task: str, started: float, costs: StageCosts) -> None:
        self.task, self.started, self.costs = task, started, costs
        self.progress = 0.0
        self.fit_start: float | None = None          # time of the first fitting event, and its step
        self.fit_start_step = 0
        self.fit_end: float | None = None            # time the fit's last step was reported
        self.step_seconds: float | None = None       # measured seconds per fit step
        self.size: float | None = None               # the job's size for the after-fit stages (surface cells)

    def update(self, now: float, phase: str, step: int, total: int, fit_eta: float | None,
               metrics: dict | None = None) -> float | None:
        """The job's ETA in seconds after this event (None while nothing can be said)."""
        self.progress = progress_of(phase, step, total, self.progress)
        size = (metrics or {}).get("surface_cells")
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
            self.costs.record(self.task, (now - self.fit_end) / self.step_seconds, self.size or 1.0)
