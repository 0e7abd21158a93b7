"""``nstr batch INPUT... -o OUTDIR``: fit an SDF to every mesh, here or on a Ray cluster."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nstr.cli.common import add_fit_arguments, non_negative_int, overrides_from_args, positive_int

HELP = "fit SDFs to many meshes (files, folders, globs), in this process or on a Ray cluster; resumable"
DESCRIPTION = """Fit an SDF to every input mesh with the options of 'nstr fit sdf', writing
OUTDIR/<stem>.ply (or --format) and OUTDIR/<stem>.json (the report) for each, and
OUTDIR/summary.csv + summary.md (one row per input: state, attempts, time, device, node, metrics).

A rerun skips every input whose output exists with the same input bytes and config (hashes in
<stem>.json); --force redoes them. A fit that fails fails alone. Ctrl-C cancels what has not
finished and keeps what has.

Engines:
  --engine local   in this process, one job at a time (torch uses --cpus-per-job threads)
  --engine ray     Ray tasks: as many jobs at once as the cluster's CPUs/GPUs hold. Without --address
                   a local Ray instance is started; --address auto joins this machine's cluster;
                   --address HOST:6379 joins that one. A worker or node that dies is retried.

Examples:
  nstr batch assets/*.off -o out --preset quick
  nstr batch assets/ -o out --engine ray --cpus-per-job 1
  nstr batch assets/ -o out --engine ray --address auto --gpus-per-job 0.25 --preset high"""


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be 0 or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nstr.geometry.extraction import MC_BACKENDS  # numpy only, no torch

    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="mesh files, folders of meshes or glob patterns")
    add_fit_arguments(parser, output_help="output folder (required)")
    parser.add_argument("--resolution", type=positive_int, help="marching-cubes grid points per axis")
    parser.add_argument("--mc", choices=MC_BACKENDS,
                        help="marching-cubes implementation (default: auto, torch on CUDA, else skimage)")
    parser.add_argument("--format", dest="fmt", choices=("ply", "glb", "npz"), default="ply",
                        help="output mesh format (default: ply)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="where jobs run (default: local)")
    parser.add_argument("--address", help="Ray cluster to join: 'auto' or HOST:PORT (default: start a local Ray)")
    parser.add_argument("--cpus-per-job", type=positive_float,
                        help="CPUs (torch threads) per job (default: 1 on Ray; all locally)")
    parser.add_argument("--gpus-per-job", type=positive_float, default=0.0,
                        help="GPUs per Ray job; fractions share a GPU, e.g. 0.25 (default: 0)")
    parser.add_argument("--max-retries", type=non_negative_int, default=3,
                        help="Ray: times a job is retried when its worker process or node dies (default: 3)")
    parser.add_argument("--force", action="store_true", help="redo inputs that are already done")


def run(args: argparse.Namespace) -> int:
    from nstr.batch.plan import job_config
    from nstr.batch.runner import BatchOptions, print_table, run_batch
    from nstr.errors import ConfigError

    if args.output is None:
        raise ConfigError("nstr batch needs an output folder", "Add -o OUTDIR")
    if args.checkpoint is not None:
        raise ConfigError("--checkpoint is for one fit, not a batch", "Leave it out; a rerun skips finished inputs")
    if args.engine == "local" and (args.address or args.gpus_per_job):
        raise ConfigError("--address and --gpus-per-job are Ray options", "Add --engine ray")
    overrides = overrides_from_args(args)
    if args.resolution is not None:
        overrides["task.resolution"] = args.resolution
    if args.mc is not None:
        overrides["task.mc"] = args.mc
    config = job_config(args.preset, overrides)
    opts = BatchOptions(outdir=args.output, fmt=args.fmt, engine=args.engine, address=args.address,
                        cpus_per_job=args.cpus_per_job, gpus_per_job=args.gpus_per_job,
                        max_retries=args.max_retries, force=args.force)
    result = run_batch(args.inputs, config, opts, stream=None if not args.quiet else open("/dev/null", "w"))
    print_table(result, Path(args.output))
    if args.report is not None:
        args.report.write_text(json.dumps({"rows": result.rows, "counts": result.counts}, indent=2) + "\n")
    if result.interrupted:
        raise KeyboardInterrupt
    return 1 if result.counts.get("failed") else 0
