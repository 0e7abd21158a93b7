"""A second CAD-like test part with a known topology: a slab with many spherical holes.

A slab ``size`` (mm) minus ``n_holes`` balls of mixed radius, placed at random (seeded):
* each ball is a through-hole (crosses the top and bottom faces), a blind hole (crosses one face and
  stays a ``wall`` off the other) or an inner void (a ``wall`` off both); it keeps a ``wall`` from the
  four side faces, and crosses a face by at least ``margin`` or stays a ``wall`` off it;
* two balls either overlap by at least ``margin`` ("touching": pairs only, never chains; the lens
  where they meet also crosses a face clearly or stays a wall off it) or keep a wall of at least
  ``wall`` between them; a share ``thin`` of the balls is put 1-1.5 walls from a neighbour on purpose,
  so thin walls are common, not rare.

Its topology follows from the placement, which is what tests and benchmarks check a fit against:
the surface has ``1 + void clusters`` components (a cluster = a ball or a touching pair; a void
cluster crosses neither face), and genus = sum over clusters of (openings - 1), an opening being a
connected piece of the cluster's cut through the top or bottom face (a through ball: 2 openings,
genus 1; a top-blind and a bottom-blind ball that touch: a tunnel, genus 1).

The mesh is the zero level set of the solid's SDF, max(slab, -min_i ball_i), by marching cubes
(:func:`nstr.geometry.extraction.extract_surface`, ``voxel`` mm, at least 2.5 voxels across a wall),
closed and consistently wound like the meshes it is compared with, then decimated by edge collapses
(libigl), which keep it closed and keep its topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class HolesBlock:
    vertices: np.ndarray  # (V, 3) float64, mm, slab centred at ``origin``
    faces: np.ndarray  # (F, 3) int64, outward
    centers: np.ndarray  # (n, 3) ball centres, mm, relative to the slab's centre
    radii: np.ndarray  # (n,)
    pairs: list[tuple[int, int]]  # touching balls
    expected: dict[str, int] = field(default_factory=dict)  # components, genus, through/blind/void counts


def holes_block(n_holes: int = 120, size: tuple[float, float, float] = (120.0, 90.0, 5.0),
                r_min: float = 1.0, r_max: float = 5.0, wall: float = 1.0, touching: float = 0.4,
                thin: float = 0.3, kinds: tuple[float, float, float] = (0.5, 0.35, 0.15), voxel: float = 0.4,
                faces: int | None = 150_000, seed: int = 0, margin: float | None = None,
                origin: tuple[float, float, float] = (-20.0, 35.0, 12.0), max_tries: int = 200_000) -> HolesBlock:
    """Place the balls (``kinds``: shares of through, blind and void balls, placed in that order,
    largest first), mesh the solid (decimated to ``faces`` when given), and say what its topology must
    be (see the module docstring)."""
    if not 0 < r_min <= r_max or wall <= 0 or voxel <= 0:
        raise ValueError("need 0 < r_min <= r_max, wall > 0 and voxel > 0")
    margin = 2.5 * voxel if margin is None else margin
    half = np.asarray(size, np.float64) / 2
    rng = np.random.default_rng(seed)
    centers: list[np.ndarray] = []
    radii: list[float] = []
    partner: list[int] = []
    pairs: list[tuple[int, int]] = []

    def clear_of_faces(c: np.ndarray, r: float) -> bool:
        """Off the side faces by a wall; across the top / bottom face by a margin or off it by a wall."""
        if np.any(np.abs(c[:2]) + r > half[:2] - wall):
            return False
        return all(not (h - wall < r < h + margin) for h in (half[2] - c[2], half[2] + c[2]))

    def lens_clear(j: int, c: np.ndarray, r: float) -> bool:
        """The pair's lens crosses each face by a margin or stays a wall off it (so its openings on a
        face are clearly one or clearly two)."""
        lo, hi = _lens_extent(centers[j], radii[j], c, r)
        return not (half[2] - wall < hi < half[2] + margin) and not (-half[2] - margin < lo < -half[2] + wall)

    share = np.asarray(kinds, np.float64) / sum(kinds)
    plan = np.repeat([0, 1, 2], np.diff(np.round(np.cumsum(np.r_[0.0, share]) * n_holes).astype(int)))
    tries = 0
    while len(centers) < n_holes and tries < max_tries:
        tries += 1
        mode = rng.random()
        target = None
        c, r = _free_ball(rng, int(plan[len(centers)]), half, r_min, r_max, wall, margin)
        if centers and mode < touching + thin:  # keep the radius and height, move it next to a placed ball
            single = [i for i in range(len(centers)) if partner[i] < 0]
            if mode < touching and single:  # overlapping a lone ball by 1..3 margins
                target = k = int(rng.choice(single))
                d = radii[k] + r - margin * rng.uniform(1.0, 3.0)
            else:  # a thin wall to a placed ball
                k = int(rng.integers(len(centers)))
                d = radii[k] + r + wall * rng.uniform(1.0, 1.5)
            dz = c[2] - centers[k][2]
            if abs(dz) >= d:
                continue
            angle = rng.uniform(0, 2 * np.pi)
            c = np.array([*(centers[k][:2] + np.sqrt(d * d - dz * dz) * np.array([np.cos(angle), np.sin(angle)])),
                          c[2]])
        if not clear_of_faces(c, r):
            continue
        ok = True
        for j, (cj, rj) in enumerate(zip(centers, radii)):
            dist = float(np.linalg.norm(c - cj))
            if j == target:  # overlapping, neither ball inside the other
                ok = abs(r - rj) + margin < dist < r + rj - margin and lens_clear(j, c, r)
            elif dist < r + rj + wall:
                ok = False
            if not ok:
                break
        if not ok:
            continue
        centers.append(c)
        radii.append(r)
        partner.append(-1)
        if target is not None:
            partner[target], partner[-1] = len(centers) - 1, target
            pairs.append((target, len(centers) - 1))
    if len(centers) < n_holes:
        raise ValueError(f"placed only {len(centers)} of {n_holes} holes: use a bigger block or smaller holes")
    cen, rad = np.array(centers), np.array(radii)
    expected = _expected_topology(cen, rad, pairs, half[2], margin)
    vertices, tris = _mesh(cen, rad, half, voxel, faces)
    return HolesBlock(vertices + np.asarray(origin, np.float64), tris, cen, rad, pairs, expected)


def _free_ball(rng: np.random.Generator, kind: int, half: np.ndarray, r_min: float, r_max: float, wall: float,
               margin: float) -> tuple[np.ndarray, float]:
    """A ball of one kind (0 through, 1 blind, 2 void) at a random place in the slab."""
    ht = half[2]

    def log_uniform(lo: float, hi: float) -> float:
        return float(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)))))

    if kind == 0 and r_max > ht + margin:  # through: crosses both faces
        r = float(rng.uniform(ht + margin, r_max))
        z = float(rng.uniform(-1, 1)) * (r - ht - margin)
    elif kind <= 1:  # blind: crosses one face by a margin, stays a wall off the other
        r = log_uniform(max(r_min, 1.2 * margin), min(r_max, 2 * ht - wall - margin))
        low = -(r - margin) / 2  # the centre's depth below that face (negative: above it)
        depth = rng.uniform(low, max(low, min(r - margin, 2 * ht - r - wall)))
        z = float(rng.choice([-1.0, 1.0])) * (ht - depth)
    else:  # void: a wall off both faces
        r = log_uniform(r_min, ht - wall - 0.01)
        z = float(rng.uniform(-1, 1)) * max(ht - wall - r, 0.0)
    xy = rng.uniform(-1, 1, 2) * (half[:2] - r - wall)
    return np.array([xy[0], xy[1], z]), r


def _crosses(c: np.ndarray, r: float, half_t: float, margin: float) -> tuple[bool, bool]:
    """Whether a ball crosses the (top, bottom) face by at least ``margin``."""
    return bool(r >= half_t - c[2] + margin), bool(r >= half_t + c[2] + margin)


def _lens_extent(c0: np.ndarray, r0: float, c1: np.ndarray, r1: float) -> tuple[float, float]:
    """(lowest z, highest z) of the lens where two overlapping balls meet: a ball's pole where it lies
    inside the other ball, else the rim of the circle where the two spheres cross."""
    axis = c1 - c0
    d = float(np.linalg.norm(axis))
    axis = axis / d
    a = (d * d + r0 * r0 - r1 * r1) / (2 * d)  # the circle's centre, from c0 along the axis
    rho = np.sqrt(max(r0 * r0 - a * a, 0.0))
    z = c0[2] + a * axis[2]
    tilt = np.sqrt(max(1.0 - axis[2] ** 2, 0.0))
    lo, hi = z - rho * tilt, z + rho * tilt
    for (ca, ra), (cb, rb) in (((c0, r0), (c1, r1)), ((c1, r1), (c0, r0))):
        for sign in (1.0, -1.0):
            pole = ca + np.array([0.0, 0.0, sign * ra])
            if np.linalg.norm(pole - cb) < rb:
                lo, hi = min(lo, pole[2]), max(hi, pole[2])
    return float(lo), float(hi)


def _expected_topology(c: np.ndarray, r: np.ndarray, pairs: list[tuple[int, int]], half_t: float,
                       margin: float) -> dict[str, int]:
    """Components = 1 + void clusters; genus = sum over clusters of (openings - 1)."""
    crossing = [_crosses(ci, ri, half_t, margin) for ci, ri in zip(c, r)]
    paired = {i for p in pairs for i in p}
    voids = genus = 0
    for i in range(len(c)):
        if i not in paired:
            top, bottom = crossing[i]
            voids += not (top or bottom)
            genus += max(top + bottom - 1, 0)
    for i, j in pairs:
        lo, hi = _lens_extent(c[i], r[i], c[j], r[j])
        openings = 0
        for face, merged in ((0, hi > half_t), (1, lo < -half_t)):  # the lens joins the two cuts of that face
            n = crossing[i][face] + crossing[j][face]
            openings += min(n, 1) if merged else n
        voids += openings == 0
        genus += max(openings - 1, 0)
    kinds = [int(t) + int(b) for t, b in crossing]
    return {"components": 1 + voids, "genus": genus, "holes": len(c), "touching_pairs": len(pairs),
            "through": kinds.count(2), "blind": kinds.count(1), "voids": kinds.count(0)}


def _mesh(c: np.ndarray, r: np.ndarray, half: np.ndarray, voxel: float, faces: int | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of max(slab, -min_i |x - c_i| - r_i) on a grid of ``voxel`` mm, then edge
    collapses (libigl's decimate) down to ``faces`` triangles, which keep a closed manifold closed."""
    import torch

    from nstr.geometry.extraction import extract_surface

    scale = float(half.max()) / 0.9  # mm per unit: the block fills [-0.9, 0.9] along its longest side
    resolution = int(np.ceil(2 * scale / voxel)) + 1
    h = 2.0 / (resolution - 1)
    cu = torch.as_tensor(c / scale, dtype=torch.float32)
    ru = torch.as_tensor(r / scale, dtype=torch.float32)
    hu = torch.as_tensor(half / scale, dtype=torch.float32)

    def solid(x: torch.Tensor) -> torch.Tensor:
        q = x.abs() - hu
        slab = q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)
        balls = (torch.cdist(x, cu) - ru).min(dim=-1).values
        # + 1e-3 voxel: no grid value is exactly 0 where a face lies on a grid plane (zero-area triangles)
        return torch.maximum(slab, -balls) + 1e-3 * h

    ext = extract_surface(solid, resolution, mc="skimage", sparse_from=0, block=4, lipschitz=1.0,
                          chunk=65536, device="cpu")
    v, f = ext.vertices, ext.faces
    if faces is not None and len(f) > faces:
        import igl

        v, f = igl.decimate(np.asfortranarray(v), np.asfortranarray(f.astype(np.int32)), int(faces))[:2]
    return np.ascontiguousarray(v) * scale, np.ascontiguousarray(f, dtype=np.int64)
