"""Mesh -> NSTR signed distance field -> marching cubes -> mesh with spectral-flow attributes.

Stages (each timed in ``report["timings"]``): sample (feature size, ground truth), fit, extract
(marching cubes, smoothing, floaters dropped: :mod:`nstr.geometry.floaters`), attributes, score
(metrics against the input, :mod:`nstr.geometry.metrics`; off with ``task.metrics=false``). The
report's ``metrics.topology`` lists the input's and the result's components and genus
(:mod:`nstr.geometry.topology`) and the components dropped.

Losses (the PDE term is added by :func:`nstr.train.train`):

* truncated L1 on SDF values: |f - sdf| where |sdf| < band, and the hinge max(0, band - sign(sdf) f)
  beyond it. Like DeepSDF's clamped L1 the fit spends its capacity near the surface, where marching
  cubes looks, and the ground truth only has to be exact inside the band (which makes it cheap, see
  ``nstr.geometry.ground_truth``); unlike clamp(f) - clamp(sdf), a prediction beyond the band on the
  WRONG side still gets a gradient (with the clamped form a hash grid that starts with large outputs
  never moved: no surface at all on Suzanne);
* eikonal (|grad f| - 1)^2 and normal alignment 1 - cos(grad f, n) on a share (``gradient_fraction``)
  of each batch, drawn from the surface samples. ``gradient="fd"`` takes grad f from a 4-point
  tetrahedral finite difference with step ``fd_step`` (Neuralangelo-style): four extra forward points
  per sample and one ordinary backward, so a 1/16 share costs about a quarter more per step, where
  autograd's double backward (``gradient="autograd"``) costs about twice. The finite step also smooths
  the surface at that scale, which is what removes the hash grid's lumps. It is first-order accurate
  only: on those corners k_x k_y = k_z, so it reads grad f + e (H_yz, H_xz, H_xy) with H the Hessian
  (0.004 off on a sphere of radius 0.5 at the default step; ``tests/test_options.py``).

Extraction resolution: ``task.resolution=0`` (the presets) chooses it from the input's thinnest
walls and narrowest gaps (:mod:`nstr.geometry.feature_size`): ``cells_per_feature`` voxels across
the ``feature_quantile`` of the feature widths, within [resolution_min, resolution_max]; any other
value is the user's override. Fine grids are extracted coarse to fine (``sparse_from``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from nstr.config import RunConfig, build_config, option
from nstr.errors import ConfigError, InputError
from nstr.geometry.extraction import extract_surface, resolve_mc
from nstr.geometry.mesh import Mesh, MeshReport, check_mesh_arrays, mesh_from_arrays
from nstr.geometry.metrics import CONVENTION_POINTS
from nstr.geometry.simplify import check_simplify_options
from nstr.spectral.detail import COARSEST_DETAIL, check_detail_range
from nstr.tasks.skeleton import ProgressFn, TaskRun, config_from_job

TASK = "sdf"
STAGES = ("sample", "fit", "extract", "attributes")   # the timed stages whose sum is report["seconds"]


@dataclass
class SDFOptions:
    """What the SDF task needs beyond the field and the training."""

    samples: int = option(500_000, bounds=(1_000, 50_000_000))  # training samples drawn once (cached per mesh)
    surface_fraction: float = option(0.25, bounds=(0, 1))
    near_fraction: float = option(0.5, bounds=(0, 1))
    near_scales: tuple[float, ...] = option((0.005, 0.03), bounds=(1e-06, 1))  # unit box ([-1, 1]^3) noise std, >= 2 scales
    detail_fraction: float = option(0.0, bounds=(0, 1))  # share of surface/near samples drawn by curvature + thinness (sampling.py)
    feature_noise: float = option(0.0, bounds=(0, 100))  # near-noise std capped at this x the local feature width (0: off)
    band: float | None = option(None, bounds=(0, 2), open_ends="low")  # truncation of the SDF loss and of the exact
    #                      ground truth, unit box; None: 0.1, or WHOLE_DISTANCE_BAND for banded NSTR (sdf_config)
    padding: float = option(0.1, bounds=(0, 0.5), open_ends="high")  # the mesh fills [-(1 - padding), 1 - padding]^3
    eikonal_weight: float = option(0.0, bounds=(0, 1_000))
    normal_weight: float = option(0.0, bounds=(0, 1_000))
    gradient: str = option("fd", choices=("fd", "autograd"))  # fd (tetrahedral finite difference, one backward) | autograd (double backward)
    fd_step: float = option(0.004, bounds=(1e-05, 0.5))  # unit box; also the scale the regulariser smooths at
    gradient_fraction: float = option(0.125, bounds=(0, 1), open_ends="low")  # share of each batch (surface samples) that gets gradient losses
    resolution: int = option(0, bounds=(0, 2_048))  # marching-cubes grid points per axis; 0: chosen from the mesh's feature size
    resolution_min: int = option(128, bounds=(16, 2_048))
    resolution_max: int = option(512, bounds=(16, 2_048))
    cells_per_feature: float = option(3.0, bounds=(0.5, 64))  # voxels across the thinnest wall / narrowest gap
    feature_quantile: float = option(0.02, bounds=(0, 0.5))  # "thinnest": this area quantile of the feature widths
    feature_probes: int = option(4000, bounds=(100, 1_000_000))
    mc: str = "auto"  # nstr.geometry.extraction.MC_BACKENDS; auto: torch on CUDA, else skimage
    ground_truth: str = option("auto", choices=("auto", "libigl", "torch"))  # auto (torch on CUDA, libigl on the CPU) | libigl | torch (nstr.geometry.winding_torch)
    sparse_from: int = option(160, bounds=(16, 8_192))  # coarse-to-fine extraction from this resolution on
    smooth_steps: int = option(0, bounds=(0, 1_000))  # Taubin steps on the extracted mesh (nstr.geometry.smoothing; even: shrink-free)
    eval_chunk: int = option(65536, bounds=(1, 2**22))
    attributes: bool = True  # spectral-flow attributes on the vertices (measured for every model)
    metrics: bool = True  # chamfer_l1, normal_consistency, fscore_1pct, iou against the input (nstr.geometry.metrics)
    metric_points: int = option(CONVENTION_POINTS, bounds=(100, 10_000_000))  # surface samples per mesh (exact distances: the count sets only the noise)
    detail_range: tuple[float, ...] = option((), bounds=(0, 1e12))  # detail maps: (shortest, longest) wavelength in input units; (): octaves
    #                                       from 2 voxels to a third of the object (nstr.spectral.detail)
    keep_all_components: bool = False  # keep floaters too (nstr.geometry.floaters: by default each input
    #                                    component keeps the output components that cover it)
    simplify_faces: int = option(0, bounds=(0, 2**31 - 1))  # > 0: also a simplified mesh (lod_* arrays) of at most this many faces (>= 100)
    simplify_error: float = option(0.0, bounds=(0, 1e12))  # > 0: ... or the fewest faces within this surface error, input units


# Presets leave width/depth to each model's own shape (nstr.config.MODEL_SHAPES), so --model swaps
# in a baseline with its usual architecture and --params sizes every model to the same budget.
# Time budgets (2-core CPU, OMP_NUM_THREADS=1; a GPU is much faster):
#   quick: ~40 s for Suzanne (600 steps x 8192; fd normals on 1/16 of each batch; coarse-to-fine
#          extraction at 128..256 from the feature size; 6 Taubin steps on the mesh, 0.1 s, which took
#          Suzanne's normal consistency from 0.967 to 0.971);
#   default: <= 5 min for a 100k-face mesh (1500 steps x 16384, 400k samples; extraction at 192..512 with
#            4 voxels across the thinnest feature: the 133-hole plate, whose smallest holes are 2 voxels wide
#            at 384, scored IoU 0.9836 at 320 (3 voxels per feature), 0.9850 at 384 and 0.9890 at 433;
#            Suzanne scored IoU 0.981 at 384 as at 497; the 2^19 table, against 2^18, took it to 0.988);
#   high: GPU only (10000 steps x 262144).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"field": {"n_freqs": 32, "max_freq": 6.0, "grid_levels": 8, "grid_base_res": 8, "grid_max_res": 192,
                        "grid_features": 2, "grid_table_size": 2**17, "transport_width": 16},
              "train": {"steps": 600, "batch_size": 8192, "lr_final_ratio": 0.05, "log_every": 10},
              "task": {"samples": 200_000, "detail_fraction": 0.3, "feature_noise": 0.5,
                       "eikonal_weight": 0.02, "normal_weight": 0.05, "gradient_fraction": 0.0625,
                       "resolution_max": 256, "smooth_steps": 6}},
    "default": {"field": {"n_freqs": 64, "max_freq": 12.0, "grid_levels": 12, "grid_base_res": 8,
                          "grid_max_res": 512, "grid_table_size": 2**19},
                "train": {"steps": 1500, "batch_size": 16384},
                "task": {"samples": 400_000, "detail_fraction": 0.3, "feature_noise": 0.5, "eikonal_weight": 0.02,
                         "normal_weight": 0.05, "gradient_fraction": 0.0625, "fd_step": 0.0015,
                         "cells_per_feature": 4.0, "resolution_min": 192, "resolution_max": 512}},
    "high": {"field": {"n_freqs": 128, "max_freq": 24.0, "grid_levels": 16, "grid_base_res": 16,
                       "grid_max_res": 2048, "grid_table_size": 2**19, "transport_width": 64},
             "train": {"steps": 10000, "batch_size": 262144},
             "task": {"samples": 4_000_000, "resolution_min": 512, "resolution_max": 1024, "eikonal_weight": 0.02,
                      "normal_weight": 0.02, "fd_step": 0.0015}},
}


TRUNCATED_BAND = 0.1
WHOLE_DISTANCE_BAND = 1.0  # banded NSTR's own: bunny at 84k parameters, IoU 0.970 against 0.956 at 0.1 (stop 52)


def detail_min_freq(padding: float) -> float:
    """Banded NSTR's lowest carrier frequency on an SDF (cycles per unit of the unit box): the coarsest of
    the default detail range, a third of the object (whose largest extent spans ``2 (1 - padding)``).
    Below it the base holds the shape. WHY (issue 28, stop 54; 84k parameters, 16 directions, 300 steps):
    with carriers down to 0.5 cycles per unit the two coarsest octaves held the shape's residual (as much
    power on a smooth sphere as on the rippled one) and the carriers' centroid read the ripple at rho
    0.15-0.53; with the carriers in the detail range only, 0.84-0.92 on the four analytic surfaces, at
    the same accuracy (IoU within 0.001 on all seven meshes; docs/nstr-banded.md, stop 54)."""
    return 1.0 / (COARSEST_DETAIL * 2.0 * (1.0 - padding))


def sdf_config(preset: str = "default", overrides: Mapping[str, Any] | None = None) -> RunConfig:
    cfg = build_config(SDFOptions, PRESETS, preset, overrides)
    if cfg.task.band is None:  # WHY banded fits the whole distance: its carriers are global, and with the loss
        #                        truncated at 0.1 they spend their freedom off the surface (docs/nstr-banded.md)
        banded = cfg.field.model == "nstr" and cfg.field.variant == "banded"
        cfg.task = dataclasses.replace(cfg.task, band=WHOLE_DISTANCE_BAND if banded else TRUNCATED_BAND)
    if cfg.field.min_freq is None and cfg.field.model == "nstr" and cfg.field.variant == "banded":
        cfg.field = dataclasses.replace(cfg.field, min_freq=detail_min_freq(cfg.task.padding))
    check_options(cfg.task)
    return cfg


def check_options(o: SDFOptions) -> None:
    """What one option's bounds and choices cannot say (those are checked with the config: nstr.config.option)."""
    resolve_mc(o.mc)  # a ConfigError naming the choices for an unknown backend
    if o.resolution and o.resolution < 16:
        raise ConfigError(f"task.resolution must be 0 (from the mesh) or between 16 and 2048, not {o.resolution}")
    if o.resolution_min > o.resolution_max:
        raise ConfigError("task.resolution_min and task.resolution_max must satisfy 16 <= min <= max <= 2048")
    if o.surface_fraction + o.near_fraction > 1:
        raise ConfigError("task.surface_fraction + task.near_fraction must be within [0, 1]")
    if len(o.near_scales) < 1:
        raise ConfigError("task.near_scales must be one or more positive noise scales")
    if o.detail_range:
        check_detail_range(o.detail_range)  # empty, inverted, not a pair; finer than the grid: once it is chosen
    if o.smooth_steps % 2:
        raise ConfigError(f"task.smooth_steps must be an even count >= 0, not {o.smooth_steps}",
                          "Use 0 (off) or an even number such as 6: each pair shrinks, then inflates back")
    check_simplify_options(o.simplify_faces, o.simplify_error)


