"""One job, wherever it runs: what it is (:class:`JobSpec`) and how its task runs (:func:`run_job_spec`).

The server's local and Ray engines and the batch command's local and Ray engines all hand a
:class:`JobSpec` to :func:`run_job_spec`, so a job reads its input, finds its task, is checked and
fitted by exactly the same code in all four. What differs stays with the engine: the server's
progress events, cancel and saved result (:func:`nstr.server.engine.execute`), the batch's outputs
and summary. A failed job is described by :func:`nstr.job_failure.describe_failure` everywhere.

A spec is plain data, so it crosses to a Ray worker on another machine: its input is a mesh FILE's
bytes (:class:`MeshFile`), the task's arrays, or an input file in the job's folder, which only a
process that sees that folder can read (:func:`portable` turns such a spec into one that travels).
"""

from __future__ import annotations

import dataclasses
import importlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from nstr.chunked import row_chunks
from nstr.errors import ConfigError, InputError
from nstr.remote import wire

if TYPE_CHECKING:
    from nstr.tasks.skeleton import ProgressFn


@dataclass(frozen=True)
class MeshFile:
    """A mesh file in transit: its name (for the suffix and messages) and its bytes. Bytes, not a path:
    cluster nodes need not share a file system, and a file that is no mesh fails inside its own job."""

    name: str
    data: bytes


JobInputs = MeshFile | Mapping[str, np.ndarray] | Path  # a Path: a wire-format file (the server's input.nstr)


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to run one job's task; plain data, so it can cross a process boundary.

    ``validated``: the task's ``validate_job`` passed already (the server's admission runs it at submit),
    so the run skips it; for a NeRF dataset sent as arrays it is a full-size float copy of the images."""

    id: str  # the server's job id, or the batch's output name (the input's stem)
    task: str  # a key of nstr.tasks.JOB_TASKS
    config: dict[str, Any]  # the task's job config (the server's has its device filled in)
    inputs: JobInputs
    folder: Path | None = None  # the job's folder: its work folder, where the server saves the result; None: a temp one
    min_free: int = 0  # bytes the saved result must leave free on the folder's disk (nstr serve --min-free-mb)
    threads: int | None = None  # torch threads inside the job (its share of the CPUs); None: leave them
    validated: bool = False


def task_module(task: Any) -> ModuleType:
    """The module that runs ``task`` (from ``nstr.tasks.JOB_TASKS``), with the job interface checked.
    The one lookup: the server's registry imports through it, and a Ray worker has nothing else."""
    from nstr.tasks import JOB_TASKS

    if not isinstance(task, str) or task not in JOB_TASKS:
        raise ConfigError(f"unknown task {task!r}", "Known tasks: " + ", ".join(JOB_TASKS))
    module = importlib.import_module(JOB_TASKS[task])
    for fn in ("validate_job", "run_job"):
        if not callable(getattr(module, fn, None)):
            raise ImportError(f"{JOB_TASKS[task]} has no {fn}()")
    return module


def run_job_spec(spec: JobSpec, *, progress: ProgressFn, should_stop: Callable[[], bool]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run the job's task: its inputs read, checked (``validate_job`` unless ``spec.validated``, then
    finite floats), and ``run_job`` in the job's folder or a temp one. Returns (result arrays, report);
    raises what the task raises (the caller describes it with ``describe_failure``)."""
    if spec.threads:
        import torch

        torch.set_num_threads(max(1, int(spec.threads)))
    module = task_module(spec.task)
    arrays, notes = read_inputs(spec.inputs)
    if not spec.validated:
        module.validate_job(spec.config, arrays)  # first: the task's messages name the problem best
    check_finite(arrays)
    if spec.folder is not None:
        result, report = module.run_job(spec.config, arrays, workdir=spec.folder, progress=progress,
                                        should_stop=should_stop)
    else:
        with tempfile.TemporaryDirectory(prefix="nstr-job-") as workdir:
            result, report = module.run_job(spec.config, arrays, workdir=Path(workdir), progress=progress,
                                            should_stop=should_stop)
    if notes:
        report = {**report, "notes": notes}
    return result, report


def portable(spec: JobSpec) -> JobSpec:
    """The spec as a worker on another machine needs it: an input file read here into arrays, and no
    folder (it works in a temp folder; whoever holds the folder saves the result there)."""
    inputs = _wire_arrays(spec.inputs) if isinstance(spec.inputs, Path) else spec.inputs
    return dataclasses.replace(spec, inputs=inputs, folder=None)


def read_inputs(inputs: JobInputs) -> tuple[dict[str, np.ndarray], list[str]]:
    """The task's arrays and the loader's notes: a mesh file parsed by the loader of ``nstr fit sdf``
    (its checks and messages), a wire file as views on its (memory-mapped) bytes, arrays as they are."""
    if isinstance(inputs, MeshFile):
        return arrays_from_mesh_file(inputs)
    if isinstance(inputs, Path):
        return _wire_arrays(inputs), []
    return dict(inputs), []


def _wire_arrays(path: Path) -> dict[str, np.ndarray]:
    return numpy_views(wire.read_file(path)[1])


def arrays_from_mesh_file(mesh: MeshFile) -> tuple[dict[str, np.ndarray], list[str]]:
    """Parse the bytes with the same loader as ``nstr fit sdf``; returns the arrays and its warnings."""
    from nstr.geometry.mesh import load_mesh

    with tempfile.TemporaryDirectory(prefix="nstr-mesh-") as tmp:
        path = Path(tmp) / Path(mesh.name).name
        path.write_bytes(mesh.data)
        loaded, report = load_mesh(path)
    return {"vertices": loaded.vertices, "faces": loaded.faces}, list(report.warnings)


def numpy_views(arrays: Mapping[str, wire.Array]) -> dict[str, np.ndarray]:
    """Wire arrays as numpy views on their bytes (no copies; memory-mapped for an upload)."""
    return {name: arr.to_numpy() for name, arr in arrays.items()}


def check_finite(arrays: Mapping[str, np.ndarray]) -> None:
    """The check every task needs, after the task's own (which name the problem better): finite floats.
    In chunks, so a memory-mapped upload's resident memory stays flat."""
    for name, a in arrays.items():
        if a.dtype.kind != "f" or not a.size:
            continue
        flat = a.reshape(-1)
        bad = sum(int(np.count_nonzero(~np.isfinite(part))) for _, part in row_chunks(flat, 1 << 20))
        if bad:
            raise InputError(f"array '{name}' contains {bad} NaN or infinite value(s)",
                             "Clean the mesh (e.g. Mesh > Clean Up in Blender) and resubmit")
