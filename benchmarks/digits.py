"""Benchmark: density estimation and conceptual compression of scikit-learn's 8x8 digits (issue 6).

Data: pyro_nrg.data.load_digits_data (x = (v + u)/17, u ~ U(0,1) dequantization, y = x - per-pixel train mean;
1438 train / 359 test images, seed 0). Phase space: 64 positions + Maxwell-Boltzmann momenta (unit mass, T = 1).
Model: pyro_nrg.distributions.pca_canonical_flow (starts at the Gaussian/PCA model), trained by maximum likelihood
(fit_density: 90/10 split of the training images, plateau schedule, early stopping).

Figures:
* test NLL in bits per pixel of the 17-level images (dequantization bound): importance sampling over K momenta,
  pyro_nrg.analysis.modes.position_log_likelihood (K = 64; K = 1 is the Jensen bound), vs the Gaussian (PCA) start;
* reconstruction MSE per pixel on the (0, 1) scale of the test images from the k slowest latent modes
  (momenta zero; pyro_nrg.analysis.modes.keep_slow_modes), k = 1, 2, 4, 8, 16, 32, vs PCA with k components.

Usage:
    .venv/bin/python benchmarks/digits.py            # full size (a few minutes on one core)
    .venv/bin/python benchmarks/digits.py --quick    # seconds (digits/quick.json)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import table, write_result

from pyro_nrg.analysis.modes import keep_slow_modes, position_log_likelihood
from pyro_nrg.data.digits import load_digits_data, pca_reconstruction
from pyro_nrg.distributions import pca_canonical_flow
from pyro_nrg.infer.canonical import DensityConfig, fit_density

KS = (1, 2, 4, 8, 16, 32)


def nll_bits(model, data, y: torch.Tensor, k: int, seed: int) -> tuple[float, float]:
    jensen, iw = position_log_likelihood(model, y, n_momenta=k, generator=torch.Generator().manual_seed(seed))
    return data.bits_per_dim(float(-jensen.mean())), data.bits_per_dim(float(-iw.mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--patience", type=int, default=20)
    ap.add_argument("--momenta", type=int, default=64, help="K of the importance-sampled test NLL")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    epochs, blocks, hidden, K = (3, 1, 32, 8) if args.quick else (args.epochs, args.blocks, args.hidden, args.momenta)

    data = load_digits_data(test_fraction=0.2, scale=1.0, seed=args.seed)
    y_train = torch.tensor(data.train, dtype=torch.float32)
    y_test = torch.tensor(data.test, dtype=torch.float32)
    model = pca_canonical_flow(y_train, n_blocks=blocks, hidden=hidden)
    gauss_jensen, gauss_is = nll_bits(model, data, y_test, K, args.seed + 1)
    cfg = DensityConfig(max_epochs=epochs, batch_size=args.batch, lr=args.lr, patience=args.patience,
                        lr_patience=5, seed=args.seed)
    t0 = time.perf_counter()
    hist = fit_density(model, y_train, 1.0, cfg)
    train_s = time.perf_counter() - t0
    jensen, iw = nll_bits(model, data, y_test, K, args.seed + 1)
    train_jensen, train_iw = nll_bits(model, data, y_train, K, args.seed + 2)

    truth = data.to_x(data.test)
    x0 = torch.cat([y_test, torch.zeros_like(y_test)], -1)
    mse_flow, mse_pca = {}, {}
    for k in KS:
        rec = data.to_x(keep_slow_modes(model, x0, k)[:, : model.n].numpy())
        mse_flow[k] = float(np.mean((rec - truth) ** 2))
        mse_pca[k] = float(np.mean((data.to_x(pca_reconstruction(data.train, data.test, k)) - truth) ** 2))

    headline = {"test_bits_per_dim": iw, "recon_mse_k8": mse_flow[8], "pca_recon_mse_k8": mse_pca[8]}
    figures = {
        "test_bits_per_dim_is": iw,
        "test_bits_per_dim_jensen": jensen,
        "train_bits_per_dim_is": train_iw,
        "gaussian_pca_test_bits_per_dim": gauss_is,
        "momenta_samples_K": K,
        "recon_mse_flow": {str(k): v for k, v in mse_flow.items()},
        "recon_mse_pca": {str(k): v for k, v in mse_pca.items()},
        "omega_sorted": model.frequencies()[0].tolist(),
        "train_wall_s": train_s,
        "epochs_run": len(hist.val_nll),
        "best_epoch": hist.best_epoch,
        "best_val_nll_nats": hist.best_val_nll,
        "n_train": int(y_train.shape[0]),
        "n_test": int(y_test.shape[0]),
    }
    settings = {
        "quick": args.quick,
        "data": {"test_fraction": 0.2, "scale": 1.0, "dequantization": "uniform, one draw per image",
                 "seed": args.seed},
        "flow": {"n_blocks": blocks, "hidden": hidden, "n_couplings": 4, "init": "pca_canonical_flow"},
        "density": cfg.__dict__,
        "compression": "latent modes beyond the k slowest set to 0, momenta 0; MSE per pixel on the (0,1) scale",
    }
    path = write_result("digits_quick" if args.quick else "digits", settings, figures, headline)
    print(table([(str(k), f"{mse_flow[k]:.5f}", f"{mse_pca[k]:.5f}") for k in KS], ("k", "flow MSE", "PCA MSE")))
    print(f"test bits/dim: flow {iw:.4f} (IS, K={K}; Jensen {jensen:.4f}), Gaussian/PCA {gauss_is:.4f}; "
          f"train {train_iw:.4f}; {len(hist.val_nll)} epochs in {train_s:.0f} s")
    print("headline:", {k: round(v, 5) for k, v in headline.items()})
    print("wrote", path)


if __name__ == "__main__":
    main()
