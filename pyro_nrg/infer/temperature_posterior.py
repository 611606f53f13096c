r"""Bayesian inference of the temperature from a few configurations, with a flow as the normalized likelihood.

The Pyro model (:func:`temperature_model`)

.. math:: T \sim \mathrm{Uniform}(T_{\min}, T_{\max}), \qquad x_i \mid T \sim q(x \mid T), \quad i = 1..n,

puts a temperature-conditioned flow (:class:`~pyro_nrg.distributions.ConditionalFlowDistribution`) where the
Boltzmann density cannot go: :math:`e^{-\beta E(x)}` is not normalized, and its :math:`Z(T)` depends on the
parameter being inferred. NUTS runs on :math:`T` (:func:`infer_temperature`; gradients flow through the flow's
temperature input), summarised by ArviZ. The exact reference (:func:`grid_temperature_posterior`) is the
one-dimensional posterior

.. math:: p(T \mid x) \propto p(T) \prod_i \frac{e^{-\beta E_T(x_i)}}{Z(T)}

on a grid, with :math:`Z(T)` exact (Kaufman plus the relaxation constant for
:class:`~pyro_nrg.energies.IsingRelaxed`). The same grid over :math:`\ln q(x_i\mid T)` gives the flow's own
posterior, which NUTS should reproduce; the difference to the exact one is the flow's error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from ..distributions import ConditionalFlowDistribution
from ..energies.base import Energy

__all__ = ["temperature_model", "infer_temperature", "grid_temperature_posterior", "grid_posterior",
           "GridPosterior", "TemperaturePosterior"]


def temperature_model(
    q: ConditionalFlowDistribution, t_min: float, t_max: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The Pyro model ``T ~ Uniform(t_min, t_max)``, ``x_i ~ q.distribution(T)`` (observed, in a plate).

    Called as ``model(x_obs)`` with ``x_obs`` of shape ``(n, *event_shape)``; returns ``T``.

    Example:
        >>> from pyro_nrg.flows import conditional_neural_rg
        >>> q = ConditionalFlowDistribution(conditional_neural_rg(L=4, hidden=8))
        >>> tr = pyro.poutine.trace(temperature_model(q, 1.8, 3.5)).get_trace(torch.zeros(2, 4, 4))
        >>> tr.nodes["x"]["fn"].batch_shape
        torch.Size([2])
    """
    p = next(q.flow.parameters())
    lo = torch.tensor(float(t_min), dtype=p.dtype, device=p.device)
    hi = torch.tensor(float(t_max), dtype=p.dtype, device=p.device)

    def model(x_obs: torch.Tensor) -> torch.Tensor:
        T = pyro.sample("T", dist.Uniform(lo, hi))
        with pyro.plate("configs", x_obs.shape[0]):
            pyro.sample("x", q.distribution(T), obs=x_obs)
        return T

    return model


@dataclass
class GridPosterior:
    """A one-dimensional posterior on a grid: ``temperatures``, normalised ``density``, its mean and sd."""

    temperatures: np.ndarray
    density: np.ndarray
    mean: float
    sd: float


def grid_posterior(log_likelihood: Callable[[float], float], t_min: float, t_max: float,
                   n_grid: int = 801) -> GridPosterior:
    """Normalise :math:`p(T)\\,e^{\\ell(T)}` with a uniform prior on ``[t_min, t_max]`` on ``n_grid`` points
    (trapezoid rule); ``log_likelihood(T)`` is :math:`\\ell(T)`."""
    t = np.linspace(float(t_min), float(t_max), int(n_grid))
    ll = np.array([log_likelihood(float(v)) for v in t])
    p = np.exp(ll - ll.max())
    p /= np.trapezoid(p, t)
    mean = float(np.trapezoid(t * p, t))
    sd = float(np.sqrt(np.trapezoid((t - mean) ** 2 * p, t)))
    return GridPosterior(t, p, mean, sd)


