r"""Real scalar :math:`\phi^4` theory on a periodic lattice, with the exact Gaussian (free-field) limit.

Two conventions, each its own *mode* of :class:`Phi4` (the field values mean different things in each):

**Hopping-parameter form** (``Phi4(L, kappa, lam)``; e.g. Albergo, Kanwar & Shanahan, PRD 100, 034515 (2019);
Lüscher & Weisz, Nucl. Phys. B 290, 25 (1987)):

.. math:: S(\phi) = \sum_x \Big[-2\kappa \sum_{\mu=1}^{d} \phi_x \phi_{x+\hat\mu} + \phi_x^2
          + \lambda(\phi_x^2 - 1)^2\Big].

**Mass form** (``Phi4.from_mass(L, m2, lam)``):

.. math:: S(\varphi) = \sum_x \Big[\tfrac12 \sum_{\mu} (\varphi_{x+\hat\mu} - \varphi_x)^2
          + \tfrac12 m^2 \varphi_x^2 + g\, \varphi_x^4\Big], \qquad g = \texttt{lam}.

**Map.** With :math:`\varphi = \sqrt{2\kappa}\,\phi`, the two actions agree up to the constant :math:`\lambda N`:
:math:`2\kappa(2d + m^2) = 2(1 - 2\lambda)` and :math:`\lambda = 4\kappa^2 g`, i.e.

.. math:: \kappa = \frac{\sqrt{(2d + m^2)^2 + 32 g} - (2d + m^2)}{16 g} \ (g > 0), \qquad
          \kappa = \frac1{2d + m^2}\ (g = 0),

and :math:`\ln Z_{\rm mass} = \ln Z_{\rm hop} + \tfrac N2 \ln(2\kappa) + \lambda N`
(see :func:`mass_to_hopping`).

Both are written internally as :math:`S = \sum_x [-J\sum_\mu \phi_x\phi_{x+\hat\mu} + a\phi_x^2 + b\phi_x^4 + c_0]`,
i.e. :math:`S = \tfrac12 \phi^\top M \phi + b\sum_x\phi_x^4 + c_0 N` with :math:`M = 2a\,I - J A`, whose eigenvalues
are :math:`2a - J\lambda_A(k)`. At :math:`b = 0` (free field) :math:`\ln Z = \tfrac N2\ln 2\pi - \tfrac12\sum_k
\ln(2a - J\lambda_A(k)) - c_0 N`, exact, and the field is Gaussian with covariance :math:`M^{-1}`.

The temperature is 1: the energy *is* the action.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import NonFiniteError
from ..lattice import Lattice, neighbour_sum
from .base import Energy
from .ising import (
    NoExactSolutionError,
    NotNormalizableError,
    NotPositiveDefiniteError,
    adjacency_spectrum,
)

__all__ = ["Phi4", "mass_to_hopping"]


def _finite(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NonFiniteError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise NonFiniteError(f"{name} must be finite, got {name}={value!r}: pass a finite float")
    return v


def mass_to_hopping(m2: float, lam: float, dim: int = 2) -> tuple[float, float, float]:
    r"""Hopping-form parameters of the mass-form action (module docstring).

    Args:
        m2: bare mass squared :math:`m^2` of the mass form.
        lam: quartic coupling :math:`g \ge 0` of the mass form.
        dim: lattice dimension.

    Returns:
        ``(kappa, lam_hop, field_scale)`` with :math:`\varphi = \texttt{field\_scale}\cdot\phi`,
        ``field_scale`` :math:`= \sqrt{2\kappa}`.

    Raises:
        NotNormalizableError: ``lam < 0``, or ``lam = 0`` with :math:`2d + m^2 \le 0` (no positive :math:`\kappa`).

    Example:
        >>> kappa, lam_hop, scale = mass_to_hopping(-4.0, 6.975, dim=2)
    """
    m2, g = _finite("m2", m2), _finite("lam", lam)
    if g < 0:
        raise NotNormalizableError(f"the quartic coupling must be >= 0, got lam={lam!r}: use lam >= 0")
    b = 2 * dim + m2
    if g == 0:
        if b <= 0:
            raise NotNormalizableError(
                f"at lam=0 the hopping form needs 2*dim + m2 > 0, got m2={m2!r}: use m2 > {-2 * dim}"
            )
        kappa = 1.0 / b
    else:
        kappa = (math.sqrt(b * b + 32.0 * g) - b) / (16.0 * g) if b <= 0 else 2.0 / (b + math.sqrt(b * b + 32.0 * g))
    return kappa, 4.0 * kappa * kappa * g, math.sqrt(2.0 * kappa)


class Phi4(Energy):
    r"""Lattice :math:`\phi^4` action (hopping-parameter form; :meth:`from_mass` for the mass form).

    .. math:: S(\phi) = \sum_x \Big[-2\kappa \sum_{\mu} \phi_x \phi_{x+\hat\mu} + \phi_x^2
              + \lambda(\phi_x^2 - 1)^2\Big]

    (module docstring for both conventions and the map between them). Temperature 1, so ``energy == action``.
    Neighbour sums use :func:`torch.roll` (periodic), cost :math:`O(N)`, in the dtype of the input.

    Args:
        L: lattice side (``L >= 2``; at ``L = 2`` both neighbours along an axis coincide and the bond counts
            twice, consistently with :func:`pyro_nrg.lattice.adjacency_matrix`).
        kappa: hopping parameter :math:`\kappa`.
        lam: quartic coupling :math:`\lambda \ge 0`.
        dim: 1 or 2.
        validate: check inputs for NaN/inf.

    Shapes:
        ``energy(phi)``: ``(*batch, L)`` / ``(*batch, L, L)`` -> ``(*batch,)``; so are the observables.

    Raises:
        NotNormalizableError: ``lam < 0`` (action unbounded below).
        NotPositiveDefiniteError: ``lam = 0`` and :math:`M = 2I - 2\kappa A` not positive definite (for
            :math:`\kappa > 0`, even ``L``: :math:`\kappa \ge 1/(2d)`).

    Example:
        >>> import torch
        >>> action = Phi4(8, kappa=0.2, lam=0.0)
        >>> action(torch.randn(4, 8, 8)).shape
        torch.Size([4])
        >>> lnz = action.log_z()  # exact at lam = 0
    """

    m_eigenvalues: torch.Tensor

    def __init__(self, L: int, kappa: float, lam: float, dim: int = 2, validate: bool = True) -> None:
        kappa, lam = _finite("kappa", kappa), _finite("lam", lam)
        if lam < 0:
            raise NotNormalizableError(
                f"lam={lam!r} < 0 makes the action unbounded below (exp(-S) is not integrable): use lam >= 0"
            )
        self._setup(L, dim, validate, convention="hopping", hop=2.0 * kappa, quad=1.0 - 2.0 * lam, quart=lam,
                    const=lam)
        self.kappa, self.lam, self.m2 = kappa, lam, None

    @classmethod
    def from_mass(cls, L: int, m2: float, lam: float, dim: int = 2, validate: bool = True) -> Phi4:
        r"""The mass-form action :math:`\sum_x[\frac12\sum_\mu(\varphi_{x+\hat\mu}-\varphi_x)^2
        + \frac12 m^2\varphi_x^2 + \lambda\varphi_x^4]` (field :math:`\varphi` in this convention).

        At ``lam = 0`` this needs :math:`m^2 > 0` (for even ``L``; the spectrum of :math:`M` is
        :math:`m^2 + \sum_\mu 4\sin^2(\pi k_\mu / L)`).
        """
        m2, lam = _finite("m2", m2), _finite("lam", lam)
        if lam < 0:
            raise NotNormalizableError(
                f"lam={lam!r} < 0 makes the action unbounded below (exp(-S) is not integrable): use lam >= 0"
            )
        obj = cls.__new__(cls)
        obj._setup(L, dim, validate, convention="mass", hop=1.0, quad=dim + 0.5 * m2, quart=lam, const=0.0)
        obj.kappa, obj.lam, obj.m2 = None, lam, m2
        return obj

    def _setup(
        self, L: int, dim: int, validate: bool, convention: str, hop: float, quad: float, quart: float, const: float
    ) -> None:
        lat = Lattice(L, dim)
        Energy.__init__(self, lat.event_shape, 1.0, validate)
        self.lattice, self.L, self.dim = lat, lat.L, lat.dim
        self.convention = convention
        self.hop, self.quad, self.quart, self.const = hop, quad, quart, const
        eig = 2.0 * quad - hop * adjacency_spectrum(L, dim)
        self._eig64 = eig
        if quart == 0.0 and eig.min() <= 0:
            if convention == "hopping":
                hint = (
                    f"kappa={hop / 2:.6g} is too large for the free field: all eigenvalues 2 - 2*kappa*lambda_A(k) "
                    f"must be > 0 (smallest {eig.min():.4g}); use |kappa| < 1/(2*dim) = {1 / (2 * dim):.6g}, "
                    f"or lam > 0"
                )
            else:
                hint = (
                    f"m2={2 * quad - 2 * dim:.6g} makes the free field unstable (smallest eigenvalue of M "
                    f"{eig.min():.4g}): use m2 > 0, or lam > 0"
                )
            raise NotPositiveDefiniteError(f"Gaussian action not positive definite: {hint}")
        self.register_exact_buffer("m_eigenvalues", eig)

    @property
    def n_sites(self) -> int:
        """Number of sites ``N``."""
        return self.lattice.n_sites

    @property
    def is_gaussian(self) -> bool:
        """True at zero quartic coupling (exact results available)."""
        return self.quart == 0.0

    def _energy(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.square()
        site = (self.quad * x2 + self.quart * x2.square()).flatten(start_dim=x.dim() - self.dim).sum(-1)
        return -self.hop * neighbour_sum(x, self.dim) + site + self.const * self.n_sites

    def _require_gaussian(self, what: str) -> None:
        if not self.is_gaussian:
            raise NoExactSolutionError(
                f"{what} has no closed form for the interacting theory (lam={self.lam!r} > 0): exact values exist "
                f"only at lam=0; estimate it by sampling (e.g. a flow with pyro_nrg.infer) instead"
            )

    def log_z(self) -> float:
        r"""Exact :math:`\ln Z = \frac N2\ln 2\pi - \frac12\sum_k\ln(2a - J\lambda_A(k)) - c_0 N` at ``lam = 0``.

        Raises:
            NoExactSolutionError: ``lam > 0``.
        """
        self._require_gaussian("ln Z")
        N = self.n_sites
        return 0.5 * N * math.log(2.0 * math.pi) - 0.5 * float(np.log(self._eig64).sum()) - self.const * N

    def exact_susceptibility(self) -> float:
        r"""Exact :math:`\chi_2 = \sum_x \langle\phi_0\phi_x\rangle = 1/(2a - 2dJ)` (the :math:`k = 0` mode of
        :math:`M^{-1}`) at ``lam = 0``.

        Raises:
            NoExactSolutionError: ``lam > 0``.
        """
        self._require_gaussian("the susceptibility")
        return 1.0 / float(self._eig64.reshape(-1)[0])

    def exact_propagator(self) -> torch.Tensor:
        r"""Exact :math:`G(r) = \langle\phi_0\phi_r\rangle` at ``lam = 0``, shape ``event_shape`` (inverse FFT of
        :math:`1/(2a - J\lambda_A(k))`), always float64 (an exact reference, whatever the energy's dtype), on the
        device of the buffers.

        Raises:
            NoExactSolutionError: ``lam > 0``.
        """
        self._require_gaussian("the propagator")
        g = np.fft.ifftn(1.0 / self._eig64).real
        return torch.tensor(g, dtype=torch.float64, device=self.m_eigenvalues.device)

    # -- observables -----------------------------------------------------------------------------------------
    def two_point_susceptibility(self, x: torch.Tensor) -> torch.Tensor:
        r"""Per-configuration estimator :math:`N m^2 = \frac1N(\sum_x\phi_x)^2`, shape ``batch``.

        Its expectation is :math:`\chi_2 = \sum_x\langle\phi_0\phi_x\rangle` (translation invariance); subtract
        :math:`N\langle|m|\rangle^2` for the connected susceptibility in the broken phase.
        """
        return self.n_sites * self.magnetization(x).square()

    def extra_repr(self) -> str:
        if self.convention == "hopping":
            return f"L={self.L}, dim={self.dim}, kappa={self.kappa:.6g}, lam={self.lam:.6g}"
        return f"L={self.L}, dim={self.dim}, m2={self.m2:.6g}, lam={self.lam:.6g} (mass form)"
