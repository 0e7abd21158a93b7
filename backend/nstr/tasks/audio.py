"""Audio fitting: a field ``[-1, 1] -> R`` fitted to every sample of a mono clip.

The clip (or the excerpt ``task.start_s`` .. ``+ task.duration_s``) spans [-1, 1], so one unit is
``N / 2`` samples and a frequency of ``c`` cycles per unit is ``c * 2 * rate / N`` Hz. Samples are
fitted divided by the clip's peak (so quiet recordings train like loud ones) and scored as SNR in dB.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from nstr.config import RunConfig, build_config, option
from nstr.errors import InputError
from nstr.signals.audio_io import Audio
from nstr.signals.metrics import snr_db

TASK = "audio"


@dataclass
class AudioOptions:
    """What the audio task needs beyond the field and the training."""

    start_s: float = option(0.0, bounds=(0, 1_000_000))  # fit the excerpt that starts here (seconds) ...
    duration_s: float | None = option(None, bounds=(0, 1_000_000))  # ... and lasts this long (None: to the end of the clip)
    eval_chunk: int = option(65536, bounds=(1, 2**22))  # samples per forward pass when predicting the whole clip
    viz_max_points: int = option(4096, bounds=(1, 1_000_000))  # the spectral-flow pictures sample at most this many instants


PRESETS: dict[str, dict[str, Any]] = {
    # CPU-friendly: a one-second 48 kHz clip in well under a minute on two cores.
    "quick": {"field": {"n_freqs": 64, "grid_levels": 8, "grid_table_size": 2**12, "width": 64, "depth": 2,
                        "transport_width": 16},
              "train": {"steps": 300, "batch_size": 4096, "log_every": 10},
              "task": {"viz_max_points": 2048}},
    "default": {"field": {"n_freqs": 64, "grid_levels": 12, "grid_table_size": 2**14, "width": 64, "depth": 2},
                "train": {"steps": 2000, "batch_size": 32768}},
    "high": {"field": {"n_freqs": 128, "grid_levels": 16, "grid_table_size": 2**17, "width": 128, "depth": 2,
                       "transport_width": 64},
             "train": {"steps": 10000, "batch_size": 131072},
             "task": {"viz_max_points": 8192}},
}


def audio_config(preset: str = "default", overrides: Mapping[str, Any] | None = None) -> RunConfig:
    return build_config(AudioOptions, PRESETS, preset, overrides)


@dataclass
class AudioResult:
    audio: Audio  # what was fitted (the excerpt)
    reconstruction: np.ndarray  # (N,) float32, same scale as audio.samples
    metrics: dict[str, float]  # snr_db
    report: dict[str, Any]
    fit: Any  # nstr.signals.fitting.SignalFit

    @property
    def field(self) -> Any:
        return self.fit.field

    @property
    def hz_per_cycle_per_unit(self) -> float:
        """Multiply a field frequency (cycles per unit) by this to get Hz."""
        return 2.0 * self.audio.rate / len(self.audio.samples)


def select(audio: Audio, opts: AudioOptions) -> Audio:
    """The excerpt the options ask for, checked: a silent clip cannot be scored."""
    if opts.start_s != 0.0 or opts.duration_s is not None:
        if opts.duration_s is not None and opts.duration_s <= 0:
            raise InputError(f"task.duration_s must be positive, not {opts.duration_s:g}",
                             "Give the excerpt's length in seconds, e.g. --duration 0.25")
        audio = audio.excerpt(opts.start_s, opts.duration_s)
    if not np.isfinite(audio.samples).all():
        raise InputError("the audio holds NaN or infinite samples", "Pass finite samples in [-1, 1]")
    if float(np.max(np.abs(audio.samples))) == 0.0:
        raise InputError("the audio is silent (every sample is 0), so there is nothing to fit",
                         "Pass a clip (or choose an excerpt) with sound in it")
    return audio


def fit_audio(audio: Audio, cfg: RunConfig, *, checkpoint: Any = None,
              on_progress: Callable[[Any], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              progress: Callable[[dict[str, Any]], None] | None = None) -> AudioResult:
    """Fit ``cfg``'s field to a mono clip; returns the reconstruction, SNR and report."""
    from nstr.signals.fitting import fit_samples, grid_coordinates, transport_check, with_band_limit

    opts: AudioOptions = cfg.task
    audio = select(audio, opts)
    x = audio.samples.astype(np.float32)
    n = len(x)
    peak = float(np.max(np.abs(x)))
    cfg = dataclasses.replace(cfg, field=with_band_limit(cfg.field, (n,)))
    coords = grid_coordinates((n,))

    def score(pred: np.ndarray) -> dict[str, float]:
        return {"snr_db": snr_db(x, pred.reshape(-1) * peak)}

    fit = fit_samples(coords, (x / peak)[:, None], cfg, score, checkpoint=checkpoint, on_progress=on_progress,
                      should_stop=should_stop, chunk=opts.eval_chunk, progress=progress, shape=(n,))
    reconstruction = (fit.prediction.reshape(-1) * peak).astype(np.float32)
    metrics = {"snr_db": round(snr_db(x, reconstruction), 4)}
    report = fit.summary(TASK, cfg, metrics)
    report["signal"] = {"samples": n, "rate": audio.rate, "seconds": round(audio.seconds, 6), "peak": peak,
                        "start_s": opts.start_s, "source_bits": audio.bits, "source_encoding": audio.encoding,
                        "hz_per_cycle_per_unit": 2.0 * audio.rate / n}
    if fit.field.is_spectral:
        report["spectral"] = {"units": "Hz", "pde": fit.final.terms.get("pde"),
                              "pde_relative": fit.final.terms.get("pde_relative"),
                              "transport_prediction": transport_check(fit.field, coords, 2.0 / n)}
    return AudioResult(audio=audio, reconstruction=reconstruction, metrics=metrics, report=report, fit=fit)


def audio_flow(result: AudioResult) -> dict[str, np.ndarray]:
    """The spectral flow of the fitted clip, per sample, for ``--flow FLOW.npz``.

    Every model: ``time_s``, ``local_frequency`` and ``bandwidth`` in Hz and ``drift`` (d nu / dt)
    in Hz per second, measured on the reconstruction with 32 ms short-time windows
    (nstr.spectral.measured). NSTR also: its internal readout ``spectral_frequency`` (Hz; banded NSTR:
    its carriers' analytic frequency, nstr.spectral.analytic),
    ``transport_drift``, ``drift_exact`` (Hz per second) and ``transport_residual``.
    """
    from nstr.signals.fitting import grid_coordinates
    from nstr.spectral.measured import per_sample, signal_local_frequency

    rate, n = result.audio.rate, len(result.reconstruction)
    out: dict[str, np.ndarray] = per_sample(signal_local_frequency(result.reconstruction, rate), n, rate)
    if result.field.is_spectral:
        from nstr.spectral import spectral_flow
        from nstr.spectral.analytic import WINDOW_SECONDS, own_frequency

        hz = result.hz_per_cycle_per_unit
        x = grid_coordinates((n,))
        fl = spectral_flow(result.field, x)
        own = own_frequency(result.field, x, (n,), WINDOW_SECONDS * rate, fl["local_frequency"])
        out.update(spectral_frequency=own * hz, transport_drift=fl["drift"][:, 0] * hz * hz,
                   drift_exact=fl["drift_exact"][:, 0] * hz * hz,
                   transport_residual=fl["transport_residual"])
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
