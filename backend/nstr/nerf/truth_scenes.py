"""NeRF scenes whose right answer is known: Blender renders a known mesh, and that mesh is kept.

``render_truth_scene`` runs real Blender (the ``bpy`` module, in a subprocess so that its state never
leaks into ours) to build one object, render its views through the add-on's own
``render_nerf_dataset`` (Cycles on the CPU, denoising off, transparent film) and write the evaluated
mesh in world coordinates to ``true_mesh.npz`` beside ``transforms_*.json``. The benchmark and the
tests score extracted meshes against that file.

Objects: ``suzanne`` and ``cube`` (the add-on's checker-textured demo objects), ``bunny`` (the shared
Stanford bunny, ``../shared/data/meshes/bunny00.off``, with the checker) and ``textured`` (Suzanne
with an image texture, skimage's astronaut, through its UVs).

``world="sky"`` renders the same object WITHOUT alpha (an opaque film) in front of a world whose colour
varies strongly with direction (an equirectangular environment texture: a sky gradient whose hue turns
twice around the horizon, over a darker ground), as a photo has a background that no single colour fits.
The same views are rendered again with a transparent film into ``<out>/alpha``, so tests know which
pixels are background (true alpha 0).

``world="photo"`` is a photo as a phone would take it outdoors: the object stands on a large textured
ground plane (a procedural checker broken up by noise, in grass and soil tones) under the same sky,
cameras on the upper hemisphere, opaque film and no alpha copy. The ground is not part of
``true_mesh.npz`` (the truth is the object alone); its height is stored there as ``ground_z`` so a
region box can keep its floor above it. :mod:`nstr.nerf.photo_capture` turns such a scene into a capture
with known exposure, pose noise and lens distortion.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

KINDS = ("cube", "suzanne", "bunny", "textured")
WORLDS = (None, "sky", "photo")  # None: transparent film; "sky", "photo": no alpha (module doc)
REPO = Path(__file__).resolve().parents[3]
SHARED_MESH = REPO.parent / "shared" / "data" / "meshes" / "bunny00.off"

_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    from nstr_blender.blender.nerf_render import add_demo_object, render_nerf_dataset
    kind, out = {kind!r}, {out!r}
    ctx = bpy.context
    if kind in ("suzanne", "cube"):
        obj = add_demo_object(ctx, kind)
    elif kind == "bunny":
        obj = add_demo_object(ctx, "cube")
        lines = [l.split('#')[0].strip() for l in open({mesh!r})]
        lines = [l for l in lines if l]
        assert lines[0].startswith("OFF")
        head = lines[0][3:].split() or lines[1].split()
        start = 1 if lines[0][3:].split() else 2
        nv, nf = int(head[0]), int(head[1])
        v = np.array([[float(t) for t in l.split()[:3]] for l in lines[start:start + nv]])
        f = [[int(t) for t in l.split()[1:4]] for l in lines[start + nv:start + nv + nf]]
        lo, hi = v.min(0), v.max(0)
        v = (v - (lo + hi) / 2) * (1.6 / (hi - lo).max())
        me = bpy.data.meshes.new("bunny")
        me.from_pydata(v.tolist(), [], f)
        me.update()
        me.materials.append(obj.data.materials[0])
        obj.data = me
        obj.name = "bunny"
    elif kind == "textured":
        from PIL import Image
        import skimage.data
        png = out + "_astronaut.png"
        Image.fromarray(skimage.data.astronaut()).resize((256, 256)).save(png)
        obj = add_demo_object(ctx, "suzanne")
        mat = obj.data.materials[0]
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        checker = next(n for n in nodes if n.type == "TEX_CHECKER")
        bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = bpy.data.images.load(png)
        uv = nodes.new("ShaderNodeTexCoord")
        links.new(uv.outputs["UV"], tex.inputs["Vector"])
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        nodes.remove(checker)
    else:
        raise SystemExit("unknown kind " + kind)
    if {world!r} in ("sky", "photo"):
        from PIL import Image
        h, w = 64, 128
        lat = (0.5 - (np.arange(h) + 0.5) / h)[:, None] * np.pi       # +pi/2 at the top row
        lon = ((np.arange(w) + 0.5) / w)[None, :] * 2 * np.pi
        up = np.clip(np.sin(lat), 0, 1)
        sky = np.stack([0.55 + 0.35 * np.cos(2 * lon) * (1 - up), 0.45 + 0.3 * np.sin(lon + 1.0) * (1 - up) + 0.2 * up,
                        0.35 + 0.55 * up + 0.1 * np.cos(lon)], -1)
        ground = np.stack([0.25 + 0.1 * np.cos(lon), 0.3 + 0.05 * np.sin(2 * lon), 0.12 + 0 * lon], -1)
        tex = np.where((lat > 0)[..., None], sky, np.broadcast_to(ground, sky.shape))
        png = out + "_world.png"
        Image.fromarray((np.clip(tex, 0, 1) * 255).round().astype(np.uint8)).save(png)
        world = bpy.data.worlds.new("NSTR sky")
        world.use_nodes = True
        nodes = world.node_tree.nodes
        env = nodes.new("ShaderNodeTexEnvironment")
        env.image = bpy.data.images.load(png)
        bg = next(n for n in nodes if n.type == "BACKGROUND")
        world.node_tree.links.new(env.outputs["Color"], bg.inputs["Color"])
        ctx.scene.world = world
    ground_z = float("nan")
    if {world!r} == "photo":   # the object stands on a textured ground plane, not part of the truth
        from mathutils import Vector
        ground_z = float(min((obj.matrix_world @ Vector(c)).z for c in obj.bound_box))
        bpy.ops.mesh.primitive_plane_add(size=60.0, location=(0.0, 0.0, ground_z))
        ground = ctx.active_object
        ground.name = "NSTR ground"
        mat = bpy.data.materials.new("NSTR ground")
        mat.use_nodes = True
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
        coords = nodes.new("ShaderNodeTexCoord")
        checker = nodes.new("ShaderNodeTexChecker")   # squares of 60 / 250 = 0.24 units, one in two noisy
        checker.inputs["Scale"].default_value = 250.0
        checker.inputs["Color2"].default_value = (0.42, 0.30, 0.16, 1.0)
        noise = nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = 400.0
        links.new(coords.outputs["Generated"], checker.inputs["Vector"])
        links.new(coords.outputs["Generated"], noise.inputs["Vector"])
        links.new(noise.outputs["Color"], checker.inputs["Color1"])
        links.new(checker.outputs["Color"], bsdf.inputs["Base Color"])
        ground.data.materials.append(mat)
        ctx.view_layer.objects.active = obj
    dg = ctx.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    me = ev.to_mesh()
    me.calc_loop_triangles()
    mw = np.array(obj.matrix_world)
    verts = np.array([tuple(v.co) for v in me.vertices], np.float64)
    verts = verts @ mw[:3, :3].T + mw[:3, 3]
    faces = np.array([tuple(t.vertices) for t in me.loop_triangles], np.int64)
    ev.to_mesh_clear()
    if {world!r} in ("sky", "photo"):   # opaque film (the world is in the pictures); sky: a transparent copy too
        from nstr_blender.blender.nerf_render import ViewRenderer
        runs = ((out, False), (out + "/alpha", True)) if {world!r} == "sky" else ((out, False),)
        for folder, transparent in runs:
            views = ViewRenderer(ctx, [obj], folder, {n_train}, {n_test}, {res}, "CYCLES", {hemisphere}, {samples})
            try:
                ctx.scene.render.film_transparent = transparent
                if {world!r} == "photo":   # the renderer hides every other object: the cameras frame the object
                    ground.hide_render = False
                while not views.render_next():
                    pass
            finally:
                views.close()
    else:
        render_nerf_dataset(ctx, [obj], out, {n_train}, {n_test}, {res}, engine="CYCLES", hemisphere={hemisphere},
                            samples={samples})
    np.savez(out + "/true_mesh.npz", vertices=verts, faces=faces, ground_z=ground_z)
""")


