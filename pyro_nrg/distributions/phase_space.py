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
:math:`\ln\omega`), :func:`canonical_flow` (sensible defaults) and :func:`pca_canonical_flow` (starts at the
harmonic model of position samples). Training lives in :mod:`pyro_nrg.infer.canonical`; the analysis of a trained
model (slow-mode compression, mode paths, latent correlations, position likelihoods) in
:mod:`pyro_nrg.analysis.modes`.

Example:
    >>> import torch
    >>> from pyro_nrg.distributions.phase_space import canonical_flow
    >>> model = canonical_flow(2, temperature=1.0, n_blocks=1)
    >>> x = model.sample((5,))
    >>> model.log_prob(x).shape
    torch.Size([5])
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import nn
from torch.distributions import Transform, constraints

from ..energies.base import check_temperature
from ..errors import CheckpointError, ConfigMismatchError, EventShapeError
from ..flows import SymplecticFlowConfig, build_flow, symplectic
from .flow import read_flow_file, save_flow_file

__all__ = [
    "HarmonicOscillators",
    "PhaseSpaceFlow",
    "CanonicalFlow",
    "canonical_flow",
    "rotate_oscillators",
    "pca_canonical_flow",
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

    # -- saving -------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the flow (weights and config), the frequencies and the temperature to ``path`` (and the flow config
        to ``path`` + ``.json``), atomically; :meth:`load` rebuilds the model.

        Raises:
            CheckpointError: the flow was not built by :mod:`pyro_nrg.flows` (no config to rebuild it from).
        """
        learn = isinstance(self.log_omega, nn.Parameter)
        extra = {"canonical": {"n": self.n, "temperature": self.temperature, "learn_omega": learn,
                               "log_omega": self.log_omega.detach().clone()}}
        save_flow_file(self.flow, path, extra=extra)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], map_location: str | torch.device | None = None, requires_grad: bool = False
    ) -> CanonicalFlow:
        """Rebuild a model saved by :meth:`save` (parameters frozen unless ``requires_grad``).

        Raises:
            CheckpointError: a damaged file or one that holds no canonical model (see
                :meth:`~pyro_nrg.distributions.FlowDistribution.load`).
            ConfigMismatchError: the weights do not fit the flow the saved config describes.
        """
        blob = read_flow_file(path, map_location)
        spec = blob.get("canonical")
        if not isinstance(spec, dict):
            raise CheckpointError(f"{path} holds no CanonicalFlow: load it with FlowDistribution.load")
        flow = build_flow(blob["config"])
        model = cls(flow, int(spec["n"]), float(spec["temperature"]), learn_omega=bool(spec["learn_omega"]))
        state = {f"flow.{k}": v for k, v in blob["flow"].items()}
        state["log_omega"] = spec["log_omega"]
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigMismatchError(
                f"the weights in {path} do not fit the model its config describes: save the model again. "
                f"Details: {str(exc).splitlines()[0]}"
            ) from exc
        model = model.to(spec["log_omega"].dtype)
        for p in model.parameters():
            p.requires_grad_(requires_grad)
        return model


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
    cfg = SymplecticFlowConfig(
        n=n, n_blocks=n_blocks, n_couplings=n_couplings, hidden=hidden, depth=depth, shears=shears
    )
    return CanonicalFlow(symplectic(cfg), n, temperature=temperature, omega=omega)


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
    cfg = SymplecticFlowConfig(
        n=n, n_blocks=n_blocks, n_couplings=n_couplings, hidden=hidden, depth=depth, shears=shears, fixed_map=True
    )
    flow = symplectic(cfg)
    dtype = torch.get_default_dtype()
    flow.parts[-1].set_matrix(M.to(dtype))
    return CanonicalFlow(flow, n, temperature=T, omega=omega.to(dtype))
