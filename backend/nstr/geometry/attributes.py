"""Spectral-flow attributes at every output vertex: raw values, colours, ranges and descriptions.

Two readouts (backend/docs/spectral-flow.md says what each measures and why):

* MEASURED, any model (``local_frequency``, ``bandwidth``, ``drift``): the fitted SDF is sampled on
  a small grid in each vertex's tangent plane and its local spectrum read by
  :func:`nstr.spectral.measured.surface_local_frequency`. This is the readout validated against
  analytic truth (nstr.validation), so it is what the colours show.
* NSTR's INTERNAL readout (NSTR only: ``spectral_frequency``, ``transport_drift``, ``drift_exact``,
  ``transport_residual``): the S-weighted centroid of the carriers and its transport through F_theta.
  Kept for research; on the validation cases it does not follow the surface.

The fields work in the unit box (unit = (input - center) / scale). Frequencies measured in unit-box
lengths are divided by ``scale`` to give cycles per unit of the INPUT's length; drift (a derivative of
a frequency) by ``scale``^2. The transport residual ||J_S - F_theta|| stays in the field's own units.

Drift is projected onto each vertex's tangent plane and shown as hue = its direction in a
per-vertex tangent frame (t1 = normalised n x z, or n x x near the poles; t2 = n x t1)
and brightness = magnitude.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCALAR_ATTRIBUTES = ("local_frequency", "bandwidth")  # every model (measured)
NSTR_SCALARS = ("spectral_frequency", "transport_residual")  # NSTR only (internal readout)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for outward-wound faces)."""
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(n, faces[:, k], cross)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 0, n / np.maximum(length, 1e-300), np.array([0.0, 0.0, 1.0]))


