r"""Annealed importance sampling (AIS) from a trained flow to the Boltzmann distribution: :math:`\ln Z` and observables.

Plain importance sampling with the flow (:mod:`pyro_nrg.infer.estimators`) is exact only in the limit: where the
flow :math:`q` misses part of the target (reverse KL is mode seeking), the weights are heavy tailed (PSIS
:math:`\hat k > 0.5`), the estimate of :math:`\ln Z` is biased low at any practical sample size, and its
delta-method error bar is too small. AIS (Neal, *Statistics and Computing* 11, 125 (2001); the non-equilibrium
work relation of Jarzynski, PRL 78, 2690 (1997)) moves each flow sample towards the target through a sequence of
intermediate distributions with MCMC, accumulating the work as it goes, and stays unbiased for :math:`Z`.

**In latent space.** With :math:`z \sim \mathcal N(0, I)`, :math:`x = g(z)` and the log-weight

.. math:: \ln w(z) = \ln \tilde\pi(g(z)) + \ln\left|\det \frac{\partial g}{\partial z}\right|
          - \ln \mathcal N(z; 0, I), \qquad \tilde\pi = e^{-\beta E}
          \;(\text{times } 2h \text{ with } Z_2, \text{ below}),

the path :math:`\pi_b(z) \propto \mathcal N(z)\, w(z)^{b}`, :math:`0 = b_0 < b_1 < \dots < b_K = 1`, runs from
the flow's base distribution to the pull-back of the target. Each particle starts at :math:`z_0 \sim \mathcal N`,
and for :math:`k = 1..K`

.. math:: \ln W \mathrel{+}= (b_k - b_{k-1}) \ln w(z_{k-1}), \qquad z_k \sim T_{b_k}(z_{k-1}, \cdot),

with :math:`T_b` HMC transitions that leave :math:`\pi_b` invariant (potential
:math:`U_b = \tfrac12|z|^2 - b \ln w(z)`). Then :math:`\mathbb E[W] = Z` exactly for any :math:`K`, and
:math:`\hat{\ln Z} = \ln \tfrac1n \sum_i W_i`; with :math:`K = 1` and no transitions it is plain importance
sampling. Observables are self-normalised averages of :math:`f(g(z_K))` with weights :math:`W`. The cost is
``num_temperatures × hmc_iterations × num_leapfrog`` energy gradients (through the flow) per particle.

**Z₂ symmetry without an inverse.** A flow trained with the :math:`Z_2`-symmetrized mixture usually covers one
magnetisation sector; its own samples then see only half of :math:`Z`. For an energy with :math:`E(-x) = E(x)`,
AIS targets :math:`2h\,e^{-\beta E}` instead, whose integral is :math:`Z` for any :math:`h(x) + h(-x) = 1`, with
the sector function :math:`h(x) = \sigma(\kappa\bar x)` of :mod:`pyro_nrg.infer.mcmc.sector` (:math:`\kappa` fitted
on independent flow draws; any :math:`\kappa` is exact, a good one lowers the variance); the final samples get a
random sign so that odd observables are right too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..energies.base import Energy
from .estimators import FreeEnergyEstimate, estimate_free_energy, importance_observables
from .mcmc.sector import resolve_sector
from .mcmc.starts import check_start
from .mcmc.walkers import hmc_step, hmc_walkers, value_and_grad
from .pushforward import check_flow_fits, flow_event_shape, flow_of, frozen, param_dtype, to_physical

__all__ = ["AISResult", "annealed_importance_sampling", "annealing_schedule"]


def annealing_schedule(num_temperatures: int, kind: str = "sigmoid", sharpness: float = 4.0) -> torch.Tensor:
    r"""Inverse-temperature path :math:`0 = b_0 < \dots < b_K = 1` (float64, length ``num_temperatures + 1``).

    ``"linear"``: equal steps. ``"sigmoid"`` (Grosse, Maddison & Salakhutdinov, NeurIPS 2013):
    :math:`b_k \propto \sigma(\delta (2k/K - 1))` rescaled to :math:`[0, 1]`, with :math:`\delta` = ``sharpness``;
    finer steps at both ends, where :math:`\operatorname{Var}_{\pi_b}[\ln w]` is largest for a trained flow.

    Args:
        num_temperatures: ``K >= 1``.
        kind: ``"linear"`` or ``"sigmoid"``.
        sharpness: :math:`\delta` of the sigmoid schedule.

    Raises:
        ValueError: ``K < 1`` or an unknown ``kind``.
    """
    K = int(num_temperatures)
    if K < 1:
        raise ValueError(f"num_temperatures must be >= 1 (1 = plain importance sampling), got {num_temperatures}")
    t = torch.linspace(0.0, 1.0, K + 1, dtype=torch.float64)
    if kind == "linear":
        return t
    if kind == "sigmoid":
        s = torch.sigmoid(sharpness * (2 * t - 1))
        b = (s - s[0]) / (s[-1] - s[0])
        b[0], b[-1] = 0.0, 1.0
        return b
    raise ValueError(f"unknown annealing schedule {kind!r}: use 'linear' or 'sigmoid' (or pass the b_k themselves)")


def _schedule(spec: str | Sequence[float] | torch.Tensor, K: int) -> torch.Tensor:
    if isinstance(spec, str):
        return annealing_schedule(K, spec)
    b = torch.as_tensor(spec, dtype=torch.float64).reshape(-1)
    if b.numel() < 2 or b[0] != 0.0 or b[-1] != 1.0 or bool((b[1:] < b[:-1]).any()):
        raise ValueError(f"an explicit schedule must rise from 0 to 1 (non-decreasing), got {b.tolist()}")
    return b


LogWeight = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _pilot_step_size(log_w: LogWeight, z0: torch.Tensor, red: tuple[int, ...], iterations: int, num_leapfrog: int,
                     target_accept_prob: float) -> tuple[float, int]:
    r"""Dual-averaging step size on the final target :math:`\tfrac12|z|^2 - \ln w(z)` from independent particles
    ``z0``, and the gradients each pilot particle spent."""

    def pilot_potential(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lw, _ = log_w(z)
        return 0.5 * z.square().sum(red) - lw, z

    pilot = hmc_walkers(pilot_potential, z0, num_samples=1, warmup_steps=iterations, step_size=0.2,
                        num_steps=num_leapfrog, adapt_step_size=True, target_accept_prob=target_accept_prob,
                        keep_samples=False)
    return float(pilot["step_size"]), int(pilot["warmup_grad_evals"]) + num_leapfrog


def _anneal(log_w: LogWeight, z: torch.Tensor, betas: torch.Tensor, red: tuple[int, ...], eps: float,
            hmc_iterations: int, num_leapfrog: int, acc_sum: torch.Tensor, bar: Any) -> tuple[torch.Tensor, Any]:
    r"""One batch of AIS particles from :math:`z \sim \mathcal N` along ``betas``: :math:`\ln W` (float64) and the
    final configurations; adds each temperature's summed acceptance to ``acc_sum``."""
    lw, glw, x = value_and_grad(log_w, z)
    check_start(z, lw, "annealed_importance_sampling")
    logW = torch.zeros(z.shape[0], dtype=torch.float64)
    for k in range(1, betas.numel()):
        b = float(betas[k])
        logW += (b - float(betas[k - 1])) * lw.to(torch.float64)
        if hmc_iterations == 0:
            continue

        def u_grad(v: torch.Tensor, b: float = b) -> tuple[torch.Tensor, torch.Tensor, Any]:
            lwv, gv, xv = value_and_grad(log_w, v)
            return 0.5 * v.square().sum(red) - b * lwv, v - b * gv, (lwv, gv, xv)

        u, g = 0.5 * z.square().sum(red) - b * lw, z - b * glw
        for _ in range(hmc_iterations):
            z, u, g, (lw, glw, x), acc, _, _, _ = hmc_step(u_grad, z, u, g, (lw, glw, x), eps, num_leapfrog)
            acc_sum[k - 1] += acc.sum() / hmc_iterations
        bar.update(1)
    return logW, x


