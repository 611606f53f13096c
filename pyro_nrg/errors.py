"""Named exceptions. Every message says what was wrong *and* how to fix it.

All errors derive from :class:`PyroNRGError`, so ``except PyroNRGError`` catches everything the package raises
on purpose; each also derives from the closest built-in (``ValueError``...) so generic handlers still work.
"""

from __future__ import annotations

__all__ = [
    "PyroNRGError",
    "LatticeSizeError",
    "EventShapeError",
    "TemperatureError",
    "NonFiniteError",
    "InverseNotConvergedError",
    "ConfigMismatchError",
    "CheckpointError",
    "DiskFullError",
    "TrainingDivergedError",
    "NotNormalizableError",
    "NotPositiveDefiniteError",
    "NoExactSolutionError",
    "NotSymmetricError",
    "DataCacheError",
    "DataSettingsError",
    "MissingDependencyError",
    "SamplerSettingsError",
    "StudyConfigError",
    "RunFolderError",
    "RunFolderLockedError",
    "PriorReparamError",
]


class PyroNRGError(Exception):
    """Base class of every error raised on purpose by pyro_nrg."""


class LatticeSizeError(PyroNRGError, ValueError):
    """The lattice side or dimension cannot be used (e.g. not a power of two for a hierarchical flow)."""


class EventShapeError(PyroNRGError, ValueError):
    """A tensor's trailing (event) dimensions do not match the lattice or phase space."""


class TemperatureError(PyroNRGError, ValueError):
    """A temperature (or inverse temperature) that is not a finite positive number."""


class NonFiniteError(PyroNRGError, ValueError):
    """A configuration, energy or loss contains NaN or infinity."""


class InverseNotConvergedError(PyroNRGError, ArithmeticError):
    """A numerical inverse (the root of a monotone map, e.g. :class:`~pyro_nrg.transforms.OddTanhSum`) did not
    reach its tolerance."""


class ConfigMismatchError(PyroNRGError, ValueError):
    """A checkpoint or saved object was made for a different model configuration."""


class CheckpointError(PyroNRGError, RuntimeError):
    """A checkpoint file is missing, unreadable, or not a pyro_nrg checkpoint."""


class DiskFullError(PyroNRGError, OSError):
    """The device has no space left for a file pyro_nrg writes: the message says how many bytes it needs and how many
    are free; the previous file is intact and no partial temp file is left behind."""


class TrainingDivergedError(PyroNRGError, RuntimeError):
    """Training diverged (a NaN/inf loss or gradient, a free energy far above its running median, or a gradient
    norm beyond the limit); the parameters of the failing step were not applied and the last checkpoint, written
    before the divergence, is kept."""


class NotNormalizableError(PyroNRGError, ValueError):
    """The Boltzmann weight :math:`e^{-\\beta E}` is not integrable for these parameters."""


class NotPositiveDefiniteError(NotNormalizableError):
    """A coupling matrix (``K`` of the Ising relaxation, ``M`` of a Gaussian field) is not positive
    definite."""


class NoExactSolutionError(PyroNRGError, NotImplementedError):
    """No exact (closed-form or enumerable) value exists for the requested quantity at these parameters."""


class NotSymmetricError(PyroNRGError, ValueError):
    """A :math:`Z_2` method (sector function, symmetrized sampling) was asked of an energy with
    :math:`E(-x) \neq E(x)`."""


class DataCacheError(PyroNRGError, RuntimeError):
    """A cached data file is unreadable or fails its checksum (delete it or regenerate it)."""


class DataSettingsError(PyroNRGError, ValueError):
    """Settings of a data set (MD run length, time step, split fractions...) that cannot be used."""


class MissingDependencyError(PyroNRGError, ImportError):
    """An optional dependency (OpenMM, scikit-learn...) is needed for this function: the message names the extra."""


class SamplerSettingsError(PyroNRGError, ValueError):
    """Sampler settings that cannot be used (a step size that is not > 0, no draws, no walkers...)."""


class StudyConfigError(PyroNRGError, ValueError):
    """An option of a ``pyro-nrg`` study that cannot be used (checked before anything is written)."""


class RunFolderError(PyroNRGError, OSError):
    """A run folder (``--out``) that cannot be created or written: a file, under a file, read-only, virtual."""


class RunFolderLockedError(CheckpointError):
    """The run folder is in use by another process (its lock file names the owner's pid and host)."""


class PriorReparamError(PyroNRGError, TypeError):
    """A site of a user model that :func:`~pyro_nrg.infer.latent_reparam` cannot move to latent space (its
    distribution is not a flow prior, or a mixture of something other than a flow)."""
