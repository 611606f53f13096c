# %% [markdown]
# # Handwritten digits: conceptual compression with a neural canonical transformation
#
# Li, Dong, Zhang & Wang, PRX 10, 021020 (2020), Sec. V D. The 64 pixels of scikit-learn's 8x8 digits are the
# positions of a fictitious mechanical system; Maxwell–Boltzmann momenta (unit mass, T = 1) make a 128-D phase space.
# A symplectic flow fitted by maximum likelihood maps the data onto independent oscillators; the *slow* modes
# (smallest frequencies, widest in position) carry the coarse content of an image. Keeping only the k slowest
# modes and mapping back is a nonlinear analogue of PCA, which we compare against.
#
# Data: x = (v + u)/17 with integer intensity v in 0..16 and uniform dequantization noise u, then y = x - mean.
# Set the environment variable CI to run a shortened version (< 1 min).

# %%
import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch

from pyro_nrg.analysis.modes import keep_slow_modes, position_log_likelihood
from pyro_nrg.data.digits import load_digits_data, pca_reconstruction
from pyro_nrg.distributions import pca_canonical_flow
from pyro_nrg.infer.canonical import DensityConfig, fit_density
from pyro_nrg.plotting import plot_image_grid, plot_spectrum

CI = bool(os.environ.get("CI"))
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # font-fallback chatter of log axes
torch.set_num_threads(1)
torch.manual_seed(0)
out = Path(__file__).resolve().parent / "output"
out.mkdir(exist_ok=True)

# %% data: 1438 training and 359 test images, dequantized and centred
data = load_digits_data(test_fraction=0.2, scale=1.0, seed=0)
y_train = torch.tensor(data.train, dtype=torch.float32)
y_test = torch.tensor(data.test, dtype=torch.float32)
print("train", tuple(y_train.shape), "test", tuple(y_test.shape))

# %% the flow starts as the Gaussian (PCA) model and is trained by maximum likelihood in phase space
model = pca_canonical_flow(y_train, n_blocks=1 if CI else 2, hidden=64 if CI else 128)
gen = torch.Generator().manual_seed(1)
_, lq0 = position_log_likelihood(model, y_test, n_momenta=4, generator=gen)
config = DensityConfig(max_epochs=3 if CI else 200, batch_size=128, lr=1e-3, patience=20, lr_patience=5)
history = fit_density(model, y_train, 1.0, config)  # the settings of benchmarks/digits.py (about 4 min)
_, lq = position_log_likelihood(model, y_test, n_momenta=4 if CI else 64, generator=gen)
print(f"test NLL: Gaussian (PCA start) {data.bits_per_dim(float(-lq0.mean())):.3f} bits/dim, "
      f"flow {data.bits_per_dim(float(-lq.mean())):.3f} bits/dim")
plot_spectrum(model.frequencies()[0]).savefig(out / "digits_spectrum.png", dpi=120)

# %% conceptual compression: keep the k slowest modes (momenta set to zero), compare with PCA keeping k components
ks = [1, 2, 4, 8, 16, 32]
x0 = torch.cat([y_test, torch.zeros_like(y_test)], -1)
truth = data.to_x(data.test)
rows = {"data": truth[:10]}
for k in ks:
    flow_rec = data.to_x(keep_slow_modes(model, x0, k)[:, : model.n].numpy())
    pca_rec = data.to_x(pca_reconstruction(data.train, data.test, k))
    mse_flow, mse_pca = np.mean((flow_rec - truth) ** 2), np.mean((pca_rec - truth) ** 2)
    print(f"k={k:2d}: reconstruction MSE flow {mse_flow:.5f}  PCA {mse_pca:.5f}  (per pixel, (0,1) scale)")
    rows[f"k={k}"] = flow_rec[:10]
    if k == 8:
        pca8 = pca_rec[:10]
rows["PCA k=8"] = pca8
fig = plot_image_grid(rows, vmax=1.0)
fig.savefig(out / "digits_compression.png", dpi=120)
print("saved", out / "digits_compression.png", out / "digits_spectrum.png")
