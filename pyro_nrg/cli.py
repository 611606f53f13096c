"""The ``pyro-nrg`` command: the NeuralRG study in one call.

``pyro-nrg`` with no arguments distils the hierarchical flow for the 2D Ising model at T_c on L=8, estimates
F_q and the importance-sampled ln Z against the exact (Kaufman) value, samples with flow-proposal Metropolis,
and writes a run folder with config, metrics, checkpoint, plot and a Markdown report.

Exit codes: 0 success, 2 bad option or impossible configuration, 3 training diverged, 4 checkpoint problem.

Distributed training (each rank draws --batch samples; gradients averaged; rank 0 writes the run folder)::

    torchrun --standalone --nproc_per_node=2 -m pyro_nrg.cli --L 8 --out runs/ddp
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch

from .energies import ISING_TC, IsingRelaxed
from .errors import CheckpointError, ConfigMismatchError, PyroNRGError, TrainingDivergedError
from .flows import NeuralRGConfig, neural_rg
from .infer import distill, flow_mh
from .infer.distributed import init_from_environment

__all__ = ["main", "build_parser"]

logger = logging.getLogger("pyro_nrg")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pyro-nrg`` (subcommand ``ising`` is the default study)."""
    p = argparse.ArgumentParser(
        prog="pyro-nrg",
        description="Neural network renormalization group with Pyro: distil a hierarchical flow for the 2D Ising "
        "model (continuous relaxation), compare its free energy with the exact value, and sample in latent space.",
    )
    sub = p.add_subparsers(dest="study")
    ising = sub.add_parser("ising", help="Ising model via the Hubbard-Stratonovich relaxation (default study)")
    for q in (p, ising):
        q.add_argument("--L", type=int, default=8, help="lattice side, a power of 2 (default 8)")
        q.add_argument("--T", type=float, default=ISING_TC, help="temperature (default T_c = 2/ln(1+sqrt 2))")
        q.add_argument("--dim", type=int, default=2, choices=(1, 2), help="lattice dimension (default 2)")
        q.add_argument("--depth", type=int, default=None, help="RG levels of the flow (default all, log2 L)")
        q.add_argument("--couplings", type=int, default=4, help="affine couplings per block bijector (default 4)")
        q.add_argument("--hidden", type=int, default=32, help="hidden width of the coupling networks (default 32)")
        q.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
        q.add_argument("--batch", type=int, default=256, help="samples per training step (default 256)")
        q.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
        q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        q.add_argument("--no-z2", action="store_true", help="do not symmetrize the flow under x -> -x")
        q.add_argument("--eval-samples", type=int, default=16384, help="samples for the free-energy estimate")
        q.add_argument("--walkers", type=int, default=256, help="flow-MH walkers (default 256)")
        q.add_argument("--mh-steps", type=int, default=200, help="flow-MH steps per walker (default 200)")
        q.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="training dtype")
        q.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
        q.add_argument("--out", type=Path, default=None, help="run folder (default runs/ising-L{L}-<time>)")
        q.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
        q.add_argument("--quiet", action="store_true", help="no progress bar or log messages")
    return p


def _fail(msg: str, code: int) -> int:
    print(f"pyro-nrg: error: {msg}", file=sys.stderr)
    return code


