#!/usr/bin/env python
"""Spectral-flow truth benchmark (issue 9): do the colours follow the surface / signal?

For every validation case (nstr.validation: chirp slab, rippled sphere, flat and smooth controls;
1-D chirp, a downward sweep and the shared speech clip; the drifting texture) and every model and
seed, prints rho against the truth, the calibration slope, the controls' CV, seed-pair rho next to
cross-mesh rho, the drift's weighted cosine, and accuracy (IoU / SNR / PSNR), for:

* ``measured``: the model-independent readout (nstr.spectral.measured) on the fitted field: what
  ``local_frequency`` / ``drift`` mean in every result;
* ``internal``: NSTR's own readout (S-weighted carrier centroid; drift through F_theta and through J);
* ``curvature``: smoothed |mean curvature| of the output mesh (a trivial estimator);
* ``mesh_fft``: the same windowed FFT applied to the exact distance of the OUTPUT mesh (a trivial
  estimator that never looks at the field).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_spectral.py meshes --out bench/spectral --seeds 0 1
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_spectral.py signals --out bench/spectral

Writes OUT/meshes.json, OUT/meshes.md, OUT/signals.json, OUT/signals.md, and per fitted mesh
OUT/CASE_MODEL_sSEED.npz (the result) and OUT/CASE_MODEL_sSEED_attributes.png (its colours).
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
sys.path.insert(0, str(REPO / "backend"))

SURFACE_CASES = ("chirp_slab", "rippled_sphere", "flat_slab", "smooth_sphere")
SHARED_MESHES = REPO.parent / "shared" / "data" / "meshes"
CONTROL_OF = {"chirp_slab": "flat_slab", "rippled_sphere": "smooth_sphere"}


def _load() -> str:
    return os.popen("uptime").read().strip()


# --- meshes ------------------------------------------------------------------------------------
def mean_curvature(vertices: np.ndarray, faces: np.ndarray, radius: float) -> np.ndarray:
    """Smoothed |mean curvature| (cotangent Laplacian, lumped mass), diffused over ``radius``."""
    import igl
    import scipy.sparse as sp

    from nstr.spectral.measured import smooth_on_mesh

    v = np.ascontiguousarray(vertices, np.float64)
    f = np.ascontiguousarray(faces, np.int64)
    lap = igl.cotmatrix(v, f)
    mass = igl.massmatrix(v, f, igl.MASSMATRIX_TYPE_VORONOI)
    hn = sp.diags(1.0 / np.maximum(mass.diagonal(), 1e-300)) @ (lap @ v)
    h = 0.5 * np.linalg.norm(hn, axis=1)
    return smooth_on_mesh(np.nan_to_num(h), v, f, radius)


def score_mesh_case(case, arrays: dict, readouts: dict[str, np.ndarray], drifts: dict[str, np.ndarray]) -> dict:
    from nstr.validation.scores import calibration_slope, cv, relative_error, spearman, weighted_cosine

    v = arrays["vertices"].astype(np.float64)
    truth, grad, mask = case.truth(v)
    row: dict = {"n_scored": int(mask.sum())}
    for name, values in readouts.items():
        x = values[mask]
        if case.control:
            row[f"{name}_cv"] = cv(x)
            row[f"{name}_mean"] = float(x.mean())
        else:
            row[f"{name}_rho"] = spearman(x, truth[mask])
            row[f"{name}_slope"] = calibration_slope(x, truth[mask])
            row[f"{name}_relerr"] = relative_error(x, truth[mask])
    if not case.control:
        for name, vec in drifts.items():
            row[f"{name}_cos"] = weighted_cosine(vec[mask], grad[mask])
    return row


def fine_carrier_readout(field, vertices: np.ndarray, transform: dict) -> np.ndarray:  # noqa: ANN001
    """Banded NSTR's carrier centroid over its two finest octaves only (cycles per input unit): on an SDF
    the coarse octaves hold the shape's own residual (stop 53's finding, docs/nstr-banded.md)."""
    import torch

    from nstr.fields.nstr_banded import carrier_readout
    from nstr.geometry.normalize import UnitBoxTransform

    unit = UnitBoxTransform(tuple(transform["center"]), transform["scale"]).to_unit(vertices)
    octaves = sorted(set(float(r) for r in field.cell_radius))
    nu = carrier_readout(field, torch.as_tensor(unit, dtype=torch.float32), min_radius=octaves[-2])["frequency"]
    return nu.numpy() / transform["scale"]


def score_agreement(readouts: dict[str, np.ndarray]) -> dict:
    """A mesh with no analytic truth: how the readout on the FIELD agrees with the same window FFT of
    the output mesh's exact distance (mesh_fft) and with smoothed curvature, over all vertices."""
    from nstr.validation.scores import spearman

    m = readouts["measured"]
    return {f"measured_vs_{k}_rho": spearman(m, readouts[k]) for k in ("mesh_fft", "curvature", "internal")
            if k in readouts}


