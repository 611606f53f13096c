r"""The energy interface: unnormalized Boltzmann potentials with validation, forces and exact references.

An :class:`Energy` defines a density on configurations ``x`` of shape ``(*batch, *event_shape)``

.. math:: p(x) = e^{-\beta E(x)} / Z, \qquad F = -T \ln Z,

with ``energy(x)`` of shape ``batch_shape`` (never ``(*batch, 1)``). Subclasses implement the private kernel
``_energy``; the public :meth:`Energy.energy` converts array input to a tensor, checks shapes and (when
``validate`` is on) finite values of the input and of the result. Constant couplings are buffers, so
``energy.to(torch.float64)`` moves everything.

Every energy also has the physical observables the samplers record (:meth:`Energy.observables`): the
magnetization, an estimator of :math:`\langle m^2\rangle` and the energy per site. The defaults are the site mean,
its square and :math:`E(x)/N`; a model with better estimators overrides the three hooks
(:class:`~pyro_nrg.energies.IsingRelaxed` uses the spins' conditional means).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ..dtypes import module_dtype_device
from ..errors import EventShapeError, NonFiniteError, TemperatureError

__all__ = ["Energy", "check_temperature", "OBSERVABLES"]

OBSERVABLES = ("m", "abs_m", "m2", "energy_per_site")
"""The observables every sampler records and ArviZ's ``posterior`` holds (plus ``physical_energy``)."""


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
    def dtype(self) -> torch.dtype:
        """The floating dtype of the energy's buffers (``energy.double()`` makes it float64), else torch's default."""
        return module_dtype_device(self)[0]

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

    @contextlib.contextmanager
    def unvalidated(self) -> Iterator[None]:
        """Within the block, NaN/inf configurations and energies pass unchecked (shapes are still checked).

        Samplers use it so that a diverging trajectory yields an infinite energy, which they reject, instead of an
        error in the middle of a trajectory.
        """
        old = self.validate
        self.validate = False
        try:
            yield
        finally:
            self.validate = old

    def as_configuration(self, x: Any) -> torch.Tensor:
        """``x`` as a tensor: a NumPy array or nested list is converted to the energy's :attr:`dtype`."""
        if isinstance(x, torch.Tensor):
            return x
        return torch.as_tensor(np.asarray(x), dtype=self.dtype)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Energy :math:`E(x)` of shape ``batch_shape``.

        ``x`` is a tensor ``(*batch, *event_shape)`` (a NumPy array is converted, see :meth:`as_configuration`).

        Raises:
            EventShapeError: the trailing dimensions of ``x`` are not ``event_shape``.
            NonFiniteError: (``validate`` on) ``x`` holds NaN/inf, or :math:`E(x)` overflows to inf for finite
                ``x`` (a configuration far outside the range of the model's dtype).
        """
        x = self.as_configuration(x)
        self.check_input(x)
        e = self._energy(x)
        if self.validate and not bool(torch.isfinite(e).all()):
            top = float(x.detach().abs().max())
            raise NonFiniteError(
                f"{type(self).__name__}: E(x) is not finite for {int((~torch.isfinite(e)).sum())} finite "
                f"configuration(s) (largest |x| = {top:.3g}): the energy overflows {x.dtype}; evaluate in float64 "
                "(energy.double(), x.double()) or check the sampler or flow that produced such values"
            )
        return e

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

    # -- observables ---------------------------------------------------------------------------------------------
    def magnetization(self, x: torch.Tensor) -> torch.Tensor:
        r"""Magnetization :math:`m = \frac1N\sum_i x_i` (the site mean), shape ``batch``."""
        x = self.as_configuration(x)
        self.check_input(x)
        return x.flatten(x.dim() - self.event_dim).mean(-1) if self.event_dim else x

    def squared_magnetization(self, x: torch.Tensor) -> torch.Tensor:
        r"""An estimator of :math:`\langle m^2\rangle`, shape ``batch``: here :math:`m^2`."""
        return self.magnetization(x).square()

    def energy_per_site(self, x: torch.Tensor, energy: torch.Tensor | None = None) -> torch.Tensor:
        r"""An estimator of the energy per site, shape ``batch``: here :math:`E(x)/N` (``energy``: :math:`E(x)`
        if already computed)."""
        e = self.energy(x) if energy is None else energy
        return e / self.n_dof

    @torch.no_grad()
    def observables(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        r"""The physical observables of configurations ``x`` ``(*batch, *event_shape)``, float64 of shape ``batch``.

        ``m`` (:meth:`magnetization`), ``abs_m``, ``m2`` (:meth:`squared_magnetization`), ``energy_per_site``
        (:meth:`energy_per_site`) and ``physical_energy`` :math:`E(x)`.

        Raises:
            EventShapeError: the trailing dimensions of ``x`` are not ``event_shape``.
        """
        x = self.as_configuration(x)
        es = self.event_shape
        if x.dim() < len(es) or tuple(x.shape[x.dim() - len(es):]) != es:
            raise EventShapeError(f"configurations must have shape (*batch, {es}), got {tuple(x.shape)}")
        m = self.magnetization(x)
        e = self.energy(x)
        out = {"m": m, "abs_m": m.abs(), "m2": self.squared_magnetization(x),
               "energy_per_site": self.energy_per_site(x, e), "physical_energy": e}
        return {key: v.detach().to(torch.float64) for key, v in out.items()}

    def log_z(self) -> float:
        r"""Exact :math:`\ln Z = \ln \int e^{-\beta E(x)}\,dx` where known (float64 arithmetic)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact partition function")

    def free_energy(self) -> float:
        r"""Exact free energy :math:`F = -T \ln Z` where known."""
        return -self.temperature * self.log_z()

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, T={self.temperature:.6g}"
