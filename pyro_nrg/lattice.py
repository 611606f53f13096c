r"""Periodic hypercubic lattices: geometry, adjacency, and the MERA block index sets of NeuralRG.

A lattice has ``dim`` in {1, 2} and side ``L``; a configuration has event shape ``(L,)`` or ``(L, L)`` and
``N = L**dim`` sites. Neighbour sums are done with :func:`torch.roll` (periodic boundaries), never with Python
loops.

The NeuralRG hierarchy (Li & Wang, PRL 121, 260601 (2018)) on ``L = 2**k``: RG level ``l = 0, ..., k-1`` acts on
the sub-lattice of stride ``2**l``, an ``n x n`` grid with ``n = L / 2**l``. Its *decimator* blocks are the
aligned ``2 x 2`` plaquettes of that grid (pairs in 1D); its *disentangler* blocks are shifted by one grid site
(half a block). After the decimator only the block's first site (even grid coordinates) goes on to level
``l + 1``; the block's other sites are the level-``l`` latent variables. The single site left at the top is the
coarsest latent variable (level ``k``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import EventShapeError, LatticeSizeError

__all__ = [
    "Lattice",
    "is_power_of_two",
    "adjacency_matrix",
    "neighbour_sum",
    "site_levels",
]


def is_power_of_two(n: int) -> bool:
    """True if ``n`` is a positive integer power of two (1 counts: 2**0)."""
    return isinstance(n, int) and n > 0 and (n & (n - 1)) == 0


def _power_of_two_hint(L: int) -> str:
    lo = 2 ** max(1, int(math.floor(math.log2(max(L, 2)))))
    hi = lo * 2
    return f"use L={lo} or L={hi}" if lo != L else f"use L={L}"


@dataclass(frozen=True)
class Lattice:
    """A periodic lattice of side ``L`` in ``dim`` dimensions.

    Args:
        L: side length (number of sites per direction), ``L >= 2``.
        dim: 1 (ring of ``L`` sites) or 2 (``L x L`` torus).

    Example:
        >>> lat = Lattice(8, 2)
        >>> lat.n_sites, lat.event_shape
        (64, (8, 8))
    """

    L: int
    dim: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.L, int) or isinstance(self.L, bool) or self.L < 2:
            raise LatticeSizeError(f"lattice side L must be an integer >= 2, got {self.L!r}: use e.g. L=8")
        if self.dim not in (1, 2):
            raise LatticeSizeError(f"lattice dimension must be 1 or 2, got dim={self.dim!r}: use dim=1 or dim=2")

    @property
    def n_sites(self) -> int:
        """Number of sites ``N = L**dim``."""
        return self.L**self.dim

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Event shape of one configuration: ``(L,)`` or ``(L, L)``."""
        return (self.L,) * self.dim

    @property
    def coordination(self) -> int:
        """Number of nearest neighbours ``2 * dim`` (bonds per site counted twice)."""
        return 2 * self.dim

    @property
    def n_levels(self) -> int:
        """Number of RG levels of the full hierarchy, ``log2(L)``; requires a power-of-two side."""
        self.require_power_of_two()
        return int(math.log2(self.L))

    def require_power_of_two(self, what: str = "a hierarchical flow") -> None:
        """Raise :class:`LatticeSizeError` unless ``L`` is a power of two (``L >= 2``)."""
        if not is_power_of_two(self.L) or self.L < 2:
            raise LatticeSizeError(
                f"L must be a power of 2 for {what}, got {self.L}: {_power_of_two_hint(self.L)}"
            )

    def check_event(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise :class:`EventShapeError` unless ``x.shape`` ends with :attr:`event_shape`."""
        es = self.event_shape
        if x.dim() < len(es) or tuple(x.shape[x.dim() - len(es):]) != es:
            raise EventShapeError(
                f"{name} must have shape (*batch, {', '.join(map(str, es))}) for an L={self.L} lattice in "
                f"{self.dim}D, got {tuple(x.shape)}: reshape it with x.reshape(*batch, {', '.join(map(str, es))})"
            )

    def adjacency(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        """Dense ``(N, N)`` nearest-neighbour adjacency matrix (see :func:`adjacency_matrix`)."""
        return adjacency_matrix(self.L, self.dim, dtype=dtype, device=device)


def adjacency_matrix(
    L: int, dim: int = 2, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""Nearest-neighbour adjacency ``A`` of the periodic lattice, flattened in row-major (C) order.

    ``A[i, j]`` is the number of bonds between sites ``i`` and ``j``, so that
    :math:`\tfrac12 s^\top A s = \sum_{\langle ij\rangle} s_i s_j` counts every bond once. For ``L = 2`` the two
    neighbours along a direction coincide, and ``A`` has the entry 2 (a doubled bond), consistent with
    :func:`neighbour_sum`.

    Returns:
        Tensor of shape ``(L**dim, L**dim)``.
    """
    lat = Lattice(L, dim)
    N = lat.n_sites
    idx = torch.arange(N, device=device).reshape(lat.event_shape)
    A = torch.zeros(N, N, dtype=dtype, device=device)
    ones = torch.ones(N, dtype=dtype, device=device)
    for axis in range(dim):
        for shift in (1, -1):
            nb = torch.roll(idx, shifts=shift, dims=axis).reshape(-1)
            A.index_put_((idx.reshape(-1), nb), ones, accumulate=True)
    return A


def neighbour_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    r"""Sum over bonds :math:`\sum_{\langle ij\rangle} x_i x_j` of the periodic lattice, each bond once.

    Args:
        x: tensor of shape ``(*batch, L)`` or ``(*batch, L, L)``.
        dim: lattice dimension (1 or 2).

    Returns:
        Tensor of shape ``batch``.
    """
    total = x.new_zeros(x.shape[: x.dim() - dim])
    for axis in range(-dim, 0):
        total = total + (x * torch.roll(x, shifts=1, dims=axis)).flatten(start_dim=x.dim() - dim).sum(-1)
    return total


def site_levels(L: int, dim: int = 2, n_levels: int | None = None) -> torch.Tensor:
    r"""RG level of every latent site of the NeuralRG hierarchy.

    A site at coordinates ``r`` belongs to level ``l`` if all its coordinates are divisible by ``2**l`` but not
    all by ``2**(l+1)``; sites divisible by ``2**n_levels`` (the origin for the full hierarchy) get
    ``n_levels`` (the coarsest latent variables).

    Args:
        L: power-of-two lattice side.
        dim: 1 or 2.
        n_levels: number of RG levels (default: all, ``log2(L)``).

    Returns:
        Integer tensor of shape ``(L,)`` or ``(L, L)``.
    """
    lat = Lattice(L, dim)
    k = lat.n_levels if n_levels is None else n_levels
    coords = torch.meshgrid(*[torch.arange(L)] * dim, indexing="ij")
    level = torch.zeros(lat.event_shape, dtype=torch.long)
    for lev in range(1, k + 1):
        mask = torch.ones(lat.event_shape, dtype=torch.bool)
        for c in coords:
            mask &= c % (2**lev) == 0
        level[mask] = lev
    return level
