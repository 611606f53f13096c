"""Analysis of samples and trained flows: ArviZ conversion and efficiency, mutual information, receptive fields,
slow modes.

Nothing in :mod:`pyro_nrg.infer` imports this package; it reads what the samplers and trainers return.
"""

from .arviz import MIN_RELIABLE_ESS, from_pyro_draws, sampling_efficiency, to_inference_data
from .information import (
    MutualInformationReport,
    latent_mutual_information,
    mode_mutual_information,
    mutual_information,
    mutual_information_by_level,
    pairwise_mutual_information,
    receptive_fields,
)
from .modes import (
    best_latent_correlation,
    circular_rank_correlation,
    keep_slow_modes,
    latent_mode_path,
    position_log_likelihood,
    rank_correlation,
)

__all__ = [
    "to_inference_data",
    "from_pyro_draws",
    "sampling_efficiency",
    "MIN_RELIABLE_ESS",
    "mutual_information",
    "pairwise_mutual_information",
    "mutual_information_by_level",
    "MutualInformationReport",
    "latent_mutual_information",
    "receptive_fields",
    "mode_mutual_information",
    "best_latent_correlation",
    "circular_rank_correlation",
    "keep_slow_modes",
    "latent_mode_path",
    "position_log_likelihood",
    "rank_correlation",
]
