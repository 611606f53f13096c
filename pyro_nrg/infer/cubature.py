r"""Exact variational free energy of a linear canonical flow on a quadratic Hamiltonian, minimised by L-BFGS.

For an affine flow :math:`x = g(z) = Mz + b` on a latent of independent oscillators,
:math:`z = \sigma_\omega \odot \varepsilon` with :math:`\varepsilon \sim \mathcal N(0, I_{2n})` and
:math:`\sigma_\omega = \sqrt{T/\omega}`, and a quadratic Hamiltonian
:math:`H(x) = \tfrac12 x^\top S x + c^\top x + h_0`, every term of

.. math:: F_q = \mathbb E_\varepsilon\big[H(g(z)) + T\ln\rho_\omega(z) - T\ln|\det\partial g/\partial z|\big]

is a polynomial of degree at most two in :math:`\varepsilon`. Its expectation therefore needs only the first two
moments of :math:`\varepsilon`, and the :math:`2d` *sigma points* :math:`\varepsilon \in \{\pm\sqrt d\, e_k\}`
(:math:`d = 2n`) have exactly mean 0 and covariance :math:`I`. Averaged over them, :math:`F_q` is exact — no
Monte Carlo noise — so a quasi-Newton method converges to the optimum to machine precision, where stochastic
gradients stall: the directions that mix two nearly degenerate normal modes have curvature
:math:`\propto(\omega_i-\omega_j)^2`, far below the gradient noise of a sampled objective.

:func:`refine_quadratic` checks that the flow is affine and the Hamiltonian quadratic (second differences at
random points) and refuses anything else with :class:`~pyro_nrg.errors.NoExactSolutionError`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import NoExactSolutionError, TrainingDivergedError

__all__ = ["sigma_points", "quadratic_free_energy", "refine_quadratic", "RefineResult"]


def sigma_points(d: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    r"""The :math:`2d` points :math:`\pm\sqrt d\, e_k`, shape ``(2d, d)``: sample mean exactly 0, sample covariance
    exactly :math:`I_d`, so their average of any polynomial of degree :math:`\le 2` equals its Gaussian expectation.
    """
    if d < 1:
        raise NoExactSolutionError(f"sigma_points needs a dimension d >= 1, got {d}")
    eye = torch.eye(d, dtype=dtype, device=device) * math.sqrt(d)
    return torch.cat([eye, -eye])


def quadratic_free_energy(model: Any, hamiltonian: Any, eps: torch.Tensor | None = None) -> torch.Tensor:
    r"""The sigma-point average of :math:`F_q` (a scalar tensor with gradient; exact for an affine flow on a
    quadratic Hamiltonian, see the module doc).

    Args:
        model: a :class:`~pyro_nrg.distributions.CanonicalFlow` (``omega``, ``temperature``, ``latent()``, ``flow``).
        hamiltonian: energy on ``(*batch, 2n)``.
        eps: the base points ``(N, 2n)`` (default :func:`sigma_points`).
    """
    omega = model.omega
    d = 2 * model.n
    if eps is None:
        eps = sigma_points(d, omega.dtype, omega.device)
    latent = model.latent()
    z = eps * latent.scale
    x = model.flow(z)
    log_det = model.flow.log_abs_det_jacobian(z, x)
    T = model.temperature
    return (hamiltonian.energy(x) + T * (latent.log_prob(z) - log_det)).mean()


def _third_difference(fn: Any, d: int, dtype: torch.dtype, device: torch.device, seed: int = 0) -> float:
    """Largest third difference :math:`f(a+3b) - 3f(a+2b) + 3f(a+b) - f(a)` of ``fn`` along 4 random lines,
    relative to the scale of its values: zero (to rounding) exactly when ``fn`` has degree <= 2 there."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    a = torch.randn(4, d, generator=g, dtype=dtype).to(device)
    b = torch.randn(4, d, generator=g, dtype=dtype).to(device)
    vals = [fn(a + k * b) for k in range(4)]
    third = vals[3] - 3 * vals[2] + 3 * vals[1] - vals[0]
    scale = max(float(torch.stack([v.abs().max() for v in vals]).max()), 1.0)
    return float(third.abs().max()) / scale


@dataclass
class RefineResult:
    """Outcome of :func:`refine_quadratic`: :math:`F_q` (exact) before and after, iterations, wall time."""

    f_q_start: float
    f_q: float
    iterations: int
    seconds: float
    history: list[float] = field(default_factory=list)


