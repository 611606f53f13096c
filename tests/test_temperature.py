"""The temperature-conditioned flow: transform contract, distribution, training over T, thermodynamics, exact
sampling, and the Pyro model that infers T."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pyro
import pytest
import torch

from pyro_nrg.distributions import ConditionalFlowDistribution, FlowDistribution, load_distribution
from pyro_nrg.energies import IsingRelaxed, enumerate_ising, exact_ising_moments, exact_ising_spins
from pyro_nrg.energies.ising import exact_ising_energy_per_site, exact_ising_log_z
from pyro_nrg.errors import CheckpointError, ConfigMismatchError, NoExactSolutionError, TemperatureError
from pyro_nrg.flows import build_flow, conditional_neural_rg, neural_rg
from pyro_nrg.infer import DistillConfig, estimate_free_energy, load_checkpoint, sample_log_weights
from pyro_nrg.infer.temperature import ConditionalDistiller, TemperatureRange, distill_temperatures, estimate_at
from pyro_nrg.infer.temperature_posterior import (
    grid_posterior,
    grid_temperature_posterior,
    infer_temperature,
    temperature_model,
)
from pyro_nrg.infer.thermo import curve_peak, exact_curves, exact_specific_heat, ising_energy_moments
from pyro_nrg.testing import check_transform, perturb_parameters
from pyro_nrg.transforms import ConditionalMLP


def _flow(**kw):
    return conditional_neural_rg(L=4, hidden=8, n_couplings=2, t_min=2.0, t_max=3.0, **kw)


@pytest.mark.parametrize("conditioning,odd", list(itertools.product(["film", "concat"], [False, True])))
def test_conditioned_flow_passes_the_transform_contract(conditioning: str, odd: bool) -> None:
    check_transform(lambda: _flow(conditioning=conditioning, odd=odd).condition(2.3), (4, 4))


@pytest.mark.parametrize("conditioning", ["film", "concat"])
def test_one_temperature_per_configuration_equals_conditioning_one_at_a_time(conditioning: str) -> None:
    flow = perturb_parameters(_flow(conditioning=conditioning).double(), 0.2)
    z = torch.randn(5, 4, 4, dtype=torch.float64)
    T = torch.linspace(2.0, 3.0, 5, dtype=torch.float64)
    x, ld = flow.forward_and_log_det(z, T)
    for i in range(5):
        xi, ldi = flow.condition(float(T[i])).forward_and_log_det(z[i:i + 1])
        torch.testing.assert_close(xi[0], x[i])
        torch.testing.assert_close(ldi[0], ld[i])
    x_lo, _ = flow.forward_and_log_det(z, 2.0)
    assert (x_lo - flow.forward_and_log_det(z, 3.0)[0]).abs().max() > 1e-3  # the temperature matters


def test_conditional_mlp_film_starts_context_free_and_learns_context() -> None:
    net = ConditionalMLP(2, 1, 3, hidden=(8,), conditioning="film")
    with torch.no_grad():
        net.net[-1].weight.normal_()
    v = torch.randn(4, 2)
    torch.testing.assert_close(net(v, torch.zeros(4, 1)), net(v, torch.ones(4, 1)))  # FiLM maps start at zero
    perturb_parameters(net, 0.5)
    assert (net(v, torch.zeros(4, 1)) - net(v, torch.ones(4, 1))).abs().max() > 1e-3
    with pytest.raises(ValueError, match="conditioning"):
        ConditionalMLP(2, 1, 3, conditioning="gate")
    with pytest.raises(ValueError, match="hidden"):
        ConditionalMLP(2, 1, 3, hidden=(), conditioning="film")


def test_bad_temperatures_and_couplings_are_refused() -> None:
    flow = _flow()
    with pytest.raises(TemperatureError):
        flow.condition(-1.0)(torch.zeros(1, 4, 4))
    with pytest.raises(TemperatureError):
        conditional_neural_rg(L=4, t_min=3.0, t_max=2.0)
    with pytest.raises(ConfigMismatchError, match="affine"):
        conditional_neural_rg(L=4, coupling="tanh")
    with pytest.raises(ValueError, match="sampling"):
        TemperatureRange(2.0, 3.0, 4, "random")


def test_conditional_distribution_gives_flow_distributions_and_saves(tmp_path) -> None:
    flow = perturb_parameters(_flow(), 0.1)
    q = ConditionalFlowDistribution(flow)
    q_t = q.condition(2.5)
    assert isinstance(q_t, FlowDistribution)
    energy = IsingRelaxed(4, 2.5)
    x, lw = sample_log_weights(energy, q.distribution(2.5), 64)
    assert estimate_free_energy(lw, 2.5, energy.log_z()).f_q_rel_err > 0  # an ordinary proposal for the estimators
    T = torch.tensor(2.5, requires_grad=True)
    q.distribution(T).log_prob(x).sum().backward()  # differentiable in T (NUTS on T needs it)
    assert T.grad is not None and torch.isfinite(T.grad)
    q.save(tmp_path / "q.pt")
    back = ConditionalFlowDistribution.load(tmp_path / "q.pt")
    assert back.z2_symmetric and isinstance(build_flow(flow.config), type(flow))
    with torch.no_grad():
        torch.testing.assert_close(back.distribution(2.7).log_prob(x), q.distribution(2.7).log_prob(x))
    with pytest.raises(CheckpointError, match="ConditionalFlowDistribution.load"):
        FlowDistribution.load(tmp_path / "q.pt")
    with pytest.raises(CheckpointError, match="ConditionalFlowDistribution.load"):
        load_distribution(tmp_path / "q.pt")
    FlowDistribution(neural_rg(L=4, hidden=8)).save(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="unconditional"):
        ConditionalFlowDistribution.load(tmp_path / "plain.pt")


def test_temperature_range_grid_and_strata() -> None:
    r = TemperatureRange(2.0, 3.0, 4)
    grid = r.grid()
    assert grid[0] == pytest.approx(2.0) and grid[-1] == pytest.approx(3.0)
    assert np.allclose(np.diff(1.0 / np.array(grid)), np.diff(1.0 / np.array(grid))[0])  # equal steps in beta
    torch.manual_seed(0)
    for _ in range(20):
        betas = 1.0 / np.array(r.draw())
        edges = np.linspace(1 / 2.0, 1 / 3.0, 5)  # coldest slice first
        assert all(edges[g + 1] <= betas[g] <= edges[g] for g in range(4))
    assert TemperatureRange(2.0, 3.0, 4, "grid").draw() == grid


def test_training_over_temperatures_lowers_the_loss_and_resumes_bit_exactly(tmp_path) -> None:
    energy_at = functools.partial(IsingRelaxed, 4)
    cfg = dict(steps=6, batch_size=32, lr=1e-2, checkpoint_every=3, seed=3, progress=False)
    temps = TemperatureRange(2.0, 3.0, 4)
    pyro.set_rng_seed(0)
    full = distill_temperatures(energy_at, _flow(), temperatures=temps, checkpoint_dir=tmp_path / "a", **cfg)
    pyro.set_rng_seed(0)
    distill_temperatures(energy_at, _flow(), temperatures=temps, checkpoint_dir=tmp_path / "b",
                         callbacks=[lambda d, r: d.step >= 3], **cfg)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 3
    pyro.set_rng_seed(0)
    resumed = distill_temperatures(energy_at, _flow(), temperatures=temps, checkpoint_dir=tmp_path / "b",
                                   resume=True, **cfg)
    assert resumed.history["f_q"] == full.history["f_q"]
    for (name, p1), (_, p2) in zip(full.distiller.flow.state_dict().items(),
                                   resumed.distiller.flow.state_dict().items(), strict=True):
        assert torch.equal(p1, p2), name
    with pytest.raises(ConfigMismatchError, match="temperatures"):
        distill_temperatures(energy_at, _flow(), temperatures=TemperatureRange(2.0, 3.5, 4),
                             checkpoint_dir=tmp_path / "b", resume=True, **cfg)
    pyro.set_rng_seed(0)
    d = ConditionalDistiller(energy_at, _flow(), DistillConfig(steps=60, batch_size=64, lr=1e-2), temps)
    d.run(progress=False)
    assert len(d.last_group_fq) == 4 and len(d.last_temperatures) == 4
    assert np.mean(d.history["f_q"][-10:]) < np.mean(d.history["f_q"][:10])
    est = d.estimate(1024, temperature=2.2)
    assert est.temperature == pytest.approx(2.2) and est.f_q_rel_err > -1e-3
    assert estimate_at(d.distribution(), IsingRelaxed(4, 2.9), 512, seed=1).f_q_rel_err > -1e-3


def test_exact_spins_have_the_exact_moments() -> None:
    s = exact_ising_spins(4, 2.5, 40000, seed=3)
    assert s.shape == (40000, 4, 4) and set(np.unique(s)) == {-1.0, 1.0}
    m2 = s.mean((1, 2)) ** 2
    assert abs(m2.mean() - exact_ising_moments(4, 2.5).m2) < 5 * m2.std() / math.sqrt(len(m2))
    e = -(s * np.roll(s, 1, 1) + s * np.roll(s, 1, 2)).sum((1, 2)) / 16
    assert abs(e.mean() - enumerate_ising(4, 2, 2.5).energy_per_site) < 5 * e.std() / math.sqrt(len(e))
    assert np.array_equal(exact_ising_spins(4, 2.5, 5, seed=1), exact_ising_spins(4, 2.5, 5, seed=1))
    with pytest.raises(NoExactSolutionError, match="wolff"):
        exact_ising_spins(16, 2.5, 1)


def test_conditional_energy_moments_match_enumeration_of_the_spins() -> None:
    energy = IsingRelaxed(4, 2.5).double()
    x = torch.randn(2, 4, 4, dtype=torch.float64)
    mean, var = ising_energy_moments(energy, x)
    spins = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=16)), dtype=torch.float64).reshape(-1, 4, 4)
    H = -(spins * spins.roll(1, 1) + spins * spins.roll(1, 2)).sum((1, 2))
    for k in range(2):
        t = torch.tanh(x[k])
        p = ((1 + spins * t) / 2).reshape(len(spins), -1).prod(-1)
        mu = (p * H).sum()
        torch.testing.assert_close(mean[k], mu)
        torch.testing.assert_close(var[k], (p * (H - mu) ** 2).sum())


def test_specific_heat_estimator_is_exact_on_exact_draws() -> None:
    """c from the conditional moments of exact relaxed draws (x | s from exact spins) matches Kaufman's c."""
    T, L = 2.4, 4
    energy = IsingRelaxed(L, T).double()
    spins = exact_ising_spins(L, T, 20000, seed=2)
    x = energy.sample_given_spins(spins, generator=torch.Generator().manual_seed(2))
    mean, var = ising_energy_moments(energy, x)
    second = var + mean**2
    c = (second.mean() - mean.mean() ** 2) / T**2 / L**2
    psi = (second - second.mean()) - 2 * mean.mean() * (mean - mean.mean())
    err = psi.std() / math.sqrt(len(psi)) / T**2 / L**2
    assert abs(float(c) - exact_specific_heat(L, T)) < 5 * float(err)


