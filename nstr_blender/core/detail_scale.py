"""Detail colours on ONE physical scale for every result in the scene, and their legend. bpy-free.

The backend measures each result's detail maps in the input's units (Blender units: the input is the
object in world space). Colouring each result against its own range would paint a +-20 % wobble
across the whole bar, and give the same ripple different colours on two objects. Here every result
is coloured on one log scale of wavelength in scene units, the union of the results' octave bands
(what they can read), so the same wavelength gets the same colour everywhere:

* hue: log wavelength, red = fine .. blue = coarse (turbo, reversed);
* saturation and brightness: the detail's height on a log scale from the no-detail floor (grey) to
  the scene's tall detail (full colour), so faint detail never shouts;
* greys, never a colour of the scale: no detail (below the result's accuracy), coarser than the
  largest band, crease.

"Stretch" (an opt-in) ranges the hue over one object's own wavelengths instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from .contract import DETAIL_STATE_CODES, DETAIL_STATE_GREYS

# turbo (Google's colormap) between 0.08 and 0.94 (its near-black ends left out, so no colour of the
# bar is close to a grey), 17 stops, sRGB; reversed below so that fine = red
_TURBO = np.array([
    (0.261, 0.296, 0.712), (0.277, 0.441, 0.913), (0.259, 0.580, 0.999), (0.179, 0.707, 0.948),
    (0.100, 0.830, 0.814), (0.127, 0.917, 0.676), (0.290, 0.974, 0.503), (0.489, 0.998, 0.338),
    (0.664, 0.985, 0.224), (0.805, 0.925, 0.205), (0.920, 0.828, 0.225), (0.983, 0.721, 0.219),
    (0.995, 0.575, 0.164), (0.962, 0.411, 0.093), (0.893, 0.270, 0.040), (0.800, 0.171, 0.015),
    (0.664, 0.084, 0.004)])
FINE_TO_COARSE = _TURBO[::-1]          # position 0 (finest) red .. 1 (coarsest) blue
# the backend's detail_state codes (meta_json["detail"]["states"]) and their greys (sRGB): contract.json
STATE_CODES = DETAIL_STATE_CODES
STATE_GREYS = DETAIL_STATE_GREYS
STATE_LABELS = {"none": "no detail", "coarser": "coarser", "crease": "crease"}
LOST_COLOR = (0.85, 0.1, 0.75)         # detail lost: magenta, a hue the wavelength scale does not use
MIN_STRENGTH = 0.15                    # the faintest detail keeps this much of its hue


@dataclass(frozen=True)
class DetailScale:
    """The colour scale shared by the scene's results: wavelengths and heights in scene (Blender) units."""

    shortest: float      # wavelength at the red end
    longest: float       # wavelength at the blue end
    floor: float         # height at which colour fades to grey (the finest result's no-detail floor)
    tall: float          # height at full colour (the scene's tall detail: 95th percentile)
    stretched: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "DetailScale":
        return DetailScale(float(d["shortest"]), float(d["longest"]), float(d["floor"]), float(d["tall"]),
                           bool(d.get("stretched", False)))

    def position(self, wavelength: np.ndarray) -> np.ndarray:
        """0 (shortest) .. 1 (longest) on the log scale, clipped."""
        lo, hi = math.log(self.shortest), math.log(self.longest)
        w = np.asarray(wavelength, np.float64)
        w = np.where(np.isfinite(w) & (w > 0), w, self.longest)
        return np.clip((np.log(w) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)

    def strength(self, amplitude: np.ndarray) -> np.ndarray:
        """0 .. 1: how much of its hue a height gets (log between floor and tall)."""
        a = np.maximum(np.asarray(amplitude, np.float64), 1e-30)
        span = max(math.log(self.tall / self.floor), 1e-6)
        return np.clip(np.log(a / self.floor) / span, MIN_STRENGTH, 1.0)


@dataclass(frozen=True)
class ResultDetail:
    """What one result contributes to the scene scale (scene units)."""

    wavelength: np.ndarray   # (V,) NaN off detail
    amplitude: np.ndarray    # (V,)
    state: np.ndarray        # (V,) STATE_CODES
    bands: tuple[float, float]   # (shortest band edge, longest band edge)
    floor: float


def scene_scale(results: Iterable[ResultDetail], stretch: ResultDetail | None = None) -> DetailScale | None:
    """One scale for all ``results``: hue over the union of their bands, height from the finest floor to
    the 95th percentile of detail heights. ``stretch``: hue over that result's own 2nd..98th percentile
    of wavelength instead (the opt-in). None when no result has detail maps."""
    results = list(results)
    if not results:
        return None
    shortest = min(r.bands[0] for r in results)
    longest = max(r.bands[1] for r in results)
    floor = min(r.floor for r in results if r.floor > 0) if any(r.floor > 0 for r in results) else shortest * 1e-3
    heights = np.concatenate([r.amplitude[r.state == STATE_CODES["detail"]] for r in results])
    tall = float(np.percentile(heights, 95)) if heights.size else 0.0
    tall = max(tall, 2.0 * floor)
    stretched = False
    if stretch is not None:
        w = stretch.wavelength[np.isfinite(stretch.wavelength)]
        if w.size >= 2 and np.percentile(w, 98) > np.percentile(w, 2):
            shortest, longest = float(np.percentile(w, 2)), float(np.percentile(w, 98))
            stretched = True
    if not (longest > shortest > 0):
        return None
    return DetailScale(shortest, longest, floor, tall, stretched)


def fine_to_coarse(t: np.ndarray) -> np.ndarray:
    """sRGB (N, 3) of scale positions ``t`` in [0, 1]."""
    t = np.clip(np.asarray(t, np.float64), 0.0, 1.0)
    x = np.linspace(0.0, 1.0, len(FINE_TO_COARSE))
    return np.stack([np.interp(t, x, FINE_TO_COARSE[:, k]) for k in range(3)], axis=-1)


def detail_colors(d: ResultDetail, scale: DetailScale) -> np.ndarray:
    """sRGB RGBA (V, 4) of one result on the scene scale."""
    rgb = fine_to_coarse(scale.position(d.wavelength))
    grey = STATE_GREYS["none"]
    rgb = grey + scale.strength(d.amplitude)[:, None] * (rgb - grey)
    state = np.asarray(d.state)
    for name, level in STATE_GREYS.items():
        rgb[state == STATE_CODES[name]] = level
    return np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1).astype(np.float32)


