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

PRESET_NAMES = ("quick", "default", "high")


def option(default: Any, *, bounds: tuple[float, float] | None = None, open_ends: str = "",
           choices: tuple[str, ...] | None = None, reads: tuple[str, ...] | None = None) -> Any:
    """A config option with what is known about it kept beside it (read by :func:`check_block`):
    ``bounds``, its accepted range, inclusive unless ``open_ends`` names an end ("low", "high",
    "both"); ``choices``, the strings it accepts; ``reads`` (field options), the parts of a model
    that read it (:func:`model_parts`), so that a user who sets it for a model without them is told."""
    meta: dict[str, Any] = {}
    if bounds is not None:
        meta["bounds"], meta["open"] = bounds, open_ends
    if choices is not None:
        meta["choices"] = choices
    if reads is not None:
        meta["reads"] = reads
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=functools.partial(copy.deepcopy, default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


ANY = ("any",)
NSTR = ("nstr",)            # both NSTR variants
CLASSIC = ("classic",)      # NSTR's classic form: K sinusoids, a spectrum field S(x), a decoder
BANDED = ("banded",)        # NSTR's banded form (nstr.fields.nstr_banded)
GRID = ("grid",)            # a multiresolution grid: the hash grid's, or classic NSTR's S(x) with spectrum=grid
MLP_SHAPE = ("mlp",)        # an MLP of width x depth: the decoder (nstr, hashgrid) or the whole network (siren, ffn)
ACTIVATION = ("activation",)  # an MLP with a choice of activation (siren always uses sine; banded has no decoder)
TRANSPORT = ("transport",)  # the transport network F_theta and its PDE term


DEFAULT_MIN_FREQ = 0.5  # cycles per unit: NSTR's lowest frequency where neither the user nor the task sets one


@dataclass
class FieldConfig:
    """The neural field. One dataclass for every model so that ``--model``
    swaps the architecture while the rest of the config stays put; an option
    the chosen model does not read is refused when a user sets it (``reads``)."""

    model: str = option("nstr", choices=("nstr", "siren", "ffn", "hashgrid"), reads=ANY)
    variant: str = option("classic", choices=("classic", "banded"), reads=NSTR)  # NSTR's form: classic (grid S +
    #                                                   decoder) | banded (issue 28; audio, images, SDFs)
    params: int | None = option(None, bounds=(100, 100_000_000), reads=ANY)  # parameter budget; resizes the model
    #                                                   to it (within 5%)
    # --- NSTR: K global frequencies w_i and phases b_i
    n_freqs: int = option(32, bounds=(1, 1024), reads=CLASSIC)  # K
    min_freq: float | None = option(None, bounds=(0, 10_000), reads=NSTR)  # smallest |w_i| / 2pi, cycles per unit of
    #                                                   x in [-1, 1]; None: DEFAULT_MIN_FREQ, or for banded NSTR's SDFs
    #                                                   the coarsest frequency of the detail range (sdf_config)
    max_freq: float | None = option(None, bounds=(0, 10_000), reads=NSTR)  # band limit; None: the task sets it from
    #                                                   the signal's resolution
    learn_freqs: bool = option(True, reads=NSTR)  # learnable (with freq_lr_scale x lr) or frozen
    freq_lr_scale: float = option(0.05, bounds=(0, 100), reads=NSTR)
    spectrum: str = option("grid", choices=("grid", "mlp"), reads=CLASSIC)  # S(x) parameterisation
    phase_mod: bool = option(False, reads=CLASSIC)  # sin(w.x + b + P(x)): the review's objection 1
    literal_scalar: bool = option(False, reads=CLASSIC)  # ablation: g acts on the scalar sum_i h_i (the paper's form)
    # --- multiresolution grid: NSTR's S(x) (spectrum=grid) and the hashgrid baseline
    grid_levels: int = option(8, bounds=(1, 32), reads=GRID)
    grid_features: int = option(2, bounds=(1, 16), reads=GRID)
    grid_base_res: int = option(8, bounds=(1, 4096), reads=GRID)
    grid_max_res: int | None = option(None, bounds=(1, 65_536), reads=GRID)  # None: the task sets it from the
    #                                                   signal's resolution
    grid_table_size: int = option(2**14, bounds=(1, 2**24), reads=GRID)  # entries per level; denser levels are hashed
    # --- MLPs: the decoder g_phi (nstr, hashgrid) or the whole network (siren, ffn)
    width: int | None = option(None, bounds=(1, 4096), reads=MLP_SHAPE)  # None: the model's own (MODEL_SHAPES)
    depth: int | None = option(None, bounds=(0, 32), reads=MLP_SHAPE)  # hidden layers; None: the model's own
    activation: str = option("relu", choices=("relu", "silu", "softplus"), reads=ACTIVATION)  # decoders
    # --- NSTR: S(x) as an MLP (spectrum=mlp) and the transport network F_theta
    spectrum_width: int = option(64, bounds=(1, 4096), reads=("spectrum-mlp",))
    spectrum_depth: int = option(2, bounds=(0, 32), reads=("spectrum-mlp",))
    transport_width: int = option(16, bounds=(1, 4096), reads=TRANSPORT)
    transport_depth: int = option(1, bounds=(0, 32), reads=TRANSPORT)
    # --- NSTR, variant=banded (nstr.fields.nstr_banded): a constant-Q frame of quadrature carriers
    band_per_octave: int = option(1, bounds=(1, 16), reads=BANDED)  # carrier radii per octave
    band_directions: int = option(6, bounds=(1, 64), reads=BANDED)  # carrier directions per radius: over a half
    #                                                   turn (2-D) or spread over a hemisphere (3-D)
    band_overlap: float = option(1.1, bounds=(0.5, 3), reads=BANDED)  # envelope bandwidth over the one that just
    #                                                   tiles neighbouring radii
    band_resolution: int = option(4096, bounds=(1, 1 << 20), reads=BANDED)  # envelope terms per axis of the
    #                      finest carrier, capped at its band limit; the others scale with their radius (constant
    #                      Q). What a budget resizes
    band_carriers: str = option("centre", choices=("centre", "peaks"), reads=BANDED)  # where carriers start in
    #                                                   their cell: centre | peaks (the signal's FFT peak)
    band_allocation: str = option("uniform", choices=("uniform", "spectrum"), reads=BANDED)  # envelope sizes:
    #                                                   uniform (one factor) | spectrum (where the signal's power is)
    band_transport: str = option("off", choices=("off", "joint", "detached"), reads=BANDED)  # F_theta(x, S) ~
    #                      dS/dx by the PDE term (train.lambda_pde): off (F = 0) | joint (the term also shapes S) |
    #                      detached (it trains F alone)
    band_lattice: int = option(2, bounds=(0, 16), reads=BANDED)  # 3-D: the envelopes are summed on one lattice at
    #                      this many times the finest one's Nyquist rate and read trilinearly (cosine_basis.
    #                      build_lattice); 0: the exact series at every point (14-16x slower at 84k parameters).
    #                      1-D and 2-D fields sum their envelopes exactly and do not read it
    band_residual_width: int = option(0, bounds=(0, 4096), reads=BANDED)  # hidden width of the bounded nonlinear
    #                                                   residual; 0: a purely linear synthesis
    band_residual_bound: float = option(0.1, bounds=(0, 100), reads=("residual",))  # the residual's bound |r| <= this
    # --- SIREN
    omega0: float = option(30.0, bounds=(0, 10_000), reads=("siren",))
    # --- Fourier-feature MLP
    ffn_features: int = option(256, bounds=(1, 65_536), reads=("ffn",))
    ffn_sigma: float = option(10.0, bounds=(0, 10_000), reads=("ffn",))

    def lowest_freq(self) -> float:
        """``min_freq``, or :data:`DEFAULT_MIN_FREQ` where the task left it unset."""
        return DEFAULT_MIN_FREQ if self.min_freq is None else self.min_freq


MODELS: tuple[str, ...] = dict(FieldConfig.__dataclass_fields__["model"].metadata)["choices"]


def model_parts(cfg: "FieldConfig") -> frozenset[str]:
    """The parts (``reads`` tags) the configured model builds: an option none of whose tags is here
    changes nothing about the field (``test_config_reads``: each accepted one does)."""
    if cfg.model == "nstr" and cfg.variant == "banded":
        return frozenset({"any", "nstr", "banded"} | ({"transport"} if cfg.band_transport != "off" else set())
                         | ({"residual"} if cfg.band_residual_width > 0 else set()))
    if cfg.model == "nstr":
        spectrum = {"grid"} if cfg.spectrum == "grid" else {"spectrum-mlp"}
        return frozenset({"any", "nstr", "classic", "mlp", "activation", "transport"} | spectrum)
    return frozenset({"hashgrid": {"any", "grid", "mlp", "activation"}, "siren": {"any", "mlp", "siren"},
                      "ffn": {"any", "mlp", "activation", "ffn"}}.get(cfg.model, {"any"}))


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

    steps: int = option(2000, bounds=(1, 1_000_000))
    batch_size: int = option(65536, bounds=(1, 2**22))
    lr: float | None = option(None, bounds=(0, 10), open_ends="low")  # None: the model's own default
    lr_final_ratio: float = option(0.1, bounds=(0, 1))  # cosine decay to lr * this
    lambda_pde: float = option(1e-5, bounds=(0, 1e6), reads=TRANSPORT)  # weight of the transport PDE loss (absolute units); 0 ablates it
    pde_fraction: float = option(0.25, bounds=(0, 1), open_ends="low", reads=TRANSPORT)  # share of each batch on which the Jacobian
    #                                                   is computed
    seed: int = option(0, bounds=(0, 2**32 - 1))
    device: str = "auto"  # auto | cpu | cuda | cuda:N (checked by validate: the index is free)
    amp: bool = True  # mixed precision on CUDA (never on the CPU)
    log_every: int = option(10, bounds=(1, 1_000_000))
    eval_every: int = option(0, bounds=(0, 1_000_000))  # 0: only at the end
    checkpoint_every: int = option(0, bounds=(0, 1_000_000))  # 0: only at the end (when a checkpoint path is given)


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
    check_model_reads(cfg.field, {b: {k: v for k, v in user[b].items() if v is not None} for b in user})
    return cfg


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def check_block(obj: Any, block: str) -> None:
    """Each option of dataclass ``obj`` (config block ``block``) against what :func:`option` keeps
    beside it: a number (or each number of a list) within its ``bounds``, a string among its
    ``choices``. One place for these checks, so the server refuses at submit with a 400 naming the
    key and its range, and no task repeats them (tests/test_hardening.py: every numeric option of
    every config has bounds)."""
    for f in fields(obj):
        key, value, meta = f"{block}.{f.name}", getattr(obj, f.name), f.metadata
        if value is None:
            continue
        if "choices" in meta and value not in meta["choices"]:
            *rest, last = meta["choices"]
            raise ConfigError(f"unknown {key} '{value}'", f"Choose {', '.join(rest)} or {last}" if rest else
                              f"Use {last}")
        if "bounds" not in meta or isinstance(value, (bool, str)):
            continue
        lo, hi = meta["bounds"]
        low_open, high_open = meta["open"] in ("low", "both"), meta["open"] in ("high", "both")
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if v < lo or (low_open and v == lo):
                side = f"more than {_num(lo)}" if low_open else f"at least {_num(lo)}"
            elif v > hi or (high_open and v == hi):
                side = f"less than {_num(hi)}" if high_open else f"at most {_num(hi)}"
            else:
                continue
            words = f"{'above ' if low_open else ''}{_num(lo)} to {'below ' if high_open else ''}{_num(hi)}"
            span = f"{'(' if low_open else '['}{_num(lo)}, {_num(hi)}{')' if high_open else ']'}"
            raise ConfigError(f"{key} must be {side}, not {_num(v)} (range {words})", f"Set {key} within {span}")


# for the refusal's fix: every form a model can take (so every tag is built by one), and what a tag needs
_EVERY_FORM = [FieldConfig(model=m) for m in MODELS] + [
    FieldConfig(model="nstr", spectrum="mlp"),
    FieldConfig(model="nstr", variant="banded", band_transport="joint", band_residual_width=8)]
_NEEDS = {"grid": "nstr with field.spectrum=grid", "spectrum-mlp": "field.spectrum=mlp",
          "banded": "field.variant=banded", "classic": "field.variant=classic",
          "residual": "field.variant=banded with field.band_residual_width > 0",
          "transport": "the classic variant, or banded with field.band_transport=joint or detached"}


def check_model_reads(cfg: FieldConfig, set_by_user: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse an option the user set (``{"field": {...}, "train": {...}}``) that the chosen model does
    not read (``option(reads=...)``), naming the model and the key: ``--model siren --set
    field.n_freqs=64`` was accepted and ignored (issue 30)."""
    parts = model_parts(cfg)
    for block, cls in (("field", FieldConfig), ("train", TrainConfig)):
        reads = {f.name: f.metadata.get("reads") for f in fields(cls)}
        for name in set_by_user.get(block, {}):
            tags = reads.get(name)
            if tags is None or parts & set(tags):
                continue
            model = cfg.model + (f" (variant {cfg.variant})" if cfg.model == "nstr" else "")
            readers = list(dict.fromkeys(c.model for c in _EVERY_FORM if model_parts(c) & set(tags)))
            needs = [_NEEDS[t] for t in tags if t in _NEEDS]
            fix = f"Remove {block}.{name}" + (f", or choose a model that reads it: {', '.join(readers)}"
                                              if readers else "") + (f" (needs {'; '.join(needs)})" if needs else "")
            raise ConfigError(f"{block}.{name} is not read by model {model}", fix)


def validate(cfg: RunConfig) -> None:
    """Every block's options against their bounds and choices (:func:`check_block`); the device,
    whose ``cuda:N`` form is open-ended."""
    for block in ("field", "train", "task"):
        check_block(getattr(cfg, block), block)
    if cfg.train.device not in ("auto", "cpu", "cuda") and not cfg.train.device.startswith("cuda:"):
        raise ConfigError(f"unknown device '{cfg.train.device}'", "Choose auto, cpu or cuda")


__all__ = ["FieldConfig", "TrainConfig", "MODEL_SHAPES", "with_model_shape", "RunConfig", "EmptyOptions", "build_config", "apply_overrides",
           "option", "check_block", "check_model_reads", "model_parts",
           "ALIASES", "MODELS", "PRESET_NAMES", "field"]
