"""Declarative configs: small dataclasses, named presets, validated overrides.

A run is described by three blocks, as in instant-ngp's JSON configs:

* ``field``: the model (which one, its size, its encoding),
* ``train``: the optimisation (steps, batch, learning rate, PDE weight),
* ``task``: what the task itself needs (sample counts, resolution, ...).

Presets are plain nested dicts of overrides on the dataclass defaults, kept next
to the task that owns them. Users and the server override single keys, either
nested (``{"field": {"n_freqs": 32}}``) or dotted (``{"field.n_freqs": 32}``),
and a few short aliases (``steps``, ``K``, ``params``...). Unknown keys and
wrong types are :class:`~nstr.errors.ConfigError`, never silently ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from nstr.errors import ConfigError

MODELS = ("nstr", "siren", "ffn", "hashgrid")
PRESET_NAMES = ("quick", "default", "high")


@dataclass
class FieldConfig:
    """The neural field. One dataclass for every model so that ``--model``
    swaps the architecture while the rest of the config stays put."""

    model: str = "nstr"  # nstr | siren | ffn | hashgrid
    variant: str = "classic"  # NSTR's form: classic (grid S + decoder) | banded (issue 28; audio, images)
    params: int | None = None  # parameter budget; resizes the model to it (within 5%)
    # --- NSTR: K global frequencies w_i and phases b_i
    n_freqs: int = 32  # K
    min_freq: float = 0.5  # smallest |w_i| / 2pi, cycles per unit of x in [-1, 1]
    max_freq: float | None = None  # band limit; None: the task sets it from the signal's resolution
    learn_freqs: bool = True  # learnable (with freq_lr_scale x lr) or frozen
    freq_lr_scale: float = 0.05
    spectrum: str = "grid"  # S(x) parameterisation: grid | mlp
    phase_mod: bool = False  # sin(w.x + b + P(x)): the review's objection 1
    literal_scalar: bool = False  # ablation: g acts on the scalar sum_i h_i (the paper's literal form)
    # --- multiresolution grid: NSTR's S(x) (spectrum=grid) and the hashgrid baseline
    grid_levels: int = 8
    grid_features: int = 2
    grid_base_res: int = 8
    grid_max_res: int | None = None  # None: the task sets it from the signal's resolution
    grid_table_size: int = 2**14  # entries per level; levels denser than this are hashed
    # --- MLPs: the decoder g_phi (nstr, hashgrid) or the whole network (siren, ffn)
    width: int | None = None  # None: the model's own default (MODEL_SHAPES)
    depth: int | None = None  # hidden layers; None: the model's own default
    activation: str = "relu"  # relu | silu | softplus (decoders; siren always uses sine)
    # --- NSTR: S(x) as an MLP (spectrum=mlp) and the transport network F_theta
    spectrum_width: int = 64
    spectrum_depth: int = 2
    transport_width: int = 16
    transport_depth: int = 1
    # --- NSTR, variant=banded (nstr.fields.nstr_banded): a constant-Q frame of quadrature carriers
    band_per_octave: int = 1  # carrier radii per octave (the frame's radial density)
    band_directions: int = 6  # 2-D: carrier directions spread evenly over a half turn
    band_overlap: float = 1.1  # envelope bandwidth over the one that just tiles neighbouring radii
    band_resolution: int = 4096  # envelope terms per axis of the finest carrier, capped at its band limit;
    #                              the others scale with their radius (constant Q). What a budget resizes
    band_carriers: str = "centre"  # where carriers start in their cell: centre | peaks (the signal's FFT peak)
    band_allocation: str = "uniform"  # envelope sizes: uniform (one factor) | spectrum (where the signal's power is)
    band_transport: str = "off"  # F_theta(x, S) ~ dS/dx by the PDE term (train.lambda_pde): off (F = 0) | joint
    #                              (the term also shapes S) | detached (it trains F alone)
    band_residual_width: int = 0  # hidden width of the bounded nonlinear residual; 0: a purely linear synthesis
    band_residual_bound: float = 0.1  # the residual's bound |r| <= this, in output units
    # --- SIREN
    omega0: float = 30.0
    # --- Fourier-feature MLP
    ffn_features: int = 256
    ffn_sigma: float = 10.0


# Each model's own MLP shape (width, hidden layers) when the config leaves them None:
# the decoder for nstr/hashgrid (instant-ngp uses 64 x 2), the whole network for siren/ffn
# (SIREN's 256 x 3, Tancik's 256 x 4). NSTR's decoder is small because its K modulated
# sinusoids already carry the detail; 32 x 1 measured best per parameter on images.
MODEL_SHAPES: dict[str, tuple[int, int]] = {"nstr": (32, 1), "hashgrid": (64, 2), "siren": (256, 3), "ffn": (256, 4)}


def with_model_shape(cfg: "FieldConfig") -> "FieldConfig":
    """Fill width/depth left as None with the model's own defaults."""
    width, depth = MODEL_SHAPES.get(cfg.model, (64, 2))
    return dataclasses.replace(cfg, width=cfg.width if cfg.width is not None else width,
                               depth=cfg.depth if cfg.depth is not None else depth)


