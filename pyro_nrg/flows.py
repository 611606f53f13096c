"""Assembled architectures, described by JSON-serialisable configs so checkpoints can rebuild them.

:class:`NeuralRGConfig` describes a NeuralRG hierarchical flow; :func:`neural_rg` builds it. The flow carries
its config as ``flow.config`` (a plain dict), which checkpoints and :class:`~pyro_nrg.distributions.FlowDistribution`
save beside the ``state_dict``.

Example:
    >>> cfg = NeuralRGConfig(L=8, dim=2, n_couplings=4, hidden=32)
    >>> flow = neural_rg(cfg)
    >>> flow.config["L"]
    8
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ConfigMismatchError
from .transforms.hierarchical import HierarchicalFlow, hierarchical_flow

__all__ = ["NeuralRGConfig", "neural_rg", "build_flow", "flow_config", "normalized_flow_config"]


# Fields added after configs were first saved, with the value every flow saved before had (not today's default).
LEGACY_DEFAULTS: dict[str, Any] = {"head": "none", "coupling": "affine", "coupling_terms": 2}


@dataclass
class NeuralRGConfig:
    r"""Hyper-parameters of a NeuralRG flow (see :func:`~pyro_nrg.transforms.hierarchical_flow`).

    The defaults are a fast, accurate choice for ``L <= 16`` on a CPU; the published NeuralRG run used
    ``n_couplings=10``, 3 hidden layers of width 10–64 and no head. The default ``head="tanh"`` ends the flow with
    a smooth odd element-wise map on every site (:class:`~pyro_nrg.transforms.OddTanhSum`), which lets the
    affine hierarchy make the bimodal site densities of the relaxed Ising model: on the 2D Ising model at
    :math:`T_c` it lowered F_q at equal training time (``benchmarks/free_energy.py``, ablation) and, being
    :math:`C^\infty`, raised latent NUTS's ESS per gradient at L = 16 3.5× over the :math:`C^1` spline head
    (``benchmarks/results/sampling.json`` against ``sampling_head_spline.json``). ``head="spline"``
    (:class:`~pyro_nrg.transforms.ElementwiseSpline`) and ``head="none"`` (the paper's flow) remain available.
    For the lowest F_q in a fixed time, add depth rather than width: at L = 8 and 900 s of training,
    ``repeats=3`` reached F_q 0.18 % above exact against 0.28 % for the default (``repeats=2``: 0.20 %; hidden 64
    or 8 couplings did not help at equal time; ``benchmarks/flow_ablation.py --set capacity``), at 3× the cost of
    every flow evaluation, latent-HMC gradients included. ``activation="silu"`` also helps: its kernel is cheaper
    than ELU's (20 % more training steps in the same time) and at L = 8, ``repeats=3``, 300 s it reached F_q
    0.180 % and 0.168 % (seeds 0, 1) against 0.223 % and 0.207 % with ELU; ``benchmarks/free_energy.py`` uses both.
    The defaults stay ``repeats=1`` and ELU because the sampling figures (``benchmarks/sampling.py``) were measured
    with them.
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

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuralRGConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigMismatchError`."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigMismatchError(
                f"unknown NeuralRG config keys {sorted(unknown)}: was this saved by another pyro_nrg version?"
            )
        return cls(**{**LEGACY_DEFAULTS, **d})


def neural_rg(config: NeuralRGConfig | None = None, **overrides: Any) -> HierarchicalFlow:
    """Build the NeuralRG flow for ``config`` (fields may be overridden by keyword) and attach ``flow.config``."""
    cfg = config or NeuralRGConfig()
    if overrides:
        cfg = NeuralRGConfig.from_dict({**cfg.to_dict(), **overrides})
    flow = hierarchical_flow(
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
    )
    flow.config = cfg.to_dict()
    return flow


def flow_config(flow: Any) -> dict[str, Any] | None:
    """The config dict attached to a flow by a builder, or ``None`` for a hand-made flow."""
    cfg = getattr(flow, "config", None)
    return dict(cfg) if isinstance(cfg, dict) else None


def normalized_flow_config(config: dict[str, Any]) -> dict[str, Any]:
    """A saved flow config with every field filled in (legacy fields as those flows had them), so that configs
    saved by different pyro_nrg versions compare equal when they describe the same flow."""
    if config.get("kind") == "neural_rg":
        return NeuralRGConfig.from_dict(dict(config)).to_dict()
    return dict(config)


def build_flow(config: dict[str, Any]) -> Any:
    """Rebuild a flow from a config dict saved by :func:`flow_config` (dispatch on ``config["kind"]``)."""
    kind = config.get("kind")
    if kind == "neural_rg":
        return neural_rg(NeuralRGConfig.from_dict(config))
    raise ConfigMismatchError(f"cannot rebuild a flow of kind {kind!r}: known kinds are ['neural_rg']")
