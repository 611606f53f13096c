# %% [markdown]
# # Bayesian denoising with a NeuralRG prior: the user's path through Pyro and ArviZ
#
# A trained flow is a density over lattice fields, so it is a *prior* that drops into any Pyro model. Here a few
# Ising-like fields (the continuous relaxation of the 2D Ising model slightly above T_c) are observed through
# Gaussian noise of unknown scale:
#
#     sigma ~ HalfNormal(1),    field_i ~ NeuralRG prior,    y_i ~ Normal(field_i, sigma)  (i = 1..n, per pixel).
#
# The path: distil the prior (the default Z2-symmetrised mixture), save and reload it, write a plated,
# vectorisation-safe model, draw from the prior predictive, run NUTS in the prior's latent space
# (`latent_reparam`), map the draws back (`physical_samples`), draw from the posterior predictive, build
# `InferenceData` with the pointwise log-likelihood, and compare the flow prior with an i.i.d. Gaussian prior of
# the same marginal spread by PSIS-LOO (`az.loo`, `az.compare`) and on a second, held-out noisy look at the same
# fields. Set `CI=1` for a short run.

# %%
import math
import os
from pathlib import Path

import arviz as az
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS, Predictive

import pyro_nrg as nrg
from pyro_nrg.analysis import from_pyro_draws
from pyro_nrg.distributions import load_distribution
from pyro_nrg.infer import latent_reparam
from pyro_nrg.plotting import plot_field_posteriors

SMOKE = bool(os.environ.get("CI"))
if SMOKE:
    torch.set_num_threads(1)  # CI machines are small and shared
out = Path(__file__).resolve().parent / "output" if "__file__" in globals() else Path("output")
out.mkdir(exist_ok=True)
pyro.set_rng_seed(1)

# %% the prior: a flow distilled to the relaxed Ising model at T = 2.5, saved and reloaded as itself (frozen)
L, T, N_FIELDS, SIGMA = (4, 2.5, 3, 0.7) if SMOKE else (8, 2.5, 4, 0.7)
energy = nrg.IsingRelaxed(L, T)
result = nrg.distill(energy, nrg.neural_rg(L=L), steps=150 if SMOKE else 1500, batch_size=256, lr=5e-3,
                     progress=False)
result.guide.distribution().save(out / "ising_prior.pt")
prior = load_distribution(out / "ising_prior.pt")  # a Z2Symmetrized mixture, parameters frozen
print("prior:", type(prior).__name__)

# %% ground truth: fields drawn exactly from the Ising relaxation (flow-proposal Metropolis), two noisy looks
truth = nrg.flow_mh(energy, prior, num_walkers=N_FIELDS, num_samples=50).samples[:, -1]  # (n, L, L)
y = truth + SIGMA * torch.randn_like(truth)
y_heldout = truth + SIGMA * torch.randn_like(truth)  # a second look, never shown to the sampler


# %% [markdown]
# ## One plated model, two priors
#
# The model must broadcast over leading sample dimensions (`Predictive(parallel=True)` and ArviZ's
# log-likelihood add one): the pixels are plates, so the pointwise log-likelihood has one entry per pixel, and
# `sigma` broadcasts without indexing. Under the `fields` plate at dim -3 the prior has batch shape `(n, 1, 1)`;
# its draws `(n, 1, 1, L, L)` lose the two singleton dims to line up with the pixel plates.


# %%
def model(y=None, prior=prior):
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("fields", N_FIELDS, dim=-3):
        field = pyro.sample("field", prior)[..., 0, 0, :, :]
        with pyro.plate("rows", L, dim=-2), pyro.plate("cols", L, dim=-1):
            return pyro.sample("y", dist.Normal(field, sigma), obs=y)


marginal_sd = float(prior.sample((4096,)).std())  # the naive prior matches the flow's marginal spread
gaussian = dist.Normal(torch.zeros(L, L), marginal_sd * torch.ones(L, L)).to_event(2)

# %% prior predictive: what noisy fields each prior expects before seeing data
for name, p in (("flow prior", prior), ("Gaussian prior", gaussian)):
    sim = Predictive(model, num_samples=200, parallel=True)(None, p)["y"]
    nn_corr = float((sim * sim.roll(1, -1)).mean() / sim.square().mean())
    print(f"{name:15s} prior predictive: sd {float(sim.std()):.2f}, nearest-neighbour correlation {nn_corr:.2f}")

