"""The per-sample speed against the region features (:mod:`regions.study.figures`)."""
from __future__ import annotations

import numpy as np

from .common import one_seed, pyplot, save


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
    plt = pyplot()
    runs, cps, keys = [], [], []
    for r in one_seed(results):
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
                    ax.text(0.5, 0.5, f"{f}:\nnot measured\nat this checkpoint",
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
        return save(fig, path)