@dataclass
class TrainConfig:
    """Optimisation. Task losses are the task's; the PDE term is the method's."""

    steps: int = 2000
    batch_size: int = 65536
    lr: float | None = None  # None: the model's own default
    lr_final_ratio: float = 0.1  # cosine decay to lr * this
    lambda_pde: float = 1e-5  # weight of the transport PDE loss (absolute units); 0 ablates it
    pde_fraction: float = 0.25  # share of each batch on which the Jacobian is computed
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # mixed precision on CUDA (never on the CPU)
    log_every: int = 10
    eval_every: int = 0  # 0: only at the end
    checkpoint_every: int = 0  # 0: only at the end (when a checkpoint path is given)


@dataclass
class RunConfig:
    """A whole run: field + train + the task's own options."""

    field: FieldConfig
    train: TrainConfig
    task: Any  # the task's own options dataclass

    def to_dict(self) -> dict[str, Any]:
        return {"field": dataclasses.asdict(self.field), "train": dataclasses.asdict(self.train),
                "task": dataclasses.asdict(self.task)}


# Short names accepted on the command line and by the server.
ALIASES: dict[str, str] = {
    "model": "field.model",
    "params": "field.params",
    "K": "field.n_freqs",
    "k": "field.n_freqs",
    "n_freqs": "field.n_freqs",
    "spectrum": "field.spectrum",
    "phase_mod": "field.phase_mod",
    "variant": "field.variant",
    "steps": "train.steps",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "lambda_pde": "train.lambda_pde",
    "seed": "train.seed",
    "device": "train.device",
}


@dataclass
class EmptyOptions:
    """For tasks with no options of their own."""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; allow int->float and str forms from flags."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(value, a, where)
            except ConfigError as e:  # try the next member
                errors.append(e)
        raise errors[0]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, not {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if float(value).is_integer() else int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where} must be an integer, not {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise ConfigError(f"{where} must be a number, not {value!r}") from None
        else:
            raise ConfigError(f"{where} must be a number, not {value!r}")
        if out != out or out in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} must be a finite number, not {value!r}")
        return out
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, not {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str):   # from a flag: "0.01,0.2", "[0.01, 0.2]", "" or "[]" (empty)
            body = value.strip().removeprefix("[").removesuffix("]").strip()
            value = [part.strip() for part in body.split(",")] if body else []
            value = tuple(value) if origin is tuple else value
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, not {value!r}")
        item = args[0] if args else Any
        return type(value)(_coerce(v, item, where) for v in value) if item is not Any else value
    return value


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    """A config class's field types, resolved once: resolving them compiles every annotation string
    (~2 ms a class), which was a third of a server's submit."""
    return typing.get_type_hints(cls)


def apply_overrides(obj: Any, overrides: Mapping[str, Any], where: str) -> Any:
    """Return a copy of dataclass ``obj`` with ``overrides`` applied and type-checked."""
    hints = _type_hints(type(obj))
    names = {f.name for f in fields(obj)}
    out = copy.deepcopy(obj)
    for key, value in overrides.items():
        if key not in names:
            valid = ", ".join(sorted(names))
            raise ConfigError(f"unknown config key '{where}.{key}'", f"Valid keys in '{where}': {valid}")
        setattr(out, key, _coerce(value, hints[key], f"{where}.{key}"))
    return out


