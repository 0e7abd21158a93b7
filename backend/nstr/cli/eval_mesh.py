"""``nstr eval MESH REFERENCE``: score any mesh against a reference mesh."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nstr.cli.common import positive_int
from nstr.paths import check_outputs
from nstr.jsonable import write_report

HELP = "score a mesh against a reference: chamfer_l1, normal_consistency, fscore_1pct, iou, topology"
DESCRIPTION = """Score MESH against REFERENCE (any formats nstr reads, .npz results included) with the
metrics of ../shared/docs/anchors.md, both meshes in the reference's unit bounding box, by the one
scoring path of the fit reports and benchmarks (backend/docs/metrics.md): N area-uniform samples on
each mesh and the EXACT distance from each to the other mesh's triangles, so a perfect match scores
F@1% 1 and Chamfer 0 whatever its area:
  chamfer_l1          1/2 (accuracy + completeness), mean sample-to-surface distance
  normal_consistency  mean |n . n'| with the closest triangle's normal, both directions
  fscore_1pct         F-score at 1% of the unit box
  iou                 volumetric IoU over 50k uniform (padded box) + 50k near-surface points
  topology            components, genus, watertight of both meshes (nstr.geometry.topology), in --report

Example:
  nstr eval bunny_nstr.ply bunny.off --points 100000 --report scores.json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mesh", type=Path, metavar="MESH", help="the mesh to score (.obj/.ply/.stl/.off/.glb/.npz)")
    parser.add_argument("reference", type=Path, metavar="REFERENCE", help="the reference mesh")
    parser.add_argument("--points", type=positive_int, default=100_000,
                        help="surface samples per mesh (default: 100000; with exact distances the count sets "
                             "the scores' noise, not a floor)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    parser.add_argument("--report", type=Path, help="write the metrics as JSON here")


def run(args: argparse.Namespace) -> int:
    from nstr.geometry.metrics import mesh_metrics
    from nstr.geometry.topology import topology

    check_outputs({"--report": args.report}, [args.mesh, args.reference])
    candidate = _load(args.mesh)
    reference = _load(args.reference)
    metrics = mesh_metrics(candidate, reference, n_points=args.points, seed=args.seed)
    metrics["topology"] = {"mesh": topology(candidate.faces, candidate.vertices),
                           "reference": topology(reference.faces, reference.vertices)}
    write_report(args.report, {"mesh": str(args.mesh), "reference": str(args.reference), "metrics": metrics})
    summary = {k: metrics[k] for k in ("chamfer_l1", "normal_consistency", "fscore_1pct", "iou")}
    summary.update({f"{k}_{which}": metrics["topology"][which][k] for which in ("mesh", "reference")
                    for k in ("components", "genus")}, method=metrics["method"])
    print(json.dumps(summary))
    return 0


def _load(path: Path):  # noqa: ANN202
    from nstr.geometry.mesh import load_mesh, mesh_from_arrays

    if path.suffix.lower() == ".npz":
        from nstr.errors import InputError
        from nstr.geometry.export import read_npz
        from nstr.paths import check_readable_file

        check_readable_file(path, "a mesh")
        try:
            arrays, _ = read_npz(path)
        except Exception as err:  # noqa: BLE001 - any unreadable archive is the same user problem
            raise InputError(f"could not read '{path.name}' as .npz ({type(err).__name__})",
                             "Pass an .npz written by nstr, or another mesh format") from None
        if "vertices" not in arrays or "faces" not in arrays:
            raise InputError(f"'{path.name}' has no 'vertices' and 'faces' arrays", "Pass an .npz written by nstr")
        return mesh_from_arrays(arrays["vertices"], arrays["faces"], source=str(path))[0]
    return load_mesh(path)[0]
