r"""Reusable contract checks for transforms (and energies), shipped so users can check their own layers.

Every transform of the package maps latent ``z`` to physical ``x`` (``_call``), has an exact inverse
(``_inverse``) and returns ``log|det dx/dz|`` of shape ``batch_shape`` from ``log_abs_det_jacobian(z, x)``.
:func:`check_transform` runs all the checks below on a *factory* (a zero-argument callable returning a fresh
transform) so that save/load can build a second instance.

Example:
    >>> from pyro_nrg.testing import check_transform
    >>> from pyro_nrg.transforms import hierarchical_flow
    >>> check_transform(lambda: hierarchical_flow(4, dim=2, n_couplings=2, hidden=8), (4, 4))
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import torch
from torch.distributions import Transform

__all__ = [
    "perturb_parameters",
    "check_inverse",
    "check_log_det",
    "check_shapes",
    "check_gradients",
    "check_save_load",
    "check_symplectic",
    "check_transform",
    "check_energy",
    "symplectic_form",
]

BATCH_SHAPES: tuple[tuple[int, ...], ...] = ((), (3,), (2, 3))


def _params(t: Transform) -> list[torch.nn.Parameter]:
    return list(t.parameters()) if isinstance(t, torch.nn.Module) else []


def _fresh(x: torch.Tensor) -> torch.Tensor:
    """A new tensor object with the same values, so no transform cache can answer for it."""
    return x.detach().clone()


def perturb_parameters(t: Transform, scale: float = 0.1, seed: int = 0) -> Transform:
    """Add Gaussian noise of std ``scale`` to every parameter (in place) and return ``t``.

    Flows are usually initialised at (or near) the identity, with zero output layers; that makes the checks
    weak and hides gradients. Perturbing first makes every check non-trivial.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in _params(t):
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
    return t


def _sample(event_shape: Sequence[int], batch_shape: Sequence[int], seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch_shape, *event_shape, generator=g, dtype=torch.float64)


def check_inverse(t: Transform, event_shape: Sequence[int], atol: float = 1e-8) -> None:
    """``t.inv(t(z)) == z`` and ``t(t.inv(x)) == x`` in float64 (cache bypassed)."""
    z = _sample(event_shape, (5,))
    x = t(z)
    z2 = t.inv(_fresh(x))
    err = (z2 - z).abs().max().item()
    assert err < atol, f"inverse round trip z -> x -> z failed: max error {err:.3e} (atol {atol:.0e})"
    x0 = _sample(event_shape, (5,), seed=2)
    x2 = t(_fresh(t.inv(x0)))
    err = (x2 - x0).abs().max().item()
    assert err < atol, f"inverse round trip x -> z -> x failed: max error {err:.3e} (atol {atol:.0e})"


def _jacobian(t: Transform, z: torch.Tensor) -> torch.Tensor:
    """Dense Jacobian ``dx/dz`` of one unbatched event, flattened to ``(D, D)``."""
    shape = z.shape

    def f(flat: torch.Tensor) -> torch.Tensor:
        return t(flat.reshape(shape)).reshape(-1)

    return torch.autograd.functional.jacobian(f, _fresh(z).reshape(-1))


def check_log_det(t: Transform, event_shape: Sequence[int], atol: float = 1e-7, n: int = 3) -> None:
    """``log_abs_det_jacobian`` equals ``log|det|`` of the autograd Jacobian (float64), both directions."""
    zs = _sample(event_shape, (n,), seed=3)
    for i in range(n):
        z = _fresh(zs[i])
        ref = torch.linalg.slogdet(_jacobian(t, z))[1]
        x = t(z)
        got = t.log_abs_det_jacobian(z, x)
        assert got.shape == (), f"log_abs_det_jacobian of one event must be a scalar, got shape {tuple(got.shape)}"
        assert abs(got.item() - ref.item()) < atol * max(1.0, abs(ref.item())), (
            f"log|det J| mismatch (forward): transform says {got.item():.10f}, autograd Jacobian {ref.item():.10f}"
        )
        # the inverse path (x given, z computed) must report the same log-det
        x_new = _fresh(x)
        z_back = t.inv(x_new)
        got_inv = t.log_abs_det_jacobian(z_back, x_new)
        assert abs(got_inv.item() - ref.item()) < atol * max(1.0, abs(ref.item())), (
            f"log|det J| mismatch (inverse path): {got_inv.item():.10f} vs autograd {ref.item():.10f}"
        )


def check_shapes(
    t: Transform, event_shape: Sequence[int], batch_shapes: Sequence[Sequence[int]] = BATCH_SHAPES
) -> None:
    """Output has the input's shape and the log-det has shape ``batch_shape``, for several batch shapes."""
    for bs in batch_shapes:
        z = _sample(event_shape, bs)
        x = t(z)
        assert x.shape == z.shape, f"batch {tuple(bs)}: output shape {tuple(x.shape)} != input {tuple(z.shape)}"
        ld = t.log_abs_det_jacobian(z, x)
        assert ld.shape == tuple(bs), f"batch {tuple(bs)}: log-det shape {tuple(ld.shape)} != batch shape {tuple(bs)}"
        zb = t.inv(_fresh(x))
        assert zb.shape == z.shape, f"batch {tuple(bs)}: inverse shape {tuple(zb.shape)} != {tuple(z.shape)}"


