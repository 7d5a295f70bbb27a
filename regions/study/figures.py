"""Figures for the study report (matplotlib, Agg backend).

Each function takes the list of job results of :func:`regions.study.run_study`
(one :class:`regions.study.results.RunResult` per experiment and seed) and a
PNG path, draws one figure and returns the path. Figures only draw: the
partitions are those saved with the runs and the samples are the runs' own
coordinates (the engine never runs here). Runs keep one colour per
experiment in every figure. The region count, band energy and gradient
confusion are drawn by :mod:`regions.plot` (``region_count``, ``band_energy``,
``confusion_densities``) from these results, and so are the partitions
(``partition``, ``animate``) and the region sizes and densities
(``region_sizes``, ``density_map``); the speed against region features, the
kernel split, the spectral coupling and the first-order prediction are drawn
here.
"""
from __future__ import annotations

import numpy as np

__all__ = ["partitions", "partitions_gif", "region_sizes", "region_count", "speed_vs_features",
           "band_energy", "confusion_densities", "prediction_scatter", "boundary_distance",
           "loss_curves", "kernel_split", "spectral_coupling"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _colours(results):
    names = list(dict.fromkeys(r.name for r in results))
    cmap = _plt().get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def _rplot():
    """:mod:`regions.plot`, imported after the Agg backend is chosen."""
    _plt()
    import regions.plot

    return regions.plot


def _save(fig, path):
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return str(path)


def loss_curves(results, path):
    plt = _plt()
    col = _colours(results)
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
    return _save(fig, path)


def _one_seed(results):
    """One run per experiment: the first seed's."""
    seed = results[0].seed
    return [r for r in results if r.seed == seed]


def _rows_by_dim(runs):
    """Runs grouped into rows, 2D signals first."""
    return [g for g in ([r for r in runs if r.dim == d] for d in (2, 1)) if g]


def _panel_grid(rows, size, **kw):
    """A figure with one row of panels per group; unused panels hidden."""
    plt = _plt()
    ncols = max(len(g) for g in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size[0] * ncols + 0.4, size[1] * len(rows)),
                             layout="constrained", squeeze=False, **kw)
    for row, g in zip(axes, rows):
        for ax in row[len(g):]:
            ax.set_visible(False)
    return fig, axes


def region_count(results, path):
    """Exact region count (solid) and distinct sampled patterns (dashed) over
    training, one panel per signal dimension, drawn with
    :func:`regions.plot.region_count` (mean over seeds). Sampled counts within
    1% of the sample count lie on the cap line and on each other: they are drawn
    with their own markers (of decreasing size) so that none hides another."""
    draw = _rplot().region_count
    plt = _plt()
    col = _colours(results)
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
    return _save(fig, path)


def _log_axis(values):
    """Whether a feature is drawn on a log axis: positive and spanning more
    than two decades (decided once per feature, for every row)."""
    v = np.concatenate([np.asarray(x, float).ravel() for x in values]) if values else np.array([])
    v = v[np.isfinite(v)]
    return bool(v.size and v.min() > 0 and v.max() / v.min() > 100)


def _speed_panel(ax, x, y, log, nbins=10, min_count=10):
    """One panel of :func:`speed_vs_features`: the samples, the median and
    interquartile range of the speed per value (a feature with at most 12
    distinct values) or per quantile bin, only where ``min_count`` samples
    fall, and Spearman's rho. Returns the title's second line."""
    from scipy.stats import spearmanr

    ok = np.isfinite(x) & np.isfinite(y) & ((x > 0) if log else True)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0:
        ax.text(0.5, 0.5, "the same value for\nevery sample" if x.size else "not measured",
                ha="center", va="center", transform=ax.transAxes, color="0.4")
        return "constant feature" if x.size else ""
    ax.scatter(x, y, s=4, color="C0", alpha=0.3, linewidths=0, rasterized=True)
    distinct = np.unique(x)
    if distinct.size <= 12:
        keep = [v for v in distinct if np.sum(x == v) >= min_count]
        q = np.array([np.percentile(y[x == v], [25, 50, 75]) for v in keep]).reshape(-1, 3)
        ax.errorbar(keep, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], fmt="o-",
                    color="k", ms=4, lw=1.4, capsize=3)
    else:
        edges = np.unique(np.quantile(np.log(x) if log else x, np.linspace(0, 1, nbins + 1)))
        idx = np.clip(np.searchsorted(edges, np.log(x) if log else x, side="right") - 1, 0,
                      edges.size - 2)
        rows = [(np.median(x[idx == b]), *np.percentile(y[idx == b], [25, 50, 75]))
                for b in range(edges.size - 1) if np.sum(idx == b) >= min_count]
        if rows:
            xc, q25, q50, q75 = np.array(rows).T
            ax.fill_between(xc, q25, q75, color="k", alpha=0.15, lw=0)
            ax.plot(xc, q50, "-", color="k", lw=1.6)
    if log:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.locator_params(axis="x", nbins=4)
    rho = spearmanr(x, y).statistic if np.ptp(y) > 0 else np.nan
    return f"Spearman ρ = {rho:+.2f}"


