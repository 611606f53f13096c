"""Benchmark: slow modes of alanine dipeptide from a neural canonical transformation (issue 6).

1. MD cost: ns of 2-fs Langevin dynamics per wall-clock minute for OpenMM's Reference and CPU platforms (vacuum and
   OBC implicit solvent), one thread, measured side by side in this run.
2. Data: by default the data set shipped with the package (pyro_nrg.data.alanine_dataset: 3 x 250 ns of vacuum
   Langevin dynamics at 300 K from the C7eq, C5 and C7ax basins, a frame every 20 ps; made by alanine_md.py);
   --data generate runs --duration-ns of MD instead (pyro_nrg.data.load_alanine, cached). 10 heavy atoms aligned
   (Kabsch), 24 mass-weighted internal coordinates, Maxwell-Boltzmann momenta at 300 K. How often each basin is
   visited, per run, and I(phi; psi) inside the data are reported: they bound how cleanly two modes can split
   the two dihedrals.
3. Model: pyro_nrg.distributions.pca_canonical_flow (starts at the harmonic/PCA model) trained by maximum likelihood
   (pyro_nrg.infer.canonical.fit_density, 90/10 split, plateau schedule, early stopping).
4. Figures: learned spectrum (cm^-1), KSG mutual information (nats) between each of the 6 slowest latent
   coordinates Q_k and phi, psi and the pair (phi, psi) (angles embedded as (cos, sin)); also for the pair
   (Q_k, P_k) and for the PCA starting point; dihedral ranges along the two slowest modes; the Ramachandran plot
   coloured by Q1 and by Q2 and the backbone moved along Q1 and Q2 (PNG beside the JSON).

Paper (3 x 250 ns explicit solvent): I(Q1;psi) ~ 1.65, I(Q2;phi) ~ 1.05 nats.

Usage:
    .venv/bin/python benchmarks/alanine.py            # the shipped 750 ns data set, training ~10-20 min
    .venv/bin/python benchmarks/alanine.py --quick    # tiny bundled trajectory, seconds (alanine/quick.json)
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time

import numpy as np
import torch
from _common import table, write_result

from pyro_nrg.analysis import mode_mutual_information, mutual_information
from pyro_nrg.analysis.modes import latent_mode_path
from pyro_nrg.data.alanine import (
    AlanineSettings,
    alanine_dataset,
    alanine_fixture,
    load_alanine,
    md_speed,
)
from pyro_nrg.distributions import pca_canonical_flow
from pyro_nrg.infer.canonical import DensityConfig, fit_density, maxwell_boltzmann
from pyro_nrg.plotting import plot_backbone_path, plot_ramachandran_colored

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


def circle(*angles: np.ndarray) -> np.ndarray:
    """Angles embedded on circles: ``(N, 2 * len(angles))`` of cos and sin."""
    return np.concatenate([np.stack([np.cos(a), np.sin(a)], -1) for a in angles], -1)


def mi_table(model, z: torch.Tensor, traj, n_modes: int, max_samples: int, seed: int) -> dict:
    """I(Q_k; phi), I(Q_k; psi), I(Q_k; (phi, psi)) and the same for the pair (Q_k, P_k), slowest modes first;
    ``z``: the latent points of the frames (:func:`latent_of`)."""
    modes = model.slow_modes(n_modes)
    targets = {"phi": traj.phi, "psi": traj.psi}
    single = mode_mutual_information(z, modes, targets, max_samples=max_samples, seed=seed)
    pair = mode_mutual_information(z, modes, targets, pair=True, max_samples=max_samples, seed=seed)
    idx = np.random.default_rng(seed).permutation(len(traj.phi))[:max_samples]
    both = circle(traj.phi[idx], traj.psi[idx])
    zn = z.double().numpy()[idx]
    n = model.n
    single["phi_psi"] = np.array([mutual_information(zn[:, int(j)], both, seed=seed) for j in modes])
    pair["phi_psi"] = np.array([mutual_information(zn[:, [int(j), int(j) + n]], both, seed=seed) for j in modes])
    return {"Q": {k: v.tolist() for k, v in single.items()}, "QP_pair": {k: v.tolist() for k, v in pair.items()}}


def basin_fractions(phi: np.ndarray, psi: np.ndarray) -> dict[str, float]:
    """Fractions of frames per backbone basin (degrees): C7ax/alpha_L for phi > 0; alpha_R for phi < 0 and
    -120 < psi < 30; C7eq/C5 (the broad beta region) for the rest of phi < 0."""
    p, s = np.degrees(phi), np.degrees(psi)
    alpha_r = (p < 0) & (s > -120) & (s < 30)
    return {"C7eq_C5_beta": float(((p < 0) & ~alpha_r).mean()), "alpha_R": float(alpha_r.mean()),
            "phi_positive": float((p > 0).mean())}


def basin_transitions(phi: np.ndarray, run: np.ndarray) -> int:
    """Number of sign changes of phi (the slow phi > 0 <-> phi < 0 passage) within runs."""
    pos = phi > 0
    return int(((pos[1:] != pos[:-1]) & (run[1:] == run[:-1])).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny bundled trajectory, 2 epochs")
    ap.add_argument("--data", choices=("shipped", "generate"), default="shipped",
                    help="shipped: the package's data set for --solvent; generate: --duration-ns of new MD")
    ap.add_argument("--duration-ns", type=float, default=30.0, help="with --data generate")
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
    ap.add_argument("--modes", type=int, default=6, help="slowest modes in the MI table")
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
    elif args.data == "shipped":
        traj = alanine_dataset(args.solvent)
        epochs, blocks, hidden = args.epochs, args.blocks, args.hidden
    else:
        settings = AlanineSettings(temperature=args.temperature, duration_ns=args.duration_ns, solvent=args.solvent,
                                   platform=args.platform)
        traj = load_alanine(settings, cache_dir=args.cache_dir)
        epochs, blocks, hidden = args.epochs, args.blocks, args.hidden
    run = traj.run if traj.run is not None else np.zeros(traj.n_frames, dtype=np.int64)
    md_s = time.perf_counter() - t0
    proj = traj.projection(time_unit_ps=args.tau_ps)
    q = torch.tensor(proj.to_internal(traj.positions), dtype=torch.float32)
    n_modes = min(args.modes, q.shape[-1])

    model = pca_canonical_flow(q, n_blocks=blocks, hidden=hidden)
    mi_pca = mi_table(model, latent_of(model, q, args.seed + 1), traj, n_modes, args.mi_samples, args.seed + 1)
    omega_pca = (model.frequencies()[0] / args.tau_ps * CM1_PER_RAD_PS).tolist()
    cfg = DensityConfig(max_epochs=epochs, batch_size=args.batch, lr=args.lr, patience=8, lr_patience=3,
                        seed=args.seed)
    hist = fit_density(model, q, 1.0, cfg)
    z = latent_of(model, q, args.seed + 1)  # the trained model's latents: the MI table and the coloured plot
    mi = mi_table(model, z, traj, n_modes, args.mi_samples, args.seed + 1)
    omega = (model.frequencies()[0] / args.tau_ps * CM1_PER_RAD_PS).tolist()

    paths, path_frames, path_labels = {}, [], []
    for rank in range(2):
        xs = latent_mode_path(model, rank, np.linspace(-2, 2, 9))
        frames = proj.to_cartesian(xs[:, : model.n].double().numpy())
        phi, psi = traj.dihedrals(frames)
        paths[f"mode{rank + 1}"] = {"phi_deg": np.degrees(phi).tolist(), "psi_deg": np.degrees(psi).tolist()}
        path_frames.append(frames)
        path_labels.append(f"Q{rank + 1}: phi {np.degrees(phi[0]):.0f} to {np.degrees(phi[-1]):.0f}, "
                           f"psi {np.degrees(psi[0]):.0f} to {np.degrees(psi[-1]):.0f} deg")

    phi_pos = float((traj.phi > 0).mean())
    basins = {"all": basin_fractions(traj.phi, traj.psi)}
    for r in np.unique(run):
        basins[f"run{int(r)}"] = basin_fractions(traj.phi[run == r], traj.psi[run == r])
    transitions = basin_transitions(traj.phi, run)
    # how much phi and psi share in this ensemble (bounds how cleanly two modes can split them)
    sub = np.random.default_rng(args.seed).permutation(traj.n_frames)[: args.mi_samples]
    mi_phi_psi = mutual_information(circle(traj.phi[sub]), circle(traj.psi[sub]), seed=args.seed)
    gaps = np.array(omega[1:]) / np.array(omega[:-1])
    k3 = [mi["Q"][t][k] for t in ("phi", "psi") for k in range(2, n_modes)]
    headline = {
        "mi_q1_psi": mi["Q"]["psi"][0],
        "mi_q1_phi": mi["Q"]["phi"][0],
        "mi_q2_phi": mi["Q"]["phi"][1],
        "mi_q2_psi": mi["Q"]["psi"][1],
        # the speed of the solvent and platform this trajectory used (the vacuum figure was reported here before)
        "md_ns_per_minute": speeds.get(f"{traj.settings.solvent}_{traj.settings.platform}",
                                       traj.md_ns_per_minute),
        "trajectory_ns": traj.settings.duration_ns,
        "mi_max_k3plus": max(k3) if k3 else float("nan"),
        "solvent": traj.settings.solvent,
    }
    figures = {
        "md_ns_per_minute_by_platform": speeds,
        "trajectory_generation_ns_per_minute": traj.md_ns_per_minute,
        "trajectory_wall_s": traj.seconds,
        "trajectory_from_cache": not traj.generated,
        "n_frames": traj.n_frames,
        "fraction_phi_positive": phi_pos,
        "basin_fractions": basins,
        "phi_sign_changes_within_runs": transitions,
        "runs": [r.cache_key() for r in traj.run_settings],
        "mi_phi_psi_nats": mi_phi_psi,
        "max_rigid_body_residual": float(proj.residual(traj.positions).max()),
        "train_wall_s": hist.seconds,
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
    slow = model.slow_modes(2)
    fig = plot_ramachandran_colored(traj.phi, traj.psi, {f"Q{k + 1}": z[:, int(j)] for k, j in enumerate(slow)})
    fig.savefig(path.with_name(f"{path.stem}_ramachandran_q.png"), dpi=110)
    fig = plot_backbone_path(path_frames, traj.bonds, path_labels, traj.atom_names)
    fig.savefig(path.with_name(f"{path.stem}_modes.png"), dpi=110)

    rows = [(name, f"{v:.2f}") for name, v in speeds.items()]
    print(table(rows, ("MD platform", "ns/min")))
    rows = []
    for k in range(n_modes):
        rows.append((str(k + 1), f"{omega[k]:.1f}", f"{mi['Q']['phi'][k]:.3f}", f"{mi['Q']['psi'][k]:.3f}",
                     f"{mi['Q']['phi_psi'][k]:.3f}", f"{mi['QP_pair']['phi'][k]:.3f}",
                     f"{mi['QP_pair']['psi'][k]:.3f}", f"{mi['QP_pair']['phi_psi'][k]:.3f}",
                     f"{mi_pca['Q']['phi'][k]:.3f}", f"{mi_pca['Q']['psi'][k]:.3f}"))
    print(table(rows, ("mode", "omega cm^-1", "I(Q;phi)", "I(Q;psi)", "I(Q;phi,psi)", "I(QP;phi)", "I(QP;psi)",
                       "I(QP;phi,psi)", "PCA I(Q;phi)", "PCA I(Q;psi)")))
    rows = [(k, f"{v['C7eq_C5_beta']:.4f}", f"{v['alpha_R']:.4f}", f"{v['phi_positive']:.4f}")
            for k, v in basins.items()]
    print(table(rows, ("frames", "C7eq/C5/beta", "alpha_R", "phi > 0")))
    print(f"phi sign changes within runs: {transitions}")
    print(f"frames {traj.n_frames}, phi>0 fraction {phi_pos:.4f}, I(phi;psi) {mi_phi_psi:.3f}, "
          f"best val NLL {hist.best_val_nll:.3f} (epoch {hist.best_epoch}), train {hist.seconds:.0f} s; "
          f"fastest omega {omega[-1]:.0f} cm^-1")
    print("headline:", {k: round(v, 4) if isinstance(v, float) else v for k, v in headline.items()})
    print("wrote", path)


if __name__ == "__main__":
    main()
