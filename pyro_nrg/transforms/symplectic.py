r"""Symplectic bijections of phase space: the layers of a neural canonical transformation.

A phase-space point is a flat vector ``x = (q_1..q_n, p_1..p_n)`` of shape ``(*batch, 2n)``. Every layer here
maps latent ``z = (Q, P)`` to physical ``x = (q, p)`` (``_call``), has an exact inverse (``_inverse``) and is
*symplectic*: its Jacobian :math:`J = \partial x / \partial z` satisfies

.. math:: J^\top \Omega J = \Omega, \qquad \Omega = \begin{pmatrix} 0 & I_n \\ -I_n & 0 \end{pmatrix},

so Hamilton's equations keep their form and, in particular, :math:`\ln|\det J| = 0`: a flow built from these
layers is volume preserving and its density is simply the latent density at :math:`z = g^{-1}(x)`. This is the
neural canonical transformation of Li, Dong, Zhang & Wang, *Neural Canonical Transformation with Symplectic
Flows*, Phys. Rev. X 10, 021020 (2020), arXiv:1910.00024.

Layers (each a Pyro :class:`~pyro.distributions.torch_transform.TransformModule`, with a snake_case helper
that builds sensible defaults):

================================  ===========================================================================
:class:`LinearSymplectic`         :math:`x = e^{K} z`, :math:`K = [[A, B], [C, -A^\top]]`, :math:`B, C` symmetric
:class:`SymplecticLinearMap`      a fixed (non-trainable) symplectic matrix, e.g. an exact normal-mode map
:class:`SymplecticScaling`        :math:`q = Q e^{s}`, :math:`p = P e^{-s}`
:class:`PointTransformation`      cotangent lift of a bijection :math:`f` on positions:
                                  :math:`q = f(Q)`, :math:`p = (\partial f/\partial Q)^{-\top} P`
:class:`MomentumShear`            :math:`q = Q`, :math:`p = P - \nabla V_\theta(Q)`
:class:`PositionShear`            :math:`q = Q + \nabla T_\theta(P)`, :math:`p = P`
================================  ===========================================================================

plus :func:`real_nvp`, a plain (non-symplectic) affine-coupling bijection of ``(*batch, n)`` vectors (built from
:mod:`~pyro_nrg.transforms.coupling`) to lift with :class:`PointTransformation`, :class:`PolarBijection`
(log-radius/angle coordinates of the plane, for rotors and rings), :class:`MLPPotential` (a scalar network for the
shears) and :func:`symplectic_flow`, which stacks the layers into a
:class:`~pyro.distributions.torch_transform.ComposeTransformModule`.

Example:
    >>> import torch
    >>> from pyro_nrg.transforms.symplectic import symplectic_flow
    >>> flow = symplectic_flow(2, n_blocks=1)
    >>> z = torch.randn(5, 4)
    >>> x = flow(z)
    >>> torch.allclose(flow.inv(x), z, atol=1e-5)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from pyro.distributions.torch_transform import ComposeTransformModule, TransformModule
from torch import nn
from torch.distributions import Transform, constraints

from ..errors import EventShapeError
from .coupling import CouplingStack, MaskedAffineCoupling
from .nets import MLP

__all__ = [
    "SymplecticTransform",
    "LinearSymplectic",
    "SymplecticLinearMap",
    "SymplecticScaling",
    "PointTransformation",
    "MomentumShear",
    "PositionShear",
    "PolarBijection",
    "MLPPotential",
    "hamiltonian_matrix",
    "is_symplectic_matrix",
    "linear_symplectic",
    "symplectic_scaling",
    "point_transformation",
    "momentum_shear",
    "position_shear",
    "real_nvp",
    "polar_point_transformation",
    "symplectic_flow",
    "polar_symplectic_flow",
]


def _check_phase_space(x: torch.Tensor, n: int, who: str) -> None:
    if x.dim() < 1 or x.shape[-1] != 2 * n:
        raise EventShapeError(
            f"{who} acts on phase-space vectors of shape (*batch, {2 * n}) ordered (q_1..q_{n}, p_1..p_{n}), got "
            f"{tuple(x.shape)}: flatten positions and momenta with torch.cat([q, p], -1)"
        )


def _check_n(n: int, who: str, minimum: int = 1) -> int:
    n = int(n)
    if n < minimum:
        raise EventShapeError(
            f"{who} needs n >= {minimum} degrees of freedom (phase-space dimension 2n), got n={n}: "
            f"pass the number of positions, e.g. n=2 for a particle in the plane"
        )
    return n


def _vjp(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, v: torch.Tensor, create_graph: bool
) -> torch.Tensor:
    r"""Vector-Jacobian product :math:`(\partial\,\mathrm{fn}/\partial x)^\top v`, per batch element.

    ``fn`` must act independently on each batch element (no batch norm); then one backward pass gives all the
    per-sample products. With ``create_graph`` the result stays differentiable in ``x``, ``v`` and the network
    parameters (needed for training and for the autograd contract checks).
    """
    with torch.enable_grad():
        # a fresh tensor object (view) so that no transform cache can answer for x
        xg = x.view_as(x) if x.requires_grad else x.detach().requires_grad_(True)
        y = fn(xg)
        (g,) = torch.autograd.grad(y, xg, grad_outputs=v, create_graph=create_graph)
    return g


def _grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    r"""Gradient :math:`\nabla_x \mathrm{fn}(x)` of a scalar-per-sample function, shape of ``x``."""
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(xg).sum(), xg, create_graph=create_graph)
    return g


class SymplecticTransform(TransformModule):
    r"""Base class of symplectic phase-space bijections ``z = (Q, P) -> x = (q, p)``, event shape ``(2n,)``.

    Subclasses implement ``_call`` and ``_inverse``. The log-determinant is identically zero (Liouville); it is
    returned as zeros of shape ``batch_shape`` with the input's dtype and device.

    Args:
        n: number of positions (phase-space dimension ``2n``).
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = +1

    def __init__(self, n: int, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)
        self.n = _check_n(n, type(self).__name__)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split ``(*batch, 2n)`` into positions and momenta, each ``(*batch, n)`` (validates the shape)."""
        _check_phase_space(x, self.n, type(self).__name__)
        return x[..., : self.n], x[..., self.n :]

    def log_abs_det_jacobian(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Zeros of shape ``batch_shape`` (symplectic maps preserve phase-space volume)."""
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        return f"n={self.n}"


