"""Image fitting: a field ``[-1, 1]^2 -> R^C`` (C = 1 grey or 3 RGB) fitted to every pixel.

Coordinates are pixel centres, aspect-preserving (the longest side spans [-1, 1]), so one unit
is ``max(H, W) / 2`` pixels and the spectral-flow quantities convert to cycles per pixel.
Values are fitted as ``2 v - 1`` (zero-centred, as SIREN does) and scored in [0, 1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from nstr.config import RunConfig, build_config, option
from nstr.errors import InputError
from nstr.signals.metrics import psnr, ssim

TASK = "image"


@dataclass
class ImageOptions:
    """What the image task needs beyond the field and the training."""

    eval_chunk: int = option(65536, bounds=(1, 2**22))  # pixels per forward pass when predicting the whole image
    viz_max_side: int = option(256, bounds=(1, 8_192))  # the spectral-flow pictures sample at most this many pixels per side
    ssim_during_training: bool = True  # SSIM at every evaluation (only PSNR when False)


PRESETS: dict[str, dict[str, Any]] = {
    # CPU-friendly: a 256^2 image in well under a minute on two cores.
    "quick": {"field": {"n_freqs": 64, "grid_levels": 8, "grid_table_size": 2**12, "width": 64,
                        "transport_width": 16},
              "train": {"steps": 300, "batch_size": 4096, "log_every": 10},
              "task": {"viz_max_side": 128}},
    "default": {"field": {"n_freqs": 64, "grid_levels": 12, "grid_table_size": 2**14, "width": 64, "depth": 2},
                "train": {"steps": 2000, "batch_size": 65536}},
    "high": {"field": {"n_freqs": 128, "grid_levels": 16, "grid_table_size": 2**17, "width": 128, "depth": 2,
                       "transport_width": 64},
             "train": {"steps": 10000, "batch_size": 262144},
             "task": {"viz_max_side": 512}},
}


def image_config(preset: str = "default", overrides: Mapping[str, Any] | None = None) -> RunConfig:
    return build_config(ImageOptions, PRESETS, preset, overrides)


@dataclass
class ImageResult:
    reconstruction: np.ndarray  # (H, W, C) float32 in [0, 1]
    metrics: dict[str, float]  # psnr, ssim
    report: dict[str, Any]
    fit: Any  # nstr.signals.fitting.SignalFit (field, history, timings)

    @property
    def field(self) -> Any:
        return self.fit.field


def image_scorer(image: np.ndarray, with_ssim: bool = True) -> Callable[[np.ndarray], dict[str, float]]:
    """Predictions in training units (2 v - 1, one row per pixel) -> PSNR (and SSIM) on [0, 1]."""
    shape = image.shape

    def score(pred: np.ndarray) -> dict[str, float]:
        rec = np.clip(pred.reshape(shape) * 0.5 + 0.5, 0.0, 1.0)
        out = {"psnr": psnr(image, rec)}
        if with_ssim:
            out["ssim"] = ssim(image, rec)
        return out

    return score


def check_image(image: np.ndarray) -> np.ndarray:
    """Arrays from callers other than the loader (server, benchmark) get the loader's checks."""
    from nstr.signals.image_io import MIN_SIDE

    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise InputError(f"an image must be (H, W), (H, W, 1) or (H, W, 3), not {tuple(np.shape(image))}",
                         "Pass a grey or RGB image")
    if min(arr.shape[:2]) < MIN_SIDE:
        raise InputError(f"the image is {arr.shape[1]} x {arr.shape[0]} pixels, too small to fit",
                         f"Use at least {MIN_SIDE} x {MIN_SIDE} pixels")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise InputError("image values must be finite and in [0, 1]", "Scale the image to [0, 1]")
    return arr


def fit_image(image: np.ndarray, cfg: RunConfig, *, checkpoint: Any = None,
              on_progress: Callable[[Any], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              progress: Callable[[dict[str, Any]], None] | None = None) -> ImageResult:
    """Fit ``cfg``'s field to an ``(H, W, C)`` image in [0, 1]; returns the reconstruction, metrics, report."""
    from nstr.signals.fitting import fit_samples, grid_coordinates, samples_per_unit, transport_check, with_band_limit

    image = check_image(image)
    h, w, c = image.shape
    cfg = dataclasses.replace(cfg, field=with_band_limit(cfg.field, (h, w)))
    coords = grid_coordinates((h, w))
    targets = image.reshape(-1, c) * 2.0 - 1.0
    opts: ImageOptions = cfg.task
    fit = fit_samples(coords, targets, cfg, image_scorer(image, opts.ssim_during_training),
                      checkpoint=checkpoint, on_progress=on_progress, should_stop=should_stop,
                      chunk=opts.eval_chunk, progress=progress, shape=(h, w))
    reconstruction = np.clip(fit.prediction.reshape(h, w, c) * 0.5 + 0.5, 0.0, 1.0).astype(np.float32)
    metrics = {"psnr": round(psnr(image, reconstruction), 4), "ssim": round(ssim(image, reconstruction), 5)}
    report = fit.summary(TASK, cfg, metrics)
    report["signal"] = {"width": w, "height": h, "channels": c, "pixels_per_unit": samples_per_unit((h, w))}
    if fit.field.is_spectral:
        report["spectral"] = {"units": "cycles per pixel",
                              "pde": fit.final.terms.get("pde"),
                              "pde_relative": fit.final.terms.get("pde_relative"),
                              "transport_prediction": transport_check(fit.field, coords, 2.0 / max(h, w))}
    return ImageResult(reconstruction=reconstruction, metrics=metrics, report=report, fit=fit)


def image_flow(result: ImageResult) -> dict[str, np.ndarray]:
    """The spectral flow of the fitted image, per pixel, for ``--flow FLOW.npz``.

    Every model: ``local_frequency`` and ``bandwidth`` (H, W) in cycles per pixel and ``drift``
    (H, W, 2) = their gradient (d/dx, d/dy) in cycles per pixel per pixel, measured on the
    reconstruction (nstr.spectral.measured, 24-pixel windows). NSTR also: its internal readout
    ``spectral_frequency`` (banded NSTR: its carriers' analytic frequency, nstr.spectral.analytic), ``transport_drift``, ``drift_exact`` (same units) and ``transport_residual``.
    """
    from nstr.signals.fitting import grid_coordinates
    from nstr.spectral.measured import image_local_frequency

    rec = result.reconstruction
    h, w = rec.shape[:2]
    m = image_local_frequency(rec)
    out = {"local_frequency": m["local_frequency"], "bandwidth": m["bandwidth"], "drift": m["drift"]}
    if result.field.is_spectral:
        from nstr.spectral import spectral_flow
        from nstr.spectral.analytic import WINDOW_PIXELS, own_frequency

        ppu = max(h, w) / 2.0
        x = grid_coordinates((h, w))
        fl = spectral_flow(result.field, x)
        own = own_frequency(result.field, x, (h, w), WINDOW_PIXELS, fl["local_frequency"])
        out.update(spectral_frequency=own / ppu,
                   transport_drift=fl["drift"].reshape(h, w, 2) / ppu**2,
                   drift_exact=fl["drift_exact"].reshape(h, w, 2) / ppu**2,
                   transport_residual=fl["transport_residual"].reshape(h, w))
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
