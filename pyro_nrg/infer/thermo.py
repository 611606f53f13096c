r"""Thermodynamics of the Ising model at any temperature from a temperature-conditioned flow, and the exact curves.

From :math:`n` draws :math:`x_k \sim q(\cdot \mid T)` with log-weights
:math:`\ln w_k = -\beta E_T(x_k) - \ln q(x_k\mid T)` and normalised weights :math:`\tilde w_k` (self-normalised
importance sampling, float64):

* :math:`F = -T \ln Z` of the relaxed model (importance-sampled, with the delta-method error) and the variational
  :math:`F_q`; the Ising free energy per site :math:`f = -T(\ln Z_{\rm relaxed} - c_0)/N`, :math:`c_0` the
  Gaussian constant of the relaxation (:class:`~pyro_nrg.energies.IsingRelaxed`);
* :math:`u = \langle H\rangle / N` and the specific heat :math:`c = C/N = \beta^2 \mathrm{Var}(H)/N` *from the
  energy variance*, with the spins' conditional moments given :math:`x` taken exactly (Rao–Blackwell): given
  :math:`x` the spins are independent with means :math:`t_i = \tanh x_i`, so :math:`\mathbb E[H\mid x] =
  -\sum_{\langle ij\rangle} t_i t_j` and

  .. math:: \mathrm{Var}(H \mid x) = \sum_{\langle ij\rangle} (1 - t_i^2 t_j^2)
            + \sum_i (1 - t_i^2)\Big[\big(\textstyle\sum_{j\sim i} t_j\big)^2 - \sum_{j\sim i} t_j^2\Big]

  (two bonds sharing site :math:`i` have covariance :math:`t_j t_k (1 - t_i^2)`; neighbours are distinct for
  :math:`L \ge 3`), whence :math:`\mathrm{Var}(H) = \mathbb E[\mathrm{Var}(H\mid x) + \mathbb E[H\mid x]^2]
  - \mathbb E[H]^2`;
* :math:`\langle m^2\rangle`, :math:`\langle m^4\rangle` (improved estimators) and the Binder cumulant
  :math:`U_4 = 1 - \langle m^4\rangle / (3\langle m^2\rangle^2)`.

Every error bar is the delta-method standard error of the SNIS ratio, :math:`\sigma^2 = \sum_k \tilde w_k^2 \psi_k^2`
with :math:`\psi` the estimator's influence function. Exact references (:func:`exact_curves`): Kaufman's
:math:`\ln Z`, :math:`u = -\partial_\beta \ln Z / N` (analytic) and :math:`c = du/dT` (central difference of the
analytic :math:`u` in float64); :math:`\langle m^2\rangle` and :math:`U_4` by the row transfer matrix (``L <= 10``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..distributions import ConditionalFlowDistribution
from ..energies.ising import IsingRelaxed, exact_ising_energy_per_site, exact_ising_log_z
from ..energies.transfer_matrix import MAX_TRANSFER_MATRIX_L, exact_ising_moments
from .ais import annealed_importance_sampling
from .estimators import estimate_free_energy, sample_log_weights

__all__ = ["ising_energy_moments", "thermodynamics", "exact_curves", "exact_specific_heat", "curve_peak"]


def ising_energy_moments(energy: IsingRelaxed, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`\mathbb E[H \mid x]` and :math:`\mathrm{Var}(H \mid x)` of the Ising energy of spins drawn given the
    relaxed configurations ``x`` (module docstring), each of shape ``batch``."""
    t = torch.tanh(x)
    dims = tuple(range(t.dim() - energy.dim, t.dim()))
    t2 = t.square()
    mean = x.new_zeros(x.shape[: x.dim() - energy.dim])
    var_bonds = torch.zeros_like(mean)
    nb_sum = torch.zeros_like(t)
    nb_sq = torch.zeros_like(t)
    for axis in dims:
        fwd = torch.roll(t, 1, dims=axis)
        mean = mean - (t * fwd).flatten(x.dim() - energy.dim).sum(-1)
        var_bonds = var_bonds + (1.0 - t2 * fwd.square()).flatten(x.dim() - energy.dim).sum(-1)
        bwd = torch.roll(t, -1, dims=axis)
        nb_sum = nb_sum + fwd + bwd
        nb_sq = nb_sq + fwd.square() + bwd.square()
    var = var_bonds + ((1.0 - t2) * (nb_sum.square() - nb_sq)).flatten(x.dim() - energy.dim).sum(-1)
    return mean, var


