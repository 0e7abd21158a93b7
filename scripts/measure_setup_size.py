#!/usr/bin/env python3
"""Measure what "Set up backend" needs, for the sizes the preferences state before downloading
(``nstr_blender/core/backend_setup.py: TORCH_BUILDS``).

    flock /tmp/nstr-bench.lock .venv/bin/python scripts/measure_setup_size.py [--build cpu]

Runs the add-on's real set-up (``Setup``) into a temporary folder, then
- download: ``pip download`` of the same requirements into an empty folder, summed (the wheels a
  first set-up fetches; the backend itself ships in the add-on and is not counted);
- on disk: ``du`` of the finished ``backend_venv``.
``--build cuda`` downloads the CUDA wheels (several GB): run it where that is wanted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nstr_blender.core.backend_setup import TORCH_BUILDS, Setup  # noqa: E402
from nstr_blender.core.settings import venv_python  # noqa: E402


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", choices=sorted(TORCH_BUILDS), default="cpu")
    args = parser.parse_args(argv)
    build = TORCH_BUILDS[args.build]
    with tempfile.TemporaryDirectory(prefix="nstr_setup_size_") as tmp:
        folder = Path(tmp)
        t0 = time.monotonic()
        state = Setup(folder, build=args.build).run()
        seconds = time.monotonic() - t0
        if not state.done:
            print(f"measure_setup_size: the set-up failed: {state.error}", file=sys.stderr)
            return 1
        venv = folder / "backend_venv"
        wheels = folder / "wheels"
        proc = subprocess.run([str(venv_python(venv)), "-m", "pip", "download", "-q", "--disable-pip-version-check",
                               "-d", str(wheels), *build.index_args, build.requirement, str(folder / "backend_src")],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"measure_setup_size: pip download failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
            return 1
        files = [p for p in wheels.iterdir() if not p.name.startswith("nstr")]
        torch_bytes = sum(p.stat().st_size for p in files if p.name.startswith("torch-"))
        total = sum(p.stat().st_size for p in files)
        print(f"| build | torch wheel | all wheels downloaded ({len(files)}) | finished venv on disk | set-up time |")
        print("|---|---|---|---|---|")
        print(f"| {build.requirement} | {torch_bytes / 2**20:.0f} MiB | {total / 2**20:.0f} MiB | "
              f"{tree_bytes(venv) / 2**20:.0f} MiB | {seconds:.0f} s (local wheels) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
