"""Analysis of trained flows and of samples (nothing in :mod:`pyro_nrg.infer` imports it)."""

from .modes import (
    best_latent_correlation,
    circular_rank_correlation,
    keep_slow_modes,
    latent_mode_path,
    position_log_likelihood,
    rank_correlation,
)

__all__ = [
    "best_latent_correlation",
    "circular_rank_correlation",
    "keep_slow_modes",
    "latent_mode_path",
    "position_log_likelihood",
    "rank_correlation",
]
