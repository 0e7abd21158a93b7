"""``nstr serve``: run the fitting server (HTTP job queue) for the Blender add-on and ``nstr submit``."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the fitting server (job queue over HTTP) for Blender and 'nstr submit'"
DESCRIPTION = HELP + """.

It binds to 127.0.0.1 by default. Binding to another address needs a token: give one with
--token (or the NSTR_TOKEN environment variable) or one is generated and printed. Jobs,
their logs and results are kept in --jobs-dir and survive restarts."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nstr.cli.common import finite_positive, non_negative_float
    from nstr.server.engine_choice import ENGINES
    from nstr.server.main import (DEFAULT_MAX_BODY_MB, DEFAULT_MIN_FREE_MB, DEFAULT_PORT, HEADER_TIMEOUT_S,
                                  MIN_BODY_RATE_KIB, REQUEST_TIMEOUT_S)
    from nstr.server.retention import DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_TOTAL_GB

    ENGINE_NAMES = tuple(ENGINES)

    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--token", help="clients must send this token (default: $NSTR_TOKEN; generated off loopback)")
    p.add_argument("--jobs-dir", type=Path, help="where jobs, logs and results live (default: ~/.local/share/nstr/jobs)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where jobs run: auto is CUDA when present, else the CPU (default: auto)")
    p.add_argument("--max-body-mb", type=finite_positive, default=DEFAULT_MAX_BODY_MB,
                   help=f"largest accepted request body in MiB (default: {DEFAULT_MAX_BODY_MB})")
    p.add_argument("--header-timeout", type=finite_positive, default=HEADER_TIMEOUT_S, metavar="S",
                   help=f"close a connection whose request line and headers take longer (default: {HEADER_TIMEOUT_S:g} s)")
    p.add_argument("--request-timeout", type=finite_positive, default=REQUEST_TIMEOUT_S, metavar="S",
                   help=f"a request body must be complete within this of its head, or 408 (default: {REQUEST_TIMEOUT_S:g} s)")
    p.add_argument("--min-body-rate", type=finite_positive, default=MIN_BODY_RATE_KIB, metavar="KIB",
                   help=f"a request body slower than this many KiB/s on average (after 5 s) is cut off with 408 "
                        f"(default: {MIN_BODY_RATE_KIB:g})")
    p.add_argument("--min-free-mb", type=non_negative_float, default=DEFAULT_MIN_FREE_MB, metavar="MB",
                   help=f"disk space kept free in --jobs-dir: uploads and results that would use it get 507 "
                        f"(default: {DEFAULT_MIN_FREE_MB:g})")
    p.add_argument("--engine", choices=ENGINE_NAMES, default="local",
                   help="what runs the jobs: local = one worker thread in this process; ray = a Ray cluster, "
                        "as many jobs at once as it holds (default: local)")
    p.add_argument("--address", help="--engine ray: the cluster ('auto' or HOST:PORT; default: start a local Ray)")
    p.add_argument("--cpus-per-job", type=finite_positive, default=1.0, help="--engine ray: CPUs per job (default: 1)")
    p.add_argument("--gpus-per-job", type=float, default=0.0, help="--engine ray: GPUs per job, fractions allowed")
    p.add_argument("--data-root", dest="data_roots", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder whose datasets clients may name as dataset_dir (repeatable; none: refused)")
    p.add_argument("--keep-days", type=finite_positive, default=DEFAULT_MAX_AGE_DAYS,
                   help=f"remove finished jobs older than this many days (default: {DEFAULT_MAX_AGE_DAYS:g})")
    p.add_argument("--keep-gb", type=finite_positive, default=DEFAULT_MAX_TOTAL_GB,
                   help=f"remove the oldest finished jobs beyond this total size (default: {DEFAULT_MAX_TOTAL_GB:g})")
    p.add_argument("--url-file", type=Path, help=argparse.SUPPRESS)  # the launcher waits on this file
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # the launcher's process: exit when it is gone


def run(args: argparse.Namespace) -> int:
    from nstr.errors import ConfigError
    from nstr.server.main import serve
    from nstr.server.retention import Retention

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number", "Use 1-65535, or 0 for any free port")
    return serve(host=args.host, port=args.port, token=args.token, jobs_dir=args.jobs_dir, device=args.device,
                 max_body_mb=args.max_body_mb, url_file=args.url_file, parent_pid=args.parent_pid,
                 engine=args.engine, data_roots=args.data_roots, header_timeout_s=args.header_timeout,
                 request_timeout_s=args.request_timeout, min_body_rate_kib=args.min_body_rate,
                 min_free_mb=args.min_free_mb,
                 engine_options={"address": args.address, "cpus_per_job": args.cpus_per_job,
                                 "gpus_per_job": args.gpus_per_job} if args.engine == "ray" else None,
                 retention=Retention(max_age_days=args.keep_days, max_total_gb=args.keep_gb))
