r"""Training neural canonical transformations: variational free energy and density estimation (MLE, SVI).

**Variational** (from a known Hamiltonian :math:`H`, PRX 10, 021020, Sec. III B). Minimise

.. math:: F_q = \mathbb E_{x\sim q}\big[H(x) + T\ln q(x)\big] \;\ge\; F = -T\ln Z

with the objective of Pyro's ``Trace_ELBO`` for the model/guide pair in which the *model* has a samplable flat site
``Normal(0, 1).expand([2n]).to_event(1).mask(False)`` plus ``pyro.factor("boltzmann", -beta * H(x))`` and the
*guide* samples the same site from the :class:`~pyro_nrg.distributions.PhaseSpaceFlow` in a ``pyro.plate`` of
``batch_size`` particles: the masked site contributes nothing, so the loss is
:math:`\sum_i [\beta H(x_i) + \ln q(x_i)]` with :math:`x_i = g(z_i)`, :math:`z_i` drawn from the latent
oscillators, and :math:`F_q = T\cdot\text{loss}/\text{batch}`. For a model this small, tracing that pair at
every step (``SVI``, one ``PyroOptim`` object per parameter) costs more than the model, so the loss is evaluated
directly and driven by one torch Adam with a per-parameter norm clip: the update ``SVI`` makes, step for step (the
test suite checks the trajectory against ``SVI``). The per-step estimate and its standard error are recorded.

**Density estimation** (from samples of the positions only, separable :math:`H = \sum p^2/2m + V(q)`, PRX Sec.
V C). Momenta are drawn from Maxwell–Boltzmann :math:`\mathcal N(0, mT)` (fresh every epoch for training, one fixed
draw for validation); maximum likelihood through ``SVI`` with the flow as the model's observed distribution and
an empty guide; train/validation split, plateau learning-rate schedule and early stopping on the validation NLL
(the best state is restored).

Pyro's parameter store is keyed by name: every density fit registers the module under a fresh unique name and removes
those entries afterwards, so several models can be trained in one process without silently sharing parameters.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO

from ..distributions import CanonicalFlow, detached_parameters
from ..dtypes import module_dtype_device
from ..energies.base import Energy
from ..errors import EventShapeError, TemperatureError, TrainingDivergedError
from .estimators import FreeEnergyEstimate, estimate_free_energy
from .schedules import warmup_cosine

__all__ = [
    "VariationalConfig",
    "VariationalResult",
    "DensityConfig",
    "DensityResult",
    "fit_variational",
    "fit_density",
    "canonical_free_energy",
    "maxwell_boltzmann",
]

logger = logging.getLogger(__name__)
_COUNTER = itertools.count()


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{next(_COUNTER)}_{id(object()):x}"


def _drop_params(name: str) -> None:
    store = pyro.get_param_store()
    for key in [k for k in store.keys() if k.startswith(name + "$$$")]:
        del store[key]


def _check_pair(model: CanonicalFlow, hamiltonian: Energy) -> None:
    if tuple(hamiltonian.event_shape) != (2 * model.n,):
        raise EventShapeError(
            f"the Hamiltonian acts on events {tuple(hamiltonian.event_shape)} but the model on ({2 * model.n},): "
            f"build the model with n={hamiltonian.n_dof // 2}"
        )
    if abs(hamiltonian.temperature - model.temperature) > 1e-12 * max(1.0, model.temperature):
        raise TemperatureError(
            f"the model has T={model.temperature} but the Hamiltonian T={hamiltonian.temperature}: build both at "
            f"the same temperature"
        )


# ------------------------------------------------------------------------------------------------------------
# variational
# ------------------------------------------------------------------------------------------------------------


@dataclass
class VariationalConfig:
    """Settings of :func:`fit_variational` (saved as JSON beside a ``state_dict``).

    Attributes:
        steps: optimisation steps.
        batch_size: samples per step.
        lr: peak Adam learning rate.
        warmup_steps: linear warm-up steps, times a cosine decay to ``lr * final_lr_ratio``
            (:func:`~pyro_nrg.infer.schedules.warmup_cosine`).
        final_lr_ratio: final / peak learning rate.
        clip_norm: per-parameter gradient-norm clip (``None``: off).
        log_every: log (and call the callback) every this many steps.
        seed: ``pyro.set_rng_seed`` at the start (``None``: leave the RNG alone).
        path_gradient: score the guide with stop-gradient parameters ("sticking the landing"): same value,
            lower-variance gradient, zero variance at the exact answer; costs one inverse pass per step.
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-2
    warmup_steps: int = 50
    final_lr_ratio: float = 1e-2
    clip_norm: float | None = 10.0
    log_every: int = 100
    seed: int | None = 0
    path_gradient: bool = True


