"""The optional parts a capture adds to a radiance model, and their optimiser groups, in one place.

A photo capture may attach three submodules to either radiance model (``RadianceField``, ``SDFRadianceField``):
``appearance`` (each photo's exposure, ``nstr.nerf.appearance``), ``environment`` (the learnt background,
``nstr.nerf.background``) and ``pose_refinement`` (each camera's correction, ``nstr.nerf.pose_refine``). Being
submodules they are checkpointed with the model; here both models get their optimiser groups the same way, each
at the rate its module asks for (``group_lr``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

SUBMODULES = ("appearance", "environment", "pose_refinement")


def capture_groups(model: nn.Module, lr: float) -> list[dict[str, Any]]:
    """The optimiser's groups for ``model``'s capture submodules that are attached (none: [])."""
    groups = []
    for name in SUBMODULES:
        module = getattr(model, name, None)
        if module is not None:
            groups.append({"params": list(module.parameters()), "lr": module.group_lr(lr)})
    return groups
