"""The Z2 sector function: an exact partition of unity, and latent samplers that stay in the flow's sector."""

from __future__ import annotations

import functools
import math

import pyro
import pytest
import torch

from pyro_nrg.analysis import sampling_efficiency
from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.errors import NotSymmetricError
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import Z2Sector, distill, latent_hmc_walkers, latent_nuts, to_physical


@functools.lru_cache(maxsize=1)
def trained_tc() -> tuple[IsingRelaxed, object]:
    """IsingRelaxed(4, T_c) and a Z2-symmetrized FlowGuide after 300 steps (F_q ~0.5 % above exact). Its bare
    flow covers one magnetisation sector: 20-30 % of plain latent walkers sit in the other one for a whole run."""
    energy = IsingRelaxed(4, ISING_TC)
    result = distill(energy, neural_rg(L=4), steps=300, batch_size=256, lr=5e-3, progress=False, seed=1)
    return energy, result.guide


class _Field(IsingRelaxed):
    """The relaxed Ising model in an external field: E(-x) != E(x)."""

    def _energy(self, x: torch.Tensor) -> torch.Tensor:
        return super()._energy(x) - 0.3 * x.flatten(x.dim() - 2).sum(-1)


def test_sector_weights_are_a_partition_of_unity_and_signs_are_random() -> None:
    torch.manual_seed(0)
    x = torch.randn(500, 4, 4, dtype=torch.float64)
    for kappa in (0.0, 1.7, -25.0):
        s = Z2Sector(kappa, 2)
        total = s.log_weight(x).exp() + s.log_weight(-x).exp()  # 2h(x) + 2h(-x) = 2
        torch.testing.assert_close(total, torch.full_like(total, 2.0), rtol=1e-12, atol=1e-12)
    y = Z2Sector(1.0, 2).random_sign(x)
    sign = (y / x).flatten(1)
    assert torch.all(sign == sign[:, :1]) and set(sign[:, 0].tolist()) == {-1.0, 1.0}
    assert 150 < int((sign[:, 0] < 0).sum()) < 350


def test_sector_function_refuses_an_asymmetric_energy() -> None:
    energy = _Field(4, 3.0)
    flow = neural_rg(L=4, hidden=8)
    with pytest.raises(NotSymmetricError, match="z2_symmetric=False"):
        latent_hmc_walkers(energy, flow, num_walkers=4, num_samples=2, warmup_steps=0, z2_symmetric=True)
    res = latent_hmc_walkers(energy, flow, num_walkers=4, num_samples=2, warmup_steps=0)  # a bare flow: off
    assert res.z2_sharpness is None


def test_walkers_in_one_sector_recover_even_and_odd_observables() -> None:
    """The guide was trained Z2-symmetrized, so the walkers target 2h p by default: <m^2> and the energy within
    3 sigma of enumeration, and <m> within 3 sigma of 0 (the random signs restore the symmetric target)."""
    energy, guide = trained_tc()
    torch.manual_seed(4)
    res = latent_hmc_walkers(energy, guide, num_walkers=64, num_samples=60, warmup_steps=15, keep_samples=False)
    assert res.z2_sharpness is not None and abs(res.z2_sharpness) > 0.5  # one sector: a real tilt
    eff = sampling_efficiency(res, ("m", "m2", "energy_per_site"))
    for name, exact in (("m", 0.0), ("m2", energy.exact_m2()), ("energy_per_site", energy.exact_energy_per_site())):
        assert abs(eff[name]["mean"] - exact) < 3 * eff[name]["mcse"], (name, eff[name], exact)
    assert eff["m2"]["mcse"] < 0.02  # informative
    off = latent_hmc_walkers(energy, guide, num_walkers=4, num_samples=2, warmup_steps=0, z2_symmetric=False)
    assert off.z2_sharpness is None


def test_latent_nuts_with_the_sector_factor() -> None:
    """NeuTra NUTS on the model with the "z2_sector" factor: draws are +-g(z), the recorded potential is
    beta E_eff - ln 2h, and <m^2> is exact within 3 sigma."""
    energy, guide = trained_tc()
    pyro.set_rng_seed(6)
    res = latent_nuts(energy, guide, num_samples=100, warmup_steps=60, num_chains=3, target_accept_prob=0.7,
                      max_tree_depth=3)
    assert res.z2_sharpness is not None
    sector = Z2Sector(res.z2_sharpness, 2)
    with torch.no_grad():
        x, ldj = to_physical(guide.flow, energy, res.latent[0, :20])
        expected = energy.action(x) - ldj - sector.log_weight(x)
    torch.testing.assert_close(res.renormalized_energy[0, :20], expected.double(), rtol=1e-5, atol=1e-4)
    same = torch.isclose(res.samples[0, :20], x, atol=1e-5).flatten(1).all(1)
    flipped = torch.isclose(res.samples[0, :20], -x, atol=1e-5).flatten(1).all(1)
    assert bool((same | flipped).all()) and bool(flipped.any())
    eff = sampling_efficiency(res)["m2"]
    err = max(eff["mcse"], float(res.observables["m2"].mean(1).std() / math.sqrt(3)))
    assert err < 0.05 and abs(eff["mean"] - energy.exact_m2()) < 3 * err, (eff, err, energy.exact_m2())
