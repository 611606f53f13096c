"""Exact magnetisation moments by the row transfer matrix: against brute force, Kaufman, closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from pyro_nrg.energies import (
    ISING_TC,
    IsingRelaxed,
    NoExactSolutionError,
    Phi4,
    enumerate_ising,
    exact_ising_log_z,
    exact_ising_m2,
    exact_ising_moments,
    ising_magnetization_log_weights,
)
from pyro_nrg.errors import LatticeSizeError, TemperatureError

F64 = torch.float64
TEMPS = (0.4, 1.5, ISING_TC, 3.0, 50.0)


def brute_force_log_zn(L: int, T: float) -> np.ndarray:
    """ln Z_n (n = up spins) of the periodic L x L model by summing all 2**N configurations directly."""
    N = L * L
    idx = np.arange(2**N)[:, None]
    s = (1 - 2 * ((idx >> np.arange(N)) & 1)).reshape(-1, L, L)
    bonds = (s * np.roll(s, 1, axis=1)).sum((1, 2)) + (s * np.roll(s, 1, axis=2)).sum((1, 2))
    n_up = (s.reshape(-1, N) > 0).sum(1)
    logw = bonds / T
    out = np.empty(N + 1)
    for n in range(N + 1):
        lw = logw[n_up == n]
        out[n] = lw.max() + math.log(np.exp(lw - lw.max()).sum())
    return out


def moments_from_log_zn(log_zn: np.ndarray) -> tuple[float, float, float]:
    N = len(log_zn) - 1
    p = np.exp(log_zn - log_zn.max())
    p /= p.sum()
    m = (2 * np.arange(N + 1) - N) / N
    return float(p @ m**2), float(p @ np.abs(m)), float(p @ m**4)


@pytest.mark.parametrize("L", [3, 4])
@pytest.mark.parametrize("T", TEMPS)
def test_distribution_equals_brute_force_enumeration(L: int, T: float) -> None:
    ref = brute_force_log_zn(L, T)
    log_zn = ising_magnetization_log_weights(L, T)
    np.testing.assert_allclose(log_zn, ref, rtol=0, atol=1e-12)
    mom = exact_ising_moments(L, T)
    for got, want in zip((mom.m2, mom.abs_m, mom.m4), moments_from_log_zn(ref), strict=True):
        assert got == pytest.approx(want, rel=0, abs=1e-12)
    enum = enumerate_ising(L, 2, T)
    assert abs(mom.log_z - enum.log_z) < 1e-12 and abs(mom.m2 - enum.m2) < 1e-12
    assert abs(mom.abs_m - enum.abs_m) < 1e-12


@pytest.mark.parametrize("L", [4, 5, 6, 8])
def test_zero_field_sum_is_kaufmans_log_z(L: int) -> None:
    for T in (*TEMPS, 0.05, 1e4):
        lz = exact_ising_moments(L, T).log_z
        assert abs(lz - exact_ising_log_z(L, T)) < 1e-12 * max(1.0, abs(lz)), (L, T)


def test_spin_flip_symmetry_and_the_few_lowest_states_in_closed_form() -> None:
    """Z_n = Z_{N-n}; near saturation the states are countable: all up (E = -2N), one down (2N - 8 broken
    bond energy), two down (adjacent: 2N - 12, 2N pairs; apart: 2N - 16)."""
    L, T = 8, ISING_TC
    N, b = L * L, 1 / T
    w = ising_magnetization_log_weights(L, T)
    np.testing.assert_allclose(w, w[::-1], rtol=1e-14, atol=0)
    assert w[N] == pytest.approx(2 * b * N, rel=1e-14)
    assert w[N - 1] == pytest.approx(math.log(N) + b * (2 * N - 8), rel=1e-14)
    two = 2 * N * math.exp(b * (2 * N - 12)) + (math.comb(N, 2) - 2 * N) * math.exp(b * (2 * N - 16))
    assert w[N - 2] == pytest.approx(math.log(two), rel=1e-14)
    with pytest.raises(ValueError, match="read-only"):
        w[0] = 0.0  # the cached array cannot be corrupted by a caller


def test_known_limits_and_the_critical_binder_cumulant() -> None:
    N = 64
    hot = exact_ising_moments(8, 1e7)  # infinite temperature: <M^2> = N, <M^4> = 3N^2 - 2N
    assert hot.m2 == pytest.approx(1 / N, rel=1e-5)
    assert hot.m4 == pytest.approx((3 * N**2 - 2 * N) / N**4, rel=1e-5)
    assert hot.binder == pytest.approx(2 / (3 * N), rel=1e-4)
    cold = exact_ising_moments(8, 0.2)
    assert cold.abs_m == pytest.approx(1.0, abs=1e-6) and cold.binder == pytest.approx(2 / 3, abs=1e-6)
    # at T_c, U4 approaches the universal torus value 0.61069 (Salas & Sokal 2000) from above, monotonically
    u = [exact_ising_moments(L, ISING_TC).binder for L in (4, 6, 8)]
    assert u[0] > u[1] > u[2] > 0.6107 and u[2] - 0.61069 < 0.003
    # <m^2> at T_c decreases like L^(-1/4)
    m2 = [exact_ising_moments(L, ISING_TC).m2 for L in (4, 8)]
    assert m2[1] / m2[0] == pytest.approx(2**-0.25, rel=0.02)


@pytest.mark.parametrize("L", [3, 7, 40])
def test_ring_moments_match_the_closed_forms(L: int) -> None:
    for T in (0.5, 2.0, 30.0):
        mom = exact_ising_moments(L, T, dim=1)
        assert mom.m2 == pytest.approx(exact_ising_m2(L, T, dim=1), rel=1e-12)
        assert mom.log_z == pytest.approx(exact_ising_log_z(L, T, dim=1), rel=1e-13)


def test_odd_ring_against_enumeration() -> None:
    enum = enumerate_ising(7, 1, 1.3)
    mom = exact_ising_moments(7, 1.3, dim=1)
    assert abs(mom.abs_m - enum.abs_m) < 1e-13 and abs(mom.m2 - enum.m2) < 1e-13


def test_relaxed_model_exact_moments_and_limits() -> None:
    e = IsingRelaxed(8, ISING_TC)
    mom = e.exact_moments()
    assert e.exact_m2() == mom.m2 == exact_ising_m2(8, ISING_TC)
    assert 0.64 < mom.m2 < 0.65  # the Wolff reference used before (0.6538 +- 0.0034) was +2 sigma off
    with pytest.raises(NoExactSolutionError, match="wolff_ising"):
        IsingRelaxed(12, ISING_TC).exact_m2()
    with pytest.raises(NoExactSolutionError, match="L <= 10"):
        IsingRelaxed(12, ISING_TC).exact_moments()
    with pytest.raises(LatticeSizeError):
        ising_magnetization_log_weights(2, 1.0)
    with pytest.raises(TemperatureError):
        exact_ising_moments(4, -1.0)


def test_m4_and_m2_improved_are_the_conditional_moments() -> None:
    """<m^k | x> for independent spins of mean tanh x, summed over all 2^N spin configurations."""
    e = IsingRelaxed(3, 1.7).double()
    x = torch.randn(5, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(0)) * 1.5
    t = torch.tanh(x).reshape(5, 9)
    spins = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=9)), dtype=F64)  # (512, 9)
    prob = ((1 + spins[None] * t[:, None]) / 2).prod(-1)  # (5, 512)
    m = spins.mean(-1)
    torch.testing.assert_close(e.m4_improved(x), prob @ m**4, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(e.m2_improved(x), prob @ m**2, rtol=1e-12, atol=1e-14)
    s = e.spins_given_x(x[0].expand(20000, 3, 3), generator=torch.Generator().manual_seed(1))
    assert s.shape == (20000, 3, 3) and set(s.unique().tolist()) == {-1.0, 1.0}
    freq = (s > 0).double().mean(0).reshape(-1)
    assert ((freq - (1 + t[0]) / 2).abs() < 5 * (0.25 / 20000) ** 0.5).all()


def test_relaxed_estimators_reproduce_exact_abs_m_and_m4() -> None:
    """Exact relaxed draws (Wolff spins, x ~ N(Ks, K)): |m| of spins drawn given x and m4_improved agree with
    the transfer-matrix values."""
    e = IsingRelaxed(4, ISING_TC).double()
    mom = e.exact_moments()
    x = e.exact_samples(6000, thin=4, seed=11)
    m4 = e.m4_improved(x)
    assert abs(float(m4.mean()) - mom.m4) < 4 * float(m4.std()) / 6000**0.5
    am = e.spins_given_x(x, generator=torch.Generator().manual_seed(2)).reshape(6000, -1).mean(-1).abs()
    assert abs(float(am.mean()) - mom.abs_m) < 4 * float(am.std()) / 6000**0.5


def test_phi4_exact_propagator_is_float64_whatever_the_energy_dtype() -> None:
    action = Phi4(6, 0.2, 0.0)  # built in the default dtype (float32)
    assert action.m_eigenvalues.dtype == torch.get_default_dtype()
    g = action.exact_propagator()
    assert g.dtype == F64 and g.shape == (6, 6)
    torch.testing.assert_close(g, action.to(F64).exact_propagator(), rtol=0, atol=0)
    N = action.n_sites
    from pyro_nrg.lattice import adjacency_matrix

    M = 2 * torch.eye(N, dtype=F64) - 0.4 * adjacency_matrix(6, 2, dtype=F64)
    torch.testing.assert_close(g.reshape(-1), torch.linalg.inv(M)[0], rtol=1e-13, atol=1e-15)
