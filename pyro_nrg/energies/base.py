r"""The energy interface: unnormalized Boltzmann potentials with validation, forces and exact references.

An :class:`Energy` defines a density on configurations ``x`` of shape ``(*batch, *event_shape)``

.. math:: p(x) = e^{-\beta E(x)} / Z, \qquad F = -T \ln Z,

with ``energy(x)`` of shape ``batch_shape`` (never ``(*batch, 1)``). Subclasses implement the private kernel
``_energy``; the public :meth:`Energy.energy` checks shapes and (when ``validate`` is on) finite values first.
Constant couplings are buffers, so ``energy.to(torch.float64)`` moves everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import EventShapeError, NonFiniteError, TemperatureError

__all__ = ["Energy", "check_temperature"]


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, or raise :class:`TemperatureError` if it is not finite and > 0."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TemperatureError(f"temperature must be a positive number, got {temperature!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise TemperatureError(
            f"temperature must be finite and > 0, got T={temperature!r}: for the 2D Ising critical point use "
            f"T=2/ln(1+sqrt(2)) ~ 2.269 (pyro_nrg.energies.ISING_TC)"
        )
    return t


class Energy(torch.nn.Module):
    r"""Base class of unnormalized potentials :math:`E(x)` at temperature :math:`T`.

    Args:
        event_shape: shape of one configuration.
        temperature: :math:`T > 0`; :math:`\beta = 1/T`.
        validate: check every configuration for NaN/inf (cheap; on by default).
    """

    def __init__(self, event_shape: tuple[int, ...], temperature: float = 1.0, validate: bool = True) -> None:
        super().__init__()
        self.event_shape = tuple(int(s) for s in event_shape)
        self.temperature = check_temperature(temperature)
        self.validate = validate

    @property
    def beta(self) -> float:
        """Inverse temperature :math:`\\beta = 1/T`."""
        return 1.0 / self.temperature

    @property
    def event_dim(self) -> int:
        """Number of event dimensions."""
        return len(self.event_shape)

    @property
    def n_dof(self) -> int:
        """Number of degrees of freedom (product of the event shape)."""
        return math.prod(self.event_shape)

    def register_exact_buffer(self, name: str, value: np.ndarray) -> None:
        """Register a non-persistent constant buffer that keeps a float64 master copy.

        It follows from the constructor arguments (so it is not saved in ``state_dict``), and is rebuilt from the
        float64 copy after ``.to(...)``/``.double()``: an energy built in float32 and moved to float64 gets full
        float64 constants, not float32-rounded ones.
        """
        masters = self.__dict__.setdefault("_float64_masters", {})
        masters[name] = np.asarray(value, dtype=np.float64)
        self.register_buffer(name, torch.tensor(masters[name], dtype=torch.get_default_dtype()), persistent=False)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> Energy:
        out = super()._apply(fn, *args, **kwargs)
        for name, master in self.__dict__.get("_float64_masters", {}).items():
            buf = getattr(self, name)
            setattr(self, name, torch.tensor(master, dtype=buf.dtype, device=buf.device))
        return out

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`EventShapeError` / :class:`NonFiniteError` for a bad configuration tensor."""
        es = self.event_shape
        if x.dim() < len(es) or tuple(x.shape[x.dim() - len(es):]) != es:
            raise EventShapeError(
                f"{type(self).__name__} expects configurations of shape (*batch, {', '.join(map(str, es))}), got "
                f"{tuple(x.shape)}: reshape with x.reshape(-1, {', '.join(map(str, es))})"
            )
        if self.validate and not torch.isfinite(x).all():
            raise NonFiniteError(
                f"{type(self).__name__}: the configuration contains NaN or inf "
                f"({int((~torch.isfinite(x)).sum())} entries); check the sampler or flow that produced it"
            )

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Energy :math:`E(x)` of shape ``batch_shape``."""
        self.check_input(x)
        return self._energy(x)

    def _energy(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`energy`."""
        return self.energy(x)

    def action(self, x: torch.Tensor) -> torch.Tensor:
        r"""Dimensionless :math:`\beta E(x) = -\ln \tilde p(x)`, shape ``batch_shape``."""
        return self.beta * self.energy(x)

    def log_unnormalized(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\ln \tilde p(x) = -\beta E(x)`, shape ``batch_shape``."""
        return -self.action(x)

    def force(self, x: torch.Tensor) -> torch.Tensor:
        r"""Force :math:`-\nabla_x E(x)` (autograd), shape of ``x``."""
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(xr).sum(), xr)
        return -g

    def log_z(self) -> float:
        r"""Exact :math:`\ln Z = \ln \int e^{-\beta E(x)}\,dx` where known (float64 arithmetic)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact partition function")

    def free_energy(self) -> float:
        r"""Exact free energy :math:`F = -T \ln Z` where known."""
        return -self.temperature * self.log_z()

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, T={self.temperature:.6g}"
