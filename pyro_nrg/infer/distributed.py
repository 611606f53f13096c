r"""Scale-out with the engines users already run: ``torch.distributed`` for training, executors for chains.

**Distributed distillation.** Launch any script that calls :func:`~pyro_nrg.infer.distill` (or the ``pyro-nrg``
command) with ``torchrun``::

    torchrun --standalone --nproc_per_node=2 -m pyro_nrg.cli --L 16 --batch 256 --out runs/ddp

:func:`init_from_environment` joins the process group that ``torchrun`` describes in the environment (gloo on CPU,
NCCL on GPU); the :class:`~pyro_nrg.infer.Distiller` then wraps Pyro's ELBO module in
:class:`~torch.nn.parallel.DistributedDataParallel`. Each rank draws its own ``batch`` samples from its own RNG
stream (shard ``rank``), gradients are averaged, the effective batch is ``world_size * batch``, and rank 0 writes
checkpoints and metrics. A single process with ``shards=W`` runs the same computation, so a checkpoint written
under ``torchrun`` resumes on one process (and vice versa). Not launched by ``torchrun``, everything runs in one
process unchanged.

**Chains and sweeps over processes.** :func:`map_tasks` runs independent, seeded tasks (sampling chains, a
temperature sweep) through any :class:`concurrent.futures.Executor` — by default local processes — so an
existing cluster engine plugs in without code changes: Dask's ``client.get_executor()``, Ray's
``ray.util.concurrent.futures`` executor, or ``loky``. Each task seeds itself from its own seed, so the results
are identical to the serial run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import torch

__all__ = ["init_from_environment", "launched_by_torchrun", "map_tasks", "seeded"]


def launched_by_torchrun() -> bool:
    """True if the environment describes a ``torchrun`` process group of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_environment(backend: str | None = None) -> tuple[int, int]:
    """Join the ``torchrun`` process group if launched by it (idempotent); return ``(rank, world_size)``.

    ``backend`` defaults to NCCL when CUDA is available, gloo otherwise. Outside ``torchrun`` this is a no-op that
    returns ``(0, 1)``.
    """
    if not torch.distributed.is_available():
        return 0, 1
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    if not launched_by_torchrun():
        return 0, 1
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    torch.distributed.init_process_group(backend=backend)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def seeded(task: Callable[..., Any], seed: int, *args: Any, **kwargs: Any) -> Any:
    """Run ``task(*args, **kwargs)`` with torch's (and Pyro's) RNG seeded by ``seed``: the unit of :func:`map_tasks`."""
    import pyro

    pyro.set_rng_seed(int(seed))
    return task(*args, **kwargs)


def map_tasks(
    task: Callable[..., Any],
    seeds: Sequence[int],
    args: Iterable[tuple[Any, ...]] | None = None,
    executor: Executor | None = None,
    max_workers: int | None = None,
) -> list[Any]:
    """Run ``task(*args_i)`` under seed ``seeds[i]`` for every ``i``, through ``executor``; results in order.

    Args:
        task: a picklable (module-level) function.
        seeds: one seed per task; the same seeds give the same results serially or in parallel.
        args: one tuple of positional arguments per task (default: no arguments).
        executor: any ``concurrent.futures.Executor`` (Dask, Ray, loky...). Default: a local
            :class:`~concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method and ``max_workers``
            processes (default: the number of CPU cores), each limited to one torch thread.
        max_workers: size of the default pool.

    Example:
        >>> results = map_tasks(run_chain, seeds=[0, 1, 2, 3])           # doctest: +SKIP
        >>> results = map_tasks(run_chain, [0, 1], executor=client.get_executor())  # Dask  # doctest: +SKIP
    """
    seeds = list(seeds)
    arg_list = list(args) if args is not None else [()] * len(seeds)
    if len(arg_list) != len(seeds):
        raise ValueError(f"got {len(seeds)} seeds but {len(arg_list)} argument tuples: give one per task")
    if executor is not None:
        futures = [executor.submit(seeded, task, s, *a) for s, a in zip(seeds, arg_list, strict=True)]
        return [f.result() for f in futures]
    workers = max_workers or min(len(seeds), os.cpu_count() or 1)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_one_thread) as pool:
        futures = [pool.submit(seeded, task, s, *a) for s, a in zip(seeds, arg_list, strict=True)]
        return [f.result() for f in futures]


def _one_thread() -> None:
    torch.set_num_threads(1)
