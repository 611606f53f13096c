"""Flow-MH needs a flow that covers p: the Z2-mixture NeuralRG flow against the odd one (2D Ising at T_c, L = 8, 16).

The default guide is the Z2 mixture 1/2 [q(x) + q(-x)] of a flow that, trained by reverse KL (mode seeking), covers
one magnetisation sector: it misses the disordered configurations between the sectors (m ~ 0), where the weight
w = p/q lies 10-50 nats above anything q proposes (benchmarks/sampling.py: a tenth of p at L=8, a third at L=16), so
flow-MH started from flow draws never reaches them in a practical run (+13.5 sigma at L=16 in sampling/full.json). The
odd flow, g(-z) = -g(z) (``neural_rg(odd=True)``), is Z2-symmetric by construction and maps z ~ 0 to x ~ 0: its
density is continuous across the two sectors. Both flows get the same training recipe (path gradients, cosine
schedule, batch 256, lr 3e-3); then, for each flow: F_q and importance-sampled ln Z against the exact ln Z of the
relaxed model, the coverage check (log-weights of latent-walker draws against those of 8192 flow draws,
pyro_nrg.infer.coverage_check), and flow-MH started from flow draws (64 x 1500 after 200) with <m^2> against the
exact value at L=8 (row transfer matrix) and a Wolff cluster reference at L=16.

    OMP_NUM_THREADS=1 python benchmarks/flow_mh_coverage.py --mixture-dir DIR --odd-dir DIR2
    python benchmarks/flow_mh_coverage.py --quick        # a few minutes

``--mixture-dir`` reuses the flows of ``sampling.py --flow-dir DIR`` (L=8 1500 steps, L=16 8000); the odd flows
train 1500 (L=8) and 4000 (L=16) steps into ``--odd-dir`` (resumed if there). Writes
benchmarks/results/flow_mh_coverage/full.json.

Result (2026-11-29, one thread beside other jobs, z against the old 20 000-update Wolff references): at L=8 the odd
flow's largest log-weight gap is 2.2 nats instead of 8.4 and flow-MH agrees with Wolff (+0.7 sigma; mixture +4.2),
at F_q 0.90 % instead of 0.33 %; at L=16 (4000 steps) the gap shrinks from 52 to 8.8 nats but flow-MH is still +8
sigma (mixture +18). Measured on exact draws instead of walker draws (benchmarks/coverage_exact.py) that L=16 gap is
26 nats (mixture 55): the walkers on the odd flow were themselves +7.6 sigma off, so read the coverage columns here
as indicative and coverage_exact/full.json as the reference.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pyro
import torch
from _common import m2_reference, table, write_result
from sampling import figures, train

from pyro_nrg.analysis import to_inference_data
from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.infer import (
    coverage_check,
    flow_mh,
    latent_hmc_walkers,
)


def run(L: int, odd: bool, steps: int, flow_dir: Path | None, s: dict, ref: dict) -> dict:
    """Train (or reuse) one flow, then its estimate, coverage and flow-MH figures."""
    energy = IsingRelaxed(L, ISING_TC)
    d, tinfo = train(L, steps, flow_dir=flow_dir, odd=odd)
    q = d.guide.distribution()
    est = d.estimate(8192)
    pyro.set_rng_seed(3)
    walk = latent_hmc_walkers(energy, d.guide, s["walkers"], s["walker_draws"][L], s["walker_warmup"],
                              step_size=0.2, num_steps=10, adapt_step_size=True, keep_samples=True,
                              mass_matrix="dense")
    with torch.no_grad():
        cov = coverage_check(energy, q, walk.samples, n_proposal=8192).to_dict()
    walk.samples = None
    wrow = figures("latent_hmc_walkers", to_inference_data(walk), walk.sample_seconds, walk.total_grad_evals, {})
    pyro.set_rng_seed(4)
    with torch.no_grad():
        t0 = time.perf_counter()
        mh = flow_mh(energy, q, num_walkers=s["mh_walkers"], num_samples=s["mh_steps"], warmup_steps=s["mh_warmup"])
        mh_s = time.perf_counter() - t0
    mrow = figures("flow_mh", to_inference_data(mh, energy=energy), mh_s, 0, {})
    z = {r["method"]: (r["m2_mean"] - ref["m2"]) / math.hypot(r["m2_err"], ref["m2_err"]) for r in (wrow, mrow)}
    print(f"  L={L} {'odd' if odd else 'mixture'} done", flush=True)
    return {"L": L, "flow": "odd" if odd else "mixture", "training": tinfo, "fq_rel_err": est.f_q_rel_err,
            "is_rel_err": est.is_rel_err, "is_sigma": est.is_sigma, "ess_fraction": est.ess_fraction,
            "khat": est.khat, "coverage": cov, "walkers": wrow, "flow_mh": mrow,
            "m2_z_walkers": z["latent_hmc_walkers"], "m2_z_flow_mh": z["flow_mh"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes; L=8 only)")
    ap.add_argument("--mixture-dir", type=Path, default=None,
                    help="sampling.py's --flow-dir (DIR/L8, DIR/L16): reuse its mixture flows instead of retraining")
    ap.add_argument("--odd-dir", type=Path, default=None, help="checkpoint folder of the odd flows (reused if there)")
    ap.add_argument("--sizes", type=int, nargs="+", choices=(8, 16), default=None,
                    help="lattices, in this order (default 8 16; --quick: 8)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        s = dict(sizes=(8,), steps={"mixture": {8: 150}, "odd": {8: 150}}, walkers=32, walker_draws={8: 60},
                 walker_warmup=30, mh_walkers=32, mh_steps=100, mh_warmup=20, wolff_updates=2000)
    else:
        s = dict(sizes=(8, 16), steps={"mixture": {8: 1500, 16: 8000}, "odd": {8: 1500, 16: 4000}}, walkers=64,
                 walker_draws={8: 300, 16: 600}, walker_warmup=150, mh_walkers=64, mh_steps=1500, mh_warmup=200,
                 wolff_updates=20000)
    if args.sizes:
        if args.quick and 16 in args.sizes:
            ap.error("--quick runs L=8 only")
        s["sizes"] = tuple(args.sizes)
    t_start = time.perf_counter()
    results = []
    for L in s["sizes"]:
        ref = m2_reference(L, ISING_TC, s["wolff_updates"], seed=0)  # exact for L <= 10, Wolff at L = 16
        for kind, folder in (("mixture", args.mixture_dir), ("odd", args.odd_dir)):
            results.append(run(L, kind == "odd", s["steps"][kind][L], folder, s, ref))
        results[-1]["reference"] = results[-2]["reference"] = ref
    rows = [(str(r["L"]), r["flow"], str(r["training"]["steps"]), f"{r['training']['train_seconds']:.0f}",
             f"{r['fq_rel_err']:.2%}", f"{r['is_sigma']:+.1f}", f"{r['ess_fraction']:.3f}", f"{r['khat']:.2f}",
             f"{r['coverage']['fraction_beyond']:.1%}", f"{r['coverage']['gap_nats']:+.1f}",
             f"{r['walkers']['m2_mean']:.4f}±{r['walkers']['m2_err']:.4f}", f"{r['m2_z_walkers']:+.1f}",
             f"{r['flow_mh']['acceptance']:.2f}", f"{r['flow_mh']['m2_mean']:.4f}±{r['flow_mh']['m2_err']:.4f}",
             f"{r['m2_z_flow_mh']:+.1f}") for r in results]
    print(table(rows, ("L", "flow", "steps", "train s", "F_q rel", "IS sigma", "ESS/N", "k-hat", "beyond", "gap",
                       "walkers <m2>", "z", "MH acc", "flow-MH <m2>", "z")))
    for r in results[::2]:
        print(f"L={r['L']}: <m2> reference {r['reference']['m2']:.6f} ± {r['reference']['m2_err']:.6f} "
              f"({r['reference']['kind']})")
    headline = {}
    for r in results:
        tag = f"L{r['L']}_{r['flow']}"
        headline.update({f"{tag}_fq_rel_err": r["fq_rel_err"], f"{tag}_coverage_fraction_beyond":
                         r["coverage"]["fraction_beyond"], f"{tag}_coverage_gap_nats": r["coverage"]["gap_nats"],
                         f"{tag}_flow_mh_m2": r["flow_mh"]["m2_mean"], f"{tag}_flow_mh_m2_err": r["flow_mh"]["m2_err"],
                         f"{tag}_flow_mh_m2_z_vs_reference": r["m2_z_flow_mh"],
                         f"{tag}_flow_mh_acceptance": r["flow_mh"]["acceptance"]})
    headline["total_seconds"] = time.perf_counter() - t_start
    settings = {**{k: (v if not isinstance(v, dict) else str(v)) for k, v in s.items()}, "temperature": ISING_TC,
                "threads": 1, "training": "sampling.train: path gradients, cosine schedule, batch 256, lr 3e-3; the "
                "mixture flow is the Z2-symmetrized guide, the odd flow neural_rg(odd=True) without the mixture"}
    path = write_result("flow_mh_coverage" + ("_quick" if args.quick else ""), settings, {"rows": results}, headline)
    print("wrote", path)


if __name__ == "__main__":
    main()
