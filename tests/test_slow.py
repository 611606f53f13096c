"""Long convergence checks (run with `make test ARGS="-m slow"`; minutes each on 2 CPU cores)."""

from __future__ import annotations

import pyro
import pytest

from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import DistillConfig, Distiller

pytestmark = pytest.mark.slow


def test_l8_distillation_at_tc_reaches_half_a_percent() -> None:
    """L=8 at T_c, 2000 path-gradient steps of batch 256: F_q within 0.6 % of exact, IS ln Z within 4 sigma
    (measured: 0.49 % and -2.5 sigma, see benchmarks/free_energy.py for the full study)."""
    pyro.set_rng_seed(0)
    energy = IsingRelaxed(8, ISING_TC)
    d = Distiller(energy, neural_rg(L=8),
                  DistillConfig(steps=2000, batch_size=256, lr=3e-3, path_gradient=True, warmup_steps=100))
    d.run(progress=False)
    est = d.estimate(16384)
    assert 0 < est.f_q_rel_err < 6e-3
    assert abs(est.is_sigma) < 4 and abs(est.is_rel_err) < 2e-3


def test_l4_temperature_sweep_matches_kaufman() -> None:
    for T in (1.8, ISING_TC, 3.5):
        pyro.set_rng_seed(0)
        energy = IsingRelaxed(4, T)
        d = Distiller(energy, neural_rg(L=4), DistillConfig(steps=600, batch_size=256, lr=5e-3))
        d.run(progress=False)
        est = d.estimate(16384)
        assert 0 < est.f_q_rel_err < 5e-3, (T, est)
        assert abs(est.is_rel_err) < 2e-3, (T, est)
