"""The banded NSTR's carriers laid out as a constant-Q frame: octaves x directions.

Carrier radii (cycles per unit) fall by ``rho = 2^(1/per_octave)`` from the top, whose band ends at the
band limit; in 2-D each radius carries ``directions`` carriers at angles spread evenly over a half turn
(a complex envelope covers the opposite half), in 3-D as many directions spread evenly over a
hemisphere (:func:`hemisphere_directions`). Each carrier owns a CELL of the frequency space
(``r / sqrt(rho) .. r sqrt(rho)`` in radius, ``+- pi / (2 directions)`` in angle; in 3-D a cone of the
hemisphere's ``1 / directions`` share of solid angle): it may move inside it (learnable) or, in 1-D and
2-D, start at the signal's strongest FFT peak inside it (:func:`peak_offsets`).

Its envelope's bandwidth is ``q r`` with ``q = overlap (rho - 1) / (rho + 1)``: at ``overlap = 1`` the
bands ``[r (1 - q), r (1 + q)]`` of neighbouring radii just touch, so together they tile the spectrum
from the base field's cut-off up to the band limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nstr.fields.cosine_basis import terms_for_bandwidth


@dataclass(frozen=True)
class CarrierFrame:
    """Where the carriers sit and how fine each envelope may be. All frequencies in cycles per unit."""

    radii: tuple[float, ...]  # per carrier, the cell's centre radius
    angles: tuple[float, ...]  # per carrier (radians; 0 in 1-D)
    terms: tuple[int, ...]  # per carrier, envelope terms per axis (band limit, then the budget)
    cap_terms: tuple[int, ...]  # per carrier, the band limit's terms per axis
    q: float  # envelope bandwidth / carrier radius at the band limit
    rho: float  # radius ratio of neighbouring cells
    base_terms: int  # the coarse base field's terms per axis
    dim: int
    directions: tuple[tuple[float, ...], ...] = ()  # per carrier, the cell's centre direction (unit, dim entries)

    @property
    def count(self) -> int:
        return len(self.radii)

    @property
    def direction_count(self) -> int:
        return len(set(self.directions)) if self.directions else len(set(self.angles))

    @property
    def half_angle(self) -> float:
        """Half the angular width of a cell: 2-D, half its share of a half turn; 3-D, 1.2 times the
        half-angle of the cone that holds its share of the hemisphere's solid angle (``2 pi (1 - cos a) =
        2 pi / D``): evenly spread cells are roughly hexagons, whose corners lie 1.1 times farther out
        than that cone's edge, so the cells overlap a little and no direction is out of reach."""
        n_dirs = self.direction_count
        if self.dim == 2:
            return math.pi / (2 * n_dirs)
        return 1.2 * math.acos(1.0 - 1.0 / n_dirs) if self.dim == 3 else 0.0


def hemisphere_directions(count: int, iterations: int = 200) -> np.ndarray:
    """``count`` unit 3-vectors spread evenly over directions up to sign (a complex envelope covers the
    opposite one): a Fibonacci start on the upper hemisphere, relaxed by mutual repulsion of each point
    and its antipode. Deterministic. (count, 3), each with z >= 0."""
    if count == 1:
        return np.array([[0.0, 0.0, 1.0]])
    i = np.arange(count) + 0.5
    z = 1.0 - i / count                              # equal-area heights on the upper hemisphere
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    r = np.sqrt(1.0 - z**2)
    p = np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)
    for _ in range(iterations):
        both = np.concatenate([p, -p])
        diff = p[:, None, :] - both[None, :, :]
        dist2 = (diff**2).sum(-1)
        dist2[np.arange(count), np.arange(count)] = np.inf
        force = (diff / dist2[..., None] ** 1.5).sum(1)
        force -= (force * p).sum(1, keepdims=True) * p   # along the sphere
        p = p + 0.05 / count * force
        p /= np.linalg.norm(p, axis=1, keepdims=True)
    p = np.where(p[:, 2:3] < 0, -p, p)
    return p