def speed_vs_features(results, path, features=("occupancy", "measure", "hamming",
                                               "dist_boundary")):
    """Per-sample speed in the learning phase against region features, one row
    per run (first seed) and one column per feature: the samples, the median
    and interquartile range of the speed in bins of the feature, and Spearman's
    rho. The speed is ``lp_rate`` (-d log loss / d epoch over the run's
    learning-phase window) against the features of the last analysed
    checkpoint at or before the window; a run without a window uses the rate
    after its second analysed checkpoint. Each feature has one axis scale in
    every row; each row's y axis spans the 1st to 99th percentile of its speeds."""
    plt = _plt()
    runs, cps, keys = [], [], []
    for r in _one_seed(results):
        c = next((c for c in r.checkpoints if c.learning_window is not None
                  and "lp_rate" in c.speeds), None)
        key = "lp_rate"
        if c is None:
            c, key = r.checkpoints[min(1, len(r.checkpoints) - 1)], "rate"
        if key in c.speeds:
            runs.append(r)
            cps.append(c)
            keys.append(key)
    feats = [f for f in features if any(f in c.features for c in cps)]
    if not feats:
        raise ValueError(f"none of the features {features} is in the results")
    log = {f: _log_axis([c.features[f] for c in cps if f in c.features]) for f in feats}
    with plt.rc_context({"font.size": 11}):
        fig, axes = plt.subplots(len(runs), len(feats), figsize=(3.6 * len(feats) + 0.8,
                                                                   2.9 * len(runs) + 0.9),
                                 layout="constrained", squeeze=False, sharey="row")
        for row, r, c, key in zip(axes, runs, cps, keys):
            speed = np.asarray(c.speeds[key], float)
            for f, ax in zip(feats, row):
                kind = c.kinds.get(f, "exact")
                label = f if kind == "exact" else f"{f} ({kind})"
                if f not in c.features:
                    ax.text(0.5, 0.5, f"{f}:\nnot measured\n(no exact partition)",
                            ha="center", va="center", transform=ax.transAxes, color="0.4")
                    ax.set_xticks([])
                    ax.set_title(f, fontsize="medium")
                    continue
                line = _speed_panel(ax, np.asarray(c.features[f], float), speed, log[f])
                ax.set_title(f"{label}\n{line}", fontsize="medium")
                ax.set_xlabel(label)
                ax.grid(alpha=0.3, lw=0.5)
            window = (f"window {c.learning_window[0]}-{c.learning_window[1]}" if key == "lp_rate"
                      else f"{c.window} epochs after {c.epoch}")
            row[0].set_ylabel(f"{r.name}\n{key.replace('_', ' ')}, {window}")
            fin = speed[np.isfinite(speed)]
            if fin.size > 10:
                lo, hi = np.percentile(fin, [1, 99])
                pad = 0.12 * (hi - lo) if hi > lo else 1.0
                row[0].set_ylim(lo - pad, hi + pad)
        fig.suptitle("Per-sample speed in the learning phase against region features at its "
                     "start (lp rate = −d log loss / d epoch over the window; larger = faster);"
                     "\nblack: median and interquartile range in bins with at least 10 samples",
                     fontsize="medium")
        return _save(fig, path)