def render_truth_scene(out: Path, kind: str, n_train: int, n_test: int, res: int, samples: int = 16,
                       hemisphere: bool = False, timeout: float = 900, world: str | None = None) -> Path:
    """Render ``kind`` into ``out`` (unless it is already there); returns ``out``, which then holds
    ``transforms_train.json``, ``transforms_test.json`` and ``true_mesh.npz`` (world coordinates); with
    ``world="sky"`` the views have no alpha and ``out/alpha`` holds the same views with it; ``world="photo"``:
    no alpha, the object on a textured ground (module doc). Photo scenes put their cameras on the upper
    hemisphere whatever ``hemisphere`` says (the ground hides the lower one)."""
    if kind not in KINDS:
        raise ValueError(f"unknown scene '{kind}': choose one of {', '.join(KINDS)}")
    if world not in WORLDS:
        raise ValueError(f"unknown world '{world}': choose None (transparent film), 'sky' or 'photo'")
    hemisphere = hemisphere or world == "photo"
    out = Path(out)
    if (out / "true_mesh.npz").is_file() and (out / "transforms_train.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    script = out.parent / f"_render_{out.name}.py"
    script.write_text(_SCRIPT.format(repo=str(REPO), kind=kind, out=str(out), mesh=str(SHARED_MESH),
                                     n_train=n_train, n_test=n_test, res=res, samples=samples,
                                     hemisphere=hemisphere, world=world))
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(out.parent / "_blender_user")}
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                              timeout=timeout)
    finally:
        script.unlink(missing_ok=True)
    if proc.returncode != 0 or not (out / "true_mesh.npz").is_file():
        raise RuntimeError(f"rendering the {kind} scene failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}")
    return out


def load_true_mesh(folder: Path) -> tuple["np.ndarray", "np.ndarray"]:  # noqa: F821
    import numpy as np

    with np.load(Path(folder) / "true_mesh.npz") as z:
        return z["vertices"], z["faces"]
