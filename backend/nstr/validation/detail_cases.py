"""Composite meshes whose detail maps are known: patches of ripples of known wavelength, height and
direction on a smooth base, a patch whose height ramps 20x, a patch with no detail, a bevelled
crease, an abrupt change of wavelength, and undulation coarser than any band.

Each case is a closed mesh (a slab whose top is a height field, or a sphere displaced along its
normal) and a ``truth(points)`` that says, at any point near its surface, what the detail maps
should read there: the patch it lies in, the true wavelength, RMS height and wave direction, and
which state it is in (``detail``, ``none``, ``coarser``, ``crease``). Lengths are in the mesh's
units; ``scale`` multiplies the whole case (truth scales with it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

SLAB_HALF = 1.0          # the slab spans [-1, 1]^2 ...
SLAB_TOP = 0.25          # ... and [-0.25, 0.25 + height] in z
SPHERE_RADIUS = 0.8


@dataclass(frozen=True)
class Patch:
    """A square patch of the slab's top (or a band of latitude on the sphere) with one kind of detail.

    ``kind``: ``ripple`` (one direction ``angle``, radians from +x in the slab's plane; on the sphere
    ``angle`` 0 runs along the meridian), ``egg`` (sin x sin y: no preferred direction), ``ramp`` (a
    ripple whose height grows ``ramp`` times along +y across the patch), ``step`` (wavelength
    ``wavelength`` for x < centre, ``wavelength2`` beyond), ``ridge`` (a bevelled crease along y:
    slopes ``amplitude`` either side, bevel ``bevel`` wide), ``flat`` (nothing), ``undulation``
    (a ripple coarser than every band)."""

    name: str
    kind: str
    centre: tuple[float, float]
    half: float                      # half-width of the patch (its fully-detailed core is narrower)
    wavelength: float = 0.0
    amplitude: float = 0.0           # peak height of the ripple; for a ridge: its slope
    angle: float = 0.0
    ramp: float = 1.0
    wavelength2: float = 0.0
    bevel: float = 0.0
    taper: float = 0.06              # the height fades in over this width at the patch's edge

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        cx, cy = self.centre
        u, v = x - cx, y - cy
        env = _taper(u, self.half, self.taper) * _taper(v, self.half, self.taper)
        k = 2 * math.pi / self.wavelength if self.wavelength else 0.0
        along = u * math.cos(self.angle) + v * math.sin(self.angle)
        if self.kind in ("ripple", "undulation"):
            return env * self.amplitude * np.sin(k * along)
        if self.kind == "ramp":
            grow = self.ramp ** ((v + self.half) / (2 * self.half))   # 1 .. ramp across the patch, geometric
            return env * self.amplitude * grow / self.ramp * np.sin(k * along)
        if self.kind == "egg":
            return env * self.amplitude * np.sin(k * u) * np.sin(k * v)
        if self.kind == "step":
            k2 = 2 * math.pi / self.wavelength2
            # continuous phase across the change, so the surface has no kink of its own there
            phase = np.where(u < 0, k * u, k2 * u)
            return env * self.amplitude * np.sin(phase)
        if self.kind == "ridge":
            w = max(self.bevel, 1e-9)
            soft = np.where(np.abs(u) < w / 2, u * u / w + w / 4, np.abs(u))  # |u| with a round bevel of width w
            return _taper(v, self.half, self.taper) * self.amplitude * (self.half - np.minimum(soft, self.half))
        return np.zeros_like(x)

    def core(self, x: np.ndarray, y: np.ndarray, margin: float) -> np.ndarray:
        """Points well inside the patch: away from its tapered edge by ``margin``."""
        cx, cy = self.centre
        inner = self.half - self.taper - margin
        return (np.abs(x - cx) < inner) & (np.abs(y - cy) < inner)

    def rms(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True RMS height of the detail at (x, y) (over a wavelength)."""
        if self.kind in ("ripple", "step", "undulation"):
            return np.full_like(x, self.amplitude / math.sqrt(2))
        if self.kind == "ramp":
            v = y - self.centre[1]
            return self.amplitude * self.ramp ** ((v + self.half) / (2 * self.half)) / self.ramp / math.sqrt(2)
        if self.kind == "egg":
            return np.full_like(x, self.amplitude / 2)
        return np.zeros_like(x)

    def true_wavelength(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "egg":        # sin(kx) sin(ky): its waves run along the diagonals, at k sqrt 2
            return np.full_like(x, self.wavelength / math.sqrt(2))
        if self.kind == "step":
            return np.where(x < self.centre[0], self.wavelength, self.wavelength2)
        return np.full_like(x, self.wavelength if self.kind not in ("flat", "ridge") else np.nan)


def _taper(u: np.ndarray, half: float, width: float) -> np.ndarray:
    """1 inside |u| < half - width, a cosine fade to 0 at |u| = half, 0 beyond."""
    t = np.clip((half - np.abs(u)) / width, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(math.pi * t)


@dataclass(frozen=True)
class CompositeCase:
    """A slab with patches (``base='slab'``) or a sphere with latitude patches (``base='sphere'``)."""

    name: str
    patches: tuple[Patch, ...]
    base: str = "slab"
    scale: float = 1.0
    resolution: int = 400            # height-field samples per side (slab) / per meridian (sphere)
    creases: bool = False            # the ridge patch is a crease (and so are the slab's rims)

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sum((p.height(x, y) for p in self.patches), np.zeros_like(x))

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        if self.base == "slab":
            v, f = heightfield_slab(self.height, self.resolution)
        else:
            v, f = displaced_sphere(self._sphere_height, self.resolution)
        return v * self.scale, f

    # -- the sphere: patches live in (arc length along the meridian from the equator, along the parallel)
    def _sphere_coords(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.linalg.norm(p, axis=1)
        lat = np.arcsin(np.clip(p[:, 2] / np.maximum(r, 1e-12), -1, 1))
        lon = np.arctan2(p[:, 1], p[:, 0])
        return SPHERE_RADIUS * lon, SPHERE_RADIUS * lat   # x along the parallel (at the equator), y along the meridian

    def _sphere_height(self, unit: np.ndarray) -> np.ndarray:
        x, y = self._sphere_coords(unit)
        return self.height(x, y)

    def held_gain(self, points: np.ndarray, patch: int, where: np.ndarray) -> float:
        """How much of patch ``patch``'s pattern a surface through ``points`` (e.g. a fit's vertices)
        actually holds at ``where``: the least-squares gain of its height over the base onto the
        pattern's. A fit that smoothed a ripple to 80 % of its height reads 0.8, so a readout of that
        fit can be scored against what the surface holds, not against what the input had."""
        p = np.asarray(points, np.float64)[where] / self.scale
        if self.base == "slab":
            x, y, observed = p[:, 0], p[:, 1], p[:, 2] - SLAB_TOP
        else:
            x, y = self._sphere_coords(p)
            observed = np.linalg.norm(p, axis=1) - SPHERE_RADIUS
        pattern = self.patches[patch].height(x, y)
        return float(observed @ pattern / max(float(pattern @ pattern), 1e-300))

    def truth(self, points: np.ndarray) -> "Truth":
        p = np.asarray(points, np.float64) / self.scale
        if self.base == "slab":
            x, y = p[:, 0], p[:, 1]
            top = p[:, 2] > SLAB_TOP - 0.05
            rim = top & ((np.abs(x) > SLAB_HALF - 0.06) | (np.abs(y) > SLAB_HALF - 0.06))
            on = top & ~rim
            rim_all = ~on   # the sides, the bottom and the rims: smooth base with box creases
            t1 = np.tile([1.0, 0.0, 0.0], (len(p), 1))
            t2 = np.tile([0.0, 1.0, 0.0], (len(p), 1))
        else:
            x, y = self._sphere_coords(p)
            lat = y / SPHERE_RADIUS
            on = np.abs(lat) < 1.2       # away from the poles
            rim_all = ~on
            lon = x / SPHERE_RADIUS
            t1 = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], 1)                     # along the parallel
            t2 = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], 1)  # along the meridian
        n = len(p)
        patch = np.full(n, -1)
        core = np.zeros(n, bool)
        wl, rms, direction = np.full(n, np.nan), np.zeros(n), np.zeros((n, 3))
        state = np.where(on | rim_all, "none", "none").astype(object)
        for i, pt in enumerate(self.patches):
            inside = on & (np.abs(x - pt.centre[0]) < pt.half) & (np.abs(y - pt.centre[1]) < pt.half)
            patch[inside] = i
            c = inside & pt.core(x, y, margin=max(0.5 * max(pt.wavelength, pt.wavelength2), pt.bevel, 0.02))
            core |= c
            wl[inside] = pt.true_wavelength(x[inside])
            rms[inside] = pt.rms(x[inside], y[inside])
            a = pt.angle
            direction[inside] = math.cos(a) * t1[inside] + math.sin(a) * t2[inside]
            state[inside] = {"flat": "none", "ridge": "crease", "undulation": "coarser"}.get(pt.kind, "detail")
        if self.base == "slab" and self.creases:
            state[rim] = "crease"
        return Truth(patch=patch, core=core, wavelength=wl * self.scale, rms=rms * self.scale,
                     direction=direction, state=state.astype(str), on_base=on)


