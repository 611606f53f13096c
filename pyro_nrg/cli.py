"""The ``pyro-nrg`` command: each study in one call, into a run folder with a report.

``pyro-nrg`` with no arguments runs the default study: the 2D Ising model at T_c on L=8 — distil the NeuralRG
flow, estimate F_q and the importance-sampled F against the exact (Kaufman) value, sample with flow-proposal
Metropolis, latent-space HMC and physical-space NUTS, compare with exact and Wolff references, and write the
report. Other studies are subcommands::

    pyro-nrg ising --L 16 --steps 3000      # any L (power of 2), T, depth
    pyro-nrg phi4 --kappa 0.2 --lam 0.02    # lattice phi^4 (exact F at --lam 0)
    pyro-nrg chain --n 16                   # harmonic chain: spectrum and normal modes
    pyro-nrg ring                           # 2D ring: free energy, radius/angle latents
    pyro-nrg alanine                        # alanine dipeptide slow modes (OpenMM MD, cached)
    pyro-nrg digits                         # 8x8 digits: bits/dim, compression vs PCA

Exit codes: 0 success, 2 bad option or impossible configuration, 3 training diverged, 4 checkpoint problem
(e.g. an existing run folder without --resume), 130 interrupted (the last checkpoint survives: rerun with
``--resume --out DIR``).

Distributed training of the lattice studies (each rank draws --batch samples; gradients averaged; rank 0 writes
the run folder)::

    torchrun --standalone --nproc_per_node=2 -m pyro_nrg.cli ising --L 8 --out runs/ddp
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from .errors import CheckpointError, ConfigMismatchError, PyroNRGError, TrainingDivergedError
from .studies.canonical import add_canonical_options, run_canonical_study
from .studies.demos import add_demo_options, run_demo_study
from .studies.lattice import add_lattice_options, run_lattice_study

__all__ = ["main", "build_parser"]

logger = logging.getLogger("pyro_nrg")

EPILOG = """exit codes: 0 success, 2 bad option or impossible configuration, 3 training diverged,
4 checkpoint problem (existing run folder without --resume, or a checkpoint of another model), 130 interrupted."""


def _common(p: argparse.ArgumentParser, default_dtype: str = "float32") -> None:
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--dtype", choices=("float32", "float64"), default=default_dtype,
                   help=f"floating-point type of the flow and energy (default {default_dtype})")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    g.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: fastest for these small networks, and robust on shared "
                   "machines)")
    g.add_argument("--out", type=Path, default=None,
                   help="run folder (default runs/<study>-<settings>-<date-time>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with the flow it was made with "
                        "(lattice studies)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or log messages; only the summary")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pyro-nrg`` (without a subcommand the options of ``ising`` apply)."""
    p = argparse.ArgumentParser(
        prog="pyro-nrg",
        description="Neural network renormalization group and neural canonical transformations with Pyro. Without a "
        "subcommand: the Ising study at T_c on L=8 (a few minutes on a CPU). Each run writes a folder with "
        "options, metrics, checkpoint, ArviZ netCDF, figures, summary.json and report.md.",
        epilog=EPILOG,
        allow_abbrev=False,
    )
    add_lattice_options(p, "ising")
    _common(p)
    sub = p.add_subparsers(dest="study", metavar="STUDY")
    ising = sub.add_parser("ising", help="2D/1D Ising model via its Gaussian relaxation (the default study)",
                           description="NeuralRG study of the Ising model (Hubbard-Stratonovich relaxation): "
                           "distil, estimate F against Kaufman's exact value, sample three ways, report.",
                           epilog=EPILOG, allow_abbrev=False)
    add_lattice_options(ising, "ising")
    _common(ising)
    phi4 = sub.add_parser("phi4", help="lattice phi^4 field theory (hopping convention; exact F at lam=0)",
                          description="NeuralRG study of lattice phi^4, S = sum_x [-2 kappa sum_mu phi_x "
                          "phi_(x+mu) + phi_x^2 + lam (phi_x^2 - 1)^2].", epilog=EPILOG,
                          allow_abbrev=False)
    add_lattice_options(phi4, "phi4")
    _common(phi4)
    for name, desc in (("chain", "harmonic chain with fixed ends: learned spectrum and normal modes vs exact"),
                       ("ring", "2D ring potential: free energy and radius/angle latent coordinates")):
        c = sub.add_parser(name, help=desc, description=f"Neural canonical transformation study: {desc}.",
                           epilog=EPILOG, allow_abbrev=False)
        add_canonical_options(c, name)
        _common(c, default_dtype="float64" if name == "chain" else "float32")
    for name, desc in (("alanine", "alanine dipeptide from OpenMM MD: slow modes vs the backbone dihedrals "
                                   "(needs the md extra)"),
                       ("digits", "8x8 digits: test bits/dim and compression onto the slowest modes vs PCA")):
        c = sub.add_parser(name, help=desc, description=f"Neural canonical transformation by density estimation: "
                           f"{desc}.", epilog=EPILOG, allow_abbrev=False)
        add_demo_options(c, name)
        _common(c)
    return p


def _fail(msg: str, code: int) -> int:
    print(f"pyro-nrg: error: {msg}", file=sys.stderr)
    return code


def _default_out(args: argparse.Namespace) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = {"ising": lambda: f"L{args.L}", "phi4": lambda: f"L{args.L}", "chain": lambda: f"n{args.n}",
           "ring": lambda: "T" + format(args.T, "g"), "digits": lambda: f"b{args.blocks}",
           "alanine": lambda: "fixture" if args.fixture else f"{args.duration_ns:g}ns"}[args.study]()
    return Path("runs") / f"{args.study}-{tag}-{stamp}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pyro-nrg``; returns the exit code."""
    args = build_parser().parse_args(argv)
    args.study = args.study or "ising"
    # our own progress messages only: the root logger stays at WARNING (third-party INFO chatter is noise)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("pyro_nrg").setLevel(logging.WARNING if args.quiet else logging.INFO)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # font-fallback chatter is noise
    if args.out is None:
        args.out = _default_out(args)
    if args.threads < 1:
        return _fail(f"--threads must be >= 1, got {args.threads}", 2)
    torch.set_num_threads(args.threads)
    run = {"chain": run_canonical_study, "ring": run_canonical_study, "alanine": run_demo_study,
           "digits": run_demo_study}.get(args.study, run_lattice_study)
    try:
        outcome = run(args)
    except TrainingDivergedError as exc:
        return _fail(str(exc), 3)
    except (CheckpointError, ConfigMismatchError) as exc:
        return _fail(str(exc), 4)
    except PyroNRGError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail(f"interrupted; the last checkpoint in {args.out} is intact: continue with "
                     f"pyro-nrg {args.study} --out {args.out} --resume (same options)", 130)
    if outcome is not None:  # rank 0 (or a single process)
        print("\n" + outcome.table)
        print(f"\nreport: {outcome.report}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
