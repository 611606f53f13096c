r"""Neural canonical transformations: latent harmonic oscillators pushed through a symplectic flow.

The model of Li, Dong, Zhang & Wang, *Neural Canonical Transformation with Symplectic Flows*, PRX 10, 021020
(2020), arXiv:1910.00024. A symplectic bijection :math:`x = g(z)` of phase space, :math:`x = (q, p)`,
:math:`z = (Q, P)`, is learned so that in the latent coordinates the Hamiltonian is a set of independent
oscillators

.. math:: K(z) = \sum_{k=1}^n \frac{\omega_k}{2}\,(Q_k^2 + P_k^2), \qquad
   \rho(z) = \prod_k \frac{\omega_k}{2\pi T}\, e^{-\omega_k (Q_k^2 + P_k^2)/2T},

with learnable frequencies :math:`\omega_k > 0` (parametrised by :math:`\ln\omega_k`). Because :math:`g` is
symplectic, :math:`\ln|\det \partial g/\partial z| = 0` and the phase-space density is exactly
:math:`q(x) = \rho(g^{-1}(x))`. After training:

- the *spectrum* :math:`\{\omega_k\}` sorted ascending; the *slow modes* are the smallest :math:`\omega_k`;
- *latent dynamics*: Hamilton's equations for :math:`K` rotate each pair :math:`(Q_k, P_k)` by the angle
  :math:`\omega_k t`; mapped back with :math:`g` this approximates the physical dynamics (exact when
  :math:`H \circ g = K` + const).

Pieces: :class:`HarmonicOscillators` (the latent distribution), :class:`PhaseSpaceFlow` (the flow distribution,
exact ``log_prob`` without log-determinants), :class:`CanonicalFlow` (an ``nn.Module`` holding the flow and
:math:`\ln\omega`) and :func:`canonical_flow` (sensible defaults). Training lives in
:mod:`pyro_nrg.infer.canonical`.

Example:
    >>> import torch
    >>> from pyro_nrg.canonical import canonical_flow
    >>> model = canonical_flow(2, temperature=1.0, n_blocks=1)
    >>> x = model.sample((5,))
    >>> model.log_prob(x).shape
    torch.Size([5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import nn
from torch.distributions import Transform, constraints

from .energies.base import check_temperature
from .errors import EventShapeError
from .transforms.symplectic import symplectic_flow

__all__ = [
    "HarmonicOscillators",
    "PhaseSpaceFlow",
    "CanonicalFlow",
    "canonical_flow",
    "rotate_oscillators",
    "rank_correlation",
    "circular_rank_correlation",
    "best_latent_correlation",
    "pca_canonical_flow",
    "keep_slow_modes",
    "latent_mode_path",
    "position_log_likelihood",
]


def rotate_oscillators(z: torch.Tensor, omega: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    r"""Exact time evolution of independent oscillators :math:`K = \sum_k \omega_k (Q_k^2 + P_k^2)/2`.

    .. math:: Q_k(t) = Q_k \cos\omega_k t + P_k \sin\omega_k t, \qquad
              P_k(t) = -Q_k \sin\omega_k t + P_k \cos\omega_k t .

    Args:
        z: latent points ``(*batch, 2n)``.
        omega: frequencies ``(n,)``.
        t: time (scalar) or times broadcastable against ``batch_shape + (1,)``.

    Returns:
        ``(*batch, 2n)``.
    """
    n = omega.shape[-1]
    Q, P = z[..., :n], z[..., n:]
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
    phase = omega.to(z) * (t.unsqueeze(-1) if t.dim() else t)
    c, s = torch.cos(phase), torch.sin(phase)
    return torch.cat([Q * c + P * s, -Q * s + P * c], -1)


class HarmonicOscillators(TorchDistribution):
    r"""Boltzmann distribution of independent oscillators :math:`K(z) = \sum_k \omega_k (Q_k^2 + P_k^2)/2` at
    temperature :math:`T`: :math:`Q_k, P_k \sim \mathcal N(0, T/\omega_k)`, event ``(2n,)`` ordered
    ``(Q_1..Q_n, P_1..P_n)``.

    Args:
        omega: frequencies, shape ``(*batch, n)``, positive.
        temperature: :math:`T > 0`.
    """

    arg_constraints = {"omega": constraints.positive}
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(self, omega: torch.Tensor, temperature: float = 1.0, validate_args: bool | None = None) -> None:
        omega = torch.as_tensor(omega)
        if omega.dim() < 1:
            raise EventShapeError(
                f"HarmonicOscillators needs a vector of n frequencies, got a scalar {omega!r}: "
                f"use omega=torch.full((n,), w)"
            )
        self.omega = omega
        self.temperature = check_temperature(temperature)
        n = omega.shape[-1]
        super().__init__(omega.shape[:-1], torch.Size((2 * n,)), validate_args=validate_args)

    @property
    def n(self) -> int:
        return int(self.omega.shape[-1])

    @property
    def scale(self) -> torch.Tensor:
        r"""Standard deviations :math:`\sqrt{T/\omega}` repeated for ``(Q, P)``, shape ``(*batch, 2n)``."""
        s = torch.sqrt(self.temperature / self.omega)
        return torch.cat([s, s], -1)

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros_like(self.scale)

    @property
    def variance(self) -> torch.Tensor:
        return self.scale**2

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self.omega.dtype, device=self.omega.device)
        return eps * self.scale

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        r"""Latent Hamiltonian :math:`K(z)`, shape ``batch_shape``."""
        n = self.n
        w = self.omega.to(z.dtype)
        return 0.5 * (w * (z[..., :n] ** 2 + z[..., n:] ** 2)).sum(-1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(z)
        w = self.omega.to(z.dtype)
        log_norm = torch.log(w / (2 * math.pi * self.temperature)).sum(-1)
        return log_norm - self.energy(z) / self.temperature

    def entropy(self) -> torch.Tensor:
        return (1.0 + torch.log(2 * math.pi * self.temperature / self.omega)).sum(-1)

    def log_z(self) -> torch.Tensor:
        r""":math:`\ln Z_K = \sum_k \ln(2\pi T/\omega_k)`, shape ``batch_shape``."""
        return torch.log(2 * math.pi * self.temperature / self.omega).sum(-1)

    def expand(self, batch_shape: torch.Size | Sequence[int], _instance: HarmonicOscillators | None = None):
        new = self._get_checked_instance(HarmonicOscillators, _instance)
        batch_shape = torch.Size(batch_shape)
        new.omega = self.omega.expand(batch_shape + (self.n,))
        new.temperature = self.temperature
        super(HarmonicOscillators, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


class PhaseSpaceFlow(dist.TransformedDistribution):
    r"""The flow distribution :math:`q(x) = \rho(g^{-1}(x))` of a symplectic flow ``g`` (log-det 0).

    ``log_prob`` skips log-determinants (the flow must be symplectic, e.g. built from
    :mod:`pyro_nrg.transforms.symplectic`). The latent point of the most recent ``rsample`` is remembered, so
    scoring that very tensor (as Pyro's ELBOs do) costs no inverse pass; the value and its gradient are the same
    as through the inverse.

    Args:
        latent: a :class:`HarmonicOscillators` (any distribution with event ``(2n,)`` works).
        flow: symplectic transform ``z -> x``.
    """

    def __init__(self, latent: TorchDistribution, flow: Transform, validate_args: bool | None = None) -> None:
        super().__init__(latent, [flow], validate_args=validate_args)
        self.flow = flow
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        z = self.base_dist.rsample(sample_shape)
        x = self.flow(z)
        self._last = (x, z)
        return x

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """``z = g^{-1}(x)`` (uses the remembered latent of the last sample if ``x`` is that sample)."""
        if self._last is not None and x is self._last[0]:
            return self._last[1]
        return self.flow.inv(x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(x)
        return self.base_dist.log_prob(self.to_latent(x))

    def expand(self, batch_shape: torch.Size | Sequence[int], _instance: PhaseSpaceFlow | None = None):
        new = self._get_checked_instance(PhaseSpaceFlow, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.flow = self.flow
        new._last = None
        return new


class CanonicalFlow(nn.Module):
    r"""A neural canonical transformation: symplectic flow ``z -> x`` plus learnable latent frequencies.

    Args:
        flow: symplectic transform on ``(*batch, 2n)`` (e.g. :func:`~pyro_nrg.transforms.symplectic.
            symplectic_flow`); registered as a submodule when it is an ``nn.Module``.
        n: number of positions.
        temperature: :math:`T > 0` of the Boltzmann distribution.
        omega: initial frequencies (scalar or ``(n,)``), positive.
        learn_omega: train :math:`\ln\omega` (otherwise a buffer).

    Shapes: ``x``, ``z``: ``(*batch, 2n)``; ``log_prob``: ``batch_shape``.
    """

    def __init__(
        self,
        flow: Transform,
        n: int,
        temperature: float = 1.0,
        omega: float | torch.Tensor = 1.0,
        learn_omega: bool = True,
    ) -> None:
        super().__init__()
        self.n = int(n)
        flow_n = getattr(flow, "n", self.n)
        if flow_n != self.n:
            raise EventShapeError(
                f"CanonicalFlow: the flow acts on n={flow_n} positions but n={self.n} was given: pass n={flow_n}"
            )
        self.flow = flow
        self.temperature = check_temperature(temperature)
        w = torch.as_tensor(omega)
        w = w if w.is_floating_point() else w.to(torch.get_default_dtype())
        w = w.expand(self.n).clone() if w.dim() == 0 else w.clone()
        if w.shape != (self.n,) or not bool((w > 0).all()):
            raise EventShapeError(
                f"omega must be a positive scalar or shape ({self.n},), got shape {tuple(w.shape)}: e.g. omega=1.0"
            )
        if learn_omega:
            self.log_omega = nn.Parameter(torch.log(w))
        else:
            self.register_buffer("log_omega", torch.log(w))

    # -- distributions --------------------------------------------------------------------------------------
    @property
    def omega(self) -> torch.Tensor:
        r"""Latent frequencies :math:`\omega = e^{\ln\omega}`, ``(n,)`` in the model's order (unsorted)."""
        return torch.exp(self.log_omega)

    def latent(self) -> HarmonicOscillators:
        """The latent oscillator distribution at the model's temperature."""
        return HarmonicOscillators(self.omega, self.temperature)

    def distribution(self) -> PhaseSpaceFlow:
        """The phase-space flow distribution (a Pyro ``TransformedDistribution``; rebuild after each update)."""
        return PhaseSpaceFlow(self.latent(), self.flow)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\ln q(x) = \ln\rho(g^{-1}(x))`, shape ``batch_shape``."""
        return self.latent().log_prob(self.to_latent(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`log_prob` (lets ``torch.func.functional_call`` evaluate it with other parameters)."""
        return self.log_prob(x)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        """Phase-space samples ``(*sample_shape, 2n)`` (no gradient)."""
        return self.distribution().sample(sample_shape)

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """``z = g^{-1}(x)``."""
        return self.flow.inv(x)

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """``x = g(z)``."""
        return self.flow(z)

    def latent_energy(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`K(z) = \sum_k \omega_k (Q_k^2+P_k^2)/2`, shape ``batch_shape``."""
        return self.latent().energy(z)

    def free_energy(self) -> float:
        r"""Free energy of the latent oscillators, :math:`-T\sum_k \ln(2\pi T/\omega_k)` (float64).

        Equals the physical :math:`F` only when the flow is exact; the variational estimate is
        :func:`pyro_nrg.infer.canonical.canonical_free_energy`.
        """
        w = self.omega.detach().double()
        return float(-self.temperature * torch.log(2 * math.pi * self.temperature / w).sum())

    # -- spectrum and modes -----------------------------------------------------------------------------------
    def frequencies(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted spectrum: ``(omega_sorted, order)`` with ``omega_sorted = omega[order]`` ascending (detached)."""
        w = self.omega.detach()
        order = torch.argsort(w)
        return w[order], order

    def slow_modes(self, k: int = 1) -> torch.Tensor:
        """Indices (into the latent) of the ``k`` slowest modes, slowest first."""
        return self.frequencies()[1][:k]

    def mode_profiles(
        self, modes: torch.Tensor | Sequence[int] | None = None, z0: torch.Tensor | None = None
    ) -> torch.Tensor:
        r"""Physical position response to each latent mode: unit columns :math:`\partial q/\partial Q_k` at ``z0``.

        For a linear flow this is the normal-mode profile; for a nonlinear one it is the local (tangent) profile
        at ``z0`` (default: the latent origin).

        Args:
            modes: latent indices (default: all, sorted slowest first).
            z0: latent point ``(2n,)``.

        Returns:
            ``(n, len(modes))``; each column has unit norm (sign is arbitrary).
        """
        if modes is None:
            modes = self.frequencies()[1]
        modes = torch.as_tensor(modes, dtype=torch.long)
        ref = self.log_omega
        z0 = torch.zeros(2 * self.n, dtype=ref.dtype, device=ref.device) if z0 is None else z0.detach()

        def q_of_z(z: torch.Tensor) -> torch.Tensor:
            return self.flow(z)[..., : self.n]

        jac = torch.autograd.functional.jacobian(q_of_z, z0)  # (n, 2n)
        cols = jac[:, modes].detach()
        return cols / torch.linalg.vector_norm(cols, dim=0, keepdim=True).clamp_min(1e-300)

    # -- dynamics -----------------------------------------------------------------------------------------------
    def evolve(self, x0: torch.Tensor, times: torch.Tensor | Sequence[float]) -> torch.Tensor:
        r"""Physical trajectory from the latent oscillators: :math:`x(t) = g(R_{\omega t}\, g^{-1}(x_0))`.

        Args:
            x0: initial phase-space points ``(*batch, 2n)``.
            times: 1D sequence of times.

        Returns:
            ``(len(times), *batch, 2n)`` (no gradient).
        """
        times = torch.as_tensor(times, dtype=x0.dtype, device=x0.device).reshape(-1)
        with torch.no_grad():
            z0 = self.to_latent(x0)
            w = self.omega.detach()
            zt = torch.stack([rotate_oscillators(z0, w, t) for t in times])
            return self.from_latent(zt)

    def extra_repr(self) -> str:
        return f"n={self.n}, T={self.temperature:.6g}"


def canonical_flow(
    n: int,
    temperature: float = 1.0,
    n_blocks: int = 2,
    n_couplings: int = 4,
    hidden: int = 32,
    depth: int = 2,
    shears: bool = True,
    omega: float | torch.Tensor = 1.0,
) -> CanonicalFlow:
    r"""A :class:`CanonicalFlow` with a default :func:`~pyro_nrg.transforms.symplectic.symplectic_flow`.

    ``n_blocks=0`` gives the linear model (scaling + linear symplectic layer), which is exact for quadratic
    Hamiltonians such as :class:`~pyro_nrg.energies.hamiltonians.HarmonicChain`.
    """
    flow = symplectic_flow(n, n_blocks=n_blocks, n_couplings=n_couplings, hidden=hidden, depth=depth, shears=shears)
    return CanonicalFlow(flow, n, temperature=temperature, omega=omega)


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


# ------------------------------------------------------------------------------------------------------------
# data-driven initialisation, compression and mode paths (real-world demos)


def pca_canonical_flow(
    positions: torch.Tensor,
    temperature: float = 1.0,
    masses: float | torch.Tensor = 1.0,
    n_blocks: int = 2,
    n_couplings: int = 4,
    hidden: int = 32,
    depth: int = 2,
    shears: bool = True,
) -> CanonicalFlow:
    r"""A :func:`canonical_flow` that starts as the harmonic (PCA) model of position samples.

    With mass-weighted coordinates :math:`u = M^{1/2} q` and the eigen-decomposition of their covariance,
    :math:`\mathrm{Cov}(u) = O\,\mathrm{diag}(\sigma_k^2)\,O^\top` (descending), a fixed symplectic point
    transformation

    .. math:: q = M^{-1/2} O D\, \tilde U, \qquad p = M^{1/2} O D^{-1} \tilde P, \qquad
       D = \mathrm{diag}\big(\sqrt{\sigma_k / \sqrt T}\big),

    is appended on the physical side of :func:`~pyro_nrg.transforms.symplectic.symplectic_flow`, and the
    frequencies start at :math:`\omega_k = \sqrt{T}/\sigma_k`: the exact maximum-likelihood oscillators of a
    Gaussian :math:`q` with Maxwell–Boltzmann momenta (:math:`\mathrm{Var}\,U_k = \sigma_k^2`,
    :math:`\mathrm{Var}\,P_k = T`). :math:`D` balances each pair, so the nonlinear blocks see
    :math:`\tilde U_k, \tilde P_k` with equal widths :math:`\sqrt{\sigma_k \sqrt T}` (a symplectic map cannot
    whiten both; choose units in which these are of order one — widths far below one make every Adam step a
    large relative change of the fast modes and training unstable). The nonlinear blocks start at the identity, so
    training begins at the PCA solution and mode ``k`` (in the model's order) starts as the ``k``-th principal
    axis. The flow has no translation: pass centred positions.

    Args:
        positions: ``(N, n)`` centred position samples (only their covariance is used).
        temperature: :math:`T`.
        masses: scalar or ``(n,)``.
        n_blocks: nonlinear blocks of :func:`~pyro_nrg.transforms.symplectic.symplectic_flow` (0: linear model).
        n_couplings: RealNVP couplings per block.
        hidden: width of the coupling and shear networks.
        depth: hidden layers of those networks.
        shears: include the momentum/position shears.

    Returns:
        :class:`CanonicalFlow` in the default dtype.

    Raises:
        EventShapeError: ``positions`` is not ``(N, n)`` with ``N >= 2``.
    """
    from pyro.distributions.torch_transform import ComposeTransformModule

    from .transforms.symplectic import SymplecticLinearMap

    if positions.dim() != 2 or positions.shape[0] < 2:
        raise EventShapeError(
            f"pca_canonical_flow expects positions of shape (N, n) with N >= 2, got {tuple(positions.shape)}"
        )
    T = check_temperature(temperature)
    n = positions.shape[1]
    q = positions.detach().double().cpu()
    m = torch.as_tensor(masses, dtype=torch.float64).expand(n)
    u = q * m.sqrt()
    u = u - u.mean(0)
    evals, O = torch.linalg.eigh(u.T @ u / (u.shape[0] - 1))
    evals, O = evals.flip(0), O.flip(1)  # descending variance: index 0 = slowest mode
    sigma = evals.clamp_min(1e-12 * float(evals.max())).sqrt()
    omega = math.sqrt(T) / sigma
    zero = torch.zeros(n, n, dtype=torch.float64)
    d = (sigma / math.sqrt(T)).sqrt()
    W = O / m.sqrt()[:, None] * d
    Wp = O * m.sqrt()[:, None] / d
    M = torch.cat([torch.cat([W, zero], 1), torch.cat([zero, Wp], 1)], 0)
    base = symplectic_flow(n, n_blocks=n_blocks, n_couplings=n_couplings, hidden=hidden, depth=depth, shears=shears)
    dtype = torch.get_default_dtype()
    flow = ComposeTransformModule([*base.parts, SymplecticLinearMap(M.to(dtype))])
    return CanonicalFlow(flow, n, temperature=T, omega=omega.to(dtype))


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
