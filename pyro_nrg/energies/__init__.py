"""Unnormalized potentials ``E(x)`` of shape ``batch_shape``, with exact references where they exist."""

from .base import Energy, check_temperature
from .hamiltonians import HarmonicChain, RingHamiltonian, SeparableHamiltonian, velocity_verlet
from .ising import (
    DEFAULT_MARGIN,
    ISING_TC,
    IsingEnumeration,
    IsingRelaxed,
    NoExactSolutionError,
    NotNormalizableError,
    NotPositiveDefiniteError,
    adjacency_spectrum,
    enumerate_ising,
    exact_ising_energy_per_site,
    exact_ising_log_z,
    exact_ising_m2,
)
from .phi4 import Phi4, mass_to_hopping
from .transfer_matrix import (
    MAX_TRANSFER_MATRIX_L,
    IsingMoments,
    exact_ising_moments,
    exact_ising_spins,
    ising_magnetization_log_weights,
)
from .wolff import WolffEstimate, wolff_ising, wolff_spins

__all__ = [
    "Energy",
    "check_temperature",
    "ISING_TC",
    "DEFAULT_MARGIN",
    "IsingRelaxed",
    "IsingEnumeration",
    "enumerate_ising",
    "exact_ising_log_z",
    "exact_ising_energy_per_site",
    "exact_ising_m2",
    "exact_ising_moments",
    "ising_magnetization_log_weights",
    "IsingMoments",
    "MAX_TRANSFER_MATRIX_L",
    "exact_ising_spins",
    "wolff_ising",
    "wolff_spins",
    "WolffEstimate",
    "adjacency_spectrum",
    "Phi4",
    "mass_to_hopping",
    "NotNormalizableError",
    "NotPositiveDefiniteError",
    "NoExactSolutionError",
    "SeparableHamiltonian",
    "RingHamiltonian",
    "HarmonicChain",
    "velocity_verlet",
]
