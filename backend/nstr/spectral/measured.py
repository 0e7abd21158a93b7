"""The measured local frequency: a model-independent readout of any fitted signal.

Around each point we take a small regular window of the fitted signal (the tangent plane of a
surface, a short time window of audio, a patch of an image), remove a best-fit quadratic (so the
mean, a slope and smooth curvature do not read as a frequency), apply a Hann window, Fourier
transform it (zero-padded x2) and read the power-weighted moments of |k|:

* ``m2 = sum |k|^2 P / sum P``. For a windowed tone of frequency k0 this is exactly
  ``k0^2 + c_w``, where ``c_w`` is the window's own second moment (computed once from the window
  itself), so ``nu = sqrt(m2 - c_w)`` is an UNBIASED RMS spectral centroid: one tone reads its own
  frequency, a mixture reads the power-weighted RMS of its frequencies.
* ``bandwidth = sqrt(max(m2 - m1^2, 0))`` with ``m1 = sum |k| P / sum P``: the spectral spread
  (it includes the window's own spread, ~1 / window length).

A window holding almost no detail (a flat or smoothly curved region, numerical noise) has an
ill-defined spectrum, so a weak prior is blended in: a tone of amplitude ``floor_amplitude`` at
``prior_frequency`` (one cycle per window, the coarsest scale the window can see), weighted by
energy. Regions whose detail is well above the floor read their own frequency; flat regions read
``prior_frequency`` (stable, and "coarse" is what flat means).

Units: whatever the spacing is given in. Meshes: cycles per unit of the input's length; audio:
Hz; images: cycles per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

SurfaceFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class WindowSpec:
    """A square (d = 2) or linear (d = 1) window of ``size`` samples ``spacing`` apart."""

    size: int
    spacing: float
    dim: int
    floor_amplitude: float
    prior_frequency: float | None = None  # None: one cycle per window

    @property
    def length(self) -> float:
        return self.size * self.spacing

    @property
    def prior(self) -> float:
        return self.prior_frequency if self.prior_frequency is not None else 1.0 / self.length


class _Analyzer:
    """Precomputed detrend projector, window, FFT frequency grid and window constant for one WindowSpec."""

    def __init__(self, spec: WindowSpec) -> None:
        m, d = spec.size, spec.dim
        u = np.linspace(-1.0, 1.0, m)
        if d == 1:
            basis = np.stack([np.ones(m), u, u * u], -1)
            w = np.hanning(m + 2)[1:-1]
        else:
            uu, vv = np.meshgrid(u, u, indexing="ij")
            uu, vv = uu.ravel(), vv.ravel()
            basis = np.stack([np.ones_like(uu), uu, vv, uu * uu, uu * vv, vv * vv], -1)
            h = np.hanning(m + 2)[1:-1]
            w = np.outer(h, h).ravel()
        q, _ = np.linalg.qr(basis)
        self.q = q  # (M^d, p) orthonormal basis of the trend
        self.window = w
        self.pad = 2 * m
        k1 = np.fft.fftfreq(self.pad, d=spec.spacing)
        if d == 1:
            kabs = np.abs(np.fft.rfftfreq(self.pad, d=spec.spacing))
        else:
            kx = k1[:, None]
            ky = np.fft.rfftfreq(self.pad, d=spec.spacing)[None, :]
            kabs = np.sqrt(kx * kx + ky * ky)
        # rfft halves the last axis: bins other than 0 and Nyquist stand for two (k and -k)
        mult = np.full(kabs.shape[-1], 2.0)
        mult[0] = 1.0
        if self.pad % 2 == 0:
            mult[-1] = 1.0
        self.mult = np.broadcast_to(mult, kabs.shape)
        self.kabs = kabs
        self.spec = spec
        wp = self._power(w[None])[0]
        self.c_w = float((wp * kabs**2).sum() / wp.sum())  # the window's own second moment
        self.window_energy = float((w * w).sum())

    def _power(self, g: np.ndarray) -> np.ndarray:
        m, d = self.spec.size, self.spec.dim
        if d == 1:
            spec = np.fft.rfft(g, n=self.pad, axis=-1)
        else:
            spec = np.fft.rfft2(g.reshape(-1, m, m), s=(self.pad, self.pad), axes=(-2, -1))
        return (spec.real**2 + spec.imag**2) * self.mult

    def __call__(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        """patches (N, M^d) -> local_frequency, bandwidth, amplitude (N,)."""
        y = patches.astype(np.float64)
        y = y - (y @ self.q) @ self.q.T  # remove the best-fit quadratic
        g = y * self.window
        power = self._power(g)
        axes = tuple(range(1, power.ndim))
        total = power.sum(axes) + 1e-300
        m1 = (power * self.kabs).sum(axes) / total
        m2 = (power * self.kabs**2).sum(axes) / total
        energy = (g * g).sum(-1)
        floor = 0.5 * self.spec.floor_amplitude**2 * self.window_energy
        nu2 = (energy * np.maximum(m2 - self.c_w, 0.0) + floor * self.spec.prior**2) / (energy + floor)
        bw2 = energy * np.maximum(m2 - m1 * m1, 0.0) / (energy + floor)
        amplitude = np.sqrt(2.0 * energy / self.window_energy)
        return {"local_frequency": np.sqrt(nu2), "bandwidth": np.sqrt(bw2), "amplitude": amplitude}


def analyze_patches(patches: np.ndarray, spec: WindowSpec) -> dict[str, np.ndarray]:
    """The readout on ready-made windows ``(N, size)`` (d = 1) or ``(N, size, size)`` (d = 2)."""
    return _Analyzer(spec)(patches.reshape(len(patches), -1))


# --- 1-D: audio --------------------------------------------------------------------------------
def signal_local_frequency(samples: np.ndarray, rate: float, window_s: float = 0.032, hop_s: float | None = None,
                           floor: float = 1e-3) -> dict[str, np.ndarray]:
    """Short-time readout of a 1-D signal: ``time_s`` (frame centres), ``local_frequency`` and
    ``bandwidth`` in Hz, ``drift`` (d nu / dt, Hz per second). ``floor`` is relative to the peak."""
    x = np.asarray(samples, np.float64).reshape(-1)
    m = max(8, int(round(window_s * rate)))
    hop = max(1, int(round((hop_s if hop_s is not None else window_s / 4) * rate)))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    padded = np.pad(x, (m // 2, m - m // 2), mode="reflect" if x.size > m else "constant")
    starts = np.arange(0, len(x), hop)
    idx = starts[:, None] + np.arange(m)[None, :]
    spec = WindowSpec(size=m, spacing=1.0 / rate, dim=1, floor_amplitude=max(floor * peak, 1e-12))
    out = _Analyzer(spec)(padded[idx])
    t = starts / rate
    out["time_s"] = t
    out["drift"] = np.gradient(out["local_frequency"], t) if len(t) > 1 else np.zeros(len(t))
    return out


def per_sample(frames: dict[str, np.ndarray], n: int, rate: float) -> dict[str, np.ndarray]:
    """Frame values interpolated to every sample (``time_s`` per sample)."""
    t = np.arange(n) / rate
    return {"time_s": t.astype(np.float32),
            **{k: np.interp(t, frames["time_s"], frames[k]).astype(np.float32)
               for k in ("local_frequency", "bandwidth", "drift")}}


# --- 2-D: images -------------------------------------------------------------------------------
def image_local_frequency(image: np.ndarray, window: int = 24, stride: int = 2,
                          floor: float = 0.01) -> dict[str, np.ndarray]:
    """Per-pixel readout of an image (H, W) or (H, W, C) (channels averaged): ``local_frequency``
    and ``bandwidth`` in cycles per pixel, ``drift`` (H, W, 2) = its gradient (d/dx, d/dy) per pixel."""
    from scipy.ndimage import map_coordinates

    img = np.asarray(image, np.float64)
    if img.ndim == 3:
        img = img.mean(-1)
    h, w = img.shape
    half = window // 2
    padded = np.pad(img, ((half, window - half), (half, window - half)), mode="reflect")
    rows = np.arange(0, h, stride)
    cols = np.arange(0, w, stride)
    spec = WindowSpec(size=window, spacing=1.0, dim=2, floor_amplitude=floor)
    an = _Analyzer(spec)
    out_rows: dict[str, list[np.ndarray]] = {}
    off = np.arange(window)
    for r in rows:  # one row of windows at a time keeps memory small
        patches = padded[r + off][:, cols[:, None] + off[None, :]]  # (window, n_cols, window)
        patches = patches.transpose(1, 0, 2).reshape(len(cols), -1)
        for k, v in an(patches).items():
            out_rows.setdefault(k, []).append(v)
    coarse = {k: np.stack(v) for k, v in out_rows.items()}
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = np.stack([yy / stride, xx / stride])
    full = {k: map_coordinates(v, coords, order=1, mode="nearest").astype(np.float32) for k, v in coarse.items()}
    gy, gx = np.gradient(full["local_frequency"].astype(np.float64))
    full["drift"] = np.stack([gx, gy], -1).astype(np.float32)
    return full


# --- surfaces ----------------------------------------------------------------------------------
def mesh_adjacency(n_vertices: int, faces: np.ndarray, self_loops: bool = True,
                   face_weight: np.ndarray | None = None):  # noqa: ANN201 - scipy CSR
    """Row-normalised vertex adjacency as a scipy CSR matrix: with self loops a diffusion step that never
    overshoots; without, the neighbour mean of the uniform Laplacian (nstr.geometry.smoothing). With
    ``face_weight`` (F,) each edge weighs the sum of its faces' weights (``quad_splits.both_splits``);
    without, every neighbour weighs one."""
    import scipy.sparse as sp

    f = np.asarray(faces, np.int64)
    own = np.arange(n_vertices) if self_loops else np.zeros(0, np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0], own])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2], own])
    w = np.ones(len(i)) if face_weight is None else np.concatenate([np.tile(face_weight, 6), np.ones(len(own))])
    a = sp.csr_matrix((w, (i, j)), shape=(n_vertices, n_vertices))
    if face_weight is None:
        a.data[:] = 1.0
    deg = np.asarray(a.sum(1)).ravel()
    return sp.diags(1.0 / np.maximum(deg, 1e-300)) @ a


def smooth_on_mesh(values: np.ndarray, vertices: np.ndarray, faces: np.ndarray, radius: float) -> np.ndarray:
    """Diffuse per-vertex values over about ``radius`` (n = (radius / mean edge)^2 averaging steps)."""
    if len(faces) == 0:
        return values
    e = vertices[faces[:, [1, 2, 0]]] - vertices[faces]
    edge = float(np.linalg.norm(e, axis=-1).mean())
    steps = int(min(400, math.ceil((radius / max(edge, 1e-12)) ** 2)))
    a = mesh_adjacency(len(vertices), faces)
    out = np.asarray(values, np.float64)
    for _ in range(steps):
        out = a @ out
    return out


def surface_gradient(vertices: np.ndarray, faces: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-vertex gradient (V, 3) of a piecewise-linear scalar: face gradients, area-averaged."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    n = np.cross(p1 - p0, p2 - p0)
    area2 = np.linalg.norm(n, axis=1)
    nu = n / np.maximum(area2, 1e-300)[:, None]
    s = np.asarray(values, np.float64)[f]
    # grad = sum_k s_k (n x e_k) / (2A), e_k the edge opposite vertex k
    g = (s[:, 0:1] * np.cross(nu, p2 - p1) + s[:, 1:2] * np.cross(nu, p0 - p2)
         + s[:, 2:3] * np.cross(nu, p1 - p0)) / np.maximum(area2, 1e-300)[:, None]
    out = np.zeros_like(v)
    w = np.zeros(len(v))
    for k in range(3):
        np.add.at(out, f[:, k], g * area2[:, None])
        np.add.at(w, f[:, k], area2)
    return out / np.maximum(w, 1e-300)[:, None]


@dataclass(frozen=True)
class SurfaceWindow:
    """How the surface readout samples: a ``samples`` x ``samples`` grid spanning ``2 * half_width``."""

    half_width: float
    samples: int = 16
    floor_amplitude: float = 0.0

    @staticmethod
    def from_scale(diagonal: float, voxel: float | None = None, samples: int = 16) -> "SurfaceWindow":
        """The default: half-width 7% of the bounding-box diagonal (a window of about 1/7 of the
        object: local, yet several cycles of any detail finer than ~1/20 of the object), and a
        floor amplitude of 0.2% of the diagonal (below it detail is too faint to have a frequency;
        marching cubes at ``voxel`` alone leaves bumps well below that)."""
        floor = 0.002 * diagonal
        if voxel is not None:
            floor = max(floor, 0.1 * voxel)
        return SurfaceWindow(half_width=0.07 * diagonal, samples=samples, floor_amplitude=floor)


def surface_local_frequency(sdf: SurfaceFn, vertices: np.ndarray, faces: np.ndarray, window: SurfaceWindow,
                            max_points: int = 3000, chunk: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Measured local frequency of the surface of a fitted SDF, at every vertex of a mesh of it.

    At (a subset of at most ``max_points``) vertices: the tangent plane of the smoothed normal, a
    grid of ``window.samples``^2 points on it, the SDF there (= minus the surface's height over the
    plane), the readout above; the other vertices take an inverse-distance mean of their 4 nearest
    measured neighbours. Frequencies are in cycles per unit of the coordinates given (pass input
    coordinates for cycles per unit of input length). ``drift`` is the tangential gradient of the
    local frequency (cycles per unit per unit). ``sdf`` maps (P, 3) points to (P,) values.
    """
    from scipy.spatial import cKDTree

    from nstr.geometry.attributes import tangent_frame, vertex_normals

    v = np.asarray(vertices, np.float64)
    nv = len(v)
    if nv == 0:
        z = np.zeros(0, np.float32)
        return {"local_frequency": z, "bandwidth": z, "amplitude": z, "drift": np.zeros((0, 3), np.float32)}
    raw_normals = vertex_normals(v, faces)
    normals = smooth_on_mesh(raw_normals, v, faces, 0.5 * window.half_width)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    # a closed speck smaller than the window (marching cubes' 6-vertex blob around one grid point) has
    # normals that cancel: smoothed they go to 0 or 1e-300, and dividing by that overflowed (Suzanne at
    # 384^3 had 690 such vertices); there the vertex's own normal is the only direction there is
    normals = np.where(length > 1e-3, normals / np.maximum(length, 1e-300), raw_normals)
    t1, t2 = tangent_frame(normals)
    rng = np.random.default_rng(seed)
    idx = np.arange(nv) if nv <= max_points else np.sort(rng.choice(nv, max_points, replace=False))
    m = window.samples
    u = np.linspace(-window.half_width, window.half_width, m)
    uu, vv = np.meshgrid(u, u, indexing="ij")
    spec = WindowSpec(size=m, spacing=u[1] - u[0], dim=2, floor_amplitude=window.floor_amplitude)
    an = _Analyzer(spec)
    parts: dict[str, list[np.ndarray]] = {}
    for s in range(0, len(idx), chunk):
        sel = idx[s:s + chunk]
        pts = (v[sel, None, None, :] + uu[None, :, :, None] * t1[sel, None, None, :]
               + vv[None, :, :, None] * t2[sel, None, None, :])
        heights = -np.asarray(sdf(pts.reshape(-1, 3)), np.float64).reshape(len(sel), m * m)
        for k, val in an(heights).items():
            parts.setdefault(k, []).append(val)
    measured = {k: np.concatenate(val) for k, val in parts.items()}
    if len(idx) < nv:
        tree = cKDTree(v[idx])
        dist, nn = tree.query(v, k=min(4, len(idx)))
        dist, nn = np.atleast_2d(dist.T).T, np.atleast_2d(nn.T).T
        wts = 1.0 / np.maximum(dist, 1e-12)
        wts /= wts.sum(1, keepdims=True)
        full = {k: (val[nn] * wts).sum(1) for k, val in measured.items()}
    else:
        full = measured
    smooth = smooth_on_mesh(full["local_frequency"], v, faces, 0.5 * window.half_width)
    grad = surface_gradient(v, faces, smooth)
    grad -= np.einsum("nd,nd->n", grad, normals)[:, None] * normals
    out = {k: val.astype(np.float32) for k, val in full.items()}
    out["drift"] = grad.astype(np.float32)
    out["normals"] = normals.astype(np.float32)
    return out
