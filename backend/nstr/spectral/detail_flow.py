"""``local_frequency``, ``bandwidth`` and ``drift`` read off the detail maps (nstr.spectral.detail).

They were a second readout (one fixed tangent window, nstr.spectral.measured) that disagreed with the
maps: everything coarser than the window read the same value, and amplitude leaked into frequency.
Now they are the maps said another way, so the two can never disagree:

* ``local_frequency`` = 1 / ``detail_wavelength`` (cycles per unit); 0 where there is no detail (no
  detail, coarser than the bands, creases): "no ripples here" rather than a made-up frequency.
* ``bandwidth``: the spread of the octave bands' frequencies, weighted by their energy (cycles per unit):
  0 for one clean size, large for a mix of sizes.
* ``drift``: the surface gradient of log2(local_frequency), in OCTAVES PER UNIT LENGTH, a tangent
  vector pointing toward finer detail. Octaves make it independent of scale: a pattern that doubles its
  frequency over 1 m reads 1 octave/m at any size, where cycles/m per m would change with the square of
  the object's size. log2(frequency) is smoothed over about one wavelength first, then differentiated
  per face where all three corners have detail and averaged to the vertices; 0 where there is no detail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nstr.geometry.mesh import corner_sums

MAX_SMOOTHING_ROUNDS = 400  # the drift's smoothing: at most as wide as this many rounds of one-ring averaging


def band_frequencies(bands_meta: list[dict[str, float]]) -> np.ndarray:
    """Each octave band's centre frequency (geometric mean of its edges), cycles per unit."""
    return np.array([1.0 / np.sqrt(b["shortest"] * b["longest"]) for b in bands_meta])


def local_frequency(wavelength: np.ndarray) -> np.ndarray:
    """1 / wavelength; 0 where the wavelength is NaN (no detail)."""
    w = np.asarray(wavelength, np.float64)
    ok = np.isfinite(w) & (w > 0)
    return np.where(ok, 1.0 / np.where(ok, w, 1.0), 0.0)


def bandwidth(bands: np.ndarray, bands_meta: list[dict[str, float]], has_detail: np.ndarray) -> np.ndarray:
    """Energy-weighted spread of the bands' frequencies (cycles per unit); 0 off detail."""
    energy = np.asarray(bands, np.float64) ** 2
    total = energy.sum(1, keepdims=True)
    w = energy / np.maximum(total, 1e-300)
    nu = band_frequencies(bands_meta)[None, :]
    mean = (w * nu).sum(1, keepdims=True)
    spread = np.sqrt((w * (nu - mean) ** 2).sum(1))
    return np.where(has_detail, spread, 0.0)


def _face_gradients(values: np.ndarray, v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-face gradient of a piecewise-linear scalar and each face's area."""
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    n = np.cross(p1 - p0, p2 - p0)
    area2 = np.linalg.norm(n, axis=1)
    unit = n / np.maximum(area2, 1e-300)[:, None]
    grad = np.zeros_like(p0)
    for i, (a, b) in enumerate(((1, 2), (2, 0), (0, 1))):  # vertex i and its opposite edge b - a
        edge = v[f[:, b]] - v[f[:, a]]
        grad += values[f[:, i]][:, None] * np.cross(unit, edge)
    return grad / np.maximum(area2, 1e-300)[:, None], 0.5 * area2


EXPLICIT_ROUNDS = 8         # the drift's smoothing starts with this many rounds of one-ring averaging (below)


def _ring_mean(values: np.ndarray, weight: np.ndarray, faces: np.ndarray, steps: int) -> np.ndarray:
    """``values`` smoothed along the mesh as ``steps`` rounds of one-ring averaging would (a Gaussian
    reach of about sqrt(steps / 2) edges), among the vertices with ``weight`` > 0 only (the others
    neither give nor get: 0). EXPLICIT_ROUNDS rounds of that averaging first, which take out the
    vertex-to-vertex noise (a one-edge checkerboard); then, for the rest of the width, one implicit heat
    step (W + t L) x = W values, L the graph Laplacian of the edges between such vertices and t =
    (steps - rounds) / 7 (the same spread: a round moves 3/7 of an edge squared per axis on a 6-valent
    mesh, the step 3 t), solved by conjugate gradients. Alone, the implicit step left 5 % of a
    checkerboard (its filter falls as 1 / frequency^2, not as a Gaussian). On the quick Suzanne (124k
    vertices, 400 rounds wide) 0.19-0.24 s where the 400 rounds took 0.53-0.60 s, within 0.016 octaves
    of them (median; their spread 0.68)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import cg

    n = len(values)
    w = (np.asarray(weight) > 0).astype(np.float64)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = e[(w[e[:, 0]] > 0) & (w[e[:, 1]] > 0)]
    adj = sp.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)).tocsr()
    adj.data[:] = 1.0                                  # an edge shared by two faces counts once
    degree = np.asarray(adj.sum(1)).ravel()
    x = np.where(w > 0, values, 0.0)
    rounds = min(int(steps), EXPLICIT_ROUNDS)
    for _ in range(rounds):                            # the mean over the one-ring and itself
        x = (adj @ x + x) / (degree + 1)
    t = (int(steps) - rounds) / 7.0
    if t > 0:
        diagonal = w + (w == 0) + t * degree           # a vertex without weight has no edges: x = 0 there
        x, _ = cg(sp.diags(diagonal) - t * adj, w * x, x0=x, rtol=1e-3, maxiter=1000, M=sp.diags(1.0 / diagonal))
    return np.where(w > 0, x, 0.0)


def drift(vertices: np.ndarray, faces: np.ndarray, frequency: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Tangent gradient of log2(frequency), octaves per unit length, toward finer detail (V, 3).

    log2(frequency) is first smoothed over about one wavelength (:func:`_ring_mean`; its width from
    the median wavelength in edges): the wavelength is a windowed estimate whose
    vertex-to-vertex differences are noise, far steeper than any real change of scale."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    nu = np.asarray(frequency, np.float64)
    has = nu > 0
    out = np.zeros_like(v)
    if not has[f].all(1).any():
        return out
    edge = float(np.median(np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1)))
    wavelengths = 1.0 / nu[has]
    steps = int(np.clip(2.0 * (np.median(wavelengths) / max(edge, 1e-300)) ** 2, 4, MAX_SMOOTHING_ROUNDS))
    log_nu = _ring_mean(np.log2(np.where(has, nu, 1.0)), has.astype(np.float64), f, steps)
    fo = f[has[f].all(1)]
    grad, area = _face_gradients(log_nu, v, fo)
    acc = corner_sums(fo, grad * area[:, None], len(v))     # each face's area-weighted gradient to its corners
    wsum = corner_sums(fo, area, len(v))
    got = wsum > 0
    out[got] = acc[got] / wsum[got, None]
    n = np.asarray(normals, np.float64)
    out -= np.einsum("nd,nd->n", out, n)[:, None] * n
    return out


def flow_arrays(vertices: np.ndarray, faces: np.ndarray, detail: dict[str, np.ndarray], detail_meta: dict[str, Any],
                normals: np.ndarray) -> dict[str, np.ndarray]:
    """``local_frequency``, ``bandwidth`` (V,) and ``drift`` (V, 3) from the detail arrays."""
    nu = local_frequency(detail["detail_wavelength"])
    return {"local_frequency": nu,
            "bandwidth": bandwidth(detail["detail_bands"], detail_meta["bands"], nu > 0),
            "drift": drift(vertices, faces, nu, normals)}
