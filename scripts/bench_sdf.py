#!/usr/bin/env python
"""SDF benchmark: NSTR against the baselines at matched parameter counts, on the shared meshes
and Blender's Suzanne; metrics and time per stage; attribute pictures from a fixed camera;
marching-cubes, extraction and ground-truth timings at 256^3, 512^3 and 1024^3.

    .venv/bin/python scripts/bench_sdf.py fits --out bench/sdf --params 60000 --preset quick
    .venv/bin/python scripts/bench_sdf.py timings --out bench/sdf --resolutions 256 512 1024
    flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_sdf.py fidelity --presets quick --out bench/fid
    flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_sdf.py scores --out bench/scores
    flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_sdf.py simplify --out bench/simplify
    flock /tmp/nstr-bench.lock .venv/bin/python scripts/bench_sdf.py scoring --out bench/scoring

fidelity: every shared mesh, Suzanne, the generated 133-hole plate (nstr.geometry.plate) and the
120-hole block (nstr.geometry.holes_block), at each preset's own configuration (no --params), NSTR and
hash grid: IoU, F@1%, Chamfer, normal consistency (nstr.geometry.metrics), the extraction resolution
chosen, components and genus of input and result (nstr.geometry.topology) and the floaters dropped,
time per stage (sample, fit, extract, attributes, score), and OUT/fidelity_MESH_MODEL_PRESET.png, the
result beside its input, and the result itself (OUT/fidelity_MESH_MODEL_PRESET.npz). --resume skips
rows done; --rescore fits nothing and scores the kept results again (after a change to the scores).

scores: each mesh scored against itself (the ceiling every fit is measured under) by the scoring path
of the reports, beside the anchors' convention (nearest neighbour between two 100k-point sets, whose
floor depends on the mesh's area), with the scoring time and the mesh's topology.

scoring: a quick-fit-like result of every mesh scored against its input, seconds per stage of the scoring
path (sampling, AABB trees, distances each way with the normal consistency, self-score, the IoU's winding
numbers), fastest of --repeats runs; every repeat's scores must be the same numbers. Run it with
OMP_NUM_THREADS unset: the scores' real condition is 2 cores.

simplify: Suzanne, bunny, rotor and the detail-map composite (nstr.validation.detail_cases "patches") fitted at
the quick preset, the dense result simplified (nstr.geometry.simplify) to 1/--reduction of its faces: vertices,
Chamfer and normal consistency of both against the input, the detail readout's and the simplification's seconds
against the quick wall time, and the share of dense vertices kept where the maps read the finest and the coarsest
third of wavelengths, creases and no detail.

Writes OUT/fits.json + OUT/fits.md (table), OUT/MESH_attributes.png, OUT/timings.json + .md.
Run with OMP_NUM_THREADS=1 on a shared CPU: two threads on two busy cores thrash.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MESHES_DIR = REPO.parent / "shared" / "data" / "meshes"
MODELS = ("nstr", "siren", "ffn", "hashgrid")


def load(name: str):  # noqa: ANN201
    from nstr.geometry.holes_block import holes_block
    from nstr.geometry.mesh import load_mesh, mesh_from_arrays
    from nstr.geometry.plate import holes_plate
    from nstr.geometry.suzanne import suzanne_arrays

    if name == "suzanne":
        return mesh_from_arrays(*suzanne_arrays(), source="bpy primitive_monkey_add")
    if name == "plate":
        return mesh_from_arrays(*holes_plate(), source="nstr.geometry.plate.holes_plate() (133 holes, mm)")
    if name == "holes":
        block = holes_block()
        return mesh_from_arrays(block.vertices, block.faces, source=f"nstr.geometry.holes_block.holes_block() "
                                f"({block.expected['holes']} spherical holes, seed 0, mm)")
    return load_mesh(MESHES_DIR / f"{name}.off")


def all_mesh_names() -> list[str]:
    return sorted(p.stem for p in MESHES_DIR.glob("*.off")) + ["suzanne"]


GENERATED = ["plate", "holes"]  # the CAD-like parts made in code (nstr.geometry.plate, nstr.geometry.holes_block)


# --- fidelity ----------------------------------------------------------------------------------
FIDELITY_MODELS = ("nstr", "hashgrid")
SCORES = ("iou", "fscore_1pct", "chamfer_l1", "normal_consistency")


def rescore_fidelity(args: argparse.Namespace) -> None:
    """Score the results a fidelity run kept (OUT/fidelity_*.npz) again with today's scoring path."""
    from nstr.geometry.export import read_npz
    from nstr.geometry.mesh import Mesh
    from nstr.geometry.metrics import mesh_metrics
    from nstr.geometry.solid import solid_surface

    out = Path(args.out)
    rows = json.loads((out / "fidelity.json").read_text())
    inputs: dict = {}
    for row in rows:
        arrays, _ = read_npz(out / f"fidelity_{row['mesh']}_{row['model']}_{row['preset']}.npz")
        mesh = inputs.setdefault(row["mesh"], solid_surface(load(row["mesh"])[0])[0])   # what the fit is scored on
        m = mesh_metrics(Mesh(arrays["vertices"].astype(np.float64), arrays["faces"].astype(np.int64)), mesh)
        row.update({k: m[k] for k in SCORES}, t_score=m["seconds"]["total"], rescored=m["method"])
        print(json.dumps({k: row[k] for k in ("mesh", "model", "preset", *SCORES)}), flush=True)
    (out / "fidelity.json").write_text(json.dumps(rows, indent=1))
    (out / "fidelity.md").write_text(fidelity_table(rows))
    print((out / "fidelity.md").read_text())


