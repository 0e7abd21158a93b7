#!/usr/bin/env bash
# One-step set-up on a fresh Debian machine (idempotent; fast when nothing changed):
#  - Debian packages: blender (3.4, for headless runs), python3-numpy (its Python needs it),
#    xvfb + xdotool + imagemagick (the real UI under a virtual screen, for screenshots);
#  - a virtual environment in .venv with the backend (editable), bpy 5.0.1, pytest and Ray (the 'ray' extra).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_missing=()
command -v blender >/dev/null 2>&1 || apt_missing+=(blender)
dpkg -s python3-numpy >/dev/null 2>&1 || apt_missing+=(python3-numpy)
command -v Xvfb >/dev/null 2>&1 || apt_missing+=(xvfb)
command -v xdotool >/dev/null 2>&1 || apt_missing+=(xdotool)
# ImageMagick: check its own tools; a machine's `convert` may be a stand-in that is not ImageMagick.
{ command -v import >/dev/null 2>&1 && command -v identify >/dev/null 2>&1 && [ -x /usr/bin/convert ]; } \
  || apt_missing+=(imagemagick)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${apt_missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
stamp=.venv/.nstr-installed
want=$(cat backend/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages into .venv (torch 2.13.0 CPU wheel, bpy 5.0.1, ...)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "backend[blender,dev,ray]"
  echo "$want" > "$stamp"
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch, bpy; print("torch", torch.__version__, "| bpy", bpy.app.version_string)' 2>/dev/null), $(blender --version 2>/dev/null | head -1))"
