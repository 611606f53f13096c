# %% [markdown]
# # Alanine dipeptide: slow modes of a molecule from a neural canonical transformation
#
# Li, Dong, Zhang & Wang, PRX 10, 021020 (2020), Sec. V C. We take the shipped Langevin dynamics of alanine dipeptide
# (OpenMM, vacuum, 3 x 250 ns at 300 K, Amber force field from openmmtools), keep the 10 heavy atoms, remove
# rigid-body motion, and fit a symplectic flow to the phase-space density: positions from the trajectory, momenta
# from Maxwell–Boltzmann with the atomic masses. The latent Hamiltonian is a set of independent oscillators; the
# slowest ones should carry the backbone dihedrals ψ and φ, and walking along them should move the backbone.
#
# Aligned frames lie on a 24-dimensional linear subspace of the 30 coordinates (6 rigid-body constraints), so the
# flow works on 24 mass-weighted internal coordinates (48-D phase space, unit masses, T = 1 in thermal units).
#
# Set the environment variable CI to run a shortened version on the tiny bundled trajectory (no OpenMM needed).

# %%
import logging
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch

from pyro_nrg.analysis import mode_mutual_information
from pyro_nrg.analysis.modes import latent_mode_path
from pyro_nrg.data.alanine import alanine_dataset, alanine_fixture
from pyro_nrg.distributions import pca_canonical_flow
from pyro_nrg.infer.canonical import DensityConfig, fit_density, maxwell_boltzmann
from pyro_nrg.plotting import plot_backbone_path, plot_ramachandran, plot_spectrum

CI = bool(os.environ.get("CI"))
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # font-fallback chatter of log axes
torch.set_num_threads(1)
torch.manual_seed(0)
TAU_PS = 1 / 30  # time unit of the internal coordinates (keeps the flow's inputs of order one)
CM1_PER_RAD_PS = 1 / (2 * math.pi * 0.0299792458)  # rad/ps -> wavenumber (cm^-1)
out = Path(__file__).resolve().parent / "output"
out.mkdir(exist_ok=True)

# %% data: the shipped 3 x 250 ns of vacuum MD at 300 K (the tiny bundled fixture in CI)
traj = alanine_fixture() if CI else alanine_dataset("vacuum")  # shipped: 3 x 250 ns at 300 K, no OpenMM
print(f"{traj.n_frames} frames, {traj.settings.duration_ns} ns, MD speed {traj.md_ns_per_minute:.1f} ns/min")
plot_ramachandran(traj.phi, traj.psi).savefig(out / "alanine_ramachandran.png", dpi=120)

# %% internal coordinates: 30 aligned heavy-atom coordinates -> 24 mass-weighted coordinates
proj = traj.projection(time_unit_ps=TAU_PS)  # a RigidBodyProjection, mean-centred on this trajectory
q = torch.tensor(proj.to_internal(traj.positions), dtype=torch.float32)
print("internal coordinates:", tuple(q.shape), "max rigid-body residual:", proj.residual(traj.positions).max())

# %% the flow starts as the harmonic (PCA) model, then learns by maximum likelihood with MB momenta
model = pca_canonical_flow(q, n_blocks=1 if CI else 2, hidden=32 if CI else 64)
config = DensityConfig(max_epochs=3 if CI else 40, batch_size=256, lr=1e-3, patience=6)
history = fit_density(model, q, masses=1.0, config=config)
print(f"best validation NLL {history.best_val_nll:.3f} nats at epoch {history.best_epoch}")

# %% spectrum: a few slow modes, then a gap up to the bond vibrations
omega = model.frequencies()[0] / TAU_PS * CM1_PER_RAD_PS
print("slowest 6 (cm^-1):", np.round(omega[:6].numpy(), 1), " fastest:", np.round(omega[-3:].numpy(), 0))
plot_spectrum(omega, unit="(cm^-1)").savefig(out / "alanine_spectrum.png", dpi=120)

# %% mutual information between the slowest latent modes and the backbone dihedrals
x = maxwell_boltzmann(q, 1.0, 1.0, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    z = torch.cat([model.to_latent(chunk) for chunk in torch.split(x, 4096)])
mi = mode_mutual_information(z, model.slow_modes(4), {"phi": traj.phi, "psi": traj.psi}, max_samples=10_000)
for k in range(4):
    print(f"mode {k + 1}: I(Q;phi) = {mi['phi'][k]:.3f}  I(Q;psi) = {mi['psi'][k]:.3f} nats")

# %% walk along the two slowest modes (latent origin, +-2 thermal widths) and draw the backbone
amplitudes = np.linspace(-2, 2, 7)
paths, labels = [], []
for rank in range(2):
    xs = latent_mode_path(model, rank, amplitudes)
    frames = proj.to_cartesian(xs[:, : model.n].double().numpy())
    phi, psi = traj.dihedrals(frames)
    paths.append(frames)
    labels.append(f"mode {rank + 1}: φ {np.degrees(phi[0]):.0f}°→{np.degrees(phi[-1]):.0f}°, "
                  f"ψ {np.degrees(psi[0]):.0f}°→{np.degrees(psi[-1]):.0f}°")
    print(labels[-1])
plot_backbone_path(paths, traj.bonds, labels, traj.atom_names).savefig(out / "alanine_modes.png", dpi=120)
print("saved", out / "alanine_ramachandran.png", out / "alanine_spectrum.png", out / "alanine_modes.png")