def hamiltonian_matrix(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    r"""The Hamiltonian matrix :math:`K = [[A, B_s], [C_s, -A^\top]]` with :math:`B_s, C_s` the symmetric parts.

    :math:`\Omega K` is symmetric, so :math:`e^{tK}` is symplectic for every :math:`t`: it is the time-:math:`t`
    flow :math:`\dot x = \Omega \nabla H = K x` of the quadratic Hamiltonian :math:`H = -\tfrac12 x^\top \Omega K x`.

    Args:
        A: ``(n, n)`` matrix, the upper-left block (the lower-right one is its negative transpose).
        B: ``(n, n)`` matrix; its symmetric part is the upper-right block.
        C: ``(n, n)`` matrix; its symmetric part is the lower-left block.

    Returns:
        ``(2n, 2n)`` matrix.
    """
    Bs = 0.5 * (B + B.transpose(-1, -2))
    Cs = 0.5 * (C + C.transpose(-1, -2))
    top = torch.cat([A, Bs], -1)
    bottom = torch.cat([Cs, -A.transpose(-1, -2)], -1)
    return torch.cat([top, bottom], -2)


def is_symplectic_matrix(M: torch.Tensor, atol: float = 1e-8) -> bool:
    r"""Whether the ``(2n, 2n)`` matrix ``M`` satisfies :math:`M^\top \Omega M = \Omega` to ``atol``."""
    d = M.shape[-1]
    if M.dim() != 2 or M.shape[0] != d or d % 2:
        return False
    n = d // 2
    eye = torch.eye(n, dtype=M.dtype, device=M.device)
    zero = torch.zeros_like(eye)
    omega = torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)
    return bool((M.T @ omega @ M - omega).abs().max() <= atol * max(1.0, float(M.abs().max()) ** 2))


