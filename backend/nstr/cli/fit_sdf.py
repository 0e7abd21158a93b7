"""``nstr fit sdf MESH``: fit a signed distance field to a mesh, extract it, colour it, score it."""

from __future__ import annotations

import argparse
from pathlib import Path

from nstr.cli.common import add_fit_arguments, check_fit_paths, overrides_from_args, positive_int
from nstr.jsonable import write_report

HELP = "fit a signed distance field to a mesh (OBJ/PLY/STL/OFF/GLB); extract it with spectral-flow colours"
DESCRIPTION = """Fit a neural signed distance field to a triangle mesh (watertight or not), extract
its zero level set with marching cubes, give every vertex the detail maps (any model: the detail's
height per octave band, its wavelength, height, direction, creases, "no detail", what the fit lost;
local frequency, bandwidth and drift said from them; NSTR adds its own spectrum and transport
residual for research; backend/docs/spectral-flow.md) and score the result against
the input: chamfer_l1, normal_consistency, fscore_1pct, iou (backend/docs/metrics.md). Components
the input does not have (specks of the fit) are dropped unless --set task.keep_all_components=true;
the report lists the input's and the result's components and genus.

The output mesh is in the input's own coordinates, faces wound outward:
  OUT.ply   vertex colours = detail size (one log scale of wavelength; greys: no detail, coarser,
            crease); raw attributes as extra vertex properties
  OUT.glb   COLOR_0 = detail size; raw values and other colours as _CUSTOM attributes
  OUT.npz   every array plus meta_json (ranges, colour maps, metrics, timings)

Examples:
  nstr fit sdf bunny.off -o bunny.ply --preset quick --report bunny.json
  nstr fit sdf suzanne.glb -o out.npz --model siren --params 50000 --resolution 256
  nstr fit sdf part.stl -o part.glb --resolution 512 --mc mcubes --set task.eikonal_weight=0.05"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nstr.geometry.extraction import MC_BACKENDS  # numpy only, no torch

    parser.add_argument("mesh", type=Path, metavar="MESH", help="OBJ, PLY, STL, OFF, GLB or glTF mesh")
    add_fit_arguments(parser, output_help="output mesh: .ply, .glb or .npz (default: MESH_MODEL.ply)")
    parser.add_argument("--resolution", type=positive_int,
                        help="marching-cubes grid points per axis (default: chosen from the mesh's thinnest feature, "
                             "within the preset's task.resolution_min..max: quick 128-256, default 192-512, "
                             "high 512-1024)")
    parser.add_argument("--mc", choices=MC_BACKENDS,
                        help="marching-cubes implementation (default: auto, torch on CUDA, else skimage)")


def run(args: argparse.Namespace) -> int:
    from nstr.geometry.export import OUTPUT_SUFFIXES, write_mesh
    from nstr.geometry.mesh import load_mesh
    from nstr.paths import check_writable_output
    from nstr.tasks.sdf import fit_sdf, sdf_config

    output = args.output or Path(f"{args.mesh.stem}_{args.model}.ply")
    check_writable_output(output, (args.mesh,), OUTPUT_SUFFIXES, "the mesh")  # before a long fit
    check_fit_paths(args, output, [args.mesh])
    overrides = overrides_from_args(args)
    if args.resolution is not None:
        overrides["task.resolution"] = args.resolution
    if args.mc is not None:
        overrides["task.mc"] = args.mc
    cfg = sdf_config(args.preset, overrides)
    mesh, mesh_report = load_mesh(args.mesh)  # bad input fails here, before torch is imported (~seconds)
    from nstr.train import ProgressBar

    for note in mesh_report.warnings:
        print(f"note: {note}")
    bar = None if args.quiet else ProgressBar(label=f"fit sdf ({cfg.field.model})")
    result = fit_sdf(mesh, cfg, mesh_report=mesh_report, checkpoint=args.checkpoint, on_train_progress=bar)
    write_mesh(output, result.arrays)
    report = {**result.report, "input": str(args.mesh), "output": str(output)}
    write_report(args.report, report)
    m, t = report["metrics"], report["timings"]
    print(f"sdf {report['model']}: {report['params']:,} params, {report['steps']} steps on {report['device']}; "
          + ", ".join(f"{k} {m[k]:.4g}" for k in ("chamfer_l1", "normal_consistency", "fscore_1pct", "iou") if k in m))
    if "topology" in m:
        topo = m["topology"]
        print(f"topology: input {topo['input']['components']} component(s), genus {topo['input']['genus']}; "
              f"result {topo['output']['components']}, genus {topo['output']['genus']}; "
              f"{topo['floaters']['dropped']} floater(s) dropped")
        if "solid" in topo:   # the input's parts intersect: what a fit can have is one solid's surface
            solid = report["samples"]["solid"]
            print(f"note: the input's parts intersect; fitted as the solid they bound ({solid['buried_faces']} "
                  f"buried face piece(s), {100 * solid['buried_area_share']:.1f}% of the area, dropped), which has "
                  f"{topo['solid']['components']} component(s), genus {topo['solid']['genus']}; scores are against it")
    print("seconds: " + ", ".join(f"{k} {t[k]:.1f}" for k in ("sample", "fit", "extract", "attributes")))
    print(f"wrote {output} ({report['extraction']['vertices']:,} vertices, {report['extraction']['faces']:,} faces)")
    return 0
