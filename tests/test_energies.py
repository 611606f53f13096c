"""Lattice energies against exact physics: enumeration, closed forms, direct integration, exact sampling."""

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
    NotNormalizableError,
    NotPositiveDefiniteError,
    Phi4,
    enumerate_ising,
    exact_ising_energy_per_site,
    exact_ising_log_z,
    exact_ising_m2,
    mass_to_hopping,
)
from pyro_nrg.errors import EventShapeError, LatticeSizeError, NonFiniteError, TemperatureError
from pyro_nrg.lattice import adjacency_matrix
from pyro_nrg.testing import check_energy

F64 = torch.float64


# ----------------------------------------------------------------------------------------------------------
# helpers (independent references)


def all_spins(N: int) -> np.ndarray:
    """All 2**N spin configurations, shape (2**N, N), entries +-1."""
    idx = np.arange(2**N)[:, None]
    return 1 - 2 * ((idx >> np.arange(N)) & 1)


def ising_weights(L: int, dim: int, T: float) -> tuple[np.ndarray, np.ndarray, float]:
    """All spin configurations (flattened), their Boltzmann probabilities and lnZ, from the dense adjacency."""
    A = adjacency_matrix(L, dim).numpy()
    s = all_spins(L**dim).astype(np.float64)
    logw = 0.5 * np.einsum("ci,ij,cj->c", s, A, s) / T  # -beta H = beta * sum_<ij> s_i s_j
    top = logw.max()
    w = np.exp(logw - top)
    return s, w / w.sum(), top + math.log(w.sum())


def grid_integrate(log_f, n_sites: int, half_width: float, h: float, observables=()) -> tuple[float, list]:
    """ln of the integral of exp(log_f(x)) over a tensor-product grid (trapezoid = Riemann sum here, the
    integrand being negligible at the edges), and the normalized averages of ``observables`` (running
    log-sum-exp over chunks of the first coordinate)."""
    ticks = torch.arange(-half_width, half_width + h / 2, h, dtype=F64)
    rest = torch.cartesian_prod(*[ticks] * (n_sites - 1)).reshape(-1, n_sites - 1)
    top, total, sums = -math.inf, 0.0, [0.0] * len(observables)
    for x0 in ticks:
        x = torch.cat([x0.expand(rest.shape[0], 1), rest], dim=1)
        lf = log_f(x)
        new_top = max(top, float(lf.max()))
        scale = math.exp(top - new_top) if math.isfinite(top) else 0.0
        w = torch.exp(lf - new_top)
        total = total * scale + float(w.sum())
        sums = [acc * scale + float((w * ob(x)).sum()) for acc, ob in zip(sums, observables)]
        top = new_top
    return top + math.log(total) + n_sites * math.log(h), [acc / total for acc in sums]


# ----------------------------------------------------------------------------------------------------------
# exact Ising references


@pytest.mark.parametrize("T", [0.05, 0.3, 1.5, ISING_TC, 3.0, 5.0, 50.0, 1.0e4])
@pytest.mark.parametrize("L", [3, 4])
def test_kaufman_matches_enumeration(L: int, T: float) -> None:
    ref = enumerate_ising(L, 2, T)
    _, _, ln_z = ising_weights(L, 2, T)
    assert ref.log_z == pytest.approx(ln_z, rel=1e-12)
    assert exact_ising_log_z(L, T, dim=2) == pytest.approx(ref.log_z, rel=1e-10)
    assert exact_ising_energy_per_site(L, T, dim=2) == pytest.approx(ref.energy_per_site, rel=1e-10, abs=1e-13)


@pytest.mark.parametrize("T", [0.05, 1.0, 3.0, 1.0e3])
@pytest.mark.parametrize("L", [3, 4, 7, 12])
def test_ring_closed_form_matches_enumeration(L: int, T: float) -> None:
    ref = enumerate_ising(L, 1, T)
    assert exact_ising_log_z(L, T, dim=1) == pytest.approx(ref.log_z, rel=1e-12)
    assert exact_ising_energy_per_site(L, T, dim=1) == pytest.approx(ref.energy_per_site, rel=1e-10, abs=1e-13)
    assert exact_ising_m2(L, T, dim=1) == pytest.approx(ref.m2, rel=1e-10)