def run_meshes(args: argparse.Namespace) -> None:
    import torch

    from nstr.geometry.ground_truth import MeshSDF
    from nstr.geometry.mesh import mesh_from_arrays
    from nstr.spectral.measured import SurfaceWindow, surface_local_frequency
    from nstr.tasks.sdf import fit_sdf, sdf_config
    from nstr.validation.surfaces import CASES

    sys.path.insert(0, str(REPO / "scripts"))
    from bench_sdf import render_attributes  # one picture code for every mesh benchmark

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "meshes.json"
    rows = json.loads(path.read_text()) if path.exists() and args.resume else []
    done = {(r["case"], r["model"], r["seed"]) for r in rows}
    from nstr.geometry.mesh import load_mesh

    subjects = [(name, CASES[name], mesh_from_arrays(*CASES[name].mesh(args.mesh_n), source=name))
                for name in args.cases]
    subjects += [(f"shared:{name}", None, load_mesh(SHARED_MESHES / f"{name}.off")) for name in args.shared or []]
    for name, case, (mesh, report) in subjects:
        for model in args.models:
            for seed in args.seeds:
                if (name, model, seed) in done:
                    continue
                overrides = {"model": model, "seed": seed, "device": "cpu", "task.metrics": True}
                if args.params:
                    overrides["params"] = args.params
                if args.steps:
                    overrides["steps"] = args.steps
                for kv in args.set or []:
                    k, _, val = kv.partition("=")
                    overrides[k] = json.loads(val) if val[:1] in "[{0123456789-tf" and val not in ("t", "f") else val
                cfg = sdf_config(args.preset, overrides)
                t0 = time.perf_counter()
                res = fit_sdf(mesh, cfg, mesh_report=report)
                wall = time.perf_counter() - t0
                a = res.arrays
                v, f = a["vertices"].astype(np.float64), a["faces"].astype(np.int64)
                np.savez_compressed(out / f"{name}_{model}_s{seed}.npz", **a)
                render_attributes(a, out / f"{name}_{model}_s{seed}_attributes.png",  # the colours artists see
                                  f"{name}, {model}, seed {seed}: measured spectral-flow attributes")
                readouts = {"measured": a["local_frequency"]}
                drifts = {"measured": a["drift"]}
                if "spectral_frequency" in a:
                    readouts["internal"] = a["spectral_frequency"]
                    drifts["transport"] = a["transport_drift"]
                    drifts["exact_J"] = a["drift_exact"]
                if res.field.describe().get("variant") == "banded" and case is not None:
                    readouts["fine_carriers"] = fine_carrier_readout(res.field, v, res.report["transform"])
                diag = float(np.linalg.norm(v.max(0) - v.min(0)))
                win = SurfaceWindow.from_scale(diag)
                readouts["curvature"] = mean_curvature(v, f, win.half_width)
                out_sdf = MeshSDF(v, f, closed=True)
                readouts["mesh_fft"] = surface_local_frequency(out_sdf.signed_distance, v, f, win)["local_frequency"]
                row = {"case": name, "model": model, "seed": seed, "params": res.report["params"],
                       "steps": res.report["steps"], "iou": res.report["metrics"].get("iou"),
                       "fscore_1pct": res.report["metrics"].get("fscore_1pct"),
                       "chamfer_l1": res.report["metrics"].get("chamfer_l1"), "wall_s": round(wall, 1),
                       "t_attributes": res.report["timings"].get("attributes"),
                       # banded with a residual: its share of the output's energy on the last batch (design 4)
                       "residual_share": (None if res.report["final_terms"].get("residual_share") is None
                                          else float(res.report["final_terms"]["residual_share"])),
                       **(score_mesh_case(case, a, readouts, drifts) if case is not None
                          else score_agreement(readouts))}
                np.savez_compressed(out / f"{name}_{model}_s{seed}_readouts.npz", vertices=v.astype(np.float32),
                                    **{k: np.asarray(x, np.float32) for k, x in readouts.items()})
                rows.append(row)
                print(json.dumps(row), flush=True)
                path.write_text(json.dumps(rows, indent=1))
    add_pair_scores(rows, out)
    path.write_text(json.dumps(rows, indent=1))
    md = mesh_table(rows, args)
    (out / "meshes.md").write_text(md)
    print(md)


