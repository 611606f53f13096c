"""Exact F_q of linear canonical flows on quadratic Hamiltonians (sigma points) and its L-BFGS minimisation."""

from __future__ import annotations

import math

import pytest
import torch

from pyro_nrg.distributions import canonical_flow
from pyro_nrg.energies.hamiltonians import HarmonicChain, RingHamiltonian
from pyro_nrg.errors import NoExactSolutionError
from pyro_nrg.infer.cubature import quadratic_free_energy, refine_quadratic, sigma_points


def test_sigma_points_have_exact_gaussian_moments():
    e = sigma_points(6)
    assert e.shape == (12, 6)
    assert torch.equal(e.mean(0), torch.zeros(6, dtype=torch.float64))
    assert torch.allclose(e.T @ e / 12, torch.eye(6, dtype=torch.float64), atol=1e-15)


def _random_linear_model(n: int, seed: int = 0):
    torch.manual_seed(seed)
    model = canonical_flow(n, temperature=1.3, n_blocks=0).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def test_sigma_point_free_energy_is_the_closed_form():
    n = 3
    chain = HarmonicChain(n, kappa=0.7, mass=1.5, temperature=1.3).double()
    model = _random_linear_model(n)
    d = 2 * n
    zero = torch.zeros(d, dtype=torch.float64)
    S = torch.autograd.functional.hessian(lambda x: chain.energy(x), zero)
    M = torch.autograd.functional.jacobian(lambda z: model.flow(z), zero)  # the flow is linear: x = M z
    with torch.no_grad():
        var = model.latent().scale ** 2
        e_h = float(chain.energy(zero)) + 0.5 * float(torch.trace(S @ M @ torch.diag(var) @ M.T))
        e_logq = -0.5 * float(torch.log(2 * math.pi * math.e * var).sum()) - float(torch.linalg.slogdet(M)[1])
        exact = e_h + model.temperature * e_logq
        got = float(quadratic_free_energy(model, chain))
    assert got == pytest.approx(exact, abs=1e-12)


def test_refine_reaches_the_exact_spectrum():
    n = 4
    chain = HarmonicChain(n, kappa=1.0, mass=1.0, temperature=1.0).double()
    model = _random_linear_model(n, seed=1)
    res = refine_quadratic(model, chain, max_iter=500, restarts=1)
    w, _ = model.frequencies()
    exact = chain.frequencies()
    assert float(((w - exact) / exact).abs().max()) < 1e-6
    assert res.f_q - chain.free_energy() < 1e-10
    assert res.f_q <= res.f_q_start


def test_refine_refuses_nonlinear_flows_and_non_quadratic_hamiltonians():
    chain = HarmonicChain(2).double()
    torch.manual_seed(0)
    nonlinear = canonical_flow(2, n_blocks=1).double()
    with torch.no_grad():  # away from the identity at which a nonlinear flow may start
        for p in nonlinear.parameters():
            p.add_(0.3 * torch.randn_like(p))
    with pytest.raises(NoExactSolutionError, match="affine flow"):
        refine_quadratic(nonlinear, chain)
    ring = RingHamiltonian(temperature=1.0).double()
    with pytest.raises(NoExactSolutionError, match="quadratic Hamiltonian"):
        refine_quadratic(canonical_flow(2, n_blocks=0).double(), ring)
