"""pyro_nrg: Neural network renormalization group and neural canonical transformations for Pyro.

Subpackages: :mod:`~pyro_nrg.energies` (potentials with exact references), :mod:`~pyro_nrg.transforms` (Pyro
``TransformModule``s, latent → physical), :mod:`~pyro_nrg.flows` (assembled architectures),
:mod:`~pyro_nrg.distributions` (flow priors, symmetrised mixtures, phase-space models), :mod:`~pyro_nrg.infer`
(distillation, estimators, MCMC), :mod:`~pyro_nrg.analysis` (ArviZ, efficiency, mutual information, slow modes),
:mod:`~pyro_nrg.io` (atomic writes), :mod:`~pyro_nrg.testing`,
:mod:`~pyro_nrg.data` (alanine dipeptide MD and digits for the real-world demos; OpenMM/scikit-learn optional).
"""

from . import (
    analysis,
    data,
    distributions,
    energies,
    errors,
    flows,
    infer,
    io,
    lattice,
    testing,
    transforms,
)
from .analysis import to_inference_data
from .distributions import (
    CanonicalFlow,
    FlowDistribution,
    HarmonicOscillators,
    PhaseSpaceFlow,
    Z2Symmetrized,
    canonical_flow,
)
from .energies import ISING_TC, IsingRelaxed, Phi4
from .flows import NeuralRGConfig, neural_rg
from .infer import distill, estimate_free_energy, flow_mh, latent_hmc_walkers, latent_nuts, physical_nuts
from .lattice import Lattice

__version__ = "0.1.0"

__all__ = [
    "analysis",
    "to_inference_data",
    "latent_nuts",
    "latent_hmc_walkers",
    "physical_nuts",
    "analysis",
    "data",
    "CanonicalFlow",
    "HarmonicOscillators",
    "PhaseSpaceFlow",
    "canonical_flow",
    "distributions",
    "energies",
    "errors",
    "flows",
    "infer",
    "io",
    "lattice",
    "testing",
    "transforms",
    "FlowDistribution",
    "Z2Symmetrized",
    "ISING_TC",
    "IsingRelaxed",
    "Phi4",
    "NeuralRGConfig",
    "neural_rg",
    "distill",
    "estimate_free_energy",
    "flow_mh",
    "Lattice",
    "__version__",
]
