"""Markov chain Monte Carlo on trained flows: NeuTra NUTS, vectorised HMC walkers, flow independence MH.

Every sampler returns one :class:`~pyro_nrg.infer.mcmc.results.SamplingResult`. Modules: ``results`` (the result
type), ``latent`` (the renormalized energy, user-model reparameterisation), ``nuts`` (Pyro NUTS/HMC, latent and
physical), ``walkers`` (the vectorised HMC engine), ``independence`` (flow-MH), ``sector`` (the :math:`Z_2`
sector function), ``starts`` (chain start points).
"""

from .independence import FlowIndependenceMH, flow_mh
from .latent import LatentModel, RenormalizedPotential, latent_reparam, renormalized_energy
from .nuts import latent_nuts, physical_nuts
from .results import SamplingResult
from .sector import Z2Sector, fit_sector_sharpness
from .walkers import IndependenceProposal, hmc_walkers, latent_hmc_walkers, physical_hmc_walkers

__all__ = [
    "SamplingResult",
    "RenormalizedPotential",
    "renormalized_energy",
    "latent_reparam",
    "LatentModel",
    "latent_nuts",
    "physical_nuts",
    "hmc_walkers",
    "IndependenceProposal",
    "latent_hmc_walkers",
    "physical_hmc_walkers",
    "FlowIndependenceMH",
    "flow_mh",
    "Z2Sector",
    "fit_sector_sharpness",
]
