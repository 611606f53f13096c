r"""The NeuralRG bijection: a MERA-like hierarchy of block bijectors on a periodic lattice.

Li & Wang, *Neural Network Renormalization Group*, PRL 121, 260601 (2018), arXiv:1802.02840.

Geometry (see :mod:`pyro_nrg.lattice`): RG level :math:`l` acts on the sub-lattice of stride :math:`2^l`, an
:math:`n^{\,d}` grid with :math:`n = L/2^l`. A *disentangler* layer applies one block bijector to every block
of the grid offset by half a block (one grid site); a *decimator* layer applies another to every aligned block
(2×2 plaquettes in 2D, pairs in 1D). After the decimator only the block's first site goes on to level
:math:`l+1`; the others are that scale's latent ("renormalized") variables. One block bijector per layer is
shared by all block positions (translation invariance), and each layer is a single batched call over all blocks.

Direction: the transform maps latent :math:`z` to physical :math:`x` (the *inverse* RG, coarse to fine):

.. math::
    x = g(z) = \prod_{l=0}^{K-1} \big(U_l \circ D_l\big)^{(r)}\, z, \qquad
    \ln\Big|\det \frac{\partial x}{\partial z}\Big| = \sum_{\text{layers}}\ \sum_{\text{blocks}} \ln|\det J_b|,

applied from the coarsest level :math:`K-1` down to level 0 (``repeats`` times (decimator, disentangler) per
level), optionally followed by an element-wise *head* :math:`x_i = h(y_i)` on every site (see
:mod:`pyro_nrg.transforms.elementwise`; it lets the affine hierarchy produce the bimodal site densities of the
relaxed Ising model). Its inverse :math:`z = g^{-1}(x)` is the learned RG transformation. Latent site ``r`` carries the
variable of RG level ``site_levels(L)[r]``; :meth:`HierarchicalFlow.split_levels` returns them per level.

Shapes: events ``(L,)`` / ``(L, L)``, or ``(N,)`` with ``flat=True`` (for Pyro's ``AutoNormalizingFlow`` and
``NeuTraReparam``, which work on flat vectors). Log-determinant: ``batch_shape``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import EventShapeError, LatticeSizeError
from ..lattice import Lattice, site_levels
from .base import PairedTransformModule
from .coupling import coupling_stack
from .elementwise import ConditionalOddTanhSum, ElementwiseSpline, OddTanhSum
from .fast import fast_call, set_fast_path

__all__ = ["HierarchicalFlow", "hierarchical_flow"]

BlockFactory = Callable[[int], PairedTransformModule]


class HierarchicalFlow(PairedTransformModule):
    r"""MERA-like NeuralRG flow on a periodic ``L**dim`` lattice (latent ``z`` → physical ``x``).

    Args:
        L: lattice side, a power of two ``>= 2``.
        dim: 1 or 2.
        block_factory: called as ``block_factory(layer_index)`` once per layer; returns a block bijector acting on
            the last dimension of size ``2**dim`` (e.g. :func:`~pyro_nrg.transforms.coupling_stack`).
        n_levels: RG levels (default all, ``log2 L``, down to a single variable). With fewer levels the
            remaining ``(L / 2**n_levels)**dim`` coarse sites are passed through as top-level latents.
        repeats: (disentangler, decimator) pairs per level.
        flat: events are flat ``(N,)`` vectors (row-major) instead of ``(L,)*dim``.
        head: an element-wise bijector applied to every site after the hierarchy (physical side), with
            ``event_dim == dim`` (e.g. :class:`~pyro_nrg.transforms.ElementwiseSpline`); ``None`` = none.
        fast: use the fast evaluation path (:mod:`pyro_nrg.transforms.fast`): every layer is a fixed reshape of
            its RG level's grid (a roll for the disentanglers) instead of a gather and a scatter, and the block
            bijectors and the head's forward map run as kernels compiled once by ``torch.compile`` (one kernel for
            all blocks of the same structure, every level and batch size). Same numbers within floating-point
            tolerance; an attribute, so it can be switched at any time (:func:`~pyro_nrg.transforms.set_fast_path`).
            Calls with a ``context`` (conditional flows) take the eager path.

    Example:
        >>> flow = hierarchical_flow(8, dim=2, n_couplings=2, hidden=16)
        >>> z = torch.randn(5, 8, 8)
        >>> x = flow(z); flow.log_abs_det_jacobian(z, x).shape
        torch.Size([5])
    """

    def __init__(
        self,
        L: int,
        dim: int,
        block_factory: BlockFactory,
        n_levels: int | None = None,
        repeats: int = 1,
        flat: bool = False,
        head: PairedTransformModule | None = None,
        fast: bool = False,
    ) -> None:
        lattice = Lattice(L, dim)
        lattice.require_power_of_two("a hierarchical flow")
        k = lattice.n_levels
        if n_levels is None:
            n_levels = k
        if not isinstance(n_levels, int) or not 1 <= n_levels <= k:
            raise LatticeSizeError(
                f"n_levels must be an integer in 1..{k} for L={L} (log2 L = {k}), got {n_levels!r}: "
                f"use n_levels={k} for the full hierarchy"
            )
        if not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be a positive integer, got {repeats!r}: use repeats=1")
        super().__init__(event_dim=1 if flat else dim)
        self.lattice = lattice
        self.L, self.dim, self.n_levels, self.repeats, self.flat = L, dim, n_levels, repeats, flat
        self.block_size = 2**dim
        # layers[l][2r] = disentangler, layers[l][2r+1] = decimator
        idx = 0
        levels = []
        for _ in range(n_levels):
            layer = []
            for _ in range(2 * repeats):
                layer.append(block_factory(idx))
                idx += 1
            levels.append(nn.ModuleList(layer))
        self.levels = nn.ModuleList(levels)
        if head is not None and head.event_dim != dim:
            raise EventShapeError(f"the head must act on the lattice (event_dim={dim}), got event_dim={head.event_dim}")
        self.head = head
        self.fast = bool(fast)
        self.register_buffer("levels_of_sites", site_levels(L, dim, n_levels), persistent=False)
        # every layer is one gather of its blocks and one scatter back: index sets into the flat lattice
        for level in range(n_levels):
            for offset in (0, 1):
                idx = self._block_sites(level, offset)
                self.register_buffer(f"_gather_{level}_{offset}", idx, persistent=False)
                if level == 0:  # every site is in some block: the scatter is a gather by the inverse permutation
                    self.register_buffer(f"_scatter_{level}_{offset}", torch.argsort(idx), persistent=False)

    def _block_sites(self, level: int, offset: int) -> torch.Tensor:
        r"""Flat (row-major) site indices of the blocks of level ``level``'s grid shifted by ``offset`` grid sites.

        Shape ``(n_blocks * 2**dim,)``, block-major: entry ``[b * 2**dim + k]`` is site ``k`` of block ``b``, with
        blocks in row-major order of their corner and sites in row-major order within the block. On the grid of
        stride :math:`s = 2^l` (side :math:`n = L/s`), block :math:`(a, b)` holds grid sites
        :math:`((2a + u + o) \bmod n,\ (2b + v + o) \bmod n)` for :math:`u, v \in \{0, 1\}`.
        """
        s = 2**level
        n = self.L // s
        m = n // 2
        corners = torch.arange(m) * 2
        inner = torch.arange(2)
        coord = (corners[:, None] + inner[None, :] + offset) % n * s  # (m, 2): lattice coordinate per (block, k)
        if self.dim == 1:
            return coord.reshape(-1)
        rows = coord[:, None, :, None]  # (a, b, u, v)
        cols = coord[None, :, None, :]
        return (rows * self.L + cols).reshape(-1)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Event shape ``(L,)*dim`` or ``(N,)`` when ``flat``."""
        return (self.lattice.n_sites,) if self.flat else self.lattice.event_shape

    # --- reshaping ---------------------------------------------------------------------------------------
    def _to_lattice(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        es = self.event_shape
        if v.dim() < len(es) or tuple(v.shape[v.dim() - len(es):]) != es:
            raise EventShapeError(
                f"HierarchicalFlow(L={self.L}, dim={self.dim}, flat={self.flat}) expects shape "
                f"(*batch, {', '.join(map(str, es))}), got {tuple(v.shape)}"
                + ("; pass flat=True for flat (N,) vectors" if not self.flat else "; reshape to (*batch, N)")
            )
        batch = v.shape[: v.dim() - len(es)]
        return v.reshape(-1, *self.lattice.event_shape), batch

    def _from_lattice(self, v: torch.Tensor, batch: torch.Size) -> torch.Tensor:
        return v.reshape(*batch, *self.event_shape)

    # --- one layer -----------------------------------------------------------------------------------------
    def _apply_layer(
        self, y: torch.Tensor, level: int, offset: int, block: PairedTransformModule, inverse: bool,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply ``block`` (or its inverse) to every block of level ``level``'s grid, shifted by ``offset``.

        ``y``: the flat lattice ``(B, N)``. The blocks are gathered into one ``(B * n_blocks, 2**dim)`` batch, so
        the block bijector runs once. With a ``context`` (``(B, c)`` or ``(1, c)``) the blocks go in as
        ``(B, n_blocks, 2**dim)`` with the context as ``(B or 1, 1, c)``, so that a conditional hypernet broadcasts
        it over the blocks of a configuration instead of repeating it. Returns the new ``y`` and the log-det (shape
        ``(B,)``).
        """
        B = y.shape[0]
        idx = getattr(self, f"_gather_{level}_{offset}")
        fn = block.inverse_and_log_det if inverse else block.forward_and_log_det
        if context is None:
            out, ld = fn(y.index_select(1, idx).reshape(-1, self.block_size))
        else:
            out, ld = fn(y.index_select(1, idx).reshape(B, -1, self.block_size), context.unsqueeze(1))
        out = out.reshape(B, -1)
        if level == 0:
            y = out.index_select(1, getattr(self, f"_scatter_{level}_{offset}"))
        else:
            y = y.index_copy(1, idx, out)
        return y, ld.reshape(B, -1).sum(-1)

    def _layer_plan(self) -> list[tuple[int, int, PairedTransformModule]]:
        """(level, offset, block) in the latent → physical order: coarse to fine, decimator before disentangler."""
        plan = []
        for level in reversed(range(self.n_levels)):
            layers = self.levels[level]
            for r in reversed(range(self.repeats)):
                plan.append((level, 0, layers[2 * r + 1]))  # decimator: aligned blocks
                plan.append((level, 1, layers[2 * r]))  # disentangler: blocks offset by half a block
        return plan

    # --- the fast path: fixed reshapes of each level's grid -------------------------------------------------
    def _grid(self, y: torch.Tensor, stride: int) -> torch.Tensor:
        """The sub-lattice of stride ``stride`` of ``y`` (``(B, *lattice)``): shape ``(B, n[, n])``, a view."""
        return y[(slice(None),) + (slice(None, None, stride),) * self.dim]

    def _to_blocks(self, g: torch.Tensor, offset: int) -> torch.Tensor:
        r"""A level's grid ``(B, n[, n])`` as its blocks ``(B, m[, m], 2**dim)`` (``m = n/2``), sites of a block in
        row-major order; ``offset = 1`` first rolls the grid by one site along every axis (the disentangler's
        blocks). The same blocks, in the same order, as :meth:`_block_sites` gathers."""
        if offset:
            g = torch.roll(g, (-1,) * self.dim, tuple(range(1, self.dim + 1)))
        B, n = g.shape[0], g.shape[1]
        m = n // 2
        if self.dim == 1:
            return g.reshape(B, m, 2)
        return g.reshape(B, m, 2, m, 2).transpose(2, 3).reshape(B, m, m, 4)

    def _from_blocks(self, b: torch.Tensor, offset: int) -> torch.Tensor:
        """Inverse of :meth:`_to_blocks`."""
        B, m = b.shape[0], b.shape[1]
        if self.dim == 1:
            g = b.reshape(B, 2 * m)
        else:
            g = b.reshape(B, m, m, 2, 2).transpose(2, 3).reshape(B, 2 * m, 2 * m)
        if offset:
            g = torch.roll(g, (1,) * self.dim, tuple(range(1, self.dim + 1)))
        return g

    def _join(self, coarse: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``g`` (a level's grid, ``(B, n[, n])``) with its even(-even) sites replaced by ``coarse``
        (``(B, n/2[, n/2])``, the next level's grid)."""
        B, n = g.shape[0], g.shape[1]
        m = n // 2
        if self.dim == 1:
            return torch.stack([coarse, g.reshape(B, m, 2)[:, :, 1]], -1).reshape(B, n)
        g5 = g.reshape(B, m, 2, m, 2)  # (batch, a, u, b, v): grid site (2a + u, 2b + v)
        first_row = torch.stack([coarse, g5[:, :, 0, :, 1]], -1)  # u = 0: (B, a, b, v)
        return torch.stack([first_row, g5[:, :, 1]], 2).reshape(B, n, n)

    def _fast_layer(self, g: torch.Tensor, offset: int, block: PairedTransformModule,
                    inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One layer on a level's grid: the blocks as rows ``(B * n_blocks, 2**dim)`` through the block bijector's
        compiled kernel (one kernel serves every block module, level and batch size), and back."""
        blocks = self._to_blocks(g, offset)
        rows = blocks.reshape(-1, self.block_size)
        fused = getattr(block, "fused_inverse_and_log_det" if inverse else "fused_forward_and_log_det", None)
        if fused is not None:  # a stack of affine couplings: one kernel per structure
            out, ld = fused(rows)
        elif inverse:
            out, ld = fast_call(block, "inverse", block.inverse_and_log_det, rows)
        else:
            out, ld = fast_call(block, "forward", block.forward_and_log_det, rows)
        return self._from_blocks(out.reshape(blocks.shape), offset), ld.reshape(g.shape[0], -1).sum(-1)

    def _fast_hierarchy_forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hierarchy, latent → physical, on ``(B, *lattice)``: grid by grid from the coarsest level."""
        ldj = z.new_zeros(z.shape[0])
        g = self._grid(z, 2**self.n_levels)  # the top-level latents pass through
        for level in reversed(range(self.n_levels)):
            g = self._join(g, self._grid(z, 2**level))
            layers = self.levels[level]
            for r in reversed(range(self.repeats)):
                for offset, block in ((0, layers[2 * r + 1]), (1, layers[2 * r])):
                    g, ld = self._fast_layer(g, offset, block, inverse=False)
                    ldj = ldj + ld
        return g, ldj

    def _fast_hierarchy_inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned RG, physical → latent, on ``(B, *lattice)``: level by level from the finest."""
        ldj = x.new_zeros(x.shape[0])
        g, grids = x, []
        for level in range(self.n_levels):
            layers = self.levels[level]
            for r in range(self.repeats):
                for offset, block in ((1, layers[2 * r]), (0, layers[2 * r + 1])):
                    g, ld = self._fast_layer(g, offset, block, inverse=True)
                    ldj = ldj + ld
            grids.append(g)
            g = self._grid(g, 2)
        for grid in reversed(grids):  # every level's latents back in place, coarse into fine
            g = self._join(g, grid)
        return g, ldj

    def _flat_context(self, context: torch.Tensor | None, batch: torch.Size) -> torch.Tensor | None:
        """``context`` of shape ``(*batch, c)`` (or broadcastable, e.g. ``(c,)``) as ``(B, c)``, or ``(1, c)`` when it
        is the same for the whole batch."""
        if context is None:
            return None
        if context.dim() == 1 or context.shape[:-1].numel() == 1:
            return context.reshape(1, -1)
        return context.expand(*batch, context.shape[-1]).reshape(-1, context.shape[-1])

    def _head(self, y: torch.Tensor, context: torch.Tensor | None, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The head (or its inverse) on ``y``; a conditional head (``head.conditional``) gets the context."""
        assert self.head is not None
        fn = self.head.inverse_and_log_det if inverse else self.head.forward_and_log_det
        if context is not None and getattr(self.head, "conditional", False):
            return fn(y, context)
        return fn(y)

    def forward_and_log_det(
        self, z: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = g(z)`` and its log-det; ``context`` (shape ``(*batch, c)``, broadcastable) goes to every block of a
        flow built with conditional blocks (:class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow`)."""
        y, batch = self._to_lattice(z)
        if self.fast and context is None:
            x, ldj = self._fast_hierarchy_forward(y)
            if self.head is not None:
                x, ld = fast_call(self.head, "forward", self.head.forward_and_log_det, x)
                ldj = ldj + ld
            return self._from_lattice(x, batch), ldj.reshape(batch)
        context = self._flat_context(context, batch)
        y = y.reshape(y.shape[0], -1)
        ldj = y.new_zeros(y.shape[0])
        for level, offset, block in self._layer_plan():
            y, ld = self._apply_layer(y, level, offset, block, inverse=False, context=context)
            ldj = ldj + ld
        y = y.reshape(-1, *self.lattice.event_shape)
        if self.head is not None:
            y, ld = self._head(y, context, inverse=False)
            ldj = ldj + ld
        return self._from_lattice(y, batch), ldj.reshape(batch)

    def inverse_and_log_det(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = g^{-1}(x)`` and the forward log-det at that point (``context`` as for :meth:`forward_and_log_det`)."""
        y, batch = self._to_lattice(x)
        context = self._flat_context(context, batch)
        ldj = y.new_zeros(y.shape[0])
        if self.head is not None:
            y, ldj = self._head(y, context, inverse=True)  # an iterative solve: outside any compiled kernel
        if self.fast and context is None:
            z, ld = self._fast_hierarchy_inverse(y)
            return self._from_lattice(z, batch), (ldj + ld).reshape(batch)
        y = y.reshape(y.shape[0], -1)
        for level, offset, block in reversed(self._layer_plan()):
            y, ld = self._apply_layer(y, level, offset, block, inverse=True, context=context)
            ldj = ldj + ld
        return self._from_lattice(y.reshape(-1, *self.lattice.event_shape), batch), ldj.reshape(batch)

    # --- renormalized variables ------------------------------------------------------------------------------
    def site_levels(self) -> torch.Tensor:
        """RG level of every latent site, shape ``event_shape`` (0 = finest; ``n_levels`` = coarsest)."""
        return self.levels_of_sites.reshape(self.event_shape)

    def split_levels(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Split latent variables by RG level: element ``l`` has shape ``(*batch, n_l)`` in row-major order.

        ``n_0 = N (1 - 2**-dim)``, ..., and the last element holds the coarsest variables.
        """
        y, batch = self._to_lattice(z)
        flat = y.reshape(y.shape[0], -1)
        lev = self.levels_of_sites.reshape(-1)
        return [flat[:, lev == k].reshape(*batch, -1) for k in range(self.n_levels + 1)]

    def renormalized_variables(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the learned RG on physical ``x`` and return the latent variables per level (see split_levels)."""
        return self.split_levels(self.inv(x))

    def extra_repr(self) -> str:
        return (f"L={self.L}, dim={self.dim}, n_levels={self.n_levels}, repeats={self.repeats}, flat={self.flat}, "
                f"head={self.head is not None}, fast={self.fast}")


def hierarchical_flow(
    L: int,
    dim: int = 2,
    n_levels: int | None = None,
    n_couplings: int = 4,
    hidden: int | Sequence[int] = 32,
    n_hidden_layers: int = 2,
    repeats: int = 1,
    activation: str = "elu",
    additive: bool = False,
    scale_bound: float = 2.0,
    flat: bool = False,
    block_factory: BlockFactory | None = None,
    odd: bool = False,
    head: str = "tanh",
    head_bins: int = 16,
    head_bound: float = 6.0,
    head_terms: int = 4,
    coupling: str = "affine",
    coupling_terms: int = 2,
    context_dim: int = 0,
    conditioning: str = "film",
    condition_head: bool = True,
    fast: bool = False,
) -> HierarchicalFlow:
    """Build a :class:`HierarchicalFlow` with RealNVP block bijectors (sensible defaults).

    Args:
        L: power-of-two lattice side.
        dim: 1 or 2.
        n_levels: RG levels (default all).
        n_couplings: couplings per block bijector.
        hidden: hidden width (int, repeated ``n_hidden_layers`` times) or explicit widths.
        n_hidden_layers: number of hidden layers when ``hidden`` is an int.
        repeats: (disentangler, decimator) pairs per level.
        activation: hypernet activation.
        additive: volume-preserving (NICE) couplings.
        scale_bound: initial soft-clamp bound of the log-scales.
        flat: flat ``(N,)`` events.
        block_factory: overrides the default block (called with the layer index); the block acts on ``2**dim``
            variables.
        odd: Z₂-equivariant blocks, :math:`g(-z) = -g(z)` (then :math:`q(-x) = q(x)` without a mixture; see
            :class:`~pyro_nrg.transforms.MaskedAffineCoupling`). At equal training time its F_q is higher than that of
            the default flow with the Z₂ mixture (``z2_symmetric=True``), which stays the default; the odd flow covers
            more of :math:`p` between the two sectors (``benchmarks/flow_mh_coverage.py``; ``docs/physics.md``,
            "Coverage").
        head: ``"tanh"`` (the default, as in :class:`~pyro_nrg.flows.NeuralRGConfig`) for the smooth odd
            :class:`~pyro_nrg.transforms.OddTanhSum` on every site after the hierarchy, ``"none"`` for the paper's
            flow, or ``"spline"`` for an odd element-wise RQ spline
            (:class:`~pyro_nrg.transforms.ElementwiseSpline`, :math:`C^1`); both odd, so an ``odd`` flow stays
            equivariant.
        head_bins: the spline head's number of bins.
        head_bound: the half-width of the spline head's interval (identity beyond it).
        head_terms: tanh terms of ``head="tanh"`` (:class:`~pyro_nrg.transforms.OddTanhSum`: smooth, so latent
            HMC keeps a smooth potential).
        coupling: ``"affine"`` (RealNVP, the paper's) or ``"tanh"``
            (:class:`~pyro_nrg.transforms.MaskedTanhCoupling`: smooth, conditionals that can be bimodal, about twice
            the step time).
        coupling_terms: tanh terms per variable of ``coupling="tanh"``.
        context_dim: ``> 0``: every coupling's hypernet takes a context of that many features
            (:class:`~pyro_nrg.transforms.ConditionalMLP`), passed as ``forward_and_log_det(z, context)``; see
            :class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow`. Affine couplings only.
        conditioning: how the context enters: ``"film"`` or ``"concat"``.
        condition_head: with ``context_dim > 0`` and ``head="tanh"``, the head's parameters depend on the context
            too (:class:`~pyro_nrg.transforms.ConditionalOddTanhSum`).
        fast: the fast evaluation path for the flow and its head (:func:`~pyro_nrg.transforms.set_fast_path`).
    """
    widths = (hidden,) * n_hidden_layers if isinstance(hidden, int) else tuple(hidden)
    if block_factory is None:

        def block_factory(i: int) -> PairedTransformModule:
            return coupling_stack(2**dim, n_couplings, widths, activation, additive, scale_bound, seed=i, odd=odd,
                                  kind=coupling, n_terms=coupling_terms, context_dim=context_dim,
                                  conditioning=conditioning)

    if coupling not in ("affine", "tanh"):
        raise ValueError(f"coupling must be 'affine' or 'tanh', got {coupling!r}")
    if head not in ("none", "spline", "tanh"):
        raise ValueError(f"head must be 'none', 'spline' or 'tanh', got {head!r}")
    head_module: PairedTransformModule | None = None
    if head == "spline":
        head_module = ElementwiseSpline(dim, head_bins, head_bound, odd=True)
    elif head == "tanh" and context_dim and condition_head:
        head_module = ConditionalOddTanhSum(dim, n_terms=head_terms, context_dim=context_dim)
    elif head == "tanh":
        head_module = OddTanhSum(dim, n_terms=head_terms)
    flow = HierarchicalFlow(L, dim, block_factory, n_levels=n_levels, repeats=repeats, flat=flat, head=head_module)
    set_fast_path(flow, fast)
    return flow
