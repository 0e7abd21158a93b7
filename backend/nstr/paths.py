"""The checks on every path the backend reads or writes, made before any work: one rule for each.

Inputs: a missing file, a folder, an unreadable or empty file get a message that says which. Outputs: one
rule for every path that is written (``-o``, ``--report``, ``--checkpoint``, ``--flow``): never an input file
or a path inside an input folder, never two flags on one path, never a folder, and only where a file can
really be created (:func:`check_outputs`); before the input is read, only what an output file can be
checked for alone (:func:`check_writable_output`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from nstr.errors import InputError

PICTURES = ("_compare.png", "_flow.png")   # written beside an output (nstr.signals), checked with it


def check_readable_file(path: Path, kind: str) -> None:
    """Missing files and folders get a message that says which, not an OSError traceback."""
    if not path.exists():
        raise InputError(f"{kind} file '{path}' does not exist", "Check the path and the file name")
    if path.is_dir():
        raise InputError(f"'{path}' is a folder, not {kind} file", f"Pass the path of {kind} file")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as err:
        raise InputError(f"cannot read '{path}': {err.strerror or err}",
                         "Check the file's permissions") from None
    if path.stat().st_size == 0:
        raise InputError(f"'{path}' is empty (0 bytes)", f"Pass a non-empty {kind} file")


def check_writable_output(path: Path, inputs: tuple[Path, ...], suffixes: tuple[str, ...], kind: str) -> None:
    """The checks an output FILE can have before its input is read: its type (one of ``suffixes``), not a
    folder, and neither it nor a picture written beside it (PICTURES) the input itself. The full rule
    (:func:`check_outputs`: inside an input folder, two flags on one path, can a file be created there) runs
    after the input's own checks, so a wrong input is named first (``nstr fit image FOLDER``: "is a folder",
    not "the output lies inside the input folder")."""
    if path.suffix.lower() not in suffixes:
        raise InputError(f"cannot write {kind} to '{path}': unsupported extension '{path.suffix or '(none)'}'",
                         "Use one of: " + ", ".join(suffixes))
    for src in inputs:
        if src.exists() and path.exists() and path.resolve() == src.resolve():
            raise InputError(f"the output '{path}' is the input file; writing it would destroy your data",
                             "Choose another output path with -o")
        for extra in PICTURES:
            picture = path.with_name(path.stem + extra)
            if src.exists() and picture.exists() and picture.resolve() == src.resolve():
                raise InputError(f"the picture '{picture}' would overwrite the input file",
                                 "Choose another output path with -o")
    if path.is_dir():
        raise InputError(f"the output '{path}' is a folder", "Pass a file name, e.g. -o result" + suffixes[0])


def check_outputs(outputs: dict[str, Path | None], inputs: Sequence[Path | None]) -> None:
    """Refuse, before any work, an output (``{"-o": path, "--report": path, ...}``) that resolves to an
    input file or into an input folder (a dataset), or that cannot be written. One rule for every flag
    that writes, so a new one (``--flow``) only has to be listed here by its caller."""
    resolved_inputs = [Path(p).expanduser().resolve() for p in inputs if p is not None]
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        target = Path(path).expanduser().resolve()
        for src in resolved_inputs:
            if target == src:
                raise InputError(f"{flag} '{path}' is the input file {src.name}; writing it would destroy your data",
                                 f"Choose another path for {flag}")
            if src.is_dir() and src in target.parents:
                raise InputError(f"{flag} '{path}' lies inside the input folder {src}; writing there could "
                                 "overwrite your data", f"Choose a path for {flag} outside {src}")
        if target in seen:
            raise InputError(f"{flag} and {seen[target]} both name '{path}'", f"Give {flag} its own path")
        seen[target] = flag
        if target.is_dir():
            raise InputError(f"{flag} '{path}' is a folder", f"Pass a file name for {flag}")
        if target.exists():
            if not os.access(target, os.W_OK):
                raise InputError(f"{flag} '{path}' is not writable", "Check its permissions or choose another path")
            continue
        parent = target.parent
        while not parent.exists():  # the folders will be created: the nearest existing one must be writable
            parent = parent.parent
        why = _cannot_create_in(parent)
        if why is not None:
            raise InputError(f"cannot write {flag} '{path}': the folder {parent} {why}", "Choose a writable location")


def _cannot_create_in(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (None: one can). Tried for real, with a file that is
    removed at once: permission bits say nothing for root, or on /proc, or on a read-only mount."""
    import tempfile

    if not folder.is_dir():
        return "is not writable"  # a file where a folder would have to be
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nstr-write-test-"):
            pass
    except OSError as err:
        return f"does not accept new files ({err.strerror or type(err).__name__})"
    return None
