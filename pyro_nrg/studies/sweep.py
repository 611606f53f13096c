"""The ``sweep`` study: one temperature-conditioned NeuralRG flow for a range of temperatures (``pyro-nrg sweep``).

Phases: distil a :class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow` over ``[t_min, t_max]``
(:class:`~pyro_nrg.infer.temperature.ConditionalDistiller`; checkpoints in the run folder), save it
(``flow.pt``, :class:`~pyro_nrg.distributions.ConditionalFlowDistribution`), estimate the thermodynamic curves
(:func:`~pyro_nrg.infer.thermo.thermodynamics`) against the exact finite-``L`` ones (Kaufman; transfer
matrix for ``L <= 10``; Wolff for :math:`\\langle m^2\\rangle` beyond), locate the C(T) peak, and check the Pyro model
that infers T from a few configurations (exact draws for ``L <= 10``, Wolff draws beyond) against the exact grid
posterior. Writes ``summary.json``, ``thermodynamics.json``, ``report.md`` and two figures.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

from ..energies import IsingRelaxed, exact_ising_spins, wolff_ising, wolff_spins
from ..energies.transfer_matrix import MAX_TRANSFER_MATRIX_L
from ..flows import conditional_neural_rg
from ..infer import DistillConfig
from ..infer.temperature import ConditionalDistiller, TemperatureRange
from ..infer.temperature_posterior import grid_temperature_posterior, infer_temperature
from ..infer.thermo import curve_peak, exact_curves, thermodynamics
from .config import SweepStudyConfig
from .report import Row, RunFolder, StudyOutcome, console_table, fmt_rel, fmt_value

__all__ = ["run_sweep_study"]

logger = logging.getLogger("pyro_nrg")


def run_sweep_study(opts: SweepStudyConfig, run: RunFolder) -> StudyOutcome:
    """Run the ``sweep`` study of a validated config into the run folder ``run`` (created, locked and given
    ``options.json`` by the caller)."""
    from ..plotting import plot_temperature_posterior, plot_thermodynamics, plot_training

    torch.manual_seed(opts.seed)
    dtype = getattr(torch, opts.dtype)
    L = opts.L
    energy_at = functools.partial(IsingRelaxed, L)
    flow = conditional_neural_rg(L=L, t_min=opts.t_min, t_max=opts.t_max, conditioning=opts.conditioning,
                                 hidden=opts.hidden, n_couplings=opts.couplings).to(dtype=dtype, device=opts.device)
    cfg = DistillConfig(steps=opts.steps, batch_size=opts.batch_size, lr=opts.lr, path_gradient=True,
                        seed=opts.seed, checkpoint_every=max(1, opts.steps // 10))
    temps = TemperatureRange(opts.t_min, opts.t_max, opts.train_temperatures)

    def energy_on_device(T: float) -> IsingRelaxed:
        return energy_at(T).to(device=opts.device)

    distiller = ConditionalDistiller(energy_on_device, flow, cfg, temps, checkpoint_dir=run.file("train"))
    logger.info("distilling one flow over T in [%g, %g] (L=%d, %d steps)", opts.t_min, opts.t_max, L, opts.steps)
    distiller.run(progress=not opts.quiet)
    q = distiller.distribution()
    q.save(run.file("flow.pt"))

    grid = TemperatureRange(opts.t_min, opts.t_max, opts.temperatures).grid()
    logger.info("thermodynamics at %d temperatures", len(grid))
    est = thermodynamics(q, energy_on_device, grid, n=opts.eval_samples, seed=opts.seed)
    exact = exact_curves(L, grid)
    if L > MAX_TRANSFER_MATRIX_L:  # Wolff where no exact <m^2> exists
        for row in exact["rows"]:
            w = wolff_ising(L, row["T"], n_updates=5000, seed=opts.seed)
            row["m2"], row["m2_err"] = w.m2, w.m2_err
    t_peak, c_peak = curve_peak(grid, [r["c"] for r in est])
    t_ex, c_ex = exact["c_peak"]
    run.write_json("thermodynamics.json", {"estimates": est, "exact": exact["rows"]})
    worst = max(est, key=lambda r: r["f_q_rel_err"])
    rows: list[Row] = [
        ("max (F_q - F)/|F| over T", f"{worst['f_q_rel_err']:.3%} at T={worst['T']:.3f}", "exact F (Kaufman)", ""),
        ("C(T) peak position", f"{t_peak:.4f}", f"{t_ex:.4f} exact", fmt_rel(t_peak, t_ex)),
        ("C(T) peak height (per site)", f"{c_peak:.4f}", f"{c_ex:.4f} exact", fmt_rel(c_peak, c_ex)),
    ]
    figs = [("Training", run.save_figure("training.png", plot_training(distiller.history)),
             "Batch mean of the groups' variational free energies per step (temperatures redrawn every step)."),
            ("Thermodynamics", run.save_figure("thermodynamics.png", plot_thermodynamics(
                est, exact["rows"], f"L={L}: one conditioned flow against the exact curves")),
             "Importance-sampled F, U, C, <m^2> and Binder cumulant (error bars) against the exact finite-L curves; "
             "the last panel is the variational free energy's relative error.")]
    summary: dict[str, Any] = {"study": "sweep", "L": L, "steps": distiller.step,
                               "max_fq_rel_err": worst["f_q_rel_err"], "max_fq_rel_err_T": worst["T"],
                               "cv_peak_T": t_peak, "cv_peak": c_peak, "cv_peak_T_exact": t_ex, "cv_peak_exact": c_ex}
    if opts.observations:
        T0 = opts.posterior_temperature
        if L <= MAX_TRANSFER_MATRIX_L:
            spins = exact_ising_spins(L, T0, opts.observations, seed=opts.seed + 1)
        else:
            spins = wolff_spins(L, T0, opts.observations, seed=opts.seed + 1)
        x_obs = IsingRelaxed(L, T0).double().sample_given_spins(
            spins, generator=torch.Generator().manual_seed(opts.seed + 1))
        exact_post = grid_temperature_posterior(energy_at, x_obs, opts.t_min, opts.t_max)
        post = infer_temperature(q, x_obs, opts.t_min, opts.t_max, num_samples=opts.nuts_samples,
                                 warmup_steps=opts.nuts_warmup, num_chains=opts.nuts_chains, seed=opts.seed)
        run.write_netcdf("posterior.nc", post.inference_data)
        rows += [
            ("posterior mean of T (NUTS)", fmt_value(post.mean), f"{exact_post.mean:.4f} exact grid",
             fmt_rel(post.mean, exact_post.mean)),
            ("posterior sd of T (NUTS)", fmt_value(post.sd), f"{exact_post.sd:.4f} exact grid",
             fmt_rel(post.sd, exact_post.sd)),
            ("R-hat (NUTS chains)", f"{post.r_hat:.4f}", "<= 1.01", ""),
        ]
        fg = post.flow_grid
        figs.append(("Posterior over T", run.save_figure("posterior.png", plot_temperature_posterior(
            post.samples, exact_post.temperatures, exact_post.density, None if fg is None else fg.temperatures,
            None if fg is None else fg.density, truth=T0)),
            f"{opts.observations} configurations drawn at T={T0:g}: NUTS on T with the flow as the likelihood "
            "against the exact grid posterior."))
        summary.update({"posterior_mean": post.mean, "posterior_sd": post.sd, "r_hat": post.r_hat,
                        "exact_posterior_mean": exact_post.mean, "exact_posterior_sd": exact_post.sd,
                        "flow_grid_posterior_mean": post.flow_grid_mean, "flow_grid_posterior_sd": post.flow_grid_sd})
    run.write_json("summary.json", summary)
    report = run.write_report(
        f"One flow for T in [{opts.t_min:g}, {opts.t_max:g}]: thermodynamics of the {L}x{L} Ising model",
        [f"A temperature-conditioned NeuralRG flow ({opts.conditioning} conditioning) distilled over the range with "
         f"{opts.train_temperatures} temperatures per step, then evaluated at {len(grid)} temperatures with "
         f"{opts.eval_samples} importance-sampled draws each."], rows, figs)
    return StudyOutcome(report, console_table(rows), summary)
