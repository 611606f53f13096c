"""Bad input to energies, samplers and estimators: a named error that says the fix, raised before any work."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from pyro_nrg.distributions import FlowDistribution
from pyro_nrg.energies import IsingRelaxed, Phi4
from pyro_nrg.errors import EventShapeError, NonFiniteError, SamplerSettingsError
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import (
    annealed_importance_sampling,
    coverage_check,
    flow_mh,
    hmc_walkers,
    latent_hmc_walkers,
    latent_nuts,
    physical_hmc_walkers,
    physical_nuts,
)


@pytest.fixture(scope="module")
def flow4() -> torch.nn.Module:
    torch.manual_seed(0)
    return neural_rg(L=4, n_couplings=2, hidden=8)


@pytest.fixture(scope="module")
def flow8() -> torch.nn.Module:
    torch.manual_seed(0)
    return neural_rg(L=8, n_couplings=2, hidden=8)


def test_latent_samplers_refuse_a_flow_for_another_lattice(flow8) -> None:
    energy = IsingRelaxed(4, 3.0)
    for run in (
        lambda: latent_hmc_walkers(energy, flow8, num_walkers=4, num_samples=2, warmup_steps=0),
        lambda: latent_nuts(energy, flow8, num_samples=2, warmup_steps=2),
        lambda: annealed_importance_sampling(energy, flow8, num_particles=4, num_temperatures=2, step_size=0.1),
    ):
        with pytest.raises(EventShapeError, match=r"\(8, 8\).*\(4, 4\).*flow trained for this lattice.*L=4"):
            run()


def test_flow_mh_and_coverage_check_refuse_a_flow_for_another_lattice(flow8) -> None:
    energy = IsingRelaxed(4, 3.0)
    q = FlowDistribution(flow8)
    x_target = torch.randn(16, 4, 4)
    with pytest.raises(EventShapeError, match=r"event shape \(8, 8\).*\(4, 4\).*flow trained for this lattice"):
        coverage_check(energy, q, x_target, n_proposal=16)
    with pytest.raises(EventShapeError, match="flow trained for this lattice"):
        flow_mh(energy, q, num_walkers=2, num_samples=2)


@pytest.mark.parametrize("step_size", [-1.0, 0.0, math.nan, math.inf])
def test_a_step_size_that_is_not_positive_is_refused_up_front(flow4, step_size: float) -> None:
    """latent_nuts(step_size=-1) used to run ~2000 gradient evaluations without progress."""
    energy = IsingRelaxed(4, 3.0)
    t0 = time.perf_counter()
    for run in (
        lambda: latent_nuts(energy, flow4, num_samples=4, warmup_steps=2, step_size=step_size),
        lambda: physical_nuts(energy, num_samples=4, warmup_steps=2, step_size=step_size),
        lambda: latent_hmc_walkers(energy, flow4, num_walkers=2, num_samples=2, step_size=step_size),
        lambda: physical_hmc_walkers(energy, num_walkers=2, num_samples=2, step_size=step_size),
    ):
        with pytest.raises(SamplerSettingsError, match=r"step_size must be finite and > 0.*step_size=0\.1"):
            run()
    assert time.perf_counter() - t0 < 5.0  # refused before any sampling


@pytest.mark.parametrize("name", ["num_samples", "num_chains"])
def test_zero_draws_or_chains_are_refused_with_a_named_error(flow4, name: str) -> None:
    """num_samples=0 used to end in a ZeroDivisionError after the warm-up."""
    energy = IsingRelaxed(4, 3.0)
    sizes = {"num_samples": 4, "num_chains": 1, name: 0}
    for run in (lambda: latent_nuts(energy, flow4, warmup_steps=2, **sizes),
                lambda: physical_nuts(energy, warmup_steps=2, **sizes)):
        with pytest.raises(SamplerSettingsError, match=rf"{name} must be >= 1, got 0: pass e.g. {name}=100"):
            run()


def test_walker_and_flow_mh_sizes_are_checked() -> None:
    energy = IsingRelaxed(4, 3.0)
    with pytest.raises(SamplerSettingsError, match="num_walkers must be >= 1"):
        physical_hmc_walkers(energy, num_walkers=0, num_samples=2)
    with pytest.raises(SamplerSettingsError, match="num_samples must be >= 1"):
        hmc_walkers(lambda q: (q.square().sum(-1), q), torch.zeros(3, 2), num_samples=0)
    with pytest.raises(SamplerSettingsError, match="num_samples must be >= 1"):
        flow_mh(energy, FlowDistribution(neural_rg(L=4, n_couplings=2, hidden=8)), num_walkers=2, num_samples=0)


def test_energy_accepts_numpy_arrays_in_its_own_dtype() -> None:
    energy = IsingRelaxed(4, 3.0)
    x = np.random.default_rng(0).standard_normal((3, 4, 4))  # float64, like any NumPy array
    e = energy.energy(x)
    assert isinstance(e, torch.Tensor) and e.dtype == torch.float32 and e.shape == (3,)
    torch.testing.assert_close(e, energy.energy(torch.as_tensor(x, dtype=torch.float32)))
    torch.testing.assert_close(energy(x.tolist()), e)  # nested lists too
    obs = energy.observables(x)
    assert set(obs) == {"m", "abs_m", "m2", "energy_per_site", "physical_energy"} and obs["m2"].shape == (3,)
    assert energy.magnetization(x).shape == (3,)
    with pytest.raises(EventShapeError, match=r"reshape with x.reshape\(-1, 4, 4\)"):
        energy.energy(np.zeros((3, 5)))


@pytest.mark.parametrize("energy", [IsingRelaxed(4, 3.0), Phi4(4, 0.2, 0.02)], ids=["ising", "phi4"])
def test_an_energy_that_overflows_is_a_named_error_not_a_silent_inf(energy) -> None:
    x = torch.full((2, 4, 4), 1e30)
    x[0] = 0.0
    with pytest.raises(NonFiniteError, match=r"not finite for 1 finite configuration.*1e\+30.*float64"):
        energy.energy(x)
    assert torch.isfinite(energy.double().energy(x.double())).all()  # the fix the message names
    energy.float()
    with energy.unvalidated():  # what the samplers do inside a trajectory: inf is returned and rejected
        assert not math.isfinite(float(energy.energy(x)[1])) and energy.validate is False
    assert energy.validate is True
