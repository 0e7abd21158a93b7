"""Is there an NVIDIA GPU on this machine? Asked of ``nvidia-smi`` (the driver's own tool), so the
set-up can offer the CUDA torch build before anything is downloaded; no torch is needed to ask."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

QUERY = ["--query-gpu=name,memory.total", "--format=csv,noheader"]


@dataclass(frozen=True)
class Gpu:
    name: str
    memory: str                     # as nvidia-smi writes it, e.g. "24564 MiB"


def parse_gpus(text: str) -> list[Gpu]:
    """Lines of ``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader``: 'NAME, 24564 MiB'."""
    gpus = []
    for line in text.splitlines():
        name, sep, memory = line.rpartition(",")
        if sep and name.strip():
            gpus.append(Gpu(name.strip(), memory.strip()))
    return gpus


def nvidia_gpus(timeout: float = 10.0) -> list[Gpu]:
    """The NVIDIA GPUs nvidia-smi lists; [] when it is not installed or fails (no GPU, no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        proc = subprocess.run([exe, *QUERY], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_gpus(proc.stdout) if proc.returncode == 0 else []


def describe(gpus: list[Gpu]) -> str:
    """'NVIDIA GeForce RTX 4090 (24564 MiB)', or 'no NVIDIA GPU found (nvidia-smi)'."""
    if not gpus:
        return "no NVIDIA GPU found (nvidia-smi)"
    return ", ".join(f"{g.name} ({g.memory})" for g in gpus)
