#!/usr/bin/env python3
"""Load test and round-trip overhead of the fitting server (issue 4).

1. Load: N jobs (default 50) submitted at once from C client threads (default 5); every job must
   end in a defined state (done / failed / cancelled) and appear in the job list: none lost.
2. Overhead: jobs one at a time on an idle server; the client's wall time from submit to having
   the result arrays, against the fit itself (the server's started -> finished), plus the cost of
   each HTTP call (submit upload, one status poll, result download).
3. Submit latency under load (--concurrent, default 50): while one long fit runs, that many clients
   submit one job each at the same moment; the latency of each submit (p50, p95, max). The jobs are
   cancelled afterwards.
4. Upload memory (--upload-mb, needs the launcher's server): while a long fit keeps the worker busy
   (so the job stays queued and only the submit is measured), a grid mesh of about that many MiB is
   submitted (then cancelled); the server's peak resident memory (VmHWM, reset just before through
   /proc/PID/clear_refs) against its resident memory before: the rise, and the rise per body byte.

Starts its own server with the launcher (the add-on's path) unless --server is given.

    .venv/bin/python scripts/bench_server.py                      # tiny jobs, CPU-friendly
    .venv/bin/python scripts/bench_server.py --mesh /work/shared/data/meshes/bunny00.off --steps 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from nstr.remote.client import BackendClient, BackendError
from nstr.remote.launcher import LocalBackend

TINY = {"preset": "quick", "batch_size": 512, "task.resolution": 24, "task.samples": 2000,
        "task.metric_points": 2000, "field.n_freqs": 8, "field.grid_levels": 2, "field.width": 16, "field.depth": 1}


def load_mesh(path: str | None) -> dict[str, np.ndarray]:
    if path:
        from nstr.geometry.mesh import load_mesh as read

        mesh, _ = read(path)
        return {"vertices": mesh.vertices.astype(np.float32), "faces": mesh.faces.astype(np.int32)}
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    return {"vertices": np.asarray(m.vertices, np.float32), "faces": np.asarray(m.faces, np.int32)}


def submit_from_threads(client: BackendClient, mesh: dict[str, np.ndarray], config: dict[str, Any],
                        per_thread: list[int]) -> tuple[list[str], list[float], list[str], float]:
    """One client thread per entry of ``per_thread``, each submitting that many jobs, all released at
    once by a barrier: (job ids, each submit's seconds, errors, seconds until the last submit answered)."""
    ids: list[str] = []
    submit_s: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(per_thread))

    def one_client(k: int) -> None:
        mine = BackendClient(client.url, token=client.token, timeout=120)
        barrier.wait()
        for _ in range(k):
            t = time.perf_counter()
            try:
                job = mine.submit("sdf", config, mesh)
            except Exception as err:  # counted, not hidden
                with lock:
                    errors.append(str(err))
                continue
            with lock:
                ids.append(job)
                submit_s.append(time.perf_counter() - t)

    threads = [threading.Thread(target=one_client, args=(k,)) for k in per_thread]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids, submit_s, errors, time.perf_counter() - t0


def load_test(client: BackendClient, mesh: dict[str, np.ndarray], config: dict[str, Any], n_jobs: int,
              n_clients: int) -> dict[str, Any]:
    per = [n_jobs // n_clients + (1 if i < n_jobs % n_clients else 0) for i in range(n_clients)]
    t0 = time.perf_counter()
    ids, submit_s, errors, t_submitted = submit_from_threads(client, mesh, config, per)
    final: dict[str, dict[str, Any]] = {}
    while len(final) < len(ids):
        for st in client.jobs():
            if st["id"] in ids and st["state"] in ("done", "failed", "cancelled"):
                final[st["id"]] = st
        time.sleep(0.5)
    t_all = time.perf_counter() - t0
    listed = {st["id"] for st in client.jobs()}
    states: dict[str, int] = {}
    for st in final.values():
        states[st["state"]] = states.get(st["state"], 0) + 1
    order = sorted(final.values(), key=lambda s: s["id"])
    in_order = all(a["started"] <= b["started"] for a, b in zip(order, order[1:]))
    runs = [st["finished"] - st["started"] for st in final.values() if st["state"] == "done"]
    return {"jobs": n_jobs, "clients": n_clients, "accepted": len(ids), "refused": len(errors),
            "unique_ids": len(set(ids)), "listed": len(set(ids) & listed), "states": states,
            "run_in_submission_order": in_order, "submit_phase_s": t_submitted, "wall_s": t_all,
            "submit_ms_median": 1000 * statistics.median(submit_s) if submit_s else None,
            "submit_ms_max": 1000 * max(submit_s) if submit_s else None,
            "fit_s_mean": statistics.mean(runs) if runs else None, "errors": errors[:3]}


def overhead(client: BackendClient, mesh: dict[str, np.ndarray], config: dict[str, Any], repeats: int,
             poll: float) -> dict[str, Any]:
    rows = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        job = client.submit("sdf", config, mesh)
        t_submit = time.perf_counter() - t0
        st = client.wait(job, poll=poll)
        t1 = time.perf_counter()
        client.status(job)
        t_status = time.perf_counter() - t1
        t2 = time.perf_counter()
        _meta, arrays = client.result(job)
        t_result = time.perf_counter() - t2
        total = time.perf_counter() - t0
        fit = st["finished"] - st["started"]
        rows.append({"total": total, "fit": fit, "overhead": total - fit, "submit": t_submit, "status": t_status,
                     "result": t_result, "result_bytes": sum(a.nbytes for a in arrays.values()),
                     "queued": st["started"] - st["created"]})
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def submit_latency(client: BackendClient, mesh: dict[str, np.ndarray], config: dict[str, Any],
                   n_clients: int) -> dict[str, Any]:
    """``n_clients`` submits released at once by a barrier while a long fit runs; each one's latency."""
    fit = busy_worker(client, mesh, config)
    ids, latencies, errors, _ = submit_from_threads(client, mesh, config, [1] * n_clients)
    fit_state = client.status(fit)["state"]
    for job in [*ids, fit]:
        client.cancel(job)
    lat = sorted(latencies)
    pick = (lambda q: 1000 * lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))]) if lat else (lambda q: None)
    return {"clients": n_clients, "accepted": len(ids), "refused": len(errors), "fit_state": fit_state,
            "p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": pick(1.0), "errors": errors[:3]}


