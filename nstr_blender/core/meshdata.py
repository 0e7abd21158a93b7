"""Mesh <-> arrays conversion, without bpy.

Two directions, both defined by the result-array contract in
backend/docs/architecture.md:

* outgoing: flat buffers read from a Blender mesh (``foreach_get``) become the
  ``vertices`` (V, 3) float32 / ``faces`` (F, 3) int32 arrays of an ``sdf`` job,
  in world space;
* incoming: a result dict becomes a :class:`MeshResult`: validated geometry, raw
  attributes (FLOAT / FLOAT_VECTOR) and display colours converted from sRGB to
  linear (Blender's colour attributes take scene-linear values; the mesh stores them as bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .errors import ResultError, SelectionError


@dataclass(frozen=True)
class DisplayAttribute:
    """One thing an artist can show on the result: its raw values and its colours."""

    name: str          # the enum identifier, and the raw attribute's name on the mesh
    label: str         # what the panel shows
    raw_key: str | None
    color_key: str
    description: str
    research: bool = False   # NSTR's own readout: listed only when the panel's "Research" toggle is on
    number: int = -1         # the enum number a .blend stores: fixed forever, whatever the list's order


# In the order the panel lists them. Every key is optional in a result.
DISPLAY_ATTRIBUTES: tuple[DisplayAttribute, ...] = (
    DisplayAttribute("detail", "Detail size", "detail_wavelength", "color_detail",
                     "How fine the surface detail is (red fine .. blue coarse, one scale for the scene); "
                     "faint detail fades to grey; greys: no detail, coarser, crease", number=5),
    DisplayAttribute("detail_lost", "Detail lost", "detail_lost", "color_detail_lost",
                     "Where the fit smoothed away detail the input has (magenta); grey where it kept it", number=6),
    DisplayAttribute("local_frequency", "Local frequency", "local_frequency", "color_local_frequency",
                     "1 / the detail's wavelength: ripples per unit length (0 where there is no detail)", number=0),
    DisplayAttribute("bandwidth", "Bandwidth", "bandwidth", "color_bandwidth",
                     "Spread of detail sizes mixed here (cycles per unit)", number=1),
    DisplayAttribute("drift", "Frequency drift", "drift", "color_drift",
                     "Which way the detail gets finer (octaves per unit): hue = direction, brightness = how fast", number=2),
    DisplayAttribute("transport_residual", "Transport residual (research)", "transport_residual",
                     "color_transport_residual",
                     "Research: where NSTR's transport network does not explain its own spectrum", research=True, number=3),
    DisplayAttribute("spectral_frequency", "NSTR spectrum (research)", "spectral_frequency",
                     "color_spectral_frequency",
                     "Research: NSTR's internal frequency readout; not calibrated, does not follow the surface",
                     research=True, number=7),
    DisplayAttribute("albedo", "Albedo", None, "color_albedo", "Baked radiance colour (NeRF)", number=4),
)
DISPLAY_BY_NAME = {a.name: a for a in DISPLAY_ATTRIBUTES}

# Raw per-vertex arrays and their Blender attribute type.
RAW_KEYS: dict[str, str] = {
    "local_frequency": "FLOAT",
    "bandwidth": "FLOAT",
    "drift": "FLOAT_VECTOR",
    "drift_magnitude": "FLOAT",
    "transport_residual": "FLOAT",
    "spectral_frequency": "FLOAT",
    "detail_wavelength": "FLOAT",
    "detail_amplitude": "FLOAT",
    "detail_direction": "FLOAT_VECTOR",
    "detail_anisotropy": "FLOAT",
    "crease_strength": "FLOAT",
    "detail_state": "FLOAT",
    "detail_lost": "FLOAT",
}
# Raw arrays the Blender mesh does not store because another stored one gives them (the file stays
# light): |drift|. MeshResult keeps them (legend ranges).
DERIVED_KEYS: frozenset[str] = frozenset({"drift_magnitude"})
MAX_BANDS = 16   # detail_bands (V, B) is validated, not stored: no panel view reads it (the backend's result
                 # and PLY keep it)
COLOR_KEYS: tuple[str, ...] = tuple(a.color_key for a in DISPLAY_ATTRIBUTES)


@dataclass
class MeshResult:
    """A fitted mesh ready to become Blender data: flat, typed, validated."""

    vertices: np.ndarray                      # (V, 3) float64 (world or local; float32 only in Blender)
    faces: np.ndarray                         # (F, 3) int32
    raw: dict[str, np.ndarray] = field(default_factory=dict)     # name -> (V,) or (V, 3) float32
    colors: dict[str, np.ndarray] = field(default_factory=dict)  # color key -> (V, 4) float32, LINEAR
    meta: dict[str, Any] = field(default_factory=dict)
    lod: "MeshResult | None" = None           # the detail-adaptive simplified mesh, when the job asked for one

    def subset(self, vertices: np.ndarray, faces: np.ndarray, source: np.ndarray) -> "MeshResult":
        """Another mesh whose vertex i takes every per-vertex value of this one's vertex ``source[i]``."""
        return MeshResult(vertices, faces, {k: np.ascontiguousarray(v[source]) for k, v in self.raw.items()},
                          {k: np.ascontiguousarray(v[source]) for k, v in self.colors.items()}, dict(self.meta))

    @property
    def available(self) -> list[str]:
        """Display attributes this result can show (names from DISPLAY_ATTRIBUTES)."""
        return [a.name for a in DISPLAY_ATTRIBUTES if a.color_key in self.colors]

    def value_range(self, name: str) -> tuple[float, float] | None:
        """The colour scale's [lo, hi] for a legend: from the backend's meta, else the data."""
        attr = DISPLAY_BY_NAME[name]
        ranges = self.meta.get("ranges", {}) if isinstance(self.meta, dict) else {}
        for key in (attr.name, attr.raw_key, attr.color_key, "drift_magnitude" if name == "drift" else None):
            if key and key in ranges:
                lo, hi = ranges[key]
                return float(lo), float(hi)
        values = self.raw.get("drift_magnitude" if name == "drift" else (attr.raw_key or ""))
        if values is None or values.size == 0:
            return None
        return float(np.min(values)), float(np.max(values))


