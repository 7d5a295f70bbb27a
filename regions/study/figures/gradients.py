"""Figures of the per-sample gradients: the confusion densities of pairs, the
first-order prediction against the measured change, and the kernel split of
the gradient cosine (:mod:`regions.study.figures`)."""
from __future__ import annotations

import numpy as np

from .common import one_seed, panel_grid, pyplot, rows_by_dim, rplot, save


def _pct(v):
    return "-" if v is None or not np.isfinite(v) else (
        "0%" if v == 0 else "<0.1%" if v < 5e-4 else f"{100 * v:.1f}%")


def confusion_densities(results, path, checkpoint=-1):
    """Densities of gradient cosines for neighbour and distant pairs at a
    checkpoint (default: the end), one panel per run (first seed), drawn with
    :func:`regions.plot.confusion_densities`. The shares below -0.5 go in the
    panel titles and one legend sits under the panels, clear of the data."""
    draw = rplot().confusion_densities
    runs = [r for r in one_seed(results) if r.checkpoints[checkpoint].confusion is not None]
    if not runs:
        raise ValueError("no gradient confusion in the results")
    rows = rows_by_dim(runs)
    fig, axes = panel_grid(rows, (3.7, 3.2))
    used = [ax for row, g in zip(axes, rows) for ax in row[:len(g)]]
    data = {}
    for r in (r for g in rows for r in g):
        c = r.checkpoints[checkpoint]
        data[f"{r.name} @ epoch {c.epoch}"] = (c.confusion.neighbour, c.confusion.distant)
    draw(data, ax=np.array(used))
    handles = None
    for ax, r in zip(used, (r for g in rows for r in g)):
        c = r.checkpoints[checkpoint]
        leg = ax.get_legend()
        if leg is not None:
            handles = handles or ax.get_legend_handles_labels()[0]
            leg.remove()
        ax.set_title(f"{r.name} @ epoch {c.epoch}\nbelow -0.5: neighbours "
                     f"{_pct(c.confusion.neighbour_below)}, distant "
                     f"{_pct(c.confusion.distant_below)}", fontsize="medium")
    for row in axes:
        row[0].set_ylabel("density")
    if handles:
        fig.legend(handles[:2], ["neighbour pairs (3x3 patch; 3-window in 1D)",
                                 "random distant pairs"], loc="outside lower center", ncol=2,
                   frameon=False)
    return save(fig, path)


def _scaled(v):
    """Values and a label suffix putting a power of ten in the axis label rather
    than as an offset text (which collides with the label under the axis)."""
    v = np.asarray(v, float)
    m = np.nanmax(np.abs(v[np.isfinite(v)])) if np.isfinite(v).any() else 0.0
    k = int(np.floor(np.log10(m))) if m > 0 else 0
    if -2 <= k <= 2:
        return v, ""
    return v / 10.0 ** k, f" ($\\times 10^{{{k}}}$)"


def prediction_scatter(results, path, checkpoint=1):
    """The first-order prediction with each run's own step against the measured
    change, one panel per run (first seed), a row per signal dimension:
    full-batch GD runs, ``-(lr/N) sum_j G_ij`` against the change over the
    next record; other runs, ``g_i . dtheta`` with the optimiser's own step
    against that step's change (:class:`regions.study.results.AdamStep`),
    with the old full-batch GD prediction's Spearman rho in the title."""
    from ..claims import is_gd, record_steps

    def cp(r):
        return r.checkpoints[min(checkpoint, len(r.checkpoints) - 1)]

    def pair(r):
        c = cp(r)
        if is_gd(r) and c.observed_change is not None:
            k = record_steps(r, min(checkpoint, len(r.checkpoints) - 1))
            return (sum(c.predicted.values()), c.observed_change,
                    f"GD, next {k} step{'s' if k != 1 else ''}")
        if c.adam_step is not None and c.adam_step.predicted is not None:
            old = c.agreement.spearman.rho if c.agreement is not None else None
            note = f"; old GD-direction ρ = {old:.2f}" if old is not None else ""
            return c.adam_step.predicted, c.adam_step.actual, f"own Adam step{note}"
        return None

    runs = [r for r in one_seed(results) if pair(r) is not None]
    if not runs:
        raise ValueError("no predicted loss changes in the results")
    rows = rows_by_dim(runs)
    fig, axes = panel_grid(rows, (3.5, 3.2))
    from scipy.stats import pearsonr

    for row, g in zip(axes, rows):
        for ax, r in zip(row, g):
            pred, obs, what = pair(r)
            pred, obs = np.asarray(pred, float), np.asarray(obs, float)
            ok = np.isfinite(pred) & np.isfinite(obs)
            p, px = _scaled(pred[ok])
            o, ox = _scaled(obs[ok])
            ax.scatter(p, o, s=3, alpha=0.4, color="C2", linewidths=0, rasterized=True)
            rho = pearsonr(pred[ok], obs[ok]).statistic if ok.sum() > 2 else np.nan
            ax.set_title(f"{r.name} @ epoch {cp(r).epoch}\n{what}\nPearson = {rho:.4f}",
                         fontsize="medium")
            ax.set_xlabel("predicted Δ loss" + px)
            ax.set_ylabel("measured Δ loss" + ox)
            ax.axhline(0, color="grey", lw=0.5)
            ax.axvline(0, color="grey", lw=0.5)
            ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle("Per-sample loss change: the first-order prediction with the step each run "
                 "takes (x) against the measured change (y)", fontsize="medium")
    return save(fig, path)


