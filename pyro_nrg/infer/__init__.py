"""Inference: energies as Pyro models, flow guides, distillation (SVI), estimators, flow-proposal MCMC."""

from .ais import AISResult, annealed_importance_sampling, annealing_schedule
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
from .cubature import RefineResult, quadratic_free_energy, refine_quadratic, sigma_points
from .distillation import (
    DistillConfig,
    Distiller,
    DistillResult,
    FreeEnergyELBO,
    TimeBudget,
    checkpoint_step,
    distill,
    energy_config,
    load_checkpoint,
)
from .distributed import init_from_environment, map_tasks
from .estimators import (
    CoverageReport,
    ForwardKL,
    FreeEnergyEstimate,
    coverage_check,
    effective_sample_size,
    estimate_free_energy,
    forward_kl,
    importance_observables,
    log_mean_exp,
    log_weights,
    log_z_importance,
    psis_khat,
    sample_log_weights,
    snis_mean,
)
from .mcmc.independence import FlowIndependenceMH, flow_mh
from .mcmc.latent import RenormalizedPotential, latent_reparam, renormalized_energy
from .mcmc.nuts import latent_nuts, physical_nuts
from .mcmc.results import SamplingResult
from .mcmc.sector import Z2Sector, fit_sector_sharpness
from .mcmc.walkers import IndependenceProposal, hmc_walkers, latent_hmc_walkers, physical_hmc_walkers
from .model import FlowGuide, boltzmann_model, boltzmann_site, flat_site_distribution, symmetrize
from .pushforward import as_flow_event, flow_event_shape, flow_of, forward_and_log_det, to_physical
from .schedules import warmup_cosine
from .starts import stationary_starts

__all__ = [
    "AISResult",
    "annealed_importance_sampling",
    "annealing_schedule",
    "fit_sector_sharpness",
    "Z2Sector",
    "RenormalizedPotential",
    "SamplingResult",
    "hmc_walkers",
    "IndependenceProposal",
    "latent_hmc_walkers",
    "latent_nuts",
    "latent_reparam",
    "physical_hmc_walkers",
    "physical_nuts",
    "renormalized_energy",
    "DensityConfig",
    "DensityResult",
    "VariationalConfig",
    "VariationalResult",
    "canonical_free_energy",
    "fit_density",
    "fit_variational",
    "maxwell_boltzmann",
    "RefineResult",
    "quadratic_free_energy",
    "refine_quadratic",
    "sigma_points",
    "init_from_environment",
    "map_tasks",
    "DistillConfig",
    "Distiller",
    "DistillResult",
    "TimeBudget",
    "FreeEnergyELBO",
    "distill",
    "energy_config",
    "load_checkpoint",
    "checkpoint_step",
    "warmup_cosine",
    "stationary_starts",
    "FreeEnergyEstimate",
    "CoverageReport",
    "coverage_check",
    "ForwardKL",
    "forward_kl",
    "log_weights",
    "effective_sample_size",
    "estimate_free_energy",
    "importance_observables",
    "log_mean_exp",
    "log_z_importance",
    "psis_khat",
    "sample_log_weights",
    "snis_mean",
    "FlowGuide",
    "FlowIndependenceMH",
    "flow_mh",
    "flow_of",
    "flow_event_shape",
    "forward_and_log_det",
    "as_flow_event",
    "to_physical",
    "boltzmann_model",
    "boltzmann_site",
    "flat_site_distribution",
    "symmetrize",
]
