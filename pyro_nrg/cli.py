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
    pyro-nrg sweep --L 8                    # one flow for T in [1.8, 3.5]: F, U, C, <m^2>, posterior over T

The studies are one table, :data:`STUDIES`: name → typed config (:mod:`pyro_nrg.studies.config`, whose fields
are the options), run function and help. Every option is validated before a folder is created; options may
come before or after the study name (``pyro-nrg --L 4 ising`` is ``pyro-nrg ising --L 4``).

Exit codes: 0 success; 2 bad option or impossible configuration (nothing is written); 3 training diverged (the
message names the last checkpoint, written before the divergence, or says there is none); 4 run-folder or
checkpoint problem (an existing run without ``--resume``, a folder in use by another process, a damaged
checkpoint or a checkpoint of another model); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM): the message says
whether a checkpoint exists and how to continue.

Distributed training of the lattice studies (each rank draws --batch samples; gradients averaged; rank 0 writes
the run folder)::

    torchrun --standalone --nproc_per_node=2 -m pyro_nrg.cli ising --L 8 --out runs/ddp
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .errors import (
    CheckpointError,
    ConfigMismatchError,
    DiskFullError,
    PyroNRGError,
    StudyConfigError,
    TrainingDivergedError,
)
from .studies.canonical import run_canonical_study
from .studies.config import STUDY_CONFIGS, StudyConfig, option_flags
from .studies.demos import run_demo_study
from .studies.lattice import checkpoint_step, run_lattice_study
from .studies.report import RunFolder, StudyOutcome, read_json_file
from .studies.sweep import run_sweep_study

__all__ = ["main", "build_parser", "configure", "default_out", "Study", "STUDIES", "EXIT_CODES"]

logger = logging.getLogger("pyro_nrg")

EXIT_CODES = {"ok": 0, "bad option": 2, "diverged": 3, "run folder or checkpoint": 4, "interrupted": 130,
              "terminated": 143}
"""The exit codes of ``pyro-nrg`` (documented in the README)."""

EPILOG = """options may come before or after the study name. exit codes: 0 success, 2 bad option or impossible
configuration (nothing written), 3 training diverged, 4 run-folder or checkpoint problem (existing run without
--resume, folder in use by another process, damaged checkpoint or one of another model), 130 interrupted,
143 terminated."""


@dataclass(frozen=True)
class Study:
    """One row of the study table: the typed config (its fields are the options), the run function, help."""

    config: type[StudyConfig]
    run: Callable[[Any, RunFolder | None], StudyOutcome | None]
    help: str
    description: str


STUDIES: dict[str, Study] = {
    "ising": Study(STUDY_CONFIGS["ising"], run_lattice_study,
                   "2D/1D Ising model via its Gaussian relaxation (the default study)",
                   "NeuralRG study of the Ising model (Hubbard-Stratonovich relaxation): distil, estimate F against "
                   "Kaufman's exact value, sample three ways, report."),
    "phi4": Study(STUDY_CONFIGS["phi4"], run_lattice_study,
                  "lattice phi^4 field theory (hopping convention; exact F at lam=0)",
                  "NeuralRG study of lattice phi^4, S = sum_x [-2 kappa sum_mu phi_x phi_(x+mu) + phi_x^2 + "
                  "lam (phi_x^2 - 1)^2]."),
    "chain": Study(STUDY_CONFIGS["chain"], run_canonical_study,
                   "harmonic chain with fixed ends: learned spectrum and normal modes vs exact",
                   "Neural canonical transformation study: harmonic chain with fixed ends, learned spectrum and "
                   "normal modes vs exact."),
    "ring": Study(STUDY_CONFIGS["ring"], run_canonical_study,
                  "2D ring potential: free energy and radius/angle latent coordinates",
                  "Neural canonical transformation study: 2D ring potential, free energy and radius/angle latent "
                  "coordinates."),
    "alanine": Study(STUDY_CONFIGS["alanine"], run_demo_study,
                     "alanine dipeptide from OpenMM MD: slow modes vs the backbone dihedrals (needs the md extra)",
                     "Neural canonical transformation by density estimation: alanine dipeptide from OpenMM MD, slow "
                     "modes vs the backbone dihedrals."),
    "digits": Study(STUDY_CONFIGS["digits"], run_demo_study,
                    "8x8 digits: test bits/dim and compression onto the slowest modes vs PCA",
                    "Neural canonical transformation by density estimation: 8x8 digits, test bits/dim and "
                    "compression onto the slowest modes vs PCA."),
    "sweep": Study(STUDY_CONFIGS["sweep"], run_sweep_study,
                   "one temperature-conditioned flow for a range of T: F, U, C, <m^2>, Binder vs exact; posterior "
                   "over T",
                   "NeuralRG flow conditioned on the temperature, distilled over [t_min, t_max] of the 2D Ising "
                   "relaxation: thermodynamic curves against Kaufman and the transfer matrix, the C(T) peak, and "
                   "NUTS on T in a Pyro model with the flow as the likelihood against the exact grid posterior."),
}
"""Study name → :class:`Study` (the one table of the command)."""