def run_fidelity(args: argparse.Namespace) -> None:
    """The whole matrix (meshes x presets x models) at each preset's own settings; rows appended as they finish."""
    import torch

    from nstr.geometry.export import write_mesh
    from nstr.tasks.sdf import STAGES, fit_sdf, sdf_config

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fidelity.json"
    rows = json.loads(path.read_text()) if path.exists() and args.resume else []
    done = {(r["mesh"], r["model"], r["preset"]) for r in rows}
    for preset in args.presets:
        for name in args.meshes or all_mesh_names() + GENERATED:
            mesh, report = load(name)
            for model in args.models:
                if (name, model, preset) in done:
                    continue
                overrides = {"model": model, "device": "cpu"}
                cfg = sdf_config(preset, {**overrides, **dict(kv.split("=", 1) for kv in args.set)})
                t0 = time.perf_counter()
                res = fit_sdf(mesh, cfg, mesh_report=report)
                wall = time.perf_counter() - t0
                r, m = res.report, res.report["metrics"]
                topo = m["topology"]
                row = {"mesh": name, "model": model, "preset": preset, "params": r["params"], "steps": r["steps"],
                       **{k: m.get(k) for k in SCORES},
                       "genus_in": topo["input"]["genus"], "genus_out": topo["output"]["genus"],
                       "components_in": topo["input"]["components"], "components_out": topo["output"]["components"],
                       # where the input's parts intersect, the solid's surface is what a fit can have (and is scored on)
                       "components_solid": topo.get("solid", {}).get("components"),
                       "genus_solid": topo.get("solid", {}).get("genus"),
                       "dropped": topo["floaters"]["dropped"],
                       "resolution": r["extraction"]["resolution"],
                       "feature_width": r["extraction"]["resolution_choice"]["feature_width_unit"],
                       "evaluated": r["extraction"]["evaluated_points"],
                       **{f"t_{k}": r["timings"].get(k) for k in (*STAGES, "score")},
                       "wall_s": round(wall, 1), "load": [round(x, 2) for x in os.getloadavg()],
                       "faces_in": report.n_faces, "set": args.set}
                rows.append(row)
                print(json.dumps(row), flush=True)
                path.write_text(json.dumps(rows, indent=1))
                write_mesh(out / f"fidelity_{name}_{model}_{preset}.npz", res.arrays)  # to rescore without refitting
                render_pair(mesh, res.arrays, out / f"fidelity_{name}_{model}_{preset}.png",
                            f"{name} / {model} / {preset}: IoU {row['iou']:.3f}, F@1% {row['fscore_1pct']:.3f}, "
                            f"NC {row['normal_consistency']:.3f}, {row['resolution']}^3")
    (out / "fidelity.md").write_text(fidelity_table(rows))
    print((out / "fidelity.md").read_text())


def _solid(row: dict, given: str, solid: str) -> str:
    """The input's count, and the solid's after an arrow where the input's parts intersect (Suzanne: 3 -> 1)."""
    return f"{row.get(given)}" if row.get(solid) is None else f"{row.get(given)}->{row.get(solid)}"


def fidelity_table(rows: list[dict]) -> str:
    lines = ["| mesh | model | preset | IoU | F@1% | Chamfer-L1 | NC | components in/out (dropped; in->solid where parts intersect) | genus in/out | "
             "res | sample s | fit s | extract s | attr s | score s | wall s | load 1m |", "|" + "---|" * 17]
    for r in rows:
        lines.append(f"| {r['mesh']} | {r['model']} | {r['preset']} | {r['iou']:.4f} | {r['fscore_1pct']:.4f} | "
                     f"{r['chamfer_l1']:.5f} | {r['normal_consistency']:.4f} | "
                     f"{_solid(r, 'components_in', 'components_solid')}/{r.get('components_out')} ({r.get('dropped')}) | "
                     f"{_solid(r, 'genus_in', 'genus_solid')}/{r['genus_out']} | "
                     f"{r['resolution']} | {r['t_sample']:.1f} | {r['t_fit']:.1f} | {r['t_extract']:.1f} | "
                     f"{r['t_attributes']:.1f} | {r['t_score']:.1f} | {r['wall_s']:.1f} | {r['load'][0]:.1f} |")
    return "\n".join(lines) + "\n"