# --- the objective ---------------------------------------------------------------------------
def _objective(samples: Any, opts: SDFOptions, device: Any, batch_size: int, holdout: tuple[np.ndarray, np.ndarray]):
    import torch

    from nstr.train import Objective

    class SDFObjective(Objective):
        """Clamped L1 on SDF values (+ eikonal and normal alignment on surface samples)."""

        def __init__(self) -> None:
            self.points = torch.as_tensor(samples.points, device=device)
            self.sdf = torch.as_tensor(samples.sdf, device=device)
            self.normals = torch.as_tensor(samples.normals, device=device)
            self.n_surface = samples.n_surface
            self.hold_x = torch.as_tensor(holdout[0], dtype=torch.float32, device=device)
            self.hold_inside = torch.as_tensor(holdout[1], device=device)
            self.use_grad = (opts.eikonal_weight > 0 or opts.normal_weight > 0) and self.n_surface > 0
            self.tetra = torch.tensor([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], dtype=torch.float32,
                                      device=device)

        def sample(self, step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
            n = len(self.points)
            idx = torch.randint(0, n, (batch_size,), generator=gen, device=gen.device).to(self.points.device)
            batch = {"x": self.points[idx], "sdf": self.sdf[idx]}
            if self.use_grad:
                m = max(1, int(batch_size * opts.gradient_fraction))
                sidx = torch.randint(0, self.n_surface, (m,), generator=gen, device=gen.device).to(self.points.device)
                batch["xs"], batch["ns"] = self.points[sidx], self.normals[sidx]
            return batch

        def loss(self, field: Any, batch: dict[str, torch.Tensor], pde_fraction: float):
            with field.one_evaluation():  # the values and the finite-difference gradient: one parameter state
                return self._loss(field, batch, pde_fraction)

        def _loss(self, field: Any, batch: dict[str, torch.Tensor], pde_fraction: float):
            y, terms = field.training_terms(batch["x"], pde_fraction)
            b = opts.band
            pred, target = y[:, 0].float(), batch["sdf"]
            far = target.abs() >= b * (1 - 1e-6)  # ground truth says only "at least band, on this side"
            err = torch.where(far, torch.relu(b - torch.sign(target) * pred), (pred - target).abs())
            sdf_l1 = err.mean() / b
            total = sdf_l1
            terms = dict(terms)
            terms["sdf_l1"] = sdf_l1.detach()
            if self.use_grad:
                g = self.gradient(field, batch["xs"])
                if opts.eikonal_weight > 0:
                    eik = (g.norm(dim=-1) - 1.0).pow(2).mean()
                    total = total + opts.eikonal_weight * eik
                    terms["eikonal"] = eik.detach()
                if opts.normal_weight > 0:
                    cos = torch.nn.functional.cosine_similarity(g, batch["ns"], dim=-1)
                    nrm = (1.0 - cos).mean()
                    total = total + opts.normal_weight * nrm
                    terms["normal"] = nrm.detach()
            return total, terms

        def gradient(self, field: Any, xs: torch.Tensor) -> torch.Tensor:
            if opts.gradient == "autograd":
                xs = xs.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(field(xs)[:, 0].sum(), xs, create_graph=True)
                return g.float()
            # tetrahedral finite difference: grad ~ sum_i k_i f(x + e k_i) / (4 e), k_i the cube's
            # alternate corners; one batched forward of 4m points, ordinary backward
            e = opts.fd_step
            y = field((xs[None] + e * self.tetra[:, None]).reshape(-1, 3))[:, 0].float().reshape(4, -1)
            return torch.einsum("kn,kd->nd", y, self.tetra) / (4 * e)

        def evaluate(self, field: Any) -> dict[str, float]:
            """Share of held-out points (uniform + near surface) on the right side of the surface."""
            pred = torch.cat([field(self.hold_x[s:s + opts.eval_chunk])[:, 0] for s in
                              range(0, len(self.hold_x), opts.eval_chunk)])
            return {"sign_accuracy": float(((pred < 0) == self.hold_inside).float().mean())}

    return SDFObjective()


# --- the pipeline ----------------------------------------------------------------------------
@dataclass
class SDFResult:
    arrays: dict[str, np.ndarray]  # architecture.md's mesh-result table (vertices in input coordinates)
    report: dict[str, Any]
    field: Any


@dataclass
class Prepared:
    """What the sample stage hands on: the unit-box mesh, its ground truth and samples, the feature
    size and the extraction resolution chosen from it."""

    transform: Any
    unit: Mesh
    gt: Any
    samples: Any
    holdout: tuple[np.ndarray, np.ndarray]
    resolution: int
    resolution_info: dict[str, Any]
    solid: dict[str, Any] | None = None   # set where the input's parts intersect: ``unit`` is then the solid's surface


def choose_resolution(opts: SDFOptions, feature_width: float) -> tuple[int, dict[str, Any]]:
    """The extraction resolution and why: the user's ``task.resolution`` when set, else from the feature size."""
    from nstr.geometry.feature_size import resolution_for

    auto = resolution_for(feature_width, cells_per_feature=opts.cells_per_feature,
                          minimum=opts.resolution_min, maximum=opts.resolution_max)
    info = {"feature_width_unit": None if not np.isfinite(feature_width) else round(float(feature_width), 5),
            "feature_quantile": opts.feature_quantile, "cells_per_feature": opts.cells_per_feature,
            "auto": auto, "source": "user" if opts.resolution else "feature size"}
    return (opts.resolution or auto), info


def surface_cells(unit: Mesh, resolution: int) -> float:
    """The unit-box surface's area in cells of the extraction grid: about the extracted vertex count."""
    from nstr.geometry.mesh import face_area2

    return float(face_area2(unit.vertices, unit.faces).sum() / 2.0 / (2.0 / (resolution - 1)) ** 2)


def _sample_stage(mesh: Mesh, opts: SDFOptions, seed: int, closed: bool, cache_dir: Path | None,
                  device: Any) -> Prepared:
    from nstr.geometry.feature_size import face_widths, feature_size
    from nstr.geometry.normalize import fit_unit_box
    from nstr.geometry.sampling import SamplingSpec, default_cache_dir, sample_sdf
    from nstr.geometry.solid import solid_surface
    from nstr.geometry.winding_torch import ground_truth_for

    transform = fit_unit_box(mesh.vertices, opts.padding)
    unit = Mesh(transform.to_unit(mesh.vertices), mesh.faces)
    # parts that intersect: the solid's surface, their buried pieces dropped (an open one keeps the
    # whole input's winding number for its sign)
    surface, solid = solid_surface(unit)
    sign_from = None if solid is None or (closed and solid["watertight"]) else (unit.vertices, unit.faces)
    unit = surface
    gt = ground_truth_for(unit.vertices, unit.faces, closed and sign_from is None, device, opts.ground_truth,
                          sign_from=sign_from)
    fs = feature_size(unit, gt, n_points=opts.feature_probes, seed=seed)
    resolution, info = choose_resolution(opts, fs.quantile(opts.feature_quantile))
    if opts.detail_range:  # before the fit: a range finer than the grid would only read noise
        check_detail_range(opts.detail_range, 2.0 / (resolution - 1) * transform.scale)
    info["median_edge_unit"] = round(fs.median_edge, 5)
    spec = SamplingSpec(n_samples=opts.samples, surface_fraction=opts.surface_fraction,
                        near_fraction=opts.near_fraction, near_scales=tuple(opts.near_scales), band=opts.band,
                        seed=seed, detail_fraction=opts.detail_fraction, feature_noise=opts.feature_noise)
    widths = face_widths(unit, fs) if (opts.detail_fraction > 0 or opts.feature_noise > 0) else None
    samples = sample_sdf(unit, spec, gt, cache_dir=cache_dir if cache_dir is not None else default_cache_dir(),
                         face_width=widths)
    rng = np.random.default_rng(seed + 1)
    hold = np.concatenate([rng.uniform(-1, 1, (5000, 3)),
                           samples.points[rng.integers(0, len(samples.points), 5000)] + rng.normal(0, 0.01, (5000, 3))])
    return Prepared(transform, unit, gt, samples, (hold.astype(np.float32), gt.inside(hold)), resolution, info, solid)


def _extract_stage(field: Any, prep: Prepared, opts: SDFOptions, device: Any) -> Any:
    """Marching cubes of the field, on its device, intersected with the input's bounding box."""
    import torch

    # Nothing of the input lies outside its bounding box, so the solid is intersected with that box
    # (grown by 2% of the unit box): max(f, box_sdf). This only removes spurious shells that an
    # under-fitted field leaves in the empty corners of the cube, never a part of the real surface.
    box_lo, box_hi = prep.unit.vertices.min(0) - 0.02, prep.unit.vertices.max(0) + 0.02
    box_c = torch.as_tensor((box_lo + box_hi) / 2, dtype=torch.float32, device=device)
    box_h = torch.as_tensor((box_hi - box_lo) / 2, dtype=torch.float32, device=device)

    def sdf_fn(x: torch.Tensor) -> torch.Tensor:
        q = (x - box_c).abs() - box_h
        box = q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)
        return torch.maximum(field(x)[:, 0].float(), box)

    # blocks of 4 cells, refined where a corner is within one block diagonal of the surface: the field
    # is a near-SDF there (|grad f| ~ 1), so that shell holds every crossing
    ext = extract_surface(sdf_fn, prep.resolution, mc=opts.mc, sparse_from=opts.sparse_from, chunk=opts.eval_chunk,
                          block=4, lipschitz=1.0, device=device)
    if len(ext.faces) == 0:
        raise InputError("the fitted field has no surface at this resolution (marching cubes found nothing)",
                         "Use more steps or a higher resolution, or check that the mesh encloses a volume")
    return ext


