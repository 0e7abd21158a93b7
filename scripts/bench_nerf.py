#!/usr/bin/env python
"""NeRF benchmark scored against the truth: Blender renders known meshes, we fit, extract, compare.

For each scene (Suzanne, a cube, the shared bunny, an image-textured Suzanne; rendered by Cycles on the
CPU, denoising off, transparent film, cameras on the full sphere) and each configuration
(``geometry:model``, e.g. ``sdf:nstr``, ``sdf:hashgrid``, ``density:nstr``, ``density:hashgrid``, all at
the same field parameter budget and steps) it reports side by side: test-view PSNR / SSIM, and the
extracted mesh against the true one: Chamfer-L1, F@1%, normal consistency (nstr.geometry.metrics, in
the true mesh's unit box), watertightness and genus (nstr.nerf.mesh_metrics), and the time.

    # CPU (this machine): tiny scenes
    flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_nerf.py --scenes cube,suzanne --views 24 --res 64
    # GPU goal: 100 views at 400 px of the textured object, 5 minutes
    .venv/bin/python scripts/bench_nerf.py --scenes textured --views 100 --res 400 --preset default \\
        --steps 5000 --params 2000000 --configs sdf:hashgrid,sdf:nstr --device cuda

Writes OUT/results.json, OUT/results.md (the table), OUT/<scene>/<config>.ply (PLY colours = albedo),
OUT/<scene>/<config>_renders/test_sheet.png and OUT/<scene>_meshes.png (the true mesh beside each
extracted one, shaded).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def picture(path: Path, meshes: list[tuple[str, "object", "object"]], max_faces: int = 80000) -> None:
    """Shaded pictures of meshes side by side (one light, flat shading), same view for all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    fig = plt.figure(figsize=(3.2 * len(meshes), 3.4))
    lo = meshes[0][1].min(0)
    hi = meshes[0][1].max(0)
    for k, (title, v, f) in enumerate(meshes):
        ax = fig.add_subplot(1, len(meshes), k + 1, projection="3d")
        f = np.asarray(f)
        if len(f) > max_faces:
            f = f[np.random.default_rng(0).choice(len(f), max_faces, replace=False)]  # (holes show as specks)
        tri = np.asarray(v)[f]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        light = np.array([0.4, -0.6, 0.7]) / np.linalg.norm([0.4, -0.6, 0.7])
        shade = 0.25 + 0.7 * np.abs(n @ light)  # two-sided: the look does not depend on winding
        coll = Poly3DCollection(tri, facecolors=plt.cm.gray(shade), edgecolors="none")
        ax.add_collection3d(coll)
        c, r = (lo + hi) / 2, (hi - lo).max() / 2 * 1.1
        ax.set_xlim(c[0] - r, c[0] + r)
        ax.set_ylim(c[1] - r, c[1] + r)
        ax.set_zlim(c[2] - r, c[2] + r)
        ax.view_init(elev=25, azim=-60)
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "demo_output" / "bench_nerf")
    ap.add_argument("--scenes", default="cube,suzanne,bunny,textured")
    ap.add_argument("--configs", default="sdf:nstr,sdf:hashgrid,density:nstr,density:hashgrid")
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--test-views", type=int, default=4)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--params", type=int, default=40000, help="field parameter budget for every model")
    ap.add_argument("--mesh-resolution", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    import numpy as np
    import torch

    from nstr.geometry.export import write_mesh
    from nstr.geometry.mesh import Mesh
    from nstr.geometry.metrics import mesh_metrics
    from nstr.nerf.dataset import load_dataset
    from nstr.nerf.mesh_metrics import topology
    from nstr.nerf.truth_scenes import load_true_mesh, render_truth_scene
    from nstr.tasks.nerf import fit_nerf, mesh_arrays, nerf_config, save_renders

    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for scene in args.scenes.split(","):
        t0 = time.perf_counter()
        folder = render_truth_scene(args.out / f"scene_{scene}_{args.views}x{args.res}", scene, args.views,
                                    args.test_views, args.res, samples=args.samples)
        render_s = time.perf_counter() - t0
        true_v, true_f = load_true_mesh(folder)
        true_topo = topology(true_v, true_f)
        dataset = load_dataset(folder, args.res)
        pictures = [("true mesh", true_v, true_f)]
        for config in args.configs.split(","):
            geometry, model = config.split(":")
            overrides = {"model": model, "params": args.params, "steps": args.steps, "device": args.device,
                         "train.eval_every": 0, "task.image_size": args.res, "task.geometry": geometry,
                         "task.mesh_resolution": args.mesh_resolution}
            overrides.update(dict(kv.split("=", 1) for kv in args.overrides))
            cfg = nerf_config(args.preset, overrides)
            print(f"bench_nerf: {scene} {config} ... (load {load_average()})", flush=True)
            t1 = time.perf_counter()
            res = fit_nerf(dataset, cfg)
            fit_s = time.perf_counter() - t1
            save_renders(res, args.out / scene / f"{geometry}_{model}_renders")
            row = {"scene": scene, "geometry": geometry, "model": model, "params": res.report["params"],
                   "field_params": res.report["field_params"], "steps": res.report["steps"],
                   "train_s": res.report["timings"]["train_s"], "psnr": res.metrics["psnr"],
                   "ssim": res.metrics["ssim"], "render_views_s": round(render_s, 1), "load": load_average()}
            try:
                t2 = time.perf_counter()
                arrays = mesh_arrays(res)
                row["mesh_s"] = round(time.perf_counter() - t2, 1)
                v, f = arrays["vertices"].astype(np.float64), arrays["faces"].astype(np.int64)
                m = mesh_metrics(Mesh(v, f), Mesh(true_v, true_f), n_points=50_000)
                topo = topology(v, f)
                row.update(chamfer_l1=m["chamfer_l1"], fscore_1pct=m["fscore_1pct"],
                           normal_consistency=m["normal_consistency"], iou=m["iou"],
                           watertight=topo["watertight"], genus=topo["genus"], components=topo["components"],
                           true_genus=true_topo["genus"])
                write_mesh(args.out / scene / f"{geometry}_{model}.ply",
                           {**arrays, "color_local_frequency": arrays["color_albedo"]})
                pictures.append((f"{geometry} {model}: F@1% {m['fscore_1pct']:.2f}", v, f))
            except Exception as err:  # noqa: BLE001 - a benchmark records the failure and goes on
                row["mesh_error"] = str(err)
            row["total_s"] = round(time.perf_counter() - t1, 1)
            rows.append(row)
            print(f"bench_nerf: {json.dumps(row)}", flush=True)
            (args.out / "results.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                                               "rows": rows}, indent=2, default=str))
        picture(args.out / f"{scene}_meshes.png", pictures)
    head = ("| scene | geometry | model | params (field) | steps | train s | PSNR dB | SSIM | Chamfer-L1 | F@1% | "
            "normal cons. | watertight | genus (true) | load |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "mesh_error" in r:
            mesh = f"no mesh: {r['mesh_error'][:40]} | | | | "
        else:
            mesh = (f"{r['chamfer_l1']:.4f} | {r['fscore_1pct']:.3f} | {r['normal_consistency']:.3f} | "
                    f"{'yes' if r['watertight'] else 'no'} | {r['genus']} ({r['true_genus']})")
        lines.append(f"| {r['scene']} | {r['geometry']} | {r['model']} | {r['params']:,} ({r['field_params']:,}) | "
                     f"{r['steps']} | {r['train_s']:.0f} | {r['psnr']:.2f} | {r['ssim']:.3f} | {mesh} | {r['load']} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