# --- scores ------------------------------------------------------------------------------------
def nearest_neighbour_scores(mesh, n_points: int, seed: int = 0) -> dict[str, float]:  # noqa: ANN001
    """The anchors' convention, for comparison only: two independent ``n_points`` samplings of the
    mesh, nearest neighbour between them (what nstr scored with before the exact method)."""
    from scipy.spatial import cKDTree

    from nstr.geometry.metrics import FSCORE_TAU, unit_box_of
    from nstr.geometry.mesh import Mesh
    from nstr.geometry.sampling import surface_points

    lo, size = unit_box_of(mesh)
    unit = Mesh((mesh.vertices - lo) / size, mesh.faces)
    rng = np.random.default_rng(seed)
    (a, _), (b, _) = surface_points(unit, n_points, rng), surface_points(unit, n_points, rng)
    d_ab, d_ba = cKDTree(b).query(a, workers=-1)[0], cKDTree(a).query(b, workers=-1)[0]
    p, r = float((d_ab < FSCORE_TAU).mean()), float((d_ba < FSCORE_TAU).mean())
    return {"fscore_1pct": 2 * p * r / (p + r) if p + r else 0.0, "chamfer_l1": float(0.5 * (d_ab.mean() + d_ba.mean()))}


def run_scores(args: argparse.Namespace) -> None:
    """Every mesh against itself: exact (the reports' path) beside the nearest-neighbour convention."""
    from nstr.geometry.metrics import CONVENTION_POINTS, mesh_metrics
    from nstr.geometry.topology import topology

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.meshes or all_mesh_names() + GENERATED:
        mesh, _ = load(name)
        t0, cpu = time.perf_counter(), time.process_time()
        m = mesh_metrics(mesh, mesh)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu
        topo = topology(mesh.faces, mesh.vertices, list_parts=10**9)
        area = sum(part["area"] for part in topo["parts"])  # in the mesh's units
        row = {"mesh": name, "faces": int(len(mesh.faces)), "unit_area": round(area / np.ptp(mesh.vertices, 0).max() ** 2, 3),
               "components": topo["components"], "genus": topo["genus"], "watertight": topo["watertight"],
               "fscore_1pct": m["fscore_1pct"], "chamfer_l1": m["chamfer_l1"], "normal_consistency": m["normal_consistency"],
               "iou": m["iou"], "score_s": round(seconds, 2), "cpu_s": round(cpu, 2),
               "winding_s": m["seconds"]["winding_candidate"] + m["seconds"]["winding_reference"],
               "load": [round(x, 2) for x in os.getloadavg()]}
        for n in (50_000, CONVENTION_POINTS):
            nn = nearest_neighbour_scores(mesh, n)
            row[f"nn{n // 1000}k_fscore_1pct"], row[f"nn{n // 1000}k_chamfer_l1"] = nn["fscore_1pct"], nn["chamfer_l1"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    columns = [("mesh", "{mesh}"), ("faces", "{faces:,}"), ("area (unit box)", "{unit_area}"),
               ("components", "{components}"), ("genus", "{genus}"), ("F@1% exact", "{fscore_1pct:.4f}"),
               ("Chamfer exact", "{chamfer_l1:.2e}"), ("NC exact", "{normal_consistency:.4f}"), ("IoU", "{iou:.4f}"),
               ("score s (of which winding numbers)", "{score_s:.1f} ({winding_s:.1f})"),
               ("CPU s", "{cpu_s:.1f}"), ("F@1% NN 50k", "{nn50k_fscore_1pct:.4f}"),
               ("Chamfer NN 50k", "{nn50k_chamfer_l1:.5f}"), ("F@1% NN 100k", "{nn100k_fscore_1pct:.4f}"),
               ("Chamfer NN 100k", "{nn100k_chamfer_l1:.5f}"), ("load 1m", "{load[0]:.1f}")]
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt.format(**r) for _, fmt in columns) + " |" for r in rows]
    (out / "scores.json").write_text(json.dumps(rows, indent=1))
    (out / "scores.md").write_text("\n".join(lines) + "\n")
    print((out / "scores.md").read_text())


# --- scoring time --------------------------------------------------------------------------------
SCORING_STAGES = ("sample", "trees", "accuracy", "completeness", "self_score", "winding_candidate",
                  "winding_reference", "total")


def quick_like(mesh, results: Path | None, name: str):  # noqa: ANN001, ANN201
    """What a quick fit returns for ``mesh``: the result a fidelity run kept (RESULTS/fidelity_NAME_nstr_quick.npz)
    when there is one, else the input re-meshed (midpoint subdivision to >= 200k faces, as dense as a quick
    result at resolution 256) and moved along its normals by up to 0.1% of its box (a fit's error)."""
    import trimesh

    from nstr.geometry.export import read_npz
    from nstr.geometry.mesh import Mesh

    kept = results / f"fidelity_{name}_nstr_quick.npz" if results else None
    if kept is not None and kept.exists():
        arrays, _ = read_npz(kept)
        return Mesh(arrays["vertices"].astype(np.float64), arrays["faces"].astype(np.int64)), "kept quick result"
    t = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    while len(t.faces) < 200_000:
        t = t.subdivide()
    size = float(np.ptp(t.vertices, axis=0).max())
    wave = np.sin(40 * t.vertices[:, 0] / size) * np.sin(40 * t.vertices[:, 1] / size)
    return Mesh(t.vertices + 1e-3 * size * wave[:, None] * t.vertex_normals, np.asarray(t.faces)), "perturbed copy"