def kernel_split(results, path, checkpoint=-1):
    """The gradient cosine of neighbour pairs split into its kernel and residual
    parts (:class:`regions.study.results.KernelSplit`) at a checkpoint (default:
    the end), one column per 2D run (first seed). Top: the gradient cosine
    against the residual cosine of each 3x3-patch pair, coloured by the kernel
    similarity ``s_ij``; bottom: the densities of the three quantities."""
    plt = pyplot()
    runs = [r for r in one_seed(results) if r.dim == 2
            and r.checkpoints[checkpoint].confusion_kernel is not None
            and r.checkpoints[checkpoint].confusion_kernel.neighbour is not None]
    if not runs:
        raise ValueError("no kernel split of 2D runs in the results")
    fig, axes = plt.subplots(2, len(runs), figsize=(3.5 * len(runs) + 0.8, 6.6),
                             layout="constrained", squeeze=False)
    bins = np.linspace(-1, 1, 41)
    sc = None
    for j, r in enumerate(runs):
        c = r.checkpoints[checkpoint]
        gcos, kern, res = (np.asarray(x.neighbour, float) for x in
                           (c.confusion, c.confusion_kernel, c.confusion_residual))
        ok = np.isfinite(gcos) & np.isfinite(kern) & np.isfinite(res)
        ax = axes[0, j]
        sc = ax.scatter(res[ok], gcos[ok], c=kern[ok], s=3, cmap="viridis", vmin=0, vmax=1,
                        linewidths=0, rasterized=True)
        ax.plot([-1, 1], [-1, 1], color="0.5", lw=0.7, ls="--")
        pr = c.kernel_split.pearson_residual if c.kernel_split else None
        ax.set_title(f"{r.name}, epoch {c.epoch}\nPearson(gradient, residual) = "
                     f"{'-' if pr is None else f'{pr:.2f}'}", fontsize="medium")
        ax.set_xlabel("residual cosine cos(r_i, r_j)")
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(-1.05, 1.05)
        ax.grid(alpha=0.3, lw=0.5)
        ax = axes[1, j]
        for v, lab, col in ((gcos, "gradient cosine", "C0"), (res, "residual cosine", "C3"),
                            (kern, "kernel similarity s_ij", "C2")):
            ax.hist(v[np.isfinite(v)], bins=bins, density=True, histtype="step", lw=1.4,
                    color=col, label=lab)
        ax.axvline(-0.5, color="0.4", lw=0.8, ls=":")
        ax.set_xlabel("value over the 3x3-patch pairs")
        ax.grid(alpha=0.3, lw=0.5)
    axes[0, 0].set_ylabel("gradient cosine cos(g_i, g_j)")
    axes[1, 0].set_ylabel("density")
    fig.colorbar(sc, ax=axes[0, :], label="kernel similarity s_ij", shrink=0.9)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize="small",
               frameon=False)
    fig.suptitle("Neighbour pairs: the gradient cosine follows the residual cosine; the kernel "
                 "similarity stays positive (dotted: -0.5)", fontsize="medium")
    return save(fig, path)
