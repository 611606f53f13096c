r"""ArviZ ``InferenceData`` from any sampler's result, and sampling efficiency (ESS per second and per gradient).

* :func:`to_inference_data` — ``az.InferenceData`` from a :class:`~pyro_nrg.infer.SamplingResult` (every sampler
  of :mod:`pyro_nrg.infer.mcmc`: one chain per chain or walker) or a raw ``(chains, draws, *event)`` tensor.
  ``posterior`` holds the observables (and, on request, the configurations and latents); ``sample_stats`` holds
  ``acceptance_rate``, ``diverging``, ``step_size``, ``n_steps`` (gradient evaluations per draw) and the physical
  energy as ``physical_energy`` (ArviZ reserves ``energy`` for the HMC Hamiltonian, which Pyro does not expose).
* :func:`sampling_efficiency` — ESS (ArviZ bulk ESS, rank-normalised split chains), integrated autocorrelation
  time :math:`\tau = CD/\mathrm{ESS}`, Monte-Carlo standard error, ESS per second and per gradient evaluation.
* :func:`from_pyro_draws` — ``az.from_pyro`` for draws of a model's latent sites that did not come from ``MCMC``
  on that model (the physical draws of :meth:`~pyro_nrg.infer.LatentModel.physical_samples`, SVI guide draws):
  posterior, pointwise log-likelihood of every observed site (for ``az.loo`` / ``az.compare``), observed data.
* :data:`MIN_RELIABLE_ESS` — below it an ESS, and an efficiency ratio built on it, is noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..energies.base import OBSERVABLES, Energy
from ..infer.mcmc.results import SamplingResult

__all__ = ["to_inference_data", "sampling_efficiency", "from_pyro_draws", "MIN_RELIABLE_ESS"]

#: below this ESS (Vehtari et al. 2021 ask for 100 per chain) an ESS, and an efficiency ratio built on it, is noise
MIN_RELIABLE_ESS = 100


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _event_dims(prefix: str, shape: Sequence[int]) -> list[str]:
    if len(shape) == 1:
        return [f"{prefix}_site"]
    if len(shape) == 2:
        return [f"{prefix}_row", f"{prefix}_col"]
    return [f"{prefix}_dim_{i}" for i in range(len(shape))]


def _sampler_stats(result: SamplingResult) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``sample_stats`` arrays and the run's attributes of a :class:`~pyro_nrg.infer.SamplingResult`."""
    stats = {"acceptance_rate": _np(result.accept_prob), "diverging": _np(result.diverging).astype(bool)}
    if result.step_size is not None:
        stats["step_size"] = _np(result.step_size)
    stats["n_steps"] = _np(result.num_grad_evals)
    optional = {"accepted": result.accepted, "flow_jump_accepted": result.jump_accepted}
    stats.update({k: _np(v).astype(bool) for k, v in optional.items() if v is not None})
    for name in ("renormalized_energy", "log_weight"):
        value = getattr(result, name)
        if value is not None:
            stats[name] = _np(value)
    meta = dict(
        method=result.method,
        space=result.space,
        seconds=float(result.seconds),
        sample_seconds=float(result.sample_seconds),
        total_grad_evals=int(result.total_grad_evals),
        warmup_grad_evals=int(result.warmup_grad_evals.sum()),
        acceptance=result.acceptance_rate,
    )
    return stats, meta


def _energy_meta(energy: Energy | None) -> dict[str, Any]:
    """The energy's temperature, class name and (lattice models) side ``L``, as attributes."""
    if energy is None:
        return {}
    meta: dict[str, Any] = {"temperature": float(energy.temperature), "energy": type(energy).__name__}
    lattice_side = getattr(energy, "L", None)  # lattice models only
    if lattice_side is not None:
        meta["L"] = int(lattice_side)
    return meta


