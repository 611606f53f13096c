"""Weak scaling of distributed distillation: 1 process x 1 thread against 2 gloo processes x 1 thread each.

Every process draws ``--batch`` samples per step (the same per-rank batch), so the 2-process run trains on twice the
samples per step; weak-scaling efficiency is the ratio of samples per second (ideal 2). Each repeat times the
1-process run and then the 2-process run (``DistributedDataParallel``, gloo) over ``--steps`` steps after a warm-up,
so a repeat's ratio compares two layouts measured back to back. The load average and the busiest other processes
are recorded before and after: this machine is shared, and a second process only scales onto a free core.

    python benchmarks/distributed.py [--quick] [--L 8] [--batch 256] [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pyro
import torch
import torch.multiprocessing as mp
from _common import table, write_result

from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import DistillConfig, Distiller

WARMUP = 5


def _distiller(L: int, batch: int, steps: int) -> Distiller:
    pyro.set_rng_seed(0)
    cfg = DistillConfig(steps=steps, batch_size=batch, lr=1e-3, seed=0)
    return Distiller(IsingRelaxed(L, ISING_TC), neural_rg(L=L), cfg)


def _time_run(d: Distiller, steps: int) -> float:
    d.run(steps=WARMUP, progress=False)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    t0 = time.perf_counter()
    d.run(steps=WARMUP + steps, progress=False)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return time.perf_counter() - t0


def _worker(rank: int, world: int, tmp: str, L: int, batch: int, steps: int) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/rdv", rank=rank, world_size=world)
    try:
        wall = _time_run(_distiller(L, batch, WARMUP + steps), steps)
        if rank == 0:
            Path(tmp, "result.json").write_text(json.dumps({"seconds": wall}))
    finally:
        torch.distributed.destroy_process_group()


def _two_processes(L: int, batch: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(2, tmp, L, batch, steps), nprocs=2, join=True)
        return float(json.loads(Path(tmp, "result.json").read_text())["seconds"])


def _machine_load() -> dict[str, object]:
    """Load averages and the five busiest processes (``ps``), to say what else ran."""
    out: dict[str, object] = {"loadavg": list(os.getloadavg())}
    try:
        ps = subprocess.run(["ps", "-eo", "pcpu,etime,comm", "--sort=-pcpu"], capture_output=True, text=True,
                            timeout=10, check=False).stdout.splitlines()
        out["top_processes"] = [line.strip() for line in ps[1:6]]
    except (OSError, subprocess.SubprocessError):
        out["top_processes"] = []
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--L", type=int, default=8)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="L=4, 20 steps, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.L, args.steps, args.repeats = 4, 20, 1
    torch.set_num_threads(1)
    before = _machine_load()
    rows, reps = [], []
    for r in range(args.repeats):
        t1 = _time_run(_distiller(args.L, args.batch, WARMUP + args.steps), args.steps)
        t2 = _two_processes(args.L, args.batch, args.steps)
        sps1, sps2 = args.batch * args.steps / t1, 2 * args.batch * args.steps / t2
        reps.append({"seconds_1proc": t1, "seconds_2proc": t2, "samples_per_second_1proc": sps1,
                     "samples_per_second_2proc": sps2, "ratio": sps2 / sps1, "loadavg_after": list(os.getloadavg())})
        rows.append((str(r), f"{t1:.2f}", f"{sps1:.0f}", f"{t2:.2f}", f"{sps2:.0f}", f"{sps2 / sps1:.2f}"))
    after = _machine_load()
    ratio = statistics.median(x["ratio"] for x in reps)
    print(f"L={args.L}, per-rank batch {args.batch}, {args.steps} timed steps after {WARMUP} warm-up steps, "
          "1 torch thread per process")
    print(table(rows, ("repeat", "1 proc s", "1 proc samples/s", "2 proc s", "2 proc samples/s", "ratio")))
    print(f"weak scaling, 2 processes / 1 process (median of {args.repeats}): {ratio:.2f}  (ideal 2)")
    print(f"load average before {before['loadavg']}, after {after['loadavg']}")
    path = write_result(
        "distributed" if not args.quick else "distributed_quick",
        {"L": args.L, "batch_per_rank": args.batch, "steps": args.steps, "warmup_steps": WARMUP,
         "repeats": args.repeats, "threads_per_process": 1, "backend": "gloo", "device": "cpu",
         "note": "weak scaling on a shared 2-core machine: other jobs' load is in figures.load_before/after"},
        {"repeats": reps, "load_before": before, "load_after": after},
        {"ddp_weak_scaling_2proc": ratio, "ddp_weak_scaling_2proc_repeats": [x["ratio"] for x in reps],
         "samples_per_second_1proc": statistics.median(x["samples_per_second_1proc"] for x in reps),
         "samples_per_second_2proc": statistics.median(x["samples_per_second_2proc"] for x in reps)},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
