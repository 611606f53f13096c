r"""Symmetrised mixtures of a distribution: the :math:`Z_2` sign flip and the lattice symmetries.

* :class:`Z2Symmetrized` — the mixture :math:`\tfrac12[q(x) + q(-x)]` of a distribution and its mirror image.
  Reverse-KL training of a plain flow collapses onto one magnetisation sector of a :math:`Z_2`-symmetric target
  and loses :math:`\ln 2` of entropy; the mixture restores it.
* :class:`LatticeSymmetrized` — the mixture :math:`\frac1{|S|}\sum_{g\in S} q(g^{-1}x)` over lattice translations
  (and the point group) of a distribution whose flow is not translation invariant (a MERA flow is built of
  blocks). Since KL is convex and the target is invariant, it never raises the variational free energy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, Self

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..errors import CheckpointError, EventShapeError
from .flow import FlowDistribution, load_flow_file, refuse_conditional, save_flow_file

__all__ = [
    "Z2Symmetrized",
    "LatticeSymmetrized",
    "lattice_symmetry_maps",
    "SymmetryMap",
    "save_distribution",
    "load_distribution",
]


class _SavedAsItself:
    """``save``/``load`` for a mixture that is saved as itself (flow weights, flow config, the mixture's settings)."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the mixture as itself; see :func:`save_distribution`."""
        save_distribution(self, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], map_location: str | torch.device | None = None, requires_grad: bool = False
    ) -> Self:
        """Load a mixture saved by :meth:`save` (frozen unless ``requires_grad``); see :func:`load_distribution`."""
        return _load_as(cls, path, map_location, requires_grad)


