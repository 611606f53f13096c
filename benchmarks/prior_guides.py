"""Which SVI guide can be trusted on a Pyro model with a NeuralRG flow prior? Posterior of the noise scale against NUTS.

The model of issue 27: one L x L field with the trained flow as prior (the Z2-symmetrised mixture that ``distill``
returns by default), an unknown noise scale, Gaussian noise observed,

    sigma ~ HalfNormal(1),    field ~ q (flow prior),    y ~ Normal(field, sigma)   (true sigma 0.7),

with the truth an exact draw of the relaxed Ising model at T_c (flow-proposal Metropolis). Reference: a long NUTS
run on ``latent_reparam(model)`` (the sign summed out by enumeration). Guides, each fitted by SVI on the latent model
with ``TraceEnum_ELBO`` (4 particles, ClippedAdam, learning rate decaying tenfold):

* ``AutoNormal`` — Pyro's mean-field default, the guide a user reaches for first;
* ``LatentModel.guide()`` — a full-rank Gaussian over the flow latents and log sigma;
* ``LatentModel.guide(rank=8)`` — low rank plus diagonal.

Reported: the guide's posterior mean and sd of sigma (4000 guide draws) against NUTS's, relative errors; the
target is both within 10 %.

    python benchmarks/prior_guides.py                      # trains the L=8 prior (recipe), then ~20 min
    python benchmarks/prior_guides.py --prior PATH         # a prior saved with .save() instead of training
    python benchmarks/prior_guides.py --quick              # L=4, a few minutes: prior_guides/quick.json

Writes benchmarks/results/prior_guides/full.json (or quick.json).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from _common import table, write_result
from pyro import poutine
from pyro.infer import MCMC, NUTS, SVI, TraceEnum_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.ops.stats import effective_sample_size
from recipes import distiller

from pyro_nrg.distributions import load_distribution
from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.infer import LatentModel, flow_mh, latent_reparam

TRUE_SIGMA = 0.7


def make_model(prior: Any):
    def model(y=None):
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        field = pyro.sample("field", prior)
        return pyro.sample("y", dist.Normal(field, sigma[..., None, None]).to_event(2), obs=y)

    return model


def guides(latent: LatentModel) -> dict[str, Any]:
    hidden = poutine.block(latent, hide_fn=lambda msg: msg.get("infer", {}).get("enumerate") == "parallel")
    return {"AutoNormal": lambda: AutoNormal(hidden), "mvn": lambda: latent.guide(),
            "lowrank8": lambda: latent.guide(rank=8)}


def fit(latent: LatentModel, make_guide, y: torch.Tensor, steps: int, seed: int) -> dict[str, float]:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = make_guide()
    optim = pyro.optim.ClippedAdam({"lr": 0.01, "lrd": 0.1 ** (1.0 / steps)})
    svi = SVI(latent, guide, optim, TraceEnum_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=0))
    t0 = time.perf_counter()
    for _ in range(steps):
        svi.step(y)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        s = torch.stack([guide()["sigma"] for _ in range(4000)])
    return {"sigma_mean": float(s.mean()), "sigma_sd": float(s.std()), "seconds": seconds, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="L=4, short runs (CI-sized)")
    ap.add_argument("--prior", default=None, help="a saved prior (FlowDistribution/Z2Symmetrized .save()) to use")
    ap.add_argument("--nuts-samples", type=int, default=None)
    ap.add_argument("--nuts-warmup", type=int, default=None)
    ap.add_argument("--steps", type=int, nargs="+", default=None, help="SVI steps (default 500 1500)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    L = 4 if args.quick else 8
    nuts_samples = args.nuts_samples or (200 if args.quick else 2000)
    nuts_warmup = args.nuts_warmup or (100 if args.quick else 300)
    steps_list = args.steps or ([200] if args.quick else [500, 1500])
    energy = IsingRelaxed(L, ISING_TC)
    if args.prior:
        prior, train_info = load_distribution(args.prior), {"prior": args.prior}
    else:
        d = distiller(L, steps=100 if args.quick else 1500, seed=args.seed)
        d.run(progress=False)
        train_info = {"steps": d.config.steps, "f_q_rel_err": d.estimate(4096).f_q_rel_err}
        d.flow.requires_grad_(False)
        prior = d.guide.distribution()

    pyro.set_rng_seed(args.seed)
    truth = flow_mh(energy, prior, num_walkers=1, num_samples=50).samples[0, -1]
    y = truth + TRUE_SIGMA * torch.randn_like(truth)
    latent = latent_reparam(make_model(prior))

    pyro.set_rng_seed(args.seed + 1)
    t0 = time.perf_counter()
    mcmc = MCMC(NUTS(latent), num_samples=nuts_samples, warmup_steps=nuts_warmup, disable_progbar=True)
    mcmc.run(y)
    s = mcmc.get_samples()["sigma"].double()
    ess = float(effective_sample_size(s[None]))
    nuts = {"sigma_mean": float(s.mean()), "sigma_sd": float(s.std()), "ess": ess,
            "sigma_mean_mcse": float(s.std()) / ess**0.5, "seconds": time.perf_counter() - t0,
            "num_samples": nuts_samples, "warmup_steps": nuts_warmup}
    print(f"NUTS: sigma {nuts['sigma_mean']:.4f} ± {nuts['sigma_mean_mcse']:.4f} (mcse), sd {nuts['sigma_sd']:.4f}, "
          f"ESS {ess:.0f} ({nuts['seconds']:.0f} s)", flush=True)

    fits, rows, headline = {}, [], {"nuts_sigma_mean": nuts["sigma_mean"], "nuts_sigma_sd": nuts["sigma_sd"]}
    for name, make in guides(latent).items():
        for steps in steps_list:
            r = fit(latent, make, y, steps, args.seed + 2)
            r["sigma_mean_rel_err"] = r["sigma_mean"] / nuts["sigma_mean"] - 1
            r["sigma_sd_rel_err"] = r["sigma_sd"] / nuts["sigma_sd"] - 1
            fits[f"{name}_{steps}"] = r
            rows.append((name, str(steps), f"{r['sigma_mean']:.4f}", f"{r['sigma_mean_rel_err']:+.1%}",
                         f"{r['sigma_sd']:.4f}", f"{r['sigma_sd_rel_err']:+.1%}", f"{r['seconds']:.0f}"))
            print(rows[-1], flush=True)
        last = fits[f"{name}_{steps_list[-1]}"]
        headline[f"sigma_mean_rel_err_{name.lower()}"] = last["sigma_mean_rel_err"]
        headline[f"sigma_sd_rel_err_{name.lower()}"] = last["sigma_sd_rel_err"]
    rows.append(("NUTS", str(nuts_samples), f"{nuts['sigma_mean']:.4f}", "", f"{nuts['sigma_sd']:.4f}", "",
                 f"{nuts['seconds']:.0f}"))
    print(table(rows, ("guide", "steps/draws", "sigma mean", "vs NUTS", "sigma sd", "vs NUTS", "s")))
    print("headline:", {k: round(v, 4) for k, v in headline.items()})
    path = write_result("quick" if args.quick else "full",
                        {"L": L, "T": ISING_TC, "true_sigma": TRUE_SIGMA, "seed": args.seed, "training": train_info,
                         "svi": "TraceEnum_ELBO, 4 particles, ClippedAdam lr 0.01 -> 0.001"},
                        {"nuts": nuts, "guides": fits}, headline)
    print("wrote", path)


if __name__ == "__main__":
    main()
