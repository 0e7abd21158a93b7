"""The backend's contract as the add-on sees it: tasks, presets, marching-cubes backends, override keys.

One source: ``contract.json`` next to this file, generated from the backend's config by
``scripts/contract.py`` and checked against it by tests/test_blender_contract.py. Nothing else in
the add-on spells a preset name, a marching-cubes backend or an override key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_DATA: dict[str, Any] = json.loads((Path(__file__).with_name("contract.json")).read_text(encoding="utf-8"))

PRESETS: tuple[str, ...] = tuple(_DATA["preset_names"])
TASKS: tuple[str, ...] = tuple(_DATA["tasks"])
MC_BACKENDS: tuple[str, ...] = tuple(_DATA["mc_backends"])
# Advanced panel setting -> the task's dotted override key (None: the task has no such setting).
OVERRIDE_KEYS: dict[str, dict[str, str | None]] = {t: dict(v["override_keys"]) for t, v in _DATA["tasks"].items()}
SETTINGS: tuple[str, ...] = tuple(next(iter(OVERRIDE_KEYS.values())))


def preset_value(task: str, preset: str, setting: str) -> Any:
    """What ``preset`` of ``task`` uses for an Advanced setting (None: the task has no such setting)."""
    return _DATA["tasks"].get(task, {}).get("presets", {}).get(preset, {}).get(setting)
