"""Matplotlib figures for latent-space sampling and the renormalized variables (optional dependency).

matplotlib is imported lazily inside each function, and figures are built as :class:`matplotlib.figure.Figure`
objects without pyplot, so nothing here opens a window or depends on the interactive backend: it works headless
(Agg) and in notebooks (display the returned figure). Save with ``fig.savefig(path)``.

Functions:

* :func:`plot_mutual_information` — pairwise MI of physical vs latent variables (latents ordered by RG level) and
  the level-by-level mean (:class:`~pyro_nrg.analysis.MutualInformationReport`).
* :func:`plot_receptive_fields` — :math:`\\langle|\\partial x/\\partial z_j|\\rangle` maps of the coarsest latents
  (:func:`~pyro_nrg.analysis.receptive_fields`).
* :func:`plot_field_posteriors` — truth, observation and posterior mean/std images of a field under several priors.
* :func:`plot_efficiency` — ESS per gradient evaluation and per second of several samplers (bar chart, log scale).
* :func:`plot_ramachandran` — the (φ, ψ) histogram of a peptide trajectory (log density).
* :func:`plot_backbone_path` — heavy-atom frames along a latent mode, drawn over each other (2D projection).
* :func:`plot_image_grid` — rows of small images (e.g. digits reconstructed from the k slowest modes).
* :func:`plot_spectrum` — a sorted frequency spectrum on a log scale.
* :func:`plot_training` — variational and importance-sampled free energy vs step against the exact value.
* :func:`plot_observable_traces` — running means of observables per sampler against references.
* :func:`plot_configurations` — a grid of sampled configurations.
* :func:`plot_renormalized_variables` — a configuration and its latent variables per RG level.
* :func:`plot_spectrum_comparison`, :func:`plot_mode_profiles` — learned frequencies and slow modes vs exact.
* :func:`plot_thermodynamics` — F(T), U(T), C(T), <m²>(T), the Binder cumulant and the F_q error of a
  temperature-conditioned flow against the exact curves.
* :func:`plot_temperature_posterior` — NUTS draws of T against the exact and the flow's grid posteriors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "plot_mutual_information",
    "plot_receptive_fields",
    "plot_field_posteriors",
    "plot_efficiency",
    "plot_training",
    "plot_time_to_accuracy",
    "plot_observable_traces",
    "plot_configurations",
    "plot_renormalized_variables",
    "plot_spectrum_comparison",
    "plot_mode_profiles",
    "plot_thermodynamics",
    "plot_temperature_posterior",
]


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
        report: a :class:`~pyro_nrg.analysis.MutualInformationReport`.
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
        truth: ``(L, L)`` image of the true field.
        observed: ``(L, L)`` image of the observation.
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


# ----------------------------------------------------------------------------------------------------------------
# run reports (used by the pyro-nrg command; each returns a Figure)


def plot_training(
    history: Mapping[str, Sequence[float]],
    checks: Sequence[Mapping[str, float]] = (),
    f_exact: float | None = None,
    smooth: int = 25,
) -> Any:
    r"""Variational free energy per step and importance-sampled checkpoints, with the exact value.

    Args:
        history: ``step``, ``f_q`` (and optionally ``f_q_err``) per step (:attr:`Distiller.history`).
        checks: records ``{"step", "f_is", "f_is_err", "f_q", "f_q_err"}`` from periodic evaluations.
        f_exact: exact :math:`F` (``None``: the right panel shows :math:`F_q - F_{\rm IS}` instead).
        smooth: window of the running mean drawn over the per-step :math:`F_q`.

    Returns:
        Figure with two panels: :math:`F` vs step, and the relative error :math:`|F_\bullet - F|/|F|` (log scale).
    """
    steps = np.asarray(history["step"], dtype=float)
    fq = np.asarray(history["f_q"], dtype=float)
    k = max(1, min(smooth, len(fq)))
    fq_s = np.convolve(fq, np.ones(k) / k, mode="valid") if len(fq) else fq
    steps_s = steps[k - 1:] if len(fq) else steps
    fig = _figure((11, 3.8))
    ax, axr = fig.subplots(1, 2)
    ax.plot(steps, fq, lw=0.5, alpha=0.35, color="tab:blue", label="$F_q$ (per step)")
    ax.plot(steps_s, fq_s, lw=1.2, color="tab:blue", label=f"$F_q$ (mean of {k})")
    cs = np.asarray([c["step"] for c in checks], dtype=float)
    if len(checks):
        f_is = np.asarray([c["f_is"] for c in checks], dtype=float)
        ax.errorbar(cs, f_is, yerr=[c["f_is_err"] for c in checks], fmt="o", ms=3, color="tab:orange",
                    label="$F$ importance sampled")
    ref = f_exact if f_exact is not None else (float(checks[-1]["f_is"]) if len(checks) else None)
    if f_exact is not None:
        ax.axhline(f_exact, color="k", ls="--", lw=1, label="exact $F$")
    if ref is not None and len(fq_s):
        spread = max(abs(float(fq_s[len(fq_s) // 10]) - ref), 1e-6)
        ax.set_ylim(ref - 0.3 * spread, ref + 1.2 * spread)
    ax.set(xlabel="training step", ylabel="free energy", title="free energy during training")
    ax.legend(fontsize=8)
    if ref is not None:
        denom = abs(ref)
        axr.semilogy(steps_s, np.maximum(np.abs(fq_s - ref) / denom, 1e-8), color="tab:blue", label="$F_q$")
        if len(checks):
            axr.semilogy(cs, np.maximum(np.abs(f_is - ref) / denom, 1e-8), "o-", ms=3, color="tab:orange",
                         label="$F$ importance sampled")
        axr.set(xlabel="training step", ylabel="relative error" + (" vs exact" if f_exact is not None else
                                                                  " vs last IS estimate"),
                title="relative error (log scale)")
        axr.legend(fontsize=8)
    else:
        axr.axis("off")
    return fig


def plot_time_to_accuracy(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    targets: Mapping[str, tuple[float, float]] | None = None,
) -> Any:
    r"""Relative error of the variational free energy against training time, one line per curve (log-log).

    The exact value is the zero of the error: :math:`(F_q - F)/|F|` with :math:`F` exact (Kaufman's solution for
    the relaxed Ising model); the shaded band is one standard error of each :math:`F_q` estimate.

    Args:
        curves: label -> points ``{"train_seconds", "f_q_rel_err"}`` (optionally ``"f_q_err_rel"``, the standard
            error of :math:`F_q` over :math:`|F|`, drawn as a band).
        targets: label -> ``(seconds, relative error)`` drawn as a marker (a target to reach by that time).

    Returns:
        The figure.
    """
    fig = _figure((6.5, 4.2))
    ax = fig.subplots()
    for i, (label, pts) in enumerate(curves.items()):
        color = f"C{i}"
        t = np.asarray([p["train_seconds"] for p in pts], dtype=float)
        r = np.asarray([p["f_q_rel_err"] for p in pts], dtype=float)
        ax.loglog(t, np.maximum(r, 1e-6), "o-", ms=3, color=color, label=label)
        if pts and all("f_q_err_rel" in p for p in pts):
            err = np.asarray([p["f_q_err_rel"] for p in pts], dtype=float)
            ax.fill_between(t, np.maximum(r - err, 1e-6), r + err, color=color, alpha=0.2, lw=0)
        if targets and label in targets:
            ts, rt = targets[label]
            ax.plot([ts], [rt], marker="*", ms=12, color=color, ls="none", label=f"target {label}")
    ax.set(xlabel="training time (s, one core)", ylabel=r"$(F_q - F)/|F|$ (exact $F$ = 0)",
           title="variational free energy vs training time")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def plot_observable_traces(
    traces: Mapping[str, Mapping[str, Any]],
    references: Mapping[str, tuple[float, float | None, str]] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Any:
    """Running means of observables vs draw, one panel per observable, one line per sampler.

    Args:
        traces: ``{sampler: {observable: array (chains, draws)}}``; the running mean is over draws, averaged over
            chains, so every sampler is drawn on its own draw axis.
        references: ``{observable: (value, error or None, label)}`` drawn as a line (and band).
        labels: axis labels per observable.

    Returns:
        Figure.
    """
    names = list(dict.fromkeys(o for t in traces.values() for o in t))
    fig = _figure((5.2 * len(names), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names, strict=True):
        for sampler, obs in traces.items():
            if name not in obs:
                continue
            a = _np(obs[name]).astype(float)
            a = a.reshape(-1, a.shape[-1])
            run = np.cumsum(a.mean(0)) / np.arange(1, a.shape[-1] + 1)
            ax.plot(np.arange(1, len(run) + 1), run, lw=1.2, label=sampler)
        if references and name in references:
            v, err, lab = references[name]
            ax.axhline(v, color="k", ls="--", lw=1, label=lab)
            if err:
                ax.axhspan(v - 2 * err, v + 2 * err, color="k", alpha=0.1, lw=0)
        ax.set_xscale("log")
        ax.set(xlabel="draw (per chain)", ylabel=(labels or {}).get(name, name), title=f"running mean of {name}")
        ax.legend(fontsize=8)
    return fig


def plot_configurations(x: Any, ncols: int = 8, title: str | None = None, cmap: str = "RdBu_r") -> Any:
    """A grid of configurations ``(n, L, L)`` (or ``(n, L)``, drawn as strips), symmetric colour scale.

    Args:
        x: configurations (e.g. ``tanh(x)`` of relaxed Ising fields, or φ).
        ncols: images per row.
        title: figure title.
    """
    a = _np(x).astype(float)
    n = a.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = _figure((1.5 * ncols, 1.5 * nrows + 0.4))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).reshape(-1)
    lim = float(np.abs(a).max()) or 1.0
    for j, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if j >= n:
            ax.axis("off")
            continue
        img = a[j] if a[j].ndim == 2 else a[j][None, :]
        ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim)
    if title:
        fig.suptitle(title)
    return fig


def plot_renormalized_variables(
    x: Any, per_level: Sequence[Any], samples_per_level: Sequence[Any] | None = None
) -> Any:
    r"""The learned RG of one configuration: ``x`` and its latent variables at every level, coarsest last.

    Args:
        x: one physical configuration ``(L, L)`` or ``(L,)``.
        per_level: latent variables of that configuration per level (``HierarchicalFlow.renormalized_variables``),
            element ``l`` of size :math:`n_l`; level ``l``'s variables are drawn on their coarse lattice (the
            sites of level ``l`` in row-major order, padded to a square).
        samples_per_level: optional latents of many configurations per level, ``(S, n_l)``: their histograms are
            drawn against :math:`\mathcal N(0, 1)` (what an exact flow gives).

    Returns:
        Figure (two rows when ``samples_per_level`` is given).
    """
    xs = _np(x).astype(float)
    levels = [_np(v).astype(float).reshape(-1) for v in per_level]
    ncols = 1 + len(levels)
    nrows = 2 if samples_per_level is not None else 1
    fig = _figure((2.3 * ncols, 2.5 * nrows + 0.3))
    axes = np.atleast_2d(fig.subplots(nrows, ncols))
    img = xs if xs.ndim == 2 else xs[None, :]
    lim_x = float(np.abs(img).max()) or 1.0
    axes[0, 0].imshow(img, cmap="RdBu_r", vmin=-lim_x, vmax=lim_x)
    axes[0, 0].set_title("physical x", fontsize=9)
    for k, v in enumerate(levels):
        side = int(np.ceil(np.sqrt(v.size)))
        grid = np.full(side * side, np.nan)
        grid[: v.size] = v
        lim = float(np.nanmax(np.abs(grid))) or 1.0
        axes[0, k + 1].imshow(grid.reshape(side, side), cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0, k + 1].set_title(f"level {k} ({v.size} latents)", fontsize=9)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    if samples_per_level is not None:
        axes[1, 0].axis("off")
        grid_z = np.linspace(-4, 4, 200)
        gauss = np.exp(-0.5 * grid_z**2) / np.sqrt(2 * np.pi)
        for k, s in enumerate(samples_per_level):
            v = _np(s).astype(float).reshape(-1)
            ax = axes[1, k + 1]
            ax.hist(v, bins=40, range=(-4, 4), density=True, color="tab:blue", alpha=0.6)
            ax.plot(grid_z, gauss, "k--", lw=1)
            ax.set_title(f"level {k}: std {v.std():.2f}", fontsize=9)
            ax.set_yticks([])
    fig.suptitle("renormalized variables z = g⁻¹(x) per RG level (0 = finest)")
    return fig


def plot_spectrum_comparison(omega: Any, exact: Any = None, title: str = "frequency spectrum") -> Any:
    """Learned oscillator frequencies (sorted) against the exact spectrum, with the relative error per mode."""
    w = np.sort(_np(omega).astype(float))
    fig = _figure((10 if exact is not None else 5.2, 3.6))
    axes = np.atleast_1d(fig.subplots(1, 2 if exact is not None else 1))
    k = np.arange(1, len(w) + 1)
    axes[0].plot(k, w, "o", ms=4, label="learned")
    if exact is not None:
        e = np.sort(_np(exact).astype(float))
        axes[0].plot(k, e, "k-", lw=1, label="exact")
        axes[1].semilogy(k, np.maximum(np.abs(w - e) / e, 1e-8), "o-", ms=3)
        axes[1].set(xlabel="mode k (slowest first)", ylabel="|ω - ω_exact| / ω_exact", title="relative error")
    axes[0].set(xlabel="mode k (slowest first)", ylabel="ω_k", title=title)
    axes[0].legend(fontsize=8)
    return fig


def plot_mode_profiles(profiles: Any, exact: Any = None, n_modes: int = 4) -> Any:
    """The slowest mode profiles (columns of ``profiles`` ``(n, n)``, slowest first) against the exact normal modes
    (sign aligned)."""
    p = _np(profiles).astype(float)
    fig = _figure((3.0 * n_modes, 3.0))
    axes = np.atleast_1d(fig.subplots(1, n_modes))
    sites = np.arange(1, p.shape[0] + 1)
    for k, ax in enumerate(axes):
        v = p[:, k] / (np.linalg.norm(p[:, k]) or 1.0)
        if exact is not None:
            e = _np(exact).astype(float)[:, k]
            e = e / (np.linalg.norm(e) or 1.0)
            v = v * np.sign(v @ e or 1.0)
            ax.plot(sites, e, "k-", lw=1, label="exact")
        ax.plot(sites, v, "o", ms=3, label="learned")
        ax.set(title=f"mode {k + 1}", xlabel="particle")
        ax.legend(fontsize=7)
    return fig


def plot_ramachandran(phi: Any, psi: Any, bins: int = 72, title: str | None = None, ax: Any = None) -> Any:
    """2D histogram of backbone dihedrals in degrees, colour = log density; ``phi``, ``psi``: ``(N,)`` radians.

    Returns the figure (a new one unless ``ax`` is given).
    """
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import LogFormatter

    phi_d, psi_d = np.degrees(_np(phi)), np.degrees(_np(psi))
    fig = None
    if ax is None:
        fig = _figure((4.6, 4.0))
        ax = fig.subplots()
    h = ax.hist2d(phi_d, psi_d, bins=bins, range=[[-180, 180], [-180, 180]], norm=LogNorm(), cmap="viridis")
    _ramachandran_axes(ax)
    ax.figure.colorbar(h[3], ax=ax, label="frames", format=LogFormatter())  # plain labels: no mathtext fonts
    ax.set_title(title or f"Ramachandran plot ({len(phi_d)} frames)")
    return fig if fig is not None else ax.figure


def _ramachandran_axes(ax: Any) -> None:
    """Labels, limits and ticks of a Ramachandran panel (degrees)."""
    ax.set(xlabel="φ (degrees)", ylabel="ψ (degrees)", xlim=(-180, 180), ylim=(-180, 180), aspect="equal")
    ax.set_xticks(range(-180, 181, 90))
    ax.set_yticks(range(-180, 181, 90))


def _projection_axes(x: np.ndarray) -> np.ndarray:
    """The two principal axes ``(3, 2)`` of a cloud of points ``(..., 3)``."""
    pts = x.reshape(-1, 3)
    pts = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(pts, full_matrices=False)
    return vt[:2].T


def plot_backbone_path(
    paths: Sequence[Any], bonds: Any, labels: Sequence[str] | None = None, atom_names: Sequence[str] | None = None
) -> Any:
    """One panel per path: heavy-atom frames ``(A, M, 3)`` drawn over each other, coloured along the path.

    Frames are projected on the two principal axes of the first path's atoms (same view in every panel).

    Args:
        paths: sequence of ``(A, M, 3)`` arrays (e.g. one per latent mode).
        bonds: ``(B, 2)`` atom pairs to draw.
        labels: panel titles.
        atom_names: labels written next to the atoms of the middle frame.
    """
    import matplotlib

    paths = [_np(p) for p in paths]
    b = _np(bonds).astype(int)
    axes2 = _projection_axes(paths[0])
    fig = _figure((4.2 * len(paths), 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(paths)))
    cmap = matplotlib.colormaps["coolwarm"]
    for j, (ax, p) in enumerate(zip(axes, paths, strict=True)):
        xy = (p - p.reshape(-1, 3).mean(0)) @ axes2
        A = xy.shape[0]
        for a in range(A):
            c = cmap(a / max(1, A - 1))
            for i0, i1 in b:
                ax.plot(xy[a, [i0, i1], 0], xy[a, [i0, i1], 1], color=c, lw=1.5, alpha=0.8)
            ax.scatter(xy[a, :, 0], xy[a, :, 1], color=c, s=10, zorder=3)
        if atom_names is not None:
            mid = xy[A // 2]
            for name, (u, v) in zip(atom_names, mid, strict=True):
                ax.annotate(str(name).split(":")[-1], (u, v), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_aspect("equal")
        ax.set(xlabel="Å", ylabel="Å")
        if labels is not None:
            ax.set_title(labels[j])
    return fig


def plot_image_grid(rows: Mapping[str, Any], shape: tuple[int, int] = (8, 8), vmax: float | None = None) -> Any:
    """A grid of images: one row per entry of ``rows`` (label -> ``(K, H*W)`` images), shared grey scale."""
    arrs = {k: _np(v) for k, v in rows.items()}
    ncols = max(a.shape[0] for a in arrs.values())
    vmax = vmax if vmax is not None else max(float(a.max()) for a in arrs.values())
    fig = _figure((0.9 * ncols + 1.2, 0.95 * len(arrs)))
    axes = np.atleast_2d(fig.subplots(len(arrs), ncols))
    for r, (label, a) in enumerate(arrs.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < a.shape[0]:
                ax.imshow(a[c].reshape(shape), cmap="gray_r", vmin=0, vmax=vmax)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return fig


def plot_spectrum(omega: Any, unit: str = "", ax: Any = None, label: str | None = None) -> Any:
    """Sorted frequencies on a log scale against their rank (1 = slowest)."""
    w = np.sort(_np(omega))
    fig = None
    if ax is None:
        fig = _figure((4.6, 3.4))
        ax = fig.subplots()
    ax.semilogy(np.arange(1, len(w) + 1), w, "o-", ms=3, label=label)
    ax.set(xlabel="mode (sorted)", ylabel=f"ω {unit}".strip(), title="learned frequency spectrum")
    return fig if fig is not None else ax.figure


def plot_ramachandran_colored(
    phi: Any, psi: Any, values: Mapping[str, Any], max_points: int = 20_000, seed: int = 0
) -> Any:
    """One Ramachandran panel per entry of ``values``: every frame at its (φ, ψ) (degrees), coloured by the value
    (e.g. a latent mode ``Q_1`` of the frame), so one sees which backbone motion a mode carries.

    Args:
        phi: ``(N,)`` backbone dihedral φ (radians).
        psi: ``(N,)`` backbone dihedral ψ (radians).
        values: panel title -> ``(N,)`` values (colour scale clipped to their 2nd-98th percentiles).
        max_points: random subsample drawn (all if fewer).
        seed: subsample seed.
    """
    phi_d, psi_d = np.degrees(_np(phi)).reshape(-1), np.degrees(_np(psi)).reshape(-1)
    idx = np.arange(phi_d.size)
    if idx.size > max_points:
        idx = np.random.default_rng(seed).choice(idx.size, max_points, replace=False)
    fig = _figure((4.4 * len(values), 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(values)))
    for ax, (title, v) in zip(axes, values.items(), strict=True):
        c = _np(v).reshape(-1)[idx]
        lo, hi = np.percentile(c, [2, 98])
        sc = ax.scatter(phi_d[idx], psi_d[idx], c=c, s=2, cmap="coolwarm", vmin=lo, vmax=hi, rasterized=True)
        _ramachandran_axes(ax)
        ax.set_title(title)
        fig.colorbar(sc, ax=ax, shrink=0.8)
    return fig


def plot_thermodynamics(
    estimates: Sequence[Mapping[str, float]], exact: Sequence[Mapping[str, float]] = (), title: str | None = None
) -> Any:
    """Six panels against temperature: Ising free energy, energy and specific heat per site, :math:`\\langle m^2
    \rangle`, the Binder cumulant (estimates with error bars, exact curves as lines) and the relative F_q error.

    Args:
        estimates: rows of :func:`~pyro_nrg.infer.thermo.thermodynamics` (``T``, ``f``, ``u``, ``c``,
            ``m2``, ``binder`` with ``*_err``, ``f_q_rel_err``).
        exact: rows of :func:`~pyro_nrg.infer.thermo.exact_curves` (keys missing there are not drawn).
        title: figure title.
    """
    fig = _figure((12, 6.5))
    axes = fig.subplots(2, 3).ravel()
    T = np.array([r["T"] for r in estimates])
    te = np.array([r["T"] for r in exact]) if exact else None
    panels = [("f", "free energy f = F/N"), ("u", "energy u = U/N"), ("c", "specific heat c = C/N"),
              ("m2", "<m^2>"), ("binder", "Binder cumulant U_4")]
    for ax, (key, label) in zip(axes, panels, strict=False):
        ax.errorbar(T, [r[key] for r in estimates], yerr=[r[key + "_err"] for r in estimates], fmt="o", ms=3,
                    label="flow (importance-sampled)")
        if te is not None and all(key in r for r in exact):
            ax.plot(te, [r[key] for r in exact], "k-", lw=1, label="exact")
        ax.set_xlabel("T")
        ax.set_title(label)
    axes[0].legend(fontsize=8)
    ax = axes[5]
    ax.semilogy(T, [max(r["f_q_rel_err"], 1e-6) for r in estimates], "o-", ms=3)
    ax.set_xlabel("T")
    ax.set_title("(F_q - F) / |F|")
    if title:
        fig.suptitle(title)
    return fig


def plot_temperature_posterior(
    samples: Any, grid_t: Any, grid_density: Any, flow_t: Any = None, flow_density: Any = None,
    truth: float | None = None,
) -> Any:
    """A histogram of posterior draws of T against the exact grid posterior (and the flow's own, if given)."""
    fig = _figure((6, 4))
    ax = fig.subplots()
    ax.hist(_np(samples).ravel(), bins=40, density=True, alpha=0.5, label="NUTS (flow likelihood)")
    ax.plot(_np(grid_t), _np(grid_density), "k-", label="exact grid posterior")
    if flow_t is not None and flow_density is not None:
        ax.plot(_np(flow_t), _np(flow_density), "r--", label="flow grid posterior")
    if truth is not None:
        ax.axvline(truth, color="gray", ls=":", label=f"T = {truth:g}")
    ax.set_xlabel("T")
    ax.set_ylabel("p(T | x)")
    ax.legend(fontsize=8)
    return fig
