"""Flow priors in user models: ``latent_reparam`` for bare flows and their symmetrised mixtures."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS, Predictive
from pyro.ops.stats import effective_sample_size

from pyro_nrg.distributions import FlowDistribution, LatticeSymmetrized, Z2Symmetrized
from pyro_nrg.errors import PriorReparamError
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import LatentModel, latent_reparam

# an affine "flow" x = mu + s * z on a ring of 4 sites: its mixtures are mixtures of Gaussians, so the posterior
# under a Gaussian likelihood is known exactly
MU = torch.tensor([0.9, 0.3, -0.2, 0.6], dtype=torch.float64)
SCALE = torch.tensor([0.5, 0.7, 0.6, 0.4], dtype=torch.float64)
NOISE = 0.6
Y = torch.tensor([0.2, 0.1, -0.1, 0.05], dtype=torch.float64)


def _affine_prior() -> FlowDistribution:
    return FlowDistribution(dist.transforms.AffineTransform(MU, SCALE, event_dim=1), event_shape=(4,))


def _components(prior: torch.distributions.Distribution) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mean, sd) of each equally weighted Gaussian component of the symmetrised affine prior."""
    if isinstance(prior, FlowDistribution):
        return [(MU, SCALE)]
    inner = _components(prior.base)
    if isinstance(prior, Z2Symmetrized):
        return [(sign * m, s) for m, s in inner for sign in (1.0, -1.0)]
    return [(g(m), g(s)) for m, s in inner for g, _ in prior.maps]


def _exact_posterior_mean(prior: torch.distributions.Distribution) -> tuple[torch.Tensor, torch.Tensor]:
    """E[x | y] under the mixture prior, and E[x | y] under its first component alone (the answer without the
    mixture)."""
    means, logw = [], []
    for m, s in _components(prior):
        var = 1 / (1 / s**2 + 1 / NOISE**2)
        means.append(var * (m / s**2 + Y / NOISE**2))
        logw.append(dist.Normal(m, (s**2 + NOISE**2).sqrt()).log_prob(Y).sum())
    w = torch.stack(logw).softmax(0)
    return (w[:, None] * torch.stack(means)).sum(0), means[0]


def _ring_model(prior):
    def model(y):
        field = pyro.sample("field", prior)
        pyro.sample("y", dist.Normal(field, NOISE).to_event(1), obs=y)

    return model


@pytest.mark.parametrize("kind", ["z2", "lattice_z2"])
def test_nuts_on_reparametrised_mixture_prior_matches_exact_posterior(kind: str) -> None:
    prior = Z2Symmetrized(_affine_prior())
    if kind == "lattice_z2":
        prior = LatticeSymmetrized(prior, (4,), translations=2)
    exact, one_component = _exact_posterior_mean(prior)
    model = _ring_model(prior)
    latent = latent_reparam(model)
    assert latent.component_sites(Y) == (["field_sign"] if kind == "z2" else ["field_sign", "field_symmetry"])

    pyro.set_rng_seed(0)
    mcmc = MCMC(NUTS(latent), num_samples=800, warmup_steps=300, disable_progbar=True)
    mcmc.run(Y)
    samples = mcmc.get_samples()
    assert set(samples) == {"field_base"}  # the components are summed out, not sampled
    post = latent.physical_samples(samples, Y)
    assert post["field"].shape == (800, 4) and post["field_sign"].shape == (800,)
    # the physical field is the selected image of the latent draw
    signs = 1 - 2 * post["field_sign"].to(torch.float64)
    x0 = MU + SCALE * samples["field_base"]
    if kind == "z2":
        assert torch.allclose(post["field"], signs[:, None] * x0)
    x = post["field"]
    ess = effective_sample_size(x[None])  # (4,)
    se = x.std(0) / ess.sqrt()
    assert bool((ess > 100).all()), ess
    z = (x.mean(0) - exact) / se
    assert bool((z.abs() < 4.5).all()), (x.mean(0), exact, z)
    # the check can fail: ignoring the mixture (one component) is far off at this sampling precision
    assert float(((one_component - exact) / se).abs().max()) > 10


