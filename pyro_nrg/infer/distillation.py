r"""Probability density distillation (NeuralRG) through Pyro: train a flow on the bare energy alone.

Minimises the variational free energy (Li & Wang, PRL 121, 260601 (2018), Eq. 3)

.. math:: F_q = \mathbb E_{x\sim q}\big[E(x) + T\ln q(x)\big] = -T\,\mathrm{ELBO} \;\ge\; F = -T\ln Z,

with Pyro's :class:`~pyro.infer.Trace_ELBO` on the model :func:`~pyro_nrg.infer.boltzmann_model` and the guide
:class:`~pyro_nrg.infer.FlowGuide`, one vectorised particle per batch element. ``Trace_ELBO()(model, guide)`` is
a :class:`torch.nn.Module`, so a plain PyTorch loop drives it: any ``torch.optim`` optimizer, a warm-up + cosine
learning-rate schedule, gradient clipping, and checkpoints of (flow, optimizer, scheduler, RNG) that resume
bit-exactly. Checkpoints are data, never code (``torch.load(weights_only=True)``), written atomically.

Example:
    >>> from pyro_nrg.energies import IsingRelaxed, ISING_TC
    >>> from pyro_nrg.flows import neural_rg
    >>> result = distill(IsingRelaxed(4, ISING_TC), neural_rg(L=4), steps=20, batch_size=64, progress=False)
    >>> result.history["f_q"][-1] < result.history["f_q"][0]
    True
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pyro
import torch
from pyro.infer import Trace_ELBO
from tqdm.auto import tqdm

from ..distributions import FlowDistribution
from ..errors import (
    CheckpointError,
    ConfigMismatchError,
    InverseNotConvergedError,
    NonFiniteError,
    TrainingDivergedError,
)
from ..flows import flow_config, normalized_flow_config
from ..io import atomic_torch_save, write_json
from ..transforms import set_fast_path
from .estimators import FreeEnergyEstimate, estimate_free_energy, sample_log_weights
from .model import FlowGuide, boltzmann_model, symmetrize
from .schedules import warmup_cosine

__all__ = [
    "DistillConfig",
    "FreeEnergyELBO",
    "Distiller",
    "DistillResult",
    "distill",
    "run_distiller",
    "energy_config",
    "load_checkpoint",
    "checkpoint_step",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "pyro_nrg.distill/1"
HISTORY_KEYS = ("step", "f_q", "f_q_err", "loss", "lr", "grad_norm", "seconds")
#: names of history keys in checkpoints written before version 0.1.0 named every estimate f_q / f_q_err
LEGACY_HISTORY_KEYS = {"f_q": "fq", "f_q_err": "fq_err"}
CHECKPOINT_KEYS = ("step", "flow", "optimizer", "scheduler", "rng_torch", "history", "config")


@dataclass
class DistillConfig:
    """Settings of a distillation run (saved in every checkpoint's config).

    Attributes:
        steps: total optimisation steps.
        batch_size: samples per step (vectorised ELBO particles).
        lr: peak learning rate (Adam).
        weight_decay: AdamW-style decoupled weight decay (0 = plain Adam).
        schedule: ``"cosine"`` (warm-up times a cosine decay to ``final_lr_ratio * lr``,
            :func:`~pyro_nrg.infer.schedules.warmup_cosine`) or ``"constant"`` (warm-up only).
        warmup_steps: linear warm-up steps.
        final_lr_ratio: the rate at the end of the cosine, relative to ``lr``.
        clip_norm: gradient-norm clipping (``None`` = off).
        z2_symmetric: train the Z₂-symmetrized mixture :math:`\\tfrac12[q(x) + q(-x)]`.
        translations: train (and estimate with) the mixture of ``q`` over lattice shifts by
            :math:`\\{0..t-1\\}^d` sites (:class:`~pyro_nrg.distributions.LatticeSymmetrized`; 1 = off). Never
            raises F_q (convexity of KL); costs :math:`t^d` inverse passes per ``log_prob``. A flow trained
            without it may still be *evaluated* with it: :meth:`Distiller.estimate` takes ``translations``.
        point_group: also average over the lattice rotations and reflections (8 on the square).
        checkpoint_every: steps between checkpoints (when a checkpoint folder is given).
        seed: seeds torch's RNG at the start of a fresh run (``None`` = leave it).
        path_gradient: ``False``: Pyro's plain reparameterised ELBO gradient; ``True``: the path gradient
            ("sticking the landing": drops the zero-mean score term; lower variance near convergence, one more
            inverse pass per step).
        divergence_factor: divergence test of every step (``None`` = only NaN/inf): the step's F_q above the
            median of the last ``divergence_window`` steps by more than ``divergence_factor`` times
            :math:`|\\text{median}| + T N + 10\\,\\text{MAD}` (:math:`N` sites, MAD the window's median absolute
            deviation) is a divergence — a finite blow-up such as F_q jumping by orders of magnitude (from the second
            step on).
        divergence_window: steps of the running median.
        max_grad_norm: a gradient norm (before clipping) above this is a divergence (``None`` = no limit).
        shards: independent sample streams per step, each of ``batch_size`` samples with its own RNG stream (seeded
            ``seed * 1000 + k``); the loss is their mean, so the effective batch is ``shards * batch_size``. Under
            ``torchrun`` (DistributedDataParallel) each rank draws shard ``rank`` and ``shards`` equals the world
            size, so a 1-process run with ``shards=W`` reproduces a ``W``-process run.
        fast: switch the flow to its fast evaluation path (:func:`~pyro_nrg.transforms.set_fast_path`: fixed
            reshapes and kernels compiled once by ``torch.compile``, eager fallback with a warning); same numbers
            within floating-point tolerance. Compiling takes seconds to a minute at the start, so it pays for runs
            of minutes, not for a few steps (``docs/physics.md``, "Speed"). ``False`` leaves the flow as it is.
    """

    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 50
    final_lr_ratio: float = 0.02
    clip_norm: float | None = 10.0
    z2_symmetric: bool = True
    checkpoint_every: int = 100
    seed: int | None = 0
    path_gradient: bool = False
    shards: int = 1
    translations: int = 1
    point_group: bool = False
    divergence_factor: float | None = 10.0
    divergence_window: int = 50
    max_grad_norm: float | None = None
    fast: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.path_gradient, bool):
            raise ValueError(f"path_gradient must be True or False, got {self.path_gradient!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if int(self.translations) < 1:
            raise ValueError(f"translations must be >= 1 (1 = no lattice averaging), got {self.translations}")
        if int(self.shards) < 1:
            raise ValueError(f"shards must be >= 1, got {self.shards}")
        if int(self.steps) < 0 or int(self.batch_size) < 2:
            raise ValueError(
                f"need steps >= 0 and batch_size >= 2, got steps={self.steps}, batch_size={self.batch_size}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite positive number, got {self.lr}")
        if int(self.checkpoint_every) < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.divergence_factor is not None and not self.divergence_factor > 0:
            raise ValueError(f"divergence_factor must be > 0 or None (off), got {self.divergence_factor}")
        if int(self.divergence_window) < 1:
            raise ValueError(f"divergence_window must be >= 1 step, got {self.divergence_window}")


class FreeEnergyELBO(Trace_ELBO):
    """:class:`~pyro.infer.Trace_ELBO` that also keeps the per-particle log-weights of its last evaluation.

    ``last_log_weights`` (shape ``(num_particles,)``, detached) is :math:`\\ln p(x, \\cdot) - \\ln q(\\cdot)` summed
    over all sites of a particle — for :func:`boltzmann_model` exactly :math:`-\\beta E(x) - \\ln q(x)`.
    """

    last_log_weights: torch.Tensor | None = None

    def _get_trace(self, model, guide, args, kwargs):  # noqa: ANN001 - Pyro's signature
        model_trace, guide_trace = super()._get_trace(model, guide, args, kwargs)
        n = self.num_particles if self.vectorize_particles else 1
        total = 0.0
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for site in trace.nodes.values():
                if site["type"] != "sample":
                    continue
                lp = site.get("log_prob")
                if lp is None:
                    continue
                lp = lp.detach()
                if self.vectorize_particles and lp.dim() > 0 and lp.shape[0] == n:
                    lp = lp.reshape(n, -1).sum(-1)
                else:
                    lp = lp.sum().expand(n)
                total = total + sign * lp
        self.last_log_weights = torch.as_tensor(total).to(torch.float64)
        return model_trace, guide_trace


def energy_config(energy: Any) -> dict[str, Any]:
    """A JSON-able description of an energy used to refuse mismatched checkpoints."""
    cfg = getattr(energy, "config", None)
    out: dict[str, Any] = {"kind": type(energy).__name__, "event_shape": list(energy.event_shape)}
    out["temperature"] = float(getattr(energy, "temperature", 1.0))
    if isinstance(cfg, dict):
        out.update(cfg)
    return out


@dataclass
class DistillResult:
    """What :func:`distill` returns: the history (dict of lists), the trained guide/flow and the distiller."""

    history: dict[str, list[float]]
    guide: FlowGuide
    distiller: Distiller
    checkpoint: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def flow(self) -> torch.nn.Module:
        """The trained flow (latent → physical)."""
        return self.guide.flow


class Distiller:
    """Stateful distillation run: model, guide, ELBO module, optimizer, schedule, history, checkpoints.

    Args:
        energy: the target :class:`~pyro_nrg.energies.Energy`.
        flow: the flow to train (latent → physical, event shape = the energy's).
        config: :class:`DistillConfig`.
        checkpoint_dir: folder for ``checkpoint.pt``, ``config.json`` and ``metrics.jsonl`` (``None`` = none).
        site: name of the configuration site in the Pyro model.
        distributed: wrap the loss in :class:`~torch.nn.parallel.DistributedDataParallel` when a
            ``torch.distributed`` process group is initialised (default: whenever one is); rank 0 writes
            checkpoints and metrics.
    """

    def __init__(
        self,
        energy: Any,
        flow: torch.nn.Module,
        config: DistillConfig | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        site: str = "x",
        distributed: bool | None = None,
    ) -> None:
        self.energy = energy
        self.flow = flow
        self.config = config or DistillConfig()
        if self.config.fast:
            set_fast_path(flow, True)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.model = boltzmann_model(energy, site)
        self.guide = FlowGuide(
            self.model, flow, site=site, z2_symmetric=self.config.z2_symmetric,
            path_gradient=self.config.path_gradient, translations=self.config.translations,
            point_group=self.config.point_group,
        )
        with torch.random.fork_rng():
            self.guide._setup_prototype()  # runs the model once; keep it off the training RNG stream
        self.elbo = FreeEnergyELBO(
            num_particles=self.config.batch_size, vectorize_particles=True, max_plate_nesting=0
        )
        self.loss_module = self.elbo(self.model, self.guide)
        self.rank, self.world_size = 0, 1
        dist_on = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed is None:
            distributed = dist_on
        if distributed:
            if not dist_on:
                raise RuntimeError("distributed=True needs torch.distributed.init_process_group (launch with torchrun)")
            self.rank, self.world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
            if self.config.shards not in (1, self.world_size):
                raise ValueError(
                    f"shards={self.config.shards} but the world size is {self.world_size}: under torchrun each rank "
                    "is one shard; leave shards=1 (it is set to the world size)"
                )
            self.config.shards = self.world_size
            # broadcasts rank 0's parameters once; buffers are constants (masks, index sets)
            import inspect

            from torch.nn.parallel import DistributedDataParallel

            sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(
                DistributedDataParallel.__init__).parameters else "broadcast_buffers"
            self.loss_module = DistributedDataParallel(self.loss_module, **{sync: False})
        self.shard_rng: list[torch.Tensor] | None = None
        if self.config.shards > 1:
            self.shard_rng = [self._fresh_shard_state(k, 0) for k in range(self.config.shards)]
        params = [p for p in flow.parameters() if p.requires_grad]
        # the fused kernel updates all of a flow's hundreds of small tensors in one call (much faster than the
        # per-tensor loop on a CPU), same update rule
        fused = {"fused": True} if params and all(
            p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params) else {}
        if self.config.weight_decay > 0:
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                params, lr=self.config.lr, weight_decay=self.config.weight_decay, **fused
            )
        else:
            self.optimizer = torch.optim.Adam(params, lr=self.config.lr, **fused)
        cfg = self.config  # the goal is read at every step (a callback may move config.steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(
            lambda: cfg.steps, cfg.warmup_steps, cfg.final_lr_ratio, cosine=cfg.schedule == "cosine"))
        self.step = 0
        self.history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self._caching = _caching_modules(flow)
        self._n_sites = math.prod(tuple(energy.event_shape))
        self.checkpoint_step: int | None = None
        """Step of the last checkpoint written (or loaded) by this run (``None``: none yet)."""
        self._pending: dict[str, Any] | None = None

    # --- configuration ---------------------------------------------------------------------------------------
    def run_config(self) -> dict[str, Any]:
        """Everything needed to tell whether a checkpoint belongs to this run (JSON-serialisable)."""
        return {
            "energy": energy_config(self.energy),
            "flow": flow_config(self.flow) or {"kind": type(self.flow).__name__},
            "distill": asdict(self.config),
        }

    # --- one step ----------------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimisation step; returns the record appended to the history.

        Raises:
            TrainingDivergedError: the loss or gradient is not finite, the step's F_q is far above its running
                median, or the gradient norm is beyond ``max_grad_norm``; the update is not applied.
        """
        t0 = time.perf_counter()
        T = float(self.energy.temperature)
        loss, lw = self._sharded_loss()
        if not torch.isfinite(loss) or lw is None or not torch.isfinite(lw).all():
            self._diverged(f"non-finite loss (loss={float(loss.detach()):.4g})")
        fq = -T * lw.mean().item()
        self._check_fq(fq, T)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        max_norm = self.config.clip_norm if self.config.clip_norm is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            self._diverged("non-finite gradient")
        if self.config.max_grad_norm is not None and grad_norm > self.config.max_grad_norm:
            self.optimizer.zero_grad(set_to_none=True)
            self._diverged(f"gradient norm {grad_norm:.4g} above max_grad_norm={self.config.max_grad_norm:g}")
        if self._pending is not None:  # the parameters of the due checkpoint passed this step's checks: save it
            self._write_pending()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        record = {
            "step": float(self.step),
            "f_q": fq,
            "f_q_err": T * lw.std().item() / math.sqrt(lw.numel()),
            "loss": float(loss.detach()),
            "lr": float(lr),
            "grad_norm": grad_norm,
            "seconds": time.perf_counter() - t0,
        }
        for k in HISTORY_KEYS:
            self.history[k].append(record[k])
        # free the autograd graph held by the transform caches
        self._clear_caches()
        return record

    def _check_fq(self, fq: float, T: float) -> None:
        """Raise if this step's F_q ``fq`` is far above the running median of the last steps' (a finite blow-up)."""
        factor = self.config.divergence_factor
        recent = self.history["f_q"][-int(self.config.divergence_window):]
        if factor is None or not recent:
            return
        med = statistics.median(recent)
        mad = statistics.median(abs(v - med) for v in recent)
        scale = abs(med) + T * self._n_sites + 10 * mad
        if fq - med > factor * scale:
            self._diverged(f"F_q = {fq:.4g}, far above the median {med:.4g} of the last {len(recent)} steps")

    def _diverged(self, what: str) -> NoReturn:
        self._clear_caches()
        self._pending = None  # the parameters of a checkpoint still due made this: never write it
        if self.checkpoint_dir is None:
            kept = "no checkpoint is written by this run (pass checkpoint_dir=... for one)"
        elif self.checkpoint_step is None:
            kept = (f"no checkpoint was written before it (the first is due at step {self.config.checkpoint_every}), "
                    "so there is nothing to resume from")
        else:
            kept = (f"the last checkpoint, {self._ckpt_path()} (step {self.checkpoint_step}), was written before "
                    "the divergence and is kept")
        raise TrainingDivergedError(
            f"training diverged at step {self.step + 1}: {what}; this step's update was not applied and {kept}. "
            "Lower the learning rate, keep gradient clipping on (clip_norm), or use float64"
        )

    def _clear_caches(self) -> None:
        """Drop the transforms' cached (z, x, log-det) triples (they hold the step's autograd graph)."""
        for m in self._caching:
            m.clear_cache()

    def _fresh_shard_state(self, shard: int, step: int) -> torch.Tensor:
        seed = (self.config.seed or 0) * 1000 + shard + 7919 * step
        return torch.Generator().manual_seed(seed).get_state()

    def _local_shards(self) -> list[int]:
        return [self.rank] if self.world_size > 1 else list(range(self.config.shards))

    def _one_loss(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            with self.guide.direct_parameters():  # we optimise flow.parameters() ourselves: skip Pyro's param calls
                loss = self.loss_module()
        except (NonFiniteError, InverseNotConvergedError) as exc:
            if self.step == 0:  # the untrained flow: not a divergence but a model that cannot be evaluated
                raise
            self._diverged(f"the flow's samples are no longer usable ({type(exc).__name__}: {_first_line(exc)})")
        except ValueError as exc:  # Pyro's argument validation meets the NaN first
            if "invalid values" not in str(exc):
                raise
            loss = torch.tensor(float("nan"))
        return loss, self.elbo.last_log_weights

    def _sharded_loss(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Loss (mean over this process's shards) and the log-weights of *all* shards, in shard order."""
        if self.shard_rng is None:
            return self._one_loss()
        losses, lws = [], []
        for k in self._local_shards():
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(self.shard_rng[k])
                loss_k, lw_k = self._one_loss()
                self.shard_rng[k] = torch.get_rng_state()
            losses.append(loss_k)
            lws.append(lw_k if lw_k is not None else torch.full((self.config.batch_size,), float("nan")))
        loss = torch.stack(losses).mean()
        lw = torch.cat(lws)
        if self.world_size > 1:
            gathered = [torch.empty_like(lw) for _ in range(self.world_size)]
            torch.distributed.all_gather(gathered, lw.contiguous())
            lw = torch.cat(gathered)
            bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0])
            torch.distributed.all_reduce(bad)
            if bad.item() > 0:
                loss = torch.tensor(float("nan"))
        return loss, lw

    def _gather_shard_rng(self) -> list[torch.Tensor] | None:
        if self.shard_rng is None:
            return None
        if self.world_size == 1:
            return [s.clone() for s in self.shard_rng]
        mine = self.shard_rng[self.rank]
        out: list[torch.Tensor] = [torch.empty_like(mine) for _ in range(self.world_size)]
        torch.distributed.all_gather(out, mine)
        return out

    # --- the loop ----------------------------------------------------------------------------------------------
    def run(
        self,
        steps: int | None = None,
        callbacks: Sequence[Callable[[Distiller, dict[str, float]], bool | None]] = (),
        progress: bool | None = None,
    ) -> dict[str, list[float]]:
        """Train until ``config.steps`` (or ``steps`` more); a callback returning ``True`` stops early.

        Without ``steps`` the goal is read again after every step, so a callback may move it (and with it the
        learning-rate schedule, which reads ``config.steps`` too): e.g. to fit training into a wall-time budget.
        """
        fixed = None if steps is None else self.step + int(steps)
        target = self.config.steps if fixed is None else fixed
        if progress is None:
            progress = sys.stderr.isatty()
        progress = progress and self.rank == 0
        bar = tqdm(total=target, initial=self.step, disable=not progress, desc="distill", leave=False)
        try:
            while self.step < target:
                record = self.train_step()
                bar.update(1)
                bar.set_postfix(f_q=f"{record['f_q']:.4f}", lr=f"{record['lr']:.1e}")
                self._append_metrics(record)
                try:
                    stop = any(bool(cb(self, record)) for cb in callbacks)
                except (NonFiniteError, InverseNotConvergedError) as exc:  # e.g. a check's samples of these params
                    self.step -= 1  # (for the message: the parameters of this step are the ones that fail)
                    self._diverged(f"the flow's samples are no longer usable ({type(exc).__name__}: "
                                   f"{_first_line(exc)})")
                if fixed is None and self.config.steps != target:
                    target = self.config.steps
                    bar.total = target
                if self.checkpoint_dir is not None and (
                    self.step % self.config.checkpoint_every == 0 or self.step == target or stop
                ):
                    self._pending = self.state()  # written once the next step has checked these parameters
                if stop:
                    break
            if self._pending is not None:  # the end: check the final parameters once, off the RNG stream
                self._validate_final()
                self._write_pending()
        finally:
            self._pending = None
            bar.close()
        return self.history

    def _validate_final(self) -> None:
        """Evaluate the final parameters' loss once (no update, RNG streams restored), so that the last checkpoint
        too holds parameters that passed the divergence checks."""
        shard_rng = None if self.shard_rng is None else [t.clone() for t in self.shard_rng]
        on_cpu = all(p.device.type == "cpu" for p in self.flow.parameters())
        with torch.random.fork_rng(**({"devices": []} if on_cpu else {})), torch.no_grad():
            loss, lw = self._sharded_loss()
            if not torch.isfinite(loss) or lw is None or not torch.isfinite(lw).all():
                self._diverged(f"non-finite loss of the final parameters (loss={float(loss.detach()):.4g})")
            self._check_fq(-float(self.energy.temperature) * lw.mean().item(), float(self.energy.temperature))
        self.shard_rng = shard_rng
        self._clear_caches()

    def _write_pending(self) -> None:
        state, self._pending = self._pending, None
        assert state is not None
        self._write_state(state)

    # --- checkpoints -------------------------------------------------------------------------------------------
    def _ckpt_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / "checkpoint.pt"

    def _append_metrics(self, record: dict[str, float]) -> None:
        if self.checkpoint_dir is None or self.rank != 0:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        with open(self.checkpoint_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def state(self) -> dict[str, Any]:
        """The checkpoint payload (tensors and plain containers only): a snapshot, unchanged by later steps."""
        return copy.deepcopy({
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "flow": self.flow.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_shards": self._gather_shard_rng(),
            "world_size": self.world_size,
            "history": self.history,
            "config": self.run_config(),
        })

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the checkpoint atomically (temp file + rename) and ``config.json`` beside it."""
        path = Path(path) if path is not None else self._ckpt_path()
        if path is None:
            raise CheckpointError("no checkpoint path: pass checkpoint_dir=... or a path")
        return self._write_state(self.state(), path)  # state(): collective under torchrun

    def _write_state(self, state: dict[str, Any], path: Path | None = None) -> Path:
        path = path if path is not None else self._ckpt_path()
        assert path is not None
        if self.rank != 0:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(state, path)
        write_json(path.parent / "config.json", state["config"])
        if path == self._ckpt_path():
            self.checkpoint_step = int(state["step"])
        logger.debug("checkpoint at step %d written to %s", state["step"], path)
        return path

    def load_checkpoint(self, path: str | os.PathLike[str] | None = None) -> None:
        """Restore flow, optimizer, scheduler, RNG and history; refuse a checkpoint of another configuration."""
        path = Path(path) if path is not None else self._ckpt_path()
        blob = load_checkpoint(path)
        mine, theirs = self.run_config(), dict(blob["config"])
        mine["flow"] = normalized_flow_config(mine["flow"])
        theirs["flow"] = normalized_flow_config(theirs.get("flow", {}))
        diffs = [
            f"{part}.{k}: checkpoint {theirs[part].get(k)!r} vs model {mine[part].get(k)!r}"
            for part in ("energy", "flow")
            for k in sorted(set(mine[part]) | set(theirs.get(part, {})))
            if theirs.get(part, {}).get(k) != mine[part].get(k)
        ]
        if diffs:
            raise ConfigMismatchError(
                f"checkpoint {path} was made for a different model ({'; '.join(diffs)}): rebuild the energy and flow "
                "with the checkpoint's config.json, or start a fresh run in another folder"
            )
        try:
            self.flow.load_state_dict(blob["flow"])
            self.optimizer.load_state_dict(blob["optimizer"])
            self.scheduler.load_state_dict(blob["scheduler"])
            torch.set_rng_state(blob["rng_torch"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise CheckpointError(
                f"checkpoint {path} does not fit this flow ({_first_line(exc)}): it is damaged or was written by "
                "another version; it is left as it is: start a new run in another folder"
            ) from None
        self.step = int(blob["step"])
        self.checkpoint_step = self.step
        if self.scheduler.base_lrs and self.scheduler.base_lrs[0] != self.config.lr:  # a new peak rate asked for
            logger.info("resuming with peak learning rate %g (the checkpoint's run had %g)", self.config.lr,
                        self.scheduler.base_lrs[0])
            self.scheduler.base_lrs = [self.config.lr] * len(self.scheduler.base_lrs)
            for group, lam in zip(self.optimizer.param_groups, self.scheduler.lr_lambdas, strict=True):
                group["lr"] = self.config.lr * lam(self.scheduler.last_epoch)
        if self.shard_rng is not None:
            saved = blob.get("rng_shards")
            if saved is not None and len(saved) == len(self.shard_rng):
                self.shard_rng = [t.clone() for t in saved]
            else:  # another number of shards: fresh, deterministic streams for the remaining steps
                self.shard_rng = [self._fresh_shard_state(k, self.step) for k in range(len(self.shard_rng))]
        old = blob["history"]
        self.history = {k: list(old.get(k, old.get(LEGACY_HISTORY_KEYS.get(k, k), []))) for k in HISTORY_KEYS}
        if self.checkpoint_dir is not None and self.rank == 0:  # metrics after the checkpoint are replayed
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            with open(self.checkpoint_dir / "metrics.jsonl", "w") as fh:
                for i in range(len(self.history["step"])):
                    fh.write(json.dumps({k: self.history[k][i] for k in HISTORY_KEYS}) + "\n")

    # --- evaluation ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def estimate(
        self,
        n: int = 8192,
        batch_size: int = 4096,
        float64: bool = True,
        translations: int | None = None,
        point_group: bool | None = None,
    ) -> FreeEnergyEstimate:
        """F_q, IS ln Z, ESS and k-hat from ``n`` fresh samples (a float64 copy of the flow if ``float64``).

        ``translations`` / ``point_group`` (default: the config's) evaluate the lattice-symmetrised mixture of the
        trained flow (:class:`~pyro_nrg.distributions.LatticeSymmetrized`), whose F_q is never higher.
        """
        t = self.config.translations if translations is None else int(translations)
        pg = self.config.point_group if point_group is None else bool(point_group)
        flow, energy = self.flow, self.energy
        if float64:
            self._clear_caches()  # cached tensors with autograd history cannot be deep-copied
            flow = copy.deepcopy(self.flow).double()
            energy = copy.deepcopy(energy).double()
        lattice = self.guide.lattice_shape() if t > 1 or pg else None
        q = symmetrize(FlowDistribution(flow), self.config.z2_symmetric, t, pg, lattice)
        _, lw = sample_log_weights(energy, q, n, batch_size)
        exact = None
        try:
            exact = float(self.energy.log_z())
        except NotImplementedError:
            pass
        return estimate_free_energy(lw, float(self.energy.temperature), exact)


def _caching_modules(module: Any) -> list[Any]:
    """The submodules of ``module`` that cache (z, x, log-det) triples (found once: a walk over the ~600 modules
    of a flow costs milliseconds, too much for every training step)."""
    return [m for m in module.modules() if hasattr(m, "clear_cache")] if hasattr(module, "modules") else []


class TimeBudget:
    r"""A callback that fits training into a wall-time budget, with the learning-rate schedule run on time.

    After every step it resets the plan to :math:`n = \text{step} \cdot t_\text{budget} / t_\text{elapsed}` steps
    (``config.steps``, which :meth:`Distiller.run` and the schedule read after every step), so the learning rate at
    any moment is the schedule's value at the fraction of the budget spent, whatever the pace; it stops training once
    the budget is spent, with the cosine schedule at its floor. Counting the plan once from the first steps instead
    ends a run early (the first steps are slow) with the rate still above its floor. The clock starts at
    the first call (the end of the first step) unless :meth:`start` is called before training.

    Example:
        >>> budget = TimeBudget(seconds=900)                  # doctest: +SKIP
        >>> distill(energy, flow, steps=10**6, callbacks=[budget])   # doctest: +SKIP

    Not for runs that must resume bit-exactly: the step plan depends on the machine's pace.
    """

    def __init__(self, seconds: float) -> None:
        if not float(seconds) > 0:
            raise ValueError(f"the time budget must be positive (seconds), got {seconds!r}")
        self.seconds = float(seconds)
        self.t0: float | None = None

    def start(self) -> TimeBudget:
        """Start the clock now (e.g. just before :meth:`Distiller.run`, to count the first step too)."""
        self.t0 = time.perf_counter()
        return self

    @property
    def elapsed(self) -> float:
        """Seconds since the clock started (0 before)."""
        return 0.0 if self.t0 is None else time.perf_counter() - self.t0

    def __call__(self, distiller: Distiller, record: dict[str, float]) -> bool:
        if self.t0 is None:
            self.t0 = time.perf_counter() - record.get("seconds", 0.0)
        elapsed = self.elapsed
        if elapsed >= self.seconds:
            return True
        distiller.config.steps = max(distiller.step + 1, round(distiller.step * self.seconds / elapsed))
        return False


def load_checkpoint(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Load a distillation checkpoint as data (``weights_only=True``) and check its format."""
    if path is None or not Path(path).exists():
        raise CheckpointError(f"no checkpoint at {path}: start without resume, or point to an existing run folder")
    if Path(path).is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file: point to its checkpoint.pt")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with a clear message
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {_first_line(exc)}): the file is damaged or not "
            "a pyro_nrg checkpoint, and it is not loaded as code (it may come from anywhere); it is left as it is: "
            "start a new run in another folder, or restore the file"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a pyro_nrg distillation checkpoint (format {CHECKPOINT_FORMAT})")
    missing = [k for k in CHECKPOINT_KEYS if k not in blob]
    if missing or not isinstance(blob.get("history"), dict) or not isinstance(blob.get("config"), dict):
        raise CheckpointError(f"checkpoint {path} is incomplete (missing {', '.join(missing) or 'history/config'}): "
                              "it is damaged or was written by another version; start a new run in another folder")
    return blob


def checkpoint_step(path: str | os.PathLike[str]) -> int | None:
    """The step of the checkpoint at ``path`` (a file, or a run folder holding ``checkpoint.pt``); ``None`` if
    there is none or it cannot be read."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        return None
    try:
        return int(load_checkpoint(path)["step"])
    except (CheckpointError, TypeError, ValueError):
        return None


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without any advice to load the file as code (torch's
    "weights_only=False" hint must not be followed for a file of unknown origin)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "weights_only" not in ln]
    return lines[0] if lines else type(exc).__name__


def distill(
    energy: Any,
    flow: torch.nn.Module,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 1e-3,
    *,
    config: DistillConfig | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    callbacks: Sequence[Callable[[Distiller, dict[str, float]], bool | None]] = (),
    progress: bool | None = None,
    **config_overrides: Any,
) -> DistillResult:
    """Train ``flow`` to the Boltzmann density of ``energy`` by minimising :math:`F_q` (Pyro ``Trace_ELBO``).

    Args:
        energy: target energy (``energy.action(x) = beta E(x)``).
        flow: flow to train (its event shape must equal the energy's).
        steps: optimisation steps (shortcut for :attr:`DistillConfig.steps`).
        batch_size: samples per step (shortcut for :attr:`DistillConfig.batch_size`).
        lr: learning rate (shortcut for :attr:`DistillConfig.lr`).
        config: a full :class:`DistillConfig` (then ``steps/batch_size/lr`` and overrides are ignored).
        checkpoint_dir: folder for checkpoints and ``metrics.jsonl``.
        resume: continue from ``checkpoint_dir/checkpoint.pt`` (bit-exact continuation) if it exists.
        callbacks: ``cb(distiller, record) -> bool | None``; ``True`` stops training.
        progress: tqdm bar (default: only when stderr is a terminal).
        **config_overrides: other :class:`DistillConfig` fields (``z2_symmetric``, ``schedule``, ``seed``...).

    Returns:
        :class:`DistillResult` with ``history`` (``step, f_q, f_q_err, loss, lr, grad_norm, seconds`` per step).

    Raises:
        TrainingDivergedError: NaN/inf loss or gradient, a finite blow-up of F_q, or a gradient norm beyond
            ``max_grad_norm`` (:attr:`DistillConfig.divergence_factor`); the last checkpoint, written before the
            divergence, is kept, and the message names it or says there is none.
        ConfigMismatchError: ``resume`` with a checkpoint of another model.
    """
    cfg = config or DistillConfig(steps=steps, batch_size=batch_size, lr=lr, **config_overrides)
    if cfg.seed is not None:
        pyro.set_rng_seed(cfg.seed)
    from .distributed import init_from_environment

    init_from_environment()  # joins the torchrun process group if launched by torchrun; no-op otherwise
    runner = Distiller(energy, flow, cfg, checkpoint_dir)
    return run_distiller(runner, resume, callbacks, progress)


def run_distiller(
    runner: Distiller,
    resume: bool = False,
    callbacks: Sequence[Callable[[Distiller, dict[str, float]], bool | None]] = (),
    progress: bool | None = None,
) -> DistillResult:
    """Run a built :class:`Distiller` (any subclass) as :func:`distill` does: resume from its checkpoint folder if
    asked, refuse to overwrite a run that is there otherwise, train, and return the :class:`DistillResult`.

    Raises:
        CheckpointError: ``resume`` without a checkpoint folder, or a checkpoint that is there without ``resume``.
    """
    ckpt = runner._ckpt_path()
    if resume and ckpt is not None and ckpt.exists():
        runner.load_checkpoint(ckpt)
        logger.info("resumed from %s at step %d", ckpt, runner.step)
    elif resume and ckpt is None:
        raise CheckpointError("resume=True needs checkpoint_dir=... (the folder of the run to continue)")
    elif ckpt is not None and ckpt.exists() and not resume:
        raise CheckpointError(
            f"{ckpt} already exists: pass resume=True to continue that run, or choose another checkpoint_dir "
            "(refusing to overwrite it)"
        )
    runner.run(callbacks=callbacks, progress=progress)
    return DistillResult(history=runner.history, guide=runner.guide, distiller=runner, checkpoint=ckpt)