def test_exact_specific_heat_is_the_second_derivative_of_ln_z() -> None:
    L, T, h = 8, 2.3, 1e-3
    b = 1.0 / T
    d2 = (exact_ising_log_z(L, 1 / (b + h)) - 2 * exact_ising_log_z(L, T) + exact_ising_log_z(L, 1 / (b - h))) / h**2
    assert exact_specific_heat(L, T) == pytest.approx(b**2 * d2 / L**2, rel=1e-4)  # h**2 truncation, round-off
    curves = exact_curves(4, [2.0, 2.5])
    assert curves["rows"][1]["u"] == pytest.approx(exact_ising_energy_per_site(4, 2.5))
    assert curves["rows"][0]["m2"] == pytest.approx(exact_ising_moments(4, 2.0).m2)
    t_peak, c_peak = curves["c_peak"]
    assert 2.0 < t_peak < 2.5 and c_peak >= max(r["c"] for r in curves["rows"])


def test_curve_peak_finds_a_parabolas_vertex() -> None:
    t = np.linspace(2.0, 3.0, 21)
    assert curve_peak(t, 1.5 - 3 * (t - 2.37) ** 2) == pytest.approx((2.37, 1.5))
    assert curve_peak(t, t) == (3.0, 3.0)  # monotone: the largest sample


