"""One flow for a range of temperatures: a temperature-conditioned NeuralRG flow on the relaxed 2D Ising model.

Sections (one process, one after another, so their step times are comparable):

* ``compare`` — FiLM against concatenation (how T enters every coupling's hypernet), side by side: the same
  distillation over T in [1.8, 3.5] for the same wall time, then the largest F_q error over the evaluation grid.
* ``single`` — the reference: one unconditional flow (same architecture and recipe) trained at T_c, its F_q checked
  every ``--check-every`` steps; its training time is the time of the first check at <= 0.3 % of |F|.
* ``conditional`` — one conditioned flow trained over [1.8, 3.5] for ``--ratio`` (2) times that time (cosine
  schedule on elapsed time, ``TimeBudget``), then F_q at >= 9 temperatures (equally spaced in beta, T_c added).
* ``curves`` — F(T), U(T), C(T), <m^2>(T) and the Binder cumulant (importance-sampled, error bars) at L=8 on a fine
  grid against the exact finite-L curves (Kaufman; transfer matrix), the C(T) peak's position and height.
* ``l16`` — the same C(T) peak check at L=16 with a flow trained over [2.0, 3.0].
* ``posterior`` — 5 configurations drawn exactly at T=2.5 (L=8; transfer-matrix spins, then x | s), NUTS on T with
  4 chains in the Pyro model ``T ~ Uniform(1.8, 3.5)``, ``x_i ~ q(x | T)``, against the exact grid posterior.

Training times are sums of step times (evaluations excluded). The relative F_q error is against the exact F of the
*relaxed* model (Kaufman plus the relaxation constant), as in ``free_energy.py``.

    OMP_NUM_THREADS=1 python benchmarks/temperature.py            # full run (about 50 minutes on one core)
    python benchmarks/temperature.py --quick                        # a few minutes, the code paths only
    OMP_NUM_THREADS=1 python benchmarks/temperature.py --only compare   # the FiLM / concatenation run alone

Writes benchmarks/results/temperature.json (``--quick``: temperature_quick.json; ``--only X``: temperature_X.json).
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from typing import Any

import pyro
import torch
from _common import read_result, result_path, table, write_result

from pyro_nrg.energies import ISING_TC, IsingRelaxed, exact_ising_spins
from pyro_nrg.flows import conditional_neural_rg, neural_rg
from pyro_nrg.infer import DistillConfig, Distiller, TimeBudget
from pyro_nrg.infer.temperature import ConditionalDistiller, TemperatureRange, estimate_at
from pyro_nrg.infer.temperature_posterior import grid_temperature_posterior, infer_temperature
from pyro_nrg.infer.thermo import curve_peak, exact_curves, thermodynamics

TARGET = 3e-3


def recipe(steps: int, batch: int = 256, lr: float = 3e-3) -> DistillConfig:
    """The benchmarks' recipe (``recipes.py``): path gradients, 50-step warm-up, cosine, Z2 mixture."""
    return DistillConfig(steps=steps, batch_size=batch, lr=lr, warmup_steps=50, z2_symmetric=True,
                         path_gradient=True)


def eval_grid(t_min: float, t_max: float, n: int) -> list[float]:
    """``n`` temperatures equally spaced in beta over the range, with T_c added if it lies inside."""
    grid = TemperatureRange(t_min, t_max, n).grid()
    if t_min < ISING_TC < t_max:
        grid = sorted([*grid, ISING_TC])
    return grid


def fq_over(q: Any, L: int, temps: list[float], n: int) -> list[dict[str, float]]:
    """F_q and IS figures of the conditioned distribution at every temperature (common random numbers)."""
    rows = []
    for T in temps:
        e = estimate_at(q, IsingRelaxed(L, T), n, seed=1)
        rows.append({"T": T, "fq_rel_err": e.f_q_rel_err, "fq_err_rel": e.f_q_err / abs(e.f_q),
                     "is_rel_err": e.is_rel_err, "is_sigma": e.is_sigma, "ess_fraction": e.ess_fraction,
                     "khat": e.khat})
    return rows


