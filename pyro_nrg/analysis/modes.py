r"""Slow modes of a trained neural canonical transformation: compression, mode paths, correlations, likelihoods.

Functions of a trained :class:`~pyro_nrg.distributions.phase_space.CanonicalFlow` (Li, Dong, Zhang & Wang,
PRX 10, 021020 (2020)): :func:`keep_slow_modes` (conceptual compression onto the ``k`` slowest modes),
:func:`latent_mode_path` (physical points along one latent mode), :func:`position_log_likelihood` (marginal
likelihood of positions by importance sampling over momenta), and rank correlations between latent coordinates and
physical observables (:func:`rank_correlation`, :func:`circular_rank_correlation`, :func:`best_latent_correlation`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..distributions.phase_space import CanonicalFlow
from ..errors import EventShapeError

__all__ = [
    "rank_correlation",
    "circular_rank_correlation",
    "best_latent_correlation",
    "keep_slow_modes",
    "latent_mode_path",
    "position_log_likelihood",
]


def _ranks(u: torch.Tensor) -> torch.Tensor:
    """Standardised ranks along the last axis (ties broken by order; fine for continuous data)."""
    r = torch.argsort(torch.argsort(u, dim=-1), dim=-1).to(torch.float64)
    r = r - r.mean(-1, keepdim=True)
    return r / torch.linalg.vector_norm(r, dim=-1, keepdim=True)


def rank_correlation(u: torch.Tensor, v: torch.Tensor) -> float:
    """Spearman rank correlation of two 1D samples."""
    return float((_ranks(u.detach().double()) * _ranks(v.detach().double())).sum())


def circular_rank_correlation(u: torch.Tensor, angle: torch.Tensor) -> float:
    r"""Rank correlation of a linear variable with an angle, maximised over where the circle is cut.

    An angle has no natural origin: a latent coordinate that tracks :math:`\theta` monotonically once around the
    circle has Spearman correlation 1 with :math:`\theta` only if the branch cut sits where the coordinate wraps.
    This returns :math:`\max_\alpha |\rho_S(u, (\theta - \alpha) \bmod 2\pi)|` over *all* ``N`` distinct cuts
    (between consecutive sample angles), in :math:`O(N \log N)`: cutting after the :math:`c`-th smallest angle
    shifts the angle ranks cyclically, :math:`s_i = (r_i - c) \bmod N`, so
    :math:`\sum_i \tilde u_i s_i = \sum_i \tilde u_i r_i + N \sum_{r_i < c} \tilde u_i` with centred ranks
    :math:`\tilde u` — a prefix sum. 1 means a perfectly monotone relation around the circle, ~0 independence.
    """
    uc = _ranks(u.detach().double().reshape(-1))
    a = angle.detach().double().reshape(-1)
    N = a.numel()
    order = torch.argsort(a)
    r = torch.empty(N, dtype=torch.float64)
    r[order] = torch.arange(N, dtype=torch.float64)
    rc = r - r.mean()
    base = float((uc * r).sum())
    prefix = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(uc[order], 0)[:-1]])
    corr = (base + N * prefix) / torch.linalg.vector_norm(rc)
    return float(corr.abs().max())


def best_latent_correlation(
    z: torch.Tensor, target: torch.Tensor, circular: bool = False, n_phases: int = 36
) -> tuple[float, int, float]:
    r"""Best rank correlation between a latent coordinate and a physical observable.

    The oscillator latent is invariant under rotations within each pair :math:`(Q_k, P_k)` (and the latent
    dynamics *are* such rotations), so "the coordinate of mode :math:`k`" is
    :math:`u_{k,\phi} = Q_k\cos\phi + P_k\sin\phi` for some phase :math:`\phi`; this scans ``n_phases`` phases in
    :math:`[0, \pi)` for every mode and returns the largest :func:`rank_correlation` (or
    :func:`circular_rank_correlation` when ``circular``).

    Args:
        z: latent points ``(N, 2n)``.
        target: observable ``(N,)`` (an angle in radians when ``circular``).

    Returns:
        ``(correlation, mode, phase)``.
    """
    n = z.shape[-1] // 2
    best = (-1.0, -1, 0.0)
    for k in range(n):
        for j in range(n_phases):
            phi = math.pi * j / n_phases
            u = z[:, k] * math.cos(phi) + z[:, n + k] * math.sin(phi)
            c = circular_rank_correlation(u, target) if circular else abs(rank_correlation(u, target))
            if c > best[0]:
                best = (c, k, phi)
    return best


def keep_slow_modes(model: CanonicalFlow, x: torch.Tensor, k: int) -> torch.Tensor:
    r"""Conceptual compression: keep the ``k`` slowest latent modes of ``x`` and set the others to zero (their mean).

    .. math:: \hat x = g\big(\Pi_k\, g^{-1}(x)\big), \qquad \Pi_k (Q, P)_j = (Q_j, P_j)\ \text{if}\ \omega_j
       \text{ is among the } k \text{ smallest, else } (0, 0).

    Args:
        model: trained :class:`CanonicalFlow`.
        x: phase-space points ``(*batch, 2n)`` (e.g. positions with zero momenta).
        k: number of modes kept, ``0 <= k <= n``.

    Returns:
        ``(*batch, 2n)`` reconstructions (no gradient).
    """
    if not 0 <= k <= model.n:
        raise EventShapeError(f"keep_slow_modes: k must be in [0, {model.n}], got {k}")
    with torch.no_grad():
        z = model.to_latent(x)
        keep = torch.zeros(model.n, dtype=z.dtype, device=z.device)
        keep[model.slow_modes(k).to(z.device)] = 1.0
        return model.from_latent(z * torch.cat([keep, keep]))


def latent_mode_path(
    model: CanonicalFlow, rank: int, amplitudes: torch.Tensor | Sequence[float], z0: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Physical points along one latent mode: :math:`x(a) = g(z_0 + a \sqrt{T/\omega_k}\, e_{Q_k})`.

    Args:
        model: :class:`CanonicalFlow`.
        rank: position of the mode in the sorted spectrum (0 = slowest).
        amplitudes: ``(A,)`` displacements in units of the mode's thermal width :math:`\sqrt{T/\omega_k}`.
        z0: latent starting point ``(2n,)`` (default: the origin).

    Returns:
        ``(A, 2n)`` (no gradient).
    """
    w, order = model.frequencies()
    j = int(order[rank])
    ref = model.log_omega
    a = torch.as_tensor(amplitudes, dtype=ref.dtype, device=ref.device).reshape(-1)
    z = torch.zeros(a.numel(), 2 * model.n, dtype=ref.dtype, device=ref.device)
    if z0 is not None:
        z = z + z0.to(z)
    z[:, j] = z[:, j] + a * math.sqrt(model.temperature) / w[rank].to(z).sqrt()
    with torch.no_grad():
        return model.from_latent(z)


