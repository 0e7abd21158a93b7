"""Closed meshes with an analytic surface frequency, and their truth at any point of a surface near them.

Frequencies are in cycles per unit of the mesh's own length (along the surface); ``scale``
multiplies the whole mesh, so the truth divides by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SurfaceCase:
    """A validation mesh and how to score a surface near it."""

    name: str
    kind: str  # slab | sphere | thread | knurl
    f0: float  # cycles per unit length at the start of the ramp
    f1: float  # ... and at its end
    amplitude: float
    scale: float = 1.0
    control: bool = False  # flat / smooth: no ripple (amplitude 0), truth is "no detail"

    @property
    def turns(self) -> tuple[int, ...]:
        """A rod's helices: starts around the rod, one entry per helix (a thread: one; a knurl: two)."""
        return KNURL_TURNS if self.kind == "knurl" else (1,)

    def mesh(self, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
        amplitude = 0.0 if self.control else self.amplitude
        if self.kind == "slab":
            v, f = chirp_slab(self.f0, self.f1, amplitude, n)
        elif self.kind == "sphere":
            v, f = rippled_sphere(self.f0, self.f1, amplitude, n)
        else:
            v, f = threaded_rod(self.f0, self.f1, amplitude, self.turns, n)
        return (v * self.scale).astype(np.float64), f

    def truth(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frequency (N,), its surface gradient (N, 3), mask of the textured part (N,)) at ``points``."""
        p = np.asarray(points, np.float64) / self.scale
        if self.kind == "slab":
            freq = self.f0 + (self.f1 - self.f0) * (p[:, 0] + 1.0) / 2.0
            grad = np.zeros_like(p)
            grad[:, 0] = (self.f1 - self.f0) / 2.0
            mask = (p[:, 2] > SLAB_TOP - 0.1) & (np.abs(p[:, 0]) < 0.8) & (np.abs(p[:, 1]) < 0.8)
        elif self.kind in ("thread", "knurl"):
            # every helix's wave vector on the surface: 2 pi f(z) along z and m / R around the rod
            along = self.f0 + (self.f1 - self.f0) * (p[:, 2] + ROD_HALF_LENGTH) / (2 * ROD_HALF_LENGTH)
            around = max(self.turns) / (2 * math.pi * ROD_RADIUS)
            freq = np.hypot(along, around)
            grad = np.zeros_like(p)
            grad[:, 2] = along / freq * (self.f1 - self.f0) / (2 * ROD_HALF_LENGTH)
            mask = np.abs(p[:, 2]) < ROD_HALF_LENGTH - 0.15
        else:
            r = np.linalg.norm(p, axis=1)
            theta = np.arccos(np.clip(p[:, 2] / np.maximum(r, 1e-12), -1, 1))
            freq = self.f0 + (self.f1 - self.f0) * theta / math.pi
            phi = np.arctan2(p[:, 1], p[:, 0])
            e_theta = np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), -np.sin(theta)], -1)
            grad = e_theta * (self.f1 - self.f0) / (math.pi * SPHERE_RADIUS)
            mask = (theta > 0.2 * math.pi) & (theta < 0.8 * math.pi)
        return freq / self.scale, grad / self.scale**2, mask


SLAB_TOP = 0.25
SPHERE_RADIUS = 0.8
ROD_RADIUS = 0.45
ROD_HALF_LENGTH = 0.8
KNURL_TURNS = (12, -12)  # a diamond knurl: two helices of opposite hand, 12 starts each


def chirp_slab(f0: float, f1: float, amplitude: float, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """A closed slab [-1, 1]^2 x [-0.25, 0.25] whose top is ``0.25 + A sin(phase(x))`` with the local
    frequency rising linearly ``f0 -> f1`` cycles per unit from x = -1 to x = 1 (constant in y)."""
    s = np.linspace(-1.0, 1.0, n)
    xx, yy = np.meshgrid(s, s, indexing="ij")
    t = xx + 1.0
    phase = 2 * math.pi * (f0 * t + (f1 - f0) * t * t / 4.0)
    top = np.stack([xx, yy, SLAB_TOP + amplitude * np.sin(phase)], -1).reshape(-1, 3)
    bottom = np.stack([xx, yy, np.full_like(xx, -SLAB_TOP)], -1).reshape(-1, 3)
    v = np.concatenate([top, bottom])
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    top_f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])  # +z normals
    bot_f = top_f[:, ::-1] + n * n
    # the boundary loop, counter-clockwise seen from +z
    loop = np.concatenate([idx[:, 0], idx[-1, 1:], idx[-2::-1, -1], idx[0, -2:0:-1]])
    nxt = np.roll(loop, -1)
    side = np.concatenate([np.stack([loop, loop + n * n, nxt + n * n], 1), np.stack([loop, nxt + n * n, nxt], 1)])
    faces = np.concatenate([top_f, bot_f, side])
    return v, _outward(v, faces)


def rippled_sphere(f0: float, f1: float, amplitude: float, n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A sphere of radius 0.8 with latitude ripples ``r = 0.8 + A sin(phase(theta))`` whose frequency
    along the meridian rises linearly ``f0 -> f1`` cycles per unit arc length from pole (theta = 0) to pole."""
    n_lat, n_lon = int(n * 4 // 3), n
    theta = np.linspace(0, math.pi, n_lat + 1)[1:-1]
    phase = 2 * math.pi * SPHERE_RADIUS * (f0 * theta + (f1 - f0) * theta**2 / (2 * math.pi))
    r = SPHERE_RADIUS + amplitude * np.sin(phase)
    lon = np.linspace(0, 2 * math.pi, n_lon, endpoint=False)
    tt, ll = np.meshgrid(theta, lon, indexing="ij")
    rr = np.broadcast_to(r[:, None], tt.shape)
    ring = np.stack([rr * np.sin(tt) * np.cos(ll), rr * np.sin(tt) * np.sin(ll), rr * np.cos(tt)], -1).reshape(-1, 3)
    r_pole = SPHERE_RADIUS  # phase 0 at theta = 0; at the far pole the ripple's value there
    r_south = SPHERE_RADIUS + amplitude * math.sin(2 * math.pi * SPHERE_RADIUS * (f0 * math.pi + (f1 - f0) * math.pi / 2))
    v = np.concatenate([ring, [[0, 0, r_pole]], [[0, 0, -r_south]]])
    return v, _outward(v, _rings_and_caps(len(theta), n_lon))


def threaded_rod(f0: float, f1: float, amplitude: float, turns: tuple[int, ...] = (1,),
                 n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A closed rod of radius 0.45 along z in [-0.8, 0.8] whose radius is ``0.45 + A mean_m sin(phase(z) - m
    angle)``: one helix per entry of ``turns`` (m starts around the rod; (1,) is a single-start thread, two of
    opposite sign a diamond knurl), the pitch's frequency along z rising linearly ``f0 -> f1`` cycles per unit
    from z = -0.8 to 0.8. Flat caps, fanned from their centres."""
    n_z, n_a = int(n * 4 // 3), n
    z = np.linspace(-ROD_HALF_LENGTH, ROD_HALF_LENGTH, n_z)
    t = z + ROD_HALF_LENGTH
    phase = 2 * math.pi * (f0 * t + (f1 - f0) * t * t / (4 * ROD_HALF_LENGTH))
    ang = np.linspace(0, 2 * math.pi, n_a, endpoint=False)
    pp, aa = np.meshgrid(phase, ang, indexing="ij")
    r = ROD_RADIUS + amplitude * np.mean([np.sin(pp - m * aa) for m in turns], axis=0)
    zz = np.broadcast_to(z[:, None], pp.shape)
    ring = np.stack([r * np.cos(aa), r * np.sin(aa), zz], -1).reshape(-1, 3)
    v = np.concatenate([ring, [[0, 0, -ROD_HALF_LENGTH]], [[0, 0, ROD_HALF_LENGTH]]])
    return v, _outward(v, _rings_and_caps(n_z, n_a))


def _rings_and_caps(rows: int, cols: int) -> np.ndarray:
    """Faces of ``rows`` closed rings of ``cols`` vertices (row-major), joined ring to ring, and a fan from
    each end's pole (the vertices after the rings: the first ring's pole, then the last's), consistently
    wound."""
    idx = np.arange(rows * cols).reshape(rows, cols)
    j1 = np.roll(idx, -1, axis=1)
    a, b, c, d = idx[:-1].ravel(), idx[1:].ravel(), j1[1:].ravel(), j1[:-1].ravel()
    quads = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    first, last = rows * cols, rows * cols + 1
    cap_first = np.stack([np.full(cols, first), idx[0], j1[0]], 1)
    cap_last = np.stack([np.full(cols, last), j1[-1], idx[-1]], 1)
    return np.concatenate([quads, cap_first, cap_last])


def _outward(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip the whole winding if the signed volume is negative (all builders are consistently wound)."""
    tri = v[faces]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    return (faces if vol > 0 else faces[:, ::-1]).astype(np.int64)


CASES: dict[str, SurfaceCase] = {
    "chirp_slab": SurfaceCase("chirp_slab", "slab", 3.0, 8.0, 0.02),
    "rippled_sphere": SurfaceCase("rippled_sphere", "sphere", 3.0, 8.0, 0.02),
    "flat_slab": SurfaceCase("flat_slab", "slab", 3.0, 8.0, 0.02, control=True),
    "smooth_sphere": SurfaceCase("smooth_sphere", "sphere", 3.0, 8.0, 0.02, control=True),
    "threaded_rod": SurfaceCase("threaded_rod", "thread", 3.0, 8.0, 0.02),
    "knurled_rod": SurfaceCase("knurled_rod", "knurl", 3.0, 8.0, 0.02),
}