def lost_colors(lost: np.ndarray, flag: float) -> np.ndarray:
    """sRGB RGBA: grey where the result kept the input's detail, magenta as the loss reaches 2x ``flag``
    (the height the backend flags as lost)."""
    t = np.clip(np.asarray(lost, np.float64) / max(2.0 * flag, 1e-30), 0.0, 1.0)[:, None]
    grey = STATE_GREYS["none"]
    rgb = grey + t * (np.asarray(LOST_COLOR) - grey)
    return np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1).astype(np.float32)


def nice_lengths(lo: float, hi: float) -> list[float]:
    """1-2-5 lengths inside [lo, hi] (log scale ticks), at most 6."""
    out: list[float] = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1.0, 2.0, 5.0):
            v = m * 10.0 ** e
            if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                out.append(v)
    while len(out) > 6:
        out = out[::2]
    return out


def legend_parts(scale: DetailScale, unit_scale: float,
                 format_length) -> tuple[list[tuple[float, tuple]], list[tuple[float, str]], list[str], list[tuple[str, tuple]]]:  # noqa: ANN001
    """(colour stops, ticks, text lines, grey swatches) of the detail legend; lengths shown in metres
    via ``format_length`` (one Blender unit = ``unit_scale`` m)."""
    stops = [(float(p), (*map(float, c), 1.0)) for p, c in
             zip(np.linspace(0, 1, len(FINE_TO_COARSE)), FINE_TO_COARSE)]
    ticks = [(float(scale.position(np.array([w]))[0]), format_length(w * unit_scale))
             for w in nice_lengths(scale.shortest, scale.longest)]
    lines = [f"wavelength {format_length(scale.shortest * unit_scale)} (red, fine) to "
             f"{format_length(scale.longest * unit_scale)} (blue, coarse)"
             + (", stretched to this object" if scale.stretched else ", one scale for the whole scene"),
             f"faint -> grey: full colour from {format_length(scale.tall * unit_scale)} tall, "
             f"grey below {format_length(scale.floor * unit_scale)}"]
    swatches = [(STATE_LABELS[k], (g, g, g, 1.0)) for k, g in STATE_GREYS.items()]
    return stops, ticks, lines, swatches