def test_plain_nuts_on_the_mixture_prior_matches_the_same_exact_posterior() -> None:
    """NUTS on the plain model (the mixture's own density, physical space) samples the posterior that latent NUTS
    samples: both match the exact mean."""
    prior = Z2Symmetrized(_affine_prior())
    model = _ring_model(prior)
    exact, _ = _exact_posterior_mean(prior)
    pyro.set_rng_seed(1)
    mcmc = MCMC(NUTS(model), num_samples=600, warmup_steps=300, disable_progbar=True)
    mcmc.run(Y)
    x = mcmc.get_samples()["field"]
    se = x.std(0) / effective_sample_size(x[None]).sqrt()
    assert bool((((x.mean(0) - exact) / se).abs() < 4.5).all())


def _lattice_flow():
    torch.manual_seed(0)
    return neural_rg(L=4, n_couplings=2, hidden=8).requires_grad_(False)


def test_plated_lattice_model_with_z2_prior_runs_through_nuts_physical_samples_and_predictive() -> None:
    flow = _lattice_flow()
    prior = Z2Symmetrized(FlowDistribution(flow))

    def model(y, n=3):
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        with pyro.plate("fields", n):
            field = pyro.sample("field", prior)
            return pyro.sample("y", dist.Normal(field, sigma[..., None, None]).to_event(2), obs=y)

    truth = -prior.base.sample((3,)).abs()  # negative fields: the sector the sign must supply for some of them
    y = truth + 0.3 * torch.randn_like(truth)
    latent = latent_reparam(model)
    tr = pyro.poutine.trace(latent).get_trace(y)
    assert tr.nodes["field_base"]["value"].shape == (3, 4, 4) and tr.nodes["field_sign"]["value"].shape == (3,)
    pyro.set_rng_seed(0)
    mcmc = MCMC(NUTS(latent), num_samples=10, warmup_steps=10, disable_progbar=True)
    mcmc.run(y)
    post = latent.physical_samples(mcmc.get_samples(), y)
    assert set(post) == {"sigma", "field_base", "field_sign", "field"}
    assert post["field"].shape == (10, 3, 4, 4) and torch.isfinite(post["field"]).all()
    # replaying the latents and the drawn signs gives the same physical fields
    s = 1 - 2 * post["field_sign"].to(post["field"].dtype)
    assert torch.allclose(post["field"], s[..., None, None] * flow(post["field_base"]), atol=1e-5)
    # posterior predictive on the original model, vectorised
    pp = Predictive(model, posterior_samples={"sigma": post["sigma"], "field": post["field"]}, parallel=True)(None)
    assert pp["y"].shape == (10, 3, 4, 4)


def test_mixture_prior_density_is_unchanged_once_components_are_summed_out() -> None:
    r"""For one latent draw z, the enumerated joint :math:`\sum_k \frac1{|S|}\,\ell(y\mid g_k(f(z)))` is what the
    reparametrised model gives NUTS, and its prior part pushes forward to the mixture: the prior predictive of the
    latent model has the mixture's moments (odd moments vanish, even ones are the bare flow's)."""
    prior = LatticeSymmetrized(Z2Symmetrized(_affine_prior()), (4,), translations=2)
    latent = latent_reparam(_ring_model(prior))
    pyro.set_rng_seed(3)
    draws = Predictive(latent, num_samples=20000, return_sites=["field"])(None)["field"]
    comps = _components(prior)
    mean = torch.stack([m for m, _ in comps]).mean(0)
    second = torch.stack([m**2 + s**2 for m, s in comps]).mean(0)
    assert torch.allclose(draws.mean(0), mean, atol=0.03)
    assert torch.allclose(draws.square().mean(0), second, atol=0.03)
    # the component sites are uniform
    tr = pyro.poutine.trace(pyro.poutine.enum(pyro.infer.config_enumerate(latent), first_available_dim=-1)).get_trace(Y)
    tr.compute_log_prob()
    for name, size in (("field_sign", 2), ("field_symmetry", 2)):
        lp = tr.nodes[name]["log_prob"]
        assert torch.allclose(lp, torch.full_like(lp, -math.log(size)))


