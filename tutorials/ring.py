# %% [markdown]
# # Ring potential: a nonlinear neural canonical transformation
#
# H = (|q| - 2)^2 / 0.32 + |p|^2 / 2 for a particle in the plane (Li, Dong, Zhang & Wang, PRX 10, 021020 (2020)).
# We train a symplectic flow onto two latent oscillators by minimising the variational free energy with Pyro SVI,
# then look at the learned spectrum (a slow mode and a fast mode) and at what the latent coordinates mean: the
# slow mode follows the angle around the ring, the fast mode the radial vibration.
#
# Set the environment variable CI to run a shortened version (< 1 min).

# %%
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from pyro_nrg.analysis.modes import best_latent_correlation
from pyro_nrg.distributions import CanonicalFlow
from pyro_nrg.energies.hamiltonians import RingHamiltonian
from pyro_nrg.infer.canonical import VariationalConfig, canonical_free_energy, fit_variational
from pyro_nrg.transforms.symplectic import polar_symplectic_flow

CI = bool(os.environ.get("CI"))
torch.set_num_threads(1)
torch.manual_seed(0)
STEPS = 300 if CI else 3000

# %% system and model: latent oscillators -> nonlinear symplectic layers -> polar point transformation
ring = RingHamiltonian(radius=2.0, width=0.32, temperature=1.0)
flow = polar_symplectic_flow(n_blocks=1 if CI else 2, hidden=32 if CI else 64, log_radius=math.log(2.0))
model = CanonicalFlow(flow, n=2, temperature=1.0)

# %% variational free energy with Pyro SVI
config = VariationalConfig(steps=STEPS, batch_size=512, lr=5e-3, final_lr_ratio=0.01)  # path gradients on
history = fit_variational(model, ring, config)
est = canonical_free_energy(model, ring, n_samples=20_000, seed=1)
F = ring.free_energy()
print(f"F_q = {est.f_q:.4f} +- {est.f_q_err:.4f} ({(est.f_q - F) / abs(F):.2%} above exact F = {F:.4f})")
print(f"importance-sampled F = {est.f_is:.4f}, ESS fraction {est.ess_fraction:.2f}")

# %% spectrum and the meaning of the latent coordinates (exact Boltzmann samples mapped to the latent space)
omega, order = model.frequencies()
print("omega (sorted):", omega.tolist())
x = ring.sample(5000, generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    z = model.to_latent(x)
radius = x[:, :2].norm(dim=-1)
angle = torch.atan2(x[:, 1], x[:, 0])
rc, rk, rphi = best_latent_correlation(z, radius)
ac, ak, aphi = best_latent_correlation(z, angle, circular=True)
print(f"radius <-> latent mode {rk} (omega={model.omega[rk]:.3f}): rank corr {rc:.3f}")
print(f"angle  <-> latent mode {ak} (omega={model.omega[ak]:.3f}): circular rank corr {ac:.3f}")

# %% figure
samples = model.sample((5000,))
u_r = z[:, rk] * math.cos(rphi) + z[:, 2 + rk] * math.sin(rphi)
u_a = z[:, ak] * math.cos(aphi) + z[:, 2 + ak] * math.sin(aphi)
fig, ax = plt.subplots(1, 4, figsize=(16, 3.8))
ax[0].plot(history.f_q, lw=0.5)
ax[0].axhline(F, color="k", ls="--", label="exact F")
ax[0].set(xlabel="SVI step", ylabel="F_q", ylim=(F - 0.5, F + 3))
ax[0].legend()
ax[1].scatter(x[:, 0], x[:, 1], s=1, alpha=0.3, label="exact")
ax[1].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.3, label="flow")
ax[1].set(xlabel="q_x", ylabel="q_y", aspect="equal")
ax[1].legend(markerscale=8)
ax[2].scatter(angle, u_a, s=1, alpha=0.3)
ax[2].set(xlabel="angle", ylabel=f"slow latent coordinate (mode {ak})", title=f"circular rank corr {ac:.2f}")
ax[3].scatter(radius, u_r, s=1, alpha=0.3)
ax[3].set(xlabel="radius", ylabel=f"latent coordinate (mode {rk})", title=f"rank corr {rc:.2f}")
fig.tight_layout()
out = Path(__file__).resolve().parent / "output"
out.mkdir(exist_ok=True)
fig.savefig(out / "ring.png", dpi=120)
print("saved", out / "ring.png")
