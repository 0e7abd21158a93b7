"""One-click backend, as a user with only the zip meets it: Blender 5.0 (the bpy 5.0.1 module)
installs the extension zip, "Set up backend" makes a venv in the add-on's user folder (a temp
folder here) with the pinned torch and the backend shipped inside the zip, and a fit runs through
that venv's Python. Slow (a torch install): one test."""

from __future__ import annotations

import pytest

pytest.importorskip("bpy")

from test_blender_addon import run_scenario  # noqa: E402


def test_set_up_backend_from_the_zip_then_fit_through_it(tmp_path):
    out = run_scenario('''
        import zipfile
        OUT["zip_has_backend"] = "nstr_blender/_backend/pyproject.toml" in zipfile.ZipFile(zip_path).namelist()
        prefs_mod = import_module(ADDON + ".blender.preferences")
        settings_mod = import_module(ADDON + ".core.settings")
        try:
            bpy.ops.nstr.setup_backend()                     # online access is off in the bpy module
        except RuntimeError as err:
            OUT["offline"] = str(err).strip().splitlines()[-1]
        bpy.context.preferences.system.use_online_access = True
        OUT["op"] = list(bpy.ops.nstr.setup_backend())
        setup = prefs_mod.SETUP[-1]
        setup.thread.join(900)
        st = setup.state
        OUT["state"] = [st.done, st.error, st.step, st.total]
        OUT["log"] = st.log[:6]
        OUT["venv"] = str(setup.venv)
        OUT["user_dir"] = bpy.utils.extension_path_user(ADDON)
        OUT["python"] = import_module(ADDON + ".blender.preferences").backend_settings(bpy.context).resolved_python()
        src = suzanne(subsurf=False)
        configure(bpy.context.scene.nstr, TINY)
        bpy.ops.nstr.fit()
        rec = RUNTIME.tracker.records[0]
        drive(lambda: rec.state in ("collected", "failed", "error"), timeout=300)
        OUT["fit"] = [rec.state, rec.message, RUNTIME.session.local.python]
    ''', tmp_path, timeout=1500)
    assert out["zip_has_backend"]
    assert out["offline"].startswith("Error: Setting up the backend downloads torch, but online access is disabled")
    assert out["op"] == ["FINISHED"]
    assert out["state"][:2] == [True, ""], out["log"]
    assert out["venv"] == out["user_dir"] + "/backend_venv"
    assert out["python"] == out["venv"] + "/bin/python"          # found without setting any path
    assert out["fit"] == ["collected", "-> Suzanne_NSTR", out["python"]]