def _plot(history: dict[str, list[float]], f_exact: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # mathtext font fallbacks are noise

    steps = history["step"]
    rel = [max(abs(f - f_exact) / abs(f_exact), 1e-7) for f in history["fq"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(steps, history["fq"], lw=0.8, label="$F_q$ (batch)")
    axes[0].axhline(f_exact, color="k", ls="--", lw=1, label="exact $F$")
    axes[0].set(xlabel="step", ylabel="free energy", title="variational free energy")
    axes[0].legend()
    axes[1].semilogy(steps, rel, lw=0.8)
    axes[1].set(xlabel="step", ylabel="$(F_q - F)/|F|$", title="relative error")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_ising(args: argparse.Namespace) -> int:
    """The Ising study; returns the exit code."""
    dtype = getattr(torch, args.dtype)
    torch.set_default_dtype(dtype)
    energy = IsingRelaxed(args.L, args.T, dim=args.dim).to(device=args.device, dtype=dtype)
    cfg = NeuralRGConfig(L=args.L, dim=args.dim, n_levels=args.depth, n_couplings=args.couplings, hidden=args.hidden)
    torch.manual_seed(args.seed)
    flow = neural_rg(cfg).to(device=args.device, dtype=dtype)
    out = args.out or Path("runs") / f"ising-L{args.L}-{time.strftime('%Y%m%d-%H%M%S')}"
    rank, world = init_from_environment()
    if world > 1:  # every rank must use rank 0's folder
        box = [str(out)]
        torch.distributed.broadcast_object_list(box, src=0)
        out = Path(box[0])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = distill(
        energy, flow, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, z2_symmetric=not args.no_z2,
        checkpoint_dir=out, resume=args.resume, progress=None if not args.quiet else False,
        warmup=min(100, args.steps // 10),
    )
    train_s = time.perf_counter() - t0
    if rank != 0:  # evaluation and the report are rank 0's
        return 0
    est = result.distiller.estimate(args.eval_samples)
    q = result.guide.distribution()
    res = flow_mh(energy, q, n_walkers=args.walkers, n_steps=args.mh_steps, warmup=20)
    m2 = energy.m2_improved(res.samples).mean(1)
    m2_mean, m2_err = m2.mean().item(), m2.std().item() / math.sqrt(m2.numel())
    f_exact = -energy.temperature * energy.log_z()
    _plot(result.history, f_exact, out / "free_energy.png")
    summary = {
        "L": args.L, "T": args.T, "steps": len(result.history["step"]), "train_seconds": train_s,
        "fq": est.fq, "fq_err": est.fq_err, "f_is": est.f_is, "f_is_err": est.f_is_err, "f_exact": f_exact,
        "fq_rel_err": est.fq_rel_err, "is_rel_err": est.is_rel_err, "is_sigma": est.is_sigma,
        "ess_fraction": est.ess_fraction, "khat": est.khat, "log_z_ising_exact": energy.log_z_ising(),
        "flow_mh_acceptance": res.acceptance_rate, "m2_flow_mh": m2_mean, "m2_flow_mh_err": m2_err,
    }
    try:
        summary["m2_exact"] = energy.exact_m2()
    except PyroNRGError:
        summary["m2_exact"] = None
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    rows = [
        ("variational F_q", f"{est.fq:.5f} ± {est.fq_err:.5f}", f"{est.fq_rel_err:+.3e}"),
        ("importance-sampled F", f"{est.f_is:.5f} ± {est.f_is_err:.5f}", f"{est.is_rel_err:+.3e}"),
        ("exact F (Kaufman + relaxation)", f"{f_exact:.5f}", "0"),
        ("ESS / N", f"{est.ess_fraction:.3f}", ""),
        ("PSIS k-hat", f"{est.khat:.3f}", ""),
        ("flow-MH acceptance", f"{res.acceptance_rate:.3f}", ""),
        ("<m^2> flow-MH", f"{m2_mean:.4f} ± {m2_err:.4f}",
         "" if summary["m2_exact"] is None else f"exact {summary['m2_exact']:.4f}"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    report = (
        f"# NeuralRG run: Ising L={args.L}, T={args.T:.6g}\n\n"
        f"Trained {summary['steps']} steps (batch {args.batch}) in {train_s:.1f} s.\n\n"
        "| quantity | value | relative error vs exact |\n|---|---|---|\n" + table + "\n\n"
        "![free energy](free_energy.png)\n"
    )
    (out / "report.md").write_text(report)
    print(f"\n{'quantity':34s} {'value':>26s}  rel. error")
    for a, b, c in rows:
        print(f"{a:34s} {b:>26s}  {c}")
    print(f"\nreport: {out / 'report.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pyro-nrg``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        return run_ising(args)
    except TrainingDivergedError as exc:
        return _fail(str(exc), 3)
    except (CheckpointError, ConfigMismatchError) as exc:
        return _fail(str(exc), 4)
    except PyroNRGError as exc:
        return _fail(str(exc), 2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