def position_log_likelihood(
    model: CanonicalFlow,
    positions: torch.Tensor,
    masses: float | torch.Tensor = 1.0,
    n_momenta: int = 16,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Marginal log-likelihood of positions under a phase-space model, by importance sampling over momenta.

    A model trained on :math:`(q, p)` with Maxwell–Boltzmann :math:`p \sim \pi(p) = \mathcal N(0, mT)` defines
    :math:`q(q) = \int q(q, p)\,dp`. With :math:`\pi` as proposal, for :math:`K` draws :math:`p_k \sim \pi`,

    .. math:: \ln \hat q_K(q) = \ln \frac1K \sum_{k=1}^K \frac{q(q, p_k)}{\pi(p_k)}, \qquad
       \mathbb E \ln \hat q_1 \le \mathbb E \ln \hat q_K \le \ln q(q),

    so :math:`-\ln\hat q_1` (the Jensen bound, the training objective minus the momentum entropy) and
    :math:`-\ln\hat q_K` are upper bounds on the NLL in expectation, the second tighter.

    Args:
        model: :class:`CanonicalFlow`.
        positions: ``(N, n)``.
        masses: scalar or ``(n,)``.
        n_momenta: :math:`K`.
        batch_size: rows per chunk.
        generator: torch RNG for the momenta.

    Returns:
        ``(log_q_jensen, log_q_is)``, each ``(N,)`` in float64: the mean over ``k`` of the log-weights, and their
        log-mean-exp.
    """
    T = model.temperature
    n = model.n
    if positions.dim() != 2 or positions.shape[1] != n:
        raise EventShapeError(f"position_log_likelihood expects (N, {n}) positions, got {tuple(positions.shape)}")
    ref = model.log_omega
    m = torch.as_tensor(masses, dtype=torch.float64).expand(n)
    var = (m * T).to(ref.device)
    log_norm = -0.5 * torch.log(2 * math.pi * var).sum()
    jensen, iw = [], []
    with torch.no_grad():
        for q in torch.split(positions.to(ref), batch_size):
            lw = []
            for _ in range(n_momenta):
                eps = torch.randn(q.shape, generator=generator, dtype=q.dtype).to(q.device)
                p = eps * var.sqrt().to(q)
                log_pi = log_norm - 0.5 * (p.double() ** 2 / var).sum(-1)
                lw.append(model.log_prob(torch.cat([q, p], -1)).double() - log_pi)
            lw = torch.stack(lw)
            jensen.append(lw.mean(0))
            iw.append(torch.logsumexp(lw, 0) - math.log(n_momenta))
    return torch.cat(jensen), torch.cat(iw)