def tangent_frame(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t1, t2) orthonormal tangents per vertex; t1 follows n x z (n x x where n is near +-z)."""
    ref = np.where(np.abs(normals[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    t1 = np.cross(normals, ref)
    t1 /= np.maximum(np.linalg.norm(t1, axis=1, keepdims=True), 1e-300)
    return t1, np.cross(normals, t1)


def field_sdf_fn(field: Any, chunk: int = 65536, evaluate: Any = None):  # noqa: ANN201 - (P, 3) -> (P,)
    """The field's first output (or ``evaluate(x)``, e.g. a NeRF model's ``sdf``) as a numpy function
    of unit-box points, evaluated in chunks."""
    import torch

    device = next(field.parameters()).device
    evaluate = evaluate or (lambda x: field(x)[:, 0])

    def fn(points: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for s in range(0, len(points), chunk):
                x = torch.as_tensor(np.asarray(points[s:s + chunk], np.float32), device=device)
                out.append(evaluate(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    return fn


DESCRIPTIONS = {
    "local_frequency": "how fine the surface detail is here: the dominant number of ripples per unit length, "
                       "measured from the fitted surface in a small window around the vertex",
    "bandwidth": "how mixed the detail is here: the spread of ripple frequencies in that window",
    "drift": "which way the detail gets finer along the surface (hue = direction, brightness = how fast)",
    "spectral_frequency": "NSTR only, research: the centroid of the model's own carriers weighted by S(x); "
                          "not calibrated, does not follow the surface on the validation cases",
    "transport_residual": "NSTR only: how far the transport network's prediction of dS/dx is from the real one",
    "detail_bands": "how tall the detail is in each octave band of wavelength (RMS height, input units); "
                    "meta_json['detail']['bands'] gives each band's wavelengths",
    "detail_wavelength": "the size of the detail here: its dominant wavelength (input units), empty where there is none",
    "detail_amplitude": "how tall the detail is here over all bands (RMS height, input units)",
    "detail_direction": "which way the detail's waves run across the surface (a line: its sign is free)",
    "detail_anisotropy": "0: bumps with no preferred direction .. 1: ripples all one way",
    "crease_strength": "how sharply the surface turns at a crease or edge (degrees); creases stay out of the bands",
    "detail_state": "detail, no detail (below the result's accuracy), coarser than the largest band, or crease",
    "color_detail": "detail size as colour (one scale in input units: red fine .. blue coarse), fading to grey "
                    "as the detail gets too faint to tell; greys for no detail, coarser, and creases",
}


def _tangent_angle(vec: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v = vec - np.einsum("nd,nd->n", vec, normals)[:, None] * normals
    t1, t2 = tangent_frame(normals)
    angle = np.arctan2(np.einsum("nd,nd->n", v, t2), np.einsum("nd,nd->n", v, t1))
    return v, angle, np.linalg.norm(v, axis=1)


def spectral_attributes(field: Any, vertices_unit: np.ndarray, faces: np.ndarray, scale: float,
                        chunk: int = 32768, voxel: float | None = None, max_points: int = 3000,
                        sdf_fn: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (architecture.md's table) and meta {ranges, colormaps, units, descriptions, window}.

    With ``sdf_fn`` (unit-box points (P, 3) -> signed distance (P,), e.g. :func:`field_sdf_fn`), any
    model gets the measured attributes, and NSTR its internal readout in addition. Without one (a
    density field, NeRF: not a distance, so the tangent-plane window has no height to read) only an
    NSTR field gets attributes, from its internal readout, as before issue 9 (meta says so)."""
    if sdf_fn is None:
        return _internal_only(field, vertices_unit, faces, scale, chunk)
    from nstr.colormaps import ATTRIBUTE_COLORMAPS, direction_colors, scalar_colors
    from nstr.spectral.measured import SurfaceWindow, surface_local_frequency

    v = np.asarray(vertices_unit, np.float64)
    normals = vertex_normals(v, faces)
    diagonal = float(np.linalg.norm(v.max(0) - v.min(0))) if len(v) else 1.0
    window = SurfaceWindow.from_scale(diagonal, voxel)
    measured = surface_local_frequency(sdf_fn, v, faces, window, max_points=max_points)
    raw: dict[str, np.ndarray] = {"local_frequency": measured["local_frequency"] / scale,
                                  "bandwidth": measured["bandwidth"] / scale}
    vectors = {"drift": measured["drift"].astype(np.float64) / scale ** 2}
    scalars = list(SCALAR_ATTRIBUTES)
    if getattr(field, "is_spectral", False):
        from nstr.spectral import spectral_flow

        flow = spectral_flow(field, v.astype(np.float32), chunk=chunk)
        raw["spectral_frequency"] = flow["local_frequency"] / scale
        raw["transport_residual"] = flow["transport_residual"]
        vectors["transport_drift"] = flow["drift"].astype(np.float64) / scale ** 2
        vectors["drift_exact"] = flow["drift_exact"].astype(np.float64) / scale ** 2
        scalars += list(NSTR_SCALARS)
    arrays: dict[str, np.ndarray] = {}
    ranges: dict[str, list[float]] = {}
    for name in scalars:
        values = np.nan_to_num(np.asarray(raw[name], np.float64))
        colors, (lo, hi) = scalar_colors(values, ATTRIBUTE_COLORMAPS[name])
        arrays[name] = values.astype(np.float32)
        arrays[f"color_{name}"] = colors.astype(np.float32)
        ranges[name] = [lo, hi]
    for name, vec in vectors.items():
        tangent, angle, magnitude = _tangent_angle(np.nan_to_num(vec), normals)
        arrays[name] = tangent.astype(np.float32)
        if name == "drift":
            colors, (lo, hi) = direction_colors(angle, magnitude)
            arrays["drift_magnitude"] = magnitude.astype(np.float32)
            arrays["color_drift"] = colors.astype(np.float32)
            ranges["drift"] = ranges["drift_magnitude"] = [lo, hi]
    per_unit = "cycles per unit of input length"
    units = {"local_frequency": per_unit, "bandwidth": per_unit,
             "drift": per_unit + ", per unit of input length (tangent plane)",
             "drift_hue": "angle in the tangent frame t1 = n x z (n x x near the poles), t2 = n x t1"}
    if getattr(field, "is_spectral", False):
        units.update(spectral_frequency=per_unit, transport_drift=units["drift"], drift_exact=units["drift"],
                     transport_residual="|dS/dx - F| per unit of the field's [-1, 1] box")
    # the detail maps (nstr.spectral.detail): octave bands, wavelength, height, direction, creases, in
    # input units (the unit-box mesh times ``scale``: translation changes nothing)
    from nstr.spectral.detail import detail_arrays

    device = next(field.parameters()).device if hasattr(field, "parameters") else "cpu"
    detail, detail_meta = detail_arrays(v * scale, faces, (voxel if voxel is not None else 2.0 / 255) * scale,
                                        device=device)
    arrays.update(detail)
    meta = {"ranges": ranges, "readout": "measured", "detail": detail_meta,
            "colormaps": {**{n: ATTRIBUTE_COLORMAPS[n] for n in scalars}, "drift": ATTRIBUTE_COLORMAPS["drift"]},
            "units": units,
            "descriptions": {k: d for k, d in DESCRIPTIONS.items() if k in arrays},
            "window": {"half_width": window.half_width * scale, "samples": window.samples,
                       "floor_amplitude": window.floor_amplitude * scale, "units": "input length",
                       "rule": "half-width 7% of the output mesh's bounding-box diagonal"}}
    return arrays, meta


