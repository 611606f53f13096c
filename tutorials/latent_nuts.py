# %% [markdown]
# # NUTS in the latent space of a NeuralRG flow
#
# Li & Wang (PRL 121, 260601 (2018)): a trained NeuralRG flow x = g(z) turns the Boltzmann density into the
# *renormalized energy* E_eff(z) = E(g(z)) − T ln|det ∂g/∂z|, which is close to independent unit Gaussians, so
# Hamiltonian Monte Carlo in z mixes far faster than in x. Pyro's `NeuTraReparam` (Hoffman et al. 2019) does the
# change of variables; `pyro_nrg.infer.latent_nuts` wires it up and maps every draw back to x.
#
# Pipeline: Ising energy → distil the flow → latent NUTS and physical NUTS → ArviZ → mutual information and
# receptive fields of the renormalized variables. Set `CI=1` for a < 90 s run (L=4, exact m^2 check).

# %%
import os
from pathlib import Path

import arviz as az
import numpy as np
import pyro
import torch

import pyro_nrg as nrg
from pyro_nrg.analysis import latent_mutual_information, receptive_fields, sampling_efficiency
from pyro_nrg.infer import latent_nuts, physical_nuts, renormalized_energy
from pyro_nrg.plotting import plot_mutual_information, plot_receptive_fields

SMOKE = bool(os.environ.get("CI"))
if SMOKE:
    torch.set_num_threads(1)  # CI machines are small and shared
out = Path(__file__).resolve().parent / "output" if "__file__" in globals() else Path("output")
out.mkdir(exist_ok=True)
pyro.set_rng_seed(0)

# %% the target: the relaxed 2D Ising model (exact m^2 by transfer matrix up to L=10)
L = 4 if SMOKE else 8
T = 3.0 if SMOKE else nrg.ISING_TC
energy = nrg.IsingRelaxed(L, T)

# %% distil the flow (reverse KL; see tutorials/distill_ising.py)
result = nrg.distill(energy, nrg.neural_rg(L=L), steps=200 if SMOKE else 1500, batch_size=256, lr=5e-3, progress=False)
est = result.distiller.estimate(2048)
print(f"F_q = {est.f_q:.4f} ± {est.f_q_err:.4f}, exact F = {-T * energy.log_z():.4f} ({est.f_q_rel_err:.2%} above)")

# %% NUTS in latent space (NeuTraReparam) and, as the baseline, NUTS in physical space
n, warm = (100, 70) if SMOKE else (1000, 300)
latent = latent_nuts(energy, result.guide, num_samples=n, warmup_steps=warm, num_chains=2, max_tree_depth=6)
physical = physical_nuts(energy, num_samples=n, warmup_steps=warm, num_chains=2, init=result.guide.distribution())

# %% ArviZ: physical observables in `posterior`, sampler statistics in `sample_stats`
idata = nrg.to_inference_data(latent, include_samples=True)
print(az.summary(idata, var_names=["m", "abs_m", "m2", "energy_per_site"]))
print(idata.sample_stats)
idata.to_netcdf(str(out / "latent_nuts.nc"))

# %% efficiency: ESS per gradient evaluation and per second
for name, res in (("latent NUTS", latent), ("physical NUTS", physical)):
    eff = sampling_efficiency(res)["m2"]
    print(f"{name:14s} <m^2> = {eff['mean']:.4f} ± {eff['mcse']:.4f}   tau = {eff['tau']:5.1f}   "
          f"ESS/grad = {eff['ess_per_grad']:.2e}   ESS/s = {eff['ess_per_second']:.1f}   "
          f"grads/draw = {res.num_grad_evals.double().mean():.1f}")
if L <= 10:
    print(f"exact <m^2> = {energy.exact_m2():.4f} (transfer matrix)")
print(f"exact energy per site = {energy.exact_energy_per_site():.4f} (Kaufman)")

# %% [markdown]
# The renormalized energy minus the Gaussian, (E_eff(z) − T|z|²/2)/T = −ln w(g(z)) + const, is constant for a
# perfect flow. Distillation here trains the Z₂-symmetrized mixture ½[q(x) + q(−x)], so the bare flow may model one
# magnetisation sector only: the mirror sector then sits far out in latent space, with large residuals. Its
# Z₂-invariant observables (m², |m|, energy) are unaffected; m itself needs the chains to tunnel.

# %%
with torch.no_grad():
    resid = renormalized_energy(energy, result.guide, latent.latent.reshape(-1, L * L), subtract_gaussian=True) / T
q = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
lo, med, hi = torch.quantile(resid.double() - resid.double().median(), q)
print(f"-ln w over the draws (relative to its median): quartiles {lo:+.2f}, {med:+.2f}, {hi:+.2f}")

# %% trace and autocorrelation plots
axes = az.plot_trace(idata, var_names=["m2", "energy_per_site"])
axes.ravel()[0].figure.savefig(out / "latent_nuts_trace.png", dpi=100)
axes = az.plot_autocorr(idata, var_names=["m2"], combined=True)
np.atleast_1d(axes).ravel()[0].figure.savefig(out / "latent_nuts_autocorr.png", dpi=100)

# %% the renormalized variables: nearly independent, unlike the physical ones
report = latent_mutual_information(result.guide, z=latent.latent, method="ksg", max_samples=2000)
print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in report.summary.items()})
plot_mutual_information(report, title=f"Ising L={L}, T={T:.3f}").savefig(out / "latent_mi.png", dpi=100)

# %% receptive fields of the two coarsest RG levels
fields, index, levels = receptive_fields(result.guide)
plot_receptive_fields(fields, index, levels).savefig(out / "receptive_fields.png", dpi=100)
print("figures in", out)
