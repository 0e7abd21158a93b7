"""Size any model to a parameter budget, so comparisons are at matched size.

Models are counted by building them on PyTorch's ``meta`` device (no memory,
no compute), so the count is exactly what training will see. The preset's shape
is kept as far as possible: all widths (and NSTR's K, and the Fourier-feature
count) are scaled by one factor, the factor nearest 1 that can reach the budget,
then fine integer knobs (grid entries per level, then the width) close the gap.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Callable

import torch

from nstr.config import FieldConfig
from nstr.errors import ConfigError

TOLERANCE = 0.05

# Size knobs scaled together by the coarse search (per model).
_SCALED: dict[str, tuple[str, ...]] = {
    "nstr": ("width", "transport_width", "spectrum_width", "n_freqs"),
    "nstr:banded": ("band_resolution",),
    "hashgrid": ("width",),
    "siren": ("width",),
    "ffn": ("width", "ffn_features"),
}
_SCALES = [math.exp(i / 16.0) for i in range(-64, 65)]  # 1/55 .. 55, ~6% apart


def _family(cfg: FieldConfig) -> str:
    """The key of :data:`_SCALED`: the model, or for NSTR's banded variant its own knobs."""
    return "nstr:banded" if cfg.model == "nstr" and cfg.variant == "banded" else cfg.model


def _fine_knobs(cfg: FieldConfig) -> list[tuple[str, int, int]]:
    """Integer knobs searched after scaling, with bounds: grid entries per level, then the width
    (banded NSTR: its envelopes' resolution alone)."""
    if _family(cfg) == "nstr:banded":
        return [("band_resolution", 1, 1 << 20)]
    knobs = [("width", 2, 8192)]
    if cfg.model == "hashgrid" or (cfg.model == "nstr" and cfg.spectrum == "grid"):
        knobs.insert(0, ("grid_table_size", 16, 2**24))
    return knobs


def count_params(cfg: FieldConfig, build: Callable[[FieldConfig], torch.nn.Module]) -> int:
    with torch.device("meta"):
        model = build(cfg)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _scaled(cfg: FieldConfig, scale: float) -> FieldConfig:
    return dataclasses.replace(cfg, **{k: max(4, int(round(getattr(cfg, k) * scale))) for k in _SCALED[_family(cfg)]})


def _search(cfg: FieldConfig, knob: tuple[str, int, int], budget: int,
            count: Callable[[FieldConfig], int]) -> tuple[FieldConfig, int]:
    """Binary search on a knob the count grows with; returns the closest config and its count."""
    name, lo, hi = knob
    best, best_n = cfg, count(cfg)
    while lo <= hi:
        mid = (lo + hi) // 2
        cand = dataclasses.replace(cfg, **{name: mid})
        n = count(cand)
        if abs(n - budget) < abs(best_n - budget):
            best, best_n = cand, n
        if n < budget:
            lo = mid + 1
        elif n > budget:
            hi = mid - 1
        else:
            break
    return best, best_n


def fit_to_budget(cfg: FieldConfig, budget: int, build: Callable[[FieldConfig], torch.nn.Module]) -> FieldConfig:
    """A copy of ``cfg`` resized to ``budget`` trainable parameters (within 5%), or ConfigError."""
    cache: dict[tuple, int] = {}

    def count(c: FieldConfig) -> int:
        key = tuple(sorted(dataclasses.asdict(c).items()))
        if key not in cache:
            cache[key] = count_params(c, build)
        return cache[key]

    knobs = _fine_knobs(cfg)
    first = knobs[0]

    def fits_from_below(i: int) -> bool:  # the smallest fine setting at scale i is within budget
        return count(dataclasses.replace(_scaled(cfg, _SCALES[i]), **{first[0]: first[1]})) <= budget

    if len(knobs) == 1:
        # MLP models: the scale whose shape lands nearest the budget; the width then closes the gap.
        cross = bisect.bisect_left(range(len(_SCALES)), budget, key=lambda i: count(_scaled(cfg, _SCALES[i])))
        order = [i for i in (cross, cross - 1, cross + 1, cross - 2) if 0 <= i < len(_SCALES)]
    else:
        # Grid models: the scale nearest 1 (the preset's shape) whose smallest grid is within budget;
        # the grid's entries per level then absorb the rest.
        hi = bisect.bisect_left(range(len(_SCALES)), True, key=lambda i: not fits_from_below(i)) - 1
        one = _SCALES.index(1.0)
        order = sorted(range(max(hi, 0) + 1), key=lambda i: (abs(i - one), i))[:24]
    best, best_n = cfg, count(cfg)
    for i in order:
        cand = _scaled(cfg, _SCALES[i])
        for knob in knobs:
            cand, n = _search(cand, knob, budget, count)
            if abs(n - budget) < abs(best_n - budget):
                best, best_n = cand, n
            if abs(n - budget) <= TOLERANCE * budget:
                return dataclasses.replace(cand, params=budget)
    raise ConfigError(f"cannot size model '{cfg.model}' to {budget} parameters (closest: {best_n})",
                      "Choose a larger --params, or change the model's shape with --set")
