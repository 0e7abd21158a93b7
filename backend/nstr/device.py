"""Where computation runs: device choice, seeding, precision policy."""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch

from nstr.errors import DeviceError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else the CPU. Asking for CUDA without it is an error, not a fallback."""
    if name == "auto":
        return _with_policy(torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA GPU is available to PyTorch",
                              "Use --device cpu (or auto), or install a CUDA build of torch on a machine with a GPU")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{name} does not exist (this machine has {torch.cuda.device_count()} GPU(s))",
                              "Use --device cuda")
        return _with_policy(dev)
    raise DeviceError(f"unknown device '{name}'", "Use auto, cpu or cuda")


def _with_policy(dev: torch.device) -> torch.device:
    """Apply the precision policy whenever the device resolves to CUDA (``auto`` included).

    TF32 matmuls: ~3e-4 relative error, far below what a field fit resolves, and much faster."""
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return dev


def precision_policy(dev: torch.device, amp: bool = True) -> dict[str, object]:
    """The precision a run on ``dev`` uses, for reports (``report["precision"]``)."""
    cuda = dev.type == "cuda"
    return {"tf32_matmul": bool(cuda and torch.backends.cuda.matmul.allow_tf32),
            "autocast": "bfloat16" if (cuda and amp) else "off",
            "grid_and_jacobian": "float32 (autocast disabled inside the grid encoding and its head's Jacobian)",
            "losses": "float32 (task loss and PDE terms are cast to fp32 before weighting)"}


def device_name(dev: torch.device) -> str:
    """Human name for reports: the GPU's model, or the CPU."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def autocast(dev: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA (no loss scaling needed); a no-op on the CPU, where it only slows things down."""
    if enabled and dev.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