def band_energy(results, path):
    """Residual energy ratio per frequency band over training (epochs x bands heat
    maps), one row per signal, drawn with :func:`regions.plot.band_energy`.
    Bands where the target has no energy (all NaN) are left out."""
    draw = _rplot().band_energy
    runs = [r for r in _one_seed(results) if r.band_energy is not None]
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
    plt = _plt()
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
    return _save(fig, path)


def _pct(v):
    return "-" if v is None or not np.isfinite(v) else (
        "0%" if v == 0 else "<0.1%" if v < 5e-4 else f"{100 * v:.1f}%")


def confusion_densities(results, path, checkpoint=-1):
    """Densities of gradient cosines for neighbour and distant pairs at a
    checkpoint (default: the end), one panel per run (first seed), drawn with
    :func:`regions.plot.confusion_densities`. The shares below -0.5 go in the
    panel titles and one legend sits under the panels, clear of the data."""
    draw = _rplot().confusion_densities
    runs = [r for r in _one_seed(results) if r.checkpoints[checkpoint].confusion is not None]
    if not runs:
        raise ValueError("no gradient confusion in the results")
    rows = _rows_by_dim(runs)
    fig, axes = _panel_grid(rows, (3.7, 3.2))
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
    return _save(fig, path)


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
    from .claims import is_gd, record_steps

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

    runs = [r for r in _one_seed(results) if pair(r) is not None]
    if not runs:
        raise ValueError("no predicted loss changes in the results")
    rows = _rows_by_dim(runs)
    fig, axes = _panel_grid(rows, (3.5, 3.2))
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
    return _save(fig, path)


def boundary_distance(results, path):
    """Mean exact distance to the region boundary and mean chord between
    boundaries along grid lines, over training (first seed of each run). A run
    measured at one checkpoint only (encoded 2D runs: exact crossings at the
    checkpoints the preset's ``encoded_crossings`` names) is a labelled marker,
    not a line."""
    plt = _plt()
    col = _colours(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), layout="constrained")
    handles, labels = [], []
    for r in _one_seed(results):
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
    return _save(fig, path)


def _samples(r):
    """The training inputs of a run as trained: ``(n, 2)`` pixels or ``(n,)`` points."""
    return r.coords[:, 0] if r.dim == 1 else r.coords


def _run_with_partitions(results, name):
    r = next((r for r in results if r.name == name and r.partitions), None)
    if r is None:
        raise ValueError(f"no run named {name!r} with saved exact partitions in the results")
    return r


def partitions(results, path, name="2d-raw", max_panels=3):
    """The exact partition of a raw 2D run at init, an early checkpoint and the
    end (regions coloured by activation pattern, samples overlaid), drawn with
    :func:`regions.plot.partition` from the partitions saved with the run."""
    draw = _rplot().partition
    r = _run_with_partitions(results, name)
    epochs = sorted(r.partitions)
    pick = sorted({epochs[0], epochs[min(1, len(epochs) - 1)], epochs[-1]})[:max_panels]
    plt = _plt()
    fig, axes = plt.subplots(1, len(pick), figsize=(4.2 * len(pick), 4.0), squeeze=False)
    pts = _samples(r)
    for ax, e in zip(axes[0], pick):
        p = r.partitions[e]
        draw(p, ax=ax, color="pattern", points=pts, title=f"{name}, epoch {e}: {len(p)} regions",
             points_kw={"s": 0.5, "c": "k"})
        ax.set_aspect(1)
    fig.tight_layout()
    return _save(fig, path)


def _end_partition(results, names):
    """(run, its partition at the last checkpoint, samples) of the first run
    named in ``names`` with saved partitions (raw 2D, raw or encoded 1D)."""
    for name in names:
        r = next((r for r in results if r.name == name and r.partitions), None)
        if r is not None:
            return r, r.partitions[max(r.partitions)], _samples(r)
    return None


