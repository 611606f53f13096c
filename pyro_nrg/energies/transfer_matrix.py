r"""Exact magnetisation distribution of the periodic Ising model by a row transfer matrix.

For the periodic ``L x L`` Ising model (:math:`J = 1`, :math:`N = L^2` spins, each bond counted once) this
module computes the *restricted partition functions*

.. math:: Z_n = \sum_{s:\ \#\{i: s_i = +1\} = n} e^{-\beta H(s)}, \qquad n = 0, \dots, N,

i.e. the exact distribution :math:`P(M) = Z_n / Z` of the total magnetisation :math:`M = \sum_i s_i = 2n - N`,
and from it every magnetisation moment: :math:`\langle m^2\rangle`, :math:`\langle|m|\rangle`,
:math:`\langle m^4\rangle` (:math:`m = M/N`) and the Binder cumulant
:math:`U_4 = 1 - \langle m^4\rangle / (3\langle m^2\rangle^2)`.

**Transfer matrix with magnetisation tracking.** A row is one of :math:`S = 2^L` states :math:`\sigma`; let
:math:`u(\sigma)` be its number of up spins. With the (shifted, so that every entry is at most 1) weights

.. math:: V_{\sigma\sigma'} = e^{\beta(\sum_j \sigma_j\sigma'_j - L)}, \qquad
          w_\sigma = e^{\beta(\sum_j \sigma_j\sigma_{j+1} - L)}

of the bonds between two rows and inside a row (periodic), :math:`Z = e^{2\beta N}\,
\mathrm{Tr}\,(V W)^L` with :math:`W = \mathrm{diag}(w)`. Tracking :math:`n` means carrying, for a fixed first row
:math:`\sigma_0`, the vector :math:`A_k[n, \sigma]` = weight of all configurations of rows :math:`0..k` with
row :math:`k` in state :math:`\sigma` and :math:`n` up spins so far:

.. math:: A_0[n, \sigma] = \delta_{\sigma\sigma_0}\,\delta_{n, u(\sigma_0)}\, w_{\sigma_0}, \qquad
          A_{k+1}[n, \sigma'] = w_{\sigma'} \sum_\sigma A_k[n - u(\sigma'), \sigma]\, V_{\sigma\sigma'},

and the periodic closure :math:`Z_n = e^{2\beta N}\sum_{\sigma_0}\sum_\sigma A_{L-1}[n,\sigma]\,V_{\sigma\sigma_0}`.
Every term is positive: no cancellation, each :math:`Z_n` has float64 relative precision (~1e-14). The
shift by :math:`e^{2\beta N}` and a rescaling of :math:`A` after every row (its log accumulated) keep all
numbers in range at any :math:`T > 0`; terms below :math:`10^{-308}` of the largest underflow to zero, which
only happens deep in the ordered phase where they do not change any moment.

**Symmetry.** :math:`V`, :math:`w` and :math:`u` are invariant under a cyclic shift of all rows at once, so
first rows in the same rotation orbit (binary *necklace*) give the same :math:`Z_n`: only one representative
per orbit is propagated, weighted by the orbit's size (36 first rows instead of 256 at :math:`L = 8`,
108 instead of 1024 at :math:`L = 10`).

**Cost.** States are sorted by :math:`u`, so the shift :math:`n \to n + u(\sigma')` moves contiguous column
blocks. One row step is a matmul of shape :math:`(r(N+1), S) \times (S, S)`, :math:`r` the number of
necklaces: :math:`2 r (N+1) S^2` flops per row, :math:`L - 1` rows; memory :math:`2 r (N+1) S` float64.
That is :math:`\approx 2\times10^{9}` flops and 10 MB at :math:`L = 8`, :math:`\approx 2\times10^{11}`
flops and 180 MB at :math:`L = 10`; :math:`L = 12` would need :math:`\approx 2\times10^{13}` flops and 3 GB,
hence the limit :data:`MAX_TRANSFER_MATRIX_L` (measured times: ``benchmarks/exact_references.py``).
Odd :math:`L` works too. The 1D ring (``dim=1``) is the same recursion with one site per row and no bond
inside a row (cost :math:`O(L^2)`, any :math:`L`).

**What it is a reference for.** In the Hubbard–Stratonovich relaxation
(:class:`~pyro_nrg.energies.IsingRelaxed`) the spins given :math:`x` are independent with
:math:`\langle s_i\mid x\rangle = \tanh x_i`, so these are exact expectations of functions of spins
*drawn given* :math:`x` (:meth:`~pyro_nrg.energies.IsingRelaxed.spins_given_x`): :math:`|m|` and :math:`m^4`
of such spins are unbiased for :math:`\langle|m|\rangle` and :math:`\langle m^4\rangle`. The improved
estimators :meth:`~pyro_nrg.energies.IsingRelaxed.m2_improved` and
:meth:`~pyro_nrg.energies.IsingRelaxed.m4_improved` (the conditional expectations of :math:`m^2` and
:math:`m^4` given :math:`x`) have exactly :math:`\langle m^2\rangle` and :math:`\langle m^4\rangle` as their
expectations. The Binder cumulant is a ratio of moments: estimate both moments, then form :math:`U_4`.
:math:`\langle \tanh\text{-magnetisation}^2\rangle` without the improved correction is *not*
:math:`\langle m^2\rangle`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import LatticeSizeError, NoExactSolutionError
from ..lattice import Lattice
from .base import check_temperature

__all__ = [
    "MAX_TRANSFER_MATRIX_L",
    "IsingMoments",
    "ising_magnetization_log_weights",
    "exact_ising_moments",
    "exact_ising_spins",
]

MAX_TRANSFER_MATRIX_L: int = 10
"""Largest side of the 2D torus the row transfer matrix accepts (memory and time; see the module docstring)."""


@dataclass(frozen=True)
class IsingMoments:
    r"""Exact magnetisation moments of the periodic Ising model (float64), :math:`m = \frac1N\sum_i s_i`.

    Attributes:
        L: lattice side.
        dim: lattice dimension.
        temperature: :math:`T`.
        log_z: :math:`\ln Z = \ln\sum_n Z_n`.
        m2: :math:`\langle m^2\rangle`.
        abs_m: :math:`\langle |m|\rangle`.
        m4: :math:`\langle m^4\rangle`.
    """

    L: int
    dim: int
    temperature: float
    log_z: float
    m2: float
    abs_m: float
    m4: float

    @property
    def binder(self) -> float:
        r"""Binder cumulant :math:`U_4 = 1 - \langle m^4\rangle / (3\langle m^2\rangle^2)` (2/3 in the ordered
        limit, :math:`2/(3N)` at infinite temperature)."""
        return 1.0 - self.m4 / (3.0 * self.m2 * self.m2)


def _popcount(a: np.ndarray) -> np.ndarray:
    """Number of set bits of each (non-negative, < 2**32) integer."""
    a = a.astype(np.int64)
    count = np.zeros_like(a)
    while a.any():
        count += a & 1
        a = a >> 1
    return count


def _necklaces(width: int) -> tuple[np.ndarray, np.ndarray]:
    """One representative (the smallest) of each orbit of ``width``-bit strings under cyclic rotation, and the
    orbit sizes; ``width = 1`` gives both states with size 1."""
    states = np.arange(1 << width, dtype=np.int64)
    mask = (1 << width) - 1
    smallest = states.copy()
    rot = states.copy()
    for _ in range(width - 1):
        rot = ((rot << 1) | (rot >> (width - 1))) & mask
        smallest = np.minimum(smallest, rot)
    reps, sizes = np.unique(smallest, return_counts=True)
    return reps, sizes


@functools.lru_cache(maxsize=32)
def _log_weights(L: int, dim: int, beta: float) -> np.ndarray:
    """Cached kernel of :func:`ising_magnetization_log_weights` (read-only result)."""
    width = L if dim == 2 else 1
    n_sites = L**dim
    n_states = 1 << width
    states = np.arange(n_states, dtype=np.int64)
    ups = width - _popcount(states)  # bit 1 = spin down
    order = np.argsort(ups, kind="stable")  # work in a basis sorted by up count
    ups_sorted = ups[order]
    # inter-row weights, shifted: sum_j s_j s'_j - width = -2 popcount(a ^ b)
    diff = _popcount(states[order][:, None] ^ states[order][None, :])
    V = np.exp(-2.0 * beta * diff)
    if dim == 2:
        rot = ((states << 1) | (states >> (width - 1))) & (n_states - 1)
        w = np.exp(-2.0 * beta * _popcount(states ^ rot))[order]
        log_offset = 2.0 * beta * n_sites
    else:
        w = np.ones(n_states)
        log_offset = beta * n_sites
    reps, sizes = _necklaces(width)
    pos = np.empty(n_states, dtype=np.int64)
    pos[order] = np.arange(n_states)
    reps_sorted = pos[reps]  # column of each representative in the sorted basis
    bounds = np.searchsorted(ups_sorted, np.arange(width + 2))  # column block of each up count
    r, nn = len(reps), n_sites + 1
    A = np.zeros((r, nn, n_states))
    A[np.arange(r), ups_sorted[reps_sorted], reps_sorted] = w[reps_sorted]
    log_scale = 0.0
    for _ in range(L - 1):
        B = (A.reshape(r * nn, n_states) @ V).reshape(r, nn, n_states)
        B *= w
        A.fill(0.0)
        for u in range(width + 1):
            lo, hi = bounds[u], bounds[u + 1]
            if hi > lo:
                A[:, u:, lo:hi] = B[:, : nn - u, lo:hi]
        top = A.max()
        A /= top
        log_scale += math.log(top)
    closed = np.einsum("ins,si->in", A, V[:, reps_sorted])  # sum_sigma A[n, sigma] V[sigma, sigma_0]
    z = sizes.astype(np.float64) @ closed
    with np.errstate(divide="ignore"):
        out = np.log(z) + log_scale + log_offset
    out.flags.writeable = False
    return out


def ising_magnetization_log_weights(L: int, temperature: float, dim: int = 2) -> np.ndarray:
    r"""Exact :math:`\ln Z_n` of the periodic Ising model, :math:`n` = number of up spins (module docstring).

    :math:`P(M = 2n - N) = Z_n / Z` is the exact distribution of the total magnetisation;
    :math:`Z_n = Z_{N-n}` by spin flip. Row transfer matrix with magnetisation tracking in float64, cached per
    ``(L, dim, T)``.

    Args:
        L: lattice side, ``L >= 3`` (``L <= MAX_TRANSFER_MATRIX_L`` in 2D).
        temperature: :math:`T > 0`.
        dim: 1 (ring) or 2 (torus).

    Returns:
        Read-only float64 array of shape ``(N + 1,)`` (``-inf`` where :math:`Z_n` underflows).

    Raises:
        LatticeSizeError: ``L < 3`` or ``dim`` not 1 or 2.
        TemperatureError: ``T`` not finite and positive.
        NoExactSolutionError: 2D with ``L > MAX_TRANSFER_MATRIX_L``.

    Example:
        >>> import numpy as np
        >>> w = ising_magnetization_log_weights(4, 2.5)
        >>> w.shape, bool(np.allclose(w, w[::-1]))
        ((17,), True)
    """
    lat = Lattice(L, dim)
    if lat.L < 3:
        raise LatticeSizeError(
            f"the Ising model here needs L >= 3, got L={L}: with L=2 both neighbours along an axis are the same "
            f"site; use L >= 3 (e.g. L=4)"
        )
    beta = 1.0 / check_temperature(temperature)
    if lat.dim == 2 and lat.L > MAX_TRANSFER_MATRIX_L:
        raise NoExactSolutionError(
            f"the row transfer matrix is limited to L <= {MAX_TRANSFER_MATRIX_L} in 2D (2^L row states; L=12 "
            f"would need ~3 GB and ~2e13 flops), got L={L}: estimate the magnetisation moments with "
            f"pyro_nrg.energies.wolff_ising instead"
        )
    return _log_weights(lat.L, lat.dim, beta)


def exact_ising_moments(L: int, temperature: float, dim: int = 2) -> IsingMoments:
    r"""Exact :math:`\ln Z`, :math:`\langle m^2\rangle`, :math:`\langle|m|\rangle`, :math:`\langle m^4\rangle`
    (and :attr:`IsingMoments.binder`) of the periodic Ising model from
    :func:`ising_magnetization_log_weights`, float64.

    Cost and limits as there (module docstring): 2D up to ``L = 10``.

    Example:
        >>> mom = exact_ising_moments(4, 2.5)
        >>> 0.0 < mom.binder < 2.0 / 3.0
        True
    """
    log_w = ising_magnetization_log_weights(L, temperature, dim)
    N = len(log_w) - 1
    top = log_w.max()
    p = np.exp(log_w - top)
    total = p.sum()
    p /= total
    m = (2.0 * np.arange(N + 1) - N) / N
    m2 = m * m
    return IsingMoments(
        L=L, dim=dim, temperature=float(temperature), log_z=float(top + math.log(total)),
        m2=float(p @ m2), abs_m=float(p @ np.abs(m)), m4=float(p @ (m2 * m2)),
    )


@functools.lru_cache(maxsize=8)
def _row_transfer_powers(L: int, beta: float) -> tuple[np.ndarray, ...]:
    r"""The symmetric row transfer matrix :math:`M_{ab} = e^{\beta[(h_a + h_b)/2 + v_{ab}]}` of the ``L x L`` torus
    (:math:`h` the bond sum inside a row, :math:`v` between two rows), divided by its largest eigenvalue, and its
    powers :math:`M^0 \dots M^L` (float64, read-only)."""
    states = np.arange(1 << L, dtype=np.int64)
    rot = ((states << 1) | (states >> (L - 1))) & ((1 << L) - 1)
    h = L - 2.0 * _popcount(states ^ rot)
    v = L - 2.0 * _popcount(states[:, None] ^ states[None, :])
    log_m = beta * (0.5 * (h[:, None] + h[None, :]) + v)
    m = np.exp(log_m - log_m.max())
    m /= np.linalg.eigvalsh(m)[-1]
    powers = [np.eye(len(states))]
    for _ in range(L):
        powers.append(powers[-1] @ m)
    for p in powers:
        p.flags.writeable = False
    return tuple(powers)


def exact_ising_spins(L: int, temperature: float, n: int, seed: int = 0) -> np.ndarray:
    r"""``n`` independent, exact draws of the periodic ``L x L`` Ising model (:math:`J = 1`), as :math:`\pm1` arrays.

    Forward filtering / backward sampling over row states: with the symmetric row transfer matrix :math:`M`
    (:math:`2^L` states, the bonds inside a row split half and half between the two rows it touches),
    :math:`P(\text{rows } r_0..r_{L-1}) \propto \prod_k M_{r_k r_{k+1}}` (:math:`r_L = r_0`). The first row is drawn
    from its marginal :math:`P(r_0) \propto (M^L)_{r_0 r_0}`, then each next row from
    :math:`P(r_k \mid r_{k-1}, r_0) \propto M_{r_{k-1} r_k} (M^{L-k})_{r_k r_0}`, which closes the torus exactly.
    Cost :math:`O(L\,2^{3L})` once per temperature (cached) and :math:`O(n L 2^L)` per batch: instant at
    ``L = 8``. Exact relaxed configurations follow from
    :meth:`~pyro_nrg.energies.IsingRelaxed.sample_given_spins` (:math:`x \mid s \sim \mathcal N(Ks, K)`).

    Args:
        L: lattice side, ``3 <= L <= MAX_TRANSFER_MATRIX_L``.
        temperature: :math:`T > 0`.
        n: number of draws.
        seed: seed of the numpy generator (the draws are a function of it).

    Returns:
        float64 array of shape ``(n, L, L)`` with entries :math:`\pm1` (row-major sites, bit ``j`` of a row
        state set = spin ``j`` down).

    Raises:
        LatticeSizeError: ``L < 3``.
        NoExactSolutionError: ``L > MAX_TRANSFER_MATRIX_L``.

    Example:
        >>> s = exact_ising_spins(4, 2.5, 3)
        >>> s.shape, sorted(set(s.ravel().tolist()))
        ((3, 4, 4), [-1.0, 1.0])
    """
    if L < 3:
        raise LatticeSizeError(f"exact sampling needs L >= 3, got L={L}: use L=4 or L=8")
    if L > MAX_TRANSFER_MATRIX_L:
        raise NoExactSolutionError(
            f"exact sampling by the row transfer matrix is limited to L <= {MAX_TRANSFER_MATRIX_L}, got L={L}: draw "
            "spins with pyro_nrg.energies.wolff_spins instead"
        )
    beta = 1.0 / check_temperature(temperature)
    powers = _row_transfer_powers(int(L), beta)
    m = powers[1]
    rng = np.random.default_rng(seed)

    def draw(p: np.ndarray) -> np.ndarray:  # one state per row of the (unnormalised, >= 0) weights p
        c = np.cumsum(p, axis=1)
        u = rng.random(len(p))[:, None] * c[:, -1:]
        return np.minimum((c < u).sum(1), p.shape[1] - 1)

    rows = np.empty((int(n), L), dtype=np.int64)
    rows[:, 0] = draw(np.broadcast_to(np.diag(powers[L]), (int(n), 1 << L)))
    for k in range(1, L):
        rows[:, k] = draw(m[rows[:, k - 1]] * powers[L - k][:, rows[:, 0]].T)
    bits = (rows[:, :, None] >> np.arange(L)[None, None, :]) & 1
    return 1.0 - 2.0 * bits.astype(np.float64)
