"""What a result's legend says and shows: a colour bar with tick labels in scene units, and one
plain-words line per attribute. bpy-free: the viewport overlay (blender/legend_overlay.py) draws
it with gpu/blf, and :func:`draw_into` paints it into rendered pictures with numpy.

Units: the backend measures frequencies in cycles per unit of the input's length, and the input is
the object in world space, so one unit is one Blender unit = ``unit_scale`` metres
(``scene.unit_settings.scale_length``). The legend says "cycles per metre" and, as a size an artist
can picture, the detail's wavelength ("wavelength 4 cm").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from . import bitmap_font
from .text import wrap
from .detail_scale import DetailScale, legend_parts, lost_colors
from .meshdata import DISPLAY_BY_NAME, format_value, legend_stops, linear_to_srgb

# One line each, in plain words; the backend's meta "descriptions" replace them when present.
PLAIN_WORDS: dict[str, str] = {
    "detail": "How fine the surface detail is: red = fine ripples, blue = broad bumps; strong colour = tall detail.",
    "detail_lost": "Where the fit smoothed away detail that the input has: magenta = lost, grey = kept.",
    "local_frequency": "How fine the surface detail is here: high = fine ripples, 0 = no detail.",
    "bandwidth": "How many different detail sizes mix here: high = a mix, low = one clean size.",
    "drift": "Which way the detail gets finer: hue = direction, brightness = how fast.",
    "transport_residual": "Research: where NSTR's flow of detail does not explain its own spectrum.",
    "spectral_frequency": "Research: NSTR's internal frequency readout (not calibrated).",
    "albedo": "The surface colour seen in the rendered views.",
}
FREQUENCY_LIKE = ("local_frequency", "bandwidth", "spectral_frequency")


@dataclass
class Legend:
    """Everything a legend draws, in display (sRGB) colours."""

    title: str
    stops: list[tuple[float, tuple[float, float, float, float]]] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)   # (position in [0, 1], label)
    unit: str = ""
    words: str = ""
    extra: list[str] = field(default_factory=list)       # more text lines (the detail scale's amplitude key)
    swatches: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)  # (label, sRGB)

    def lines(self) -> list[str]:
        """The text lines below the bar (panel and pictures)."""
        out = [self.unit] if self.unit else []
        return out + list(self.extra) + ([self.words] if self.words else [])


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round numbers (1, 2, 5 x 10^n steps) inside [lo, hi], about ``count`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + 1e-9 * step:
        ticks.append(0.0 if abs(v) < 1e-12 * step else v)
        v += step
    return ticks


def format_length(metres: float) -> str:
    """0.04 -> '4 cm', 1.5 -> '1.5 m', 0.0003 -> '0.3 mm'."""
    for unit, size, smallest in (("km", 1000.0, 1000.0), ("m", 1.0, 1.0), ("cm", 0.01, 0.01),
                                 ("mm", 0.001, 1e-4), ("um", 1e-6, 0.0)):
        if abs(metres) >= smallest:
            return f"{metres / size:.2g} {unit}" if metres / size < 100 else f"{metres / size:.0f} {unit}"
    return f"{metres:.2g} m"


def _meta_get(meta: Mapping[str, Any], block: str, name: str) -> Any:
    attr = DISPLAY_BY_NAME.get(name)
    table = meta.get(block, {}) if isinstance(meta, Mapping) else {}
    if not isinstance(table, Mapping):
        return None
    for key in (name, attr.raw_key if attr else None, attr.color_key if attr else None,
                "drift_magnitude" if name == "drift" else None):
        if key and key in table:
            return table[key]
    return None


def sentence(text: str) -> str:
    """``text`` as a sentence: the backend's descriptions are lower-case phrases without a full stop."""
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def build_detail_legend(scale: DetailScale, title: str = "Detail size", unit_scale: float = 1.0) -> Legend:
    """The legend of the scene's detail colours: wavelength ticks in metres on the log bar, the
    amplitude key, and the grey swatches (never colours of the bar)."""
    stops, ticks, lines, swatches = legend_parts(scale, unit_scale if unit_scale > 0 else 1.0, format_length)
    return Legend(title=title, stops=stops, ticks=ticks, unit=lines[0], extra=lines[1:], swatches=swatches,
                  words=sentence(PLAIN_WORDS["detail"]))