def test_latent_reparam_refuses_what_it_cannot_move() -> None:
    def model():
        pyro.sample("a", dist.Normal(0.0, 1.0))
        pyro.sample("b", Z2Symmetrized(dist.Normal(torch.zeros(4), 1.0).to_event(1)))

    for name in ("a", "b", "c"):
        with pytest.raises(PriorReparamError, match=repr(name)):
            latent_reparam(model, sites=[name])()
    # without names, such sites stay as they are
    tr = pyro.poutine.trace(latent_reparam(model)).get_trace()
    assert {n for n in tr.nodes if tr.nodes[n]["type"] == "sample"} == {"a", "b"}
    assert isinstance(latent_reparam(model), LatentModel)


def test_latent_guide_recovers_an_exact_gaussian_posterior_and_hides_the_components() -> None:
    """A bare affine flow prior with a Gaussian likelihood has a Gaussian posterior: the full-rank latent guide
    fitted by SVI must find its mean and sd. With the Z2 mixture the sign stays out of the guide."""
    from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO

    torch.set_default_dtype(torch.float64)  # the affine prior is float64; the guide's parameters follow the default
    try:
        _fit_and_check_latent_guide(Trace_ELBO)
        mixture = latent_reparam(_ring_model(Z2Symmetrized(_affine_prior())))
        pyro.clear_param_store()
        g = mixture.guide(rank=2)
        loss = SVI(mixture, g, pyro.optim.Adam({"lr": 0.01}), TraceEnum_ELBO(max_plate_nesting=0)).step(Y)
        assert math.isfinite(loss) and set(g()) == {"field_base"}
    finally:
        torch.set_default_dtype(torch.float32)


def _fit_and_check_latent_guide(elbo) -> None:
    from pyro.infer import SVI

    latent = latent_reparam(_ring_model(_affine_prior()))
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = latent.guide()
    svi = SVI(latent, guide, pyro.optim.ClippedAdam({"lr": 0.02, "lrd": 0.999}),
              elbo(num_particles=16, vectorize_particles=True, max_plate_nesting=0))
    for _ in range(1500):
        svi.step(Y)
    with torch.no_grad():
        x = MU + SCALE * torch.stack([guide()["field_base"] for _ in range(4000)])
    var = 1 / (1 / SCALE**2 + 1 / NOISE**2)
    exact_mean = var * (MU / SCALE**2 + Y / NOISE**2)
    assert torch.allclose(x.mean(0), exact_mean, atol=0.03), (x.mean(0), exact_mean)
    assert torch.allclose(x.std(0), var.sqrt(), rtol=0.1), (x.std(0), var.sqrt())


def test_from_pyro_draws_scores_the_original_model_pointwise() -> None:
    from pyro_nrg.analysis import from_pyro_draws

    prior = Z2Symmetrized(_affine_prior())

    def model(y=None):
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        field = pyro.sample("field", prior)
        with pyro.plate("sites", 4):
            pyro.sample("y", dist.Normal(field, sigma), obs=y)

    draws = {"sigma": torch.rand(6, dtype=torch.float64) + 0.5, "field": torch.randn(6, 4, dtype=torch.float64)}
    idata = from_pyro_draws(model, draws, Y, num_chains=2)
    assert {"posterior", "log_likelihood", "observed_data"} <= set(idata.groups())
    ll = torch.as_tensor(idata.log_likelihood["y"].values)
    assert ll.shape == (2, 3, 4)
    expected = dist.Normal(draws["field"], draws["sigma"][:, None]).log_prob(Y).reshape(2, 3, 4)
    assert torch.allclose(ll, expected)
    assert idata.posterior["field"].shape == (2, 3, 4)
