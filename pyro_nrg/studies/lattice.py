r"""The NeuralRG study of a lattice model (Ising relaxation or φ⁴), end to end, into a run folder.

Phases (each with a progress bar on a terminal):

1. **distil** the hierarchical flow by variational free energy (:func:`~pyro_nrg.infer.distill`), with an
   importance-sampled free-energy check every ``check_every`` steps (``checks.jsonl``) and checkpoints;
2. **estimate** :math:`F_q` and the importance-sampled :math:`F` against the exact value where one exists;
3. **sample** the Boltzmann distribution three ways: flow-proposal Metropolis (exact), many-walker HMC in latent
   space on the renormalized energy, and Pyro NUTS in physical space (the baseline); ArviZ netCDF per sampler;
4. **compare** every :math:`\langle m^2\rangle` and energy per site with the references: exact enumeration
   (:math:`N \le 20`), Kaufman's exact energy, and a Wolff cluster Monte Carlo of the discrete Ising model
   where :math:`\langle m^2\rangle` has no closed form;
5. **report**: figures, ``summary.json``, ``report.md`` and a one-screen table.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..analysis import MIN_RELIABLE_ESS, sampling_efficiency, to_inference_data
from ..energies import ISING_TC, IsingRelaxed, Phi4, wolff_ising
from ..errors import LatticeSizeError, NoExactSolutionError, NotPositiveDefiniteError
from ..flows import NeuralRGConfig, neural_rg, normalized_flow_config
from ..infer import (
    annealed_importance_sampling,
    coverage_check,
    distill,
    flow_mh,
    forward_kl,
    latent_hmc_walkers,
    physical_nuts,
)
from ..infer.distributed import init_from_environment
from .report import Row, RunFolder, StudyOutcome, console_table, fmt_rel, fmt_value

__all__ = ["add_lattice_options", "run_lattice_study"]

logger = logging.getLogger("pyro_nrg")

SAMPLERS = ("flow_mh", "latent_hmc", "physical_nuts")
LABELS = {"flow_mh": "flow-MH", "latent_hmc": "latent HMC walkers", "physical_nuts": "physical NUTS"}


def add_lattice_options(p: argparse.ArgumentParser, model: str) -> None:
    """Options shared by the lattice studies (``ising``, ``phi4``)."""
    g = p.add_argument_group("lattice and flow")
    g.add_argument("--L", type=int, default=8, help="lattice side, a power of 2 (default 8)")
    g.add_argument("--dim", type=int, default=2, choices=(1, 2), help="lattice dimension (default 2)")
    g.add_argument("--depth", type=int, default=None, help="RG levels of the flow (default all, log2 L)")
    g.add_argument("--couplings", type=int, default=4, help="couplings per block bijector (default 4)")
    g.add_argument("--coupling", choices=("affine", "tanh"), default="affine",
                   help="coupling layers: 'affine' (RealNVP, default) or 'tanh' (smooth, bimodal conditionals, "
                        "slower per step)")
    g.add_argument("--hidden", type=int, default=32, help="hidden width of the coupling networks (default 32)")
    g.add_argument("--head", choices=("none", "spline", "tanh"), default="tanh",
                   help="element-wise odd map on every site after the hierarchy: lower F_q for the same training; "
                        "'tanh' is smooth (default), 'spline' C1 (rougher latent potential), 'none' the paper's flow")
    g.add_argument("--no-z2", action="store_true", help="do not symmetrize the flow under x -> -x")
    g.add_argument("--odd", action="store_true",
                   help="odd flow, g(-z) = -g(z): Z2-symmetric by construction and continuous across the two "
                        "magnetisation sectors, so it misses less of the disordered configurations than the Z2 "
                        "mixture of a one-sector flow (L=8, T_c: flow-MH from flow draws +0.7 sigma instead of +4.2; "
                        "benchmarks/flow_mh_coverage.py), at a higher F_q for the same training; no mixture needed "
                        "(implies --no-z2)")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    t.add_argument("--batch", type=int, default=256, help="samples per training step (default 256)")
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the cosine schedule (default 3e-3)")
    t.add_argument("--translations", type=int, default=1,
                   help="train the mixture of the flow over lattice shifts by 0..t-1 sites per axis "
                        "(LatticeSymmetrized: never a higher F_q, t**dim times the inverse passes; default 1 = off)")
    t.add_argument("--check-every", type=int, default=None,
                   help="steps between importance-sampled free-energy checks (default steps/10)")
    s = p.add_argument_group("evaluation and sampling")
    s.add_argument("--eval-samples", type=int, default=16384,
                   help="flow samples for the final free-energy estimate (default 16384)")
    s.add_argument("--ais-particles", type=int, default=1024,
                   help="annealed-importance-sampling particles from the trained flow (default 1024; 0 skips it)")
    s.add_argument("--ais-temperatures", type=int, default=32,
                   help="AIS temperatures, one HMC transition of 5 leapfrog steps each (default 32)")
    s.add_argument("--mh-walkers", "--walkers", dest="mh_walkers", type=int, default=64,
                   help="flow-MH walkers, started from the latent HMC draws (default 64)")
    s.add_argument("--mh-steps", type=int, default=1000, help="flow-MH steps per walker (default 1000)")
    s.add_argument("--hmc-walkers", type=int, default=32, help="latent HMC walkers (default 32)")
    s.add_argument("--hmc-samples", type=int, default=150, help="latent HMC draws per walker (default 150)")
    s.add_argument("--hmc-metric", choices=("unit", "diag", "dense"), default="dense",
                   help="latent HMC metric, adapted during warm-up (default dense; unit is the paper's)")
    s.add_argument("--nuts-chains", type=int, default=2, help="physical NUTS chains (default 2; 0 skips it)")
    s.add_argument("--nuts-samples", type=int, default=200, help="physical NUTS draws per chain (default 200)")
    s.add_argument("--save-configurations", action="store_true",
                   help="store the sampled configurations in the netCDF files (large)")
    if model == "ising":
        p.add_argument("--T", type=float, default=ISING_TC, help="temperature (default T_c = 2/ln(1+sqrt 2))")
        p.add_argument("--wolff-updates", type=int, default=20000,
                       help="Wolff cluster updates of the discrete-Ising reference for <m^2> (default 20000)")
        p.add_argument("--exact-draws", type=int, default=4000,
                       help="exact draws of the relaxed model (Wolff spins -> x ~ N(Ks, K)) for the coverage check "
                            "and KL(p||q) (default 4000; 0 checks coverage on the latent-HMC draws instead)")
    else:
        p.add_argument("--kappa", type=float, default=0.2, help="hopping parameter kappa (default 0.2)")
        p.add_argument("--lam", type=float, default=0.02, help="quartic coupling lambda >= 0 (default 0.02)")


def _energy(args: argparse.Namespace, dtype: torch.dtype) -> Any:
    if args.study == "phi4":
        e = Phi4(args.L, kappa=args.kappa, lam=args.lam, dim=args.dim)
    else:
        e = IsingRelaxed(args.L, args.T, dim=args.dim)
    return e.to(device=args.device, dtype=dtype)


def _references(args: argparse.Namespace, energy: Any) -> dict[str, tuple[float, float | None, str]]:
    """Reference values of the observables: ``{name: (value, error or None, label)}``."""
    refs: dict[str, tuple[float, float | None, str]] = {}
    if args.study != "ising":
        return refs
    refs["energy_per_site"] = (float(energy.exact_energy_per_site()), None, "exact (Kaufman)" if args.dim == 2
                               else "exact (transfer matrix)")
    try:
        refs["m2"] = (float(energy.exact_m2()), None, "exact (enumeration)")
    except (NoExactSolutionError, NotImplementedError):
        if args.wolff_updates > 0:
            w = wolff_ising(args.L, args.T, dim=args.dim, n_updates=args.wolff_updates, seed=args.seed)
            refs["m2"] = (w.m2, w.m2_err, f"Wolff MC ({w.updates} updates)")
    return refs


def _exact_f(energy: Any) -> float | None:
    try:
        return -float(energy.temperature) * float(energy.log_z())
    except (NotImplementedError, NoExactSolutionError, NotPositiveDefiniteError):
        return None


def _flow_config(args: argparse.Namespace, out: Any) -> NeuralRGConfig:
    """The flow of this run: from the options, or, with ``--resume``, from the run's own ``config.json`` (the flow
    the checkpoint was made with, older versions' missing fields filled as those flows had them), so a run started
    under other defaults resumes without repeating its options; differing flow options are ignored, with a warning."""
    asked = NeuralRGConfig(L=args.L, dim=args.dim, n_levels=args.depth, n_couplings=args.couplings,
                           hidden=args.hidden, head=args.head, coupling=args.coupling, odd=args.odd)
    saved_path = Path(out) / "config.json"
    if not (args.resume and saved_path.exists()):
        return asked
    saved = json.loads(saved_path.read_text()).get("flow", {})
    if saved.get("kind") != "neural_rg":
        return asked
    cfg = NeuralRGConfig.from_dict(normalized_flow_config(saved))
    differ = {k: (v, getattr(cfg, k)) for k, v in asked.to_dict().items() if getattr(cfg, k) != v}
    if differ:
        logger.warning("resuming with the run's own flow (%s); the options asked for %s",
                       ", ".join(f"{k}={b!r}" for k, (_, b) in differ.items()),
                       ", ".join(f"{k}={a!r}" for k, (a, _) in differ.items()))
    return cfg


def run_lattice_study(args: argparse.Namespace) -> StudyOutcome | None:
    """Run the ``ising``/``phi4`` study described by the parsed options (``None`` on ranks other than 0)."""
    from .. import plotting

    dtype = getattr(torch, args.dtype)
    torch.set_default_dtype(dtype)
    show = not args.quiet and sys.stderr.isatty()
    energy = _energy(args, dtype)
    if not 1 <= args.translations <= args.L:
        raise LatticeSizeError(f"--translations must be between 1 (off) and L = {args.L}, got {args.translations}: "
                               "2 (shifts by 0/1 site) gives most of the gain")
    rank, world = init_from_environment()
    out = args.out
    if world > 1:  # every rank must use rank 0's folder
        box = [str(out)]
        torch.distributed.broadcast_object_list(box, src=0)
        out = type(args.out)(box[0])
    cfg = _flow_config(args, out)
    torch.manual_seed(args.seed)
    flow = neural_rg(cfg).to(device=args.device, dtype=dtype)
    run = RunFolder(out, resume=args.resume) if rank == 0 else None
    if world > 1:
        torch.distributed.barrier()
    options = {k: v for k, v in vars(args).items() if k != "func"}
    if run is not None and not args.resume:  # a resume never rewrites the run's options (it may yet be refused)
        run.write_json("options.json", options)
    z2 = not args.no_z2 and not cfg.odd  # an odd flow is symmetric already: the mixture would change nothing
    f_exact = _exact_f(energy)
    check_every = args.check_every or max(1, args.steps // 10)
    checks = run.read_jsonl("checks.jsonl") if run is not None and args.resume else []

    def check(d: Any, rec: dict[str, float]) -> None:
        if rank != 0 or (d.step % check_every and d.step != d.config.steps):
            return
        est = d.estimate(2048)
        c = {"step": d.step, "fq": est.f_q, "fq_err": est.f_q_err, "f_is": est.f_is, "f_is_err": est.f_is_err,
             "ess_fraction": est.ess_fraction, "khat": est.khat}
        checks.append(c)
        run.append_jsonl("checks.jsonl", c)
        logger.info("step %d: F_q %.5f, F_IS %.5f ± %.5f, ESS/N %.3f", d.step, est.f_q, est.f_is, est.f_is_err,
                    est.ess_fraction)

    logger.info("distilling the NeuralRG flow (%d steps, batch %d) into %s", args.steps, args.batch, out)
    t0 = time.perf_counter()
    result = distill(
        energy, flow, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, z2_symmetric=z2,
        translations=args.translations, checkpoint_dir=out, resume=args.resume, progress=show,
        warmup=min(100, args.steps // 10),
        callbacks=[check],
    )
    train_s = time.perf_counter() - t0
    if rank != 0:  # evaluation and the report are rank 0's
        return None
    assert run is not None
    if args.resume:  # the checkpoint was accepted: record this continuation beside the original options
        run.append_jsonl("resumes.jsonl", options)
    d = result.distiller
    logger.info("estimating the free energy from %d samples", args.eval_samples)
    est = d.estimate(args.eval_samples)
    est_sym = None
    if args.translations == 1:  # the same flow's mixture over shifts by 0/1 site: F_q never higher (convex KL)
        est_sym = d.estimate(max(256, args.eval_samples // 4), translations=2)
    guide, q = result.guide, result.guide.distribution()

    ais_est, ais = None, None
    if args.ais_particles > 0:
        logger.info("annealed importance sampling: %d particles x %d temperatures", args.ais_particles,
                    args.ais_temperatures)
        ais = annealed_importance_sampling(energy, result.guide, num_particles=args.ais_particles,
                                           num_temperatures=args.ais_temperatures, keep_samples=False,
                                           batch_size=min(args.ais_particles, 1024), progress=show)
        ais_est = ais.estimate(None if f_exact is None else -f_exact / energy.temperature)

    refs = _references(args, energy)
    runs: dict[str, dict[str, Any]] = {}
    logger.info("latent HMC: %d walkers x %d draws", args.hmc_walkers, args.hmc_samples)
    hmc = latent_hmc_walkers(energy, guide, args.hmc_walkers, args.hmc_samples, warmup_steps=50, step_size=0.2,
                             num_steps=10, adapt_step_size=True, keep_samples=True, mass_matrix=args.hmc_metric,
                             progress=show)
    # does q cover p? log-weights of draws that do not rely on q's coverage (exact ones where the model has them,
    # else the HMC draws) vs of flow draws; KL(p||q) needs exact draws and the exact ln Z
    fkl = None
    if getattr(args, "exact_draws", 0) > 0 and hasattr(energy, "exact_samples"):
        logger.info("%d exact draws of the relaxed model (Wolff spins -> N(Ks, K))", args.exact_draws)
        x_ref, ref_name = energy.exact_samples(args.exact_draws, seed=args.seed).to(dtype), "exact"
        fkl = forward_kl(energy, q, x_ref)  # no_grad inside
    else:
        x_ref, ref_name = hmc.samples, "latent-HMC"
    coverage = coverage_check(energy, q, x_ref, n_proposal=min(args.eval_samples, 8192))
    del x_ref
    runs["latent_hmc"] = {"idata": to_inference_data(hmc, include_samples=args.save_configurations),
                          "seconds": hmc.sample_seconds, "grads": hmc.total_grad_evals,
                          "acceptance": hmc.acceptance_rate}
    logger.info("flow-MH: %d walkers x %d steps, started from the HMC draws", args.mh_walkers, args.mh_steps)
    t1 = time.perf_counter()
    mh = flow_mh(energy, q, num_walkers=args.mh_walkers, num_samples=args.mh_steps, warmup_steps=0,
                 init=stationary_starts(hmc.samples, args.mh_walkers), keep_samples=True, progress=show)
    del hmc
    runs["flow_mh"] = {"idata": to_inference_data(mh, energy=energy, include_samples=args.save_configurations),
                       "seconds": time.perf_counter() - t1, "grads": None, "acceptance": mh.acceptance_rate}
    last = mh.samples[:, -1]
    del mh
    if args.nuts_chains > 0:
        logger.info("physical NUTS: %d chains x %d draws", args.nuts_chains, args.nuts_samples)
        nuts = physical_nuts(energy, args.nuts_samples, warmup_steps=max(50, args.nuts_samples // 3),
                             num_chains=args.nuts_chains, init=q, keep_samples=args.save_configurations,
                             progress=show)
        runs["physical_nuts"] = {"idata": to_inference_data(nuts, include_samples=args.save_configurations),
                                 "seconds": nuts.sample_seconds, "grads": nuts.total_grad_evals,
                                 "acceptance": nuts.acceptance_rate}

    eff: dict[str, dict[str, Any]] = {}
    for name, r in runs.items():
        run.write_netcdf(f"{name}.nc", r["idata"])
        eff[name] = sampling_efficiency(r["idata"], ("m2", "energy_per_site"), seconds=r["seconds"],
                                        grad_evals=r["grads"])

    # ------------------------------------------------------------------ summary
    summary: dict[str, Any] = {
        "study": args.study, "L": args.L, "dim": args.dim, "steps": d.step, "batch": args.batch,
        "train_seconds": train_s, "free_energy": est.to_dict(), "f_exact": f_exact, "references": refs,
        "translations": args.translations,
        "free_energy_shift_mixture": None if est_sym is None else est_sym.to_dict(),
        "coverage": {**coverage.to_dict(), "reference_draws": ref_name},
        "kl_p_q": None if fkl is None else fkl.to_dict(),
        "kl_q_p": None if f_exact is None else (est.f_q - f_exact) / float(energy.temperature),
        "annealed_importance_sampling": None if ais is None else {
            **ais_est.to_dict(), "temperatures": args.ais_temperatures, "seconds": ais.seconds,
            "grad_evals_per_particle": ais.grad_evals_per_particle, "acceptance": float(ais.acceptance.mean())},
        "samplers": {n: {"acceptance": r["acceptance"], "seconds": r["seconds"], "grad_evals": r["grads"],
                         **{f"{v}_{k}": x for v, e in eff[n].items() for k, x in e.items()}}
                     for n, r in runs.items()},
    }
    if args.study == "ising":
        summary["T"] = args.T
        summary["log_z_ising_exact"] = float(energy.log_z_ising()) if args.dim in (1, 2) else None
    else:
        summary.update(kappa=args.kappa, lam=args.lam)
    if "physical_nuts" in eff and eff["physical_nuts"]["m2"]["ess_per_grad"]:
        base = eff["physical_nuts"]["m2"]["ess_per_grad"]
        summary["m2_ess_per_grad_ratio_latent_hmc_vs_physical_nuts"] = eff["latent_hmc"]["m2"]["ess_per_grad"] / base
        summary["m2_ess_per_grad_ratio_reliable"] = _ess_too_small(eff) is None
    run.write_json("summary.json", summary)

    rows: list[Row] = [
        ("variational F_q", fmt_value(est.f_q, est.f_q_err), fmt_value(f_exact) + (" exact" if f_exact else ""),
         fmt_rel(est.f_q, f_exact, est.f_q_err)),
        ("importance-sampled F", fmt_value(est.f_is, est.f_is_err), fmt_value(f_exact),
         fmt_rel(est.f_is, f_exact, est.f_is_err)),
        ("ESS/N, PSIS k-hat", f"{est.ess_fraction:.3f}, {est.khat:.2f}", "", ""),
    ]
    if est_sym is not None:
        rows.append(("F_q of its mixture over shifts by 0/1 site", fmt_value(est_sym.f_q, est_sym.f_q_err),
                     fmt_value(f_exact), fmt_rel(est_sym.f_q, f_exact, est_sym.f_q_err)))
    if ais_est is not None:
        rows += [
            (f"annealed-IS F ({args.ais_temperatures} temperatures)", fmt_value(ais_est.f_is, ais_est.f_is_err),
             fmt_value(f_exact), fmt_rel(ais_est.f_is, f_exact, ais_est.f_is_err)),
            ("annealed-IS ESS/N, PSIS k-hat", f"{ais_est.ess_fraction:.3f}, {ais_est.khat:.2f}", "", ""),
        ]
    rows += [
        (f"{ref_name} draws beyond every flow draw's ln w", f"{coverage.fraction_beyond:.3f}", "< 0.01",
         "covered" if coverage.covered else f"HOLE ({coverage.gap_nats:+.1f} nats)"),
    ]
    if fkl is not None and f_exact is not None:
        rows.append(("KL(p‖q), KL(q‖p) in nats", f"{fkl.kl:.3f} ± {fkl.kl_err:.3f}, "
                     f"{summary['kl_q_p']:.3f}", "0, 0", "forward from exact draws; reverse = (F_q - F)/T"))
    for obs, label in (("m2", "⟨m²⟩"), ("energy_per_site", "energy / site")):
        ref = refs.get(obs)
        for name in runs:
            e = eff[name][obs]
            rows.append((f"{label} {LABELS[name]}", fmt_value(e["mean"], e["mcse"], 4),
                         "" if ref is None else f"{fmt_value(ref[0], ref[1], 4)} {ref[2].split(' (')[0]}",
                         "" if ref is None else fmt_rel(e["mean"], ref[0], e["mcse"], ref[1])))
    for name, r in runs.items():
        e = eff[name]["m2"]
        per = f", {e['ess_per_grad']:.2e}/grad" if e["ess_per_grad"] else ""
        rows.append((f"{LABELS[name]}: acceptance, ESS(m²)", f"{r['acceptance']:.2f}, {e['ess']:.0f}",
                     f"{e['ess_per_second']:.1f}/s{per}", ""))
    ratio = summary.get("m2_ess_per_grad_ratio_latent_hmc_vs_physical_nuts")
    if ratio:
        ok = summary["m2_ess_per_grad_ratio_reliable"]
        rows.append(("ESS(m²)/grad latent HMC / physical NUTS", f"{ratio:.1f}x", "",
                     "" if ok else f"unreliable: an ESS < {MIN_RELIABLE_ESS}"))

    # ------------------------------------------------------------------ figures
    figs = [("Free energy during training",
             run.save_figure("training.png", plotting.plot_training(d.history, checks, f_exact)),
             "Per-step variational free energy F_q (an upper bound of F) and its running mean; orange: "
             "importance-sampled F with error bars every few steps; right: relative errors on a log scale.")]
    traces = {LABELS[n]: {o: r["idata"].posterior[o].values for o in ("m2", "energy_per_site")}
              for n, r in runs.items()}
    figs.append(("Observables vs draw", run.save_figure("observables.png", plotting.plot_observable_traces(
        traces, refs, {"m2": "⟨m²⟩", "energy_per_site": "energy per site"})),
        "Running means per sampler (averaged over chains) with the reference and its ±2σ band."))
    shown = torch.tanh(last[:16]) if args.study == "ising" else last[:16]
    figs.append(("Sampled configurations", run.save_figure("configurations.png", plotting.plot_configurations(
        shown.detach().cpu(), title="flow-MH draws" + (" (tanh x = <s | x>)" if args.study == "ising" else ""))),
        "Last state of the first 16 flow-MH walkers (started from latent-HMC draws): equilibrium draws."))
    figs += _arviz_figures(run, runs)
    flow_ = d.flow
    if hasattr(flow_, "renormalized_variables"):
        with torch.no_grad():
            per = [v[0].cpu() for v in flow_.renormalized_variables(last[:1].to(dtype))]
            many = [v.cpu() for v in flow_.renormalized_variables(last.to(dtype))]
        figs.append(("Renormalized variables per scale", run.save_figure(
            "renormalized.png", plotting.plot_renormalized_variables(last[0].cpu(), per, many)),
            "Top: one equilibrium configuration and its latent variables z = g⁻¹(x) at each RG level. Bottom: the "
            "distribution of each level's latents over all walkers against N(0, 1), which a perfect flow gives."))
    title = (f"NeuralRG run: Ising L={args.L} (dim {args.dim}), T={args.T:.6g}" if args.study == "ising"
             else f"NeuralRG run: φ⁴ L={args.L} (dim {args.dim}), κ={args.kappa:g}, λ={args.lam:g}")
    sym = "odd flow (Z2-symmetric by construction)" if cfg.odd else f"Z2 symmetrization {'on' if z2 else 'off'}"
    intro = [f"Trained {d.step} steps (batch {args.batch}, lr {args.lr:g}, {sym}) "
             f"in {train_s:.1f} s; flow with {sum(p.numel() for p in flow_.parameters())} parameters.",
             "Free energies are F = -T ln Z of the simulated model (for Ising: the continuous relaxation, whose exact "
             "ln Z is Kaufman's ln Z_Ising plus a Gaussian constant; summary.json has both)."]
    report = run.write_report(title, intro, rows, figs, notes=_notes(args, est, coverage, eff, ais_est, ref_name))
    return StudyOutcome(report, console_table(rows), summary)


def _arviz_figures(run: RunFolder, runs: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    names = [n for n in ("latent_hmc", "physical_nuts") if n in runs]
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 2.8 * len(names)), squeeze=False)
    for i, n in enumerate(names):
        sub = runs[n]["idata"].sel(chain=slice(0, 4))
        lag = min(100, sub.posterior.sizes["draw"] - 1)
        az.plot_autocorr(sub, var_names=["m2", "energy_per_site"], combined=True, ax=axes[i], max_lag=lag)
        for ax in axes[i]:
            ax.set_title(f"{LABELS[n]}: {ax.get_title()}", fontsize=9)
    fig.tight_layout()
    out.append(("Autocorrelation (ArviZ)", run.save_figure("autocorr.png", fig),
                "ArviZ autocorrelation of m² and energy per site (first 4 chains combined) for latent HMC and "
                "physical NUTS: the latent chains decorrelate in far fewer draws."))
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 2.6 * len(names)), squeeze=False)
    for i, n in enumerate(names):
        sub = runs[n]["idata"].sel(chain=slice(0, 4))
        az.plot_trace(sub, var_names=["m2"], axes=axes[i:i + 1], compact=True)
        axes[i, 0].set_title(f"{LABELS[n]}: m2", fontsize=9)
        axes[i, 1].set_title(f"{LABELS[n]}: m2 trace (4 chains)", fontsize=9)
    fig.tight_layout()
    out.append(("Trace (ArviZ)", run.save_figure("trace.png", fig), "ArviZ trace plot of m² (first 4 chains)."))
    return out


def stationary_starts(draws: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` start points for flow-MH from MCMC draws ``(chains, draws, *event)``: the last draw of every chain,
    then (when ``n`` exceeds the chains) draws further back, spaced over the second half of each chain, so that no
    two starts coincide while there are enough draws. Chains that start in equilibrium stay there, so flow-MH is
    unbiased from its first step even where the flow misses part of p (a walker that starts in such a hole holds
    its state, and the between-chain spread shows it)."""
    C, D = draws.shape[:2]
    per = -(-n // C)  # draws per chain
    gap = max(1, D // (2 * per))
    idx = [max(0, D - 1 - i * gap) for i in range(per)]
    return draws[:, idx].transpose(0, 1).reshape(-1, *draws.shape[2:])[:n].clone()


def _ess_too_small(eff: dict[str, dict[str, Any]]) -> str | None:
    """``"latent HMC walkers 212, physical NUTS 5"`` if an ESS(m²) of the compared samplers is below
    :data:`MIN_RELIABLE_ESS` (so their efficiency ratio is noise), else ``None``."""
    ess = {k: eff[k]["m2"]["ess"] for k in ("latent_hmc", "physical_nuts") if k in eff}
    if not ess or min(ess.values()) >= MIN_RELIABLE_ESS:
        return None
    return ", ".join(f"{LABELS[k]} {v:.0f}" for k, v in ess.items())


def _notes(args: argparse.Namespace, est: Any, coverage: Any, eff: dict[str, dict[str, Any]],
           ais_est: Any = None, ref_name: str = "latent-HMC") -> list[str]:
    notes = []
    listed = _ess_too_small(eff) if "physical_nuts" in eff else None
    if listed is not None:
        notes.append(
            f"Sampling efficiency: an ESS(m²) below {MIN_RELIABLE_ESS} ({listed}) is not a measurement, and neither "
            "is the ESS-per-gradient ratio built on it; the default run keeps NUTS short. For the comparison run "
            "longer chains (--nuts-samples 1500 --nuts-chains 4 gives ESS ≈ 400 at L=8) or see "
            "benchmarks/sampling.py.")
    if not coverage.covered:
        notes.append(
            f"Coverage: {coverage.fraction_beyond:.1%} of the {ref_name} draws have log-weights above every one of "
            f"{coverage.n_proposal} flow draws (99th percentile {coverage.gap_nats:+.1f} nats beyond): the flow "
            "(almost) never proposes part of the distribution — reverse KL is mode-seeking. Importance sampling, and "
            "flow-MH started from flow draws, are exact only in the limit and cannot correct this in a practical "
            "run; this report starts flow-MH from the HMC draws (in equilibrium, so it stays unbiased, but its "
            "walkers in the hole rarely move). Trust the HMC estimates and the annealed-IS F, and train longer or "
            "larger.")
    if est.khat > 0.7:
        notes.append(f"PSIS k-hat {est.khat:.2f} > 0.7: the importance weights are heavy-tailed, so the IS estimate "
                     "and flow-MH mixing are unreliable; train longer (--steps) or with a larger batch"
                     + ("; the annealed-IS estimate moves the flow's samples towards p with HMC and is the one to "
                        "trust." if ais_est is not None else "."))
    elif est.khat > 0.5:
        notes.append(f"PSIS k-hat {est.khat:.2f} in (0.5, 0.7]: importance weights moderately heavy-tailed; errors "
                     "of the IS estimate may be underestimated.")
    if args.study == "ising":
        notes.append("The Ising model is simulated through its Hubbard-Stratonovich relaxation (continuous field "
                     "x); ⟨m²⟩ and the energy use improved estimators whose means are the exact Ising values.")
    if not math.isfinite(est.f_is_err):
        notes.append("The importance-sampled error is not finite: too few effective samples.")
    return notes
