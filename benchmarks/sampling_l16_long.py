"""Sampling benchmark, long runs: the L=16 ESS-per-gradient ratios with every ESS large enough to be a measurement.

``benchmarks/sampling.py`` runs physical NUTS for 4 x 1500 draws, where tau(m^2) is 65-115 draws at L=16, so its
ESS (50-90) and the ratios built on it vary by 2x between runs. Here the flow is the one of ``sampling.py``
(same training, 3000 steps, the default NeuralRG flow; ``--flow-dir`` reuses its checkpoint), then physical NUTS
(4 x 3000 after 200 warm-up), latent many-walker HMC (64 x 2000 after 150) and latent NUTS (2 x 700 after 100)
sample the relaxed Ising model at T_c. About 40 minutes on one core.

    OMP_NUM_THREADS=1 python benchmarks/sampling_l16_long.py [--flow-dir DIR]

Writes benchmarks/results/sampling_l16_long.json (headline: the two ratios, the ESS behind them, <m^2>).
"""

from __future__ import annotations

import argparse
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

PHYS, WALK, LAT = (4, 3000, 200), (64, 2000, 150), (2, 700, 100)  # chains/walkers, draws, warm-up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flow-dir", type=Path, default=None,
                    help="checkpoint folder of sampling.py's flows (DIR/L16): reuse instead of retraining")
    args = ap.parse_args()
    torch.set_num_threads(1)
    L = 16
    energy = IsingRelaxed(L, ISING_TC)
    d, tinfo = train(L, 3000, seed=0, flow_dir=args.flow_dir)
    q = d.guide.distribution()
    rows = []
    pyro.set_rng_seed(1)
    res = physical_nuts(energy, PHYS[1], PHYS[2], num_chains=PHYS[0], init=q)
    rows.append(figures("physical_nuts", to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                        hmc_extra(res)))
    pyro.set_rng_seed(3)
    res = latent_hmc_walkers(energy, d.guide, WALK[0], WALK[1], WALK[2], step_size=0.2, num_steps=10,
                             adapt_step_size=True, keep_samples=False)
    rows.append(figures("latent_hmc_walkers", to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                        hmc_extra(res)))
    pyro.set_rng_seed(2)
    res = latent_nuts(energy, d.guide, LAT[1], LAT[2], num_chains=LAT[0], keep_samples=False, keep_latent=False)
    rows.append(figures("latent_nuts", to_inference_data(res), res.sample_seconds, res.total_grad_evals,
                        hmc_extra(res)))
    ref = wolff_ising(L, ISING_TC, n_updates=20_000, seed=0)
    base = rows[0]["m2_ess_per_grad"]
    by = {r["method"]: r for r in rows}
    headline = {
        "L16_ess_per_grad_ratio_latent_nuts_vs_physical_nuts": by["latent_nuts"]["m2_ess_per_grad"] / base,
        "L16_ess_per_grad_ratio_latent_hmc_walkers_vs_physical_nuts": by["latent_hmc_walkers"]["m2_ess_per_grad"]
        / base,
        **{f"L16_{m}_m2_ess": by[m]["m2_ess"] for m in by},
        **{f"L16_{m}_m2_ess_per_grad": by[m]["m2_ess_per_grad"] for m in by},
        **{f"L16_m2_{m}": by[m]["m2_mean"] for m in by},
        **{f"L16_m2_{m}_err": by[m]["m2_err"] for m in by},
        "L16_m2_reference_wolff": ref.m2,
        "L16_m2_reference_wolff_err": ref.m2_err,
    }
    for k, v in headline.items():
        print(f"{k}: {v:.4g}")
    settings = {"L": L, "temperature": ISING_TC, "train_steps": 3000, "flow": "neural_rg defaults (head='tanh')",
                "physical_nuts": "{} chains x {} after {}".format(*PHYS),
                "latent_hmc_walkers": "{} x {} after {}, 10 leapfrog steps, dual averaging to acceptance 0.85".format(
                    *WALK),
                "latent_nuts": "{} chains x {} after {}".format(*LAT), "threads": 1}
    write_result("sampling_l16_long", settings, {"training": tinfo, "rows": rows}, headline)


if __name__ == "__main__":
    main()
