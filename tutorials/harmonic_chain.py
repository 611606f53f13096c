# %% [markdown]
# # Harmonic chain: learning normal modes with a neural canonical transformation
#
# A chain of n particles with fixed ends and springs kappa has the exact normal-mode frequencies
# omega_k = 2 sqrt(kappa/m) sin(k pi / 2(n+1)). A *linear* symplectic flow onto independent latent oscillators
# can represent the exact canonical transformation, so variational training (Pyro SVI) should recover the
# spectrum, the free energy and the mode profiles — and the latent oscillators, rotated analytically and mapped
# back, reproduce the physical dynamics. (Li, Dong, Zhang & Wang, PRX 10, 021020 (2020).)
#
# Set the environment variable CI to run a shortened version (< 1 min).

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from pyro_nrg.distributions import canonical_flow
from pyro_nrg.energies.hamiltonians import HarmonicChain, velocity_verlet
from pyro_nrg.infer.canonical import VariationalConfig, canonical_free_energy, fit_variational

CI = bool(os.environ.get("CI"))
torch.set_num_threads(1)
torch.manual_seed(0)
N = 8 if CI else 16
STEPS = 600 if CI else 4000

# %% the system and the model: latent oscillators -> scaling -> linear symplectic layer
chain = HarmonicChain(N, kappa=1.0, mass=1.0, temperature=1.0).double()
model = canonical_flow(N, temperature=1.0, n_blocks=0).double()

# %% variational free energy with Pyro SVI
history = fit_variational(model, chain, VariationalConfig(steps=STEPS, batch_size=256, lr=3e-2, final_lr_ratio=0.1))
est = canonical_free_energy(model, chain, n_samples=10_000, seed=1)
print(f"F_q = {est.f_q:.5f} +- {est.f_q_err:.5f}   exact F = {chain.free_energy():.5f}")

# %% spectrum, slow modes
omega, order = model.frequencies()
exact = chain.frequencies()
print("max relative error of omega:", float(((omega - exact) / exact).abs().max()))
profiles = model.mode_profiles(model.slow_modes(3))

# %% latent dynamics vs velocity Verlet
x0 = chain.sample(1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
ref = velocity_verlet(chain, x0, dt=0.01, n_steps=1000, record_every=10)
times = torch.arange(ref.shape[0], dtype=torch.float64) * 0.1
traj = model.evolve(x0, times)

# %% figure
fig, ax = plt.subplots(1, 4, figsize=(16, 3.6))
ax[0].plot(history.f_q, lw=0.5, label="F_q per step")
ax[0].axhline(chain.free_energy(), color="k", ls="--", label="exact F")
ax[0].set(xlabel="SVI step", ylabel="free energy", ylim=(chain.free_energy() - 1, chain.free_energy() + 5))
ax[0].legend()
k = torch.arange(1, N + 1)
ax[1].plot(k, exact, "k-", label="exact")
ax[1].plot(k, omega, "o", ms=4, label="learned")
ax[1].set(xlabel="mode k", ylabel="omega_k")
ax[1].legend()
sites = torch.arange(1, N + 1)
modes = chain.normal_modes()
for j in range(3):
    sign = torch.sign((profiles[:, j] * modes[:, j]).sum())
    ax[2].plot(sites, sign * profiles[:, j], "o", color=f"C{j}")
    ax[2].plot(sites, modes[:, j], "-", color=f"C{j}", label=f"k={j + 1}")
ax[2].set(xlabel="site", ylabel="slow-mode profile")
ax[2].legend()
ax[3].plot(times, ref[:, 0, 0], "k-", label="Verlet q_1")
ax[3].plot(times, traj[:, 0, 0], "--", label="latent rotation q_1")
ax[3].set(xlabel="t", ylabel="q_1(t)")
ax[3].legend()
fig.tight_layout()
out = Path(__file__).resolve().parent / "output"
out.mkdir(exist_ok=True)
fig.savefig(out / "harmonic_chain.png", dpi=120)
print("saved", out / "harmonic_chain.png")