@dataclass
class Truth:
    patch: np.ndarray        # (N,) index of the patch a point lies in, -1 on the base
    core: np.ndarray         # (N,) inside a patch's fully-detailed core
    wavelength: np.ndarray   # (N,) NaN where there is no single wavelength
    rms: np.ndarray          # (N,) RMS height of the detail
    direction: np.ndarray    # (N, 3) wave direction (a line)
    state: np.ndarray        # (N,) detail | none | coarser | crease
    on_base: np.ndarray      # (N,) on the top (slab) or away from the poles (sphere)


def heightfield_slab(height: Callable[[np.ndarray, np.ndarray], np.ndarray], n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A closed slab [-1, 1]^2 x [-0.25, 0.25 + height(x, y)], faces wound outward."""
    s = np.linspace(-SLAB_HALF, SLAB_HALF, n)
    xx, yy = np.meshgrid(s, s, indexing="ij")
    top = np.stack([xx, yy, SLAB_TOP + height(xx, yy)], -1).reshape(-1, 3)
    bottom = np.stack([xx, yy, np.full_like(xx, -SLAB_TOP)], -1).reshape(-1, 3)
    v = np.concatenate([top, bottom])
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    top_f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    bot_f = top_f[:, ::-1] + n * n
    loop = np.concatenate([idx[:, 0], idx[-1, 1:], idx[-2::-1, -1], idx[0, -2:0:-1]])
    nxt = np.roll(loop, -1)
    side = np.concatenate([np.stack([loop, loop + n * n, nxt + n * n], 1), np.stack([loop, nxt + n * n, nxt], 1)])
    return v, _outward(v, np.concatenate([top_f, bot_f, side]))


def displaced_sphere(height: Callable[[np.ndarray], np.ndarray], n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A sphere of radius 0.8 displaced along its normal by ``height(unit directions)``; ``n`` rings."""
    n_lat, n_lon = n, 2 * n
    lat = np.linspace(-math.pi / 2, math.pi / 2, n_lat + 1)[1:-1]
    lon = np.linspace(-math.pi, math.pi, n_lon, endpoint=False)
    tt, ll = np.meshgrid(lat, lon, indexing="ij")
    unit = np.stack([np.cos(tt) * np.cos(ll), np.cos(tt) * np.sin(ll), np.sin(tt)], -1).reshape(-1, 3)
    poles = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    unit = np.concatenate([unit, poles])
    v = unit * (SPHERE_RADIUS + height(unit))[:, None]
    idx = np.arange(len(lat) * n_lon).reshape(len(lat), n_lon)
    j1 = np.roll(idx, -1, axis=1)
    a, b, c, d = idx[:-1].ravel(), idx[1:].ravel(), j1[1:].ravel(), j1[:-1].ravel()
    quads = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    south, north = len(lat) * n_lon, len(lat) * n_lon + 1
    cap_s = np.stack([np.full(n_lon, south), idx[0], j1[0]], 1)
    cap_n = np.stack([np.full(n_lon, north), j1[-1], idx[-1]], 1)
    return v, _outward(v, np.concatenate([quads, cap_s, cap_n]))


def _outward(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip the whole winding if the signed volume is negative (all builders are consistently wound)."""
    tri = v[faces]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    return (faces if vol > 0 else faces[:, ::-1]).astype(np.int64)


# --- the cases ---------------------------------------------------------------------------------
# Wavelengths are chosen against the quick preset's grid on these 2-unit slabs: 256 points across
# the unit box, so a voxel is about 0.0087 here; the bands run from 2 voxels to a third of the slab.
_G = 0.0087
# One pattern on every base and size (absolute units): it must read the same, in the same colour.
SHARED = dict(kind="ripple", wavelength=0.24, amplitude=0.018, angle=math.pi / 2)   # >= 4 voxels at quick on "big"
# Heights keep every slope below about 30 degrees (a ripple's slope is 2 pi amplitude / wavelength).
PATCHES = (
    # finer than the quick grid (1.8 of its 0.0154 voxels) and 3.5 floors tall, so losing it matters:
    # a sub-grid ripple that tall is steep (slope 1.7)
    Patch("lost", "ripple", (-0.64, 0.64), 0.3, wavelength=0.0278, amplitude=0.0076),
    Patch("fine_x", "ripple", (0.0, 0.64), 0.3, wavelength=4 * _G, amplitude=0.003),
    Patch("mid_y", "ripple", (0.64, 0.64), 0.3, wavelength=8 * _G, amplitude=0.005, angle=math.pi / 2),
    Patch("ramp", "ramp", (-0.64, 0.0), 0.3, wavelength=23 * _G, amplitude=0.016, ramp=20.0),
    Patch("egg", "egg", (0.0, 0.0), 0.3, wavelength=12 * _G, amplitude=0.008),
    Patch("diag", "ripple", (0.64, 0.0), 0.3, wavelength=16 * _G, amplitude=0.01, angle=math.pi / 4),
    Patch("flat", "flat", (-0.64, -0.64), 0.3),
    Patch("step", "step", (0.0, -0.64), 0.3, wavelength=6 * _G, wavelength2=20 * _G, amplitude=0.005),
    Patch("shared", centre=(0.64, -0.64), half=0.3, **SHARED),
)
SHAPE_PATCHES = (
    Patch("quarter", "ripple", (-0.5, 0.0), 0.5, wavelength=0.5, amplitude=0.03, angle=math.pi / 2, taper=0.1),
    Patch("undulation", "undulation", (0.5, 0.5), 0.5, wavelength=2.4, amplitude=0.05, angle=math.pi / 2, taper=0.1),
    Patch("ridge", "ridge", (0.5, -0.5), 0.45, amplitude=0.25, bevel=0.03, taper=0.1),
)
# on the sphere, x runs along the parallel only at the equator, so its patterns run along the meridian
SPHERE_PATCHES = (
    Patch("mid_y", "ripple", (0.0, 0.3), 0.25, wavelength=8 * _G, amplitude=0.005, angle=math.pi / 2),
    Patch("shared", centre=(1.3, -0.3), half=0.25, **SHARED),
)
# one abrupt change inside the goal's range at the quick preset's coarsest grid (128: a voxel is 2 _G on these
# slabs): 4 voxels to 13.3 (3.33x); the composite's own step (6 / 20 _G) is 3 voxels on its fine side there
CONTRAST_PATCHES = (Patch("step4", "step", (0.0, 0.0), 0.6, wavelength=8 * _G, wavelength2=8 * _G * 10 / 3,
                          amplitude=0.005),)
BIG = 3.0
BIG_PATCHES = (Patch("shared", centre=(0.0, 0.0), half=0.4,
                     **{**SHARED, "wavelength": SHARED["wavelength"] / BIG, "amplitude": SHARED["amplitude"] / BIG}),)

CASES: dict[str, CompositeCase] = {
    "patches": CompositeCase("patches", PATCHES),
    "shape": CompositeCase("shape", SHAPE_PATCHES, creases=True),
    "sphere": CompositeCase("sphere", SPHERE_PATCHES, base="sphere"),
    "big": CompositeCase("big", BIG_PATCHES, scale=BIG),
    "contrast": CompositeCase("contrast", CONTRAST_PATCHES),
}


def marching_cubes_egg_crate(voxel: float = 0.0175, wavelength: float = 0.1044,
                             amplitude: float = 0.008) -> tuple[np.ndarray, np.ndarray, float]:
    """A 1 x 1 x 0.2 slab whose top (z > 0.05, |x|, |y| < 0.45) is an egg crate ``amplitude sin kx sin ky``,
    as marching cubes gives it: every square of its grid split along the same diagonal. Its two waves run
    along the diagonals, ``wavelength / sqrt 2`` long (4.2 voxels by default), and have no preferred
    direction. Returns vertices, outward faces and k."""
    from skimage.measure import marching_cubes

    h = voxel
    g = np.arange(-0.6 + 0.37 * h, 0.6 + h / 2, h)      # no vertex exactly on a grid node
    gz = np.arange(-0.2 + 0.61 * h, 0.2 + h / 2, h)
    X, Y, Z = np.meshgrid(g, g, gz, indexing="ij")
    k = 2 * math.pi / wavelength
    egg = amplitude * np.sin(k * X) * np.sin(k * Y) * np.clip((0.45 - np.maximum(abs(X), abs(Y))) / 0.1, 0, 1)
    field = np.maximum(np.maximum(abs(X) - 0.5, abs(Y) - 0.5), np.where(Z > 0, Z - 0.1 - egg, -Z - 0.1))
    v, f, _, _ = marching_cubes(field, 0.0, spacing=(h, h, h))
    return v + np.array([g[0], g[0], gz[0]]), f[:, ::-1].copy(), k
