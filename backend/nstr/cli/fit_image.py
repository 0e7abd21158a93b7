"""``nstr fit image INPUT``: fit a field to a PNG/JPEG and write the reconstruction, pictures and a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from nstr.cli.common import add_fit_arguments, check_fit_paths, overrides_from_args
from nstr.jsonable import write_report

HELP = "fit a field to a PNG/JPEG image (grey or RGB); report PSNR and SSIM"
DESCRIPTION = """Fit a neural field to every pixel of a PNG or JPEG image (grey or RGB), write the
reconstruction and pictures of the fit, and report PSNR (on [0, 1]) and SSIM.

Files written, for -o OUT.png (default: INPUT_MODEL.png in the current folder):
  OUT.png            the reconstruction, same size as the input
  OUT_compare.png    input, reconstruction and error map
  OUT_flow.png       measured local frequency beside the input's own local spectrum, drift,
                     bandwidth (every model); NSTR's internal readout and transport residual (NSTR)
  FLOW.npz           with --flow: per pixel local_frequency, bandwidth (cycles per pixel), drift
                     (H, W, 2), NSTR also spectral_frequency, transport_drift, drift_exact,
                     transport_residual; meta_json holds units and descriptions
  REPORT.json        with --report: task, model, params, steps, seconds, device, metrics
                     {psnr, ssim}, config, pictures, spectral (NSTR), history

Examples:
  nstr fit image photo.png -o out/photo_nstr.png --preset quick --report out/photo.json
  nstr fit image photo.png --model siren --params 20000 --steps 500
  nstr fit image photo.png --set field.phase_mod=true --set train.lambda_pde=0"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT", help="PNG or JPEG image, grey or RGB")
    add_fit_arguments(parser, output_help="where to write the reconstruction (.png or .jpg); pictures go next "
                                          "to it as OUT_compare.png and OUT_flow.png (default: INPUT_MODEL.png)")
    parser.add_argument("--no-pictures", action="store_true", help="skip the comparison and spectral-flow pictures")
    add_flow_argument(parser, "per pixel: local_frequency, bandwidth (cycles per pixel), drift")


def add_flow_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--flow", type=Path, metavar="FLOW.npz",
                        help=f"write the spectral flow of the fit to this .npz ({what}); never an input file")


def check_flow_output(flow: Path | None, inputs: tuple[Path, ...]) -> None:
    """--flow must be a new .npz that is neither an input nor another output of this run."""
    from nstr.errors import InputError
    from nstr.paths import check_writable_output

    if flow is None:
        return
    check_writable_output(flow, inputs[:1], (".npz",), "the spectral flow")
    for other in inputs[1:]:
        if other is not None and flow.resolve() == Path(other).resolve():
            raise InputError(f"--flow '{flow}' is the same file as another output of this run",
                             "Give --flow its own file name, e.g. out/flow.npz")


def write_flow(path: Path | None, arrays: dict, units: dict[str, str], descriptions: dict[str, str]) -> None:
    """Save the flow arrays with a meta_json (units, descriptions) as architecture.md's npz results do."""
    if path is None:
        return
    import json

    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"units": {k: v for k, v in units.items() if k in arrays},
            "descriptions": {k: v for k, v in descriptions.items() if k in arrays}}
    np.savez_compressed(path, **arrays, meta_json=np.frombuffer(json.dumps(meta).encode(), np.uint8))


FLOW_DESCRIPTIONS = {
    "local_frequency": "measured on the fitted signal: the power-weighted RMS frequency of a short window around "
                       "each sample (window spread removed)",
    "bandwidth": "the spread of frequencies in that window",
    "drift": "the rate of change of the measured local frequency",
    "time_s": "time of each sample",
    "spectral_frequency": "NSTR only, research: the S-weighted centroid of its carriers (not calibrated)",
    "transport_drift": "NSTR only: the drift of spectral_frequency through the transport network F_theta",
    "drift_exact": "NSTR only: the same through the exact Jacobian dS/dx",
    "transport_residual": "NSTR only: ||dS/dx - F_theta||",
}


def run(args: argparse.Namespace) -> int:
    from nstr.signals.image_io import OUTPUT_SUFFIXES, load_image, save_image
    from nstr.paths import check_writable_output
    from nstr.tasks.image import image_config, image_flow

    output = args.output or Path(f"{args.input.stem}_{args.model}.png")
    check_writable_output(output, (args.input,), OUTPUT_SUFFIXES, "the reconstruction")  # before a long fit
    check_flow_output(args.flow, (args.input, output, args.report))
    cfg = image_config(args.preset, overrides_from_args(args))
    image = load_image(args.input)
    check_fit_paths(args, output, (args.input,), {"--flow": args.flow})  # after the input's own checks
    result = _fit(image, cfg, args)
    save_image(output, result.reconstruction)
    cpp = "cycles per pixel"
    write_flow(args.flow, image_flow(result) if args.flow else {},
               {"local_frequency": cpp, "bandwidth": cpp, "drift": cpp + " per pixel, (d/dx, d/dy), y down",
                "spectral_frequency": cpp, "transport_drift": cpp + " per pixel", "drift_exact": cpp + " per pixel",
                "transport_residual": "|dS/dx - F| per unit of the field's [-1, 1] box"}, FLOW_DESCRIPTIONS)
    pictures = {}
    if not args.no_pictures:
        from nstr.viz import image_pictures

        pictures = image_pictures(result, image, output.with_suffix(""))
    report = {**result.report, "input": str(args.input), "output": str(output),
              **({"flow": str(args.flow)} if args.flow else {}),
              "pictures": {k: str(v) for k, v in pictures.items()}}
    write_report(args.report, report)
    _print_summary(report)
    return 0


def _fit(image, cfg, args):  # noqa: ANN001, ANN202 - thin CLI glue
    from nstr.tasks.image import fit_image
    from nstr.train import ProgressBar

    bar = None if args.quiet else ProgressBar(label=f"fit image ({cfg.field.model})")
    return fit_image(image, cfg, checkpoint=args.checkpoint, on_progress=bar)


def _print_summary(report: dict) -> None:
    m = report["metrics"]
    line = (f"{report['task']} {report['model']}: {report['params']:,} params, {report['steps']} steps, "
            f"{report['seconds']:.1f} s on {report['device']}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
    print(line)
    print(f"wrote {report['output']}" + "".join(f", {p}" for p in report["pictures"].values()))
