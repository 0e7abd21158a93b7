"""NeRF scenes: fit a radiance field to posed RGBA views, score held-out views, extract a coloured mesh.

Two geometries behind ``task.geometry``:

* ``sdf`` (default): NeuS. The field is a signed distance (``nstr.nerf.sdf_field``), opacity comes
  from it through a learned, coarse-to-fine sharpness, with an eikonal term; samples are placed from a
  cached SDF grid (``nstr.nerf.sdf_render``); the mesh is the zero level set, closed by construction.
* ``density``: instant-ngp style density with an occupancy grid, stratified + proportional samples;
  the mesh is a density level read off the training views (``nstr.nerf.mesh``). Kept for comparison.

Both: views with alpha are composited over random backgrounds with a mask loss on the rendered
opacity; views without alpha are composited over a learnt environment map (``task.background=learned``,
``nstr.nerf.background``) or their border colour (``color``, ``nstr.nerf.masks``); ``auto`` (the default)
learns the map when the border is not one colour.
Then test-view PSNR / SSIM and renders -> mesh with albedo baked to vertices and, for NSTR, the
spectral-flow attributes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from nstr.config import RunConfig, build_config, option
from nstr.errors import ConfigError, InputError
from nstr.nerf.dataset import MAX_FRAMES, MAX_PIXELS, NerfDataset, Progress, Views, dataset_from_arrays
from nstr.nerf.source import check_dataset_folder, load_dataset
from nstr.nerf.masks import MaskInfo, inspect_masks
from nstr.nerf.appearance import PhotoExposure
from nstr.nerf.background import BACKGROUNDS, UNIFORM_BORDER, EnvironmentMap, wants_map
from nstr.nerf.pose_refine import PoseRefinement
from nstr.nerf.region import region_box, with_region
from nstr.nerf.radiance import RadianceField
from nstr.nerf.sdf_field import COLOR_FIELDS, SHADINGS, SDFRadianceField
from nstr.nerf.sdf_render import SdfSampling, render_sdf
from nstr.nerf.rays import SceneBox, image_rays, rays_for_pixels
from nstr.nerf.render import DIAGONAL, composite, sample_rays
from nstr.signals.metrics import psnr, ssim
from nstr.tasks.skeleton import ProgressFn, TaskRun, config_from_job
from nstr.train import Objective, Progress

TASK = "nerf"
BAND_START = 0.25  # task.coarse_to_fine: the share of the SDF network's scales on at step 0
GEOMETRIES = ("sdf", "density")


@dataclass
class NerfOptions:
    """What the NeRF task needs beyond the field and the training (batch_size counts rays)."""

    image_size: int = option(0, bounds=(0, 4_096))  # resize views to this square size; 0 keeps the dataset's size
    max_frames: int = option(MAX_FRAMES, bounds=(1, 100_000))  # views a dataset may hold: refused before any image is decoded
    max_pixels: int = option(MAX_PIXELS, bounds=(1, 1 << 32))  # pixels over all views after resizing (4 GiB as float32 RGBA)
    n_features: int = option(15, bounds=(1, 256))  # field outputs besides density, read by the colour head
    head_width: int = option(64, bounds=(1, 4_096))
    head_depth: int = option(1, bounds=(0, 16))
    render_steps: int = option(128, bounds=(1, 4_096))  # stratified samples across the cube's diagonal
    n_importance: int = option(16, bounds=(0, 1_024))  # proportional samples per ray from the no-grad pass (0: stratified only)
    grid_resolution: int = option(64, bounds=(1, 512))  # occupancy grid cells per side
    grid_update_every: int = option(16, bounds=(1, 1_000_000))
    grid_warmup: int = option(256, bounds=(0, 1_000_000))  # steps during which every cell is refreshed (later a quarter per update)
    random_background: bool = True
    appearance: str = option("off", choices=("off", "exposure"))  # per training photo a learnt colour gain per channel (exposure, white balance; nstr.nerf.appearance); held-out views and the mesh use the average photo
    # views without alpha: "learned" = an environment map, a colour per ray direction learnt with the fit
    # (nstr.nerf.background); "color" = one colour behind the object, the views' border median (nstr.nerf.masks).
    # Views with alpha ignore it (random backgrounds and the mask loss). Measured on the cube in front of a
    # direction-dependent world, no alpha (tests/test_nerf_background.py: 20 views at 40 px, hashgrid 20k, 300
    # steps, 8 rows), color -> learned: density: held-out PSNR 16.0 -> 22.2 dB, on the world's pixels 11.9 -> 26.0
    # dB, the field's opacity there 0.073 -> 0.031. scripts/bench_nerf.py --world sky (24 views at 40 px, 400
    # steps, hashgrid 20k), color -> learned: cube density PSNR 16.1 -> 23.6 dB, F@1% 0.170 -> 0.188, Chamfer-L1
    # 0.0545 -> 0.0534, genus 2834 -> 506 (floater foam); cube sdf PSNR 15.2 -> 22.1 dB, F@1% 0.000 -> 0.080,
    # Chamfer-L1 0.0493 -> 0.0381; Suzanne density PSNR 17.3 -> 24.7 dB, F@1% 0.037 -> 0.172, Chamfer-L1 0.151 ->
    # 0.045; Suzanne sdf PSNR 16.6 -> 25.4 dB, F@1% 0.000 -> 0.461, Chamfer-L1 0.338 -> 0.024
    # Before one colour (the cube composited over grey) the map cost 1.9 dB (22.6 -> 20.7): "auto" (the default)
    # learns it when the views' border is not one colour (nstr.nerf.background.UNIFORM_BORDER)
    background: str = option("auto", choices=BACKGROUNDS)
    # task.background=learned: the map's finest latitude rows (2x as many longitude columns; coarser levels down
    # to 2 rows). 16 painted the object into the map where the world is one colour (the cube before a uniform
    # grey, density, 300 steps: held-out PSNR 22.5 dB with the colour, 19.7 at 16 rows, 22.2 at 8; the object's
    # opacity 0.96, 0.77, 0.96): the directions towards the object are never seen as world by an inward-facing
    # capture, so a fine map may take the object; 8 also scored best before the sky (22.0 dB against 21.5 at 16)
    background_rows: int = option(8, bounds=(2, 512))
    pose_refine: bool = False  # learn a small rotation and shift of each training photo's camera (nstr.nerf.pose_refine); held-out views keep their poses
    pose_lr: float = option(1e-3, bounds=(0, 1))  # pose refinement's learning rate (radians per step for the rotations)
    eval_views: int = option(4, bounds=(1, 1_000))  # test views rendered at each evaluation during training (all at the end)
    render_chunk: int = option(8192, bounds=(1, 2**22))  # rays per forward pass when rendering a view
    box: tuple[float, ...] = option((), bounds=(-1e12, 1e12))  # region of interest x0,y0,z0,x1,y1,z1 (world units): the field's box, and the mesh is cut to it (closed at its faces); (): from the dataset or the cameras
    mesh_resolution: int = option(128, bounds=(8, 2_048))  # marching-cubes cells per side of the object's box
    mesh_threshold: float = option(0.0, bounds=(0, 1_000_000))  # density only: surface density; 0: read off the training views (nstr.nerf.mesh)
    bake_colors: bool = True
    geometry: str = option("sdf", choices=GEOMETRIES)  # sdf (NeuS) | density (instant-ngp style, for comparison)
    lambda_mask: float = option(0.1, bounds=(0, 1_000))  # BCE of rendered opacity against the views' alpha (views with alpha only)
    # --- sdf only
    lambda_eikonal: float = option(0.1, bounds=(0, 1_000))  # (|grad sdf| - 1)^2 on the ray samples and on eikonal_points random points
    eikonal_points: int = option(256, bounds=(0, 1_000_000))
    lambda_smooth: float = option(0.05, bounds=(0, 1_000))  # sdf: |n(q) - n(q + d)|^2 at the eikonal points projected onto the surface
    smooth_radius: float = option(0.01, bounds=(1e-06, 1))  # |d| per axis (std), field units: flat faces stay flat, texture cannot dent them
    sdf_coarse: int = option(128, bounds=(2, 4_096))  # grid lookups per ray that place the network samples
    sdf_fine: int = option(32, bounds=(1, 1_024))  # network samples per ray drawn near the surface
    sdf_uniform: int = option(8, bounds=(0, 1_024))  # network samples per ray spread across the cube
    init_radius: float = option(0.6, bounds=(0.01, 0.99))  # the sphere the SDF starts as, in the field's [-1, 1] box
    sharpness_init: float = option(20.0, bounds=(0.1, 1_000_000))  # NeuS s at the start (1 / logistic width, per field unit)
    sharpness_max: float = option(1000.0, bounds=(0.1, 1_000_000))  # the floor under s reached after sharpness_ramp of the steps
    sharpness_ramp: float = option(0.5, bounds=(0, 1))
    cos_anneal: float = option(0.1, bounds=(0, 1))  # fraction of the steps over which NeuS's cos annealing goes to 1
    # coarse to fine: the SDF network starts with the coarsest BAND_START of its scales (NSTR's frequencies,
    # the hash grid's levels) and gains the rest linearly over this fraction of the steps (0: all from the start).
    # Off: measured on the 96 px cube (32 views, 3000 steps, NSTR; F@1% over 50k points, where a perfect cube
    # scores 0.93), F@1% 0.81 off against 0.76 at 0.5; the waves on the flat faces stayed (so did raising
    # lambda_smooth: 0.75 at 0.3, 0.50 at 1.0; 0: 0.74)
    coarse_to_fine: float = option(0.0, bounds=(0, 1))
    min_component_share: float = option(0.01, bounds=(0, 1))  # mesh components under this share of the largest one's area are dropped
    keep_all_components: bool = False  # keep every component of the mesh (floaters too)
    # sdf: "separate" = the colour head's features from their own small grid (nstr.nerf.sdf_field), so the colour
    # loss reaches the geometry only through normals and opacity; "shared" = from the SDF network (NeuS). Measured
    # (scripts/bench_nerf.py, 24 views at 64 px, 600 steps, 50k points): cube F@1% 0.21 -> 0.54 (hash grid),
    # Suzanne 0.83 -> 0.86
    color_field: str = option("separate", choices=COLOR_FIELDS)
    # sdf: "lit" = albedo x one global SH irradiance of the normal, so normals can shade but not spell out a
    # texture, and the baked colour is the albedo; "free" = the NeuS colour head, which reads the normal
    # directly (nstr.nerf.sdf_field). Measured (scripts/bench_nerf.py, 32 views at 96 px, 3000 steps, 40k
    # field parameters), F@1% free -> lit: cube hash grid 0.840 -> 0.873 (the checker grooves are gone),
    # cube NSTR 0.750 -> 0.751, Suzanne hash grid 0.896 -> 0.900, Suzanne NSTR 0.910 -> 0.900
    shading: str = option("lit", choices=SHADINGS)


# The PDE weight trades view quality for a transport network that explains the spectrum. Measured on the
# 64 px Suzanne scene, 600 steps, 40k-parameter field (scripts/bench_nerf.py): lambda_pde 0.01 on 25% of
# samples: test PSNR 27.1 dB, relative PDE residual 0.03; 0.001 on 10%: 28.9 dB, 0.38; 0 (ablation):
# 31.9 dB, 1.0 (F_theta untrained, drift meaningless). NeRF presets take the middle.
# NSTR's lowest basis frequency in NeRF scenes, cycles per unit: 0.05 leaves a few bases nearly constant across
# the box, so S(x) alone can place a flat face or an edge where the views put it (a local, non-oscillating
# term, as a hash grid has); from 0.5 (the field's default) every correction is a global sinusoid, and the
# faces came back with ripples and edge lips. Measured (scripts/bench_nerf.py, cube, 32 views at 96 px, 3000
# steps, 40k field parameters, 100k points): F@1% 0.850 -> 0.963 (seed 1: 0.906; hash grid: 0.963); Suzanne
# 0.904 -> 0.910.
NERF_MIN_FREQ = 0.05

PRESETS: dict[str, dict[str, Any]] = {
    # CPU-friendly, tuned on the panel's own quick NeRF of Suzanne (its defaults: 50 + 10 views rendered at
    # 200 px, upper hemisphere; 2-core CPU, quiet): 600 steps at 64 px gave F@1% 0.809, 1200 at 64 px 0.848,
    # 1200 at 96 px 0.893 (PSNR 29.8 dB) in 3.8 minutes with the views' rendering (the issue's goal: 0.85 in 5)
    "quick": {"field": {"n_freqs": 32, "min_freq": NERF_MIN_FREQ, "grid_levels": 6, "grid_table_size": 2**12,
                        "grid_max_res": 64, "width": 32, "depth": 1, "transport_width": 16},
              "train": {"steps": 1200, "batch_size": 512, "log_every": 20, "eval_every": 200, "lambda_pde": 0.001,
                        "pde_fraction": 0.1},
              "task": {"image_size": 96, "render_steps": 96, "n_importance": 8, "grid_resolution": 32,
                       "eval_views": 2, "mesh_resolution": 64, "head_width": 32}},
    "default": {"field": {"n_freqs": 64, "min_freq": NERF_MIN_FREQ, "grid_levels": 12, "grid_table_size": 2**16,
                          "width": 64, "depth": 1},
                "train": {"steps": 5000, "batch_size": 4096, "log_every": 50, "eval_every": 1000,
                          "lambda_pde": 0.001, "pde_fraction": 0.1},
                "task": {"render_steps": 256, "n_importance": 32, "grid_resolution": 96, "mesh_resolution": 256}},
    "high": {"field": {"n_freqs": 128, "min_freq": NERF_MIN_FREQ, "grid_levels": 16, "grid_table_size": 2**19,
                       "width": 64, "depth": 2, "transport_width": 64},
             "train": {"steps": 20000, "batch_size": 8192, "log_every": 100, "eval_every": 2000,
                       "lambda_pde": 0.001, "pde_fraction": 0.1},
             "task": {"render_steps": 512, "n_importance": 64, "grid_resolution": 128, "mesh_resolution": 384}},
}


def nerf_config(preset: str = "default", overrides: Mapping[str, Any] | None = None) -> RunConfig:
    cfg = build_config(NerfOptions, PRESETS, preset, overrides)
    o: NerfOptions = cfg.task   # bounds and choices are checked with the config (nstr.config.option)
    if o.sharpness_init > o.sharpness_max:
        raise ConfigError(f"task.sharpness_init ({o.sharpness_init:g}) must be at most task.sharpness_max "
                          f"({o.sharpness_max:g})", "Lower task.sharpness_init or raise task.sharpness_max")
    if o.box:
        region_box(o.box)  # its shape and order now; whether a camera sees it once the views are loaded
    if cfg.field.model == "nstr" and cfg.field.variant == "banded":
        raise ConfigError("field.variant=banded fits audio, images and SDF jobs; it is not built or measured for "
                          "NeRF (its envelopes start as a distance, and a density is not one)",
                          "Use field.variant=classic (or another model) for NeRF jobs")
    return cfg


def with_band_limit(cfg: RunConfig, image_width: int) -> RunConfig:
    """Band limit and finest grid from the views' resolution.

    A view spans about the box (2 field units), so its Nyquist limit is ~W/4 cycles per unit; NSTR starts
    with every basis present, and at that band limit its initial density is high-frequency fog that the
    occupancy grid cannot clear (measured on the 64 px Suzanne scene, 200 steps: test PSNR 20.8 dB at
    max_freq 16 against 22.2 dB at 6). So the default band limit is W/10 cycles per unit.
    """
    f = cfg.field
    max_freq = f.max_freq if f.max_freq is not None else max(4.0, image_width / 10.0)
    max_res = f.grid_max_res if f.grid_max_res is not None else max(32, image_width)
    return dataclasses.replace(cfg, field=dataclasses.replace(f, max_freq=max_freq, grid_max_res=max_res))


# ----------------------------------------------------------------------------------------- rendering


class Renderer:
    """Everything between a radiance field (density or SDF) and pixels: the scene box, sampling, compositing."""

    def __init__(self, model: RadianceField | SDFRadianceField, box: SceneBox, opts: NerfOptions) -> None:
        self.model, self.box, self.opts = model, box, opts
        self.step = DIAGONAL / opts.render_steps
        self.is_sdf = isinstance(model, SDFRadianceField)
        self.sdf_sampling = SdfSampling(opts.sdf_coarse, opts.sdf_fine, opts.sdf_uniform)
        self.cos_anneal = 1.0  # NeuS's annealing, set per step by the objective; 1 when rendering
        # views without alpha: their border colour, or the learnt environment map (nstr.nerf.background)
        self.background: tuple[float, float, float] | EnvironmentMap | None = None

    def background_colors(self, dirs: Tensor, background: tuple[float, float, float] | EnvironmentMap) -> Tensor:
        """(R, 3) behind rays of world directions ``dirs``: the map's colour per direction, or one colour."""
        if isinstance(background, EnvironmentMap):
            return background(dirs)
        return torch.tensor(background, device=dirs.device, dtype=torch.float32).expand(dirs.shape[0], 3)

    def render(self, origins: Tensor, dirs: Tensor, background: Tensor, gen: torch.Generator | None,
               pde_fraction: float | None = None) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor], int | Tensor]:
        """World rays -> colour (R, 3), opacity (R,), depth (R, world units), field terms, sample count
        (a tensor where counting would wait for the device)."""
        o = self.box.to_field(origins)
        if self.is_sdf:
            training = pde_fraction is not None
            color, acc, depth, terms, n = render_sdf(self.model, o, dirs, background, self.sdf_sampling, gen,
                                                     training=training, cos_anneal=self.cos_anneal if training
                                                     else 1.0, pde_fraction=pde_fraction)
            return color, acc, depth * self.box.half, terms, n
        # density: packed samples on the CPU (no compute on skipped ones), padded on CUDA (no host sync)
        samples = sample_rays(o, dirs, step=self.step, grid=self.model.grid, density_fn=self.model.density,
                              n_importance=self.opts.n_importance, gen=gen, padded=o.device.type == "cuda")
        if samples.ray.numel() == 0:
            zeros = torch.zeros(origins.shape[0], device=origins.device)
            return background.clone(), zeros, zeros, {}, 0
        pts = samples.points(o, dirs)
        sigma, rgb, terms = self.model.query(pts, dirs[samples.ray], pde_fraction)
        color, acc, depth = composite(sigma, rgb, samples, background)
        return color, acc, depth * self.box.half, terms, samples.kept()

    def occupied_fraction(self) -> Tensor:
        """Share of the grid near the surface (sdf) or occupied (density), as a tensor: no host sync."""
        if self.is_sdf:
            return self.model.grid.occupied_fraction()
        return self.model.grid.occupied.float().mean()

    @torch.no_grad()
    def render_view(self, pose: Tensor, views: Views,
                    background: tuple[float, float, float] | EnvironmentMap = (1.0, 1.0, 1.0)) -> np.ndarray:
        """One view (H, W, 4): colour composited over ``background`` (a colour or a learnt map) and opacity."""
        intr = views.intrinsics
        origins, dirs = image_rays(pose, intr)
        chunk = max(256, self.opts.render_chunk // 4) if self.is_sdf else self.opts.render_chunk  # + gradients
        out = []
        for o, d in zip(origins.split(chunk), dirs.split(chunk)):
            bg = self.background_colors(d, background)
            color, acc, _, _, _ = self.render(o, d, bg, None)
            out.append(torch.cat([color, acc[:, None]], -1))
        return torch.cat(out).reshape(intr.height, intr.width, 4).clamp(0, 1).cpu().numpy()


def over_background(rgba: np.ndarray, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    return rgba[..., :3] * rgba[..., 3:] + np.asarray(background, np.float32) * (1.0 - rgba[..., 3:])


def score_views(renderer: Renderer, views: Views, indices: list[int] | None = None,
                keep: bool = False) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean PSNR / SSIM of renders against the views, both over a white background (NeRF synthetic's rule).
    Pixels without data (``Views.valid``) do not count: PSNR is taken over the others, and for SSIM the
    render takes the view's own values there."""
    dev = renderer.box.center.device
    idx = list(range(len(views))) if indices is None else indices
    background = renderer.background or (1.0, 1.0, 1.0)  # views without alpha: their own background
    # a learnt map stands behind views without alpha, whose truth is the picture as it is (alpha 1)
    flat = (1.0, 1.0, 1.0) if isinstance(background, EnvironmentMap) else background
    p, s, renders = [], [], []
    for i in idx:
        pose = torch.as_tensor(views.poses[i], device=dev)
        pred = renderer.render_view(pose, views, background)
        gt = over_background(views.images[i], flat)
        has = views.valid[i] if views.valid is not None else None
        p.append(psnr(gt, pred[..., :3]) if has is None else psnr(gt[has], pred[..., :3][has]))
        s.append(ssim(gt, pred[..., :3] if has is None else np.where(has[..., None], pred[..., :3], gt)))
        if keep:
            renders.append(pred)
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s))}, renders