@dataclass
class AISResult:
    r"""Result of :func:`annealed_importance_sampling`.

    Attributes:
        log_weights: :math:`\ln W` per particle ``(n,)``, float64 (:math:`\mathbb E[W] = Z`).
        samples: final physical configurations ``(n, *event_shape)`` (``None`` unless kept), with a random sign
            when ``z2_sharpness`` is not ``None``.
        temperature: :math:`T` of the energy (for :math:`F = -T \ln Z`).
        betas: the schedule :math:`b_0..b_K`.
        step_size: leapfrog step size used at every temperature.
        acceptance: mean HMC acceptance probability at each :math:`b_1..b_K` ``(K,)``.
        grad_evals_per_particle: energy gradients per particle (the pilot excluded).
        pilot_grad_evals_per_particle: gradients per pilot particle spent tuning the step size (0 if given).
        z2_sharpness: :math:`\kappa` of the :math:`Z_2` sector function, ``None`` without :math:`Z_2`.
        seconds: wall time, pilot included.
    """

    log_weights: torch.Tensor
    samples: torch.Tensor | None
    temperature: float
    betas: torch.Tensor
    step_size: float
    acceptance: torch.Tensor
    grad_evals_per_particle: int
    pilot_grad_evals_per_particle: int
    z2_sharpness: float | None
    seconds: float
    observables_: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        """Number of particles."""
        return int(self.log_weights.numel())

    def estimate(self, exact_log_z: float | None = None, bootstrap: int = 0) -> FreeEnergyEstimate:
        r""":math:`\ln Z`, :math:`F = -T\ln Z` with errors, ESS/N and :math:`\hat k` of the AIS weights.

        The ``f_q`` field is :math:`-T\langle \ln W\rangle`, an upper bound on :math:`F` (Jensen) that is tighter
        than the flow's variational :math:`F_q` when the transitions help.
        """
        return estimate_free_energy(self.log_weights, self.temperature, exact_log_z, bootstrap=bootstrap)

    def observables(self) -> dict[str, tuple[float, float]]:
        """Self-normalised AIS estimates ``name -> (mean, error)`` of the physical observables (needs samples)."""
        return dict(self.observables_)