def add_pair_scores(rows: list[dict], out: Path) -> None:
    """Seed-pair rho (same case and model, seeds s0 and s1) and cross-mesh rho (same model and seed,
    the case against its control), each by nearest-vertex matching on the textured part."""
    from scipy.spatial import cKDTree

    from nstr.validation.scores import spearman
    from nstr.validation.surfaces import CASES

    def load(case: str, model: str, seed: int):  # noqa: ANN202
        p = out / f"{case}_{model}_s{seed}_readouts.npz"
        return dict(np.load(p)) if p.exists() else None

    for r in rows:
        shared = r["case"].startswith("shared:")
        if r["case"] not in CONTROL_OF and not shared:
            continue
        a = load(r["case"], r["model"], r["seed"])
        if a is None:
            continue
        mask = (np.ones(len(a["vertices"]), bool) if shared
                else CASES[r["case"]].truth(a["vertices"].astype(np.float64))[2])
        others = sorted({q["seed"] for q in rows if q["case"] == r["case"] and q["model"] == r["model"]} - {r["seed"]})
        pairs = {"seed_pair": load(r["case"], r["model"], others[0]) if others else None,
                 "cross_mesh": None if shared else load(CONTROL_OF[r["case"]], r["model"], r["seed"])}
        for label, b in pairs.items():
            if b is None:
                continue
            nn = cKDTree(b["vertices"]).query(a["vertices"][mask])[1]
            for k in ("measured", "internal", "curvature", "mesh_fft"):
                if k in a and k in b:
                    r[f"{k}_{label}_rho"] = spearman(a[k][mask], b[k][nn])


def _f(x, fmt: str = "{:.3f}") -> str:  # noqa: ANN001
    return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt.format(x)


