"""What a job must pass before it is queued: arrays the task takes, paths inside the data roots,
a device this server has, and an estimated memory that fits in what the device has free.

Each refusal is an :class:`~nstr.errors.NSTRError`, so the client gets a 400 naming the problem and
the fix. Bounds on single config values live beside each option (:func:`nstr.config.option`); this
module checks what needs the server: its file system, its device and its free memory.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from nstr.errors import ConfigError, DeviceError, InputError
from nstr.remote.wire import Array

# The arrays each job task takes; anything else in an upload is refused, not stored.
JOB_ARRAYS: dict[str, frozenset[str]] = {
    "sdf": frozenset({"vertices", "faces"}),
    "nerf": frozenset({"train_images", "train_poses", "intrinsics", "test_images", "test_poses", "aabb", "train_valid",
                       "test_valid"}),
}
GIB = 2**30


class DataRoots:
    """The folders whose datasets clients may name (``nstr serve --data-root DIR``, repeatable).

    A path is resolved fully (``~``, ``..``, symlinks) before it is compared, and every path
    outside the roots gets the same answer whether or not it exists: the server is no oracle
    for its file system."""

    def __init__(self, roots: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.roots = [Path(os.path.expanduser(str(r))).resolve() for r in roots]

    def confine(self, path: Any, what: str = "dataset_dir") -> Path:
        if not isinstance(path, str) or not path or "\0" in path:
            raise ConfigError(f"{what} must be a folder path (a non-empty string)",
                              "Send the dataset folder's path, or the dataset as arrays")
        if not self.roots:
            raise InputError(f"this server takes no {what}: it was started without --data-root",
                             "Send the dataset as arrays (the add-on does), or restart the server with "
                             "--data-root DIR and put the dataset under DIR")
        given = Path(os.path.expanduser(path))  # '~' is the server's home: outside the roots unless a root is there
        if not given.is_absolute():  # relative paths are taken inside the first root, never the cwd
            given = self.roots[0] / given
        resolved = given.resolve()  # symlinks and '..' resolved before comparing
        for root in self.roots:
            if resolved == root or root in resolved.parents:
                return resolved
        raise InputError(f"{what} '{path}' is not inside a data root of this server",
                         "Put the dataset under one of the folders given with --data-root: "
                         + ", ".join(str(r) for r in self.roots))


class Admission:
    def __init__(self, device: Any, data_roots: DataRoots | None = None) -> None:
        self.device = device
        self.data_roots = data_roots or DataRoots()

    def admit(self, task: str, module: Any, config: dict[str, Any], run_config: dict[str, Any],
              arrays: Mapping[str, Array]) -> dict[str, Any]:
        """Check a submission; returns the config to store (with ``dataset_dir`` fully resolved).
        ``run_config`` is ``config`` with the server's device filled in, as the job will run."""
        allowed = JOB_ARRAYS.get(task)
        extra = sorted(set(arrays) - allowed) if allowed is not None else []
        if extra:
            raise InputError(f"the {task} job does not take the array(s) {', '.join(extra)}",
                             f"Send only: {', '.join(sorted(allowed or ()))}")
        stored = dict(config)
        if "dataset_dir" in run_config:
            resolved = str(self.data_roots.confine(run_config["dataset_dir"]))
            stored["dataset_dir"] = resolved
            run_config = {**run_config, "dataset_dir": resolved}
        from nstr.job import check_finite, numpy_views

        numpy_arrays = numpy_views(arrays)
        module.validate_job(run_config, numpy_arrays)  # first: the task's messages are the CLI's
        check_finite(numpy_arrays)
        cfg = resolved_config(module, run_config)
        if cfg is not None:
            device = self._device(cfg.train.device)
            need = estimate_bytes(task, cfg, numpy_arrays)
            free = free_bytes(device)
            if free is not None and need > free:
                raise ConfigError(
                    f"the job needs about {need / GIB:.1f} GiB of {device.type} memory (estimate) but the device "
                    f"has {free / GIB:.1f} GiB free",
                    "Lower task.resolution / task.samples / train.batch_size (or task.image_size), use the "
                    "quick preset, or free memory (release GPU, close other programs)")
        return stored

    def _device(self, name: str) -> Any:
        from nstr.device import resolve_device

        if name == "auto":
            return self.device
        try:
            return resolve_device(name)
        except DeviceError as err:
            raise DeviceError(f"{err.problem} on this server (device: {self.device})",
                              "Leave the device unset (the server's own), or use 'cpu'") from None


def resolved_config(module: Any, config: Mapping[str, Any]) -> Any:
    """The task's full RunConfig for a job config (tasks build it in ``_config_from_job``), read only.
    Cached by the config's JSON: a burst of submits mostly repeats one config, and building it is a
    fair share of a submit's time."""
    try:
        key = json.dumps(config, sort_keys=True)
    except (TypeError, ValueError):
        return _build_config(module, config)
    return _cached_config(module.__name__, key)


@functools.lru_cache(maxsize=64)
def _cached_config(module_name: str, key: str) -> Any:
    return _build_config(sys.modules[module_name], json.loads(key))


def _build_config(module: Any, config: Mapping[str, Any]) -> Any:
    build = getattr(module, "_config_from_job", None)
    if build is None:
        return None
    out = build(config)
    return out[0] if isinstance(out, tuple) else out


def estimate_bytes(task: str, cfg: Any, arrays: Mapping[str, Any]) -> int:
    """A deliberately rough upper estimate of a job's peak memory: the big buffers each stage holds.
    It exists to refuse jobs that cannot fit (a 2048^3 dense grid), not to predict close calls."""
    f, t, o = cfg.field, cfg.train, cfg.task
    width = f.width or 256
    depth = (f.depth if f.depth is not None else 3) + 2
    per_point = 4 * (4 * f.n_freqs + 2 * f.grid_levels * f.grid_features + width * depth)  # activations, fp32
    inputs = sum(int(getattr(a, "nbytes", 0)) for a in arrays.values()) * 3  # float64 copies while validating
    grid = 4 * f.grid_levels * min(f.grid_table_size, (f.grid_max_res or 512) ** 3) * f.grid_features * 4  # + Adam
    total = inputs + grid
    if task == "sdf":
        total += 56 * o.samples  # points, sdf, normals as numpy and torch
        total += 3 * per_point * t.batch_size  # forward, backward, Jacobian
        res = o.resolution or o.resolution_max  # 0: chosen from the mesh, at most resolution_max
        dense = res < o.sparse_from
        total += 8 * res**3 if dense else 8 * 64 * res**2  # the value grid (dense) or its narrow band (sparse)
        total += 4 * 3 * 8 * o.metric_points
    elif task == "nerf":
        size = o.image_size or 800
        n_views = max(1, int(getattr(arrays.get("train_images"), "shape", (100,))[0]))
        total += n_views * size * size * 4 * 4 * 2  # RGBA float32 views and their rays
        total += 3 * per_point * t.batch_size * (o.render_steps + o.n_importance)
        total += 4 * o.grid_resolution**3 + 16 * o.mesh_resolution**3
    return int(total)


def free_bytes(device: Any) -> int | None:
    """Free memory of the device: CUDA's own figure, or the kernel's MemAvailable for the CPU."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
