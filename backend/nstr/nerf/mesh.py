"""A mesh from a radiance field: marching cubes on density, colours baked to vertices, spectral flow.

The surface threshold. A NeRF has no zero level set; what a viewer sees as surface is where light
stops. So the threshold is read off the views themselves: along training rays through pixels the
dataset marks opaque (alpha > 0.5), find the sample where the rendered opacity crosses 1/2, and take
the median density the field has there. The mesh's surface then sits where the training cameras see
the surface, whatever the density scale the field happened to learn (it varies by orders of
magnitude with resolution and training time: a fixed density such as instant-ngp's 2.5 or a
"half the light within 1% of the box" rule, ~35 here, either swallowed fog or found no surface at
all on our small scenes). A fixed density can still be given (``task.mesh_threshold``).

Colours: each vertex is looked at along its inward normal: a short ray from outside the surface
through it is volume-rendered (no background) and normalised by its opacity, which gives the
colour the field shows there. Colours are sRGB, as the dataset's images are.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, ContextManager

import numpy as np
import torch

from nstr.errors import NSTRError
from nstr.geometry.attributes import spectral_attributes, vertex_normals
from nstr.geometry.extraction import extract_surface
from nstr.nerf.radiance import RadianceField
from nstr.nerf.rays import SceneBox


# a task's named, timed stage (nstr.tasks.skeleton.TaskRun.stage): "extracting", then "attributes"
StageFn = Callable[[str], ContextManager[None]]


def _untimed(name: str) -> ContextManager[None]:
    return contextlib.nullcontext()


class NoSurfaceError(NSTRError):
    """The density field has nothing above the surface threshold."""


@torch.no_grad()
def threshold_from_views(renderer: Any, views: Any, max_rays: int = 8192, seed: int = 0) -> float:
    """Median density where rendered opacity crosses 1/2 along rays through opaque pixels of ``views``."""
    from nstr.nerf.rays import rays_for_pixels
    from nstr.nerf.render import sample_rays

    model, box = renderer.model, renderer.box
    dev = box.center.device
    alpha = views.images[..., 3]
    cams, rows, cols = np.nonzero(alpha > 0.5)
    if len(cams) == 0:
        raise NoSurfaceError("no view has opaque pixels (alpha > 0.5), so there is no surface to extract",
                             "Render the dataset with a transparent film so the object has alpha, or set task.mesh_threshold")
    pick = np.random.default_rng(seed).permutation(len(cams))[:max_rays]
    t = lambda a: torch.as_tensor(a[pick], device=dev)  # noqa: E731
    origins, dirs = rays_for_pixels(torch.as_tensor(views.poses, device=dev), views.intrinsics, t(cams), t(cols), t(rows))
    o = box.to_field(origins)
    s = sample_rays(o, dirs, step=renderer.step, grid=model.grid, density_fn=None, n_importance=0, gen=None)
    if s.ray.numel() == 0:
        raise NoSurfaceError("the field is empty along every ray through the object", "Train longer (more steps)")
    sigma = torch.cat([model.density(c) for c in s.points(o, dirs).split(65536)])
    tau = (sigma * s.dt).double()
    counts = torch.bincount(s.ray, minlength=s.n_rays)
    starts = torch.cumsum(counts, 0) - counts
    cs = torch.cumsum(tau, 0)
    before = cs - tau - (cs - tau)[starts.clamp(max=len(tau) - 1)][s.ray]
    after = before + tau
    crossing = (torch.exp(-before) > 0.5) & (torch.exp(-after) <= 0.5)
    if not bool(crossing.any()):
        raise NoSurfaceError("no ray through the object becomes half opaque in the fitted field",
                             "Train longer (more steps), or set task.mesh_threshold")
    return float(sigma[crossing].median())


@torch.no_grad()
def bake_colors(model: RadianceField, vertices: np.ndarray, normals: np.ndarray, voxel: float,
                n_samples: int = 16, chunk: int = 16384) -> np.ndarray:
    """(V, 4) sRGB colours seen along each vertex's inward normal, over ``[-2, +2]`` voxels around it."""
    dev = next(model.parameters()).device
    out = np.zeros((len(vertices), 4), np.float32)
    out[:, 3] = 1.0
    span = 2.0 * voxel
    ts = (torch.arange(n_samples, device=dev, dtype=torch.float32) + 0.5) / n_samples * 2 * span  # 0..2 span
    dt = 2 * span / n_samples
    for s in range(0, len(vertices), chunk):
        v = torch.as_tensor(vertices[s:s + chunk], dtype=torch.float32, device=dev)
        n = torch.as_tensor(normals[s:s + chunk], dtype=torch.float32, device=dev)
        origin = v + span * n
        d = -n
        pts = origin[:, None] + ts[None, :, None] * d[:, None]
        m = v.shape[0]
        sigma, rgb, _ = model.query(pts.reshape(-1, 3).clamp(-1, 1), d.repeat_interleave(n_samples, 0))
        sigma, rgb = sigma.reshape(m, n_samples), rgb.reshape(m, n_samples, 3)
        tau = sigma * dt
        trans = torch.exp(-(torch.cumsum(tau, 1) - tau))
        w = trans * (1 - torch.exp(-tau))
        acc = w.sum(1, keepdim=True)
        color = (w[..., None] * rgb).sum(1) / acc.clamp_min(1e-6)
        # where almost nothing is hit (a thin sliver), fall back to the colour at the vertex itself
        fallback = rgb[:, n_samples // 2]
        color = torch.where(acc > 1e-3, color, fallback)
        out[s:s + chunk, :3] = color.clamp(0, 1).cpu().numpy()
    return out


def extract_mesh(model: RadianceField, box: SceneBox, resolution: int, threshold: float,
                 bake: bool = True, min_component_share: float = 0.01, keep_all_components: bool = False,
                 stage: StageFn | None = None, region: np.ndarray | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays per architecture.md (world coordinates) and meta (ranges, colormaps, units, threshold,
    topology); components under ``min_component_share`` of the largest one's area are dropped unless
    ``keep_all_components`` (a NeRF has no input mesh to claim them: nstr.geometry.floaters). ``region``
    (field coordinates): only what lies inside this box, closed at its faces (as :func:`extract_sdf_mesh`)."""
    from nstr.geometry.floaters import drop_floaters
    from nstr.geometry.topology import topology

    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()

    def inside_minus_outside(x: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(x, dtype=torch.float32, device=dev)
        with torch.no_grad():
            sigma = model.density(xt).float().cpu().numpy()
        value = threshold - sigma  # negative inside, as extract_surface expects
        value[np.abs(x).max(1) > 0.995] = threshold  # close the surface at the box's walls
        if region is not None:   # outside the user's box: empty, so the surface closes at its faces
            value[region_distance(x.astype(np.float64), region) > 0] = threshold
        return value

    stage = stage or _untimed
    try:
        t0 = time.perf_counter()
        with stage("extracting"):
            ex = extract_surface(inside_minus_outside, resolution)
            t1 = time.perf_counter()
            if len(ex.faces) == 0:
                raise NoSurfaceError(f"the density field has no surface above the threshold {threshold:.3g}",
                                     "Train longer (more steps), or set a lower task.mesh_threshold")
            verts, faces, floaters = drop_floaters(ex.vertices.astype(np.float64), ex.faces.astype(np.int64),
                                                   keep_all=keep_all_components, min_share=min_component_share)
            normals = vertex_normals(verts, faces)
            arrays: dict[str, np.ndarray] = {}
            meta: dict[str, Any] = {"ranges": {}, "colormaps": {}, "units": {}}
            if bake:
                arrays["color_albedo"] = bake_colors(model, verts, normals, voxel=2.0 / (resolution - 1))
            t2 = time.perf_counter()
        with stage("attributes"):
            # every model gets the detail maps of its mesh (docs/spectral-flow.md), NSTR its internal readout too
            attrs, attr_meta = spectral_attributes(model.field, verts, faces, scale=box.half,
                                                   voxel=2.0 / (resolution - 1))
            arrays.update(attrs)
            meta.update(attr_meta)
            t3 = time.perf_counter()
    finally:
        model.train(was_training)
    world = box.to_world(torch.as_tensor(verts, dtype=torch.float32, device=box.center.device)).cpu().numpy()
    arrays["vertices"] = world.astype(np.float32)
    arrays["faces"] = faces.astype(np.int32)
    meta["units"] = {**meta.get("units", {}), "color_albedo": "sRGB radiance seen along the inward normal"}
    meta["surface"] = {"density_threshold": threshold, "resolution": resolution,
                       "density_units": "per unit of the field's [-1, 1] box", "floaters": floaters,
                       **topology(faces, world)}
    meta["timings"] = {"extract_s": round(t1 - t0, 3), "bake_s": round(t2 - t1, 3), "attributes_s": round(t3 - t2, 3)}
    return arrays, meta


@torch.no_grad()
def bake_sdf_colors(model: Any, vertices: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """(V, 4) sRGB albedo at each vertex (``SDFRadianceField.albedo``)."""
    dev = next(model.parameters()).device
    out = np.ones((len(vertices), 4), np.float32)
    for s in range(0, len(vertices), chunk):
        x = torch.as_tensor(vertices[s:s + chunk], dtype=torch.float32, device=dev)
        _, grad, feat, _ = model.sdf_and_gradient(x)
        n = torch.nn.functional.normalize(grad, dim=-1)
        out[s:s + chunk, :3] = model.albedo(x, n, feat).clamp(0, 1).cpu().numpy()
    return out


def region_distance(x: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Signed distance from points ``x`` (N, 3) to the box ``region`` (2, 3) (min, max corners), negative inside."""
    centre, half = (region[0] + region[1]) / 2, (region[1] - region[0]) / 2
    q = np.abs(x - centre) - half
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(1), 0.0)


def field_region(box: SceneBox, world: np.ndarray | None) -> np.ndarray | None:
    """The user's region of interest (``task.box``, world (2, 3)) in the field's cube, or None."""
    if world is None:
        return None
    centre = box.center.detach().cpu().numpy().astype(np.float64)
    return (np.asarray(world, np.float64) - centre) / box.half


def extract_sdf_mesh(model: Any, box: SceneBox, resolution: int, bake: bool = True, min_component_share: float = 0.01,
                     keep_all_components: bool = False, stage: StageFn | None = None,
                     region: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The SDF's zero level set as arrays per architecture.md (world coordinates) and meta.

    The SDF is forced positive on the cube's walls, so every surface marching cubes finds is closed;
    components under ``min_component_share`` of the largest one's area are dropped unless ``keep_all_components``.
    ``region`` (2, 3), field coordinates: the mesh is the object INSIDE this box, cut by its faces and
    closed there (the SDF is taken as ``max(sdf, distance to the box)``, the solids' intersection): what a
    capture shows around the object (the ground, the room) stays out of the result.
    """
    from nstr.geometry.floaters import drop_floaters
    from nstr.geometry.topology import topology

    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    wall = 2.0 / (resolution - 1)

    def sdf_fn(x: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(x, dtype=torch.float32, device=dev)
        with torch.no_grad():
            value = model.sdf(xt).float().cpu().numpy()
        walls = np.abs(x).max(1) > 0.995
        value[walls] = np.maximum(value[walls], wall)  # close the surface at the box's walls
        if region is not None:
            value = np.maximum(value, region_distance(x.astype(np.float64), region).astype(value.dtype))
        return value

    stage = stage or _untimed
    try:
        t0 = time.perf_counter()
        with stage("extracting"):
            ex = extract_surface(sdf_fn, resolution)
            t1 = time.perf_counter()
            if len(ex.faces) == 0:
                raise NoSurfaceError("the SDF has no zero level set inside the scene box",
                                     "Train longer (more steps), or check that the views show the object")
            verts, faces, floaters = drop_floaters(ex.vertices.astype(np.float64), ex.faces.astype(np.int64),
                                                   keep_all=keep_all_components, min_share=min_component_share)
            arrays: dict[str, np.ndarray] = {}
            meta: dict[str, Any] = {"ranges": {}, "colormaps": {}, "units": {}}
            if bake:
                arrays["color_albedo"] = bake_sdf_colors(model, verts)
            t2 = time.perf_counter()
        with stage("attributes"):
            # every model gets the detail maps of its mesh (docs/spectral-flow.md), NSTR its internal readout too
            attrs, attr_meta = spectral_attributes(model.field, verts, faces, scale=box.half, voxel=wall)
            arrays.update(attrs)
            meta.update(attr_meta)
            t3 = time.perf_counter()
    finally:
        model.train(was_training)
    world = box.to_world(torch.as_tensor(verts, dtype=torch.float32, device=box.center.device)).cpu().numpy()
    arrays["vertices"] = world.astype(np.float32)
    arrays["faces"] = faces.astype(np.int32)
    meta["units"] = {**meta.get("units", {}), "color_albedo": "sRGB colour seen along the inward normal"}
    meta["surface"] = {"geometry": "sdf", "level": 0.0, "resolution": resolution, "floaters": floaters,
                       **topology(faces, world)}
    meta["timings"] = {"extract_s": round(t1 - t0, 3), "bake_s": round(t2 - t1, 3), "attributes_s": round(t3 - t2, 3)}
    return arrays, meta
