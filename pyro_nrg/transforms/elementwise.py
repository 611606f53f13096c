r"""Element-wise monotone maps — the site-wise "heads" that let a NeuralRG flow make bimodal sites.

:class:`ElementwiseSpline` (``head="spline"``) is a rational-quadratic spline, :math:`C^1`; :class:`OddTanhSum`
(``head="tanh"``) is :math:`a v + \sum_k b_k \tanh(v/c_k)`, :math:`C^\infty`. Both are odd by default.

An affine coupling moves and stretches a Gaussian, so every conditional density it builds is unimodal. The
relaxed Ising model's are not: given its neighbours a site's density is a two-Gaussian mixture,
:math:`p(x_i \mid x_{-i}) \propto \mathcal N(x_i; \mu_i, v)\cosh x_i`, with peaks near :math:`\pm 3` at
:math:`T_c` (:math:`x \mid s \sim \mathcal N(Ks, K)`, :math:`K_{ii} = c \approx 1.86`). Composing many affine
couplings can only approximate that. One monotone map :math:`h` applied to every site after the hierarchy,
:math:`x_i = h(y_i)`, with a steep middle and flat flanks, turns the unimodal conditionals of :math:`y` into
bimodal ones whose weights still follow the conditioning (through the shift of :math:`y_i`). It costs
:math:`3K` parameters. ``benchmarks/free_energy.py`` and ``benchmarks/flow_ablation.py`` measure the heads against
the flow without one at equal training time (figures in ``docs/physics.md``, "Bimodal sites").

**Latent HMC: a trade-off.** The RQ spline is only :math:`C^1`: :math:`h''` jumps at every knot and, in the odd form,
at 0 (a cusp of :math:`\ln h'`). The renormalized energy contains :math:`\ln h'`, so its gradient jumps where a
site crosses a knot, and the leapfrog energy error falls like :math:`\epsilon` instead of :math:`\epsilon^2`.
So a spline head trades a better flow against a rougher latent potential for HMC. The smooth
:class:`OddTanhSum` (``head="tanh"``) has no such trade-off and is the default of
:class:`~pyro_nrg.flows.NeuralRGConfig` (``benchmarks/sampling.py`` compares the heads' ESS per gradient; figures in
``docs/physics.md``).

**The spline** (Gregory & Delbourgo, IMA J. Numer. Anal. 2, 123 (1982); Durkan, Bekasov, Murray & Papamakarios,
*Neural Spline Flows*, NeurIPS 2019). ``K`` bins between knots :math:`(x_k, y_k)`, widths :math:`w_k`, heights
:math:`h_k`, slopes :math:`s_k = h_k / w_k`, knot derivatives :math:`\delta_k > 0`. For :math:`v` in bin
:math:`k`, :math:`\xi = (v - x_k)/w_k`:

.. math::
    h(v) = y_k + \frac{h_k\,[s_k \xi^2 + \delta_k \xi(1-\xi)]}{s_k + \sigma_k \xi(1-\xi)}, \qquad
    h'(v) = \frac{s_k^2\,[\delta_{k+1}\xi^2 + 2 s_k \xi(1-\xi) + \delta_k (1-\xi)^2]}
                 {[s_k + \sigma_k \xi(1-\xi)]^2},

:math:`\sigma_k = \delta_{k+1} + \delta_k - 2 s_k`. The inverse solves :math:`a\xi^2 + b\xi + c = 0`,
:math:`a = h_k(s_k - \delta_k) + \Delta\sigma_k`, :math:`b = h_k\delta_k - \Delta\sigma_k`,
:math:`c = -s_k\Delta`, :math:`\Delta = u - y_k`, by the root :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})`.

**Odd (Z₂) form**, the default: the spline lives on :math:`[0, B]` and :math:`h(v) = \mathrm{sign}(v)\,
h_+(|v|)`, so :math:`h(-v) = -h(v)` (the Ising symmetry) and :math:`h'` is even and continuous at 0
(:math:`\delta_0` is learned). The general form lives on :math:`[-B, B]` with :math:`\delta_0 = 1`. In both,
:math:`\delta_K = 1` and :math:`h` is the identity beyond :math:`B`, so the tails join smoothly.

**Parameters**: widths and heights are softmaxes of unconstrained vectors (with a floor), derivatives
:math:`\delta = \delta_{\min} + \mathrm{softplus}(u + c_0)` with :math:`c_0` chosen so that :math:`u = 0` gives
:math:`\delta = 1`: zero parameters are the identity map, like the zero-initialised couplings.

Shapes: any input shape; the log-determinant sums the last ``event_dim`` dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InverseNotConvergedError, NonFiniteError
from .base import PairedTransformModule
from .fast import fast_call

__all__ = ["rq_spline", "ElementwiseSpline", "elementwise_spline", "OddTanhSum", "ConditionalOddTanhSum",
           "solve_increasing",
           "invert_increasing", "tanh_sum"]

MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3
_DERIV_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))  # MIN_DERIVATIVE + softplus(0 + shift) = 1


def _knots(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """The ``K + 1`` knots on ``[lo, hi]`` from an unconstrained ``(K,)`` vector of log bin sizes."""
    K = u.shape[-1]
    frac = MIN_BIN + (1.0 - MIN_BIN * K) * torch.softmax(u, dim=-1)
    inner = lo + (hi - lo) * torch.cumsum(frac, dim=-1)[:-1]
    return torch.cat([inner.new_tensor([lo]), inner, inner.new_tensor([hi])])  # exact end points


def _sum_event(log_d: torch.Tensor, event_dim: int) -> torch.Tensor:
    """Sum element-wise log-derivatives over the last ``event_dim`` dimensions (the log-determinant)."""
    return log_d.sum(tuple(range(-event_dim, 0))) if event_dim else log_d


def solve_increasing(
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    v0: torch.Tensor | None = None,
    max_iter: int = 100,
) -> torch.Tensor:
    r"""Solve :math:`h(v) = x` element-wise for an increasing :math:`h`, without gradients.

    Newton's method safeguarded by bisection: the bracket :math:`[lo, hi]` (which must contain the root) shrinks
    with the sign of every residual, and a Newton step that would leave it is replaced by the bracket's midpoint,
    so the iteration converges for every element (quadratically once Newton takes over). Stops when every
    :math:`|h(v) - x| \le 100\,\epsilon\,(1 + |x|)` (:math:`\epsilon` the dtype's machine epsilon).

    Args:
        fn: ``v -> (h(v), h'(v))``, element-wise, ``h' > 0``.
        x: targets, any shape; must be finite.
        lo: lower end of a bracket of the root, broadcastable to ``x``.
        hi: upper end of the bracket.
        v0: starting point (default the bracket's midpoint).
        max_iter: iterations before giving up.

    Raises:
        NonFiniteError: ``x`` holds NaN or infinity.
        InverseNotConvergedError: not converged in ``max_iter`` iterations (the message gives the worst residual).
    """
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError("cannot invert a monotone map at NaN/inf: check the input configurations")
    with torch.no_grad():
        lo, hi = torch.broadcast_tensors(lo.detach().to(x.dtype), hi.detach().to(x.dtype), x)[:2]
        v = 0.5 * (lo + hi) if v0 is None else torch.minimum(torch.maximum(v0.detach(), lo), hi)
        tol = 100 * torch.finfo(x.dtype).eps * (1 + x.abs())
        worst = float("inf")
        for _ in range(max_iter):
            hv, d = fn(v)
            res = hv - x
            if bool((res.abs() <= tol).all()):
                return v
            worst = float(res.abs().max())
            hi = torch.where(res > 0, v, hi)
            lo = torch.where(res < 0, v, lo)
            step = v - res / d
            v = torch.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
    raise InverseNotConvergedError(
        f"monotone inverse not converged after {max_iter} iterations (worst residual {worst:.3g}): the map's "
        "parameters may be extreme (check for a diverged training run) or raise max_iter"
    )


def invert_increasing(
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    v0: torch.Tensor | None = None,
    max_iter: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Differentiable inverse of an increasing map: :func:`solve_increasing`, then one Newton step with autograd on.

    At the root that step changes nothing numerically, and its derivatives are the implicit-function ones,
    :math:`\partial v/\partial x = 1/h'` and :math:`\partial v/\partial\theta = -(\partial h/\partial\theta)/h'`.

    Args:
        fn: ``v -> (h(v), h'(v))`` built from the (differentiable) parameters.
        x: targets.
        lo: lower end of a bracket of the root.
        hi: upper end of the bracket.
        v0: starting point.
        max_iter: iterations of the root finder.

    Returns:
        ``(v, h'(v))``, both differentiable.
    """
    v = solve_increasing(fn, x, lo, hi, v0=v0, max_iter=max_iter)
    h, d = fn(v)
    v = v - (h - x) / d.detach()
    return v, fn(v)[1]


def tanh_sum(
    v: torch.Tensor, slope: torch.Tensor | float, b: torch.Tensor, c: torch.Tensor, mu: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`h(v) = a v + \sum_k b_k \tanh((v - \mu)/c_k)` and :math:`h'(v)`, element-wise; ``b``, ``c`` carry
    the ``K`` terms in their last dimension (broadcast against ``v.unsqueeze(-1)``), ``mu`` defaults to 0."""
    th = torch.tanh((v if mu is None else v - mu).unsqueeze(-1) / c)
    return slope * v + (b * th).sum(-1), slope + (b / c * (1 - th * th)).sum(-1)


def rq_spline(
    v: torch.Tensor, xk: torch.Tensor, yk: torch.Tensor, deriv: torch.Tensor, inverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monotone RQ spline through knots ``(xk, yk)`` (shape ``(K+1,)``, increasing, equal end points) with knot
    derivatives ``deriv`` (``(K+1,)``, positive; 1 at an end makes the identity tail smooth there), applied
    element-wise to ``v`` of any shape; the identity outside ``[xk[0], xk[-1]]``.

    Returns:
        ``(h(v), ln h'(v))``, or with ``inverse`` ``(h^{-1}(v), ln h'(h^{-1}(v)))`` — always the log-derivative of
        the *forward* map at the pre-image, shape ``v.shape``.
    """
    lo, hi = xk[0], xk[-1]
    inside = (v > lo) & (v < hi)
    vc = torch.minimum(torch.maximum(v, lo), hi)
    edges = yk if inverse else xk
    idx = torch.searchsorted(edges[1:-1].contiguous(), vc.detach().contiguous(), right=True)  # bin 0..K-1
    x0, y0 = xk[idx], yk[idx]
    w, h = xk[idx + 1] - x0, yk[idx + 1] - y0
    d0, d1 = deriv[idx], deriv[idx + 1]
    s = h / w
    sigma = d1 + d0 - 2 * s
    if inverse:
        dy = vc - y0
        a = h * (s - d0) + dy * sigma
        b = h * d0 - dy * sigma
        c = -s * dy
        xi = (2 * c) / (-b - torch.sqrt((b * b - 4 * a * c).clamp_min(0.0)))
        out = x0 + xi * w
    else:
        xi = (vc - x0) / w
        out = y0 + h * (s * xi * xi + d0 * xi * (1 - xi)) / (s + sigma * xi * (1 - xi))
    t = xi * (1 - xi)
    log_d = 2 * torch.log(s) + torch.log(d1 * xi * xi + 2 * s * t + d0 * (1 - xi) ** 2) - 2 * torch.log(s + sigma * t)
    return torch.where(inside, out, v), torch.where(inside, log_d, torch.zeros_like(log_d))


class ElementwiseSpline(PairedTransformModule):
    r"""The same monotone RQ spline :math:`h` on every element (shared parameters), identity beyond ``bound``.

    Args:
        event_dim: trailing dimensions summed in the log-determinant (2 for an ``(L, L)`` lattice).
        n_bins: ``K``.
        bound: :math:`B`; pick it to cover the bulk of the values (relaxed Ising fields at :math:`T_c` lie mostly
            within :math:`\pm 6`).
        odd: :math:`h(-v) = -h(v)` (default; keeps a Z₂-equivariant flow equivariant).

    Example:
        >>> h = elementwise_spline(event_dim=2)
        >>> z = torch.randn(5, 4, 4); x, ldj = h.forward_and_log_det(z); ldj.shape
        torch.Size([5])
    """

    def __init__(self, event_dim: int = 1, n_bins: int = 16, bound: float = 6.0, odd: bool = True) -> None:
        super().__init__(event_dim=event_dim)
        if int(n_bins) < 2 or not float(bound) > 0:
            raise ValueError(f"need n_bins >= 2 and bound > 0, got n_bins={n_bins}, bound={bound}: try 16 and 6.0")
        self.n_bins, self.bound, self.odd = int(n_bins), float(bound), bool(odd)
        K = self.n_bins
        self.u_width = nn.Parameter(torch.zeros(K))
        self.u_height = nn.Parameter(torch.zeros(K))
        self.u_deriv = nn.Parameter(torch.zeros(K if self.odd else K - 1))

    def knots(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(xk, yk, deriv)``, each ``(K + 1,)``: on ``[0, B]`` when ``odd``, else on ``[-B, B]``."""
        lo = 0.0 if self.odd else -self.bound
        xk = _knots(self.u_width, lo, self.bound)
        yk = _knots(self.u_height, lo, self.bound)
        d = MIN_DERIVATIVE + F.softplus(self.u_deriv + _DERIV_SHIFT)
        one = d.new_ones(1)
        deriv = torch.cat([d, one]) if self.odd else torch.cat([one, d, one])
        return xk, yk, deriv

    def _map(self, v: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        xk, yk, deriv = (t.to(v.dtype) for t in self.knots())
        if self.odd:
            out, log_d = rq_spline(v.abs(), xk, yk, deriv, inverse)
            out = torch.copysign(out, v)
        else:
            out, log_d = rq_spline(v, xk, yk, deriv, inverse)
        return out, _sum_event(log_d, self.event_dim)

    def forward_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._map(z, inverse=False)

    def inverse_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._map(x, inverse=True)

    def extra_repr(self) -> str:
        return f"event_dim={self.event_dim}, n_bins={self.n_bins}, bound={self.bound}, odd={self.odd}"


def elementwise_spline(event_dim: int = 1, n_bins: int = 16, bound: float = 6.0, odd: bool = True) -> ElementwiseSpline:
    """Build an identity-initialised :class:`ElementwiseSpline`."""
    return ElementwiseSpline(event_dim, n_bins, bound, odd)


class OddTanhSum(PairedTransformModule):
    r"""A smooth (:math:`C^\infty`) odd monotone map on every element: :math:`h(v) = a v + \sum_k b_k \tanh(v/c_k)`.

    The :math:`C^\infty` alternative to :class:`ElementwiseSpline` as a NeuralRG head: with
    :math:`a, b_k, c_k > 0` (softplus/exp parameters) :math:`h' = a + \sum_k (b_k/c_k)\,\mathrm{sech}^2(v/c_k)`
    is positive, largest at 0 and smooth everywhere, so the renormalized energy keeps a smooth gradient and the
    leapfrog energy error falls like :math:`\epsilon^2` (the spline's falls like :math:`\epsilon`), while it improves
    F_q as much as the spline head does (``benchmarks/free_energy.py``; figures in ``docs/physics.md``).

    The inverse has no closed form: :func:`invert_increasing` (Newton safeguarded by bisection, then one
    differentiable step) inside the bracket :math:`|a v - x| \le \sum_k b_k`, to a relative tolerance of 100
    machine epsilons.

    Args:
        event_dim: trailing dimensions summed in the log-determinant.
        n_terms: number of tanh terms ``K``.
        scales: initial :math:`c_k` (default ``K`` values geometric from 0.5 to 4).
        init_weight: initial :math:`b_k` (the map starts near, not at, the identity: zero :math:`b_k` would have
            zero gradient through the softplus floor).
        max_newton: iterations of the inverse's root finder before :class:`InverseNotConvergedError`.
        fast: evaluate :math:`h` and :math:`h'` in the inverse's Newton iterations with a compiled kernel
            (:mod:`pyro_nrg.transforms.fast`; same numbers). The forward map is compiled as part of a fast
            :class:`~pyro_nrg.transforms.HierarchicalFlow`.
    """

    def __init__(self, event_dim: int = 1, n_terms: int = 4, scales: tuple[float, ...] | None = None,
                 init_weight: float = 0.08, max_newton: int = 100, fast: bool = False) -> None:
        super().__init__(event_dim=event_dim)
        if int(n_terms) < 1 or not float(init_weight) > 0:
            raise ValueError(f"need n_terms >= 1 and init_weight > 0, got {n_terms}, {init_weight}: try 4 and 0.08")
        K = int(n_terms)
        if scales is None:
            scales = tuple(0.5 * 8.0 ** (k / max(1, K - 1)) for k in range(K))
        if len(scales) != K or min(scales) <= 0:
            raise ValueError(f"scales must be {K} positive numbers, got {scales!r}")
        self.n_terms, self.max_newton, self.fast = K, int(max_newton), bool(fast)
        self.u_slope = nn.Parameter(torch.tensor(math.log(math.expm1(1.0))))  # a = 1
        self.u_weight = nn.Parameter(torch.full((K,), math.log(math.expm1(float(init_weight)))))
        self.u_scale = nn.Parameter(torch.log(torch.as_tensor(scales, dtype=torch.get_default_dtype())))

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a, b, c)``: slope (scalar), weights ``(K,)`` and scales ``(K,)``, all positive."""
        return F.softplus(self.u_slope), F.softplus(self.u_weight), torch.exp(self.u_scale)

    def forward_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b, c = (t.to(z.dtype) for t in self.coefficients())
        x, d = tanh_sum(z, a, b, c)
        return x, _sum_event(torch.log(d), self.event_dim)

    def inverse_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b, c = (t.to(x.dtype) for t in self.coefficients())
        span = b.sum() / a

        def h(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return fast_call(self, "tanh_sum", tanh_sum, u, a, b, c) if self.fast else tanh_sum(u, a, b, c)

        v, d = invert_increasing(h, x, x / a - span, x / a + span,
                                 v0=x / (a + (b / c).sum()),  # exact near 0, where h is steepest
                                 max_iter=self.max_newton)
        return v, _sum_event(torch.log(d), self.event_dim)

    def extra_repr(self) -> str:
        return f"event_dim={self.event_dim}, n_terms={self.n_terms}"


class ConditionalOddTanhSum(OddTanhSum):
    r""":class:`OddTanhSum` whose parameters depend on a context :math:`u` (e.g. the temperature feature of
    :class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow`): every unconstrained parameter is affine in it,
    :math:`\theta(u) = \theta_0 + W_\theta u` (:math:`W_\theta` starts at zero, so the map starts as the
    unconditional one). The site density of the relaxed Ising model is bimodal with a gap that grows with
    :math:`\beta` (:math:`x \mid s \sim \mathcal N(Ks, K)`, :math:`K = \beta A + cI`), which a head shared by all
    temperatures cannot follow.

    ``forward_and_log_det(z, context)`` / ``inverse_and_log_det(x, context)`` take ``context`` of shape
    ``(B, context_dim)`` or ``(1, context_dim)`` for ``z`` of shape ``(B, *event)``; without a context it is the
    unconditional map at :math:`u = 0`.
    """

    conditional = True

    def __init__(self, event_dim: int = 1, n_terms: int = 4, context_dim: int = 1, **kwargs: Any) -> None:
        super().__init__(event_dim, n_terms, **kwargs)
        K = self.n_terms
        self.context_dim = int(context_dim)
        self.w_slope = nn.Parameter(torch.zeros(self.context_dim))
        self.w_weight = nn.Parameter(torch.zeros(self.context_dim, K))
        self.w_scale = nn.Parameter(torch.zeros(self.context_dim, K))

    def conditional_coefficients(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a, b, c)`` of shapes ``(B, 1..)``, ``(B, 1.., K)``, ``(B, 1.., K)`` (``event_dim`` ones) for a context
        of shape ``(B, context_dim)``."""
        ones = (1,) * self.event_dim
        a = F.softplus(self.u_slope + context @ self.w_slope)
        b = F.softplus(self.u_weight + context @ self.w_weight)
        c = torch.exp(self.u_scale + context @ self.w_scale)
        B = context.shape[0]
        return a.reshape(B, *ones), b.reshape(B, *ones, -1), c.reshape(B, *ones, -1)

    def forward_and_log_det(
        self, z: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if context is None:
            return super().forward_and_log_det(z)
        a, b, c = (t.to(z.dtype) for t in self.conditional_coefficients(context.to(z.dtype)))
        x, d = tanh_sum(z, a, b, c)
        return x, _sum_event(torch.log(d), self.event_dim)

    def inverse_and_log_det(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if context is None:
            return super().inverse_and_log_det(x)
        a, b, c = (t.to(x.dtype) for t in self.conditional_coefficients(context.to(x.dtype)))
        span = b.sum(-1) / a
        v, d = invert_increasing(lambda u: tanh_sum(u, a, b, c), x, x / a - span, x / a + span,
                                 v0=x / (a + (b / c).sum(-1)), max_iter=self.max_newton)
        return v, _sum_event(torch.log(d), self.event_dim)
