"""Flow ablation at equal training time: which parts of the NeuralRG flow buy variational free energy.

2D Ising model (continuous relaxation) at T_c, L = 8 (and L = 4): the same distillation (batch 256, lr 3e-3,
cosine schedule calibrated to the budget, path gradients, Z2 mixture) for the same wall time with

* ``head=none``   — the paper's flow: a MERA of affine (RealNVP) blocks;
* ``head=tanh``   — plus the smooth odd element-wise map on every site (the library default);
* ``head=spline`` — plus the C1 odd rational-quadratic spline instead;
* ``coupling=tanh`` — the default head and MaskedTanhCoupling layers instead of affine ones (conditionals that can
  be bimodal; about twice the step time).

``--set capacity`` compares, with the default head, where extra parameters buy most at equal time:

* ``head=tanh``   — the default flow (4 couplings per block, hidden 32 x 2, one disentangler/decimator pair per level);
* ``repeats=2``   — two disentangler/decimator pairs per level (twice the layers, twice the step time);
* ``hidden=64``   — hypernets twice as wide;
* ``couplings=8`` — eight couplings per block with hidden 64 (the published flow used ten);
* ``tanh+repeats=2`` — bimodal (tanh) couplings and two pairs per level (about four times the step time).

Reported per arm: steps reached, median step time, F_q relative to the exact ln Z of the relaxed model, the
importance-sampling ESS/N and PSIS k-hat (from 8192 fresh draws). Arms run one after another in one process, so
their step times are comparable; run it alone on the machine for wall-time-fair figures.

    OMP_NUM_THREADS=1 python benchmarks/flow_ablation.py               # 4 arms x 300 s at L=8 + 4 x 120 s at L=4
    OMP_NUM_THREADS=1 python benchmarks/flow_ablation.py --set capacity  # 5 arms x 300 s at L=8 + 5 x 120 s at L=4
    OMP_NUM_THREADS=1 python benchmarks/flow_ablation.py --quick       # seconds, the code path only

Writes benchmarks/results/flow_ablation/full.json (``--set capacity``: flow_ablation/capacity.json; ``--quick`` adds
``_quick``).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from _common import table, write_result
from free_energy import train

from pyro_nrg.energies import ISING_TC

ARMS: dict[str, dict[str, Any]] = {
    "head=none": {"head": "none"},
    "head=tanh": {"head": "tanh"},
    "head=spline": {"head": "spline"},
    "coupling=tanh": {"head": "tanh", "coupling": "tanh"},
}
CAPACITY_ARMS: dict[str, dict[str, Any]] = {
    "head=tanh": {"head": "tanh"},
    "repeats=2": {"head": "tanh", "repeats": 2},
    "hidden=64": {"head": "tanh", "hidden": 64},
    "couplings=8": {"head": "tanh", "n_couplings": 8, "hidden": 64},
    "tanh+repeats=2": {"head": "tanh", "coupling": "tanh", "repeats": 2},
}
SETS = {"heads": ARMS, "capacity": CAPACITY_ARMS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10-second arms (the code path only)")
    ap.add_argument("--budget-l8", type=float, default=300.0, help="training seconds per arm at L=8")
    ap.add_argument("--budget-l4", type=float, default=120.0, help="training seconds per arm at L=4 (0 = skip)")
    ap.add_argument("--set", choices=tuple(SETS), default="heads",
                    help="heads: head/coupling arms (default); capacity: depth/width arms")
    args = ap.parse_args()
    arms = SETS[args.set]
    torch.set_num_threads(1)
    budgets = {8: 10.0, 4: 5.0} if args.quick else {8: args.budget_l8, 4: args.budget_l4}
    rows, figures = [], {}
    for L, budget in budgets.items():
        if budget <= 0:
            continue
        for name, kw in arms.items():
            r = train(L, ISING_TC, budget, 256, 3e-3, n_eval=8192 if not args.quick else 1024, **kw)
            figures[f"L{L} {name}"] = r
            rows.append((str(L), name, str(r["steps"]), f"{r['step_seconds_median'] * 1e3:.0f}",
                         f"{r['fq_rel_err']:.2e}", f"{r['ess_fraction']:.3f}", f"{r['khat']:.2f}",
                         str(r["flow_params"])))
            print(f"  L={L} {name}: F_q rel {r['fq_rel_err']:.2e} after {r['steps']} steps", flush=True)
    print(table(rows, ("L", "arm", "steps", "ms/step", "F_q rel", "ESS/N", "k-hat", "params")))
    headline = {f"L{k.split()[0][1:]}_fq_rel_err_{k.split()[1]}": v["fq_rel_err"] for k, v in figures.items()}
    headline.update({f"L{k.split()[0][1:]}_ess_fraction_{k.split()[1]}": v["ess_fraction"]
                     for k, v in figures.items()})
    settings = {"quick": args.quick, "budgets_s": budgets, "batch": 256, "lr": 3e-3, "temperature": ISING_TC,
                "z2_symmetric": True, "gradient": "path", "set": args.set, "arms": arms, "threads": 1,
                "flow": "neural_rg defaults (4 couplings/block, hidden 32 x 2) with the arm's options"}
    name = "flow_ablation" + ("" if args.set == "heads" else f"_{args.set}") + ("_quick" if args.quick else "")
    path = write_result(name, settings, figures, headline)
    print("wrote", path)


if __name__ == "__main__":
    main()
