"""Latent-space sampling: renormalized energy, NeuTra NUTS, many-walker HMC, NaN starts, flow priors in models."""

from __future__ import annotations

import functools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import HMC, MCMC, NUTS

from pyro_nrg.analysis import sampling_efficiency, to_inference_data
from pyro_nrg.distributions import FlowDistribution
from pyro_nrg.energies.ising import IsingRelaxed
from pyro_nrg.errors import NonFiniteError, SamplerSettingsError
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import (
    IndependenceProposal,
    RenormalizedPotential,
    distill,
    hmc_walkers,
    latent_hmc_walkers,
    latent_nuts,
    latent_reparam,
    physical_hmc_walkers,
    physical_nuts,
    renormalized_energy,
)

T_TEST = 3.0  # above T_c: the relaxed L=4 model is not bimodal enough for reverse-KL under-coverage to matter


@functools.lru_cache(maxsize=1)
def trained_l4() -> tuple[IsingRelaxed, object]:
    """IsingRelaxed(4, 3.0) and a FlowGuide distilled for ~300 steps (F_q within ~1 % of F); cached per session."""
    energy = IsingRelaxed(4, T_TEST)
    result = distill(energy, neural_rg(L=4), steps=300, batch_size=256, lr=5e-3, progress=False, seed=1)
    return energy, result.guide


def _small_flow(dtype: torch.dtype = torch.float32):
    torch.manual_seed(0)
    return neural_rg(L=4, n_couplings=2, hidden=8).to(dtype)


# ---------------------------------------------------------------------------------------------------------------
# renormalized energy and the potential_fn path


def test_renormalized_energy_matches_autograd_logdet() -> None:
    flow = _small_flow(torch.float64)
    energy = IsingRelaxed(4, 2.5).double()
    z = torch.randn(3, 4, 4, dtype=torch.float64)
    e_eff = renormalized_energy(energy, flow, z)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v.reshape(1, 4, 4)).reshape(16), z[i].reshape(16))
        ref = energy.energy(flow(z[i : i + 1]))[0] - energy.temperature * torch.linalg.slogdet(jac)[1]
        assert torch.allclose(e_eff[i], ref, atol=1e-9)
    # flat latents give the same; subtract_gaussian removes T|z|^2/2
    assert torch.allclose(renormalized_energy(energy, flow, z.reshape(3, 16)), e_eff)
    resid = renormalized_energy(energy, flow, z, subtract_gaussian=True)
    assert torch.allclose(resid, e_eff - 0.5 * energy.temperature * z.reshape(3, -1).square().sum(-1))
    # the potential_fn is beta * E_eff (summed over a batch) and counts its calls
    pot = RenormalizedPotential(energy, flow)
    assert torch.allclose(pot({"z": z}), (e_eff / energy.temperature).sum())
    assert pot.num_calls == 1


def test_renormalized_potential_drives_pyro_hmc() -> None:
    flow = _small_flow()
    energy = IsingRelaxed(4, 3.0)
    pot = RenormalizedPotential(energy, flow)
    pyro.set_rng_seed(0)
    kernel = HMC(potential_fn=pot, step_size=0.1, num_steps=3, adapt_step_size=False)
    mcmc = MCMC(kernel, num_samples=5, warmup_steps=2, initial_params=pot.initial_params(), disable_progbar=True)
    mcmc.run()
    z = mcmc.get_samples()["z"]
    assert z.shape == (5, 4, 4) and torch.isfinite(z).all()
    assert pot.to_physical(z).shape == (5, 4, 4)
    assert pot.num_calls >= 7 * 3


# ---------------------------------------------------------------------------------------------------------------
# refusing NaN / inf start points


