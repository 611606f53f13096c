"""Inference: energies as Pyro models, flow guides, distillation (SVI), estimators, flow-proposal MCMC."""

from .canonical import (
    DensityConfig,
    DensityResult,
    VariationalConfig,
    VariationalResult,
    canonical_free_energy,
    fit_density,
    fit_variational,
    maxwell_boltzmann,
)
from .distill import (
    DistillConfig,
    Distiller,
    DistillResult,
    FreeEnergyELBO,
    distill,
    energy_config,
    load_checkpoint,
)
from .distributed import init_from_environment, map_tasks
from .estimators import (
    FreeEnergyEstimate,
    effective_sample_size,
    estimate_free_energy,
    importance_observables,
    log_mean_exp,
    log_z_importance,
    observables,
    psis_khat,
    sample_log_weights,
    snis_mean,
)
from .flow_mh import FlowIndependenceMH, FlowMHResult, flow_mh
from .model import FlowGuide, boltzmann_model, boltzmann_site, flat_site_distribution

__all__ = [
    "DensityConfig",
    "DensityResult",
    "VariationalConfig",
    "VariationalResult",
    "canonical_free_energy",
    "fit_density",
    "fit_variational",
    "maxwell_boltzmann",
    "init_from_environment",
    "map_tasks",
    "DistillConfig",
    "Distiller",
    "DistillResult",
    "FreeEnergyELBO",
    "distill",
    "energy_config",
    "load_checkpoint",
    "FreeEnergyEstimate",
    "effective_sample_size",
    "estimate_free_energy",
    "importance_observables",
    "observables",
    "log_mean_exp",
    "log_z_importance",
    "psis_khat",
    "sample_log_weights",
    "snis_mean",
    "FlowGuide",
    "FlowIndependenceMH",
    "FlowMHResult",
    "flow_mh",
    "boltzmann_model",
    "boltzmann_site",
    "flat_site_distribution",
]
