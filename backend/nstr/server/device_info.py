"""What the health endpoint says about the compute device, and the "release GPU memory" action."""

from __future__ import annotations

import gc
from types import ModuleType
from typing import Any, Iterable

import torch

from nstr.device import device_name


def describe(dev: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(dev), "device_name": device_name(dev),
                            "gpu_memory_free": None, "gpu_memory_total": None}
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info(dev)
        info.update(gpu_memory_free=int(free), gpu_memory_total=int(total))
    return info


def release(dev: torch.device, task_modules: Iterable[ModuleType]) -> dict[str, Any]:
    """Drop what tasks cache (their optional ``release_cache()``), collect garbage, empty the CUDA cache."""
    dropped = []
    for module in task_modules:
        hook = getattr(module, "release_cache", None)
        if callable(hook):
            hook()
            dropped.append(module.__name__)
    gc.collect()
    out: dict[str, Any] = {"device": str(dev), "dropped_caches": dropped}
    if dev.type != "cuda":
        out.update(released_bytes=0, message="the server runs on the CPU: there is no GPU memory to release; "
                                              "cached Python objects were collected")
        return out
    before = torch.cuda.memory_reserved(dev)
    torch.cuda.empty_cache()
    after = torch.cuda.memory_reserved(dev)
    free, total = torch.cuda.mem_get_info(dev)
    out.update(released_bytes=int(before - after), gpu_memory_free=int(free), gpu_memory_total=int(total),
               message=f"released {(before - after) / 2**20:.0f} MiB of cached GPU memory")
    return out
