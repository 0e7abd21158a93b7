"""The backend's contract as the add-on sees it: tasks, presets, marching-cubes backends, override keys,
job states, the detail maps' states and the fewest views a NeRF takes.

One source: ``contract.json`` next to this file, generated from the backend's config by
``scripts/contract.py`` and checked against it by tests/test_blender_contract.py. Nothing else in
the add-on spells a preset name, a marching-cubes backend, an override key or a state's code.
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
# the server's job states (nstr.server.store.STATES) and the detail maps' states (nstr.spectral.detail)
JOB_STATES: tuple[str, ...] = tuple(_DATA["job_states"])
# in the order of their codes (the file's keys are sorted; the legend lists the greys in this order)
DETAIL_STATE_CODES: dict[str, int] = dict(sorted(_DATA["detail_states"]["codes"].items(), key=lambda kv: kv[1]))
DETAIL_STATE_GREYS: dict[str, float] = {k: _DATA["detail_states"]["greys"][k] for k in DETAIL_STATE_CODES
                                        if k in _DATA["detail_states"]["greys"]}
DETAIL_STATE_WORDS: dict[str, str] = {k: _DATA["detail_states"]["words"][k] for k in DETAIL_STATE_CODES}
# the fewest training views the backend fits a NeRF from (nstr.nerf.dataset.MIN_VIEWS)
NERF_MIN_VIEWS: int = int(_DATA["nerf_min_views"])


def preset_value(task: str, preset: str, setting: str) -> Any:
    """What ``preset`` of ``task`` uses for an Advanced setting (None: the task has no such setting)."""
    return _DATA["tasks"].get(task, {}).get("presets", {}).get(preset, {}).get(setting)
