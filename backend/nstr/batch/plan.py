"""The job config of a batch, its hash, the input hashes, and the resume rule.

An input is up to date when ``OUTDIR/<stem>.json`` records the same input hash (SHA-256 of the
file's bytes) and the same config hash (SHA-256 of the RESOLVED config: preset plus overrides as
``build_config`` expands them, so two spellings of one config match) and its output file exists.
The report is written after the mesh, so a report always means a complete output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nstr.batch.inputs import BatchInput

FORMATS = ("ply", "glb", "npz")


def job_config(preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The job config that every job of the batch gets (architecture.md's job format), validated now."""
    from nstr.tasks.sdf import sdf_config

    sdf_config(preset, overrides)  # ConfigError for the whole batch, before anything starts
    return {"preset": preset, **overrides}


def config_hash(config: dict[str, Any]) -> str:
    from nstr.tasks.sdf import sdf_config

    rest = dict(config)
    resolved = sdf_config(rest.pop("preset", "default"), rest).to_dict()
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def report_path(outdir: Path, item: BatchInput) -> Path:
    return outdir / f"{item.stem}.json"


def output_path(outdir: Path, item: BatchInput, fmt: str) -> Path:
    return outdir / f"{item.stem}.{fmt}"


def previous_report(outdir: Path, item: BatchInput, fmt: str, input_sha: str, config_sha: str) -> dict | None:
    """The earlier run's report when it is for these very bytes and this config, else None."""
    path = report_path(outdir, item)
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    batch = report.get("batch") if isinstance(report, dict) else None
    if not isinstance(batch, dict):
        return None
    if batch.get("input_sha256") != input_sha or batch.get("config_sha256") != config_sha:
        return None
    if not output_path(outdir, item, fmt).is_file():
        return None
    return report