def result_detail(raw: dict[str, np.ndarray], meta_detail: dict, unit_per_input: float = 1.0) -> ResultDetail | None:
    """A result's detail maps from its raw attributes and ``meta["detail"]`` (None without them).
    ``unit_per_input``: scene units per input unit (1: the input was the object in world space). The
    backend's state codes (``meta_detail["states"]``) are mapped to :data:`STATE_CODES` by name."""
    if "detail_wavelength" not in raw or "detail_amplitude" not in raw or "detail_state" not in raw:
        return None
    bands: Sequence[dict] = meta_detail.get("bands") or []
    if not bands:
        return None
    k = float(unit_per_input)
    codes = np.asarray(raw["detail_state"]).astype(np.int64)
    theirs = meta_detail.get("states") or STATE_CODES
    state = np.full(len(codes), STATE_CODES["none"], np.int64)
    for name, code in theirs.items():
        if name in STATE_CODES:
            state[codes == int(code)] = STATE_CODES[name]
    return ResultDetail(np.asarray(raw["detail_wavelength"], np.float64) * k,
                        np.asarray(raw["detail_amplitude"], np.float64) * k,
                        state,
                        (float(bands[0]["shortest"]) * k, float(bands[-1]["longest"]) * k),
                        float(meta_detail.get("floor", 0.0)) * k)


# vertex groups an artist can drive Decimate, Displace, Geometry Nodes and paint masks with
GROUP_NAMES = {"fine": "NSTR fine detail", "height": "NSTR detail height", "crease": "NSTR crease",
               "lost": "NSTR detail lost"}
CREASE_FULL_DEGREES = 60.0            # a crease turning this much (or more) weighs 1


def group_weights(d: ResultDetail, scale: DetailScale, crease_degrees: np.ndarray | None = None,
                  lost: np.ndarray | None = None, lost_flag: float = 0.0) -> dict[str, np.ndarray]:
    """Weights 0..1 per vertex, by group name (GROUP_NAMES):
    fine: 1 at the finest wavelength of the scene scale .. 0 at its coarsest, times how clearly the detail
    is there (its colour strength); 0 without detail. height: the colour strength (log height). crease:
    the crease's turning / 60 degrees. lost: the loss over twice the flagged height."""
    detail = np.asarray(d.state) == STATE_CODES["detail"]
    strength = np.where(detail, scale.strength(d.amplitude), 0.0)
    out = {GROUP_NAMES["fine"]: np.where(detail, (1.0 - scale.position(d.wavelength)) * strength, 0.0),
           GROUP_NAMES["height"]: strength}
    if crease_degrees is not None:
        out[GROUP_NAMES["crease"]] = np.clip(np.asarray(crease_degrees, np.float64) / CREASE_FULL_DEGREES, 0.0, 1.0)
    if lost is not None and lost_flag > 0:
        out[GROUP_NAMES["lost"]] = np.clip(np.asarray(lost, np.float64) / (2.0 * lost_flag), 0.0, 1.0)
    return {k: v.astype(np.float32) for k, v in out.items()}


def weight_levels(weights: np.ndarray, levels: int = 64) -> list[tuple[float, np.ndarray]]:
    """Vertices grouped by weight quantised to ``levels`` steps, zero left out: (weight, indices) pairs,
    so Blender's ``VertexGroup.add`` (one weight per call) is called ``levels`` times, not once a vertex."""
    q = np.round(np.clip(weights, 0.0, 1.0) * levels).astype(np.int64)
    order = np.argsort(q, kind="stable")
    qs = q[order]
    out = []
    for level in np.unique(qs):
        if level == 0:
            continue
        lo, hi = np.searchsorted(qs, level), np.searchsorted(qs, level, side="right")
        out.append((float(level) / levels, order[lo:hi]))
    return out


