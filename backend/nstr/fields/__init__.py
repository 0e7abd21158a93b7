"""All models behind one interface: ``build_field(cfg, in_dim, out_dim) -> Field``."""

from __future__ import annotations

import dataclasses

from nstr.config import FieldConfig, with_model_shape
from nstr.fields.base import Field
from nstr.fields.budget import count_params, fit_to_budget
from nstr.fields.ffn import FourierFeatureField
from nstr.fields.hashgrid import HashGridField
from nstr.fields.nstr import NSTRField, SpectralState
from nstr.fields.nstr_banded import BandedNSTRField
from nstr.fields.siren import SirenField

# Used when a task leaves the band limit / finest grid resolution to the model.
DEFAULT_MAX_FREQ = 32.0
DEFAULT_GRID_MAX_RES = 128


def _construct(cfg: FieldConfig, in_dim: int, out_dim: int) -> Field:
    max_freq = cfg.max_freq if cfg.max_freq is not None else DEFAULT_MAX_FREQ
    max_res = cfg.grid_max_res if cfg.grid_max_res is not None else DEFAULT_GRID_MAX_RES
    if cfg.model == "nstr" and cfg.variant == "banded":
        return BandedNSTRField(cfg, in_dim, out_dim, max_freq=max_freq)
    if cfg.model == "nstr":
        return NSTRField(cfg, in_dim, out_dim, max_freq=max_freq, grid_max_res=max_res)
    if cfg.model == "siren":
        return SirenField(cfg, in_dim, out_dim)
    if cfg.model == "ffn":
        return FourierFeatureField(cfg, in_dim, out_dim)
    if cfg.model == "hashgrid":
        return HashGridField(cfg, in_dim, out_dim, grid_max_res=max_res)
    raise ValueError(f"unknown model {cfg.model!r}")


def build_field(cfg: FieldConfig, in_dim: int, out_dim: int) -> Field:
    """Build the configured model, resized to ``cfg.params`` when a budget is set.

    The resolved config (after budget fitting) is kept as ``field.config``.
    """
    cfg = with_model_shape(cfg)
    if cfg.params is not None:
        cfg = fit_to_budget(cfg, cfg.params, lambda c: _construct(c, in_dim, out_dim))
    field = _construct(cfg, in_dim, out_dim)
    field.config = dataclasses.replace(cfg)
    return field


__all__ = ["Field", "NSTRField", "BandedNSTRField", "SpectralState", "SirenField", "FourierFeatureField", "HashGridField",
           "build_field", "count_params"]