# %% [markdown]
# ## NUTS in the flow's latent space
#
# `latent_reparam(model)` replaces `field` by `field_base ~ N(0, I)`, the physical field g(z), and, for the Z2
# mixture, a sign `field_sign` that NUTS sums out exactly. `physical_samples` draws the signs from their exact
# conditional and returns the original model's sites. The Gaussian-prior model runs in physical space.

# %%
n, warm, chains = (100, 100, 1) if SMOKE else (500, 300, 2)
latent = latent_reparam(model)
mcmc_flow = MCMC(NUTS(latent), num_samples=n, warmup_steps=warm, num_chains=chains, disable_progbar=True)
mcmc_flow.run(y, prior)
post = latent.physical_samples(mcmc_flow.get_samples(), y, prior)
flow_draws = {"sigma": post["sigma"], "field": post["field"]}

mcmc_gauss = MCMC(NUTS(model), num_samples=n, warmup_steps=warm, num_chains=chains, disable_progbar=True)
mcmc_gauss.run(y, gaussian)
gauss_draws = mcmc_gauss.get_samples()

# %% posterior predictive (vectorised) and InferenceData with the pointwise log-likelihood
pp_flow = Predictive(model, posterior_samples=flow_draws, parallel=True)(None, prior)
pp_gauss = Predictive(model, posterior_samples=gauss_draws, parallel=True)(None, gaussian)
idata = {
    # the latent model's draws lack the summed-out signs: score the original model on the physical draws
    "flow prior": from_pyro_draws(model, flow_draws, y, prior, num_chains=chains, posterior_predictive=pp_flow),
    # physical-space MCMC on the model itself: ArviZ's own converter
    "Gaussian prior": az.from_pyro(mcmc_gauss, posterior_predictive=pp_gauss),
}
for name, d in idata.items():
    print(name, "groups:", d.groups())
    print(az.summary(d, var_names=["sigma"], kind="all").round(3))

# %% PSIS-LOO over pixels, and the held-out look at the same fields
loo = {name: az.loo(d, pointwise=True) for name, d in idata.items()}
for name, res in loo.items():
    print(f"{name:15s} elpd_loo {res.elpd_loo:9.1f} ± {res.se:.1f}   p_loo {res.p_loo:6.1f}   "
          f"Pareto k > 0.7 on {int((res.pareto_k > 0.7).sum())} of {res.pareto_k.size} pixels")
print(az.compare(idata))
for name, d in (("flow prior", flow_draws), ("Gaussian prior", gauss_draws)):
    p = prior if name == "flow prior" else gaussian
    ll = from_pyro_draws(model, d, y_heldout, p, num_chains=chains).log_likelihood["y"].values
    ll = torch.as_tensor(ll).flatten(0, 1)  # (draws, n, L, L)
    elpd = float((ll.logsumexp(0) - math.log(ll.shape[0])).sum())
    print(f"{name:15s} held-out look: elpd {elpd:9.1f} ({elpd / y.numel():+.3f} per pixel)")

# %% how good is each posterior? error of the posterior mean and calibration of its spread
posteriors = {}
for name, f in (("flow prior", flow_draws["field"][:, :, 0, 0]), ("Gaussian prior", gauss_draws["field"][:, :, 0, 0])):
    mean, std = f.mean(0), f.std(0)
    rmse = float((mean - truth).square().mean().sqrt())
    z = ((truth - mean) / std).abs()
    print(f"{name:15s} RMSE {rmse:.3f}   mean posterior sd {float(std.mean()):.3f}   "
          f"|truth - mean| < 2 sd on {float((z < 2).double().mean()):.0%} of sites")
    posteriors[name] = (mean[0], std[0])
print(f"observation     RMSE {float((y - truth).square().mean().sqrt()):.3f}   (true sigma {SIGMA})")

# %% figure: the first field, its observation, posterior mean and standard deviation under each prior
fig = plot_field_posteriors(truth[0], y[0], posteriors)
fig.savefig(out / "denoising.png", dpi=100)
print("saved", out / "denoising.png", "| prior checkpoint", out / "ising_prior.pt")
