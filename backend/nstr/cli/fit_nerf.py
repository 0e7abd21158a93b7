"""``nstr fit nerf DATASET_DIR``: fit a radiance field to a transforms.json dataset; write a coloured mesh,
test-view renders and a report (PSNR / SSIM on the held-out test views)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nstr.cli.common import add_fit_arguments, check_fit_paths, non_negative_int, overrides_from_args
from nstr.jsonable import write_report

HELP = "fit a NeRF scene (transforms.json or COLMAP folder); report test-view PSNR and SSIM, write a coloured mesh"
DESCRIPTION = """Fit a radiance field (by default an SDF, NeuS-style, from the chosen field: --geometry sdf;
or a density field: --geometry density; view-dependent colour from a small head) to the posed RGBA views of a dataset in the transforms.json convention (NeRF synthetic, instant-ngp,
or one rendered by the Blender add-on), score it on the held-out test views (PSNR on [0, 1] and SSIM,
over a white background) and extract a mesh (the SDF's zero level set, closed; or a density level)
with baked vertex colours and the detail maps (any model; backend/docs/spectral-flow.md). Views with alpha (a transparent
film) train with a mask loss; views without alpha still work: a colour per ray direction (an environment
map) is learnt behind the object when their border is not one colour, else the border colour is the
background (--set task.background=learned or =color: always one or the other).

DATASET_DIR holds transforms_train.json (+ transforms_test.json / _val.json) or one transforms.json
(every 8th frame is then a test view), with camera_angle_x or fl_x/fl_y/cx/cy/w/h (nerfstudio's lens
distortion k1 k2 k3 p1 p2 or OPENCV_FISHEYE k1..k4 is removed at load); or, without a transforms file,
a COLMAP sparse model (sparse/0/, sparse/ or colmap/sparse/0/, text or binary) with the photos in images/.
Pixels a lens leaves without data when undistorted (pincushion margins) are never trained on or scored.
--set task.box=x0,y0,z0,x1,y1,z1 puts the scene's box around the object (world units) instead of the
box the cameras frame, and cuts the mesh to it (closed at the box's faces); a box that no training
camera sees is refused. --set task.appearance=exposure learns a colour gain per photo (exposure and
white balance that change between photos). --set task.pose_refine=on learns a small rotation and shift of
each training camera (poses a fraction of a degree off); held-out views keep theirs.

Files written, for -o OUT.ply|.glb|.npz (default: DATASET_MODEL.ply in the current folder):
  OUT.ply / .glb / .npz   the mesh, in the dataset's world coordinates; PLY/GLB vertex colours are the
                          baked albedo, the .npz holds every array (architecture.md) + meta_json
  OUT_renders/            test_NNN.png (RGBA renders of the test views) and test_sheet.png
                          (truth above, render below)
  REPORT.json             with --report: task, model, params, steps, seconds, device, metrics
                          {psnr, ssim}, dataset, mesh, config, history

Examples:
  nstr fit nerf scenes/suzanne -o out/suzanne.ply --preset quick --report out/suzanne.json
  nstr fit nerf nerf_synthetic/lego --model hashgrid --params 400000 --device cuda
  nstr fit nerf scenes/suzanne --set task.image_size=32 --steps 300 --no-mesh"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR",
                        help="folder with transforms*.json and images, or a COLMAP capture")
    add_fit_arguments(parser, output_help="mesh file (.ply, .glb or .npz); renders go to OUT_renders/ "
                                          "(default: DATASET_MODEL.ply)")
    parser.add_argument("--image-size", type=non_negative_int,
                        help="resize views to this square size (default: the preset's; 0 keeps the dataset's)")
    parser.add_argument("--no-mesh", action="store_true", help="skip mesh extraction (only renders and metrics)")
    parser.add_argument("--geometry", choices=("sdf", "density"),
                        help="sdf (default): NeuS, a closed mesh; density: the density field, for comparison")


def run(args: argparse.Namespace) -> int:
    from nstr.geometry.export import OUTPUT_SUFFIXES
    from nstr.nerf.source import load_dataset
    from nstr.paths import check_writable_output
    from nstr.tasks.nerf import nerf_config

    output = args.output or Path(f"{args.dataset.resolve().name}_{args.model}.ply")
    check_writable_output(output, (), OUTPUT_SUFFIXES, "the mesh")  # before a long fit, not after
    check_fit_paths(args, output, [args.dataset])
    overrides = overrides_from_args(args)
    if args.image_size is not None:
        overrides["task.image_size"] = args.image_size
    if args.geometry is not None:
        overrides["task.geometry"] = args.geometry
    cfg = nerf_config(args.preset, overrides)
    dataset = load_dataset(args.dataset, cfg.task.image_size, max_frames=cfg.task.max_frames,
                           max_pixels=cfg.task.max_pixels)
    result = _fit(dataset, cfg, args)
    renders_dir = output.with_name(output.stem + "_renders")
    renders = _save(result, output, renders_dir, args.no_mesh)
    report = {**result.report, "input": str(args.dataset), "output": None if args.no_mesh else str(output),
              "renders": [str(p) for p in renders]}
    write_report(args.report, report)
    m = report["metrics"]
    for note in report.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print(f"nerf {report['model']}: {report['params']:,} params, {report['steps']} steps, "
          f"{report['seconds']:.1f} s on {report['device']}: test psnr {m['psnr']:.2f} dB, ssim {m['ssim']:.3f}")
    print(json.dumps({"psnr": m["psnr"], "ssim": m["ssim"]}))
    return 0


def _fit(dataset, cfg, args):  # noqa: ANN001, ANN202 - thin CLI glue
    from nstr.tasks.nerf import fit_nerf
    from nstr.train import ProgressBar

    bar = None if args.quiet else ProgressBar(label=f"fit nerf ({cfg.field.model})")
    return fit_nerf(dataset, cfg, checkpoint=args.checkpoint, on_progress=bar)


def _save(result, output: Path, renders_dir: Path, no_mesh: bool) -> list[Path]:  # noqa: ANN001
    from nstr.geometry.export import write_mesh
    from nstr.tasks.nerf import mesh_arrays, save_renders

    renders = save_renders(result, renders_dir)
    if not no_mesh:
        arrays = mesh_arrays(result)
        # PLY/GLB viewers show one colour set: for a NeRF the colour a user expects is the baked albedo
        write_mesh(output, arrays, primary="color_albedo" if "color_albedo" in arrays else None)
    return renders
