"""Sampling benchmark, long baseline: the L=16 ESS-per-gradient ratio with a physical-NUTS baseline long enough
for its ESS to be measured (2 x 2500 draws instead of 4 x 500; tau(m^2) is 75-180 draws there).

The flow is distilled exactly as in ``benchmarks/sampling.py`` (2000 steps), then physical NUTS (2 x 2500 after
200 warm-up), latent many-walker HMC (64 x 1000 after 60) and latent NUTS (2 x 700 after 100) sample the
relaxed Ising model at T_c. About 30 minutes on one core.

    OMP_NUM_THREADS=1 python benchmarks/sampling_l16_long.py

Writes benchmarks/results/sampling_l16_long.json (headline: the two ratios and the <m^2> estimates).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from sampling import figures, hmc_extra, train  # noqa: E402

from pyro_nrg.diagnostics import to_inference_data  # noqa: E402
from pyro_nrg.energies import ISING_TC, IsingRelaxed, wolff_ising  # noqa: E402
from pyro_nrg.infer.latent import latent_hmc_walkers, latent_nuts, physical_nuts  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    L = 16
    energy = IsingRelaxed(L, ISING_TC)
    d, tinfo = train(L, 2000, seed=0)
    q = d.guide.distribution()
    rows = []
    pyro.set_rng_seed(1)
    res = physical_nuts(energy, 2500, 200, num_chains=2, init=q)
    rows.append(figures("physical_nuts", to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                        hmc_extra(res)))
    pyro.set_rng_seed(3)
    res = latent_hmc_walkers(energy, d.guide, 64, 1000, 60, step_size=0.2, num_steps=10, adapt_step_size=True,
                             keep_samples=False)
    rows.append(figures("latent_hmc_walkers", to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                        hmc_extra(res)))
    pyro.set_rng_seed(2)
    res = latent_nuts(energy, d.guide, 700, 100, num_chains=2, keep_samples=False, keep_latent=False)
    rows.append(figures("latent_nuts", to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                        hmc_extra(res)))
    ref = wolff_ising(L, ISING_TC, n_updates=20_000, seed=0)
    base = rows[0]["m2_ess_per_grad"]
    by = {r["method"]: r for r in rows}
    headline = {
        "L16_ess_per_grad_ratio_latent_nuts_vs_physical_nuts": by["latent_nuts"]["m2_ess_per_grad"] / base,
        "L16_ess_per_grad_ratio_latent_hmc_walkers_vs_physical_nuts": by["latent_hmc_walkers"]["m2_ess_per_grad"]
        / base,
        "L16_physical_nuts_m2_ess": by["physical_nuts"]["m2_ess"],
        **{f"L16_m2_{m}": by[m]["m2_mean"] for m in by},
        **{f"L16_m2_{m}_err": by[m]["m2_err"] for m in by},
        "L16_m2_reference_wolff": ref.m2,
        "L16_m2_reference_wolff_err": ref.m2_err,
    }
    for k, v in headline.items():
        print(f"{k}: {v:.4g}")
    settings = {"L": L, "temperature": ISING_TC, "train_steps": 2000, "physical_nuts": "2 chains x 2500 after 200",
                "latent_hmc_walkers": "64 x 1000 after 60, 10 leapfrog steps, dual averaging",
                "latent_nuts": "2 chains x 700 after 100", "threads": 1}
    write_result("sampling_l16_long", settings, {"training": tinfo, "rows": rows}, headline)


if __name__ == "__main__":
    main()
