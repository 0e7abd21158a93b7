#!/usr/bin/env python
"""NeRF benchmark: NSTR against the hash grid (and the Fourier-feature MLP) at matched parameters, on a
scene rendered by Blender, same steps, side by side: test-view PSNR against training time.

    # CPU (this machine): the tiny scene, 16 views at 64x64
    .venv/bin/python scripts/bench_nerf.py --out demo_output/bench_nerf --views 16 --res 64 --steps 600
    # GPU goal: 100 views at 400x400, 5 minutes per model
    .venv/bin/python scripts/bench_nerf.py --out out/bench_nerf_gpu --views 100 --res 400 --preset default \\
        --steps 5000 --params 2000000 --device cuda

Writes OUT/results.json (per model: params, steps, seconds, test psnr/ssim, PSNR-vs-time curve),
OUT/results.md (a table), OUT/psnr_vs_time.png, OUT/<model>_renders/test_sheet.png (truth above,
render below) and OUT/<model>.ply (the extracted mesh; PLY colours = baked albedo).
Scene: a checker-textured Suzanne (or cube) rendered by Cycles through nstr_blender's
render_nerf_dataset in a bpy subprocess, or any transforms.json folder with --dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RENDER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    from nstr_blender.blender.nerf_render import add_demo_object, render_nerf_dataset
    obj = add_demo_object(bpy.context, {kind!r})
    render_nerf_dataset(bpy.context, [obj], {out!r}, {n_train}, {n_test}, {res}, engine={engine!r},
                        samples={samples})
""")


def render_scene(out: Path, kind: str, n_train: int, n_test: int, res: int, engine: str, samples: int) -> None:
    script = out.parent / f"_render_{out.name}.py"
    script.write_text(RENDER.format(repo=str(REPO), kind=kind, out=str(out), n_train=n_train, n_test=n_test,
                                    res=res, engine=engine, samples=samples))
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(out.parent / "_blender_user")}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    script.unlink()
    if proc.returncode != 0:
        sys.exit(f"bench_nerf: rendering the scene failed:\n{proc.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "demo_output" / "bench_nerf")
    ap.add_argument("--dataset", type=Path, help="use this transforms.json folder instead of rendering one")
    ap.add_argument("--object", choices=("suzanne", "cube"), default="suzanne")
    ap.add_argument("--engine", default="CYCLES")
    ap.add_argument("--samples", type=int, default=32, help="Cycles samples per pixel")
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--test-views", type=int, default=4)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--models", default="nstr,hashgrid,ffn")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--params", type=int, default=40000, help="field parameter budget for every model")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    import numpy as np
    import torch

    from nstr.geometry.export import write_mesh
    from nstr.nerf.dataset import load_dataset
    from nstr.tasks.nerf import fit_nerf, mesh_arrays, nerf_config, save_renders

    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.dataset
    if data is None:
        data = args.out / f"scene_{args.object}_{args.views}x{args.res}"
        if not (data / "transforms_train.json").is_file():
            render_scene(data, args.object, args.views, args.test_views, args.res, args.engine, args.samples)
    dataset = load_dataset(data, args.res)
    results = []
    for model in args.models.split(","):
        overrides = {"model": model, "params": args.params, "steps": args.steps, "device": args.device,
                     "train.eval_every": args.eval_every, "task.image_size": args.res}
        overrides.update(dict(kv.split("=", 1) for kv in args.overrides))
        cfg = nerf_config(args.preset, overrides)
        print(f"bench_nerf: {model} ...", flush=True)
        res = fit_nerf(dataset, cfg)
        save_renders(res, args.out / f"{model}_renders")
        mesh_info: dict = {}
        try:
            arrays = mesh_arrays(res)
            file_arrays = {**arrays, "color_local_frequency": arrays["color_albedo"]}
            write_mesh(args.out / f"{model}.ply", file_arrays)
            mesh_info = res.report.get("mesh", {})
        except Exception as err:  # noqa: BLE001 - a benchmark records the failure and goes on
            mesh_info = {"error": str(err)}
        # the trainer repeats the last metrics on every log row: keep the rows where an evaluation ran
        curve = [(h["seconds"], h["psnr"]) for h in res.history
                 if "psnr" in h and (h["step"] % args.eval_every == 0 or h is res.history[-1])]
        row = {"model": model, "params": res.report["params"], "field_params": res.report["field_params"],
               "steps": res.report["steps"], "seconds": res.report["seconds"], "device": res.report["device"],
               "psnr": res.metrics["psnr"], "ssim": res.metrics["ssim"], "curve_seconds_psnr": curve,
               "occupied_fraction": res.report["occupied_fraction"], "mesh": mesh_info,
               "samples_per_ray": res.report["final_terms"].get("samples_per_ray"),
               "pde_relative": res.report["final_terms"].get("pde_relative")}
        results.append(row)
        print(f"bench_nerf: {model}: {row['params']:,} params, {row['steps']} steps, {row['seconds']:.0f} s, "
              f"test psnr {row['psnr']:.2f} dB, ssim {row['ssim']:.3f}", flush=True)
    doc = {"dataset": dataset.describe(), "preset": args.preset, "params_budget": args.params, "results": results,
           "note": "curve: PSNR on the evaluation subset of test views during training (seconds include evaluation); "
                   "psnr/ssim: all test views at the end, over white"}
    (args.out / "results.json").write_text(json.dumps(doc, indent=2))
    lines = ["| model | params (field) | steps | seconds | test PSNR dB | SSIM | occupied |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['params']:,} ({r['field_params']:,}) | {r['steps']} | {r['seconds']:.0f} | "
              f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['occupied_fraction']:.2f} |" for r in results]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        if r["curve_seconds_psnr"]:
            xs, ys = zip(*r["curve_seconds_psnr"])
            ax.plot(xs, ys, marker="o", label=f"{r['model']} ({r['params']:,} params)")
    ax.set_xlabel(f"training seconds ({results[0]['device'] if results else ''})")
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title(f"NeRF {dataset.describe()['train_views']} views {args.res}x{args.res}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "psnr_vs_time.png", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
