"""Benchmark: slow modes of alanine dipeptide from a neural canonical transformation (issue 6).

1. MD cost: ns of 2-fs Langevin dynamics per wall-clock minute for OpenMM's Reference and CPU platforms (vacuum and
   OBC implicit solvent), one thread, measured side by side in this run.
2. Data: 30 ns of vacuum MD at 300 K (pyro_nrg.data.load_alanine; cached in ~/.cache/pyro_nrg or --cache-dir),
   10 heavy atoms aligned (Kabsch), 24 mass-weighted internal coordinates, Maxwell-Boltzmann momenta at 300 K.
3. Model: pyro_nrg.distributions.pca_canonical_flow (starts at the harmonic/PCA model) trained by maximum likelihood
   (pyro_nrg.infer.canonical.fit_density, 90/10 split, plateau schedule, early stopping).
4. Figures: learned spectrum (cm^-1), KSG mutual information (nats) between each of the 4 slowest latent
   coordinates Q_k and phi, psi (angles embedded as (cos, sin)); also for the pair (Q_k, P_k) and for the PCA
   starting point; dihedral ranges along the two slowest modes.

Paper (3 x 250 ns explicit solvent): I(Q1;psi) ~ 1.65, I(Q2;phi) ~ 1.05 nats.

Usage:
    .venv/bin/python benchmarks/alanine.py            # full size (MD ~4 min if not cached, training ~5 min)
    .venv/bin/python benchmarks/alanine.py --quick    # tiny bundled trajectory, seconds (alanine_quick.json)
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_result  # noqa: E402

from pyro_nrg.analysis.modes import latent_mode_path  # noqa: E402
from pyro_nrg.data.alanine import AlanineSettings, alanine_fixture, load_alanine, md_speed  # noqa: E402
from pyro_nrg.diagnostics import mode_mutual_information, mutual_information  # noqa: E402
from pyro_nrg.distributions import pca_canonical_flow  # noqa: E402
from pyro_nrg.infer.canonical import DensityConfig, fit_density, maxwell_boltzmann  # noqa: E402

CM1_PER_RAD_PS = 1 / (2 * math.pi * 0.0299792458)


def md_speeds(quick: bool) -> dict:
    """ns/min of each platform/solvent pair (median of 3 short runs; the slow ones once)."""
    out = {}
    for solvent in ("vacuum", "implicit"):
        for platform in ("Reference", "CPU"):
            s = AlanineSettings(solvent=solvent, platform=platform)
            slow = not (solvent == "vacuum" and platform == "Reference")
            ps = (0.5 if slow else 2.0) if quick else (2.0 if slow else 20.0)
            reps = 1 if slow or quick else 3
            out[f"{solvent}_{platform}"] = statistics.median(md_speed(s, ps=ps) for _ in range(reps))
    return out


def latent_of(model, q: torch.Tensor, seed: int) -> torch.Tensor:
    x = maxwell_boltzmann(q, 1.0, 1.0, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return torch.cat([model.to_latent(c) for c in torch.split(x, 4096)])


def mi_table(model, q, traj, n_modes: int, max_samples: int, seed: int) -> dict:
    z = latent_of(model, q, seed)
    modes = model.slow_modes(n_modes)
    targets = {"phi": traj.phi, "psi": traj.psi}
    single = mode_mutual_information(z, modes, targets, max_samples=max_samples, seed=seed)
    pair = mode_mutual_information(z, modes, targets, pair=True, max_samples=max_samples, seed=seed)
    return {"Q": {k: v.tolist() for k, v in single.items()}, "QP_pair": {k: v.tolist() for k, v in pair.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny bundled trajectory, 2 epochs")
    ap.add_argument("--duration-ns", type=float, default=30.0)
    ap.add_argument("--temperature", type=float, default=300.0)
    ap.add_argument("--solvent", choices=("vacuum", "implicit"), default="vacuum",
                    help="implicit: OBC GBSA (about 0.4 ns/min on the CPU platform here, vs 10 in vacuum)")
    ap.add_argument("--platform", default="Reference", help="OpenMM platform (Reference is fastest in vacuum)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--tau-ps", type=float, default=1 / 30, help="time unit of the internal coordinates")
    ap.add_argument("--mi-samples", type=int, default=15_000)
    ap.add_argument("--cache-dir", type=str, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    logging.basicConfig(level=logging.WARNING)

    t0 = time.perf_counter()
    speeds = md_speeds(args.quick)
    if args.quick:
        traj = alanine_fixture()
        epochs, blocks, hidden = 2, 1, 32
    else:
        settings = AlanineSettings(temperature=args.temperature, duration_ns=args.duration_ns, solvent=args.solvent,
                                   platform=args.platform)
        traj = load_alanine(settings, cache_dir=args.cache_dir)
        epochs, blocks, hidden = args.epochs, args.blocks, args.hidden
    md_s = time.perf_counter() - t0
    proj = traj.projection(time_unit_ps=args.tau_ps)
    q = torch.tensor(proj.to_internal(traj.positions), dtype=torch.float32)
    n_modes = 4

    model = pca_canonical_flow(q, n_blocks=blocks, hidden=hidden)
    mi_pca = mi_table(model, q, traj, n_modes, args.mi_samples, args.seed + 1)
    omega_pca = (model.frequencies()[0] / args.tau_ps * CM1_PER_RAD_PS).tolist()
    cfg = DensityConfig(max_epochs=epochs, batch_size=args.batch, lr=args.lr, patience=8, lr_patience=3,
                        seed=args.seed)
    hist = fit_density(model, q, 1.0, cfg)
    mi = mi_table(model, q, traj, n_modes, args.mi_samples, args.seed + 1)
    omega = (model.frequencies()[0] / args.tau_ps * CM1_PER_RAD_PS).tolist()

    paths = {}
    for rank in range(2):
        xs = latent_mode_path(model, rank, np.linspace(-2, 2, 9))
        frames = proj.to_cartesian(xs[:, : model.n].double().numpy())
        phi, psi = traj.dihedrals(frames)
        paths[f"mode{rank + 1}"] = {"phi_deg": np.degrees(phi).tolist(), "psi_deg": np.degrees(psi).tolist()}

    phi_pos = float((traj.phi > 0).mean())
    # how much phi and psi share in this ensemble (bounds how cleanly two modes can split them)
    circle = {name: np.stack([np.cos(a), np.sin(a)], -1) for name, a in (("phi", traj.phi), ("psi", traj.psi))}
    sub = np.random.default_rng(args.seed).permutation(traj.n_frames)[: args.mi_samples]
    mi_phi_psi = mutual_information(circle["phi"][sub], circle["psi"][sub], seed=args.seed)
    gaps = np.array(omega[1:]) / np.array(omega[:-1])
    headline = {
        "mi_q1_psi": mi["Q"]["psi"][0],
        "mi_q1_phi": mi["Q"]["phi"][0],
        "mi_q2_phi": mi["Q"]["phi"][1],
        "mi_q2_psi": mi["Q"]["psi"][1],
        # the speed of the solvent and platform this trajectory used (the vacuum figure was reported here before)
        "md_ns_per_minute": speeds.get(f"{traj.settings.solvent}_{traj.settings.platform}",
                                       traj.md_ns_per_minute),
        "trajectory_ns": traj.settings.duration_ns,
    }
    figures = {
        "md_ns_per_minute_by_platform": speeds,
        "trajectory_generation_ns_per_minute": traj.md_ns_per_minute,
        "trajectory_wall_s": traj.seconds,
        "trajectory_from_cache": not traj.generated,
        "n_frames": traj.n_frames,
        "fraction_phi_positive": phi_pos,
        "mi_phi_psi_nats": mi_phi_psi,
        "max_rigid_body_residual": float(proj.residual(traj.positions).max()),
        "train_wall_s": hist.wall_time_s,
        "epochs_run": len(hist.val_nll),
        "best_epoch": hist.best_epoch,
        "best_val_nll_nats": hist.best_val_nll,
        "val_nll_history": hist.val_nll,
        "omega_cm1_sorted": omega,
        "omega_cm1_sorted_pca_start": omega_pca,
        "largest_spectral_gap_ratio": float(gaps.max()),
        "largest_spectral_gap_after_mode": int(gaps.argmax()) + 1,
        "mi_nats": mi,
        "mi_nats_pca_start": mi_pca,
        "mode_paths_dihedrals": paths,
        "paper_target": {"mi_q1_psi": 1.65, "mi_q2_phi": 1.05},
        "md_and_load_wall_s": md_s,
    }
    settings = {
        "quick": args.quick,
        "md": {**traj.settings.__dict__},
        "internal_coordinates": "24 mass-weighted (3M-6), thermal units, time unit tau_ps",
        "tau_ps": args.tau_ps,
        "flow": {"n_blocks": blocks, "hidden": hidden, "n_couplings": 4, "init": "pca_canonical_flow"},
        "density": cfg.__dict__,
        "mi": {"estimator": "KSG k=3", "angles": "(cos, sin)", "max_samples": args.mi_samples},
    }
    name = "alanine_quick" if args.quick else ("alanine" if args.solvent == "vacuum" else f"alanine_{args.solvent}")
    path = write_result(name, settings, figures, headline)

    rows = [(name, f"{v:.2f}") for name, v in speeds.items()]
    print(table(rows, ("MD platform", "ns/min")))
    rows = []
    for k in range(n_modes):
        rows.append((str(k + 1), f"{omega[k]:.1f}", f"{mi['Q']['phi'][k]:.3f}", f"{mi['Q']['psi'][k]:.3f}",
                     f"{mi['QP_pair']['phi'][k]:.3f}", f"{mi['QP_pair']['psi'][k]:.3f}",
                     f"{mi_pca['Q']['phi'][k]:.3f}", f"{mi_pca['Q']['psi'][k]:.3f}"))
    print(table(rows, ("mode", "omega cm^-1", "I(Q;phi)", "I(Q;psi)", "I(QP;phi)", "I(QP;psi)", "PCA I(Q;phi)",
                       "PCA I(Q;psi)")))
    print(f"frames {traj.n_frames}, phi>0 fraction {phi_pos:.4f}, I(phi;psi) {mi_phi_psi:.3f}, "
          f"best val NLL {hist.best_val_nll:.3f} (epoch {hist.best_epoch}), train {hist.wall_time_s:.0f} s; "
          f"fastest omega {omega[-1]:.0f} cm^-1")
    print("headline:", {k: round(v, 4) for k, v in headline.items()})
    print("wrote", path)


if __name__ == "__main__":
    main()
