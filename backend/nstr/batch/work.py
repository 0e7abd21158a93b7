"""What one batch job does, wherever it runs (this process or a Ray worker on another machine).

A job carries the mesh FILE's bytes, not a path: cluster nodes need not share a filesystem, and a
file that cannot be read as a mesh fails inside its own job, with the loader's message, like any
other fit that raises. The fit itself is the task's public job interface (``validate_job`` /
``run_job`` in ``backend/docs/architecture.md``), so batch and server run exactly the same code.
"""

from __future__ import annotations

import importlib
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nstr.tasks.skeleton import ProgressFn


@dataclass(frozen=True)
class MeshFile:
    """A mesh file in transit: its name (for the suffix and messages) and its bytes."""

    name: str
    data: bytes


@dataclass
class JobSpec:
    """One fit: the task (``sdf``), its job config and its input (a mesh file or the task's arrays)."""

    key: str
    task: str
    config: dict[str, Any]
    inputs: MeshFile | dict[str, np.ndarray]
    threads: int | None = None  # torch threads inside the job (its share of the CPUs)
    meta: dict[str, Any] = field(default_factory=dict)


def worker_info() -> dict[str, Any]:
    """Where this job runs: host, pid and (on Ray) the node id, for the summary's node column."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "node": socket.gethostname()}
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            node_id = ctx.get_node_id()
            info["node_id"] = node_id
            worker = getattr(ray, "_private").worker.global_worker  # the node's own address, not the host's
            ip = getattr(worker, "node_ip_address", None) or ray.util.get_node_ip_address()
            info["node"] = f"{ip}/{node_id[:8]}"
    except ImportError:
        pass
    return info


def arrays_from_mesh_file(mesh: MeshFile) -> tuple[dict[str, np.ndarray], list[str]]:
    """Parse the bytes with the same loader as ``nstr fit sdf`` (its checks and messages)."""
    from nstr.geometry.mesh import load_mesh

    with tempfile.TemporaryDirectory(prefix="nstr-batch-") as tmp:
        path = Path(tmp) / Path(mesh.name).name
        path.write_bytes(mesh.data)
        loaded, report = load_mesh(path)
    return {"vertices": loaded.vertices, "faces": loaded.faces}, list(report.warnings)


def execute(spec: JobSpec, *, progress: ProgressFn, should_stop: Callable[[], bool]) -> tuple[dict[str, np.ndarray], dict]:
    """Run the job; returns (result arrays, report). Raises what the task raises."""
    from nstr.tasks import JOB_TASKS

    if spec.threads:
        import torch

        torch.set_num_threads(max(1, int(spec.threads)))
    module = importlib.import_module(JOB_TASKS[spec.task])
    notes: list[str] = []
    if isinstance(spec.inputs, MeshFile):
        arrays, notes = arrays_from_mesh_file(spec.inputs)
    else:
        arrays = dict(spec.inputs)
    module.validate_job(spec.config, arrays)
    with tempfile.TemporaryDirectory(prefix="nstr-job-") as workdir:
        result, report = module.run_job(spec.config, arrays, workdir=Path(workdir), progress=progress,
                                        should_stop=should_stop)
    if notes:
        report = {**report, "notes": notes}
    return result, report
