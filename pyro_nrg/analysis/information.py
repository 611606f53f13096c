r"""Mutual information and receptive fields: how independent the renormalized variables are, and what they control.

* :func:`mutual_information`, :func:`pairwise_mutual_information`, :func:`latent_mutual_information` — how
  independent the renormalized variables :math:`z = g^{-1}(x)`, :math:`x \sim p`, are compared to the physical
  variables (Li & Wang, PRL 121, 260601 (2018), Fig. 4 discusses the same question).
* :func:`receptive_fields` — :math:`|\partial x / \partial z_j|` of the coarsest latents: the region of the
  lattice each renormalized variable controls.
* :func:`mode_mutual_information` — between latent modes of a canonical flow and physical observables.

Estimators of mutual information (nats):

* ``"ksg"`` — Kraskov, Stögbauer & Grassberger, PRE 69, 066138 (2004), algorithm 1, with :math:`k` nearest
  neighbours in the max-norm on per-variable standardised data:
  :math:`\hat I = \psi(k) + \psi(n) - \langle \psi(n_x + 1) + \psi(n_y + 1)\rangle`. It is consistent for any
  continuous densities; for independent variables its bias is essentially zero (estimates scatter around 0 with a
  standard deviation of order :math:`0.5/\sqrt n` and can be negative); for strongly dependent variables it is
  biased *low* (the bias grows with :math:`I` and :math:`k`).
* ``"gaussian"`` — :math:`-\tfrac12\ln(1-\rho^2)` from the Pearson correlation: exact for jointly Gaussian pairs,
  blind to non-linear dependence (a lower bound only for Gaussian marginals), positively biased by about
  :math:`1/(2n)` at independence. Cheap enough for every pair of a 16×16 lattice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import EventShapeError
from ..infer.pushforward import flow_of, forward_and_log_det

__all__ = [
    "mutual_information",
    "pairwise_mutual_information",
    "mutual_information_by_level",
    "MutualInformationReport",
    "latent_mutual_information",
    "receptive_fields",
    "mode_mutual_information",
]


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


# ----------------------------------------------------------------------------------------------------------------
# mutual information


def _as_2d(a: Any) -> np.ndarray:
    arr = _np(a).astype(np.float64)
    return arr[:, None] if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)


def _standardize(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sd = a.std(0)
    sd[sd == 0] = 1.0
    a = (a - a.mean(0)) / sd
    return a + 1e-10 * rng.standard_normal(a.shape)  # break ties (KSG assumes continuous data)


def _count_within(a: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """For each point, the number of *other* points strictly within max-norm distance ``eps``."""
    from scipy.spatial import cKDTree

    if a.shape[1] == 1:
        s = np.sort(a[:, 0])
        hi = np.searchsorted(s, a[:, 0] + eps, side="left")
        lo = np.searchsorted(s, a[:, 0] - eps, side="right")
        return hi - lo - 1
    r = np.nextafter(eps, 0)
    return cKDTree(a).query_ball_point(a, r=r, p=np.inf, return_length=True) - 1


def _ksg(a: np.ndarray, b: np.ndarray, k: int) -> float:
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    n = a.shape[0]
    joint = np.hstack([a, b])
    d, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf)
    eps = d[:, -1]
    nx = _count_within(a, eps)
    ny = _count_within(b, eps)
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))


def mutual_information(a: Any, b: Any, method: str = "ksg", k: int = 3, seed: int = 0) -> float:
    r"""Mutual information :math:`I(A; B)` in nats from paired samples ``a`` ``(n,)``/``(n, d_a)``, ``b`` likewise.

    ``method="ksg"``: Kraskov et al. (2004) algorithm 1 (see the module docstring for its bias); ``"gaussian"``:
    :math:`-\tfrac12\ln\det(R)` + the marginal terms, i.e. :math:`-\tfrac12\ln(1-\rho^2)` for scalars.
    """
    A, B = _as_2d(a), _as_2d(b)
    if A.shape[0] != B.shape[0]:
        raise EventShapeError(f"a and b need the same number of samples, got {A.shape[0]} and {B.shape[0]}")
    if method == "gaussian":
        c = np.corrcoef(np.hstack([A, B]), rowvar=False)
        da = A.shape[1]
        ld = lambda m: np.linalg.slogdet(np.atleast_2d(m))[1]  # noqa: E731
        return float(0.5 * (ld(c[:da, :da]) + ld(c[da:, da:]) - ld(c)))
    if method != "ksg":
        raise ValueError(f"method must be 'ksg' or 'gaussian', got {method!r}")
    rng = np.random.default_rng(seed)
    return _ksg(_standardize(A, rng), _standardize(B, rng), k)


def pairwise_mutual_information(
    samples: Any,
    method: str = "ksg",
    k: int = 3,
    max_samples: int | None = 4000,
    seed: int = 0,
    dedupe: bool = True,
) -> np.ndarray:
    r"""Mutual information of every pair of scalar variables: ``samples`` ``(n, d)`` → symmetric ``(d, d)`` (nats).

    The diagonal is set to NaN (self-information is infinite for continuous variables). At most ``max_samples``
    rows are used (a random subset). KSG costs :math:`O(d^2 n\log n)`; use ``method="gaussian"`` for large
    lattices.

    Samples should be (nearly) independent draws — one per walker, or chains thinned by their autocorrelation
    time. A rejected Metropolis move repeats a state, and repeated points break nearest-neighbour estimators (they
    look perfectly dependent), so with ``dedupe`` (default) exact repeats are dropped first; when the rejection
    rate is high this reweights the sample towards easily accepted states, so thin instead.
    """
    X = _as_2d(samples)
    rng = np.random.default_rng(seed)
    if dedupe and method == "ksg":
        X = np.unique(X, axis=0)
    if max_samples is not None and X.shape[0] > max_samples:
        X = X[rng.choice(X.shape[0], max_samples, replace=False)]
    n, d = X.shape
    out = np.full((d, d), np.nan)
    if method == "gaussian":
        rho = np.corrcoef(X, rowvar=False)
        with np.errstate(divide="ignore"):
            mi = -0.5 * np.log1p(-np.clip(rho**2, 0.0, 1.0 - 1e-15))
        np.fill_diagonal(mi, np.nan)
        return mi
    if method != "ksg":
        raise ValueError(f"method must be 'ksg' or 'gaussian', got {method!r}")
    Z = _standardize(X, rng)
    for i in range(d):
        for j in range(i + 1, d):
            out[i, j] = out[j, i] = _ksg(Z[:, i : i + 1], Z[:, j : j + 1], k)
    return out


def mutual_information_by_level(mi: np.ndarray, levels: Any) -> np.ndarray:
    """Mean pairwise MI between the variables of RG level ``a`` and level ``b``: ``(K+1, K+1)`` (NaN if no pair).

    ``levels`` ``(d,)`` gives each variable's level (``flow.site_levels().reshape(-1)``); the diagonal averages
    distinct pairs within a level.
    """
    lev = _np(levels).reshape(-1).astype(int)
    K = int(lev.max()) + 1
    out = np.full((K, K), np.nan)
    for a in range(K):
        for b in range(K):
            block = mi[np.ix_(lev == a, lev == b)]
            vals = block[np.isfinite(block)]
            if vals.size:
                out[a, b] = float(vals.mean())
    return out


@dataclass
class MutualInformationReport:
    """Pairwise mutual information of latent and physical variables from the same equilibrium samples.

    Attributes:
        latent: ``(N, N)`` MI between latent variables :math:`z = g^{-1}(x)` (row-major site order; NaN diagonal).
        physical: ``(N, N)`` MI between physical variables ``x``.
        levels: ``(N,)`` RG level of each latent site (0 = finest).
        by_level: ``(K+1, K+1)`` mean latent MI within/across levels (:func:`mutual_information_by_level`).
        summary: ``latent_mean``, ``latent_max``, ``physical_mean``, ``physical_nearest_neighbour``,
            ``latent_within_level``, ``latent_across_levels`` (nats), ``method``, ``n_samples``.
    """

    latent: np.ndarray
    physical: np.ndarray
    levels: np.ndarray
    by_level: np.ndarray
    summary: dict[str, Any]


def _nn_mask(event_shape: tuple[int, ...]) -> np.ndarray:
    """Boolean ``(N, N)`` mask of nearest-neighbour pairs on the periodic lattice."""
    N = math.prod(event_shape)
    idx = np.arange(N).reshape(event_shape)
    mask = np.zeros((N, N), dtype=bool)
    for ax in range(len(event_shape)):
        nb = np.roll(idx, 1, axis=ax).reshape(-1)
        mask[idx.reshape(-1), nb] = True
        mask[nb, idx.reshape(-1)] = True
    np.fill_diagonal(mask, False)
    return mask


@torch.no_grad()
def latent_mutual_information(
    guide_or_flow: Any,
    x: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    method: str = "ksg",
    k: int = 3,
    max_samples: int | None = 4000,
    seed: int = 0,
) -> MutualInformationReport:
    r"""Pairwise MI of the renormalized variables :math:`z = g^{-1}(x)` and of the physical variables ``x``.

    Both must come from (approximately) *equilibrium* samples :math:`x \sim p` — e.g. flow-MH or latent-NUTS
    draws — not from :math:`z \sim \mathcal N(0, I)`, whose components are independent by construction. Pass
    physical ``x`` (mapped by the learned RG :math:`g^{-1}`) or latent ``z`` (mapped by :math:`g`), of shape
    ``(n, *event_shape)`` (or with extra leading dims, which are flattened).
    """
    flow = flow_of(guide_or_flow)
    fes = tuple(flow.event_shape)
    if x is None and z is None:
        raise ValueError("pass equilibrium samples: physical x=... or latent z=...")
    if z is None:
        xx = x.reshape(-1, *fes)
        zz = flow.inv(xx)
    else:
        zz = z.reshape(-1, *fes)
        xx = flow(zz)
    lat = pairwise_mutual_information(zz.reshape(zz.shape[0], -1), method, k, max_samples, seed)
    phys = pairwise_mutual_information(xx.reshape(xx.shape[0], -1), method, k, max_samples, seed)
    levels = _np(flow.site_levels()).reshape(-1) if hasattr(flow, "site_levels") else np.zeros(lat.shape[0], int)
    by_level = mutual_information_by_level(lat, levels)
    nn = _nn_mask(fes) if len(fes) in (1, 2) else np.zeros_like(lat, dtype=bool)
    same = levels[:, None] == levels[None, :]
    off = ~np.eye(lat.shape[0], dtype=bool)
    summary = {
        "method": method,
        "n_samples": int(min(zz.shape[0], max_samples or zz.shape[0])),
        "latent_mean": float(np.nanmean(lat[off])),
        "latent_max": float(np.nanmax(lat[off])),
        "latent_within_level": float(np.nanmean(lat[same & off])) if (same & off).any() else float("nan"),
        "latent_across_levels": float(np.nanmean(lat[~same])) if (~same).any() else float("nan"),
        "physical_mean": float(np.nanmean(phys[off])),
        "physical_nearest_neighbour": float(np.nanmean(phys[nn])) if nn.any() else float("nan"),
    }
    return MutualInformationReport(lat, phys, levels, by_level, summary)


# ----------------------------------------------------------------------------------------------------------------
# receptive fields


def receptive_fields(
    guide_or_flow: Any,
    z: torch.Tensor | None = None,
    levels: Sequence[int] | None = None,
    num_samples: int = 16,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Receptive fields :math:`R_j(i) = \langle|\partial x_i/\partial z_j|\rangle_z` of selected latent variables.

    Forward-mode derivatives (Jacobian-vector products with one-hot tangents) of :math:`x = g(z)`, averaged over
    latent points ``z`` (default ``num_samples`` standard-normal draws, i.e. :math:`x \sim q`).

    Args:
        guide_or_flow: trained flow (a :class:`~pyro_nrg.transforms.HierarchicalFlow` knows each site's level).
        z: points ``(B, *event_shape)`` at which to differentiate.
        levels: RG levels whose latents to show (default: the two coarsest levels).

    Returns:
        ``fields`` ``(J, *event_shape)``, ``index`` ``(J,)`` flat latent indices and ``level`` ``(J,)``.
    """
    flow = flow_of(guide_or_flow)
    fes = tuple(flow.event_shape)
    N = math.prod(fes)
    lev = flow.site_levels().reshape(-1) if hasattr(flow, "site_levels") else torch.zeros(N, dtype=torch.long)
    top = int(lev.max())
    chosen = set(levels) if levels is not None else {top, top - 1}
    index = torch.tensor([i for i in range(N) if int(lev[i]) in chosen], dtype=torch.long)
    if z is None:
        p = next(iter(flow.parameters()), None)
        z = torch.randn(num_samples, *fes, dtype=p.dtype if p is not None else None)
    z = z.reshape(-1, *fes).detach()
    B, J = z.shape[0], index.numel()
    zz = z.repeat(J, *([1] * len(fes)))  # (J*B, *fes), block j = copies of z
    v = torch.zeros(J * B, N, dtype=z.dtype)
    v[torch.arange(J * B), index.repeat_interleave(B)] = 1.0
    v = v.reshape(J * B, *fes)

    def f(u: torch.Tensor) -> torch.Tensor:
        return forward_and_log_det(flow, u)[0]

    with torch.enable_grad():
        _, jvp = torch.autograd.functional.jvp(f, zz, v)
    fields = jvp.detach().abs().reshape(J, B, *fes).mean(1)
    return fields, index, lev[index]


