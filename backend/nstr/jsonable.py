"""Reports as JSON: the one encoder that every report, job record and result file's metadata goes through.

Reports carry numpy scalars and arrays, paths and dataclasses. Anything else is written as its text,
never refused: a finished result must not be lost to one odd value in its report.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


def jsonable(obj: Any) -> Any:
    """``json.dumps(..., default=jsonable)``: numpy scalars as numbers, arrays as lists, paths as text,
    dataclasses as dicts, and anything else as ``str(obj)``."""
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)


def write_report(path: Path | None, report: dict[str, Any]) -> None:
    """``report`` as indented JSON at ``path`` (its folder made); nothing when ``path`` is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False, default=jsonable) + "\n")