def run_scoring(args: argparse.Namespace) -> None:
    """Per mesh, a quick-fit-like result scored against its input by mesh_metrics: seconds per stage, fastest
    of --repeats runs, and whether every run gave the same scores (a score must not depend on the run)."""
    from nstr.geometry.metrics import mesh_metrics

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.meshes or all_mesh_names() + GENERATED:
        mesh, _ = load(name)
        candidate, kind = quick_like(mesh, Path(args.results) if args.results else None, name)
        runs = [mesh_metrics(candidate, mesh) for _ in range(args.repeats)]
        seconds = [m.pop("seconds") for m in runs]
        fastest = min(seconds, key=lambda s: s["total"])
        row = {"mesh": name, "candidate": kind, "faces_in": int(len(mesh.faces)), "faces_out": int(len(candidate.faces)),
               "same_scores": all(m == runs[0] for m in runs), "fscore_1pct": runs[0]["fscore_1pct"],
               "iou": runs[0]["iou"], "load": [round(x, 2) for x in os.getloadavg()],
               **{k: fastest[k] for k in SCORING_STAGES}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    (out / "scoring.json").write_text(json.dumps(rows, indent=1))
    (out / "scoring.md").write_text(scoring_table(rows))
    print((out / "scoring.md").read_text())


def scoring_table(rows: list[dict]) -> str:
    """One line per mesh: stage seconds (accuracy / completeness include the normal consistency)."""
    heads = ("mesh", "faces in / result", "sample", "AABB trees", "A->B (+NC)", "B->A (+NC)", "self-score",
             "winding result", "winding input", "total s", "same scores", "load 1m")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in rows:
        cells = [r["mesh"], f"{r['faces_in']:,} / {r['faces_out']:,}", *(f"{r[k]:.2f}" for k in SCORING_STAGES),
                 str(r["same_scores"]), f"{r['load'][0]:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- fits --------------------------------------------------------------------------------------
def run_fits(args: argparse.Namespace) -> None:
    import torch

    from nstr.errors import NSTRError
    from nstr.geometry.export import write_mesh
    from nstr.tasks.sdf import STAGES, fit_sdf, sdf_config

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "fits.json"
    rows = json.loads(results_path.read_text()) if results_path.exists() and args.resume else []
    done = {(r["mesh"], r["model"]) for r in rows}
    for name in args.meshes or all_mesh_names():
        mesh, report = load(name)
        for model in args.models:
            if (name, model) in done:
                continue
            overrides = {"model": model, "params": args.params, "device": "cpu", "task.resolution": args.resolution}
            if args.steps:
                overrides["steps"] = args.steps
            cfg = sdf_config(args.preset, overrides)
            t0 = time.perf_counter()
            try:
                res = fit_sdf(mesh, cfg, mesh_report=report)
            except NSTRError as err:  # e.g. a baseline that found no surface: a result, not a crash
                rows.append({"mesh": name, "model": model, "error": str(err)})
                print(json.dumps(rows[-1]), flush=True)
                continue
            wall = time.perf_counter() - t0
            write_mesh(out / f"{name}_{model}.npz", res.arrays)
            r = res.report
            row = {"mesh": name, "model": model, "params": r["params"], "steps": r["steps"],
                   **{k: r["metrics"].get(k) for k in SCORES},
                   **{f"t_{k}": r["timings"].get(k) for k in (*STAGES, "score")},
                   "total_s": round(wall, 1), "faces_in": report.n_faces, "watertight": report.watertight,
                   "pde_relative": (r.get("spectral") or {}).get("pde_relative")}
            rows.append(row)
            print(json.dumps(row), flush=True)
            results_path.write_text(json.dumps(rows, indent=1))
            if model == "nstr":
                render_attributes(res.arrays, out / f"{name}_attributes.png", title=f"{name}: NSTR {r['params']:,} "
                                  f"params, {r['steps']} steps, IoU {r['metrics']['iou']:.3f}")
    (out / "fits.md").write_text(fits_table(rows, args))
    print((out / "fits.md").read_text())


def fits_table(rows: list[dict], args: argparse.Namespace) -> str:
    head = (f"Preset `{args.preset}`, budget {args.params:,} params, marching cubes {args.resolution}^3, "
            f"device: CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), "
            f"torch threads {args.threads}.\n\n")
    lines = ["| mesh | model | params | steps | IoU | F@1% | Chamfer-L1 | NC | sampling s | fitting s | "
             "extraction s | attributes s |", "|" + "---|" * 12]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mesh']} | {r['model']} | | | failed: {r['error'][:80]} |" + " |" * 7)
            continue
        lines.append(f"| {r['mesh']} | {r['model']} | {r['params']:,} | {r['steps']} | {r['iou']:.4f} | "
                     f"{r['fscore_1pct']:.4f} | {r['chamfer_l1']:.5f} | {r['normal_consistency']:.4f} | "
                     f"{r['t_sampling']:.1f} | {r['t_fitting']:.1f} | {r['t_extraction']:.1f} | {r['t_attributes']:.1f} |")
    return head + "\n".join(lines) + "\n"


# --- pictures ----------------------------------------------------------------------------------
def _shaded(ax, v: np.ndarray, f: np.ndarray, center: np.ndarray, size: float) -> None:  # noqa: ANN001
    """Grey Lambert-shaded mesh, the attribute pictures' camera, painter's algorithm."""
    from matplotlib.collections import PolyCollection

    v = (v - center) / size
    az, el = np.radians(25.0), np.radians(35.0)
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(el), -np.sin(el)], [0, np.sin(el), np.cos(el)]])
    cam = v @ rz.T @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]).T @ rx.T
    tri = cam[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    n *= np.where(n[:, 2:] < 0, -1.0, 1.0)  # two-sided (open inputs such as Suzanne's eyes)
    order = np.argsort(tri[:, :, 2].mean(1))
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shade = 0.25 + 0.75 * np.clip(n @ light, 0, 1)
    ax.add_collection(PolyCollection(tri[order][:, :, :2], facecolors=np.repeat(shade[order, None], 3, 1) * 0.9,
                                     edgecolors="face", linewidths=0.1, antialiased=False))
    ax.set_xlim(-0.6, 0.6)
    ax.set_ylim(-0.6, 0.6)
    ax.set_aspect("equal")
    ax.axis("off")


def render_pair(mesh, arrays: dict[str, np.ndarray], path: Path, title: str) -> None:  # noqa: ANN001
    """Input (left) and result (right) from the same camera and scale, so lumps and lost holes show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    center = (mesh.vertices.min(0) + mesh.vertices.max(0)) / 2
    size = float(np.ptp(mesh.vertices, axis=0).max())
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), dpi=120)
    _shaded(axes[0], mesh.vertices, mesh.faces, center, size)
    axes[0].set_title("input", fontsize=10)
    _shaded(axes[1], arrays["vertices"].astype(np.float64), arrays["faces"], center, size)
    axes[1].set_title("result", fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path)
    plt.close(fig)


def render_attributes(arrays: dict[str, np.ndarray], path: Path, title: str = "") -> None:
    """Four panels (local frequency, bandwidth, drift, transport residual) from one fixed camera:
    orthographic, looking along +y (Blender's front view) turned 25 deg about z and raised 20 deg,
    painter's algorithm,
    Lambert shading times the attribute colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from nstr.geometry.export import decode_meta

    v = arrays["vertices"].astype(np.float64)
    f = arrays["faces"]
    meta = decode_meta(arrays["meta_json"]) if "meta_json" in arrays else {}
    v = (v - v.mean(0)) / np.ptp(v, axis=0).max()
    az, el = np.radians(25.0), np.radians(20.0)
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(el), -np.sin(el)], [0, np.sin(el), np.cos(el)]])
    cam = v @ rz.T @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]).T @ rx.T  # x right, y up, z towards viewer
    tri = cam[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    visible = normal[:, 2] > 0
    order = np.argsort(tri[:, :, 2].mean(1))
    order = order[visible[order]]
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shade = 0.35 + 0.65 * np.clip(normal @ light, 0, 1)
    names = [n for n in ("local_frequency", "bandwidth", "drift", "transport_residual") if f"color_{n}" in arrays]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4 * max(len(names), 1), 4.4), dpi=110)
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names or ["geometry"]):
        if name == "geometry":
            col = np.ones((len(f), 3)) * 0.8
        else:
            col = arrays[f"color_{name}"][f][:, :, :3].mean(1)
        col = np.clip(col * shade[:, None], 0, 1)
        ax.add_collection(PolyCollection(tri[order][:, :, :2], facecolors=col[order], edgecolors="face",
                                     linewidths=0.2, antialiased=False))
        ax.set_xlim(-0.6, 0.6)
        ax.set_ylim(-0.6, 0.6)
        ax.set_aspect("equal")
        ax.axis("off")
        lo, hi = (meta.get("ranges", {}).get(name) or [None, None])
        cmap = meta.get("colormaps", {}).get(name, "")
        ax.set_title(f"{name}\n{cmap} [{lo:.3g}, {hi:.3g}]" if lo is not None else name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path)
    plt.close(fig)


