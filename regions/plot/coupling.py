"""Figures of the coupling study: per-sample speed against region features, residual
energy per frequency band over training, and gradient-confusion densities."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

__all__ = ["speed_vs_feature", "band_energy", "confusion_densities"]


def _grid(n, ncols, size=(3.4, 3.0), sharey=True):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols + 0.3, size[1] * nrows),
                             sharey=sharey, layout="constrained", squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _log_scale_suits(x):
    x = x[np.isfinite(x)]
    return x.size > 0 and x.min() > 0 and x.max() / x.min() > 100


def _binned_quantiles(x, y, nbins, log):
    """Median and quartiles of y in quantile bins of x -> (centres, q25, q50, q75).

    A feature with at most ``nbins`` distinct values (a count, a Hamming
    distance) is grouped by value instead."""
    values = np.unique(x)
    if values.size <= nbins:
        out = [(v, *np.quantile(y[x == v], [0.25, 0.5, 0.75])) for v in values
               if np.count_nonzero(x == v) >= 3]
        out = np.array(out).reshape(-1, 4)
        return out[:, 0], out[:, 1], out[:, 2], out[:, 3]
    edges = np.unique(np.quantile(x, np.linspace(0, 1, nbins + 1)))
    if edges.size < 3:
        return (np.array([]),) * 4
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    out = []
    for b in range(edges.size - 1):
        yb = y[which == b]
        if yb.size >= 3:
            c = np.sqrt(edges[b] * edges[b + 1]) if log else 0.5 * (edges[b] + edges[b + 1])
            out.append((c, *np.quantile(yb, [0.25, 0.5, 0.75])))
    out = np.array(out).reshape(-1, 4)
    return out[:, 0], out[:, 1], out[:, 2], out[:, 3]


def speed_vs_feature(features, speed, censored=None, axes=None, speed_label="epochs to converge",
                     ncols=3, nbins=12, max_points=20000, seed=0):
    """Per-sample convergence speed against each region feature, one panel per feature.

    Each panel: the samples as faint points (a random subset of ``max_points``
    when there are more), the median and interquartile band of the speed in
    quantile bins of the feature, and Spearman's rank correlation in the title.
    Censored samples (never converged) are drawn as grey crosses at their
    recorded value and left out of the binned curve and the correlation.

    Parameters
    ----------
    features : mapping name -> (N,) array
        Region features per sample (measure, inradius, occupancy, density, ...).
    speed : (N,) array
        A speed measure per sample (e.g. epochs until loss_i <= eps loss_i(0)).
    censored : (N,) bool, optional
    axes : array of Axes, optional
        One per feature; the y label goes on the first of each row (a 1D
        array is one row). Default: a new figure with ``ncols`` panels a row.
    speed_label : str
        The y-axis label.

    Returns
    -------
    array of Axes, one per feature.
    """
    from scipy.stats import spearmanr

    if not isinstance(features, Mapping):
        raise ValueError("features must be a mapping name -> per-sample array, got "
                         f"{type(features).__name__}")
    speed = np.asarray(speed, dtype=np.float64).ravel()
    cens = np.zeros(speed.shape, bool) if censored is None else np.asarray(censored, bool).ravel()
    if axes is None:
        _, axes = _grid(len(features), ncols)
    elif np.ndim(axes) == 2:
        ncols = np.shape(axes)[1]
    else:
        ncols = np.size(axes)                        # given axes: one row
    axes = np.atleast_1d(axes).ravel()
    rng = np.random.default_rng(seed)
    show = np.arange(speed.size)
    if speed.size > max_points:
        show = np.sort(rng.choice(speed.size, max_points, replace=False))
    for ax, (name, x) in zip(axes, features.items()):
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.shape != speed.shape:
            raise ValueError(f"feature {name!r} has {x.size} values but speed has {speed.size}")
        ok = np.isfinite(x) & np.isfinite(speed) & ~cens
        log = _log_scale_suits(x[ok])
        s = show[ok[show]]
        few = s.size < 2000          # few samples: bigger, stronger dots
        ax.scatter(x[s], speed[s], s=8 if few else 3, color="C0", alpha=0.5 if few else 0.25,
                   linewidths=0, rasterized=True)
        c = show[cens[show] & np.isfinite(x[show])]
        if c.size:
            ax.scatter(x[c], speed[c], s=6, marker="x", color="0.55", linewidths=0.6,
                       rasterized=True, label="censored")
        if ok.sum() >= 10:
            xc, q25, q50, q75 = _binned_quantiles(x[ok], speed[ok], nbins, log)
            ax.fill_between(xc, q25, q75, color="k", alpha=0.15, lw=0)
            ax.plot(xc, q50, "-", color="k", lw=1.6, label="median (IQR band)")
            if np.ptp(x[ok]) > 0 and np.ptp(speed[ok]) > 0:
                rho = f"Spearman ρ = {spearmanr(x[ok], speed[ok]).statistic:+.2f}"
            else:                                    # no rank correlation for a constant
                rho = "constant" + (" feature" if np.ptp(x[ok]) == 0 else " speed")
            ax.set_title(f"{name}\n{rho} (n = {ok.sum():,})", fontsize="medium")
        else:
            ax.set_title(str(name), fontsize="medium")
        if log:
            ax.set_xscale("log")
        else:
            ax.locator_params(axis="x", nbins=4)      # long decimals must not run together
        ax.set_xlabel(str(name))
        ax.grid(alpha=0.3, lw=0.5)
    for ax in axes[:: max(1, min(ncols, len(axes)))]:
        ax.set_ylabel(speed_label)
    if axes.size and axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize="x-small", loc="best", markerscale=2)
    return axes


def _one_energy(ax, epochs, energy, bands, kind, label, vmax):
    energy = np.asarray(energy, dtype=np.float64)
    if energy.ndim != 2:
        raise ValueError(f"energy must be (n_epochs, n_bands), got shape {energy.shape}")
    n_ep, n_b = energy.shape
    epochs = np.arange(n_ep) if epochs is None else np.asarray(epochs, dtype=np.float64).ravel()
    if epochs.size != n_ep:
        raise ValueError(f"{epochs.size} epochs for {n_ep} rows of energy")
    bands = np.arange(n_b) if bands is None else np.asarray(bands)
    if kind == "image":
        # cell edges halfway between recorded epochs
        mid = 0.5 * (epochs[1:] + epochs[:-1]) if n_ep > 1 else np.array([])
        first = epochs[0] - (mid[0] - epochs[0] if n_ep > 1 else 0.5)
        last = epochs[-1] + (epochs[-1] - mid[-1] if n_ep > 1 else 0.5)
        xe = np.concatenate([[first], mid, [last]])
        art = ax.pcolormesh(xe, np.arange(n_b + 1) - 0.5, energy.T, cmap="magma",
                            vmin=0.0, vmax=vmax, shading="flat", rasterized=True)
        step = max(1, n_b // 8)
        ax.set_yticks(np.arange(n_b)[::step])
        ax.set_yticklabels([f"{b:g}" if np.issubdtype(np.asarray(b).dtype, np.number) else str(b)
                            for b in bands[::step]])
        ax.set_ylabel("frequency band")
    else:
        cmap = plt.get_cmap("viridis")
        for b in range(n_b):
            ax.plot(epochs, energy[:, b], color=cmap(b / max(1, n_b - 1)), lw=1.2)
        art = ScalarMappable(Normalize(-0.5, n_b - 0.5), cmap)
        ax.set_ylabel("residual energy ratio")
        ax.set_ylim(0, max(vmax, 1e-12) * 1.05)
        ax.grid(alpha=0.3, lw=0.5)
    ax.set_xlabel("epoch")
    if label:
        ax.set_title(str(label), fontsize="medium")
    return art


def _band_labels(bands):
    """Band labels: as given, or ``"lo-hi"`` strings from an ``(n_bands, 2)`` array of edges."""
    if bands is None:
        return None
    b = np.asarray(bands)
    if b.ndim == 2 and b.shape[1] == 2 and np.issubdtype(b.dtype, np.number):
        return np.array([f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">{lo:g}" for lo, hi in b])
    return b


def band_energy(energy, epochs=None, bands=None, axes=None, kind="image", colorbar=True,
                    vmax=None):
    """Residual energy ratio per frequency band over training (the spectral-bias picture).

    Parameters
    ----------
    energy : (n_epochs, n_bands) array, or mapping label -> array or (epochs, array)
        ``E_b(t)``: the share of band ``b``'s target energy still in the
        residual at each recorded epoch (1 = nothing learned). A mapping gives
        one panel per run (e.g. raw vs PE) on a shared colour scale; a run
        given as ``(epochs, energy)`` keeps its own epochs.
    epochs : (n_epochs,) array, optional
    bands : (n_bands,) labels (e.g. centre frequencies) or (n_bands, 2) band edges, optional
        Edges, as :func:`regions.study.bands.band_energy_from_run`
        returns them, are shown as ``"lo-hi"``.
    kind : "image" or "lines"
        A heat map (epochs x bands, low frequencies at the bottom) or one line
        per band coloured from low (dark) to high (yellow) frequency.
    vmax : float, optional
        Top of the colour scale (image) or of the y axis (lines). Default for
        an image: 1 or the 99th percentile of the ratios if larger, so a
        short spike early in training does not wash out the rest (the colour
        bar then shows an arrow); for lines: the largest ratio.

    Returns
    -------
    array of Axes (one per run).
    """
    if kind not in ("image", "lines"):
        raise ValueError(f"kind must be 'image' or 'lines', got {kind!r}")
    runs = dict(energy) if isinstance(energy, Mapping) else {None: energy}
    # each run: an energy array (sharing ``epochs``) or its own (epochs, energy) pair
    runs = {k: (tuple(v) if isinstance(v, (tuple, list)) and len(v) == 2 else (epochs, v))
            for k, v in runs.items()}
    bands = _band_labels(bands)
    values = np.concatenate([np.asarray(e, float).ravel() for _, e in runs.values()])
    values = values[np.isfinite(values)]
    top = max(1.0, float(values.max()) if values.size else 1.0)
    if vmax is None:
        vmax = top if kind == "lines" or not values.size else \
            max(1.0, float(np.percentile(values, 99)))
    if axes is None:
        _, axes = plt.subplots(1, len(runs), figsize=(4.4 * len(runs) + 1.0, 3.6),
                               sharey=True, layout="constrained", squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes).ravel()
    art = None
    for ax, (label, (ep, e)) in zip(axes, runs.items()):
        art = _one_energy(ax, ep, e, bands, kind, label, vmax)
    for ax in axes[1:]:
        ax.set_ylabel("")
    if colorbar and art is not None:
        fig = axes[0].figure
        if kind == "image":
            fig.colorbar(art, ax=list(axes), label="residual energy ratio", shrink=0.9,
                         extend="max" if top > vmax else "neither")
        else:
            cb = fig.colorbar(art, ax=list(axes), label="frequency band", shrink=0.9)
            n_b = int(round(art.norm.vmax + 0.5))
            if bands is not None:
                step = max(1, n_b // 8)
                cb.set_ticks(np.arange(n_b)[::step])
                cb.set_ticklabels([str(b) for b in np.asarray(bands)[::step]])
    return axes


def confusion_densities(neighbour, distant=None, ax=None, bins=60, threshold=-0.5,
                        labels=("neighbour pairs", "distant pairs")):
    """Densities of gradient confusion (cosines) for neighbouring and distant sample pairs.

    Parameters
    ----------
    neighbour, distant : arrays of cosines in [-1, 1]
        Or ``neighbour`` a mapping run label -> (neighbour, distant): one
        panel per run, sharing both axes.
    threshold : float
        A dotted line there, and the share of pairs below it in the legend
        (the paper's strong-confusion cut is -0.5).

    Returns
    -------
    Axes, or an array of Axes for a mapping.
    """
    if isinstance(neighbour, Mapping):
        runs = neighbour
        if ax is None:
            _, ax = plt.subplots(1, len(runs), figsize=(3.8 * len(runs) + 0.4, 3.4),
                                 sharex=True, sharey=True, layout="constrained", squeeze=False)
            ax = ax[0]
        axes = np.atleast_1d(ax).ravel()
        heights = []
        for a, (label, (nb, ds)) in zip(axes, runs.items()):
            heights += _confusion_panel(a, nb, ds, bins, threshold, labels)
            a.set_title(str(label), fontsize="medium")
        for a in axes:
            _density_scale(a, heights)
        for a in axes[1:]:
            a.set_ylabel("")
        return axes
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 3.6), layout="constrained")
    _density_scale(ax, _confusion_panel(ax, neighbour, distant, bins, threshold, labels))
    return ax


def _confusion_panel(ax, neighbour, distant, bins, threshold, labels):
    edges = np.linspace(-1.0, 1.0, bins + 1)
    heights = []
    for i, (vals, label) in enumerate(zip((neighbour, distant), labels)):
        if vals is None:
            continue
        v = np.asarray(vals, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        share = float(np.mean(v < threshold)) if v.size else float("nan")
        h, _, _ = ax.hist(v, bins=edges, density=True, histtype="stepfilled", alpha=0.35,
                          color=f"C{i}")
        ax.hist(v, bins=edges, density=True, histtype="step", lw=1.4, color=f"C{i}",
                label=f"{label}: {share:.0%} below {threshold:g}")
        heights.append(h)
    ax.axvline(threshold, color="0.3", ls=":", lw=1)
    ax.set_xlim(-1, 1)
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])          # no crowding between side-by-side panels
    ax.set_xlabel("gradient cosine")
    ax.set_ylabel("density")
    ax.legend(fontsize="small", loc="upper center", framealpha=0.9)
    return heights


def _density_scale(ax, heights):
    """Linear with headroom for the legend, or log when a spike would flatten the rest
    (pairs inside one region have cosines of exactly +-1)."""
    h = np.concatenate(heights) if heights else np.zeros(1)
    h = h[h > 0]
    if h.size > 3 and h.max() > 10 * np.percentile(h, 75):
        ax.set_yscale("log")
        ax.set_ylim(h.min() / 2, h.max() * 8)
    else:
        ax.set_yscale("linear")
        ax.set_ylim(0, (h.max() if h.size else 1.0) * 1.35)