class LinearSymplectic(SymplecticTransform):
    r"""Trainable linear symplectic map :math:`x = e^{K} z` with :math:`K = [[A, B], [C, -A^\top]]`.

    :math:`B` and :math:`C` enter through their symmetric parts, which makes :math:`K` a Hamiltonian matrix and
    :math:`e^{K}` symplectic exactly (``torch.linalg.matrix_exp``, not a truncated series); the inverse is
    :math:`e^{-K}`. With :math:`B = C = 0` and antisymmetric :math:`A` this is the rotation
    :math:`q = O Q, p = O P` with :math:`O = e^{A} \in SO(n)`; the symmetric part of :math:`A` stretches
    :math:`q` and squeezes :math:`p`. Initialised at the identity (all zeros) unless ``init_scale > 0``.

    Shapes: ``z``, ``x``: ``(*batch, 2n)``. Cost: one ``(2n, 2n)`` matrix exponential per call.

    Args:
        n: number of positions.
        init_scale: std of the random initial entries of ``A, B, C`` (0 = identity map).

    Reference: Li, Dong, Zhang & Wang, PRX 10, 021020 (2020), Sec. III.
    """

    def __init__(self, n: int, init_scale: float = 0.0) -> None:
        super().__init__(n)
        self.A = nn.Parameter(init_scale * torch.randn(self.n, self.n))
        self.B = nn.Parameter(init_scale * torch.randn(self.n, self.n))
        self.C = nn.Parameter(init_scale * torch.randn(self.n, self.n))

    def generator(self) -> torch.Tensor:
        """The Hamiltonian matrix :math:`K` of shape ``(2n, 2n)``."""
        return hamiltonian_matrix(self.A, self.B, self.C)

    def matrix(self) -> torch.Tensor:
        r"""The symplectic matrix :math:`M = e^{K}` (``x = M z``), shape ``(2n, 2n)``."""
        return torch.linalg.matrix_exp(self.generator())

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        _check_phase_space(z, self.n, type(self).__name__)
        return z @ self.matrix().to(z.dtype).T

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        _check_phase_space(x, self.n, type(self).__name__)
        return x @ torch.linalg.matrix_exp(-self.generator()).to(x.dtype).T


def linear_symplectic(n: int, init_scale: float = 0.0) -> LinearSymplectic:
    """A :class:`LinearSymplectic` layer on ``(*batch, 2n)`` initialised at the identity (default)."""
    return LinearSymplectic(n, init_scale=init_scale)