def refine_quadratic(
    model: Any,
    hamiltonian: Any,
    max_iter: int = 5000,
    tolerance: float = 0.0,
    restarts: int = 2,
    spread: float = 0.05,
    check: bool = True,
) -> RefineResult:
    r"""Minimise the exact :math:`F_q` of an affine canonical flow on a quadratic Hamiltonian with L-BFGS.

    Trains ``model`` in place (its dtype; float64 recommended). Typically run after, or instead of,
    :func:`~pyro_nrg.infer.canonical.fit_variational` for the linear model (``canonical_flow(n, n_blocks=0)``).

    Args:
        model: a :class:`~pyro_nrg.distributions.CanonicalFlow` whose flow is affine.
        hamiltonian: a quadratic Hamiltonian on ``(*batch, 2n)``.
        max_iter: L-BFGS iterations at most.
        tolerance: stop when an iteration changes :math:`F_q` by less than this (absolute; 0: run ``max_iter``
            unless the gradient vanishes).
        restarts: after convergence, spread the latent spectrum by ``spread`` in :math:`\ln\omega` (linearly in
            the rank of each frequency) and run L-BFGS again, this many times, keeping the best state. Nearly
            degenerate modes can settle on a saddle where the two frequencies are equal and the modes mixed: the
            objective is then flat along the rotation that separates them, and a small spread of the frequencies
            turns the saddle into a descent direction.
        spread: size of that spread.
        check: verify affinity and quadraticity first (third differences along random lines).

    Returns:
        :class:`RefineResult`.

    Raises:
        NoExactSolutionError: the flow is not affine or the Hamiltonian not quadratic (the sigma-point average is
            then not the exact :math:`F_q`: train with ``fit_variational``).
        TrainingDivergedError: :math:`F_q` became non-finite.
    """
    omega = model.omega
    d = 2 * model.n
    dtype, device = omega.dtype, omega.device
    if check:
        with torch.no_grad():
            flow_dev = _third_difference(lambda z: model.flow(z), d, dtype, device)
            h_dev = _third_difference(lambda x: hamiltonian.energy(x), d, dtype, device)
        tol = 1e-8 if dtype == torch.float64 else 1e-3
        if flow_dev > tol:
            raise NoExactSolutionError(
                f"refine_quadratic needs an affine flow (third differences {flow_dev:.2e} > {tol:.0e}): the "
                "sigma-point F_q is exact only then; train nonlinear flows with fit_variational"
            )
        if h_dev > tol:
            raise NoExactSolutionError(
                f"refine_quadratic needs a quadratic Hamiltonian (third differences {h_dev:.2e} > {tol:.0e}); "
                "train with fit_variational"
            )
    params = [p for p in model.parameters() if p.requires_grad]
    eps = sigma_points(d, dtype, device)
    opt = _lbfgs(params, max_iter, tolerance)
    history: list[float] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        f = quadratic_free_energy(model, hamiltonian, eps)
        if not torch.isfinite(f):
            raise TrainingDivergedError("refine_quadratic: F_q became non-finite; start from a trained model")
        f.backward()
        history.append(float(f.detach()))
        return f

    def current() -> float:
        with torch.no_grad():
            return float(quadratic_free_energy(model, hamiltonian, eps))

    t0 = time.perf_counter()
    start = current()
    opt.step(closure)
    best, best_state = current(), copy.deepcopy(model.state_dict())
    spreadable = isinstance(getattr(model, "log_omega", None), torch.nn.Parameter)
    for _ in range(restarts if spreadable else 0):
        with torch.no_grad():
            w = model.log_omega
            ranks = torch.empty_like(w)
            ranks[torch.argsort(w)] = torch.arange(w.numel(), dtype=w.dtype, device=w.device)
            w.add_(spread * (ranks / max(w.numel() - 1, 1) - 0.5))
        opt = _lbfgs(params, max_iter, tolerance)
        opt.step(closure)
        f = current()
        if f < best:
            best, best_state = f, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return RefineResult(f_q_start=start, f_q=best, iterations=len(history), seconds=time.perf_counter() - t0,
                        history=history)


def _lbfgs(params: list[torch.Tensor], max_iter: int, tolerance: float) -> torch.optim.LBFGS:
    return torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-14, tolerance_change=tolerance,
                             history_size=100, line_search_fn="strong_wolfe")