def check_gradients(t: Transform, event_shape: Sequence[int]) -> None:
    """Every parameter receives a finite, non-zero gradient from ``sum(x**2) + sum(log-det)``."""
    params = _params(t)
    if not params:
        return
    for p in params:
        p.grad = None
    z = _sample(event_shape, (4,), seed=4)
    x = t(z)
    loss = (x**2).sum() + t.log_abs_det_jacobian(z, x).sum()
    loss.backward()
    names = dict((id(p), n) for n, p in t.named_parameters())
    for p in params:
        name = names.get(id(p), "?")
        assert p.grad is not None, f"parameter {name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"parameter {name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"parameter {name} has an all-zero gradient"
        p.grad = None


def check_save_load(factory: Callable[[], Transform], t: Transform, event_shape: Sequence[int]) -> None:
    """``state_dict`` saved to bytes and loaded into a fresh instance reproduces the map exactly."""
    if not isinstance(t, torch.nn.Module):
        return
    buf = io.BytesIO()
    torch.save(t.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    t2 = factory().double()
    t2.load_state_dict(state)
    z = _sample(event_shape, (3,), seed=5)
    x1, x2 = t(z), t2(_fresh(z))
    assert torch.equal(x1, x2), "a transform rebuilt from its saved state_dict gives a different map"


def symplectic_form(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The canonical ``(2n, 2n)`` symplectic form :math:`\Omega = [[0, I], [-I, 0]]` for ``x = (q, p)``."""
    eye = torch.eye(n, dtype=dtype)
    zero = torch.zeros(n, n, dtype=dtype)
    return torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)


def check_symplectic(t: Transform, event_shape: Sequence[int], atol: float = 1e-8) -> None:
    r"""The Jacobian satisfies :math:`J^\top \Omega J = \Omega` (float64, autograd) at random points.

    The event must be a flat phase-space vector ``(2n,)`` ordered ``(q_1..q_n, p_1..p_n)``.
    """
    (d,) = tuple(event_shape)
    omega = symplectic_form(d // 2)
    zs = _sample(event_shape, (2,), seed=6)
    for i in range(2):
        J = _jacobian(t, zs[i])
        err = (J.T @ omega @ J - omega).abs().max().item()
        assert err < atol, f"transform is not symplectic: max |J^T Omega J - Omega| = {err:.3e}"


def check_transform(
    factory: Callable[[], Transform],
    event_shape: Sequence[int],
    symplectic: bool = False,
    perturb: float = 0.1,
    atol: float = 1e-7,
) -> None:
    """Run every contract check on a fresh float64 instance from ``factory``.

    Args:
        factory: zero-argument callable returning a new transform (same configuration each call).
        event_shape: event shape the transform acts on.
        symplectic: also check :math:`J^\\top \\Omega J = \\Omega` (flat phase-space events only).
        perturb: std of the noise added to parameters first (see :func:`perturb_parameters`).
        atol: absolute tolerance of the float64 comparisons.

    Raises:
        AssertionError: with a message naming the failed property.
    """
    t = factory()
    if isinstance(t, torch.nn.Module):
        t = t.double()
    perturb_parameters(t, perturb)
    check_shapes(t, event_shape)
    check_inverse(t, event_shape, atol=atol)
    check_log_det(t, event_shape, atol=atol)
    check_gradients(t, event_shape)
    check_save_load(lambda: perturb_parameters(factory().double(), 0.0), t, event_shape)
    if symplectic:
        check_symplectic(t, event_shape, atol=atol)


def check_energy(energy: object, batch_shapes: Sequence[Sequence[int]] = BATCH_SHAPES) -> None:
    """An energy returns shape ``batch_shape`` for several batch shapes and forces equal ``-grad E``.

    ``energy`` must have ``event_shape`` and ``energy(x)``; ``force(x)`` is checked against autograd if present.
    """
    es = tuple(energy.event_shape)  # type: ignore[attr-defined]
    for bs in batch_shapes:
        x = _sample(es, bs, seed=7)
        e = energy.energy(x)  # type: ignore[attr-defined]
        assert e.shape == tuple(bs), f"energy of batch {tuple(bs)} has shape {tuple(e.shape)}, expected {tuple(bs)}"
        assert torch.isfinite(e).all(), "energy is not finite on standard-normal configurations"
    if hasattr(energy, "force"):
        x = _sample(es, (2,), seed=8).requires_grad_(True)
        g = torch.autograd.grad(energy.energy(x).sum(), x)[0]  # type: ignore[attr-defined]
        f = energy.force(x.detach())  # type: ignore[attr-defined]
        err = (f + g).abs().max().item()
        assert err < 1e-8 * max(1.0, g.abs().max().item()), f"force != -grad E (max error {err:.3e})"