def test_nan_start_is_refused_before_sampling() -> None:
    flow = _small_flow()
    energy = IsingRelaxed(4, 3.0)
    nan = torch.full((16,), float("nan"))
    with pytest.raises(NonFiniteError, match="finite starting values"):
        latent_nuts(energy, flow, num_samples=2, warmup_steps=2, init=nan)
    with pytest.raises(NonFiniteError, match="chain/walker \\[0\\]"):
        physical_nuts(energy, num_samples=2, warmup_steps=2, init=nan.reshape(4, 4))
    with pytest.raises(NonFiniteError):  # finite but with an infinite energy (float32 overflow)
        physical_nuts(energy, num_samples=2, warmup_steps=2, init=torch.full((4, 4), 1e30))
    z0 = torch.randn(3, 4, 4)
    z0[1, 2, 3] = float("inf")
    with pytest.raises(NonFiniteError, match="\\[1\\]"):
        latent_hmc_walkers(energy, flow, num_walkers=3, num_samples=2, warmup_steps=0, init=z0)
    with pytest.raises(NonFiniteError):
        physical_hmc_walkers(energy, num_walkers=3, num_samples=2, warmup_steps=0, init=z0)


# ---------------------------------------------------------------------------------------------------------------
# many-walker HMC: exactness on a Gaussian target


