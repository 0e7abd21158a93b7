"""The legend's words, numbers and pixels (bpy-free): known answers for ticks, units and colours."""

from __future__ import annotations

import numpy as np
import pytest

from nstr_blender.core.legend import build_legend, draw_into, format_length, nice_ticks
from nstr_blender.core.meshdata import srgb_to_linear
from nstr_blender.core.settings import BackendSettings, is_loopback
from nstr_blender.core.errors import AddonError


def test_nice_ticks_and_lengths():
    assert nice_ticks(0.5, 8.0) == [2.0, 4.0, 6.0, 8.0]
    assert nice_ticks(1.32, 1.41) == pytest.approx([1.35, 1.40])
    assert format_length(0.04) == "4 cm" and format_length(1.5) == "1.5 m" and format_length(0.0003) == "0.3 mm"


def ramp(n=100):
    values = np.linspace(2.0, 10.0, n).astype(np.float32)
    t = (values - 2.0) / 8.0
    srgb = np.stack([t, 1 - t, np.full(n, 0.5), np.ones(n)], axis=1).astype(np.float32)   # red up, green down
    return values, srgb


def test_frequencies_are_cycles_per_metre_and_wavelengths_follow_the_scene_scale():
    values, srgb = ramp()
    meta = {"ranges": {"local_frequency": [2.0, 10.0]}}
    leg = build_legend(meta, "local_frequency", values, srgb_to_linear(srgb), unit_scale=1.0)
    assert leg.unit == "cycles per metre (wavelength 50 cm to 10 cm)"
    assert [label for _, label in leg.ticks] == ["2", "4", "6", "8", "10"]
    assert leg.ticks[0][0] == pytest.approx(0.0) and leg.ticks[-1][0] == pytest.approx(1.0)
    assert leg.stops[0][1][:3] == pytest.approx((0.0, 1.0, 0.5), abs=1e-3)      # back in display sRGB
    cm = build_legend(meta, "local_frequency", values, srgb_to_linear(srgb), unit_scale=0.01)   # 1 unit = 1 cm
    assert cm.unit == "cycles per metre (wavelength 5 mm to 1 mm)"
    assert [label for _, label in cm.ticks] == ["200", "400", "600", "800", "1e+03"]
    assert build_legend({"descriptions": {"bandwidth": "from the backend"}}, "bandwidth").words == "From the backend."   # as a sentence
    assert build_legend({}, "albedo").stops == []                                  # no bar for a colour


def test_drift_gets_a_brightness_bar_in_per_metre_units():
    leg = build_legend({"ranges": {"drift": [0.0, 8.0]}}, "drift", unit_scale=0.5)   # 1 unit = 50 cm
    assert leg.unit == "detail gets finer by 0 to 16 octaves per metre"    # octaves per unit / 0.5 m
    assert [label for _, label in leg.ticks][-1] == "15" and leg.ticks[0] == (0.0, "0")
    assert len(leg.stops) == 16 and leg.stops[0][1] == (0.0, 0.0, 0.0, 1.0) and leg.stops[-1][1] == (1.0, 1.0, 1.0, 1.0)


def test_legend_is_painted_into_a_picture():
    values, srgb = ramp()
    leg = build_legend({}, "local_frequency", values, srgb_to_linear(srgb))
    img = np.full((240, 400, 4), 0.5, np.float32)
    draw_into(img, leg)
    rows = np.where(np.abs(img[:, 12, :3] - [0.0, 1.0, 0.5]).max(axis=1) < 0.02)[0]   # the bar's left end
    assert len(rows) >= 10
    bar = img[rows[0], 12:12 + 220, :3]
    assert bar[0, 0] < 0.05 and bar[-1, 0] > 0.95                       # red rises left to right
    assert np.all(img[:100, :, :3] == 0.5)                             # the top of the picture is untouched


def test_online_access_blocks_only_non_loopback_urls():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("192.0.2.7") and not is_loopback("gpu.example.org")
    BackendSettings(mode="url", url="http://127.0.0.1:1").check(online_access=False)
    with pytest.raises(AddonError, match="Allow Online Access"):
        BackendSettings(mode="url", url="http://gpu.example.org:8765").check(online_access=False)
    BackendSettings(mode="url", url="http://gpu.example.org:8765").check(online_access=True)
