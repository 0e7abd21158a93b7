"""One row per input: state, attempts, time, device, node and the mesh metrics, as CSV and Markdown."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

METRICS = ("chamfer_l1", "normal_consistency", "fscore_1pct", "iou")
COLUMNS = ("input", "state", "attempts", "seconds", "device", "node", "model", "params", *METRICS, "output", "message")


def row(input_path: Path, state: str, *, report: dict[str, Any] | None = None, output: str = "", node: str = "",
        attempts: int | str = "", message: str = "") -> dict[str, Any]:
    report = report or {}
    metrics = report.get("metrics") or {}
    out: dict[str, Any] = {"input": str(input_path), "state": state, "attempts": attempts,
                           "seconds": report.get("seconds", ""), "device": report.get("device", ""), "node": node,
                           "model": report.get("model", ""), "params": report.get("params", ""),
                           "output": output if state in ("done", "skipped") else "", "message": message}
    for k in METRICS:
        v = metrics.get(k)
        out[k] = "" if v is None else v
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "/").replace("\n", " ")


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["state"]] = out.get(r["state"], 0) + 1
    return out


def write(outdir: Path, rows: list[dict[str, Any]]) -> None:
    """summary.csv and summary.md, each replaced atomically (a crash never leaves half a table)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    tally = ", ".join(f"{n} {s}" for s, n in counts(rows).items())
    md = f"# Batch summary\n\n{len(rows)} inputs: {tally}\n\n" + to_markdown(rows)
    for name, text in (("summary.csv", buf.getvalue()), ("summary.md", md)):
        tmp = outdir / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, outdir / name)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