def test_enumeration_observables_limits() -> None:
    cold, hot = enumerate_ising(4, 2, 0.05), enumerate_ising(4, 2, 1e6)
    assert cold.energy_per_site == pytest.approx(-2.0, abs=1e-12)
    assert cold.m2 == pytest.approx(1.0, abs=1e-12) and cold.abs_m == pytest.approx(1.0, abs=1e-12)
    assert hot.log_z == pytest.approx(16 * math.log(2), rel=1e-5)
    assert hot.m2 == pytest.approx(1 / 16, rel=1e-4)
    assert exact_ising_m2(4, 2.5) == pytest.approx(enumerate_ising(4, 2, 2.5).m2, rel=1e-13)  # transfer matrix


def test_energy_is_minus_derivative_of_log_z() -> None:
    for T in (1.0, ISING_TC, 4.0):
        beta, h = 1 / T, 1e-5
        d = (exact_ising_log_z(16, 1 / (beta + h)) - exact_ising_log_z(16, 1 / (beta - h))) / (2 * h)
        assert exact_ising_energy_per_site(16, T) == pytest.approx(-d / 256, rel=1e-8)


def test_kaufman_against_high_precision() -> None:
    """Kaufman's formula evaluated naively in 50-digit arithmetic (mpmath) on a 16 x 16 torus."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    L = 16

    def ln_z(T: float):
        K = mp.mpf(1) / mp.mpf(T)

        def g(k: int):
            if k == 0:
                return 2 * K + mp.log(mp.tanh(K))
            return mp.acosh(mp.cosh(2 * K) * mp.coth(2 * K) - mp.cos(mp.pi * k / L))

        go = [g(2 * r + 1) for r in range(L)]
        ge = [g(2 * r) for r in range(L)]
        z = sum(
            mp.fprod([2 * f(L * x / 2) for x in gs]) for gs in (go, ge) for f in (mp.cosh, mp.sinh)
        )
        return mp.log(z / 2) + (L * L / mp.mpf(2)) * mp.log(2 * mp.sinh(2 * K))

    for T in (0.01, 1.0, ISING_TC, 2.4, 10.0, 1e4):
        assert exact_ising_log_z(L, T) == pytest.approx(float(ln_z(T)), rel=1e-13)
    T = 2.4  # energy: derivative of the high-precision ln Z
    ref = -float(mp.diff(lambda b: ln_z(1 / b), mp.mpf(1) / mp.mpf(T))) / (L * L)
    assert exact_ising_energy_per_site(L, T) == pytest.approx(ref, rel=1e-12)


# ----------------------------------------------------------------------------------------------------------
# relaxed Ising


@pytest.mark.parametrize(("T", "shift"), [(1.5, None), (3.0, None), (2.0, 1.2)])
def test_relaxed_log_z_by_direct_integration(T: float, shift: float | None) -> None:
    """ln Z_relaxed (HS identity + closed-form ring) against a direct 3D integral of exp(-beta E)."""
    energy = IsingRelaxed(3, T, dim=1, shift=shift).to(F64)
    observables = (energy.m2_improved, energy.ising_energy_per_site)
    log_int, (m2, e) = grid_integrate(energy.log_unnormalized, 3, half_width=10.0, h=0.25, observables=observables)
    assert energy.log_z() == pytest.approx(log_int, rel=1e-9)
    # improved estimators: their expectation under p_relaxed equals the Ising value
    assert m2 == pytest.approx(exact_ising_m2(3, T, dim=1), rel=1e-9)
    assert e == pytest.approx(exact_ising_energy_per_site(3, T, dim=1), rel=1e-9)
    assert energy.exact_m2() == exact_ising_m2(3, T, dim=1)


@pytest.mark.parametrize("T", [1.5, ISING_TC, 3.5])
def test_relaxed_density_is_the_hs_mixture(T: float) -> None:
    r"""Pointwise: exp(-beta E(x)) / Z_relaxed = sum_s pi_Ising(s) N(x; K s, K), on the 4 x 4 torus.

    Checks energy, shift, ln det K, Kaufman ln Z and the HS identity together (dense K, enumeration)."""
    energy = IsingRelaxed(4, T, dim=2).to(F64)
    s, pi, _ = ising_weights(4, 2, T)
    K = energy.K.numpy()
    Kinv = np.linalg.inv(K)
    logdet = np.linalg.slogdet(K)[1]
    x = torch.randn(5, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(0)) * 2.0
    xf = x.reshape(5, -1).numpy()
    # ln N(x; K s, K) = -1/2 (x - K s)^T K^-1 (x - K s) - 1/2 ln det K - N/2 ln 2 pi
    #                 = -1/2 x^T K^-1 x + s.x - 1/2 s^T K s - ...
    sKs = np.einsum("ci,ij,cj->c", s, K, s)
    for i in range(5):
        quad = xf[i] @ Kinv @ xf[i]
        log_comp = -0.5 * quad + s @ xf[i] - 0.5 * sKs - 0.5 * logdet - 8 * math.log(2 * math.pi)
        top = log_comp.max()
        log_mix = top + math.log(np.sum(pi * np.exp(log_comp - top)))
        got = float(energy.log_unnormalized(x[i])) - energy.log_z()
        assert got == pytest.approx(log_mix, rel=1e-10, abs=1e-9)


def test_improved_estimators_by_exact_joint_sampling() -> None:
    """Draw s from the exact Ising weights, then x | s ~ N(K s, K): x is an exact sample of p_relaxed."""
    L, T, n = 4, ISING_TC, 20000
    energy = IsingRelaxed(L, T).to(F64)
    s, pi, _ = ising_weights(L, 2, T)
    ref = enumerate_ising(L, 2, T)
    rng = np.random.default_rng(1)
    spins = torch.tensor(s[rng.choice(len(pi), size=n, p=pi)])
    K = energy.K
    chol = torch.linalg.cholesky(K)
    eps = torch.tensor(rng.standard_normal((n, L * L)))
    x = (spins @ K + eps @ chol.T).reshape(n, L, L)
    for est, exact in ((energy.m2_improved(x), ref.m2), (energy.ising_energy_per_site(x), ref.energy_per_site)):
        se = float(est.std()) / math.sqrt(n)
        assert abs(float(est.mean()) - exact) < 4 * se, (float(est.mean()), exact, se)
    assert abs(float(energy.magnetization(x).mean())) < 4 * float(energy.magnetization(x).std()) / math.sqrt(n)


def test_improved_estimators_are_conditional_expectations() -> None:
    """Given x, spins are independent with p(s_i | x) ∝ exp(s_i x_i): enumerate them on a 5-ring."""
    energy = IsingRelaxed(5, 2.0, dim=1).to(F64)
    x = torch.randn(4, 5, dtype=F64, generator=torch.Generator().manual_seed(3))
    s = torch.tensor(all_spins(5), dtype=F64)
    for xi, m2, e in zip(x, energy.m2_improved(x), energy.ising_energy_per_site(x)):
        logp = (s * xi).sum(1) - torch.log(2 * torch.cosh(xi)).sum()
        p = logp.exp()
        assert float(p.sum()) == pytest.approx(1.0, rel=1e-12)
        assert float(m2) == pytest.approx(float((p * s.mean(1) ** 2).sum()), rel=1e-12)
        bonds = (s * torch.roll(s, 1, dims=1)).sum(1)
        assert float(e) == pytest.approx(float((p * -bonds / 5).sum()), rel=1e-12)


def test_relaxed_fft_quadratic_form_and_force_match_dense() -> None:
    for L, dim in ((5, 1), (4, 2), (5, 2)):
        energy = IsingRelaxed(L, 2.7, dim=dim).to(F64)
        x = torch.randn(3, *energy.event_shape, dtype=F64)
        xf = x.reshape(3, -1)
        Kinv = energy.K_inv
        quad = torch.einsum("bi,ij,bj->b", xf, Kinv, xf)
        torch.testing.assert_close(energy.quadratic_form(x), quad, rtol=1e-12, atol=1e-12)
        force = energy.temperature * (torch.tanh(xf) - xf @ Kinv)  # -grad E
        torch.testing.assert_close(energy.force(x).reshape(3, -1), force, rtol=1e-10, atol=1e-10)
        assert torch.linalg.eigvalsh(energy.K).min() == pytest.approx(0.1, rel=1e-10)  # default margin


def test_relaxed_log_cosh_is_stable() -> None:
    energy = IsingRelaxed(4, 2.0, dim=1).to(F64)
    x = torch.tensor([[800.0, -800.0, 1e-8, 0.0]], dtype=F64)
    e = energy.energy(x)
    assert torch.isfinite(e).all()
    lc = energy._log_cosh(x)
    torch.testing.assert_close(lc[0, :2], torch.full((2,), 800.0 - math.log(2), dtype=F64))
    assert torch.isfinite(energy.force(x)).all()


# ----------------------------------------------------------------------------------------------------------
# phi^4


def test_phi4_gaussian_log_z_vs_dense_and_integration() -> None:
    for L, dim, kappa in ((6, 2, 0.2), (5, 1, 0.4), (3, 2, -0.1)):
        action = Phi4(L, kappa, 0.0, dim=dim)
        N = action.n_sites
        M = 2 * torch.eye(N, dtype=F64) - 2 * kappa * adjacency_matrix(L, dim)
        ref = 0.5 * N * math.log(2 * math.pi) - 0.5 * float(torch.linalg.slogdet(M)[1])
        assert action.log_z() == pytest.approx(ref, rel=1e-12)
        assert action.exact_susceptibility() == pytest.approx(float(torch.linalg.inv(M).sum(1)[0]), rel=1e-12)
        torch.testing.assert_close(
            action.to(F64).exact_propagator().reshape(-1), torch.linalg.inv(M)[0], rtol=1e-10, atol=1e-12
        )
    action = Phi4(3, 0.3, 0.0, dim=1).to(F64)
    log_int, _ = grid_integrate(action.log_unnormalized, 3, half_width=9.0, h=0.3)
    assert action.log_z() == pytest.approx(log_int, rel=1e-9)


def test_phi4_gaussian_by_direct_sampling() -> None:
    L, kappa, n = 6, 0.22, 40000
    action = Phi4(L, kappa, 0.0).to(F64)
    N = action.n_sites
    M = 2 * torch.eye(N, dtype=F64) - 2 * kappa * adjacency_matrix(L, 2)
    cov = torch.linalg.inv(M)
    g = torch.Generator().manual_seed(5)
    phi = (torch.randn(n, N, dtype=F64, generator=g) @ torch.linalg.cholesky(cov).T).reshape(n, L, L)
    # density ratio exp(-S) / N(phi; 0, M^-1) is the constant Z
    gauss = torch.distributions.MultivariateNormal(torch.zeros(N, dtype=F64), covariance_matrix=cov)
    ratio = action.log_unnormalized(phi[:10]) - gauss.log_prob(phi[:10].reshape(10, N))
    torch.testing.assert_close(ratio, torch.full((10,), action.log_z(), dtype=F64), rtol=1e-10, atol=1e-10)
    chi = action.exact_susceptibility()
    for est, exact in ((action.energy(phi), N / 2), (action.two_point_susceptibility(phi), chi)):
        se = float(est.std()) / math.sqrt(n)
        assert abs(float(est.mean()) - exact) < 4 * se, (float(est.mean()), exact, se)
    assert abs(float(action.magnetization(phi).mean())) < 4 * float(action.magnetization(phi).std()) / math.sqrt(n)


def test_phi4_mass_form_matches_definition_and_map() -> None:
    L, m2, g = 5, -1.3, 0.7
    mass = Phi4.from_mass(L, m2, g).to(F64)
    phi = torch.randn(4, L, L, dtype=F64)
    kin = sum(((torch.roll(phi, -1, dims=a) - phi) ** 2) for a in (-2, -1)).sum((-2, -1))
    direct = 0.5 * kin + (0.5 * m2 * phi**2 + g * phi**4).sum((-2, -1))
    torch.testing.assert_close(mass.energy(phi), direct, rtol=1e-12, atol=1e-12)
    kappa, lam, scale = mass_to_hopping(m2, g, dim=2)
    hop = Phi4(L, kappa, lam).to(F64)
    torch.testing.assert_close(mass.energy(scale * phi), hop.energy(phi) - lam * L * L, rtol=1e-12, atol=1e-10)
    # Gaussian: ln Z_mass = ln Z_hop + N/2 ln(2 kappa)
    m2 = 0.5
    kappa, lam, _ = mass_to_hopping(m2, 0.0, dim=2)
    assert lam == 0.0
    assert Phi4.from_mass(L, m2, 0.0).log_z() == pytest.approx(
        Phi4(L, kappa, 0.0).log_z() + 0.5 * L * L * math.log(2 * kappa), rel=1e-12
    )


def test_phi4_interacting_has_no_exact_log_z() -> None:
    action = Phi4(4, 0.2, 0.5)
    with pytest.raises(NoExactSolutionError, match="lam=0"):
        action.log_z()
    with pytest.raises(NotImplementedError):  # also a NotImplementedError, like Energy.log_z
        action.exact_susceptibility()
    with pytest.raises(NotPositiveDefiniteError, match=r"\|kappa\| < 1/\(2\*dim\)"):
        Phi4(4, 0.3, 0.0)
    Phi4(4, 0.3, 0.1)  # the quartic term stabilizes it
    with pytest.raises(NotPositiveDefiniteError, match="m2 > 0"):
        Phi4.from_mass(4, -0.5, 0.0)
    with pytest.raises(NotNormalizableError, match="lam >= 0"):
        Phi4(4, 0.1, -0.1)
    with pytest.raises(NonFiniteError, match="kappa must be finite"):
        Phi4(4, float("nan"), 0.1)


# ----------------------------------------------------------------------------------------------------------
# contracts: shapes, forces, dtypes, errors

ENERGIES = {
    "ising1d": lambda: IsingRelaxed(6, 1.7, dim=1),
    "ising2d": lambda: IsingRelaxed(4, ISING_TC),
    "ising2d_odd_shift": lambda: IsingRelaxed(5, 3.0, shift=2.0),
    "phi4_free": lambda: Phi4(4, 0.2, 0.0),
    "phi4": lambda: Phi4(4, 0.3, 1.1),
    "phi4_mass_1d": lambda: Phi4.from_mass(8, -0.5, 0.3, dim=1),
}


@pytest.mark.parametrize("name", sorted(ENERGIES))
def test_energy_contract(name: str) -> None:
    check_energy(ENERGIES[name]())  # float32 constants, float64 input (promotes)
    energy = ENERGIES[name]().to(F64)
    check_energy(energy)
    x64 = torch.randn(2, 3, *energy.event_shape, dtype=F64)
    assert energy.energy(x64).dtype == F64 and energy.energy(x64).shape == (2, 3)
    for ob in ("magnetization", "m2_improved", "ising_energy_per_site", "two_point_susceptibility"):
        if hasattr(energy, ob):
            assert getattr(energy, ob)(x64).shape == (2, 3)
            assert getattr(energy, ob)(x64[0, 0]).shape == ()
    e32 = ENERGIES[name]()
    assert e32.energy(x64.float()).dtype == torch.float32
    torch.testing.assert_close(e32.energy(x64.float()).double(), energy.energy(x64), rtol=1e-5, atol=1e-4)
    # .to(float64) restores full-precision constants even after a float32 construction
    torch.testing.assert_close(e32.to(F64).energy(x64), energy.energy(x64), rtol=1e-14, atol=1e-12)


def test_bad_inputs_raise_named_errors() -> None:
    with pytest.raises(TemperatureError, match="T=0"):
        IsingRelaxed(4, 0.0)
    with pytest.raises(TemperatureError, match="> 0"):
        IsingRelaxed(4, -1.0)
    with pytest.raises(TemperatureError, match="nan"):
        IsingRelaxed(4, float("nan"))
    with pytest.raises(TemperatureError):
        exact_ising_log_z(4, float("inf"))
    with pytest.raises(LatticeSizeError, match="L >= 3"):
        IsingRelaxed(2, 2.0)
    with pytest.raises(LatticeSizeError, match="dim=1 or dim=2"):
        IsingRelaxed(4, 2.0, dim=3)
    with pytest.raises(NotPositiveDefiniteError, match="use c > 8"):
        IsingRelaxed(4, 0.5, shift=1.0)
    with pytest.raises(NotPositiveDefiniteError, match="margin"):
        IsingRelaxed(4, 2.0, margin=0.0)
    with pytest.raises(LatticeSizeError, match="enumeration is limited"):
        enumerate_ising(5, 2, 2.0)
    with pytest.raises(NoExactSolutionError, match="L <= 10"):
        IsingRelaxed(12, 2.0).exact_m2()
    for energy in (IsingRelaxed(4, 2.0), Phi4(4, 0.2, 0.5)):
        with pytest.raises(EventShapeError, match=r"reshape"):
            energy.energy(torch.randn(3, 4, 5))
        with pytest.raises(EventShapeError):
            energy.energy(torch.randn(4))
        bad = torch.randn(2, 4, 4)
        bad[1, 2, 3] = float("nan")
        with pytest.raises(NonFiniteError, match="NaN"):
            energy.energy(bad)
        with pytest.raises(NonFiniteError):
            energy.magnetization(bad)
    assert torch.isnan(IsingRelaxed(4, 2.0, validate=False).energy(bad)[1])


def test_free_energy_and_repr() -> None:
    energy = IsingRelaxed(8, ISING_TC)
    assert energy.free_energy() == pytest.approx(-ISING_TC * energy.log_z())
    assert "shift" in repr(energy) and "kappa=0.2" in repr(Phi4(4, 0.2, 0.1))
    assert list(energy.state_dict()) == []  # constants are derived from the config, not saved


@pytest.mark.parametrize("T", [0.5, ISING_TC, 8.0])
def test_relaxed_log_z_identity_terms(T: float) -> None:
    """ln Z_relaxed - ln Z_Ising is the Gaussian normalization, independent of how ln Z_Ising was found."""
    energy = IsingRelaxed(6, T)
    N, c = 36, energy.shift
    logdet = float(torch.linalg.slogdet(energy.to(F64).K)[1])
    gauss = c * N / 2 + 0.5 * logdet + N / 2 * math.log(2 * math.pi) - N * math.log(2)
    assert energy.log_z() - energy.log_z_ising() == pytest.approx(gauss, rel=1e-12)
    assert energy.exact_energy_per_site() == exact_ising_energy_per_site(6, T)


def test_spin_enumeration_helper_matches_itertools() -> None:
    s = all_spins(3)
    assert sorted(map(tuple, s.tolist())) == sorted(itertools.product([-1, 1], repeat=3))


def test_wolff_reference_agrees_with_exact_ising_values() -> None:
    from pyro_nrg.energies import exact_ising_energy_per_site, exact_ising_m2, wolff_ising

    r = wolff_ising(4, ISING_TC, n_updates=20_000, seed=1)
    assert abs(r.m2 - exact_ising_m2(4, ISING_TC)) < 4 * r.m2_err
    assert abs(r.energy_per_site - exact_ising_energy_per_site(4, ISING_TC)) < 4 * r.energy_per_site_err
    assert abs(r.mean_cluster_fraction - r.m2) < 4 * r.m2_err  # <|C|>/N is an improved estimator of <m^2>
    r8 = wolff_ising(8, 3.0, n_updates=10_000, seed=2)
    assert abs(r8.energy_per_site - exact_ising_energy_per_site(8, 3.0)) < 4 * r8.energy_per_site_err
    r3 = wolff_ising(6, ISING_TC, dim=1, n_updates=2_000, seed=3)
    assert abs(r3.energy_per_site - exact_ising_energy_per_site(6, ISING_TC, dim=1)) < 5 * r3.energy_per_site_err + 1e-9


def test_wolff_spins_are_reproducible_ising_draws() -> None:
    from pyro_nrg.energies import exact_ising_m2, wolff_spins

    s = wolff_spins(4, ISING_TC, 4000, thin=3, seed=5)
    assert s.shape == (4000, 4, 4) and s.dtype == np.int8 and set(np.unique(s).tolist()) == {-1, 1}
    assert np.array_equal(s, wolff_spins(4, ISING_TC, 4000, thin=3, seed=5))
    m2 = (s.reshape(4000, -1).mean(1) ** 2).astype(np.float64)
    assert abs(m2.mean() - exact_ising_m2(4, ISING_TC)) < 5 * m2.std() / np.sqrt(len(m2))
    assert wolff_spins(5, 1.5, 3, dim=1).shape == (3, 5)
    with pytest.raises(ValueError, match="thin >= 1"):
        wolff_spins(4, ISING_TC, 10, thin=0)
    with pytest.raises(ValueError, match="n_therm >= 1"):
        wolff_spins(4, ISING_TC, 10, n_therm=0)  # thin=None measures the cluster size during thermalisation
    # thin=None: two sweeps of flipped spins between draws, so consecutive draws are nearly independent
    def lag1(thin: int | None) -> float:
        m2 = wolff_spins(8, ISING_TC, 2000, thin=thin, seed=2).reshape(2000, -1).astype(np.float64).mean(1) ** 2
        return float(np.corrcoef(m2[:-1], m2[1:])[0, 1])

    assert lag1(None) < 0.25 < lag1(1)  # measured 0.15 and 0.46
    with pytest.raises(LatticeSizeError, match="L >= 3"):
        wolff_spins(2, ISING_TC, 10)


def test_sample_given_spins_is_the_hubbard_stratonovich_conditional() -> None:
    """x | s ~ N(Ks, K): the FFT products equal the dense ones, and the noise has covariance K."""
    e = IsingRelaxed(4, ISING_TC).double()
    rng = np.random.default_rng(0)
    s = torch.tensor(rng.choice([-1, 1], size=(3, 4, 4)), dtype=torch.float64)
    x = e.sample_given_spins(s, torch.Generator().manual_seed(0))
    K = e.K
    eps = torch.randn(s.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w, V = torch.linalg.eigh(K)
    ref = s.reshape(3, 16) @ K + eps.reshape(3, 16) @ (V * w.sqrt()) @ V.T
    torch.testing.assert_close(x.reshape(3, 16), ref, rtol=0, atol=1e-12)
    S = torch.tensor(rng.choice([-1, 1], size=(50_000, 4, 4)), dtype=torch.float64)
    noise = (e.sample_given_spins(S).reshape(-1, 16) - S.reshape(-1, 16) @ K)
    assert (torch.cov(noise.T) - K).abs().max() < 0.05  # 3.6 sigma of the largest entry's sampling error
    with pytest.raises(EventShapeError):
        e.sample_given_spins(torch.ones(3, 4))


@pytest.mark.parametrize("L, T, dim", [(4, ISING_TC, 2), (6, 1.5, 1)])
def test_exact_samples_reproduce_the_exact_ising_m2(L: int, T: float, dim: int) -> None:
    """tanh-improved m^2 of the relaxed draws has the Ising <m^2> as its mean only if x has the relaxed law."""
    e = IsingRelaxed(L, T, dim=dim)
    x = e.exact_samples(6000, thin=4, seed=3)
    assert x.shape == (6000, *e.event_shape) and x.dtype == e.k_eigenvalues.dtype
    m2 = e.m2_improved(x).double()
    assert abs(float(m2.mean()) - e.exact_m2()) < 4 * float(m2.std()) / 6000**0.5
    torch.testing.assert_close(x, e.exact_samples(6000, thin=4, seed=3))
