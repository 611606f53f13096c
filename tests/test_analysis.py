"""ArviZ conversion, sampling efficiency, mutual information, receptive fields and plots."""

from __future__ import annotations

import math

import arviz as az
import matplotlib
import numpy as np
import pyro
import pytest
import torch

matplotlib.use("Agg")

from test_latent import trained_l4  # noqa: E402  (session-cached trained flow shared with test_latent)

from pyro_nrg.analysis import (  # noqa: E402
    latent_mutual_information,
    mutual_information,
    pairwise_mutual_information,
    receptive_fields,
    sampling_efficiency,
    to_inference_data,
)
from pyro_nrg.distributions import FlowDistribution  # noqa: E402
from pyro_nrg.energies.ising import IsingRelaxed  # noqa: E402
from pyro_nrg.flows import neural_rg  # noqa: E402
from pyro_nrg.infer import flow_mh, latent_hmc_walkers, physical_nuts  # noqa: E402
from pyro_nrg.plotting import (  # noqa: E402
    plot_efficiency,
    plot_field_posteriors,
    plot_mutual_information,
    plot_receptive_fields,
)

OBS = ["m", "abs_m", "m2", "energy_per_site"]



def _small_flow(perturb: bool = False):
    torch.manual_seed(0)
    flow = neural_rg(L=4, n_couplings=2, hidden=8)
    if perturb:  # couplings start as the identity: give them random weights so that latents mix sites
        with torch.no_grad():
            for p in flow.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return flow


def test_observables_use_the_energy_estimators() -> None:
    energy = IsingRelaxed(4, 3.0)
    x = torch.randn(5, 4, 4)
    obs = energy.observables(x)
    assert torch.allclose(obs["m2"], energy.m2_improved(x).double())
    assert torch.allclose(obs["energy_per_site"], energy.ising_energy_per_site(x).double())
    assert torch.allclose(obs["abs_m"], energy.magnetization(x).abs().double())
    assert obs["physical_energy"].shape == (5,)


@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping")  # arviz 0.23 vs matplotlib 3.11
def test_inference_data_groups_variables_and_netcdf_roundtrip(tmp_path) -> None:
    energy = IsingRelaxed(4, 3.0)
    torch.manual_seed(0)
    res = latent_hmc_walkers(energy, _small_flow(), num_walkers=4, num_samples=30, warmup_steps=5, num_steps=3,
                             step_size=0.1, keep_latent=True)
    idata = to_inference_data(res, include_samples=True, include_latent=True)
    assert set(idata.groups()) == {"posterior", "sample_stats"}
    post, stats = idata.posterior, idata.sample_stats
    assert set(OBS) <= set(post.data_vars) and {"x", "z"} <= set(post.data_vars)
    assert post["m2"].dims == ("chain", "draw") and post["m2"].shape == (4, 30)
    assert post["x"].dims == ("chain", "draw", "x_row", "x_col")
    assert {"acceptance_rate", "diverging", "step_size", "n_steps", "physical_energy"} <= set(stats.data_vars)
    assert "energy" not in stats.data_vars  # reserved by ArviZ for the HMC Hamiltonian
    assert stats["diverging"].dtype == bool
    assert idata.posterior.attrs["space"] == "latent" and idata.posterior.attrs["L"] == 4
    # the ArviZ tool chain works on it
    summary = az.summary(idata, var_names=OBS)
    assert list(summary.index) == OBS and np.isfinite(summary["r_hat"]).all()
    assert float(az.ess(idata, var_names=["m2"])["m2"]) > 0
    assert np.isfinite(float(az.rhat(idata, var_names=["m2"])["m2"]))
    az.plot_trace(idata, var_names=["m2", "energy_per_site"])
    az.plot_autocorr(idata, var_names=["m2"], combined=True)
    matplotlib.pyplot.close("all")
    # netCDF round trip
    path = tmp_path / "run.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    for group in ("posterior", "sample_stats"):
        for name, var in getattr(idata, group).data_vars.items():
            np.testing.assert_array_equal(getattr(back, group)[name].values, var.values)
    assert back.sample_stats["diverging"].dtype == bool
    assert back.posterior.attrs["method"] == "hmc_walkers"