def grid_mesh(mib: float) -> dict[str, np.ndarray]:
    """A flat n x n grid whose float32 vertices + int32 faces take about ``mib`` MiB on the wire."""
    n = int((mib * 2**20 / 36) ** 0.5)
    ij = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2)
    xy = ij / (n - 1)
    vertices = np.concatenate([xy, 0.5 * xy[:, :1] * xy[:, 1:]], 1).astype(np.float32)  # a saddle: not flat
    k = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None, :]).reshape(-1)
    faces = np.concatenate([np.stack([k, k + n, k + 1], 1), np.stack([k + 1, k + n, k + n + 1], 1)]).astype(np.int32)
    return {"vertices": vertices, "faces": faces}


def reset_peak(pid: int) -> None:
    """Set the process's VmHWM back to its current VmRSS (Linux >= 4.0), so a peak measures one step."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmHWM"], fields["VmRSS"]


def busy_worker(client: BackendClient, mesh: dict[str, np.ndarray], config: dict[str, Any]) -> str:
    """Start a long fit and wait until it fits: jobs submitted meanwhile stay queued, so what a submit
    costs is not mixed with what running its job costs."""
    fit = client.submit("sdf", {**config, "steps": 1_000_000}, mesh)
    deadline = time.monotonic() + 120
    while client.status(fit)["phase"] != "fitting" and time.monotonic() < deadline:
        time.sleep(0.05)
    return fit


def upload_memory(client: BackendClient, pid: int, mib: float, small: dict[str, np.ndarray],
                  config: dict[str, Any]) -> dict[str, Any]:
    mesh = grid_mesh(mib)
    body = sum(a.nbytes for a in mesh.values())
    fit = busy_worker(client, small, config)
    # transport only: a task name no server has is refused after the body was received and parsed
    reset_peak(pid)
    _, rss0 = peak_rss(pid)
    t = time.perf_counter()
    try:
        client.submit("no-such-task", {}, mesh)
    except BackendError:
        pass
    transport_s = time.perf_counter() - t
    hwm_t, _ = peak_rss(pid)
    # the whole submission: the body, then the SDF task's synchronous mesh validation
    reset_peak(pid)
    _, rss1 = peak_rss(pid)
    t = time.perf_counter()
    job = client.submit("sdf", {"preset": "quick", "steps": 1}, mesh)
    seconds = time.perf_counter() - t
    hwm2, rss2 = peak_rss(pid)
    state = client.status(job)["state"]
    for j in (job, fit):
        client.cancel(j)
    return {"body_mib": body / 2**20, "submit_s": seconds, "rss_before_mib": rss1 / 2**20,
            "transport_s": transport_s, "transport_rise_mib": (hwm_t - rss0) / 2**20,
            "peak_after_mib": hwm2 / 2**20, "peak_rise_mib": (hwm2 - rss1) / 2**20,
            "rise_per_body": (hwm2 - rss1) / body, "rss_after_mib": rss2 / 2**20, "job_state": state}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", help="URL of a running server (default: start one with the launcher)")
    ap.add_argument("--token")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--clients", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--mesh", help="mesh file (default: an icosphere with 162 vertices)")
    ap.add_argument("--repeats", type=int, default=5, help="sequential jobs for the overhead figures")
    ap.add_argument("--poll", type=float, default=0.05, help="status poll interval of the overhead run")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--concurrent", type=int, default=50, help="clients submitting at once while a fit runs "
                                                               "(0: skip the latency figure)")
    ap.add_argument("--upload-mb", type=float, default=0, help="also measure the server's memory for an upload "
                                                               "of this many MiB (launcher's server only)")
    args = ap.parse_args()

    mesh = load_mesh(args.mesh)
    config = {**TINY, "steps": args.steps}
    backend = None
    if args.server:
        client = BackendClient(args.server, token=args.token, timeout=120)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="nstr-bench-"))
        backend = LocalBackend(sys.executable, log_dir=tmp / "logs", device=args.device, jobs_dir=tmp / "jobs")
        t = time.perf_counter()
        backend.start(timeout=180)
        print(f"server started by the launcher in {time.perf_counter() - t:.1f} s ({backend.url}, logs {tmp})")
        client = backend.client(timeout=120)
    try:
        health = client.health()
        print(f"device: {health['device_name']}  mesh: {len(mesh['vertices'])} vertices, {len(mesh['faces'])} faces  "
              f"config: {config}")
        load = load_test(client, mesh, config, args.jobs, args.clients)
        over = overhead(client, mesh, config, args.repeats, args.poll)
        latency = submit_latency(client, mesh, config, args.concurrent) if args.concurrent > 0 else None
        upload = upload_memory(client, backend.process.pid, args.upload_mb, mesh, config) \
            if args.upload_mb > 0 and backend is not None else None
    finally:
        if backend is not None:
            backend.stop()
    print("\nLoad test")
    print("| jobs | clients | accepted | unique ids | listed | final states | in order | submit phase | all finished | submit median / max | fit mean |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    states = ", ".join(f"{n} {s}" for s, n in load["states"].items())
    print(f"| {load['jobs']} | {load['clients']} | {load['accepted']} | {load['unique_ids']} | {load['listed']} | "
          f"{states} | {load['run_in_submission_order']} | {load['submit_phase_s']:.2f} s | {load['wall_s']:.1f} s | "
          f"{load['submit_ms_median']:.0f} / {load['submit_ms_max']:.0f} ms | {load['fit_s_mean']:.2f} s |")
    print(f"\nRound trip, one job at a time (median of {args.repeats}, poll every {args.poll * 1000:.0f} ms)")
    print("| client submit->result | fit (server) | overhead | overhead share | submit | one status | result download | result size | queued |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {over['total']:.3f} s | {over['fit']:.3f} s | {1000 * over['overhead']:.0f} ms | "
          f"{100 * over['overhead'] / over['total']:.1f}% | {1000 * over['submit']:.1f} ms | "
          f"{1000 * over['status']:.1f} ms | {1000 * over['result']:.1f} ms | {over['result_bytes'] / 1024:.0f} KiB | "
          f"{1000 * over['queued']:.1f} ms |")
    if latency is not None:
        print(f"\nSubmit latency: {latency['clients']} clients submit at once while a fit runs")
        print("| clients | accepted | refused | p50 | p95 | max | fit still running |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        fmt = (lambda v: f"{v:.0f} ms" if v is not None else "-")
        print(f"| {latency['clients']} | {latency['accepted']} | {latency['refused']} | {fmt(latency['p50_ms'])} | "
              f"{fmt(latency['p95_ms'])} | {fmt(latency['max_ms'])} | {latency['fit_state'] == 'running'} |")
    if upload is not None:
        print(f"\nUpload memory (server peak RSS above its RSS before, a {upload['body_mib']:.1f} MiB grid mesh)")
        print("| body | transport only: time, peak rise | full sdf submit: time | RSS before | peak | peak rise | rise / body |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        print(f"| {upload['body_mib']:.1f} MiB | {upload['transport_s']:.2f} s, {upload['transport_rise_mib']:.0f} MiB | "
              f"{upload['submit_s']:.2f} s | {upload['rss_before_mib']:.0f} MiB | "
              f"{upload['peak_after_mib']:.0f} MiB | {upload['peak_rise_mib']:.0f} MiB | {upload['rise_per_body']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"load": load, "overhead": over, "latency": latency, "upload": upload,
                                         "device": health["device_name"],
                                         "config": config}, indent=2))
    lost = load["accepted"] != load["unique_ids"] or load["listed"] != load["accepted"] \
        or sum(load["states"].values()) != load["accepted"]
    return 1 if lost or load["refused"] or (latency is not None and latency["refused"]) else 0


if __name__ == "__main__":
    sys.exit(main())
