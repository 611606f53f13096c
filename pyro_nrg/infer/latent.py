r"""Sampling in the latent space of a trained NeuralRG flow: the renormalized energy, NeuTra NUTS/HMC and walkers.

A trained flow :math:`x = g(z)` (latent → physical) pulls the Boltzmann density :math:`p(x) \propto e^{-\beta E(x)}`
back to latent space,

.. math:: p_z(z) = p(g(z))\,\Big|\det\frac{\partial g}{\partial z}\Big| \;\propto\; e^{-\beta E_{\rm eff}(z)},
    \qquad E_{\rm eff}(z) = E(g(z)) - T\ln\Big|\det\frac{\partial g}{\partial z}\Big| ,

the *renormalized energy* of Li & Wang, PRL 121, 260601 (2018), Eq. (5). Sampling :math:`z \sim p_z` and mapping
:math:`x = g(z)` is exact (no Gaussian enters :math:`p_z`); a well-trained flow makes :math:`\beta E_{\rm eff}(z)`
close to :math:`\tfrac12|z|^2 + \text{const}` (independent unit Gaussians), so Hamiltonian Monte Carlo there mixes
far faster than in physical space (NeuTra: Hoffman et al., arXiv:1903.03704 (2019)). The residual
:math:`\beta E_{\rm eff}(z) - \tfrac12|z|^2 = -\ln w(g(z)) + \text{const}` is the importance log-weight, a
measure of the flow's error (:func:`renormalized_energy` with ``subtract_gaussian=True``).

Three samplers, all returning a :class:`SamplingResult` with one chain per chain/walker (``(chains, draws, ...)``),
which :func:`pyro_nrg.diagnostics.to_inference_data` turns into ArviZ ``InferenceData``:

* :func:`latent_nuts` — Pyro's :class:`~pyro.infer.reparam.NeuTraReparam` with the trained
  :class:`~pyro_nrg.infer.FlowGuide`, then ``MCMC(NUTS|HMC)`` on the ``<site>_shared_latent`` site; every draw is
  mapped back by the guide's transform (what ``neutra.transform_sample`` does). :func:`physical_nuts` is the
  baseline on the same energy through the same API (flat samplable site plus ``pyro.factor``, see
  :func:`~pyro_nrg.infer.boltzmann_model`).
* :class:`RenormalizedPotential` — :math:`\beta E_{\rm eff}` as a ``potential_fn`` for Pyro's ``HMC``/``NUTS``
  (``initial_params`` path), counting its calls.
* :func:`latent_hmc_walkers` / :func:`physical_hmc_walkers` — hundreds of HMC walkers in one batch (Pyro runs
  chains one after another and has no vectorised chains): fixed leapfrog step size and number of steps (the
  NeuralRG paper: 10 steps of 0.2), optional dual-averaging step-size adaptation during warm-up.

Example:
    >>> from pyro_nrg.energies import IsingRelaxed
    >>> from pyro_nrg.flows import neural_rg
    >>> from pyro_nrg.infer import distill
    >>> energy = IsingRelaxed(4, 3.0)
    >>> guide = distill(energy, neural_rg(L=4), steps=300, batch=256, lr=5e-3, progress=False).guide  # doctest: +SKIP
    >>> res = latent_nuts(energy, guide, num_samples=500, warmup_steps=200, num_chains=2)  # doctest: +SKIP
    >>> res.samples.shape                                                                   # doctest: +SKIP
    torch.Size([2, 500, 4, 4])
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import HMC, MCMC, NUTS
from pyro.infer.mcmc.util import initialize_model
from pyro.infer.reparam import NeuTraReparam, TransformReparam
from tqdm.auto import tqdm

from ..distributions import FlowDistribution, Z2Symmetrized
from ..errors import EventShapeError, NonFiniteError
from .model import FlowGuide, boltzmann_model, boltzmann_site
from .sector import Z2Sector, resolve_sector

__all__ = [
    "SamplingResult",
    "RenormalizedPotential",
    "renormalized_energy",
    "latent_nuts",
    "physical_nuts",
    "hmc_walkers",
    "IndependenceProposal",
    "latent_hmc_walkers",
    "physical_hmc_walkers",
    "latent_reparam",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# result container


@dataclass
class SamplingResult:
    r"""Draws and diagnostics of one sampler run, one chain per chain or walker.

    Attributes:
        method: ``"nuts"``, ``"hmc"`` or ``"hmc_walkers"``.
        space: ``"latent"`` or ``"physical"``.
        samples: physical configurations ``(chains, draws, *event_shape)`` (``None`` if not kept).
        latent: latent draws ``(chains, draws, *latent_shape)`` for latent-space runs (``None`` otherwise or if not
            kept); NeuTra runs keep Pyro's flat latent vector ``(chains, draws, N)``.
        observables: float64 tensors ``(chains, draws)``: ``m``, ``abs_m``, ``m2``, ``energy_per_site``,
            ``physical_energy`` (see :func:`pyro_nrg.diagnostics.observables`).
        accept_prob: Metropolis acceptance probability of each transition, ``(chains, draws)`` (for NUTS the mean
            over the tree, as in Pyro).
        accepted: whether each transition moved (walkers only; ``None`` for NUTS).
        jump_accepted: for walkers run with flow jumps (``flow_jump_every``), whether a flow jump was accepted since
            the previous draw, ``(chains, draws)`` (``False`` where none was made); ``None`` otherwise.
        diverging: divergent transitions ``(chains, draws)`` (energy error above 1000 or non-finite).
        step_size: leapfrog step size used for each draw ``(chains, draws)``.
        num_grad_evals: potential-gradient evaluations spent on each draw ``(chains, draws)`` (after warm-up).
        warmup_grad_evals: gradient evaluations spent in set-up and warm-up, ``(chains,)``.
        renormalized_energy: the latent potential of each draw, ``(chains, draws)`` (latent runs only):
            :math:`\beta E_{\rm eff}(z)`, minus :math:`\ln 2h(g(z))` when the run used the :math:`Z_2` sector
            function.
        z2_sharpness: :math:`\kappa` of the sector function :math:`h(x) = \sigma(\kappa\bar x)` the run targeted
            :math:`2h\,p` with (its draws then carry random signs, :mod:`pyro_nrg.infer.sector`); ``None`` without.
        seconds: wall time of the whole run; sample_seconds: of the sampling phase (after warm-up).
        energy: the energy sampled (not serialised).
    """

    method: str
    space: str
    samples: torch.Tensor | None
    latent: torch.Tensor | None
    observables: dict[str, torch.Tensor]
    accept_prob: torch.Tensor
    accepted: torch.Tensor | None
    diverging: torch.Tensor
    step_size: torch.Tensor
    num_grad_evals: torch.Tensor
    warmup_grad_evals: torch.Tensor
    renormalized_energy: torch.Tensor | None = None
    z2_sharpness: float | None = None
    jump_accepted: torch.Tensor | None = None
    seconds: float = 0.0
    sample_seconds: float = 0.0
    energy: Any = field(default=None, repr=False)

    @property
    def num_chains(self) -> int:
        """Number of chains (walkers)."""
        return int(self.accept_prob.shape[0])

    @property
    def num_draws(self) -> int:
        """Draws per chain (after warm-up and thinning)."""
        return int(self.accept_prob.shape[1])

    @property
    def total_grad_evals(self) -> int:
        """Gradient evaluations of the sampling phase, summed over chains."""
        return int(self.num_grad_evals.sum())

    @property
    def acceptance_rate(self) -> float:
        """Mean acceptance probability over all draws."""
        return float(self.accept_prob.to(torch.float64).mean())

    def to_inference_data(self, **kwargs: Any) -> Any:
        """Shortcut for :func:`pyro_nrg.diagnostics.to_inference_data` (``az.InferenceData``)."""
        from ..diagnostics import to_inference_data

        return to_inference_data(self, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# flows, shapes, the renormalized energy


def _flow_of(guide_or_flow: Any) -> Any:
    """The latent → physical transform inside a FlowGuide, a (Z₂-symmetrized) FlowDistribution, or a flow."""
    obj = guide_or_flow
    if isinstance(obj, FlowGuide):
        return obj.flow
    if isinstance(obj, Z2Symmetrized):
        obj = obj.base
    if isinstance(obj, FlowDistribution):
        return obj.flow
    if isinstance(obj, torch.distributions.Transform):
        return obj
    raise TypeError(
        f"expected a FlowGuide, a FlowDistribution or a flow transform (latent -> physical), got {type(obj).__name__}: "
        "pass result.guide from pyro_nrg.infer.distill, or the flow itself"
    )


def _flow_event_shape(flow: Any, energy: Any) -> tuple[int, ...]:
    es = getattr(flow, "event_shape", None)
    return tuple(es) if es is not None else tuple(energy.event_shape)


def _forward(flow: Any, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x = g(z)`` and ``ln|det dg/dz|`` (shape ``batch``) from one pass where the flow supports it."""
    if hasattr(flow, "forward_and_log_det"):
        return flow.forward_and_log_det(z)
    x = flow(z)
    return x, flow.log_abs_det_jacobian(z, x)


