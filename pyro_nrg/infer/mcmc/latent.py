r"""The renormalized energy of a trained NeuralRG flow, and flow priors reparameterised in user models.

A trained flow :math:`x = g(z)` (latent → physical) pulls the Boltzmann density :math:`p(x) \propto e^{-\beta E(x)}`
back to latent space,

.. math:: p_z(z) = p(g(z))\,\Big|\det\frac{\partial g}{\partial z}\Big| \;\propto\; e^{-\beta E_{\rm eff}(z)},
    \qquad E_{\rm eff}(z) = E(g(z)) - T\ln\Big|\det\frac{\partial g}{\partial z}\Big| ,

the *renormalized energy* of Li & Wang, PRL 121, 260601 (2018), Eq. (5). Sampling :math:`z \sim p_z` and mapping
:math:`x = g(z)` is exact (no Gaussian enters :math:`p_z`); a well-trained flow makes :math:`\beta E_{\rm eff}(z)`
close to :math:`\tfrac12|z|^2 + \text{const}` (independent unit Gaussians), so Hamiltonian Monte Carlo there mixes
far faster than in physical space (NeuTra: Hoffman et al., arXiv:1903.03704 (2019)). The residual
:math:`\beta E_{\rm eff}(z) - \tfrac12|z|^2 = -\ln w(g(z)) + \text{const}` is the importance log-weight, a
measure of the flow's error (:func:`renormalized_energy` with ``subtract_gaussian=True``).

* :func:`renormalized_energy` — :math:`E_{\rm eff}(z)`, differentiable in :math:`z` and the flow's parameters.
* :class:`RenormalizedPotential` — :math:`\beta E_{\rm eff}` as a ``potential_fn`` for Pyro's ``HMC``/``NUTS``
  (``initial_params`` path), counting its calls.
* :func:`latent_reparam` — NUTS on a user model in the latent space of its flow priors.

The samplers on :math:`E_{\rm eff}` are :func:`~pyro_nrg.infer.latent_nuts` (:mod:`pyro_nrg.infer.mcmc.nuts`) and
:func:`~pyro_nrg.infer.latent_hmc_walkers` (:mod:`pyro_nrg.infer.mcmc.walkers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from pyro import poutine
from pyro.infer.reparam import TransformReparam

from ...distributions import FlowDistribution
from ...energies.base import Energy
from ..pushforward import as_flow_event, flow_event_shape, flow_of, param_dtype, to_physical

__all__ = ["renormalized_energy", "RenormalizedPotential", "latent_reparam"]


def renormalized_energy(
    energy: Energy, guide_or_flow: Any, z: torch.Tensor, subtract_gaussian: bool = False, return_physical: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""The renormalized (latent) energy :math:`E_{\rm eff}(z) = E(g(z)) - T\ln|\det \partial g/\partial z|`.

    :math:`e^{-\beta E_{\rm eff}}` is the pullback of the Boltzmann density to latent space (Li & Wang 2018, Eq. 5),
    the target of latent-space HMC. Differentiable in ``z`` (and in the flow's parameters).

    Args:
        energy: the physical energy (``energy.energy(x)`` of shape ``batch``).
        guide_or_flow: a :class:`~pyro_nrg.infer.FlowGuide`, a :class:`~pyro_nrg.distributions.FlowDistribution`
            (optionally :class:`~pyro_nrg.distributions.Z2Symmetrized`) or the flow itself.
        z: latents of shape ``(*batch, *flow.event_shape)`` or flat ``(*batch, N)``.
        subtract_gaussian: return :math:`E_{\rm eff}(z) - \tfrac T2 |z|^2` instead: constant for a perfect flow,
            equal to :math:`-T\ln w(g(z))` minus :math:`T(\tfrac N2\ln 2\pi)` (``w`` = importance weight).
        return_physical: also return ``x = g(z)`` (shape ``(*batch, *energy.event_shape)``).

    Returns:
        :math:`E_{\rm eff}` of shape ``batch`` (and ``x`` if ``return_physical``).
    """
    flow = flow_of(guide_or_flow)
    x, ldj = to_physical(flow, energy, z)
    e_eff = energy.energy(x) - energy.temperature * ldj
    if subtract_gaussian:
        zf, batch = as_flow_event(flow, energy, z)
        e_eff = e_eff - 0.5 * energy.temperature * zf.reshape(*batch, -1).square().sum(-1)
    return (e_eff, x) if return_physical else e_eff


