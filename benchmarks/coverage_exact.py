"""Where does a distilled flow miss p? Both KL divergences and the coverage hole, from exact draws (2D Ising, T_c).

The relaxed Ising model has exact draws: Wolff cluster spins s, then x ~ N(Ks, K), the Hubbard-Stratonovich
conditional (``IsingRelaxed.exact_samples``). With them and the exact ln Z this script measures, for the Z2-mixture
NeuralRG flow and the odd one (the recipes of benchmarks/sampling.py and flow_mh_coverage.py):

- the reverse KL, KL(q||p) = (F_q - F)/T, which distillation minimises (from 8192 flow draws);
- the forward KL, KL(p||q) = E_p[ln w] - ln Z (``pyro_nrg.infer.forward_kl``), which is what a hole costs and what
  bounds importance sampling and independence Metropolis;
- the coverage check against the exact draws (fraction beyond the largest of 8192 flow log-weights, and the 99th
  percentile gap), which needs no sampler that could itself be biased (flow_mh_coverage.py used latent walkers);
- where the hole is: exact draws and flow draws binned by the improved magnetisation |mean_i tanh x_i|
  (= |E[m | x]|), with the share of each bin beyond every flow draw and its median log-weight above the flow's
  largest.

    OMP_NUM_THREADS=1 python benchmarks/coverage_exact.py --mixture-dir DIR --odd-dir DIR2
    python benchmarks/coverage_exact.py --quick          # about a minute (L=8, short training)

``--mixture-dir``/``--odd-dir`` reuse the flows of ``sampling.py --flow-dir`` and ``flow_mh_coverage.py --odd-dir``
(L=8 1500 steps each; L=16 8000 mixture, 4000 odd); without them the flows are trained here (about 70 + 35 min at
L=16 on one core). Writes benchmarks/results/coverage_exact/full.json.

Result (2026-11-29): see the "figures"/"headline" of that file and docs/physics.md ("Coverage").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import table, write_result
from sampling import train

from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.infer import coverage_check, forward_kl, log_weights, sample_log_weights

M_BINS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def improved_abs_m(x: torch.Tensor) -> torch.Tensor:
    """|mean_i tanh x_i| = |E[m | x]| per configuration, shape ``(n,)``."""
    return x.flatten(1).tanh().mean(1).abs()


def run(L: int, odd: bool, steps: int, flow_dir: Path | None, n_draws: int, n_flow: int) -> dict:
    """One flow: both KLs, the coverage check and the hole by magnetisation bin."""
    energy = IsingRelaxed(L, ISING_TC)
    d, tinfo = train(L, steps, flow_dir=flow_dir, odd=odd)
    q = d.guide.distribution()
    est = d.estimate(n_flow)
    t0 = time.perf_counter()
    x = energy.exact_samples(n_draws, seed=7).float()
    draw_s = time.perf_counter() - t0
    with torch.no_grad():
        fkl = forward_kl(energy, q, x)
        cov = coverage_check(energy, q, x, n_proposal=n_flow)
        lw = torch.cat([log_weights(energy, q, b) for b in x.split(4096)])
        xq, lwq = sample_log_weights(energy, q, n_flow)
    top = float(lwq.max())
    m_p, m_q = improved_abs_m(x), improved_abs_m(xq)
    bins = []
    for lo, hi in zip(M_BINS[:-1], M_BINS[1:], strict=True):
        sel = (m_p >= lo) & ((m_p < hi) if hi < 1.0 else (m_p <= hi))
        selq = (m_q >= lo) & ((m_q < hi) if hi < 1.0 else (m_q <= hi))
        n = int(sel.sum())
        bins.append({"m_lo": lo, "m_hi": hi, "p_mass": n / len(m_p), "q_mass": float(selq.float().mean()),
                     "beyond": float((lw[sel] > top).float().mean()) if n else float("nan"),
                     "median_lw_above_top": float((lw[sel] - top).median()) if n else float("nan")})
    return {"L": L, "flow": "odd" if odd else "mixture", "training": tinfo, "log_z": energy.log_z(),
            "fq_rel_err": est.f_q_rel_err, "kl_q_p": est.f_q_rel_err * energy.log_z(),
            "kl_p_q": fkl.kl, "kl_p_q_err": fkl.kl_err, "exact_draws": n_draws, "exact_draw_seconds": draw_s,
            "coverage": cov.to_dict(), "m_bins": bins,
            "m_mean_exact": float(m_p.mean()), "m_mean_flow": float(m_q.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="L=8 with 150 training steps (about a minute)")
    ap.add_argument("--mixture-dir", type=Path, default=None, help="sampling.py's --flow-dir (reused if there)")
    ap.add_argument("--odd-dir", type=Path, default=None, help="flow_mh_coverage.py's --odd-dir (reused if there)")
    ap.add_argument("--sizes", type=int, nargs="+", choices=(8, 16), default=None, help="default 8 16 (--quick: 8)")
    ap.add_argument("--draws", type=int, default=8000, help="exact draws per lattice (default 8000)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    steps = ({"mixture": {8: 150}, "odd": {8: 150}} if args.quick
             else {"mixture": {8: 1500, 16: 8000}, "odd": {8: 1500, 16: 4000}})
    sizes = tuple(args.sizes) if args.sizes else ((8,) if args.quick else (8, 16))
    if args.quick and 16 in sizes:
        ap.error("--quick runs L=8 only")
    n_flow = 8192
    t_start = time.perf_counter()
    results = [run(L, kind == "odd", steps[kind][L], folder, args.draws, n_flow)
               for L in sizes for kind, folder in (("mixture", args.mixture_dir), ("odd", args.odd_dir))]
    print(table([(str(r["L"]), r["flow"], str(r["training"]["steps"]), f"{r['fq_rel_err']:.2%}", f"{r['kl_q_p']:.2f}",
                  f"{r['kl_p_q']:.2f}±{r['kl_p_q_err']:.2f}", f"{r['coverage']['fraction_beyond']:.1%}",
                  f"{r['coverage']['gap_nats']:+.1f}") for r in results],
                ("L", "flow", "steps", "F_q rel", "KL(q||p)", "KL(p||q)", "beyond", "gap")))
    for r in results:
        print(f"\nL={r['L']} {r['flow']}: exact draws vs flow draws by |E[m|x]|")
        print(table([(f"{b['m_lo']:.1f}-{b['m_hi']:.1f}", f"{b['p_mass']:.3f}", f"{b['q_mass']:.3f}",
                      f"{b['beyond']:.2f}", f"{b['median_lw_above_top']:+.1f}") for b in r["m_bins"]],
                    ("|m|", "p mass", "q mass", "beyond", "median ln w - max")))
    headline: dict[str, float] = {}
    for r in results:
        tag = f"L{r['L']}_{r['flow']}"
        low = [b for b in r["m_bins"] if b["m_hi"] <= 0.5]
        headline.update({f"{tag}_kl_q_p": r["kl_q_p"], f"{tag}_kl_p_q": r["kl_p_q"],
                         f"{tag}_kl_p_q_err": r["kl_p_q_err"],
                         f"{tag}_coverage_fraction_beyond": r["coverage"]["fraction_beyond"],
                         f"{tag}_coverage_gap_nats": r["coverage"]["gap_nats"],
                         f"{tag}_p_mass_m_below_0.5": float(np.sum([b["p_mass"] for b in low])),
                         f"{tag}_q_mass_m_below_0.5": float(np.sum([b["q_mass"] for b in low]))})
    headline["total_seconds"] = time.perf_counter() - t_start
    settings = {"quick": args.quick, "sizes": list(sizes), "steps": str(steps), "exact_draws": args.draws,
                "flow_draws": n_flow, "temperature": ISING_TC, "threads": 1, "m_bins": list(M_BINS),
                "exact_sampler": "IsingRelaxed.exact_samples: wolff_spins (thin = two sweeps), x ~ N(Ks, K), seed 7",
                "training": "sampling.train: path gradients, cosine schedule, batch 256, lr 3e-3"}
    path = write_result("coverage_exact" + ("_quick" if args.quick else ""), settings, {"rows": results}, headline)
    print("wrote", path)


if __name__ == "__main__":
    main()