def test_inference_data_from_flow_mh_tensor_and_nuts() -> None:
    energy = IsingRelaxed(4, 3.0)
    pyro.set_rng_seed(0)
    mh = flow_mh(energy, FlowDistribution(_small_flow()), num_walkers=3, num_samples=12)
    idata = to_inference_data(mh, energy=energy)
    assert idata.posterior["m2"].shape == (3, 12)
    assert {"acceptance_rate", "accepted", "log_weight", "physical_energy"} <= set(idata.sample_stats.data_vars)
    assert mh.method == "flow_mh" and mh.accept_prob.shape == (3, 12) and mh.step_size is None
    np.testing.assert_array_equal(to_inference_data(mh).posterior["m2"].values, idata.posterior["m2"].values)
    with pytest.raises(TypeError, match="energy"):
        to_inference_data(mh.samples)
    idata_t = to_inference_data(mh.samples, energy=energy, include_samples=True)
    np.testing.assert_allclose(idata_t.posterior["m2"].values, idata.posterior["m2"].values)

    res = physical_nuts(energy, num_samples=15, warmup_steps=15, num_chains=2)
    idata_n = to_inference_data(res)
    assert idata_n.posterior["m"].shape == (2, 15)
    assert (idata_n.sample_stats["n_steps"].values >= 1).all()
    eff = sampling_efficiency(idata_n)
    assert set(eff) == {"m2", "energy_per_site"}
    e = eff["m2"]
    assert e["ess"] > 0 and e["ess_per_grad"] == pytest.approx(e["ess"] / res.total_grad_evals)
    assert e["tau"] == pytest.approx(30 / e["ess"])


def test_mutual_information_estimators_on_gaussians() -> None:
    rng = np.random.default_rng(0)
    n, rho = 3000, 0.6
    a = rng.standard_normal(n)
    b = rho * a + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    exact = -0.5 * math.log(1 - rho**2)
    assert mutual_information(a, b, method="ksg") == pytest.approx(exact, abs=0.05)
    assert mutual_information(a, b, method="gaussian") == pytest.approx(exact, abs=0.03)
    assert abs(mutual_information(a, rng.standard_normal(n))) < 0.06
    # vector arguments and the pairwise matrix (symmetric, NaN diagonal)
    c = rng.standard_normal(n)
    mi = pairwise_mutual_information(np.stack([a, b, c], 1))
    assert np.isnan(np.diag(mi)).all() and np.allclose(mi, mi.T, equal_nan=True)
    assert mi[0, 1] == pytest.approx(exact, abs=0.05) and abs(mi[0, 2]) < 0.06
    assert mutual_information(np.stack([a, c], 1), b) == pytest.approx(exact, abs=0.06)


def test_latents_nearly_independent_physical_spins_not(tmp_path) -> None:
    energy, guide = trained_l4()
    pyro.set_rng_seed(5)
    # the last state of 2000 flow-MH walkers: independent equilibrium draws x ~ p
    x = flow_mh(energy, guide.distribution(), num_walkers=2000, num_samples=10).samples[:, -1]
    rep = latent_mutual_information(guide, x=x, method="ksg", max_samples=2000)
    s = rep.summary
    assert s["physical_nearest_neighbour"] > 0.05
    assert abs(s["latent_mean"]) < 0.2 * s["physical_nearest_neighbour"], s
    assert s["latent_max"] < s["physical_nearest_neighbour"], s
    assert rep.by_level.shape == (3, 3) and rep.latent.shape == (16, 16)
    fig = plot_mutual_information(rep)
    fig.savefig(tmp_path / "mi.png")


def test_receptive_fields_and_plots(tmp_path) -> None:
    flow = _small_flow(perturb=True)
    fields, index, levels = receptive_fields(flow, num_samples=4)
    assert fields.shape == (index.numel(), 4, 4) and (levels >= 1).all()
    assert (fields >= 0).all()
    top = fields[levels == levels.max()][0]
    assert (top > 0).all()  # the coarsest latent reaches every site
    # finite differences agree with the forward-mode derivative at one point
    z = torch.randn(1, 4, 4)
    f1, idx, _ = receptive_fields(flow, z=z)
    dz = torch.zeros(1, 16)
    dz[0, idx[0]] = 1e-3
    with torch.no_grad():
        fd = (flow(z + dz.reshape(1, 4, 4)) - flow(z - dz.reshape(1, 4, 4))).abs()[0] / 2e-3
    assert torch.allclose(f1[0], fd, atol=2e-2)
    plot_receptive_fields(fields, index, levels).savefig(tmp_path / "rf.png")
    img = torch.randn(4, 4)
    plot_field_posteriors(img, img, {"flow": (img, img.abs()), "gauss": (img, img.abs())}).savefig(tmp_path / "d.png")
    plot_efficiency([{"name": "a", "ess_per_grad": 0.1}, {"name": "b", "ess_per_grad": None}]).savefig(
        tmp_path / "e.png"
    )
    assert len(list(tmp_path.iterdir())) == 3