@torch.no_grad()
def annealed_importance_sampling(
    energy: Energy,
    guide_or_flow: Any,
    num_particles: int = 1024,
    num_temperatures: int = 64,
    schedule: str | Sequence[float] | torch.Tensor = "sigmoid",
    num_leapfrog: int = 5,
    hmc_iterations: int = 1,
    step_size: float | None = None,
    target_accept_prob: float = 0.8,
    pilot_particles: int = 128,
    pilot_iterations: int = 60,
    z2_symmetric: bool | None = None,
    batch_size: int = 1024,
    keep_samples: bool = True,
    progress: bool = False,
) -> AISResult:
    r"""AIS from a trained flow to :math:`e^{-\beta E}` in the flow's latent space (see the module docstring).

    Args:
        energy: the target energy (``action(x)`` = :math:`\beta E(x)`, shape ``batch``).
        guide_or_flow: a trained :class:`~pyro_nrg.infer.FlowGuide`, a (:math:`Z_2`-symmetrized) flow
            distribution or the flow transform (latent → physical).
        num_particles: independent AIS particles :math:`n`.
        num_temperatures: :math:`K` (1 with ``hmc_iterations=0`` is plain importance sampling).
        schedule: ``"sigmoid"``, ``"linear"`` or the :math:`b_0..b_K` themselves (then ``num_temperatures``
            is ignored).
        num_leapfrog: leapfrog steps per HMC transition.
        hmc_iterations: HMC transitions at each temperature.
        step_size: leapfrog step size; ``None`` tunes it first by dual averaging to ``target_accept_prob`` on the
            final target with ``pilot_particles`` independent particles for ``pilot_iterations`` iterations
            (independent of the estimate, which stays unbiased).
        target_accept_prob: acceptance the pilot aims at.
        pilot_particles: independent particles of the step-size pilot run.
        pilot_iterations: dual-averaging iterations of the pilot run.
        z2_symmetric: target :math:`2h e^{-\beta E}` for a :math:`Z_2`-symmetric energy (see the module
            docstring); ``None`` follows the guide (its ``z2_symmetric``, or a :class:`Z2Symmetrized`).
        batch_size: particles processed together (memory).
        keep_samples: keep the final physical configurations (needed for :meth:`AISResult.observables`).
        progress: a tqdm bar over temperatures.

    Returns:
        :class:`AISResult`.

    Raises:
        ValueError: bad schedule or sizes.
        EventShapeError: a flow for another lattice than the energy's.
        NonFiniteError: the flow's samples give NaN energies.
    """
    if num_particles < 2 or batch_size < 1 or hmc_iterations < 0 or num_leapfrog < 1:
        raise ValueError(
            f"need num_particles >= 2, batch_size >= 1, hmc_iterations >= 0 and num_leapfrog >= 1; got "
            f"{num_particles}, {batch_size}, {hmc_iterations}, {num_leapfrog}"
        )
    t0 = time.perf_counter()
    flow = flow_of(guide_or_flow)
    check_flow_fits(flow, energy)
    fes = flow_event_shape(flow, energy)
    dtype = param_dtype(flow)
    betas = _schedule(schedule, num_temperatures)
    K = betas.numel() - 1
    log_norm = -0.5 * math.prod(fes) * math.log(2 * math.pi)
    red = tuple(range(1, 1 + len(fes)))

    with frozen(flow), energy.unvalidated():
        sector = resolve_sector(energy, guide_or_flow, flow, z2_symmetric, max(pilot_particles, 512))
        kappa = None if sector is None else sector.sharpness

        def log_w(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x, ldj = to_physical(flow, energy, z)
            lw = -energy.action(x) + ldj + 0.5 * z.square().sum(red) - log_norm
            if sector is not None:
                lw = lw + sector.log_weight(x)
            return lw, x

        if step_size is None:  # tune on the final target with independent particles: the estimate stays unbiased
            eps, pilot_grads = _pilot_step_size(log_w, torch.randn(pilot_particles, *fes, dtype=dtype), red,
                                                pilot_iterations, num_leapfrog, target_accept_prob)
        else:
            eps, pilot_grads = float(step_size), 0

        all_lw, all_x = [], []
        acc_sum = torch.zeros(K, dtype=torch.float64)
        bar = tqdm(total=K * math.ceil(num_particles / batch_size), disable=not progress, desc="AIS", leave=False)
        left = int(num_particles)
        while left > 0:
            n = min(batch_size, left)
            left -= n
            logW, x = _anneal(log_w, torch.randn(n, *fes, dtype=dtype), betas, red, eps, hmc_iterations,
                              num_leapfrog, acc_sum, bar)
            all_lw.append(logW)
            if keep_samples:
                all_x.append(x)
        bar.close()

    log_weights = torch.cat(all_lw)
    samples = torch.cat(all_x) if keep_samples else None
    if samples is not None and sector is not None:  # random sign: odd observables see the symmetric target
        samples = sector.random_sign(samples)
    obs = importance_observables(energy, samples, log_weights) if samples is not None else {}
    return AISResult(
        log_weights=log_weights,
        samples=samples,
        temperature=float(energy.temperature),
        betas=betas,
        step_size=eps,
        acceptance=acc_sum / num_particles,
        grad_evals_per_particle=1 + K * hmc_iterations * num_leapfrog,
        pilot_grad_evals_per_particle=pilot_grads,
        z2_sharpness=kappa,
        seconds=time.perf_counter() - t0,
        observables_=obs,
    )