def extract_result_surface(field: Any, prep: Prepared, opts: SDFOptions, device: Any, seed: int
                           ) -> tuple[Any, dict[str, Any]]:
    """The result's surface as every fit makes it (unit box): marching cubes, Taubin smoothing, floaters
    dropped. ``field``: the fitted field, or the input's exact SDF (``scripts/bench_sdf.py reference``:
    the topology a fit can reach at its grid)."""
    from nstr.geometry.floaters import drop_floaters
    from nstr.geometry.smoothing import taubin_smooth

    ext = _extract_stage(field, prep, opts, device)
    ext.vertices = taubin_smooth(ext.vertices, ext.faces, opts.smooth_steps)
    ext.vertices, ext.faces, floaters = drop_floaters(ext.vertices, ext.faces, keep_all=opts.keep_all_components,
                                                      reference=(prep.unit.vertices, prep.unit.faces), seed=seed)
    return ext, floaters


def exact_sdf_field(gt: Any) -> Callable[[Any], Any]:
    """The ground truth ``gt`` (:class:`~nstr.geometry.ground_truth.MeshSDF`) as a field: torch points (N, 3)
    in, (N, 1) float32 out, for :func:`extract_result_surface` (what a perfect fit would give)."""
    import torch

    def field(x: Any) -> Any:
        return torch.as_tensor(gt.signed_distance(x.double().cpu().numpy()), dtype=torch.float32)[:, None]

    return field


