r"""Masked coupling layers: the small "block bijectors" of the NeuralRG hierarchy (RealNVP).

A coupling layer splits the last dimension of size ``d`` into a *conditioning* index set :math:`c` and a
*transformed* set :math:`\tau` (a half/half partition). In the latent → physical direction

.. math::
    x_c = z_c, \qquad x_\tau = z_\tau \odot e^{s(z_c)} + t(z_c), \qquad
    \ln|\det \partial x/\partial z| = \textstyle\sum_\tau s(z_c),

with the log-scale soft-clamped, :math:`s = a \odot \tanh(\hat s)` (a learnable per-dimension bound :math:`a`),
so training cannot blow up. The *additive* (volume-preserving, NICE) variant has :math:`s \equiv 0`.
The split/merge (index sets) is separate from the element-wise affine map, and the hypernet runs once per
call. References: Dinh, Sohl-Dickstein & Bengio, *Density estimation using Real NVP*, ICLR 2017;
Li & Wang, PRL 121, 260601 (2018).

Shapes: input ``(*batch, d)``; the log-determinant has shape ``batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import EventShapeError
from .base import PairedTransformModule
from .elementwise import invert_increasing, tanh_sum
from .fast import kernel_call
from .nets import MLP, ConditionalMLP

__all__ = [
    "MaskedAffineCoupling",
    "MaskedTanhCoupling",
    "masked_tanh_coupling",
    "CouplingStack",
    "TransformBlock",
    "masked_affine_coupling",
    "coupling_stack",
    "half_partitions",
]

def _reset_layout(module: MaskedAffineCoupling, _incompatible_keys: object) -> None:
    module._set_layout()


def half_partitions(d: int, n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """``n`` (conditioning, transformed) half/half partitions of ``range(d)`` for a stack of couplings.

    Consecutive couplings swap the two halves, so every variable is transformed in every pair of layers;
    successive pairs cycle through different splits (for ``d = 4``: {01|23}, {02|13}, {03|12}), so that every
    variable is conditioned on every other. ``d = 2`` alternates {0|1} and {1|0}.
    """
    if d < 2:
        raise EventShapeError(f"a coupling layer needs at least 2 variables, got d={d}: use blocks of size >= 2")
    half = d // 2
    splits: list[list[int]] = []
    if d == 4:
        splits = [[0, 1], [0, 2], [0, 3]]
    else:
        splits = [list(range(half)), list(range(0, d, 2))[:half]]
        g = torch.Generator().manual_seed(seed)
        for _ in range(2):
            splits.append(sorted(torch.randperm(d, generator=g)[:half].tolist()))
    out = []
    for i in range(n):
        first = splits[(i // 2) % len(splits)]
        rest = [j for j in range(d) if j not in first]
        out.append((first, rest) if i % 2 == 0 else (rest, first))
    return out


class MaskedAffineCoupling(PairedTransformModule):
    r"""Affine (RealNVP) or additive (NICE) coupling on the last dimension.

    Args:
        hypernet: module mapping ``(*batch, len(cond))`` to ``(*batch, 2 * len(trans))`` (log-scale and shift)
            or, if ``additive``, to ``(*batch, len(trans))`` (shift only).
        cond: indices that condition (pass through unchanged).
        trans: indices that are transformed; ``cond`` and ``trans`` must partition ``range(d)``.
        additive: volume-preserving variant (log-det 0).
        scale_bound: bound :math:`a` of the log-scale's soft clamp.
        learn_scale_bound: ``True``: :math:`s = a\tanh(\hat s)` with a trainable per-dimension :math:`a`
            starting at ``scale_bound`` (NeuralRG's learnable-scaled tanh); ``False``: the fixed, unit-slope clamp
            :math:`s = a\tanh(\hat s / a)`, which leaves small log-scales as the hypernet gives them.
        odd: make the layer odd, :math:`f(-v) = -f(v)` (Z₂-equivariant): the log-scale is symmetrised,
            :math:`s(u) = \tfrac12[\hat s(u) + \hat s(-u)]`, and the shift antisymmetrised,
            :math:`t(u) = \tfrac12[\hat t(u) - \hat t(-u)]` (one hypernet call on a doubled batch). A flow
            of odd layers on a symmetric base gives :math:`q(-x) = q(x)` exactly, and maps the latent origin to
            :math:`x = 0`, so it cannot drop the configurations between the two magnetisation sectors.

    Example:
        >>> t = masked_affine_coupling(4, cond=[0, 1], trans=[2, 3], hidden=(16,))
        >>> z = torch.randn(10, 4); x = t(z); t.log_abs_det_jacobian(z, x).shape
        torch.Size([10])
    """

    def __init__(
        self,
        hypernet: nn.Module,
        cond: Sequence[int],
        trans: Sequence[int],
        additive: bool = False,
        scale_bound: float = 2.0,
        odd: bool = False,
        learn_scale_bound: bool = True,
    ) -> None:
        super().__init__(event_dim=1)
        d = len(cond) + len(trans)
        if sorted([*cond, *trans]) != list(range(d)):
            raise EventShapeError(
                f"cond={list(cond)} and trans={list(trans)} must partition range({d}) (each index exactly once)"
            )
        self.d = d
        self.additive = bool(additive)
        self.odd = bool(odd)
        self.hypernet = hypernet
        self.register_buffer("cond", torch.as_tensor(list(cond), dtype=torch.long))
        self.register_buffer("trans", torch.as_tensor(list(trans), dtype=torch.long))
        self.register_buffer("merge", torch.argsort(torch.as_tensor([*cond, *trans], dtype=torch.long)))
        self.fixed_scale_bound = None if learn_scale_bound or self.additive else float(scale_bound)
        if not self.additive and learn_scale_bound:
            self.scale_bound = nn.Parameter(torch.full((len(trans),), float(scale_bound)))
        self._set_layout()
        self.register_load_state_dict_post_hook(_reset_layout)  # a loaded state may carry other index sets

    def _set_layout(self) -> None:
        """Recognise the index sets that slicing can split and concatenation merge (views, not gathers): the
        halves ``{0..h-1 | h..d-1}`` and the even/odd sites, either way round. Any other partition uses gathers;
        the result is the same, only the number of tensor operations differs."""
        cond, trans, d = self.cond.tolist(), self.trans.tolist(), self.d
        h = d // 2
        self._layout = "general"
        if len(cond) == len(trans) == h and 2 * h == d:
            for name, first, second in (("halves", list(range(h)), list(range(h, d))),
                                        ("interleaved", list(range(0, d, 2)), list(range(1, d, 2)))):
                if (cond, trans) in ((first, second), (second, first)):
                    self._layout = name if cond == first else name + "_swapped"
                    return

    def _split(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(v[..., cond], v[..., trans])``."""
        layout, h = self._layout, self.d // 2
        if layout == "halves":
            return v[..., :h], v[..., h:]
        if layout == "halves_swapped":
            return v[..., h:], v[..., :h]
        if layout == "interleaved":
            return v[..., 0::2], v[..., 1::2]
        if layout == "interleaved_swapped":
            return v[..., 1::2], v[..., 0::2]
        return v.index_select(-1, self.cond), v.index_select(-1, self.trans)

    def _merge(self, v_cond: torch.Tensor, v_trans: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_split`."""
        layout = self._layout
        if layout == "halves":
            return torch.cat([v_cond, v_trans], -1)
        if layout == "halves_swapped":
            return torch.cat([v_trans, v_cond], -1)
        if layout == "interleaved":
            return torch.stack([v_cond, v_trans], -1).flatten(-2)
        if layout == "interleaved_swapped":
            return torch.stack([v_trans, v_cond], -1).flatten(-2)
        return torch.cat([v_cond, v_trans], -1).index_select(-1, self.merge)

    def _check(self, v: torch.Tensor) -> None:
        if v.dim() < 1 or v.shape[-1] != self.d:
            raise EventShapeError(
                f"coupling layer acts on a last dimension of size {self.d}, got input of shape {tuple(v.shape)}"
            )

    def _clamp(self, s_hat: torch.Tensor) -> torch.Tensor:
        r"""The soft-clamped log-scale: :math:`a\tanh(\hat s)` (learned bound) or :math:`a\tanh(\hat s/a)` (fixed)."""
        a = self.fixed_scale_bound
        return self.scale_bound * torch.tanh(s_hat) if a is None else a * torch.tanh(s_hat / a)

    def _hypernet(self, v_cond: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """The hypernet on ``v_cond``, with the context (broadcastable to ``v_cond``'s batch) if there is one."""
        if context is None:
            return self.hypernet(v_cond)
        return self.hypernet(v_cond, context)

    def _scale_shift(
        self, v_cond: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        n = self.trans.numel()
        if self.odd:
            ctx = None if context is None else context.unsqueeze(0)  # the same context for v and -v
            hp, hm = self._hypernet(torch.stack([v_cond, -v_cond]), ctx)  # one call on a doubled batch
            if self.additive:
                return None, 0.5 * (hp - hm)
            s_hat, t = 0.5 * (hp[..., :n] + hm[..., :n]), 0.5 * (hp[..., n:] - hm[..., n:])
            return self._clamp(s_hat), t
        h = self._hypernet(v_cond, context)
        if self.additive:
            return None, h
        return self._clamp(h[..., :n]), h[..., n:]

    def forward_and_log_det(
        self, z: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` and the log-det; ``context`` (shape ``(*batch, context_dim)``, broadcastable) goes to a conditional
        hypernet (:class:`~pyro_nrg.transforms.ConditionalMLP`)."""
        self._check(z)
        z_c, z_t = self._split(z)
        s, t = self._scale_shift(z_c, context)
        if s is None:
            x_t, ldj = z_t + t, z.new_zeros(z.shape[:-1])
        else:
            x_t, ldj = torch.addcmul(t, z_t, torch.exp(s)), s.sum(-1)
        return self._merge(z_c, x_t), ldj

    def inverse_and_log_det(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` and the forward log-det at that point; ``context`` as for :meth:`forward_and_log_det`."""
        self._check(x)
        x_c, x_t = self._split(x)
        s, t = self._scale_shift(x_c, context)
        if s is None:
            z_t, ldj = x_t - t, x.new_zeros(x.shape[:-1])
        else:
            z_t, ldj = (x_t - t) * torch.exp(-s), s.sum(-1)
        return self._merge(x_c, z_t), ldj


def masked_affine_coupling(
    d: int,
    cond: Sequence[int] | None = None,
    trans: Sequence[int] | None = None,
    hidden: Sequence[int] = (32, 32),
    activation: str = "elu",
    additive: bool = False,
    scale_bound: float = 2.0,
    odd: bool = False,
    context_dim: int = 0,
    conditioning: str = "film",
) -> MaskedAffineCoupling:
    """Build a :class:`MaskedAffineCoupling` on ``d`` variables with an :class:`MLP` hypernet.

    ``cond``/``trans`` default to the first/second half of ``range(d)``; ``odd`` makes it Z₂-equivariant.
    ``context_dim > 0`` gives it a :class:`~pyro_nrg.transforms.ConditionalMLP` hypernet (``conditioning``
    ``"concat"`` or ``"film"``) that takes a context of that many features in every call.
    """
    if cond is None or trans is None:
        cond, trans = half_partitions(d, 1)[0]
    n_out = len(trans) * (1 if additive else 2)
    net: nn.Module
    if context_dim:
        net = ConditionalMLP(len(cond), context_dim, n_out, hidden, activation, output_bias=not (odd and additive),
                             conditioning=conditioning)
    else:
        net = MLP(len(cond), n_out, hidden, activation, output_bias=not (odd and additive))
    return MaskedAffineCoupling(net, cond, trans, additive=additive, scale_bound=scale_bound, odd=odd)


class MaskedTanhCoupling(MaskedAffineCoupling):
    r"""A smooth coupling whose conditionals can be bimodal: an affine map of a conditional tanh sum.

    In the latent → physical direction, for every transformed variable (all parameters from the hypernet on
    :math:`z_c`, except the scales :math:`c_k`, which are learned per layer)

    .. math::
        x_\tau = t + e^{s}\,g(z_\tau), \qquad g(v) = v + \sum_{k=1}^{K} b_k \tanh\frac{v - \mu}{c_k}, \qquad
        \ln\Big|\frac{\partial x_\tau}{\partial z_\tau}\Big| = s + \ln\Big(1 + \sum_k \frac{b_k}{c_k}
        \,\mathrm{sech}^2\frac{z_\tau - \mu}{c_k}\Big),

    with :math:`b_k = b_0 e^{\hat b_k} > 0` and :math:`s = a \tanh \hat s`, so :math:`g' \ge 1` (monotone) and the
    map is :math:`C^\infty` (latent HMC keeps a smooth potential). A steep step of height :math:`2\sum_k b_k` at
    :math:`v = \mu` cuts a unimodal input into two modes; the hypernet sets where the cut falls (hence the two
    weights) and how far apart the modes go, from the conditioning variables. That is the shape of the relaxed
    Ising model's site conditionals, :math:`\mathcal N(x_i; \mu_i, v)\cosh x_i`, which an affine coupling (one
    mode) cannot make and a fixed element-wise head (:class:`~pyro_nrg.transforms.OddTanhSum`) makes with a
    context-independent gap. At the start (:math:`\hat b = 0`) it is an affine coupling plus a small bump
    :math:`b_0`.

    Per step it learns faster than an affine coupling but costs about twice the step time, so at equal time it
    is no better (``benchmarks/flow_ablation.py``; figures in ``docs/physics.md``): an option
    (``hierarchical_flow(coupling="tanh")``), not the default.

    The inverse solves :math:`g(v) = (x_\tau - t)e^{-s}` by :func:`~pyro_nrg.transforms.invert_increasing` in the
    bracket :math:`|v - y| \le \sum_k b_k` (implicit-function gradients).

    Args:
        hypernet: maps ``(*batch, len(cond))`` to ``(*batch, (3 + K) * len(trans))``: :math:`\hat s, t, \mu` and
            the ``K`` values :math:`\hat b` of every transformed variable.
        cond: indices that condition.
        trans: indices that are transformed.
        n_terms: ``K``.
        scale_bound: initial bound of the log-scale soft clamp.
        init_weight: :math:`b_0`.
        scales: initial :math:`c_k` (default geometric from 0.5 to 2).
        odd: Z₂-equivariant, :math:`f(-v) = -f(v)`: :math:`\hat s, \hat b` symmetrised and :math:`t, \mu`
            antisymmetrised over :math:`\pm z_c`.
    """

    def __init__(
        self,
        hypernet: nn.Module,
        cond: Sequence[int],
        trans: Sequence[int],
        n_terms: int = 2,
        scale_bound: float = 2.0,
        init_weight: float = 0.05,
        scales: Sequence[float] | None = None,
        odd: bool = False,
    ) -> None:
        super().__init__(hypernet, cond, trans, additive=False, scale_bound=scale_bound, odd=odd)
        K = int(n_terms)
        if K < 1 or not float(init_weight) > 0:
            raise ValueError(f"need n_terms >= 1 and init_weight > 0, got {n_terms}, {init_weight}: try 2 and 0.05")
        if scales is None:
            scales = [0.5 * 4.0 ** (k / max(1, K - 1)) for k in range(K)]
        if len(scales) != K or min(scales) <= 0:
            raise ValueError(f"scales must be {K} positive numbers, got {list(scales)!r}")
        self.n_terms, self.init_weight = K, float(init_weight)
        self.log_c = nn.Parameter(torch.log(torch.as_tensor(list(scales), dtype=torch.get_default_dtype())))

    def _params(self, v_cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(s, t, mu, b, c)``: ``s, t, mu`` of shape ``(*batch, n)``, ``b`` ``(*batch, n, K)``, ``c`` ``(K,)``."""
        n, K = self.trans.numel(), self.n_terms
        if self.odd:
            hp, hm = self.hypernet(torch.stack([v_cond, -v_cond]))
            even, odd_part = 0.5 * (hp + hm), 0.5 * (hp - hm)
            s_hat, t, mu, b_hat = even[..., :n], odd_part[..., n:2 * n], odd_part[..., 2 * n:3 * n], even[..., 3 * n:]
        else:
            h = self.hypernet(v_cond)
            s_hat, t, mu, b_hat = h[..., :n], h[..., n:2 * n], h[..., 2 * n:3 * n], h[..., 3 * n:]
        b = self.init_weight * torch.exp(b_hat.reshape(*b_hat.shape[:-1], n, K).clamp(max=8.0))
        return self.scale_bound * torch.tanh(s_hat), t, mu, b, torch.exp(self.log_c).to(v_cond.dtype)

    def forward_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(z)
        z_c, z_t = self._split(z)
        s, t, mu, b, c = self._params(z_c)
        g, dg = tanh_sum(z_t, 1.0, b, c, mu)
        x_t = t + torch.exp(s) * g
        return self._merge(z_c, x_t), (s + torch.log(dg)).sum(-1)

    def inverse_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x)
        x_c, x_t = self._split(x)
        s, t, mu, b, c = self._params(x_c)
        y = (x_t - t) * torch.exp(-s)
        span = b.sum(-1)
        v, dg = invert_increasing(lambda u: tanh_sum(u, 1.0, b, c, mu), y, y - span, y + span, v0=y)
        return self._merge(x_c, v), (s + torch.log(dg)).sum(-1)

    def extra_repr(self) -> str:
        return f"d={self.d}, n_terms={self.n_terms}, odd={self.odd}"


def masked_tanh_coupling(
    d: int,
    cond: Sequence[int] | None = None,
    trans: Sequence[int] | None = None,
    hidden: Sequence[int] = (32, 32),
    activation: str = "elu",
    n_terms: int = 2,
    scale_bound: float = 2.0,
    odd: bool = False,
) -> MaskedTanhCoupling:
    """Build a :class:`MaskedTanhCoupling` on ``d`` variables with an :class:`MLP` hypernet (zero output layer)."""
    if cond is None or trans is None:
        cond, trans = half_partitions(d, 1)[0]
    net = MLP(len(cond), len(trans) * (3 + int(n_terms)), hidden, activation)
    return MaskedTanhCoupling(net, cond, trans, n_terms=n_terms, scale_bound=scale_bound, odd=odd)


# --- the fused kernel of a stack of affine couplings (the fast path) ---------------------------------------------

_ACTIVATION_FNS: dict[type, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    nn.ELU: ("elu", F.elu), nn.ReLU: ("relu", F.relu), nn.Tanh: ("tanh", torch.tanh), nn.SiLU: ("silu", F.silu),
    nn.Softplus: ("softplus", F.softplus), nn.GELU: ("gelu", F.gelu),
}
_DEFAULT_ACTIVATION = {nn.ELU: {"alpha": 1.0}, nn.Softplus: {"beta": 1.0, "threshold": 20.0},
                       nn.GELU: {"approximate": "none"}}


def _mlp_spec(net: nn.Module) -> tuple[Any, ...] | None:
    """``(activation, ((in, out, bias), ...))`` of an :class:`MLP` with default activations, else ``None``."""
    if not isinstance(net, MLP):
        return None
    layers = list(net)
    linears, acts = layers[0::2], layers[1::2]
    if not all(type(m) is nn.Linear for m in linears) or len(acts) != len(linears) - 1:
        return None
    kinds = {type(a) for a in acts}
    if len(kinds) > 1 or (kinds and next(iter(kinds)) not in _ACTIVATION_FNS):
        return None
    for a in acts:
        if any(getattr(a, k) != v for k, v in _DEFAULT_ACTIVATION.get(type(a), {}).items()):
            return None
    act = _ACTIVATION_FNS[next(iter(kinds))][0] if kinds else "none"
    return act, tuple((m.in_features, m.out_features, m.bias is not None) for m in linears)


def affine_stack_spec(stack: CouplingStack) -> tuple[Any, ...] | None:
    """The structure of a stack of :class:`MaskedAffineCoupling` layers with :class:`MLP` hypernets, as a hashable
    tuple that determines the fused kernel (``None`` if the stack has other parts: they run unfused)."""
    spec = []
    for part in stack.parts:
        if type(part) is not MaskedAffineCoupling:
            return None
        net = _mlp_spec(part.hypernet)
        if net is None:
            return None
        spec.append((tuple(part.cond.tolist()), tuple(part.trans.tolist()), part.additive, part.odd,
                     part.fixed_scale_bound, net))
    return (stack.parts[0].d, tuple(spec)) if spec else None


def _affine_stack_params(stack: CouplingStack) -> list[torch.Tensor]:
    """The tensors the fused kernel reads, in its order: per coupling the hypernet's weights and biases, then the
    learned scale bound (if any)."""
    out: list[torch.Tensor] = []
    for part in stack.parts:
        for m in list(part.hypernet)[0::2]:
            out.append(m.weight)
            if m.bias is not None:
                out.append(m.bias)
        if not part.additive and part.fixed_scale_bound is None:
            out.append(part.scale_bound)
    return out


def _unpack_stack_params(couplings: tuple[Any, ...], params: tuple[torch.Tensor, ...]) -> list[tuple[list, Any]]:
    """Per coupling of a stack spec: its ``[(weight, bias or None), ...]`` and its log-scale bound (or ``None``),
    taken in order from the flat ``params``."""
    per_part, i = [], 0
    for _cond, _trans, additive, _odd, fixed, (_act, linears) in couplings:
        layer_params = []
        for _, _, bias in linears:
            layer_params.append((params[i], params[i + 1] if bias else None))
            i += 2 if bias else 1
        bound = None
        if not additive and fixed is None:
            bound, i = params[i], i + 1
        per_part.append((layer_params, bound))
    return per_part


def _kernel_net(h: torch.Tensor, layer_params: list, act_fn: Callable[[torch.Tensor], torch.Tensor] | None
                ) -> torch.Tensor:
    """The coupling's MLP on ``h``; a first layer with K <= 2 inputs is written element-wise so that the compiler
    fuses it with the activation."""
    for j, (w, b) in enumerate(layer_params):
        if j == 0 and w.shape[1] <= 2:
            y = h[..., 0:1] * w[:, 0]
            for c in range(1, w.shape[1]):
                y = y + h[..., c:c + 1] * w[:, c]
            h = y if b is None else y + b
        else:
            h = F.linear(h, w, b)
        if act_fn is not None and j < len(layer_params) - 1:
            h = act_fn(h)
    return h


def _kernel_scale_shift(u: torch.Tensor, n: int, additive: bool, odd: bool, layer_params: list,
                        act_fn: Callable[[torch.Tensor], torch.Tensor] | None
                        ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Raw log-scale (``None`` when additive) and shift of ``n`` transformed variables given the conditioner ``u``;
    an odd coupling symmetrises the net over ``±u``."""
    if odd:
        hp, hm = _kernel_net(torch.stack([u, -u]), layer_params, act_fn)
        if additive:
            return None, 0.5 * (hp - hm)
        return 0.5 * (hp[..., :n] + hm[..., :n]), 0.5 * (hp[..., n:] - hm[..., n:])
    h = _kernel_net(u, layer_params, act_fn)
    return (None, h) if additive else (h[..., :n], h[..., n:])


def _make_affine_stack_kernel(spec: tuple[Any, ...], inverse: bool) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    r"""A pure function ``(rows, *params) -> (out, ldj)`` computing what :meth:`CouplingStack.forward_and_log_det`
    (or the inverse) computes for a stack of structure ``spec`` (:func:`affine_stack_spec`), written for the compiler:
    ``rows`` ``(R, d)``, ``ldj`` ``(R,)``."""
    d, couplings = spec

    def kernel(rows: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        per_part = _unpack_stack_params(couplings, params)
        ldj = rows.new_zeros(rows.shape[0])
        order = range(len(couplings) - 1, -1, -1) if inverse else range(len(couplings))
        for k in order:
            cond, trans, additive, odd, fixed, (act, linears) = couplings[k]
            layer_params, bound = per_part[k]
            act_fn = _activation(act) if len(linears) > 1 else None
            u, v = rows[:, list(cond)], rows[:, list(trans)]
            s, t = _kernel_scale_shift(u, len(trans), additive, odd, layer_params, act_fn)
            if s is not None:
                s = bound * torch.tanh(s) if fixed is None else fixed * torch.tanh(s / fixed)
                ldj = ldj + s.sum(-1)
                v = (v - t) * torch.exp(-s) if inverse else torch.addcmul(t, v, torch.exp(s))
            else:
                v = v - t if inverse else v + t
            merge = [0] * d
            for pos, site in enumerate((*cond, *trans)):
                merge[site] = pos
            rows = torch.cat([u, v], -1)[:, merge]
        return rows, ldj

    return kernel


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    for act_name, fn in _ACTIVATION_FNS.values():
        if act_name == name:
            return fn
    raise KeyError(name)


class CouplingStack(PairedTransformModule):
    """A sequence of block bijectors on the last dimension applied in order (latent → physical).

    Each part must implement ``forward_and_log_det``/``inverse_and_log_det`` (any
    :class:`~pyro_nrg.transforms.base.PairedTransformModule`, or a :class:`TransformBlock` wrapping a Pyro
    transform). Log-determinants add up. ``cache_size=0`` turns off Pyro's cache of the last ``(z, x)`` pair (for a
    stack that is differentiated through, as in a :class:`~pyro_nrg.transforms.PointTransformation`).

    :meth:`fused_forward_and_log_det` / :meth:`fused_inverse_and_log_det` are the fast path (used by a fast
    :class:`~pyro_nrg.transforms.HierarchicalFlow`): for a stack of affine couplings with MLP hypernets, one
    compiled kernel per stack structure, shared by every stack of that structure; any other stack runs its parts.
    """

    def __init__(self, parts: Sequence[PairedTransformModule], cache_size: int = 1) -> None:
        super().__init__(event_dim=1, cache_size=cache_size)
        self.parts = nn.ModuleList(parts)

    def forward_and_log_det(
        self, z: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the parts in order; a ``context`` is handed to every part (conditional couplings)."""
        ldj = z.new_zeros(z.shape[:-1])
        for part in self.parts:
            z, ld = part.forward_and_log_det(z) if context is None else part.forward_and_log_det(z, context)
            ldj = ldj + ld
        return z, ldj

    def inverse_and_log_det(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Invert the parts in reverse order (``context`` as for :meth:`forward_and_log_det`)."""
        ldj = x.new_zeros(x.shape[:-1])
        for part in reversed(self.parts):
            x, ld = part.inverse_and_log_det(x) if context is None else part.inverse_and_log_det(x, context)
            ldj = ldj + ld
        return x, ldj

    def _fused(self, v: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
        spec = getattr(self, "_fused_spec", False)
        if spec is False:  # computed once (the structure of a built stack does not change)
            spec = affine_stack_spec(self)
            object.__setattr__(self, "_fused_spec", spec)
        if spec is None or v.dim() != 2:
            return None
        return kernel_call(("affine_stack", spec, inverse), lambda: _make_affine_stack_kernel(spec, inverse), v,
                           *_affine_stack_params(self))

    def fused_forward_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_and_log_det` on rows ``(R, d)`` through the compiled kernel (same numbers)."""
        out = self._fused(z, inverse=False)
        return self.forward_and_log_det(z) if out is None else out

    def fused_inverse_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`inverse_and_log_det` on rows ``(R, d)`` through the compiled kernel (same numbers)."""
        out = self._fused(x, inverse=True)
        return self.inverse_and_log_det(x) if out is None else out


def coupling_stack(
    d: int,
    n_couplings: int = 4,
    hidden: Sequence[int] = (32, 32),
    activation: str = "elu",
    additive: bool = False,
    scale_bound: float = 2.0,
    seed: int = 0,
    odd: bool = False,
    kind: str = "affine",
    n_terms: int = 2,
    context_dim: int = 0,
    conditioning: str = "film",
) -> CouplingStack:
    """A RealNVP block bijector on ``d`` variables: ``n_couplings`` couplings with alternating partitions
    (``odd``: every coupling Z₂-equivariant, see :class:`MaskedAffineCoupling`).

    This is the default block of :func:`~pyro_nrg.transforms.hierarchical_flow` (``d = 4`` for 2×2 plaquettes,
    ``d = 2`` for 1D pairs). ``kind="tanh"`` builds :class:`MaskedTanhCoupling` layers (``n_terms`` tanh terms;
    smooth, with conditionals that can be bimodal) instead of affine ones; ``additive`` applies to affine layers.
    ``context_dim > 0`` makes every (affine) coupling conditional on a context of that many features
    (:func:`masked_affine_coupling`); the stack then takes ``context`` in every call.
    """
    if kind not in ("affine", "tanh"):
        raise ValueError(f"kind must be 'affine' or 'tanh', got {kind!r}")
    if context_dim and kind != "affine":
        raise ValueError("conditional couplings are affine: use kind='affine' with context_dim > 0")
    if kind == "tanh" and additive:
        raise ValueError("additive=True is a property of affine couplings: use kind='affine' or additive=False")
    parts: list[PairedTransformModule] = [
        masked_affine_coupling(d, c, t, hidden, activation, additive, scale_bound, odd, context_dim, conditioning)
        if kind == "affine"
        else masked_tanh_coupling(d, c, t, hidden, activation, n_terms, scale_bound, odd)
        for c, t in half_partitions(d, n_couplings, seed)
    ]
    return CouplingStack(parts)


class TransformBlock(PairedTransformModule):
    """Adapter: use any Pyro/torch transform on a flat ``(*batch, d)`` event as a block bijector.

    For example a rational-quadratic spline coupling,
    ``TransformBlock(pyro.distributions.transforms.spline_coupling(4))``. The wrapped transform's
    ``log_abs_det_jacobian`` must return shape ``batch`` (event_dim 1). The inverse uses the transform's own
    inverse, so it must be bijective.
    """

    def __init__(self, transform: torch.distributions.Transform) -> None:
        super().__init__(event_dim=1)
        self.transform = transform

    def forward_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.transform(z)
        return x, self.transform.log_abs_det_jacobian(z, x)

    def inverse_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.transform.inv(x)
        return z, self.transform.log_abs_det_jacobian(z, x)
