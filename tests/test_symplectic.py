"""Contract tests for the symplectic layers (pyro_nrg.transforms.symplectic)."""

from __future__ import annotations

import pytest
import torch
from pyro.distributions.torch_transform import ComposeTransformModule
from torch import nn

from pyro_nrg.energies.hamiltonians import HarmonicChain
from pyro_nrg.errors import EventShapeError
from pyro_nrg.testing import check_symplectic, check_transform, perturb_parameters
from pyro_nrg.transforms.symplectic import (
    LinearSymplectic,
    PointTransformation,
    PolarBijection,
    SymplecticLinearMap,
    hamiltonian_matrix,
    is_symplectic_matrix,
    linear_symplectic,
    momentum_shear,
    point_transformation,
    polar_point_transformation,
    polar_symplectic_flow,
    position_shear,
    real_nvp,
    symplectic_flow,
    symplectic_scaling,
)

N = 3



def _pyro_affine_point(n: int) -> PointTransformation:
    import pyro.distributions.transforms as T
    from pyro.nn import DenseNN

    k = n // 2
    hypernet = DenseNN(k, [16], [n - k, n - k], nonlinearity=nn.Tanh())
    return PointTransformation(T.AffineCoupling(k, hypernet), n)


def _fixed_map_flow():
    from pyro_nrg.flows import symplectic

    flow = symplectic(n=N, n_blocks=1, n_couplings=2, hidden=8, fixed_map=True)
    flow.parts[-1].set_matrix(HarmonicChain(N).canonical_matrix().to(torch.get_default_dtype()))
    return flow