DEFAULT_STUDY = "ising"


def _add_options(p: argparse.ArgumentParser, config: type[StudyConfig]) -> None:
    """One option per config field, defaults suppressed (the config holds them), so that an option given before
    the study name is not replaced by the study parser's default."""
    groups: dict[str, Any] = {}
    for f in fields(config):
        meta = f.metadata
        g = groups.setdefault(meta["group"], p.add_argument_group(meta["group"]))
        default = f.default if f.default is not MISSING else None
        shown = meta.get("default_text") or (format(default, "g") if isinstance(default, float) else default)
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if isinstance(default, bool):
            kw.update(action="store_true", help=meta["help"])
        else:
            kind = {"int": int, "float": float}.get(str(f.type).split("|")[0].strip(), str)
            kw.update(type=kind, help=f"{meta['help']} (default {shown})")
            if meta.get("choices"):
                kw["choices"] = meta["choices"]
            if kind is not str:
                kw["metavar"] = f.name.upper() if len(f.name) > 1 else f.name
        g.add_argument(*option_flags(f), **kw)


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
    _add_options(p, STUDIES[DEFAULT_STUDY].config)
    sub = p.add_subparsers(dest="study", metavar="STUDY")
    for name, study in STUDIES.items():
        sp = sub.add_parser(name, help=study.help, description=study.description, epilog=EPILOG,
                            allow_abbrev=False)
        _add_options(sp, study.config)
    return p


def _fail(msg: str, code: int) -> int:
    print(f"pyro-nrg: error: {msg}", file=sys.stderr)
    return code


def _exit_code(exc: PyroNRGError) -> int:
    if isinstance(exc, TrainingDivergedError):
        return 3
    if isinstance(exc, CheckpointError | ConfigMismatchError | DiskFullError):  # RunFolderLockedError included
        return 4
    return 2  # StudyConfigError, RunFolderError and every other impossible configuration


def default_out(config: StudyConfig) -> Path:
    """``runs/<study>-<tag>-<date-time>`` (the tag names the settings, e.g. ``L8-T2.26919``), with ``-2``, ``-3``...
    appended while such a folder exists."""
    base = Path("runs") / f"{config.study}-{config.tag()}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, k = base, 1
    while out.exists():  # two runs started in the same second: a fresh folder each
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _stored_options(study: str, out: Path) -> dict[str, Any]:
    """The ``options.json`` of the run to resume in ``out`` (checked to be this study's)."""
    path = out / "options.json"
    if not path.exists():
        raise CheckpointError(f"nothing to resume in {out}: no options.json there (drop --resume)")
    stored = read_json_file(path)
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path} is damaged (not a JSON object): restore it, or start a new run elsewhere")
    if stored.get("study", study) != study:
        raise CheckpointError(f"{out} holds a {stored['study']} run: resume it with pyro-nrg {stored['study']} "
                              f"--out {out} --resume")
    if "batch" in stored and "batch_size" not in stored:  # written by versions before the typed config
        stored["batch_size"] = stored.pop("batch")
    return stored


