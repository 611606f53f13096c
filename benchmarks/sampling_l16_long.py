"""Sampling benchmark, long runs: the L=16 ESS-per-gradient ratios with every ESS large enough to be a measurement.

``benchmarks/sampling.py`` runs physical NUTS for 4 x 1500 draws, where tau(m^2) is 65-115 draws at L=16, so its
ESS (50-90) and the ratios built on it vary by 2x between runs. Here the flow is the one of ``sampling.py``
(same training, 3000 steps, the default NeuralRG flow; ``--flow-dir`` reuses its checkpoint), then physical NUTS
(4 x 3000 after 200 warm-up), latent many-walker HMC (64 x 2000 after 150) and latent NUTS (2 x 700 after 100)
sample the relaxed Ising model at T_c. About 40 minutes on one core. The latent samplers use the Z2 sector function
(pyro_nrg.infer.mcmc.sector; ``--no-sector``: without, as every run before 2026-11-29 evening), the walkers the unit
metric unless ``--mass-matrix dense|diag``.

    OMP_NUM_THREADS=1 python benchmarks/sampling_l16_long.py [--flow-dir DIR]
    python benchmarks/sampling_l16_long.py --methods physical_nuts --seed 10 --phys-draws 6000   # a replicate
    python benchmarks/sampling_l16_long.py --methods latent_hmc_walkers --train-steps 8000 --mass-matrix dense
    python benchmarks/sampling_l16_long.py --methods latent_hmc_walkers latent_hmc_flow_jumps --train-steps 8000 \
        --mass-matrix dense --flow-dir runs/sampling-flows     # walkers with and without flow jumps, same flow
    python benchmarks/sampling_l16_long.py --pool      # pool every saved run: results/sampling_l16_long/pooled.json


Writes benchmarks/results/sampling_l16_long/full.json (headline: the two ratios, the ESS behind them, <m^2>); other
--methods/--seed/--phys-draws write sampling_l16_long/<methods>_seed<k>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyro
import torch
from _common import result_path, table, write_result
from sampling import figures, hmc_extra, train

from pyro_nrg.analysis import to_inference_data
from pyro_nrg.energies import ISING_TC, IsingRelaxed, wolff_ising
from pyro_nrg.infer import latent_hmc_walkers, latent_nuts, physical_nuts

PHYS, WALK, LAT = (4, 3000, 200), (64, 2000, 150), (2, 700, 100)  # chains/walkers, draws, warm-up


METHODS = ("physical_nuts", "latent_hmc_walkers", "latent_nuts")
EXTRA_METHODS = ("latent_hmc_flow_jumps",)  # only on request: the walkers with a flow-MH jump after every trajectory
TRAIN_STEPS = 3000


def pool() -> None:
    """Pool replicate runs: per (method, flow training steps), total ESS(m^2) / total gradients, and each ratio
    against pooled physical NUTS (whose chains do not depend on the flow beyond their starting points)."""
    groups: dict[tuple[str, int], dict[str, float]] = {}
    files = sorted(f for f in result_path("pooled", "sampling_l16_long").parent.glob("*.json") if f.stem != "pooled")
    for f in files:
        blob = json.loads(f.read_text())
        steps = int(blob["settings"].get("train_steps", TRAIN_STEPS))
        for r in blob["figures"]["rows"]:
            # runs before the Z2 sector function (no z2_sharpness in their rows) pool apart from those with it
            variant = ("sector" if r.get("z2_sharpness") is not None else "nosector") + (
                f"_{r['mass_matrix']}" if r.get("mass_matrix", "unit") != "unit" else "")
            if r["method"] == "physical_nuts":
                key = ("physical_nuts_full_mass" if r.get("full_mass") else "physical_nuts", 0)
            else:
                key = (f"{r['method']}_{variant}", steps)
            g = groups.setdefault(key, {"ess": 0.0, "grads": 0.0, "runs": 0, "m2_w": 0.0, "w": 0.0})
            g["ess"] += r["m2_ess"]
            g["grads"] += r["grad_evals"]
            g["runs"] += 1
            g["m2_w"] += r["m2_mean"] / r["m2_err"] ** 2
            g["w"] += 1 / r["m2_err"] ** 2
    phys = groups[("physical_nuts", 0)]
    base = phys["ess"] / phys["grads"]
    rows, headline = [], {"L16_physical_nuts_pooled_ess_per_grad": base, "L16_physical_nuts_runs": phys["runs"]}
    for (m, steps), g in sorted(groups.items()):
        epg = g["ess"] / g["grads"]
        m2, m2_err = g["m2_w"] / g["w"], g["w"] ** -0.5
        rows.append((m, str(steps or "-"), str(g["runs"]), f"{g['ess']:.0f}", f"{g['grads']:.3g}", f"{epg:.3g}",
                     f"{epg / base:.2f}", f"{m2:.4f}±{m2_err:.4f}"))
        if m != "physical_nuts":
            tag = m if m.startswith("physical_nuts") else f"{m}_train{steps}"
            headline[f"L16_ess_per_grad_ratio_{tag}_vs_physical_nuts_pooled"] = epg / base
            headline[f"L16_{tag}_pooled_ess"] = g["ess"]
    print(table(rows, ("method", "flow steps", "runs", "ESS(m2)", "grads", "ESS/grad", "ratio", "<m2> (inv-var)")))
    write_result("pooled", {"files": [f.name for f in files]}, {"rows": rows}, headline)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flow-dir", type=Path, default=None,
                    help="checkpoint folder of sampling.py's flows (DIR/L16): reuse instead of retraining")
    ap.add_argument("--methods", nargs="+", choices=METHODS + EXTRA_METHODS, default=list(METHODS),
                    help="samplers to run (latent_hmc_flow_jumps: the walkers' settings plus a flow-MH jump after "
                         "every trajectory)")
    ap.add_argument("--seed", type=int, default=0, help="added to every sampler's seed (replicates)")
    ap.add_argument("--phys-draws", type=int, default=PHYS[1], help=f"draws per physical-NUTS chain ({PHYS[1]})")
    ap.add_argument("--lat-draws", type=int, default=LAT[1], help=f"draws per latent-NUTS chain ({LAT[1]})")
    ap.add_argument("--lat-chains", type=int, default=LAT[0], help=f"latent-NUTS chains ({LAT[0]})")
    ap.add_argument("--phys-warmup", type=int, default=PHYS[2], help=f"physical-NUTS warm-up per chain ({PHYS[2]})")
    ap.add_argument("--phys-full-mass", action="store_true",
                    help="physical NUTS with a dense mass matrix (Pyro's full_mass; give it --phys-warmup 1000; adds "
                         "_fullmass to the file name)")
    ap.add_argument("--train-steps", type=int, default=TRAIN_STEPS,
                    help=f"distillation steps of the flow (default {TRAIN_STEPS}, that of sampling_l16_long/full.json; "
                         "other values add _train<steps> to the file name; sampling.py now trains 8000)")
    ap.add_argument("--mass-matrix", choices=("unit", "diag", "dense"), default="unit",
                    help="metric of the latent walkers, adapted during warm-up (default unit, the paper's; others add "
                         "_mass<kind> to the file name)")
    ap.add_argument("--no-sector", action="store_true",
                    help="latent samplers without the Z2 sector function (as every run before 2026-11-29 evening; "
                         "adds _nosector to the file name)")
    ap.add_argument("--pool", action="store_true",
                    help="sample nothing: pool the ESS and gradients of every saved run (results/sampling_l16_long*"
                         ".json) per method and flow, and write sampling_l16_long/pooled.json")
    args = ap.parse_args()
    if args.pool:
        pool()
        return
    torch.set_num_threads(1)
    L = 16
    phys = (PHYS[0], args.phys_draws, args.phys_warmup)
    lat = (args.lat_chains, args.lat_draws, LAT[2])
    sector = not args.no_sector
    energy = IsingRelaxed(L, ISING_TC)
    d, tinfo = train(L, args.train_steps, seed=0, flow_dir=args.flow_dir)
    q = d.guide.distribution()
    rows = []
    if "physical_nuts" in args.methods:
        pyro.set_rng_seed(1 + args.seed)
        res = physical_nuts(energy, phys[1], phys[2], num_chains=phys[0], init=q, full_mass=args.phys_full_mass)
        rows.append(figures("physical_nuts", to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                            {**hmc_extra(res), "full_mass": args.phys_full_mass}))
    for method, seed, jump_every in (("latent_hmc_walkers", 3, 0), ("latent_hmc_flow_jumps", 4, 1)):
        if method not in args.methods:
            continue
        pyro.set_rng_seed(seed + args.seed)
        res = latent_hmc_walkers(energy, d.guide, WALK[0], WALK[1], WALK[2], step_size=0.2, num_steps=10,
                                 adapt_step_size=True, keep_samples=False, z2_symmetric=sector,
                                 mass_matrix=args.mass_matrix, flow_jump_every=jump_every)
        rows.append(figures(method, to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                            {**hmc_extra(res), "mass_matrix": args.mass_matrix}))
    if "latent_nuts" in args.methods:
        pyro.set_rng_seed(2 + args.seed)
        res = latent_nuts(energy, d.guide, lat[1], lat[2], num_chains=lat[0], keep_samples=False, keep_latent=False,
                          z2_symmetric=sector)
        rows.append(figures("latent_nuts", to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                            hmc_extra(res)))
    ref = wolff_ising(L, ISING_TC, n_updates=20_000, seed=0)
    by = {r["method"]: r for r in rows}
    headline: dict[str, float] = {}
    if "physical_nuts" in by:
        base = by["physical_nuts"]["m2_ess_per_grad"]
        headline.update({f"L16_ess_per_grad_ratio_{m}_vs_physical_nuts": by[m]["m2_ess_per_grad"] / base
                         for m in by if m != "physical_nuts"})
    headline.update({
        **{f"L16_{m}_m2_ess": by[m]["m2_ess"] for m in by},
        **{f"L16_{m}_m2_ess_per_grad": by[m]["m2_ess_per_grad"] for m in by},
        **{f"L16_m2_{m}": by[m]["m2_mean"] for m in by},
        **{f"L16_m2_{m}_err": by[m]["m2_err"] for m in by},
        "L16_m2_reference_wolff": ref.m2,
        "L16_m2_reference_wolff_err": ref.m2_err,
    })
    for k, v in headline.items():
        print(f"{k}: {v:.4g}")
    settings = {"L": L, "temperature": ISING_TC, "train_steps": args.train_steps,
                "flow": "neural_rg defaults (head='tanh')",
                "seed_offset": args.seed, "methods": args.methods,
                "physical_nuts": "{} chains x {} after {}".format(*phys),
                "latent_hmc_walkers": "{} x {} after {}, 10 leapfrog steps, dual averaging to acceptance 0.85".format(
                    *WALK),
                "latent_hmc_flow_jumps": "the walkers' settings and a flow-MH jump after every trajectory",
                "latent_nuts": "{} chains x {} after {}".format(*lat), "threads": 1,
                "z2_sector": sector, "walker_mass_matrix": args.mass_matrix}
    default = (args.seed == 0 and sorted(args.methods) == sorted(METHODS) and args.phys_draws == PHYS[1]
               and args.phys_warmup == PHYS[2] and not args.phys_full_mass and lat == LAT)
    name = "sampling_l16_long" if default else f"sampling_l16_long_{'_'.join(args.methods)}_seed{args.seed}"
    if args.train_steps != TRAIN_STEPS:
        name += f"_train{args.train_steps}"
    if args.mass_matrix != "unit":
        name += f"_mass{args.mass_matrix}"
    if not sector:
        name += "_nosector"
    if args.phys_full_mass:
        name += "_fullmass"
    if args.phys_warmup != PHYS[2]:
        name += f"_physwarmup{args.phys_warmup}"
    if lat != LAT and "latent_nuts" in args.methods:
        name += f"_lat{lat[0]}x{lat[1]}"
    write_result(name, settings, {"training": tinfo, "rows": rows}, headline)


if __name__ == "__main__":
    main()
