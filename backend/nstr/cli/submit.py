"""``nstr submit``: send a mesh to a fitting server as an SDF job; with --wait, fetch the result.

The result and the report are written the way ``nstr fit sdf`` writes them, so a remote fit
and a local one leave the same files behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from nstr.cli.common import finite_positive, key_value, non_negative_int, positive_int
from nstr.paths import check_outputs
from nstr.cli.jobs import add_server_arguments, client_from_args, remote_call

HELP = "send a mesh to a fitting server ('nstr serve') as an SDF job; --wait fetches the result"
DESCRIPTION = HELP + """.

Without --wait it prints the job id and returns; follow it with 'nstr jobs'. With --wait
(implied by -o and --report) it shows progress, then writes the mesh with its spectral-flow
attributes (-o: .ply, .glb or .npz, as 'nstr fit sdf') and a JSON report. Ctrl-C cancels the job."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nstr.config import MODELS, PRESET_NAMES

    p.add_argument("mesh", type=Path, metavar="MESH", help="mesh file (.obj, .ply, .off, .stl, .glb, ...)")
    add_server_arguments(p)
    p.add_argument("--preset", choices=PRESET_NAMES, default="default", help="named config (default: default)")
    p.add_argument("--model", choices=MODELS, help="the field to fit (default: the preset's, nstr)")
    p.add_argument("--steps", type=positive_int, help="training steps (overrides the preset)")
    p.add_argument("--params", type=positive_int, help="parameter budget")
    p.add_argument("--seed", type=non_negative_int, help="random seed")
    p.add_argument("--set", dest="overrides", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set task.resolution=128")
    p.add_argument("--wait", action="store_true", help="wait for the job, show progress, fetch the result")
    p.add_argument("-o", "--output", type=Path,
                   help="result mesh: .ply, .glb or .npz (implies --wait; default with --wait: MESH_MODEL.ply)")
    p.add_argument("--report", type=Path, help="write a JSON report here (implies --wait)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--poll", type=finite_positive, default=0.5, help="seconds between status polls (default: 0.5)")


def job_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {"preset": args.preset}
    for key in ("model", "steps", "params", "seed"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    for key, value in args.overrides:
        config[key] = value
    return config


def run(args: argparse.Namespace) -> int:
    from nstr.jsonable import write_report
    from nstr.errors import NSTRError
    from nstr.geometry.export import OUTPUT_SUFFIXES, write_mesh
    from nstr.paths import check_writable_output

    wait = args.wait or args.output is not None or args.report is not None
    output = args.output or Path(f"{args.mesh.stem}_{args.model or 'nstr'}.ply")  # as 'nstr fit sdf'
    if wait:
        check_writable_output(output, (args.mesh,), OUTPUT_SUFFIXES, "the mesh")  # before the fit, not after
        check_outputs({"-o": output, "--report": args.report}, [args.mesh])
    vertices, faces = load_mesh(args.mesh)
    client = client_from_args(args)
    t0 = time.perf_counter()
    job_id = remote_call(client.submit, "sdf", job_config(args), {"vertices": vertices, "faces": faces})
    t_submit = time.perf_counter() - t0
    if not wait:
        print(job_id)
        return 0
    show = _Progress(job_id, quiet=args.quiet)
    try:
        status = remote_call(client.wait, job_id, poll=args.poll, on_status=show)
    except KeyboardInterrupt:
        show.end()
        remote_call(client.cancel, job_id)
        sys.stderr.write(f"nstr: cancelled job {job_id} on {client.url}\n")
        return 130
    show.end()
    if status["state"] != "done":
        raise NSTRError(f"job {job_id} {status['state']}: {status.get('error') or status.get('message')}",
                        status.get("fix"))
    t1 = time.perf_counter()
    meta, arrays = remote_call(client.result, job_id)
    t_fetch = time.perf_counter() - t1
    result = {name: arr.to_numpy() for name, arr in arrays.items()}
    write_mesh(output, result)
    report = {**(meta.get("report") or {}), "input": str(args.mesh), "output": str(output),
              "remote": {"server": client.url, "job": job_id, "submit_s": t_submit, "fetch_s": t_fetch,
                         "queued_s": (status["started"] or 0) - status["created"],
                         "run_s": (status["finished"] or 0) - (status["started"] or 0),
                         "total_s": time.perf_counter() - t0}}
    write_report(args.report, report)
    m = report.get("metrics") or {}
    print(f"job {job_id} done on {client.url} in {report['remote']['total_s']:.1f} s "
          f"(queued {report['remote']['queued_s']:.1f} s, ran {report['remote']['run_s']:.1f} s)")
    scores = ", ".join(f"{k} {m[k]:.4g}" for k in ("chamfer_l1", "normal_consistency", "fscore_1pct", "iou")
                       if isinstance(m.get(k), (int, float)))
    if scores:
        print(f"sdf {report.get('model', '?')}: {scores}")
    print(f"wrote {output} ({len(result['vertices']):,} vertices, {len(result['faces']):,} faces)")
    return 0


def load_mesh(path: Path) -> tuple[Any, Any]:
    """(vertices (V,3) float64, faces (F,3) int32), read and checked by the SDF task's own loader.
    float64: a mesh far from the origin (x = 1e7) keeps its sub-unit detail on the wire."""
    import numpy as np

    from nstr.geometry.mesh import load_mesh as read_mesh

    mesh, _report = read_mesh(path)
    return mesh.vertices.astype(np.float64), mesh.faces.astype(np.int32)


class _Progress:
    """One status line, redrawn in place on a terminal and printed per phase otherwise."""

    def __init__(self, job_id: str, quiet: bool) -> None:
        self.job_id, self.quiet = job_id, quiet
        self.tty = sys.stderr.isatty()
        self.last_phase: tuple[str, str | None] | None = None
        self.drawn = False

    def __call__(self, st: dict[str, Any]) -> None:
        if self.quiet:
            return
        if st["state"] == "queued":
            line = f"{self.job_id}: queued, position {st.get('queue_position')}"
        else:
            parts = [f"{self.job_id}: {st['state']}", st.get("phase") or ""]
            if st.get("total"):
                parts.append(f"{st['step']}/{st['total']}")
            if isinstance(st.get("loss"), (int, float)):
                parts.append(f"loss {st['loss']:.4g}")
            if isinstance(st.get("eta_s"), (int, float)) and st["state"] == "running":
                parts.append(f"eta {st['eta_s']:.0f}s")
            parts.append(f"{100 * st.get('progress', 0):.0f}%")
            line = "  ".join(p for p in parts if p)
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
            self.drawn = True
        elif (st["state"], st.get("phase")) != self.last_phase:
            sys.stderr.write(line + "\n")
        self.last_phase = (st["state"], st.get("phase"))

    def end(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            self.drawn = False
