"""Data sets for the real-world demos: alanine dipeptide MD trajectories and scikit-learn's 8x8 digits.

* :mod:`~pyro_nrg.data.geometry` — dihedral angles, Kabsch alignment, rigid-body-free internal coordinates.
* :mod:`~pyro_nrg.data.alanine` — OpenMM Langevin dynamics of alanine dipeptide (optional extra ``md``), cached.
* :mod:`~pyro_nrg.data.digits` — dequantized, scaled 8x8 digits (optional: scikit-learn) and PCA baselines.
* :mod:`~pyro_nrg.data.cache` — ``.npz`` cache with settings and checksum.

OpenMM and scikit-learn are imported only when data are generated or loaded.
"""

from .alanine import (
    FIXTURE_SETTINGS,
    AlanineSettings,
    AlanineTrajectory,
    alanine_dataset,
    alanine_fixture,
    generate_alanine,
    load_alanine,
    make_fixture,
    md_speed,
)
from .cache import load_or_generate
from .digits import DigitsData, load_digits_data, pca_reconstruction
from .geometry import RigidBodyProjection, dihedral, kabsch_align, random_rotation

__all__ = [
    "FIXTURE_SETTINGS",
    "AlanineSettings",
    "AlanineTrajectory",
    "alanine_fixture",
    "generate_alanine",
    "alanine_dataset",
    "load_alanine",
    "make_fixture",
    "md_speed",
    "load_or_generate",
    "DigitsData",
    "load_digits_data",
    "pca_reconstruction",
    "RigidBodyProjection",
    "dihedral",
    "kabsch_align",
    "random_rotation",
]