def _as_flow_event(flow: Any, energy: Any, z: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """Reshape ``z`` (flow event shape, or flat ``(..., N)``) to the flow's event shape; return it and the batch."""
    fes = _flow_event_shape(flow, energy)
    k = len(fes)
    if z.dim() >= k and tuple(z.shape[z.dim() - k:]) == fes:
        return z, z.shape[: z.dim() - k]
    n = math.prod(fes)
    if z.dim() >= 1 and z.shape[-1] == n:
        batch = z.shape[:-1]
        return z.reshape(*batch, *fes), batch
    raise EventShapeError(
        f"latent tensor of shape {tuple(z.shape)} fits neither the flow's event shape {fes} nor a flat ({n},) "
        f"vector: pass z of shape (*batch, {', '.join(map(str, fes))}) or (*batch, {n})"
    )


def _to_physical(flow: Any, energy: Any, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (``(*batch, *energy.event_shape)``) and ``ln|det|`` (``batch``) for latent ``z``."""
    zf, batch = _as_flow_event(flow, energy, z)
    x, ldj = _forward(flow, zf)
    return x.reshape(*batch, *energy.event_shape), ldj.reshape(batch)


def renormalized_energy(
    energy: Any, guide_or_flow: Any, z: torch.Tensor, subtract_gaussian: bool = False, return_physical: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""The renormalized (latent) energy :math:`E_{\rm eff}(z) = E(g(z)) - T\ln|\det \partial g/\partial z|`.

    :math:`e^{-\beta E_{\rm eff}}` is the pullback of the Boltzmann density to latent space (Li & Wang 2018, Eq. 5),
    the target of latent-space HMC. Differentiable in ``z`` (and in the flow's parameters).

    Args:
        energy: the physical energy (``energy.energy(x)`` of shape ``batch``).
        guide_or_flow: a :class:`~pyro_nrg.infer.FlowGuide`, a :class:`~pyro_nrg.distributions.FlowDistribution`
            (optionally :class:`~pyro_nrg.distributions.Z2Symmetrized`) or the flow itself.
        z: latents of shape ``(*batch, *flow.event_shape)`` or flat ``(*batch, N)``.
        subtract_gaussian: return :math:`E_{\rm eff}(z) - \tfrac T2 |z|^2` instead: constant for a perfect flow,
            equal to :math:`-T\ln w(g(z))` minus :math:`T(\tfrac N2\ln 2\pi)` (``w`` = importance weight).
        return_physical: also return ``x = g(z)`` (shape ``(*batch, *energy.event_shape)``).

    Returns:
        :math:`E_{\rm eff}` of shape ``batch`` (and ``x`` if ``return_physical``).
    """
    flow = _flow_of(guide_or_flow)
    x, ldj = _to_physical(flow, energy, z)
    e_eff = energy.energy(x) - energy.temperature * ldj
    if subtract_gaussian:
        zf, batch = _as_flow_event(flow, energy, z)
        e_eff = e_eff - 0.5 * energy.temperature * zf.reshape(*batch, -1).square().sum(-1)
    return (e_eff, x) if return_physical else e_eff


class RenormalizedPotential:
    r""":math:`\beta E_{\rm eff}(z)` as a Pyro ``potential_fn`` (``HMC``/``NUTS`` with ``initial_params``).

    Pyro calls it with a dict ``{site: z}`` and expects a scalar; ``z`` may carry leading batch dimensions (they are
    summed). Every call is counted in :attr:`num_calls` — Pyro's integrator calls the potential once per gradient.

    Args:
        energy: physical energy.
        guide_or_flow: trained :class:`~pyro_nrg.infer.FlowGuide`, flow distribution or flow.
        site: name of the latent variable in the params dict.

    Example:
        >>> pot = RenormalizedPotential(energy, guide)                                   # doctest: +SKIP
        >>> mcmc = MCMC(NUTS(potential_fn=pot), 500, warmup_steps=200,
        ...             initial_params=pot.initial_params())                               # doctest: +SKIP
        >>> mcmc.run(); x = pot.to_physical(mcmc.get_samples()["z"])                        # doctest: +SKIP
    """

    def __init__(self, energy: Any, guide_or_flow: Any, site: str = "z") -> None:
        self.energy = energy
        self.flow = _flow_of(guide_or_flow)
        self.site = site
        self.event_shape = _flow_event_shape(self.flow, energy)
        self.num_calls = 0

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        self.num_calls += 1
        z = params[self.site]
        x, ldj = _to_physical(self.flow, self.energy, z)
        return (self.energy.action(x) - ldj).sum()

    def initial_params(self, num_chains: int | None = None) -> dict[str, torch.Tensor]:
        """Standard-normal starting latents: ``(*event_shape)`` or ``(num_chains, *event_shape)`` (Pyro's layout)."""
        p = next(iter(self.flow.parameters()), None) if hasattr(self.flow, "parameters") else None
        dtype = p.dtype if p is not None else torch.get_default_dtype()
        shape = self.event_shape if num_chains is None else (num_chains, *self.event_shape)
        return {self.site: torch.randn(shape, dtype=dtype)}

    @torch.no_grad()
    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent draws ``(*batch, *event_shape)`` to physical configurations ``(*batch, *energy.event_shape)``."""
        return _to_physical(self.flow, self.energy, z)[0]


# ----------------------------------------------------------------------------------------------------------------
# helpers shared by the samplers


@contextlib.contextmanager
def _frozen(module: Any) -> Iterator[None]:
    """Temporarily stop ``requires_grad`` on a module's parameters (sampling needs gradients in z only)."""
    params = [p for p in module.parameters()] if hasattr(module, "parameters") else []
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)


@contextlib.contextmanager
def _no_validation(energy: Any) -> Iterator[None]:
    """Let a diverging trajectory produce inf/NaN energies (rejected) instead of raising mid-trajectory."""
    old = getattr(energy, "validate", None)
    try:
        if old is not None:
            energy.validate = False
        yield
    finally:
        if old is not None:
            energy.validate = old


def _param_dtype(module: Any) -> torch.dtype:
    p = next(iter(module.parameters()), None) if hasattr(module, "parameters") else None
    return p.dtype if p is not None else torch.get_default_dtype()


def _energy_dtype(energy: Any) -> torch.dtype:
    """The floating dtype of an energy's buffers (``energy.double()`` makes it float64), else torch's default."""
    for b in energy.buffers() if hasattr(energy, "buffers") else ():
        if b.is_floating_point():
            return b.dtype
    return torch.get_default_dtype()


def _chain_inits(init: Any, num: int, shape: tuple[int, ...], what: str) -> torch.Tensor | None:
    """``init`` as a ``(num, *shape)`` tensor (broadcasting a single configuration), or ``None``."""
    if init is None:
        return None
    if isinstance(init, torch.distributions.Distribution):
        return init.sample((num,)).detach()
    t = torch.as_tensor(init).detach()
    n = math.prod(shape)
    if tuple(t.shape) == shape or (t.dim() == 1 and t.numel() == n):
        return t.reshape(shape).expand(num, *shape).clone()
    if t.shape[0] == num and t[0].numel() == n:
        return t.reshape(num, *shape).clone()
    raise EventShapeError(
        f"{what} init has shape {tuple(t.shape)}; expected {shape} or ({num}, {', '.join(map(str, shape))}) "
        f"(one start per chain/walker)"
    )


def _check_start(values: torch.Tensor, potential: torch.Tensor, what: str) -> None:
    """Refuse a start point whose coordinates or potential energy are NaN/inf, before any sampling."""
    bad_x = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(-1)
    bad_u = ~torch.isfinite(potential.reshape(-1))
    bad = (bad_x | bad_u).nonzero().reshape(-1).tolist()
    if bad:
        raise NonFiniteError(
            f"{what}: start point(s) of chain/walker {bad[:10]} have NaN/inf coordinates or energy; sampling was not "
            "started. Pass finite starting values (init=None starts from flow or standard-normal draws), or check "
            "the energy/flow at that configuration"
        )


class _CountingPotential:
    """Wrap a Pyro ``potential_fn`` and count its calls (one per gradient in Pyro's integrator)."""

    def __init__(self, fn: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> None:
        self.fn = fn
        self.num_calls = 0

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        self.num_calls += 1
        return self.fn(params)


class _Recorder:
    """Pyro ``MCMC`` ``hook_fn``: per-draw acceptance, divergence, step size and gradient count.

    Pyro 1.9 keeps only a running mean of the acceptance probability (``kernel._mean_accept_prob``, restarted after
    warm-up) and the list of divergent draw indices; the per-draw values are recovered from their increments.
    """

    def __init__(self, counter: _CountingPotential) -> None:
        self.counter = counter
        self.prev_mean = 0.0
        self.prev_div = 0
        self.last_count = 0
        self.warmup_count = 0
        self.t_sample_start: float | None = None
        self.t_prev = time.perf_counter()  # time of the previous hook: the end of warm-up for the first draw
        self.rows: list[tuple[float, bool, float, int]] = []

    def __call__(self, kernel: Any, params: Any, stage: str, i: int) -> None:
        t = int(getattr(kernel, "_t", 0))
        warm = int(getattr(kernel, "_warmup_steps", 0) or 0)
        mean = float(getattr(kernel, "_mean_accept_prob", float("nan")))
        n = t - warm if t > warm else t
        acc = mean if n <= 1 else mean * n - self.prev_mean * (n - 1)
        self.prev_mean = mean
        count = self.counter.num_calls
        if stage.startswith("Warmup"):
            self.warmup_count = count
            self.last_count = count
            self.t_prev = time.perf_counter()
            return
        if self.t_sample_start is None:
            self.t_sample_start = self.t_prev
        n_div = len(getattr(kernel, "_divergences", []))
        div = n_div > self.prev_div
        self.prev_div = n_div
        self.rows.append((min(1.0, max(0.0, acc)), div, float(kernel.step_size), count - self.last_count))
        self.last_count = count


def _run_pyro_chains(
    potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    transforms: dict[str, Any],
    inits: Sequence[dict[str, torch.Tensor]],
    key: str,
    kernel: str,
    num_samples: int,
    warmup_steps: int,
    step_size: float,
    num_steps: int | None,
    adapt_step_size: bool,
    adapt_mass_matrix: bool,
    full_mass: bool,
    target_accept_prob: float,
    max_tree_depth: int,
    progress: bool,
) -> dict[str, Any]:
    """Run one Pyro ``MCMC`` per chain (sequential, as Pyro does on few cores) and collect per-draw statistics."""
    if kernel not in ("nuts", "hmc"):
        raise ValueError(f"kernel must be 'nuts' or 'hmc', got {kernel!r}")
    draws, acc, div, eps, grads, warm_grads, t_sample = [], [], [], [], [], [], 0.0
    for init in inits:
        counter = _CountingPotential(potential_fn)
        common = dict(
            potential_fn=counter,
            step_size=step_size,
            adapt_step_size=adapt_step_size,
            adapt_mass_matrix=adapt_mass_matrix,
            full_mass=full_mass,
            target_accept_prob=target_accept_prob,
            transforms=transforms,
        )
        if kernel == "nuts":
            k = NUTS(max_tree_depth=max_tree_depth, **common)
        else:
            k = HMC(num_steps=num_steps or 10, **common)
        rec = _Recorder(counter)
        mcmc = MCMC(
            k,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            initial_params=init,
            transforms=transforms,
            hook_fn=rec,
            disable_progbar=not progress,
        )
        mcmc.run()
        t_end = time.perf_counter()
        t_sample += t_end - (rec.t_sample_start or t_end)
        draws.append(mcmc.get_samples()[key].detach())
        rows = rec.rows
        acc.append(torch.tensor([r[0] for r in rows], dtype=torch.float64))
        div.append(torch.tensor([r[1] for r in rows], dtype=torch.bool))
        eps.append(torch.tensor([r[2] for r in rows], dtype=torch.float64))
        grads.append(torch.tensor([r[3] for r in rows], dtype=torch.int64))
        warm_grads.append(rec.warmup_count)
    return {
        "draws": torch.stack(draws),
        "accept_prob": torch.stack(acc),
        "diverging": torch.stack(div),
        "step_size": torch.stack(eps),
        "num_grad_evals": torch.stack(grads),
        "warmup_grad_evals": torch.tensor(warm_grads, dtype=torch.int64),
        "sample_seconds": t_sample,
    }


def _observables_batched(energy: Any, x: torch.Tensor, batch_size: int = 8192) -> dict[str, torch.Tensor]:
    """:func:`pyro_nrg.diagnostics.observables` of ``x`` ``(chains, draws, *event)``, in chunks."""
    from ..diagnostics import observables

    lead = x.shape[:2]
    flat = x.reshape(-1, *energy.event_shape)
    parts = [observables(energy, flat[i : i + batch_size]) for i in range(0, flat.shape[0], batch_size)]
    return {k: torch.cat([p[k] for p in parts]).reshape(lead) for k in parts[0]}


def _guide_for(energy: Any, guide_or_flow: Any, site: str) -> FlowGuide:
    """A FlowGuide (prototype set up) over ``boltzmann_model(energy, site)`` for NeuTraReparam."""
    if isinstance(guide_or_flow, FlowGuide):
        guide = guide_or_flow
    else:
        guide = FlowGuide(boltzmann_model(energy, site), _flow_of(guide_or_flow), site=site)
    if getattr(guide, "prototype_trace", None) is None:
        with torch.random.fork_rng():
            guide._setup_prototype()
    if "plates" not in guide.__dict__:  # set when a guide is first called; NeuTraReparam reads it
        guide._create_plates()
    return guide


def _sector_model(energy: Any, site: str, sector: Z2Sector | None) -> Callable[[], torch.Tensor]:
    r"""The Boltzmann model, with the factor ``"z2_sector"`` = :math:`\ln 2h(x)` when ``sector`` is given."""
    if sector is None:
        return boltzmann_model(energy, site)

    def model() -> torch.Tensor:
        x = boltzmann_site(energy, site)
        pyro.factor("z2_sector", sector.log_weight(x))
        return x

    return model


# ----------------------------------------------------------------------------------------------------------------
# Pyro NUTS / HMC in latent and physical space


def latent_nuts(
    energy: Any,
    guide_or_flow: Any,
    num_samples: int = 500,
    warmup_steps: int = 200,
    num_chains: int = 1,
    kernel: str = "nuts",
    step_size: float = 1.0,
    num_steps: int | None = None,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    full_mass: bool = False,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    init: Any = None,
    keep_samples: bool = True,
    keep_latent: bool = True,
    z2_symmetric: bool | None = None,
    progress: bool = False,
) -> SamplingResult:
    r"""NUTS/HMC in the latent space of a trained flow via Pyro's :class:`~pyro.infer.reparam.NeuTraReparam`.

    The Boltzmann model :func:`~pyro_nrg.infer.boltzmann_model` is reparameterised with ``NeuTraReparam(guide)``:
    its configuration site becomes :math:`x = g(z)` with :math:`z` the site ``"<site>_shared_latent"`` (flat,
    ``(N,)``), whose potential is :math:`\beta E_{\rm eff}(z)` (the base density is masked, so the target is exactly
    the pullback of :math:`p`, Hoffman et al. 2019). Chains start at ``init`` (latent values) given for the shared
    latent — an init value for the original site would be ignored by Pyro. Each draw is mapped back by the guide's
    transform (what ``neutra.transform_sample`` does, with ln|det| from the same pass). Chains run one after
    another (Pyro parallelises only with more free cores).

    Args:
        energy: physical energy, e.g. :class:`~pyro_nrg.energies.IsingRelaxed`.
        guide_or_flow: trained :class:`~pyro_nrg.infer.FlowGuide` (``distill(...).guide``), flow distribution or
            flow (Z₂ symmetrisation, if any, is irrelevant here: the pullback is exact for the bare flow).
        num_samples: draws kept per chain.
        warmup_steps: warm-up (adaptation) steps per chain.
        num_chains: number of chains (run one after another).
        kernel: ``"nuts"`` or ``"hmc"`` (then ``num_steps`` leapfrog steps, default 10).
        step_size: initial leapfrog step size (Pyro's ``NUTS``/``HMC`` argument).
        num_steps: leapfrog steps per HMC trajectory (``kernel="hmc"`` only; default 10).
        adapt_step_size: adapt the step size during warm-up (Pyro's).
        adapt_mass_matrix: adapt the mass matrix during warm-up (Pyro's).
        full_mass: dense instead of diagonal mass matrix (Pyro's).
        target_accept_prob: target acceptance probability of step-size adaptation (Pyro's).
        max_tree_depth: maximum NUTS tree depth (Pyro's).
        init: latent start ``(N,)``/``flow event shape`` or one per chain ``(num_chains, ...)``; default standard
            normal draws (so :math:`g(z_0) \sim q`).
        keep_samples: keep the physical draws (else only observables).
        keep_latent: keep the latent draws.
        z2_symmetric: for an energy with :math:`E(-x) = E(x)`, target :math:`2h(x)\,p(x)` (the model gets the
            factor ``"z2_sector"`` = :math:`\ln 2h`) and give each draw a random sign, so the chains stay in the
            sector the flow covers and the signed draws follow :math:`p` exactly (:mod:`pyro_nrg.infer.sector`);
            ``None`` follows the guide (on for a :math:`Z_2`-symmetrized one).
        progress: Pyro's progress bar.

    Returns:
        :class:`SamplingResult` with ``samples`` ``(num_chains, num_samples, *event_shape)`` and ``latent``
        ``(num_chains, num_samples, N)``.

    Raises:
        NonFiniteError: a start point with NaN/inf latent or renormalized energy (before sampling starts).
        NotSymmetricError: ``z2_symmetric`` with an energy that is not :math:`Z_2`-symmetric.
    """
    site = getattr(guide_or_flow, "site", "x") if isinstance(guide_or_flow, FlowGuide) else "x"
    guide = _guide_for(energy, guide_or_flow, site)
    flow = guide.flow
    n = guide.latent_dim
    dtype = _param_dtype(flow)
    key = f"{site}_shared_latent"
    t0 = time.perf_counter()
    z0 = _chain_inits(init, num_chains, (n,), "latent")
    if z0 is None:
        z0 = torch.randn(num_chains, n, dtype=dtype)
    with torch.no_grad(), _no_validation(energy):
        x0, ldj0 = _to_physical(flow, energy, z0)
        u0 = energy.action(x0) - ldj0
    _check_start(z0, u0, "latent_nuts")
    with _no_validation(energy):
        sector = resolve_sector(energy, guide_or_flow, flow, z2_symmetric)
    neutra = NeuTraReparam(guide)
    model = poutine.reparam(_sector_model(energy, site, sector), config={site: neutra})
    with _frozen(flow):
        _, potential_fn, transforms, _ = initialize_model(
            model, max_plate_nesting=0, initial_params={key: z0[0]}
        )
        out = _run_pyro_chains(
            potential_fn, transforms, [{key: z0[c]} for c in range(num_chains)], key, kernel, num_samples,
            warmup_steps, step_size, num_steps, adapt_step_size, adapt_mass_matrix, full_mass, target_accept_prob,
            max_tree_depth, progress,
        )
        latent = out["draws"].reshape(num_chains, num_samples, n)
        xs, effs = [], []
        with torch.no_grad():
            flat = latent.reshape(-1, n)
            for i in range(0, flat.shape[0], 4096):
                zc = flat[i : i + 4096]
                # the guide's transform, as neutra.transform_sample applies it, but with ln|det| from the same pass
                x, ldj = _to_physical(flow, energy, zc)
                eff = energy.action(x) - ldj
                if sector is not None:
                    eff = eff - sector.log_weight(x)
                    x = sector.random_sign(x)
                xs.append(x)
                effs.append(eff)
    x = torch.cat(xs).reshape(num_chains, num_samples, *energy.event_shape)
    return SamplingResult(
        method=kernel,
        space="latent",
        samples=x if keep_samples else None,
        latent=latent if keep_latent else None,
        observables=_observables_batched(energy, x),
        accept_prob=out["accept_prob"],
        accepted=None,
        diverging=out["diverging"],
        step_size=out["step_size"],
        num_grad_evals=out["num_grad_evals"],
        warmup_grad_evals=out["warmup_grad_evals"],
        renormalized_energy=torch.cat(effs).reshape(num_chains, num_samples).to(torch.float64),
        z2_sharpness=None if sector is None else sector.sharpness,
        seconds=time.perf_counter() - t0,
        sample_seconds=out["sample_seconds"],
        energy=energy,
    )


def physical_nuts(
    energy: Any,
    num_samples: int = 500,
    warmup_steps: int = 200,
    num_chains: int = 1,
    kernel: str = "nuts",
    step_size: float = 1.0,
    num_steps: int | None = None,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    full_mass: bool = False,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    init: Any = None,
    keep_samples: bool = True,
    progress: bool = False,
    site: str = "x",
) -> SamplingResult:
    r"""The baseline: Pyro NUTS/HMC on the physical configuration, same API and result as :func:`latent_nuts`.

    The model is :func:`~pyro_nrg.infer.boltzmann_model` (a samplable flat site plus
    ``pyro.factor("boltzmann", -beta E(x))``), so the potential is :math:`\beta E(x)`. The arguments not listed
    below mean what they mean in :func:`latent_nuts`.

    Args:
        energy: physical energy.
        init: start configuration(s) ``(*event_shape)`` / ``(num_chains, *event_shape)``, or a distribution to draw
            them from (e.g. a trained flow's ``guide.distribution()``: starts in equilibrium); default standard
            normal draws.
        site: name of the configuration site of the Boltzmann model.

    Raises:
        NonFiniteError: a start point with NaN/inf coordinates or energy (before sampling starts).
    """
    es = tuple(energy.event_shape)
    dtype = _energy_dtype(energy)
    t0 = time.perf_counter()
    x0 = _chain_inits(init, num_chains, es, "physical")
    if x0 is None:
        x0 = torch.randn(num_chains, *es, dtype=dtype)
    with torch.no_grad(), _no_validation(energy):
        u0 = energy.action(x0) if torch.isfinite(x0).all() else torch.full((num_chains,), float("nan"))
    _check_start(x0, u0, "physical_nuts")
    model = boltzmann_model(energy, site)
    _, potential_fn, transforms, _ = initialize_model(model, max_plate_nesting=0, initial_params={site: x0[0]})
    out = _run_pyro_chains(
        potential_fn, transforms, [{site: x0[c]} for c in range(num_chains)], site, kernel, num_samples,
        warmup_steps, step_size, num_steps, adapt_step_size, adapt_mass_matrix, full_mass, target_accept_prob,
        max_tree_depth, progress,
    )
    x = out["draws"].reshape(num_chains, num_samples, *es)
    return SamplingResult(
        method=kernel,
        space="physical",
        samples=x if keep_samples else None,
        latent=None,
        observables=_observables_batched(energy, x),
        accept_prob=out["accept_prob"],
        accepted=None,
        diverging=out["diverging"],
        step_size=out["step_size"],
        num_grad_evals=out["num_grad_evals"],
        warmup_grad_evals=out["warmup_grad_evals"],
        seconds=time.perf_counter() - t0,
        sample_seconds=out["sample_seconds"],
        energy=energy,
    )


# ----------------------------------------------------------------------------------------------------------------
# vectorised many-walker HMC


class _DualAveraging:
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


def _value_and_grad(
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def _hmc_step(
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


def hmc_walkers(
    potential: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
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
            (``benchmarks/walker_tuning.py``, 8×8 Ising at :math:`T_c`, 10 leapfrog steps: ESS(:math:`m^2`) per
            gradient 8.6e-3 at acceptance 0.85, 1.8e-3 at 0.65; 4 steps at acceptance 0.72 also only 3.2e-3, so it
            is the rejections, not only the trajectory length).
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
        ValueError: an unknown ``mass_matrix``, one to adapt with fewer than 20 warm-up steps, or
            ``independence_every < 1``.
    """
    if independence is not None and independence_every < 1:
        raise ValueError(f"independence_every must be >= 1 (trajectories between independence moves), "
                         f"got {independence_every}")
    if mass_matrix not in ("unit", "diag", "dense"):
        raise ValueError(f"mass_matrix must be 'unit', 'diag' or 'dense', got {mass_matrix!r}")
    if mass_matrix != "unit" and warmup_steps < 20:
        raise ValueError(f"adapting the {mass_matrix} mass matrix needs warmup_steps >= 20, got {warmup_steps}")
    q = init.detach().clone()
    W, shape = q.shape[0], q.shape[1:]
    n = math.prod(shape)
    precond: tuple[torch.Tensor, torch.Tensor] | None = None  # (mu, C): positions are mu + C u (C: (N,N) or (N,))

    def to_q(v: torch.Tensor) -> torch.Tensor:
        if precond is None:
            return v
        mu, c = precond
        flat = v.reshape(v.shape[0], n)
        return (mu + (flat @ c.T if c.dim() == 2 else flat * c)).reshape(v.shape)

    def to_v(x: torch.Tensor) -> torch.Tensor:  # inverse of to_q
        if precond is None:
            return x
        mu, c = precond
        flat = x.reshape(x.shape[0], n) - mu
        if c.dim() == 2:
            return torch.linalg.solve_triangular(c, flat.T, upper=False).T.reshape(x.shape)
        return (flat / c).reshape(x.shape)

    def u_grad(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _value_and_grad(lambda w: potential(to_q(w)), v)

    def jump(v: torch.Tensor, u: torch.Tensor, g: torch.Tensor, aux: Any) -> tuple[Any, ...]:
        assert independence is not None  # only called with a proposal
        qp = independence.sample(W).to(device=q.device, dtype=q.dtype)
        vp = to_v(qp)
        up, gp, auxp = u_grad(vp)
        log_ratio = (u.to(torch.float64) + independence.log_prob(to_q(v)).to(torch.float64)
                     - up.to(torch.float64) - independence.log_prob(qp).to(torch.float64))
        ok = torch.isfinite(log_ratio) & torch.isfinite(qp.reshape(W, -1)).all(-1)
        acc = ok & (torch.log(torch.rand(W, dtype=torch.float64, device=u.device)) < log_ratio.nan_to_num(-math.inf))
        return (_where_batch(acc, vp, v), torch.where(acc, up, u), _where_batch(acc, gp, g),
                _where_batch(acc, auxp, aux), acc)

    u, g, aux = u_grad(q)
    _check_start(q, u, "hmc_walkers")
    eps = float(step_size)
    adapter = _DualAveraging(eps, target_accept_prob) if adapt_step_size and warmup_steps > 0 else None
    window = (warmup_steps // 4, warmup_steps - warmup_steps // 4) if mass_matrix != "unit" else (0, 0)
    moments: list[Any] = [0, torch.zeros(n, dtype=torch.float64), None]  # count, sum, sum of squares/outer products
    inv_mass: torch.Tensor | None = None
    extra_grads = 0
    warmup_jumps, pending_grads = 0, 0
    pending_jump: torch.Tensor | None = None  # jumps accepted since the last recorded draw (thinning)
    no_jump = torch.zeros(W, dtype=torch.bool, device=q.device)
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in ("acc", "accd", "jump", "grads", "div", "u", "x", "z")}
    obs: dict[str, list[torch.Tensor]] = {}
    eps_hist: list[float] = []
    total_iters = warmup_steps + num_samples * thin
    t_sample = time.perf_counter()
    bar = tqdm(total=total_iters, disable=not progress, desc="hmc walkers", leave=False)
    for it in range(total_iters):
        bar.update(1)
        if it == warmup_steps:
            if adapter is not None:
                eps = adapter.final
            t_sample = time.perf_counter()
        q, u, g, aux, accept_prob, accept, finite, dh = _hmc_step(u_grad, q, u, g, aux, eps, num_steps)
        jumped = no_jump
        if independence is not None and it % independence_every == independence_every - 1:
            q, u, g, aux, jumped = jump(q, u, g, aux)
            warmup_jumps += it < warmup_steps
            pending_grads += it >= warmup_steps
        eps_hist.append(eps)
        if progress and it % 10 == 0:
            bar.set_postfix(acc=f"{float(accept_prob.mean()):.2f}", eps=f"{eps:.3g}", refresh=False)
        if it < warmup_steps:
            if adapter is not None:
                eps = adapter.update(float(accept_prob.mean()))
            if window[0] <= it < window[1]:
                flat = to_q(q).reshape(W, n).to(torch.float64)
                sq = flat.T @ flat if mass_matrix == "dense" else flat.square().sum(0)
                moments = [moments[0] + W, moments[1] + flat.sum(0), sq if moments[2] is None else moments[2] + sq]
                if it == window[1] - 1:  # switch to the adapted metric; the step size is adapted afresh
                    inv_mass, precond, q = _adapted_metric(to_q(q), moments, mass_matrix)
                    u, g, aux = u_grad(q)
                    extra_grads += 1
                    if adapter is not None:
                        adapter = _DualAveraging(eps, target_accept_prob)
            continue
        pending_grads += num_steps
        pending_jump = jumped if pending_jump is None else pending_jump | jumped
        if (it - warmup_steps) % thin != thin - 1:
            continue
        rec["grads"].append(torch.full((W,), pending_grads, dtype=torch.int64))
        rec["jump"].append(pending_jump)
        pending_grads, pending_jump = 0, None
        rec["acc"].append(accept_prob)
        rec["accd"].append(accept)
        rec["div"].append(~finite | (dh > max_energy_error))
        rec["u"].append(u.to(torch.float64))
        if keep_samples:
            rec["x"].append(aux)
        if keep_latent:
            rec["z"].append(to_q(q))
        if observe is not None:
            for k, v in observe(aux).items():
                obs.setdefault(k, []).append(v)
    bar.close()
    return {
        "samples": torch.stack(rec["x"], 1) if keep_samples else None,
        "latent": torch.stack(rec["z"], 1) if keep_latent else None,
        "observables": {k: torch.stack(v, 1) for k, v in obs.items()},
        "accept_prob": torch.stack(rec["acc"], 1),
        "accepted": torch.stack(rec["accd"], 1),
        "jump_accepted": torch.stack(rec["jump"], 1) if independence is not None else None,
        "diverging": torch.stack(rec["div"], 1),
        "potential": torch.stack(rec["u"], 1),
        "step_size": eps,
        "step_size_history": torch.tensor(eps_hist, dtype=torch.float64),
        "num_grad_evals": torch.stack(rec["grads"], 1),
        "warmup_grad_evals": 1 + warmup_steps * num_steps + extra_grads + warmup_jumps,
        "sample_seconds": time.perf_counter() - t_sample,
        "inverse_mass_matrix": inv_mass,
    }


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


def _walker_result(
    out: dict[str, Any], space: str, energy: Any, seconds: float, z2_sharpness: float | None = None
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
    energy: Any,
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
            :math:`p` exactly (:mod:`pyro_nrg.infer.sector`); ``None`` follows the guide (on for a
            :math:`Z_2`-symmetrized one).
        mass_matrix: ``"unit"`` (the paper's), or ``"dense"``/``"diag"`` adapted from the walkers' warm-up
            positions (:func:`hmc_walkers`): with the sector function on, the latent covariance within a sector
            is close to the identity except for a few wide directions (L=16, T_c: largest eigenvalue ~6), which a
            dense metric evens out.
        flow_jump_every: if > 0, after every ``flow_jump_every``-th trajectory each walker also proposes a fresh
            latent :math:`z' \sim \mathcal N(0, I)`, i.e. an independent flow draw :math:`x' = g(z') \sim q`, and
            accepts it with the flow-MH probability :math:`\min(1, w(x')/w(x))`, :math:`\ln w = -\beta E - \ln q`
            (:func:`~pyro_nrg.infer.flow_mh`): flow-augmented HMC (Gabrié, Rotskoff & Vanden-Eijnden, PNAS 119,
            e2109420119 (2022)). The jumps decorrelate the walkers in one step where the flow is good; the HMC
            moves still reach what the flow misses, where flow-MH alone stays biased in any practical run
            (``benchmarks/sampling.py``, L=16). One extra gradient evaluation per jump and walker; the result's
            ``jump_accepted`` records the outcomes. Measured on the relaxed Ising model at :math:`T_c`
            (``benchmarks/results/sampling*.json``): 1.2× the walkers' ESS(:math:`m^2`) per gradient at L=8
            (48 % of jumps accepted), 0.6–0.8× at L=16 (14 %), where the slow mode is the passage into the
            configurations the flow misses, which jumps do not speed up. Hence off by default.

    Returns:
        :class:`SamplingResult` (``renormalized_energy`` = the walkers' potential of each draw).

    Raises:
        NotSymmetricError: ``z2_symmetric`` with an energy that is not :math:`Z_2`-symmetric.
        ValueError: ``flow_jump_every < 0``.
    """
    if flow_jump_every < 0:
        raise ValueError(f"flow_jump_every must be >= 0 (0: no flow jumps), got {flow_jump_every}")
    from ..diagnostics import observables

    flow = _flow_of(guide_or_flow)
    fes = _flow_event_shape(flow, energy)
    t0 = time.perf_counter()
    z0 = _chain_inits(init, num_walkers, fes, "latent")
    if z0 is None:
        z0 = torch.randn(num_walkers, *fes, dtype=_param_dtype(flow))

    with _frozen(flow), _no_validation(energy):
        sector = resolve_sector(energy, guide_or_flow, flow, z2_symmetric)

        def potential(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x, ldj = _to_physical(flow, energy, z)
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
            thin, lambda x: observables(energy, x), keep_samples, keep_latent, progress=progress,
            mass_matrix=mass_matrix, independence=jumps, independence_every=max(1, flow_jump_every),
        )
    kappa = None if sector is None else sector.sharpness
    return _walker_result(out, "latent", energy, time.perf_counter() - t0, kappa)


def physical_hmc_walkers(
    energy: Any,
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
    """
    from ..diagnostics import observables

    es = tuple(energy.event_shape)
    t0 = time.perf_counter()
    x0 = _chain_inits(init, num_walkers, es, "physical")
    if x0 is None:
        x0 = torch.randn(num_walkers, *es, dtype=_energy_dtype(energy))

    def potential(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return energy.action(x), x

    with _no_validation(energy):
        out = hmc_walkers(
            potential, x0, num_samples, warmup_steps, step_size, num_steps, adapt_step_size, target_accept_prob,
            thin, lambda x: observables(energy, x), keep_samples, False, progress=progress, mass_matrix=mass_matrix,
        )
    return _walker_result(out, "physical", energy, time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------------------------
# RG-flow priors in user models


def latent_reparam(model: Callable[..., Any], sites: Sequence[str] | None = None) -> Callable[..., Any]:
    r"""Make NUTS on a user model run in the latent space of its flow priors (Pyro's ``TransformReparam``).

    Every site whose distribution is a :class:`~pyro_nrg.distributions.FlowDistribution` (or the named ``sites``)
    is split into ``"<site>_base"`` :math:`\sim \mathcal N(0, I)` and the deterministic :math:`x = g(z)`: the
    posterior geometry becomes that of the renormalized variables.

    Example:
        >>> def model(y):
        ...     field = pyro.sample("field", prior)                        # FlowDistribution
        ...     pyro.sample("y", dist.Normal(field, 0.5).to_event(2), obs=y)
        >>> NUTS(latent_reparam(model))                                     # doctest: +SKIP
    """

    def config(msg: dict[str, Any]) -> TransformReparam | None:
        if msg["type"] != "sample" or msg["is_observed"]:
            return None
        if sites is not None:
            return TransformReparam() if msg["name"] in sites else None
        fn = msg["fn"]
        while hasattr(fn, "base_dist") and not isinstance(fn, torch.distributions.TransformedDistribution):
            fn = fn.base_dist
        return TransformReparam() if isinstance(fn, FlowDistribution) else None

    return poutine.reparam(model, config=config)