# --- simplify ----------------------------------------------------------------------------------
SIMPLIFY_MESHES = ("suzanne", "bunny00", "rotor", "patches")   # patches: nstr.validation.detail_cases


def _simplify_subject(name: str):  # noqa: ANN202
    from nstr.geometry.mesh import mesh_from_arrays
    from nstr.validation.detail_cases import CASES

    if name in CASES:
        return mesh_from_arrays(*CASES[name].mesh(), source=f"nstr.validation.detail_cases.CASES['{name}']")
    return load(name)


def _kept_by_maps(arrays: dict[str, np.ndarray], source: np.ndarray) -> dict[str, float]:
    """Share of the dense vertices kept (as some simplified vertex's source), by what the detail maps say there:
    the finest and coarsest third of the wavelengths read, and each state."""
    from nstr.spectral.detail import STATES

    kept = np.zeros(len(arrays["vertices"]), bool)
    kept[source] = True
    state, wl = arrays["detail_state"], arrays["detail_wavelength"]
    out = {f"kept_{k}": float(kept[state == i].mean()) if (state == i).any() else None for k, i in STATES.items()}
    detail = state == STATES["detail"]
    if detail.sum() >= 3:
        lo, hi = np.percentile(wl[detail], [100 / 3, 200 / 3])
        out["kept_fine"] = float(kept[detail & (wl <= lo)].mean())
        out["kept_coarse"] = float(kept[detail & (wl >= hi)].mean())
    return out


