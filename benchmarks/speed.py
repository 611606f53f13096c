"""Speed: the flow at the machine's limit, samplers per second, time to accuracy, scale-out (issue 23).

One script, one result file (``results/speed/full.json``, ``--quick``: ``results/speed/quick.json``), many
sections. Each section is a function returning ``(settings, figures, headline)``; running one section merges its part
into the file and keeps every other section's (``--section NAME``, repeatable; the default runs every section not
marked long).
Ratios are measured side by side in one process, on one thread unless a section says otherwise.

    OMP_NUM_THREADS=1 python benchmarks/speed.py --list
    OMP_NUM_THREADS=1 python benchmarks/speed.py --section flops [--quick]

Sections (headline keys):

=========================  ===========================================================================================
``flops``                  ``flow_flop_fraction_of_matmul``: FLOP rate of the flow's sample-and-score and training
                           step against a flow-sized matmul (65536x32 @ 32x32) on the same thread
=========================  ===========================================================================================

Adding a section: write ``def my_section(args) -> SectionResult`` and decorate it with ``@section("name", help)``;
a long section (``long=True``) runs only when named and may call :func:`publish` as it goes, so that a partial run
still leaves its figures in the file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from _common import machine, median_time, read_result, result_path, table, write_result

SCRIPT = "speed"
SectionResult = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]  # settings, figures, headline
SECTIONS: dict[str, tuple[Callable[[argparse.Namespace], SectionResult], str, bool]] = {}  # name -> fn, help, long


Section = Callable[[argparse.Namespace], SectionResult]


def section(name: str, help: str, long: bool = False) -> Callable[[Section], Section]:
    """Register a section under ``name`` (``long``: only run when named on the command line)."""

    def register(fn: Section) -> Section:
        SECTIONS[name] = (fn, help, long)
        return fn

    return register


def result_name(quick: bool) -> str:
    """``speed`` or ``speed_quick``."""
    return "speed_quick" if quick else "speed"


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """An exclusive lock on the result file's ``.lock`` sibling (sections of parallel runs merge one at a time)."""
    lock = result_path(name, SCRIPT).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish(name: str, sec: str, settings: dict[str, Any], figures: dict[str, Any], headline: dict[str, Any]) -> None:
    """Merge one section's settings, figures and headline into the result ``name``, keeping every other section's."""
    with _locked(name):
        path = result_path(name, SCRIPT)
        old = read_result(SCRIPT, name) if path.is_file() else {}
        all_settings = dict(old.get("settings", {}))
        all_figures = dict(old.get("figures", {}))
        all_headline = dict(old.get("headline", {}))
        all_settings[sec] = {**settings, "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
        all_figures[sec] = figures
        all_headline.update(headline)
        write_result(name, all_settings, all_figures, all_headline, script=SCRIPT)


# --- sections ---------------------------------------------------------------------------------------------------


def matmul_rate(repeats: int = 15) -> tuple[float, float]:
    """(GFLOP/s, seconds) of the flow-sized matmul 65536x32 @ 32x32 in float32 on this thread."""
    a, b = torch.randn(65536, 32), torch.randn(32, 32)
    t, _ = median_time(lambda: a @ b, repeats, warmup=3)
    return 2 * 65536 * 32 * 32 / t / 1e9, t


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (``torch.utils.flop_counter``: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@section("flops", "FLOP rate of the default flow (eager path) against a flow-sized matmul, one thread")
def flops_section(args: argparse.Namespace) -> SectionResult:
    from pyro_nrg.energies import ISING_TC, IsingRelaxed
    from pyro_nrg.flows import neural_rg

    rate_mm, t_mm = matmul_rate()
    L, B = (8, 256) if args.quick else (16, 1024)
    flow, energy = neural_rg(L=L), IsingRelaxed(L, ISING_TC)

    @torch.no_grad()
    def sample_and_score() -> torch.Tensor:
        z = torch.randn(B, L, L)
        x, ldj = flow.forward_and_log_det(z)
        return -0.5 * z.square().sum((-2, -1)) - ldj + energy.action(x)

    t, _ = median_time(sample_and_score, 5 if args.quick else 9)
    n = count_flops(sample_and_score)
    rate = n / t / 1e9
    print(table([("matmul 65536x32 @ 32x32", f"{t_mm * 1e3:.2f}", f"{rate_mm:.1f}"),
                 (f"flow sample+score L={L} batch {B}", f"{t * 1e3:.1f}", f"{rate:.1f}")],
                ("what", "ms", "GFLOP/s")))
    figures = {"matmul_gflops": rate_mm, "matmul_seconds": t_mm, "sample_score_gflops": rate, "sample_score_flops": n,
               "sample_score_seconds": t}
    return {"L": L, "batch": B, "threads": torch.get_num_threads()}, figures, {
        "flow_flop_fraction_of_matmul": rate / rate_mm}


# --- command line -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", action="append", choices=sorted(SECTIONS), help="run only this section (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the sections and exit")
    ap.add_argument("--quick", action="store_true", help="CI-sized figures, written to speed_quick.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    if args.list:
        for name, (_, help, long) in SECTIONS.items():
            print(f"{name:28s} {'(long) ' if long else ''}{help}")
        return
    torch.set_num_threads(args.threads)
    names = args.section or [n for n, (_, _, long) in SECTIONS.items() if not long]
    for name in names:
        fn = SECTIONS[name][0]
        print(f"== {name}", flush=True)
        settings, figures, headline = fn(args)
        publish(result_name(args.quick), name, {"quick": args.quick, **settings}, figures, headline)
        for k, v in headline.items():
            print(f"{k} = {v}")
    print(f"wrote {result_path(result_name(args.quick), SCRIPT)}")


if __name__ == "__main__":
    main()
