"""One-click backend, as a user with only the zip meets it: Blender 5.0 (the bpy 5.0.1 module)
installs the extension zip, "Set up backend" makes a venv in the add-on's user folder (a temp
folder here) with the pinned torch and the backend shipped inside the zip, and a fit runs through
that venv's Python. The first press fails for real (pip is told to use no index, as when offline):
nothing half-built is used, and the second press resumes in the same unfinished venv. Slow (a torch
install): one test."""

from __future__ import annotations

import pytest

pytest.importorskip("bpy")

from test_blender_addon import run_scenario  # noqa: E402


@pytest.mark.slow
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
        status = import_module(ADDON + ".core.backend_status")
        def using():
            return status.using_lines(settings_mod.backend_choice(prefs.python), prefs.device, prefs_mod.gpus())
        OUT["using_before"] = using()
        no_wheels = os.path.join(os.environ["NSTR_TMP"], "no_wheels")
        os.makedirs(no_wheels)
        os.environ.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=no_wheels)  # offline: pip finds no torch
        OUT["op_offline"] = list(bpy.ops.nstr.setup_backend())
        failed = prefs_mod.SETUP[-1]
        failed.thread.join(300)
        OUT["failed"] = [failed.state.step, failed.state.error, failed.build.key]
        OUT["after_failure"] = [os.path.isdir(failed.venv), os.path.isfile(str(failed.partial) + "/bin/python")]
        OUT["using_failed"] = using()
        del os.environ["PIP_NO_INDEX"], os.environ["PIP_FIND_LINKS"]
        OUT["op"] = list(bpy.ops.nstr.setup_backend())
        setup = prefs_mod.SETUP[-1]
        setup.thread.join(900)
        st = setup.state
        OUT["after"] = [os.path.isdir(setup.partial), os.path.isfile(str(setup.venv) + "/.nstr-ready")]
        OUT["using_after"] = using()
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
    ''', tmp_path, timeout=1500, env_extra={"NSTR_PYTHON": ""})
    assert out["zip_has_backend"]
    assert out["offline"].startswith("Error: Setting up the backend downloads torch, but online access is disabled")
    assert out["using_before"] == ["Backend: not set up. Press 'Set up backend', or set 'Backend Python'"]
    assert out["op_offline"] == ["FINISHED"]
    step, error, build = out["failed"]
    assert (step, build) == (3, "cpu")                           # no nvidia-smi here: the CPU build
    assert error.startswith("pip could not install torch==2.13.0+cpu") and "it resumes" in error
    assert out["after_failure"] == [False, True]                 # only the .partial venv exists
    partial = out["venv"] + ".partial"
    assert out["using_failed"] == ["Backend: not set up. Press 'Set up backend', or set 'Backend Python'",
                                   f"Unfinished set-up in {partial} is not used; 'Set up backend' resumes it"]
    assert out["op"] == ["FINISHED"]
    assert out["state"][:2] == [True, ""], out["log"]
    assert out["log"][1] == f"[2/5] resuming the unfinished set-up in {partial}"
    assert out["after"] == [False, True]
    assert out["using_after"] == [f"Using: {out['venv']}/bin/python (from Set up backend) on CPU (set in Device)"]
    assert out["venv"] == out["user_dir"] + "/backend_venv"
    assert out["python"] == out["venv"] + "/bin/python"          # found without setting any path
    assert out["fit"] == ["collected", "-> Suzanne_NSTR", out["python"]]
