"""The add-on's scene-wide detail colours (nstr_blender/core/detail_scale.py) on detail maps the backend
measured on surfaces with a known answer: the same ripple on two objects whose own band ranges differ
gets the same colour; a +-20 % wobble of wavelength stays a small change of hue, not the whole bar;
no detail, coarser and creases are greys no colour of the scale can be; faint detail fades to grey."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nstr.spectral.detail import detail_arrays
from nstr_blender.core.detail_scale import (FINE_TO_COARSE, GROUP_NAMES, STATE_CODES, ResultDetail, detail_colors,
                                            group_weights, result_detail, scene_scale, weight_levels)
from nstr_blender.core.legend import build_detail_legend, format_length


def grid(n: int, size: float, height) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    s = np.linspace(-size, size, n)
    x, y = np.meshgrid(s, s, indexing="ij")
    v = np.stack([x, y, height(x, y)], -1).reshape(-1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    return v, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def ripple_result(size: float, n: int, lam: float = 0.15, amp: float = 0.012):  # noqa: ANN201
    """The backend's detail maps of a plane ripple of wavelength ``lam`` on a (2 size)^2 sheet."""
    v, f = grid(n, size, lambda x, y: amp * np.sin(2 * math.pi * x / lam))
    arrays, meta = detail_arrays(v, f, voxel=2 * size / (n - 1))
    centre = (np.abs(v[:, 0]) < 0.4 * size) & (np.abs(v[:, 1]) < 0.4 * size)
    return result_detail(arrays, meta), meta, centre


@pytest.fixture(scope="module")
def two_objects():  # noqa: ANN201
    small = ripple_result(1.0, 81)         # bands from 2 voxels (0.05) to 2/3 of its size
    large = ripple_result(2.0, 121)        # the same ripple on a sheet twice as large: other bands
    return small, large


def test_the_same_ripple_gets_the_same_colour_on_two_objects(two_objects) -> None:  # noqa: ANN001
    (a, meta_a, ca), (b, meta_b, cb) = two_objects
    assert meta_a["bands"][0]["shortest"] != pytest.approx(meta_b["bands"][0]["shortest"], rel=0.05)  # own ranges
    scale = scene_scale([a, b])
    col_a = np.median(detail_colors(a, scale)[ca, :3], axis=0)
    col_b = np.median(detail_colors(b, scale)[cb, :3], axis=0)
    assert np.abs(col_a - col_b).max() < 0.03                 # one physical scale: one colour
    assert np.ptp(col_a) > 0.3                                # and a colour, not a grey
    # each stretched to its own wavelengths (the opt-in): the same ripple reads the middle of both bars
    assert scene_scale([a, b], stretch=a).stretched


def test_a_twenty_percent_wobble_is_a_small_change_of_hue() -> None:
    n = 2000
    wl = 0.1 * (1 + 0.2 * np.sin(np.linspace(0, 20, n)))
    d = ResultDetail(wl, np.full(n, 0.01), np.zeros(n, np.int64), (0.01, 1.6), 0.0005)
    scale = scene_scale([d])
    t = scale.position(d.wavelength)
    # log2(1.2 / 0.8) = 0.58 octave of the 7.3 on the bar: under a tenth of it, not the whole bar
    assert np.ptp(t) == pytest.approx(math.log(1.2 / 0.8) / math.log(160), rel=0.02) and np.ptp(t) < 0.1


def test_no_detail_coarser_and_creases_are_greys_outside_the_scale() -> None:
    n = 4
    d = ResultDetail(np.array([0.05, np.nan, np.nan, np.nan]), np.full(n, 0.01),
                     np.array([STATE_CODES[k] for k in ("detail", "none", "coarser", "crease")]), (0.01, 1.0), 0.001)
    c = detail_colors(d, scene_scale([d]))[:, :3]
    assert np.ptp(c[0]) > 0.3                                   # detail: a colour
    assert np.allclose(np.ptp(c[1:], axis=1), 0)                # the others: greys ...
    assert len({round(float(x), 3) for x in c[1:, 0]}) == 3     # ... three different ones
    assert np.ptp(FINE_TO_COARSE, axis=1).min() > 0.4           # and no colour of the bar is near a grey