def build_frame(dim: int, max_freq: float, min_freq: float, per_octave: int, directions: int, overlap: float,
                resolution: int) -> CarrierFrame:
    """The frame for a ``dim``-D signal with band limit ``max_freq``.

    Radii go down from the top until a band's lower edge would fall below ``min_freq``; the base field
    covers everything below the lowest band. ``resolution`` caps the finest carrier's envelope terms per
    axis; the others scale with their radius (constant Q), each never above its own band limit.
    """
    rho = 2.0 ** (1.0 / per_octave)
    q = overlap * (rho - 1.0) / (rho + 1.0)
    top = max_freq / (1.0 + q)
    radii_1d: list[float] = []
    r = top
    while r * (1.0 - q) >= min_freq or not radii_1d:
        radii_1d.append(r)
        r /= rho
        if len(radii_1d) > 64:
            break
    n_dirs = 1 if dim == 1 else directions
    angles_1d = [0.0] if dim != 2 else [math.pi * j / n_dirs for j in range(n_dirs)]
    if dim == 1:
        dirs_1d: list[tuple[float, ...]] = [(1.0,)]
    elif dim == 2:
        dirs_1d = [(math.cos(a), math.sin(a)) for a in angles_1d]
    else:
        dirs_1d = [tuple(float(c) for c in v) for v in hemisphere_directions(n_dirs)]
        angles_1d = [0.0] * n_dirs
    caps_1d = [terms_for_bandwidth(q * rr) for rr in radii_1d]
    scaled = [max(1, min(cap, int(round(resolution * rr / top)))) for rr, cap in zip(radii_1d, caps_1d)]
    radii, angles, terms, caps, dirs = [], [], [], [], []
    for rr, cap, n in zip(radii_1d, caps_1d, scaled):
        for a, v in zip(angles_1d, dirs_1d):
            radii.append(rr)
            angles.append(a)
            dirs.append(v)
            terms.append(n)
            caps.append(cap)
    base = terms_for_bandwidth(radii_1d[-1] * (1.0 - q))
    return CarrierFrame(tuple(radii), tuple(angles), tuple(terms), tuple(caps), q, rho, max(base, 1), dim, tuple(dirs))


