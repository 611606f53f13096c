r"""A flow distribution conditioned on the temperature: :math:`q(x \mid T)`, normalized at every :math:`T`.

:class:`ConditionalFlowDistribution` is a Pyro :class:`~pyro.distributions.ConditionalDistribution` around a
:class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow`: ``.condition(T)`` is an ordinary
:class:`~pyro_nrg.distributions.FlowDistribution` (every estimator and sampler of the package takes it), and
``.distribution(T)`` the distribution that was trained (with the :math:`Z_2` mixture
:math:`\tfrac12[q(x\mid T) + q(-x\mid T)]` when ``z2_symmetric``). Unlike the Boltzmann density
:math:`e^{-\beta E(x)}`, whose :math:`Z(T)` is intractable in general, :math:`q(x \mid T)` is normalized, so it can be
a likelihood inside a Pyro model whose temperature is a random variable (``T`` a differentiable tensor)::

    T = pyro.sample("T", dist.Uniform(1.8, 3.5))
    with pyro.plate("configs", len(x_obs)):
        pyro.sample("x", q.distribution(T), obs=x_obs)

Saved and loaded like the others (:meth:`ConditionalFlowDistribution.save` / :meth:`~ConditionalFlowDistribution.load`).
"""

from __future__ import annotations

import os
from typing import Any

import pyro.distributions as dist
import torch

from ..errors import CheckpointError
from ..transforms.conditional import ConditionalHierarchicalFlow
from .flow import FlowDistribution, load_flow_file, save_flow_file
from .symmetrized import Z2Symmetrized

__all__ = ["ConditionalFlowDistribution"]


class ConditionalFlowDistribution(dist.ConditionalDistribution):
    r""":math:`q(x \mid T)`: a standard normal pushed through a temperature-conditioned flow.

    Args:
        flow: a :class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow` (e.g.
            :func:`~pyro_nrg.flows.conditional_neural_rg`).
        z2_symmetric: :meth:`distribution` returns the :math:`Z_2` mixture (as a distillation with
            ``z2_symmetric=True`` trained it).
        latent_scale: standard deviation of the latent Gaussian (see :class:`FlowDistribution`).

    Example:
        >>> from pyro_nrg.flows import conditional_neural_rg
        >>> q = ConditionalFlowDistribution(conditional_neural_rg(L=4, hidden=8))
        >>> x = q.condition(2.5).sample((3,)); q.distribution(2.5).log_prob(x).shape
        torch.Size([3])
    """

    def __init__(self, flow: ConditionalHierarchicalFlow, z2_symmetric: bool = True, latent_scale: float = 1.0) -> None:
        if not isinstance(flow, ConditionalHierarchicalFlow):
            raise TypeError(f"ConditionalFlowDistribution needs a ConditionalHierarchicalFlow, got "
                            f"{type(flow).__name__}: build one with pyro_nrg.flows.conditional_neural_rg(...)")
        self.flow = flow
        self.z2_symmetric = bool(z2_symmetric)
        self.latent_scale = float(latent_scale)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Event shape of the configurations."""
        return tuple(self.flow.event_shape)

    def condition(self, context: Any, path_gradient: bool = False) -> FlowDistribution:
        """The ordinary :class:`FlowDistribution` :math:`q(x \\mid T)` at temperature ``context`` (a float, a 0-d
        tensor — differentiable — or a tensor broadcastable to the batch shape, one temperature per configuration)."""
        return FlowDistribution(self.flow.condition(context), event_shape=self.event_shape,
                                path_gradient=path_gradient, latent_scale=self.latent_scale)

    def distribution(self, temperature: Any, path_gradient: bool = False) -> dist.TorchDistribution:
        """The trained distribution at ``temperature``: :meth:`condition`, in the :math:`Z_2` mixture if
        ``z2_symmetric``."""
        q = self.condition(temperature, path_gradient)
        return Z2Symmetrized(q) if self.z2_symmetric else q

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the flow's ``state_dict`` and config, the latent scale and the mixture (``path``) and the config
        JSON (``path`` + ``.json``), atomically."""
        mixtures = [{"kind": "z2"}] if self.z2_symmetric else []
        save_flow_file(self.flow, path, extra={"distribution": {
            "latent_scale": self.latent_scale, "mixtures": mixtures, "conditional": True}})

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], map_location: str | torch.device | None = None, requires_grad: bool = False
    ) -> ConditionalFlowDistribution:
        """Rebuild a distribution saved by :meth:`save` (data only; parameters frozen unless ``requires_grad``).

        Raises:
            CheckpointError: see :meth:`FlowDistribution.load`; also a file that holds an unconditional flow.
            ConfigMismatchError: the weights do not fit the flow the saved config describes.
        """
        flow, blob = load_flow_file(path, map_location=map_location, requires_grad=requires_grad)
        if not isinstance(flow, ConditionalHierarchicalFlow):
            raise CheckpointError(f"{path} holds an unconditional flow: load it with "
                                  "pyro_nrg.distributions.load_distribution(path)")
        spec = blob.get("distribution") or {}
        z2 = any(m.get("kind") == "z2" for m in spec.get("mixtures", []))
        return cls(flow, z2_symmetric=z2, latent_scale=float(spec.get("latent_scale", 1.0)))
