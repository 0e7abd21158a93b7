#!/usr/bin/env python3
"""Build the NSTR add-on zips and validate the extension with Blender's own validator.

    python scripts/build_extension.py [--out dist] [--no-validate]

Makes ``dist/nstr_blender-<version>.zip``: one folder ``nstr_blender/`` holding
``blender_manifest.toml`` (from addon_manifest.toml), the add-on package and the
stdlib backend client vendored as ``nstr_blender/_vendor/nstr_remote`` (copied from
backend/nstr/remote), and the backend's sources as ``nstr_blender/_backend`` (pyproject.toml +
nstr/), which the preferences' "Set up backend" installs into a venv. The same zip installs as an extension in Blender 4.2+
(``extensions.package_install_files``) and as a legacy add-on in Blender 3.4+
(``preferences.addon_install``: the manifest is ignored, ``bl_info`` is used), so
there is no second zip. Validation runs ``blender_ext.py validate`` from the bpy
module's bundled bl_pkg.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nstr_blender"
BACKEND = REPO / "backend"
REMOTE = BACKEND / "nstr" / "remote"
MANIFEST = REPO / "addon_manifest.toml"
SKIP_PARTS = {"__pycache__", "_vendor", "_backend"}


class BuildError(Exception):
    """A one-line build failure with its fix: str() is 'problem. fix'."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem, self.fix = problem.rstrip("."), fix
        super().__init__(self.problem + (f". {fix}" if fix else ""))


def package_version() -> str:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise BuildError("nstr_blender/__init__.py has no __version__; add __version__ = \"X.Y.Z\"")


def manifest_version(text: str) -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise BuildError("addon_manifest.toml has no version line; add version = \"X.Y.Z\"")
    return match.group(1)


def find_validator() -> Path:
    """blender_ext.py inside the bpy module (Blender's extension tooling)."""
    roots = []
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    roots += list((REPO / ".venv" / "lib").glob("python3*/site-packages/bpy"))
    for root in roots:
        for candidate in sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"), reverse=True):
            return candidate
    raise BuildError(
        "Blender's extension validator (bpy's blender_ext.py) was not found. Run scripts/setup.sh "
        "(installs bpy into .venv) or pass --no-validate")


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not (SKIP_PARTS & set(p.relative_to(root).parts))
                  and p.suffix not in (".pyc", ".pyo"))


def build(out_dir: Path) -> Path:
    if not (REMOTE / "client.py").is_file():
        raise BuildError(f"the backend client is missing at {REMOTE}", "Check out the whole repository")
    manifest = MANIFEST.read_text()
    version = package_version()
    if manifest_version(manifest) != version:
        raise BuildError(f"addon_manifest.toml says version {manifest_version(manifest)} but "
                         f"nstr_blender says {version}", "Make them the same")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"nstr_blender-{version}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("nstr_blender/blender_manifest.toml", manifest)
        for path in files_of(PACKAGE):
            zf.write(path, "nstr_blender/" + path.relative_to(PACKAGE).as_posix())
        zf.writestr("nstr_blender/_vendor/__init__.py",
                    '"""Third-party code shipped with the add-on (copied at build time)."""\n')
        for path in files_of(REMOTE):
            zf.write(path, "nstr_blender/_vendor/nstr_remote/" + path.relative_to(REMOTE).as_posix())
        # The whole backend's sources, for "Set up backend" (pip installs them into the add-on's venv).
        zf.write(BACKEND / "pyproject.toml", "nstr_blender/_backend/pyproject.toml")
        for path in files_of(BACKEND / "nstr"):
            zf.write(path, "nstr_blender/_backend/nstr/" + path.relative_to(BACKEND / "nstr").as_posix())
    tmp.replace(target)
    return target


def validate(zip_path: Path) -> str:
    validator = find_validator()
    proc = subprocess.run([sys.executable, str(validator), "validate", str(zip_path)],
                          capture_output=True, text=True, timeout=120)
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "error" in text.lower():
        raise BuildError(f"Blender's validator rejected {zip_path.name}: {text.splitlines()[-1] if text else '?'}",
                         "Fix addon_manifest.toml")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    parser.add_argument("--no-validate", action="store_true", help="skip Blender's validator")
    args = parser.parse_args(argv)
    try:
        zip_path = build(args.out)
        print(f"built {zip_path} ({zip_path.stat().st_size / 1024:.0f} KiB)")
        if not args.no_validate:
            print(f"validated: {validate(zip_path) or 'ok'}")
    except BuildError as err:
        print(f"build_extension: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
