r"""Vectorised many-walker HMC: hundreds of independent walkers of one potential moved in one batch.

Pyro runs chains one after another and has no vectorised chains; :func:`hmc_walkers` moves ``W`` walkers at once
(fixed leapfrog step size and number of steps, the NeuralRG paper's 10 steps of 0.2 by default, optional
dual-averaging step-size adaptation and an adapted mass matrix during warm-up, optional interleaved independence
Metropolis moves). :func:`latent_hmc_walkers` runs it on the renormalized energy :math:`\beta E_{\rm eff}(z)` of a
trained flow (:mod:`pyro_nrg.infer.mcmc.latent`), :func:`physical_hmc_walkers` on :math:`\beta E(x)`; both return
a :class:`~pyro_nrg.infer.mcmc.results.SamplingResult` with one chain per walker.

The engine's pieces are named steps: :func:`hmc_step` (one transition of all walkers), :class:`DualAveraging`
(step size), the mass-matrix adaptation (positions :math:`q = \mu + C u`), the independence move and the recorder
of kept draws.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ...energies.base import Energy
from ..pushforward import check_flow_fits, flow_event_shape, flow_of, frozen, param_dtype, to_physical
from .results import SamplingResult
from .sector import resolve_sector
from .starts import chain_inits, check_sampler_sizes, check_start

__all__ = [
    "IndependenceProposal",
    "DualAveraging",
    "value_and_grad",
    "hmc_step",
    "hmc_walkers",
    "latent_hmc_walkers",
    "physical_hmc_walkers",
]

logger = logging.getLogger(__name__)

Potential = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class DualAveraging:
    r"""Nesterov dual averaging of :math:`\ln\epsilon` (Hoffman & Gelman 2014, Alg. 5; Stan's constants)."""

    def __init__(self, step_size: float, target: float, gamma: float = 0.05, t0: float = 10.0, kappa: float = 0.75):
        self.mu = math.log(10.0 * step_size)
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.h_bar = 0.0
        self.log_eps_bar = math.log(step_size)
        self.t = 0

    def update(self, accept_stat: float) -> float:
        """Feed one mean acceptance statistic; return the next step size."""
        self.t += 1
        t = self.t
        w = 1.0 / (t + self.t0)
        self.h_bar = (1 - w) * self.h_bar + w * (self.target - accept_stat)
        log_eps = self.mu - math.sqrt(t) / self.gamma * self.h_bar
        eta = t ** (-self.kappa)
        self.log_eps_bar = eta * log_eps + (1 - eta) * self.log_eps_bar
        return math.exp(log_eps)

    @property
    def final(self) -> float:
        """The averaged step size to use after warm-up."""
        return math.exp(self.log_eps_bar)


def value_and_grad(fn: Potential, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``fn(v) = (f, aux)`` with ``f`` of shape ``(W,)``: return ``f``, :math:`\\partial f_w/\\partial v_w` (shape of
    ``v``) and ``aux``, all detached (gradients on even under ``torch.no_grad``)."""
    with torch.enable_grad():
        vr = v.detach().requires_grad_(True)
        f, aux = fn(vr)
        (g,) = torch.autograd.grad(f.sum(), vr)
    return f.detach(), g.detach(), aux.detach()


def _where_batch(cond: torch.Tensor, new: Any, old: Any) -> Any:
    """``torch.where`` over the leading batch dimension of a tensor or a tuple of tensors."""
    if isinstance(new, tuple):
        return tuple(_where_batch(cond, n, o) for n, o in zip(new, old))
    return torch.where(cond.reshape(-1, *([1] * (new.dim() - 1))), new, old)


@dataclass
class IndependenceProposal:
    r"""A proposal for the independence Metropolis moves that :func:`hmc_walkers` can interleave with HMC.

    Attributes:
        sample: ``W`` → fresh draws ``(W, *shape)`` in the walkers' coordinates, independent of their states.
        log_prob: ``q`` ``(W, *shape)`` → :math:`\ln r(q)` ``(W,)`` of the proposal density, up to a constant.
    """

    sample: Callable[[int], torch.Tensor]
    log_prob: Callable[[torch.Tensor], torch.Tensor]


def hmc_step(
    u_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, Any]],
    q: torch.Tensor,
    u: torch.Tensor,
    g: torch.Tensor,
    aux: Any,
    eps: float,
    num_steps: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""One HMC transition for ``W`` walkers at once (unit mass, leapfrog, walker-wise Metropolis test).

    Draws :math:`p \sim \mathcal N(0, I)`, runs ``num_steps`` leapfrog steps of size ``eps`` on
    :math:`H = U(q) + \tfrac12|p|^2` from the cached potential ``u`` ``(W,)`` and gradient ``g`` (shape of ``q``),
    and accepts with :math:`\min(1, e^{-\Delta H})`; a non-finite :math:`\Delta H` or position is rejected.
    ``u_grad(q)`` returns ``(U, dU/dq, aux)``; ``aux`` (a tensor or tuple of tensors with leading dimension ``W``)
    travels with the state.

    Returns:
        ``(q, u, g, aux, accept_prob, accepted, finite, dH)`` after the test; ``dH`` is ``inf`` where not finite.
    """
    W = q.shape[0]
    red = tuple(range(1, q.dim()))
    p = torch.randn_like(q)
    h0 = u.to(torch.float64) + 0.5 * p.to(torch.float64).square().sum(red)
    qn, pn, gn = q, p - 0.5 * eps * g, g
    un, auxn = u, aux
    for s in range(num_steps):
        qn = qn + eps * pn
        un, gn, auxn = u_grad(qn)
        pn = pn - (eps if s < num_steps - 1 else 0.5 * eps) * gn
    h1 = un.to(torch.float64) + 0.5 * pn.to(torch.float64).square().sum(red)
    dh = h1 - h0
    finite = torch.isfinite(dh) & torch.isfinite(qn.reshape(W, -1)).all(-1)
    dh = torch.where(finite, dh, torch.full_like(dh, float("inf")))
    accept_prob = torch.exp(-dh.clamp(min=0.0))
    accept = torch.rand(W, dtype=torch.float64, device=dh.device) < accept_prob
    return (_where_batch(accept, qn, q), torch.where(accept, un, u), _where_batch(accept, gn, g),
            _where_batch(accept, auxn, aux), accept_prob, accept, finite, dh)


# ----------------------------------------------------------------------------------------------------------------
# the engine's named steps


def _adapted_metric(
    q: torch.Tensor, moments: list[Any], kind: str
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """From warm-up moments (count, sum, sum of squares or outer products): the regularised covariance, the map
    ``(mu, C)`` with ``q = mu + C u``, and the walkers' current positions ``q`` in ``u``."""
    count, total, sq = moments
    W, n = q.shape[0], total.numel()
    mean = total / count
    if kind == "dense" and count < 4 * n:
        logger.warning("hmc_walkers: %d warm-up positions are too few for a dense %d x %d mass matrix (need %d: more "
                       "walkers or warm-up steps); using its diagonal", count, n, n, 4 * n)
        kind, sq = "diag", sq.diagonal()
    if kind == "dense":
        cov = (sq - count * torch.outer(mean, mean)) / max(count - 1, 1)
        cov = count / (count + 5.0) * cov + 1e-3 * 5.0 / (count + 5.0) * torch.eye(n, dtype=torch.float64)
        chol = torch.linalg.cholesky(cov)
        flat = (q.reshape(W, n).to(torch.float64) - mean).T
        u = torch.linalg.solve_triangular(chol, flat, upper=False).T
        c = chol
    else:
        cov = (sq - count * mean.square()) / max(count - 1, 1)
        cov = count / (count + 5.0) * cov + 1e-3 * 5.0 / (count + 5.0)
        c = cov.sqrt()
        u = (q.reshape(W, n).to(torch.float64) - mean) / c
    dt = q.dtype
    return cov, (mean.to(dt), c.to(dt)), u.to(dt).reshape(q.shape)


class _Metric:
    r"""The walkers' coordinates :math:`v` and positions :math:`q = \mu + C v` (identity until adapted).

    Collects the positions of the middle half of the warm-up (``"diag"``/``"dense"``) and switches to the
    regularised covariance at its end.
    """

    def __init__(self, kind: str, n: int, warmup_steps: int) -> None:
        self.kind, self.n = kind, n
        self.precond: tuple[torch.Tensor, torch.Tensor] | None = None
        self.inverse_mass_matrix: torch.Tensor | None = None
        self.window = (warmup_steps // 4, warmup_steps - warmup_steps // 4) if kind != "unit" else (0, 0)
        self.moments: list[Any] = [0, torch.zeros(n, dtype=torch.float64), None]

    def to_q(self, v: torch.Tensor) -> torch.Tensor:
        if self.precond is None:
            return v
        mu, c = self.precond
        flat = v.reshape(v.shape[0], self.n)
        return (mu + (flat @ c.T if c.dim() == 2 else flat * c)).reshape(v.shape)

    def to_v(self, x: torch.Tensor) -> torch.Tensor:
        if self.precond is None:
            return x
        mu, c = self.precond
        flat = x.reshape(x.shape[0], self.n) - mu
        if c.dim() == 2:
            return torch.linalg.solve_triangular(c, flat.T, upper=False).T.reshape(x.shape)
        return (flat / c).reshape(x.shape)

    def observe(self, it: int, v: torch.Tensor) -> torch.Tensor | None:
        """Collect the positions of warm-up iteration ``it``; at the window's end adapt and return the walkers'
        new coordinates (else ``None``)."""
        if not self.window[0] <= it < self.window[1]:
            return None
        q = self.to_q(v)
        flat = q.reshape(q.shape[0], self.n).to(torch.float64)
        sq = flat.T @ flat if self.kind == "dense" else flat.square().sum(0)
        m = self.moments
        self.moments = [m[0] + q.shape[0], m[1] + flat.sum(0), sq if m[2] is None else m[2] + sq]
        if it != self.window[1] - 1:
            return None
        self.inverse_mass_matrix, self.precond, v_new = _adapted_metric(q, self.moments, self.kind)
        return v_new


class _StepSize:
    """The leapfrog step size: fixed, or dual averaging during warm-up (restarted when the metric changes)."""

    def __init__(self, step_size: float, adapt: bool, target: float, warmup_steps: int) -> None:
        self.eps = float(step_size)
        self.target = target
        self.adapter = DualAveraging(self.eps, target) if adapt and warmup_steps > 0 else None

    def end_warmup(self) -> None:
        if self.adapter is not None:
            self.eps = self.adapter.final

    def update(self, accept_prob: torch.Tensor) -> None:
        if self.adapter is not None:
            self.eps = self.adapter.update(float(accept_prob.mean()))

    def restart(self) -> None:
        if self.adapter is not None:
            self.adapter = DualAveraging(self.eps, self.target)


@dataclass
class _Walkers:
    """The walkers' state: coordinates ``v``, potential ``u``, its gradient ``g`` and the auxiliary output."""

    v: torch.Tensor
    u: torch.Tensor
    g: torch.Tensor
    aux: Any


def _independence_move(
    state: _Walkers, proposal: IndependenceProposal, metric: _Metric, u_grad: Callable[..., Any]
) -> torch.Tensor:
    r"""Every walker proposes :math:`q' \sim r` and moves there with probability
    :math:`\min(1, e^{-U(q') - \ln r(q') + U(q) + \ln r(q)})`; updates ``state`` and returns the acceptances."""
    W, q = state.v.shape[0], state.v
    qp = proposal.sample(W).to(device=q.device, dtype=q.dtype)
    vp = metric.to_v(qp)
    up, gp, auxp = u_grad(vp)
    log_ratio = (state.u.to(torch.float64) + proposal.log_prob(metric.to_q(state.v)).to(torch.float64)
                 - up.to(torch.float64) - proposal.log_prob(qp).to(torch.float64))
    ok = torch.isfinite(log_ratio) & torch.isfinite(qp.reshape(W, -1)).all(-1)
    log_u = torch.log(torch.rand(W, dtype=torch.float64, device=state.u.device))
    acc = ok & (log_u < log_ratio.nan_to_num(-math.inf))
    state.v, state.u = _where_batch(acc, vp, state.v), torch.where(acc, up, state.u)
    state.g, state.aux = _where_batch(acc, gp, state.g), _where_batch(acc, auxp, state.aux)
    return acc


@dataclass
class _Recorder:
    """The kept draws: one entry per ``thin`` sampling iterations (gradients and jumps summed in between)."""

    thin: int
    observe: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None
    keep_samples: bool
    keep_latent: bool
    max_energy_error: float
    rec: dict[str, list[torch.Tensor]] = field(
        default_factory=lambda: {k: [] for k in ("acc", "accd", "jump", "grads", "div", "u", "x", "z")})
    obs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    pending_grads: int = 0
    pending_jump: torch.Tensor | None = None

    def add(self, i: int, grads: int, jumped: torch.Tensor, step: tuple[torch.Tensor, ...], state: _Walkers,
            q: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Sampling iteration ``i`` (from 0) spent ``grads`` gradients; keep a draw every ``thin``-th one."""
        self.pending_grads += grads
        self.pending_jump = jumped if self.pending_jump is None else self.pending_jump | jumped
        if i % self.thin != self.thin - 1:
            return
        accept_prob, accept, finite, dh = step
        rec = self.rec
        rec["grads"].append(torch.full((accept.shape[0],), self.pending_grads, dtype=torch.int64))
        rec["jump"].append(self.pending_jump)
        self.pending_grads, self.pending_jump = 0, None
        rec["acc"].append(accept_prob)
        rec["accd"].append(accept)
        rec["div"].append(~finite | (dh > self.max_energy_error))
        rec["u"].append(state.u.to(torch.float64))
        if self.keep_samples:
            rec["x"].append(state.aux)
        if self.keep_latent:
            rec["z"].append(q(state.v))
        if self.observe is not None:
            for k, v in self.observe(state.aux).items():
                self.obs.setdefault(k, []).append(v)

    def arrays(self, jumps: bool) -> dict[str, Any]:
        rec = self.rec
        return {
            "samples": torch.stack(rec["x"], 1) if self.keep_samples else None,
            "latent": torch.stack(rec["z"], 1) if self.keep_latent else None,
            "observables": {k: torch.stack(v, 1) for k, v in self.obs.items()},
            "accept_prob": torch.stack(rec["acc"], 1),
            "accepted": torch.stack(rec["accd"], 1),
            "jump_accepted": torch.stack(rec["jump"], 1) if jumps else None,
            "diverging": torch.stack(rec["div"], 1),
            "potential": torch.stack(rec["u"], 1),
            "num_grad_evals": torch.stack(rec["grads"], 1),
        }


def _check_walker_args(mass_matrix: str, warmup_steps: int, independence: Any, independence_every: int,
                       step_size: float, num_samples: int, num_steps: int, thin: int, walkers: int) -> None:
    if independence is not None and independence_every < 1:
        raise ValueError(f"independence_every must be >= 1 (trajectories between independence moves), "
                         f"got {independence_every}")
    if mass_matrix not in ("unit", "diag", "dense"):
        raise ValueError(f"mass_matrix must be 'unit', 'diag' or 'dense', got {mass_matrix!r}")
    if mass_matrix != "unit" and warmup_steps < 20:
        raise ValueError(f"adapting the {mass_matrix} mass matrix needs warmup_steps >= 20, got {warmup_steps}")
    check_sampler_sizes("hmc_walkers", step_size, num_samples=num_samples, num_steps=num_steps, thin=thin,
                        num_walkers=walkers)


def hmc_walkers(
    potential: Potential,
    init: torch.Tensor,
    num_samples: int,
    warmup_steps: int = 0,
    step_size: float = 0.2,
    num_steps: int = 10,
    adapt_step_size: bool = False,
    target_accept_prob: float = 0.85,
    thin: int = 1,
    observe: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None,
    keep_samples: bool = True,
    keep_latent: bool = False,
    max_energy_error: float = 1000.0,
    progress: bool = False,
    mass_matrix: str = "unit",
    independence: IndependenceProposal | None = None,
    independence_every: int = 1,
) -> dict[str, Any]:
    r"""Vectorised HMC for ``W`` independent walkers of one potential (leapfrog, optional adapted mass matrix).

    Each iteration draws :math:`p \sim \mathcal N(0, I)`, runs ``num_steps`` leapfrog steps of size :math:`\epsilon`
    on :math:`H = U(q) + \tfrac12|p|^2` for all walkers at once, and accepts walker-wise with probability
    :math:`\min(1, e^{-\Delta H})` (non-finite :math:`\Delta H` is rejected and counted as divergent, as is
    :math:`\Delta H > ` ``max_energy_error``). The gradient at the current point is cached, so an iteration costs
    ``num_steps`` gradient evaluations per walker. With ``adapt_step_size`` one step size shared by all walkers is
    tuned during warm-up by dual averaging on the walker-mean acceptance probability (Hoffman & Gelman 2014).

    With ``mass_matrix="dense"`` (or ``"diag"``) the walkers' positions in the middle half of the warm-up give a
    covariance :math:`\Sigma` (regularised as in Stan: :math:`\frac{n}{n+5}\Sigma + 10^{-3}\frac{5}{n+5} I`,
    :math:`n` = walkers × iterations), and the rest of the run moves in :math:`u` with
    :math:`q = \mu + C u`, :math:`CC^\top = \Sigma` (Cholesky factor, or the standard deviations): HMC with
    inverse mass matrix :math:`\Sigma`. The step size is adapted afresh after the change (dual averaging restarts).
    Memory :math:`O(N^2)` for the dense form, one extra gradient evaluation per walker. With fewer than :math:`4N`
    positions a dense :math:`\Sigma` would be noise: the diagonal is used instead, with a warning.

    With an ``independence`` proposal :math:`r`, every ``independence_every``-th trajectory (warm-up included) is
    followed by an independence Metropolis move: each walker draws :math:`q' \sim r` and moves there with
    probability :math:`\min\big(1, e^{-U(q') - \ln r(q') + U(q) + \ln r(q)}\big)`. Both moves leave
    :math:`e^{-U}` invariant, so the mixture does too, whatever :math:`r` is; the HMC moves reach states that
    :math:`r` rarely proposes, which an independence sampler alone cannot do in a practical run. Each move costs
    one gradient evaluation per walker (the cached gradient at the proposal), counted in the returned figures.

    Args:
        potential: ``q`` ``(W, *shape)`` → ``(U(q)`` ``(W,)``, ``aux(q)``): the dimensionless potential and an
            auxiliary tensor returned with it (the physical configuration for latent walkers; ``q`` itself
            otherwise), so nothing is recomputed to record draws.
        init: starting points ``(W, *shape)``.
        num_samples: recorded iterations (after ``warmup_steps``), each ``thin`` iterations apart.
        warmup_steps: iterations run before recording (step-size adaptation, if on, happens here).
        step_size: leapfrog step size :math:`\epsilon` (the initial one when adapted).
        num_steps: leapfrog steps per iteration.
        adapt_step_size: tune one shared step size during warm-up by dual averaging.
        target_accept_prob: walker-mean acceptance probability that the adaptation aims at. The default 0.85 is
            higher than the textbook 0.65 because the efficiency of latent walkers falls steeply below about 0.8
            (``benchmarks/walker_tuning.py``).
        thin: iterations between recorded draws.
        observe: ``aux`` ``(W, ...)`` → dict of ``(W,)`` tensors recorded at every kept draw.
        keep_samples: keep ``aux`` per draw.
        keep_latent: keep ``q`` per draw.
        max_energy_error: a trajectory with :math:`\Delta H` above this is rejected and counted as divergent.
        progress: a tqdm bar over iterations (warm-up included) showing the mean acceptance and step size.
        mass_matrix: ``"unit"``, or ``"diag"``/``"dense"`` adapted during warm-up (needs ``warmup_steps >= 20``).
        independence: proposal of the interleaved independence Metropolis moves (``None``: HMC only).
        independence_every: trajectories between independence moves (1: after every trajectory).

    Returns:
        dict with ``samples`` / ``latent`` ``(W, num_samples, ...)`` (or ``None``), ``observables``,
        ``accept_prob``, ``accepted``, ``jump_accepted`` (whether an independence move was accepted since the
        previous draw, ``(W, num_samples)``; ``None`` without ``independence``), ``num_grad_evals`` (gradient
        evaluations spent on each draw, ``(W, num_samples)``), ``diverging``, ``potential``
        ``(W, num_samples)``, ``step_size`` (final), ``step_size_history`` (per iteration),
        ``warmup_grad_evals``, ``sample_seconds``, ``inverse_mass_matrix`` (float64 :math:`\Sigma`, ``(N, N)``
        or its diagonal ``(N,)``; ``None`` for the unit mass).

    Raises:
        NonFiniteError: a walker starts at a NaN/inf point or potential.
        SamplerSettingsError: a step size that is not > 0, or ``num_samples``, ``num_steps``, ``thin`` below 1.
        ValueError: an unknown ``mass_matrix``, one to adapt with fewer than 20 warm-up steps, or
            ``independence_every < 1``.
    """
    _check_walker_args(mass_matrix, warmup_steps, independence, independence_every, step_size, num_samples,
                       num_steps, thin, init.shape[0])
    q0 = init.detach().clone()
    W = q0.shape[0]
    metric = _Metric(mass_matrix, math.prod(q0.shape[1:]), warmup_steps)

    def u_grad(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return value_and_grad(lambda w: potential(metric.to_q(w)), v)

    state = _Walkers(q0, *u_grad(q0))
    check_start(q0, state.u, "hmc_walkers")
    eps = _StepSize(step_size, adapt_step_size, target_accept_prob, warmup_steps)
    recorder = _Recorder(thin, observe, keep_samples, keep_latent, max_energy_error)
    extra_grads, warmup_jumps = 0, 0
    no_jump = torch.zeros(W, dtype=torch.bool, device=q0.device)
    eps_hist: list[float] = []
    t_sample = time.perf_counter()
    bar = tqdm(total=warmup_steps + num_samples * thin, disable=not progress, desc="hmc walkers", leave=False)
    for it in range(warmup_steps + num_samples * thin):
        bar.update(1)
        if it == warmup_steps:
            eps.end_warmup()
            t_sample = time.perf_counter()
        state.v, state.u, state.g, state.aux, *step = hmc_step(
            u_grad, state.v, state.u, state.g, state.aux, eps.eps, num_steps)
        jumped = no_jump
        if independence is not None and it % independence_every == independence_every - 1:
            jumped = _independence_move(state, independence, metric, u_grad)
            warmup_jumps += it < warmup_steps
        eps_hist.append(eps.eps)
        if progress and it % 10 == 0:
            bar.set_postfix(acc=f"{float(step[0].mean()):.2f}", eps=f"{eps.eps:.3g}", refresh=False)
        if it >= warmup_steps:
            grads = num_steps + int(jumped is not no_jump)
            recorder.add(it - warmup_steps, grads, jumped, tuple(step), state, metric.to_q)
            continue
        eps.update(step[0])
        v_new = metric.observe(it, state.v)
        if v_new is not None:  # switch to the adapted metric; the step size is adapted afresh
            state = _Walkers(v_new, *u_grad(v_new))
            extra_grads += 1
            eps.restart()
    bar.close()
    return {
        **recorder.arrays(independence is not None),
        "step_size": eps.eps,
        "step_size_history": torch.tensor(eps_hist, dtype=torch.float64),
        "warmup_grad_evals": 1 + warmup_steps * num_steps + extra_grads + warmup_jumps,
        "sample_seconds": time.perf_counter() - t_sample,
        "inverse_mass_matrix": metric.inverse_mass_matrix,
    }


def _walker_result(
    out: dict[str, Any], space: str, energy: Energy, seconds: float, z2_sharpness: float | None = None
) -> SamplingResult:
    W, D = out["accept_prob"].shape
    return SamplingResult(
        method="hmc_walkers",
        space=space,
        samples=out["samples"],
        latent=out["latent"],
        observables=out["observables"],
        accept_prob=out["accept_prob"],
        accepted=out["accepted"],
        diverging=out["diverging"],
        step_size=torch.full((W, D), out["step_size"], dtype=torch.float64),
        num_grad_evals=out["num_grad_evals"],
        warmup_grad_evals=torch.full((W,), out["warmup_grad_evals"], dtype=torch.int64),
        renormalized_energy=out["potential"] if space == "latent" else None,
        z2_sharpness=z2_sharpness,
        jump_accepted=out["jump_accepted"],
        seconds=seconds,
        sample_seconds=out["sample_seconds"],
        energy=energy,
    )


def latent_hmc_walkers(
    energy: Energy,
    guide_or_flow: Any,
    num_walkers: int = 256,
    num_samples: int = 200,
    warmup_steps: int = 50,
    step_size: float = 0.2,
    num_steps: int = 10,
    adapt_step_size: bool = False,
    target_accept_prob: float = 0.85,
    thin: int = 1,
    init: Any = None,
    keep_samples: bool = True,
    keep_latent: bool = False,
    z2_symmetric: bool | None = None,
    mass_matrix: str = "unit",
    flow_jump_every: int = 0,
    progress: bool = False,
) -> SamplingResult:
    r"""Many-walker HMC on the renormalized energy :math:`\beta E_{\rm eff}(z)` (NeuralRG's latent HMC).

    All walkers move in one batch through the flow; the default is the paper's 10 leapfrog steps of 0.2. Draws are
    mapped to physical space by the same forward pass that computes the potential. The arguments not listed below
    mean what they mean in :func:`hmc_walkers`.

    Args:
        energy: physical energy.
        guide_or_flow: trained FlowGuide, flow distribution or flow.
        num_walkers: walkers (one ArviZ chain each).
        init: latent starts ``(num_walkers, *flow.event_shape)`` (default standard normal: :math:`g(z_0) \sim q`).
        keep_samples: keep physical draws ``(W, D, *event_shape)`` (memory: W·D·N numbers); observables are
            always recorded.
        keep_latent: keep the latent draws ``(W, D, *flow.event_shape)``.
        z2_symmetric: for an energy with :math:`E(-x) = E(x)`, walk on :math:`\beta E_{\rm eff}(z) - \ln 2h(g(z))`
            and give each draw a random sign: the walkers stay in the sector the flow covers instead of crossing
            into the other one, far out in latent space where the flow is poor, and the signed draws follow
            :math:`p` exactly (:mod:`pyro_nrg.infer.mcmc.sector`); ``None`` follows the guide (on for a
            :math:`Z_2`-symmetrized one).
        mass_matrix: ``"unit"`` (the paper's), or ``"dense"``/``"diag"`` adapted from the walkers' warm-up
            positions (:func:`hmc_walkers`): with the sector function on, the latent covariance within a sector
            is close to the identity except for a few wide directions, which a dense metric evens out.
        flow_jump_every: if > 0, after every ``flow_jump_every``-th trajectory each walker also proposes a fresh
            latent :math:`z' \sim \mathcal N(0, I)`, i.e. an independent flow draw :math:`x' = g(z') \sim q`, and
            accepts it with the flow-MH probability :math:`\min(1, w(x')/w(x))`, :math:`\ln w = -\beta E - \ln q`
            (:func:`~pyro_nrg.infer.flow_mh`): flow-augmented HMC (Gabrié, Rotskoff & Vanden-Eijnden, PNAS 119,
            e2109420119 (2022)). The jumps decorrelate the walkers in one step where the flow is good; the HMC
            moves still reach what the flow misses, where flow-MH alone stays biased in any practical run. One
            extra gradient evaluation per jump and walker; the result's ``jump_accepted`` records the outcomes.
            Off by default: where the slow mode is the passage into the configurations the flow misses, jumps do
            not speed it up (``benchmarks/sampling.py``, the ``latent_hmc_flow_jumps`` row).

    Returns:
        :class:`~pyro_nrg.infer.mcmc.results.SamplingResult` (``renormalized_energy`` = the walkers' potential of
        each draw).

    Raises:
        EventShapeError: a flow for another lattice than the energy's.
        NotSymmetricError: ``z2_symmetric`` with an energy that is not :math:`Z_2`-symmetric.
        SamplerSettingsError: a step size that is not > 0, or ``num_walkers``, ``num_samples`` below 1.
        ValueError: ``flow_jump_every < 0``.
    """
    if flow_jump_every < 0:
        raise ValueError(f"flow_jump_every must be >= 0 (0: no flow jumps), got {flow_jump_every}")
    check_sampler_sizes("latent_hmc_walkers", step_size, num_walkers=num_walkers, num_samples=num_samples)
    flow = flow_of(guide_or_flow)
    check_flow_fits(flow, energy)
    fes = flow_event_shape(flow, energy)
    t0 = time.perf_counter()
    z0 = chain_inits(init, num_walkers, fes, "latent")
    if z0 is None:
        z0 = torch.randn(num_walkers, *fes, dtype=param_dtype(flow))

    with frozen(flow), energy.unvalidated():
        sector = resolve_sector(energy, guide_or_flow, flow, z2_symmetric)

        def potential(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x, ldj = to_physical(flow, energy, z)
            if sector is None:
                return energy.action(x) - ldj, x
            # aux: the draw with a fresh random sign (an independent label of each proposal, kept on rejection)
            return energy.action(x) - ldj - sector.log_weight(x), sector.random_sign(x.detach())

        jumps = None
        if flow_jump_every > 0:
            jumps = IndependenceProposal(
                sample=lambda w: torch.randn(w, *fes, dtype=z0.dtype, device=z0.device),
                log_prob=lambda z: -0.5 * z.reshape(z.shape[0], -1).to(torch.float64).square().sum(-1),
            )
        out = hmc_walkers(
            potential, z0, num_samples, warmup_steps, step_size, num_steps, adapt_step_size, target_accept_prob,
            thin, energy.observables, keep_samples, keep_latent, progress=progress,
            mass_matrix=mass_matrix, independence=jumps, independence_every=max(1, flow_jump_every),
        )
    kappa = None if sector is None else sector.sharpness
    return _walker_result(out, "latent", energy, time.perf_counter() - t0, kappa)


def physical_hmc_walkers(
    energy: Energy,
    num_walkers: int = 256,
    num_samples: int = 200,
    warmup_steps: int = 50,
    step_size: float = 0.2,
    num_steps: int = 10,
    adapt_step_size: bool = False,
    target_accept_prob: float = 0.85,
    thin: int = 1,
    init: Any = None,
    keep_samples: bool = True,
    mass_matrix: str = "unit",
    progress: bool = False,
) -> SamplingResult:
    r"""Many-walker HMC on :math:`\beta E(x)` in physical space: the comparison for :func:`latent_hmc_walkers`.

    The arguments not listed below mean what they mean in :func:`latent_hmc_walkers` and :func:`hmc_walkers`.

    Args:
        energy: physical energy.
        init: starts ``(num_walkers, *event_shape)`` or a distribution to draw them from (e.g. a trained flow's
            ``guide.distribution()``); default standard normal.
        mass_matrix: ``"unit"``, or ``"dense"``/``"diag"`` adapted during warm-up (:func:`hmc_walkers`).

    Raises:
        SamplerSettingsError: a step size that is not > 0, or ``num_walkers``, ``num_samples`` below 1.
    """
    check_sampler_sizes("physical_hmc_walkers", step_size, num_walkers=num_walkers, num_samples=num_samples)
    es = tuple(energy.event_shape)
    t0 = time.perf_counter()
    x0 = chain_inits(init, num_walkers, es, "physical")
    if x0 is None:
        x0 = torch.randn(num_walkers, *es, dtype=energy.dtype)

    def potential(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return energy.action(x), x

    with energy.unvalidated():
        out = hmc_walkers(
            potential, x0, num_samples, warmup_steps, step_size, num_steps, adapt_step_size, target_accept_prob,
            thin, energy.observables, keep_samples, False, progress=progress, mass_matrix=mass_matrix,
        )
    return _walker_result(out, "physical", energy, time.perf_counter() - t0)
