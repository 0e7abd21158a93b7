#!/usr/bin/env python
"""NeRF benchmark scored against the truth: Blender renders known meshes, we fit, extract, compare.

For each scene (Suzanne, a cube, the shared bunny, an image-textured Suzanne; rendered by Cycles on the
CPU, denoising off, transparent film, cameras on the full sphere) and each configuration
(``geometry:model``, e.g. ``sdf:nstr``, ``sdf:hashgrid``, ``density:nstr``, ``density:hashgrid``, all at
the same field parameter budget and steps) it reports side by side: test-view PSNR / SSIM, and the
extracted mesh against the true one: Chamfer-L1, F@1%, normal consistency (nstr.geometry.metrics, in
the true mesh's unit box; exact distances, so the true mesh scores 1), watertightness, components and
genus (nstr.geometry.topology), and the time.

    # CPU (this machine): tiny scenes
    flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_nerf.py --scenes cube,suzanne --views 24 --res 64
    # GPU goal: 100 views at 400 px of the textured object, 5 minutes
    .venv/bin/python scripts/bench_nerf.py --scenes textured --views 100 --res 400 --preset default \\
        --steps 5000 --params 2000000 --configs sdf:hashgrid,sdf:nstr --device cuda

Writes OUT/results.json, OUT/results.md (the table), OUT/<scene>/<config>.ply (PLY colours = albedo),
OUT/<scene>/<config>_renders/test_sheet.png and OUT/<scene>_meshes.png (the true mesh beside each
extracted one, shaded).

Photo-like captures (issue 31, "no masks needed"): ``--world sky`` renders the scenes without alpha in
front of a direction-dependent world (nstr.nerf.truth_scenes), and each configuration runs once per
``--backgrounds`` entry (``task.background``), so the rows with and without the learnt background stand
side by side:

    .venv/bin/python scripts/bench_nerf.py --scenes cube --world sky --views 24 --res 48 --steps 400 \
        --configs density:hashgrid --backgrounds color,learned

Photo captures with known faults (issue 31, "validation with known truth"): ``--world photo`` renders each
object standing on a textured ground under the sky (opaque, upper-hemisphere cameras), writes the views as
a capture with per-photo exposure gains 0.7-1.4, pose noise of 0.5 degrees and 1% of the object's size,
and pincushion distortion (k1 0.3, k2 0.1) on every third photo (nstr.nerf.photo_capture), and fits from
that capture as a user would: nerfstudio ``transforms.json`` (``--capture-format colmap``: the COLMAP text
model). The region box (``task.box``) is the true object's box padded by 10%, its floor 0.5% of the
object's size above the ground; ``task.appearance=exposure`` and ``task.pose_refine=on``. The table adds
the wall time of fit + mesh (fit includes scoring the held-out photos). The CPU goal's run (2 cores, 60
photos at 128 px, default preset with steps, batch and ray samples cut to fit 10 minutes a row on 2 cores):

    flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_nerf.py --world photo --scenes cube,suzanne,bunny \\
        --views 56 --test-views 4 --res 128 --preset default --steps 200 --params 300000 --threads 2 \\
        --configs sdf:hashgrid --backgrounds color,learned --set train.batch_size=1024 --set task.render_steps=128 \\
        --set task.n_importance=16 --mesh-resolution 128
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


def picture(path: Path, meshes: list[tuple[str, "object", "object"]], n_points: int = 60000) -> None:
    """Shaded pictures of meshes side by side, same view for all: area-uniform surface samples lit by
    one light (two-sided, so the look does not depend on winding), drawn far to near."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from nstr.geometry.mesh import Mesh
    from nstr.geometry.sampling import surface_points

    az, el = np.radians(-55.0), np.radians(25.0)
    view = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])  # towards the viewer
    right = np.cross([0.0, 0.0, 1.0], view)
    right /= np.linalg.norm(right)
    up = np.cross(view, right)
    light = view + 0.5 * right + 0.5 * up
    light /= np.linalg.norm(light)
    lo, hi = np.asarray(meshes[0][1]).min(0), np.asarray(meshes[0][1]).max(0)
    c, r = (lo + hi) / 2, (hi - lo).max() * 0.85
    fig, axes = plt.subplots(1, len(meshes), figsize=(3.0 * len(meshes), 3.2))
    for ax, (title, v, f) in zip(np.atleast_1d(axes), meshes):
        p, n = surface_points(Mesh(np.asarray(v, np.float64), np.asarray(f, np.int64)), n_points,
                              np.random.default_rng(0))
        q = p - c
        order = np.argsort(q @ view)  # far first
        shade = 0.15 + 0.8 * np.abs(n @ light)
        ax.scatter((q @ right)[order], (q @ up)[order], c=shade[order], cmap="gray", vmin=0, vmax=1, s=3.0,
                   marker="s", linewidths=0)
        ax.set_xlim(-r, r)
        ax.set_ylim(-r, r)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_scene(out: Path, kind: str, n_train: int, n_test: int, res: int, engine: str = "CYCLES",
                 samples: int = 16) -> Path:
    """A truth scene for other scripts (scripts/bench_gpu.py): nstr.nerf.truth_scenes, Cycles only."""
    from nstr.nerf.truth_scenes import render_truth_scene

    if engine.upper() != "CYCLES":
        raise ValueError("truth scenes render with Cycles (the only engine Debian's Blender runs headless here)")
    return render_truth_scene(Path(out), kind, n_train, n_test, res, samples=samples)


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
    ap.add_argument("--world", default=None, choices=("sky", "photo"),
                    help="render without alpha in front of this world (sky), or as a photo capture on a textured "
                         "ground with known faults (photo); default: transparent film")
    ap.add_argument("--capture-format", default="nerfstudio", choices=("nerfstudio", "colmap"),
                    help="with --world photo: fit from the capture's transforms.json or its COLMAP text model")
    ap.add_argument("--backgrounds", default=None,
                    help="task.background values to run each config with (default: color; with --world: color,learned)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    import numpy as np
    import torch

    from nstr.geometry.export import write_mesh
    from nstr.geometry.mesh import Mesh
    from nstr.geometry.metrics import mesh_metrics
    from nstr.geometry.topology import topology
    from nstr.nerf.photo_capture import object_region, write_photo_capture
    from nstr.nerf.source import load_dataset
    from nstr.nerf.truth_scenes import load_true_mesh, render_truth_scene
    from nstr.tasks.nerf import fit_nerf, mesh_arrays, nerf_config, save_renders

    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    backgrounds = (args.backgrounds or ("color,learned" if args.world else "color")).split(",")
    for scene in args.scenes.split(","):
        t0 = time.perf_counter()
        world = f"_{args.world}" if args.world else ""
        folder = render_truth_scene(args.out / f"scene_{scene}{world}_{args.views}x{args.res}", scene, args.views,
                                    args.test_views, args.res, samples=args.samples, world=args.world)
        photo: dict = {}
        true_v, true_f = load_true_mesh(folder)
        if args.world == "photo":   # fit from the capture with known faults, the object's box as the region
            capture = folder.parent / f"{folder.name}_capture"
            if not (capture / "truth.json").is_file():
                write_photo_capture(folder, capture)
            truth = json.loads((capture / "truth.json").read_text())
            folder = capture / "colmap" if args.capture_format == "colmap" else capture
            photo = {"task.box": object_region(truth), "task.appearance": "exposure", "task.pose_refine": True}
        render_s = time.perf_counter() - t0
        true_topo = topology(true_f)
        dataset = load_dataset(folder, args.res)
        pictures = [("true mesh", true_v, true_f)]
        for config, background in [(c, b) for c in args.configs.split(",") for b in backgrounds]:
            geometry, model = config.split(":")
            overrides = {"model": model, "params": args.params, "steps": args.steps, "device": args.device,
                         "train.eval_every": 0, "task.image_size": args.res, "task.geometry": geometry,
                         "task.mesh_resolution": args.mesh_resolution, "task.background": background, **photo}
            overrides.update(dict(kv.split("=", 1) for kv in args.overrides))
            cfg = nerf_config(args.preset, overrides)
            print(f"bench_nerf: {scene} {config} background={background} ... (load {load_average()})", flush=True)
            t1 = time.perf_counter()
            res = fit_nerf(dataset, cfg)
            fit_s = time.perf_counter() - t1
            name = f"{geometry}_{model}" + (f"_{background}" if len(backgrounds) > 1 else "")
            save_renders(res, args.out / scene / f"{name}_renders")
            row = {"scene": scene + world + (f" ({args.capture_format})" if photo else ""),
                   "views": f"{len(dataset.train)}+{len(dataset.test)}", "geometry": geometry, "model": model, "background": background,
                   "params": res.report["params"],
                   "field_params": res.report["field_params"], "steps": res.report["steps"],
                   "train_s": res.report["timings"]["fitting"], "psnr": res.metrics["psnr"],
                   "ssim": res.metrics["ssim"], "render_views_s": round(render_s, 1), "load": load_average()}
            try:
                t2 = time.perf_counter()
                arrays = mesh_arrays(res)
                row["mesh_s"] = round(time.perf_counter() - t2, 1)
                row["fit_mesh_s"] = round(fit_s + row["mesh_s"], 1)
                v, f = arrays["vertices"].astype(np.float64), arrays["faces"].astype(np.int64)
                m = mesh_metrics(Mesh(v, f), Mesh(true_v, true_f))
                topo = topology(f)
                row.update(chamfer_l1=m["chamfer_l1"], fscore_1pct=m["fscore_1pct"],
                           normal_consistency=m["normal_consistency"], iou=m["iou"],
                           watertight=topo["watertight"], genus=topo["genus"], components=topo["components"],
                           true_genus=true_topo["genus"], true_components=true_topo["components"],
                           dropped=res.report["mesh"]["floaters"]["dropped"])
                write_mesh(args.out / scene / f"{name}.ply", arrays, primary="color_albedo")
                pictures.append((f"{geometry} {model} {background}: F@1% {m['fscore_1pct']:.2f}", v, f))
            except Exception as err:  # noqa: BLE001 - a benchmark records the failure and goes on
                row["mesh_error"] = str(err)
            row["total_s"] = round(time.perf_counter() - t1, 1)
            rows.append(row)
            print(f"bench_nerf: {json.dumps(row)}", flush=True)
            (args.out / "results.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                                               "rows": rows}, indent=2, default=str))
        picture(args.out / f"{scene}{world}_meshes.png", pictures)
    head = ("| scene | views | geometry | model | background | params (field) | steps | train s | fit+mesh s | PSNR dB | SSIM | Chamfer-L1 | F@1% | "
            "normal cons. | watertight | components (true; dropped) | genus (true) | load |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "mesh_error" in r:
            mesh = f"no mesh: {r['mesh_error'][:40]} | | | | | "
        else:
            mesh = (f"{r['chamfer_l1']:.4f} | {r['fscore_1pct']:.3f} | {r['normal_consistency']:.3f} | "
                    f"{'yes' if r['watertight'] else 'no'} | {r['components']} ({r['true_components']}; "
                    f"{r['dropped']}) | {r['genus']} ({r['true_genus']})")
        lines.append(f"| {r['scene']} | {r['views']} | {r['geometry']} | {r['model']} | {r['background']} | "
                     f"{r['params']:,} ({r['field_params']:,}) | {r['steps']} | {r['train_s']:.0f} | "
                     f"{r.get('fit_mesh_s', '')} | {r['psnr']:.2f} | {r['ssim']:.3f} | {mesh} | {r['load']} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
