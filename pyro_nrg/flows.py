"""Assembled architectures, described by JSON-serialisable configs so checkpoints can rebuild them.

One config dataclass and one builder per flow kind:

=========================  ===============================  ==================================================
``kind``                   config                           builder
=========================  ===============================  ==================================================
``neural_rg``              :class:`NeuralRGConfig`          :func:`neural_rg` (the NeuralRG hierarchy)
``symplectic``             :class:`SymplecticFlowConfig`    :func:`symplectic` (a neural canonical transformation)
``polar_symplectic``       :class:`PolarSymplecticConfig`   :func:`polar_symplectic` (one particle in the plane)
``conditional_neural_rg``  :class:`ConditionalNeuralRGConfig`  :func:`conditional_neural_rg` (NeuralRG at any T)
=========================  ===============================  ==================================================

A built flow carries its config as ``flow.config`` (a plain dict), which checkpoints and
:class:`~pyro_nrg.distributions.FlowDistribution` save beside the ``state_dict``; :func:`build_flow` rebuilds any
kind from that dict.

Example:
    >>> cfg = NeuralRGConfig(L=8, dim=2, n_couplings=4, hidden=32)
    >>> flow = neural_rg(cfg)
    >>> flow.config["L"]
    8
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

import torch
from pyro.distributions.torch_transform import ComposeTransformModule

from .errors import ConfigMismatchError
from .transforms.conditional import ConditionalHierarchicalFlow
from .transforms.hierarchical import HierarchicalFlow, hierarchical_flow
from .transforms.symplectic import SymplecticLinearMap, polar_symplectic_flow, symplectic_flow

__all__ = [
    "FlowConfig",
    "NeuralRGConfig",
    "SymplecticFlowConfig",
    "PolarSymplecticConfig",
    "ConditionalNeuralRGConfig",
    "neural_rg",
    "conditional_neural_rg",
    "symplectic",
    "polar_symplectic",
    "build_flow",
    "flow_config",
    "normalized_flow_config",
]


# Fields added after configs were first saved, with the value every flow saved before had (not today's default).
LEGACY_DEFAULTS: dict[str, Any] = {"head": "none", "coupling": "affine", "coupling_terms": 2}

C = TypeVar("C", bound="FlowConfig")


class FlowConfig:
    """Base of the flow configs: a dataclass with a ``kind`` field, saved as a plain dict."""

    kind: str
    legacy_defaults: ClassVar[dict[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigMismatchError`, fields missing from an older
        config take the value flows of that time had (``legacy_defaults``), else today's default."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - names
        if unknown:
            raise ConfigMismatchError(
                f"unknown {cls.__name__} keys {sorted(unknown)}: was this saved by another pyro_nrg version?"
            )
        return cls(**{**cls.legacy_defaults, **d})


def _config(cls: type[C], config: C | None, overrides: dict[str, Any]) -> C:
    cfg = config or cls()
    return cls.from_dict({**cfg.to_dict(), **overrides}) if overrides else cfg


@dataclass
class NeuralRGConfig(FlowConfig):
    r"""Hyper-parameters of a NeuralRG flow (see :func:`~pyro_nrg.transforms.hierarchical_flow`).

    The defaults are a fast, accurate choice for ``L <= 16`` on a CPU; the published NeuralRG run used
    ``n_couplings=10``, 3 hidden layers of width 10–64 and no head. The default ``head="tanh"`` ends the flow with
    a smooth odd element-wise map on every site (:class:`~pyro_nrg.transforms.OddTanhSum`), which lets the
    affine hierarchy make the bimodal site densities of the relaxed Ising model and, being :math:`C^\infty`, keeps
    the latent potential of HMC smooth (``benchmarks/free_energy.py``, ``benchmarks/sampling.py``).
    ``head="spline"`` (:class:`~pyro_nrg.transforms.ElementwiseSpline`, :math:`C^1`) and ``head="none"`` (the
    paper's flow) remain available. For the lowest F_q in a fixed time add depth rather than width (``repeats=3``,
    at three times the cost of every flow evaluation, latent-HMC gradients included) and use ``activation="silu"``
    (a cheaper kernel than ELU's); ``benchmarks/flow_ablation.py --set capacity`` and ``benchmarks/free_energy.py``
    measure both (figures in ``docs/physics.md``, "Depth"). The defaults stay ``repeats=1`` and ELU because the
    sampling figures (``benchmarks/sampling.py``) were measured with them.
    Configs saved before a field existed load with the value those flows had (``LEGACY_DEFAULTS``: no ``head``
    key means ``head="none"``).
    """

    L: int = 8
    dim: int = 2
    n_levels: int | None = None
    n_couplings: int = 4
    hidden: int = 32
    n_hidden_layers: int = 2
    repeats: int = 1
    activation: str = "elu"
    additive: bool = False
    scale_bound: float = 2.0
    flat: bool = False
    odd: bool = False
    head: str = "tanh"
    head_bins: int = 16
    head_bound: float = 6.0
    head_terms: int = 4
    coupling: str = "affine"
    coupling_terms: int = 2
    kind: str = "neural_rg"

    legacy_defaults: ClassVar[dict[str, Any]] = LEGACY_DEFAULTS


@dataclass
class SymplecticFlowConfig(FlowConfig):
    r"""Hyper-parameters of a neural canonical transformation (see
    :func:`~pyro_nrg.transforms.symplectic.symplectic_flow`) on a phase space of ``2n`` dimensions.

    ``fixed_map`` appends a fixed :class:`~pyro_nrg.transforms.SymplecticLinearMap` on the physical side (the identity
    when built; its matrix is data, e.g. the PCA map of :func:`~pyro_nrg.distributions.pca_canonical_flow`, and comes
    back with the ``state_dict``).
    """

    n: int = 1
    n_blocks: int = 2
    n_couplings: int = 4
    hidden: int = 32
    depth: int = 2
    shears: bool = True
    linear: bool = True
    scaling: bool = True
    fixed_map: bool = False
    kind: str = "symplectic"


@dataclass
class PolarSymplecticConfig(FlowConfig):
    """Hyper-parameters of :func:`~pyro_nrg.transforms.symplectic.polar_symplectic_flow` (one particle in the
    plane, ending in polar coordinates)."""

    n_blocks: int = 2
    n_couplings: int = 2
    hidden: int = 64
    depth: int = 2
    log_radius: float = 0.0
    angle_map: str = "erf"
    log_radial_scale: float = 0.0
    log_angle_scale: float = 0.0
    kind: str = "polar_symplectic"


@dataclass
class ConditionalNeuralRGConfig(NeuralRGConfig):
    r"""Hyper-parameters of a temperature-conditioned NeuralRG flow
    (:class:`~pyro_nrg.transforms.ConditionalHierarchicalFlow`): those of :class:`NeuralRGConfig` plus how the
    temperature enters every coupling's hypernet (``conditioning``: ``"film"`` or ``"concat"``; see
    :class:`~pyro_nrg.transforms.ConditionalMLP`), whether the element-wise head depends on it too
    (``condition_head``; :class:`~pyro_nrg.transforms.ConditionalOddTanhSum`) and the temperature range
    ``[t_min, t_max]`` that fixes the context feature. Affine couplings only. The default ``conditioning`` is the
    one the side-by-side run of ``benchmarks/temperature.py`` measured better (``docs/physics.md``, "One flow for
    a range of temperatures").
    """

    conditioning: str = "film"
    condition_head: bool = True
    t_min: float = 1.8
    t_max: float = 3.5
    kind: str = "conditional_neural_rg"


def _hierarchy(cfg: NeuralRGConfig, **extra: Any) -> HierarchicalFlow:
    return hierarchical_flow(
        cfg.L,
        cfg.dim,
        n_levels=cfg.n_levels,
        n_couplings=cfg.n_couplings,
        hidden=cfg.hidden,
        n_hidden_layers=cfg.n_hidden_layers,
        repeats=cfg.repeats,
        activation=cfg.activation,
        additive=cfg.additive,
        scale_bound=cfg.scale_bound,
        flat=cfg.flat,
        odd=cfg.odd,
        head=cfg.head,
        head_bins=cfg.head_bins,
        head_bound=cfg.head_bound,
        head_terms=cfg.head_terms,
        coupling=cfg.coupling,
        coupling_terms=cfg.coupling_terms,
        **extra,
    )


def neural_rg(config: NeuralRGConfig | None = None, **overrides: Any) -> HierarchicalFlow:
    """Build the NeuralRG flow for ``config`` (fields may be overridden by keyword) and attach ``flow.config``."""
    cfg = _config(NeuralRGConfig, config, overrides)
    flow = _hierarchy(cfg)
    flow.config = cfg.to_dict()
    return flow


def conditional_neural_rg(
    config: ConditionalNeuralRGConfig | None = None, **overrides: Any
) -> ConditionalHierarchicalFlow:
    """Build the temperature-conditioned NeuralRG flow for ``config`` (fields may be overridden by keyword) and
    attach ``flow.config``.

    Example:
        >>> flow = conditional_neural_rg(L=4, hidden=8)
        >>> flow.config["kind"], flow.condition(2.5)(torch.zeros(2, 4, 4)).shape
        ('conditional_neural_rg', torch.Size([2, 4, 4]))
    """
    cfg = _config(ConditionalNeuralRGConfig, config, overrides)
    if cfg.coupling != "affine":
        raise ConfigMismatchError(f"a conditional NeuralRG flow has affine couplings, got coupling={cfg.coupling!r}: "
                                  "use coupling='affine'")
    hierarchy = _hierarchy(cfg, context_dim=1, conditioning=cfg.conditioning, condition_head=cfg.condition_head)
    flow = ConditionalHierarchicalFlow(hierarchy, cfg.t_min, cfg.t_max)
    flow.config = cfg.to_dict()
    return flow


def symplectic(config: SymplecticFlowConfig | None = None, **overrides: Any) -> ComposeTransformModule:
    """Build the symplectic flow for ``config`` (fields may be overridden by keyword) and attach ``flow.config``.

    Example:
        >>> flow = symplectic(n=2, n_blocks=1, hidden=8)
        >>> flow.config["kind"], flow(torch.zeros(3, 4)).shape
        ('symplectic', torch.Size([3, 4]))
    """
    cfg = _config(SymplecticFlowConfig, config, overrides)
    flow = symplectic_flow(
        cfg.n,
        n_blocks=cfg.n_blocks,
        n_couplings=cfg.n_couplings,
        hidden=cfg.hidden,
        depth=cfg.depth,
        shears=cfg.shears,
        linear=cfg.linear,
        scaling=cfg.scaling,
    )
    if cfg.fixed_map:
        flow = ComposeTransformModule([*flow.parts, SymplecticLinearMap(torch.eye(2 * cfg.n))])
    flow.config = cfg.to_dict()
    return flow


def polar_symplectic(config: PolarSymplecticConfig | None = None, **overrides: Any) -> ComposeTransformModule:
    """Build the polar symplectic flow for ``config`` (fields may be overridden by keyword), with ``flow.config``."""
    cfg = _config(PolarSymplecticConfig, config, overrides)
    flow = polar_symplectic_flow(
        n_blocks=cfg.n_blocks,
        n_couplings=cfg.n_couplings,
        hidden=cfg.hidden,
        depth=cfg.depth,
        log_radius=cfg.log_radius,
        angle_map=cfg.angle_map,
        log_radial_scale=cfg.log_radial_scale,
        log_angle_scale=cfg.log_angle_scale,
    )
    flow.config = cfg.to_dict()
    return flow


_KINDS: dict[str, tuple[type[FlowConfig], Any]] = {
    "neural_rg": (NeuralRGConfig, neural_rg),
    "symplectic": (SymplecticFlowConfig, symplectic),
    "polar_symplectic": (PolarSymplecticConfig, polar_symplectic),
    "conditional_neural_rg": (ConditionalNeuralRGConfig, conditional_neural_rg),
}


def flow_config(flow: Any) -> dict[str, Any] | None:
    """The config dict attached to a flow by a builder, or ``None`` for a hand-made flow."""
    cfg = getattr(flow, "config", None)
    return dict(cfg) if isinstance(cfg, dict) else None


def normalized_flow_config(config: dict[str, Any]) -> dict[str, Any]:
    """A saved flow config with every field filled in (legacy fields as those flows had them), so that configs
    saved by different pyro_nrg versions compare equal when they describe the same flow."""
    known = _KINDS.get(config.get("kind"))  # type: ignore[arg-type]
    return known[0].from_dict(dict(config)).to_dict() if known else dict(config)


def build_flow(config: dict[str, Any]) -> Any:
    """Rebuild a flow from a config dict saved by :func:`flow_config` (dispatch on ``config["kind"]``).

    Raises:
        ConfigMismatchError: an unknown kind, or keys the kind's config does not have.
    """
    kind = config.get("kind")
    if kind not in _KINDS:
        raise ConfigMismatchError(f"cannot rebuild a flow of kind {kind!r}: known kinds are {sorted(_KINDS)}")
    cls, builder = _KINDS[kind]
    return builder(cls.from_dict(config))