def test_faint_detail_fades_to_grey_and_tall_detail_is_full_colour() -> None:
    amp = np.array([0.0011, 0.003, 0.01, 0.1])
    d = ResultDetail(np.full(4, 0.05), amp, np.zeros(4, np.int64), (0.01, 1.0), 0.001)
    c = detail_colors(d, scene_scale([d]))[:, :3]
    sat = np.ptp(c, axis=1)
    assert sat[0] < 0.25 * sat[-1] and np.all(np.diff(sat) >= 0)


def test_vertex_group_weights_and_the_legend(two_objects) -> None:  # noqa: ANN001
    (a, _meta, centre), _ = two_objects
    scale = scene_scale([a])
    crease = np.zeros(len(a.wavelength))
    crease[:10] = 90.0
    w = group_weights(a, scale, crease, lost=np.full(len(crease), 0.01), lost_flag=0.005)
    fine = w[GROUP_NAMES["fine"]]
    # the ripple (0.15) on the bands' log scale: a little over half-way from coarse to fine
    expected = 1 - math.log(0.15 / scale.shortest) / math.log(scale.longest / scale.shortest)
    assert np.median(fine[centre]) == pytest.approx(expected, abs=0.08)
    assert (fine[a.state != STATE_CODES["detail"]] == 0).all()
    assert (w[GROUP_NAMES["crease"]][:10] == 1).all() and (w[GROUP_NAMES["lost"]] == 1).all()
    levels = weight_levels(fine)
    back = np.zeros_like(fine)
    for weight, idx in levels:
        back[idx] = weight
    assert np.abs(back - fine).max() <= 0.5 / 64 + 1e-6 and len(levels) <= 64
    leg = build_detail_legend(scale, unit_scale=0.01)           # 1 Blender unit = 1 cm
    assert [label for label, _ in leg.swatches] == ["no detail", "coarser", "crease"]
    assert all(label.endswith(("mm", "cm")) for _, label in leg.ticks) and len(leg.ticks) >= 2
    assert leg.unit.startswith(f"wavelength {format_length(scale.shortest * 0.01)} (red, fine)")
    assert [p for p, _ in leg.ticks] == sorted(p for p, _ in leg.ticks)


def test_strokes_run_along_the_crests_and_arrows_point_to_finer_detail(two_objects) -> None:  # noqa: ANN001
    from nstr.geometry.attributes import spectral_attributes
    from nstr.geometry.normalize import fit_unit_box
    from nstr.validation.surfaces import SurfaceCase
    from nstr_blender.core.detail_scale import direction_strokes, drift_arrows

    # a ripple whose waves run along x: its crests run along y, and so must the strokes
    v, f = grid(81, 1.0, lambda x, y: 0.012 * np.sin(2 * math.pi * x / 0.15))
    arrays, meta = detail_arrays(v, f, voxel=2 / 80)
    d = result_detail(arrays, meta)
    normals = np.tile([0.0, 0.0, 1.0], (len(v), 1))
    seg, alpha = direction_strokes(v, normals, arrays["detail_direction"], arrays["detail_anisotropy"],
                                   d.wavelength, d.state)
    along = seg[:, 1] - seg[:, 0]
    along /= np.linalg.norm(along, axis=1, keepdims=True)
    assert len(seg) > 20 and np.median(np.abs(along[:, 1])) > 0.95 and np.median(alpha) > 0.7
    assert len(seg) <= len(v) / 4       # about one per wavelength cell, not one per vertex
    # a chirp 3 -> 8 cycles per unit along +x: the arrows point to +x
    case = SurfaceCase("slab", "slab", 3.0, 8.0, 0.02)
    cv, cf = case.mesh(64)
    tr = fit_unit_box(cv, 0.1)
    a, m = spectral_attributes(None, tr.to_unit(cv), cf, tr.scale, voxel=2.0 / 63)
    cd = result_detail(a, m["detail"])
    arrows = drift_arrows(cv, np.tile([0.0, 0.0, 1.0], (len(cv), 1)), a["drift"], cd.wavelength, cd.state)
    shaft = arrows[:, 0, 1] - arrows[:, 0, 0]
    assert len(arrows) >= 5 and np.mean(shaft[:, 0] > 0) > 0.8
