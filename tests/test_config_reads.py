"""Configs that never silently ignore (issue 30, item 3).

Known answer: every field option the config ACCEPTS for a model changes the field that model builds
(its parameters' shapes, its output, which parameters learn, its learning rates, or how it starts
from a signal); every option it does NOT accept is refused at config time with one line that names the
model and the key. So a new option, or a model that stops reading one, cannot slip through: the
first would be refused or caught unread here, the second caught here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nstr.config import FieldConfig, model_parts
from nstr.errors import ConfigError
from nstr.fields import build_field
from nstr.tasks.image import image_config
from nstr.tasks.sdf import sdf_config

# tiny forms of every model and NSTR variant (2-D in, 1 out)
SMALL = dict(n_freqs=6, grid_levels=3, grid_base_res=4, grid_max_res=16, grid_table_size=2**8, width=8, depth=1,
             spectrum_width=8, spectrum_depth=1, transport_width=4, ffn_features=8, band_resolution=8,
             max_freq=6.0)
FORMS = {
    "nstr grid": FieldConfig(model="nstr", **SMALL),
    "nstr mlp": FieldConfig(model="nstr", spectrum="mlp", **SMALL),
    "nstr banded": FieldConfig(model="nstr", variant="banded", band_transport="joint", band_residual_width=4, **SMALL),
    "nstr banded, linear": FieldConfig(model="nstr", variant="banded", **SMALL),
    "hashgrid": FieldConfig(model="hashgrid", **SMALL),
    "siren": FieldConfig(model="siren", **SMALL),
    "ffn": FieldConfig(model="ffn", **SMALL),
}
# one other value per option (None options get a value; choices another choice)
OTHER = {"band_resolution": 4, "max_freq": 3.0, "grid_max_res": 8, "width": 12, "depth": 2, "min_freq": 1.0,
         "band_carriers": "peaks", "band_allocation": "spectrum", "band_transport": "detached"}


def _other(cfg: FieldConfig, f: dataclasses.Field) -> object:
    if f.name == "params":                    # a budget the model can be sized to, near its own size
        own = sum(p.numel() for p in build_field(cfg, 2, 1).parameters() if p.requires_grad)
        for share in (0.8, 1.25, 0.6, 1.6, 0.4, 2.5):
            try:
                build_field(dataclasses.replace(cfg, params=max(100, int(share * own))), 2, 1)
                return max(100, int(share * own))
            except ConfigError as e:    # the sizes a model can take are discrete: its message names the closest
                closest = int(str(e).split("closest: ")[1].split(")")[0])
                if closest != own:
                    return closest
        raise AssertionError(f"no budget near {own} parameters fits {cfg.model}")
    if f.name in OTHER:
        return OTHER[f.name]
    value = getattr(cfg, f.name)
    if isinstance(value, bool):
        return not value
    if "choices" in f.metadata:
        return next(c for c in f.metadata["choices"] if c != value)
    if isinstance(value, int):
        return value + 1 if f.name.endswith("_depth") or not value else value * 2
    return value * 1.5 if value else 0.05


def _fingerprint(cfg: FieldConfig) -> dict:
    """Everything an option could change about a built field."""
    torch.manual_seed(0)
    field = build_field(cfg, 2, 1)
    if hasattr(field, "init_from_signal"):   # the banded form starts from the signal's spectrum
        u = np.linspace(-1, 1, 24)
        img = np.sin(2 * np.pi * 3 * u)[:, None] * np.cos(2 * np.pi * 5 * u)[None, :]
        field.init_from_signal(img[..., None].astype(np.float32))
    x = torch.rand(64, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    init = [p.detach().numpy().round(6).tobytes() for p in field.parameters()]
    with torch.no_grad():
        y0 = field(x)                        # as initialised (the frequencies' range, the carriers' places)
        for p in field.parameters():         # same values wherever shapes agree: the output shows the wiring
            gen = torch.Generator().manual_seed(p.numel())
            p.copy_(torch.rand(p.shape, generator=gen) * 0.5 - 0.25)
    with torch.no_grad():
        y = field(x)
    pde, grads = None, None
    if cfg.model == "nstr":                   # the transport term: its value, and what it trains
        _, terms = field.training_terms(x, 1.0)
        if "pde" in terms:
            pde = float(terms["pde"].detach())
            params = [p for p in field.parameters() if p.requires_grad]
            grads = [None if g is None else g.numpy().round(6).tobytes()
                     for g in torch.autograd.grad(terms["pde"], params, allow_unused=True)]
    return {"shapes": [tuple(p.shape) for p in field.parameters()],
            "learns": [p.requires_grad for p in field.parameters()],
            "lrs": [g["lr"] for g in field.param_groups(1.0)],
            "init": init, "y0": y0.numpy().round(6).tobytes(), "y": y.numpy().round(6).tobytes(),
            "pde": pde, "pde_grads": grads, "3d": _fingerprint_3d(cfg)}


def _fingerprint_3d(cfg: FieldConfig) -> bytes | None:
    """Banded NSTR in 3-D (SDF jobs), where ``band_lattice`` acts (2-D fields sum their envelopes exactly):
    the output with the same deterministic parameter values. None for other models and for the settings
    3-D refuses (``band_carriers=peaks``, ``band_allocation=spectrum``)."""
    if not (cfg.model == "nstr" and cfg.variant == "banded") or cfg.band_carriers != "centre" \
            or cfg.band_allocation != "uniform":
        return None
    torch.manual_seed(0)
    field = build_field(dataclasses.replace(cfg, max_freq=3.0, params=None), 3, 1)
    x = torch.rand(64, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        for p in field.parameters():
            gen = torch.Generator().manual_seed(p.numel())
            p.copy_(torch.rand(p.shape, generator=gen) * 0.5 - 0.25)
        return field(x).numpy().round(6).tobytes()


@pytest.mark.slow
@pytest.mark.parametrize("form", list(FORMS))
def test_every_option_a_model_accepts_changes_what_it_builds(form: str) -> None:
    base = FORMS[form]
    parts = model_parts(base)
    reference = _fingerprint(base)
    unread, read = [], []
    for f in dataclasses.fields(FieldConfig):
        tags = set(f.metadata["reads"])
        if f.name in ("model", "variant") or not parts & tags:
            continue
        changed = dataclasses.replace(base, **{f.name: _other(base, f)})
        (read if _fingerprint(changed) != reference else unread).append(f.name)
    assert not unread, f"{form}: accepted but changes nothing: {unread}"
    assert len(read) >= 4


def test_an_option_the_model_does_not_read_is_refused_in_one_line_naming_model_and_key() -> None:
    with pytest.raises(ConfigError) as e:
        sdf_config("quick", {"model": "siren", "field.n_freqs": 64})
    text = str(e.value)
    assert "field.n_freqs is not read by model siren" in text and "nstr" in text and "\n" not in text
    with pytest.raises(ConfigError, match="field.omega0 is not read by model ffn.*siren"):
        sdf_config("quick", {"model": "ffn", "field.omega0": 10})
    with pytest.raises(ConfigError, match="field.band_overlap is not read by model nstr .variant classic.*banded"):
        image_config("quick", {"field.band_overlap": 1.2})
    with pytest.raises(ConfigError, match="field.grid_levels is not read by model nstr .variant classic"):
        sdf_config("quick", {"field.spectrum": "mlp", "field.grid_levels": 4})
    with pytest.raises(ConfigError, match="train.lambda_pde is not read by model hashgrid"):
        sdf_config("quick", {"model": "hashgrid", "lambda_pde": 0})
    # the presets' own values for other models are not the user's: every model takes every preset
    for model in ("nstr", "siren", "ffn", "hashgrid"):
        assert sdf_config("quick", {"model": model}).field.model == model
    # what the model reads is accepted; a default left as it is never refused
    assert sdf_config("quick", {"model": "hashgrid", "field.grid_levels": 4}).field.grid_levels == 4
    assert sdf_config("quick", {"model": "siren", "field.n_freqs": None}).field.model == "siren"


def test_a_refused_option_is_what_the_model_would_have_ignored() -> None:
    """The converse of the first test: an option refused for a model really changes nothing there."""
    for form, base in FORMS.items():
        parts = model_parts(base)
        reference = _fingerprint(base)
        for f in dataclasses.fields(FieldConfig):
            if f.name in ("model", "variant") or parts & set(f.metadata["reads"]):
                continue
            changed = dataclasses.replace(base, **{f.name: _other(base, f)})
            assert _fingerprint(changed) == reference, f"{form}: {f.name} is refused but changes the field"
