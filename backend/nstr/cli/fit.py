"""``nstr fit TASK ...``: one sub-subcommand per task, each in its task's CLI module."""

from __future__ import annotations

import argparse
import importlib

HELP = "fit a field to an image, audio clip, mesh (SDF) or NeRF dataset"
DESCRIPTION = HELP + ".\n\nRun 'nstr fit TASK --help' for a task's options."

# task -> module exposing HELP, add_arguments(parser), run(args)
TASKS: dict[str, str] = {
    "image": "nstr.cli.fit_image",
    "audio": "nstr.cli.fit_audio",
    "sdf": "nstr.cli.fit_sdf",
    "nerf": "nstr.cli.fit_nerf",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nstr.cli import OneLineParser

    sub = parser.add_subparsers(dest="task", metavar="TASK", parser_class=OneLineParser)
    sub.required = True
    for name, module_name in TASKS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)


def run(args: argparse.Namespace) -> int:  # replaced by the task's run via set_defaults
    raise AssertionError("unreachable: argparse dispatches to the task's run")