def to_inference_data(
    result: SamplingResult | torch.Tensor,
    energy: Energy | None = None,
    include_samples: bool = False,
    include_latent: bool = False,
    attrs: dict[str, Any] | None = None,
) -> Any:
    r"""An ``arviz.InferenceData`` of physical observables and sampler statistics, one chain per chain/walker.

    Args:
        result: a :class:`~pyro_nrg.infer.SamplingResult` (``latent_nuts``, ``physical_nuts``,
            ``latent_hmc_walkers``, ``physical_hmc_walkers``, ``flow_mh``) or a tensor
            ``(chains, draws, *event_shape)`` of configurations.
        energy: the energy (needed for tensors; defaults to ``result.energy``).
        include_samples: add the configurations to ``posterior`` as ``x`` (dims ``chain, draw, x_row, x_col``).
        include_latent: add the latent draws as ``z`` (latent runs that kept them).
        attrs: extra attributes (numbers/strings) stored on every group.

    Returns:
        ``az.InferenceData`` with ``posterior`` (``m, abs_m, m2, energy_per_site`` [``x``, ``z``]) and
        ``sample_stats`` (``acceptance_rate, diverging, step_size, n_steps, physical_energy`` and, for latent runs,
        ``renormalized_energy`` :math:`= \beta E_{\rm eff}`; for walkers with flow jumps ``flow_jump_accepted``;
        for flow-MH ``log_weight``). ``az.summary``,
        ``az.ess``, ``az.rhat`` (needs ≥ 2 chains), ``az.plot_trace``, ``az.plot_autocorr`` and ``to_netcdf`` work.

    Raises:
        TypeError: ``result`` is neither, or a tensor without ``energy``.
        ValueError: ``include_samples`` for a run that kept no configurations.
    """
    import arviz as az

    meta: dict[str, Any] = {"inference_library": "pyro_nrg"}
    post: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {}
    if isinstance(result, torch.Tensor):
        if energy is None:
            raise TypeError("to_inference_data(tensor) needs energy=...: the observables are computed from it")
        samples, obs, stats = result, energy.observables(result), {}
        meta.update(method="samples")
    elif isinstance(result, SamplingResult):
        energy = energy if energy is not None else result.energy
        samples, obs = result.samples, dict(result.observables)
        stats, run_meta = _sampler_stats(result)
        meta.update(run_meta)
        if include_latent and result.latent is not None:
            post["z"] = _np(result.latent)
            dims["z"] = _event_dims("z", result.latent.shape[2:])
    else:
        raise TypeError(
            f"cannot convert {type(result).__name__}: pass a SamplingResult (latent_nuts, latent_hmc_walkers, "
            "flow_mh...) or a (chains, draws, *event) tensor with energy=..."
        )
    for name in OBSERVABLES:
        post[name] = _np(obs[name])
    stats["physical_energy"] = _np(obs["physical_energy"])
    if include_samples:
        if samples is None:
            raise ValueError("no configurations were kept: rerun with keep_samples=True or include_samples=False")
        post["x"] = _np(samples)
        dims["x"] = _event_dims("x", samples.shape[2:])
    meta.update(_energy_meta(energy))
    meta.update(attrs or {})
    with warnings.catch_warnings():  # many short walker chains are legitimate here
        warnings.filterwarnings("ignore", message="More chains")
        idata = az.from_dict(posterior=post, sample_stats=stats, dims=dims)
    for group in idata.groups():  # from_dict(attrs=...) does not reach the groups in arviz 0.23
        getattr(idata, group).attrs.update(meta)
    return idata


