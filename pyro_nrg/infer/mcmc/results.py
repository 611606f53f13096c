r"""The one result type of every sampler: draws and per-draw statistics, one chain per chain or walker.

:func:`~pyro_nrg.infer.latent_nuts`, :func:`~pyro_nrg.infer.physical_nuts`,
:func:`~pyro_nrg.infer.latent_hmc_walkers`, :func:`~pyro_nrg.infer.physical_hmc_walkers` and
:func:`~pyro_nrg.infer.flow_mh` all return a :class:`SamplingResult` with arrays of shape
``(chains, draws, ...)``; :func:`pyro_nrg.analysis.to_inference_data` turns any of them into ArviZ
``InferenceData``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...energies.base import Energy

__all__ = ["SamplingResult"]


@dataclass
class SamplingResult:
    r"""Draws and diagnostics of one sampler run, one chain per chain or walker.

    Attributes:
        method: ``"nuts"``, ``"hmc"``, ``"hmc_walkers"`` or ``"flow_mh"``.
        space: ``"latent"`` or ``"physical"``.
        samples: physical configurations ``(chains, draws, *event_shape)`` (``None`` if not kept).
        latent: latent draws ``(chains, draws, *latent_shape)`` for latent-space runs (``None`` otherwise or if not
            kept); NeuTra runs keep Pyro's flat latent vector ``(chains, draws, N)``.
        observables: float64 tensors ``(chains, draws)``: ``m``, ``abs_m``, ``m2``, ``energy_per_site``,
            ``physical_energy`` (see :meth:`pyro_nrg.energies.Energy.observables`).
        accept_prob: Metropolis acceptance probability of each transition, ``(chains, draws)`` (for NUTS the mean
            over the tree, as in Pyro; for flow-MH 1 where the proposal was accepted, else 0).
        accepted: whether each transition moved (walkers and flow-MH; ``None`` for NUTS).
        diverging: divergent transitions ``(chains, draws)`` (energy error above 1000 or non-finite).
        step_size: leapfrog step size used for each draw ``(chains, draws)`` (``None`` for flow-MH).
        num_grad_evals: potential-gradient evaluations spent on each draw ``(chains, draws)`` (after warm-up).
        warmup_grad_evals: gradient evaluations spent in set-up and warm-up, ``(chains,)``.
        renormalized_energy: the latent potential of each draw, ``(chains, draws)`` (latent runs only):
            :math:`\beta E_{\rm eff}(z)`, minus :math:`\ln 2h(g(z))` when the run used the :math:`Z_2` sector
            function.
        z2_sharpness: :math:`\kappa` of the sector function :math:`h(x) = \sigma(\kappa\bar x)` the run targeted
            :math:`2h\,p` with (its draws then carry random signs, :mod:`pyro_nrg.infer.mcmc.sector`); ``None``
            without.
        jump_accepted: for walkers run with flow jumps (``flow_jump_every``), whether a flow jump was accepted since
            the previous draw, ``(chains, draws)`` (``False`` where none was made); ``None`` otherwise.
        log_weight: for flow-MH, :math:`\ln w = -\beta E - \ln q` of the current state ``(chains, draws)``.
        seconds: wall time of the whole run; sample_seconds: of the sampling phase (after warm-up).
        energy: the energy sampled (not serialised).
    """

    method: str
    space: str
    samples: torch.Tensor | None
    latent: torch.Tensor | None
    observables: dict[str, torch.Tensor]
    accept_prob: torch.Tensor
    accepted: torch.Tensor | None
    diverging: torch.Tensor
    step_size: torch.Tensor | None
    num_grad_evals: torch.Tensor
    warmup_grad_evals: torch.Tensor
    renormalized_energy: torch.Tensor | None = None
    z2_sharpness: float | None = None
    jump_accepted: torch.Tensor | None = None
    log_weight: torch.Tensor | None = None
    seconds: float = 0.0
    sample_seconds: float = 0.0
    energy: Energy | None = field(default=None, repr=False)

    @property
    def num_chains(self) -> int:
        """Number of chains (walkers)."""
        return int(self.accept_prob.shape[0])

    @property
    def num_draws(self) -> int:
        """Draws per chain (after warm-up and thinning)."""
        return int(self.accept_prob.shape[1])

    @property
    def total_grad_evals(self) -> int:
        """Gradient evaluations of the sampling phase, summed over chains."""
        return int(self.num_grad_evals.sum())

    @property
    def acceptance_rate(self) -> float:
        """Mean acceptance probability over all draws."""
        return float(self.accept_prob.to(torch.float64).mean())