def train_conditional(L: int, t_min: float, t_max: float, seconds: float, seed: int = 0, n_temperatures: int = 8,
                      **flow_kw: Any) -> tuple[ConditionalDistiller, float]:
    """Distil one conditioned flow over [t_min, t_max] for ``seconds`` of training (cosine on elapsed time)."""
    pyro.set_rng_seed(seed)
    flow = conditional_neural_rg(L=L, t_min=t_min, t_max=t_max, **flow_kw)
    d = ConditionalDistiller(functools.partial(IsingRelaxed, L), flow, recipe(10**6),
                             TemperatureRange(t_min, t_max, n_temperatures))
    budget = TimeBudget(seconds)
    budget.start()
    d.run(callbacks=[budget], progress=False)
    return d, float(sum(d.history["seconds"]))


ARMS = {
    "compare": {"film": {"conditioning": "film"}, "concat": {"conditioning": "concat"}},
    "head": {"head_conditioned": {"conditioning": "film", "condition_head": True},
             "head_shared": {"conditioning": "film", "condition_head": False}},
}


def compare(args: argparse.Namespace, arms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Conditioned flows that differ in ``arms`` at equal wall time (L=8), F_q over the evaluation grid."""
    out: dict[str, Any] = {}
    temps = eval_grid(1.8, 3.5, args.n_eval_temps)
    for name, kw in arms.items():
        d, secs = train_conditional(8, 1.8, 3.5, args.compare_seconds, **kw)
        rows = fq_over(d.distribution(), 8, temps, args.n_eval)
        out[name] = {"flow": kw, "steps": d.step, "train_seconds": secs,
                     "max_fq_rel_err": max(r["fq_rel_err"] for r in rows),
                     "mean_fq_rel_err": sum(r["fq_rel_err"] for r in rows) / len(rows), "per_T": rows}
        print(f"{name}: {d.step} steps in {secs:.0f} s, max F_q rel err {out[name]['max_fq_rel_err']:.4%}, "
              f"mean {out[name]['mean_fq_rel_err']:.4%}", flush=True)
    out["better"] = min(arms, key=lambda m: out[m]["max_fq_rel_err"])
    return out


def single(args: argparse.Namespace) -> dict[str, Any]:
    """Train one unconditional flow at T_c until its F_q is within 0.3 % (checked every ``check_every`` steps)."""
    pyro.set_rng_seed(0)
    energy = IsingRelaxed(8, ISING_TC)
    d = Distiller(energy, neural_rg(L=8), recipe(args.single_steps))
    checks: list[dict[str, float]] = []
    reached: dict[str, float] = {}

    def check(distiller: Distiller, record: dict[str, float]) -> bool:
        if distiller.step % args.check_every and distiller.step < distiller.config.steps:
            return False
        e = distiller.estimate(args.n_check)
        secs = float(sum(distiller.history["seconds"]))
        checks.append({"step": distiller.step, "train_seconds": secs, "fq_rel_err": e.f_q_rel_err})
        print(f"  single T_c: step {distiller.step}, {secs:.0f} s, F_q rel err {e.f_q_rel_err:.4%}", flush=True)
        if e.f_q_rel_err <= TARGET and not reached:
            reached.update(checks[-1])
            return True
        return False

    d.run(callbacks=[check], progress=False)
    final = d.estimate(args.n_eval)
    return {"steps": d.step, "checks": checks, "reached": bool(reached),
            "train_seconds_to_target": reached.get("train_seconds", float(sum(d.history["seconds"]))),
            "fq_rel_err_final": final.f_q_rel_err, "fq_err_rel_final": final.f_q_err / abs(final.f_q),
            "step_seconds_median": sorted(d.history["seconds"])[len(d.history["seconds"]) // 2]}


def conditional(args: argparse.Namespace, t_single: float, conditioning: str) -> tuple[dict[str, Any], Any]:
    """The conditioned flow at L=8 trained for ``ratio * t_single`` seconds, F_q over the evaluation grid."""
    d, secs = train_conditional(8, 1.8, 3.5, args.ratio * t_single, conditioning=conditioning)
    temps = eval_grid(1.8, 3.5, args.n_eval_temps)
    rows = fq_over(d.distribution(), 8, temps, args.n_eval)
    worst = max(rows, key=lambda r: r["fq_rel_err"])
    return {"steps": d.step, "train_seconds": secs, "per_T": rows, "max_fq_rel_err": worst["fq_rel_err"],
            "worst_T": worst["T"],
            "step_seconds_median": sorted(d.history["seconds"])[len(d.history["seconds"]) // 2]}, d.distribution()


def curves(q: Any, L: int, temps: list[float], n: int, m2_exact: bool = True) -> dict[str, Any]:
    """Importance-sampled thermodynamics against the exact curves, and the C(T) peak of both."""
    est = thermodynamics(q, functools.partial(IsingRelaxed, L), temps, n=n, seed=2)
    exact = exact_curves(L, temps, moments=m2_exact)
    t_est, c_est = curve_peak(temps, [r["c"] for r in est])
    t_ex, c_ex = exact["c_peak"]
    return {"L": L, "temperatures": temps, "estimates": est, "exact": exact["rows"],
            "cv_peak_T": t_est, "cv_peak": c_est, "cv_peak_T_exact": t_ex, "cv_peak_exact": c_ex,
            "cv_peak_T_rel_err": (t_est - t_ex) / t_ex, "cv_peak_height_rel_err": (c_est - c_ex) / c_ex}


def ais_check(args: argparse.Namespace) -> dict[str, Any]:
    """C(T) near the L=8 peak from one conditioned flow, importance-sampled and from AIS started at the flow."""
    d, secs = train_conditional(8, 1.8, 3.5, args.ais_train_seconds, conditioning="film")
    temps = [float(t) for t in torch.linspace(2.1, 2.7, 5 if args.quick else 11)]
    q, energy_at = d.distribution(), functools.partial(IsingRelaxed, 8)
    exact = exact_curves(8, temps, moments=False)
    t_ex, c_ex = exact["c_peak"]
    out: dict[str, Any] = {"steps": d.step, "train_seconds": secs, "temperatures": temps, "exact": exact["rows"],
                           "cv_peak_T_exact": t_ex, "cv_peak_exact": c_ex}
    for label, kw in (("is", {"n": args.n_curve}), ("ais", {"ais": tuple(args.ais)})):
        t0 = time.perf_counter()
        est = thermodynamics(q, energy_at, temps, seed=2, **kw)
        t_p, c_p = curve_peak(temps, [r["c"] for r in est])
        out[label] = {"estimates": est, "seconds": time.perf_counter() - t0, "cv_peak_T": t_p, "cv_peak": c_p,
                      "cv_peak_T_rel_err": (t_p - t_ex) / t_ex, "cv_peak_height_rel_err": (c_p - c_ex) / c_ex}
        print(table([(f"{r['T']:.3f}", f"{r['c']:.4f} ± {r['c_err']:.4f}", f"{e['c']:.4f}", f"{r['ess_fraction']:.3f}")
                     for r, e in zip(est, exact["rows"], strict=True)], ("T", f"c ({label})", "exact", "ESS/N")),
              flush=True)
    return out


def posterior(args: argparse.Namespace, q: Any) -> dict[str, Any]:
    """NUTS on T from 5 exact configurations at T=2.5 against the exact grid posterior."""
    spins = exact_ising_spins(8, 2.5, args.n_obs, seed=7)
    g = torch.Generator().manual_seed(7)
    x_obs = IsingRelaxed(8, 2.5).double().sample_given_spins(spins, generator=g)
    grid = grid_temperature_posterior(functools.partial(IsingRelaxed, 8), x_obs, 1.8, 3.5)
    t0 = time.perf_counter()
    res = infer_temperature(q, x_obs.float(), 1.8, 3.5, num_samples=args.nuts_samples, warmup_steps=args.nuts_warmup,
                            num_chains=4, seed=0)
    wall = time.perf_counter() - t0
    return {"n_obs": args.n_obs, "T_true": 2.5, "grid_mean": grid.mean, "grid_sd": grid.sd,
            "nuts_mean": res.mean, "nuts_sd": res.sd, "r_hat": res.r_hat, "ess_bulk": res.ess_bulk,
            "mean_rel_err": (res.mean - grid.mean) / grid.mean, "sd_rel_err": (res.sd - grid.sd) / grid.sd,
            "flow_grid_mean": res.flow_grid_mean, "flow_grid_sd": res.flow_grid_sd,
            "nuts_seconds": wall, "summary": res.summary}


def plot(blob: dict[str, Any], path: Any) -> None:
    """The curves of both lattices and the posterior check, beside the result file (``*_curves_L8.png`` ...)."""
    from pyro_nrg.plotting import plot_thermodynamics

    figs = blob["figures"]
    for key in ("curves_L8", "curves_L16"):
        if key in figs:
            c = figs[key]
            fig = plot_thermodynamics(c["estimates"], c["exact"], f"L={c['L']}: one conditioned flow vs exact")
            fig.savefig(path.with_name(f"{path.stem}_{key}.png"), dpi=110)
            print(path.with_name(f"{path.stem}_{key}.png"))
    if "posterior" in figs:  # the exact grid again (cheap); the NUTS draws are summarised, not stored
        p = figs["posterior"]
        spins = exact_ising_spins(8, 2.5, p["n_obs"], seed=7)
        x_obs = IsingRelaxed(8, 2.5).double().sample_given_spins(spins, generator=torch.Generator().manual_seed(7))
        g = grid_temperature_posterior(functools.partial(IsingRelaxed, 8), x_obs, 1.8, 3.5)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.subplots()
        ax.plot(g.temperatures, g.density, "k-", label="exact grid posterior")
        for m, s, style, label in ((p["nuts_mean"], p["nuts_sd"], "C0", "NUTS (flow likelihood)"),
                                   (p["grid_mean"], p["grid_sd"], "k", "exact")):
            ax.axvline(m, color=style, ls="-" if style == "C0" else ":", label=f"{label}: {m:.3f} ± {s:.3f}")
            ax.axvspan(m - s, m + s, color=style, alpha=0.15 if style == "C0" else 0.05)
        ax.set_xlim(p["grid_mean"] - 5 * p["grid_sd"], p["grid_mean"] + 5 * p["grid_sd"])
        ax.set_xlabel("T")
        ax.set_ylabel("p(T | x)")
        ax.legend(fontsize=8)
        fig.savefig(path.with_name(f"{path.stem}_posterior.png"), dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["compare", "head", "main", "plot", "ais"], default=None,
                    help="one section; 'plot' draws the figures of the stored full run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conditioning", choices=["film", "concat"], default=None,
                    help="skip the comparison and use this (default: the comparison's better one)")
    ap.add_argument("--compare-seconds", type=float, default=150.0)
    ap.add_argument("--single-steps", type=int, default=3000, help="planned steps of the single-T flow's cosine")
    ap.add_argument("--check-every", type=int, default=100)
    ap.add_argument("--ratio", type=float, default=2.0)
    ap.add_argument("--l16-seconds", type=float, default=600.0)
    ap.add_argument("--n-eval", type=int, default=8192)
    ap.add_argument("--n-check", type=int, default=4096)
    ap.add_argument("--n-eval-temps", type=int, default=9)
    ap.add_argument("--n-curve", type=int, default=8192)
    ap.add_argument("--nuts-samples", type=int, default=600)
    ap.add_argument("--nuts-warmup", type=int, default=300)
    ap.add_argument("--n-obs", type=int, default=5)
    ap.add_argument("--ais-train-seconds", type=float, default=312.0,
                    help="--only ais: training of its L=8 flow (default: twice the single-T time of the full run)")
    ap.add_argument("--ais", type=int, nargs=2, default=(1024, 16), metavar=("PARTICLES", "TEMPERATURES"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.only == "plot":
        plot(read_result("temperature", "temperature_quick" if args.quick else None),
             result_path("temperature_quick" if args.quick else "temperature", "temperature"))
        return
    if args.quick:
        args.compare_seconds, args.single_steps, args.check_every, args.l16_seconds = 8.0, 40, 20, 8.0
        args.n_eval, args.n_check, args.n_eval_temps, args.n_curve = 512, 256, 3, 512
        args.nuts_samples, args.nuts_warmup = 30, 20
    settings = {k: v for k, v in vars(args).items()}
    settings["target_fq_rel_err"] = TARGET
    settings["recipe"] = "path gradients, batch 256, lr 3e-3, 50-step warm-up, cosine (TimeBudget), Z2 mixture"
    settings["flow"] = ("conditional_neural_rg defaults (4 couplings/block, hidden 32 x 2, tanh head); "
                        "8 stratified T per step")
    figures: dict[str, Any] = {}
    headline: dict[str, Any] = {}
    name = "temperature" + ("_quick" if args.quick else "") + (f"_{args.only}" if args.only else "")

    if args.only == "ais":
        figures["ais"] = a = ais_check(args)
        for k in ("cv_peak_T_rel_err", "cv_peak_height_rel_err"):
            headline[f"L8_{k}_ais"] = a["ais"][k]
            headline[f"L8_{k}_is_same_flow"] = a["is"][k]
        for k, v in headline.items():
            print(f"{k}: {v}")
        print(write_result(name, settings, figures, headline))
        return
    if args.only == "head":
        figures["head"] = compare(args, ARMS["head"])
        for arm in ARMS["head"]:
            headline[f"max_fq_rel_err_{arm}"] = figures["head"][arm]["max_fq_rel_err"]
        print(write_result(name, settings, figures, headline))
        return
    if args.conditioning is None or args.only == "compare":
        figures["compare"] = compare(args, ARMS["compare"])
        headline["conditioning_max_fq_rel_err_film"] = figures["compare"]["film"]["max_fq_rel_err"]
        headline["conditioning_max_fq_rel_err_concat"] = figures["compare"]["concat"]["max_fq_rel_err"]
        mode = figures["compare"]["better"]
    else:
        mode = args.conditioning
    settings["conditioning_used"] = mode
    if args.only == "compare":
        print(write_result(name, settings, figures, headline))
        return

    figures["single"] = s = single(args)
    t_single = s["train_seconds_to_target"]
    print(f"single-T flow: {'reached' if s['reached'] else 'did NOT reach'} 0.3 % in {t_single:.0f} s", flush=True)
    figures["conditional"], q8 = conditional(args, t_single, mode)
    c = figures["conditional"]
    print(table([(f"{r['T']:.4f}", f"{r['fq_rel_err']:.4%}", f"{r['is_rel_err']:+.4%}", f"{r['ess_fraction']:.3f}")
                 for r in c["per_T"]], ("T", "F_q rel err", "IS rel err", "ESS/N")), flush=True)
    headline["L8_max_fq_rel_err_over_T"] = c["max_fq_rel_err"]
    headline["train_time_ratio_vs_single_T"] = c["train_seconds"] / t_single
    headline["single_T_reached_target"] = s["reached"]
    headline["L8_fq_target_met_at_every_T"] = c["max_fq_rel_err"] <= TARGET

    temps8 = eval_grid(1.8, 3.5, 9 if args.quick else 35)
    figures["curves_L8"] = cv8 = curves(q8, 8, temps8, args.n_curve)
    headline["L8_cv_peak_T_rel_err"] = cv8["cv_peak_T_rel_err"]
    headline["L8_cv_peak_height_rel_err"] = cv8["cv_peak_height_rel_err"]
    print(f"L=8 C peak: T {cv8['cv_peak_T']:.4f} (exact {cv8['cv_peak_T_exact']:.4f}), height {cv8['cv_peak']:.4f} "
          f"(exact {cv8['cv_peak_exact']:.4f})", flush=True)

    figures["posterior"] = p = posterior(args, q8)
    headline["posterior_T_mean_rel_err"] = p["mean_rel_err"]
    headline["posterior_T_sd_rel_err"] = p["sd_rel_err"]
    headline["posterior_r_hat"] = p["r_hat"]
    print(f"posterior: NUTS {p['nuts_mean']:.4f} +- {p['nuts_sd']:.4f} (r-hat {p['r_hat']:.4f}), exact grid "
          f"{p['grid_mean']:.4f} +- {p['grid_sd']:.4f}", flush=True)

    d16, secs16 = train_conditional(16, 2.0, 3.0, args.l16_seconds, conditioning=mode)
    temps16 = eval_grid(2.0, 3.0, 9 if args.quick else 26)
    figures["curves_L16"] = cv16 = curves(d16.distribution(), 16, temps16, args.n_curve, m2_exact=False)
    cv16["steps"], cv16["train_seconds"] = d16.step, secs16
    headline["L16_cv_peak_T_rel_err"] = cv16["cv_peak_T_rel_err"]
    headline["L16_cv_peak_height_rel_err"] = cv16["cv_peak_height_rel_err"]
    print(f"L=16 C peak: T {cv16['cv_peak_T']:.4f} (exact {cv16['cv_peak_T_exact']:.4f}), height "
          f"{cv16['cv_peak']:.4f} (exact {cv16['cv_peak_exact']:.4f})", flush=True)
    for k, v in headline.items():
        print(f"{k}: {v}")
    print(write_result(name, settings, figures, headline))
    if not math.isfinite(headline["L8_max_fq_rel_err_over_T"]):
        raise SystemExit("non-finite F_q")


if __name__ == "__main__":
    main()
