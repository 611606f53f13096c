r"""The push-forward :math:`x = g(z)` of a trained flow, its log-determinant, and the shape adaptors around it.

Every sampler, estimator and analysis that works in a flow's latent space needs the same few steps: find the
latent → physical transform inside whatever the user passed (a :class:`~pyro_nrg.infer.FlowGuide`, a
:class:`~pyro_nrg.distributions.FlowDistribution`, a :class:`~pyro_nrg.distributions.Z2Symmetrized` mixture or the
transform itself), bring a latent tensor to the flow's event shape (Pyro's NeuTra keeps a flat ``(..., N)``
vector, the lattice flows act on ``(..., L, L)``), and compute

.. math:: x = g(z), \qquad \ln\Big|\det \frac{\partial g}{\partial z}\Big| \quad (\text{shape } \texttt{batch}),

in one pass where the flow supports it (:meth:`~pyro_nrg.transforms.PairedTransformModule.forward_and_log_det`).

Example:
    >>> import torch
    >>> from pyro_nrg.energies import IsingRelaxed
    >>> from pyro_nrg.flows import neural_rg
    >>> energy, flow = IsingRelaxed(4, 3.0), neural_rg(L=4)
    >>> x, ldj = to_physical(flow, energy, torch.randn(7, 16))   # flat latents, as NeuTra keeps them
    >>> x.shape, ldj.shape
    (torch.Size([7, 4, 4]), torch.Size([7]))
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from ..distributions import FlowDistribution, Z2Symmetrized
from ..dtypes import module_dtype_device
from ..energies.base import Energy
from ..errors import EventShapeError
from ..transforms.base import PairedTransformModule
from .model import FlowGuide

__all__ = [
    "flow_of",
    "flow_event_shape",
    "forward_and_log_det",
    "as_flow_event",
    "to_physical",
    "check_flow_fits",
    "param_dtype",
    "frozen",
]


def flow_of(guide_or_flow: Any) -> torch.distributions.Transform:
    """The latent → physical transform inside a FlowGuide, a (Z₂-symmetrized) FlowDistribution, or a flow.

    Raises:
        TypeError: anything else.
    """
    obj = guide_or_flow
    if isinstance(obj, FlowGuide):
        return obj.flow
    if isinstance(obj, Z2Symmetrized):
        obj = obj.base
    if isinstance(obj, FlowDistribution):
        return obj.flow
    if isinstance(obj, torch.distributions.Transform):
        return obj
    raise TypeError(
        f"expected a FlowGuide, a FlowDistribution or a flow transform (latent -> physical), got {type(obj).__name__}: "
        "pass result.guide from pyro_nrg.infer.distill, or the flow itself"
    )


def flow_event_shape(flow: torch.distributions.Transform, energy: Energy) -> tuple[int, ...]:
    """The event shape the flow acts on (its ``event_shape``; a flow without one acts on the energy's)."""
    es = getattr(flow, "event_shape", None)
    return tuple(es) if es is not None else tuple(energy.event_shape)


def check_flow_fits(flow: torch.distributions.Transform, energy: Energy) -> None:
    """Raise :class:`EventShapeError` unless the flow has as many variables as a configuration of ``energy``.

    A flow may act on a flat ``(N,)`` vector or on the lattice itself; what must agree is :math:`N`.
    """
    fes, es = flow_event_shape(flow, energy), tuple(energy.event_shape)
    if math.prod(fes) != math.prod(es):
        raise EventShapeError(
            f"the flow acts on event shape {fes} ({math.prod(fes)} variables) but {type(energy).__name__} has "
            f"configurations of shape {es} ({math.prod(es)} variables): use a flow trained for this lattice, e.g. "
            f"distill(energy, neural_rg(L={es[0]}), ...) for L={es[0]}"
        )


def forward_and_log_det(flow: torch.distributions.Transform, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x = g(z)`` and ``ln|det dg/dz|`` (shape ``batch``) from one pass where the flow supports it."""
    if isinstance(flow, PairedTransformModule):
        return flow.forward_and_log_det(z)
    x = flow(z)
    return x, flow.log_abs_det_jacobian(z, x)


def as_flow_event(
    flow: torch.distributions.Transform, energy: Energy, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Size]:
    """Reshape ``z`` (flow event shape, or flat ``(..., N)``) to the flow's event shape; return it and the batch.

    Raises:
        EventShapeError: ``z`` fits neither layout.
    """
    fes = flow_event_shape(flow, energy)
    k = len(fes)
    if z.dim() >= k and tuple(z.shape[z.dim() - k:]) == fes:
        return z, z.shape[: z.dim() - k]
    n = math.prod(fes)
    if z.dim() >= 1 and z.shape[-1] == n:
        batch = z.shape[:-1]
        return z.reshape(*batch, *fes), batch
    raise EventShapeError(
        f"latent tensor of shape {tuple(z.shape)} fits neither the flow's event shape {fes} nor a flat ({n},) "
        f"vector: pass z of shape (*batch, {', '.join(map(str, fes))}) or (*batch, {n})"
    )


def to_physical(
    flow: torch.distributions.Transform, energy: Energy, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (``(*batch, *energy.event_shape)``) and ``ln|det dg/dz|`` (``batch``) for latents ``z``.

    ``z`` has the flow's event shape or is flat ``(*batch, N)`` (:func:`as_flow_event`).
    """
    zf, batch = as_flow_event(flow, energy, z)
    x, ldj = forward_and_log_det(flow, zf)
    return x.reshape(*batch, *energy.event_shape), ldj.reshape(batch)


def param_dtype(module: Any) -> torch.dtype:
    """The dtype a module computes in (:func:`pyro_nrg.dtypes.module_dtype_device`)."""
    return module_dtype_device(module)[0]


@contextlib.contextmanager
def frozen(module: Any) -> Iterator[None]:
    """Temporarily stop ``requires_grad`` on a module's parameters (sampling needs gradients in z only)."""
    params = list(module.parameters()) if isinstance(module, torch.nn.Module) else []
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
