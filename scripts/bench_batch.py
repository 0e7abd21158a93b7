"""Batch throughput: eight small meshes with --engine local against a local Ray instance (two 1-CPU
jobs at once), Ray's start-up time and memory, and a simulated 4-node Ray cluster on loopback
('ray start' processes) where one worker node is killed mid-batch and no job is lost.

Run under the shared lock:  flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_batch.py
Everything it starts it stops ('ray stop' at the end). Only 127.0.0.1 addresses are given to Ray.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # each job's own share; the local engine sets torch threads itself
os.environ.setdefault("RAY_ENABLE_USAGE_STATS", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")

import numpy as np  # noqa: E402
import ray  # noqa: E402,F401  (first: it puts its bundled psutil on the path)
import psutil  # noqa: E402
import trimesh  # noqa: E402

from nstr.batch.plan import job_config  # noqa: E402
from nstr.batch.runner import BatchOptions, run_batch  # noqa: E402

CONFIG = {"steps": 200, "task.resolution": 32, "task.samples": 20000, "task.metric_points": 10000,
          "train.batch_size": 2048, "field.n_freqs": 16, "field.grid_levels": 4, "field.grid_table_size": 4096,
          "device": "cpu"}
RAY = str(Path(sys.executable).with_name("ray"))
HEAD_PORT = 6391


def meshes(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    c = trimesh.creation
    shapes = {"sphere": c.icosphere(3), "box": c.box((1.5, 1.0, 0.8)), "capsule": c.capsule(1.0, 0.4),
              "cylinder": c.cylinder(0.5, 1.5, sections=48), "cone": c.cone(0.6, 1.2, sections=48),
              "ellipsoid": c.icosphere(3).apply_scale((1.0, 0.6, 0.4)),
              "torus": c.torus(0.7, 0.25) if hasattr(c, "torus") else c.annulus(0.3, 0.7, 0.4),
              "icosahedron": c.icosahedron()}  # (a boolean union came out empty without a boolean engine)
    out = []
    for name, mesh in shapes.items():
        p = folder / f"{name}.off"
        mesh.export(p)
        out.append(p)
    return out


def ray_rss_mb(exclude: int) -> float:
    """Resident memory of the Ray processes on this machine (raylet, GCS, workers, agents)."""
    total = 0
    for p in psutil.process_iter(["name", "cmdline", "memory_info", "pid"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if p.info["pid"] != exclude and ("ray" in (p.info["name"] or "") or "/ray/" in cmd or "ray::" in cmd):
                total += p.info["memory_info"].rss
        except (psutil.Error, TypeError):
            pass
    return total / 2**20


def timed_batch(inputs: list[Path], out: Path, **opts) -> tuple[float, dict]:  # noqa: ANN003
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = run_batch(inputs, job_config("quick", CONFIG), BatchOptions(outdir=out, force=True, **opts),
                    stream=open(os.devnull, "w"))
    return time.perf_counter() - t0, res.counts


def ray_start(*args: str) -> None:
    subprocess.run([RAY, "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats",
                    "--object-store-memory", str(80 * 2**20), *args], check=True, capture_output=True, timeout=120)


def simulated_cluster(inputs: list[Path], out: Path) -> dict:
    """Four 'ray start' nodes (1 CPU each) on loopback; kill one worker node's raylet mid-batch."""
    import ray

    t0 = time.perf_counter()
    ray_start("--head", "--port", str(HEAD_PORT), "--include-dashboard", "false", "--node-manager-port", "6401")
    for i in range(3):
        ray_start("--address", f"127.0.0.1:{HEAD_PORT}", "--node-manager-port", str(6402 + i))
    startup = time.perf_counter() - t0
    ray.init(address=f"127.0.0.1:{HEAD_PORT}", log_to_driver=False, logging_level="WARNING")
    head = ray.get_runtime_context().get_node_id()
    nodes = sum(1 for n in ray.nodes() if n["Alive"])
    killed: dict = {}

    def kill_a_worker_node(snap: dict) -> None:
        if killed:
            return
        for key, ev in snap.items():
            if ev.get("phase") == "fitting" and ev.get("node_id") and ev["node_id"] != head:
                raylet = psutil.Process(int(ev["pid"])).parent()  # a worker's parent is its node's raylet
                if raylet is None or raylet.name() != "raylet":
                    continue
                killed.update(job=key, node=ev["node_id"][:8], raylet=raylet.pid)
                raylet.send_signal(signal.SIGKILL)
                os.kill(int(ev["pid"]), signal.SIGKILL)
                return

    shutil.rmtree(out, ignore_errors=True)
    t1 = time.perf_counter()
    res = run_batch(inputs, job_config("quick", CONFIG),
                    BatchOptions(outdir=out, engine="ray", address=f"127.0.0.1:{HEAD_PORT}", cpus_per_job=1,
                                 max_retries=3, force=True), stream=open(os.devnull, "w"), observer=kill_a_worker_node)
    wall = time.perf_counter() - t1
    retried = {r["input"]: r["attempts"] for r in res.rows if str(r["attempts"]) not in ("1", "")}
    alive_after = sum(1 for n in ray.nodes() if n["Alive"])
    ray.shutdown()
    return {"startup_s": startup, "nodes": nodes, "alive_after": alive_after, "wall_s": wall, "counts": res.counts,
            "killed": killed, "retried": retried, "outputs": sum(1 for p in out.glob("*.ply"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--steps", type=int, default=CONFIG["steps"],
                    help="training steps per job (200: ~3 s fits, where Ray's per-worker start-up shows; "
                         "600: the quick preset's own)")
    args = ap.parse_args()
    CONFIG["steps"] = args.steps
    work = Path(tempfile.mkdtemp(prefix="nstr-bench-batch-"))
    os.environ["NSTR_CACHE"] = str(work / "cache")
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=60)  # no stale local instance
    try:
        inputs = meshes(work / "in")
        print(f"load before: {os.getloadavg()[0]:.2f} (1-min), cores {os.cpu_count()}")
        # warm the sample cache so that no engine pays for sampling that another got for free
        run_batch(inputs, job_config("quick", {**CONFIG, "steps": 1, "task.resolution": 16}),
                  BatchOptions(outdir=work / "warm", force=True), stream=open(os.devnull, "w"))
        rows = []
        for label, threads in (("local, 1 thread", 1), ("local, 2 threads", 2)):
            wall, counts = timed_batch(inputs, work / f"local{threads}", engine="local", cpus_per_job=threads)
            rows.append((label, wall, counts))
        import ray

        base = ray_rss_mb(os.getpid())
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                 _node_ip_address="127.0.0.1", object_store_memory=100 * 2**20)
        t_init = time.perf_counter() - t0
        ray.get(ray.remote(lambda: 1).remote())
        t_first = time.perf_counter() - t0
        mem_idle = ray_rss_mb(os.getpid()) - base
        wall, counts = timed_batch(inputs, work / "ray", engine="ray", cpus_per_job=1)
        rows.append(("ray, 2 x 1-CPU jobs", wall, counts))
        mem_busy = ray_rss_mb(os.getpid()) - base
        ray.shutdown()

        one, two = rows[0][1], rows[1][1]
        print(f"\n8 meshes, steps {CONFIG['steps']}, resolution {CONFIG['task.resolution']} (quick preset, tiny field)")
        print(f"{'engine':<22} {'wall s':>8} {'jobs/min':>9} {'vs local 1 thr':>15} {'vs local 2 thr':>15}  states")
        for label, wall, counts in rows:
            print(f"{label:<22} {wall:8.1f} {60 * 8 / wall:9.2f} {one / wall:14.2f}x {two / wall:14.2f}x  {counts}")
        print(f"\nRay start-up: ray.init {t_init:.1f} s, first task done {t_first:.1f} s after start")
        print(f"Ray memory (RSS of its processes): idle {mem_idle:.0f} MiB, after the batch {mem_busy:.0f} MiB")
        if not args.skip_cluster:
            c = simulated_cluster(inputs, work / "cluster")
            print(f"\nSimulated cluster: {c['nodes']} nodes (1 CPU each, loopback), started in {c['startup_s']:.1f} s")
            print(f"killed node {c['killed'].get('node')} (raylet pid {c['killed'].get('raylet')}) while "
                  f"'{c['killed'].get('job')}' was fitting on it; alive after: {c['alive_after']}")
            print(f"batch: {c['counts']} in {c['wall_s']:.1f} s; outputs {c['outputs']}/8; retried: {c['retried']}")
        print(f"\nload after: {os.getloadavg()[0]:.2f} (1-min)")
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