def build_lost_legend(flag: float, unit_scale: float = 1.0) -> Legend:
    """Detail lost: a grey-to-magenta bar from 0 to twice the flagged height."""
    unit_scale = unit_scale if unit_scale > 0 else 1.0
    top = 2.0 * flag
    stops = [(t, tuple(float(c) for c in lost_colors(np.array([t * top]), flag)[0])) for t in np.linspace(0, 1, 8)]
    ticks = [(0.0, "0"), (0.5, format_length(flag * unit_scale)), (1.0, format_length(top * unit_scale))]
    return Legend(title="Detail lost", stops=stops, ticks=ticks,
                  unit=f"how much taller the input's detail is (RMS height); flagged from {format_length(flag * unit_scale)}",
                  words=sentence(PLAIN_WORDS["detail_lost"]))


def build_legend(meta: Mapping[str, Any], name: str, values: np.ndarray | None = None,
                 colors_linear: np.ndarray | None = None, unit_scale: float = 1.0) -> Legend:
    """The legend of attribute ``name`` of a result: range and descriptions from its meta, colours
    read off the mesh itself (``values`` and its linear ``colors``), units in metres."""
    attr = DISPLAY_BY_NAME[name]
    unit_scale = unit_scale if unit_scale > 0 else 1.0
    described = _meta_get(meta, "descriptions", name)
    words = str(described).strip() if described else PLAIN_WORDS.get(name, "")
    legend = Legend(title=attr.label, words=sentence(words))
    rng = _meta_get(meta, "ranges", name)
    if rng is not None and len(rng) == 2:
        lo, hi = float(rng[0]), float(rng[1])
    elif values is not None and len(values):
        lo, hi = float(np.min(values)), float(np.max(values))
    else:
        lo = hi = float("nan")
    meta_unit = _meta_get(meta, "units", name)
    scalar = name in FREQUENCY_LIKE or name == "transport_residual"
    if name in FREQUENCY_LIKE and math.isfinite(lo):
        per_m = (lo / unit_scale, hi / unit_scale)          # cycles per BU -> cycles per metre
        legend.unit = "cycles per metre"
        if per_m[1] > 0:
            finest = format_length(1.0 / per_m[1])
            coarsest = format_length(1.0 / per_m[0]) if per_m[0] > 0 else "any size"
            legend.unit += f" (wavelength {coarsest} to {finest})" if name == "local_frequency" else ""
        shown = per_m
    elif name == "drift" and math.isfinite(lo):
        legend.unit = (f"detail gets finer by {format_value(lo / unit_scale)} to "
                       f"{format_value(hi / unit_scale)} octaves per metre")
        shown = (lo, hi)
    else:
        legend.unit = str(meta_unit) if meta_unit else ("0 = fully explained" if name == "transport_residual" else "")
        shown = (lo, hi)
    if scalar and values is not None and colors_linear is not None and math.isfinite(lo) and hi > lo:
        stops = legend_stops(values, colors_linear, lo, hi, n=16)
        legend.stops = [(p, tuple(float(c) for c in linear_to_srgb(np.asarray(rgba))[:4])) for p, rgba in stops]
        a, b = shown
        legend.ticks = [((t - a) / (b - a), format_value(t)) for t in nice_ticks(a, b)]
    elif name == "drift" and math.isfinite(lo) and hi > lo:
        # hue is the direction, so the bar shows what a colour's brightness says: how fast (black = none)
        legend.stops = [(i / 15, (i / 15, i / 15, i / 15, 1.0)) for i in range(16)]
        a, b = lo / unit_scale, hi / unit_scale
        legend.ticks = [((t - a) / (b - a), format_value(t)) for t in nice_ticks(a, b)]
    return legend


# ------------------------------------------------------------------ pictures
def text_width(text: str, scale: int = 1) -> int:
    return len(text) * bitmap_font.WIDTH * scale