def grid_spectrum(values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The power spectrum of a signal on the tasks' regular grid ``(*shape, C)`` (channels summed) and, per
    field axis (x first), the frequency of every bin in cycles per unit (the longest axis spans 2 units)."""
    shape = values.shape[:-1]
    longest = max(shape)
    centred = values - values.reshape(-1, values.shape[-1]).mean(0)
    power = (np.abs(np.fft.fftn(centred, axes=tuple(range(len(shape))))) ** 2).sum(-1)
    freqs = [np.fft.fftfreq(n) * longest / 2.0 for n in shape]
    return power, freqs[::-1]  # array axes are (row, col) = (y, x); field axes are (x, y)


def _cell_bins(frame: CarrierFrame, values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per carrier, the signal's FFT bins inside its cell: (frequency points (B, d) in cycles per unit, folded
    onto the carriers' half-plane; power (B,); log-radius offset; angle offset) from the cell centre."""
    power, freqs = grid_spectrum(values)
    if frame.dim == 1:
        pts = np.stack([freqs[0]], -1)
        pw = power
    else:
        fy, fx = np.meshgrid(freqs[1], freqs[0], indexing="ij")  # power is (rows=y, cols=x)
        pts = np.stack([fx.ravel(), fy.ravel()], -1)
        pw = power.ravel()
    if frame.dim == 1:
        keep = pts[:, 0] > 0
        pts, pw = pts[keep], pw[keep]
    else:  # a complex envelope of a real signal: fold every bin onto the half-plane angle in [0, pi)
        flip = np.mod(np.arctan2(pts[:, 1], pts[:, 0]), 2 * math.pi) >= math.pi
        pts = np.where(flip[:, None], -pts, pts)
    radius = np.linalg.norm(pts, axis=1)
    angle = np.arctan2(pts[:, 1], pts[:, 0]) if frame.dim > 1 else np.zeros(len(pts))
    half_log = 0.5 * math.log(frame.rho)
    out = []
    for r0, a0 in zip(frame.radii, frame.angles):
        with np.errstate(divide="ignore"):
            lr = np.log(np.maximum(radius, 1e-12) / r0)
        inside = np.abs(lr) < half_log
        da = (angle - a0 + math.pi / 2) % math.pi - math.pi / 2
        if frame.dim > 1:
            inside &= np.abs(da) < frame.half_angle
        out.append((pts[inside], pw[inside], lr[inside], da[inside]))
    return out


def peak_offsets(frame: CarrierFrame, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per carrier, the (log-radius, angle) offset from its cell centre to the strongest FFT bin of the
    signal inside its cell; (0, 0) where the cell holds no bin."""
    d_log = np.zeros(frame.count)
    d_ang = np.zeros(frame.count)
    for i, (_, pw, lr, da) in enumerate(_cell_bins(frame, values)):
        if len(pw):
            j = int(np.argmax(pw))
            d_log[i], d_ang[i] = lr[j], (da[j] if frame.dim > 1 else 0.0)
    return d_log, d_ang


def _centre_in_cell(frame: CarrierFrame, i: int, point: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The point nearest ``point`` (cycles per unit) inside carrier i's cell (a margin from its edges), and
    its (log-radius, angle) offset from the cell centre."""
    half_log = 0.99 * 0.5 * math.log(frame.rho)
    radius = max(float(np.linalg.norm(point)), 1e-12)
    d_log = float(np.clip(math.log(radius / frame.radii[i]), -half_log, half_log))
    d_ang = 0.0
    if frame.dim > 1:
        half = 0.99 * frame.half_angle
        d_ang = float(np.clip((math.atan2(point[1], point[0]) - frame.angles[i] + math.pi / 2) % math.pi - math.pi / 2,
                              -half, half))
    r = frame.radii[i] * math.exp(d_log)
    a = frame.angles[i] + d_ang
    centre = np.array([r]) if frame.dim == 1 else np.array([r * math.cos(a), r * math.sin(a)])
    return centre, d_log, d_ang


def allocate_terms(frame: CarrierFrame, values: np.ndarray, budget: int) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """Envelope terms per axis for each carrier, spending ``budget`` envelope parameters (``2 n^d`` per
    carrier: a cos and a sin weight per term) where the signal's power is, and where in its cell each
    carrier then sits (its (log-radius, angle) offsets from the cell centre, as :func:`peak_offsets`).

    Greedy over the signal's FFT bins from the strongest down: a bin joins its cell's kept set if the
    envelope that reaches every kept bin from the middle of their span (``n`` terms hold offsets up to
    ``(n - 1) / 4`` cycles per unit, per axis) still fits the budget; a bin that does not fit is skipped,
    weaker ones may still fit. The carrier moves to that middle (so a lone tone gets its carrier on it and
    one term, and a band occupied on one side of its cell is not paid for on both). Every carrier keeps
    at least one term and never exceeds its band limit, so the bands stay identifiable; what no band is
    given goes unrepresented. WHY: the uniform sizing shrinks every envelope by one factor, so the bands
    stop tiling the spectrum exactly where the power is.
    """
    terms = [1] * frame.count
    spent = 2 * frame.count
    bins = _cell_bins(frame, values)
    lo = [None] * frame.count  # per carrier the kept bins' box (per axis min, max)
    hi = [None] * frame.count
    rows = [np.stack([pw, np.full(len(pw), i), np.arange(len(pw))], 1) for i, (_, pw, _, _) in enumerate(bins) if len(pw)]
    if rows:
        table = np.concatenate(rows)
        table = table[table[:, 0] > 1e-12 * table[:, 0].max()]  # bins that hold nothing get no terms
        for _, i, j in table[np.argsort(-table[:, 0], kind="stable")]:
            i, j = int(i), int(j)
            f = bins[i][0][j]
            new_lo = f if lo[i] is None else np.minimum(lo[i], f)
            new_hi = f if hi[i] is None else np.maximum(hi[i], f)
            centre = _centre_in_cell(frame, i, 0.5 * (new_lo + new_hi))[0]
            offset = max(np.abs(new_lo - centre).max(), np.abs(new_hi - centre).max())
            need = min(int(math.ceil(4.0 * offset - 1e-9)) + 1, frame.cap_terms[i])
            cost = 2 * (max(need, terms[i]) ** frame.dim - terms[i] ** frame.dim)
            if spent + cost <= budget:
                lo[i], hi[i] = new_lo, new_hi
                spent += cost
                terms[i] = max(need, terms[i])
    d_log, d_ang = np.zeros(frame.count), np.zeros(frame.count)
    for i in range(frame.count):
        if lo[i] is not None:
            _, d_log[i], d_ang[i] = _centre_in_cell(frame, i, 0.5 * (lo[i] + hi[i]))
    return tuple(terms), d_log, d_ang