# --- the viewport overlay's strokes (direction) and arrows (drift) ------------------------------
MIN_ANISOTROPY = 0.3       # below: bumps with no preferred direction get no stroke
MAX_STROKES = 4000


def _one_per_cell(points: np.ndarray, cell: float, limit: int) -> np.ndarray:
    """Indices of at most one point per cubic cell of side ``cell`` (the first met), at most ``limit``."""
    if len(points) == 0:
        return np.zeros(0, np.int64)
    keys = np.floor(points / max(cell, 1e-12)).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    first = np.sort(first)
    if len(first) > limit:
        first = first[np.linspace(0, len(first) - 1, limit).astype(np.int64)]
    return first


def direction_strokes(vertices: np.ndarray, normals: np.ndarray, direction: np.ndarray, anisotropy: np.ndarray,
                      wavelength: np.ndarray, state: np.ndarray, limit: int = MAX_STROKES) -> tuple[np.ndarray, np.ndarray]:
    """Short strokes ALONG the detail's crests (across its wave direction: how a ridge runs, the way an
    artist would hatch it), one per cell of about a wavelength: (M, 2, 3) segment ends in the mesh's
    coordinates and (M,) opacities = the anisotropy. Only where there is one-directional detail."""
    v = np.asarray(vertices, np.float64)
    ok = (np.asarray(state) == STATE_CODES["detail"]) & (np.asarray(anisotropy) >= MIN_ANISOTROPY) \
        & np.isfinite(wavelength)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return np.zeros((0, 2, 3)), np.zeros(0)
    cell = float(np.median(np.asarray(wavelength)[idx]))
    idx = idx[_one_per_cell(v[idx], cell, limit)]
    wave = np.asarray(direction, np.float64)[idx]
    crest = np.cross(np.asarray(normals, np.float64)[idx], wave)                      # in the tangent plane, across the wave direction
    crest /= np.maximum(np.linalg.norm(crest, axis=1, keepdims=True), 1e-12)
    half = 0.35 * np.asarray(wavelength, np.float64)[idx][:, None]
    p = v[idx]
    return np.stack([p - half * crest, p + half * crest], 1), np.asarray(anisotropy, np.float64)[idx]


def drift_arrows(vertices: np.ndarray, normals: np.ndarray, drift: np.ndarray, wavelength: np.ndarray,
                 state: np.ndarray, limit: int = MAX_STROKES // 4) -> np.ndarray:
    """Arrows toward finer detail where the detail's size changes by at least 1 octave over 20
    wavelengths: (M, 3, 2, 3) = shaft and two head segments, in the mesh's coordinates; length 1.5
    wavelengths, so an arrow spans the change it reports."""
    v = np.asarray(vertices, np.float64)
    d = np.asarray(drift, np.float64)
    wl = np.asarray(wavelength, np.float64)
    rate = np.linalg.norm(d, axis=1) * np.where(np.isfinite(wl), wl, 0.0)   # octaves per wavelength
    ok = (np.asarray(state) == STATE_CODES["detail"]) & (rate >= 1.0 / 20.0)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return np.zeros((0, 3, 2, 3))
    idx = idx[_one_per_cell(v[idx], 3.0 * float(np.median(wl[idx])), limit)]
    u = d[idx] / np.linalg.norm(d[idx], axis=1, keepdims=True)
    length = 1.5 * wl[idx][:, None]
    tail, tip = v[idx] - 0.5 * length * u, v[idx] + 0.5 * length * u
    side = np.cross(u, np.asarray(normals, np.float64)[idx])
    head = 0.3 * length
    left, right = tip - head * u + 0.5 * head * side, tip - head * u - 0.5 * head * side
    return np.stack([np.stack([tail, tip], 1), np.stack([tip, left], 1), np.stack([tip, right], 1)], 1)
