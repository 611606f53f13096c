"""GPU speed of NeuralRG distillation: step time and F_q after a fixed budget at L = 16, 32, 64, eager vs fast path.

For each L, two runs of the benchmark recipe (``recipes.distiller``: path gradients, Z2 mixture, warm-up + cosine on
elapsed time) on the same device, one on the eager path and one on the fast path (``DistillConfig.fast``:
``torch.compile``, which needs Triton on a GPU; without it the fast path runs eagerly and says so). Each run: the
median training-step time (after the first steps, which include compiling), the steps reached and the variational
F_q against the exact F (Kaufman) after ``--budget`` seconds of training. Written for a session that is lent a GPU
(``results/gpu_speed/full.json``, with the card named in ``machine.device``); ``--quick`` runs anywhere (CPU too,
L = 8 only, seconds).

    python benchmarks/gpu_speed.py --budget 120            # on the GPU machine: 2 x 3 runs of 2 minutes
    python benchmarks/gpu_speed.py --quick --device cpu    # smoke test
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import table, write_result
from recipes import distiller

from pyro_nrg.infer import Distiller, TimeBudget


def run(L: int, fast: bool, budget: float, batch: int, device: str, n_eval: int) -> dict:
    """One budgeted run; returns step times, steps and the float64 F_q estimate."""
    d = distiller(L, steps=10**6, batch_size=batch, fast=fast, repeats=3, activation="silu")
    if device != "cpu":  # the same recipe, rebuilt on the device (guide, optimizer and RNG see the moved tensors)
        d = Distiller(d.energy.to(device), d.flow.to(device), d.config)
    clock = TimeBudget(budget).start()
    t0 = time.perf_counter()
    d.run(callbacks=[clock], progress=False)
    wall = time.perf_counter() - t0
    secs = d.history["seconds"]
    est = d.estimate(n_eval)
    return {"L": L, "fast": fast, "batch": batch, "steps": d.step, "train_seconds": wall,
            "first_step_s": secs[0] if secs else None,
            "step_s_median": statistics.median(secs[len(secs) // 2:]) if secs else None,
            "f_q": est.f_q, "f_q_err": est.f_q_err, "f_q_rel_err": est.f_q_rel_err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=120.0, help="training seconds per run (default 120)")
    ap.add_argument("--batch", type=int, default=1024, help="samples per step (default 1024)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="L=8, 10 s, batch 64, on any device")
    args = ap.parse_args()
    sizes, budget, batch, n_eval = args.sizes, args.budget, args.batch, 8192
    if args.quick:
        sizes, budget, batch, n_eval = [8], 10.0, 64, 1024
    rows, runs = [], []
    for L in sizes:
        for fast in (False, True):
            r = run(L, fast, budget, batch, args.device, n_eval)
            runs.append(r)
            rows.append((str(L), "fast" if fast else "eager", str(r["steps"]), f"{r['first_step_s']:.2f}",
                         f"{r['step_s_median'] * 1e3:.1f}", f"{r['f_q_rel_err']:.3e}"))
            print(table(rows[-1:], ("L", "path", "steps", "first step s", "step ms", "F_q rel err")), flush=True)
    print(table(rows, ("L", "path", "steps", "first step s", "step ms", "F_q rel err")))
    by = {(r["L"], r["fast"]): r for r in runs}
    headline = {f"L{L}_step_speedup_fast_vs_eager": by[(L, False)]["step_s_median"] / by[(L, True)]["step_s_median"]
                for L in sizes}
    headline.update({f"L{L}_fq_rel_err_{'fast' if f else 'eager'}": by[(L, f)]["f_q_rel_err"]
                     for L in sizes for f in (False, True)})
    path = write_result("gpu_speed_quick" if args.quick else "gpu_speed",
                        {"budget_s": budget, "batch": batch, "device": args.device, "sizes": sizes,
                         "flow": "neural_rg, repeats=3, SiLU, tanh head", "n_eval": n_eval},
                        {"runs": runs}, headline)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
