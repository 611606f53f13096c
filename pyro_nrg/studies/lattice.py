r"""The NeuralRG study of a lattice model (Ising relaxation or φ⁴), end to end, into a run folder.

Five phases, each a function that the benchmarks can call on its own, taking the typed study config
(:class:`~pyro_nrg.studies.config.LatticeStudyConfig`) and the previous phases' results:

1. :func:`train` — distil the hierarchical flow by variational free energy (:func:`~pyro_nrg.infer.distill`), with
   an importance-sampled free-energy check every ``check_every`` steps (``checks.jsonl``) and checkpoints; a
   resumed run's logs are cut back to its checkpoint's step;
2. :func:`estimate` — :math:`F_q`, the importance-sampled and the annealed-importance-sampled :math:`F` against
   the exact value where one exists;
3. :func:`sample` — the Boltzmann distribution three ways: flow-proposal Metropolis (exact), many-walker HMC in
   latent space on the renormalized energy, and Pyro NUTS in physical space (the baseline); the coverage check;
4. :func:`compare` — every :math:`\langle m^2\rangle` and energy per site against the references: exact
   enumeration (:math:`N \le 20`), Kaufman's exact energy, and a Wolff cluster Monte Carlo of the discrete Ising
   model where :math:`\langle m^2\rangle` has no closed form; ArviZ netCDF per sampler, ``summary.json``;
5. :func:`report` — figures, ``report.md`` and a one-screen table.

:func:`run_lattice_study` runs them in order (each with a progress bar on a terminal).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..analysis import MIN_RELIABLE_ESS, sampling_efficiency, to_inference_data
from ..energies import IsingRelaxed, Phi4, wolff_ising
from ..errors import CheckpointError, NoExactSolutionError, NotPositiveDefiniteError
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
from ..infer.distillation import DistillResult, checkpoint_step, load_checkpoint
from ..infer.distributed import init_from_environment
from ..infer.starts import stationary_starts
from .config import LatticeStudyConfig
from .report import Row, RunFolder, StudyOutcome, console_table, fmt_rel, fmt_value, read_json_file

__all__ = [
    "LatticeSetup",
    "Trained",
    "Estimates",
    "Samples",
    "Compared",
    "prepare",
    "train",
    "estimate",
    "sample",
    "compare",
    "report",
    "run_lattice_study",
    "checkpoint_step",
    "MIN_RELIABLE_ESS",
]

logger = logging.getLogger("pyro_nrg")

SAMPLERS = ("flow_mh", "latent_hmc", "physical_nuts")
LABELS = {"flow_mh": "flow-MH", "latent_hmc": "latent HMC walkers", "physical_nuts": "physical NUTS"}


@dataclass
class LatticeSetup:
    """What :func:`prepare` builds: the energy, number type, flow configuration, Z₂ mixture flag and exact F."""

    energy: Any
    dtype: torch.dtype
    flow_config: NeuralRGConfig
    z2: bool
    f_exact: float | None
    show: bool = False


@dataclass
class Trained:
    """What :func:`train` returns: the distillation result, the importance-sampled checks and the wall time."""

    result: DistillResult
    checks: list[dict[str, Any]]
    seconds: float


@dataclass
class Estimates:
    """What :func:`estimate` returns: the free-energy estimates of the trained flow (and of its shift mixture,
    and annealed importance sampling, where run)."""

    est: Any
    est_sym: Any = None
    ais: Any = None
    ais_est: Any = None


@dataclass
class Samples:
    """What :func:`sample` returns: per sampler ``{"idata", "seconds", "grads", "acceptance"}``, the coverage
    check, KL(p‖q) from exact draws, the name of the reference draws and the last flow-MH states."""

    runs: dict[str, dict[str, Any]]
    coverage: Any
    fkl: Any
    ref_name: str
    last: torch.Tensor


@dataclass
class Compared:
    """What :func:`compare` returns: references, sampling efficiencies and the summary dict (``summary.json``)."""

    refs: dict[str, tuple[float, float | None, str]]
    eff: dict[str, dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def _energy(config: LatticeStudyConfig, dtype: torch.dtype) -> Any:
    if config.study == "phi4":
        e = Phi4(config.L, kappa=config.kappa, lam=config.lam, dim=config.dim)
    else:
        e = IsingRelaxed(config.L, config.T, dim=config.dim)
    return e.to(device=config.device, dtype=dtype)


def _references(config: LatticeStudyConfig, energy: Any) -> dict[str, tuple[float, float | None, str]]:
    """Reference values of the observables: ``{name: (value, error or None, label)}``."""
    refs: dict[str, tuple[float, float | None, str]] = {}
    if config.study != "ising":
        return refs
    refs["energy_per_site"] = (float(energy.exact_energy_per_site()), None, "exact (Kaufman)" if config.dim == 2
                               else "exact (transfer matrix)")
    try:
        refs["m2"] = (float(energy.exact_m2()), None, "exact (enumeration)")
    except (NoExactSolutionError, NotImplementedError):
        if config.wolff_updates > 0:
            w = wolff_ising(config.L, config.T, dim=config.dim, n_updates=config.wolff_updates, seed=config.seed)
            refs["m2"] = (w.m2, w.m2_err, f"Wolff MC ({w.updates} updates)")
    return refs


def _exact_f(energy: Any) -> float | None:
    try:
        return -float(energy.temperature) * float(energy.log_z())
    except (NotImplementedError, NoExactSolutionError, NotPositiveDefiniteError):
        return None


def _flow_config(config: LatticeStudyConfig) -> NeuralRGConfig:
    """The flow of this run: from the options, or, with ``--resume``, from the run's own ``config.json`` (the flow
    the checkpoint was made with, older versions' missing fields filled as those flows had them), so a run started
    under other defaults resumes without repeating its options; differing flow options are ignored, with a warning."""
    asked = NeuralRGConfig(L=config.L, dim=config.dim, n_levels=config.depth, n_couplings=config.couplings,
                           hidden=config.hidden, head=config.head, coupling=config.coupling, odd=config.odd)
    saved_path = Path(str(config.out)) / "config.json"
    if not (config.resume and saved_path.exists()):
        return asked
    saved = read_json_file(saved_path)
    saved = saved.get("flow", {}) if isinstance(saved, dict) else {}
    if not isinstance(saved, dict) or saved.get("kind") != "neural_rg":
        return asked
    try:
        cfg = NeuralRGConfig.from_dict(normalized_flow_config(saved))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{saved_path} holds a flow configuration this version cannot build ({exc}): restore "
                              "the file, or start a new run in another --out") from None
    differ = {k: (v, getattr(cfg, k)) for k, v in asked.to_dict().items() if getattr(cfg, k) != v}
    if differ:
        logger.warning("resuming with the run's own flow (%s); the options asked for %s",
                       ", ".join(f"{k}={b!r}" for k, (_, b) in differ.items()),
                       ", ".join(f"{k}={a!r}" for k, (a, _) in differ.items()))
    return cfg


def prepare(config: LatticeStudyConfig) -> LatticeSetup:
    """Phase 0: the energy (in the run's number type and device), the flow configuration and the exact F."""
    dtype = getattr(torch, config.dtype)
    torch.set_default_dtype(dtype)
    energy = _energy(config, dtype)
    flow_config = _flow_config(config)
    z2 = not config.no_z2 and not flow_config.odd  # an odd flow is symmetric already: the mixture changes nothing
    show = not config.quiet and sys.stderr.isatty()
    return LatticeSetup(energy, dtype, flow_config, z2, _exact_f(energy), show)


def _resume_point(config: LatticeStudyConfig, run: RunFolder | None) -> int | None:
    """With ``--resume``: the checkpoint's step (``None``: none yet, training restarts from 0), after refusing a
    finished run and cutting ``metrics.jsonl`` and ``checks.jsonl`` back to that step (each step once)."""
    if not config.resume:
        return None
    out = Path(str(config.out))
    step = None
    if (out / "checkpoint.pt").exists():
        step = int(load_checkpoint(out / "checkpoint.pt")["step"])  # a damaged one: the named error, here
    if step is not None and step >= config.steps and (out / "summary.json").exists():
        raise CheckpointError(
            f"the run in {out} is finished (trained {step} of --steps {config.steps}, report written): nothing to "
            f"resume; pass --steps N with N > {step} to train it further, or start a new run in another --out")
    if run is not None:
        run.cut_jsonl("metrics.jsonl", step or 0)
        run.cut_jsonl("checks.jsonl", step or 0)
    if step is None:
        logger.warning("no checkpoint in %s yet: training starts again from step 0", out)
    return step


def train(config: LatticeStudyConfig, setup: LatticeSetup, run: RunFolder | None, rank: int = 0) -> Trained:
    """Phase 1: distil the flow, with checks every ``check_every`` steps and checkpoints in the run folder."""
    out = Path(str(config.out))
    resumed_at = _resume_point(config, run)
    torch.manual_seed(config.seed)
    flow = neural_rg(setup.flow_config).to(device=config.device, dtype=setup.dtype)
    check_every = config.check_every_steps()
    checks = run.read_jsonl("checks.jsonl") if run is not None and config.resume else []

    def check(d: Any, rec: dict[str, float]) -> None:
        if rank != 0 or (d.step % check_every and d.step != d.config.steps):
            return
        est = d.estimate(2048)
        c = {"step": d.step, "f_q": est.f_q, "f_q_err": est.f_q_err, "f_is": est.f_is, "f_is_err": est.f_is_err,
             "ess_fraction": est.ess_fraction, "khat": est.khat}
        checks.append(c)
        assert run is not None
        run.append_jsonl("checks.jsonl", c)
        logger.info("step %d: F_q %.5f, F_IS %.5f ± %.5f, ESS/N %.3f", d.step, est.f_q, est.f_is, est.f_is_err,
                    est.ess_fraction)

    if resumed_at is not None and resumed_at >= config.steps:
        logger.info("training complete at step %d (the checkpoint in %s): evaluating", resumed_at, out)
    else:
        logger.info("distilling the NeuralRG flow (steps %d to %d, batch %d) into %s", resumed_at or 0,
                    config.steps, config.batch_size, out)
    t0 = time.perf_counter()
    result = distill(
        setup.energy, flow, steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
        z2_symmetric=setup.z2, translations=config.translations, checkpoint_dir=out, resume=config.resume,
        progress=setup.show, warmup_steps=min(100, config.steps // 10), checkpoint_every=config.checkpoint_every,
        callbacks=[check], fast=config.compile,
    )
    seconds = time.perf_counter() - t0
    if config.resume and run is not None:  # the checkpoint was accepted: record this continuation
        run.append_jsonl("resumes.jsonl", config.to_dict())
    return Trained(result, checks, seconds)


def estimate(config: LatticeStudyConfig, setup: LatticeSetup, trained: Trained) -> Estimates:
    """Phase 2: F_q and importance-sampled F of the trained flow (and of its shift mixture), annealed IS."""
    d = trained.result.distiller
    logger.info("estimating the free energy from %d samples", config.eval_samples)
    out = Estimates(d.estimate(config.eval_samples))
    if config.translations == 1:  # the same flow's mixture over shifts by 0/1 site: F_q never higher (convex KL)
        out.est_sym = d.estimate(max(256, config.eval_samples // 4), translations=2)
    if config.ais_particles > 0:
        logger.info("annealed importance sampling: %d particles x %d temperatures", config.ais_particles,
                    config.ais_temperatures)
        out.ais = annealed_importance_sampling(
            setup.energy, trained.result.guide, num_particles=config.ais_particles,
            num_temperatures=config.ais_temperatures, keep_samples=False,
            batch_size=min(config.ais_particles, 1024), progress=setup.show)
        out.ais_est = out.ais.estimate(None if setup.f_exact is None else -setup.f_exact / setup.energy.temperature)
    return out


def sample(config: LatticeStudyConfig, setup: LatticeSetup, trained: Trained) -> Samples:
    """Phase 3: latent HMC walkers, the coverage check (and KL(p‖q) from exact draws), flow-MH started from the
    HMC draws, physical NUTS."""
    energy, dtype, show = setup.energy, setup.dtype, setup.show
    guide = trained.result.guide
    q = guide.distribution()
    runs: dict[str, dict[str, Any]] = {}
    logger.info("latent HMC: %d walkers x %d draws", config.hmc_walkers, config.hmc_samples)
    hmc = latent_hmc_walkers(energy, guide, config.hmc_walkers, config.hmc_samples, warmup_steps=50, step_size=0.2,
                             num_steps=10, adapt_step_size=True, keep_samples=True, mass_matrix=config.hmc_metric,
                             progress=show)
    # does q cover p? log-weights of draws that do not rely on q's coverage (exact ones where the model has them,
    # else the HMC draws) vs of flow draws; KL(p||q) needs exact draws and the exact ln Z
    fkl = None
    if getattr(config, "exact_draws", 0) > 0 and hasattr(energy, "exact_samples"):
        logger.info("%d exact draws of the relaxed model (Wolff spins -> N(Ks, K))", config.exact_draws)
        x_ref, ref_name = energy.exact_samples(config.exact_draws, seed=config.seed).to(dtype), "exact"
        fkl = forward_kl(energy, q, x_ref)  # no_grad inside
    else:
        x_ref, ref_name = hmc.samples, "latent-HMC"
    coverage = coverage_check(energy, q, x_ref, n_proposal=min(config.eval_samples, 8192))
    del x_ref
    runs["latent_hmc"] = {"idata": to_inference_data(hmc, include_samples=config.save_configurations),
                          "seconds": hmc.sample_seconds, "grads": hmc.total_grad_evals,
                          "acceptance": hmc.acceptance_rate}
    logger.info("flow-MH: %d walkers x %d steps, started from the HMC draws", config.mh_walkers, config.mh_steps)
    t1 = time.perf_counter()
    mh = flow_mh(energy, q, num_walkers=config.mh_walkers, num_samples=config.mh_steps, warmup_steps=0,
                 init=stationary_starts(hmc.samples, config.mh_walkers), keep_samples=True, progress=show)
    del hmc
    runs["flow_mh"] = {"idata": to_inference_data(mh, energy=energy, include_samples=config.save_configurations),
                       "seconds": time.perf_counter() - t1, "grads": None, "acceptance": mh.acceptance_rate}
    last = mh.samples[:, -1]
    del mh
    if config.nuts_chains > 0:
        logger.info("physical NUTS: %d chains x %d draws", config.nuts_chains, config.nuts_samples)
        nuts = physical_nuts(energy, config.nuts_samples, warmup_steps=max(50, config.nuts_samples // 3),
                             num_chains=config.nuts_chains, init=q, keep_samples=config.save_configurations,
                             progress=show)
        runs["physical_nuts"] = {"idata": to_inference_data(nuts, include_samples=config.save_configurations),
                                 "seconds": nuts.sample_seconds, "grads": nuts.total_grad_evals,
                                 "acceptance": nuts.acceptance_rate}
    return Samples(runs, coverage, fkl, ref_name, last)


def compare(config: LatticeStudyConfig, setup: LatticeSetup, trained: Trained, estimates: Estimates,
            samples: Samples, run: RunFolder) -> Compared:
    """Phase 4: references, sampling efficiencies, netCDF per sampler and ``summary.json``."""
    energy, f_exact, runs = setup.energy, setup.f_exact, samples.runs
    est, est_sym, ais, ais_est = estimates.est, estimates.est_sym, estimates.ais, estimates.ais_est
    d = trained.result.distiller
    refs = _references(config, energy)
    eff: dict[str, dict[str, Any]] = {}
    for name, r in runs.items():
        run.write_netcdf(f"{name}.nc", r["idata"])
        eff[name] = sampling_efficiency(r["idata"], ("m2", "energy_per_site"), seconds=r["seconds"],
                                        grad_evals=r["grads"])
    summary: dict[str, Any] = {
        "study": config.study, "L": config.L, "dim": config.dim, "steps": d.step, "batch": config.batch_size,
        "train_seconds": trained.seconds, "free_energy": est.to_dict(), "f_exact": f_exact, "references": refs,
        "translations": config.translations,
        "free_energy_shift_mixture": None if est_sym is None else est_sym.to_dict(),
        "coverage": {**samples.coverage.to_dict(), "reference_draws": samples.ref_name},
        "kl_p_q": None if samples.fkl is None else samples.fkl.to_dict(),
        "kl_q_p": None if f_exact is None else (est.f_q - f_exact) / float(energy.temperature),
        "annealed_importance_sampling": None if ais is None else {
            **ais_est.to_dict(), "temperatures": config.ais_temperatures, "seconds": ais.seconds,
            "grad_evals_per_particle": ais.grad_evals_per_particle, "acceptance": float(ais.acceptance.mean())},
        "samplers": {n: {"acceptance": r["acceptance"], "seconds": r["seconds"], "grad_evals": r["grads"],
                         **{f"{v}_{k}": x for v, e in eff[n].items() for k, x in e.items()}}
                     for n, r in runs.items()},
    }
    if config.study == "ising":
        summary["T"] = config.T
        summary["log_z_ising_exact"] = float(energy.log_z_ising()) if config.dim in (1, 2) else None
    else:
        summary.update(kappa=config.kappa, lam=config.lam)
    if "physical_nuts" in eff and eff["physical_nuts"]["m2"]["ess_per_grad"]:
        base = eff["physical_nuts"]["m2"]["ess_per_grad"]
        summary["m2_ess_per_grad_ratio_latent_hmc_vs_physical_nuts"] = eff["latent_hmc"]["m2"]["ess_per_grad"] / base
        summary["m2_ess_per_grad_ratio_reliable"] = _ess_too_small(eff) is None
    run.write_json("summary.json", summary)
    return Compared(refs, eff, summary)


def report(config: LatticeStudyConfig, setup: LatticeSetup, trained: Trained, estimates: Estimates,
           samples: Samples, compared: Compared, run: RunFolder) -> StudyOutcome:
    """Phase 5: the summary table, figures and ``report.md``."""
    from .. import plotting

    f_exact, dtype = setup.f_exact, setup.dtype
    est, est_sym, ais_est = estimates.est, estimates.est_sym, estimates.ais_est
    runs, coverage, fkl, ref_name, last = samples.runs, samples.coverage, samples.fkl, samples.ref_name, samples.last
    refs, eff, summary = compared.refs, compared.eff, compared.summary
    d, checks, train_s = trained.result.distiller, trained.checks, trained.seconds
    cfg, z2 = setup.flow_config, setup.z2
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
            (f"annealed-IS F ({config.ais_temperatures} temperatures)", fmt_value(ais_est.f_is, ais_est.f_is_err),
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
    shown = torch.tanh(last[:16]) if config.study == "ising" else last[:16]
    figs.append(("Sampled configurations", run.save_figure("configurations.png", plotting.plot_configurations(
        shown.detach().cpu(), title="flow-MH draws" + (" (tanh x = <s | x>)" if config.study == "ising" else ""))),
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
    title = (f"NeuralRG run: Ising L={config.L} (dim {config.dim}), T={config.T:.6g}" if config.study == "ising"
             else f"NeuralRG run: φ⁴ L={config.L} (dim {config.dim}), κ={config.kappa:g}, λ={config.lam:g}")
    sym = "odd flow (Z2-symmetric by construction)" if cfg.odd else f"Z2 symmetrization {'on' if z2 else 'off'}"
    intro = [f"Trained {d.step} steps (batch {config.batch_size}, lr {config.lr:g}, {sym}) "
             f"in {train_s:.1f} s; flow with {sum(p.numel() for p in flow_.parameters())} parameters.",
             "Free energies are F = -T ln Z of the simulated model (for Ising: the continuous relaxation, whose exact "
             "ln Z is Kaufman's ln Z_Ising plus a Gaussian constant; summary.json has both)."]
    report = run.write_report(title, intro, rows, figs, notes=_notes(config, est, coverage, eff, ais_est, ref_name))
    return StudyOutcome(report, console_table(rows), summary)




def run_lattice_study(config: LatticeStudyConfig, run: RunFolder | None) -> StudyOutcome | None:
    """Run the ``ising``/``phi4`` study of a validated config into the run folder ``run`` (created and locked by
    the caller; ``None`` on ranks other than 0 under torchrun, which return ``None``)."""
    rank, _ = init_from_environment()
    setup = prepare(config)
    trained = train(config, setup, run, rank)
    if rank != 0:  # evaluation and the report are rank 0's
        return None
    assert run is not None
    estimates = estimate(config, setup, trained)
    samples = sample(config, setup, trained)
    compared = compare(config, setup, trained, estimates, samples, run)
    return report(config, setup, trained, estimates, samples, compared, run)


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


def _ess_too_small(eff: dict[str, dict[str, Any]]) -> str | None:
    """``"latent HMC walkers 212, physical NUTS 5"`` if an ESS(m²) of the compared samplers is below
    :data:`MIN_RELIABLE_ESS` (so their efficiency ratio is noise), else ``None``."""
    ess = {k: eff[k]["m2"]["ess"] for k in ("latent_hmc", "physical_nuts") if k in eff}
    if not ess or min(ess.values()) >= MIN_RELIABLE_ESS:
        return None
    return ", ".join(f"{LABELS[k]} {v:.0f}" for k, v in ess.items())


def _notes(config: LatticeStudyConfig, est: Any, coverage: Any, eff: dict[str, dict[str, Any]],
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
    if config.study == "ising":
        notes.append("The Ising model is simulated through its Hubbard-Stratonovich relaxation (continuous field "
                     "x); ⟨m²⟩ and the energy use improved estimators whose means are the exact Ising values.")
    if not math.isfinite(est.f_is_err):
        notes.append("The importance-sampled error is not finite: too few effective samples.")
    return notes
