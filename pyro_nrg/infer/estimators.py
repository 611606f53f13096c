r"""Free-energy and observable estimators from flow samples, all in float64.

With samples :math:`x_i \sim q` and log-weights :math:`\ln w_i = -\beta E(x_i) - \ln q(x_i)`:

* variational free energy :math:`F_q = -T\,\overline{\ln w} \ge F` (an upper bound), standard error
  :math:`T\,\mathrm{sd}(\ln w)/\sqrt n`;
* importance-sampled :math:`\ln Z = \ln \tfrac1n\sum_i w_i` (log-mean-exp), with the delta-method error
  :math:`\sigma_{\ln Z} = \mathrm{sd}(w)/(\sqrt n\,\bar w)` (or a bootstrap), and :math:`F = -T\ln Z`;
* effective sample size :math:`\mathrm{ESS} = (\sum w)^2/\sum w^2` and Pareto-smoothed :math:`\hat k` (PSIS,
  Vehtari et al. 2015; :math:`\hat k > 0.7` means the IS estimate is unreliable);
* self-normalised importance sampling (SNIS) means of observables with delta-method errors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from pyro.ops.stats import fit_generalized_pareto

from ..energies.base import Energy
from ..errors import EventShapeError

__all__ = [
    "FreeEnergyEstimate",
    "log_mean_exp",
    "log_z_importance",
    "effective_sample_size",
    "psis_khat",
    "snis_mean",
    "estimate_free_energy",
    "sample_log_weights",
    "log_weights",
    "importance_observables",
    "CoverageReport",
    "coverage_check",
    "ForwardKL",
    "forward_kl",
    "check_proposal_fits",
]


def log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """:math:`\\ln \\frac1n \\sum e^{\\ln w_i}` in float64."""
    lw = log_w.detach().to(torch.float64).reshape(-1)
    return torch.logsumexp(lw, 0) - math.log(lw.numel())


def log_z_importance(
    log_w: torch.Tensor, bootstrap: int = 0, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """Importance-sampled :math:`\\ln Z` and its error (delta method, or the bootstrap sd if ``bootstrap > 0``)."""
    lw = log_w.detach().to(torch.float64).reshape(-1)
    n = lw.numel()
    est = log_mean_exp(lw).item()
    if bootstrap > 0:
        idx = torch.randint(0, n, (bootstrap, n), generator=generator)
        reps = torch.logsumexp(lw[idx], 1) - math.log(n)
        return est, reps.std(unbiased=True).item()
    w = torch.exp(lw - lw.max())
    err = (w.std(unbiased=True) / (math.sqrt(n) * w.mean())).item() if n > 1 else float("inf")
    return est, err


def effective_sample_size(log_w: torch.Tensor) -> float:
    """Kish effective sample size :math:`(\\sum w)^2/\\sum w^2` (between 1 and n)."""
    lw = log_w.detach().to(torch.float64).reshape(-1)
    return torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)).item()


def psis_khat(log_w: torch.Tensor) -> float:
    """Pareto :math:`\\hat k` of the largest importance weights (the recipe of ``pyro.infer.psis_diagnostic``).

    Uses the top :math:`\\min(0.2 n, 3\\sqrt n)` weights and Pyro's ``fit_generalized_pareto``; returns ``inf``
    when fewer than 10 tail samples are available.
    """
    lw = log_w.detach().to(torch.float64).reshape(-1)
    n = lw.numel()
    lw = torch.sort(lw - lw.max())[0]
    cutoff_index = -int(math.ceil(min(0.2 * n, 3.0 * math.sqrt(n)))) - 1
    if -cutoff_index > n:
        return float("inf")
    lw_cutoff = max(math.log(1.0e-15), lw[cutoff_index].item())
    tail = lw[lw > lw_cutoff]
    if tail.numel() < 10:
        return float("inf")
    k, _ = fit_generalized_pareto(tail.exp() - math.exp(lw_cutoff))
    return float(k)


def snis_mean(values: torch.Tensor, log_w: torch.Tensor | None = None) -> tuple[float, float]:
    r"""Self-normalised importance-sampling mean of ``values`` (shape ``(n,)``) and its delta-method error.

    :math:`\hat\mu = \sum \tilde w_i f_i`, :math:`\sigma^2 = \sum \tilde w_i^2 (f_i - \hat\mu)^2` with normalised
    weights :math:`\tilde w`. Without ``log_w`` it is the plain mean and standard error.
    """
    f = values.detach().to(torch.float64).reshape(-1)
    if log_w is None:
        return f.mean().item(), (f.std(unbiased=True) / math.sqrt(f.numel())).item()
    lw = log_w.detach().to(torch.float64).reshape(-1)
    w = torch.softmax(lw, 0)
    mu = (w * f).sum()
    err = torch.sqrt((w**2 * (f - mu) ** 2).sum())
    return mu.item(), err.item()


@dataclass
class FreeEnergyEstimate:
    """Free-energy estimates from ``n`` flow samples (float64; ``F = -T ln Z``).

    Attributes:
        f_q, f_q_err: variational free energy (an upper bound of F) and its standard error.
        log_z, log_z_err: importance-sampled ln Z and its error; f_is, f_is_err = -T ln Z and its error.
        ess_fraction: Kish ESS / n; khat: PSIS Pareto k-hat.
        exact_log_z: the exact reference if known (else None); then f_q_rel_err / is_rel_err are relative
            errors of F_q and F_IS against exact F, and is_sigma the deviation of ln Z in units of its error.
    """

    n: int
    temperature: float
    f_q: float
    f_q_err: float
    log_z: float
    log_z_err: float
    f_is: float
    f_is_err: float
    ess_fraction: float
    khat: float
    exact_log_z: float | None = None
    f_q_rel_err: float | None = None
    is_rel_err: float | None = None
    is_sigma: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


def estimate_free_energy(
    log_w: torch.Tensor, temperature: float, exact_log_z: float | None = None, bootstrap: int = 0
) -> FreeEnergyEstimate:
    """All free-energy estimators from one set of log-weights (see the module docstring)."""
    lw = log_w.detach().to(torch.float64).reshape(-1)
    n = lw.numel()
    T = float(temperature)
    f_q = -T * lw.mean().item()
    f_q_err = T * lw.std(unbiased=True).item() / math.sqrt(n)
    log_z, log_z_err = log_z_importance(lw, bootstrap=bootstrap)
    est = FreeEnergyEstimate(
        n=n,
        temperature=T,
        f_q=f_q,
        f_q_err=f_q_err,
        log_z=log_z,
        log_z_err=log_z_err,
        f_is=-T * log_z,
        f_is_err=T * log_z_err,
        ess_fraction=effective_sample_size(lw) / n,
        khat=psis_khat(lw),
    )
    if exact_log_z is not None:
        f_exact = -T * exact_log_z
        est.exact_log_z = float(exact_log_z)
        est.f_q_rel_err = (f_q - f_exact) / abs(f_exact)
        est.is_rel_err = (est.f_is - f_exact) / abs(f_exact)
        est.is_sigma = (log_z - exact_log_z) / log_z_err if log_z_err > 0 else float("inf")
    return est


def check_proposal_fits(energy: Energy, q: Any) -> None:
    """Raise :class:`EventShapeError` unless the distribution ``q`` has the energy's event shape.

    Every log-weight :math:`-\beta E(x) - \\ln q(x)` evaluates both on the same ``x``.
    """
    qs, es = tuple(q.event_shape), tuple(energy.event_shape)
    if qs != es:
        raise EventShapeError(
            f"the flow distribution has event shape {qs} but {type(energy).__name__} has configurations of shape "
            f"{es}: use a flow trained for this lattice (e.g. distill(energy, neural_rg(L={es[0]}), ...)) and pass "
            "guide.distribution()"
        )


def log_weights(energy: Energy, q: Any, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\ln w(x) = -\beta E(x) - \ln q(x)` in float64, shape ``batch`` (the one definition every estimator,
    flow-MH and the coverage check use)."""
    return -energy.action(x).to(torch.float64) - q.log_prob(x).to(torch.float64)