def test_grid_posterior_of_a_gaussian_likelihood() -> None:
    g = grid_posterior(lambda T: -0.5 * ((T - 2.5) / 0.1) ** 2, 1.5, 3.5, 2001)
    assert g.mean == pytest.approx(2.5, abs=1e-6) and g.sd == pytest.approx(0.1, rel=1e-4)


def test_temperature_model_and_nuts_on_t() -> None:
    torch.manual_seed(0)
    q = ConditionalFlowDistribution(perturb_parameters(_flow(), 0.05))
    x_obs = IsingRelaxed(4, 2.5).sample_given_spins(exact_ising_spins(4, 2.5, 3, seed=1))
    trace = pyro.poutine.trace(temperature_model(q, 2.0, 3.0)).get_trace(x_obs)
    assert trace.nodes["x"]["fn"].batch_shape == (3,) and trace.nodes["T"]["value"].shape == ()
    res = infer_temperature(q, x_obs, 2.0, 3.0, num_samples=15, warmup_steps=15, num_chains=2, flow_grid=41)
    assert res.samples.shape == (2, 15) and ((res.samples > 2.0) & (res.samples < 3.0)).all()
    assert math.isfinite(res.r_hat) and math.isfinite(res.flow_grid_mean) and "ess_bulk" in res.summary
    exact = grid_temperature_posterior(functools.partial(IsingRelaxed, 4), x_obs, 2.0, 3.0, 201)
    assert 2.0 < exact.mean < 3.0 and exact.sd > 0


