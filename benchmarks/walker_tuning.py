"""Step-size scan of the latent many-walker HMC: ESS(m^2) per gradient against step size and leapfrog steps.

Why: the textbook dual-averaging target (acceptance 0.65) is far from the best setting for latent walkers. With
the number of leapfrog steps fixed, a larger step both lengthens the trajectory and raises the rejection rate; this
scan separates the two (same length at other step sizes) and is the evidence for the default
``target_accept_prob=0.85`` of :func:`pyro_nrg.infer.latent_hmc_walkers`.

For each lattice a NeuralRG flow is distilled (the same settings as ``benchmarks/sampling.py``; with ``--flow-dir``
the checkpoints are shared with that benchmark and resumed, so nothing is retrained), then the same walkers
(identical starts: flow draws) run with a fixed step size and number of leapfrog steps. Reported: acceptance, ESS
(ArviZ bulk, one chain per walker) of m^2, ESS per gradient evaluation, and <m^2> against the exact value
(transfer matrix).

    python benchmarks/walker_tuning.py                      # L=8 (about 12 minutes on one core)
    python benchmarks/walker_tuning.py --quick              # seconds: the code path only (walker_tuning/quick.json)
    python benchmarks/walker_tuning.py --L 8 16 --flow-dir runs/sampling-flows
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyro
import torch
from _common import m2_reference, table, write_result
from sampling import train

from pyro_nrg.analysis import sampling_efficiency, to_inference_data
from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.infer import latent_hmc_walkers

GRID = {8: [(0.15, 10), (0.2, 10), (0.25, 10), (0.3, 10), (0.35, 10), (0.25, 6), (0.35, 4)],
        16: [(0.1, 10), (0.15, 10), (0.2, 10), (0.25, 10), (0.15, 16)]}
TRAIN_STEPS = {8: 1500, 16: 3000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--L", type=int, nargs="+", default=[8], choices=sorted(GRID))
    ap.add_argument("--walkers", type=int, default=32)
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--flow-dir", type=Path, default=None, help="trained flows (shared with sampling.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="L=8, 100 training steps, two settings, 30 draws")
    args = ap.parse_args()
    grid, train_steps = GRID, TRAIN_STEPS
    if args.quick:
        args.L, args.samples, args.warmup, args.flow_dir = [8], 30, 10, None
        grid, train_steps = {8: GRID[8][1:3]}, {8: 100}
    torch.set_num_threads(1)
    figures: dict[str, dict] = {}
    rows, headline = [], {}
    for L in args.L:
        energy = IsingRelaxed(L, ISING_TC)
        d, tinfo = train(L, train_steps[L], seed=args.seed, flow_dir=args.flow_dir)
        ref = m2_reference(L, ISING_TC, 2000 if args.quick else 20000, seed=args.seed)  # exact for L <= 10
        pyro.set_rng_seed(args.seed + 5)
        init = torch.randn(args.walkers, L, L, dtype=torch.get_default_dtype())
        runs = []
        for eps, steps in grid[L]:
            pyro.set_rng_seed(args.seed + 6)
            t0 = time.perf_counter()
            res = latent_hmc_walkers(energy, d.guide, args.walkers, args.samples, args.warmup, step_size=eps,
                                     num_steps=steps, init=init, keep_samples=False)
            eff = sampling_efficiency(to_inference_data(res), ("m2",), seconds=res.sample_seconds,
                                      grad_evals=res.total_grad_evals)["m2"]
            r = {"step_size": eps, "num_steps": steps, "trajectory_length": eps * steps,
                 "acceptance": res.acceptance_rate, "m2": eff["mean"], "m2_err": eff["mcse"], "m2_ess": eff["ess"],
                 "m2_ess_per_grad": eff["ess_per_grad"], "seconds": time.perf_counter() - t0,
                 "m2_z_vs_reference": (eff["mean"] - ref["m2"]) / (eff["mcse"] ** 2 + ref["m2_err"] ** 2) ** 0.5}
            runs.append(r)
            rows.append((str(L), f"{eps:g}", str(steps), f"{eps * steps:.2f}", f"{r['acceptance']:.2f}",
                         f"{r['m2_ess']:.0f}", f"{r['m2_ess_per_grad']:.2e}", f"{r['m2']:.4f}±{r['m2_err']:.4f}",
                         f"{r['m2_z_vs_reference']:+.1f}"))
            print(rows[-1], flush=True)
        best = max(runs, key=lambda r: r["m2_ess_per_grad"])
        figures[str(L)] = {"training": tinfo, "reference": ref, "runs": runs}
        headline[f"L{L}_best_step_size"] = best["step_size"]
        headline[f"L{L}_best_num_steps"] = best["num_steps"]
        headline[f"L{L}_best_acceptance"] = best["acceptance"]
        headline[f"L{L}_best_m2_ess_per_grad"] = best["m2_ess_per_grad"]
        headline[f"L{L}_best_over_worst_ess_per_grad"] = best["m2_ess_per_grad"] / min(
            r["m2_ess_per_grad"] for r in runs)
    print(table(rows, ("L", "step", "leapfrog", "length", "acc", "ESS(m2)", "ESS/grad", "<m2>", "z vs ref")))
    for k, v in headline.items():
        print(f"{k}: {v:.4g}")
    settings = {"walkers": args.walkers, "samples": args.samples, "warmup": args.warmup, "seed": args.seed,
                "grid": {str(k): v for k, v in grid.items() if k in args.L}, "train_steps": train_steps,
                "starts": "the same flow-latent draws for every setting; no step-size adaptation"}
    print("wrote", write_result("walker_tuning_quick" if args.quick else "walker_tuning", settings, figures, headline))


if __name__ == "__main__":
    main()
