r"""Energies as Pyro models, and flows as Pyro guides.

:func:`boltzmann_model` turns any :class:`~pyro_nrg.energies.Energy` into a Pyro model for
:math:`p(x) \propto e^{-\beta E(x)}`: one sample site (default name ``"x"``) whose distribution is a *samplable*
flat density — ``Normal(0, 1).expand(event_shape).to_event(k).mask(False)``, which contributes zero log-density —
plus ``pyro.factor("boltzmann", -beta * E(x))``. (``dist.ImproperUniform`` would be the textbook flat site, but it
cannot be sampled, which breaks every init strategy except ``init_to_value`` and ``az.from_pyro``.) Users may add
their own sites and observations around it by calling :func:`boltzmann_site` inside their model.

Plates: the model declares none; vectorised particles (``Trace_ELBO(num_particles=B, vectorize_particles=True)``)
add the leftmost batch dimension, so every site value has shape ``(B, *event_shape)``.

:class:`FlowGuide` is a Pyro :class:`~pyro.infer.autoguide.AutoContinuous` whose posterior over the packed latent
vector is a flow (optionally :math:`Z_2`-symmetrized), so :class:`~pyro.infer.reparam.NeuTraReparam` accepts it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoContinuous
from pyro.infer.autoguide.initialization import init_to_sample

from ..distributions import FlowDistribution, LatticeSymmetrized, Z2Symmetrized, standard_normal
from ..dtypes import module_dtype_device
from ..energies.base import Energy
from ..errors import EventShapeError
from ..transforms.base import PairedTransformModule, Reshaped

__all__ = ["flat_site_distribution", "boltzmann_site", "boltzmann_model", "FlowGuide", "symmetrize"]


def flat_site_distribution(
    event_shape: tuple[int, ...], dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> dist.TorchDistribution:
    """A samplable site with zero log-density (a flat 'prior' that Pyro's init strategies and ArviZ accept)."""
    return standard_normal(tuple(event_shape), dtype, device).mask(False)


def boltzmann_site(energy: Energy, site: str = "x", factor_name: str = "boltzmann") -> torch.Tensor:
    r"""Inside a Pyro model: sample the flat site ``site`` and add ``pyro.factor(factor_name, -beta E(x))``.

    Returns the configuration ``x`` of shape ``(*plates, *event_shape)``. The flat site is in torch's default
    dtype (its log-density is zero; only Pyro's init strategies draw from it).
    """
    x = pyro.sample(site, flat_site_distribution(energy.event_shape))
    pyro.factor(factor_name, -energy.action(x))
    return x


def boltzmann_model(energy: Energy, site: str = "x") -> Callable[[], torch.Tensor]:
    r"""A Pyro model of the Boltzmann density :math:`e^{-\beta E(x)}/Z` of ``energy``.

    Example:
        >>> from pyro_nrg.energies import IsingRelaxed
        >>> model = boltzmann_model(IsingRelaxed(4, 2.5))
        >>> pyro.poutine.trace(model).get_trace().nodes["x"]["value"].shape
        torch.Size([4, 4])
    """

    def model() -> torch.Tensor:
        return boltzmann_site(energy, site)

    model.energy = energy  # type: ignore[attr-defined]
    model.site = site  # type: ignore[attr-defined]
    return model


def symmetrize(
    q: dist.TorchDistribution,
    z2_symmetric: bool = False,
    translations: int = 1,
    point_group: bool = False,
    lattice_shape: tuple[int, ...] | None = None,
) -> dist.TorchDistribution:
    r"""Wrap ``q`` in the symmetrised mixtures it asks for: :class:`~pyro_nrg.distributions.Z2Symmetrized` (sign),
    then :class:`~pyro_nrg.distributions.LatticeSymmetrized` (``translations > 1`` or ``point_group``) on
    ``lattice_shape`` (default: ``q.event_shape``). Without any of them ``q`` is returned as it is."""
    if z2_symmetric:
        q = Z2Symmetrized(q)
    if int(translations) > 1 or point_group:
        q = LatticeSymmetrized(q, tuple(lattice_shape or q.event_shape), int(translations), bool(point_group))
    return q


class FlowGuide(AutoContinuous):
    r"""A Pyro ``AutoContinuous`` guide whose posterior is a normalizing flow (optionally Z₂-symmetrized).

    The guide sees only ``site`` (other sites of the model are blocked, so it can be combined with other
    autoguides in an :class:`~pyro.infer.autoguide.AutoGuideList`). A lattice flow (event ``(L, L)``) is wrapped
    in :class:`~pyro_nrg.transforms.Reshaped` to act on Pyro's flat latent vector.

    Args:
        model: a Pyro model containing ``site`` (e.g. :func:`boltzmann_model`).
        flow: transform module, latent → physical, with ``event_shape`` equal to the site's event shape (or flat).
        site: the model site to cover.
        z2_symmetric: use the mixture :math:`\tfrac12[q(x)+q(-x)]` as the posterior.
        translations: average the posterior over lattice shifts by :math:`\{0..t-1\}^d` sites
            (:class:`~pyro_nrg.distributions.LatticeSymmetrized`; 1 = off). Costs :math:`t^d` evaluations of
            :math:`\ln q` per ``log_prob``.
        point_group: also average over the rotations and reflections of the lattice (8 on the square).
        path_gradient: score the guide's own samples with detached flow parameters (path-gradient / "sticking
            the landing" estimator of the ELBO gradient; same values, lower-variance gradients).

    Attributes:
        flow: the (un-flattened) flow; ``guide.get_transform()`` is its flat version for ``NeuTraReparam``.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        flow: PairedTransformModule,
        site: str = "x",
        z2_symmetric: bool = False,
        path_gradient: bool = False,
        translations: int = 1,
        point_group: bool = False,
    ) -> None:
        self.site = site
        self.z2_symmetric = bool(z2_symmetric)
        self.translations = int(translations)
        self.point_group = bool(point_group)
        self.path_gradient = bool(path_gradient)
        super().__init__(poutine.block(model, expose=[site]), init_loc_fn=init_to_sample)
        self.flow = flow
        es = tuple(getattr(flow, "event_shape", ()))
        self._flat = flow if len(es) == 1 else Reshaped(flow, es)

    def __getattr__(self, name: str) -> Any:
        # inside direct_parameters() the flow is handed out as it is, without Pyro's per-access pyro.module
        if name in ("flow", "_flat") and self.__dict__.get("_direct_parameters", False):
            modules = self.__dict__["_modules"]
            if name in modules:
                return modules[name]
        return super().__getattr__(name)

    @contextlib.contextmanager
    def direct_parameters(self) -> Iterator[None]:
        """Inside the block, running the guide does not register the flow's parameters with Pyro.

        A Pyro module announces every parameter of a plain ``nn.Module`` attribute with ``pyro.param`` each time
        the attribute is read, so that ``SVI`` can find them: one message per parameter and guide call, a
        noticeable share of a small flow's step time. A loop that optimises ``flow.parameters()`` itself (as
        :class:`~pyro_nrg.infer.Distiller` does) has no use for them; ``SVI`` does, so keep them outside this block.
        """
        previous = self.__dict__.get("_direct_parameters", False)
        self.__dict__["_direct_parameters"] = True
        try:
            yield
        finally:
            self.__dict__["_direct_parameters"] = previous

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        names = [name for name, _ in self.prototype_trace.iter_stochastic_nodes()]
        if names != [self.site]:
            raise EventShapeError(f"FlowGuide covers exactly the site {self.site!r}; the model exposes {names}")
        n = getattr(self._flat, "size", None) or int(torch.Size(self.flow.event_shape).numel())
        if self.latent_dim != n:
            raise EventShapeError(
                f"site {self.site!r} has {self.latent_dim} unconstrained values but the flow acts on {n}: build the "
                f"flow for the site's event shape {tuple(self.prototype_trace.nodes[self.site]['value'].shape)}"
            )

    def get_base_dist(self) -> dist.TorchDistribution:
        dtype, device = module_dtype_device(self.flow)
        return standard_normal((self.latent_dim,), dtype, device)

    def get_transform(self, *args: Any, **kwargs: Any) -> PairedTransformModule:
        return self._flat

    def get_posterior(self, *args: Any, **kwargs: Any) -> dist.TorchDistribution:
        q = FlowDistribution(self._flat, (self.latent_dim,), path_gradient=self.path_gradient)
        return self.symmetrize(q)

    def lattice_shape(self) -> tuple[int, ...]:
        """Shape of one configuration of the site, read from the model (a flat flow's event shape is not it)."""
        if getattr(self, "prototype_trace", None) is None:
            with torch.random.fork_rng():  # runs the model once; keep it off the caller's RNG stream
                self._setup_prototype()
        return tuple(self.prototype_trace.nodes[self.site]["fn"].event_shape)

    def symmetrize(self, q: dist.TorchDistribution) -> dist.TorchDistribution:
        """``q`` wrapped in this guide's symmetrised mixtures (see :func:`symmetrize`)."""
        lattice = self.lattice_shape() if self.translations > 1 or self.point_group else None
        return symmetrize(q, self.z2_symmetric, self.translations, self.point_group, lattice)

    def distribution(self, latent_scale: float = 1.0) -> dist.TorchDistribution:
        """The variational distribution on the site's own event shape (no Pyro bookkeeping).

        ``latent_scale > 1`` widens the latent Gaussian: a broader proposal for flow-MH or importance sampling.
        """
        return self.symmetrize(FlowDistribution(self.flow, latent_scale=latent_scale))
