"""Spectral-flow attributes at every output vertex: raw values, colours, ranges and descriptions.

Two readouts (backend/docs/spectral-flow.md says what each measures and why):

* The DETAIL MAPS, any model, any geometry (nstr.spectral.detail): octave bands of the extracted
  surface's detail, its wavelength, height, direction and creases, in input units; and, said from
  them (nstr.spectral.detail_flow), ``local_frequency`` (1 / wavelength), ``bandwidth`` and ``drift``
  (octaves per unit length toward finer detail). Validated against analytic truth
  (nstr.validation.detail_cases), so they are what the colours show.
* NSTR's INTERNAL readout (NSTR only: ``spectral_frequency``, ``transport_drift``, ``drift_exact``,
  ``transport_residual``): the S-weighted centroid of the carriers and its transport through F_theta.
  Kept for research (``meta["research"]``); on the validation cases it does not follow the surface.

The fields work in the unit box (unit = (input - center) / scale); the mesh times ``scale`` is the
input's size, so every length and frequency here is in the INPUT's units. The internal readout is
divided by ``scale`` (frequencies) or ``scale``^2 (its drift); the transport residual stays in the
field's own units.

Drift is projected onto each vertex's tangent plane and shown as hue = its direction in a
per-vertex tangent frame (t1 = normalised n x z, or n x x near the poles; t2 = n x t1)
and brightness = magnitude.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nstr.geometry.mesh import corner_sums

SCALAR_ATTRIBUTES = ("local_frequency", "bandwidth")  # every model (from the detail maps)
NSTR_SCALARS = ("spectral_frequency", "transport_residual")  # NSTR only (internal readout)
# not for the artist's default list: NSTR's internal readout (research), listed in meta["research"]
RESEARCH_KEYS = ("spectral_frequency", "transport_residual", "transport_drift", "drift_exact")


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for outward-wound faces)."""
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = corner_sums(faces, cross, len(vertices))
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 0, n / np.maximum(length, 1e-300), np.array([0.0, 0.0, 1.0]))


