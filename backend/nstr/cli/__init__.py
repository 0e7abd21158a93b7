"""The ``nstr`` command line: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``HELP`` (one line),
``DESCRIPTION`` (optional), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules import torch inside ``run`` so that ``nstr --help`` stays quick.
User errors (:class:`~nstr.errors.NSTRError`) become one line on stderr and a
non-zero exit code; tracebacks are only shown with ``NSTR_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from nstr import __version__
from nstr.errors import NSTRError

# name -> module, in the order --help lists them
COMMANDS: dict[str, str] = {
    "fit": "nstr.cli.fit",
    "eval": "nstr.cli.eval_mesh",
    "serve": "nstr.cli.serve",
    "submit": "nstr.cli.submit",
    "jobs": "nstr.cli.jobs",
}

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line with a hint, not usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}. Run '{self.prog} --help' for the options.\n")
        raise SystemExit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nstr",
        description="Fit Neural Spectral Transport Representation (NSTR) fields and their baselines "
                    "(SIREN, Fourier features, hash grid) to images, audio, meshes (SDF) and NeRF scenes; "
                    "serve fits to Blender.",
        epilog="Run 'nstr COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"nstr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except NSTRError as err:
        if os.environ.get("NSTR_DEBUG"):
            raise
        sys.stderr.write(f"nstr: error: {err}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("nstr: interrupted\n")
        return EXIT_INTERRUPTED
    except (OSError, RecursionError, ValueError, MemoryError) as err:  # never a traceback for the user
        if os.environ.get("NSTR_DEBUG"):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        sys.stderr.write(f"nstr: error: {type(err).__name__}: {first}. Run with NSTR_DEBUG=1 for the traceback\n")
        return EXIT_USER_ERROR
