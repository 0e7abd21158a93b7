"""The task skeleton: job configs, progress events and cancel, for the image and audio tasks.

(The SDF and NeRF tasks' own tests cover their run_job through the same skeleton.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nstr.errors import Cancelled, ConfigError
from nstr.signals.audio_io import Audio
from nstr.tasks.audio import audio_config, fit_audio
from nstr.tasks.image import fit_image, image_config
from nstr.tasks.skeleton import REPORT_KEYS, TaskRun, config_from_job, progress_event

torch.set_num_threads(1)
_TINY = {"steps": 20, "batch_size": 256, "train.log_every": 5, "field.n_freqs": 8, "field.grid_levels": 3,
         "field.grid_table_size": 256, "field.width": 16, "field.transport_width": 8}


def _image() -> np.ndarray:
    yy, xx = np.mgrid[0:24, 0:24] / 24.0
    return (0.5 + 0.4 * np.sin(2 * np.pi * 3 * xx) * np.cos(2 * np.pi * 2 * yy)).astype(np.float32)


def _audio() -> Audio:
    t = np.arange(800) / 8000.0
    return Audio(samples=(0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate=8000)


def _fit(task: str, **kw):
    if task == "image":
        return fit_image(_image(), image_config("quick", _TINY), **kw)
    return fit_audio(_audio(), audio_config("quick", _TINY), **kw)


@pytest.mark.parametrize("task", ["image", "audio"])
def test_progress_events_follow_the_contract_and_end_at_the_last_step(task: str) -> None:
    events: list[dict] = []
    steps: list[int] = []
    _fit(task, progress=events.append, on_progress=lambda p: steps.append(p.step))
    assert steps == [5, 10, 15, 20]
    assert [e["step"] for e in events] == steps
    assert all(set(e) == {"phase", "step", "total", "loss", "eta_s", "metrics"} for e in events)
    assert {e["phase"] for e in events} == {"fitting"} and events[-1]["total"] == 20
    assert all(isinstance(e["loss"], float) and np.isfinite(e["loss"]) for e in events)


@pytest.mark.parametrize("task", ["image", "audio"])
def test_cancel_stops_the_fit_within_a_step(task: str) -> None:
    seen: list[int] = []
    with pytest.raises(Cancelled):
        _fit(task, on_progress=lambda p: seen.append(p.step), should_stop=lambda: bool(seen) and seen[-1] >= 10)
    assert seen == [5, 10]  # stopped right after the step-10 log, never reached 15


@pytest.mark.parametrize("task", ["image", "audio"])
def test_every_report_starts_with_the_same_keys_and_sums_its_stages(task: str) -> None:
    """One report builder (TaskRun.report): the same leading keys for every task, in order, the field's
    own description, and ``seconds`` the sum of the stages the skeleton timed."""
    result = _fit(task)
    report = result.report
    assert list(report)[:len(REPORT_KEYS)] == list(REPORT_KEYS)
    assert report["model"] == report["config"]["field"]["model"] == "nstr"
    assert report["field"] == result.fit.field.describe() and report["params"] == result.fit.field.n_params
    assert set(report["timings"]) == {"fitting", "predicting"}
    assert report["seconds"] == pytest.approx(sum(report["timings"].values()), abs=0.002)


def test_stage_times_and_emits_and_checks_stop() -> None:
    events: list[dict] = []
    stop = {"now": False}
    run = TaskRun(events.append, lambda: stop["now"])
    with run.stage("sampling"):
        pass
    with pytest.raises(Cancelled):  # a stop asked for during a stage ends the run once the stage is done
        with run.stage("extracting"):
            stop["now"] = True
    assert [(e["phase"], e["step"]) for e in events] == [("sampling", 0), ("sampling", 1), ("extracting", 0),
                                                         ("extracting", 1)]
    assert set(run.timings) == {"sampling", "extracting"}
    with pytest.raises(Cancelled):
        with run.stage("attributes"):
            raise AssertionError("a stopped run must not start a stage")  # pragma: no cover


def test_job_config_reads_preset_and_extras_and_rejects_bad_types() -> None:
    cfg, extras = config_from_job({"preset": "quick", "steps": 7, "dataset_dir": "/x"}, image_config,
                                  extras=("dataset_dir",))
    assert cfg.train.steps == 7 and extras == {"dataset_dir": "/x"}
    with pytest.raises(ConfigError, match="JSON object"):
        config_from_job([1, 2], image_config)
    with pytest.raises(ConfigError, match="preset must be a string"):
        config_from_job({"preset": 3}, image_config)
    assert progress_event("fitting", 1, 2, float("nan"), float("inf"))["loss"] is None
