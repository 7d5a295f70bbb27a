"""Figures of quantities over training: the loss curves, the region count, the
distance to the boundary and the residual energy per band (:mod:`regions.study.figures`)."""
from __future__ import annotations

import numpy as np

from .common import colours, one_seed, pyplot, rplot, save


def loss_curves(results, path):
    plt = pyplot()
    col = colours(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for dim, ax in zip((2, 1), axes):
        seen = set()
        for r in results:
            if r.dim != dim:
                continue
            lab = r.name if r.name not in seen else None
            seen.add(r.name)
            ax.semilogy(r.record_epochs, r.mean_loss, color=col[r.name], label=lab, lw=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean training loss (MSE)")
        ax.set_title(f"{dim}D signal")
        if seen:
            ax.legend(fontsize=8)
    return save(fig, path)


def region_count(results, path):
    """Exact region count (solid) and distinct sampled patterns (dashed) over
    training, one panel per signal dimension, drawn with
    :func:`regions.plot.region_count` (mean over seeds). Sampled counts within
    1% of the sample count lie on the cap line and on each other: they are drawn
    with their own markers (of decreasing size) so that none hides another."""
    draw = rplot().region_count
    plt = pyplot()
    col = colours(results)
    dims = [d for d in (2, 1) if any(r.dim == d for r in results)]
    fig, axes = plt.subplots(1, len(dims), figsize=(5.6 * len(dims), 4.8), layout="constrained",
                             squeeze=False)
    for dim, ax in zip(dims, axes[0]):
        exact, sampled, capped = {}, {}, {}
        names = list(dict.fromkeys(r.name for r in results if r.dim == dim))
        n = next(r.n for r in results if r.dim == dim)
        for name in names:
            rs = [r for r in results if r.name == name]
            ep = [c.epoch for c in rs[0].checkpoints]
            ex = np.array([[c.n_regions if c.n_regions is not None else np.nan
                            for c in r.checkpoints] for r in rs], float)
            sa = np.array([[c.n_patterns_sampled for c in r.checkpoints] for r in rs], float)
            if np.all(np.isfinite(ex)):
                exact[name] = (ep, ex.mean(0))
            if np.all(sa.mean(0) >= 0.99 * n) and name not in exact:
                capped[name] = (ep, sa.mean(0))
            else:
                sampled[name] = (ep, sa.mean(0))
        ax.axhline(n, color="0.6", lw=2.5, ls="-", alpha=0.35, zorder=0,
                   label=f"{n:,} samples (cap of the sampled count)")
        draw(exact, ax=ax, sampled=sampled, logy=True, colors=col)
        for k, (name, (ep, v)) in enumerate(capped.items()):
            ax.plot(ep, v, ls=(0, (2, 2)), marker="os^vD"[k % 5], ms=9 - 2.2 * k, mfc="none",
                    mew=1.3, color=col[name], lw=1.0,
                    label=f"{name}, sampled: " + (f"{int(v.min()):,}" if v.min() == v.max() else
                                                  f"{int(v.min()):,}-{int(v.max()):,}")
                    + " (at the cap)")
        seeds = len({r.seed for r in results if r.dim == dim})
        ax.set_title(f"{dim}D signal" + (f" (mean of {seeds} seeds)" if seeds > 1 else ""),
                     fontsize="medium")
        ax.set_ylabel("exact regions (solid) / sampled patterns (dashed)")
        # the legend goes under the panel: the lines span the whole width
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  frameon=False)
    return save(fig, path)


def boundary_distance(results, path):
    """Mean exact distance to the region boundary and mean chord between
    boundaries along grid lines, over training (first seed of each run). A run
    measured at one checkpoint only (encoded 2D runs: exact crossings at the
    checkpoints the preset's ``encoded_crossings`` names) is a labelled marker,
    not a line."""
    plt = pyplot()
    col = colours(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), layout="constrained")
    handles, labels = [], []
    for r in one_seed(results):
        ep = np.array([c.epoch for c in r.checkpoints])
        lab = r.name
        for ax, attr in zip(axes, ("mean_dist_boundary", "mean_chord")):
            v = np.array([np.nan if getattr(c, attr) is None else getattr(c, attr)
                          for c in r.checkpoints], float)
            ok = np.isfinite(v)
            if ok.sum() == 0:
                continue
            if ok.sum() == 1:
                h, = ax.plot(ep[ok], v[ok], marker="D", ms=8, mfc="none", mew=1.5, ls="none",
                             color=col[r.name])
                lab = f"{r.name} (one checkpoint)" if attr == "mean_chord" else lab
            else:
                h, = ax.plot(ep[ok], v[ok], "-o", ms=3.5, color=col[r.name])
        if lab not in labels:
            handles.append(h)
            labels.append(lab)
    axes[0].set_ylabel("mean exact distance to the boundary\n(input units)")
    axes[1].set_ylabel("mean chord between boundaries\n(input units)")
    axes[0].set_title("distance from each sample to its region's boundary", fontsize="medium")
    axes[1].set_title("mean length between boundary crossings along the grid's rows and "
                      "columns\n(grid step / mean exact crossings per step)", fontsize="medium")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, lw=0.5)
    fig.legend(handles=handles, labels=labels, loc="outside right center", fontsize="small")
    return save(fig, path)


def band_energy(results, path):
    """Residual energy ratio per frequency band over training (epochs x bands heat
    maps), one row per signal, drawn with :func:`regions.plot.band_energy`.
    Bands where the target has no energy (all NaN) are left out."""
    draw = rplot().band_energy
    runs = [r for r in one_seed(results) if r.band_energy is not None]
    if not runs:
        raise ValueError("no band energies in the results")
    groups = {}
    for r in runs:   # runs drawn together share a signal's bands
        b = np.asarray(r.band_energy.bands, float)
        groups.setdefault((r.dim, b.tobytes()), (b, []))[1].append(r)
    groups = sorted(groups.items(), key=lambda kv: -kv[0][0])
    # one colour scale for every row: 1, or the 99th percentile of the ratios if larger
    values = np.concatenate([np.asarray(r.band_energy.ratio, float).ravel() for r in runs])
    values = values[np.isfinite(values)]
    vmax = max(1.0, float(np.percentile(values, 99))) if values.size else 1.0
    ncols = max(len(g) for _, (_, g) in groups)
    plt = pyplot()
    fig = plt.figure(figsize=(3.6 * ncols + 1.4, 3.3 * len(groups)), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(len(groups), 1))
    for sf, ((dim, _), (bands, g)) in zip(subs, groups):
        axes = sf.subplots(1, ncols, sharey=True, squeeze=False)[0]
        for ax in axes[len(g):]:
            ax.set_visible(False)
        keep = ~np.all([np.isnan(np.asarray(r.band_energy.ratio, float)).all(0) for r in g],
                       axis=0)
        data = {r.name: (r.band_energy.epochs, np.asarray(r.band_energy.ratio, float)[:, keep])
                for r in g}
        draw(data, bands=bands[keep], axes=axes[:len(g)], kind="image", vmax=vmax)
        axes[0].set_ylabel("band (cycles over the grid)")
        sf.suptitle(f"{dim}D signal, seed {g[0].seed}: share of each band's target energy "
                    "left in the residual (1 = not learned)", fontsize="medium")
    return save(fig, path)