class SymplecticLinearMap(SymplecticTransform):
    r"""A fixed symplectic matrix :math:`M` (buffer, not trained): :math:`x = M z`, :math:`z = \Omega^\top M^\top
    \Omega x` (the exact symplectic inverse).

    Use it to put an analytic canonical transformation into a flow, e.g. the normal-mode map of a harmonic chain
    (:meth:`pyro_nrg.energies.hamiltonians.HarmonicChain.canonical_matrix`).

    Args:
        matrix: ``(2n, 2n)`` symplectic matrix.
        atol: tolerance of the symplecticity check.

    Raises:
        EventShapeError: ``matrix`` is not a square ``(2n, 2n)`` matrix or not symplectic.
    """

    def __init__(self, matrix: torch.Tensor, atol: float = 1e-6) -> None:
        matrix = self._checked(matrix, atol)
        super().__init__(matrix.shape[0] // 2)
        self.register_buffer("M", matrix.clone())
        self.register_buffer("M_inv", self._symplectic_inverse(matrix))

    @staticmethod
    def _checked(matrix: torch.Tensor, atol: float) -> torch.Tensor:
        matrix = torch.as_tensor(matrix)
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] % 2:
            raise EventShapeError(
                f"SymplecticLinearMap needs a square (2n, 2n) matrix, got shape {tuple(matrix.shape)}: "
                f"order rows and columns as (q_1..q_n, p_1..p_n)"
            )
        if not is_symplectic_matrix(matrix.double(), atol=atol):
            raise EventShapeError(
                "SymplecticLinearMap: the matrix is not symplectic (M^T Omega M != Omega): build it from a "
                "point transformation [[W, 0], [0, W^-T]] or use LinearSymplectic to learn one"
            )
        return matrix

    @staticmethod
    def _symplectic_inverse(matrix: torch.Tensor) -> torch.Tensor:
        r"""The exact inverse of a symplectic matrix, :math:`M^{-1} = \Omega^\top M^\top \Omega`."""
        n = matrix.shape[0] // 2
        a, b = matrix[:n, :n], matrix[:n, n:]
        c, d = matrix[n:, :n], matrix[n:, n:]
        return torch.cat([torch.cat([d.T, -b.T], 1), torch.cat([-c.T, a.T], 1)], 0)

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 - torch's signature
        """After a dtype/device conversion, a float64 layer inverts its matrix numerically (exact to float64), so
        that a map built in float32 and converted with ``.double()`` round-trips to float64 accuracy even though
        the float32-rounded matrix is symplectic only to float32 accuracy."""
        out = super()._apply(fn, recurse)
        if self.M.dtype == torch.float64:
            with torch.no_grad():
                self.M_inv.copy_(torch.linalg.inv(self.M))
        return out

    def set_matrix(self, matrix: torch.Tensor, atol: float = 1e-6) -> None:
        """Replace the matrix (same shape) in place, e.g. after building the layer from a config.

        Raises:
            EventShapeError: not a symplectic matrix of the layer's shape.
        """
        matrix = self._checked(matrix, atol)
        if matrix.shape != self.M.shape:
            raise EventShapeError(f"set_matrix: expected shape {tuple(self.M.shape)}, got {tuple(matrix.shape)}")
        with torch.no_grad():
            self.M.copy_(matrix)
            self.M_inv.copy_(self._symplectic_inverse(self.M))

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        _check_phase_space(z, self.n, type(self).__name__)
        return z @ self.M.to(z.dtype).T

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        _check_phase_space(x, self.n, type(self).__name__)
        return x @ self.M_inv.to(x.dtype).T


class SymplecticScaling(SymplecticTransform):
    r"""Diagonal symplectic scaling :math:`q = Q e^{s}`, :math:`p = P e^{-s}` with learnable :math:`s \in
    \mathbb{R}^n`.

    With independent-oscillator latents this sets the ratio of position and momentum widths per mode, while the
    latent frequencies set their product (the neuralCT paper's ``ω_k = exp(-(s_q,k + s_p,k))`` parametrisation,
    PRX 10, 021020, Sec. IV).

    Args:
        n: number of positions.
        init: initial value of ``s`` (scalar or ``(n,)``).
    """

    def __init__(self, n: int, init: float | torch.Tensor = 0.0) -> None:
        super().__init__(n)
        s = torch.zeros(self.n) + torch.as_tensor(init, dtype=torch.get_default_dtype())
        self.s = nn.Parameter(s)

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        Q, P = self.split(z)
        e = torch.exp(self.s).to(z.dtype)
        return torch.cat([Q * e, P / e], -1)

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        q, p = self.split(x)
        e = torch.exp(self.s).to(x.dtype)
        return torch.cat([q / e, p * e], -1)


def symplectic_scaling(n: int, init: float | torch.Tensor = 0.0) -> SymplecticScaling:
    """A :class:`SymplecticScaling` layer (identity at ``init=0``)."""
    return SymplecticScaling(n, init=init)