# ----------------------------------------------------------------------------------------- objective


class NerfObjective(Objective):
    """Random rays from all training pixels (that hold data); the grid (occupancy or cached SDF) is refreshed as batches
    are drawn. No host sync per step: every logged term stays a tensor until the trainer's log step."""

    def __init__(self, renderer: Renderer, dataset: NerfDataset, device: torch.device, masks: MaskInfo,
                 batch_size: int, total_steps: int) -> None:
        self.renderer, self.dataset, self.device, self.masks = renderer, dataset, device, masks
        tr = dataset.train
        self.n, self.h, self.w = tr.images.shape[:3]
        self.pixels = torch.as_tensor(tr.images.reshape(-1, 4), device=device)
        # the flat indices of the pixels that hold data (None: all); rays are drawn from these only
        self.with_data = None if tr.valid is None else torch.as_tensor(np.flatnonzero(tr.valid), device=device)
        self.poses = torch.as_tensor(tr.poses, device=device)
        self.opts: NerfOptions = renderer.opts
        # the capture's optional parts (nstr.nerf.capture_modules), attached before the objective is made
        self.environment: EnvironmentMap | None = getattr(renderer.model, "environment", None)
        self.appearance: PhotoExposure | None = getattr(renderer.model, "appearance", None)
        self.pose_refinement: PoseRefinement | None = getattr(renderer.model, "pose_refinement", None)
        self.batch_size = batch_size
        self.total_steps = total_steps
        eval_views = dataset.test if dataset.test is not None else tr
        k = min(self.opts.eval_views, len(eval_views))
        self.eval_indices = sorted({int(round(i * (len(eval_views) - 1) / max(k - 1, 1))) for i in range(k)})
        self.eval_set = eval_views

    def _schedule(self, step: int) -> None:
        """Grid refresh, the floor under NeuS's sharpness (geometric, coarse to fine) and cos annealing."""
        model, opts = self.renderer.model, self.opts
        if self.renderer.is_sdf:
            if step % opts.grid_update_every == 0:
                model.grid.update(model.sdf)
            ramp = min(1.0, step / max(1.0, opts.sharpness_ramp * self.total_steps))
            model.set_sharpness_floor(opts.sharpness_init * (opts.sharpness_max / opts.sharpness_init) ** ramp)
            self.renderer.cos_anneal = min(1.0, step / max(1.0, opts.cos_anneal * self.total_steps))
            if opts.coarse_to_fine > 0:
                ramp = min(1.0, step / max(1.0, opts.coarse_to_fine * self.total_steps))
                model.set_band(BAND_START + (1.0 - BAND_START) * ramp)
        elif step % opts.grid_update_every == 0:
            model.grid.update(model.density, self._grid_gen, 1.0 if step < opts.grid_warmup else 0.25)

    def sample(self, step: int, gen: torch.Generator) -> dict[str, Any]:
        self._grid_gen = gen
        self._schedule(step)
        if self.with_data is None:
            idx = torch.randint(0, self.pixels.shape[0], (self.batch_size,), generator=gen, device=self.device)
        else:
            idx = self.with_data[torch.randint(0, len(self.with_data), (self.batch_size,), generator=gen,
                                               device=self.device)]
        cams = idx // (self.h * self.w)
        rows = (idx // self.w) % self.h
        cols = idx % self.w
        origins, dirs = rays_for_pixels(self.poses, self.dataset.train.intrinsics, cams, cols, rows)
        rgba = self.pixels[idx]
        if not self.masks.has_alpha:   # a learnt map's colours are read in the loss (they need the gradient)
            bg = None if self.environment is not None else self.renderer.background_colors(dirs, self.masks.background)
            target = rgba[:, :3]
        else:
            if self.opts.random_background:
                bg = torch.rand(self.batch_size, 3, generator=gen, device=self.device)
            else:
                bg = torch.ones(self.batch_size, 3, device=self.device)
            target = rgba[:, :3] * rgba[:, 3:] + bg * (1 - rgba[:, 3:])
        ray_gen = torch.Generator(device=self.device)
        ray_gen.manual_seed(gen.initial_seed() ^ 0x5DEECE66D)  # the host knows the seed: no device read
        batch = {"origins": origins, "dirs": dirs, "bg": bg, "target": target, "alpha": rgba[:, 3], "gen": ray_gen,
                 "photo": cams}
        if self.renderer.is_sdf and self.opts.lambda_eikonal > 0 and self.opts.eikonal_points > 0:
            batch["eikonal_points"] = torch.rand(self.opts.eikonal_points, 3, generator=gen, device=self.device) * 2 - 1
            if self.opts.lambda_smooth > 0:
                batch["smooth_offsets"] = self.opts.smooth_radius * torch.randn(
                    self.opts.eikonal_points, 3, generator=gen, device=self.device)
        return batch

    def loss(self, field: Any, batch: dict[str, Any], pde_fraction: float) -> tuple[Tensor, dict[str, Tensor]]:
        origins, dirs = batch["origins"], batch["dirs"]
        if self.pose_refinement is not None:   # the rays of each photo's corrected camera (its world seen that way too)
            origins, dirs = self.pose_refinement(origins, dirs, batch["photo"])
        bg = batch["bg"] if batch["bg"] is not None else self.environment(dirs)
        color, acc, _, terms, n_samples = self.renderer.render(origins, dirs, bg, batch["gen"], pde_fraction)
        # as each photo's exposure shows it; with masks the (synthetic) background stays, without them the
        # gain is the photo's and scales its background too (the learnt map included)
        if self.appearance is not None:
            color = self.appearance(color, batch["photo"], *((acc, batch["bg"]) if self.masks.has_alpha else ()))
        mse = (color - batch["target"]).pow(2).mean()
        loss = mse
        logs = {k: v for k, v in terms.items() if k != "eikonal"}
        if self.masks.has_alpha and self.opts.lambda_mask > 0:
            bce = torch.nn.functional.binary_cross_entropy(acc.clamp(1e-4, 1 - 1e-4), batch["alpha"].clamp(0, 1))
            loss = loss + self.opts.lambda_mask * bce
            logs["mask_bce"] = bce.detach()
        if "eikonal" in terms:
            eik = terms["eikonal"]
            if "eikonal_points" in batch:
                sdf_e, grad, _, _ = self.renderer.model.sdf_and_gradient(batch["eikonal_points"], create_graph=True)
                eik = 0.5 * (eik + (grad.norm(dim=-1) - 1.0).pow(2).mean())
                if "smooth_offsets" in batch:
                    smooth = self._smoothness(batch["eikonal_points"], sdf_e.detach(), grad.detach(),
                                              batch["smooth_offsets"])
                    loss = loss + self.opts.lambda_smooth * smooth
                    logs["smooth"] = smooth.detach()
            loss = loss + self.opts.lambda_eikonal * eik
            logs["eikonal"] = eik.detach()
            logs["sharpness"] = self.renderer.model.sharpness.detach()
        logs["psnr_batch"] = -10.0 * torch.log10(mse.detach().clamp_min(1e-10))
        logs["samples_per_ray"] = torch.as_tensor(n_samples, dtype=torch.float32) / max(1, self.batch_size)
        logs["occupied"] = self.renderer.occupied_fraction()
        return loss, logs

    def _smoothness(self, points: Tensor, sdf: Tensor, grad: Tensor, offsets: Tensor) -> Tensor:
        """Mean |n(q) - n(q + d)|^2 with q the points moved onto the zero level set along their normal:
        the surface's normals may only turn slowly, so views cannot carve a texture into it."""
        model = self.renderer.model
        q = (points - sdf[:, None] * torch.nn.functional.normalize(grad, dim=-1)).clamp(-1.0, 1.0)
        _, g, _, _ = model.sdf_and_gradient(torch.cat([q, (q + offsets).clamp(-1.0, 1.0)]), create_graph=True)
        n = torch.nn.functional.normalize(g, dim=-1)
        return (n[: len(q)] - n[len(q):]).pow(2).sum(-1).mean()

    def evaluate(self, field: Any) -> dict[str, float]:
        metrics, _ = score_views(self.renderer, self.eval_set, self.eval_indices)
        return {"psnr": metrics["psnr"]}


# ----------------------------------------------------------------------------------------- fitting


@dataclass
class NerfResult:
    model: RadianceField
    renderer: Renderer
    dataset: NerfDataset
    metrics: dict[str, float]  # psnr, ssim on the test views
    renders: list[np.ndarray]  # (H, W, 4) test-view renders over white, opacity in alpha
    history: list[dict[str, Any]]
    report: dict[str, Any]
    run: TaskRun          # its stages (fitting, scoring; extracting and attributes once meshed)


def fit_nerf(dataset: NerfDataset, cfg: RunConfig, *, checkpoint: Path | None = None,
             on_progress: Callable[[Progress], None] | None = None,
             should_stop: Callable[[], bool] | None = None, run: TaskRun | None = None) -> NerfResult:
    """Train a radiance field on ``dataset``; score and render every test view.

    ``run`` (the task skeleton) carries progress events and stop checks; without one, a run is made
    from ``on_progress`` and ``should_stop``."""
    from nstr.device import resolve_device, seed_everything

    opts: NerfOptions = cfg.task
    if opts.box:
        dataset = with_region(dataset, opts.box)
    cfg = with_band_limit(cfg, dataset.train.images.shape[2])
    masks = inspect_masks(dataset)
    dev = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    model = build_radiance_field(cfg)
    if opts.appearance == "exposure":
        model.appearance = PhotoExposure(len(dataset.train))   # a submodule: trained, checkpointed, reported
    if wants_map(opts.background, masks.has_alpha, masks.border_spread):   # a submodule: trained, checkpointed
        model.environment = EnvironmentMap(opts.background_rows, masks.background or (0.5, 0.5, 0.5))
    box = SceneBox.from_aabb(dataset.aabb, dev)
    if opts.pose_refine:   # a submodule too; its shifts in units of half the scene box
        model.pose_refinement = PoseRefinement(len(dataset.train), box.half, opts.pose_lr)
    renderer = Renderer(model, box, opts)
    env = getattr(model, "environment", None)
    renderer.background = env if env is not None else masks.background
    objective = NerfObjective(renderer, dataset, dev, masks, cfg.train.batch_size, cfg.train.steps)
    run = run if run is not None else TaskRun(None, should_stop, on_progress)
    final = run.fit(model, objective, cfg.train, device=dev, checkpoint=checkpoint, metrics=_fit_metrics)
    model.eval()
    views = dataset.test if dataset.test is not None else dataset.train
    with run.stage("scoring", emit=False):
        metrics, renders = score_views(renderer, views, keep=True)
    metrics = {"psnr": round(metrics["psnr"], 4), "ssim": round(metrics["ssim"], 5)}
    report = run.report(TASK, cfg, model, final, dev, metrics)
    report.update({
        "field_params": model.field.n_params,
        "metrics_on": "test" if dataset.test is not None else "train (no test split)",
        "geometry": opts.geometry, "masks": "alpha" if masks.has_alpha else (
            "none (learnt environment map as background)" if getattr(model, "environment", None) is not None
            else "none (border colour as background)"),
        "notes": masks.notes,
        "dataset": dataset.describe(), "occupied_fraction": round(float(renderer.occupied_fraction()), 4),
    })
    if renderer.is_sdf:
        report["sharpness"] = round(float(model.sharpness.detach()), 2)
    if getattr(model, "appearance", None) is not None:
        report["appearance"] = model.appearance.describe()
    report["background"] = _describe_background(model, masks, opts.background)
    if getattr(model, "pose_refinement", None) is not None:
        report["pose_refinement"] = model.pose_refinement.describe()
    return NerfResult(model, renderer, dataset, metrics, renders, final.history, report, run)


def _describe_background(model: Any, masks: MaskInfo, option: str) -> dict[str, Any]:
    """What stood behind the object in the training views: the report's ``background``."""
    if masks.has_alpha:
        return {"kind": "random (views with alpha: masked training; task.background is not used)"}
    env = getattr(model, "environment", None)
    why = {"option": option, "border_spread": round(masks.border_spread or 0.0, 4), "uniform_below": UNIFORM_BORDER}
    if env is not None:
        return {**env.describe(), **why}
    return {"kind": "color", "color": [round(c, 4) for c in masks.background or ()], **why}


def build_radiance_field(cfg: RunConfig) -> RadianceField | SDFRadianceField:
    """The field ``task.geometry`` names, sized by ``cfg.field`` (``build_field`` inside)."""
    opts: NerfOptions = cfg.task
    if opts.geometry == "sdf":
        return SDFRadianceField(cfg.field, opts.n_features, opts.head_width, opts.head_depth, opts.grid_resolution,
                                init_radius=opts.init_radius, init_sharpness=opts.sharpness_init,
                                color_field=opts.color_field, shading=opts.shading)
    return RadianceField(cfg.field, opts.n_features, opts.head_width, opts.head_depth, opts.grid_resolution,
                         DIAGONAL / opts.render_steps)


def mesh_arrays(result: NerfResult) -> dict[str, np.ndarray]:
    """The mesh result (architecture.md's table) with ``meta_json``: the SDF's zero level set (or a
    density level), baked albedo, and the spectral-flow attributes of the field (NSTR only)."""
    from nstr.geometry.export import encode_meta
    from nstr.nerf.mesh import extract_mesh, extract_sdf_mesh, field_region, threshold_from_views

    opts: NerfOptions = result.renderer.opts
    result.model.eval()
    # with task.box the mesh is what lies inside it, closed at its faces (the field's cube is larger)
    world_box = region_box(opts.box) if opts.box else None
    components = {"min_component_share": opts.min_component_share, "keep_all_components": opts.keep_all_components,
                  "region": field_region(result.renderer.box, world_box)}
    stage = result.run.stage      # extracting, then attributes: timed and reported as the task's stages
    if result.renderer.is_sdf:
        arrays, meta = extract_sdf_mesh(result.model, result.renderer.box, opts.mesh_resolution,
                                        bake=opts.bake_colors, stage=stage, **components)
    else:
        threshold = opts.mesh_threshold or threshold_from_views(result.renderer, result.dataset.train)
        arrays, meta = extract_mesh(result.model, result.renderer.box, opts.mesh_resolution, threshold,
                                    bake=opts.bake_colors, stage=stage, **components)
        meta["surface"]["threshold_from"] = "fixed (task.mesh_threshold)" if opts.mesh_threshold else \
            "median density where training rays through opaque pixels become half opaque"
        meta["surface"]["geometry"] = "density"
    if world_box is not None:
        meta["surface"]["cut_to_box"] = world_box.ravel().tolist()
    if "color_albedo" in arrays:
        meta.setdefault("colormaps", {})["albedo"] = "baked radiance (sRGB)"
    result.report["mesh"] = {"vertices": int(len(arrays["vertices"])), "faces": int(len(arrays["faces"])),
                             **meta["surface"], "timings": meta["timings"]}
    result.report["timings"] = result.run.rounded_timings()
    result.report["seconds"] = result.run.seconds()
    meta.update({"metrics": result.metrics, "timings": {**result.report["timings"], **meta["timings"]},
                 "report": {k: v for k, v in result.report.items() if k not in ("history", "config")}})
    arrays["meta_json"] = encode_meta(meta)
    return arrays


def save_renders(result: NerfResult, folder: Path) -> list[Path]:
    """Test-view renders as PNGs (RGBA over transparency) and one side-by-side sheet: truth over render."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    views = result.dataset.test if result.dataset.test is not None else result.dataset.train
    paths = []
    for i, render in enumerate(result.renders):
        p = folder / f"test_{i:03d}.png"
        Image.fromarray((np.clip(render, 0, 1) * 255).round().astype(np.uint8), "RGBA").save(p)
        paths.append(p)
    if result.renders:
        n = min(len(result.renders), 8)
        truth = np.concatenate([over_background(views.images[i]) for i in range(n)], 1)
        pred = np.concatenate([r[..., :3] for r in result.renders[:n]], 1)
        sheet = (np.clip(np.concatenate([truth, pred], 0), 0, 1) * 255).round().astype(np.uint8)
        p = folder / "test_sheet.png"
        Image.fromarray(sheet, "RGB").save(p)
        paths.append(p)
    return paths


# ----------------------------------------------------------------------------------------- jobs



def _fit_metrics(p: Progress) -> dict[str, float]:
    metrics = dict(p.metrics)
    if "psnr_batch" in p.terms:
        metrics["psnr_train_batch"] = p.terms["psnr_batch"]
    return metrics


def _config_from_job(config: Mapping[str, Any]) -> tuple[RunConfig, str | None]:
    cfg, extras = config_from_job(config, nerf_config, extras=("dataset_dir",))
    dataset_dir = extras["dataset_dir"]
    if dataset_dir is not None and not isinstance(dataset_dir, str):
        raise ConfigError(f"dataset_dir must be a string (a folder path), not {dataset_dir!r}",
                          "Send the dataset folder's path, or the dataset as arrays")
    return cfg, dataset_dir


def _dataset_from_job(dataset_dir: str | None, arrays: Mapping[str, np.ndarray], opts: NerfOptions,
                      progress: Progress | None = None) -> NerfDataset:
    if dataset_dir is not None:
        if arrays:
            raise InputError("the nerf job has both 'dataset_dir' and arrays", "Send one or the other")
        return load_dataset(dataset_dir, opts.image_size, max_frames=opts.max_frames, max_pixels=opts.max_pixels,
                            progress=progress)
    if not arrays:
        raise InputError("the nerf job has no dataset",
                         "Set config 'dataset_dir' (a transforms.json or COLMAP capture folder the server can "
                         "read) or send train_images, train_poses and intrinsics arrays")
    return dataset_from_arrays(arrays, opts.image_size, max_frames=opts.max_frames, max_pixels=opts.max_pixels)


def validate_job(config: dict, arrays: dict[str, np.ndarray]) -> None:
    """Cheap checks before queueing, the same the CLI's loader makes: the config; for a dataset folder
    its files (inside the folder), frames, poses and camera spread, without decoding an image; for
    arrays the whole dataset and its masks."""
    cfg, dataset_dir = _config_from_job(config)
    if dataset_dir is not None:
        if arrays:
            raise InputError("the nerf job has both 'dataset_dir' and arrays", "Send one or the other")
        check_dataset_folder(dataset_dir, cfg.task.max_frames)
        return
    inspect_masks(_dataset_from_job(None, arrays, dataclasses.replace(cfg.task, image_size=0)))  # no resize


def run_job(config: dict, arrays: dict[str, np.ndarray], *, workdir: Path, progress: ProgressFn,
            should_stop: Callable[[], bool]) -> tuple[dict[str, np.ndarray], dict]:
    """One NeRF job (phases: loading, fitting, extracting, attributes); renders go to ``workdir/renders``."""
    cfg, dataset_dir = _config_from_job(config)
    run = TaskRun(progress, should_stop)
    def loaded(done: int, total: int) -> None:  # a cancel lands within one chunk of frames
        run.check_stop()
        run.emit("loading", done, total)

    with run.stage("loading"):
        dataset = _dataset_from_job(dataset_dir, arrays, cfg.task, progress=loaded)
    result = fit_nerf(dataset, cfg, run=run)
    with run.stage("saving renders", timing="renders", emit=False):
        renders = save_renders(result, Path(workdir) / "renders")
    out = mesh_arrays(result)
    report = {k: v for k, v in result.report.items()}
    report["renders"] = [str(p) for p in renders]
    return out, report