def tangent_frame(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t1, t2) orthonormal tangents per vertex; t1 follows n x z (n x x where n is near +-z)."""
    ref = np.where(np.abs(normals[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    t1 = np.cross(normals, ref)
    t1 /= np.maximum(np.linalg.norm(t1, axis=1, keepdims=True), 1e-300)
    return t1, np.cross(normals, t1)


DESCRIPTIONS = {
    "local_frequency": "how fine the surface detail is here: ripples per unit length (1 / the detail's "
                       "wavelength); 0 where there is no detail",
    "bandwidth": "how mixed the detail is here: the spread of the octave bands' frequencies, weighted by their height",
    "drift": "which way the detail gets finer along the surface, in octaves per unit length "
             "(hue = direction, brightness = how fast)",
    "detail_lost": "how much taller the input's detail is than the result's here (input units): where the fit "
                   "smoothed detail away; near 0 where it kept it",
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
                        chunk: int = 32768, voxel: float | None = None,
                        detail_range: tuple[float, float] | None = None,
                        reference: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (architecture.md's table) and meta {ranges, colormaps, units, descriptions, detail}.

    Every model and every geometry gets the detail maps of its mesh (nstr.spectral.detail) and
    ``local_frequency``/``bandwidth``/``drift`` said from them (nstr.spectral.detail_flow); an NSTR
    field gets its internal readout in addition (research keys). ``voxel``: the extraction grid's
    spacing in unit-box lengths; ``detail_range``: the user's (shortest, longest) wavelength in INPUT
    units, replacing the default octave bands; ``reference``: the input's exact surface
    (:class:`nstr.geometry.ground_truth.MeshSDF` in unit-box coordinates), which adds ``detail_lost``."""
    from nstr.colormaps import ATTRIBUTE_COLORMAPS, direction_colors, robust_range, scalar_colors
    from nstr.spectral.detail import STATE_GREYS, detail_arrays, layout_for_range
    from nstr.spectral.detail_flow import flow_arrays

    v = np.asarray(vertices_unit, np.float64)
    normals = vertex_normals(v, faces)
    device = next(field.parameters()).device if hasattr(field, "parameters") else "cpu"
    voxel_in = (voxel if voxel is not None else 2.0 / 255) * scale
    layout = layout_for_range(detail_range, voxel_in) if detail_range else None
    projected = None
    if reference is not None:
        # the input where the result's normal line meets it (its height at the vertex's own place), or
        # its closest point where that line does not converge
        hit, face, _ = reference.along_lines(v, normals, max_step=4.0 * (voxel_in / scale))
        # a vertex whose input point faces another way (the input's eye behind the head the fit merged
        # it into) keeps its own position: its projection would fold the copy into fake detail
        # (quick Suzanne: 3.4 % of the vertices; lost flagged on 13.0 % of her, 7.0 % with this)
        face_n = reference.face_normals()[face]
        sign = reference.orientation_sign() if reference.closed else 1.0  # an open input has no inside
        agree = np.einsum("nd,nd->n", face_n * sign, normals) > 0.5
        projected = np.where(agree[:, None], hit, v) * scale
    # the detail maps, in input units (the unit-box mesh times ``scale``: translation changes nothing),
    # and with an input, ``detail_lost``
    arrays, detail_meta = detail_arrays(v * scale, faces, voxel_in, layout=layout, device=device,
                                        input_on_result=projected)
    flow = flow_arrays(v * scale, faces, arrays, detail_meta, normals)
    raw: dict[str, np.ndarray] = {"local_frequency": flow["local_frequency"], "bandwidth": flow["bandwidth"]}
    vectors = {"drift": flow["drift"]}
    scalars = list(SCALAR_ATTRIBUTES)
    if getattr(field, "is_spectral", False):
        from nstr.spectral import spectral_flow

        internal = spectral_flow(field, v.astype(np.float32), chunk=chunk)
        raw["spectral_frequency"] = internal["local_frequency"] / scale
        raw["transport_residual"] = internal["transport_residual"]
        vectors["transport_drift"] = internal["drift"].astype(np.float64) / scale ** 2
        vectors["drift_exact"] = internal["drift_exact"].astype(np.float64) / scale ** 2
        scalars += list(NSTR_SCALARS)
    ranges: dict[str, list[float]] = {}
    NO_DETAIL_GREY = STATE_GREYS["none"]  # noqa: N806 - the detail maps' grey for "no detail"
    for name in scalars:
        values = np.nan_to_num(np.asarray(raw[name], np.float64))
        if name in SCALAR_ATTRIBUTES:   # 0 = no detail: grey, and out of the range (a range of mostly zeros says nothing)
            has = values > 0
            lo, hi = robust_range(values[has]) if has.any() else (0.0, 1.0)
            colors, (lo, hi) = scalar_colors(values, ATTRIBUTE_COLORMAPS[name], lo, hi)
            colors[~has, :3] = NO_DETAIL_GREY
        else:
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
             "drift": "octaves per unit of input length, toward finer detail (tangent plane)",
             "drift_hue": "angle in the tangent frame t1 = n x z (n x x near the poles), t2 = n x t1",
             "detail_wavelength": "input length", "detail_amplitude": "input length", "detail_lost": "input length"}
    if getattr(field, "is_spectral", False):
        units.update(spectral_frequency=per_unit, transport_drift=per_unit + " per unit of input length",
                     drift_exact=per_unit + " per unit of input length",
                     transport_residual="|dS/dx - F| per unit of the field's [-1, 1] box")
    meta = {"ranges": ranges, "readout": "detail maps", "detail": detail_meta,
            "colormaps": {**{n: ATTRIBUTE_COLORMAPS[n] for n in scalars}, "drift": ATTRIBUTE_COLORMAPS["drift"]},
            "units": units,
            "descriptions": {k: d for k, d in DESCRIPTIONS.items() if k in arrays},
            "research": [k for k in RESEARCH_KEYS if k in arrays]}
    return arrays, meta
