r"""The real-world studies (``alanine``, ``digits``): symplectic flows fitted by phase-space density estimation.

* ``alanine``: alanine dipeptide from OpenMM molecular dynamics (generated once and cached, or the bundled tiny
  fixture with ``--fixture``); the 10 heavy atoms in 24 mass-weighted internal coordinates; a flow that starts at
  the harmonic (PCA) model; its frequency spectrum, the mutual information of the slowest latent modes with the
  backbone dihedrals φ, ψ, and the backbone moved along the two slowest modes.
* ``digits``: scikit-learn's 8×8 digits, dequantized; test negative log-likelihood in bits/dim; conceptual
  compression (keep the k slowest modes) against PCA keeping k components.

Both write ``options.json``, ``metrics.jsonl`` (validation NLL per epoch), ``model.pt``, the figures,
``summary.json`` and ``report.md``. Not resumable (a few minutes each).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from ..io import atomic_torch_save
from .config import AlanineStudyConfig, DigitsStudyConfig
from .report import Row, RunFolder, StudyOutcome, console_table

__all__ = ["run_demo_study"]

logger = logging.getLogger("pyro_nrg")

TAU_PS = 1 / 30
"""Time unit of the alanine internal coordinates, in ps (keeps the flow's inputs of order one)."""
CM1_PER_RAD_PS = 1 / (2 * math.pi * 0.0299792458)
"""rad/ps → wavenumber (cm⁻¹)."""


def run_demo_study(opts: AlanineStudyConfig | DigitsStudyConfig, run: RunFolder) -> StudyOutcome:
    """Run the ``alanine``/``digits`` study of a validated config into the run folder ``run`` (created, locked and
    given ``options.json`` by the caller)."""
    torch.manual_seed(opts.seed)
    return (_alanine if opts.study == "alanine" else _digits)(opts, run)


def _fit(model: Any, q: torch.Tensor, opts: Any, run: RunFolder, patience: int) -> Any:
    from ..infer.canonical import DensityConfig, fit_density

    config = DensityConfig(max_epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, patience=patience)
    run.write_json("config.json", {"study": opts.study, "density": config.__dict__, "blocks": opts.blocks,
                                   "hidden": opts.hidden})
    logger.info("fitting the phase-space density (%d samples, up to %d epochs)", q.shape[0], opts.epochs)
    hist = fit_density(model, q, masses=1.0, config=config)
    for i, v in enumerate(getattr(hist, "val_nll", [])):
        run.append_jsonl("metrics.jsonl", {"epoch": i + 1, "val_nll": v})
    atomic_torch_save({"model": model.state_dict()}, run.file("model.pt"))
    return hist


def _alanine(opts: Any, run: RunFolder) -> StudyOutcome:
    from ..analysis import mode_mutual_information
    from ..analysis.modes import latent_mode_path
    from ..data.alanine import AlanineSettings, alanine_dataset, alanine_fixture, load_alanine
    from ..distributions import pca_canonical_flow
    from ..infer.canonical import maxwell_boltzmann
    from ..plotting import plot_backbone_path, plot_ramachandran, plot_spectrum

    if opts.fixture:
        traj = alanine_fixture()
    elif opts.data == "md":
        traj = load_alanine(AlanineSettings(temperature=opts.temperature, duration_ns=opts.duration_ns))
    else:
        traj = alanine_dataset(opts.data)
    proj = traj.projection(time_unit_ps=TAU_PS)
    q = torch.tensor(proj.to_internal(traj.positions), dtype=getattr(torch, opts.dtype))
    model = pca_canonical_flow(q, n_blocks=opts.blocks, hidden=opts.hidden).to(q.dtype)
    hist = _fit(model, q, opts, run, patience=6)
    omega = (model.frequencies()[0] / TAU_PS * CM1_PER_RAD_PS).double()
    x = maxwell_boltzmann(q, 1.0, 1.0, generator=torch.Generator().manual_seed(opts.seed + 1))
    with torch.no_grad():
        z = torch.cat([model.to_latent(c) for c in torch.split(x, 4096)])
    mi = mode_mutual_information(z, model.slow_modes(4), {"phi": traj.phi, "psi": traj.psi}, max_samples=10_000)
    paths, labels = [], []
    for rank in range(2):
        frames = proj.to_cartesian(latent_mode_path(model, rank, np.linspace(-2, 2, 7))[:, : model.n].double()
                                   .numpy())
        phi, psi = traj.dihedrals(frames)
        paths.append(frames)
        labels.append(f"mode {rank + 1}: φ {np.degrees(phi[0]):.0f}°→{np.degrees(phi[-1]):.0f}°, "
                      f"ψ {np.degrees(psi[0]):.0f}°→{np.degrees(psi[-1]):.0f}°")
    figs = [
        ("Ramachandran plot", run.save_figure("ramachandran.png", plot_ramachandran(traj.phi, traj.psi)),
         f"Backbone dihedrals of the {traj.n_frames} trajectory frames."),
        ("Frequency spectrum", run.save_figure("spectrum.png", plot_spectrum(omega, unit="(cm^-1)")),
         "Learned oscillator frequencies, slowest first."),
        ("Slow modes", run.save_figure("modes.png", plot_backbone_path(paths, traj.bonds, labels, traj.atom_names)),
         "The heavy-atom backbone moved along the two slowest latent modes (±2 thermal widths)."),
    ]
    summary = {"study": "alanine", "frames": traj.n_frames, "trajectory_ns": traj.settings.duration_ns,
               "md_ns_per_minute": traj.md_ns_per_minute, "best_val_nll": hist.best_val_nll,
               "omega_cm1": omega.tolist(), "mi_phi": [float(v) for v in mi["phi"]],
               "mi_psi": [float(v) for v in mi["psi"]], "mode_paths": labels}
    run.write_json("summary.json", summary)
    rows: list[Row] = [
        ("trajectory", f"{traj.n_frames} frames, {traj.settings.duration_ns:g} ns", "", ""),
        ("best validation NLL (nats)", f"{hist.best_val_nll:.3f}", "", ""),
        ("slowest ω (cm⁻¹)", ", ".join(f"{v:.1f}" for v in omega[:4].tolist()), "", ""),
    ]
    rows += [(f"I(Q{k + 1}; φ), I(Q{k + 1}; ψ) nats", f"{mi['phi'][k]:.3f}, {mi['psi'][k]:.3f}",
              "paper: Q1-ψ 1.65, Q2-φ 1.05" if k == 0 else "", "") for k in range(4)]
    report = run.write_report("Alanine dipeptide: slow modes of a neural canonical transformation",
                              [f"Phase-space density estimation on {traj.n_frames} frames (24 mass-weighted internal "
                               "coordinates of the 10 heavy atoms, Maxwell-Boltzmann momenta)."], rows, figs)
    return StudyOutcome(report, console_table(rows), summary)


def _digits(opts: Any, run: RunFolder) -> StudyOutcome:
    from ..analysis.modes import keep_slow_modes, position_log_likelihood
    from ..data.digits import load_digits_data, pca_reconstruction
    from ..distributions import pca_canonical_flow
    from ..plotting import plot_image_grid, plot_spectrum

    data = load_digits_data(test_fraction=0.2, scale=1.0, seed=opts.seed)
    dtype = getattr(torch, opts.dtype)
    y_train, y_test = torch.tensor(data.train, dtype=dtype), torch.tensor(data.test, dtype=dtype)
    model = pca_canonical_flow(y_train, n_blocks=opts.blocks, hidden=opts.hidden).to(dtype)
    gen = torch.Generator().manual_seed(opts.seed + 1)
    _, lq0 = position_log_likelihood(model, y_test, n_momenta=4, generator=gen)
    hist = _fit(model, y_train, opts, run, patience=20)
    _, lq = position_log_likelihood(model, y_test, n_momenta=64, generator=gen)
    bpd0, bpd = data.bits_per_dim(float(-lq0.mean())), data.bits_per_dim(float(-lq.mean()))
    x0 = torch.cat([y_test, torch.zeros_like(y_test)], -1)
    truth = data.to_x(data.test)
    grid, mse = {"data": truth[:10]}, {}
    for k in (1, 2, 4, 8, 16, 32):
        flow_rec = data.to_x(keep_slow_modes(model, x0, k)[:, : model.n].detach().numpy())
        pca_rec = data.to_x(pca_reconstruction(data.train, data.test, k))
        mse[k] = (float(np.mean((flow_rec - truth) ** 2)), float(np.mean((pca_rec - truth) ** 2)))
        grid[f"k={k}"] = flow_rec[:10]
        if k == 8:
            grid_pca8 = pca_rec[:10]
    grid["PCA k=8"] = grid_pca8
    figs = [("Conceptual compression", run.save_figure("compression.png", plot_image_grid(grid, vmax=1.0)),
             "Test digits reconstructed from the k slowest latent modes (others at zero), and PCA with k=8."),
            ("Frequency spectrum", run.save_figure("spectrum.png", plot_spectrum(model.frequencies()[0])),
             "Learned oscillator frequencies, slowest first.")]
    summary = {"study": "digits", "test_bits_per_dim": bpd, "test_bits_per_dim_pca_start": bpd0,
               "best_val_nll": hist.best_val_nll, "recon_mse": {str(k): v[0] for k, v in mse.items()},
               "pca_recon_mse": {str(k): v[1] for k, v in mse.items()}}
    run.write_json("summary.json", summary)
    rows: list[Row] = [("test NLL (bits/dim)", f"{bpd:.3f}", f"{bpd0:.3f} Gaussian/PCA start", "")]
    rows += [(f"reconstruction MSE, k={k}", f"{f:.5f}", f"{p:.5f} PCA", f"{(f - p) / p:+.1%}")
             for k, (f, p) in mse.items()]
    report = run.write_report("Digits: conceptual compression with a neural canonical transformation",
                              [f"{len(data.train)} training and {len(data.test)} test images (8×8, dequantized)."],
                              rows, figs)
    return StudyOutcome(report, console_table(rows), summary)
