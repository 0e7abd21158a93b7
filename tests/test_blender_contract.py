"""One contract: the add-on's presets, marching-cubes backends, override keys and the presets'
values (shown in the Advanced fields) are the backend's own, read from nstr.config and the tasks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

pytest.importorskip("torch")

import contract as contract_script  # noqa: E402  (scripts/contract.py)

from nstr_blender.core import contract  # noqa: E402
from nstr_blender.core.settings import TaskSettings  # noqa: E402


def test_contract_file_matches_the_backend_config():
    assert json.loads(contract_script.TARGET.read_text()) == contract_script.contract_from_backend(), \
        "stale: run .venv/bin/python scripts/contract.py"


def test_contract_agrees_with_the_backend_modules_directly():
    from nstr import config
    from nstr.geometry.extraction import MC_BACKENDS
    from nstr.tasks import nerf, sdf

    assert contract.PRESETS == config.PRESET_NAMES == tuple(sdf.PRESETS) == tuple(nerf.PRESETS)
    assert contract.MC_BACKENDS == MC_BACKENDS
    from nstr.nerf.dataset import MIN_VIEWS
    assert contract.NERF_MIN_VIEWS == MIN_VIEWS
    for task, module, options in (("sdf", sdf, sdf.SDFOptions), ("nerf", nerf, nerf.NerfOptions)):
        for preset in contract.PRESETS:
            cfg = config.build_config(options, module.PRESETS, preset)
            for setting, key in contract.OVERRIDE_KEYS[task].items():
                if key is None:
                    continue
                block, _, name = key.partition(".")
                assert contract.preset_value(task, preset, setting) == getattr(getattr(cfg, block), name)
    # every override key the add-on sends is accepted by the backend's config
    for task, module, options in (("sdf", sdf, sdf.SDFOptions), ("nerf", nerf, nerf.NerfOptions)):
        job = TaskSettings(task=task, preset="quick", n_freqs=9, steps=7, resolution=40,
                           mc_backend="mcubes" if contract.OVERRIDE_KEYS[task]["mc_backend"] else "preset").job_config()
        preset = job.pop("preset")
        cfg = config.build_config(options, module.PRESETS, preset, job)
        assert cfg.field.n_freqs == 9 and cfg.train.steps == 7


def test_preset_values_are_not_sent_as_overrides():
    quick = {s: contract.preset_value("sdf", "quick", s) for s in contract.SETTINGS}
    assert TaskSettings(task="sdf", preset="quick", **quick).job_config() == {"preset": "quick"}


def test_contract_script_check_mode():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "contract.py"), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_addon_draws_job_and_detail_states_from_the_contract():
    """One source for the state strings (issue 30): the server's job states and the detail maps' state
    codes and greys reach the add-on through contract.json, and the add-on's job tracker covers every
    backend state (done is neither active nor finished: it waits to be collected)."""
    from nstr.server.store import STATES as JOB_STATES
    from nstr.spectral import detail
    from nstr_blender.core import detail_scale, jobs

    assert contract.JOB_STATES == JOB_STATES
    assert detail_scale.STATE_CODES == contract.DETAIL_STATE_CODES == detail.STATES
    assert list(detail_scale.STATE_GREYS.items()) == list(contract.DETAIL_STATE_GREYS.items()) == \
        list(detail.STATE_GREYS.items())                # the same order too: the legend lists them so
    assert contract.DETAIL_STATE_WORDS == detail.STATE_WORDS
    assert jobs.ACTIVE_STATES | jobs.FINISHED_STATES | {"done"} == set(JOB_STATES) | set(jobs.ADDON_STATES)
    assert not jobs.ACTIVE_STATES & jobs.FINISHED_STATES

