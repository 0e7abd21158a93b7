"""``nstr fit audio INPUT``: fit a field to a mono WAV clip and write the reconstruction, pictures and a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from nstr.cli.common import add_fit_arguments, check_fit_paths, overrides_from_args
from nstr.jsonable import write_report

HELP = "fit a field to a mono WAV clip; report the SNR in dB"
DESCRIPTION = """Fit a neural field to every sample of a mono WAV clip (16/24/32-bit PCM or 32/64-bit
float), write the reconstruction and pictures of the fit, and report the SNR in dB.

Files written, for -o OUT.wav (default: INPUT_MODEL.wav in the current folder):
  OUT.wav            the reconstruction (16-bit PCM, the input's rate; the excerpt when
                     --start/--duration are given)
  OUT_compare.png    waveforms, error, and spectrograms of input and reconstruction
  OUT_flow.png       the input's spectrogram with the measured local frequency of the fit on
                     top (every model); NSTR also its internal readout, S over time, drift
  FLOW.npz           with --flow: per sample time_s, local_frequency, bandwidth (Hz), drift
                     (Hz/s); NSTR also spectral_frequency, transport_drift, drift_exact,
                     transport_residual; meta_json holds units and descriptions
  REPORT.json        with --report: task, model, params, steps, seconds, device, metrics
                     {snr_db}, config, pictures, spectral (NSTR), history

Examples:
  nstr fit audio speech.wav -o out/speech_nstr.wav --preset quick --duration 0.25
  nstr fit audio speech.wav --model siren --params 20000 --report out/speech.json"""


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' must be 0 or more seconds")
    return value


def positive_seconds(text: str) -> float:
    value = non_negative_seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be more than 0 seconds")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT", help="mono WAV file (16/24/32-bit PCM or float)")
    add_fit_arguments(parser, output_help="where to write the reconstruction (.wav); pictures go next to it as "
                                          "OUT_compare.png and OUT_flow.png (default: INPUT_MODEL.wav)")
    parser.add_argument("--start", type=non_negative_seconds, metavar="SECONDS",
                        help="fit the excerpt that starts here (default: 0)")
    parser.add_argument("--duration", type=positive_seconds, metavar="SECONDS",
                        help="fit an excerpt this long (default: to the end of the clip)")
    parser.add_argument("--no-pictures", action="store_true", help="skip the comparison and spectral-flow pictures")
    from nstr.cli.fit_image import add_flow_argument

    add_flow_argument(parser, "per sample: time_s, local_frequency, bandwidth (Hz), drift (Hz/s)")


def run(args: argparse.Namespace) -> int:
    from nstr.paths import check_writable_output
    from nstr.signals.audio_io import load_wav, save_wav
    from nstr.tasks.audio import audio_config, select

    output = args.output or Path(f"{args.input.stem}_{args.model}.wav")
    check_writable_output(output, (args.input,), (".wav",), "the reconstruction")  # before a long fit
    from nstr.cli.fit_image import FLOW_DESCRIPTIONS, check_flow_output, write_flow

    check_flow_output(args.flow, (args.input, output, args.report))
    overrides = overrides_from_args(args)
    if args.start is not None:
        overrides["task.start_s"] = args.start
    if args.duration is not None:
        overrides["task.duration_s"] = args.duration
    cfg = audio_config(args.preset, overrides)
    audio = load_wav(args.input)
    select(audio, cfg.task)  # a bad excerpt or a silent clip fails now, not after the fit
    check_fit_paths(args, output, (args.input,), {"--flow": args.flow})  # after the input's own checks
    result = _fit(audio, cfg, args)
    save_wav(output, result.reconstruction, result.audio.rate)
    if args.flow:
        from nstr.tasks.audio import audio_flow

        write_flow(args.flow, audio_flow(result),
                   {"time_s": "s", "local_frequency": "Hz", "bandwidth": "Hz", "drift": "Hz per second",
                    "spectral_frequency": "Hz", "transport_drift": "Hz per second", "drift_exact": "Hz per second",
                    "transport_residual": "|dS/dx - F| per unit of the field's [-1, 1] box"}, FLOW_DESCRIPTIONS)
    pictures = {}
    if not args.no_pictures:
        from nstr.viz import audio_pictures

        pictures = audio_pictures(result, output.with_suffix(""))
    report = {**result.report, "input": str(args.input), "output": str(output),
              **({"flow": str(args.flow)} if args.flow else {}),
              "pictures": {k: str(v) for k, v in pictures.items()}}
    write_report(args.report, report)
    from nstr.cli.fit_image import _print_summary

    _print_summary(report)
    return 0


def _fit(audio, cfg, args):  # noqa: ANN001, ANN202 - thin CLI glue
    from nstr.tasks.audio import fit_audio
    from nstr.train import ProgressBar

    bar = None if args.quiet else ProgressBar(label=f"fit audio ({cfg.field.model})")
    return fit_audio(audio, cfg, checkpoint=args.checkpoint, on_progress=bar)
