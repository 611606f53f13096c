# %% [markdown]
# # Bayesian denoising with a NeuralRG prior
#
# A trained flow is a density over lattice fields, so it is a *prior* that drops into any Pyro model:
# `field = pyro.sample("field", FlowDistribution(flow))`. Here the field is an Ising-like configuration (the
# continuous relaxation of the 2D Ising model slightly above T_c), observed through Gaussian noise:
#
#     field ~ NeuralRG prior,    y ~ Normal(field, sigma).
#
# NUTS runs in the prior's latent space (`latent_reparam` = Pyro's `TransformReparam` on every flow prior), where
# the posterior is close to a Gaussian. The same model with a naive i.i.d. Gaussian prior of the same marginal
# variance is the comparison: it cannot know that neighbouring sites align. Set `CI=1` for a < 90 s run.

# %%
import os
from pathlib import Path

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

import pyro_nrg as nrg
from pyro_nrg.distributions import FlowDistribution
from pyro_nrg.infer import latent_reparam
from pyro_nrg.plotting import plot_field_posteriors

SMOKE = bool(os.environ.get("CI"))
if SMOKE:
    torch.set_num_threads(1)  # CI machines are small and shared
out = Path(__file__).resolve().parent / "output" if "__file__" in globals() else Path("output")
out.mkdir(exist_ok=True)
pyro.set_rng_seed(1)

# %% the prior: a flow distilled to the relaxed Ising model at T = 2.5 (above T_c: one magnetisation sector)
L, T, sigma = (4, 2.5, 1.0) if SMOKE else (8, 2.5, 1.0)
energy = nrg.IsingRelaxed(L, T)
result = nrg.distill(energy, nrg.neural_rg(L=L), steps=150 if SMOKE else 1500, batch_size=256, lr=5e-3,
                     z2_symmetric=False, progress=False)
flow = result.flow.requires_grad_(False)
prior = FlowDistribution(flow)
prior.save(out / "ising_prior.pt")  # reload anywhere with FlowDistribution.load(path)

# %% a ground truth drawn exactly from the Ising relaxation (flow-proposal Metropolis), and a noisy observation
truth = nrg.flow_mh(energy, prior, num_walkers=1, num_samples=50).samples[0, -1]
y = truth + sigma * torch.randn_like(truth)


# %% one model, two priors
def model(y: torch.Tensor, prior: dist.Distribution) -> None:
    field = pyro.sample("field", prior)
    pyro.sample("y", dist.Normal(field, sigma).to_event(2), obs=y)


marginal_sd = float(prior.sample((4096,)).std())  # the naive prior matches the flow's marginal spread
gaussian = dist.Normal(torch.zeros(L, L), marginal_sd * torch.ones(L, L)).to_event(2)

# %% NUTS: in the flow's latent space for the flow prior, directly for the Gaussian prior
n, warm, chains = (100, 100, 2) if SMOKE else (500, 300, 2)
fields = {}
for name, p, m in (("flow prior", prior, latent_reparam(model)), ("Gaussian prior", gaussian, model)):
    mcmc = MCMC(NUTS(m, target_accept_prob=0.8), num_samples=n, warmup_steps=warm, num_chains=chains,
                disable_progbar=True)
    mcmc.run(y, p)
    s = mcmc.get_samples(group_by_chain=True)
    # latent draws z ("field_base") map to fields through the flow; the Gaussian model samples the field itself
    fields[name] = flow(s["field_base"]) if "field_base" in s else s["field"]

# %% ArviZ summaries of the fields (chains x draws x L x L)
for name, f in fields.items():
    idata = az.from_dict(posterior={"field": f.numpy()}, dims={"field": ["row", "col"]})
    summ = az.summary(idata, var_names=["field"])
    print(f"{name}: r_hat max {summ['r_hat'].max():.3f}, ess_bulk min {summ['ess_bulk'].min():.0f}")
    print(summ.head(4))

# %% how good is each posterior? error of the posterior mean and calibration of its spread
posteriors = {}
for name, f in fields.items():
    mean, std = f.mean((0, 1)), f.std((0, 1))
    rmse = float((mean - truth).square().mean().sqrt())
    z = ((truth - mean) / std).abs()
    spins = float((torch.sign(mean) == torch.sign(truth)).double().mean())
    print(f"{name:15s} RMSE {rmse:.3f}   mean posterior sd {float(std.mean()):.3f}   "
          f"|truth - mean| < 2 sd on {float((z < 2).double().mean()):.0%} of sites   sign agreement {spins:.0%}")
    posteriors[name] = (mean, std)
print(f"observation     RMSE {float((y - truth).square().mean().sqrt()):.3f}")

# %% figure: truth, observation, posterior mean and standard deviation under each prior
fig = plot_field_posteriors(truth, y, posteriors)
fig.savefig(out / "denoising.png", dpi=100)
print("saved", out / "denoising.png", "| prior checkpoint", out / "ising_prior.pt", "| truth sd", np.round(
    float(truth.std()), 3))
