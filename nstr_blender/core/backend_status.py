"""What the preferences say about the local backend before anything is launched: which Python and
device will really be used (or "not set up"), an unfinished set-up that is being ignored, and the
torch builds "Set up backend" offers with their measured sizes. Plain text, so it is tested without
Blender."""

from __future__ import annotations

from pathlib import Path

from .backend_setup import TORCH_BUILDS, offered_build, ready_build
from .gpu_probe import Gpu, describe
from .settings import BackendChoice


def device_text(choice: BackendChoice, device: str, gpus: list[Gpu]) -> str:
    """The device the launched server will pick: the preference, or for 'auto' what it will find."""
    if device == "cpu":
        return "CPU (set in Device)"
    if device == "cuda":
        return f"CUDA (set in Device; {describe(gpus)})"
    if not gpus:
        return f"CPU ({describe(gpus)})"
    if choice.origin == "Set up backend" and ready_build(Path(choice.python).parents[1]) == "cpu":
        return f"CPU: this set-up has torch's CPU build although {describe(gpus)} is present"
    return f"CUDA when this Python's torch has it ({describe(gpus)}), else CPU"


def using_lines(choice: BackendChoice, device: str, gpus: list[Gpu]) -> list[str]:
    """'Using: PY (from ORIGIN) on DEVICE', or 'not set up'; then the ignored unfinished set-up, if any."""
    if choice.python:
        lines = [f"Using: {choice.python} (from {choice.origin}) on {device_text(choice, device, gpus)}"]
    else:
        lines = ["Backend: not set up. Press 'Set up backend', or set 'Backend Python'"]
    if choice.unfinished:
        lines.append(f"Unfinished set-up in {choice.unfinished} is not used; 'Set up backend' resumes it")
    return lines


def offer_lines(gpus: list[Gpu]) -> list[str]:
    """The builds in the order offered (CUDA first when nvidia-smi lists a GPU), each with its size."""
    first = offered_build(bool(gpus))
    order = [first] + [k for k in TORCH_BUILDS if k != first]
    return [f"{describe(gpus)}: offering the {TORCH_BUILDS[first].label}"] + \
           [TORCH_BUILDS[k].size_text() for k in order]
