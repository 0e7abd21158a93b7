"""Flags shared by every ``nstr fit`` task, so each task spells them the same way."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Sequence

from nstr.config import MODELS, PRESET_NAMES
from nstr.paths import check_outputs


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


def finite_positive(text: str) -> float:
    """A number > 0 that is neither NaN nor infinite (seconds, MiB, days...)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be a finite number above 0")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a size that may be zero)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be a finite number, 0 or more")
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


def check_fit_paths(args: argparse.Namespace, output: Path, inputs: Sequence[Path | None],
                    extra_outputs: dict[str, Path | None] | None = None) -> None:
    """The shared fit flags that write (-o, --report, --checkpoint) checked against the inputs before
    fitting, and an existing --checkpoint read safely now rather than after the sampling."""
    outputs = {"-o": output, "--report": args.report, "--checkpoint": args.checkpoint, **(extra_outputs or {})}
    check_outputs(outputs, inputs)
    if args.checkpoint is not None and Path(args.checkpoint).is_file():
        from nstr.train.loop import read_checkpoint

        read_checkpoint(Path(args.checkpoint))


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The shared flags as config overrides (None values mean 'keep the preset')."""
    out: dict[str, Any] = {"model": args.model, "steps": args.steps, "params": args.params,
                           "device": args.device, "seed": args.seed}
    for key, value in args.overrides:
        out[key] = value
    return {k: v for k, v in out.items() if v is not None}