def simplification_note(meta: Mapping[str, Any]) -> str:
    """What the user must hear about an asked-for simplification the backend refused or could not finish
    (its one-line reason from the report), or "" when there is nothing to say."""
    report = meta.get("report") if isinstance(meta, Mapping) else None
    simplified = report.get("simplified") if isinstance(report, Mapping) else None
    if not isinstance(simplified, Mapping):
        return ""
    for key in ("refused", "note"):
        if simplified.get(key):
            return f"simplification: {simplified[key]}"
    return ""


def srgb_to_linear(rgba: np.ndarray) -> np.ndarray:
    """sRGB-encoded RGBA in [0, 1] -> linear RGBA (alpha unchanged), the IEC 61966-2-1 curve."""
    out = np.array(rgba, dtype=np.float32, copy=True)
    c = np.clip(out[..., :3], 0.0, 1.0)
    out[..., :3] = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return out


def linear_to_srgb(rgba: np.ndarray) -> np.ndarray:
    """The inverse of :func:`srgb_to_linear` (for checks and legends)."""
    out = np.array(rgba, dtype=np.float32, copy=True)
    c = np.clip(out[..., :3], 0.0, 1.0)
    out[..., :3] = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1.0 / 2.4) - 0.055)
    return out


def decode_meta(raw: Any) -> dict[str, Any]:
    """``meta_json`` (uint8 bytes of UTF-8 JSON) -> dict; a broken blob becomes {} rather than a crash."""
    if raw is None:
        return {}
    try:
        data = bytes(np.asarray(raw, dtype=np.uint8).tobytes())
        meta = json.loads(data.decode("utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def parse_result(arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> MeshResult:
    """Validate a result dict and convert it to the add-on's types (colours to linear)."""
    if "vertices" not in arrays or "faces" not in arrays:
        missing = [k for k in ("vertices", "faces") if k not in arrays]
        raise ResultError(f"the backend's result has no {' or '.join(missing)}",
                          "Update the backend to the add-on's version and fit again")
    verts = np.ascontiguousarray(np.asarray(arrays["vertices"], dtype=np.float64))  # to local, then float32
    faces = np.ascontiguousarray(np.asarray(arrays["faces"]).astype(np.int32, copy=False))
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ResultError(f"result vertices have shape {verts.shape}, expected (V, 3)",
                          "Update the backend to the add-on's version")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ResultError(f"result faces have shape {faces.shape}, expected (F, 3)",
                          "Update the backend to the add-on's version")
    n = len(verts)
    if n == 0 or len(faces) == 0:
        raise ResultError("the fit produced an empty surface",
                          "Use more steps or a higher resolution, or check that the object is a closed shape")
    if faces.min() < 0 or faces.max() >= n:
        raise ResultError("result faces index vertices that do not exist", "Fit again; report it if it repeats")
    if not np.isfinite(verts).all():
        raise ResultError("result vertices contain NaN or infinity", "Fit again with a smaller learning rate")

    raw: dict[str, np.ndarray] = {}
    for key, kind in RAW_KEYS.items():
        if key not in arrays:
            continue
        value = np.ascontiguousarray(np.asarray(arrays[key], dtype=np.float32))
        want = (n, 3) if kind == "FLOAT_VECTOR" else (n,)
        if value.shape != want:
            raise ResultError(f"result attribute '{key}' has shape {value.shape}, expected {want}",
                              "Update the backend to the add-on's version")
        raw[key] = value
    if "detail_bands" in arrays:
        bands = np.asarray(arrays["detail_bands"], dtype=np.float32)
        if bands.ndim != 2 or len(bands) != n or not 1 <= bands.shape[1] <= MAX_BANDS:
            raise ResultError(f"result attribute 'detail_bands' has shape {bands.shape}, expected ({n}, B <= {MAX_BANDS})",
                              "Update the backend to the add-on's version")
    colors: dict[str, np.ndarray] = {}
    for key in COLOR_KEYS:
        if key not in arrays:
            continue
        value = np.asarray(arrays[key], dtype=np.float32)
        if value.shape != (n, 4):
            raise ResultError(f"result colour '{key}' has shape {value.shape}, expected ({n}, 4)",
                              "Update the backend to the add-on's version")
        colors[key] = np.ascontiguousarray(srgb_to_linear(value))
    if meta is None:
        meta = decode_meta(arrays.get("meta_json"))
    detail_meta = meta.get("detail") if isinstance(meta.get("detail"), Mapping) else {}
    if "detail_lost" in raw and "color_detail_lost" not in colors and float(detail_meta.get("lost_flag", 0)) > 0:
        from .detail_scale import lost_colors

        colors["color_detail_lost"] = srgb_to_linear(lost_colors(raw["detail_lost"], float(detail_meta["lost_flag"])))
    result = MeshResult(verts, faces, raw, colors, dict(meta))
    if "lod_vertices" in arrays and "lod_faces" in arrays and "lod_source" in arrays:
        lod_v = np.ascontiguousarray(np.asarray(arrays["lod_vertices"], dtype=np.float64))
        lod_f = np.ascontiguousarray(np.asarray(arrays["lod_faces"]).astype(np.int32, copy=False))
        source = np.asarray(arrays["lod_source"]).astype(np.int64, copy=False)
        if lod_v.ndim != 2 or lod_v.shape[1] != 3 or lod_f.ndim != 2 or lod_f.shape[1] != 3 or \
                source.shape != (len(lod_v),) or len(lod_f) == 0 or lod_f.min() < 0 or lod_f.max() >= len(lod_v) \
                or source.min() < 0 or source.max() >= n or not np.isfinite(lod_v).all():
            raise ResultError("the backend's simplified mesh (lod_*) is malformed",
                              "Fit again without task.simplify_faces / task.simplify_error, and report it")
        result.lod = result.subset(lod_v, lod_f, source)
    return result


def mesh_arrays(co_flat: np.ndarray, tri_flat: np.ndarray, matrix_world: Any, name: str) -> dict[str, np.ndarray]:
    """Flat buffers of an evaluated mesh -> the ``sdf`` job's inputs, in world space.

    ``co_flat``: 3V floats (``vertices.foreach_get('co')``); ``tri_flat``: 3T ints
    (``loop_triangles.foreach_get('vertices')``); ``matrix_world``: 4x4 (rows).
    """
    co = np.asarray(co_flat, dtype=np.float64).reshape(-1, 3)
    tris = np.asarray(tri_flat, dtype=np.int64).reshape(-1, 3)
    if len(co) == 0 or len(tris) == 0:
        raise SelectionError(f"'{name}' has no faces after modifiers",
                             "Select a mesh object with faces (points and edges cannot be fitted)")
    m = np.asarray(matrix_world, dtype=np.float64).reshape(4, 4)
    world = co @ m[:3, :3].T + m[:3, 3]
    if not np.isfinite(world).all():
        raise SelectionError(f"'{name}' has vertices at infinity", "Apply or fix its transforms")
    extent = world.max(axis=0) - world.min(axis=0)
    if float(extent.max()) <= 0.0:
        raise SelectionError(f"'{name}' is flat to a point", "Select a mesh with some size")
    # float64 on the wire: float32 world coordinates far from the origin (x = 1e7) keep ~3 distinct values
    return {"vertices": world, "faces": tris.astype(np.int32)}


def corner_arrays(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles -> (corner vertex indices (3F,), polygon loop starts (F,)) for Blender's mesh buffers."""
    faces = np.asarray(faces, dtype=np.int32)
    corners = np.ascontiguousarray(faces.reshape(-1))
    loop_start = np.arange(0, 3 * len(faces), 3, dtype=np.int32)
    return corners, loop_start


def legend_stops(values: np.ndarray, colors: np.ndarray, lo: float, hi: float,
                 n: int = 8) -> list[tuple[float, tuple[float, float, float, float]]]:
    """A colour bar read off the result itself: for n evenly spaced values in [lo, hi], the colour
    of the vertex whose value is nearest. Returns (position in [0, 1], RGBA) stops."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    colors = np.asarray(colors, dtype=np.float32).reshape(len(values), 4)
    if len(values) == 0 or not hi > lo:
        return []
    order = np.argsort(values)
    sorted_values = values[order]
    stops = []
    for t in np.linspace(0.0, 1.0, n):
        target = lo + t * (hi - lo)
        i = int(np.clip(np.searchsorted(sorted_values, target), 0, len(values) - 1))
        if i > 0 and abs(sorted_values[i - 1] - target) < abs(sorted_values[i] - target):
            i -= 1
        stops.append((float(t), tuple(float(c) for c in colors[order[i]])))
    return stops


def format_value(value: float) -> str:
    """Short legend number: 3 significant digits, no scientific notation for everyday sizes."""
    a = abs(value)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{value:.2e}"
    return f"{value:.3g}"


def legend_lines(result_meta: Mapping[str, Any], name: str) -> list[str]:
    """What the panel's legend says for one attribute: its range, units and colour map."""
    attr = DISPLAY_BY_NAME.get(name)
    if attr is None:
        return []
    ranges = result_meta.get("ranges", {}) if isinstance(result_meta, Mapping) else {}
    cmaps = result_meta.get("colormaps", {}) if isinstance(result_meta, Mapping) else {}
    units = result_meta.get("units", {}) if isinstance(result_meta, Mapping) else {}
    rng = None
    for key in (attr.name, attr.raw_key, attr.color_key, "drift_magnitude" if name == "drift" else None):
        if key and key in ranges:
            rng = ranges[key]
            break
    lines = []
    if rng is not None and len(rng) == 2:
        lines.append(f"{format_value(float(rng[0]))} to {format_value(float(rng[1]))}")
        unit = units.get(attr.name, "") if isinstance(units, Mapping) else (units if isinstance(units, str) else "")
        if unit:
            lines.append(str(unit))
    cmap = None
    for key in (attr.name, attr.raw_key, attr.color_key):
        if key and key in cmaps:
            cmap = cmaps[key]
            break
    if cmap:
        lines.append(f"colour map: {cmap}")
    return lines
