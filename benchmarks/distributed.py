"""Distillation throughput (training samples per second): 1 process vs 2 gloo processes (DistributedDataParallel).

Each rank draws ``--batch`` samples per step, so 2 processes train on twice the samples per step. The single
process uses all torch threads (2 on this machine); each rank of the 2-process run gets one thread. On a 2-core CPU
the two layouts share the same two cores, so the CPU figure measures communication overhead and thread
efficiency, not scaling: a real speed-up needs more cores or devices.

    python benchmarks/distributed.py [--quick] [--L 8] [--batch 256] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
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


def _distiller(L: int, batch: int, steps: int) -> Distiller:
    pyro.set_rng_seed(0)
    cfg = DistillConfig(steps=steps, batch_size=batch, lr=1e-3, seed=0)
    return Distiller(IsingRelaxed(L, ISING_TC), neural_rg(L=L), cfg)


def _time_run(d: Distiller, warmup: int) -> float:
    d.run(steps=warmup, progress=False)
    t0 = time.perf_counter()
    d.run(progress=False)
    return time.perf_counter() - t0


def _worker(rank: int, world: int, tmp: str, L: int, batch: int, steps: int, warmup: int) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads() // world))
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/rdv", rank=rank, world_size=world)
    try:
        d = _distiller(L, batch, steps + warmup)
        torch.distributed.barrier()
        wall = _time_run(d, warmup)
        if rank == 0:
            Path(tmp, "result.json").write_text(json.dumps({"seconds": wall}))
    finally:
        torch.distributed.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--L", type=int, default=8)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="L=4, 10 steps")
    args = ap.parse_args()
    if args.quick:
        args.L, args.steps = 4, 10
    warmup = 3
    threads = torch.get_num_threads()
    d = _distiller(args.L, args.batch, args.steps + warmup)
    t1 = _time_run(d, warmup)
    sps1 = args.batch * args.steps / t1
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(2, tmp, args.L, args.batch, args.steps, warmup), nprocs=2, join=True)
        t2 = json.loads(Path(tmp, "result.json").read_text())["seconds"]
    sps2 = 2 * args.batch * args.steps / t2
    rows = [("1 process", f"{threads}", f"{args.batch}", f"{t1:.2f}", f"{sps1:.0f}"),
            ("2 processes (gloo DDP)", f"{max(1, threads // 2)} each", f"{2 * args.batch}", f"{t2:.2f}", f"{sps2:.0f}")]
    print(f"L={args.L}, {args.steps} timed steps after {warmup} warm-up steps")
    print(table(rows, ("layout", "threads", "samples/step", "seconds", "samples/s")))
    print(f"2-process / 1-process throughput: {sps2 / sps1:.2f}")
    path = write_result(
        "distributed" if not args.quick else "distributed_quick",
        {"L": args.L, "batch_per_rank": args.batch, "steps": args.steps, "backend": "gloo", "device": "cpu",
         "note": "2 CPU cores shared by both layouts: the CPU figure bounds overhead, not scaling"},
        {"seconds_1proc": t1, "seconds_2proc": t2},
        {"samples_per_second_1proc": sps1, "samples_per_second_2proc": sps2, "world_size_max_tested": 2,
         "throughput_ratio_2proc_over_1proc": sps2 / sps1},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
