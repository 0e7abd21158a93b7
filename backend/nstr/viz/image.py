"""Pictures of an image fit: the comparison, and (NSTR) maps of its spectral flow.

Frequencies are shown in cycles per pixel (Nyquist = 0.5) and drift in cycles per pixel per
100 pixels, converted from the field's units with the pixels-per-unit scale of the fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nstr.viz.figure import hue_wheel, pyplot, save


def image_pictures(result: Any, image: np.ndarray, stem: Path) -> dict[str, Path]:
    """Write ``STEM_compare.png`` and, for NSTR, ``STEM_flow.png``; returns {name: path}."""
    stem = Path(stem)
    out = {"compare": _compare(result, image, stem.with_name(stem.name + "_compare.png"))}
    out["flow"] = _flow(result, image, stem.with_name(stem.name + "_flow.png"))
    return out


def _show(ax: Any, img: np.ndarray, title: str) -> None:
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _compare(result: Any, image: np.ndarray, path: Path) -> Path:
    plt = pyplot()
    rec = result.reconstruction
    err = np.abs(rec - image).mean(-1)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.8))
    _show(axes[0], image, "input")
    r = result.report
    _show(axes[1], rec, f"{r['model']} ({r['params']:,} params, {r['steps']} steps)\n"
                        f"PSNR {result.metrics['psnr']:.2f} dB, SSIM {result.metrics['ssim']:.3f}")
    im = axes[2].imshow(err, cmap="magma", vmin=0, vmax=max(float(np.percentile(err, 99.5)), 1e-3),
                        interpolation="nearest")
    axes[2].set_title("|error| (mean over channels)", fontsize=9)
    axes[2].set_axis_off()
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04)
    return save(fig, path)


def flow_maps(field: Any, shape: tuple[int, int], max_side: int) -> dict[str, np.ndarray]:
    """The spectral-flow quantities on a (downsampled) pixel grid, in pixel units."""
    from nstr.signals.fitting import grid_coordinates
    from nstr.spectral import spectral_flow

    h, w = shape
    f = min(1.0, max_side / max(h, w))
    gh, gw = max(2, int(round(h * f))), max(2, int(round(w * f)))
    flow = spectral_flow(field, grid_coordinates((gh, gw)))
    px_per_unit = max(h, w) / 2.0
    return {
        "local_frequency": flow["local_frequency"].reshape(gh, gw) / px_per_unit,  # cycles / pixel
        "bandwidth": flow["bandwidth"].reshape(gh, gw) / px_per_unit,
        "drift": flow["drift"].reshape(gh, gw, 2) / px_per_unit**2 * 100.0,  # cycles/pixel per 100 px
        "transport_residual": flow["transport_residual"].reshape(gh, gw),
    }


def _flow(result: Any, image: np.ndarray, path: Path) -> Path:
    """Measured local frequency of the fit beside the same readout of the input (its local
    spectrum), drift and bandwidth (every model); NSTR's internal readout and residual (NSTR)."""
    from nstr.colormaps import ATTRIBUTE_COLORMAPS, direction_colors, robust_range
    from nstr.spectral.measured import image_local_frequency

    plt = pyplot()
    h, w = image.shape[:2]
    fit = image_local_frequency(result.reconstruction)
    ref = image_local_frequency(image)
    spectral = result.field.is_spectral
    fig, axes = plt.subplots(2, 4 if spectral else 3, figsize=(18 if spectral else 13.5, 8))
    fig.subplots_adjust(wspace=0.45)
    lo, hi = robust_range(np.concatenate([fit["local_frequency"].ravel(), ref["local_frequency"].ravel()]))
    panels = [(fit["local_frequency"], "measured local frequency of the fit\n(cycles / pixel)", axes[0, 0], lo, hi,
               "local_frequency"),
              (ref["local_frequency"], "the same readout of the input\n(its local spectrum's centroid)", axes[0, 1],
               lo, hi, "local_frequency"),
              (fit["bandwidth"], "measured bandwidth (cycles / pixel)", axes[1, 1], None, None, "bandwidth")]
    if spectral:
        maps = flow_maps(result.field, (h, w), result.report["config"]["task"]["viz_max_side"])
        panels += [(maps["local_frequency"], "NSTR internal readout (S-weighted carriers)\n(cycles / pixel)",
                    axes[0, 3], None, None, "spectral_frequency"),
                   (maps["transport_residual"], "transport residual ||dS/dx - F_theta||", axes[1, 3], None, None,
                    "transport_residual")]
    for values, title, ax, vlo, vhi, key in panels:
        if vlo is None:
            vlo, vhi = robust_range(values)
        im = ax.imshow(values, cmap=ATTRIBUTE_COLORMAPS[key], vmin=vlo, vmax=vhi, extent=(0, w, h, 0),
                       interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax = axes[1, 2]
    d = fit["drift"] * 100.0
    mag = np.hypot(d[..., 0], d[..., 1])
    rgba, (_, top) = direction_colors(np.arctan2(d[..., 1], d[..., 0]).ravel(), mag.ravel())
    ax.imshow(rgba.reshape(h, w, 4), extent=(0, w, h, 0), interpolation="nearest")
    step = max(1, max(h, w) // 16)
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    sub = d[ys, xs]
    scale = top / (0.8 * step) if top > 0 else 1.0
    ax.quiver(xs + 0.5, ys + 0.5, sub[..., 0] / scale, sub[..., 1] / scale,
              angles="xy", scale_units="xy", scale=1.0, color="white", width=0.004)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title("measured drift (gradient of local frequency)\n(hue = direction, brightness = magnitude)", fontsize=9)
    ax.set_axis_off()
    hue_wheel(ax.inset_axes([1.04, 0.02, 0.3, 0.3]), top, "cycles/px\nper 100 px")
    _show(axes[0, 2], image, "input")
    _show(axes[1, 0], result.reconstruction, f"reconstruction, PSNR {result.metrics['psnr']:.2f} dB")
    title = f"{result.report['model']} spectral flow: {result.report['params']:,} params"
    if spectral:
        spec = result.report.get("spectral", {})
        gain = spec.get("transport_prediction", {}).get("gain")
        rel = spec.get("pde_relative")
        title += (f", K = {result.report['field'].get('K')}, relative PDE residual "
                  f"{rel if rel is not None else float('nan'):.3g}"
                  + (f", transport prediction gain {gain:.2f}x" if gain is not None else ""))
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