@pytest.mark.parametrize("adapt", [False, True])
def test_walker_hmc_leaves_gaussian_invariant(adapt: bool) -> None:
    torch.manual_seed(1)
    sigma = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    W = 20000

    def potential(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * (q / sigma).square().sum(-1), q

    init = torch.randn(W, 6, dtype=torch.float64) * sigma  # exact draws: the chain must stay in equilibrium
    out = hmc_walkers(potential, init, num_samples=4, warmup_steps=6 if adapt else 0, step_size=0.5, num_steps=5,
                      adapt_step_size=adapt, target_accept_prob=0.7, keep_samples=True)
    x = out["samples"][:, -1]  # (W, 6) after the last transition
    tol_mean = 5 * sigma / math.sqrt(W)
    assert (x.mean(0).abs() < tol_mean).all()
    rel_var = x.var(0) / sigma**2
    assert ((rel_var - 1).abs() < 5 * math.sqrt(2 / W)).all(), rel_var
    assert 0.3 < out["accept_prob"].mean() < 1.0 and out["accepted"].any()
    assert (out["num_grad_evals"] == 5).all() and out["num_grad_evals"].shape == (W, 4)
    assert out["jump_accepted"] is None
    if adapt:
        assert out["step_size"] != 0.5 and out["step_size_history"].shape == (10,)


@pytest.mark.parametrize("kind", ["dense", "diag"])
def test_walker_mass_matrix_adapts_to_a_correlated_gaussian(kind: str) -> None:
    """Warm-up positions give the covariance (the inverse mass matrix); sampling in the adapted metric leaves the
    Gaussian invariant and records positions in the original coordinates; a dense metric evens out a
    condition number of 400 (larger steps at the same acceptance)."""
    torch.manual_seed(2)
    n, W = 5, 4000
    a = torch.randn(n, n, dtype=torch.float64)
    basis, _ = torch.linalg.qr(a)
    cov = basis @ torch.diag(torch.tensor([0.01, 0.1, 0.5, 1.0, 4.0], dtype=torch.float64)) @ basis.T
    chol = torch.linalg.cholesky(cov)
    prec = torch.linalg.inv(cov)
    mean = torch.arange(n, dtype=torch.float64)

    def potential(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = q - mean
        return 0.5 * ((d @ prec) * d).sum(-1), q

    init = mean + torch.randn(W, n, dtype=torch.float64) @ chol.T  # equilibrium starts
    common = dict(num_samples=3, warmup_steps=40, step_size=0.05, num_steps=5, adapt_step_size=True,
                  target_accept_prob=0.8, keep_samples=True, keep_latent=True)
    out = hmc_walkers(potential, init, mass_matrix=kind, **common)
    sigma = out["inverse_mass_matrix"]
    if kind == "dense":
        assert sigma.shape == (n, n)
        torch.testing.assert_close(sigma, cov, rtol=0.1, atol=0.02)
    else:
        assert sigma.shape == (n,)
        torch.testing.assert_close(sigma, cov.diagonal(), rtol=0.1, atol=0.02)
    x = out["samples"][:, -1]
    torch.testing.assert_close(out["latent"], out["samples"])  # positions recorded in the original coordinates
    assert ((x.mean(0) - mean).abs() < 5 * cov.diagonal().sqrt() / math.sqrt(W)).all()
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0.15, atol=0.03)
    assert out["warmup_grad_evals"] == 1 + 40 * 5 + 1  # one more gradient at the change of metric
    if kind == "dense":
        unit = hmc_walkers(potential, init, **common)
        assert unit["inverse_mass_matrix"] is None
        assert out["step_size"] > 3 * unit["step_size"], (out["step_size"], unit["step_size"])


def test_walker_mass_matrix_bad_input() -> None:
    init = torch.zeros(4, 3)

    def potential(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * q.square().sum(-1), q

    with pytest.raises(ValueError, match="'unit', 'diag' or 'dense'"):
        hmc_walkers(potential, init, 2, warmup_steps=30, mass_matrix="full")
    with pytest.raises(ValueError, match="warmup_steps >= 20"):
        hmc_walkers(potential, init, 2, warmup_steps=10, mass_matrix="dense")


def test_walker_dense_mass_matrix_falls_back_to_its_diagonal_with_few_positions(caplog) -> None:
    torch.manual_seed(0)

    def potential(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * q.square().sum(-1), q

    with caplog.at_level("WARNING", logger="pyro_nrg"):
        out = hmc_walkers(potential, torch.randn(2, 50), 2, warmup_steps=20, mass_matrix="dense")  # 20 < 4 * 50
    assert out["inverse_mass_matrix"].shape == (50,) and "using its diagonal" in caplog.text


def _narrow_proposal(n: int, scale: float) -> IndependenceProposal:
    """N(0, scale^2 I) in n dimensions (its log density up to a constant)."""
    return IndependenceProposal(sample=lambda w: scale * torch.randn(w, n, dtype=torch.float64),
                                log_prob=lambda q: -0.5 * (q / scale).square().sum(-1))


@pytest.mark.parametrize("mass_matrix", ["unit", "dense"])
def test_walker_independence_moves_are_exact_where_the_proposal_misses_the_tails(mass_matrix: str) -> None:
    """A proposal half as wide as the target (a 'flow' that misses the tails): interleaved with HMC the
    independence moves still leave N(0, I) invariant from proposal starts, and they cost one gradient each, while
    independence MH alone, started from the proposal, stays too narrow after the same number of moves."""
    torch.manual_seed(5)
    n, W, scale = 4, 4000, 0.5
    prop = _narrow_proposal(n, scale)

    def potential(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * q.square().sum(-1), q

    init = prop.sample(W)  # out of equilibrium: the proposal's draws
    out = hmc_walkers(potential, init, num_samples=2, warmup_steps=30, step_size=0.3, num_steps=5,
                      adapt_step_size=True, target_accept_prob=0.8, mass_matrix=mass_matrix,
                      independence=prop, independence_every=1)
    x = out["samples"][:, -1]
    assert ((x.var(0) - 1).abs() < 5 * math.sqrt(2 / W)).all(), x.var(0)
    assert (x.mean(0).abs() < 5 / math.sqrt(W)).all()
    jumps = out["jump_accepted"]
    assert jumps.shape == (W, 2) and 0.05 < jumps.double().mean() < 0.9
    assert (out["num_grad_evals"] == 5 + 1).all()
    assert out["warmup_grad_evals"] == 1 + 30 * 5 + 30 + (mass_matrix == "dense")

    # the same 32 independence moves without HMC: the walkers stay far too narrow (the bias flow-MH has)
    q = init.clone()
    for _ in range(32):
        qp = prop.sample(W)
        log_ratio = -potential(qp)[0] - prop.log_prob(qp) + potential(q)[0] + prop.log_prob(q)
        q = torch.where((torch.log(torch.rand(W, dtype=torch.float64)) < log_ratio)[:, None], qp, q)
    assert (q.var(0) < 0.6).all(), q.var(0)


def test_walker_independence_moves_every_k_and_bad_input() -> None:
    torch.manual_seed(6)
    prop = _narrow_proposal(3, 1.0)

    def potential(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * q.square().sum(-1), q

    out = hmc_walkers(potential, prop.sample(50), num_samples=6, warmup_steps=0, num_steps=4, independence=prop,
                      independence_every=3)
    made = torch.tensor([False, False, True] * 2)
    assert (out["num_grad_evals"] == 4 + made.long()).all()
    assert not out["jump_accepted"][:, ~made].any() and out["jump_accepted"][:, made].float().mean() > 0.9
    # thinned: a draw reports whether any jump since the previous draw was accepted (r = target: all are)
    # jumps after trajectories 2 and 5, draws after 1, 3 and 5: the jump at 2 belongs to the second draw
    thinned = hmc_walkers(potential, prop.sample(50), num_samples=3, warmup_steps=0, num_steps=4, thin=2,
                          independence=prop, independence_every=3)
    assert (thinned["num_grad_evals"] == torch.tensor([8, 9, 9])).all()
    assert not thinned["jump_accepted"][:, 0].any() and thinned["jump_accepted"][:, 1:].float().mean() > 0.9
    with pytest.raises(ValueError, match="independence_every must be >= 1"):
        hmc_walkers(potential, prop.sample(2), 2, independence=prop, independence_every=0)
    energy = IsingRelaxed(4, T_TEST)
    with pytest.raises(ValueError, match="flow_jump_every must be >= 0"):
        latent_hmc_walkers(energy, _small_flow(), num_walkers=2, num_samples=1, warmup_steps=0, flow_jump_every=-1)


# ---------------------------------------------------------------------------------------------------------------
# latent sampling recovers exact Ising results (L = 4, exact enumeration)


def test_latent_nuts_recovers_exact_m2() -> None:
    energy, guide = trained_l4()
    pyro.set_rng_seed(3)
    # four short chains (independent starts make the error estimate honest); trees capped at depth 3 (<= 7
    # gradients per draw): in a good latent space a U-turn takes about pi/2 / step ~ 4 steps anyway
    res = latent_nuts(energy, guide, num_samples=125, warmup_steps=75, num_chains=4, target_accept_prob=0.7,
                      max_tree_depth=3)
    assert res.samples.shape == (4, 125, 4, 4) and res.latent.shape == (4, 125, 16)
    assert res.space == "latent" and res.method == "nuts"
    assert (res.num_grad_evals >= 1).all() and (res.num_grad_evals <= 7).all() and (res.warmup_grad_evals > 0).all()
    assert (res.step_size > 0).all() and 0.3 < res.acceptance_rate <= 1.0
    # the draws are g(z) of the latent chain (the guide is Z2-symmetrized: with a random sign each, see test_sector)
    x = guide.flow(res.latent[0, :5].reshape(5, 4, 4)).detach()
    assert res.z2_sharpness is not None
    assert torch.allclose(x.abs(), res.samples[0, :5].abs(), atol=1e-5)
    eff = sampling_efficiency(res)["m2"]
    chain_means = res.observables["m2"].mean(1)
    err = max(eff["mcse"], float(chain_means.std() / math.sqrt(4)))  # ArviZ ESS error or between-chain error
    exact = energy.exact_m2()
    assert err < 0.05, eff  # the run is informative
    assert abs(eff["mean"] - exact) < 3 * err, (eff, err, exact)


def test_latent_walkers_recover_exact_m2_and_energy() -> None:
    energy, guide = trained_l4()
    torch.manual_seed(4)
    res = latent_hmc_walkers(energy, guide, num_walkers=64, num_samples=60, warmup_steps=15, keep_samples=False)
    assert res.samples is None and res.observables["m2"].shape == (64, 60)
    assert res.acceptance_rate > 0.7  # 10 steps of 0.2 in a good latent space
    eff = sampling_efficiency(res)
    for name, exact in (("m2", energy.exact_m2()), ("energy_per_site", energy.exact_energy_per_site())):
        assert abs(eff[name]["mean"] - exact) < 3 * eff[name]["mcse"], (name, eff[name], exact)
    assert eff["m2"]["ess_per_grad"] > 0


def test_flow_augmented_walkers_recover_exact_m2_and_energy() -> None:
    """Latent walkers with a flow jump after every trajectory: still exact, the jumps are accepted often (a good
    flow), every draw costs 10 + 1 gradients, and ArviZ sees the jump outcomes."""
    energy, guide = trained_l4()
    torch.manual_seed(7)
    res = latent_hmc_walkers(energy, guide, num_walkers=64, num_samples=60, warmup_steps=15, keep_samples=False,
                             flow_jump_every=1)
    assert res.jump_accepted.shape == (64, 60) and res.jump_accepted.float().mean() > 0.5
    assert (res.num_grad_evals == 11).all()
    eff = sampling_efficiency(res)
    for name, exact in (("m2", energy.exact_m2()), ("energy_per_site", energy.exact_energy_per_site())):
        assert abs(eff[name]["mean"] - exact) < 3 * eff[name]["mcse"], (name, eff[name], exact)
    idata = to_inference_data(res)
    assert idata.sample_stats["flow_jump_accepted"].shape == (64, 60)


def test_physical_nuts_same_api() -> None:
    energy = IsingRelaxed(4, 3.0)
    pyro.set_rng_seed(0)
    res = physical_nuts(energy, num_samples=10, warmup_steps=10, num_chains=2)
    assert res.samples.shape == (2, 10, 4, 4) and res.latent is None and res.space == "physical"
    assert set(res.observables) >= {"m", "abs_m", "m2", "energy_per_site", "physical_energy"}
    assert res.num_grad_evals.shape == (2, 10)


def test_direct_potential_gives_the_draws_of_the_traced_model() -> None:
    """potential="direct" hands Pyro the same function it derives by tracing the model: the same chains, draw by
    draw, for latent NUTS (with the Z2 sector factor) and physical NUTS; and the direct one needs no model trace."""
    energy, guide = trained_l4()
    runs = {}
    for potential in ("direct", "model"):
        pyro.set_rng_seed(11)
        lat = latent_nuts(energy, guide, num_samples=10, warmup_steps=10, potential=potential)
        pyro.set_rng_seed(12)
        phys = physical_nuts(energy, num_samples=10, warmup_steps=10, potential=potential)
        runs[potential] = (lat, phys)
    (lat_d, phys_d), (lat_m, phys_m) = runs["direct"], runs["model"]
    assert lat_d.z2_sharpness is not None  # the sector factor is in both potentials
    assert torch.allclose(lat_d.latent, lat_m.latent, atol=1e-4)
    assert torch.equal(lat_d.num_grad_evals, lat_m.num_grad_evals)
    assert torch.allclose(phys_d.samples, phys_m.samples, atol=1e-4)
    assert float((lat_d.latent[:, 1:] - lat_d.latent[:, :-1]).abs().max()) > 0.1  # the chains moved
    with pytest.raises(SamplerSettingsError, match="potential must be one of"):
        physical_nuts(energy, num_samples=2, warmup_steps=2, potential="jit")


# ---------------------------------------------------------------------------------------------------------------
# RG-flow priors inside user models


def test_flow_prior_in_user_model_with_observed_site(tmp_path) -> None:
    flow = _small_flow()
    for p in flow.parameters():
        p.requires_grad_(False)
    prior = FlowDistribution(flow)
    prior.save(tmp_path / "prior.pt")
    loaded = FlowDistribution.load(tmp_path / "prior.pt")
    y = torch.randn(4, 4)

    def model(y: torch.Tensor, prior=prior) -> torch.Tensor:
        field = pyro.sample("field", prior)
        pyro.sample("y", dist.Normal(field, 0.5).to_event(2), obs=y)
        return field

    tr = pyro.poutine.trace(model).get_trace(y)
    field = tr.nodes["field"]["value"]
    expected = prior.log_prob(field) + dist.Normal(field, 0.5).to_event(2).log_prob(y)
    assert torch.allclose(tr.log_prob_sum(), expected)
    assert torch.allclose(loaded.log_prob(field), prior.log_prob(field), atol=1e-5)
    with pyro.plate("batch", 3):  # broadcasting under a plate keeps a FlowDistribution
        assert pyro.sample("f", prior).shape == (3, 4, 4)

    pyro.set_rng_seed(0)
    for m, site in ((model, "field"), (latent_reparam(model), "field_base")):
        mcmc = MCMC(NUTS(m), num_samples=8, warmup_steps=8, disable_progbar=True)
        mcmc.run(y)
        s = mcmc.get_samples()[site]
        assert s.shape == (8, 4, 4) and torch.isfinite(s).all()
    # the latent draws map back to fields through the flow
    assert flow(s).shape == (8, 4, 4)