def mesh_table(rows: list[dict], args: argparse.Namespace) -> str:
    head = (f"Preset `{args.preset}`, params {args.params or 'preset'}, CPU ({os.cpu_count()} cores, "
            f"{platform.processor() or platform.machine()}), load: {_load()}\n\n")
    lines = ["Accuracy (every case; the residual's share of the output's energy where the model has one):", "",
             "| case | model | seed | params | IoU | Chamfer L1 | F@1% | residual share | s |", "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['case']} | {r['model']} | {r['seed']} | {r['params']:,} | {_f(r.get('iou'), '{:.4f}')} | "
                     f"{_f(r.get('chamfer_l1'), '{:.2e}')} | {_f(r.get('fscore_1pct'), '{:.4f}')} | "
                     f"{_f(r.get('residual_share'), '{:.2e}')} | {r['wall_s']} |")
    lines += ["", "| case | model | seed | IoU | readout | rho | slope | rel.err | seed-pair rho | cross-mesh rho | "
              "control CV | drift cos |", "|" + "---|" * 12]
    for r in rows:
        if r["case"].startswith("shared:") or r["case"] in CONTROL_OF.values():  # every case with a ripple's truth
            continue
        ctrl = next((q for q in rows if q["case"] == CONTROL_OF.get(r["case"]) and q["model"] == r["model"]
                     and q["seed"] == r["seed"]), {})
        for k, dk in (("measured", "measured"), ("internal", "transport"), ("fine_carriers", None), ("curvature", None),
                      ("mesh_fft", None)):
            if f"{k}_rho" not in r:
                continue
            drift = _f(r.get(f"{dk}_cos")) if dk else ""
            if k == "internal":
                drift += f" (J: {_f(r.get('exact_J_cos'))})"
            lines.append(f"| {r['case']} | {r['model']} | {r['seed']} | {_f(r.get('iou'), '{:.4f}')} | {k} | "
                         f"{_f(r[f'{k}_rho'])} | {_f(r[f'{k}_slope'])} | {_f(r[f'{k}_relerr'])} | "
                         f"{_f(r.get(f'{k}_seed_pair_rho'))} | {_f(r.get(f'{k}_cross_mesh_rho'))} | "
                         f"{_f(ctrl.get(f'{k}_cv'))} | {drift} |")
    lines.append("")
    lines.append("Controls: | case | model | seed | IoU | readout means (CV) |")
    for r in rows:
        if r["case"] not in CONTROL_OF.values():
            continue
        parts = ", ".join(f"{k} {_f(r.get(f'{k}_mean'), '{:.3g}')} (CV {_f(r.get(f'{k}_cv'))})"
                          for k in ("measured", "internal", "curvature", "mesh_fft") if f"{k}_cv" in r)
        lines.append(f"| {r['case']} | {r['model']} | {r['seed']} | {_f(r.get('iou'), '{:.4f}')} | {parts} |")
    shared = [r for r in rows if r["case"].startswith("shared:")]
    if shared:
        lines += ["", "Shared meshes (no analytic truth: accuracy, and the measured readout on the field against the "
                      "same window FFT of the output mesh and against curvature):", "",
                  "| mesh | model | seed | params | IoU | F@1% | rho vs mesh FFT | rho vs curvature | rho vs internal |"
                  " seed-pair rho | s |", "|" + "---|" * 11]
        for r in shared:
            lines.append(f"| {r['case'][7:]} | {r['model']} | {r['seed']} | {r['params']:,} | {_f(r.get('iou'), '{:.4f}')} "
                         f"| {_f(r.get('fscore_1pct'), '{:.4f}')} | {_f(r.get('measured_vs_mesh_fft_rho'))} | "
                         f"{_f(r.get('measured_vs_curvature_rho'))} | {_f(r.get('measured_vs_internal_rho'))} | "
                         f"{_f(r.get('measured_seed_pair_rho'))} | {r['wall_s']} |")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("meshes", help="fitted SDFs of the analytic surfaces")
    m.add_argument("--out", default="bench/spectral")
    m.add_argument("--cases", nargs="*", default=list(SURFACE_CASES))
    m.add_argument("--models", nargs="+", default=["nstr", "hashgrid", "siren", "ffn"])
    m.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    m.add_argument("--preset", default="quick")
    m.add_argument("--params", type=int, default=None)
    m.add_argument("--steps", type=int, default=None)
    m.add_argument("--mesh-n", type=int, default=80)
    m.add_argument("--shared", nargs="*", default=[], help="also shared meshes by name (rotor elephant bunny00): "
                                                          "accuracy and readout agreement, no truth")
    m.add_argument("--set", nargs="*", help="extra config overrides KEY=VALUE")
    m.add_argument("--resume", action="store_true")
    s = sub.add_parser("signals", help="1-D chirp / sweep / speech and the drifting texture")
    s.add_argument("--out", default="bench/spectral")
    s.add_argument("--models", nargs="+", default=["nstr", "hashgrid", "siren", "ffn"])
    s.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    s.add_argument("--preset", default="quick")
    s.add_argument("--params", type=int, default=None)
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--cases", nargs="*", help="chirp_1d sweep_down drifting_texture speech (default: all)")
    d = sub.add_parser("detail", help="the detail maps on composite meshes with known patches (issue 27)")
    d.add_argument("--out", default="bench/detail")
    d.add_argument("--cases", nargs="*", default=["patches", "shape", "sphere", "big"])
    d.add_argument("--model", default="nstr")
    d.add_argument("--preset", default="quick")
    d.add_argument("--no-fit", action="store_true", help="read the exact meshes only")
    args = p.parse_args(argv)
    if args.cmd == "meshes":
        run_meshes(args)
    elif args.cmd == "detail":
        run_detail(args)
    else:
        run_signals(args)