def configure(study: str, given: dict[str, Any]) -> StudyConfig:
    """The validated config of ``study`` from the options ``given`` on the command line (and, with ``--resume``,
    the run's own ``options.json`` under them). Raises the named error of the first problem; writes nothing."""
    cls = STUDIES[study].config
    if given.get("resume") and not cls.resumable:
        raise CheckpointError(f"{study} runs are short and not resumable: rerun without --resume")
    if given.get("resume") and given.get("out") is None:
        raise StudyConfigError("--resume needs the folder of the run to continue: add --out DIR")
    stored = None
    if given.get("resume") and Path(given["out"]).is_dir():
        stored = _stored_options(study, Path(given["out"]))
        asked, made = given.get("dtype"), stored.get("dtype")
        if asked is not None and made is not None and asked != made:
            raise ConfigMismatchError(
                f"the run in {given['out']} was made with --dtype {made}; resuming it as {asked} would convert its "
                f"checkpoint: drop --dtype to continue in {made}, or start a new run with --dtype {asked}")
    config = cls.from_options(given, stored)
    return config.validate()


def _checkpoint_note(study: str, out: Path | None) -> str:
    """What an interrupted run leaves: the checkpoint and its step, or that there is none, and how to go on."""
    if out is None:
        return "nothing was written"
    if not STUDIES[study].config.resumable:
        return f"{study} runs are not resumable: rerun in another --out (or delete {out})"
    step = checkpoint_step(out)
    if step is None:
        return (f"no checkpoint was written yet, so training restarts from step 0 with pyro-nrg {study} --out {out} "
                "--resume")
    return f"the last checkpoint ({out / 'checkpoint.pt'}, step {step}) is intact: continue with pyro-nrg {study} " \
           f"--out {out} --resume"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the run stops as on Ctrl-C (checkpoints and logs stay whole)."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@dataclass
class _Run:
    """What a call of :func:`main` has set up so far (for the error messages and the clean-up)."""

    study: str
    config: Any = None
    out: Path | None = None
    folder: RunFolder | None = None


def _start(run: _Run, given: dict[str, Any]) -> StudyOutcome | None:
    """Validate, choose and take the run folder, then run the study."""
    config = run.config = configure(run.study, given)
    torch.set_num_threads(config.threads)
    rank, world = 0, 1
    if config.resumable:  # the lattice studies may run under torchrun
        from .infer.distributed import init_from_environment

        rank, world = init_from_environment()
    out = Path(config.out) if config.out is not None else default_out(config)
    if world > 1:  # every rank uses rank 0's folder
        box = [str(out)]
        torch.distributed.broadcast_object_list(box, src=0)
        out = Path(box[0])
    config.out, run.out = str(out), out
    if rank == 0:
        run.folder = RunFolder(out, resume=config.resume)
        if not config.resume:
            run.folder.write_json("options.json", config.to_dict())
    return STUDIES[run.study].run(config, run.folder)


def _error(run: _Run, exc: BaseException) -> int:
    """The message and exit code of a run that stopped with ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        what, code = ("terminated (SIGTERM)", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        return _fail(f"{what}; {_checkpoint_note(run.study, run.out if run.folder is not None else None)}", code)
    assert isinstance(exc, PyroNRGError)
    code = _exit_code(exc)
    if isinstance(exc, TrainingDivergedError):
        return _fail(f"{exc} (this run: --lr {run.config.lr:g})", code)
    if code == 2 and run.folder is not None:
        run.folder.discard_unstarted()  # an impossible configuration: the corrected rerun may use this --out
    return _fail(str(exc), code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pyro-nrg``; returns the exit code."""
    given = vars(build_parser().parse_args(argv))
    run = _Run(given.pop("study", None) or DEFAULT_STUDY)
    # our own progress messages only: the root logger stays at WARNING (third-party INFO chatter is noise)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("pyro_nrg").setLevel(logging.WARNING if given.get("quiet") else logging.INFO)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # font-fallback chatter is noise
    with _sigterm_raises():
        try:
            outcome = _start(run, given)
        except (PyroNRGError, KeyboardInterrupt) as exc:
            return _error(run, exc)
        finally:
            if run.folder is not None:
                run.folder.close()
    if outcome is not None:  # rank 0 (or a single process)
        print("\n" + outcome.table)
        print(f"\nreport: {outcome.report}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
