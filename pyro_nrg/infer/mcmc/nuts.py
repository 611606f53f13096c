r"""Pyro NUTS/HMC in the latent space of a trained flow (NeuTra) and in physical space, one chain at a time.

:func:`latent_nuts` reparameterises the Boltzmann model :func:`~pyro_nrg.infer.boltzmann_model` with Pyro's
:class:`~pyro.infer.reparam.NeuTraReparam` and the trained :class:`~pyro_nrg.infer.FlowGuide`, then runs
``MCMC(NUTS|HMC)`` on the ``<site>_shared_latent`` site, whose potential is the renormalized energy
:math:`\beta E_{\rm eff}(z)` (:mod:`pyro_nrg.infer.mcmc.latent`); every draw is mapped back by the guide's
transform (what ``neutra.transform_sample`` does). :func:`physical_nuts` is the baseline on the same energy
through the same API (flat samplable site plus ``pyro.factor``). Both return a
:class:`~pyro_nrg.infer.mcmc.results.SamplingResult` with per-draw acceptance, divergences, step sizes and gradient
counts recovered from Pyro's kernel.

Example:
    >>> from pyro_nrg.energies import IsingRelaxed
    >>> from pyro_nrg.flows import neural_rg
    >>> from pyro_nrg.infer import distill
    >>> energy = IsingRelaxed(4, 3.0)
    >>> guide = distill(energy, neural_rg(L=4), steps=300, batch_size=256, lr=5e-3,  # doctest: +SKIP
    ...                 progress=False).guide
    >>> res = latent_nuts(energy, guide, num_samples=500, warmup_steps=200, num_chains=2)  # doctest: +SKIP
    >>> res.samples.shape                                                                   # doctest: +SKIP
    torch.Size([2, 500, 4, 4])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import HMC, MCMC, NUTS
from pyro.infer.mcmc.util import initialize_model
from pyro.infer.reparam import NeuTraReparam

from ...energies.base import Energy
from ...errors import SamplerSettingsError
from ..model import FlowGuide, boltzmann_model, boltzmann_site
from ..pushforward import check_flow_fits, flow_of, frozen, param_dtype, to_physical
from .latent import RenormalizedPotential
from .results import SamplingResult
from .sector import Z2Sector, resolve_sector
from .starts import chain_inits, check_sampler_sizes, check_start

__all__ = ["latent_nuts", "physical_nuts", "POTENTIALS"]

POTENTIALS = ("direct", "model")
"""How the samplers hand Pyro its potential: ``"direct"`` (default), a plain function of the latent or
configuration (Pyro's ``potential_fn`` path: no model trace per gradient); ``"model"``, the potential Pyro's
``initialize_model`` derives by tracing the (reparameterised) Boltzmann model at every gradient. Same values."""


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


class _DirectPhysicalPotential:
    r""":math:`U(x) = \beta E(x)` of ``{site: x}``: the potential of :func:`~pyro_nrg.infer.boltzmann_model` (flat
    masked site plus the Boltzmann factor) without tracing the model at every gradient."""

    def __init__(self, energy: Energy, site: str) -> None:
        self.energy, self.site = energy, site

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.energy.action(params[self.site]).sum()


def _check_potential(potential: str) -> None:
    if potential not in POTENTIALS:
        raise SamplerSettingsError(f"potential must be one of {POTENTIALS}, got {potential!r}: use 'direct'")


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


def _observables_batched(energy: Energy, x: torch.Tensor, batch_size: int = 8192) -> dict[str, torch.Tensor]:
    """:meth:`~pyro_nrg.energies.Energy.observables` of ``x`` ``(chains, draws, *event)``, in chunks."""
    lead = x.shape[:2]
    flat = x.reshape(-1, *energy.event_shape)
    parts = [energy.observables(flat[i : i + batch_size]) for i in range(0, flat.shape[0], batch_size)]
    return {k: torch.cat([p[k] for p in parts]).reshape(lead) for k in parts[0]}


def _guide_for(energy: Energy, guide_or_flow: Any, site: str) -> FlowGuide:
    """A FlowGuide (prototype set up) over ``boltzmann_model(energy, site)`` for NeuTraReparam."""
    if isinstance(guide_or_flow, FlowGuide):
        guide = guide_or_flow
    else:
        guide = FlowGuide(boltzmann_model(energy, site), flow_of(guide_or_flow), site=site)
    if getattr(guide, "prototype_trace", None) is None:
        with torch.random.fork_rng():
            guide._setup_prototype()
    if "plates" not in guide.__dict__:  # set when a guide is first called; NeuTraReparam reads it
        guide._create_plates()
    return guide


def _sector_model(energy: Energy, site: str, sector: Z2Sector | None) -> Callable[[], torch.Tensor]:
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
    energy: Energy,
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
    potential: str = "direct",
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
            sector the flow covers and the signed draws follow :math:`p` exactly (:mod:`pyro_nrg.infer.mcmc.sector`);
            ``None`` follows the guide (on for a :math:`Z_2`-symmetrized one).
        progress: Pyro's progress bar.
        potential: ``"direct"`` (default): Pyro gets :math:`\beta E_{\rm eff}(z)` as a plain ``potential_fn``;
            ``"model"``: the potential Pyro derives from the NeuTra-reparameterised model, traced at every gradient
            (same values and draws, slower; :data:`POTENTIALS`).

    Returns:
        :class:`~pyro_nrg.infer.mcmc.results.SamplingResult` with ``samples``
        ``(num_chains, num_samples, *event_shape)`` and ``latent`` ``(num_chains, num_samples, N)``.

    Raises:
        EventShapeError: a flow for another lattice than the energy's.
        NonFiniteError: a start point with NaN/inf latent or renormalized energy (before sampling starts).
        SamplerSettingsError: a step size that is not > 0 (it would run forever without progress), or
            ``num_samples``, ``num_chains`` below 1.
        NotSymmetricError: ``z2_symmetric`` with an energy that is not :math:`Z_2`-symmetric.
    """
    check_sampler_sizes("latent_nuts", step_size, num_samples=num_samples, num_chains=num_chains)
    _check_potential(potential)
    check_flow_fits(flow_of(guide_or_flow), energy)
    site = guide_or_flow.site if isinstance(guide_or_flow, FlowGuide) else "x"
    guide = _guide_for(energy, guide_or_flow, site)
    flow = guide.flow
    n = guide.latent_dim
    dtype = param_dtype(flow)
    key = f"{site}_shared_latent"
    t0 = time.perf_counter()
    z0 = chain_inits(init, num_chains, (n,), "latent")
    if z0 is None:
        z0 = torch.randn(num_chains, n, dtype=dtype)
    with torch.no_grad(), energy.unvalidated():
        x0, ldj0 = to_physical(flow, energy, z0)
        u0 = energy.action(x0) - ldj0
    check_start(z0, u0, "latent_nuts")
    with energy.unvalidated():
        sector = resolve_sector(energy, guide_or_flow, flow, z2_symmetric)
    with frozen(flow):
        if potential == "direct":
            potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] = RenormalizedPotential(
                energy, flow, key, sector)
            transforms: dict[str, Any] = {}
        else:
            neutra = NeuTraReparam(guide)
            model = poutine.reparam(_sector_model(energy, site, sector), config={site: neutra})
            with torch.random.fork_rng():  # its trial run of the model stays off the chains' RNG stream
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
                x, ldj = to_physical(flow, energy, zc)
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
    energy: Energy,
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
    potential: str = "direct",
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
        potential: ``"direct"`` (default): :math:`\beta E(x)` as a plain ``potential_fn``; ``"model"``: Pyro's
            potential of the traced Boltzmann model (same values and draws, slower; :data:`POTENTIALS`).

    Raises:
        NonFiniteError: a start point with NaN/inf coordinates or energy (before sampling starts).
        SamplerSettingsError: a step size that is not > 0, or ``num_samples``, ``num_chains`` below 1.
    """
    check_sampler_sizes("physical_nuts", step_size, num_samples=num_samples, num_chains=num_chains)
    _check_potential(potential)
    es = tuple(energy.event_shape)
    dtype = energy.dtype
    t0 = time.perf_counter()
    x0 = chain_inits(init, num_chains, es, "physical")
    if x0 is None:
        x0 = torch.randn(num_chains, *es, dtype=dtype)
    with torch.no_grad(), energy.unvalidated():
        u0 = energy.action(x0) if torch.isfinite(x0).all() else torch.full((num_chains,), float("nan"))
    check_start(x0, u0, "physical_nuts")
    if potential == "direct":
        potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] = _DirectPhysicalPotential(energy, site)
        transforms: dict[str, Any] = {}
    else:
        model = boltzmann_model(energy, site)
        with torch.random.fork_rng():  # its trial run of the model stays off the chains' RNG stream
            _, potential_fn, transforms, _ = initialize_model(model, max_plate_nesting=0,
                                                              initial_params={site: x0[0]})
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