# --- detail maps -------------------------------------------------------------------------------
def _detail_rows(case, arrays: dict, meta: dict, source: str) -> list[dict]:  # noqa: ANN001
    """One row per patch: the readout against the case's truth (medians over the patch's core)."""
    from nstr.spectral.detail import STATES
    from nstr.validation.scores import spearman

    v = np.asarray(arrays["vertices"], np.float64)
    tr = case.truth(v)
    state = arrays["detail_state"]
    rows = []
    for i, patch in enumerate(case.patches):
        core = tr.core & (tr.patch == i)
        if patch.kind == "undulation":   # longer than the patch: its core is the patch inside its taper
            p = v / case.scale
            core = (tr.patch == i) & patch.core(p[:, 0], p[:, 1], margin=0.05)
        if core.sum() < 5:
            continue
        wl = arrays["detail_wavelength"][core]
        row = {"case": case.name, "source": source, "patch": patch.name, "n": int(core.sum()),
               "true_wavelength": float(np.nanmedian(tr.wavelength[core])) if np.isfinite(tr.wavelength[core]).any()
               else None,
               "read_wavelength": float(np.nanmedian(wl)) if np.isfinite(wl).any() else None,
               "true_rms": float(np.median(tr.rms[core])), "read_rms": float(np.median(arrays["detail_amplitude"][core])),
               "detail_share": float((state[core] == STATES["detail"]).mean()),
               "none_share": float((state[core] == STATES["none"]).mean()),
               "crease_share": float((state[core] == STATES["crease"]).mean()),
               "coarser_share": float((state[core] == STATES["coarser"]).mean())}
        if patch.kind in ("ripple", "ramp", "step", "egg"):   # the height the surface holds, read off it
            gain = case.held_gain(v, i, core)
            row["held_rms"] = gain * row["true_rms"]
            # per vertex, where the held detail is at least 3 floors tall (below, the floor's noise is read)
            ratio = arrays["detail_amplitude"][core] / np.maximum(gain * tr.rms[core], 1e-30)
            row["rms_vs_held"] = float(np.median(ratio))
            tall = gain * tr.rms[core] >= 3 * meta["floor"]
            if tall.sum() >= 5:
                row["rms_vs_held_tall"] = float(np.median(ratio[tall]))
                row["tall_detail_share"] = float((state[core][tall] == STATES["detail"]).mean())
        if patch.kind in ("ripple", "ramp", "step"):
            cos = np.abs(np.einsum("nd,nd->n", arrays["detail_direction"][core], tr.direction[core]))
            row["direction_cos"] = float(np.median(cos))
        row["anisotropy"] = float(np.median(arrays["detail_anisotropy"][core]))
        if "detail_lost" in arrays:   # where the fit smoothed the input's detail away (flag: meta["lost_flag"])
            row["lost_share"] = float((arrays["detail_lost"][core] >= meta["lost_flag"]).mean())
        if patch.kind == "ramp":
            ok = np.isfinite(wl)
            amp = arrays["detail_amplitude"][core][ok]
            row["ramp_cv"] = float(np.std(wl[ok]) / np.mean(wl[ok]))
            row["ramp_rho"] = float(spearman(wl[ok], amp))
        if patch.kind == "step":   # each side of the change, half its wavelength away from it
            inside = (tr.patch == i) & (np.abs(v[:, 1] - patch.centre[1]) < patch.half - patch.taper - patch.wavelength)
            x = v[:, 0] - patch.centre[0]
            edge = patch.half - patch.taper
            fine = inside & (x < -patch.wavelength / 2) & (x > -edge + patch.wavelength / 2)
            coarse = inside & (x > patch.wavelength2 / 2) & (x < edge - patch.wavelength2 / 2)
            wl_all = arrays["detail_wavelength"]
            row["step_ratio"] = float(np.nanmedian(wl_all[coarse]) / np.nanmedian(wl_all[fine]))
            row["true_step_ratio"] = patch.wavelength2 / patch.wavelength
        if patch.kind == "ridge":   # the crease line itself: a crease, or at least not fine texture
            u = v[:, 0] / case.scale - patch.centre[0]
            line = (tr.patch == i) & core & (np.abs(u) < max(patch.bevel, 0.02))
            edges = np.array([b["shortest"] for b in meta["bands"]])
            fine = (state[line] == STATES["detail"]) & (arrays["detail_wavelength"][line] < edges[min(2, len(edges) - 1)])
            row["line_crease_share"] = float((state[line] == STATES["crease"]).mean())
            row["line_fine_share"] = float(fine.mean())
        rows.append(row)
    base = tr.on_base & (tr.patch < 0)
    if base.any():
        rows.append({"case": case.name, "source": source, "patch": "(base)", "n": int(base.sum()),
                     "none_share": float(np.isin(state[base], [STATES["none"], STATES["coarser"]]).mean()),
                     "crease_share": float((state[base] == STATES["crease"]).mean()),
                     "read_rms": float(np.median(arrays["detail_amplitude"][base])),
                     **({"lost_share": float((arrays["detail_lost"][base] >= meta["lost_flag"]).mean())}
                        if "detail_lost" in arrays else {})})
    return rows


