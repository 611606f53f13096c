"""The one fully connected network of the package: the hypernetworks of couplings and the scalar shear potentials.

:class:`MLP` maps ``(*batch, in_dim)`` to ``(*batch, out_dim)`` through hidden layers with one activation, and its
output layer starts at zero, so that a coupling or shear built on it starts as the identity map.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["MLP", "ConditionalMLP", "CONDITIONINGS", "ACTIVATIONS"]

CONDITIONINGS: tuple[str, ...] = ("concat", "film")
"""How :class:`ConditionalMLP` takes its context: appended to the input, or FiLM scale/shift of every hidden layer."""

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


class ConditionalMLP(nn.Module):
    r"""An :class:`MLP` that also takes a context vector :math:`c` (e.g. features of the inverse temperature).

    ``conditioning="concat"``: the context is appended to the input, :math:`\mathrm{MLP}([v, c])`.
    ``conditioning="film"`` (feature-wise linear modulation; Perez et al., AAAI 2018): every hidden layer
    :math:`h_l = \phi(W_l h_{l-1} + b_l)` is modulated as :math:`h_l \odot (1 + \gamma_l(c)) + \delta_l(c)`, with
    :math:`(\gamma_l, \delta_l)` an affine map of :math:`c` that starts at zero (the network starts context-free).
    Either way the output layer starts at zero, so a coupling built on it starts as the identity.

    Shapes: ``forward(v, context)`` with ``v`` of shape ``(*batch, in_dim)`` and ``context`` of shape
    ``(*batch, context_dim)`` (or broadcastable to it) returns ``(*batch, out_dim)``. FiLM computes its scales and
    shifts on the context as given and broadcasts them, so a context shared by many rows costs one row.

    Args:
        in_dim: input features.
        context_dim: context features.
        out_dim: output features.
        hidden: widths of the hidden layers (at least one for FiLM).
        activation: as for :class:`MLP`.
        output_bias: give the output layer a bias.
        conditioning: ``"concat"`` or ``"film"``.

    Example:
        >>> net = ConditionalMLP(2, 1, 4, hidden=(8,), conditioning="film")
        >>> net(torch.randn(5, 2), torch.randn(5, 1)).shape
        torch.Size([5, 4])
    """

    def __init__(
        self, in_dim: int, context_dim: int, out_dim: int, hidden: Sequence[int] = (32, 32),
        activation: str = "elu", output_bias: bool = True, conditioning: str = "film",
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"unknown conditioning {conditioning!r}: use one of {list(CONDITIONINGS)}")
        if conditioning == "film" and not hidden:
            raise ValueError("FiLM modulates hidden layers: give at least one hidden layer, e.g. hidden=(32, 32)")
        self.conditioning, self.context_dim = conditioning, int(context_dim)
        extra = self.context_dim if conditioning == "concat" else 0
        self.net = MLP(in_dim + extra, out_dim, hidden, activation, output_bias)
        self.film = nn.ModuleList()
        if conditioning == "film":
            for width in hidden:
                lin = nn.Linear(self.context_dim, 2 * width)
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
                self.film.append(lin)

    def forward(self, v: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.conditioning == "concat":
            return self.net(torch.cat([v, context.expand(*v.shape[:-1], self.context_dim)], -1))
        layers = list(self.net)
        h = v
        for k, lin in enumerate(self.film):
            h = layers[2 * k + 1](layers[2 * k](h))
            gamma, delta = lin(context).chunk(2, -1)
            h = torch.addcmul(delta, h, gamma + 1.0)  # one pass over h; gamma, delta are per context
        return layers[-1](h)