@torch.no_grad()
def sample_log_weights(
    energy: Energy, q: Any, n: int, batch_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw ``n`` samples from ``q`` in batches; return ``x`` and :math:`\ln w = -\beta E(x) - \ln q(x)` (float64).

    ``q`` is any distribution with ``sample``/``rsample`` and ``log_prob`` (e.g. a guide's ``distribution()``).
    For the most accurate final figures evaluate a float64 copy of the flow.
    """
    xs, lws = [], []
    left = int(n)
    while left > 0:
        b = min(batch_size, left)
        x = q.rsample((b,)) if q.has_rsample else q.sample((b,))
        lw = log_weights(energy, q, x)
        xs.append(x)
        lws.append(lw)
        left -= b
    return torch.cat(xs), torch.cat(lws)


@torch.no_grad()
def importance_observables(energy: Energy, x: torch.Tensor, log_w: torch.Tensor) -> dict[str, tuple[float, float]]:
    """SNIS estimates ``name -> (mean, error)`` of :meth:`~pyro_nrg.energies.Energy.observables` (m, |m|, m²,
    energy per site, physical energy) from flow samples and their log-weights."""
    return {name: snis_mean(v, log_w) for name, v in energy.observables(x).items()}


def _target_log_weights(energy: Energy, q: Any, x_target: torch.Tensor, batch_size: int) -> torch.Tensor:
    r""":math:`\ln w` (float64, shape ``(S,)``) of target draws of any leading shape, evaluated in batches."""
    es = len(q.event_shape)
    xt = x_target.reshape(-1, *x_target.shape[x_target.dim() - es:]) if es else x_target.reshape(-1)
    return torch.cat([log_weights(energy, q, b) for b in xt.split(batch_size)])


@dataclass
class CoverageReport:
    r"""Does the flow :math:`q` cover the target :math:`p`? Log-weights on target samples vs on flow samples.

    Attributes:
        n_target: target samples used (e.g. HMC draws); n_proposal: flow samples.
        log_w_target_median, log_w_proposal_median: medians of :math:`\ln w` on each set.
        log_w_proposal_max: the largest :math:`\ln w` among the flow samples.
        fraction_beyond: fraction of target samples whose :math:`\ln w` exceeds ``log_w_proposal_max`` — an
            estimate of the share of :math:`p` that ``n_proposal`` flow draws never reach.
        gap_nats: 99th percentile of :math:`\ln w` on target samples minus ``log_w_proposal_max`` (> 0: some
            target configurations are :math:`e^{\rm gap}` times more under-represented than anything the flow
            proposes).
        covered: ``fraction_beyond < threshold``.
    """

    n_target: int
    n_proposal: int
    log_w_target_median: float
    log_w_proposal_median: float
    log_w_proposal_max: float
    fraction_beyond: float
    gap_nats: float
    covered: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


@torch.no_grad()
def coverage_check(
    energy: Energy, q: Any, x_target: torch.Tensor, n_proposal: int = 8192, threshold: float = 0.01,
    batch_size: int = 4096,
) -> CoverageReport:
    r"""Detect regions of the target that the flow (almost) never proposes — reverse-KL mode seeking.

    Reverse KL barely penalises a flow that omits part of :math:`p`: dropping a fraction :math:`\epsilon` of the
    mass costs only :math:`-\ln(1-\epsilon)` nats of :math:`F_q/T`. Importance sampling and flow-MH are exact only
    in the limit, and cannot correct what :math:`q` never proposes in a practical run: both then agree with each
    other and are both biased (at the 2D Ising :math:`T_c` a flow can miss the disordered, :math:`m \approx 0`
    configurations while its :math:`F_q` is close to exact: ``benchmarks/coverage_exact.py``). Samples of :math:`p`
    from a sampler that does not rely on :math:`q`'s coverage (latent or physical HMC, or a reference Monte
    Carlo) expose the hole: their log-weights :math:`\ln w = -\beta E - \ln q` lie far above those of flow
    samples there.

    Args:
        energy: target energy.
        q: flow distribution (``sample``/``log_prob``).
        x_target: samples of the target ``(S, *event_shape)`` (any correlated chain draws are fine).
        n_proposal: flow samples to compare with.
        threshold: ``covered`` when ``fraction_beyond`` is below it.
        batch_size: evaluation batch.

    Returns:
        :class:`CoverageReport`.

    Raises:
        EventShapeError: ``q`` is a flow for another lattice than the energy's.
    """
    check_proposal_fits(energy, q)
    lw_t = _target_log_weights(energy, q, x_target, batch_size)
    _, lw_q = sample_log_weights(energy, q, n_proposal, batch_size)
    lw_t, lw_q = lw_t[torch.isfinite(lw_t)], lw_q[torch.isfinite(lw_q)]
    top = float(lw_q.max())
    frac = float((lw_t > top).to(torch.float64).mean())
    gap = float(torch.quantile(lw_t, 0.99)) - top
    return CoverageReport(int(lw_t.numel()), int(lw_q.numel()), float(lw_t.median()), float(lw_q.median()), top,
                          frac, gap, frac < threshold)


@dataclass
class ForwardKL:
    r""":math:`\mathrm{KL}(p\,\|\,q)` in nats from exact draws of :math:`p` (see :func:`forward_kl`).

    Attributes:
        kl: :math:`\mathbb E_p[\ln w] - \ln Z`.
        kl_err: its standard error (independent draws assumed).
        n: draws used.
    """

    kl: float
    kl_err: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


@torch.no_grad()
def forward_kl(
    energy: Energy, q: Any, x_target: torch.Tensor, log_z: float | None = None, batch_size: int = 4096
) -> ForwardKL:
    r"""Mass-covering divergence :math:`\mathrm{KL}(p\,\|\,q) = \mathbb E_{x\sim p}[\ln w(x)] - \ln Z` (nats).

    Distillation minimises the reverse KL, :math:`(F_q - F)/T = \ln Z - \mathbb E_q[\ln w]`, which barely
    penalises a :math:`q` that omits part of :math:`p`; the forward KL is what such a hole costs, and it is
    what bounds importance sampling and independence Metropolis (their efficiency needs
    :math:`\mathrm{KL}(p\|q)` of order one). It needs exact draws of :math:`p` and the exact :math:`\ln Z`, which
    the relaxed Ising model has (:meth:`~pyro_nrg.energies.IsingRelaxed.exact_samples`, Kaufman's :math:`\ln Z`).

    Args:
        energy: target energy (``log_z()`` gives :math:`\ln Z` when ``log_z`` is None).
        q: flow distribution with ``log_prob``.
        x_target: independent draws of :math:`p`, shape ``(S, *event_shape)``, in ``q``'s dtype.
        log_z: exact :math:`\ln Z` (default ``energy.log_z()``).
        batch_size: evaluation batch.

    Returns:
        :class:`ForwardKL` (error from the sample standard deviation; correlated draws understate it).
    """
    lz = float(energy.log_z() if log_z is None else log_z)
    lw = _target_log_weights(energy, q, x_target, batch_size)
    n = int(lw.numel())
    err = float(lw.std()) / math.sqrt(n) if n > 1 else float("inf")
    return ForwardKL(float(lw.mean()) - lz, err, n)