def test_cli_sweep_study_writes_its_report(tmp_path) -> None:
    import json

    from pyro_nrg.cli import main

    argv = ["sweep", "--L", "4", "--t-min", "2.0", "--t-max", "3.0", "--steps", "20", "--batch", "32", "--hidden",
            "8", "--temperatures", "5", "--eval-samples", "128", "--observations", "2", "--nuts-chains", "2",
            "--nuts-samples", "8", "--nuts-warmup", "8", "--quiet", "--out", str(tmp_path / "s")]
    assert main(argv) == 0
    s = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert 2.0 <= s["cv_peak_T"] <= 3.0 and 2.0 < s["exact_posterior_mean"] < 3.0 and s["max_fq_rel_err"] > 0
    for name in ("report.md", "thermodynamics.png", "posterior.png", "flow.pt"):
        assert (tmp_path / "s" / name).exists(), name
    assert ConditionalFlowDistribution.load(tmp_path / "s" / "flow.pt").event_shape == (4, 4)
    assert main(["sweep", "--t-min", "3", "--t-max", "2", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_thermodynamics_from_flow_draws_and_from_ais() -> None:
    from pyro_nrg.infer import thermodynamics

    torch.manual_seed(0)
    q = ConditionalFlowDistribution(perturb_parameters(_flow(), 0.05))
    energy_at = functools.partial(IsingRelaxed, 4)
    for kw in ({"n": 256}, {"ais": (32, 2)}):
        (row,) = thermodynamics(q, energy_at, [2.5], **kw)
        assert row["f_q_rel_err"] > -1e-3 and row["c"] > 0 and row["c_err"] > 0 and 0 < row["m2"] <= 1
        assert all(math.isfinite(row[k]) for k in ("f", "u", "binder", "binder_err"))