def mode_mutual_information(
    latent: Any,
    modes: Sequence[int],
    targets: dict[str, Any],
    circular: bool = True,
    pair: bool = False,
    k: int = 3,
    max_samples: int | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    r"""KSG mutual information between latent modes and physical observables (nats), e.g. :math:`I(Q_1; \psi)`.

    Angles are embedded on the circle as :math:`(\cos\theta, \sin\theta)` (``circular=True``): the mutual
    information is invariant under that bijection, and it removes the arbitrary branch cut.

    Args:
        latent: ``(N, 2n)`` latent points ``(Q_1..Q_n, P_1..P_n)``.
        modes: latent indices (e.g. ``model.slow_modes(4)``), one row of the result each.
        targets: name -> ``(N,)`` observable (angles in radians when ``circular``).
        circular: embed every target as an angle.
        pair: use the pair :math:`(Q_j, P_j)` instead of :math:`Q_j` alone (invariant under the latent rotations
            within each pair, which leave the oscillator density unchanged).
        k: KSG neighbours.
        max_samples: random subsample (``None``: all).
        seed: subsample and tie-breaking seed.

    Returns:
        name -> ``(len(modes),)`` array.
    """
    z = _np(latent).astype(np.float64)
    n = z.shape[-1] // 2
    rng = np.random.default_rng(seed)
    idx = np.arange(z.shape[0])
    if max_samples is not None and z.shape[0] > max_samples:
        idx = rng.choice(z.shape[0], max_samples, replace=False)
    out = {}
    for name, t in targets.items():
        t = _np(t).astype(np.float64).reshape(-1)[idx]
        b = np.stack([np.cos(t), np.sin(t)], -1) if circular else t
        vals = []
        for j in modes:
            j = int(j)
            a = z[idx][:, [j, j + n]] if pair else z[idx, j]
            vals.append(mutual_information(a, b, k=k, seed=seed))
        out[name] = np.array(vals)
    return out

