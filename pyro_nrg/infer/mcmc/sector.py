r"""The :math:`Z_2` sector function: sample one magnetisation sector of a symmetric target, then restore the other.

A flow trained with the :math:`Z_2`-symmetrized mixture (:class:`pyro_nrg.distributions.Z2Symmetrized`) usually
puts its bare flow :math:`g` on one magnetisation sector; the other sector lies far out in latent space, where the
flow is poor (a *coverage hole*: latent walkers that cross there stick, and importance weights of the bare flow
see only half of :math:`Z`). For an energy with :math:`E(-x) = E(x)` and any :math:`h` with
:math:`h(x) + h(-x) = 1`,

.. math:: p_h(x) = 2h(x)\,p(x) \quad\text{is normalised}\;\Big(\int 2h\,e^{-\beta E} = Z\Big),
          \qquad \tfrac12 p_h(x) + \tfrac12 p_h(-x) = p(x),

so a sampler may target :math:`p_h` (one sector, where the flow is good) and give every draw a random sign: the
signed draws follow :math:`p` exactly, for even observables (:math:`m^2`, energy) and odd ones (:math:`m`) alike,
and :math:`\ln Z` from :math:`p_h` is :math:`\ln Z` of :math:`p`. Here :math:`h(x) = \sigma(\kappa\,\bar x)` with
:math:`\bar x` the site mean and :math:`\kappa` fitted on draws of the bare flow (:func:`fit_sector_sharpness`):
any :math:`\kappa` is exact; a good one keeps the sampler where the flow is good. No flow inverse is needed.

Used by :func:`pyro_nrg.infer.annealed_importance_sampling`, :func:`pyro_nrg.infer.latent_hmc_walkers` and
:func:`pyro_nrg.infer.latent_nuts` (argument ``z2_symmetric``; ``None`` follows the guide).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ...distributions import Z2Symmetrized
from ...energies.base import Energy
from ...errors import NotSymmetricError
from ..model import FlowGuide
from ..pushforward import flow_event_shape, param_dtype, to_physical

__all__ = ["Z2Sector", "fit_sector_sharpness", "site_mean", "z2_default", "resolve_sector"]


def site_mean(x: torch.Tensor, event_dims: int) -> torch.Tensor:
    """Mean of ``x`` over its last ``event_dims`` dimensions (the site mean :math:`\\bar x`), shape ``batch``."""
    return x.flatten(x.dim() - event_dims).mean(-1) if event_dims else x


def fit_sector_sharpness(a: torch.Tensor, ridge: float = 10.0, iters: int = 50) -> float:
    r"""Fit :math:`\kappa` of :math:`h(x) = \sigma(\kappa \bar x)` to site means ``a`` of flow samples.

    Maximises :math:`\tfrac1n\sum_i \ln\sigma(\kappa a_i) - \kappa^2 s^2 / (2\,\text{ridge}^2)` (:math:`s` the
    standard deviation of ``a``) by Newton's method: the likelihood that each sample came from :math:`q` rather
    than from its mirror image, with a ridge that keeps :math:`h` smooth (:math:`|\kappa| s \lesssim` ``ridge``)
    when the flow covers one sector only. A symmetric flow gives :math:`\kappa \approx 0` (:math:`h = 1/2`).

    Args:
        a: site means :math:`\bar x` of flow samples, any shape (flattened).
        ridge: bound on :math:`|\kappa|\,s` in units of the spread of ``a``.
        iters: maximum Newton iterations.

    Returns:
        :math:`\kappa` (its sign picks the sector the flow favours).
    """
    a = a.detach().to(torch.float64).reshape(-1)
    s2 = float(a.var()) if a.numel() > 1 else 1.0
    s2 = s2 if s2 > 0 else 1.0
    lam = s2 / ridge**2
    kappa = 0.0
    for _ in range(iters):
        p = torch.sigmoid(-kappa * a)  # d/dk ln sigma(k a) = a sigma(-k a)
        grad = float((a * p).mean()) - lam * kappa
        hess = -float((a.square() * p * (1 - p)).mean()) - lam
        step = grad / hess
        kappa -= step
        if abs(step) < 1e-10 * (1 + abs(kappa)):
            break
    return kappa


def z2_default(guide_or_flow: Any) -> bool:
    """Whether the guide was trained :math:`Z_2`-symmetrized (a FlowGuide's flag, or a :class:`Z2Symmetrized`)."""
    if isinstance(guide_or_flow, FlowGuide):
        return bool(guide_or_flow.z2_symmetric)
    return isinstance(guide_or_flow, Z2Symmetrized)


@dataclass(frozen=True)
class Z2Sector:
    r""":math:`h(x) = \sigma(\kappa\,\bar x)`: the sector weight :math:`\ln 2h(x)` and the random sign.

    Attributes:
        sharpness: :math:`\kappa` (0 gives :math:`h = 1/2`: no tilt).
        event_dims: number of trailing event dimensions of a configuration ``x``.
    """

    sharpness: float
    event_dims: int

    def log_weight(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\ln 2h(x) = \ln 2 + \ln\sigma(\kappa\bar x)` of configurations ``(*batch, *event)`` → ``batch``."""
        return math.log(2.0) + torch.nn.functional.logsigmoid(self.sharpness * site_mean(x, self.event_dims))

    def random_sign(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with an independent random sign per configuration (``(*batch, *event)``, same shape)."""
        batch = x.shape[: x.dim() - self.event_dims]
        sign = torch.randint(0, 2, batch, device=x.device).to(x.dtype) * 2 - 1
        return x * sign.reshape(*batch, *([1] * self.event_dims))

    @classmethod
    def fit(
        cls, flow: torch.distributions.Transform, energy: Energy, num_samples: int = 512, check_symmetry: bool = True
    ) -> Z2Sector:
        r"""Fit :math:`\kappa` on ``num_samples`` draws :math:`g(z)`, :math:`z \sim \mathcal N(0, I)`, of the bare flow.

        Args:
            flow: the latent → physical transform.
            energy: the target energy; must satisfy :math:`E(-x) = E(x)`.
            num_samples: flow draws for the fit (and the symmetry check).
            check_symmetry: compare :math:`\beta E(x)` with :math:`\beta E(-x)` on those draws.

        Raises:
            NotSymmetricError: the energy is not :math:`Z_2`-symmetric on the flow's draws.
        """
        fes = flow_event_shape(flow, energy)
        k = len(tuple(energy.event_shape))
        with torch.no_grad():
            x, _ = to_physical(flow, energy, torch.randn(num_samples, *fes, dtype=param_dtype(flow)))
            if check_symmetry:
                a, b = energy.action(x).double(), energy.action(-x).double()
                tol = 1e-4 * (1.0 + a.abs())
                bad = ~((a - b).abs() <= tol)
                if bool(bad.any()):
                    i = int(bad.nonzero()[0, 0])
                    raise NotSymmetricError(
                        f"z2_symmetric needs an energy with E(-x) = E(x), but beta*E(x) = {float(a[i]):.6g} and "
                        f"beta*E(-x) = {float(b[i]):.6g} on a flow draw: pass z2_symmetric=False (e.g. with an "
                        "external field)"
                    )
        return cls(fit_sector_sharpness(site_mean(x, k)), k)


def resolve_sector(
    energy: Energy,
    guide_or_flow: Any,
    flow: torch.distributions.Transform,
    z2_symmetric: bool | None,
    num_samples: int = 512,
) -> Z2Sector | None:
    """The sector function a sampler uses, fitted on ``num_samples`` flow draws: ``None`` when ``z2_symmetric`` is
    off (``None``: follow the guide)."""
    z2 = z2_default(guide_or_flow) if z2_symmetric is None else bool(z2_symmetric)
    return Z2Sector.fit(flow, energy, num_samples) if z2 else None
