"""Hamiltonians with exact references, latent oscillators, latent dynamics and training (neural CT)."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_nrg.analysis.modes import best_latent_correlation, circular_rank_correlation, rank_correlation
from pyro_nrg.distributions import (
    CanonicalFlow,
    HarmonicOscillators,
    PhaseSpaceFlow,
    canonical_flow,
    rotate_oscillators,
)
from pyro_nrg.energies.hamiltonians import HarmonicChain, RingHamiltonian, SeparableHamiltonian, velocity_verlet
from pyro_nrg.errors import EventShapeError, TemperatureError
from pyro_nrg.infer.canonical import (
    DensityConfig,
    VariationalConfig,
    canonical_free_energy,
    fit_density,
    fit_variational,
)
from pyro_nrg.testing import check_energy, perturb_parameters
from pyro_nrg.transforms.symplectic import (
    SymplecticLinearMap,
    is_symplectic_matrix,
    polar_symplectic_flow,
    symplectic_flow,
)


def _exact_chain_model(chain: HarmonicChain) -> CanonicalFlow:
    flow = SymplecticLinearMap(chain.canonical_matrix())
    return CanonicalFlow(flow, chain.n, chain.temperature, omega=chain.frequencies(), learn_omega=False).double()


# ---------------------------------------------------------------------------------------------- Hamiltonians


@pytest.mark.parametrize(
    "H",
    [
        HarmonicChain(5, kappa=1.3, mass=0.7, temperature=0.8),
        RingHamiltonian(),
        SeparableHamiltonian(3, lambda q: (q**4).sum(-1) - (q**2).sum(-1), masses=torch.tensor([1.0, 2.0, 3.0])),
    ],
)
def test_energy_contract(H):
    check_energy(H.double())


@pytest.mark.parametrize("n,kappa,mass,T", [(4, 1.0, 1.0, 1.0), (9, 2.5, 0.3, 0.7)])
def test_chain_exact_references(n, kappa, mass, T):
    H = HarmonicChain(n, kappa=kappa, mass=mass, temperature=T)
    Kmat = H.stiffness_matrix().numpy()
    # frequencies: eigenvalues of the dynamical matrix K/m
    w_ref = np.sqrt(np.linalg.eigvalsh(Kmat / mass))
    np.testing.assert_allclose(H.frequencies().numpy(), w_ref, rtol=1e-12)
    # ln Z by direct Gaussian integrals over q (Hessian K) and p (mass m)
    lnz_q = 0.5 * n * math.log(2 * math.pi * T) - 0.5 * np.linalg.slogdet(Kmat)[1]
    lnz_p = 0.5 * n * math.log(2 * math.pi * mass * T)
    assert abs(H.log_z() - (lnz_q + lnz_p)) < 1e-10
    # potential = quadratic form; modes are orthonormal eigenvectors
    q = torch.randn(7, n, dtype=torch.float64)
    assert torch.allclose(H.potential(q), 0.5 * ((q @ H.stiffness_matrix()) * q).sum(-1), atol=1e-12)
    U = H.normal_modes()
    assert torch.allclose(U.T @ U, torch.eye(n, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(H.stiffness_matrix() @ U, U * (mass * H.frequencies() ** 2), atol=1e-10)
    # exact canonical map: symplectic and H(Mz) = sum_k w_k (Q_k^2 + P_k^2)/2
    M = H.canonical_matrix()
    assert is_symplectic_matrix(M)
    z = torch.randn(11, 2 * n, dtype=torch.float64)
    lat = HarmonicOscillators(H.frequencies(), T)
    assert torch.allclose(H.double().energy(z @ M.T), lat.energy(z), atol=1e-10)
    assert abs(float(lat.log_z()) - H.log_z()) < 1e-10


def test_ring_log_z_against_2d_integration():
    H = RingHamiltonian()
    # independent reference: Cartesian trapezoid grid over the plane (no radial formula)
    h = 0.004
    g = np.arange(-4.5, 4.5 + h / 2, h)
    X, Y = np.meshgrid(g, g, indexing="ij")
    f = np.exp(-((np.hypot(X, Y) - 2.0) ** 2) / 0.32)
    lnz_q = math.log(np.trapezoid(np.trapezoid(f, g, axis=1), g))
    assert abs(H.log_z_positions() - lnz_q) < 1e-6
    assert abs(H.log_z() - (lnz_q + math.log(2 * math.pi))) < 1e-6


def test_ring_exact_samples():
    H = RingHamiltonian(temperature=0.5)
    x = H.sample(40_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = torch.linalg.vector_norm(x[:, :2], dim=-1).numpy()
    rg = np.linspace(0, 4, 20001)
    d = H.radial_density(rg)
    mean_ref = np.trapezoid(rg * d, rg) / np.trapezoid(d, rg)
    assert abs(r.mean() - mean_ref) < 4 * r.std() / math.sqrt(len(r))
    assert abs(float(x[:, 2:].var()) - 0.5) < 0.02


def test_separable_hamiltonian_errors():
    with pytest.raises(EventShapeError, match="sum over the last axis"):
        SeparableHamiltonian(2, lambda q: q**2).energy(torch.zeros(3, 4))
    with pytest.raises(EventShapeError, match="masses"):
        SeparableHamiltonian(2, lambda q: (q**2).sum(-1), masses=torch.ones(3))
    with pytest.raises(EventShapeError, match="reshape"):
        HarmonicChain(3).energy(torch.zeros(2, 5))


# ---------------------------------------------------------------------------------------------- distributions


def test_oscillators_match_normal():
    w = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    lat = HarmonicOscillators(w, temperature=2.0)
    z = torch.randn(6, 6, dtype=torch.float64)
    ref = dist.Normal(0.0, torch.sqrt(2.0 / torch.cat([w, w]))).to_event(1).log_prob(z)
    assert torch.allclose(lat.log_prob(z), ref, atol=1e-12)
    assert lat.rsample((4, 5)).shape == (4, 5, 6)
    assert lat.expand([7]).sample().shape == (7, 6)
    assert torch.allclose(lat.entropy(), dist.Normal(0.0, torch.sqrt(2.0 / torch.cat([w, w]))).entropy().sum())


def test_phase_space_flow_log_prob_is_exact():
    n = 2
    flow = perturb_parameters(symplectic_flow(n, n_blocks=1, n_couplings=2, hidden=8).double(), 0.2)
    lat = HarmonicOscillators(torch.tensor([0.7, 1.9], dtype=torch.float64))
    fd = PhaseSpaceFlow(lat, flow)
    generic = dist.TransformedDistribution(lat, [flow])  # with log-dets
    x = fd.rsample((5,))
    cached = fd.log_prob(x)
    fresh = fd.log_prob(x.clone())
    assert torch.allclose(cached, fresh, atol=1e-10)
    assert torch.allclose(fresh, generic.log_prob(x.clone()), atol=1e-10)
    assert fd.expand([3]).sample().shape == (3, 4)


# ---------------------------------------------------------------------------------------------- dynamics, spectrum


def test_latent_dynamics_match_integrator():
    chain = HarmonicChain(6, kappa=1.0, mass=1.0).double()
    model = _exact_chain_model(chain)
    x0 = chain.sample(3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dt, n_steps, every = 0.002, 2500, 500
    ref = velocity_verlet(chain, x0, dt, n_steps, record_every=every)
    times = torch.arange(ref.shape[0], dtype=torch.float64) * dt * every
    traj = model.evolve(x0, times)
    assert traj.shape == ref.shape == (6, 3, 12)
    scale = x0.abs().max()
    assert (traj - ref).abs().max() < 1e-4 * scale  # O(dt^2) leapfrog error
    # energy conserved along the latent trajectory
    e = chain.energy(traj)
    assert torch.allclose(e, e[0].expand_as(e), atol=1e-10)


def test_rotation_is_hamiltonian_flow():
    w = torch.tensor([0.3, 2.0], dtype=torch.float64)
    z = torch.randn(4, dtype=torch.float64)
    eps = 1e-6
    dz = (rotate_oscillators(z, w, eps) - rotate_oscillators(z, w, -eps)) / (2 * eps)
    # dQ/dt = w P, dP/dt = -w Q
    assert torch.allclose(dz, torch.cat([w * z[2:], -w * z[:2]]), atol=1e-8)


def test_spectrum_slow_modes_and_profiles():
    chain = HarmonicChain(5)
    model = _exact_chain_model(chain)
    w, order = model.frequencies()
    assert torch.allclose(w, chain.frequencies())
    assert int(model.slow_modes(1)[0]) == 0
    prof = model.mode_profiles()
    overlap = (prof * chain.normal_modes()).sum(0).abs()
    assert torch.allclose(overlap, torch.ones(5, dtype=torch.float64), atol=1e-12)
    assert abs(model.free_energy() - chain.free_energy()) < 1e-10
    est = canonical_free_energy(model, chain, n_samples=2000, seed=0)
    assert abs(est.f_q - chain.free_energy()) < 1e-8 and est.f_q_err < 1e-8 and est.ess_fraction > 0.999


def test_rank_correlations():
    g = torch.Generator().manual_seed(0)
    theta = torch.rand(4000, generator=g, dtype=torch.float64) * 2 * math.pi - math.pi
    u = torch.remainder(theta - 1.234, 2 * math.pi) ** 3  # monotone around the circle, cut at 1.234
    assert rank_correlation(u, theta) < 0.9
    assert circular_rank_correlation(u, theta) > 0.9999
    assert circular_rank_correlation(torch.randn(4000, generator=g, dtype=torch.float64), theta) < 0.1
    # latent (Q_0, P_0) rotated by 0.7 rad carries the angle; mode 1 carries the radius
    r = 2 + 0.3 * torch.randn(4000, generator=g, dtype=torch.float64)
    a = torch.remainder(theta - 1.234, 2 * math.pi)
    noise = torch.randn(4000, generator=g, dtype=torch.float64)
    c7, s7 = math.cos(0.7), math.sin(0.7)
    other = torch.randn(4000, generator=g, dtype=torch.float64)
    z = torch.stack([a * c7 - noise * s7, r, a * s7 + noise * c7, other], 1)
    c, k, phi = best_latent_correlation(z, theta, circular=True)
    assert c > 0.999 and k == 0 and abs(phi - 0.7) < math.pi / 36
    c, k, _ = best_latent_correlation(z, r)
    assert c > 0.999 and k == 1


# ---------------------------------------------------------------------------------------------- training


def test_variational_training_chain_n4():
    torch.manual_seed(0)
    chain = HarmonicChain(4).double()
    model = canonical_flow(4, n_blocks=0).double()
    res = fit_variational(model, chain, VariationalConfig(steps=400, batch_size=128, lr=3e-2, log_every=100))
    F = chain.free_energy()
    first, last = np.mean(res.f_q[:20]), res.final(50)
    assert first > last > F - 0.05  # decreases, stays above the bound (up to noise)
    est = canonical_free_energy(model, chain, n_samples=4000, seed=0)
    assert abs(est.f_q - F) / abs(F) < 5e-3
    w, _ = model.frequencies()
    assert torch.allclose(w, chain.frequencies(), rtol=0.1)
    # no parameters left behind in Pyro's global store
    assert not [k for k in pyro.get_param_store().keys() if k.startswith("canonical_vi")]


def _svi_reference(model: CanonicalFlow, chain: HarmonicChain, cfg: VariationalConfig) -> list[float]:
    """The variational fit written the textbook Pyro way (SVI, PyroOptim LambdaLR with clip_args): F_q per step."""
    from pyro.infer import SVI, Trace_ELBO

    from pyro_nrg.infer.schedules import warmup_cosine

    pyro.set_rng_seed(cfg.seed)
    stash: dict[str, torch.Tensor] = {}

    def pyro_model() -> None:
        flat = dist.Normal(torch.zeros(2 * model.n, dtype=torch.float64), 1.0).to_event(1).mask(False)
        with pyro.plate("particles", cfg.batch_size):
            action = chain.beta * chain.energy(pyro.sample("x", flat))
            stash["action"] = action.detach()
            pyro.factor("boltzmann", -action)

    def guide() -> None:
        pyro.module("ref_model", model)
        fd = model.distribution().expand([cfg.batch_size])
        with pyro.plate("particles", cfg.batch_size):
            x = pyro.sample("x", fd)
        with torch.no_grad():
            stash["log_q"] = model.log_prob(x)

    optim = pyro.optim.LambdaLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": cfg.lr},
                                 "lr_lambda": warmup_cosine(cfg.steps, cfg.warmup_steps, cfg.final_lr_ratio)},
                                clip_args={"clip_norm": cfg.clip_norm})
    svi = SVI(pyro_model, guide, optim, loss=Trace_ELBO())
    f_q = []
    try:
        for _ in range(cfg.steps):
            svi.step()
            optim.step()
            f_q.append(float((stash["action"] + stash["log_q"]).double().mean()))
    finally:
        pyro.clear_param_store()
    return f_q


def test_variational_fit_follows_pyro_svi_step_by_step():
    """fit_variational drives Trace_ELBO with one torch Adam: the same trajectory as SVI with PyroOptim."""
    chain = HarmonicChain(4).double()
    cfg = VariationalConfig(steps=60, batch_size=32, lr=3e-2, warmup_steps=10, clip_norm=0.5, seed=5,
                            path_gradient=False)
    torch.manual_seed(0)
    ref = _svi_reference(canonical_flow(4, n_blocks=1, hidden=8).double(), chain, cfg)
    torch.manual_seed(0)
    model = canonical_flow(4, n_blocks=1, hidden=8).double()
    start = model.omega.detach().clone()
    res = fit_variational(model, chain, cfg)
    assert len(res.f_q) == len(ref) == cfg.steps
    assert np.allclose(res.f_q, ref, rtol=1e-9, atol=1e-9), np.abs(np.subtract(res.f_q, ref)).max()
    assert (model.omega.detach() - start).abs().max() > 0.1  # it trained: the comparison covers real updates


def test_density_estimation_early_stops():
    torch.manual_seed(0)
    chain = HarmonicChain(3).double()
    q = chain.sample(800, dtype=torch.float64, generator=torch.Generator().manual_seed(2))[:, :3]
    model = canonical_flow(3, n_blocks=0).double()
    cfg = DensityConfig(max_epochs=150, batch_size=128, lr=3e-2, patience=4, min_delta=1e-3, lr_patience=2)
    res = fit_density(model, q, masses=1.0, config=cfg)
    assert res.stopped_early and len(res.val_nll) < cfg.max_epochs
    assert res.best_epoch == int(np.argmin(res.val_nll))
    # the restored best model is close to the exact density on fresh Boltzmann data
    x = chain.sample(5000, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        nll = -model.log_prob(x).mean()
        nll_exact = -_exact_chain_model(chain).log_prob(x).mean()
    assert abs(float(nll - nll_exact)) < 0.05
    assert abs(float(nll_exact) - (3 + chain.log_z())) < 0.1  # cross-entropy = <beta H> + ln Z = n + ln Z
    assert res.train_nll[0] > res.train_nll[-1]


def test_density_estimation_ring_nonlinear_flow():
    torch.manual_seed(0)
    ring = RingHamiltonian()
    q = ring.sample_positions(600, generator=torch.Generator().manual_seed(4))
    model = CanonicalFlow(polar_symplectic_flow(n_blocks=1, hidden=16, log_radius=math.log(2.0)), 2)
    res = fit_density(model, q, config=DensityConfig(max_epochs=6, batch_size=100, lr=1e-2, patience=10))
    assert len(res.val_nll) == 6 and all(math.isfinite(v) for v in res.val_nll)
    assert res.val_nll[-1] < res.val_nll[0]
    assert not [k for k in pyro.get_param_store().keys() if k.startswith("canonical_mle")]


def test_training_errors():
    chain = HarmonicChain(3, temperature=2.0)
    with pytest.raises(TemperatureError, match="same temperature"):
        fit_variational(canonical_flow(3, n_blocks=0), chain, VariationalConfig(steps=1))
    with pytest.raises(EventShapeError, match="n=3"):
        fit_variational(canonical_flow(2, n_blocks=0, temperature=2.0), chain, VariationalConfig(steps=1))
    with pytest.raises(EventShapeError, match=r"\(N, 3\)"):
        fit_density(canonical_flow(3, n_blocks=0), torch.zeros(10, 2))
