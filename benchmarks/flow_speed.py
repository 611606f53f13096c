"""Sample-and-score speed of the NeuralRG flow vs a Pyro ``affine_coupling`` stack of equal parameter count.

Sampling and scoring = draw z ~ N(0, I), x = g(z), ln q(x) = ln N(z) - ln|det dg/dz|, and the energy E(x) of the
relaxed Ising model: what one step of flow-proposal sampling or importance sampling costs. Both flows are untrained
(identity-like), same batch, same parameter count (within 1 %), float32, timed side by side in one process.

    python benchmarks/flow_speed.py [--quick] [--L 16] [--batch 1024]
"""

from __future__ import annotations

import argparse

import pyro.distributions as dist
import torch
from _common import median_time, table, write_result
from pyro.distributions.transforms import Permute, affine_coupling

from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.flows import neural_rg


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def pyro_stack(N: int, n_couplings: int, target: int) -> list:
    """affine_coupling layers (one hidden layer of width h) with permutations, h chosen to match ``target``."""

    def build(h: int) -> list:
        g = torch.Generator().manual_seed(0)
        parts: list = []
        for i in range(n_couplings):
            parts.append(affine_coupling(N, hidden_dims=[h]))
            if i < n_couplings - 1:
                parts.append(Permute(torch.randperm(N, generator=g)))
        return parts

    def count(parts: list) -> int:
        return sum(n_params(p) for p in parts if isinstance(p, torch.nn.Module))

    per_h = count(build(2)) - count(build(1))  # parameters are affine in the hidden width
    h = max(1, round((target - count(build(1))) / per_h) + 1)
    return build(h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--L", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="L=8, batch 256, 3 repeats")
    args = ap.parse_args()
    if args.quick:
        args.L, args.batch, args.repeats = 8, 256, 3
    L, B, N = args.L, args.batch, args.L**2
    torch.manual_seed(0)
    energy = IsingRelaxed(L, ISING_TC)
    ours = neural_rg(L=L, flat=True)
    p_ours = n_params(ours)
    stack = pyro_stack(N, 4, p_ours)
    p_pyro = sum(n_params(p) for p in stack if isinstance(p, torch.nn.Module))
    assert abs(p_pyro - p_ours) / p_ours < 0.01, (p_pyro, p_ours)
    base = dist.Normal(torch.zeros(N), 1.0).to_event(1)
    q_ours = dist.TransformedDistribution(base, [ours])
    q_pyro = dist.TransformedDistribution(base, stack)

    @torch.no_grad()
    def sample_and_score(q: dist.TransformedDistribution) -> torch.Tensor:
        x = q.rsample((B,))
        return q.log_prob(x) + energy.action(x.reshape(B, L, L))

    def train_like(q: dist.TransformedDistribution) -> None:
        x = q.rsample((B,))
        loss = (q.log_prob(x) + energy.action(x.reshape(B, L, L))).mean()
        loss.backward()

    rows, figures = [], {}
    t_ours, all_ours = median_time(lambda: sample_and_score(q_ours), args.repeats)
    t_pyro, all_pyro = median_time(lambda: sample_and_score(q_pyro), args.repeats)
    g_ours, _ = median_time(lambda: train_like(q_ours), max(3, args.repeats // 2))
    g_pyro, _ = median_time(lambda: train_like(q_pyro), max(3, args.repeats // 2))
    figures.update(
        params_ours=p_ours, params_pyro=p_pyro, sample_score_ours_s=t_ours, sample_score_pyro_s=t_pyro,
        sample_score_ours_all_s=all_ours, sample_score_pyro_all_s=all_pyro,
        grad_step_ours_s=g_ours, grad_step_pyro_s=g_pyro,
    )
    rows.append(("NeuralRG hierarchical flow", f"{p_ours}", f"{t_ours:.4f}", f"{g_ours:.4f}"))
    rows.append(("Pyro affine_coupling x4", f"{p_pyro}", f"{t_pyro:.4f}", f"{g_pyro:.4f}"))
    print(f"L={L}, batch={B}, float32, {torch.get_num_threads()} threads; medians of {args.repeats} runs")
    print(table(rows, ("flow", "params", "sample+score s", "sample+score+backward s")))
    print(f"ratio ours / Pyro: sample+score {t_ours / t_pyro:.2f}, with backward {g_ours / g_pyro:.2f}")
    name = "flow_speed" if not args.quick else "flow_speed_quick"
    path = write_result(
        name,
        {"L": L, "batch": B, "dtype": "float32", "repeats": args.repeats, "flow": ours.config,
         "pyro_stack": "4 x affine_coupling(N, hidden_dims=[h]) with random permutations, h matched to params"},
        figures,
        {
            f"sample_and_score_L{L}_b{B}_seconds": t_ours,
            "time_ratio_vs_pyro_affine_coupling": t_ours / t_pyro,
            "grad_step_ratio_vs_pyro_affine_coupling": g_ours / g_pyro,
            "params_ours": p_ours,
            "params_pyro": p_pyro,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
