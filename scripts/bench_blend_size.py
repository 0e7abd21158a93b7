"""How heavy a result .blend is, and what makes it heavy (issue 29: light files).

    .venv/bin/python scripts/bench_blend_size.py                       # runs the README demo fit first
    .venv/bin/python scripts/bench_blend_size.py before.blend after.blend

With no paths it runs ``scripts/fit.py`` with its defaults (quick Suzanne, --no-render) into a
temporary folder. For each file it prints, side by side: the file as saved, the same data saved
compressed and uncompressed, and every NSTR result mesh's vertex count and the bytes its stored
layers take in memory, by type (attributes and colours; vertex groups are not counted). Needs
the bpy module (python mode).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import bpy

REPO = Path(__file__).resolve().parents[1]
ITEM_BYTES = {"FLOAT": 4, "INT": 4, "FLOAT_VECTOR": 12, "FLOAT_COLOR": 16, "BYTE_COLOR": 4, "BOOLEAN": 1,
              "FLOAT2": 8, "INT32_2D": 8, "INT8": 1}


def measure(path: Path) -> dict[str, str]:
    """One column of the table."""
    bpy.ops.wm.open_mainfile(filepath=str(path))
    row = {"file as saved": f"{path.stat().st_size / 1e6:.2f} MB"}
    with tempfile.TemporaryDirectory() as tmp:
        for compress in (True, False):
            copy = Path(tmp) / "copy.blend"
            bpy.ops.wm.save_as_mainfile(filepath=str(copy), compress=compress, copy=True)
            row["compressed" if compress else "uncompressed"] = f"{copy.stat().st_size / 1e6:.2f} MB"
    for obj in bpy.data.objects:
        if obj.type != "MESH" or "nstr_meta" not in obj:
            continue
        mesh = obj.data
        counts = {"POINT": len(mesh.vertices), "EDGE": len(mesh.edges), "FACE": len(mesh.polygons),
                  "CORNER": len(mesh.loops)}
        layers = {a.name: ITEM_BYTES.get(a.data_type, 4) * counts[a.domain] for a in mesh.attributes}
        row[f"{obj.name}: vertices"] = str(counts["POINT"])
        row[f"{obj.name}: layers"] = f"{len(layers)} ({sum(layers.values()) / 1e6:.1f} MB in memory)"
        kinds: dict[str, int] = {}
        for a in mesh.attributes:
            kinds[a.data_type] = kinds.get(a.data_type, 0) + layers[a.name]
        for kind, size in sorted(kinds.items(), key=lambda kv: -kv[1]):
            row[f"{obj.name}: {kind}"] = f"{size / 1e6:.1f} MB"
    return row


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:]]
    if not paths:
        out = Path(tempfile.mkdtemp(prefix="nstr_bench_blend_")) / "suzanne.blend"
        subprocess.run([sys.executable, str(REPO / "scripts" / "fit.py"), "--output", str(out), "--no-render"],
                       check=True, env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))
        paths = [out]
    columns = [measure(p) for p in paths]
    keys = list(dict.fromkeys(k for c in columns for k in c))
    print("| | " + " | ".join(p.name for p in paths) + " |")
    print("|---|" + "---|" * len(paths))
    for key in keys:
        print(f"| {key} | " + " | ".join(c.get(key, "-") for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
