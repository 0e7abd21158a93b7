"""The checks every loader makes on a path before it opens it."""

from __future__ import annotations

from pathlib import Path

from nstr.errors import InputError


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
    """Refuse, before a fit starts, outputs that would fail at the end or overwrite the user's input."""
    if path.suffix.lower() not in suffixes:
        raise InputError(f"cannot write {kind} to '{path}': unsupported extension '{path.suffix or '(none)'}'",
                         "Use one of: " + ", ".join(suffixes))
    for src in inputs:
        if src.exists() and path.exists() and path.resolve() == src.resolve():
            raise InputError(f"the output '{path}' is the input file; writing it would destroy your data",
                             "Choose another output path with -o")
        for extra in ("_compare.png", "_flow.png"):  # the pictures written next to the output
            picture = path.with_name(path.stem + extra)
            if src.exists() and picture.exists() and picture.resolve() == src.resolve():
                raise InputError(f"the picture '{picture}' would overwrite the input file",
                                 "Choose another output path with -o")
    if path.is_dir():
        raise InputError(f"the output '{path}' is a folder", "Pass a file name, e.g. -o result" + suffixes[0])