def run_detail(args: argparse.Namespace) -> None:
    from nstr.geometry.mesh import mesh_from_arrays
    from nstr.spectral.detail import detail_arrays
    from nstr.tasks.sdf import fit_sdf, sdf_config
    from nstr.validation.detail_cases import CASES

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in args.cases:
        case = CASES[name]
        v, f = case.mesh()
        t0 = time.time()
        cfg = sdf_config(args.preset, {"model": args.model, "device": "cpu"})
        if not args.no_fit:
            mesh, report = mesh_from_arrays(v, f)
            res = fit_sdf(mesh, cfg, mesh_report=report)
            arrays = res.arrays
            voxel = 2.0 / (res.report["extraction"]["resolution"] - 1) * res.report["transform"]["scale"]
            meta = json.loads(bytes(arrays["meta_json"]).decode())["detail"]
            rows += _detail_rows(case, arrays, meta, f"{args.model} {args.preset} fit")
            np.savez_compressed(out / f"{name}_{args.model}.npz", **{k: a for k, a in arrays.items()})
        else:
            voxel = 2.0 / 255 * float(np.ptp(v, axis=0).max()) / 1.8
        exact, meta = detail_arrays(v, f, voxel)
        rows += _detail_rows(case, {"vertices": v, **exact}, meta, "exact input")
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    (out / "detail.json").write_text(json.dumps(rows, indent=1))
    head = ("| case | source | patch | n | true wl | read wl | ratio | true rms | held rms | read rms | read / held (all / >= 3 floors) "
            "| |cos| | aniso | detail | none | crease | extra |\n|" + "---|" * 17 + "\n")
    lines = []
    for r in rows:
        ratio = r["read_wavelength"] / r["true_wavelength"] if r.get("read_wavelength") and r.get("true_wavelength") else None
        extra = ", ".join(f"{k} {r[k]:.3f}" for k in ("ramp_cv", "ramp_rho", "step_ratio", "true_step_ratio",
                                                        "lost_share", "coarser_share", "line_crease_share", "line_fine_share",
                                                        "tall_detail_share") if k in r)
        lines.append(f"| {r['case']} | {r['source']} | {r['patch']} | {r['n']} | {_f(r.get('true_wavelength'))} | "
                     f"{_f(r.get('read_wavelength'))} | {_f(ratio)} | {_f(r.get('true_rms'))} | {_f(r.get('held_rms'))} | "
                     f"{_f(r.get('read_rms'))} | {_f(r.get('rms_vs_held'))} / {_f(r.get('rms_vs_held_tall'))} | "
                     f"{_f(r.get('direction_cos'))} | {_f(r.get('anisotropy'))} | {_f(r.get('detail_share'))} | "
                     f"{_f(r.get('none_share'))} | {_f(r.get('crease_share'))} | {extra} |")
    table = head + "\n".join(lines) + "\n"
    (out / "detail.md").write_text(table)
    print(table)


def _signal_cases(args: argparse.Namespace) -> dict:
    """name -> (kind, signal, rate or None, truth per sample / pixel or None = the input's own readout)."""
    from nstr.signals.audio_io import load_wav
    from nstr.signals.synthetic import chirp, drifting_texture, drifting_texture_frequency

    cases = {"chirp_1d": ("audio", chirp(4096, 16000, 200.0, 4000.0), np.linspace(200.0, 4000.0, 4096, endpoint=False)),
             "sweep_down": ("audio", chirp(8000, 16000, 5000.0, 300.0), np.linspace(5000.0, 300.0, 8000, endpoint=False)),
             "drifting_texture": ("image", drifting_texture(64), drifting_texture_frequency(64))}
    speech = REPO.parent / "shared" / "data" / "audio" / "Front_Center.wav"
    if speech.exists():
        cases["speech"] = ("audio", load_wav(speech).excerpt(0.5, 0.25), None)
    return cases