def sampling_efficiency(
    data: Any,
    var_names: Sequence[str] = ("m2", "energy_per_site"),
    seconds: float | None = None,
    grad_evals: int | None = None,
) -> dict[str, dict[str, float | None]]:
    r"""Mean, Monte-Carlo error, ESS and its cost for posterior variables.

    For each variable: ``mean``, ``sd``, ``ess`` (ArviZ bulk ESS), ``mcse`` (``az.mcse`` of the mean, i.e.
    :math:`\mathrm{sd}/\sqrt{\mathrm{ESS}_{\rm mean}}`), ``tau`` (integrated autocorrelation time in draws,
    :math:`CD/\mathrm{ESS}`), ``ess_per_second`` and ``ess_per_grad`` (``None`` when not known or zero).

    Args:
        data: ``InferenceData`` or anything :func:`to_inference_data` accepts.
        seconds: sampling wall time (default: the ``sample_seconds`` attribute of a SamplingResult).
        grad_evals: gradient evaluations of the sampling phase (default: ``total_grad_evals``).
    """
    import arviz as az

    idata = data if isinstance(data, az.InferenceData) else to_inference_data(data)
    a = dict(idata.posterior.attrs)
    seconds = seconds if seconds is not None else a.get("sample_seconds")
    grad_evals = grad_evals if grad_evals is not None else a.get("total_grad_evals")
    out: dict[str, dict[str, float | None]] = {}
    post = idata.posterior
    for v in var_names:
        arr = post[v].values
        n = arr.shape[0] * arr.shape[1]
        ess = float(az.ess(idata, var_names=[v], method="bulk")[v].values)
        mcse = float(az.mcse(idata, var_names=[v], method="mean")[v].values)
        out[v] = {
            "mean": float(arr.mean()),
            "sd": float(arr.std(ddof=1)),
            "mcse": mcse,
            "ess": ess,
            "tau": n / ess if ess > 0 else float("inf"),
            "ess_per_second": ess / seconds if seconds else None,
            "ess_per_grad": ess / grad_evals if grad_evals else None,
        }
    return out




def from_pyro_draws(
    model: Any,
    samples: dict[str, torch.Tensor],
    *args: Any,
    num_chains: int = 1,
    posterior_predictive: dict[str, torch.Tensor] | None = None,
    dims: dict[str, list[str]] | None = None,
    **kwargs: Any,
) -> Any:
    r"""``az.from_pyro`` for posterior draws of ``model``'s latent sites that came from another sampler.

    ``az.from_pyro(mcmc)`` scores the log-likelihood with the model MCMC ran on. After
    :func:`~pyro_nrg.infer.latent_reparam` that is the latent model, whose mixture components (a
    :class:`~pyro_nrg.distributions.Z2Symmetrized` prior's sign) are summed out by NUTS and not in the draws, so
    it would score each draw with a random sign. Here the original ``model`` is replayed on the physical draws
    (:meth:`~pyro_nrg.infer.LatentModel.physical_samples`), vectorised over draws as ``az.from_pyro`` does, and
    every observed site's pointwise :math:`\ln p(y \mid \theta_s)` goes to ``log_likelihood``.

    Args:
        model: the original Pyro model (vectorisation-safe: see ``docs/getting-started.md``).
        samples: ``{site: (num_chains * num_draws, *shape)}``, chain after chain.
        *args: the model's positional arguments, with the observed data.
        **kwargs: its keyword arguments.
        num_chains: how many chains ``samples`` holds (consecutive blocks).
        posterior_predictive: optional ``{site: (num_chains * num_draws, *shape)}`` (e.g. from ``Predictive``).
        dims: ArviZ dims per variable.

    Returns:
        ``az.InferenceData`` with ``posterior``, ``log_likelihood``, ``observed_data`` (and
        ``posterior_predictive``).
    """
    import arviz as az
    from pyro import poutine
    from pyro.infer import Predictive

    def by_chain(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {k: _np(v).reshape(num_chains, -1, *v.shape[1:]) for k, v in d.items()}

    with poutine.block():
        observed = {n: s["value"] for n, s in poutine.trace(model).get_trace(*args, **kwargs).nodes.items()
                    if s["type"] == "sample" and s["is_observed"] and not s["infer"].get("_deterministic")}
    trace = Predictive(model, posterior_samples=samples).get_vectorized_trace(*args, **kwargs)
    log_lik = {n: trace.nodes[n]["fn"].log_prob(trace.nodes[n]["value"]).detach() for n in observed}
    return az.from_dict(
        posterior=by_chain(samples),
        log_likelihood=by_chain(log_lik),
        observed_data={n: _np(v) for n, v in observed.items()},
        posterior_predictive=by_chain(posterior_predictive) if posterior_predictive else None,
        dims=dims,
    )
