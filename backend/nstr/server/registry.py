"""Which job tasks this server can run: the modules named in ``nstr.tasks.JOB_TASKS``.

Task modules are imported once at start-up (they pull in torch), so the first submit is not
slow and a task whose module is broken is reported by name instead of failing every job.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any, Mapping

import numpy as np

from nstr.chunked import row_chunks
from nstr.errors import ConfigError, InputError
from nstr.remote.wire import Array


class TaskRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modules: dict[str, ModuleType] = {}
        self._broken: dict[str, str] = {}
        try:
            from nstr.tasks import JOB_TASKS
            self.known: dict[str, str] = dict(JOB_TASKS)
        except ImportError as err:
            self.known = {}
            self._broken["*"] = f"nstr.tasks cannot be imported ({err})"

    def preload(self) -> list[str]:
        """Import every task module; returns one warning per task that cannot run here."""
        for name in self.known:
            try:
                self.get(name)
            except ConfigError:
                pass
        return [f"task '{n}' is unavailable: {why}" for n, why in self._broken.items()]

    def available(self) -> list[str]:
        return [n for n in self.known if n not in self._broken]

    def loaded(self) -> list[ModuleType]:
        return list(self._modules.values())

    def get(self, name: Any) -> ModuleType:
        if not isinstance(name, str) or name not in self.known:
            raise ConfigError(f"unknown task {name!r}",
                              "Known tasks: " + (", ".join(self.known) or "none (nstr.tasks is missing)"))
        with self._lock:
            if name in self._modules:
                return self._modules[name]
            if name in self._broken:
                raise ConfigError(f"task '{name}' is unavailable on this server: {self._broken[name]}",
                                  "Fix the backend installation or use another task")
            try:
                module = importlib.import_module(self.known[name])
                for fn in ("validate_job", "run_job"):
                    if not callable(getattr(module, fn, None)):
                        raise ImportError(f"{self.known[name]} has no {fn}()")
            except Exception as err:  # a broken task module must not take the server down
                self._broken[name] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                raise ConfigError(f"task '{name}' is unavailable on this server: {self._broken[name]}",
                                  "Fix the backend installation or use another task") from None
            self._modules[name] = module
            return module


def numpy_views(arrays: Mapping[str, Array]) -> dict[str, np.ndarray]:
    """Wire arrays as numpy views on their bytes (no copies; memory-mapped for an upload)."""
    return {name: arr.to_numpy() for name, arr in arrays.items()}


def check_finite(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
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
    return dict(arrays)


def to_numpy(arrays: Mapping[str, Array]) -> dict[str, np.ndarray]:
    """Wire arrays as numpy arrays, after the checks every task needs: finite floats."""
    return check_finite(numpy_views(arrays))
