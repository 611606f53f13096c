"""The fast evaluation path of the NeuralRG flow gives the eager path's numbers (forward, inverse, log-det,
gradients), passes the transform contract, falls back with a warning, and is compiled for real once (small)."""

from __future__ import annotations

import copy

import pytest
import torch

from pyro_nrg.energies import ISING_TC, IsingRelaxed
from pyro_nrg.flows import neural_rg
from pyro_nrg.infer import DistillConfig, Distiller
from pyro_nrg.testing import check_transform, perturb_parameters
from pyro_nrg.transforms import FastPathWarning, coupling_stack, hierarchical_flow, set_fast_path
from pyro_nrg.transforms import fast as fast_module


@pytest.fixture
def no_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path's own code (reshapes, fused kernels) run eagerly: what compiling must reproduce."""
    monkeypatch.setattr(fast_module, "compile_unavailable_reason", lambda device: "tests run the kernels eagerly")
    monkeypatch.setattr(fast_module, "_KERNELS", {})
    monkeypatch.setattr(fast_module, "_CACHE", fast_module.weakref.WeakKeyDictionary())


def _both_paths(flow: torch.nn.Module, z: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Forward, inverse, log-dets and the gradients of a scalar of both w.r.t. z and every parameter, per path."""
    out: dict[str, list[torch.Tensor]] = {}
    params = list(flow.parameters())
    for mode in (False, True):
        set_fast_path(flow, mode)
        zz = z.clone().requires_grad_()
        x, ldj = flow.forward_and_log_det(zz)
        back, ldj_inv = flow.inverse_and_log_det(x)
        loss = (x.square().sum() + ldj.sum() + back.sin().sum() - ldj_inv.sum())
        grads = torch.autograd.grad(loss, [zz, *params])
        out[str(mode)] = [x, ldj, back, ldj_inv, *grads]
    return out


CASES = {
    "L4": dict(L=4),
    "L8_repeats_silu": dict(L=8, repeats=2, activation="silu"),
    "L16_no_head": dict(L=16, head="none", n_couplings=2, hidden=8),
    "L8_flat": dict(L=8, flat=True),
    "L8_odd_spline_head": dict(L=8, odd=True, head="spline"),
    "L8_partial_levels": dict(L=8, n_levels=2),
    "L16_1d": dict(L=16, dim=1),
    "L4_additive": dict(L=4, additive=True, head="none"),
    "L4_tanh_couplings": dict(L=4, coupling="tanh"),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_gives_the_eager_numbers(case: str, dtype: torch.dtype, no_compile: None) -> None:
    torch.manual_seed(0)
    flow = perturb_parameters(neural_rg(**CASES[case]).to(dtype), 0.05)
    z = torch.randn(3, *flow.event_shape, dtype=dtype)
    with pytest.warns(FastPathWarning):
        res = _both_paths(flow, z)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for a, b in zip(res["False"], res["True"], strict=True):
        assert torch.allclose(a, b, rtol=tol, atol=tol), (a - b).abs().max()
    assert torch.allclose(res["True"][2], z, atol=10 * tol)  # and it inverts


@pytest.mark.parametrize("name", ["hier_2d_L4", "hier_2d_partial_levels_repeats", "hier_1d_L8_flat_odd"])
def test_fast_path_passes_the_transform_contract(name: str, no_compile: None) -> None:
    factories = {
        "hier_2d_L4": (lambda: hierarchical_flow(4, 2, n_couplings=2, hidden=8, fast=True), (4, 4)),
        "hier_2d_partial_levels_repeats": (
            lambda: hierarchical_flow(8, 2, n_levels=2, repeats=2, n_couplings=2, hidden=8, fast=True), (8, 8)),
        "hier_1d_L8_flat_odd": (lambda: hierarchical_flow(8, 1, n_couplings=2, hidden=8, odd=True, flat=True,
                                                          fast=True), (8,)),
    }
    factory, shape = factories[name]
    with pytest.warns(FastPathWarning):
        check_transform(factory, shape)


def test_fused_kernels_are_per_structure(no_compile: None) -> None:
    """Stacks of other partitions, widths or activations get their own kernel, each with the stack's numbers."""
    torch.manual_seed(1)
    stacks = [perturb_parameters(coupling_stack(4, 4, (8, 8)), 0.1),
              perturb_parameters(coupling_stack(4, 3, (6,), "tanh", seed=2), 0.1),
              perturb_parameters(coupling_stack(2, 2, (8,), odd=True), 0.1)]
    for s in stacks:
        v = torch.randn(5, s.parts[0].d)
        with pytest.warns(FastPathWarning):
            x, ld = s.fused_forward_and_log_det(v)
        x0, ld0 = s.forward_and_log_det(v)
        assert torch.allclose(x, x0, atol=1e-6) and torch.allclose(ld, ld0, atol=1e-6)
        z, ldi = s.fused_inverse_and_log_det(x)
        assert torch.allclose(z, v, atol=1e-5) and torch.allclose(ldi, ld0, atol=1e-6)
    assert len(fast_module._KERNELS) == 6  # three structures, both directions


def test_compile_failure_falls_back_to_the_same_numbers(monkeypatch: pytest.MonkeyPatch, no_compile: None) -> None:
    def broken_compile(fn, **kw):  # noqa: ANN001, ANN003 - torch.compile's signature
        def run(*args):  # noqa: ANN002
            raise RuntimeError("no backend here")
        return run

    monkeypatch.setattr(fast_module, "compile_unavailable_reason", lambda device: None)
    monkeypatch.setattr(torch, "compile", broken_compile)
    flow = perturb_parameters(neural_rg(L=4), 0.05)
    z = torch.randn(2, 4, 4)
    x0, l0 = flow.forward_and_log_det(z)
    set_fast_path(flow, True)
    with pytest.warns(FastPathWarning, match="torch.compile failed"):
        x1, l1 = flow.forward_and_log_det(z)
    assert torch.allclose(x0, x1, atol=1e-6) and torch.allclose(l0, l1, atol=1e-5)


def test_fast_flag_survives_deepcopy_and_distill_config_sets_it(no_compile: None) -> None:
    flow = neural_rg(L=4, n_couplings=2, hidden=8)
    d = Distiller(IsingRelaxed(4, ISING_TC), flow, DistillConfig(steps=2, batch_size=8, fast=True))
    assert flow.fast and flow.head.fast
    with pytest.warns(FastPathWarning):
        d.run(progress=False)
    twin = copy.deepcopy(flow).double()
    assert twin.fast
    twin(torch.randn(2, 4, 4, dtype=torch.float64))


@pytest.mark.skipif(fast_module.compile_unavailable_reason("cpu") is not None, reason="torch.compile unavailable")
def test_compiled_fast_path_matches_eager() -> None:
    """The one real compile of the suite: a tiny flow, forward, inverse and gradients (a few seconds)."""
    torch.manual_seed(0)
    flow = perturb_parameters(neural_rg(L=4, n_couplings=2, hidden=4, head="none"), 0.05)
    res = _both_paths(flow, torch.randn(3, 4, 4))
    for a, b in zip(res["False"], res["True"], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (a - b).abs().max()
