r"""The renormalized energy of a trained NeuralRG flow, and flow priors reparameterised in user models.

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

* :func:`renormalized_energy` — :math:`E_{\rm eff}(z)`, differentiable in :math:`z` and the flow's parameters.
* :class:`RenormalizedPotential` — :math:`\beta E_{\rm eff}` as a ``potential_fn`` for Pyro's ``HMC``/``NUTS``
  (``initial_params`` path), counting its calls.
* :func:`latent_reparam` / :class:`LatentModel` — NUTS on a user model in the latent space of its flow priors
  (bare flows and their symmetrised mixtures).

The samplers on :math:`E_{\rm eff}` are :func:`~pyro_nrg.infer.latent_nuts` (:mod:`pyro_nrg.infer.mcmc.nuts`) and
:func:`~pyro_nrg.infer.latent_hmc_walkers` (:mod:`pyro_nrg.infer.mcmc.walkers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import infer_discrete
from pyro.infer.autoguide import AutoContinuous, AutoLowRankMultivariateNormal, AutoMultivariateNormal
from pyro.infer.reparam import TransformReparam
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ...distributions import FlowDistribution, LatticeSymmetrized, Z2Symmetrized
from ...energies.base import Energy
from ...errors import PriorReparamError
from ..pushforward import as_flow_event, flow_event_shape, flow_of, param_dtype, to_physical
from .sector import Z2Sector

__all__ = ["renormalized_energy", "RenormalizedPotential", "latent_reparam", "LatentModel"]


def renormalized_energy(
    energy: Energy, guide_or_flow: Any, z: torch.Tensor, subtract_gaussian: bool = False, return_physical: bool = False
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
    flow = flow_of(guide_or_flow)
    x, ldj = to_physical(flow, energy, z)
    e_eff = energy.energy(x) - energy.temperature * ldj
    if subtract_gaussian:
        zf, batch = as_flow_event(flow, energy, z)
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
        sector: a :math:`Z_2` sector function :math:`h` (:class:`~pyro_nrg.infer.mcmc.sector.Z2Sector`): the
            potential becomes :math:`\beta E_{\rm eff}(z) - \ln 2h(g(z))` (the target of the sector samplers);
            ``None``: none.

    Example:
        >>> pot = RenormalizedPotential(energy, guide)                                   # doctest: +SKIP
        >>> mcmc = MCMC(NUTS(potential_fn=pot), 500, warmup_steps=200,
        ...             initial_params=pot.initial_params())                               # doctest: +SKIP
        >>> mcmc.run(); x = pot.to_physical(mcmc.get_samples()["z"])                        # doctest: +SKIP
    """

    def __init__(self, energy: Energy, guide_or_flow: Any, site: str = "z", sector: Z2Sector | None = None) -> None:
        self.energy = energy
        self.flow = flow_of(guide_or_flow)
        self.site = site
        self.sector = sector
        self.event_shape = flow_event_shape(self.flow, energy)
        self.num_calls = 0

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        self.num_calls += 1
        z = params[self.site]
        x, ldj = to_physical(self.flow, self.energy, z)
        u = self.energy.action(x) - ldj
        if self.sector is not None:
            u = u - self.sector.log_weight(x)
        return u.sum()

    def initial_params(self, num_chains: int | None = None) -> dict[str, torch.Tensor]:
        """Standard-normal starting latents: ``(*event_shape)`` or ``(num_chains, *event_shape)`` (Pyro's layout)."""
        dtype = param_dtype(self.flow)
        shape = self.event_shape if num_chains is None else (num_chains, *self.event_shape)
        return {self.site: torch.randn(shape, dtype=dtype)}

    @torch.no_grad()
    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent draws ``(*batch, *event_shape)`` to physical configurations ``(*batch, *energy.event_shape)``."""
        return to_physical(self.flow, self.energy, z)[0]



# ----------------------------------------------------------------------------------------------------------------
# RG-flow priors in user models


def _unwrap_independent(fn: Any) -> tuple[Any, int]:
    """``fn`` without its ``Independent`` wrappers, and the number of batch dims they reinterpreted as event dims."""
    extra = 0
    while isinstance(fn, torch.distributions.Independent):
        extra += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    return fn, extra


def _mixture_layers(fn: Any) -> tuple[FlowDistribution, list[Z2Symmetrized | LatticeSymmetrized]] | None:
    """The flow inside a (nested) symmetrised mixture and the mixture layers, outermost first; ``None`` if ``fn``
    is not a mixture of a :class:`FlowDistribution`."""
    layers: list[Z2Symmetrized | LatticeSymmetrized] = []
    while isinstance(fn, Z2Symmetrized | LatticeSymmetrized):
        layers.append(fn)
        fn = fn.base
    return (fn, layers) if layers and isinstance(fn, FlowDistribution) else None


def _layer_maps(layer: Z2Symmetrized | LatticeSymmetrized) -> tuple[str, list[Callable[[torch.Tensor], torch.Tensor]]]:
    """The component site's suffix and the maps :math:`x \\mapsto g_k(x)` of one mixture layer (on the event dims)."""
    if isinstance(layer, Z2Symmetrized):
        return "sign", [lambda x: x, lambda x: -x]
    lattice, nev = layer.lattice_shape, len(layer.event_shape)

    def on_lattice(g: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def apply(x: torch.Tensor) -> torch.Tensor:
            batch = x.shape[: x.dim() - nev]
            return g(x.reshape(*batch, *lattice)).reshape(x.shape)

        return apply

    return "symmetry", [on_lattice(g) for g, _ in layer.maps]


def _select(k: torch.Tensor, images: list[torch.Tensor], event_dims: int) -> torch.Tensor:
    r""":math:`\sum_j [k = j]\, x_j`: the image picked by the component index ``k`` (any shape broadcastable to the
    images' batch shape, e.g. Pyro's enumeration shape ``(|S|, 1, ..., 1)``)."""
    out = 0.0
    for j, xj in enumerate(images):
        out = out + (k == j).to(xj.dtype).reshape(*k.shape, *([1] * event_dims)) * xj
    return out  # type: ignore[return-value]


class _MixtureReparamMessenger(Messenger):
    r"""Moves a symmetrised flow prior to latent space: :math:`x = g_{k_1}(\cdots g_{k_m}(f(z)))` with
    :math:`z \sim \mathcal N(0, I)` at ``"<site>_base"`` and one uniform, enumerated component site per mixture
    layer (``"<site>_sign"`` for :math:`Z_2`, ``"<site>_symmetry"`` for the lattice maps). The push-forward of
    :math:`\mathcal N(0, I) \times \mathrm{Uniform}(S)` under that map is the mixture itself, so the model's joint
    density is unchanged once the component sites are summed out (Pyro's NUTS/HMC do that by parallel enumeration).
    A site whose value is given (conditioned, or replayed) is left as it is."""

    def __init__(self, sites: set[str] | None) -> None:
        super().__init__()
        self.sites = sites

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["is_observed"] or msg["value"] is not None or (self.sites is not None and msg["name"] not in self.sites):
            return
        fn, extra = _unwrap_independent(msg["fn"])
        found = _mixture_layers(fn)
        if found is None:
            return
        flow_dist, layers = found
        name, batch = msg["name"], fn.batch_shape
        event_dims = len(fn.event_shape)
        base = flow_dist.base_dist
        base = base.expand(batch) if tuple(base.batch_shape) != tuple(batch) else base
        z = pyro.sample(f"{name}_base", base.to_event(extra) if extra else base)
        x = flow_dist.transforms[0](z)
        for layer in reversed(layers):  # innermost mixture first, as the mixtures' rsample applies them
            suffix, maps = _layer_maps(layer)
            probs = torch.full((*batch, len(maps)), 1.0 / len(maps), dtype=x.dtype, device=x.device)
            k = pyro.sample(f"{name}_{suffix}", dist.Categorical(probs).to_event(extra) if extra else
                            dist.Categorical(probs), infer={"enumerate": "parallel"})
            x = _select(k, [g(x) for g in maps], event_dims)
        msg["value"] = x
        msg["fn"] = dist.Delta(x, event_dim=event_dims + extra).mask(False)
        msg["is_observed"] = True
        msg["infer"] = {**msg.get("infer", {}), "_deterministic": True}


def _prior_kind(fn: Any) -> str:
    """``"flow"``, ``"mixture"`` or ``"other"`` for a site's distribution (``Independent`` wrappers removed)."""
    fn, _ = _unwrap_independent(fn)
    if isinstance(fn, FlowDistribution):
        return "flow"
    if _mixture_layers(fn) is not None:
        return "mixture"
    return "other"


class LatentModel:
    r"""A user model with its flow priors in latent space: what :func:`latent_reparam` returns.

    Calling it runs the reparametrised model (give it to ``NUTS``/``HMC``). A bare
    :class:`~pyro_nrg.distributions.FlowDistribution` site ``"field"`` becomes ``"field_base"``
    :math:`\sim\mathcal N(0, I)` and the deterministic :math:`x = g(z)` (Pyro's ``TransformReparam``). A symmetrised
    mixture (:class:`~pyro_nrg.distributions.Z2Symmetrized`, :class:`~pyro_nrg.distributions.LatticeSymmetrized`,
    nested) also gets one discrete component site per layer, ``"field_sign"`` (0: :math:`+x`, 1: :math:`-x`) and
    ``"field_symmetry"`` (index into the layer's maps), uniform and marked for parallel enumeration, so that NUTS sums
    them out exactly: the posterior of every other site is the plain model's, while the latents stay where the bare
    flow is good (the sign, not :math:`z`, carries the magnetisation sector).

    Enumerated sites are not in ``mcmc.get_samples()``: :meth:`physical_samples` draws them from their exact
    conditional given each draw and returns the original model's sites, ready for ``Predictive(model, ...)``.

    Attributes:
        model: the original model.
        sites: the site names to move (``None``: every flow prior found).
    """

    def __init__(self, model: Callable[..., Any], sites: Sequence[str] | None = None) -> None:
        self.model = model
        self.sites = None if sites is None else set(sites)
        self._checked = False

        def config(msg: dict[str, Any]) -> TransformReparam | None:
            if msg["type"] != "sample" or msg["is_observed"]:
                return None
            if self.sites is not None and msg["name"] not in self.sites:
                return None
            return TransformReparam() if _prior_kind(msg["fn"]) == "flow" else None

        self._reparam = _MixtureReparamMessenger(self.sites)(poutine.reparam(model, config=config))

    def _check_sites(self, *args: Any, **kwargs: Any) -> None:
        if self._checked or self.sites is None:
            return
        with poutine.block():
            tr = poutine.trace(self.model).get_trace(*args, **kwargs)
        for name in sorted(self.sites):
            site = tr.nodes.get(name)
            if site is None or site["type"] != "sample":
                raise PriorReparamError(
                    f"latent_reparam(sites=...) names {name!r}, which is not a sample site of the model: sites are "
                    f"{[n for n, s in tr.nodes.items() if s['type'] == 'sample']}"
                )
            if site["is_observed"] or _prior_kind(site["fn"]) == "other":
                what = "an observed site" if site["is_observed"] else f"a {type(site['fn']).__name__}"
                raise PriorReparamError(
                    f"site {name!r} is {what}, not a flow prior: latent_reparam moves FlowDistribution, Z2Symmetrized "
                    f"and LatticeSymmetrized priors of a FlowDistribution only; leave {name!r} out of sites (use "
                    f"Pyro's own reparam handlers for other distributions)"
                )
        self._checked = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._check_sites(*args, **kwargs)
        return self._reparam(*args, **kwargs)

    def component_sites(self, *args: Any, **kwargs: Any) -> list[str]:
        """Names of the enumerated component sites (``"<site>_sign"``, ``"<site>_symmetry"``) for these arguments."""
        with poutine.block():
            tr = poutine.trace(self).get_trace(*args, **kwargs)
        return [n for n, s in tr.nodes.items() if s["type"] == "sample" and s["infer"].get("enumerate") == "parallel"]

    def guide(self, rank: int | None = None, init_scale: float = 0.1) -> AutoContinuous:
        r"""A Gaussian SVI guide over the latent model's continuous sites (the flow latents and every other site).

        Full-rank (``AutoMultivariateNormal``) by default, or low rank plus diagonal
        (``AutoLowRankMultivariateNormal``, ``rank``) for large fields. In the flow's latent space the posterior of
        the field is close to Gaussian, so the correlations between the field and the hyper-parameters (the noise
        scale and the field trade off) are what such a guide captures and the mean-field ``AutoNormal`` misses:
        that gives tight, wrong intervals for the hyper-parameters. The mixture components are hidden from the
        guide: train with ``TraceEnum_ELBO``, which sums them out as NUTS does
        (``docs/physics.md``, "A guide for flow priors", compares it with NUTS).

        Example:
            >>> latent = latent_reparam(model)                                            # doctest: +SKIP
            >>> svi = SVI(latent, latent.guide(), ClippedAdam({"lr": 1e-2}), TraceEnum_ELBO())  # doctest: +SKIP
        """
        hidden = poutine.block(self, hide_fn=lambda msg: msg.get("infer", {}).get("enumerate") == "parallel")
        if rank is None:
            return AutoMultivariateNormal(hidden, init_scale=init_scale)
        return AutoLowRankMultivariateNormal(hidden, rank=rank, init_scale=init_scale)

    @torch.no_grad()
    def physical_samples(self, samples: dict[str, torch.Tensor], *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        r"""Map latent posterior draws to the original model's sites.

        For each draw the component sites are drawn from their exact conditional
        :math:`P(k \mid z, \theta, \text{data})` (Pyro's ``infer_discrete``), and the flow priors' sites get their
        physical values :math:`x = g_k(f(z))`; the other latent sites are passed through.

        Args:
            samples: ``mcmc.get_samples()`` of this model: each value ``(num_draws, *site_shape)``.
            *args: the model's positional arguments, as given to ``mcmc.run`` (the data the components depend on).
            **kwargs: its keyword arguments.

        Returns:
            ``{site: (num_draws, *shape)}`` for every latent site of the original model, the flow priors' sites in
            physical space, plus the component sites (so that ``Predictive(self, ...)`` replays them too).
        """
        with poutine.block():
            proto = poutine.trace(self).get_trace(*args, **kwargs)
        dims = [f.dim for s in proto.nodes.values() if s["type"] == "sample" for f in s["cond_indep_stack"]
                if f.vectorized]
        first = -1 - (-min(dims) if dims else 0)
        keep = [n for n, s in proto.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)
                and (not s["is_observed"] or s["infer"].get("_deterministic") or n in samples)]
        num = len(next(iter(samples.values())))
        out: dict[str, list[torch.Tensor]] = {n: [] for n in keep}
        for i in range(num):
            draw = {k: v[i] for k, v in samples.items()}
            model = infer_discrete(poutine.condition(self, data=draw), first_available_dim=first)
            with poutine.block():
                tr = poutine.trace(model).get_trace(*args, **kwargs)
            for n in keep:
                out[n].append(tr.nodes[n]["value"])
        return {n: torch.stack(v) for n, v in out.items()}


def latent_reparam(model: Callable[..., Any], sites: Sequence[str] | None = None) -> LatentModel:
    r"""Make NUTS on a user model run in the latent space of its flow priors.

    Every site whose distribution is a :class:`~pyro_nrg.distributions.FlowDistribution`, a
    :class:`~pyro_nrg.distributions.Z2Symmetrized` or :class:`~pyro_nrg.distributions.LatticeSymmetrized` mixture
    of one (or the named ``sites``) is split into ``"<site>_base"`` :math:`\sim \mathcal N(0, I)`, one enumerated
    component site per mixture layer, and the deterministic physical value (see :class:`LatentModel`): the
    posterior geometry becomes that of the renormalized variables, and the posterior of every other site is
    unchanged.

    Raises:
        PriorReparamError: (on the first call) a named site that is not a flow prior.

    Example:
        >>> def model(y):
        ...     field = pyro.sample("field", prior)              # FlowDistribution or Z2Symmetrized(...)
        ...     pyro.sample("y", dist.Normal(field, 0.5).to_event(2), obs=y)
        >>> latent = latent_reparam(model)
        >>> mcmc = MCMC(NUTS(latent), 500, warmup_steps=300); mcmc.run(y)           # doctest: +SKIP
        >>> post = latent.physical_samples(mcmc.get_samples(), y)   # "field" in physical space  # doctest: +SKIP
        >>> Predictive(model, posterior_samples=post)(None)                          # doctest: +SKIP
    """
    return LatentModel(model, sites)