class RenormalizedPotential:
    r""":math:`\beta E_{\rm eff}(z)` as a Pyro ``potential_fn`` (``HMC``/``NUTS`` with ``initial_params``).

    Pyro calls it with a dict ``{site: z}`` and expects a scalar; ``z`` may carry leading batch dimensions (they are
    summed). Every call is counted in :attr:`num_calls` — Pyro's integrator calls the potential once per gradient.

    Args:
        energy: physical energy.
        guide_or_flow: trained :class:`~pyro_nrg.infer.FlowGuide`, flow distribution or flow.
        site: name of the latent variable in the params dict.

    Example:
        >>> pot = RenormalizedPotential(energy, guide)                                   # doctest: +SKIP
        >>> mcmc = MCMC(NUTS(potential_fn=pot), 500, warmup_steps=200,
        ...             initial_params=pot.initial_params())                               # doctest: +SKIP
        >>> mcmc.run(); x = pot.to_physical(mcmc.get_samples()["z"])                        # doctest: +SKIP
    """

    def __init__(self, energy: Energy, guide_or_flow: Any, site: str = "z") -> None:
        self.energy = energy
        self.flow = flow_of(guide_or_flow)
        self.site = site
        self.event_shape = flow_event_shape(self.flow, energy)
        self.num_calls = 0

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        self.num_calls += 1
        z = params[self.site]
        x, ldj = to_physical(self.flow, self.energy, z)
        return (self.energy.action(x) - ldj).sum()

    def initial_params(self, num_chains: int | None = None) -> dict[str, torch.Tensor]:
        """Standard-normal starting latents: ``(*event_shape)`` or ``(num_chains, *event_shape)`` (Pyro's layout)."""
        dtype = param_dtype(self.flow)
        shape = self.event_shape if num_chains is None else (num_chains, *self.event_shape)
        return {self.site: torch.randn(shape, dtype=dtype)}

    @torch.no_grad()
    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent draws ``(*batch, *event_shape)`` to physical configurations ``(*batch, *energy.event_shape)``."""
        return to_physical(self.flow, self.energy, z)[0]



# ----------------------------------------------------------------------------------------------------------------
# RG-flow priors in user models


def latent_reparam(model: Callable[..., Any], sites: Sequence[str] | None = None) -> Callable[..., Any]:
    r"""Make NUTS on a user model run in the latent space of its flow priors (Pyro's ``TransformReparam``).

    Every site whose distribution is a :class:`~pyro_nrg.distributions.FlowDistribution` (or the named ``sites``)
    is split into ``"<site>_base"`` :math:`\sim \mathcal N(0, I)` and the deterministic :math:`x = g(z)`: the
    posterior geometry becomes that of the renormalized variables.

    Example:
        >>> def model(y):
        ...     field = pyro.sample("field", prior)                        # FlowDistribution
        ...     pyro.sample("y", dist.Normal(field, 0.5).to_event(2), obs=y)
        >>> NUTS(latent_reparam(model))                                     # doctest: +SKIP
    """

    def config(msg: dict[str, Any]) -> TransformReparam | None:
        if msg["type"] != "sample" or msg["is_observed"]:
            return None
        if sites is not None:
            return TransformReparam() if msg["name"] in sites else None
        fn = msg["fn"]
        while hasattr(fn, "base_dist") and not isinstance(fn, torch.distributions.TransformedDistribution):
            fn = fn.base_dist
        return TransformReparam() if isinstance(fn, FlowDistribution) else None

    return poutine.reparam(model, config=config)


