r"""A reference Monte Carlo for the discrete Ising model: Wolff single-cluster updates.

Where no closed form exists (:math:`\langle m^2\rangle` of the periodic square lattice for :math:`L > 4`), the
samplers of this package are checked against an *independent* estimate of the discrete model: Wolff's cluster
algorithm (U. Wolff, PRL 62, 361 (1989)) has a dynamical exponent :math:`z \approx 0.25` at :math:`T_c`, so a few
thousand updates give :math:`\langle m^2\rangle` to a fraction of a percent on :math:`L \le 32`. The improved
estimators of :class:`~pyro_nrg.energies.IsingRelaxed` (``m2_improved``, ``ising_energy_per_site``) have the
same expectations, so the two are directly comparable.

Pure Python with a precomputed neighbour table (no compiled code): about 0.4 s for 20 000 updates at
:math:`L=8, T_c` on one CPU core. The mean cluster fraction :math:`\langle|C|\rangle/N` is itself an improved
estimator of :math:`\langle m^2\rangle` (Wolff 1989) and is returned as a cross-check.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from ..lattice import Lattice

__all__ = ["WolffEstimate", "wolff_ising"]


@dataclass(frozen=True)
class WolffEstimate:
    r"""Cluster Monte Carlo estimates with batch-means standard errors.

    Attributes:
        m2: :math:`\langle m^2\rangle`, :math:`m = \frac1N\sum_i s_i`.
        m2_err: its standard error (``n_batches`` batch means).
        energy_per_site: :math:`\langle H\rangle/N` with :math:`H = -\sum_{\langle ij\rangle} s_i s_j`.
        energy_per_site_err: its standard error.
        abs_m: :math:`\langle |m|\rangle`.
        abs_m_err: its standard error.
        updates: cluster updates measured (after thermalisation).
        mean_cluster_fraction: mean cluster size / N.
    """

    m2: float
    m2_err: float
    energy_per_site: float
    energy_per_site_err: float
    abs_m: float
    abs_m_err: float
    updates: int
    mean_cluster_fraction: float


def _batch_mean(x: np.ndarray, n_batches: int) -> tuple[float, float]:
    n = len(x) // n_batches * n_batches
    b = x[:n].reshape(n_batches, -1).mean(1)
    return float(x.mean()), float(b.std(ddof=1) / math.sqrt(n_batches))


def wolff_ising(
    L: int,
    temperature: float,
    dim: int = 2,
    n_updates: int = 20_000,
    n_therm: int = 500,
    seed: int = 0,
    n_batches: int = 50,
) -> WolffEstimate:
    r"""Wolff cluster Monte Carlo of the periodic Ising model (:math:`J = 1`) on an :math:`L^{\rm dim}` lattice.

    One update grows a cluster from a random seed spin, adding aligned neighbours with probability
    :math:`p_{\rm add} = 1 - e^{-2/T}`, and flips it (detailed balance holds exactly). Measurements after every
    update; errors from ``n_batches`` batch means (each batch must be much longer than the autocorrelation time:
    keep ``n_updates / n_batches`` ≥ 100).

    Args:
        L: lattice side (≥ 3, so that neighbours are distinct).
        temperature: :math:`T > 0`.
        dim: lattice dimension.
        n_updates: measured cluster updates.
        n_therm: discarded updates first.
        seed: seed of the (Python) random generator: the result is reproducible.
        n_batches: batches for the error estimate.

    Returns:
        :class:`WolffEstimate`.

    Raises:
        TemperatureError: ``temperature`` not finite and positive.
        LatticeSizeError: ``L < 3``.
    """
    from ..errors import LatticeSizeError
    from .base import check_temperature

    T = check_temperature(temperature)
    if L < 3:
        raise LatticeSizeError(f"wolff_ising needs L >= 3 (distinct neighbours), got L={L}")
    if n_updates < 2 * n_batches:
        raise ValueError(f"n_updates={n_updates} must be at least 2 * n_batches={2 * n_batches}")
    lat = Lattice(L, dim)
    N = lat.n_sites
    idx = np.arange(N).reshape((L,) * dim)
    nbrs = np.stack([np.roll(idx, shift, axis).reshape(-1) for axis in range(dim) for shift in (1, -1)], 1)
    table = nbrs.tolist()
    bonds = np.stack([np.roll(idx, -1, axis).reshape(-1) for axis in range(dim)], 1)
    rng = random.Random(seed)
    s = [rng.choice((-1, 1)) for _ in range(N)]
    p_add = 1.0 - math.exp(-2.0 / T)
    m2 = np.empty(n_updates)
    am = np.empty(n_updates)
    e = np.empty(n_updates)
    flipped = 0
    for it in range(n_therm + n_updates):
        i = rng.randrange(N)
        s0 = s[i]
        s[i] = -s0
        stack = [i]
        size = 1
        while stack:
            a = stack.pop()
            for b in table[a]:
                if s[b] == s0 and rng.random() < p_add:
                    s[b] = -s0
                    stack.append(b)
                    size += 1
        if it >= n_therm:
            k = it - n_therm
            arr = np.asarray(s, dtype=np.float64)
            m = arr.mean()
            m2[k], am[k] = m * m, abs(m)
            e[k] = -float((arr[:, None] * arr[bonds]).sum()) / N
            flipped += size
    (m2_mean, m2_err), (e_mean, e_err), (am_mean, am_err) = (
        _batch_mean(m2, n_batches), _batch_mean(e, n_batches), _batch_mean(am, n_batches))
    return WolffEstimate(m2_mean, m2_err, e_mean, e_err, am_mean, am_err, n_updates, flipped / (n_updates * N))
