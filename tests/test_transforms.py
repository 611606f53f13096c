"""Contract tests over every transform of the package, plus the NeuralRG hierarchy's structure and errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro.distributions.transforms import spline_coupling

from pyro_nrg.errors import EventShapeError, InverseNotConvergedError, LatticeSizeError, NonFiniteError
from pyro_nrg.lattice import site_levels
from pyro_nrg.testing import check_transform
from pyro_nrg.transforms import (
    MLP,
    ElementwiseSpline,
    MaskedAffineCoupling,
    OddTanhSum,
    Reshaped,
    TransformBlock,
    coupling_stack,
    elementwise_spline,
    hierarchical_flow,
    masked_affine_coupling,
    masked_tanh_coupling,
    rq_spline,
    solve_increasing,
)

TRANSFORMS = {
    "affine_coupling": (lambda: masked_affine_coupling(4, hidden=(8,)), (4,)),
    "additive_coupling": (lambda: masked_affine_coupling(4, [0, 2], [1, 3], hidden=(8,), additive=True), (4,)),
    "affine_coupling_fixed_clamp": (
        lambda: MaskedAffineCoupling(MLP(2, 4, (8,), "tanh"), [1, 3], [0, 2], learn_scale_bound=False), (4,)
    ),
    "reshaped_hierarchy": (lambda: Reshaped(hierarchical_flow(4, 2, n_couplings=2, hidden=8), (4, 4)), (16,)),
    "coupling_stack_d4": (lambda: coupling_stack(4, 4, (8, 8)), (4,)),
    "coupling_stack_d2": (lambda: coupling_stack(2, 3, (8,)), (2,)),
    "coupling_stack_d6": (lambda: coupling_stack(6, 4, (8,)), (6,)),
    "hier_2d_L4": (lambda: hierarchical_flow(4, 2, n_couplings=2, hidden=8), (4, 4)),
    "hier_2d_L4_no_head": (lambda: hierarchical_flow(4, 2, n_couplings=2, hidden=8, head="none"), (4, 4)),
    "hier_2d_L8": (lambda: hierarchical_flow(8, 2, n_couplings=2, hidden=8), (8, 8)),
    "hier_2d_L2": (lambda: hierarchical_flow(2, 2, n_couplings=2, hidden=8), (2, 2)),
    "hier_1d_L16": (lambda: hierarchical_flow(16, 1, n_couplings=2, hidden=8), (16,)),
    "hier_2d_partial_levels_repeats": (
        lambda: hierarchical_flow(8, 2, n_levels=2, repeats=2, n_couplings=2, hidden=8),
        (8, 8),
    ),
    "hier_2d_flat": (lambda: hierarchical_flow(8, 2, n_couplings=2, hidden=8, flat=True), (64,)),
    "hier_2d_additive": (lambda: hierarchical_flow(4, 2, n_couplings=2, hidden=8, additive=True), (4, 4)),
    "odd_affine_coupling": (lambda: masked_affine_coupling(4, hidden=(8,), odd=True), (4,)),
    "tanh_coupling": (lambda: masked_tanh_coupling(4, hidden=(8,), n_terms=3), (4,)),
    "odd_tanh_coupling": (lambda: masked_tanh_coupling(4, [0, 3], [1, 2], hidden=(8,), odd=True), (4,)),
    "odd_additive_coupling": (lambda: masked_affine_coupling(4, hidden=(8,), additive=True, odd=True), (4,)),
    "hier_2d_odd": (lambda: hierarchical_flow(4, 2, n_couplings=2, hidden=8, odd=True), (4, 4)),
    "elementwise_spline_odd": (lambda: elementwise_spline(event_dim=2, n_bins=6, bound=2.0), (4, 4)),
    "elementwise_spline_general": (lambda: elementwise_spline(event_dim=1, n_bins=5, bound=1.5, odd=False), (6,)),
    "hier_2d_spline_head": (lambda: hierarchical_flow(4, 2, n_couplings=2, hidden=8, head="spline", head_bins=6,
                                                      head_bound=2.0), (4, 4)),
    "odd_tanh_sum": (lambda: OddTanhSum(2, 3), (4, 4)),
    "hier_2d_tanh_couplings_odd": (lambda: hierarchical_flow(4, 2, n_couplings=2, hidden=8, odd=True, head="tanh",
                                                             coupling="tanh"), (4, 4)),
    "hier_2d_tanh_head": (lambda: hierarchical_flow(4, 2, n_couplings=2, hidden=8, head="tanh"), (4, 4)),
    "hier_1d_odd_spline_head": (lambda: hierarchical_flow(8, 1, n_couplings=2, hidden=8, odd=True, head="spline",
                                                          head_bound=2.0), (8,)),
    "hier_2d_spline_blocks": (
        lambda: hierarchical_flow(
            4, 2, block_factory=lambda i: TransformBlock(spline_coupling(4, hidden_dims=[8], count_bins=4))
        ),
        (4, 4),
    ),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_contract(name: str) -> None:
    factory, event_shape = TRANSFORMS[name]
    check_transform(factory, event_shape)


def test_odd_flow_is_z2_equivariant_and_its_density_symmetric() -> None:
    """odd=True: g(-z) = -g(z) and log|det| even, so q(-x) = q(x) exactly (no mixture needed); the latent origin
    maps to x = 0. The default flow is not odd once trained (perturbed parameters)."""
    from pyro_nrg.distributions import FlowDistribution
    from pyro_nrg.flows import neural_rg
    from pyro_nrg.testing import perturb_parameters

    torch.manual_seed(0)
    odd = perturb_parameters(neural_rg(L=8, hidden=8, odd=True).double(), 0.3)
    z = torch.randn(6, 8, 8, dtype=torch.float64)
    x, ldj = odd.forward_and_log_det(z)
    xm, ldjm = odd.forward_and_log_det(-z)
    assert torch.allclose(xm, -x, atol=1e-12) and torch.allclose(ldjm, ldj, atol=1e-12)
    assert odd.forward_and_log_det(torch.zeros(1, 8, 8, dtype=torch.float64))[0].abs().max() < 1e-12
    q = FlowDistribution(odd)
    assert torch.allclose(q.log_prob(x), q.log_prob(-x.clone()), atol=1e-10)
    plain = perturb_parameters(neural_rg(L=8, hidden=8).double(), 0.3)
    assert not torch.allclose(plain.forward_and_log_det(-z)[0], -plain.forward_and_log_det(z)[0], atol=1e-6)


def test_rq_spline_formulas() -> None:
    """The spline against first principles: zero parameters are the identity; ln h' equals the autograd derivative;
    the inverse inverts; the odd form is odd with an even derivative; the tails beyond the bound are the identity;
    the map is monotone and hits the knots."""
    torch.manual_seed(0)
    h = ElementwiseSpline(event_dim=1, n_bins=7, bound=3.0, odd=False).double()
    v = torch.linspace(-5, 5, 401, dtype=torch.float64)
    x, ld = h.forward_and_log_det(v.reshape(-1, 1))
    assert torch.allclose(x.reshape(-1), v, atol=1e-12) and ld.abs().max() < 1e-12  # identity at zero parameters
    for odd in (False, True):
        h = ElementwiseSpline(event_dim=0, n_bins=7, bound=3.0, odd=odd).double()
        with torch.no_grad():
            for p in h.parameters():
                p.copy_(torch.randn_like(p))
        vv = v.clone().requires_grad_()
        x, ld = h.forward_and_log_det(vv)
        (dx,) = torch.autograd.grad(x.sum(), vv)
        assert torch.allclose(dx.log(), ld, atol=1e-10)
        assert (x[1:] - x[:-1]).min() > 0
        back, ld_back = h.inverse_and_log_det(x.detach())
        assert torch.allclose(back, v, atol=1e-10) and torch.allclose(ld_back, ld.detach(), atol=1e-10)
        outside = v.abs() > 3.0
        assert torch.equal(x.detach()[outside], v[outside])
        xk, yk, _ = h.knots()
        assert torch.allclose(h.forward_and_log_det(xk.detach())[0], yk.detach(), atol=1e-12)
        if odd:
            xm, ldm = h.forward_and_log_det(-v)
            assert torch.allclose(xm, -x.detach(), atol=1e-12) and torch.allclose(ldm, ld.detach(), atol=1e-12)
    with pytest.raises(ValueError, match="n_bins"):
        ElementwiseSpline(n_bins=1)
    # direct use of the kernel: knots of a straight line of slope 2 give h(v) = 2v on the interior
    xk = torch.linspace(0, 1, 5, dtype=torch.float64)
    y, ldy = rq_spline(torch.tensor([0.3, 0.7], dtype=torch.float64), xk, 2 * xk, torch.full((5,), 2.0,
                       dtype=torch.float64))
    assert torch.allclose(y, torch.tensor([0.6, 1.4], dtype=torch.float64)) and torch.allclose(ldy, ldy.new_full(
        (2,), torch.log(torch.tensor(2.0, dtype=torch.float64)).item()))


def test_spline_head_keeps_odd_flow_equivariant_and_old_configs_load() -> None:
    from pyro_nrg.flows import NeuralRGConfig, neural_rg
    from pyro_nrg.testing import perturb_parameters

    flow = perturb_parameters(neural_rg(L=4, hidden=8, odd=True, head="spline").double(), 0.3)
    z = torch.randn(5, 4, 4, dtype=torch.float64)
    x, ldj = flow.forward_and_log_det(z)
    xm, ldjm = flow.forward_and_log_det(-z)
    assert torch.allclose(xm, -x, atol=1e-12) and torch.allclose(ldjm, ldj, atol=1e-12)
    legacy = {k: v for k, v in NeuralRGConfig(L=4).to_dict().items() if not k.startswith("head")}
    assert NeuralRGConfig.from_dict(legacy).head == "none"  # checkpoints saved before the head existed
    assert neural_rg(NeuralRGConfig.from_dict(legacy)).head is None
    with pytest.raises(ValueError, match="head"):
        hierarchical_flow(4, 2, head="mlp")


def _leapfrog_error(head: str, eps: float) -> float:
    """Median |Delta H| of a length-2 leapfrog trajectory of the latent potential of a perturbed L=4 flow."""
    from pyro_nrg.energies import IsingRelaxed
    from pyro_nrg.flows import neural_rg
    from pyro_nrg.infer import renormalized_energy
    from pyro_nrg.testing import perturb_parameters

    torch.manual_seed(0)
    flow = perturb_parameters(neural_rg(L=4, hidden=8, head=head).double(), 0.02)
    if head != "none":  # a pronounced head: steep centre, as training makes it
        with torch.no_grad():
            for name, p in flow.head.named_parameters():
                if name in ("u_weight", "u_deriv"):
                    p.add_(1.5)
    energy = IsingRelaxed(4, 3.0).double()
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(128, 4, 4, dtype=torch.float64, generator=g)
    p0 = torch.randn(128, 4, 4, dtype=torch.float64, generator=g)

    def grad(z: torch.Tensor) -> torch.Tensor:
        z = z.detach().requires_grad_()
        return torch.autograd.grad(renormalized_energy(energy, flow, z).sum(), z)[0]

    z, p = z0.clone(), p0.clone()
    gz = grad(z)
    for _ in range(round(2.0 / eps)):
        p = p - 0.5 * eps * gz
        z = z + eps * p
        gz = grad(z)
        p = p - 0.5 * eps * gz
    with torch.no_grad():
        h0 = renormalized_energy(energy, flow, z0) + 0.5 * p0.square().sum((-1, -2))
        h1 = renormalized_energy(energy, flow, z) + 0.5 * p.square().sum((-1, -2))
    return float((h1 - h0).abs().median())


def test_tanh_head_keeps_the_latent_potential_smooth() -> None:
    """Leapfrog energy error falls like eps^2 (ratio ~4 per halving) for a smooth latent potential: with no head and
    with the tanh head (here steeper than training makes it). (The C1 spline head's falls like eps on trained flows;
    see pyro_nrg.transforms.elementwise.)"""
    ratios = {h: _leapfrog_error(h, 0.05) / _leapfrog_error(h, 0.025) for h in ("none", "tanh")}
    assert ratios["none"] > 3.2 and ratios["tanh"] > 3.2, ratios


def test_tanh_sum_inverse_is_exact_and_differentiable() -> None:
    h = OddTanhSum(event_dim=0, n_terms=3).double()
    with torch.no_grad():
        h.u_weight.add_(torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
    v = torch.linspace(-20, 20, 801, dtype=torch.float64)
    x, ld = h.forward_and_log_det(v)
    back, ld_back = h.inverse_and_log_det(x)
    assert torch.allclose(back, v, atol=1e-11) and torch.allclose(ld_back, ld, atol=1e-11)
    assert torch.allclose(h.forward_and_log_det(-v)[0], -x, atol=1e-12) and (x[1:] > x[:-1]).all()
    xx = x.clone().requires_grad_()
    (dv,) = torch.autograd.grad(h.inverse_and_log_det(xx)[0].sum(), xx)
    assert torch.allclose(dv, torch.exp(-ld), atol=1e-10)  # dv/dx = 1/h'(v)
    with pytest.raises(ValueError, match="n_terms"):
        OddTanhSum(n_terms=0)
    with pytest.raises(NonFiniteError, match="NaN"):
        h.inverse_and_log_det(torch.tensor([0.0, float("nan")], dtype=torch.float64))


def test_solve_increasing_converges_where_plain_newton_cycles() -> None:
    """arctan: plain Newton from |v0| > 1.39 diverges; the bisection safeguard must still find every root."""
    x = torch.linspace(-1.5, 1.5, 61, dtype=torch.float64)
    v0 = torch.full_like(x, 5.0)  # far from every root, on the wrong side for half of them
    v = solve_increasing(lambda u: (torch.atan(u), 1 / (1 + u * u)), x, torch.tan(x) - 1, torch.tan(x) + 1, v0=v0)
    assert torch.allclose(v, torch.tan(x), atol=1e-12)
    with pytest.raises(InverseNotConvergedError, match="max_iter"):
        solve_increasing(lambda u: (torch.atan(u), 1 / (1 + u * u)), x, x - 50, x + 50, max_iter=3)


def test_tanh_coupling_makes_two_modes_where_the_hypernet_says() -> None:
    """The conditional tanh coupling: odd variant equivariant; with a large b it maps a standard normal onto two
    modes whose weights follow mu (P(x > g(mu)) = P(z > mu) = Phi(-mu)), which no affine coupling can do."""
    from pyro_nrg.testing import perturb_parameters

    torch.manual_seed(0)
    odd = perturb_parameters(masked_tanh_coupling(4, hidden=(8,), odd=True).double(), 0.5)
    z = torch.randn(50, 4, dtype=torch.float64)
    (x, ld), (xm, ldm) = odd.forward_and_log_det(z), odd.forward_and_log_det(-z)
    assert torch.allclose(xm, -x, atol=1e-12) and torch.allclose(ldm, ld, atol=1e-12)

    t = masked_tanh_coupling(4, [0, 1], [2, 3], hidden=(8,), n_terms=1).double()
    out = t.hypernet[-1]
    with torch.no_grad():  # s = t = 0, mu = 0.5 for both sites, b = 0.05 e^4 = 2.7, c = 0.5
        out.bias.copy_(torch.tensor([0, 0, 0, 0, 0.5, 0.5, 4.0, 4.0], dtype=torch.float64))
    zz = torch.randn(200_000, 4, dtype=torch.float64)
    x2 = t(zz)[:, 2]
    frac = (x2 > 0.5).double().mean()  # g(mu) = mu
    assert abs(frac - torch.distributions.Normal(0.0, 1.0).cdf(torch.tensor(-0.5))) < 0.005

    def density(a: float, b: float) -> float:
        return float(((x2 > a) & (x2 < b)).double().mean()) / (b - a)

    # two modes (near -2 and +3.7) with a dip between them: g' = 1 + b/c = 6.4 at mu thins the density there
    assert density(0.6, 1.2) < 0.7 * min(density(-2.4, -1.8), density(3.4, 4.0))


def test_float32_default_dtype_roundtrip() -> None:
    flow = hierarchical_flow(8, 2, n_couplings=2, hidden=8)
    z = torch.randn(7, 8, 8)
    x = flow(z)
    assert x.dtype == torch.float32
    assert torch.allclose(flow.inv(x.clone()), z, atol=1e-5)


def test_builder_default_head_is_neural_rgs() -> None:
    import inspect

    from pyro_nrg.flows import NeuralRGConfig

    assert inspect.signature(hierarchical_flow).parameters["head"].default == NeuralRGConfig().head == "tanh"


def test_identity_at_initialisation() -> None:
    flow = hierarchical_flow(8, 2, head="none")
    z = torch.randn(3, 8, 8)
    x = flow(z)
    assert torch.equal(x, z)
    assert torch.equal(flow.log_abs_det_jacobian(z, x), torch.zeros(3))


def _perturbed(L: int, dim: int, **kw):
    from pyro_nrg.testing import perturb_parameters

    flow = hierarchical_flow(L, dim, n_couplings=2, hidden=8, **kw).double()
    return perturb_parameters(flow, 0.3)


def _periodic_distance(a: torch.Tensor, b: torch.Tensor, L: int) -> torch.Tensor:
    d = (a - b).abs() % L
    return torch.minimum(d, L - d)


def test_level0_latents_act_locally() -> None:
    """A finest-level latent only changes x within its decimator block and the disentangler blocks over it."""
    L = 8
    flow = _perturbed(L, 2)
    z = torch.randn(L, L, dtype=torch.float64)
    x0 = flow(z)
    levels = site_levels(L, 2)
    for r in [(0, 1), (1, 1), (3, 2)]:
        assert levels[r] == 0
        z1 = z.clone()
        z1[r] += 1.0
        changed = ((flow(z1) - x0).abs() > 1e-12).nonzero()
        dist = _periodic_distance(changed, torch.tensor(r), L)
        assert dist.max() <= 2, f"latent {r} changed sites {changed.tolist()}"


def test_rg_coarse_variable_depends_on_everything_fine_variable_does_not() -> None:
    L = 8
    flow = _perturbed(L, 2)
    x = torch.randn(L, L, dtype=torch.float64, requires_grad=True)
    z = flow.inv(x)
    (g_top,) = torch.autograd.grad(z[0, 0], x, retain_graph=True)
    assert (g_top.abs() > 0).all(), "the coarsest latent must see every physical site"
    (g_fine,) = torch.autograd.grad(z[1, 1], x)
    assert (g_fine.abs() > 0).sum() < L * L / 2, "a finest-level latent must depend on a local patch only"


def test_split_levels_counts_and_order() -> None:
    flow = hierarchical_flow(8, 2)
    z = torch.arange(64.0).reshape(1, 8, 8)
    parts = flow.split_levels(z)
    assert [p.shape[-1] for p in parts] == [48, 12, 3, 1]
    assert parts[-1].item() == 0.0  # the coarsest latent sits at the origin
    assert sorted(torch.cat(parts, -1).flatten().tolist()) == list(range(64))
    flow1 = hierarchical_flow(16, 1)
    assert [p.shape[-1] for p in flow1.split_levels(torch.zeros(2, 16))] == [8, 4, 2, 1, 1]
    partial = hierarchical_flow(8, 2, n_levels=1)
    assert [p.shape[-1] for p in partial.split_levels(torch.zeros(8, 8))] == [48, 16]


def test_renormalized_variables_invert_the_flow() -> None:
    flow = _perturbed(4, 2)
    x = torch.randn(2, 4, 4, dtype=torch.float64)
    parts = flow.renormalized_variables(x)
    assert [p.shape for p in parts] == [(2, 12), (2, 3), (2, 1)]


@pytest.mark.parametrize("L", [3, 6, 12])
def test_non_power_of_two_is_refused(L: int) -> None:
    with pytest.raises(LatticeSizeError, match="power of 2"):
        hierarchical_flow(L, 2)


def test_bad_levels_and_event_shapes() -> None:
    with pytest.raises(LatticeSizeError, match="n_levels"):
        hierarchical_flow(8, 2, n_levels=4)
    with pytest.raises(LatticeSizeError, match="dimension"):
        hierarchical_flow(8, 3)
    flow = hierarchical_flow(8, 2)
    with pytest.raises(EventShapeError, match="flat=True"):
        flow(torch.randn(3, 64))
    with pytest.raises(EventShapeError, match=r"\(\*batch, 8, 8\)"):
        flow(torch.randn(3, 4, 4))
    with pytest.raises(EventShapeError, match="partition"):
        masked_affine_coupling(4, [0, 1], [1, 2])


def test_flow_inside_pyro_transformed_distribution() -> None:
    import pyro.distributions as dist

    flow = _perturbed(4, 2)
    base = dist.Normal(torch.zeros(4, 4, dtype=torch.float64), 1.0).to_event(2)
    q = dist.TransformedDistribution(base, [flow])
    x = q.rsample((6,))
    lp = q.log_prob(x)
    assert lp.shape == (6,)
    z = flow.inv(x.detach().clone())
    ref = base.log_prob(z) - flow.log_abs_det_jacobian(z, flow(z))
    assert torch.allclose(lp, ref, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    L=st.sampled_from([2, 4, 8]),
    dim=st.sampled_from([1, 2]),
    repeats=st.integers(1, 2),
)
def test_hierarchical_shapes_and_round_trip_property(batch, L, dim, repeats) -> None:
    from pyro_nrg.testing import perturb_parameters

    flow = perturb_parameters(hierarchical_flow(L, dim, n_couplings=2, hidden=4, repeats=repeats).double(), 0.2)
    z = torch.randn(*batch, *(L,) * dim, dtype=torch.float64)
    x = flow(z)
    assert x.shape == z.shape
    assert flow.log_abs_det_jacobian(z, x).shape == tuple(batch)
    assert torch.allclose(flow.inv(x.clone()), z, atol=1e-10)


def _reference_blocks(y: torch.Tensor, level: int, offset: int, dim: int) -> torch.Tensor:
    """The blocks of one layer by rolling and reshaping the strided grid (the flow's original formulation)."""
    s = 2**level
    grid = y[(slice(None),) + (slice(None, None, s),) * dim]
    n = grid.shape[-1]
    axes = tuple(range(1, dim + 1))
    grid = torch.roll(grid, shifts=(-offset,) * dim, dims=axes)
    m = n // 2
    if dim == 1:
        return grid.reshape(y.shape[0], m, 2)
    return grid.reshape(-1, m, 2, m, 2).permute(0, 1, 3, 2, 4).reshape(-1, m, m, 4)


@pytest.mark.parametrize("L,dim", [(2, 2), (4, 2), (8, 2), (16, 2), (8, 1), (32, 1)])
def test_block_gathers_match_the_roll_and_reshape_geometry(L: int, dim: int) -> None:
    """Every layer's gather indices pick the same sites, in the same order, as rolling and reshaping the grid."""
    flow = hierarchical_flow(L, dim, n_couplings=2, hidden=4)
    sites = torch.arange(L**dim).reshape(1, *(L,) * dim)
    for level in range(flow.n_levels):
        for offset in (0, 1):
            ref = _reference_blocks(sites, level, offset, dim).reshape(-1)
            assert torch.equal(flow._block_sites(level, offset), ref), (level, offset)
            if level == 0:  # the scatter of the finest level is the inverse permutation
                assert torch.equal(getattr(flow, f"_scatter_0_{offset}")[ref], torch.arange(L**dim))


@pytest.mark.parametrize("d", [2, 4, 6])
def test_sliced_coupling_layouts_match_the_general_gathers(d: int) -> None:
    """The sliced split/merge of half and even/odd partitions gives exactly what the index gathers give, for
    every half partition of ``range(d)``, and a loaded state with other index sets switches the layout."""
    import itertools

    torch.manual_seed(0)
    v = torch.randn(7, d, dtype=torch.float64)
    for cond in itertools.combinations(range(d), d // 2):
        trans = [j for j in range(d) if j not in cond]
        layer = masked_affine_coupling(d, list(cond), trans, hidden=(8,)).double()
        for p in layer.parameters():
            p.data += 0.3 * torch.randn_like(p)
        general = masked_affine_coupling(d, list(cond), trans, hidden=(8,)).double()
        general.load_state_dict(layer.state_dict())
        general._layout = "general"
        x, ld = layer.forward_and_log_det(v)
        xg, ldg = general.forward_and_log_det(v)
        assert torch.allclose(x, xg, atol=1e-14) and torch.allclose(ld, ldg, atol=1e-14), cond
        z, ldi = layer.inverse_and_log_det(x)
        zg, ldig = general.inverse_and_log_det(x)
        assert torch.allclose(z, zg, atol=1e-14) and torch.allclose(ldi, ldig, atol=1e-14), cond
    halves = masked_affine_coupling(d, list(range(d // 2)), list(range(d // 2, d)), hidden=(8,))
    other = masked_affine_coupling(d, list(range(0, d, 2)), list(range(1, d, 2)), hidden=(8,))
    assert halves._layout == "halves" and other._layout == ("halves" if d == 2 else "interleaved")
    halves.load_state_dict(other.state_dict())
    assert halves._layout == other._layout
    assert torch.equal(halves(v.float()), other(v.float()))
