"""``nstr jobs``: list a fitting server's jobs and their states."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

HELP = "list the jobs of a fitting server ('nstr serve') with their states"
DEFAULT_SERVER = "http://127.0.0.1:8765"


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    """--server and --token, shared with ``nstr submit``."""
    p.add_argument("--server", default=os.environ.get("NSTR_SERVER", DEFAULT_SERVER),
                   help=f"server URL (default: $NSTR_SERVER or {DEFAULT_SERVER})")
    p.add_argument("--token", default=os.environ.get("NSTR_TOKEN"),
                   help="the server's token (default: $NSTR_TOKEN)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_server_arguments(p)
    p.add_argument("--json", action="store_true", help="print the raw status records as JSON")
    p.add_argument("--prune", action="store_true",
                   help="remove finished jobs by the server's retention policy (or --older-than / --max-gb)")
    p.add_argument("--older-than", type=float, metavar="DAYS", help="with --prune: remove finished jobs older than this")
    p.add_argument("--max-gb", type=float, metavar="GB", help="with --prune: keep at most this many GB of finished jobs")


def client_from_args(args: argparse.Namespace, timeout: float = 30.0) -> Any:
    """A BackendClient, with the client's errors turned into the CLI's one-line errors."""
    from nstr.errors import NSTRError
    from nstr.remote.client import BackendClient, RemoteError

    try:
        return BackendClient(args.server, token=args.token, timeout=timeout)
    except RemoteError as err:
        raise NSTRError(err.problem, err.fix) from None


def remote_call(fn: Any, *a: Any, **kw: Any) -> Any:
    """Call a client method; a RemoteError becomes an NSTRError (one line, exit code 2)."""
    from nstr.errors import NSTRError
    from nstr.remote.client import RemoteError

    try:
        return fn(*a, **kw)
    except RemoteError as err:
        raise NSTRError(err.problem, err.fix) from None


def format_row(st: dict[str, Any]) -> list[str]:
    step = f"{st['step']}/{st['total']}" if st.get("total") else ""
    loss = f"{st['loss']:.4g}" if isinstance(st.get("loss"), (int, float)) else ""
    if st["state"] == "running" and isinstance(st.get("eta_s"), (int, float)):
        when = f"eta {st['eta_s']:.0f}s"
    elif st["state"] == "queued":
        when = f"#{st.get('queue_position')}"
    elif st.get("finished") and st.get("started"):
        when = f"{st['finished'] - st['started']:.1f}s"
    else:
        when = ""
    note = st.get("error") or st.get("message") or ""
    return [st["id"], st["task"], st["state"], st.get("phase") or "", step, loss, when, note[:70]]


def print_table(rows: list[list[str]], head: list[str]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    for row in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def run(args: argparse.Namespace) -> int:
    client = client_from_args(args)
    if args.prune:
        from nstr.errors import ConfigError

        for flag, value in (("--older-than", args.older_than), ("--max-gb", args.max_gb)):
            if value is not None and not 0 <= value < 1e9:  # NaN fails this too
                raise ConfigError(f"{flag} must be a number from 0 up, not {value}")
        out = remote_call(client.prune, args.older_than, args.max_gb)
        print(f"removed {len(out['removed'])} finished job(s) from {client.url}"
              + (f": {', '.join(out['removed'])}" if out["removed"] else "")
              + f"; {out['kept_bytes'] / 2**20:.1f} MiB kept (policy: {out['max_age_days']:g} days, "
              f"{out['max_total_gb']:g} GB)")
        return 0
    jobs = remote_call(client.jobs)
    if args.json:
        json.dump(jobs, sys.stdout, indent=1)
        print()
        return 0
    if not jobs:
        print(f"no jobs on {client.url}")
        return 0
    print_table([format_row(j) for j in jobs], ["ID", "TASK", "STATE", "PHASE", "STEP", "LOSS", "TIME", "MESSAGE"])
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j["state"]] = counts.get(j["state"], 0) + 1
    print(f"{len(jobs)} job(s) on {client.url} at {time.strftime('%H:%M:%S')}: "
          + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0
