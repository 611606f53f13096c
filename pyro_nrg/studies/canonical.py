r"""Neural canonical transformation studies (``ring``, ``chain``): train by variational free energy, compare with
the exact free energy and spectrum, and report.

* ``chain``: harmonic chain of ``n`` particles with fixed ends (:class:`~pyro_nrg.energies.HarmonicChain`); a
  linear symplectic flow onto independent oscillators. References: exact :math:`F`, exact normal-mode frequencies
  :math:`\omega_k = 2\sqrt{\kappa/m}\,\sin\frac{k\pi}{2(n+1)}` and modes; latent dynamics (analytic rotation of
  each oscillator) against velocity Verlet of the physical Hamiltonian.
* ``ring``: :math:`H = (|q|-2)^2/0.32 + |p|^2/2` (:class:`~pyro_nrg.energies.RingHamiltonian`); a nonlinear
  symplectic flow ending in polar coordinates. References: exact :math:`F` (1D radial integral); how well two
  latent coordinates track the radius and the angle (rank correlations).

Short runs (a minute or two): they write their model at the end (``model.pt``, weights only) and are not
resumable.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import torch

from ..analysis.modes import best_latent_correlation
from ..distributions import CanonicalFlow, canonical_flow
from ..energies import HarmonicChain, RingHamiltonian, velocity_verlet
from ..infer.canonical import VariationalConfig, canonical_free_energy, fit_variational
from ..io import atomic_torch_save
from ..transforms.symplectic import polar_symplectic_flow
from .config import ChainStudyConfig, RingStudyConfig
from .report import Row, RunFolder, StudyOutcome, console_table, fmt_rel, fmt_value

__all__ = ["run_canonical_study"]

logger = logging.getLogger("pyro_nrg")


def _model(opts: ChainStudyConfig | RingStudyConfig) -> tuple[Any, CanonicalFlow, VariationalConfig]:
    log_every = max(1, opts.steps // 20)
    if opts.study == "chain":
        H: Any = HarmonicChain(opts.n, kappa=opts.kappa, mass=1.0, temperature=opts.T)
        model = canonical_flow(opts.n, temperature=opts.T, n_blocks=0)
        cfg = VariationalConfig(steps=opts.steps, batch_size=opts.batch_size, lr=opts.lr,
                                warmup_steps=min(100, opts.steps // 10), final_lr_ratio=0.1, log_every=log_every,
                                seed=opts.seed)
    else:
        H = RingHamiltonian(temperature=opts.T)
        # start on the ring: radius R, a log-radius spread of (radial width sqrt(wT/2)) / R (not e^(+-1): radii
        # from 0.2 to 20, F_q ~ 1e7 at step 1) and a uniform angle (a wider one lifts the momenta near the cut)
        width = math.sqrt(H.width * opts.T / 2)
        flow = polar_symplectic_flow(n_blocks=opts.blocks, n_couplings=2, hidden=opts.hidden,
                                     log_radius=math.log(H.radius), log_radial_scale=math.log(width / H.radius),
                                     log_angle_scale=-0.5 * math.log(2.0))
        model = CanonicalFlow(flow, 2, temperature=opts.T)
        cfg = VariationalConfig(steps=opts.steps, batch_size=opts.batch_size, lr=opts.lr,
                                warmup_steps=min(100, opts.steps // 10), final_lr_ratio=0.01, log_every=log_every,
                                seed=opts.seed, path_gradient=True)
    dtype = getattr(torch, opts.dtype)
    return H.to(device=opts.device, dtype=dtype), model.to(device=opts.device, dtype=dtype), cfg


def run_canonical_study(opts: ChainStudyConfig | RingStudyConfig, run: RunFolder) -> StudyOutcome:
    """Run the ``ring``/``chain`` study of a validated config into the run folder ``run`` (created, locked and
    given ``options.json`` by the caller)."""
    from .. import plotting

    torch.manual_seed(opts.seed)
    H, model, cfg = _model(opts)
    run.write_json("config.json", {"system": opts.study, "variational": cfg.__dict__})
    show = not opts.quiet and sys.stderr.isatty()
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, disable=not show, desc="variational F", leave=False)

    def on_log(step: int, info: dict) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(F_q=f"{info['f_q']:.4f}", refresh=False)

    logger.info("training the canonical flow (%d steps, batch %d) into %s", cfg.steps, cfg.batch_size, run.path)
    t0 = time.perf_counter()
    hist = fit_variational(model, H, cfg, callback=on_log)
    bar.close()
    train_s = time.perf_counter() - t0
    for i, (f, e) in enumerate(zip(hist.f_q, hist.f_q_err, strict=True)):
        run.append_jsonl("metrics.jsonl", {"step": i + 1, "f_q": f, "f_q_err": e, "lr": hist.lr[i]})
    atomic_torch_save({"model": model.state_dict(), "options": {k: str(v) for k, v in opts.to_dict().items()}},
                      run.file("model.pt"))
    F = float(H.free_energy())
    est = canonical_free_energy(model, H, n_samples=opts.eval_samples, seed=opts.seed + 1)
    w, order = model.frequencies()
    summary: dict[str, Any] = {"study": opts.study, "T": opts.T, "steps": cfg.steps, "train_seconds": train_s,
                               "f_exact": F, "free_energy": est.to_dict(), "omega_sorted": w.tolist()}
    rows: list[Row] = [
        ("variational F_q", fmt_value(est.f_q, est.f_q_err), f"{fmt_value(F)} exact", fmt_rel(est.f_q, F, est.f_q_err)),
        ("importance-sampled F", fmt_value(est.f_is, est.f_is_err), fmt_value(F), fmt_rel(est.f_is, F, est.f_is_err)),
        ("ESS/N, PSIS k-hat", f"{est.ess_fraction:.3f}, {est.khat:.2f}", "", ""),
    ]
    history = {"step": list(range(1, len(hist.f_q) + 1)), "f_q": hist.f_q}
    figs = [("Free energy during training", run.save_figure("training.png", plotting.plot_training(history, (), F)),
             "Per-step variational free energy F_q and its running mean against the exact F; right: relative error.")]
    if opts.study == "chain":
        exact_w = H.frequencies().cpu()
        rel = ((w.cpu() - exact_w) / exact_w).abs()
        prof = model.mode_profiles().detach().cpu()
        modes = H.normal_modes().cpu()
        overlap = (prof / prof.norm(dim=0) * modes / modes.norm(dim=0)).sum(0).abs()
        x0 = H.sample(4, generator=torch.Generator().manual_seed(opts.seed + 2)).to(w.dtype)
        dt, n_steps, every = 0.01, 1000, 100
        ref = velocity_verlet(H, x0, dt, n_steps, record_every=every)
        times = torch.arange(ref.shape[0], dtype=x0.dtype) * dt * every
        with torch.no_grad():
            traj = model.evolve(x0, times)
        dyn = float((traj - ref).abs().max() / x0.abs().max())
        summary.update(omega_exact=exact_w.tolist(), max_omega_rel_err=float(rel.max()),
                       slowest_mode_overlaps=overlap[:4].tolist(), dynamics_max_rel_dev=dyn,
                       dynamics_t_max=float(times[-1]))
        rows += [("max |ω_k - exact| / exact", f"{float(rel.max()):.2e}", f"{opts.n} modes", ""),
                 ("slowest mode ω_1", f"{float(w[0]):.5f}", f"{float(exact_w[0]):.5f} exact",
                  fmt_rel(float(w[0]), float(exact_w[0]))),
                 ("overlap of modes 1-4 with exact", ", ".join(f"{float(o):.3f}" for o in overlap[:4]), "1", ""),
                 ("latent vs Verlet dynamics, max dev.", f"{dyn:.1e}", f"t ≤ {float(times[-1]):g}", "")]
        spec = plotting.plot_spectrum_comparison(w, exact_w)
        figs.append(("Frequency spectrum", run.save_figure("spectrum.png", spec),
                     "Learned oscillator frequencies (sorted) against the exact normal-mode frequencies."))
        figs.append(("Slow modes", run.save_figure("modes.png", plotting.plot_mode_profiles(prof, modes)),
                     "Position profiles of the four slowest learned modes against the exact normal modes."))
    else:
        x = H.sample(10_000, generator=torch.Generator().manual_seed(opts.seed + 2)).to(w.dtype)
        with torch.no_grad():
            z = model.to_latent(x)
            xq = model.sample((2000,))
        radius = torch.linalg.vector_norm(x[:, :2], dim=-1)
        angle = torch.atan2(x[:, 1], x[:, 0])
        rc, _, _ = best_latent_correlation(z, radius)
        ac, _, _ = best_latent_correlation(z, angle, circular=True)
        summary.update(radius_rank_corr=rc, angle_circular_rank_corr=ac)
        rows += [("rank corr. latent vs radius", f"{rc:.3f}", "1", ""),
                 ("circular rank corr. latent vs angle", f"{ac:.3f}", "1", ""),
                 ("frequencies ω", ", ".join(f"{float(v):.3f}" for v in w), "", "")]
        figs.append(("Samples", run.save_figure("samples.png", _ring_figure(x, xq)),
                     "Positions q from the exact Boltzmann distribution and from the trained flow."))
    run.write_json("summary.json", summary)
    title = (f"Neural canonical transformation: harmonic chain n={opts.n}, κ={opts.kappa:g}, T={opts.T:g}"
             if opts.study == "chain" else f"Neural canonical transformation: ring, T={opts.T:g}")
    report = run.write_report(title, [f"Trained {cfg.steps} SVI steps (batch {cfg.batch_size}) in {train_s:.1f} s."],
                              rows, figs)
    return StudyOutcome(report, console_table(rows), summary)


def _ring_figure(x: torch.Tensor, xq: torch.Tensor) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, data, title in zip(axes, (x, xq), ("exact Boltzmann", "trained flow"), strict=True):
        a = data[:2000, :2].detach().cpu().numpy()
        ax.plot(a[:, 0], a[:, 1], ".", ms=1.5, alpha=0.5)
        ax.set(title=title, xlabel="q1", ylabel="q2", aspect="equal")
    return fig