def _internal_only(field: Any, vertices_unit: np.ndarray, faces: np.ndarray, scale: float,
                   chunk: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """NSTR's internal readout under the measured keys (fields that are not distances)."""
    from nstr.colormaps import ATTRIBUTE_COLORMAPS, direction_colors, scalar_colors
    from nstr.spectral import spectral_flow

    flow = spectral_flow(field, np.asarray(vertices_unit, np.float32), chunk=chunk)
    normals = vertex_normals(np.asarray(vertices_unit, np.float64), faces)
    raw = {"local_frequency": flow["local_frequency"] / scale, "bandwidth": flow["bandwidth"] / scale,
           "transport_residual": flow["transport_residual"]}
    arrays: dict[str, np.ndarray] = {}
    ranges: dict[str, list[float]] = {}
    for name, values in raw.items():
        values = np.nan_to_num(np.asarray(values, np.float64))
        colors, (lo, hi) = scalar_colors(values, ATTRIBUTE_COLORMAPS[name])
        arrays[name], arrays[f"color_{name}"], ranges[name] = values.astype(np.float32), colors, [lo, hi]
    tangent, angle, magnitude = _tangent_angle(np.nan_to_num(flow["drift"].astype(np.float64)) / scale ** 2, normals)
    colors, (lo, hi) = direction_colors(angle, magnitude)
    arrays.update(drift=tangent.astype(np.float32), drift_magnitude=magnitude.astype(np.float32),
                  color_drift=colors.astype(np.float32))
    ranges["drift"] = ranges["drift_magnitude"] = [lo, hi]
    per_unit = "cycles per unit of input length"
    meta = {"ranges": ranges, "colormaps": {**{n: ATTRIBUTE_COLORMAPS[n] for n in raw}, "drift": ATTRIBUTE_COLORMAPS["drift"]},
            "units": {"local_frequency": per_unit, "bandwidth": per_unit,
                      "drift": per_unit + ", per unit of input length (tangent plane)",
                      "transport_residual": "|dS/dx - F| per unit of the field's [-1, 1] box"},
            "descriptions": {"local_frequency": "NSTR's internal readout (S-weighted carrier centroid): NOT the measured "
                                                "frequency, which needs a distance field; not calibrated",
                             "bandwidth": "spread of that internal readout", "drift": "its transport through F_theta",
                             "transport_residual": DESCRIPTIONS["transport_residual"]},
            "readout": "internal"}
    return arrays, meta
