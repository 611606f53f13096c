r"""Exact sampling with flow proposals: independence Metropolis–Hastings.

Propose :math:`x' \sim q` independently of the current state and accept with

.. math:: \alpha = \min\Big(1, \frac{p(x')\,q(x)}{p(x)\,q(x')}\Big) = \min\big(1, e^{\ln w(x') - \ln w(x)}\big),
    \qquad \ln w = -\beta E - \ln q,

which leaves :math:`p \propto e^{-\beta E}` invariant for *any* proposal covering its support: a poorly trained
flow costs acceptance, never correctness (Li & Wang 2018; Albergo, Kanwar & Shanahan 2019).

"Covering its support" is asymptotic. A flow trained by reverse KL can put next to no mass where :math:`p` has
plenty (Ising at :math:`T_c`: the disordered configurations), and chains started from flow draws then reach that
region only by proposing it, which does not happen in a practical run: the estimates are biased while every
acceptance statistic looks healthy (``benchmarks/sampling.py``). Check with
:func:`~pyro_nrg.infer.coverage_check`; the remedies are to start from draws of :math:`p` (``init=``) or to
interleave the flow proposals with HMC moves, which reach what the flow misses
(:func:`~pyro_nrg.infer.latent_hmc_walkers` with ``flow_jump_every=1``).

* :class:`FlowIndependenceMH` is a Pyro :class:`~pyro.infer.mcmc.mcmc_kernel.MCMCKernel`, so
  ``pyro.infer.MCMC`` runs it and ``az.from_pyro`` reads it; the site may hold a batch of walkers
  ``(W, *event_shape)`` (one Pyro chain, W independent walkers).
* :func:`flow_mh` runs W walkers in one vectorised batch and returns arrays with one chain per walker
  (Pyro's MCMC has no vectorised chains) as a :class:`~pyro_nrg.infer.mcmc.results.SamplingResult`, which
  :func:`pyro_nrg.analysis.to_inference_data` turns into ArviZ.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from tqdm.auto import tqdm

from ...energies.base import Energy
from ...errors import EventShapeError, NonFiniteError
from ..estimators import check_proposal_fits, log_weights
from .results import SamplingResult
from .starts import check_sampler_sizes

__all__ = ["FlowIndependenceMH", "flow_mh"]


class FlowIndependenceMH(MCMCKernel):
    """Pyro MCMC kernel: independence Metropolis–Hastings with proposals from a (flow) distribution.

    Args:
        energy: target energy (``action(x) = beta E(x)``).
        proposal: distribution with ``sample`` and ``log_prob`` (e.g. ``guide.distribution()``).
        site: name of the configuration site in the samples.
        num_walkers: if given, the state holds ``num_walkers`` independent walkers, shape ``(W, *event_shape)``.

    Example:
        >>> kernel = FlowIndependenceMH(energy, guide.distribution())           # doctest: +SKIP
        >>> mcmc = pyro.infer.MCMC(kernel, num_samples=1000, warmup_steps=100)  # doctest: +SKIP
        >>> mcmc.run(); az.from_pyro(mcmc)                                      # doctest: +SKIP
    """

    def __init__(self, energy: Energy, proposal: Any, site: str = "x", num_walkers: int | None = None) -> None:
        self.energy = energy
        self.proposal = proposal
        self.site = site
        self.num_walkers = num_walkers
        self._x: torch.Tensor | None = None
        self._lw: torch.Tensor | None = None
        self._accepted = 0.0
        self._proposed = 0
        self._initial_params: dict[str, torch.Tensor] | None = None
        self.model = None  # Pyro's MCMC asks; samples live in physical space already
        self.transforms: dict[str, Any] = {}  # identity: no constrained sites

    def _shape(self) -> tuple[int, ...]:
        return () if self.num_walkers is None else (self.num_walkers,)

    @torch.no_grad()
    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        if self._initial_params is None:
            self._initial_params = {self.site: self.proposal.sample(self._shape())}
        x = self._initial_params[self.site]
        lw = log_weights(self.energy, self.proposal, x)
        if not torch.isfinite(lw).all():
            raise NonFiniteError("the initial configuration has a non-finite energy or proposal density")
        self._x, self._lw = x, lw
        self._accepted, self._proposed = 0.0, 0

    @property
    def initial_params(self) -> dict[str, torch.Tensor] | None:
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params: dict[str, torch.Tensor]) -> None:
        self._initial_params = params

    @torch.no_grad()
    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = params[self.site]
        if self._x is None or x is not self._x:
            self._x, self._lw = x, log_weights(self.energy, self.proposal, x)
        xp = self.proposal.sample(self._shape())
        lwp = log_weights(self.energy, self.proposal, xp)
        log_u = torch.log(torch.rand(lwp.shape, dtype=torch.float64, device=lwp.device))
        accept = (log_u < lwp - self._lw) & torch.isfinite(lwp)
        mask = accept.reshape(*accept.shape, *([1] * (x.dim() - accept.dim())))
        x_new = torch.where(mask, xp, x)
        self._lw = torch.where(accept, lwp, self._lw)
        self._x = x_new
        self._accepted += accept.to(torch.float64).mean().item()
        self._proposed += 1
        return {self.site: x_new}

    def logging(self) -> dict[str, str]:
        return {"acc. rate": f"{self.acceptance_rate:.3f}"}

    @property
    def acceptance_rate(self) -> float:
        """Fraction of accepted proposals so far (averaged over walkers)."""
        return self._accepted / max(1, self._proposed)

    def diagnostics(self) -> dict[str, Any]:
        return {"acceptance rate": self.acceptance_rate, "divergences": []}


@torch.no_grad()
def flow_mh(
    energy: Energy,
    proposal: Any,
    num_walkers: int = 64,
    num_samples: int = 1000,
    warmup_steps: int = 100,
    keep_samples: bool = True,
    progress: bool = False,
    init: torch.Tensor | None = None,
) -> SamplingResult:
    r"""Run ``num_walkers`` independent flow-MH chains in one batch (one proposal batch per step).

    Each walker starts from a proposal draw (or from ``init``); ``warmup_steps`` steps are discarded.

    Burn-in matters more than it seems: a walker that starts from :math:`q` is distributed as :math:`q`, not as
    :math:`p`, and it reaches the rare high-weight states that :math:`q` under-samples only by proposing them, so
    the bias of short chains decays slowly when the log-weights are heavy-tailed (PSIS :math:`\hat k > 0.5`,
    see :func:`~pyro_nrg.infer.estimators.psis_khat`). Prefer fewer walkers with long chains over many short ones,
    and read the errors from ArviZ (``to_inference_data`` → ``az.mcse``), whose autocorrelation estimate sees the
    sticky states of long chains.

    Args:
        energy: target energy (``action(x) = beta E(x)``).
        proposal: distribution with ``sample`` and ``log_prob`` (e.g. ``guide.distribution()``).
        num_walkers: independent chains, run as one batch.
        num_samples: recorded steps per walker (after ``warmup_steps``).
        warmup_steps: discarded steps per walker.
        keep_samples: keep the configurations ``(W, num_samples, *event)`` (the observables are always kept).
        progress: a tqdm bar over steps showing the running acceptance.
        init: starting configurations ``(num_walkers, *event_shape)`` instead of proposal draws. Started from
            draws of :math:`p` itself (e.g. the last states of independent
            :func:`~pyro_nrg.infer.latent_hmc_walkers`), every chain is stationary from its first step, so the
            estimate is unbiased at any length even where :math:`q` misses part of :math:`p`: a walker that starts
            there holds its state until the flow proposes something as likely, and ArviZ's between-chain variance
            turns that into an honest error bar.

    Returns:
        :class:`~pyro_nrg.infer.mcmc.results.SamplingResult` with ``method="flow_mh"``: ``accepted``
        ``(W, num_samples)``, ``accept_prob`` (the same as 0/1), ``log_weight`` ``(W, num_samples)`` of the current
        states, the observables, and ``samples`` ``(W, num_samples, *event)`` if kept.

    Raises:
        EventShapeError: ``init`` does not have shape ``(num_walkers, *event_shape)``, or the proposal is for
            another lattice than the energy's.
        NonFiniteError: an ``init`` configuration has a NaN/inf log-weight.
        SamplerSettingsError: ``num_walkers`` or ``num_samples`` below 1.
    """
    check_sampler_sizes("flow_mh", num_walkers=num_walkers, num_samples=num_samples)
    check_proposal_fits(energy, proposal)
    t0 = time.perf_counter()
    event_dim = len(proposal.event_shape)
    if init is None:
        x = proposal.sample((num_walkers,))
    else:
        want = (num_walkers, *proposal.event_shape)
        if tuple(init.shape) != want:
            raise EventShapeError(f"init must have shape {want} (num_walkers, *event_shape), got {tuple(init.shape)}")
        x = init.detach().clone()
    lw = log_weights(energy, proposal, x)
    if init is not None and not bool(torch.isfinite(lw).all()):
        bad = int((~torch.isfinite(lw)).sum())
        raise NonFiniteError(f"{bad} of {num_walkers} init configurations have a NaN/inf log-weight -beta E - ln q: "
                             "start from finite configurations (or leave init=None to start from the flow)")
    xs, accs, lws, obs = [], [], [], []
    n_acc = 0.0
    t_sample = time.perf_counter()
    bar = tqdm(total=warmup_steps + num_samples, disable=not progress, desc="flow-MH", leave=False)
    for t in range(warmup_steps + num_samples):
        bar.update(1)
        if t == warmup_steps:
            t_sample = time.perf_counter()
        xp = proposal.sample((num_walkers,))
        lwp = log_weights(energy, proposal, xp)
        log_u = torch.log(torch.rand(num_walkers, dtype=torch.float64, device=lwp.device))
        accept = (log_u < lwp - lw) & torch.isfinite(lwp)
        x = torch.where(accept.reshape(-1, *([1] * event_dim)), xp, x)
        lw = torch.where(accept, lwp, lw)
        if t < warmup_steps:
            continue
        n_acc += accept.to(torch.float64).mean().item()
        if keep_samples:
            xs.append(x)
        else:
            obs.append(energy.observables(x))
        accs.append(accept)
        lws.append(lw)
        if progress and t % 20 == 0:
            bar.set_postfix(acc=f"{n_acc / (t - warmup_steps + 1):.2f}", refresh=False)
    bar.close()
    samples = torch.stack(xs, 1) if keep_samples else None
    observables = (energy.observables(samples) if samples is not None
                   else {k: torch.stack([o[k] for o in obs], 1) for k in obs[0]})
    accepted = torch.stack(accs, 1)
    W, D = accepted.shape
    return SamplingResult(
        method="flow_mh",
        space="physical",
        samples=samples,
        latent=None,
        observables=observables,
        accept_prob=accepted.to(torch.float64),
        accepted=accepted,
        diverging=torch.zeros(W, D, dtype=torch.bool),
        step_size=None,
        num_grad_evals=torch.zeros(W, D, dtype=torch.int64),
        warmup_grad_evals=torch.zeros(W, dtype=torch.int64),
        log_weight=torch.stack(lws, 1),
        seconds=time.perf_counter() - t0,
        sample_seconds=time.perf_counter() - t_sample,
        energy=energy,
    )