def draw_text(img: np.ndarray, x: int, y: int, text: str, color=(1.0, 1.0, 1.0), scale: int = 1) -> None:
    """Paint ``text`` with its top-left corner at (x, y) (rows go down) into an (H, W, 3|4) image."""
    h, w = img.shape[:2]
    for i, ch in enumerate(text):
        rows = bitmap_font.GLYPHS.get(ch, bitmap_font.GLYPHS["?"])
        gx = x + i * bitmap_font.WIDTH * scale
        for r, bits in enumerate(rows):
            if not bits:
                continue
            for c in range(bitmap_font.WIDTH):
                if bits >> (bitmap_font.WIDTH - 1 - c) & 1:
                    y0, x0 = y + r * scale, gx + c * scale
                    if 0 <= y0 < h and 0 <= x0 < w:
                        img[y0:y0 + scale, x0:x0 + scale, :3] = color
                        if img.shape[2] == 4:
                            img[y0:y0 + scale, x0:x0 + scale, 3] = 1.0


def draw_into(img: np.ndarray, legend: Legend, scale: int = 1) -> np.ndarray:
    """Paint the legend into the lower-left corner of an sRGB float image (H, W, 3|4), rows going
    down; returns the image. A dark box, the title, the colour bar with ticks, the text lines."""
    h, w = img.shape[:2]
    pad, line = 6 * scale, (bitmap_font.HEIGHT + 3) * scale
    bar_w, bar_h = min(w - 4 * pad, 220 * scale), 12 * scale
    width = max(10, (w - 4 * pad) // (bitmap_font.WIDTH * scale))
    words = [part for text in legend.lines() for part in wrap(text, width)]
    n_lines = 1 + len(words) + (2 if legend.stops else 0) + (1 if legend.swatches else 0)
    box_h = pad * 2 + n_lines * line + (bar_h if legend.stops else 0)
    box_w = min(w - 2 * pad, max([bar_w + 2 * pad] + [text_width(t, scale) + 2 * pad for t in words + [legend.title]]))
    x0, y0 = pad, max(0, h - pad - box_h)
    region = img[y0:y0 + box_h, x0:x0 + box_w]
    region[..., :3] = region[..., :3] * 0.3 + 0.7 * 0.08
    if img.shape[2] == 4:
        region[..., 3] = 1.0
    y = y0 + pad
    draw_text(img, x0 + pad, y, legend.title, scale=scale)
    y += line
    if legend.stops:
        xs = np.linspace(0.0, 1.0, bar_w)
        pos = np.array([p for p, _ in legend.stops])
        cols = np.array([c[:3] for _, c in legend.stops])
        strip = np.stack([np.interp(xs, pos, cols[:, k]) for k in range(3)], axis=-1)
        img[y:y + bar_h, x0 + pad:x0 + pad + bar_w, :3] = strip[None, :, :]
        if img.shape[2] == 4:
            img[y:y + bar_h, x0 + pad:x0 + pad + bar_w, 3] = 1.0
        y += bar_h
        for p, label in legend.ticks:
            tx = x0 + pad + int(round(p * (bar_w - 1)))
            img[y:y + 3 * scale, max(0, tx - scale // 2):tx + max(1, scale // 2 + 1), :3] = 1.0
            lx = min(max(x0 + pad, tx - text_width(label, scale) // 2), x0 + box_w - pad - text_width(label, scale))
            draw_text(img, lx, y + 4 * scale, label, scale=scale)
        y += 2 * line
    if legend.swatches:                     # the greys, each a square and its label, on one row
        sx = x0 + pad
        side = bitmap_font.HEIGHT * scale
        for label, rgba in legend.swatches:
            img[y:y + side, sx:sx + side, :3] = rgba[:3]
            draw_text(img, sx + side + 2 * scale, y, label, scale=scale)
            sx += side + 2 * scale + text_width(label, scale) + 3 * bitmap_font.WIDTH * scale
        y += line
    for text in words:
        draw_text(img, x0 + pad, y, text, color=(0.85, 0.85, 0.85), scale=scale)
        y += line
    return img
