"""Shared figure plumbing: a headless backend, saving, and the drift hue-wheel legend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (works without a display, in servers and tests)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


def hue_wheel(ax: Any, max_magnitude: float, unit: str, size: int = 96, y_down: bool = True) -> None:
    """Legend for direction colours: hue = direction, brightness = magnitude (0 at the centre)."""
    from nstr.colormaps import direction_colors

    v, u = np.mgrid[-1:1:complex(size), -1:1:complex(size)]
    r = np.hypot(u, v)
    angle = np.arctan2(v if y_down else -v, u)
    rgba, _ = direction_colors(angle.ravel(), r.ravel(), 1.0)
    rgba = rgba.reshape(size, size, 4)
    rgba[r > 1] = (1, 1, 1, 0)
    ax.imshow(rgba, extent=(-1, 1, 1, -1) if y_down else (-1, 1, -1, 1))
    ax.set_axis_off()
    ax.set_title(f"rim: {max_magnitude:.3g}\n{unit}", fontsize=7)