def readout_reference(kind: str, sig, truth: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """What a readout is scored against, and where: the analytic truth, else the measured readout of the
    INPUT (no model involved); borders dropped (the windows are clipped there), and for real audio only
    where there is sound (>= -20 dB of the loudest frame: in near-silence the fit's own error is what the
    window hears)."""
    from nstr.spectral.measured import image_local_frequency, per_sample, signal_local_frequency

    if kind == "audio":
        frames = signal_local_frequency(sig.samples, sig.rate)
        ref = truth if truth is not None else per_sample(frames, len(sig.samples), sig.rate)["local_frequency"]
        n = len(ref)
        mask = np.zeros(n, bool)
        mask[n // 20:n - n // 20] = True
        if truth is None:
            amp = np.interp(np.arange(n) / sig.rate, frames["time_s"], frames["amplitude"])
            mask &= amp >= 0.1 * amp.max()
        return ref, mask
    ref = truth if truth is not None else image_local_frequency(sig)["local_frequency"]
    mask = np.zeros(ref.shape, bool)
    mask[12:-12, 12:-12] = True
    return ref, mask


def run_signals(args: argparse.Namespace) -> None:
    import torch

    from nstr.tasks.audio import audio_config, audio_flow, fit_audio
    from nstr.tasks.image import fit_image, image_config, image_flow
    from nstr.validation.scores import calibration_slope, relative_error, spearman

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (kind, sig, truth) in _signal_cases(args).items():
        if args.cases and name not in args.cases:
            continue
        variants = [(m, {}) for m in args.models] + [("nstr", {"lambda_pde": 0.0})]
        for model, extra in variants:
            for seed in args.seeds:
                if extra and seed != args.seeds[0]:
                    continue
                over = {"model": model, "seed": seed, "device": "cpu", **extra}
                if args.params:
                    over["params"] = args.params
                if args.steps:
                    over["steps"] = args.steps
                t0 = time.perf_counter()
                ref, m = readout_reference(kind, sig, truth)
                if kind == "audio":
                    res = fit_audio(sig, audio_config(args.preset, over))
                    flow = audio_flow(res)
                    acc = {"snr_db": res.metrics["snr_db"]}
                    true_drift = np.gradient(ref, 1.0 / sig.rate)
                else:
                    res = fit_image(sig, image_config(args.preset, over))
                    flow = image_flow(res)
                    acc = {"psnr": res.metrics["psnr"]}
                    true_drift = None
                row = {"case": name, "model": model + ("(lambda=0)" if extra else ""), "seed": seed,
                       "params": res.report["params"], **acc, "wall_s": round(time.perf_counter() - t0, 1)}
                for key, label in (("local_frequency", "measured"), ("spectral_frequency", "internal")):
                    if key in flow:
                        x, t = flow[key][m].ravel(), ref[m].ravel()
                        row[f"{label}_rho"] = spearman(x, t)
                        row[f"{label}_slope"] = calibration_slope(x, t)
                        row[f"{label}_relerr"] = relative_error(x, t)
                if "transport_drift" in flow:
                    md = flow["drift"][m].reshape(len(flow["drift"][m]), -1)
                    td = flow["transport_drift"][m].reshape(len(md), -1)
                    row["F_vs_measured_drift_cos"] = float((np.sum(md * td, 1) / np.maximum(
                        np.linalg.norm(md, axis=1) * np.linalg.norm(td, axis=1), 1e-30)).mean())
                    sp = res.report.get("spectral", {})
                    row["pde_relative"] = sp.get("pde_relative")
                    row["transport_gain"] = (sp.get("transport_prediction") or {}).get("gain")
                if true_drift is not None:
                    row["measured_drift_rel"] = float(np.median(flow["drift"][m]) / np.median(true_drift[m]))
                rows.append(row)
                print(json.dumps(row), flush=True)
                (out / "signals.json").write_text(json.dumps(rows, indent=1))
    lines = [f"Preset `{args.preset}`, params {args.params or 'preset'}, load: {_load()}", "",
             "| case | model | seed | params | SNR/PSNR dB | measured rho | slope | rel.err | internal rho | slope | "
             "F-drift vs measured cos | PDE rel. | transport gain |", "|" + "---|" * 13]
    for r in rows:
        accv = r.get("snr_db", r.get("psnr"))
        lines.append(f"| {r['case']} | {r['model']} | {r['seed']} | {r['params']:,} | {_f(accv, '{:.2f}')} | "
                     f"{_f(r.get('measured_rho'))} | {_f(r.get('measured_slope'))} | {_f(r.get('measured_relerr'))} | "
                     f"{_f(r.get('internal_rho'))} | {_f(r.get('internal_slope'))} | "
                     f"{_f(r.get('F_vs_measured_drift_cos'))} | {_f(r.get('pde_relative'), '{:.3g}')} | "
                     f"{_f(r.get('transport_gain'))} |")
    md = "\n".join(lines) + "\n"
    (out / "signals.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
