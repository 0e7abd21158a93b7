"""The task skeleton: what every task (image, audio, SDF, NeRF) shares, written once.

* :func:`config_from_job`: a job's JSON config -> ``RunConfig`` (the ``preset`` key, task-specific
  extra keys such as NeRF's ``dataset_dir``, clear errors for the wrong types);
* :class:`TaskRun`: progress events in the server's format (architecture.md, "Jobs"), stop checks
  that raise :class:`~nstr.errors.Cancelled`, named stages with timings, and draining the training
  loop (:func:`nstr.train.train`) while forwarding its :class:`~nstr.train.Progress`.

How a task uses it::

    from nstr.tasks.skeleton import TaskRun, config_from_job

    def fit_thing(data, cfg, *, progress=None, should_stop=None, on_train_progress=None, checkpoint=None):
        run = TaskRun(progress, should_stop, on_train_progress)
        with run.stage("sampling"):          # check stop, emit sampling 0/1, time it, emit 1/1, check stop
            samples = ...
        final = run.fit(field, objective, cfg.train, device=dev, checkpoint=checkpoint)
        #  ^ drains train(...) with should_stop; emits "fitting" step/total/loss/eta/metrics at every log,
        #    calls on_train_progress(Progress); run.timings["fitting"] holds its wall time
        with run.stage("extracting"):
            ...
        report = {**run.report("thing", cfg, field, final, dev, metrics), "thing_size": ...}

    def validate_job(config, arrays):
        config_from_job(config, thing_config)

    def run_job(config, arrays, *, workdir, progress, should_stop):
        cfg, extras = config_from_job(config, thing_config, extras=("dataset_dir",))
        result = fit_thing(..., progress=progress, should_stop=should_stop)

Events leave the process only every ``train.log_every`` steps (the loop yields no more often), so a
task never syncs with the device between logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from nstr.config import RunConfig
from nstr.errors import Cancelled, ConfigError

ProgressFn = Callable[[dict[str, Any]], None]
StopFn = Callable[[], bool]
# the keys every task's report starts with (TaskRun.report; architecture.md, "Reports")
REPORT_KEYS = ("task", "model", "params", "steps", "seconds", "device", "precision", "metrics", "timings",
               "final_loss", "final_terms", "field", "config", "history")


def config_from_job(config: Mapping[str, Any], make_config: Callable[[str, Mapping[str, Any]], RunConfig],
                    extras: tuple[str, ...] = ()) -> tuple[RunConfig, dict[str, Any]]:
    """``{"preset": ..., overrides...}`` -> (``make_config(preset, overrides)``, the ``extras`` keys popped).

    Extra keys are task inputs that are not config (NeRF's ``dataset_dir``); absent ones are None.
    """
    if not isinstance(config, Mapping):
        raise ConfigError("the job config must be a JSON object", 'Send {"preset": "quick", ...}')
    rest = dict(config)
    preset = rest.pop("preset", "default")
    if not isinstance(preset, str):
        raise ConfigError(f"preset must be a string, not {preset!r}", "Use quick, default or high")
    popped = {k: rest.pop(k, None) for k in extras}
    return make_config(preset, rest), popped


def progress_event(phase: str, step: int = 0, total: int = 1, loss: float | None = None, eta: float | None = None,
                   metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One progress event (architecture.md): non-finite numbers become None, so the JSON stays valid."""
    def finite(v: float | None) -> float | None:
        return float(v) if v is not None and math.isfinite(v) else None

    return {"phase": phase, "step": int(step), "total": int(total), "loss": finite(loss), "eta_s": finite(eta),
            "metrics": dict(metrics or {})}


class TaskRun:
    """Progress, stop checks, stage timings and the training drain of one task run."""

    def __init__(self, progress: ProgressFn | None = None, should_stop: StopFn | None = None,
                 on_train_progress: Callable[[Any], None] | None = None) -> None:
        self.progress, self.should_stop, self.on_train_progress = progress, should_stop, on_train_progress
        self.timings: dict[str, float] = {}

    def emit(self, phase: str, step: int = 0, total: int = 1, loss: float | None = None, eta: float | None = None,
             metrics: Mapping[str, Any] | None = None) -> None:
        if self.progress is not None:
            self.progress(progress_event(phase, step, total, loss, eta, metrics))

    def check_stop(self) -> None:
        """Raise :class:`Cancelled` when the user asked to stop."""
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("cancelled by the user")

    @contextlib.contextmanager
    def stage(self, phase: str, timing: str | None = None, emit: bool = True) -> Iterator[None]:
        """A named stage: stop check, ``phase`` 0/1, the body (timed into ``timings[timing or phase]``),
        ``phase`` 1/1, stop check. ``emit=False`` times a stage that reports no phase of its own."""
        self.check_stop()
        if emit:
            self.emit(phase, 0, 1)
        t0 = time.perf_counter()
        yield
        key = timing or phase
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0
        if emit:
            self.emit(phase, 1, 1)
        self.check_stop()

    def fit(self, field: Any, objective: Any, train_cfg: Any, *, device: Any, checkpoint: Path | None = None,
            phase: str = "fitting", metrics: Callable[[Any], Mapping[str, Any]] | None = None) -> Any:
        """Run :func:`nstr.train.train` to the end; returns the final Progress.

        Each Progress goes to ``on_train_progress`` and, as a ``phase`` event, to ``progress``;
        ``metrics(p)`` picks the event's metrics (default ``p.metrics``). Cancel raises Cancelled
        from inside the loop, after it has saved the checkpoint.
        """
        from nstr.train import train

        self.check_stop()
        t0 = time.perf_counter()
        final = None
        for p in train(field, objective, train_cfg, device=device, checkpoint=checkpoint,
                       should_stop=self.should_stop):
            final = p
            if self.on_train_progress is not None:
                self.on_train_progress(p)
            self.emit(phase, p.step, p.total, p.loss, p.eta, metrics(p) if metrics is not None else p.metrics)
        assert final is not None and final.done
        self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - t0
        return final

    def rounded_timings(self, digits: int = 3) -> dict[str, float]:
        return {k: round(v, digits) for k, v in self.timings.items()}

    def seconds(self, digits: int = 3) -> float:
        """The stages' total: a report's ``seconds``."""
        return round(sum(self.timings.values()), digits)

    def report(self, task: str, cfg: RunConfig, field: Any, final: Any, device: Any, metrics: Mapping[str, Any],
               seconds: float | None = None) -> dict[str, Any]:
        """The keys every task's report starts with (architecture.md, "Reports"): the task, the model
        and config as resolved (``auto`` named), the field's description and size, the steps, each
        stage's seconds (``timings``; ``seconds`` their sum unless given), the device and precision,
        and the scores. A task adds its own keys after these; one builder, so the keys cannot drift
        apart between tasks (the NeRF report called the field block ``model_info`` and gave the
        unresolved model name)."""
        from nstr.device import device_name, precision_policy

        inner = getattr(field, "field", field)       # a radiance field wraps the configured field
        resolved = dataclasses.replace(cfg, field=getattr(inner, "config", cfg.field))
        return {"task": task, "model": resolved.field.model, "params": int(field.n_params), "steps": int(final.step),
                "seconds": self.seconds() if seconds is None else round(seconds, 3),
                "device": device_name(device), "precision": precision_policy(device, cfg.train.amp),
                "metrics": metrics, "timings": self.rounded_timings(), "final_loss": final.loss,
                "final_terms": final.terms, "field": field.describe(), "config": resolved.to_dict(),
                "history": final.history}