def _split(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Turn nested, dotted and aliased keys into {'field': {...}, 'train': {...}, 'task': {...}}."""
    blocks: dict[str, dict[str, Any]] = {"field": {}, "train": {}, "task": {}}
    for key, value in overrides.items():
        if key in blocks and isinstance(value, Mapping):
            blocks[key].update(value)
            continue
        dotted = ALIASES.get(key, key)
        if "." not in dotted:
            raise ConfigError(f"unknown config key '{key}'",
                              "Use 'field.KEY', 'train.KEY' or 'task.KEY', or one of: " + ", ".join(sorted(ALIASES)))
        block, _, name = dotted.partition(".")
        if block not in blocks:
            raise ConfigError(f"unknown config block '{block}' in '{key}'", "Blocks are field, train and task")
        blocks[block][name] = value
    return blocks


def build_config(task_options: type, presets: Mapping[str, Mapping[str, Any]], preset: str = "default",
                 overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Resolve defaults <- preset <- overrides into a validated :class:`RunConfig`."""
    if preset not in presets:
        raise ConfigError(f"unknown preset '{preset}'", "Choose one of: " + ", ".join(presets))
    base = _split(presets[preset])
    user = _split(overrides or {})
    cfg = RunConfig(field=FieldConfig(), train=TrainConfig(), task=task_options())
    for block in ("field", "train", "task"):
        merged = {**base[block], **{k: v for k, v in user[block].items() if v is not None}}
        setattr(cfg, block, apply_overrides(getattr(cfg, block), merged, block))
    validate(cfg)
    return cfg


# Every numeric option's accepted range, inclusive, checked when a config is built (so the server
# refuses at submit with a 400 naming the key and its range). Keyed by block.name; task options of
# every task share the "task." namespace. tests/test_hardening.py checks that no numeric option
# of any config dataclass is missing here.
BOUNDS: dict[str, tuple[float, float]] = {
    "field.params": (100, 100_000_000), "field.n_freqs": (1, 1024), "field.min_freq": (0, 10_000),
    "field.max_freq": (0, 10_000), "field.freq_lr_scale": (0, 100), "field.grid_levels": (1, 32),
    "field.grid_features": (1, 16), "field.grid_base_res": (1, 4096), "field.grid_max_res": (1, 65_536),
    "field.grid_table_size": (1, 2**24), "field.width": (1, 4096), "field.depth": (0, 32),
    "field.spectrum_width": (1, 4096), "field.spectrum_depth": (0, 32), "field.transport_width": (1, 4096),
    "field.transport_depth": (0, 32), "field.omega0": (0, 10_000), "field.ffn_features": (1, 65_536),
    "field.ffn_sigma": (0, 10_000), "field.band_per_octave": (1, 16), "field.band_directions": (1, 64),
    "field.band_overlap": (0.5, 3), "field.band_resolution": (1, 1 << 20), "field.band_residual_width": (0, 4096),
    "field.band_residual_bound": (0, 100),
    "train.steps": (1, 1_000_000), "train.batch_size": (1, 2**22), "train.lr": (0, 10),
    "train.lr_final_ratio": (0, 1), "train.lambda_pde": (0, 1e6), "train.pde_fraction": (0, 1),
    "train.seed": (0, 2**32 - 1), "train.log_every": (1, 1_000_000), "train.eval_every": (0, 1_000_000),
    "train.checkpoint_every": (0, 1_000_000),
    # sdf
    "task.samples": (1000, 50_000_000), "task.surface_fraction": (0, 1), "task.near_fraction": (0, 1),
    "task.near_scales": (1e-6, 1), "task.band": (0, 2), "task.padding": (0, 0.5), "task.eikonal_weight": (0, 1000),
    "task.normal_weight": (0, 1000), "task.gradient_fraction": (0, 1), "task.resolution": (0, 2048),
    "task.resolution_min": (16, 2048), "task.resolution_max": (16, 2048), "task.cells_per_feature": (0.5, 64),
    "task.feature_quantile": (0, 0.5), "task.feature_probes": (100, 1_000_000), "task.detail_fraction": (0, 1),
    "task.feature_noise": (0, 100), "task.fd_step": (1e-5, 0.5), "task.smooth_steps": (0, 1000),
    "task.sparse_from": (16, 8192), "task.eval_chunk": (1, 2**22), "task.metric_points": (100, 10_000_000),
    "task.detail_range": (0, 1e12),
    "task.simplify_faces": (0, 2**31 - 1), "task.simplify_error": (0, 1e12),  # sdf: nstr.geometry.simplify
    # nerf
    "task.image_size": (0, 4096), "task.n_features": (1, 256), "task.head_width": (1, 4096),
    "task.max_frames": (1, 100_000), "task.max_pixels": (1, 1 << 32),
    "task.head_depth": (0, 16), "task.render_steps": (1, 4096), "task.n_importance": (0, 1024),
    "task.grid_resolution": (1, 512), "task.grid_update_every": (1, 1_000_000), "task.grid_warmup": (0, 1_000_000),
    "task.eval_views": (0, 1000), "task.render_chunk": (1, 2**22), "task.mesh_resolution": (8, 2048),
    "task.mesh_threshold": (0, 1e6),
    # nerf, sdf geometry (issue 10)
    "task.lambda_mask": (0, 1e3), "task.lambda_eikonal": (0, 1e3), "task.eikonal_points": (0, 1_000_000),
    "task.sdf_coarse": (2, 4096), "task.sdf_fine": (1, 1024), "task.sdf_uniform": (0, 1024),
    "task.init_radius": (0.01, 0.99), "task.sharpness_init": (0.1, 1e6), "task.sharpness_max": (0.1, 1e6),
    "task.sharpness_ramp": (0, 1), "task.cos_anneal": (0, 1), "task.min_component_share": (0, 1),
    "task.lambda_smooth": (0, 1e3), "task.smooth_radius": (1e-6, 1), "task.coarse_to_fine": (0, 1),
    # image, audio
    "task.viz_max_side": (1, 8192), "task.start_s": (0, 1e6), "task.duration_s": (0, 1e6),
    "task.viz_max_points": (1, 1_000_000),
}


def check_bounds(cfg: RunConfig) -> None:
    """Each numeric option (and each number of a numeric list) within its :data:`BOUNDS` range."""
    for block in ("field", "train", "task"):
        obj = getattr(cfg, block)
        for f in fields(obj):
            key = f"{block}.{f.name}"
            bound = BOUNDS.get(key)
            value = getattr(obj, f.name)
            if bound is None or value is None or isinstance(value, (bool, str)):
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            lo, hi = bound
            for v in values:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not lo <= v <= hi:
                    side = f"at least {_num(lo)}" if v < lo else f"at most {_num(hi)}"
                    raise ConfigError(f"{key} must be {side}, not {_num(v)} (range {_num(lo)} to {_num(hi)})",
                                      f"Set {key} within [{_num(lo)}, {_num(hi)}]")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def validate(cfg: RunConfig) -> None:
    """Range checks that would otherwise fail deep inside torch."""
    check_bounds(cfg)
    f, t = cfg.field, cfg.train
    if f.model not in MODELS:
        raise ConfigError(f"unknown model '{f.model}'", "Choose one of: " + ", ".join(MODELS))
    for value, choices, what in ((f.variant, ("classic", "banded"), "NSTR variant"),
                                 (f.band_carriers, ("centre", "peaks"), "field.band_carriers"),
                                 (f.band_transport, ("off", "joint", "detached"), "field.band_transport"),
                                 (f.band_allocation, ("uniform", "spectrum"), "field.band_allocation")):
        if value not in choices:
            raise ConfigError(f"unknown {what} '{value}'", f"Choose {', '.join(choices[:-1])} or {choices[-1]}")
    if f.spectrum not in ("grid", "mlp"):
        raise ConfigError(f"unknown spectrum field '{f.spectrum}'", "Choose grid or mlp")
    if f.activation not in ("relu", "silu", "softplus"):
        raise ConfigError(f"unknown activation '{f.activation}'", "Choose relu, silu or softplus")
    if t.device not in ("auto", "cpu", "cuda") and not t.device.startswith("cuda:"):
        raise ConfigError(f"unknown device '{t.device}'", "Choose auto, cpu or cuda")
    positive = {"field.n_freqs": f.n_freqs, "field.width": f.width or 1, "field.grid_levels": f.grid_levels,
                "field.grid_features": f.grid_features, "field.grid_table_size": f.grid_table_size,
                "train.steps": t.steps, "train.batch_size": t.batch_size}
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, not {value}")
    if f.params is not None and f.params < 100:
        raise ConfigError(f"field.params must be at least 100, not {f.params}")
    if (f.depth or 0) < 0 or f.transport_depth < 0 or f.spectrum_depth < 0:
        raise ConfigError("MLP depths must be 0 or more")
    if t.lambda_pde < 0:
        raise ConfigError(f"train.lambda_pde must be 0 or more, not {t.lambda_pde}")
    if not 0 < t.pde_fraction <= 1:
        raise ConfigError(f"train.pde_fraction must be in (0, 1], not {t.pde_fraction}")
    if t.lr is not None and t.lr <= 0:
        raise ConfigError(f"train.lr must be positive, not {t.lr}")


__all__ = ["FieldConfig", "TrainConfig", "MODEL_SHAPES", "with_model_shape", "RunConfig", "EmptyOptions", "build_config", "apply_overrides",
           "BOUNDS", "check_bounds",
           "ALIASES", "MODELS", "PRESET_NAMES", "field"]
