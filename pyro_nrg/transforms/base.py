r"""Shared machinery of pyro_nrg transforms: value and log-determinant computed together, cached once.

Every transform maps latent ``z`` to physical ``x``. Subclasses implement two methods that both return the
log-determinant of the *forward* map, :math:`\ln|\det \partial x/\partial z|`, of shape ``batch_shape``:

* ``forward_and_log_det(z) -> (x, ldj)``
* ``inverse_and_log_det(x) -> (z, ldj)``

so there is one sign convention everywhere. :meth:`log_abs_det_jacobian` returns the value computed alongside
the last call (either direction) when asked about that same ``(z, x)`` pair, and recomputes otherwise (with
``cache_size=0`` nothing is remembered, so no autograd graph is kept alive between calls); with
``cache_size=1`` Pyro's :class:`~torch.distributions.TransformedDistribution` then scores its own samples with
a single pass through the network.
"""

from __future__ import annotations

import torch
from pyro.distributions.torch_transform import TransformModule
from torch.distributions import constraints

__all__ = ["PairedTransformModule", "Reshaped"]


class PairedTransformModule(TransformModule):
    """Base class: a bijective :class:`~pyro.distributions.torch_transform.TransformModule` on events of
    ``event_dim`` real dimensions whose value and log-determinant come from one computation."""

    bijective = True

    def __init__(self, event_dim: int, cache_size: int = 1) -> None:
        super().__init__(cache_size=cache_size)
        self._event_dim = int(event_dim)
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def event_dim(self) -> int:  # type: ignore[override]
        """Number of event dimensions the transform acts on."""
        return self._event_dim

    @constraints.dependent_property(is_discrete=False)
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, self._event_dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, self._event_dim)

    def forward_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``x = g(z)`` and ``log|det dx/dz|`` (shape ``batch_shape``)."""
        raise NotImplementedError

    def inverse_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``z = g^{-1}(x)`` and ``log|det dx/dz|`` at that point (shape ``batch_shape``)."""
        raise NotImplementedError

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        x, ldj = self.forward_and_log_det(z)
        if self._cache_size:
            self._last = (z, x, ldj)
        return x

    def _inverse(self, x: torch.Tensor) -> torch.Tensor:
        z, ldj = self.inverse_and_log_det(x)
        if self._cache_size:
            self._last = (z, x, ldj)
        return z

    def log_abs_det_jacobian(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\ln|\\det \\partial x/\\partial z|` of shape ``batch_shape`` (cached from the last call)."""
        last = self._last
        if last is not None and last[0] is z and last[1] is x:
            return last[2]
        return self.forward_and_log_det(z)[1]

    def clear_cache(self) -> None:
        """Forget the cached (z, x, log-det) triple and Pyro's value cache (frees the autograd graph)."""
        self._last = None
        self._cached_x_y = None, None


class Reshaped(PairedTransformModule):
    """Run a transform on events of shape ``inner_shape`` while exposing flat ``(prod(inner_shape),)`` events.

    Pyro's ``AutoContinuous`` guides and ``NeuTraReparam`` pack all latent sites into one flat vector; wrapping a
    lattice flow in :class:`Reshaped` lets it act there. ``inner`` must implement ``forward_and_log_det`` and
    ``inverse_and_log_det``.
    """

    def __init__(self, inner: PairedTransformModule, inner_shape: tuple[int, ...]) -> None:
        super().__init__(event_dim=1)
        self.inner = inner
        self.inner_shape = tuple(int(s) for s in inner_shape)
        self.size = 1
        for s in self.inner_shape:
            self.size *= s

    def _unflat(self, v: torch.Tensor) -> torch.Tensor:
        if v.dim() < 1 or v.shape[-1] != self.size:
            from ..errors import EventShapeError

            raise EventShapeError(
                f"expected flat events of size {self.size} (= prod{self.inner_shape}), got shape {tuple(v.shape)}"
            )
        return v.reshape(*v.shape[:-1], *self.inner_shape)

    def forward_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, ldj = self.inner.forward_and_log_det(self._unflat(z))
        return x.reshape(z.shape), ldj

    def inverse_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, ldj = self.inner.inverse_and_log_det(self._unflat(x))
        return z.reshape(x.shape), ldj
