"""The one fully connected network of the package: the hypernetworks of couplings and the scalar shear potentials.

:class:`MLP` maps ``(*batch, in_dim)`` to ``(*batch, out_dim)`` through hidden layers with one activation, and its
output layer starts at zero, so that a coupling or shear built on it starts as the identity map.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


class MLP(nn.Sequential):
    """Fully connected network ``in_dim -> hidden... -> out_dim`` with a zero-initialised output layer.

    The zero output layer makes every coupling the identity at initialisation (a standard, stable start).

    Args:
        in_dim: input features.
        out_dim: output features.
        hidden: widths of the hidden layers (empty: one linear layer).
        activation: one of ``elu, relu, tanh, softplus, silu, gelu`` (``tanh``/``softplus``/``silu``/``gelu`` are
            smooth, as a layer that is differentiated twice needs).
        output_bias: give the output layer a bias (an odd, shift-only coupling or a potential whose gradient is
            used has no use for one).

    Example:
        >>> net = MLP(3, 2, hidden=(8, 8), activation="tanh")
        >>> net(torch.randn(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden: Sequence[int] = (32, 32), activation: str = "elu",
        output_bias: bool = True,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
        layers: list[nn.Module] = []
        widths = [in_dim, *hidden]
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        last = nn.Linear(widths[-1], out_dim, bias=output_bias)
        nn.init.zeros_(last.weight)
        if output_bias:
            nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)

    def restrict(self, inputs: Sequence[int], outputs: Sequence[int]) -> MLP:
        """Keep only the input features ``inputs`` and the output features ``outputs`` (in that order), in place.

        The remaining weights keep their values, so the restricted network computes on ``x[..., inputs]`` what the
        full one computed, at those outputs, on an input that is zero elsewhere. Returns ``self``.
        """
        inputs = torch.as_tensor(list(inputs), dtype=torch.long)
        outputs = torch.as_tensor(list(outputs), dtype=torch.long)
        first, last = self[0], self[-1]
        with torch.no_grad():
            first.weight = nn.Parameter(first.weight[:, inputs].clone())
            first.in_features = len(inputs)
            last.weight = nn.Parameter(last.weight[outputs].clone())
            if last.bias is not None:
                last.bias = nn.Parameter(last.bias[outputs].clone())
            last.out_features = len(outputs)
        return self
