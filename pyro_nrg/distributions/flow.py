r"""Flow distributions for Pyro models: a standard normal pushed through a flow, and the path-gradient ``log_prob``.

* :class:`FlowDistribution` — :math:`x = g(z)`, :math:`z \sim \mathcal N(0, \sigma^2 I)`:
  :math:`\ln q(x) = \ln \mathcal N(g^{-1}(x)) - \ln|\det \partial g/\partial z|`. A drop-in prior for any Pyro
  model (``field = pyro.sample("field", prior)``), with :meth:`FlowDistribution.save` / :meth:`FlowDistribution.load`.
* :func:`detached_parameters` / :func:`detached_log_prob` — :math:`\ln q_{\bar\theta}(x)` with the flow parameters
  treated as constants: the path-gradient ("sticking the landing") estimator of the reverse KL.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ..dtypes import module_dtype_device
from ..errors import CheckpointError, ConfigMismatchError
from ..flows import build_flow, flow_config
from ..io import atomic_torch_save, write_json

__all__ = [
    "FlowDistribution",
    "save_flow_file",
    "refuse_conditional",
    "read_flow_file",
    "load_flow_file",
    "standard_normal",
    "detached_log_prob",
    "detached_parameters",
]


def standard_normal(
    event_shape: tuple[int, ...],
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    scale: float = 1.0,
) -> dist.TorchDistribution:
    """Normal ``N(0, scale**2 I)`` with the given event shape (batch shape ``()``)."""
    zeros = torch.zeros(event_shape, dtype=dtype or torch.get_default_dtype(), device=device)
    return dist.Normal(zeros, torch.full_like(zeros, float(scale))).to_event(len(event_shape))


class FlowDistribution(dist.TransformedDistribution):
    r"""A standard normal pushed through a flow ``g`` (latent → physical): a trainable prior or proposal.

    Args:
        flow: a transform module with ``event_shape`` (e.g. :func:`~pyro_nrg.flows.neural_rg`).
        event_shape: overrides ``flow.event_shape`` for flows that do not define it.
        path_gradient: score samples with detached flow parameters (see :func:`detached_log_prob`).
        latent_scale: standard deviation :math:`\\sigma` of the latent Gaussian. :math:`\\sigma > 1` gives a
            broader, heavier-tailed proposal with an exact density — the usual way to make independence
            Metropolis or importance sampling robust when a reverse-KL-trained flow under-covers the target.

    Example:
        >>> from pyro_nrg.flows import neural_rg
        >>> prior = FlowDistribution(neural_rg(L=4))
        >>> x = prior.rsample((3,)); prior.log_prob(x).shape
        torch.Size([3])
    """

    arg_constraints: dict[str, constraints.Constraint] = {}

    def __init__(
        self,
        flow: torch.nn.Module,
        event_shape: tuple[int, ...] | None = None,
        path_gradient: bool = False,
        latent_scale: float = 1.0,
        validate_args=None,
    ):
        es = tuple(event_shape or flow.event_shape)
        if not (float(latent_scale) > 0 and math.isfinite(float(latent_scale))):
            raise ValueError(f"latent_scale must be a positive number, got {latent_scale!r}: use 1.0 (the trained q)")
        dtype, device = module_dtype_device(flow)
        base = standard_normal(es, dtype, device, scale=latent_scale)
        self.flow = flow
        self.latent_scale = float(latent_scale)
        self.path_gradient = bool(path_gradient)
        super().__init__(base, [flow], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):  # noqa: D102 - keep the class under Pyro's plate broadcasting
        new = self._get_checked_instance(FlowDistribution, _instance)
        new.flow = self.flow
        new.path_gradient = self.path_gradient
        new.latent_scale = self.latent_scale
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """ln q(x), shape ``batch_shape``; with ``path_gradient`` the flow parameters are detached (see
        :func:`detached_log_prob`).

        Floating-point input of another precision than the flow's (float64 data on a float32 flow) is cast to the
        flow's dtype, and the result is returned in the input's dtype.
        """
        dtype = self.base_dist.mean.dtype
        if x.is_floating_point() and x.dtype != dtype:
            return self.log_prob(x.to(dtype)).to(x.dtype)
        if self.path_gradient and torch.is_grad_enabled():
            return detached_log_prob(self, x)
        return super().log_prob(x)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the flow's ``state_dict`` and config and the latent scale (``path``) and the config JSON (``path`` +
        ``.json``), atomically. A symmetrised mixture of this distribution saves itself with its own ``save``.

        Raises:
            CheckpointError: the flow was not made by a builder of :mod:`pyro_nrg.flows` (no config).
        """
        save_flow_file(self.flow, path, extra={"distribution": {"latent_scale": self.latent_scale, "mixtures": []}})

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        map_location: str | torch.device | None = None,
        requires_grad: bool = False,
    ) -> FlowDistribution:
        """Rebuild a distribution saved by :meth:`save` (data only: ``torch.load(weights_only=True)``).

        Args:
            path: the file written by :meth:`save`.
            map_location: as for :func:`torch.load`.
            requires_grad: leave the parameters trainable (default: frozen, ``requires_grad=False``, as a prior
                that is used, not trained, should be).

        Raises:
            CheckpointError: no file, a directory, an empty, truncated or foreign file, or a distillation
                checkpoint (load that with :func:`pyro_nrg.infer.load_checkpoint`).
            ConfigMismatchError: the weights do not fit the flow the saved config describes.
        """
        flow, blob = load_flow_file(path, map_location=map_location, requires_grad=requires_grad)
        if "canonical" in blob:
            raise CheckpointError(f"{path} holds a neural canonical transformation: load it with CanonicalFlow.load")
        spec = blob.get("distribution") or {}
        refuse_conditional(path, spec)
        if spec.get("mixtures"):
            raise CheckpointError(
                f"{path} holds a symmetrised mixture of a flow, not a bare FlowDistribution: load it with "
                f"pyro_nrg.distributions.load_distribution(path) (or Z2Symmetrized.load / LatticeSymmetrized.load)"
            )
        return cls(flow, latent_scale=float(spec.get("latent_scale", 1.0)))


