"""The one training recipe of the benchmarks: a NeuralRG flow distilled on the relaxed Ising model.

Path gradients, a 50-step warm-up times a cosine decay of the learning rate (``pyro_nrg.infer.schedules``),
batch 256 and peak rate 3e-3 unless a script asks otherwise, the Z2 mixture for every flow that is not odd by
construction. ``sampling.train`` runs it for a fixed number of steps (the flow does not depend on the machine's
pace), ``free_energy.train`` for a wall-time budget (``TimeBudget``); both build it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyro

from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import DistillConfig, Distiller

__all__ = ["distiller"]


def distiller(L: int, T: float = ISING_TC, steps: int = 1500, batch_size: int = 256, lr: float = 3e-3, seed: int = 0,
              head: str = "tanh", odd: bool = False, path_gradient: bool = True, translations: int = 1,
              checkpoint_dir: Path | None = None, fast: bool = False, **flow_kw: Any) -> Distiller:
    """A :class:`~pyro_nrg.infer.Distiller` of the recipe, seeded (``pyro.set_rng_seed(seed)``) before the energy
    and the flow are built; ``flow_kw`` go to :func:`~pyro_nrg.flows.neural_rg` (``repeats``, ``activation``...).
    An odd flow is Z2-symmetric by itself: the mixture would only add an inverse pass per step. ``fast`` switches the
    flow to its compiled fast path (``DistillConfig.fast``; the wall-time-budget runs use it)."""
    pyro.set_rng_seed(seed)
    energy = IsingRelaxed(L, T)
    flow = neural_rg(L=L, head=head, odd=odd, **flow_kw)
    cfg = DistillConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=50, z2_symmetric=not odd,
                        path_gradient=path_gradient, translations=translations, fast=fast)
    return Distiller(energy, flow, cfg, checkpoint_dir=checkpoint_dir)
