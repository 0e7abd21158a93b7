"""Plain MLPs, with optional exact forward-mode Jacobian propagation.

The Jacobian path carries ``J = dh/dx`` (N, width, d) through every layer
(``J <- act'(z) * (W @ J)``). For d <= 3 inputs that is cheaper than d
backward passes and stays differentiable, so the PDE loss can train through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_ACT = {"relu": F.relu, "silu": F.silu, "softplus": lambda z: F.softplus(z, beta=10.0), "tanh": torch.tanh}


def _act_derivative(name: str, z: Tensor) -> Tensor:
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "silu":
        s = torch.sigmoid(z)
        return s * (1 + z * (1 - s))
    if name == "softplus":
        return torch.sigmoid(10.0 * z)
    if name == "tanh":
        return 1 - torch.tanh(z) ** 2
    raise ValueError(name)


class MLP(nn.Module):
    """``in -> [width] * depth -> out`` with one activation; a linear output layer."""

    def __init__(self, in_dim: int, out_dim: int, width: int, depth: int, activation: str = "relu",
                 out_bias: float | None = None) -> None:
        super().__init__()
        dims = [in_dim] + [width] * depth + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.activation = activation
        if out_bias is not None:
            nn.init.constant_(self.layers[-1].bias, out_bias)

    def forward(self, x: Tensor) -> Tensor:
        act = _ACT[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)

    def forward_with_jacobian(self, x: Tensor, jac: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Output and its Jacobian w.r.t. the original input. ``jac`` is dx/dinput if x is itself derived."""
        if jac is None:
            jac = torch.eye(x.shape[-1], device=x.device, dtype=x.dtype).expand(x.shape[0], -1, -1)
        act = _ACT[self.activation]
        for layer in self.layers[:-1]:
            z = layer(x)
            jac = _act_derivative(self.activation, z).unsqueeze(-1) * torch.einsum("oi,nid->nod", layer.weight, jac)
            x = act(z)
        last = self.layers[-1]
        return last(x), torch.einsum("oi,nid->nod", last.weight, jac)
