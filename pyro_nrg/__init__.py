"""pyro_nrg: Neural network renormalization group and neural canonical transformations for Pyro."""

from . import energies, errors, lattice, testing, transforms
from .lattice import Lattice

__version__ = "0.1.0"

__all__ = ["energies", "errors", "lattice", "testing", "transforms", "Lattice", "__version__"]
