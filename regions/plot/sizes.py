"""How many regions, how big, and where: density maps, size distributions, counts over training."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm

from .partition import _domain_limits

__all__ = ["density_map", "region_sizes", "region_count"]


def density_map(p, ax=None, resolution=300, cmap="magma", colorbar=True, title=True):
    """Region density over the domain: ``1 / measure`` of the region holding each point.

    The map integrates to the number of regions (each region contributes its
    measure times the inverse of its measure), so it is a density in regions
    per unit area (2D) or per unit length (1D), exact pointwise; it is drawn
    on a ``resolution``-point grid per axis with a log colour scale (2D) or as
    a curve with a log y axis (1D).

    Returns
    -------
    matplotlib Axes.
    """
    measure = np.asarray(p.measure, dtype=np.float64)
    if p.dim == 1:
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3.0), layout="constrained")
        iv = np.asarray(p.intervals, dtype=np.float64)
        xs = iv.ravel()                              # a step per piece, exact
        ys = np.repeat(1.0 / measure, 2)
        ax.plot(xs, ys, color="C3", lw=1.0)
        ax.fill_between(xs, ys, color="C3", alpha=0.25, lw=0)
        ax.set_yscale("log")
        ax.set_xlim(iv[0, 0], iv[-1, 1])
        ax.set_xlabel("t (along the segment)" if hasattr(p.domain, "p0") else "x")
        ax.set_ylabel("pieces per unit length")
        if title:
            ax.set_title(title if isinstance(title, str) else
                         f"piece density (1 / length): {len(p):,} pieces")
        return ax
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 5.4), layout="constrained")
    (x0, x1), (y0, y1) = _domain_limits(p)
    ny = max(2, int(round(resolution * (y1 - y0) / (x1 - x0))))
    xs = np.linspace(x0, x1, resolution + 1)
    ys = np.linspace(y0, y1, ny + 1)
    xc, yc = 0.5 * (xs[1:] + xs[:-1]), 0.5 * (ys[1:] + ys[:-1])
    gx, gy = np.meshgrid(xc, yc)
    idx = np.asarray(p.locate(np.column_stack([gx.ravel(), gy.ravel()])), dtype=np.int64)
    dens = np.full(idx.shape, np.nan)
    inside = idx >= 0
    dens[inside] = 1.0 / measure[idx[inside]]
    dens = dens.reshape(gx.shape)
    finite = dens[np.isfinite(dens)]
    norm = LogNorm(finite.min(), finite.max()) if finite.size and finite.min() > 0 else None
    mesh = ax.pcolormesh(xs, ys, np.ma.masked_invalid(dens), cmap=cmap, norm=norm,
                         shading="flat", rasterized=True)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, shrink=0.85, label="regions per unit area")
    if title:
        ax.set_title(title if isinstance(title, str) else
                     f"region density (1 / area): {len(p):,} regions")
    return ax


def _sampled_sizes(sampled, total):
    """(count, pattern_id) or pattern_id per sample -> estimated measure per sampled pattern."""
    if isinstance(sampled, tuple) and len(sampled) == 2:
        sampled = sampled[1]
    pid = np.asarray(sampled, dtype=np.int64).ravel()
    counts = np.bincount(pid)
    counts = counts[counts > 0]
    return counts / pid.size * total


def region_sizes(p, sampled=None, axes=None, bins=40):
    """Distribution of region sizes; with ``sampled``, exact and sampled side by side.

    Parameters
    ----------
    p : Partition
        The exact partition (1D or 2D).
    sampled : (count, pattern_id) or pattern_id, optional
        What :func:`regions.sampled_patterns` returned for points spread
        uniformly over the same domain (e.g. a pixel grid). A sampled
        pattern's size is estimated as its share of the points times the
        domain measure; the count is a lower bound and misses small regions.
    axes : Axes or two Axes, optional
    bins : int
        Number of logarithmic bins (shared by both panels).

    Returns
    -------
    Axes (exact only) or an array of two Axes (exact, sampled).
    """
    exact = np.asarray(p.measure, dtype=np.float64)
    total = float(exact.sum())
    word = "length" if p.dim == 1 else "area"
    kind = "pieces" if p.dim == 1 else "regions"
    est = None if sampled is None else _sampled_sizes(sampled, total)
    if axes is None:
        ncols = 1 if est is None else 2
        _, axes = plt.subplots(1, ncols, figsize=(4.6 * ncols + 0.4, 3.6), sharex=True,
                               sharey=True, layout="constrained", squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes)
    both = exact[exact > 0] if est is None else np.concatenate([exact[exact > 0], est])
    edges = np.logspace(np.log10(both.min()) - 0.05, np.log10(both.max()) + 0.05, bins + 1)
    ax = axes[0]
    ax.hist(exact, bins=edges, color="C0", alpha=0.85, label="exact")
    ax.set_xscale("log")
    ax.set_xlabel(f"region {word}")
    ax.set_ylabel(kind)
    ax.set_title(f"exact: {exact.size:,} {kind}\nmedian {word} {np.median(exact):.2g}",
                 fontsize="medium")
    if est is not None:
        ax2 = axes[1]
        ax2.hist(exact, bins=edges, histtype="step", color="C0", lw=1.0, label="exact")
        ax2.hist(est, bins=edges, color="C1", alpha=0.85, label="sampled")
        ax2.set_xscale("log")
        ax2.set_xlabel(f"estimated {word} (share of samples)")
        ax2.set_title(f"sampled: {est.size:,} patterns (a lower bound)\n"
                      f"median {word} {np.median(est):.2g}", fontsize="medium")
        ax2.legend(fontsize="small", loc="upper left")
        ax2.tick_params(labelleft=True)
        return axes
    return ax


def _series(obj):
    """mapping epoch -> count (or -> Partition), or (epochs, counts) -> two arrays."""
    if isinstance(obj, Mapping):
        epochs = np.asarray(list(obj.keys()), dtype=np.float64)
        counts = np.asarray([v if np.isscalar(v) else len(v) for v in obj.values()],
                            dtype=np.float64)
    else:
        epochs, counts = (np.asarray(a, dtype=np.float64).ravel() for a in obj)
    order = np.argsort(epochs)
    return epochs[order], counts[order]


def _is_labelled(obj):
    return isinstance(obj, Mapping) and obj and all(
        isinstance(v, (Mapping, tuple, list)) for v in obj.values())


def region_count(checkpoint_counts, ax=None, sampled=None, logy=False, title=None, colors=None):
    """Number of regions at each checkpoint over training.

    Parameters
    ----------
    checkpoint_counts : mapping epoch -> count (or -> Partition), or (epochs, counts),
        or a mapping label -> one of those (one line per run, e.g. raw vs PE).
    sampled : same form, optional
        Sampled counts (distinct patterns on a grid) drawn dashed in the same
        colour: the lower bound beside the exact count. A labelled run found
        only here (no exact count, e.g. a 2D run behind an encoding) is drawn
        dashed alone.
    colors : mapping label -> colour, optional
        Keeps a run's colour across figures (default: C0, C1, ... in order).

    Returns
    -------
    matplotlib Axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.8), layout="constrained")
    if isinstance(checkpoint_counts, Mapping) and not checkpoint_counts:
        runs = {}                                    # sampled counts only
    else:
        runs = (checkpoint_counts if _is_labelled(checkpoint_counts)
                else {"exact": checkpoint_counts})
    samp = None
    if sampled is not None:
        samp = (sampled if _is_labelled(sampled) or not runs
                else {next(iter(runs)): sampled})
        if not _is_labelled(samp):
            samp = {"sampled": samp}
    labels = list(runs) + [k for k in (samp or {}) if k not in runs]
    for i, label in enumerate(labels):
        col = (colors or {}).get(label, f"C{i}")
        if label in runs:
            e, c = _series(runs[label])
            ax.plot(e, c, "o-", color=col, ms=3.5, lw=1.4,
                    label=label if len(labels) > 1 or samp else None)
        if samp is not None and label in samp:
            es, cs = _series(samp[label])
            ax.plot(es, cs, "s--", color=col, ms=3, lw=1.0, alpha=0.8,
                    label=f"{label}, sampled (lower bound)" if len(labels) > 1 else
                    "sampled (lower bound)")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("regions")
    ax.grid(alpha=0.3, lw=0.5)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax
