"""The batch's inputs: mesh files, folders (their meshes, not recursive) and globs, each with the
output name ``<stem>`` it will get. Two inputs that would write the same output are refused up front."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from nstr.errors import InputError
from nstr.geometry.mesh import SUPPORTED_SUFFIXES


@dataclass(frozen=True)
class BatchInput:
    path: Path
    stem: str  # OUTDIR/<stem>.<format> and OUTDIR/<stem>.json


def _is_mesh(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES and not path.name.startswith(".")


def discover(specs: list[str] | list[Path]) -> list[BatchInput]:
    """Expand files, folders and globs in the order given (folders and globs sorted by name)."""
    found: list[Path] = []
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            hits = sorted(p for p in path.iterdir() if _is_mesh(p))
            if not hits:
                raise InputError(f"the folder '{spec}' holds no mesh files",
                                 "Put OBJ, PLY, STL, OFF or GLB files in it, or pass the files themselves")
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise InputError(f"'{spec}' has an unsupported mesh format '{path.suffix or '(none)'}'",
                                 "Use one of: " + ", ".join(s[1:].upper() for s in SUPPORTED_SUFFIXES))
            hits = [path]
        elif glob.has_magic(spec):
            hits = sorted(Path(p) for p in glob.glob(spec) if _is_mesh(Path(p)))
            if not hits:
                raise InputError(f"the pattern '{spec}' matches no mesh files", "Check the pattern and the folder")
        else:
            raise InputError(f"the input '{spec}' does not exist", "Check the path, or quote a glob pattern")
        found.extend(hits)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    by_stem: dict[str, Path] = {}
    for p in unique.values():
        other = by_stem.setdefault(p.stem, p)
        if other is not p:
            raise InputError(f"'{other}' and '{p}' would both be written as '{p.stem}' in the output folder",
                             "Rename one of them, or run them in separate batches with different -o folders")
    if not by_stem:
        raise InputError("no input meshes", "Pass mesh files, folders or glob patterns")
    return [BatchInput(p, stem) for stem, p in by_stem.items()]
