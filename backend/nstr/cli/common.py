"""Flags shared by every ``nstr fit`` task, so each task spells them the same way."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nstr.config import MODELS, PRESET_NAMES


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be 1 or more")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be 0 or more")
    return value


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (for example field.n_freqs=32)")
    return key, value


def add_fit_arguments(parser: argparse.ArgumentParser, *, output_help: str) -> None:
    """The CLI contract every task shares (see the README)."""
    parser.add_argument("-o", "--output", type=Path, help=output_help)
    parser.add_argument("--model", choices=MODELS, default="nstr", help="the field to fit (default: nstr)")
    parser.add_argument("--preset", choices=PRESET_NAMES, default="default",
                        help="named config: quick (CPU-friendly), default, high (default: default)")
    parser.add_argument("--steps", type=positive_int, help="training steps (overrides the preset)")
    parser.add_argument("--params", type=positive_int,
                        help="parameter budget: the model is resized to this many parameters (within 5%%)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when present, else the CPU (default: auto)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    parser.add_argument("--report", type=Path, help="write a JSON report (task, model, params, steps, "
                                                     "seconds, device, metrics, ...)")
    parser.add_argument("--set", dest="overrides", type=key_value, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override any config key, e.g. --set field.n_freqs=32 --set train.lambda_pde=0")
    parser.add_argument("--checkpoint", type=Path,
                        help="save training state here; if it exists, resume from it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The shared flags as config overrides (None values mean 'keep the preset')."""
    out: dict[str, Any] = {"model": args.model, "steps": args.steps, "params": args.params,
                           "device": args.device, "seed": args.seed}
    for key, value in args.overrides:
        out[key] = value
    return {k: v for k, v in out.items() if v is not None}


def write_report(path: Path | None, report: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
