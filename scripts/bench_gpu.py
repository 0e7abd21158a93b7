#!/usr/bin/env python
"""The GPU benchmark, one command (at most ~8 minutes on one GPU); prints and saves JSON + markdown:

1. the bunny end to end, per stage (sampling, fitting, extraction, attributes), with IoU and F@1%,
   for NSTR and the hash grid;
2. field queries per second, training (forward + backward, with NSTR's PDE term) and inference,
   for every model at matched parameters, and for NSTR and the hash grid inference under
   ``torch.compile`` with its compile time (not with ``--tiny``);
3. a Blender-rendered NeRF scene (checker-textured Suzanne, Cycles): test PSNR against training time;
4. marching cubes at 512^3 on a sphere (known answer: every vertex at radius 0.5), the PyTorch backend on
   the device side by side with scikit-image on the CPU (same grid, same field).

    .venv/bin/python scripts/bench_gpu.py --out bench/gpu            # on a machine with CUDA
    .venv/bin/python scripts/bench_gpu.py --tiny --out /tmp/gpu_tiny # CPU smoke run, about a minute

Every path runs on whatever ``--device`` resolves to (``auto``: CUDA when present, else the CPU); the
report names the device and the precision policy. ``--tiny`` shrinks every size: its figures are a
smoke test of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MODELS = ("nstr", "siren", "ffn", "hashgrid")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_bunny(dev: torch.device, tiny: bool) -> list[dict[str, Any]]:
    from nstr.geometry.mesh import load_mesh
    from nstr.tasks.sdf import fit_sdf, sdf_config

    mesh, report = load_mesh(DATA / "meshes" / "bunny00.off")
    if tiny:
        over = {"steps": 80, "batch_size": 2048, "task.samples": 20_000, "task.resolution": 32,
                "task.metric_points": 5000, "task.eikonal_weight": 0.0, "task.normal_weight": 0.0}
        preset = "quick"
    else:
        over, preset = {"steps": 3000, "batch_size": 262144, "task.resolution": 512}, "default"
    rows = []
    for model in ("nstr", "hashgrid"):
        cfg = sdf_config(preset, {**over, "model": model, "device": str(dev)})
        t0 = time.perf_counter()
        res = fit_sdf(mesh, cfg, mesh_report=report, cache_dir=None)
        wall = time.perf_counter() - t0
        m, t = res.report["metrics"], res.report["timings"]
        rows.append({"model": model, "params": res.report["params"], "wall_s": round(wall, 2),
                     "seconds": res.report["seconds"], "timings": t, "iou": m.get("iou"),
                     "fscore_1pct": m.get("fscore_1pct"), "faces": res.report["extraction"]["faces"]})
        print(f"bunny {model}: {rows[-1]}", flush=True)
    return rows


def bench_queries(dev: torch.device, tiny: bool) -> list[dict[str, Any]]:
    from nstr.config import FieldConfig
    from nstr.fields import build_field

    params, n, reps = (5000, 4096, 2) if tiny else (200_000, 2**20, 10)
    rows = []
    for model in MODELS:
        cfg = FieldConfig(model=model, params=params, max_freq=24.0, grid_max_res=512, grid_levels=16,
                          grid_table_size=2**12 if tiny else 2**16)
        torch.manual_seed(0)
        field = build_field(cfg, 3, 1).to(dev)
        x = torch.rand(n, 3, device=dev) * 2 - 1
        with torch.no_grad():
            field(x)
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(reps):
                field(x)
            _sync(dev)
            infer = n * reps / (time.perf_counter() - t0)
            compiled_qps, compile_s = _compiled_inference(field, x, dev, reps) if not tiny and model in (
                "nstr", "hashgrid") else (None, None)
        from nstr.device import autocast

        def train_step() -> None:
            with autocast(dev):
                y, terms = field.training_terms(x, 0.25)
                loss = y.float().square().mean() + 1e-5 * terms.get("pde", torch.zeros((), device=dev)).float()
            loss.backward()
            for p in field.parameters():
                p.grad = None

        train_step()
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(reps):
            train_step()
        _sync(dev)
        train = n * reps / (time.perf_counter() - t0)
        rows.append({"model": model, "params": int(field.n_params), "batch": n, "inference_qps": round(infer),
                     "training_qps": round(train), "compiled_inference_qps": compiled_qps, "compile_s": compile_s})
        print(f"queries {model}: {rows[-1]}", flush=True)
    return rows


def _compiled_inference(field: Any, x: torch.Tensor, dev: torch.device, reps: int) -> tuple[int, float]:
    """Inference queries/s of ``torch.compile(field)`` and the seconds its compile took: whether compiling
    pays on this device (on the CPU it does not: scripts/bench_speed.py)."""
    t0 = time.perf_counter()
    compiled = torch.compile(field, dynamic=False)
    with torch.no_grad():
        compiled(x)
        _sync(dev)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(reps):
            compiled(x)
        _sync(dev)
    return round(x.shape[0] * reps / (time.perf_counter() - t0)), round(compile_s, 1)


def bench_nerf(dev: torch.device, tiny: bool, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_nerf import render_scene

    from nstr.nerf.source import load_dataset
    from nstr.tasks.nerf import fit_nerf, nerf_config

    n_train, n_test, res, samples = (8, 2, 32, 4) if tiny else (100, 8, 400, 64)   # 8: the fewest a NeRF takes
    scene = work / "nerf_scene"
    t0 = time.perf_counter()
    if not (scene / "transforms_train.json").is_file():
        render_scene(scene, "suzanne", n_train, n_test, res, "CYCLES", samples)
    render_s = time.perf_counter() - t0
    dataset = load_dataset(scene, res)
    over = ({"steps": 20, "batch_size": 256, "train.eval_every": 10, "train.log_every": 10} if tiny else
            {"steps": 5000, "batch_size": 8192, "train.eval_every": 500, "train.log_every": 100})
    cfg = nerf_config("quick" if tiny else "default", {**over, "device": str(dev)})
    result = fit_nerf(dataset, cfg)
    curve = [(row["seconds"], row["psnr"]) for row in result.history if "psnr" in row]
    out = {"views": f"{n_train} train + {n_test} test at {res}x{res}", "render_s": round(render_s, 1),
           "train_s": result.report["timings"]["fitting"], "test_psnr": result.metrics["psnr"],
           "psnr_vs_seconds": curve}
    print(f"nerf: {out}", flush=True)
    return out


def bench_marching_cubes(dev: torch.device, tiny: bool) -> dict[str, Any]:
    """Dense extraction (the full grid) of a sphere's SDF evaluated on ``dev``: the torch backend keeps the
    grid on the device; skimage gets one host copy of it and runs on the CPU."""
    from nstr.geometry.extraction import extract_surface

    resolution = 64 if tiny else 512

    def sphere(x: torch.Tensor) -> torch.Tensor:
        return x.norm(dim=-1) - 0.5

    rows: dict[str, dict[str, Any]] = {}
    mc_s: dict[str, float] = {}
    for backend in ("torch", "skimage"):
        extract_surface(sphere, 16, mc=backend, sparse_from=10**9, device=dev)  # warm-up: kernels, allocator
        _sync(dev)
        t0 = time.perf_counter()
        ext = extract_surface(sphere, resolution, mc=backend, sparse_from=10**9, device=dev)
        _sync(dev)
        seconds = time.perf_counter() - t0
        mc_s[backend] = ext.seconds_mc
        rows[backend] = {"runs_on": str(dev) if backend == "torch" else "cpu", "seconds": round(seconds, 3),
                         "eval_s": round(ext.seconds_eval, 3), "mc_s": round(ext.seconds_mc, 3),
                         "vertices": int(len(ext.vertices)), "faces": int(len(ext.faces)),
                         "max_radius_error": float(np.abs(np.linalg.norm(ext.vertices, axis=1) - 0.5).max())}
        print(f"marching cubes {backend}: {rows[backend]}", flush=True)
    t, sk = rows["torch"], rows["skimage"]
    return {"resolution": resolution, "voxel": 2.0 / (resolution - 1), "backends": rows,
            "same_counts": t["vertices"] == sk["vertices"] and t["faces"] == sk["faces"],
            "mc_speedup": round(mc_s["skimage"] / mc_s["torch"], 2)}


def to_markdown(doc: dict[str, Any]) -> str:
    from nstr.tasks.sdf import STAGES

    lines = [f"# GPU benchmark on {doc['device']} ({'tiny smoke run' if doc['tiny'] else 'full'})", "",
             f"Precision: {doc['precision']}", "", "## Bunny end to end", "",
             "| model | params | seconds | " + " | ".join(STAGES) + " | IoU | F@1% |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["bunny"]:
        t = r["timings"]
        lines.append(f"| {r['model']} | {r['params']} | {r['seconds']} | " + " | ".join(str(t.get(k)) for k in STAGES) +
                     f" | {r['iou']:.4f} | {r['fscore_1pct']:.4f} |")
    lines += ["", "## Field queries per second (matched parameters)", "",
              "| model | params | batch | inference q/s | training q/s | compiled inference q/s (compile s) |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['params']} | {r['batch']} | {r['inference_qps']:.3g} | {r['training_qps']:.3g} | "
              + (f"{r['compiled_inference_qps']:.3g} ({r['compile_s']} s)" if r.get("compiled_inference_qps") else "-")
              + " |" for r in doc["queries"]]
    n = doc["nerf"]
    lines += ["", f"## NeRF ({n['views']}, Blender Cycles)", "",
              f"test PSNR {n['test_psnr']} dB after {n['train_s']} s of training; PSNR against time: " +
              ", ".join(f"{s:.1f} s: {p:.2f} dB" for s, p in n["psnr_vs_seconds"])]
    m = doc["marching_cubes"]
    lines += ["", f"## Marching cubes at {m['resolution']}^3 (sphere, dense grid)", "",
              "| backend | runs on | seconds | field s | marching cubes s | vertices | faces | max radius error |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {b} | {r['runs_on']} | {r['seconds']} | {r['eval_s']} | {r['mc_s']} | {r['vertices']} | "
              f"{r['faces']} | {r['max_radius_error']:.2e} |" for b, r in m["backends"].items()]
    lines += ["", f"voxel {m['voxel']:.2e}; same vertex and face counts: {m['same_counts']}; "
                  f"marching cubes speed-up of torch over skimage: {m['mc_speedup']}x"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "gpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="small sizes: a CPU smoke run in about a minute")
    args = ap.parse_args()
    from nstr.device import device_name, precision_policy, resolve_device

    dev = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    doc: dict[str, Any] = {"device": device_name(dev), "tiny": args.tiny, "precision": precision_policy(dev),
                           "load_before": os.getloadavg()[0]}
    doc["marching_cubes"] = bench_marching_cubes(dev, args.tiny)
    doc["queries"] = bench_queries(dev, args.tiny)
    doc["bunny"] = bench_bunny(dev, args.tiny)
    doc["nerf"] = bench_nerf(dev, args.tiny, args.out)
    doc["total_s"] = round(time.perf_counter() - t0, 1)
    doc["load_after"] = os.getloadavg()[0]
    (args.out / "gpu.json").write_text(json.dumps(doc, indent=2, default=lambda v: None if isinstance(v, float)
                                                   and not math.isfinite(v) else str(v)))
    md = to_markdown(doc)
    (args.out / "gpu.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