@dataclass
class VariationalResult:
    """History of :func:`fit_variational`: per-step :math:`F_q` estimate, its standard error, learning rate."""

    f_q: list[float] = field(default_factory=list)
    f_q_err: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: float = 0.0
    config: dict = field(default_factory=dict)

    def final(self, last: int = 50) -> float:
        """Mean of the last ``last`` per-step :math:`F_q` estimates."""
        tail = self.f_q[-last:]
        return sum(tail) / len(tail)


def fit_variational(
    model: CanonicalFlow,
    hamiltonian: Energy,
    config: VariationalConfig | None = None,
    callback: Callable[[int, dict], None] | None = None,
) -> VariationalResult:
    r"""Minimise the variational free energy :math:`F_q` of ``model`` for ``hamiltonian`` (Pyro ``Trace_ELBO``).

    Args:
        model: the :class:`~pyro_nrg.distributions.CanonicalFlow` to train (in place; its dtype is used).
        hamiltonian: energy on ``(*batch, 2n)`` at the model's temperature.
        config: :class:`VariationalConfig`.
        callback: called as ``callback(step, info)`` every ``log_every`` steps with ``f_q``, ``f_q_err``,
            ``lr`` and ``omega`` (sorted).

    Returns:
        :class:`VariationalResult`.

    Raises:
        TrainingDivergedError: the loss became NaN/inf.
    """
    cfg = config or VariationalConfig()
    _check_pair(model, hamiltonian)
    if cfg.seed is not None:
        pyro.set_rng_seed(cfg.seed)
    dtype, device = module_dtype_device(model)
    hamiltonian = hamiltonian.to(device)
    beta, T = hamiltonian.beta, model.temperature

    def loss_fn() -> tuple[torch.Tensor, torch.Tensor]:
        latent = model.latent()
        z = latent.rsample((cfg.batch_size,))
        x = model.from_latent(z)
        if cfg.path_gradient:  # ln q with stop-gradient parameters: only the path term of the gradient is kept
            with detached_parameters(model):
                log_q = model.log_prob(x)
        else:
            log_q = latent.log_prob(z)
        per = beta * hamiltonian.energy(x) + log_q
        return per.sum(), per.detach()

    params = [p for p in model.parameters() if p.requires_grad]
    lr_fn = warmup_cosine(cfg.steps, cfg.warmup_steps, cfg.final_lr_ratio)
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_fn)
    res = VariationalResult(config=asdict(cfg))
    t0 = time.perf_counter()
    try:
        for step in range(cfg.steps):
            loss, per = loss_fn()
            f_q = float(T * per.double().mean())
            if not math.isfinite(f_q):
                raise TrainingDivergedError(
                    f"fit_variational: loss is {f_q} at step {step} (the update was not applied): lower lr (now "
                    f"{cfg.lr}) or set clip_norm"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_norm:
                for p in params:  # each parameter clipped on its own, as PyroOptim's clip_args do
                    torch.nn.utils.clip_grad_norm_(p, cfg.clip_norm)
            optimizer.step()
            scheduler.step()
            res.f_q.append(f_q)
            res.f_q_err.append(float(T * per.double().std() / math.sqrt(per.numel())) if per.numel() > 1
                               else float("nan"))
            res.lr.append(cfg.lr * lr_fn(step))
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                info = {
                    "f_q": res.f_q[-1],
                    "f_q_err": res.f_q_err[-1],
                    "lr": res.lr[-1],
                    "omega": model.frequencies()[0].tolist(),
                }
                logger.info("step %d: F_q = %.6f +- %.6f", step + 1, info["f_q"], info["f_q_err"])
                if callback is not None:
                    callback(step + 1, info)
    finally:
        res.seconds = time.perf_counter() - t0
    return res


def canonical_free_energy(
    model: CanonicalFlow,
    hamiltonian: Energy,
    n_samples: int = 10_000,
    batch_size: int = 5_000,
    dtype: torch.dtype = torch.float64,
    seed: int | None = None,
) -> FreeEnergyEstimate:
    """Estimate :math:`F_q` and the importance-sampled :math:`F` with a ``dtype`` copy of ``model``.

    Args:
        model: trained model (not modified; a copy is cast to ``dtype``).
        hamiltonian: the energy (a ``dtype`` copy is used).
        n_samples: number of samples.
        batch_size: number of samples drawn at a time (chunk size).
        dtype: arithmetic precision (float64 by default).
        seed: RNG seed for the samples.
    """
    _check_pair(model, hamiltonian)
    m = copy.deepcopy(model).to(dtype)
    h = copy.deepcopy(hamiltonian).to(dtype)
    gen_state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    logw = []
    try:
        with torch.no_grad():
            lat = m.latent()
            done = 0
            while done < n_samples:
                b = min(batch_size, n_samples - done)
                z = lat.sample((b,))
                x = m.from_latent(z)
                logw.append(-h.beta * h.energy(x) - lat.log_prob(z))
                done += b
    finally:
        if seed is not None:
            torch.random.set_rng_state(gen_state)
    lw = torch.cat(logw).double()
    exact = None
    try:
        exact = float(hamiltonian.log_z())
    except NotImplementedError:
        pass
    return estimate_free_energy(lw, model.temperature, exact)


# ------------------------------------------------------------------------------------------------------------
# density estimation
# ------------------------------------------------------------------------------------------------------------


def maxwell_boltzmann(
    positions: torch.Tensor,
    masses: float | torch.Tensor = 1.0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Attach Maxwell–Boltzmann momenta :math:`p \sim \mathcal N(0, mT)` to positions.

    Args:
        positions: ``(N, n)``.
        masses: scalar or ``(n,)``.
        temperature: :math:`T`.
        generator: torch RNG.

    Returns:
        Phase-space points ``(N, 2n)`` ordered ``(q, p)``.
    """
    m = torch.as_tensor(masses, dtype=positions.dtype, device=positions.device)
    eps = torch.randn(positions.shape, generator=generator, dtype=positions.dtype).to(positions.device)
    return torch.cat([positions, eps * torch.sqrt(m * temperature)], -1)


@dataclass
class DensityConfig:
    """Settings of :func:`fit_density`.

    Attributes:
        max_epochs: upper bound on epochs.
        batch_size: minibatch size.
        lr: initial Adam learning rate.
        val_fraction: fraction of the samples held out for validation (the paper used 10 %).
        patience: stop after this many epochs without a validation improvement larger than ``min_delta``.
        min_delta: minimal improvement of the validation NLL (nats per sample).
        lr_factor, lr_patience: ``ReduceLROnPlateau`` on the validation NLL.
        clip_norm: per-parameter gradient-norm clip (``None``: off).
        seed: seed of the split, the momenta and the minibatch order.
    """

    max_epochs: int = 200
    batch_size: int = 256
    lr: float = 3e-3
    val_fraction: float = 0.1
    patience: int = 10
    min_delta: float = 1e-4
    lr_factor: float = 0.5
    lr_patience: int = 3
    clip_norm: float | None = 10.0
    seed: int = 0


@dataclass
class DensityResult:
    """History of :func:`fit_density` (NLL in nats per phase-space sample)."""

    train_nll: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_nll: float = float("inf")
    stopped_early: bool = False
    seconds: float = 0.0
    config: dict = field(default_factory=dict)


def _density_split(
    model: CanonicalFlow, positions: torch.Tensor, masses: float | torch.Tensor, cfg: DensityConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """Check ``positions`` ``(N, n)`` and split them (seeded) into training positions and validation phase-space
    points with Maxwell–Boltzmann momenta; also returns the generator, which the epochs go on drawing from."""
    if positions.dim() != 2 or positions.shape[1] != model.n:
        raise EventShapeError(
            f"fit_density expects positions of shape (N, {model.n}), got {tuple(positions.shape)}: "
            f"reshape to positions.reshape(-1, {model.n})"
        )
    n_total = positions.shape[0]
    n_val = max(1, int(round(cfg.val_fraction * n_total)))
    if n_total - n_val < 2:
        raise EventShapeError(
            f"fit_density needs more samples: {n_total} with val_fraction={cfg.val_fraction} leaves "
            f"{n_total - n_val} for training; supply at least 10 samples"
        )
    dtype, device = module_dtype_device(model)
    gen = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(n_total, generator=gen)
    q_all = positions.detach().to(dtype=dtype, device=device)
    q_val, q_train = q_all[perm[:n_val]], q_all[perm[n_val:]]
    return q_train, maxwell_boltzmann(q_val, masses, model.temperature, generator=gen), gen


def _density_epoch(svi: SVI, x_train: torch.Tensor, order: torch.Tensor, cfg: DensityConfig, epoch: int) -> float:
    """One epoch of :func:`fit_density` over the mini-batches of ``order``; the mean training NLL per sample."""
    n_train = x_train.shape[0]
    tot = 0.0
    for idx in torch.split(order, cfg.batch_size):
        loss = svi.step(x_train[idx], idx)
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"fit_density: loss is {loss} at epoch {epoch}: lower lr (now {cfg.lr}) or set clip_norm"
            )
        tot += loss * len(idx) / n_train  # loss = -(n_train/B) sum log q
    return tot / n_train


def fit_density(
    model: CanonicalFlow,
    positions: torch.Tensor,
    masses: float | torch.Tensor = 1.0,
    config: DensityConfig | None = None,
    callback: Callable[[int, dict], None] | None = None,
) -> DensityResult:
    r"""Maximum-likelihood fit of ``model`` to position samples with Maxwell–Boltzmann momenta.

    For a separable :math:`H = \sum p^2/2m + V(q)` the Boltzmann momenta are independent of the positions, so
    :math:`(q, p)` with :math:`p \sim \mathcal N(0, mT)` are exact phase-space samples. The loss is the negative
    log-likelihood :math:`-\ln q(x)` (Pyro ``SVI``: observed site, empty guide); the state with the best
    validation NLL is restored at the end.

    Args:
        model: :class:`~pyro_nrg.distributions.CanonicalFlow` (trained in place; ``model.temperature`` is used).
        positions: ``(N, n)`` samples of :math:`q`.
        masses: scalar or ``(n,)`` masses.
        config: :class:`DensityConfig`.
        callback: ``callback(epoch, info)`` after every epoch with ``train_nll``, ``val_nll``, ``lr``.

    Returns:
        :class:`DensityResult`.

    Raises:
        EventShapeError: ``positions`` is not ``(N, n)`` or too few samples for a validation split.
        TrainingDivergedError: the loss became NaN/inf.
    """
    cfg = config or DensityConfig()
    device = module_dtype_device(model)[1]
    T = model.temperature
    q_train, x_val, gen = _density_split(model, positions, masses, cfg)
    n_train, n_val = q_train.shape[0], x_val.shape[0]
    name = _unique_name("canonical_mle")

    def pyro_model(x: torch.Tensor, idx: torch.Tensor) -> None:
        pyro.module(name, model)
        fd = model.distribution()
        with pyro.plate(f"{name}_data", n_train, subsample=idx):
            pyro.sample(f"{name}_x", fd, obs=x)

    def guide(x: torch.Tensor, idx: torch.Tensor) -> None:
        pass

    optim = pyro.optim.ReduceLROnPlateau(
        {
            "optimizer": torch.optim.Adam,
            "optim_args": {"lr": cfg.lr},
            "factor": cfg.lr_factor,
            "patience": cfg.lr_patience,
        },
        clip_args={"clip_norm": cfg.clip_norm} if cfg.clip_norm else None,
    )
    svi = SVI(pyro_model, guide, optim, loss=Trace_ELBO())

    def val_nll() -> float:
        with torch.no_grad():
            tot = 0.0
            for chunk in torch.split(x_val, 4096):
                tot += float(-model.log_prob(chunk).double().sum())
        return tot / n_val

    res = DensityResult(config=asdict(cfg))
    best_state = copy.deepcopy(model.state_dict())
    bad = 0
    t0 = time.perf_counter()
    try:
        for epoch in range(cfg.max_epochs):
            x_train = maxwell_boltzmann(q_train, masses, T, generator=gen)
            order = torch.randperm(n_train, generator=gen).to(device)
            res.train_nll.append(_density_epoch(svi, x_train, order, cfg, epoch))
            v = val_nll()
            res.val_nll.append(v)
            optim.step(v)
            if v < res.best_val_nll - cfg.min_delta:
                res.best_val_nll, res.best_epoch, bad = v, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
            info = {"train_nll": res.train_nll[-1], "val_nll": v}
            logger.info("epoch %d: train NLL %.5f, val NLL %.5f", epoch, info["train_nll"], v)
            if callback is not None:
                callback(epoch, info)
            if bad >= cfg.patience:
                res.stopped_early = True
                break
    finally:
        _drop_params(name)
        model.load_state_dict(best_state)
        res.seconds = time.perf_counter() - t0
    return res