class Z2Symmetrized(_SavedAsItself, dist.TorchDistribution):
    r""":math:`\tfrac12 [q(x) + q(-x)]`: the :math:`x \to -x` symmetrisation of a distribution ``q``.

    ``rsample`` draws :math:`x \sim q` and flips its sign with probability 1/2 (the sign is independent of the
    parameters, so the sample stays reparameterised);
    :math:`\ln p(x) = \operatorname{logaddexp}(\ln q(x), \ln q(-x)) - \ln 2`.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    has_rsample = True

    def __init__(self, base: dist.TorchDistribution, validate_args=None) -> None:
        self.base = base
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return self.base.support

    def expand(self, batch_shape, _instance=None):  # noqa: D102
        new = self._get_checked_instance(Z2Symmetrized, _instance)
        new.base = self.base.expand(batch_shape)
        super(Z2Symmetrized, new).__init__(new.base.batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        base = self.base
        if isinstance(base, dist.TransformedDistribution) and hasattr(base.transforms[0], "forward_and_log_det") \
                and len(base.transforms) == 1:
            # one forward pass gives x = g(z) and ln q(x); remember it so log_prob needs one inverse (for -x) only
            z = base.base_dist.rsample(sample_shape)
            x, ldj = base.transforms[0].forward_and_log_det(z)
            log_q_own = base.base_dist.log_prob(z) - ldj
        else:
            x, log_q_own = base.rsample(sample_shape), None
        batch = x.shape[: x.dim() - len(self.event_shape)]
        sign = torch.randint(0, 2, batch, device=x.device).to(x.dtype) * 2 - 1
        out = x * sign.reshape(*batch, *([1] * len(self.event_shape)))
        self._last = (out, x, log_q_own)
        return out

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        last = getattr(self, "_last", None)
        if not (getattr(self.base, "path_gradient", False) and torch.is_grad_enabled()) \
                and last is not None and last[0] is x and last[2] is not None:
            _, x_own, log_q_own = last
            return torch.logaddexp(log_q_own, self.base.log_prob(-x_own)) - math.log(2.0)
        if last is not None and last[0] is x:
            x = last[1]  # score the unsigned draw: the mixture is even, and its graph is the sample's own
        # one flow call on the stacked pair (x, -x): half the per-call overhead of two calls
        pair = self.base.log_prob(torch.stack([x, -x]))
        return torch.logaddexp(pair[0], pair[1]) - math.log(2.0)


SymmetryMap = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def lattice_symmetry_maps(
    lattice_shape: tuple[int, ...], translations: int = 2, point_group: bool = False
) -> list[SymmetryMap]:
    r"""The set :math:`S` of lattice maps :math:`g` (site permutations) as ``(g, g_inverse)`` pairs.

    :math:`S = T \times P`: :math:`T` shifts the configuration by every offset in
    :math:`\{0, \dots, t-1\}^d` (periodic, ``t = translations``), :math:`P` is the identity or, with
    ``point_group``, the symmetry group of the lattice: the 8 rotations and reflections of the square
    (:math:`D_4`, ``dim = 2``) or the reflection of the ring (``dim = 1``). :math:`S` need not be a group.
    The maps act on the trailing ``len(lattice_shape)`` dimensions of a tensor.

    Args:
        lattice_shape: ``(L,)`` or ``(L, L)``.
        translations: offsets per axis, ``1 <= t <= L`` (1 = no translation). For a NeuralRG flow the blocks of
            the finest level repeat with period 2, and ``t = 2`` gives most of the gain (``docs/physics.md``,
            "Lattice symmetry").
        point_group: also apply every rotation/reflection.

    Raises:
        EventShapeError: a lattice that is not ``(L,)`` or ``(L, L)``, or ``translations`` out of range.
    """
    shape = tuple(int(n) for n in lattice_shape)
    d = len(shape)
    if d not in (1, 2) or (d == 2 and shape[0] != shape[1]):
        raise EventShapeError(f"lattice symmetrisation needs a ring (L,) or a square (L, L), got {shape}")
    t = int(translations)
    if not 1 <= t <= shape[0]:
        raise EventShapeError(f"translations must be in 1..L = 1..{shape[0]}, got {translations!r} (1 = none)")
    dims = tuple(range(-d, 0))
    offsets = [(a,) for a in range(t)] if d == 1 else [(a, b) for a in range(t) for b in range(t)]
    maps: list[SymmetryMap] = []
    for off in offsets:
        neg = tuple(-o for o in off)
        shift: SymmetryMap = (
            (lambda x, off=off: torch.roll(x, off, dims)) if any(off) else (lambda x: x),
            (lambda x, neg=neg: torch.roll(x, neg, dims)) if any(off) else (lambda x: x),
        )
        if not point_group:
            maps.append(shift)
            continue
        rots = range(4) if d == 2 else range(1)
        for r in rots:
            for flip in (False, True):
                def g(x: torch.Tensor, s=shift[0], r=r, flip=flip) -> torch.Tensor:
                    y = torch.rot90(s(x), r, dims) if r else s(x)
                    return y.flip(-1) if flip else y

                def g_inv(x: torch.Tensor, s_inv=shift[1], r=r, flip=flip) -> torch.Tensor:
                    y = x.flip(-1) if flip else x
                    return s_inv(torch.rot90(y, -r, dims) if r else y)

                maps.append((g, g_inv))
    return maps


class LatticeSymmetrized(_SavedAsItself, dist.TorchDistribution):
    r""":math:`q_S(x) = \frac1{|S|}\sum_{g\in S} q(g^{-1}x)`: a distribution averaged over lattice symmetries.

    A NeuralRG flow is built of blocks, so its :math:`q` is not invariant under the translations and rotations of
    the lattice, while the target :math:`p` is. For every such map :math:`g`, :math:`q\circ g^{-1}` is as good
    a variational distribution as :math:`q` (same KL), and by convexity of KL their mixture is at least as good:

    .. math:: \mathrm{KL}(q_S \,\|\, p) \le \frac1{|S|}\sum_{g} \mathrm{KL}(q\circ g^{-1} \,\|\, p)
              = \mathrm{KL}(q \,\|\, p),

    lower by the information that a draw carries about which :math:`g` made it (at most :math:`\ln|S|`).
    ``rsample`` draws :math:`x_0 \sim q` and applies a uniformly chosen :math:`g` (a permutation of sites: no
    Jacobian, still reparameterised); ``log_prob`` costs :math:`|S|` evaluations of :math:`\ln q` (one batched
    call). Compose with :class:`Z2Symmetrized` for the full symmetry of the Ising model.

    Args:
        base: the distribution :math:`q`; its event is the lattice (``lattice_shape``) or its flattening.
        lattice_shape: ``(L,)`` or ``(L, L)``.
        translations: shifts by :math:`\{0, \dots, t-1\}^d` sites (see :func:`lattice_symmetry_maps`).
        point_group: also every rotation/reflection of the lattice.

    Example:
        >>> from pyro_nrg.flows import neural_rg
        >>> q = LatticeSymmetrized(Z2Symmetrized(FlowDistribution(neural_rg(L=4))), (4, 4), translations=2)
        >>> x = q.rsample((5,)); q.log_prob(x).shape
        torch.Size([5])
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    has_rsample = True

    def __init__(
        self,
        base: dist.TorchDistribution,
        lattice_shape: tuple[int, ...],
        translations: int = 2,
        point_group: bool = False,
        validate_args=None,
    ) -> None:
        self.base = base
        self.lattice_shape = tuple(int(n) for n in lattice_shape)
        if math.prod(self.lattice_shape) != math.prod(base.event_shape):
            raise EventShapeError(
                f"lattice {self.lattice_shape} does not match the distribution's event shape "
                f"{tuple(base.event_shape)}: pass the lattice the configurations live on"
            )
        self.translations = int(translations)
        self.point_group = bool(point_group)
        self.maps = lattice_symmetry_maps(self.lattice_shape, self.translations, self.point_group)
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return self.base.support

    @property
    def num_maps(self) -> int:
        """:math:`|S|`, the number of mixture components."""
        return len(self.maps)

    def expand(self, batch_shape, _instance=None):  # noqa: D102
        new = self._get_checked_instance(LatticeSymmetrized, _instance)
        new.base = self.base.expand(batch_shape)
        new.lattice_shape, new.translations, new.point_group = self.lattice_shape, self.translations, self.point_group
        new.maps = self.maps
        super(LatticeSymmetrized, new).__init__(new.base.batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


    def _map(self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        batch = x.shape[: x.dim() - len(self.event_shape)]
        return fn(x.reshape(*batch, *self.lattice_shape)).reshape(x.shape)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        x0 = self.base.rsample(sample_shape)
        batch = x0.shape[: x0.dim() - len(self.event_shape)]
        flat = x0.reshape(-1, *self.event_shape)
        which = torch.randint(0, len(self.maps), (flat.shape[0],), device=x0.device)
        images = torch.stack([self._map(flat, g) for g, _ in self.maps])  # (|S|, B, *event)
        return images[which, torch.arange(flat.shape[0], device=x0.device)].reshape(*batch, *self.event_shape)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.stack([self._map(x, g_inv) for _, g_inv in self.maps])  # (|S|, *batch, *event)
        return self.base.log_prob(pre).logsumexp(0) - math.log(len(self.maps))


# ------------------------------------------------------------------------------------------------------------
# saving a distribution as itself


def _layers(d: Any) -> tuple[FlowDistribution, list[dict[str, Any]]]:
    """The innermost :class:`FlowDistribution` of ``d`` and the mixtures around it (innermost first)."""
    layers: list[dict[str, Any]] = []
    while isinstance(d, Z2Symmetrized | LatticeSymmetrized):
        if isinstance(d, Z2Symmetrized):
            layers.append({"kind": "z2"})
        else:
            layers.append({"kind": "lattice", "lattice_shape": list(d.lattice_shape),
                           "translations": d.translations, "point_group": d.point_group})
        d = d.base
    if not isinstance(d, FlowDistribution):
        raise CheckpointError(
            f"cannot save a mixture of a {type(d).__name__}: only FlowDistribution, Z2Symmetrized and "
            f"LatticeSymmetrized around a FlowDistribution are saved (save its parts yourself)"
        )
    return d, layers[::-1]


def save_distribution(d: dist.TorchDistribution, path: str | os.PathLike[str]) -> None:
    """Save a :class:`FlowDistribution`, or symmetrised mixtures of one, as itself.

    The file holds the flow's ``state_dict`` and config and, under ``"distribution"``, the latent scale and the
    mixtures around the flow (:class:`Z2Symmetrized`, :class:`LatticeSymmetrized` with their settings), so that
    :func:`load_distribution` returns the distribution that was trained, not its one-sector flow. The flow config
    also goes to ``path`` + ``.json``. Written atomically.

    Raises:
        CheckpointError: another distribution, or a flow without config (not built by :mod:`pyro_nrg.flows`).
    """
    q, layers = _layers(d)
    save_flow_file(q.flow, path, extra={"distribution": {"latent_scale": q.latent_scale, "mixtures": layers}})


def load_distribution(
    path: str | os.PathLike[str], map_location: str | torch.device | None = None, requires_grad: bool = False
) -> dist.TorchDistribution:
    """The distribution saved by :func:`save_distribution` or :meth:`FlowDistribution.save`, as it was saved.

    Args:
        path: the saved file.
        map_location: as for :func:`torch.load`.
        requires_grad: leave the flow's parameters trainable (default: frozen).

    Raises:
        CheckpointError: see :meth:`FlowDistribution.load`; also an unknown mixture.
        ConfigMismatchError: the weights do not fit the flow the saved config describes.
    """
    flow, blob = load_flow_file(path, map_location, requires_grad)
    spec = blob.get("distribution") or {}
    refuse_conditional(path, spec)
    d: dist.TorchDistribution = FlowDistribution(flow, latent_scale=float(spec.get("latent_scale", 1.0)))
    for layer in spec.get("mixtures", []):
        kind = layer.get("kind")
        if kind == "z2":
            d = Z2Symmetrized(d)
        elif kind == "lattice":
            d = LatticeSymmetrized(d, tuple(layer["lattice_shape"]), layer["translations"], layer["point_group"])
        else:
            raise CheckpointError(
                f"{path} holds an unknown mixture {kind!r}: was it saved by another pyro_nrg version?"
            )
    return d


def _load_as(cls: type, path: str | os.PathLike[str], map_location: Any, requires_grad: bool) -> Any:
    d = load_distribution(path, map_location, requires_grad)
    if not isinstance(d, cls):
        raise CheckpointError(
            f"{path} holds a {type(d).__name__}, not a {cls.__name__}: load it with "
            f"pyro_nrg.distributions.load_distribution(path) (or {type(d).__name__}.load)"
        )
    return d
