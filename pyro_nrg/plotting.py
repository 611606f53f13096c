"""Matplotlib figures for latent-space sampling and the renormalized variables (optional dependency).

matplotlib is imported lazily inside each function, and figures are built as :class:`matplotlib.figure.Figure`
objects without pyplot, so nothing here opens a window or depends on the interactive backend: it works headless
(Agg) and in notebooks (display the returned figure). Save with ``fig.savefig(path)``.

Functions:

* :func:`plot_mutual_information` — pairwise MI of physical vs latent variables (latents ordered by RG level) and
  the level-by-level mean (:class:`~pyro_nrg.diagnostics.MutualInformationReport`).
* :func:`plot_receptive_fields` — :math:`\\langle|\\partial x/\\partial z_j|\\rangle` maps of the coarsest latents
  (:func:`~pyro_nrg.diagnostics.receptive_fields`).
* :func:`plot_field_posteriors` — truth, observation and posterior mean/std images of a field under several priors.
* :func:`plot_efficiency` — ESS per gradient evaluation and per second of several samplers (bar chart, log scale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["plot_mutual_information", "plot_receptive_fields", "plot_field_posteriors", "plot_efficiency"]


def _figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _np(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def plot_mutual_information(report: Any, title: str | None = None) -> Any:
    """Three panels: physical pairwise MI, latent pairwise MI (sorted by RG level, level boundaries drawn) and the
    mean latent MI within/across levels. Same colour scale for the two matrices.

    Args:
        report: a :class:`~pyro_nrg.diagnostics.MutualInformationReport`.
        title: figure title.

    Returns:
        ``matplotlib.figure.Figure``.
    """
    lat, phys, levels = report.latent, report.physical, _np(report.levels).astype(int)
    order = np.argsort(-levels, kind="stable")  # coarsest first
    lat_sorted = lat[np.ix_(order, order)]
    vmax = float(np.nanmax([np.nanmax(phys), np.nanmax(lat), 1e-3]))
    fig = _figure((13, 4.2))
    axes = fig.subplots(1, 3)
    im = axes[0].imshow(phys, vmin=0, vmax=vmax, cmap="viridis")
    axes[0].set_title(f"physical x: mean {report.summary['physical_mean']:.3f} nats\n"
                      f"nearest neighbours {report.summary['physical_nearest_neighbour']:.3f}")
    axes[0].set_xlabel("site")
    axes[0].set_ylabel("site")
    axes[1].imshow(lat_sorted, vmin=0, vmax=vmax, cmap="viridis")
    axes[1].set_title(f"latent z (coarse → fine): mean {report.summary['latent_mean']:.3f} nats\n"
                      f"max {report.summary['latent_max']:.3f}")
    bounds = np.cumsum(np.bincount(levels)[::-1])[:-1] - 0.5
    for b in bounds:
        axes[1].axhline(b, color="w", lw=0.6)
        axes[1].axvline(b, color="w", lw=0.6)
    axes[1].set_xlabel("latent (sorted by RG level)")
    fig.colorbar(im, ax=axes[:2], shrink=0.8, label="mutual information (nats)")
    bl = report.by_level
    im2 = axes[2].imshow(bl, cmap="magma", vmin=0)
    axes[2].set_title("latent MI by RG level (mean)")
    axes[2].set_xlabel("level")
    axes[2].set_ylabel("level")
    axes[2].set_xticks(range(bl.shape[0]))
    axes[2].set_yticks(range(bl.shape[0]))
    for i in range(bl.shape[0]):
        for j in range(bl.shape[1]):
            if np.isfinite(bl[i, j]):
                axes[2].text(j, i, f"{bl[i, j]:.3f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im2, ax=axes[2], shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_receptive_fields(fields: Any, index: Any = None, levels: Any = None, ncols: int = 4) -> Any:
    """One image per latent: the mean :math:`|\\partial x_i/\\partial z_j|` over the lattice ``(J, L, L)``.

    Args:
        fields: ``(J, L, L)`` (or ``(J, L)`` for chains, shown as a strip).
        index: flat latent index of each field (titles); levels: their RG levels (titles).
        ncols: panels per row.
    """
    f = _np(fields)
    J = f.shape[0]
    ncols = max(1, min(ncols, J))
    nrows = int(np.ceil(J / ncols))
    fig = _figure((3.0 * ncols, 2.8 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).reshape(-1)
    for j, ax in enumerate(axes):
        if j >= J:
            ax.axis("off")
            continue
        img = f[j] if f[j].ndim == 2 else f[j][None, :]
        im = ax.imshow(img, cmap="inferno", vmin=0)
        parts = []
        if index is not None:
            parts.append(f"z[{int(_np(index)[j])}]")
        if levels is not None:
            parts.append(f"level {int(_np(levels)[j])}")
        ax.set_title(" ".join(parts) or f"latent {j}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.75)
    fig.suptitle("receptive fields ⟨|∂x/∂z_j|⟩")
    return fig


def plot_field_posteriors(
    truth: Any, observed: Any, posteriors: Mapping[str, tuple[Any, Any]], cmap: str = "RdBu_r"
) -> Any:
    """Denoising figure: truth and observation, then posterior mean and std for each prior.

    Args:
        truth, observed: ``(L, L)`` images.
        posteriors: ``{name: (mean, std)}`` of ``(L, L)`` images.
    """
    t, o = _np(truth), _np(observed)
    names = list(posteriors)
    ncols = 2 + 2 * len(names)
    fig = _figure((2.6 * ncols, 2.9))
    axes = fig.subplots(1, ncols)
    lim = float(np.abs(t).max())
    panels = [("truth", t, cmap, (-lim, lim)), ("observation", o, cmap, (-lim, lim))]
    smax = max(float(_np(s).max()) for _, s in posteriors.values())
    for n in names:
        m, s = posteriors[n]
        panels += [(f"{n}: mean", _np(m), cmap, (-lim, lim)), (f"{n}: std", _np(s), "viridis", (0, smax))]
    for ax, (title, img, cm, (lo, hi)) in zip(axes, panels, strict=True):
        im = ax.imshow(img, cmap=cm, vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.7)
    return fig


def plot_efficiency(rows: Sequence[Mapping[str, Any]], key: str = "ess_per_grad", label: str | None = None) -> Any:
    """Bar chart (log scale) of a sampler-efficiency figure, e.g. rows ``{"name": ..., "ess_per_grad": ...}``."""
    names = [str(r["name"]) for r in rows]
    vals = [float(r[key]) if r.get(key) not in (None, 0) else np.nan for r in rows]
    fig = _figure((1.2 + 1.1 * len(rows), 3.2))
    ax = fig.subplots()
    ax.bar(range(len(rows)), vals, color="tab:blue")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel(label or key)
    return fig
