"""Which job tasks this server can run: the modules named in ``nstr.tasks.JOB_TASKS``, imported by
:func:`nstr.job.task_module` (the lookup every engine's jobs use).

Task modules are imported once at start-up (they pull in torch), so the first submit is not
slow and a task whose module is broken is reported by name instead of failing every job.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

from nstr.errors import ConfigError
from nstr.job import task_module


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
                module = task_module(name)  # the one lookup, the same every engine's jobs use
            except Exception as err:  # a broken task module must not take the server down
                self._broken[name] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                raise ConfigError(f"task '{name}' is unavailable on this server: {self._broken[name]}",
                                  "Fix the backend installation or use another task") from None
            self._modules[name] = module
            return module
