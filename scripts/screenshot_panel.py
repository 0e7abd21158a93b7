#!/usr/bin/env python3
"""Screenshots of the real add-on: Blender's UI under Xvfb, a real fit, a real backend.

    python scripts/screenshot_panel.py [--out out/shots] [--assets scripts/assets]

The driver (this file under a plain Python) builds the add-on zip, starts Xvfb and Debian's
``blender`` (3.4) with this same file as its startup script. Inside Blender the script installs
and enables the add-on like a user would, adds Suzanne and opens the sidebar; the driver opens the
NSTR tab with xdotool clicks (until the panel reports that it drew) and says "go"; Blender presses
Fit NSTR and the UI's own timers run the job. Three pictures:

* ``panel_midfit.png``: the panel while the job runs (progress, Cancel);
* ``viewport_legend.png``: the result with the viewport legend (colour bar, ticks, units);
* ``preferences.png``: the add-on's preferences ("Set up backend", where logs go).

Then Blender checks Undo on the result and quits. The fit's phases are read from the job's log.
Needs: blender, Xvfb, xdotool, ImageMagick (scripts/setup.sh installs them).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSIDE = "--inside-blender"


# ============================================================ inside Blender
def inside_blender(state_dir: Path, zip_path: Path, settings: dict) -> None:
    import addon_utils
    import bpy
    import faulthandler

    # a crash in Blender (a segfault) leaves the Python stack it happened under, for the driver to print
    faulthandler.enable(open(state_dir / "faulthandler.txt", "w"), all_threads=True)

    def write(name: str, data: dict) -> None:
        tmp = state_dir / f"{name}.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(state_dir / f"{name}.json")

    bpy.context.preferences.view.show_splash = False
    bpy.ops.preferences.addon_install(filepath=str(zip_path), overwrite=True)
    addon_utils.enable("nstr_blender", default_set=True, handle_error=None)
    import nstr_blender.blender.panel as panel_module
    from nstr_blender.blender.runtime import RUNTIME

    prefs = bpy.context.preferences.addons["nstr_blender"].preferences
    prefs.device = "cpu"
    prefs.python = settings.pop("python", "")

    # Report when the NSTR panel really draws (the driver waits for it after each tab click).
    original_draw = panel_module.NSTR_PT_fit.draw

    def draw(self, context):
        try:
            original_draw(self, context)
        except Exception:
            import traceback
            (state_dir / "draw_error.txt").write_text(traceback.format_exc())
            raise
        (state_dir / "panel_drawn").touch()
    bpy.utils.unregister_class(panel_module.NSTR_PT_fit)     # Blender keeps the draw it registered
    panel_module.NSTR_PT_fit.draw = draw
    bpy.utils.register_class(panel_module.NSTR_PT_fit)

    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_monkey_add(size=2.0, location=(0.3, 0.0, 0.2), rotation=(0.0, 0.0, 0.4))
    suzanne = bpy.context.active_object
    props = bpy.context.scene.nstr
    props.preset = "quick"
    for key, value in settings.items():
        if value:
            setattr(props, key, value)
    props.show_advanced = True
    phase = {"name": "start", "t0": time.monotonic()}

    def view3d():
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "VIEW_3D":
                    region = next(r for r in area.regions if r.type == "WINDOW")
                    return window, area, region
        raise RuntimeError("no 3D view")

    def geometry(window, area) -> dict:
        ui = next(r for r in area.regions if r.type == "UI")
        return {"window_height": window.height, "window_width": window.width, "ui": [ui.x, ui.y, ui.width, ui.height]}

    def step() -> float | None:
        window, area, region = view3d()
        space = area.spaces.active
        name = phase["name"]
        if not RUNTIME.quiet():                 # bpy.ops below only while no add-on thread runs (Background.quiet)
            return 0.05
        if name == "start":
            space.show_region_ui = True
            space.shading.type = "SOLID"
            phase["name"] = "sidebar"
            return 1.0
        if name == "sidebar":                   # the sidebar has its size one redraw later
            write("ready_ui", geometry(window, area))
            phase["name"] = "wait_go"
            return 0.5
        if name == "wait_go":
            if (state_dir / "go").exists():
                with bpy.context.temp_override(window=window, area=area, region=region):
                    bpy.ops.nstr.fit()       # starts the backend in the background and queues the job
                phase["name"] = "fitting"
            return 0.3
        if name == "fitting":
            records = RUNTIME.tracker.records
            rec = records[0] if records else None
            if rec is not None and rec.state == "running" and rec.phase == "fitting" and rec.step > 0 \
                    and not (state_dir / "midfit.json").exists():
                write("midfit", {"text": rec.progress_text()})
            if rec is not None and rec.state == "collected":
                result = bpy.data.objects[rec.result_name]
                with bpy.context.temp_override(window=window, area=area, region=region):
                    bpy.ops.object.select_all(action="DESELECT")
                result.select_set(True)
                bpy.context.view_layer.objects.active = result
                phase["name"] = "select"
                return 1.0
            elif rec is not None and rec.state in ("failed", "error", "cancelled"):
                write("ready", {"error": rec.message or rec.state})
                phase["name"] = "shown"
            elif RUNTIME.problem() and not RUNTIME.busy:
                write("ready", {"error": RUNTIME.problem()})
                phase["name"] = "shown"
            return 0.3
        if name == "select":                     # a tick later: the selection has settled
            rec = RUNTIME.tracker.records[0]
            result = bpy.data.objects[rec.result_name]
            if bpy.context.view_layer.objects.active != result:
                bpy.context.view_layer.objects.active = result
                result.select_set(True)
                return 0.5
            with bpy.context.temp_override(window=window, area=area, region=region):
                bpy.ops.view3d.view_axis(type="FRONT")
                bpy.ops.view3d.view_selected()
            if True:
                write("ready", {**geometry(window, area), "result": result.name,
                                "fit_s": time.monotonic() - phase["t0"],
                                "job_log": RUNTIME.session.client.log(rec.job_id),
                                "solid_color_type": space.shading.color_type,
                                "source_hidden": [suzanne.hide_get(), suzanne.hide_render]})
                phase["name"] = "shown"
            return 0.5
        if name == "shown" and (state_dir / "prefs").exists():
            bpy.ops.screen.userpref_show(section="ADDONS")
            bpy.context.window_manager.addon_search = "NSTR"
            for mod in addon_utils.modules():
                if mod.__name__ == "nstr_blender":
                    addon_utils.module_bl_info(mod)["show_expanded"] = True
            write("prefs_shown", {})
            phase["name"] = "prefs"
            return 0.5
        if name == "prefs" and (state_dir / "check_undo").exists():
            result_name = json.loads((state_dir / "ready.json").read_text()).get("result", "")
            with bpy.context.temp_override(window=window, area=area, region=region):
                bpy.ops.ed.undo()
                after_undo = result_name in bpy.data.objects
                bpy.ops.ed.redo()
                after_redo = result_name in bpy.data.objects
            write("undo", {"present_after_undo": after_undo, "present_after_redo": after_redo,
                           "original_present": "Suzanne" in bpy.data.objects})
            phase["name"] = "done"
            return 0.5
        if (state_dir / "quit").exists():
            RUNTIME.stop_backend()
            bpy.ops.wm.quit_blender()
            return None
        return 0.5

    def safe_step() -> float | None:
        try:
            return step()
        except Exception as err:  # noqa: BLE001 - reported to the driver, Blender keeps running
            write("error_" + phase["name"], {"error": f"{type(err).__name__}: {err}"})
            if phase["name"] in ("fitting", "wait_go"):
                write("ready", {"error": f"{type(err).__name__}: {err}"})
                phase["name"] = "shown"
            return 0.5

    bpy.app.timers.register(safe_step, first_interval=2.0)


# ============================================================ the driver
def _read_display(fd: int, xvfb: subprocess.Popen, timeout: float) -> str:
    """The display number Xvfb writes to ``fd`` (``-displayfd``) once it accepts clients."""
    import select

    text = b""
    deadline = time.monotonic() + timeout
    try:
        while not text.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 16) if ready else b""
            if not chunk:
                raise RuntimeError(f"Xvfb did not start within {timeout:.0f} s (exit code {xvfb.poll()})")
            text += chunk
    finally:
        os.close(fd)
    return text.decode().strip()


def driver(argv: list[str]) -> int:
    import argparse
    import shutil
    import subprocess
    import tempfile

    parser = argparse.ArgumentParser(description="Screenshot the add-on in real Blender under Xvfb")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "shots", help="full-size screenshots")
    parser.add_argument("--assets", type=lambda text: Path(text) if text else None, default=REPO / "scripts" / "assets",
                        help="small PNG copies for the README ('' to skip)")
    parser.add_argument("--blender", default="blender")
    parser.add_argument("--steps", type=int, default=0, help="training steps of the demo fit (0: the preset's)")
    parser.add_argument("--resolution", type=int, default=0, help="marching-cubes resolution (0: the preset's)")
    parser.add_argument("--overrides", default="", help="more backend settings, KEY=VALUE ...")
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"),
                        help="the backend Python (default: this checkout's .venv; the installed zip knows no checkout)")
    parser.add_argument("--timeout", type=float, default=420.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args(argv)
    convert = "/usr/bin/convert" if Path("/usr/bin/convert").is_file() else "convert"
    for tool in (args.blender, "Xvfb", "xdotool", "import", "identify", convert):
        if shutil.which(tool) is None:
            print(f"screenshot_panel: '{tool}' is not installed. Run scripts/setup.sh", file=sys.stderr)
            return 1

    sys.path.insert(0, str(REPO / "scripts"))
    import build_extension

    state = Path(tempfile.mkdtemp(prefix="nstr_shot_"))
    zip_path = build_extension.build(state / "dist")
    env = dict(os.environ, DISPLAY="", BLENDER_USER_CONFIG=str(state / "config"),
               BLENDER_USER_SCRIPTS=str(state / "scripts"), NSTR_LOG_DIR=str(state / "logs"),
               XDG_DATA_HOME=str(state / "data"))       # its own jobs folder: another user's server holds the default
    width, height = 1600, 900
    procs = []

    def wait_for(name: str, timeout: float) -> dict:
        path = state / f"{name}.json"
        t0 = time.monotonic()
        while not path.exists():
            if procs[1].poll() is not None:
                log = (state / "blender.log").read_text(errors="replace").strip().splitlines()[-15:]
                fault = state / "faulthandler.txt"
                stack = fault.read_text(errors="replace").strip().splitlines() if fault.exists() else []
                raise RuntimeError(f"Blender exited early (code {procs[1].returncode}); see {state / 'blender.log'}, "
                                   "which ends:\n  " + "\n  ".join(log) +
                                   ("\n  Python stack at the crash:\n  " + "\n  ".join(stack) if stack else ""))
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"no '{name}' after {timeout:.0f} s; see {state / 'blender.log'}")
            time.sleep(0.2)
        return json.loads(path.read_text())

    def xdo(*cmd: str) -> None:
        subprocess.run(["xdotool", *cmd], env=env, check=True, capture_output=True)

    def settle() -> None:
        """Blender redraws on events: nudge the mouse so the last change is on screen."""
        xdo("mousemove_relative", "--", "1", "0")
        time.sleep(0.3)
        xdo("mousemove_relative", "--", "-1", "0")
        time.sleep(0.5)

    def shoot(name: str, window_name: str = "Blender", crop: str = "", root: bool = False) -> Path:
        ids = subprocess.run(["xdotool", "search", "--name", window_name], env=env, capture_output=True,
                             text=True).stdout.split()
        if not ids:
            raise RuntimeError(f"no window named {window_name!r}")
        if root:                                  # a second top-level window: grab it as the screen shows it
            geo = subprocess.run(["xdotool", "getwindowgeometry", ids[-1]], env=env, capture_output=True,
                                 text=True).stdout
            pos = geo.split("Position: ")[1].split()[0].split(",")
            size = geo.split("Geometry: ")[1].split()[0]
            crop = f"{size}+{pos[0]}+{pos[1]}"
        full = args.out / f"{name}.png"
        subprocess.run(["import", "-window", "root" if root else ids[-1], str(full)], env=env, check=True)
        if root:
            subprocess.run([convert, str(full), "-crop", crop, "+repage", str(full)], check=True)
            crop = ""
        print(f"screenshot_panel: wrote {full}")
        if args.assets is not None:
            asset = args.assets / f"{name}.png"
            for colours in (128, 64, 32):             # a palette PNG under 300 KiB for the README
                cmd = [convert, str(full)] + (["-crop", crop, "+repage"] if crop else []) + \
                      ["-colors", str(colours), "-strip", str(asset)]
                subprocess.run(cmd, check=True)
                if asset.stat().st_size <= 300 * 1024:
                    break
            print(f"screenshot_panel: wrote {asset} ({asset.stat().st_size / 1024:.0f} KiB)")
        return full

    try:
        args.out.mkdir(parents=True, exist_ok=True)
        if args.assets is not None:
            args.assets.mkdir(parents=True, exist_ok=True)
        # Xvfb picks a free display itself and writes its number to a pipe once it is ready (a number
        # chosen here from /tmp/.X11-unix could be taken by another X server starting at the same time)
        read_end, write_end = os.pipe()
        procs.append(subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24",
                                       "-nolisten", "tcp"], pass_fds=(write_end,),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.close(write_end)
        env["DISPLAY"] = ":" + _read_display(read_end, procs[0], timeout=30.0)
        blender_log = open(state / "blender.log", "wb")
        procs.append(subprocess.Popen(
            [args.blender, "--factory-startup", "--window-geometry", "0", "0", str(width), str(height),
             "--python", str(Path(__file__).resolve()), "--", INSIDE, str(state), str(zip_path),
             json.dumps({"steps": args.steps, "resolution": args.resolution, "overrides": args.overrides,
                         "python": args.python})],
            env=env, stdout=blender_log, stderr=subprocess.STDOUT))
        info = wait_for("ready_ui", 120)
        wh = info["window_height"]
        xdo("mousemove", str(info["window_width"] // 2), str(wh // 2))
        time.sleep(0.5)
        xdo("key", "Escape")                          # the first-start splash, if any
        ux, uy, uw, uh = info["ui"]
        drawn = state / "panel_drawn"

        # The sidebar's tabs run down its right edge; click down the strip until the NSTR panel
        # reports that it drew (and draws again after a fresh redraw, not a late one of an old click).
        tab_x, top = ux + uw - 12, wh - (uy + uh)
        # The add-on's tab is the last one, so clicking down the whole strip leaves it open; stop
        # early when the panel reports that it drew after a fresh redraw.
        for y in range(top + 15, top + min(uh, 520), 16):
            drawn.unlink(missing_ok=True)
            xdo("mousemove", str(tab_x), str(y))
            xdo("click", "1")
            settle()
            if drawn.exists():
                time.sleep(0.5)
                drawn.unlink(missing_ok=True)
                settle()
                if drawn.exists():
                    break
        xdo("mousemove", str(max(10, ux - 300)), str(wh // 2))   # off the panel: no hover highlight
        (state / "go").touch()
        left = 0                                      # the whole viewport: its legend overlay sits bottom-left
        crop = f"{ux + uw + 2 - left}x{height}+{left}+0"
        t0 = time.monotonic()
        while not (state / "midfit.json").exists() and not (state / "ready.json").exists():
            if time.monotonic() - t0 > args.timeout:
                raise RuntimeError("the fit did not start")
            time.sleep(0.1)
        if (state / "midfit.json").exists():
            settle()
            shoot("panel_midfit", crop=f"{uw + 40}x{height}+{ux - 40}+0")
            print(f"screenshot_panel: mid-fit: {json.loads((state / 'midfit.json').read_text())['text']}")
        info = wait_for("ready", args.timeout)
        if "error" in info:
            raise RuntimeError(f"the fit in Blender failed: {info['error']}")
        sys.path.insert(0, str(REPO))
        from nstr_blender.core.jobs import job_phases
        phases = job_phases(info["job_log"])
        print(f"screenshot_panel: fit done in Blender's UI in {info['fit_s']:.1f} s; phases (job log): {phases}")
        print(f"screenshot_panel: result state {json.dumps({k: info[k] for k in ('solid_color_type', 'source_hidden')})}")
        settle()
        settle()
        shoot("viewport_legend", crop=crop)
        (state / "prefs").touch()
        wait_for("prefs_shown", 60)
        time.sleep(1.5)
        pref_ids = subprocess.run(["xdotool", "search", "--name", "Blender Preferences"], env=env,
                                  capture_output=True, text=True).stdout.split()
        if pref_ids:                               # Xvfb draws a new window on its first events
            geo = subprocess.run(["xdotool", "getwindowgeometry", pref_ids[-1]], env=env, capture_output=True,
                                 text=True).stdout
            px, py = (int(v) for v in geo.split("Position: ")[1].split()[0].split(","))
            xdo("mousemove", str(px + 200), str(py + 200))
        for _ in range(3):
            settle()
        # a loaded machine draws the new window late: shoot again until it shows more than its blank fill
        for _ in range(20):
            shot = shoot("preferences", window_name="Blender Preferences", root=True)
            colours = subprocess.run(["identify", "-format", "%k", str(shot)], capture_output=True, text=True).stdout
            if colours.strip().isdigit() and int(colours) > 200:
                break
            settle()
        (state / "check_undo").touch()
        undo = wait_for("undo", 60)
        print(f"screenshot_panel: undo check {json.dumps(undo)}")
        (state / "quit").touch()
        procs[1].wait(timeout=30)
        return 0
    except (RuntimeError, subprocess.SubprocessError, OSError) as err:
        print(f"screenshot_panel: {err}", file=sys.stderr)
        return 1
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if args.keep:
            print(f"screenshot_panel: kept {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    if INSIDE in sys.argv:
        rest = sys.argv[sys.argv.index(INSIDE) + 1:]
        inside_blender(Path(rest[0]), Path(rest[1]), json.loads(rest[2]))
    else:
        sys.exit(driver(sys.argv[1:]))
