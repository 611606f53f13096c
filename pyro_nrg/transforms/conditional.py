r"""A NeuralRG flow conditioned on the temperature: one bijection :math:`x = g(z; T)` for a range of temperatures.

Every coupling's hypernetwork (:class:`~pyro_nrg.transforms.ConditionalMLP`) takes, besides its conditioning
variables, one context feature of the temperature,

.. math:: u(T) = \frac{\beta - \beta_{\rm mid}}{\beta_{\rm half}}, \qquad
          \beta_{\rm mid} = \tfrac12(\beta_{\min} + \beta_{\max}),\quad
          \beta_{\rm half} = \tfrac12(\beta_{\max} - \beta_{\min}),

so :math:`u \in [-1, 1]` on the training range :math:`[T_{\min}, T_{\max}]`. The feature is affine in the inverse
temperature because the target depends on :math:`T` through :math:`\beta`: the Boltzmann exponent :math:`-\beta E`
and the relaxed Ising coupling :math:`K = \beta A + cI` are affine in :math:`\beta`, so a smooth, nearly linear
dependence of the flow on its input is what the target asks for; :math:`\beta` also spreads the ordered side of
the range (where the density changes fastest) over more of the input than :math:`T` would.

:class:`ConditionalHierarchicalFlow` is a Pyro :class:`~pyro.distributions.ConditionalTransformModule`:
``flow.condition(T)`` is an ordinary (unconditional) transform, :class:`ConditionedFlow`, which every transform
check, :class:`~pyro_nrg.distributions.FlowDistribution` and every estimator accepts. ``T`` may be a float, a
0-d tensor (differentiable: a Pyro model can infer it) or a tensor of shape ``batch_shape`` (one temperature per
configuration, as distillation over a temperature range draws them).

Shapes: events ``(L,)*dim``; ``forward_and_log_det(z, T)`` with ``T`` broadcastable to ``batch_shape``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.distributions.conditional import ConditionalTransformModule

from ..errors import TemperatureError
from .base import PairedTransformModule
from .hierarchical import HierarchicalFlow

__all__ = ["ConditionalHierarchicalFlow", "ConditionedFlow"]


class ConditionalHierarchicalFlow(ConditionalTransformModule):
    r"""A :class:`~pyro_nrg.transforms.HierarchicalFlow` whose couplings take the temperature as an input.

    Args:
        flow: a hierarchical flow built with one context feature (``hierarchical_flow(..., context_dim=1)``).
        t_min: lowest temperature of the range the flow is meant for; with ``t_max`` it fixes the feature
            :math:`u(T)` (module docstring): a flow may be evaluated outside the range, but it was only trained inside.
        t_max: highest temperature of the range.

    Example:
        >>> from pyro_nrg.flows import conditional_neural_rg
        >>> flow = conditional_neural_rg(L=4, hidden=8, t_min=2.0, t_max=3.0)
        >>> x = flow.condition(2.5)(torch.randn(3, 4, 4)); x.shape
        torch.Size([3, 4, 4])
    """

    def __init__(self, flow: HierarchicalFlow, t_min: float, t_max: float) -> None:
        super().__init__()
        t_min, t_max = float(t_min), float(t_max)
        if not (0 < t_min < t_max and math.isfinite(t_max)):
            raise TemperatureError(f"need 0 < t_min < t_max (finite), got t_min={t_min!r}, t_max={t_max!r}: "
                                   "e.g. t_min=1.8, t_max=3.5")
        self.flow = flow
        self.t_min, self.t_max = t_min, t_max
        b_lo, b_hi = 1.0 / t_max, 1.0 / t_min
        self.beta_mid, self.beta_half = 0.5 * (b_lo + b_hi), 0.5 * (b_hi - b_lo)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Event shape of the configurations (that of the wrapped flow)."""
        return self.flow.event_shape

    @property
    def event_dim(self) -> int:
        """Number of event dimensions."""
        return self.flow.event_dim

    def _dtype(self) -> torch.dtype:
        p = next(self.flow.parameters(), None)
        return p.dtype if p is not None else torch.get_default_dtype()

    def features(self, temperature: Any) -> torch.Tensor:
        r"""The context :math:`u(T)` of shape ``(*T.shape, 1)`` in the flow's dtype (differentiable in ``T``).

        Raises:
            TemperatureError: a temperature that is not finite and positive.
        """
        p = next(self.flow.parameters(), None)
        T = torch.as_tensor(temperature, dtype=self._dtype(), device=None if p is None else p.device)
        if not bool(torch.isfinite(T).all() and (T > 0).all()):
            raise TemperatureError(f"temperatures must be finite and > 0, got {T.detach().flatten()[:4].tolist()}")
        return ((1.0 / T - self.beta_mid) / self.beta_half).unsqueeze(-1)

    def forward_and_log_det(self, z: torch.Tensor, temperature: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = g(z; T)`` and :math:`\\ln|\\det \\partial x/\\partial z|` (shape ``batch_shape``)."""
        return self.flow.forward_and_log_det(z, self.features(temperature))

    def inverse_and_log_det(self, x: torch.Tensor, temperature: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = g^{-1}(x; T)`` and the forward log-det at that point (shape ``batch_shape``)."""
        return self.flow.inverse_and_log_det(x, self.features(temperature))

    def condition(self, context: Any) -> ConditionedFlow:
        """The flow at temperature ``context`` (a float or a tensor broadcastable to the batch shape)."""
        return ConditionedFlow(self, context)

    def extra_repr(self) -> str:
        return f"t_min={self.t_min:g}, t_max={self.t_max:g}"


class ConditionedFlow(PairedTransformModule):
    """:class:`ConditionalHierarchicalFlow` at a fixed temperature: an ordinary transform module (latent → physical).

    Its parameters are the conditional flow's own (a submodule, not a copy), so training or freezing either trains
    or freezes both. Built by :meth:`ConditionalHierarchicalFlow.condition`.
    """

    def __init__(self, conditional: ConditionalHierarchicalFlow, temperature: Any) -> None:
        super().__init__(event_dim=conditional.event_dim)
        self.conditional = conditional
        self.temperature = temperature

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Event shape of the configurations."""
        return self.conditional.event_shape

    def forward_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conditional.forward_and_log_det(z, self.temperature)

    def inverse_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conditional.inverse_and_log_det(x, self.temperature)

    def extra_repr(self) -> str:
        T = torch.as_tensor(self.temperature)
        return f"T={float(T):.6g}" if T.numel() == 1 else f"T of shape {tuple(T.shape)}"
