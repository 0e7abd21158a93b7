#!/usr/bin/env python3
"""How far off is the ETA a running job reports? Several small real SDF fits, each run the way the
server runs a job (``nstr.server.engine.execute``: the upload read, the task run by
``nstr.job.run_job_spec``, the result written),
with the config the panel sends (``TaskSettings.job_config``), on the CPU. Every progress event is
recorded with its time; the server's ETA (``nstr.server.eta.JobEta``) is replayed over the events
twice, in one run:

* before: each job as a server's first (nothing learnt yet): the fit's remaining steps plus, for an
  SDF, the after-fit cost of ``nstr.server.eta.FIRST_JOB`` scaled to its size;
* after: the stages after the fit, learnt in fit steps from the jobs this server finished before
  (a warm-up job first).

At the first event at or past 25 / 50 / 75 % progress, |ETA - real remaining time| / real remaining.

    flock /tmp/nstr-bench.lock env OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_eta.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

CHECKPOINTS = (0.25, 0.50, 0.75)
WARMUP = ("rotor", 80, 32)
FITS = (("suzanne", 200, 0), ("rotor", 300, 0), ("elephant", 150, 48), ("suzanne", 400, 64), ("bunny00", 200, 0),
        ("elephant", 150, 0))


def run_fit(mesh_name: str, steps: int, resolution: int, folder: Path) -> tuple[float, float, list, str]:
    """One job as the server runs it; returns (start, end, [(time, event)], final state)."""
    from bench_sdf import load
    from nstr.remote import wire
    from nstr.job import JobSpec
    from nstr.server.engine import execute
    from nstr.server.store import INPUT
    from nstr_blender.core.settings import TaskSettings

    mesh, _report = load(mesh_name)
    folder.mkdir(parents=True)
    wire.write_file(folder / INPUT, {}, {"vertices": mesh.vertices.astype("float32"),
                                         "faces": mesh.faces.astype("int32")})
    config = {**TaskSettings(preset="quick", steps=steps, resolution=resolution).job_config(), "device": "cpu"}
    events: list = []
    end: dict = {}

    def report(_job: str, ev: dict) -> None:
        if ev.get("type") == "progress":
            events.append((time.time(), ev))
        elif ev.get("type") == "end":
            end.update(ev, at=time.time())

    start = time.time()
    execute(JobSpec(f"{mesh_name}-{steps}", "sdf", config, folder / INPUT, folder=folder, validated=True), report,
            lambda: False)
    return start, end["at"], events, str(end.get("state"))


def replay(start: float, end: float, events: list, costs, learn: bool) -> dict[float, tuple[float, float]]:
    """The ETA at each checkpoint and the real time left then."""
    from nstr.server.eta import JobEta

    eta = JobEta("sdf", start, costs)
    out: dict[float, tuple[float, float]] = {}
    for t, ev in events:
        fit_eta = ev.get("eta_s")
        estimate = eta.update(t, str(ev.get("phase")), int(ev.get("step", 0)), int(ev.get("total", 0)), fit_eta,
                              ev.get("metrics"))
        for cp in CHECKPOINTS:
            if cp not in out and eta.progress >= cp and estimate is not None:
                out[cp] = (estimate, end - t)
    if learn:
        eta.finish(end)
    return out


def record_fits(events_out: Path | None) -> list[dict]:
    """Run the warm-up and the fits, in order; each with its start, end and timed events."""
    recorded: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="nstr_bench_eta_") as tmp:
        for i, (name, steps, res) in enumerate((WARMUP, *FITS)):
            start, end, events, state = run_fit(name, steps, res, Path(tmp) / f"job{i}")
            if state != "done":
                raise SystemExit(f"bench_eta: {name} ended {state}")
            recorded.append({"fit": f"{name} {steps} steps res {res or 'auto'}", "start": start, "end": end,
                             "events": events})
            print(f"done {recorded[-1]['fit']}: {end - start:.1f} s", file=sys.stderr, flush=True)
            if events_out is not None:
                events_out.write_text(json.dumps(recorded))
    return recorded


def table(recorded: list[dict]) -> str:
    """Replay every job through the ETA without history (before) and with this server's (after)."""
    from nstr.server.eta import StageCosts

    learnt = StageCosts()                 # the server's history, in job order
    rows = []
    for i, job in enumerate(recorded):
        start, end, events = job["start"], job["end"], job["events"]
        fit_end = max(t for t, ev in events if ev.get("phase") == "fitting")
        before = replay(start, end, events, StageCosts(), learn=False)
        after = replay(start, end, events, learnt, learn=True)
        if i == 0:
            continue                      # the warm-up only fills the history
        rows.append({"fit": job["fit"], "total": end - start, "after_fit": end - fit_end,
                     "before": before, "after": after})

    def err(pair: tuple[float, float]) -> float:
        eta, left = pair
        return abs(eta - left) / left

    cols = " | ".join(f"{int(cp * 100)}%: ETA before -> after / real, error" for cp in CHECKPOINTS)
    lines = [f"| fit | total s | after the fit s | {cols} |", "|---|---|---|" + "---|" * len(CHECKPOINTS)]
    for r in rows:
        cells = " | ".join(f"{r['before'][cp][0]:.0f} -> {r['after'][cp][0]:.0f} / {r['after'][cp][1]:.0f} s, "
                           f"{err(r['before'][cp]):.0%} -> {err(r['after'][cp]):.0%}" for cp in CHECKPOINTS)
        lines.append(f"| {r['fit']} | {r['total']:.1f} | {r['after_fit']:.1f} | {cells} |")
    med = " | ".join(f"median {statistics.median(err(r['before'][cp]) for r in rows):.0%} -> "
                     f"{statistics.median(err(r['after'][cp]) for r in rows):.0%}" for cp in CHECKPOINTS)
    lines.append(f"| median abs ETA error (goal <= 20 %) | | | {med} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--events", type=Path, default=None, help="also write every fit's timed events here (JSON)")
    parser.add_argument("--replay", type=Path, default=None, help="no fits: replay the events a run wrote")
    args = parser.parse_args(argv)
    if args.replay is not None:
        recorded = json.loads(args.replay.read_text())
    else:
        import torch
        torch.set_num_threads(args.threads)
        recorded = record_fits(args.events)
    print(table(recorded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