def _simplify_stage(vertices_input: np.ndarray, faces: np.ndarray, opts: SDFOptions, vertices_dtype: Any
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The simplified mesh as ``lod_*`` arrays and its report; a budget above the dense count (known only
    now) or a mesh edge collapses cannot take is refused here with its one-line message in the report,
    and the dense result is kept."""
    from nstr.errors import NSTRError
    from nstr.geometry.simplify import simplify

    target = ({"faces": opts.simplify_faces} if opts.simplify_faces else {"max_error": opts.simplify_error})
    try:
        lod = simplify(vertices_input, faces, face_budget=opts.simplify_faces, max_error=opts.simplify_error)
    except NSTRError as err:
        return {"target": target, "refused": str(err)}, {}
    report = {"target": target, **lod.report(), "method": "quadric edge collapses (fast-simplification to 2x the budget, then libigl's qslim) + least-squares refit to the dense vertices; attributes from the nearest dense vertex",
              "error_units": "input length"}
    if opts.simplify_faces and len(lod.faces) > opts.simplify_faces:
        # QSlim stops where every further collapse would change the topology (a small handle, a thin part)
        report["note"] = (f"stopped at {len(lod.faces)} faces, above the budget of {opts.simplify_faces}: every "
                          "further edge collapse would have changed the mesh's topology")
    # float32 unless the dense vertices needed float64 (far from the origin for their size, as above)
    return report, {"lod_vertices": lod.vertices.astype(vertices_dtype), "lod_faces": lod.faces.astype(np.int32),
                    "lod_source": lod.source.astype(np.int32)}


def fit_sdf(mesh: Mesh, cfg: RunConfig, *, mesh_report: MeshReport | None = None,
            progress: Callable[[dict[str, Any]], None] | None = None, should_stop: Callable[[], bool] | None = None,
            cache_dir: Path | None = None, checkpoint: Path | None = None,
            on_train_progress: Callable[[Any], None] | None = None) -> SDFResult:
    """Fit ``cfg``'s field to the mesh's SDF and return the extracted mesh (input coordinates) + report."""
    from nstr.device import resolve_device, seed_everything
    from nstr.fields import build_field
    from nstr.geometry.attributes import spectral_attributes
    from nstr.geometry.export import encode_meta
    from nstr.geometry.metrics import mesh_metrics
    from nstr.geometry.topology import topology

    opts: SDFOptions = cfg.task
    check_options(opts)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    run = TaskRun(progress, should_stop, on_train_progress)
    closed = bool(mesh_report and mesh_report.watertight)

    with run.stage("sampling", timing="sample"):
        prep = _sample_stage(mesh, opts, cfg.train.seed, closed, cache_dir, device)
    # the size of the stages after the fit, for the server's ETA: the surface's area in grid cells (the
    # vertices to extract, colour, simplify and score)
    run.emit("sampling", 1, 1, metrics={"surface_cells": surface_cells(prep.unit, prep.resolution)})
    field = build_field(cfg.field, in_dim=3, out_dim=1)
    objective = _objective(prep.samples, opts, device, cfg.train.batch_size, prep.holdout)
    # what the loss asks of the field: the distance, and "at least the band" beyond it
    field.init_from_samples(objective.points, objective.sdf.clamp(-opts.band, opts.band).unsqueeze(1))
    final = run.fit(field, objective, cfg.train, device=device, checkpoint=checkpoint)
    run.timings["fit"] = run.timings.pop("fitting")
    field.eval()
    with run.stage("extracting", timing="extract"):
        ext, floaters = extract_result_surface(field, prep, opts, device, cfg.train.seed)
    vertices_input = prep.transform.to_input(ext.vertices)
    # float32 keeps ~7 digits: a mesh far from the origin for its size (a unit sphere at x = 1e7) would
    # collapse to a few distinct coordinates, so such meshes keep float64 (architecture.md)
    extent = float(np.ptp(vertices_input, axis=0).max()) if len(vertices_input) else 0.0
    far = extent > 0 and float(np.abs(vertices_input).max()) > 100 * extent
    arrays: dict[str, np.ndarray] = {"vertices": vertices_input.astype(np.float64 if far else np.float32),
                                     "faces": ext.faces.astype(np.int32)}
    meta: dict[str, Any] = {}
    with run.stage("attributes", emit=bool(opts.attributes)):
        if opts.attributes:  # every model gets the detail maps; NSTR its internal readout too
            attrs, meta = spectral_attributes(field, ext.vertices, ext.faces, prep.transform.scale,
                                              chunk=opts.eval_chunk, voxel=2.0 / (prep.resolution - 1),
                                              detail_range=opts.detail_range,
                                              reference=prep.gt)
            arrays.update(attrs)
    simplified: dict[str, Any] | None = None
    if opts.simplify_faces or opts.simplify_error:
        with run.stage("simplifying", timing="simplify"):
            simplified, lod = _simplify_stage(vertices_input, ext.faces, opts, arrays["vertices"].dtype)
            arrays.update(lod)
    metrics: dict[str, Any] = {"sign_accuracy": final.metrics.get("sign_accuracy")}
    # scored against the surface an SDF can have: where the input's parts intersect, their union's boundary
    # (the buried triangles bound nothing; no fit can, or should, put a surface there)
    target = mesh if prep.solid is None else Mesh(prep.transform.to_input(prep.unit.vertices), prep.unit.faces)
    with run.stage("score", emit=False):
        if opts.metrics:
            metrics.update(mesh_metrics(Mesh(vertices_input, ext.faces), target, n_points=opts.metric_points,
                                        seed=cfg.train.seed))
            metrics["reference"] = "the input" if target is mesh else "the solid's surface (the input's parts intersect)"
            if "lod_faces" in arrays:  # the simplified mesh against the input, by the same scores
                lod_scores = mesh_metrics(Mesh(arrays["lod_vertices"].astype(np.float64), arrays["lod_faces"]), target,
                                          n_points=opts.metric_points, seed=cfg.train.seed, iou=False,
                                          self_score=False)
                simplified["metrics"] = {k: lod_scores[k] for k in ("chamfer_l1", "normal_consistency",
                                                                    "fscore_1pct")}
        metrics["topology"] = {"input": topology(mesh.faces, mesh.vertices),
                               "output": topology(ext.faces, vertices_input), "floaters": floaters}
        if target is not mesh:   # the count a fit can reach: the solid's (Suzanne's eyes merge with her head)
            metrics["topology"]["solid"] = topology(target.faces, target.vertices)
    report: dict[str, Any] = run.report(TASK, cfg, field, final, device, metrics,
                                        seconds=sum(run.timings.get(k, 0.0) for k in (*STAGES, "simplify")))
    timings = report["timings"]      # the stages', and two parts of extracting
    timings["extract_eval"], timings["extract_mc"] = round(ext.seconds_eval, 3), round(ext.seconds_mc, 3)
    report.update({
        "mesh": mesh_report.to_dict() if mesh_report else None,
        "transform": prep.transform.to_dict(),
        "samples": {"count": int(len(prep.samples.points)), "from_cache": prep.samples.from_cache,
                    "seconds": round(prep.samples.seconds, 3),
                    "ground_truth": prep.gt.backend, "sign": prep.gt.sign_rule(), "solid": prep.solid},
        "extraction": {"resolution": prep.resolution, "resolution_choice": prep.resolution_info, "mc": ext.mc,
                       "mode": ext.mode, "smooth_steps": opts.smooth_steps,
                       "evaluated_points": ext.evaluated_points, "vertices": int(len(ext.vertices)),
                       "faces": int(len(ext.faces)), **ext.info},
    })
    if simplified is not None:
        report["simplified"] = simplified
    if field.is_spectral:
        report["spectral"] = {"pde_relative": final.terms.get("pde_relative"), "pde_rms": final.terms.get("pde_rms")}
    meta.update({"metrics": metrics, "timings": timings, "report": {k: v for k, v in report.items() if k != "history"}})
    arrays["meta_json"] = encode_meta(meta)
    return SDFResult(arrays=arrays, report=report, field=field)


# --- the job interface (architecture.md) ------------------------------------------------------
def _config_from_job(config: Mapping[str, Any]) -> RunConfig:
    return config_from_job(config, sdf_config)[0]


def _mesh_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    missing = [k for k in ("vertices", "faces") if k not in arrays]
    if missing:
        raise InputError(f"the sdf job needs arrays 'vertices' and 'faces' (missing: {', '.join(missing)})",
                         "Send vertices (V, 3) float32 and faces (F, 3) int32")
    return arrays["vertices"], arrays["faces"]


def _mesh_from_job(arrays: Mapping[str, np.ndarray]) -> tuple[Mesh, MeshReport]:
    return mesh_from_arrays(*_mesh_arrays(arrays), source="the job's arrays")


def validate_job(config: dict, arrays: dict[str, np.ndarray]) -> None:
    """Cheap checks before queueing: config keys/types, and the mesh's shapes, numbers and indices
    (in chunks, on the memory-mapped upload; welding and the watertight check wait for the job)."""
    _config_from_job(config)
    check_mesh_arrays(*_mesh_arrays(arrays), source="the job's arrays")


def run_job(config: dict, arrays: dict[str, np.ndarray], *, workdir: Path, progress: ProgressFn,
            should_stop: Callable[[], bool]) -> tuple[dict[str, np.ndarray], dict]:
    """Run one SDF job (phases: sampling, fitting, extracting, attributes); raises Cancelled when stopped."""
    cfg = _config_from_job(config)
    mesh, mesh_report = _mesh_from_job(arrays)
    result = fit_sdf(mesh, cfg, mesh_report=mesh_report, progress=progress, should_stop=should_stop)
    return result.arrays, result.report
