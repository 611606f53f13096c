r"""Separable Hamiltonians on phase space, :math:`H(q, p) = \sum_i p_i^2 / 2m_i + V(q)`, with exact references.

A phase-space point is a flat vector ``x = (q_1..q_n, p_1..p_n)`` of shape ``(*batch, 2n)``; ``energy(x)`` has
shape ``batch_shape``. The Boltzmann density is :math:`e^{-H/T}/Z` with
:math:`Z = \int d^n q\, d^n p\; e^{-H/T}` (no :math:`h^n`), so the momentum part always contributes
:math:`\tfrac12\sum_i \ln(2\pi m_i T)` to :math:`\ln Z`.

Systems:

- :class:`SeparableHamiltonian` — any user potential :math:`V(q)` (a callable on ``(*batch, n)``) and masses.
- :class:`RingHamiltonian` — :math:`H = (|q| - 2)^2/0.32 + |p|^2/2` in the plane, exact :math:`\ln Z` from a 1D
  radial integral (float64 ``scipy.integrate.quad``).
- :class:`HarmonicChain` — :math:`n` equal masses joined by springs :math:`\kappa`, ends fixed: exact normal-mode
  frequencies :math:`\omega_k = 2\sqrt{\kappa/m}\,\sin\frac{k\pi}{2(n+1)}`, mode profiles, :math:`\ln Z` and the
  exact canonical transformation to independent oscillators.

:func:`velocity_verlet` integrates Hamilton's equations (symplectic, second order) for any of them.

Reference: Li, Dong, Zhang & Wang, *Neural Canonical Transformation with Symplectic Flows*, PRX 10, 021020
(2020), arXiv:1910.00024 (ring: Sec. V A; harmonic chain: Sec. V B).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..errors import EventShapeError
from .base import Energy

__all__ = ["SeparableHamiltonian", "RingHamiltonian", "HarmonicChain", "velocity_verlet"]


class SeparableHamiltonian(Energy):
    r"""Separable Hamiltonian :math:`H(q, p) = \sum_i p_i^2/(2 m_i) + V(q)` on ``(*batch, 2n)``.

    Args:
        n: number of positions.
        potential: callable :math:`V`, ``(*batch, n) -> (*batch,)``; subclasses override :meth:`_potential`
            instead and pass ``None``.
        masses: scalar or ``(n,)`` positive masses.
        temperature: :math:`T > 0`.
        validate: check inputs for NaN/inf.

    Example:
        >>> import torch
        >>> from pyro_nrg.energies.hamiltonians import SeparableHamiltonian
        >>> H = SeparableHamiltonian(2, lambda q: 0.5 * (q**2).sum(-1) + 0.1 * (q**4).sum(-1))
        >>> H.energy(torch.zeros(3, 4)).shape
        torch.Size([3])
    """

    def __init__(
        self,
        n: int,
        potential: Callable[[torch.Tensor], torch.Tensor] | None = None,
        masses: float | torch.Tensor = 1.0,
        temperature: float = 1.0,
        validate: bool = True,
    ) -> None:
        n = int(n)
        if n < 1:
            raise EventShapeError(f"a Hamiltonian needs n >= 1 positions, got n={n}: pass the number of positions")
        super().__init__((2 * n,), temperature=temperature, validate=validate)
        self.n = n
        m = torch.as_tensor(masses, dtype=torch.float64)
        m = m.expand(n).clone() if m.dim() == 0 else m
        if m.shape != (n,) or not bool((m > 0).all()) or not bool(torch.isfinite(m).all()):
            raise EventShapeError(
                f"masses must be a positive scalar or a tensor of shape ({n},), got {tuple(m.shape)} with values "
                f"{m.tolist() if m.numel() < 8 else '...'}: pass e.g. masses=1.0"
            )
        self.register_buffer("masses", m.to(torch.get_default_dtype()))
        self._log_masses = [math.log(float(v)) for v in m]
        self._potential_fn = potential

    # -- pieces -------------------------------------------------------------------------------------------
    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions and momenta, each ``(*batch, n)``."""
        return x[..., : self.n], x[..., self.n :]

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        """Potential energy :math:`V(q)`, ``(*batch, n) -> (*batch,)`` (validated)."""
        if q.dim() < 1 or q.shape[-1] != self.n:
            raise EventShapeError(
                f"{type(self).__name__}.potential expects positions of shape (*batch, {self.n}), got "
                f"{tuple(q.shape)}: pass x[..., :{self.n}] of a phase-space tensor"
            )
        v = self._potential(q)
        if v.shape != q.shape[:-1]:
            raise EventShapeError(
                f"the potential returned shape {tuple(v.shape)} for positions {tuple(q.shape)}; it must return "
                f"shape {tuple(q.shape[:-1])} (batch shape): sum over the last axis, e.g. (q**2).sum(-1)"
            )
        return v

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        if self._potential_fn is None:  # pragma: no cover - subclass contract
            raise NotImplementedError(f"{type(self).__name__} must override _potential or pass potential=")
        return self._potential_fn(q)

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        r"""Kinetic energy :math:`\sum_i p_i^2/(2m_i)`, ``(*batch, n) -> (*batch,)``."""
        return (p**2 / (2 * self.masses.to(p.dtype))).sum(-1)

    def grad_potential(self, q: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla V(q)` of shape ``(*batch, n)`` (autograd unless a subclass has a closed form)."""
        with torch.enable_grad():
            qr = q.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.potential(qr).sum(), qr)
        return g

    def _energy(self, x: torch.Tensor) -> torch.Tensor:
        q, p = self.split(x)
        return self.potential(q) + self.kinetic(p)

    # -- Maxwell-Boltzmann momenta --------------------------------------------------------------------------
    def sample_momenta(
        self,
        sample_shape: tuple[int, ...] | torch.Size,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""Maxwell–Boltzmann momenta :math:`p_i \sim \mathcal N(0, m_i T)`, shape ``(*sample_shape, n)``."""
        dtype = dtype or self.masses.dtype
        eps = torch.randn(*sample_shape, self.n, generator=generator, dtype=dtype)
        eps = eps.to(device) if device is not None else eps
        return eps * torch.sqrt(self.masses.to(eps) * self.temperature)

    def log_z_momenta(self) -> float:
        r"""Momentum part of :math:`\ln Z`: :math:`\tfrac12 \sum_i \ln(2\pi m_i T)` (float64)."""
        return 0.5 * sum(math.log(2 * math.pi * self.temperature) + lm for lm in self._log_masses)

    def extra_repr(self) -> str:
        return f"n={self.n}, T={self.temperature:.6g}"


class RingHamiltonian(SeparableHamiltonian):
    r"""A particle in the plane on a soft ring: :math:`H = (|q| - R)^2 / w + |p|^2/(2m)`, event ``(4,)``.

    Defaults :math:`R = 2`, :math:`w = 0.32`, :math:`m = 1` are the neuralCT paper's ring (PRX 10, 021020, Sec. V A);
    the radial width is :math:`\sqrt{wT/2} = 0.4` at :math:`T = 1`.

    Exact partition function (float64):

    .. math:: \ln Z = \ln(2\pi m T) + \ln \int_0^\infty 2\pi r\, e^{-(r - R)^2/(wT)}\, dr .

    Args:
        radius: :math:`R > 0`.
        width: :math:`w > 0`.
        mass: :math:`m > 0`.
        temperature: :math:`T > 0`.
    """

    def __init__(
        self,
        radius: float = 2.0,
        width: float = 0.32,
        mass: float = 1.0,
        temperature: float = 1.0,
        validate: bool = True,
    ) -> None:
        if not (radius > 0 and width > 0):
            raise EventShapeError(
                f"RingHamiltonian needs radius > 0 and width > 0, got radius={radius}, width={width}: "
                f"the paper's ring is radius=2.0, width=0.32"
            )
        super().__init__(2, None, masses=mass, temperature=temperature, validate=validate)
        self.radius = float(radius)
        self.width = float(width)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.vector_norm(q, dim=-1)
        return (r - self.radius) ** 2 / self.width

    def grad_potential(self, q: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.vector_norm(q, dim=-1, keepdim=True)
        unit = q / r.clamp_min(torch.finfo(q.dtype).tiny ** 0.5)
        return 2 * (r - self.radius) / self.width * unit

    def radial_density(self, r: np.ndarray) -> np.ndarray:
        r"""Unnormalised radial density :math:`2\pi r\, e^{-(r-R)^2/(wT)}` (numpy float64)."""
        r = np.asarray(r, dtype=np.float64)
        return 2 * np.pi * r * np.exp(-((r - self.radius) ** 2) / (self.width * self.temperature))

    def log_z_positions(self) -> float:
        r"""Position part of :math:`\ln Z`, :math:`\ln\int_0^\infty 2\pi r e^{-(r-R)^2/(wT)} dr` (quad, float64)."""
        from scipy.integrate import quad

        sigma = math.sqrt(self.width * self.temperature / 2)
        upper = self.radius + 40 * sigma
        val, _ = quad(self.radial_density, 0.0, upper, points=[self.radius], epsabs=0.0, epsrel=1e-13, limit=200)
        return math.log(val)

    def log_z(self) -> float:
        return self.log_z_positions() + self.log_z_momenta()

    def sample_positions(
        self,
        n_samples: int,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
        grid: int = 200_001,
    ) -> torch.Tensor:
        r"""Exact Boltzmann samples of the positions, ``(n_samples, 2)``: uniform angle, radius by inverse CDF.

        The radial CDF is tabulated on ``grid`` points in float64 and inverted by linear interpolation.
        """
        dtype = dtype or torch.get_default_dtype()
        sigma = math.sqrt(self.width * self.temperature / 2)
        r_grid = np.linspace(0.0, self.radius + 12 * sigma, grid)
        dens = self.radial_density(r_grid)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(r_grid))])
        cdf /= cdf[-1]
        u = torch.rand(n_samples, 2, generator=generator, dtype=torch.float64).numpy()
        r = np.interp(u[:, 0], cdf, r_grid)
        theta = 2 * np.pi * u[:, 1] - np.pi
        q = np.stack([r * np.cos(theta), r * np.sin(theta)], -1)
        return torch.as_tensor(q, dtype=dtype)

    def sample(
        self, n_samples: int, dtype: torch.dtype | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exact Boltzmann samples in phase space, ``(n_samples, 4)``."""
        q = self.sample_positions(n_samples, dtype=dtype, generator=generator)
        p = self.sample_momenta((n_samples,), dtype=q.dtype, generator=generator)
        return torch.cat([q, p], -1)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, width={self.width}, T={self.temperature:.6g}"


class HarmonicChain(SeparableHamiltonian):
    r"""Chain of :math:`n` particles of mass :math:`m` with springs :math:`\kappa` and both ends fixed.

    .. math:: H = \sum_{i=1}^n \frac{p_i^2}{2m} + \frac{\kappa}{2}\sum_{i=0}^{n} (q_{i+1} - q_i)^2,
       \qquad q_0 = q_{n+1} = 0 .

    Normal modes :math:`u_k(i) = \sqrt{2/(n+1)}\,\sin\frac{ik\pi}{n+1}` with frequencies
    :math:`\omega_k = 2\sqrt{\kappa/m}\,\sin\frac{k\pi}{2(n+1)}`, :math:`k = 1..n` (ascending), and
    :math:`\ln Z = \sum_k \ln(2\pi T/\omega_k)`.

    Args:
        n: number of moving particles.
        kappa: spring constant :math:`\kappa > 0`.
        mass: particle mass :math:`m > 0`.
        temperature: :math:`T > 0`.
    """

    def __init__(
        self, n: int, kappa: float = 1.0, mass: float = 1.0, temperature: float = 1.0, validate: bool = True
    ) -> None:
        if not (kappa > 0 and mass > 0):
            raise EventShapeError(
                f"HarmonicChain needs kappa > 0 and mass > 0, got kappa={kappa}, mass={mass}: e.g. kappa=1.0, mass=1.0"
            )
        super().__init__(n, None, masses=mass, temperature=temperature, validate=validate)
        self.kappa = float(kappa)
        self.mass = float(mass)

    def _potential(self, q: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros_like(q[..., :1])
        padded = torch.cat([zero, q, zero], -1)
        return 0.5 * self.kappa * (torch.diff(padded, dim=-1) ** 2).sum(-1)

    def stiffness_matrix(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        r"""Hessian of :math:`V`: :math:`\kappa\,\mathrm{tridiag}(-1, 2, -1)`, shape ``(n, n)``."""
        n = self.n
        k = 2 * torch.eye(n, dtype=dtype) - torch.diag(torch.ones(n - 1, dtype=dtype), 1)
        k = k - torch.diag(torch.ones(n - 1, dtype=dtype), -1)
        return self.kappa * k

    def grad_potential(self, q: torch.Tensor) -> torch.Tensor:
        return q @ self.stiffness_matrix(q.dtype).to(q.device)

    def frequencies(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        r"""Exact normal-mode frequencies :math:`\omega_k`, ascending, shape ``(n,)``."""
        k = torch.arange(1, self.n + 1, dtype=torch.float64)
        w = 2 * math.sqrt(self.kappa / self.mass) * torch.sin(k * math.pi / (2 * (self.n + 1)))
        return w.to(dtype)

    def normal_modes(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        r"""Orthonormal mode profiles as columns, ``(n, n)``; column ``k-1`` is :math:`u_k` (same order as
        :meth:`frequencies`)."""
        i = torch.arange(1, self.n + 1, dtype=torch.float64)
        u = math.sqrt(2 / (self.n + 1)) * torch.sin(torch.outer(i, i) * math.pi / (self.n + 1))
        return u.to(dtype)

    def canonical_matrix(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        r"""Exact linear canonical transformation to independent oscillators, ``(2n, 2n)``.

        :math:`x = M z` with :math:`M = \mathrm{diag}(U D^{-1/2},\, U D^{1/2})`, :math:`D = m\,\mathrm{diag}(\omega)`,
        :math:`U` = :meth:`normal_modes`: then :math:`H(Mz) = \sum_k \omega_k (Q_k^2 + P_k^2)/2` exactly.
        """
        u = self.normal_modes(torch.float64)
        d = self.mass * self.frequencies(torch.float64)
        zero = torch.zeros(self.n, self.n, dtype=torch.float64)
        top = torch.cat([u / torch.sqrt(d), zero], 1)
        bottom = torch.cat([zero, u * torch.sqrt(d)], 1)
        return torch.cat([top, bottom], 0).to(dtype)

    def log_z(self) -> float:
        w = self.frequencies(torch.float64)
        return float(torch.log(2 * math.pi * self.temperature / w).sum())

    def sample(
        self, n_samples: int, dtype: torch.dtype | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Exact Boltzmann samples in phase space, ``(n_samples, 2n)``, via the normal modes."""
        dtype = dtype or torch.get_default_dtype()
        w = self.frequencies(torch.float64)
        z = torch.randn(n_samples, 2 * self.n, generator=generator, dtype=torch.float64)
        z = z * torch.sqrt(self.temperature / torch.cat([w, w]))
        return (z @ self.canonical_matrix().T).to(dtype)

    def extra_repr(self) -> str:
        return f"n={self.n}, kappa={self.kappa}, mass={self.mass}, T={self.temperature:.6g}"


def velocity_verlet(
    hamiltonian: SeparableHamiltonian, x0: torch.Tensor, dt: float, n_steps: int, record_every: int = 1
) -> torch.Tensor:
    r"""Velocity-Verlet (leapfrog) trajectory of a separable Hamiltonian, symplectic and second order in ``dt``.

    .. math:: p_{1/2} = p - \tfrac{dt}{2}\nabla V(q),\quad q' = q + dt\, p_{1/2}/m,\quad
       p' = p_{1/2} - \tfrac{dt}{2}\nabla V(q').

    Args:
        hamiltonian: a :class:`SeparableHamiltonian`.
        x0: initial phase-space points ``(*batch, 2n)``.
        dt: time step.
        n_steps: number of steps.
        record_every: keep every ``record_every``-th state.

    Returns:
        ``(n_steps // record_every + 1, *batch, 2n)`` states at times ``0, record_every*dt, ...``.
    """
    hamiltonian.check_input(x0)
    q, p = hamiltonian.split(x0.detach())
    inv_m = 1.0 / hamiltonian.masses.to(x0)
    out = [x0.detach().clone()]
    with torch.no_grad():
        g = hamiltonian.grad_potential(q)
        for step in range(1, n_steps + 1):
            p = p - 0.5 * dt * g
            q = q + dt * p * inv_m
            g = hamiltonian.grad_potential(q)
            p = p - 0.5 * dt * g
            if step % record_every == 0:
                out.append(torch.cat([q, p], -1))
    return torch.stack(out)