def real_nvp(
    n: int, n_couplings: int = 4, hidden: int = 32, depth: int = 2, scale_bound: float = 2.0
) -> CouplingStack:
    r"""An affine-coupling (RealNVP) bijection of ``(*batch, n)`` position vectors, to lift with
    :class:`PointTransformation` (*not* symplectic on its own).

    A :class:`~pyro_nrg.transforms.CouplingStack` of ``n_couplings``
    :class:`~pyro_nrg.transforms.MaskedAffineCoupling` layers that alternate between conditioning on the even and
    on the odd coordinates,

    .. math:: y_\tau = u_\tau\, e^{s(u_c)} + t(u_c), \qquad s = a\tanh(\hat s / a),

    with a fixed bound :math:`a` = ``scale_bound`` and tanh :class:`~pyro_nrg.transforms.MLP` hypernetworks, whose
    smooth activations keep the second derivatives a :class:`PointTransformation` needs for training (it
    differentiates the Jacobian). The output layers start at zero, so the bijection starts at the identity. Each
    hypernetwork is drawn as a network on all ``n`` coordinates with ``2n`` outputs and restricted to the inputs and
    outputs its coupling uses (:meth:`~pyro_nrg.transforms.MLP.restrict`), so its initial weights are those of the
    masked formulation :math:`(\hat s, t) = \mathrm{net}(m \odot u)`.

    Raises:
        EventShapeError: ``n < 2`` (a coupling needs two halves).
    """
    n = _check_n(n, "real_nvp", minimum=2)
    even, odd = list(range(0, n, 2)), list(range(1, n, 2))
    parts = []
    for i in range(n_couplings):
        cond, trans = (even, odd) if i % 2 == 0 else (odd, even)
        net = MLP(n, 2 * n, (hidden,) * depth, "tanh").restrict(cond, [*trans, *(n + j for j in trans)])
        parts.append(MaskedAffineCoupling(net, cond, trans, scale_bound=scale_bound, learn_scale_bound=False))
    return CouplingStack(parts, cache_size=0)