def _snis(w: torch.Tensor, f: torch.Tensor) -> tuple[float, float]:
    mu = (w * f).sum()
    return float(mu), float(torch.sqrt((w.square() * (f - mu).square()).sum()))


@torch.no_grad()
def thermodynamics(
    q: ConditionalFlowDistribution,
    energy_at: Callable[[float], IsingRelaxed],
    temperatures: Sequence[float],
    n: int = 8192,
    batch_size: int = 4096,
    seed: int | None = 0,
    float64: bool = True,
    ais: tuple[int, int] | None = None,
) -> list[dict[str, float]]:
    """Importance-sampled thermodynamics of the relaxed Ising model at every temperature (module docstring).

    Args:
        q: the trained :math:`q(x \\mid T)` (:meth:`ConditionalDistiller.distribution
            <pyro_nrg.infer.temperature.ConditionalDistiller.distribution>`).
        energy_at: builds :class:`~pyro_nrg.energies.IsingRelaxed` at ``T`` (e.g. ``functools.partial(IsingRelaxed,
            8)``).
        temperatures: where to estimate.
        n: draws per temperature.
        batch_size: draws per flow call.
        seed: every temperature draws from the same seeded stream (common random numbers: the curves are smooth in
            ``T`` and their differences more precise than the points); ``None`` = the global RNG.
        float64: evaluate a float64 copy of the flow.
        ais: ``(particles, temperatures)``: weight the draws of annealed importance sampling from the flow
            (:func:`~pyro_nrg.infer.annealed_importance_sampling`, latent HMC from :math:`q` to :math:`p` at every
            ``T``) instead of the flow's own draws (``n`` is then ignored). The variance-based :math:`c` needs the
            tails that a reverse-KL flow under-covers; AIS fills them at the cost of the HMC transitions.

    Returns:
        One dict per temperature: ``T``, ``f_q``, ``f_q_err``, ``f_is``, ``f_is_err`` (relaxed model, total),
        ``f_q_rel_err``, ``is_rel_err`` (against the exact F), ``ess_fraction``, ``khat``, ``f`` and ``f_err``
        (Ising free energy per site), ``u``, ``u_err``, ``c``, ``c_err`` (per site), ``m2``, ``m2_err``, ``binder``,
        ``binder_err``.
    """
    if float64:
        q = ConditionalFlowDistribution(copy.deepcopy(q.flow).double(), q.z2_symmetric, q.latent_scale)
    rows = []
    for T in temperatures:
        T = float(T)
        energy = energy_at(T).double() if float64 else energy_at(T)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            if ais is None:
                x, lw = sample_log_weights(energy, q.distribution(T), n, batch_size)
            else:
                res = annealed_importance_sampling(energy, q.distribution(T), num_particles=int(ais[0]),
                                                   num_temperatures=int(ais[1]), batch_size=batch_size)
                x, lw = res.samples, res.log_weights
        x = x.to(torch.float64)
        exact = float(energy.log_z())
        est = estimate_free_energy(lw, T, exact)
        N, beta = energy.n_sites, 1.0 / T
        c0 = exact - energy.log_z_ising()
        w = torch.softmax(lw.to(torch.float64), 0)
        mean_h, var_h = ising_energy_moments(energy, x)
        u, u_err = _snis(w, mean_h / N)
        mu = float((w * mean_h).sum())
        second = var_h + mean_h.square()
        m2h = float((w * second).sum())
        psi = (second - m2h) - 2.0 * mu * (mean_h - mu)
        c = beta**2 * (m2h - mu**2) / N
        c_err = beta**2 * float(torch.sqrt((w.square() * psi.square()).sum())) / N
        m2i, m4i = energy.m2_improved(x), energy.m4_improved(x)
        m2, m2_err = _snis(w, m2i)
        m4 = float((w * m4i).sum())
        psi_b = -(m4i - m4) / (3.0 * m2**2) + 2.0 * m4 * (m2i - m2) / (3.0 * m2**3)
        rows.append({
            "T": T, "f_q": est.f_q, "f_q_err": est.f_q_err, "f_is": est.f_is, "f_is_err": est.f_is_err,
            "f_q_rel_err": est.f_q_rel_err, "is_rel_err": est.is_rel_err, "ess_fraction": est.ess_fraction,
            "khat": est.khat, "f": -T * (est.log_z - c0) / N, "f_err": T * est.log_z_err / N, "u": u, "u_err": u_err,
            "c": c, "c_err": c_err, "m2": m2, "m2_err": m2_err, "binder": 1.0 - m4 / (3.0 * m2**2),
            "binder_err": float(torch.sqrt((w.square() * psi_b.square()).sum())),
        })
    return rows