def refuse_conditional(path: str | os.PathLike[str], spec: dict[str, Any]) -> None:
    """Raise :class:`CheckpointError` if the saved distribution spec ``spec`` is a temperature-conditioned one."""
    if spec.get("conditional"):
        raise CheckpointError(f"{path} holds a temperature-conditioned flow: load it with "
                              "pyro_nrg.distributions.ConditionalFlowDistribution.load(path), then .condition(T)")


def save_flow_file(flow: torch.nn.Module, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
    """Write ``{"flow": state_dict, "config": flow config, **extra}`` to ``path`` and the config to ``path.json``.

    Raises:
        CheckpointError: the flow has no config (it was not built by :mod:`pyro_nrg.flows`).
    """
    cfg = flow_config(flow)
    if cfg is None:
        raise CheckpointError(
            "this flow has no config to rebuild it from: build it with pyro_nrg.flows.neural_rg(...) or save "
            "flow.state_dict() yourself"
        )
    path = Path(path)
    atomic_torch_save({"flow": flow.state_dict(), "config": cfg, **(extra or {})}, path)
    write_json(path.with_name(path.name + ".json"), cfg)


def read_flow_file(path: str | os.PathLike[str], map_location: str | torch.device | None = None) -> dict[str, Any]:
    """The dict saved by :func:`save_flow_file`, read as data, with every failure a :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no saved flow at {path}: check the path (save with FlowDistribution.save)")
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory: pass the file written by FlowDistribution.save (e.g. {path / 'prior.pt'})"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path} is empty (0 bytes): the save was interrupted; save the flow again with FlowDistribution.save"
        )
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, ImportError) as exc:
        # torch's own message suggests weights_only=False, which must never be followed for a file of unknown origin
        raise CheckpointError(
            f"cannot read {path} as a saved flow ({type(exc).__name__}): the file is truncated, corrupted or not a "
            f"torch file. Save the flow again with FlowDistribution.save"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the unpickler refuses foreign objects with its own error types
        raise CheckpointError(
            f"cannot read {path} as a saved flow ({type(exc).__name__}): it holds objects other than tensors and "
            f"plain data, so it was not written by FlowDistribution.save. Save the flow again"
        ) from exc
    if isinstance(blob, dict) and ("optimizer" in blob or "distill" in (blob.get("config") or {})):
        raise CheckpointError(
            f"{path} is a distillation checkpoint, not a saved flow: read it with "
            f"pyro_nrg.infer.load_checkpoint(path) (or resume training from it), or save the trained prior with "
            f"result.guide.distribution().save(...)"
        )
    if not isinstance(blob, dict) or "flow" not in blob or "config" not in blob:
        raise CheckpointError(
            f"{path} is not a pyro_nrg flow file (missing 'flow'/'config' entries): save it with FlowDistribution.save"
        )
    return blob


def load_flow_file(
    path: str | os.PathLike[str], map_location: str | torch.device | None = None, requires_grad: bool = False
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The flow saved by :func:`save_flow_file` (rebuilt from its config, weights loaded, in the saved dtype,
    parameters frozen unless ``requires_grad``) and the whole saved dict.

    Raises:
        CheckpointError: see :func:`read_flow_file`.
        ConfigMismatchError: the weights do not fit the flow the saved config describes.
    """
    blob = read_flow_file(path, map_location)
    flow = build_flow(blob["config"])
    state = blob["flow"]
    try:
        flow.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigMismatchError(
            f"the weights in {path} do not fit the flow its config describes (missing, unexpected or differently "
            f"shaped tensors): the file was edited or written by another pyro_nrg version; save the flow again. "
            f"Details: {str(exc).splitlines()[0]}"
        ) from exc
    dtype = next((t.dtype for t in state.values() if torch.is_tensor(t) and t.is_floating_point()), None)
    if dtype is not None:
        flow = flow.to(dtype)
    for p in flow.parameters():
        p.requires_grad_(requires_grad)
    return flow, blob


@contextlib.contextmanager
def detached_parameters(module: torch.nn.Module) -> Iterator[None]:
    """Inside the block, every parameter of ``module`` reads as its detached self (same storage, no graph).

    What ``torch.func.functional_call`` with detached parameters does, without its generic per-call bookkeeping
    (which grows with the number of parameter tensors): the parameter slots are swapped in place and restored on exit,
    even on an exception. The list of slots is cached on the module and rebuilt when a parameter is replaced.
    """
    slots = getattr(module, "_pyro_nrg_param_slots", None)
    if slots is None or any(m._parameters.get(n) is not p for m, n, p in slots):
        slots = [(m, n, p) for m in module.modules() for n, p in m._parameters.items() if p is not None]
        object.__setattr__(module, "_pyro_nrg_param_slots", slots)
    try:
        for m, n, p in slots:
            m._parameters[n] = p.detach()
        yield
    finally:
        for m, n, p in slots:
            m._parameters[n] = p


def detached_log_prob(q: FlowDistribution, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\ln q_{\bar\theta}(x)` with the flow parameters treated as constants but ``x`` differentiable.

    This is the *path-gradient* ("sticking the landing", Roeder, Wu & Duvenaud 2017; Vaitl et al. 2022) form of
    the reverse-KL objective: for :math:`x = g_\theta(z)` the total derivative of
    :math:`\mathbb E[\beta E(x) + \ln q_{\bar\theta}(x)]` drops the score term
    :math:`\partial_\theta \ln q_\theta(x)|_x`, whose expectation is zero but whose variance is not, so the
    gradient vanishes exactly at :math:`q = p`. Costs one inverse pass of the flow.
    """
    flow = q.flow
    if not hasattr(flow, "inverse_and_log_det"):
        return dist.TransformedDistribution.log_prob(q, x)
    with detached_parameters(flow):
        z, ldj = flow.inverse_and_log_det(x)
    return q.base_dist.log_prob(z) - ldj