def region_sizes(results, path):
    """Region sizes at the end of training, exact beside what the training
    samples see (sampled patterns), and the exact region density; one row for
    the raw 2D run and one for the highest-L encoded 1D run (or the raw 1D run)."""
    import regions

    rp = _rplot()
    one_d = sorted({r.name for r in results if r.dim == 1 and r.partitions},
                   key=lambda n: -int(n[5:]) if n[5:].isdigit() else 0)  # highest L first
    rows = [x for x in (_end_partition(results, ["2d-raw"]), _end_partition(results, one_d))
            if x is not None]
    if not rows:
        raise ValueError("no run with an exact partition (raw 2D, or 1D) in the results")
    plt = _plt()
    fig = plt.figure(figsize=(14, 3.9 * len(rows)), layout="constrained")
    sub = fig.subfigures(len(rows), 1, squeeze=False)[:, 0]
    for sf, (r, p, pts) in zip(sub, rows):
        axes = sf.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.1]})
        sampled = regions.sampled_patterns(p.network, pts)
        rp.region_sizes(p, sampled=sampled, axes=axes[:2])
        rp.density_map(p, ax=axes[2])
        if p.dim == 2:
            axes[2].set_aspect(1)
        e = max(r.partitions)
        cp = next((c for c in r.checkpoints if c.epoch == e), None)
        if p.dim == 2:
            what = f"{len(p):,} exact regions"
        elif cp is not None and cp.n_pieces is not None and cp.n_regions is not None:
            what = (f"{len(p):,} exact pieces (intervals) with {cp.n_regions:,} distinct "
                    f"patterns (exact regions; {len(p) - cp.n_regions:,} pieces repeat a pattern)")
        else:
            what = f"{len(p):,} exact pieces (= regions)"
        sf.suptitle(f"{r.name} (seed {r.seed}) at epoch {e}: {what}; "
                    f"{sampled[0]:,} patterns among the {len(pts):,} training samples",
                    fontsize="medium")
    return _save(fig, path)


def partitions_gif(results, path, name="2d-raw", fps=2):
    """A GIF of the raw 2D run's exact partition at every checkpoint (a region
    keeps its colour while its activation pattern survives), from the saved
    partitions."""
    r = _run_with_partitions(results, name)
    return _rplot().animate(dict(sorted(r.partitions.items())), path, fps=fps,
                            points=_samples(r), points_kw={"s": 0.5, "c": "k"})


