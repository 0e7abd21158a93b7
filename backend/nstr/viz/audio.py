"""Pictures of an audio fit: waveform and spectrograms, and (NSTR) the spectral flow over time.

Field frequencies (cycles per unit of the [-1, 1] time axis) are shown in Hz, drift in kHz per second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nstr.viz.figure import pyplot, save


def audio_pictures(result: Any, stem: Path) -> dict[str, Path]:
    """Write ``STEM_compare.png`` and, for NSTR, ``STEM_flow.png``; returns {name: path}."""
    stem = Path(stem)
    out = {"compare": _compare(result, stem.with_name(stem.name + "_compare.png"))}
    out["flow"] = _flow(result, stem.with_name(stem.name + "_flow.png"))
    return out


def spectrogram_db(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequencies Hz, times s, power dB) with a window suited to the clip's length."""
    from scipy.signal import spectrogram

    nper = int(min(1024, max(32, 2 ** int(np.log2(max(len(x) // 16, 32))))))
    f, t, p = spectrogram(x, fs=rate, nperseg=nper, noverlap=nper * 3 // 4, scaling="spectrum")
    return f, t, 10 * np.log10(p + 1e-12)


def _spectrogram(ax: Any, x: np.ndarray, rate: int, title: str, vmin: float | None = None) -> float:
    f, t, db = spectrogram_db(x, rate)
    top = float(db.max())
    lo = top - 80 if vmin is None else vmin
    ax.pcolormesh(t, f, db, shading="auto", cmap="magma", vmin=lo, vmax=top)
    ax.set_ylabel("Hz")
    ax.set_title(title, fontsize=9)
    return lo


def _compare(result: Any, path: Path) -> Path:
    plt = pyplot()
    x, y, rate = result.audio.samples, result.reconstruction, result.audio.rate
    t = np.arange(len(x)) / rate
    r = result.report
    fig, axes = plt.subplots(4, 1, figsize=(11, 9.5))
    axes[0].plot(t, x - y, lw=0.5, color="C3", alpha=0.5, label="error", zorder=1)
    axes[0].plot(t, x, lw=0.6, color="0.3", label="input", zorder=2)
    axes[0].plot(t, y, lw=0.6, color="C1", alpha=0.8, label="reconstruction", zorder=3)
    axes[0].set_title(f"{r['model']} ({r['params']:,} params, {r['steps']} steps): SNR {result.metrics['snr_db']:.2f} dB",
                      fontsize=10)
    axes[0].legend(loc="upper right", fontsize=7)
    # a zoom on the loudest 20 ms, where the detail is
    win = max(16, min(len(x), int(0.02 * rate)))
    centre = int(np.argmax(np.convolve(np.abs(x), np.ones(win), "same")))
    a = max(0, min(len(x) - win, centre - win // 2))
    axes[1].plot(t[a:a + win] * 1000, x[a:a + win], lw=1.0, color="0.3", label="input")
    axes[1].plot(t[a:a + win] * 1000, y[a:a + win], lw=1.0, color="C1", label="reconstruction")
    axes[1].set_xlabel("ms")
    axes[1].set_title("zoom on the loudest 20 ms", fontsize=9)
    lo = _spectrogram(axes[2], x, rate, "input spectrogram (dB)")
    _spectrogram(axes[3], y, rate, "reconstruction spectrogram (dB)", vmin=lo)
    axes[3].set_xlabel("s")
    fig.tight_layout()
    return save(fig, path)


def flow_over_time(result: Any) -> dict[str, np.ndarray]:
    """Spectral-flow quantities at up to ``viz_max_points`` instants, in Hz (and kHz/s for drift)."""
    from nstr.signals.fitting import grid_coordinates
    from nstr.spectral import spectral_flow

    n = len(result.audio.samples)
    m = min(n, int(result.report["config"]["task"]["viz_max_points"]))
    idx = np.linspace(0, n - 1, m).round().astype(int)
    coords = grid_coordinates((n,))[idx]
    flow = spectral_flow(result.field, coords, with_spectrum=True)
    hz = result.hz_per_cycle_per_unit
    return {"time": idx / result.audio.rate, "local_frequency": flow["local_frequency"] * hz,
            "bandwidth": flow["bandwidth"] * hz, "drift": flow["drift"][:, 0] * hz * hz / 1000.0,
            "drift_exact": flow["drift_exact"][:, 0] * hz * hz / 1000.0,
            "transport_residual": flow["transport_residual"], "spectrum": flow["spectrum"],
            "basis_frequency": flow["basis_frequency"] * hz}


def _flow(result: Any, path: Path) -> Path:
    """The input's spectrogram with the MEASURED local frequency of the fit on top (every model),
    the same readout of the input itself (the reference), and for NSTR its internal readout,
    its local spectrum S over time, and drift."""
    from nstr.spectral.measured import signal_local_frequency

    plt = pyplot()
    x, rate = result.audio.samples, result.audio.rate
    fit = signal_local_frequency(result.reconstruction, rate)
    ref = signal_local_frequency(x, rate)
    spectral = result.field.is_spectral
    rows = 4 if spectral else 2
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.8 * rows + 1), sharex=True, squeeze=False)
    axes = axes[:, 0]
    _spectrogram(axes[0], x, rate, "input spectrogram (dB); measured local frequency of the fit (white) +- "
                                   "bandwidth, of the input (cyan dashed)" + (", NSTR internal (red)" if spectral else ""))
    t, nu, bw = fit["time_s"], fit["local_frequency"], fit["bandwidth"]
    axes[0].plot(t, nu, color="white", lw=1.2)
    axes[0].fill_between(t, np.maximum(nu - bw, 0), nu + bw, color="white", alpha=0.15)
    axes[0].plot(ref["time_s"], ref["local_frequency"], color="cyan", lw=0.9, ls="--")
    axes[0].set_ylim(0, rate / 2)
    axes[1].plot(t, fit["drift"] / 1000.0, lw=0.8, color="C0", label="measured drift d(nu)/dt of the fit")
    axes[1].plot(ref["time_s"], ref["drift"] / 1000.0, lw=0.6, color="C2", alpha=0.7, ls="--", label="of the input")
    axes[1].set_ylabel("kHz / s")
    axes[1].legend(loc="upper left", fontsize=7)
    axes[1].set_title(f"{result.report['model']} fit, SNR {result.metrics['snr_db']:.2f} dB: drift", fontsize=9)
    if spectral:
        fl = flow_over_time(result)
        axes[0].plot(fl["time"], fl["local_frequency"], color="C3", lw=0.9)
        order = np.argsort(fl["basis_frequency"])
        freqs = fl["basis_frequency"][order]
        mag = np.abs(fl["spectrum"][:, order]).T
        im = axes[2].pcolormesh(fl["time"], np.arange(len(freqs)), mag, shading="nearest", cmap="viridis",
                                vmin=0, vmax=float(np.percentile(mag, 99.5)) or 1.0)
        ticks = np.linspace(0, len(freqs) - 1, min(8, len(freqs))).round().astype(int)
        axes[2].set_yticks(ticks, [f"{freqs[i]:.0f}" for i in ticks])
        axes[2].set_ylabel("basis frequency (Hz)")
        axes[2].set_title("NSTR local spectrum |S_i(t)| (one row per global basis, sorted by frequency)", fontsize=9)
        fig.colorbar(im, ax=axes[2], fraction=0.02, pad=0.01)
        axes[3].plot(fl["time"], fl["drift"], lw=0.8, color="C0", label="internal drift via F_theta")
        axes[3].plot(fl["time"], fl["drift_exact"], lw=0.6, color="C2", alpha=0.7, label="via exact dS/dt")
        axes[3].set_ylabel("kHz / s")
        axes[3].legend(loc="upper left", fontsize=7)
        ax2 = axes[3].twinx()
        ax2.plot(fl["time"], fl["transport_residual"], lw=0.6, color="C3", alpha=0.7)
        ax2.set_ylabel("transport residual", color="C3")
        axes[3].set_title("NSTR internal drift and transport residual ||dS/dt - F||", fontsize=9)
    axes[-1].set_xlabel("s")
    fig.tight_layout()
    return save(fig, path)
