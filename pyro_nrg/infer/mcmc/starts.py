"""Start points of chains and walkers: user ``init`` values broadcast to one per chain, non-finite starts refused."""

from __future__ import annotations

import math
from typing import Any

import torch

from ...errors import EventShapeError, NonFiniteError, SamplerSettingsError

__all__ = ["chain_inits", "check_start", "check_sampler_sizes"]


def chain_inits(init: Any, num: int, shape: tuple[int, ...], what: str) -> torch.Tensor | None:
    """``init`` as a ``(num, *shape)`` tensor (broadcasting a single configuration), or ``None``.

    ``init`` may be a tensor (or array) of shape ``shape``, flat ``(prod(shape),)``, ``(num, *shape)``, or a
    distribution to draw ``num`` starts from.

    Raises:
        EventShapeError: any other shape.
    """
    if init is None:
        return None
    if isinstance(init, torch.distributions.Distribution):
        return init.sample((num,)).detach()
    t = torch.as_tensor(init).detach()
    n = math.prod(shape)
    if tuple(t.shape) == shape or (t.dim() == 1 and t.numel() == n):
        return t.reshape(shape).expand(num, *shape).clone()
    if t.shape[0] == num and t[0].numel() == n:
        return t.reshape(num, *shape).clone()
    raise EventShapeError(
        f"{what} init has shape {tuple(t.shape)}; expected {shape} or ({num}, {', '.join(map(str, shape))}) "
        f"(one start per chain/walker)"
    )


def check_start(values: torch.Tensor, potential: torch.Tensor, what: str) -> None:
    """Refuse a start point whose coordinates or potential energy are NaN/inf, before any sampling.

    Raises:
        NonFiniteError: naming the chains/walkers concerned.
    """
    bad_x = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(-1)
    bad_u = ~torch.isfinite(potential.reshape(-1))
    bad = (bad_x | bad_u).nonzero().reshape(-1).tolist()
    if bad:
        raise NonFiniteError(
            f"{what}: start point(s) of chain/walker {bad[:10]} have NaN/inf coordinates or energy; sampling was not "
            "started. Pass finite starting values (init=None starts from flow or standard-normal draws), or check "
            "the energy/flow at that configuration"
        )


def check_sampler_sizes(what: str, step_size: float | None = None, **counts: int) -> None:
    """Refuse, before any work, a step size that is not finite and > 0 and counts (``num_samples=...``) below 1.

    Raises:
        SamplerSettingsError: naming the argument and a value that works.
    """
    if step_size is not None and not (math.isfinite(float(step_size)) and float(step_size) > 0):
        raise SamplerSettingsError(
            f"{what}: step_size must be finite and > 0, got {step_size!r}: pass e.g. step_size=0.1 (with "
            "adapt_step_size=True it is only the starting value)"
        )
    for name, value in counts.items():
        if int(value) < 1:
            raise SamplerSettingsError(f"{what}: {name} must be >= 1, got {value!r}: pass e.g. {name}=100")