class PolarBijection(TransformModule):
    r"""Polar coordinates of the plane as a bijection :math:`\mathbb R^2 \to \mathbb R^2 \setminus \{\text{ray}\}`.

    .. math:: \rho = e^{c + e^{s} u_1}, \qquad \theta = \pi\,\mathrm{erf}(e^{b} u_2) \;\text{(default)}
       \;\text{ or }\; 2 \arctan(e^{b} u_2), \qquad y = \rho\,(\cos\theta, \sin\theta),

    so :math:`u_1` is a log-radius and :math:`u_2` an angle coordinate (:math:`\theta \in (-\pi, \pi)`; the image
    misses only the ray :math:`\theta = \pi` and the origin, a null set). Lifted by :class:`PointTransformation`
    it gives the canonical polar pair (radial momentum, angular momentum) up to the scalings, a useful inductive
    bias for systems with a rotational degree of freedom such as the ring potential of the neuralCT paper. Not
    symplectic on its own (it acts on positions only).

    The ``"erf"`` angle map sends a Gaussian :math:`u_2 \sim \mathcal N(0, e^{-2b}/2)` to a uniform angle (and
    keeps latent coordinates of points near the cut moderate); ``"atan"`` needs Cauchy tails for that.

    Args:
        log_radius: initial :math:`c` (the radius at :math:`u_1 = 0` is :math:`e^{c}`).
        angle_map: ``"erf"`` or ``"atan"``.
        log_radial_scale: initial :math:`s`: a unit change of :math:`u_1` changes :math:`\ln\rho` by
            :math:`e^{s}`. Start it at the target's spread of :math:`\ln\rho` (radial width over radius) so that
            the first draws are not spread over radii far from the ring.
        log_angle_scale: initial :math:`b`. With the ``"erf"`` map, :math:`b = -\tfrac12\ln 2` makes the angle of
            a unit-variance :math:`u_2` uniform; a wider :math:`v` piles draws up near the cut, where
            :math:`\theta'(v)` is tiny and the lifted momenta :math:`\propto 1/\theta'` explode.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = +1

    def __init__(
        self, log_radius: float = 0.0, angle_map: str = "erf", log_radial_scale: float = 0.0,
        log_angle_scale: float = 0.0,
    ) -> None:
        super().__init__(cache_size=0)
        if angle_map not in ("erf", "atan"):
            raise ValueError(f"angle_map must be 'erf' or 'atan', got {angle_map!r}")
        self.angle_map = angle_map
        self.n = 2
        self.c = nn.Parameter(torch.tensor(float(log_radius)))
        self.s = nn.Parameter(torch.tensor(float(log_radial_scale)))
        self.b = nn.Parameter(torch.tensor(float(log_angle_scale)))

    def _check(self, u: torch.Tensor) -> None:
        if u.dim() < 1 or u.shape[-1] != 2:
            raise EventShapeError(
                f"PolarBijection acts on planar vectors of shape (*batch, 2), got {tuple(u.shape)}: "
                f"use it for one particle in the plane (n=2)"
            )

    def _call(self, u: torch.Tensor) -> torch.Tensor:
        self._check(u)
        rho = torch.exp(self.c + torch.exp(self.s) * u[..., 0])
        v = torch.exp(self.b) * u[..., 1]
        theta = math.pi * torch.erf(v) if self.angle_map == "erf" else 2 * torch.atan(v)
        return torch.stack([rho * torch.cos(theta), rho * torch.sin(theta)], -1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y)
        rho = torch.linalg.vector_norm(y, dim=-1)
        theta = torch.atan2(y[..., 1], y[..., 0])
        u1 = (torch.log(rho) - self.c) * torch.exp(-self.s)
        v = torch.special.erfinv(theta / math.pi) if self.angle_map == "erf" else torch.tan(theta / 2)
        u2 = v * torch.exp(-self.b)
        return torch.stack([u1, u2], -1)

    def log_abs_det_jacobian(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r""":math:`\ln(\rho\,\rho'\,\theta') = 2\ln\rho + s + b + \ln\theta'(v)`, :math:`v = e^{b} u_2`."""
        log_rho = self.c + torch.exp(self.s) * u[..., 0]
        v = torch.exp(self.b) * u[..., 1]
        if self.angle_map == "erf":
            log_dtheta = math.log(2 * math.sqrt(math.pi)) - v**2
        else:
            log_dtheta = math.log(2.0) - torch.log1p(v**2)
        return 2 * log_rho + self.s + self.b + log_dtheta


def polar_point_transformation(
    log_radius: float = 0.0, angle_map: str = "erf", log_radial_scale: float = 0.0, log_angle_scale: float = 0.0
) -> PointTransformation:
    """:class:`PointTransformation` of a :class:`PolarBijection` (one particle in the plane, ``2n = 4``)."""
    return PointTransformation(PolarBijection(log_radius, angle_map, log_radial_scale, log_angle_scale), 2)


class PointTransformation(SymplecticTransform):
    r"""Cotangent lift of a bijection :math:`f` of positions — a point transformation.

    .. math:: q = f(Q), \qquad p = \Big(\frac{\partial f}{\partial Q}\Big)^{-\top} P
       \qquad\Longleftrightarrow\qquad Q = f^{-1}(q), \qquad P = \Big(\frac{\partial f}{\partial Q}\Big)^{\top} p .

    Both directions are computed as *one vector-Jacobian product* (exact, no linear solve): the inverse uses the
    Jacobian of :math:`f` at :math:`Q`; the forward uses :math:`(\partial f/\partial Q)^{-\top} =
    (\partial f^{-1}/\partial q)^{\top}` at :math:`q`, i.e. the VJP of :math:`f^{-1}`. Gradients are kept
    (``create_graph``) whenever autograd is on, so training differentiates through the Jacobian; ``f`` must
    therefore be twice differentiable (smooth activations) and act on each batch element independently.

    Args:
        bijection: a ``torch.distributions.Transform`` on ``(*batch, n)`` vectors (``event_dim == 1``) with an
            exact, differentiable ``inv`` — e.g. :func:`real_nvp` or a Pyro normalizing-flow transform.
        n: number of positions.

    Reference: Li, Dong, Zhang & Wang, PRX 10, 021020 (2020), Eq. (8).
    """

    def __init__(self, bijection: Transform, n: int) -> None:
        super().__init__(n)
        if getattr(bijection, "event_dim", 1) != 1 or not getattr(bijection, "bijective", False):
            raise EventShapeError(
                "PointTransformation needs a bijection acting on position vectors (event_dim 1, bijective=True): "
                "use real_nvp(n) or a Pyro flow transform such as pyro.distributions.transforms.affine_coupling"
            )
        self.bijection = bijection

    def _f(self, Q: torch.Tensor) -> torch.Tensor:
        return self.bijection(Q)

    def _f_inv(self, q: torch.Tensor) -> torch.Tensor:
        return self.bijection.inv(q)

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        Q, P = self.split(z)
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            q = self._f(Q)
            p = _vjp(self._f_inv, q, P, create_graph=create)
        if not create:
            q = q.detach()
        return torch.cat([q, p], -1)

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        q, p = self.split(x)
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            Q = self._f_inv(q)
            P = _vjp(self._f, Q, p, create_graph=create)
        if not create:
            Q = Q.detach()
        return torch.cat([Q, P], -1)


def point_transformation(n: int, n_couplings: int = 4, hidden: int = 32, depth: int = 2) -> PointTransformation:
    """A :class:`PointTransformation` lifting a default :func:`real_nvp` bijection of the positions."""
    return PointTransformation(real_nvp(n, n_couplings=n_couplings, hidden=hidden, depth=depth), n)


class MLPPotential(nn.Module):
    r"""A scalar network :math:`V_\theta : (*batch, n) \to (*batch,)` for the shears.

    Tanh MLP whose output layer has no bias (a constant shift of :math:`V` does not change :math:`\nabla V`, so a
    bias would be a parameter without gradient) and starts at zero (shear = identity).

    Args:
        n: input dimension.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
    """

    def __init__(self, n: int, hidden: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.net = MLP(n, 1, (hidden,) * depth, "tanh", output_bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(u).squeeze(-1)


class MomentumShear(SymplecticTransform):
    r"""Kick :math:`q = Q`, :math:`p = P - \nabla V_\theta(Q)` (time-1 flow of the Hamiltonian :math:`V_\theta(q)`).

    Inverse: :math:`P = p + \nabla V_\theta(q)`. The gradient is taken by autograd (kept differentiable while
    training).

    Args:
        potential: network ``(*batch, n) -> (*batch,)``, e.g. :class:`MLPPotential`.
        n: number of positions.
    """

    def __init__(self, potential: nn.Module, n: int) -> None:
        super().__init__(n)
        self.potential = potential

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        Q, P = self.split(z)
        return torch.cat([Q, P - _grad(self.potential, Q, torch.is_grad_enabled())], -1)

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        q, p = self.split(x)
        return torch.cat([q, p + _grad(self.potential, q, torch.is_grad_enabled())], -1)


class PositionShear(SymplecticTransform):
    r"""Drift :math:`q = Q + \nabla T_\theta(P)`, :math:`p = P` (time-1 flow of the Hamiltonian :math:`T_\theta(p)`).

    Inverse: :math:`Q = q - \nabla T_\theta(p)`.

    Args:
        kinetic: network ``(*batch, n) -> (*batch,)``, e.g. :class:`MLPPotential`.
        n: number of positions.
    """

    def __init__(self, kinetic: nn.Module, n: int) -> None:
        super().__init__(n)
        self.kinetic = kinetic

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        Q, P = self.split(z)
        return torch.cat([Q + _grad(self.kinetic, P, torch.is_grad_enabled()), P], -1)

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        q, p = self.split(x)
        return torch.cat([q - _grad(self.kinetic, p, torch.is_grad_enabled()), p], -1)


def momentum_shear(n: int, hidden: int = 32, depth: int = 2) -> MomentumShear:
    """A :class:`MomentumShear` with a default :class:`MLPPotential` (identity at initialisation)."""
    return MomentumShear(MLPPotential(n, hidden, depth), n)


def position_shear(n: int, hidden: int = 32, depth: int = 2) -> PositionShear:
    """A :class:`PositionShear` with a default :class:`MLPPotential` (identity at initialisation)."""
    return PositionShear(MLPPotential(n, hidden, depth), n)


def symplectic_flow(
    n: int,
    n_blocks: int = 2,
    n_couplings: int = 4,
    hidden: int = 32,
    depth: int = 2,
    shears: bool = True,
    linear: bool = True,
    scaling: bool = True,
) -> ComposeTransformModule:
    r"""A default neural canonical transformation ``z -> x`` on ``(*batch, 2n)``, identity at initialisation.

    Order (latent side first)::

        [SymplecticScaling] -> n_blocks x ( [LinearSymplectic] -> PointTransformation(real_nvp)
                                            -> [MomentumShear -> PositionShear] ) -> [LinearSymplectic]

    Linear layers mix positions and momenta, so the point transformations and shears that follow act on new
    canonical pairs; the shears let the map depend on momenta nonlinearly, which a stack of point
    transformations alone cannot (their momenta stay linear in :math:`P`).

    Args:
        n: number of positions.
        n_blocks: number of nonlinear blocks (0 gives a linear flow).
        n_couplings: number of couplings of each block's :func:`real_nvp`.
        hidden: width of the hidden layers of the :func:`real_nvp` and shear networks.
        depth: number of hidden layers of the :func:`real_nvp` and shear networks.
        shears: include the momentum and position shears.
        linear: include the linear symplectic layers.
        scaling: include the symplectic scaling layer.

    Returns:
        A :class:`~pyro.distributions.torch_transform.ComposeTransformModule` (symplectic).
    """
    n = _check_n(n, "symplectic_flow")
    parts: list[Transform] = []
    if scaling:
        parts.append(symplectic_scaling(n))
    for _ in range(n_blocks):
        if linear:
            parts.append(linear_symplectic(n))
        if n >= 2:
            parts.append(point_transformation(n, n_couplings=n_couplings, hidden=hidden, depth=depth))
        if shears:
            parts.append(momentum_shear(n, hidden=hidden, depth=depth))
            parts.append(position_shear(n, hidden=hidden, depth=depth))
    if linear:
        parts.append(linear_symplectic(n))
    return ComposeTransformModule(parts)


def polar_symplectic_flow(
    n_blocks: int = 2,
    n_couplings: int = 2,
    hidden: int = 64,
    depth: int = 2,
    log_radius: float = 0.0,
    angle_map: str = "erf",
    log_radial_scale: float = 0.0,
    log_angle_scale: float = 0.0,
) -> ComposeTransformModule:
    r"""A canonical transformation for one particle in the plane (``2n = 4``) that ends in polar coordinates.

    Order (latent side first)::

        SymplecticScaling -> n_blocks x ( LinearSymplectic -> PointTransformation(real_nvp)
                                          -> MomentumShear -> PositionShear )
                          -> LinearSymplectic -> PointTransformation(PolarBijection)

    The nonlinear layers act on (log-radius, angle) coordinates and their conjugate momenta; the last layer maps
    them to the plane. Suited to rotors and rings (PRX 10, 021020, Sec. V A), where one latent mode should
    follow the radius and the other the angle.

    Args:
        n_blocks: number of nonlinear blocks.
        n_couplings: number of couplings of each block's :func:`real_nvp`.
        hidden: width of the hidden layers of the :func:`real_nvp` and shear networks.
        depth: number of hidden layers of the :func:`real_nvp` and shear networks.
        log_radius: initial log of the typical radius (e.g. ``math.log(2.0)`` for the paper's ring).
        angle_map: angle map of the :class:`PolarBijection` (``"erf"`` or ``"atan"``).
        log_radial_scale: initial log-scale of the log-radius (:class:`PolarBijection`); e.g.
            ``math.log(0.2)`` for the paper's ring at :math:`T = 1` (radial width 0.4 at radius 2).
        log_angle_scale: initial log-scale of the angle coordinate (:class:`PolarBijection`); ``-math.log(2) / 2``
            gives a uniform angle for unit-variance latents.
    """
    parts: list[Transform] = [symplectic_scaling(2)]
    for _ in range(n_blocks):
        parts += [
            linear_symplectic(2),
            point_transformation(2, n_couplings=n_couplings, hidden=hidden, depth=depth),
            momentum_shear(2, hidden=hidden, depth=depth),
            position_shear(2, hidden=hidden, depth=depth),
        ]
    parts += [linear_symplectic(2),
              polar_point_transformation(log_radius, angle_map, log_radial_scale, log_angle_scale)]
    return ComposeTransformModule(parts)
