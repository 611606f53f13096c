"""The report's deviation wording, and the ring study's polar flow starting on the ring."""

from __future__ import annotations

import math

import torch

from pyro_nrg.distributions.phase_space import CanonicalFlow
from pyro_nrg.energies import RingHamiltonian
from pyro_nrg.studies.report import fmt_rel
from pyro_nrg.transforms.symplectic import polar_symplectic_flow


def test_fmt_rel_gives_no_z_score_when_the_error_exceeds_the_value() -> None:
    assert fmt_rel(1.03e14, -4.37, 1.03e14) == "+2.36e+13 (error ≥ |value|: not a measurement)"
    assert fmt_rel(-4.30, -4.37, 0.05) == "+1.60e-02 (+1.4σ)"
    assert fmt_rel(-4.30, -4.37) == "+1.60e-02"


def _start(**kw) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = CanonicalFlow(polar_symplectic_flow(n_blocks=2, n_couplings=2, hidden=64, log_radius=math.log(2.0), **kw),
                          2, temperature=1.0)
    with torch.no_grad():
        x = model.sample((4096,))
    H = RingHamiltonian()
    return x[..., :2].norm(dim=-1), H.energy(x)


def test_polar_flow_started_on_the_ring_has_a_finite_scale_free_energy() -> None:
    ring = RingHamiltonian()
    width = math.sqrt(ring.width / 2)
    r, e = _start(log_radial_scale=math.log(width / ring.radius), log_angle_scale=-0.5 * math.log(2.0))
    lo, hi = torch.quantile(r, torch.tensor([0.01, 0.99])).tolist()
    assert 1.0 < lo and hi < 3.5, (lo, hi)
    assert float(e.mean()) < 100
    # the old start (unit log-radius and angle scales) spreads radii over 0.2..20 and lifts the momenta to ~1e9
    r0, e0 = _start()
    assert float(torch.quantile(r0, 0.99)) > 10 and float(e0.mean()) > 1e4