def run_simplify(args: argparse.Namespace) -> None:
    """Per mesh: the quick fit (attributes on: the detail readout) timed as a whole; the readout timed again on
    its own; the dense result simplified to 1/--reduction of its faces; both scored against the input."""
    import torch

    from nstr.geometry.mesh import Mesh
    from nstr.geometry.metrics import mesh_metrics
    from nstr.geometry.simplify import simplify
    from nstr.geometry.solid import solid_surface
    from nstr.spectral.detail import detail_arrays
    from nstr.tasks.sdf import fit_sdf, sdf_config

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    kept = {r["mesh"]: r for r in json.loads((out / "simplify.json").read_text())} if args.resimplify else {}
    for name in args.meshes or SIMPLIFY_MESHES:
        mesh, report = _simplify_subject(name)
        if args.resimplify:  # the kept fit, its wall time and readout seconds: only the simplification again
            a = dict(np.load(out / f"simplify_{name}.npz"))
            wall, readout, attributes_s, voxel = (kept[name][k] for k in ("quick_wall_s", "readout_s", "attributes_s",
                                                                          "voxel"))
        else:
            cfg = sdf_config(args.preset, {"device": "cpu", "task.metrics": False})
            t0 = time.perf_counter()
            res = fit_sdf(mesh, cfg, mesh_report=report)
            wall = time.perf_counter() - t0
            r = res.report
            a = {k: res.arrays[k] for k in ("vertices", "faces", "detail_state", "detail_wavelength")}
            np.savez_compressed(out / f"simplify_{name}.npz", **a)
            voxel = 2.0 / (r["extraction"]["resolution"] - 1) * r["transform"]["scale"]
            attributes_s = r["timings"]["attributes"]
            t0 = time.perf_counter()
            detail_arrays(a["vertices"].astype(np.float64), a["faces"].astype(np.int64), voxel)
            readout = time.perf_counter() - t0
        v, f = a["vertices"].astype(np.float64), a["faces"].astype(np.int64)
        lod = simplify(v, f, face_budget=len(f) // args.reduction)
        target = solid_surface(mesh)[0]   # what the fit's own report scores against (nstr.geometry.solid)
        dense_m = mesh_metrics(Mesh(v, f), target, iou=False, self_score=False)
        lod_m = mesh_metrics(Mesh(lod.vertices, lod.faces), target, iou=False, self_score=False)
        row = {"mesh": name, "dense_vertices": int(len(v)), "lod_vertices": int(len(lod.vertices)),
               "ratio": len(v) / len(lod.vertices), "dense_chamfer": dense_m["chamfer_l1"],
               "lod_chamfer": lod_m["chamfer_l1"], "chamfer_ratio": lod_m["chamfer_l1"] / dense_m["chamfer_l1"],
               "dense_nc": dense_m["normal_consistency"], "lod_nc": lod_m["normal_consistency"],
               "max_error_voxels": lod.max_error / voxel, "readout_s": readout, "simplify_s": lod.seconds,
               "attributes_s": attributes_s, "quick_wall_s": wall, "voxel": voxel, "reduction": args.reduction,
               # the cost goal, read two ways, with the attribute stage as shipped (the maps, detail_lost
               # and NSTR's internal readout): its share of the whole, and what it adds to the rest
               "share": (attributes_s + lod.seconds) / (wall + lod.seconds),
               "added": (attributes_s + lod.seconds) / max(wall - attributes_s, 1e-9), **_kept_by_maps(a, lod.source),
               "load": [round(x, 2) for x in os.getloadavg()]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "simplify.json").write_text(json.dumps(rows, indent=1))
    (out / "simplify.md").write_text(simplify_table(rows, args))
    print((out / "simplify.md").read_text())


def simplify_table(rows: list[dict], args: argparse.Namespace) -> str:
    def share(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    head = (f"Preset `{args.preset}`, NSTR, faces / {args.reduction}; device: CPU ({os.cpu_count()} cores), torch "
            f"threads {args.threads}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}. Chamfer-L1 and NC: "
            "each mesh against the input (nstr.geometry.metrics, 100k points). Goals: ratio >= 5, Chamfer <= 1.1x, "
            "NC within 0.005, readout + simplify add <= 25% to the quick wall time. 'maps s': the detail maps alone; "
            "'attributes s': the fit's attribute stage as shipped (maps, detail_lost, NSTR's internal readout); "
            "'share': (attributes + simplify) / (wall + simplify); 'added': (attributes + simplify) / (wall - "
            "attributes).\n\n")
    cols = ["mesh", "dense V", "simplified V", "ratio", "Chamfer dense", "Chamfer simplified", "x dense", "NC dense",
            "NC simplified", "max error (voxels)", "maps s", "attributes s", "simplify s", "quick wall s", "share",
            "added",
            "kept: finest third", "kept: coarsest third", "kept: crease", "kept: no detail"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append(f"| {r['mesh']} | {r['dense_vertices']:,} | {r['lod_vertices']:,} | {r['ratio']:.1f} | "
                     f"{r['dense_chamfer']:.5f} | {r['lod_chamfer']:.5f} | {r['chamfer_ratio']:.3f} | "
                     f"{r['dense_nc']:.4f} | {r['lod_nc']:.4f} | {r['max_error_voxels']:.2f} | {r['readout_s']:.1f} | "
                     f"{r['attributes_s']:.1f} | {r['simplify_s']:.1f} | {r['quick_wall_s']:.1f} | {share(r['share'])} | "
                     f"{share(r.get('added'))} | "
                     f"{share(r.get('kept_fine'))} | {share(r.get('kept_coarse'))} | {share(r.get('kept_crease'))} | "
                     f"{share(r.get('kept_none'))} |")
    return head + "\n".join(lines) + "\n"


# --- timings -----------------------------------------------------------------------------------
def run_timings(args: argparse.Namespace) -> None:
    """MC (skimage, mcubes) on dense grids, coarse-to-fine extraction, field and ground-truth throughput."""
    import torch

    from nstr.geometry.extraction import evaluate_grid, extract_surface, marching_cubes
    from nstr.geometry.ground_truth import MeshSDF
    from nstr.geometry.mesh import Mesh
    from nstr.geometry.normalize import fit_unit_box
    from nstr.geometry.sampling import SamplingSpec, sample_sdf

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"device": f"CPU, {os.cpu_count()} cores (shared)", "mc": [], "ground_truth": []}

    def bumpy(p: np.ndarray) -> np.ndarray:  # an analytic closed surface with detail at several scales
        r = np.linalg.norm(p, axis=1)
        return (r - 0.6 - 0.05 * np.sin(12 * p[:, 0]) * np.sin(12 * p[:, 1]) * np.sin(12 * p[:, 2])).astype(np.float32)

    for res in args.resolutions:
        row: dict = {"resolution": res}
        if res <= args.dense_max:
            t0 = time.perf_counter()
            vol = evaluate_grid(bumpy, res)
            row["dense_eval_s"] = round(time.perf_counter() - t0, 2)
            for backend in ("skimage", "mcubes"):
                t0 = time.perf_counter()
                v, f = marching_cubes(vol, backend)
                row[f"dense_mc_{backend}_s"] = round(time.perf_counter() - t0, 2)
                row["dense_faces"] = int(len(f))
            del vol
        for backend in ("skimage", "mcubes"):
            t0 = time.perf_counter()
            ext = extract_surface(bumpy, res, mc=backend, sparse_from=0)
            row[f"sparse_{backend}_s"] = round(time.perf_counter() - t0, 2)
            row[f"sparse_{backend}_mc_s"] = round(ext.seconds_mc, 2)
            row["sparse_evaluated_points"] = ext.evaluated_points
            row["sparse_faces"] = int(len(ext.faces))
        print(json.dumps(row), flush=True)
        result["mc"].append(row)
    for name in args.meshes or all_mesh_names():
        mesh, report = load(name)
        t = fit_unit_box(mesh.vertices)
        unit = Mesh(t.to_unit(mesh.vertices), mesh.faces)
        t0 = time.perf_counter()
        gt = MeshSDF(unit.vertices, unit.faces, closed=report.watertight)
        build = time.perf_counter() - t0
        spec = SamplingSpec(n_samples=args.gt_points)
        s = sample_sdf(unit, spec, gt)  # not cached: times the ground truth itself
        rng = np.random.default_rng(0)
        q = rng.uniform(-1, 1, (args.gt_points // 4, 3))
        t0 = time.perf_counter()
        gt.signed_distance(q)
        exact_uniform = len(q) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        gt.signed_distance(q, band=0.1)
        banded_uniform = len(q) / (time.perf_counter() - t0)
        row = {"mesh": name, "faces": report.n_faces, "sign": "pseudonormal" if gt.closed else "winding number",
               "build_s": round(build, 2), "training_mix_points": args.gt_points,
               "training_mix_s": round(s.seconds, 2), "training_mix_pts_per_s": round(args.gt_points / s.seconds),
               "uniform_exact_pts_per_s": round(exact_uniform), "uniform_banded_pts_per_s": round(banded_uniform)}
        print(json.dumps(row), flush=True)
        result["ground_truth"].append(row)
    (out / "timings.json").write_text(json.dumps(result, indent=1))


def run_render(args: argparse.Namespace) -> None:
    """Re-draw the attribute pictures from the saved OUT/MESH_nstr.npz results."""
    from nstr.geometry.export import read_npz, encode_meta

    out = Path(args.out)
    for path in sorted(out.glob("*_nstr.npz")):
        arrays, meta = read_npz(path)
        arrays["meta_json"] = encode_meta(meta)
        r = meta.get("report", {})
        name = path.stem[:-5]
        render_attributes(arrays, out / f"{name}_attributes.png",
                          title=f"{name}: NSTR {r.get('params', 0):,} params, {r.get('steps')} steps, "
                                f"IoU {meta.get('metrics', {}).get('iou', float('nan')):.3f}")
        print("drew", out / f"{name}_attributes.png")


def run_reference(args: argparse.Namespace) -> None:
    """The topology a fit can reach at its own grid: the EXACT SDF of each input (the field every fit is
    trained on), through the fit's own resolution choice, extraction, smoothing and floater rule. Where an
    input's parts intersect (Suzanne's eyes sink into her head), the solid they bound has fewer surfaces than
    the input has parts, and a fit's component count is to be read against this row, not the parts."""
    import torch

    from nstr.geometry.topology import topology
    from nstr.tasks.sdf import _sample_stage, exact_sdf_field, extract_result_surface, sdf_config

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for preset in args.presets:
        for name in args.meshes or all_mesh_names() + GENERATED:
            mesh, report = load(name)
            cfg = sdf_config(preset, {"device": "cpu"})
            t0 = time.perf_counter()
            prep = _sample_stage(mesh, cfg.task, cfg.train.seed, bool(report.watertight), None, "cpu")
            ext, floaters = extract_result_surface(exact_sdf_field(prep.gt), prep, cfg.task, "cpu", cfg.train.seed)
            t_in, t_out = topology(mesh.faces, mesh.vertices), topology(ext.faces, ext.vertices)
            row = {"mesh": name, "preset": preset, "resolution": prep.resolution,
                   "components_in": t_in["components"], "genus_in": t_in["genus"],
                   "boundary_loops_in": t_in.get("boundary_loops"), "watertight_in": t_in.get("watertight"),
                   "components_exact": t_out["components"], "genus_exact": t_out["genus"],
                   "dropped": floaters["dropped"],
                   "covered": [round(i["covered_1pct"], 4) for i in floaters.get("inputs", [])],
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            (out / "reference.json").write_text(json.dumps(rows, indent=1))
    lines = ["| mesh | preset | grid | input: parts, genus, boundary loops | exact SDF at that grid: components "
             "(specks dropped), genus | input parts covered within 1% |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mesh']} | {r['preset']} | {r['resolution']} | {r['components_in']}, {r['genus_in']}, "
                     f"{r['boundary_loops_in']} | {r['components_exact']} ({r['dropped']}), {r['genus_exact']} | "
                     f"{', '.join(f'{c:.3f}' for c in r['covered'][:4])} |")
    (out / "reference.md").write_text("\n".join(lines) + "\n")
    print((out / "reference.md").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    f = sub.add_parser("fits", help="NSTR vs baselines at matched params")
    f.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    f.add_argument("--params", type=int, default=60000)
    f.add_argument("--preset", default="quick")
    f.add_argument("--steps", type=int)
    f.add_argument("--resolution", type=int, default=128)
    f.add_argument("--resume", action="store_true", help="skip (mesh, model) pairs already in fits.json")
    t = sub.add_parser("timings", help="marching cubes and ground truth")
    t.add_argument("--resolutions", nargs="*", type=int, default=[256, 512, 1024])
    t.add_argument("--dense-max", type=int, default=512, help="largest dense grid (1024^3 float32 is 4 GB)")
    t.add_argument("--gt-points", type=int, default=400_000)
    r = sub.add_parser("render", help="re-draw the attribute pictures from saved results")
    d = sub.add_parser("fidelity", help="meshes x presets x {nstr, hashgrid} at each preset's own settings")
    d.add_argument("--presets", nargs="+", default=["quick", "default"])
    d.add_argument("--models", nargs="+", default=list(FIDELITY_MODELS), choices=MODELS)
    d.add_argument("--set", nargs="*", default=[], help="extra overrides KEY=VALUE for every row (ablations)")
    d.add_argument("--resume", action="store_true", help="skip (mesh, model, preset) rows already in fidelity.json")
    d.add_argument("--rescore", action="store_true", help="no fitting: score the kept results in OUT again")
    sc = sub.add_parser("scores", help="each mesh against itself: exact scores beside the nearest-neighbour convention")
    st = sub.add_parser("scoring", help="seconds per stage of scoring a quick-like result against its input")
    st.add_argument("--results", help="a fidelity OUT folder whose kept quick results to score (else perturbed copies)")
    st.add_argument("--repeats", type=int, default=3, help="runs per mesh; the fastest is kept, all must score the same")
    si = sub.add_parser("simplify", help="quick fit, detail readout, then the result simplified: sizes, scores, seconds")
    si.add_argument("--preset", default="quick")
    si.add_argument("--reduction", type=int, default=6, help="the face budget: the dense face count / this")
    si.add_argument("--resimplify", action="store_true", help="no fitting: simplify the results kept in OUT again "
                    "(OUT/simplify_MESH.npz; wall and readout seconds from OUT/simplify.json)")
    rf = sub.add_parser("reference", help="the exact SDF of each input through the fit's own extraction: the "
                        "components and genus a fit can reach at its grid")
    rf.add_argument("--presets", nargs="+", default=["quick"])
    for q in (f, t, r, d, sc, st, si, rf):
        q.add_argument("--out", default=str(REPO / "out" / "bench_sdf"))
        q.add_argument("--meshes", nargs="+")
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.what == "fidelity" and args.rescore:
        rescore_fidelity(args)
        return 0
    {"fits": run_fits, "timings": run_timings, "render": run_render, "fidelity": run_fidelity,
     "scores": run_scores, "scoring": run_scoring, "simplify": run_simplify,
     "reference": run_reference}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
