#!/usr/bin/env python3
"""Generate the add-on's contract file from the backend's own config (the one source of truth).

    .venv/bin/python scripts/contract.py            # rewrite nstr_blender/core/contract.json
    .venv/bin/python scripts/contract.py --check    # exit 1 when the file is stale

The add-on cannot import the backend (an installed add-on has no torch), so the preset names, the
marching-cubes backends, the override key of each Advanced setting and each preset's resolved value,
the server's job states and the detail maps' states (codes, greys, words) are written into
``nstr_blender/core/contract.json``. tests/test_blender_contract.py checks that file
against ``nstr.config`` and the tasks' PRESETS.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "nstr_blender" / "core" / "contract.json"
TASK_MODULES = {"sdf": "nstr.tasks.sdf", "nerf": "nstr.tasks.nerf"}

# Each Advanced panel setting -> the candidate dotted keys, first one the task has wins.
SETTING_KEYS: dict[str, tuple[str, ...]] = {
    "n_freqs": ("field.n_freqs",),
    "steps": ("train.steps",),
    "resolution": ("task.resolution", "task.mesh_resolution"),
    "mc_backend": ("task.mc",),
}


def _value(cfg, dotted: str):
    block, _, name = dotted.partition(".")
    return getattr(getattr(cfg, block), name)


def contract_from_backend() -> dict:
    """The contract as the backend in this checkout defines it."""
    sys.path.insert(0, str(REPO / "backend"))
    from nstr import config as nstr_config
    from nstr.geometry.extraction import MC_BACKENDS

    tasks: dict[str, dict] = {}
    for task, module_name in TASK_MODULES.items():
        module = importlib.import_module(module_name)
        options_cls = next(v for k, v in vars(module).items() if k.endswith("Options") and dataclasses.is_dataclass(v))
        option_names = {f.name for f in dataclasses.fields(options_cls)}
        field_names = {f.name for f in dataclasses.fields(nstr_config.FieldConfig)}
        train_names = {f.name for f in dataclasses.fields(nstr_config.TrainConfig)}
        have = {"field": field_names, "train": train_names, "task": option_names}
        keys: dict[str, str | None] = {}
        for setting, candidates in SETTING_KEYS.items():
            keys[setting] = next((c for c in candidates if c.partition(".")[2] in have[c.partition(".")[0]]), None)
        presets = {}
        for preset in module.PRESETS:
            cfg = nstr_config.build_config(options_cls, module.PRESETS, preset)
            presets[preset] = {s: _value(cfg, k) for s, k in keys.items() if k is not None}
        tasks[task] = {"override_keys": keys, "presets": presets}
    from nstr.nerf.dataset import MIN_VIEWS
    from nstr.server.store import STATES as JOB_STATES
    from nstr.spectral.detail import STATE_GREYS, STATE_WORDS, STATES

    return {"preset_names": list(nstr_config.PRESET_NAMES), "mc_backends": list(MC_BACKENDS), "tasks": tasks,
            "job_states": list(JOB_STATES), "nerf_min_views": MIN_VIEWS,
            "detail_states": {"codes": dict(STATES), "greys": dict(STATE_GREYS), "words": dict(STATE_WORDS)}}


def main(argv: list[str]) -> int:
    text = json.dumps(contract_from_backend(), indent=1, sort_keys=True) + "\n"
    if "--check" in argv:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(f"contract: {TARGET} is stale. Run .venv/bin/python scripts/contract.py", file=sys.stderr)
            return 1
        print("contract: up to date")
        return 0
    TARGET.write_text(text)
    print(f"contract: wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