def kernel_split(results, path, checkpoint=-1):
    """The gradient cosine of neighbour pairs split into its kernel and residual
    parts (:class:`regions.study.results.KernelSplit`) at a checkpoint (default:
    the end), one column per 2D run (first seed). Top: the gradient cosine
    against the residual cosine of each 3x3-patch pair, coloured by the kernel
    similarity ``s_ij``; bottom: the densities of the three quantities."""
    plt = _plt()
    runs = [r for r in _one_seed(results) if r.dim == 2
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
    return _save(fig, path)


def _legend(ax, **kw):
    """A legend, when the panel has labelled artists."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", **kw)


def _same_init(runs):
    """``{name: [names of later runs with the same kernel at init]}``: runs that
    differ only in the optimiser start from the same network."""
    out, seen = {}, []
    for r in runs:
        lam = np.asarray(r.checkpoints[0].spectrum.eigenvalues, float)
        twin = next((n for n, v in seen if v.shape == lam.shape and np.allclose(v, lam,
                                                                                 rtol=1e-10)),
                    None)
        if twin is None:
            seen.append((r.name, lam))
            out[r.name] = []
        else:
            out[twin].append(r.name)
    return out


def spectral_coupling(results, path):
    """The trace NTK's spectrum against the region structure (first seed):
    the normalised eigenvalues at init, the band gains at init per run (runs
    that share their initial network drawn once), the high-band gain against
    the mean Hamming distance over every (run, checkpoint), and for full-batch
    GD runs the kernel's predicted against the measured residual energy ratio
    of every band at every epoch of the prediction horizons."""
    from .claims import top_band_gain

    plt = _plt()
    col = _colours(results)
    runs = [r for r in _one_seed(results) if r.checkpoints[0].spectrum is not None]
    if not runs:
        raise ValueError("no kernel spectra in the results")
    twins = _same_init(runs)
    shown = [r for r in runs if r.name in twins]

    def label(r):
        return r.name + (f" (= {', '.join(twins[r.name])} at init)" if twins[r.name] else "")

    fig, axes = plt.subplots(2, 2, figsize=(11.5, 8.5), layout="constrained")
    ax = axes[0, 0]
    for r in shown:
        lam = np.asarray(r.checkpoints[0].spectrum.eigenvalues, float)
        lam = lam[lam > lam[0] * 1e-10] / lam[0]
        ax.loglog(np.arange(1, lam.size + 1), lam, color=col[r.name], lw=1.4, label=label(r),
                  ls="-" if r.dim == 2 else "--")
    ax.set_xlabel("eigenvalue index k")
    ax.set_ylabel("λ_k / λ_1 (init)")
    ax.set_title("kernel spectrum at init (dashed: 1D)", fontsize="medium")
    ax.grid(alpha=0.3, lw=0.5, which="major")
    _legend(ax)
    ax = axes[0, 1]
    for r in (r for r in shown if r.dim == 2):
        gain = np.asarray(r.checkpoints[0].spectrum.band_gain, float)
        bands = r.band_energy.bands if r.band_energy is not None else None
        x = np.arange(1, gain.size + 1)
        ax.semilogy(x, gain, "-o", ms=4, color=col[r.name], label=label(r))
        if bands is not None and len(bands) == gain.size:
            ax.set_xticks(x, [f"({lo:g},{hi:g}]" if np.isfinite(hi) else f">{lo:g}"
                              for lo, hi in bands])
    ax.axhline(1, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("frequency band (cycles over the grid)")
    ax.set_ylabel("band gain (init; 1 = mean eigenvalue)")
    ax.set_title("how fast the init kernel learns each band (2D)", fontsize="medium")
    ax.grid(alpha=0.3, lw=0.5, which="major")
    _legend(ax)
    ax = axes[1, 0]
    from matplotlib.ticker import NullFormatter
    for r in (r for r in runs if r.dim == 2):
        pts = [(c.hamming_patch, top_band_gain(r, c)) for c in r.checkpoints
               if top_band_gain(r, c) is not None]
        if pts:
            h, gg = np.array(pts).T
            ax.plot(h, gg, "-o", ms=4, color=col[r.name], label=r.name, lw=0.8)
            ax.plot(h[:1], gg[:1], "s", ms=8, mfc="none", color=col[r.name])
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("mean Hamming distance over 3x3 patches (neurons)")
    ax.set_ylabel("gain of the highest band")
    ax.set_title("high-band gain against pattern distance (2D)\n(every analysed checkpoint; "
                 "square: init)", fontsize="medium")
    ax.grid(alpha=0.3, lw=0.5, which="major")
    _legend(ax)
    ax = axes[1, 1]
    drawn = False
    markers = "os^Dv<>p"
    for r in runs:
        if r.band_energy is None:
            continue
        meas_all, pred_all = [], []
        for c in r.checkpoints:
            s = c.spectrum
            if s is None or s.predicted_band is None:
                continue
            rows = np.flatnonzero(np.any(np.isfinite(s.predicted_band), axis=1))
            meas_all.append(np.asarray(r.band_energy.ratio, float)[rows])
            pred_all.append(np.asarray(s.predicted_band, float)[rows])
        if not meas_all:
            continue
        meas, pred = np.concatenate(meas_all), np.concatenate(pred_all)
        for b in range(meas.shape[1]):
            ax.plot(meas[:, b], pred[:, b], markers[b % len(markers)], ms=4, mfc="none",
                    color=col[r.name], alpha=0.7,
                    label=f"{r.name}" if b == 0 else None)
        drawn = True
    if drawn:
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, ls="--")
        ax.set_xlabel("measured residual energy ratio of a band")
        ax.set_ylabel("predicted by the kernel")
        ax.set_title("full-batch GD: every band (marker: o lowest, s, ^, D highest) at every\n"
                     "epoch of the horizons to the next checkpoint; dashed: equal",
                     fontsize="medium")
        ax.grid(alpha=0.3, lw=0.5)
        _legend(ax)
    else:
        ax.text(0.5, 0.5, "no full-batch GD run with a\nspectral prediction",
                ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.axis("off")
    return _save(fig, path)
