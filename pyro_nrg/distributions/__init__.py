r"""Distributions the package hands out: flow priors, their symmetrised mixtures, phase-space oscillator models.

* :mod:`~pyro_nrg.distributions.flow` — :class:`FlowDistribution` (a standard normal pushed through a flow; save and
  load) and the path-gradient ``log_prob`` (:func:`detached_parameters`, :func:`detached_log_prob`).
* :mod:`~pyro_nrg.distributions.symmetrized` — :class:`Z2Symmetrized`, :class:`LatticeSymmetrized`.
* :mod:`~pyro_nrg.distributions.conditional` — :class:`ConditionalFlowDistribution`, :math:`q(x\mid T)` at any
  temperature of its range; ``.condition(T)`` is a :class:`FlowDistribution`.
* :mod:`~pyro_nrg.distributions.phase_space` — latent :class:`HarmonicOscillators`, the symplectic
  :class:`PhaseSpaceFlow` and the neural canonical transformation :class:`CanonicalFlow` with its builders.
"""

from .conditional import ConditionalFlowDistribution
from .flow import (
    FlowDistribution,
    detached_log_prob,
    detached_parameters,
    load_flow_file,
    read_flow_file,
    refuse_conditional,
    save_flow_file,
    standard_normal,
)
from .phase_space import (
    CanonicalFlow,
    HarmonicOscillators,
    PhaseSpaceFlow,
    canonical_flow,
    pca_canonical_flow,
    rotate_oscillators,
)
from .symmetrized import (
    LatticeSymmetrized,
    SymmetryMap,
    Z2Symmetrized,
    lattice_symmetry_maps,
    load_distribution,
    save_distribution,
)

__all__ = [
    "FlowDistribution",
    "ConditionalFlowDistribution",
    "standard_normal",
    "detached_log_prob",
    "detached_parameters",
    "save_flow_file",
    "refuse_conditional",
    "read_flow_file",
    "load_flow_file",
    "Z2Symmetrized",
    "LatticeSymmetrized",
    "lattice_symmetry_maps",
    "SymmetryMap",
    "save_distribution",
    "load_distribution",
    "HarmonicOscillators",
    "PhaseSpaceFlow",
    "CanonicalFlow",
    "canonical_flow",
    "pca_canonical_flow",
    "rotate_oscillators",
]