@torch.no_grad()
def grid_temperature_posterior(
    energy_at: Callable[[float], Energy], x_obs: torch.Tensor, t_min: float, t_max: float, n_grid: int = 801
) -> GridPosterior:
    """The exact posterior :math:`p(T\\mid x) \\propto \\prod_i e^{-\\beta E_T(x_i)}/Z(T)` under a uniform prior, on a
    grid (float64; ``energy_at(T).log_z()`` must be exact)."""
    x = x_obs.to(torch.float64)

    def ll(T: float) -> float:
        e = energy_at(T).double()
        return float(-e.action(x).sum()) - x.shape[0] * float(e.log_z())

    return grid_posterior(ll, t_min, t_max, n_grid)


@dataclass
class TemperaturePosterior:
    """What :func:`infer_temperature` returns: NUTS draws of ``T`` and their summary, with the flow's own grid
    posterior for comparison."""

    samples: np.ndarray
    """Shape ``(num_chains, num_samples)``."""
    mean: float
    sd: float
    r_hat: float
    ess_bulk: float
    summary: dict[str, Any] = field(default_factory=dict)
    flow_grid_mean: float = float("nan")
    flow_grid_sd: float = float("nan")
    flow_grid: GridPosterior | None = None
    r"""The flow's own grid posterior (:func:`grid_posterior` over :math:`\ln q(x_i \mid T)`)."""
    inference_data: Any = None


def infer_temperature(
    q: ConditionalFlowDistribution,
    x_obs: torch.Tensor,
    t_min: float,
    t_max: float,
    num_samples: int = 1000,
    warmup_steps: int = 500,
    num_chains: int = 4,
    seed: int = 0,
    float64: bool = True,
    flow_grid: int = 201,
) -> TemperaturePosterior:
    """NUTS on :math:`T` in :func:`temperature_model`, ``num_chains`` chains (initialised at uniform random points),
    summarised with ArviZ (``az.summary``: mean, sd, R-hat, bulk ESS).

    Args:
        q: the trained :math:`q(x\\mid T)`.
        x_obs: observed configurations, ``(n, *event_shape)``.
        t_min: lower end of the uniform prior (keep the prior inside the range the flow was trained on).
        t_max: upper end of the uniform prior.
        num_samples: draws per chain.
        warmup_steps: warm-up steps per chain.
        num_chains: chains (run one after another where the machine has too few cores for them).
        seed: Pyro's RNG seed.
        float64: run on a float64 copy of the flow.
        flow_grid: points of the flow's own grid posterior (0 = skip it).
    """
    import arviz as az
    from pyro.infer import MCMC, NUTS

    if float64:
        q = ConditionalFlowDistribution(copy.deepcopy(q.flow).double(), q.z2_symmetric, q.latent_scale)
    for p in q.flow.parameters():
        p.requires_grad_(False)
    dtype = next(q.flow.parameters()).dtype
    x = x_obs.to(dtype)
    model = temperature_model(q, t_min, t_max)
    pyro.set_rng_seed(seed)
    mcmc = MCMC(NUTS(model), num_samples=num_samples, warmup_steps=warmup_steps, num_chains=num_chains,
                disable_progbar=True)
    mcmc.run(x)
    samples = mcmc.get_samples(group_by_chain=True)["T"].detach().cpu().numpy()
    idata = az.from_pyro(mcmc, log_likelihood=False)
    summ = az.summary(idata, var_names=["T"])
    row = summ.loc["T"]
    # az.summary rounds R-hat to two decimals: the unrounded values come from az.rhat / az.ess
    r_hat = float(az.rhat(idata, var_names=["T"])["T"])
    ess_bulk = float(az.ess(idata, var_names=["T"], method="bulk")["T"])
    out = TemperaturePosterior(samples=samples, mean=float(samples.mean()), sd=float(samples.std(ddof=1)),
                               r_hat=r_hat, ess_bulk=ess_bulk,
                               summary={k: float(v) for k, v in row.items()}, inference_data=idata)
    if flow_grid:
        with torch.no_grad():
            g = grid_posterior(lambda T: float(q.distribution(T).log_prob(x).sum()), t_min, t_max, flow_grid)
        out.flow_grid_mean, out.flow_grid_sd, out.flow_grid = g.mean, g.sd, g
    return out