FACTORIES = {
    "linear": lambda: linear_symplectic(N),
    "scaling": lambda: symplectic_scaling(N),
    "point": lambda: point_transformation(N, n_couplings=2, hidden=8),
    "point_pyro_affine_coupling": lambda: _pyro_affine_point(N),
    "momentum_shear": lambda: momentum_shear(N, hidden=8),
    "position_shear": lambda: position_shear(N, hidden=8),
    "fixed_normal_modes": lambda: SymplecticLinearMap(HarmonicChain(N).canonical_matrix()),
    "flow": lambda: symplectic_flow(N, n_blocks=1, n_couplings=2, hidden=8),
    "flow_config_fixed_map": lambda: _fixed_map_flow(),
    "compose_mixed": lambda: ComposeTransformModule(
        [symplectic_scaling(N), _pyro_affine_point(N), linear_symplectic(N), momentum_shear(N, hidden=8)]
    ),
    "compose_torch": lambda: torch.distributions.ComposeTransform(
        [SymplecticLinearMap(HarmonicChain(N).canonical_matrix()), symplectic_scaling(N)]
    ),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_contract(name):
    check_transform(FACTORIES[name], (2 * N,), symplectic=True)


@pytest.mark.parametrize("name", ["polar_point_erf", "polar_point_atan", "polar_flow"])
def test_contract_planar(name):
    factory = {
        "polar_point_erf": lambda: polar_point_transformation(0.5, "erf"),
        "polar_point_atan": lambda: polar_point_transformation(0.5, "atan"),
        "polar_flow": lambda: polar_symplectic_flow(n_blocks=1, hidden=8),
    }[name]
    check_transform(factory, (4,), symplectic=True)


@pytest.mark.parametrize("event", [N, 2])
def test_position_bijection_contract(event):
    if event == N:
        check_transform(lambda: real_nvp(N, n_couplings=3, hidden=8), (N,))
        check_transform(lambda: real_nvp(3, n_couplings=2, hidden=8), (3,))  # odd n: gathers, not slices
    else:
        for angle_map in ("erf", "atan"):
            check_transform(lambda: PolarBijection(0.3, angle_map), (2,))


def test_polar_bijection_is_polar_coordinates():
    t = PolarBijection(0.0, "atan").double()
    u = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    y = t(u)
    assert torch.allclose(y[0], torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert torch.allclose(y[1].norm(), torch.tensor(torch.e, dtype=torch.float64))
    assert torch.allclose(torch.atan2(y[1, 1], y[1, 0]), torch.tensor(torch.pi / 2, dtype=torch.float64))


def test_linear_is_matrix_exponential():
    t = perturb_parameters(LinearSymplectic(N).double(), 0.3)
    K = hamiltonian_matrix(t.A, t.B, t.C).detach()
    assert torch.allclose(K[:N, N:], K[:N, N:].T) and torch.allclose(K[N:, :N], K[N:, :N].T)
    M = torch.linalg.matrix_exp(K)
    assert is_symplectic_matrix(M)
    z = torch.randn(4, 2 * N, dtype=torch.float64)
    assert torch.allclose(t(z), z @ M.T, atol=1e-12)
    assert torch.allclose(t.inv(z), z @ torch.linalg.inv(M).T, atol=1e-10)


def test_point_transformation_momenta_against_dense_solve():
    t = perturb_parameters(point_transformation(N, n_couplings=2, hidden=8).double(), 0.3)
    z = torch.randn(2 * N, dtype=torch.float64)
    Q, P = z[:N], z[N:]
    J = torch.autograd.functional.jacobian(lambda u: t.bijection(u), Q)
    x = t(z)
    assert torch.allclose(x[:N], t.bijection(Q), atol=1e-12)
    assert torch.allclose(x[N:], torch.linalg.solve(J.T, P), atol=1e-10)


def test_zero_logdet_follows_dtype():
    for dtype in (torch.float32, torch.float64):
        t = symplectic_flow(N, n_blocks=1, n_couplings=2, hidden=8).to(dtype)
        z = torch.randn(2, 5, 2 * N, dtype=dtype)
        ld = t.log_abs_det_jacobian(z, t(z))
        assert ld.shape == (2, 5) and ld.dtype == dtype and ld.device == z.device


def test_no_grad_outputs_are_detached():
    t = perturb_parameters(symplectic_flow(N, n_blocks=1, n_couplings=2, hidden=8), 0.1)
    with torch.no_grad():
        x = t(torch.randn(3, 2 * N))
        z = t.inv(x)
    assert not x.requires_grad and not z.requires_grad


def test_symplectic_check_catches_non_symplectic_map():
    class Squash(LinearSymplectic):
        def _call(self, z):
            return 2 * z

        def _inverse(self, x):
            return x / 2

    with pytest.raises(AssertionError, match="not symplectic"):
        check_symplectic(Squash(N).double(), (2 * N,))


def test_errors_say_the_fix():
    with pytest.raises(EventShapeError, match="torch.cat"):
        linear_symplectic(N)(torch.randn(4, 2 * N + 1))
    with pytest.raises(EventShapeError, match="not symplectic"):
        SymplecticLinearMap(2 * torch.eye(2 * N))
    with pytest.raises(EventShapeError, match="n >= 2"):
        real_nvp(1)
    with pytest.raises(EventShapeError, match="n >= 1"):
        linear_symplectic(0)


def test_linear_map_built_in_float32_reaches_float64_accuracy_after_double() -> None:
    m32 = HarmonicChain(8).canonical_matrix().float()
    t = SymplecticLinearMap(m32).double()
    z = torch.randn(50, 16, dtype=torch.float64)
    assert float((t.inv(t(z)) - z).abs().max()) < 1e-13  # was ~2e-7: the float32 matrix's symplectic inverse
    t32 = SymplecticLinearMap(m32)  # float32 stays float32 (the exact symplectic inverse of the float32 matrix)
    assert t32.M_inv.dtype == torch.float32


@pytest.mark.parametrize("kind", ["symplectic", "polar_symplectic", "neural_rg"])
def test_every_flow_kind_rebuilds_from_its_config(kind):
    from pyro_nrg.flows import build_flow, neural_rg, polar_symplectic, symplectic

    make = {"symplectic": lambda: symplectic(n=N, n_blocks=1, n_couplings=2, hidden=8, fixed_map=True),
            "polar_symplectic": lambda: polar_symplectic(n_blocks=1, hidden=8),
            "neural_rg": lambda: neural_rg(L=4, n_couplings=2, hidden=8)}[kind]
    flow = perturb_parameters(make(), 0.1)
    twin = build_flow(flow.config)
    twin.load_state_dict(flow.state_dict())
    z = torch.randn((5, 4, 4) if kind == "neural_rg" else (5, 2 * N if kind == "symplectic" else 4))
    assert torch.equal(twin(z), flow(z))


def test_real_nvp_hypernets_start_as_the_masked_networks():
    """real_nvp draws each hypernet as an n -> 2n network and keeps the inputs/outputs its coupling uses."""
    from pyro_nrg.transforms import MLP

    torch.manual_seed(3)
    full = MLP(N, 2 * N, (8, 8), "tanh")
    torch.manual_seed(3)
    t = real_nvp(N, n_couplings=1, hidden=8)
    net = t.parts[0].hypernet
    cond = list(range(0, N, 2))
    assert torch.equal(net[0].weight, full[0].weight[:, cond]) and torch.equal(net[2].weight, full[2].weight)
    assert net[-1].out_features == 2 * (N - len(cond))
