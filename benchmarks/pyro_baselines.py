"""Stock Pyro against pyro_nrg on the relaxed 2D Ising model at T_c: variational free energy and NeuTra NUTS.

The route a Pyro user would take without this package: the relaxed Ising energy as a Pyro model (a flat site and
``pyro.factor``, ``pyro_nrg.infer.boltzmann_model``), a normalizing-flow guide from Pyro itself fitted by SVI
(reverse KL, ``Trace_ELBO``), then ``NeuTraReparam`` + NUTS in the guide's latent space. Two stock guides, each
swept over a small grid (hidden width, depth, learning rate; the best by F_q is kept):

* ``AutoIAFNormal`` — inverse autoregressive flow (MADE nets), Pyro's default normalizing-flow autoguide;
* ``AutoNormalizingFlow`` with a stack of ``affine_coupling`` layers (RealNVP, a random permutation between them).

Ours: the benchmarks' recipe (``recipes.distiller``: NeuralRG flow, path gradients, warm-up + cosine schedule, Z2
mixture), then ``latent_nuts`` (NUTS on the renormalized energy with the Z2 sector function). Equal training work:
every guide sees ``steps x batch`` configurations (SVI with ``num_particles = batch``, vectorised).

Reported: F_q relative error against Kaufman's exact ln Z (float64, 8192 draws, with its Monte-Carlo error),
ESS(m^2) (ArviZ bulk, improved estimator) per gradient and per second of sampling (gradients = potential calls
during sampling, counted the same way for both), and <m^2> against the exact value (transfer matrix, L <= 10;
the long Wolff run of benchmarks/exact_references.py at L=16).

    python benchmarks/pyro_baselines.py              # L=8 (about 10 minutes on one quiet core)
    python benchmarks/pyro_baselines.py --L 8 16     # also L=16 (hours)
    python benchmarks/pyro_baselines.py --quick      # L=4, a minute: pyro_baselines/quick.json

Writes benchmarks/results/pyro_baselines/full.json (or quick.json).
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from functools import partial
from typing import Any

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from _common import read_result, table, write_result
from pyro import poutine
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoIAFNormal, AutoNormalizingFlow
from pyro.infer.reparam import NeuTraReparam
from recipes import distiller

from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.infer import boltzmann_model, estimate_free_energy, latent_nuts


def coupling_stack(input_dim: int, depth: int, hidden: int) -> T.ComposeTransformModule:
    """``depth`` RealNVP ``affine_coupling`` layers with a fixed random permutation after each (Pyro's parts)."""
    parts: list[Any] = []
    for _ in range(depth):
        parts += [T.affine_coupling(input_dim, hidden_dims=[hidden, hidden]), T.Permute(torch.randperm(input_dim))]
    return T.ComposeTransformModule(parts)


def stock_guide(kind: str, model, hidden: int, depth: int):
    if kind == "iaf":
        return AutoIAFNormal(model, hidden_dim=[hidden, hidden], num_transforms=depth)
    return AutoNormalizingFlow(model, partial(coupling_stack, depth=depth, hidden=hidden))


@torch.no_grad()
def stock_free_energy(energy: IsingRelaxed, guide, n: int) -> dict[str, float]:
    """F_q of a fitted stock guide from ``n`` draws: ln q from the forward pass (no inverse of the IAF)."""
    transform = guide.get_transform()
    N = math.prod(energy.event_shape)
    lws = []
    for b in [4096] * (n // 4096) + ([n % 4096] if n % 4096 else []):
        z = torch.randn(b, N)
        x = transform(z)
        log_q = dist.Normal(0.0, 1.0).log_prob(z).sum(-1) - transform.log_abs_det_jacobian(z, x)
        lws.append((-energy.action(x.reshape(b, *energy.event_shape)) - log_q).double())
    est = estimate_free_energy(torch.cat(lws), float(energy.temperature), float(energy.log_z()))
    return {"f_q": est.f_q, "f_q_err": est.f_q_err, "f_q_rel_err": est.f_q_rel_err,
            "f_q_rel_err_err": est.f_q_err / abs(est.f_q) if est.f_q else math.nan}


def fit_stock(energy: IsingRelaxed, kind: str, hidden: int, depth: int, lr: float, steps: int, batch: int,
              seed: int) -> tuple[Any, dict[str, Any]]:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model = boltzmann_model(energy)
    guide = stock_guide(kind, model, hidden, depth)
    optim = pyro.optim.ClippedAdam({"lr": lr, "lrd": 0.1 ** (1.0 / steps), "clip_norm": 10.0})
    svi = SVI(model, guide, optim, Trace_ELBO(num_particles=batch, vectorize_particles=True, max_plate_nesting=0))
    t0 = time.perf_counter()
    for _ in range(steps):
        svi.step()
    seconds = time.perf_counter() - t0
    row = {"guide": kind, "hidden": hidden, "depth": depth, "lr": lr, "train_seconds": seconds,
           **stock_free_energy(energy, guide, 8192)}
    return guide, row


def m2_figures(m2: np.ndarray, grads: int, seconds: float, exact: float, exact_err: float) -> dict[str, float]:
    """ESS (ArviZ bulk) of m^2 draws ``(chains, draws)``, per gradient and per second, and <m^2> against a
    reference."""
    ess = float(az.ess(m2))
    mean, err = float(m2.mean()), float(m2.std() / math.sqrt(max(ess, 1.0)))
    return {"m2_mean": mean, "m2_err": err, "m2_ess": ess, "grad_evals": grads, "sample_seconds": seconds,
            "m2_ess_per_grad": ess / grads, "m2_ess_per_s": ess / seconds,
            "m2_z_vs_reference": (mean - exact) / math.hypot(err, exact_err)}


def stock_neutra_nuts(energy: IsingRelaxed, guide, num_samples: int, warmup: int, chains: int, seed: int,
                      exact: tuple[float, float]) -> dict[str, float]:
    """``NeuTraReparam`` + NUTS (Pyro's recipe), chains one after another; gradients = model calls during
    sampling (each potential evaluation traces the model once)."""
    calls = [0]
    base_model = boltzmann_model(energy)

    def model():
        calls[0] += 1
        return base_model()

    neutra = NeuTraReparam(guide.requires_grad_(False))
    reparam = poutine.reparam(model, config=lambda _: neutra)
    m2s, grads, seconds = [], 0, 0.0
    for c in range(chains):
        pyro.set_rng_seed(seed + c)
        mark: dict[str, Any] = {}

        def hook(kernel, params, stage, i, mark=mark):
            if stage == "Sample" and "calls" not in mark:
                mark["calls"], mark["t"] = calls[0], time.perf_counter()

        mcmc = MCMC(NUTS(reparam), num_samples=num_samples, warmup_steps=warmup, hook_fn=hook, disable_progbar=True)
        mcmc.run()
        seconds += time.perf_counter() - mark["t"]
        grads += calls[0] - mark["calls"]
        x = neutra.transform_sample(mcmc.get_samples()["x_shared_latent"])["x"]
        m2s.append(energy.m2_improved(x.reshape(-1, *energy.event_shape)).detach().double().numpy())
    return m2_figures(np.stack(m2s), grads, seconds, *exact)


def reference_m2(energy: IsingRelaxed) -> tuple[float, float, str]:
    try:
        return float(energy.exact_m2()), 0.0, "exact (transfer matrix)"
    except NotImplementedError:
        ref = read_result("exact_references")["headline"]
        return ref["L16_m2_wolff_long"], ref["L16_m2_wolff_long_err"], "Wolff, 8e6 updates"


def run_lattice(L: int, s: dict[str, Any], seed: int) -> dict[str, Any]:
    energy = IsingRelaxed(L, ISING_TC)
    m2_ref, m2_ref_err, ref_kind = reference_m2(energy)
    steps, batch = s["train_steps"][L], s["batch"]

    sweep, best = [], None
    for kind, hidden, depth, lr in itertools.product(*s["sweep"]):
        guide, row = fit_stock(energy, kind, hidden, depth, lr, steps, batch, seed)
        sweep.append(row)
        print(f"  L={L} {kind} hidden {hidden} depth {depth} lr {lr:g}: F_q rel. err {row['f_q_rel_err']:.3%} "
              f"({row['train_seconds']:.0f} s)", flush=True)
        if best is None or row["f_q"] < best[1]["f_q"]:
            best = (guide, row)
    guide, best_row = best
    stock = stock_neutra_nuts(energy, guide, s["nuts_samples"], s["nuts_warmup"], s["chains"], seed + 100,
                              (m2_ref, m2_ref_err))
    print(f"  L={L} stock NeuTra NUTS done", flush=True)

    d = distiller(L, steps=steps, batch_size=batch, seed=seed)
    t0 = time.perf_counter()
    d.run(progress=False)
    train_seconds = time.perf_counter() - t0
    est = d.estimate(8192)
    ours_fe = {"f_q": est.f_q, "f_q_err": est.f_q_err, "f_q_rel_err": est.f_q_rel_err,
               "f_q_rel_err_err": est.f_q_err / abs(est.f_q), "train_seconds": train_seconds}
    pyro.set_rng_seed(seed + 200)
    res = latent_nuts(energy, d.guide, s["nuts_samples"], s["nuts_warmup"], num_chains=s["chains"],
                      keep_samples=False, keep_latent=False)
    ours = m2_figures(res.observables["m2"].numpy(), int(res.total_grad_evals), res.sample_seconds, m2_ref,
                      m2_ref_err)
    print(f"  L={L} ours done", flush=True)
    return {"L": L, "m2_reference": m2_ref, "m2_reference_err": m2_ref_err, "m2_reference_kind": ref_kind,
            "stock_sweep": sweep, "stock_best": best_row, "stock_neutra_nuts": stock,
            "ours_free_energy": ours_fe, "ours_latent_nuts": ours}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="L=4, a minute (CI-sized)")
    ap.add_argument("--L", type=int, nargs="+", default=None, help="lattice sizes (default 8; --quick: 4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        sizes = args.L or [4]
        s = {"train_steps": {L: 60 for L in sizes}, "batch": 64, "nuts_samples": 100, "nuts_warmup": 50,
             "chains": 1, "sweep": (("iaf", "coupling"), (32,), (2,), (3e-3,))}
    else:
        sizes = args.L or [8]
        s = {"train_steps": {4: 500, 8: 1500, 16: 8000}, "batch": 256, "nuts_samples": 500, "nuts_warmup": 200,
             "chains": 2, "sweep": (("iaf", "coupling"), (256,), (4,), (1e-3, 3e-3))}
    results = {L: run_lattice(L, s, args.seed) for L in sizes}

    rows = []
    for L, r in results.items():
        b, st, ofe, on = r["stock_best"], r["stock_neutra_nuts"], r["ours_free_energy"], r["ours_latent_nuts"]
        rows.append((str(L), f"stock best ({b['guide']}, h{b['hidden']}, lr {b['lr']:g})",
                     f"{b['f_q_rel_err']:.3%} ± {b['f_q_rel_err_err']:.3%}", f"{st['m2_ess_per_grad']:.3g}",
                     f"{st['m2_ess_per_s']:.3g}", f"{st['m2_mean']:.4f} ± {st['m2_err']:.4f}",
                     f"{st['m2_z_vs_reference']:+.1f}"))
        rows.append((str(L), "ours (NeuralRG + latent NUTS)",
                     f"{ofe['f_q_rel_err']:.3%} ± {ofe['f_q_rel_err_err']:.3%}",
                     f"{on['m2_ess_per_grad']:.3g}", f"{on['m2_ess_per_s']:.3g}",
                     f"{on['m2_mean']:.4f} ± {on['m2_err']:.4f}", f"{on['m2_z_vs_reference']:+.1f}"))
    print(table(rows, ("L", "route", "F_q rel. err", "ESS(m2)/grad", "ESS(m2)/s", "<m2>", "z vs ref")))
    for L, r in results.items():
        print(f"L={L}: <m2> reference {r['m2_reference']:.6f} ± {r['m2_reference_err']:.6f} "
              f"({r['m2_reference_kind']})")

    headline: dict[str, Any] = {}
    for L, r in results.items():
        headline[f"L{L}_ess_per_grad_ratio_vs_stock_neutra"] = (
            r["ours_latent_nuts"]["m2_ess_per_grad"] / r["stock_neutra_nuts"]["m2_ess_per_grad"])
        headline[f"L{L}_ess_per_s_ratio_vs_stock_neutra"] = (
            r["ours_latent_nuts"]["m2_ess_per_s"] / r["stock_neutra_nuts"]["m2_ess_per_s"])
        headline[f"L{L}_fq_rel_err_stock_best"] = r["stock_best"]["f_q_rel_err"]
        headline[f"L{L}_fq_rel_err_ours"] = r["ours_free_energy"]["f_q_rel_err"]
    print("headline:", {k: round(v, 6) for k, v in headline.items()})
    path = write_result("quick" if args.quick else "full", {**s, "sizes": sizes, "seed": args.seed,
                        "threads": args.threads, "sweep": [list(a) for a in s["sweep"]]},
                        {str(L): r for L, r in results.items()}, headline)
    print("wrote", path)


if __name__ == "__main__":
    main()
