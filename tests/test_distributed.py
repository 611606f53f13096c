"""torch.distributed (gloo, 2 processes) distillation against the single-process sharded run; executor tasks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyro
import torch
import torch.multiprocessing as mp

from pyro_nrg.energies import IsingRelaxed
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import DistillConfig, Distiller
from pyro_nrg.infer.distributed import map_tasks

STEPS, BATCH = 5, 16


def _make(tmp: Path | None, shards: int = 1, steps: int = STEPS) -> Distiller:
    pyro.set_rng_seed(0)
    energy = IsingRelaxed(4, 3.0)
    flow = neural_rg(L=4, n_couplings=2, hidden=8)
    cfg = DistillConfig(steps=steps, batch_size=BATCH, lr=1e-2, seed=3, shards=shards, checkpoint_every=3,
                        schedule="constant", warmup_steps=0)  # the same learning rate whatever the planned length
    return Distiller(energy, flow, cfg, checkpoint_dir=tmp)


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        d = _make(Path(tmp) / "ckpt")
        d.run(progress=False)
        if rank == 0:
            Path(tmp, "history.json").write_text(json.dumps(d.history))
            torch.save(d.flow.state_dict(), Path(tmp, "flow.pt"))
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_match_one_process_with_two_shards(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ddp_hist = json.loads((tmp_path / "history.json").read_text())
    single = _make(None, shards=2)
    single.run(progress=False)
    assert len(ddp_hist["f_q"]) == STEPS
    for a, b in zip(ddp_hist["f_q"], single.history["f_q"], strict=True):
        assert abs(a - b) < 1e-4 * max(1.0, abs(b)), (ddp_hist["f_q"], single.history["f_q"])
    ddp_state = torch.load(tmp_path / "flow.pt", weights_only=True)
    for k, v in single.flow.state_dict().items():
        assert torch.allclose(ddp_state[k], v, atol=1e-5), k
    # rank 0 wrote the checkpoint (at the last step); it resumes on one process with 2 shards
    resumed = _make(tmp_path / "ckpt", shards=2, steps=STEPS + 3)
    resumed.load_checkpoint()
    assert resumed.step == STEPS
    resumed.run(progress=False)
    longer = _make(None, shards=2, steps=STEPS + 3)
    longer.run(progress=False)
    for a, b in zip(resumed.history["f_q"], longer.history["f_q"], strict=True):
        assert abs(a - b) < 1e-4 * max(1.0, abs(b))


def test_one_shard_is_the_plain_run_and_shards_double_the_batch() -> None:
    d = _make(None, shards=2)
    rec = d.train_step()
    assert len(d.elbo.last_log_weights) == BATCH  # per shard
    assert rec["f_q"] < 0


def _draw(n: int) -> list[float]:
    return torch.randn(n).tolist()


def test_map_tasks_serial_equals_parallel() -> None:
    from concurrent.futures import ThreadPoolExecutor

    serial = []
    for s in (0, 1, 2):
        pyro.set_rng_seed(s)
        serial.append(_draw(3))
    assert map_tasks(_draw, [0, 1, 2], args=[(3,)] * 3, max_workers=2) == serial
    with ThreadPoolExecutor(max_workers=1) as pool:  # any concurrent.futures executor plugs in
        assert map_tasks(_draw, [0, 1, 2], args=[(3,)] * 3, executor=pool) == serial
    assert os.environ.get("WORLD_SIZE") in (None, "1")


def _joined(batch: int) -> Distiller:
    """L=4 distiller with the plain gradient (no clipping, no mixture): its .grad after a step is the raw gradient."""
    pyro.set_rng_seed(0)
    cfg = DistillConfig(steps=1, batch_size=batch, lr=1e-2, seed=3, clip_norm=None, z2_symmetric=False,
                        schedule="constant", warmup_steps=0)
    return Distiller(IsingRelaxed(4, 3.0), neural_rg(L=4, n_couplings=2, hidden=8), cfg)


def _streams() -> tuple[torch.Tensor, torch.Tensor]:
    """RNG state of shard 0, and the state after shard 0's draw of BATCH x 16 normals (where shard 1 starts)."""
    g = torch.Generator().manual_seed(11)
    first = g.get_state()
    torch.randn(BATCH, 16, generator=g)
    return first, g.get_state()


def _grad_worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/rdv", rank=rank, world_size=world)
    try:
        d = _joined(BATCH)
        d.shard_rng = list(_streams())  # rank r draws the r-th half of one stream of 2 * BATCH samples
        d.train_step()
        if rank == 0:
            torch.save({n: p.grad for n, p in d.flow.named_parameters()}, Path(tmp, "grad.pt"))
        torch.distributed.barrier()  # neither rank tears the group down while the other still talks to it
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_gradient_is_the_one_process_gradient_of_the_joined_batch(tmp_path: Path) -> None:
    mp.spawn(_grad_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "grad.pt", weights_only=True)
    single = _joined(2 * BATCH)
    torch.set_rng_state(_streams()[0])  # one process draws both halves, in order, in one batch of 2 * BATCH
    single.train_step()
    half = _joined(BATCH)
    torch.set_rng_state(_streams()[0])
    half.train_step()  # the first half alone: a different gradient, so the comparison can fail
    grads = dict(single.flow.named_parameters())
    assert set(ddp) == set(grads)
    for name, g in ddp.items():
        assert torch.allclose(g, grads[name].grad, rtol=1e-4, atol=1e-6), name
    differs = [not torch.allclose(p.grad, ddp[n], rtol=1e-4, atol=1e-6) for n, p in half.flow.named_parameters()]
    assert any(differs)
