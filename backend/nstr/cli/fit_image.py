"""``nstr fit image INPUT``: fit a field to a PNG/JPEG and write the reconstruction, pictures and a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from nstr.cli.common import add_fit_arguments, overrides_from_args, write_report

HELP = "fit a field to a PNG/JPEG image (grey or RGB); report PSNR and SSIM"
DESCRIPTION = """Fit a neural field to every pixel of a PNG or JPEG image (grey or RGB), write the
reconstruction and pictures of the fit, and report PSNR (on [0, 1]) and SSIM.

Files written, for -o OUT.png (default: INPUT_MODEL.png in the current folder):
  OUT.png            the reconstruction, same size as the input
  OUT_compare.png    input, reconstruction and error map
  OUT_flow.png       NSTR only: local frequency, drift, transport residual, bandwidth
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


def run(args: argparse.Namespace) -> int:
    from nstr.signals.image_io import OUTPUT_SUFFIXES, load_image, save_image
    from nstr.signals._paths import check_writable_output
    from nstr.tasks.image import image_config

    output = args.output or Path(f"{args.input.stem}_{args.model}.png")
    check_writable_output(output, (args.input,), OUTPUT_SUFFIXES, "the reconstruction")  # before a long fit
    cfg = image_config(args.preset, overrides_from_args(args))
    image = load_image(args.input)
    result = _fit(image, cfg, args)
    save_image(output, result.reconstruction)
    pictures = {}
    if not args.no_pictures:
        from nstr.viz import image_pictures

        pictures = image_pictures(result, image, output.with_suffix(""))
    report = {**result.report, "input": str(args.input), "output": str(output),
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