def exact_specific_heat(L: int, temperature: float, h: float = 1e-4) -> float:
    """Exact Ising specific heat per site :math:`c = du/dT` on the ``L x L`` torus: central difference (step
    ``h * T``) of Kaufman's analytic :math:`u = \\langle H\\rangle/N` in float64 (relative error ~1e-8)."""
    T = float(temperature)
    step = h * T
    return (exact_ising_energy_per_site(L, T + step) - exact_ising_energy_per_site(L, T - step)) / (2.0 * step)


def _exact_peak(L: int, lo: float, hi: float) -> tuple[float, float]:
    """Position and height of the maximum of :func:`exact_specific_heat` in ``[lo, hi]`` (grid, then golden
    section to 1e-7)."""
    grid = np.linspace(lo, hi, 201)
    k = int(np.argmax([exact_specific_heat(L, t) for t in grid]))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    g = (math.sqrt(5.0) - 1.0) / 2.0
    while b - a > 1e-7:
        c1, c2 = b - g * (b - a), a + g * (b - a)
        if exact_specific_heat(L, c1) > exact_specific_heat(L, c2):
            b = c2
        else:
            a = c1
    t = 0.5 * (a + b)
    return t, exact_specific_heat(L, t)


def exact_curves(L: int, temperatures: Sequence[float], moments: bool = True) -> dict[str, Any]:
    """Exact finite-``L`` curves of the 2D Ising model (J = 1) at ``temperatures`` and the exact C(T) peak.

    Returns ``{"rows": [...], "c_peak": (T, c)}``; each row holds ``T``, ``f`` (Ising free energy per site,
    Kaufman), ``u``, ``c`` (per site), ``f_relaxed`` (:math:`-T\\ln Z` of the relaxed model with the default shift)
    and, with ``moments`` and ``L <= 10``, ``m2`` and ``binder`` (transfer matrix).
    """
    rows = []
    for T in temperatures:
        T = float(T)
        row = {"T": T, "f": -T * exact_ising_log_z(L, T) / L**2, "u": exact_ising_energy_per_site(L, T),
               "c": exact_specific_heat(L, T), "f_relaxed": IsingRelaxed(L, T).free_energy()}
        if moments and L <= MAX_TRANSFER_MATRIX_L:
            mom = exact_ising_moments(L, T)
            row["m2"], row["binder"] = mom.m2, mom.binder
        rows.append(row)
    return {"rows": rows, "c_peak": _exact_peak(L, float(min(temperatures)), float(max(temperatures)))}


def curve_peak(temperatures: Sequence[float], values: Sequence[float], points: int = 7) -> tuple[float, float]:
    """Position and height of a curve's maximum: a least-squares parabola through the ``points`` samples around
    the largest one (the largest sample itself if the parabola opens upwards or its vertex leaves those points)."""
    t = np.asarray(temperatures, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    k = int(np.argmax(y))
    half = points // 2
    lo, hi = max(0, k - half), min(len(t), k + half + 1)
    if hi - lo >= 3:
        a, b, c = np.polyfit(t[lo:hi], y[lo:hi], 2)
        if a < 0:
            vertex = -b / (2.0 * a)
            if t[lo] <= vertex <= t[hi - 1]:
                return float(vertex), float(c - b * b / (4.0 * a))
    return float(t[k]), float(y[k])
