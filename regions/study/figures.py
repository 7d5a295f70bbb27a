"""Simple figures for the study report (matplotlib, Agg backend).

Each function takes the list of job results of :func:`regions.study.run_study`
(one dict per experiment and seed) and a PNG path, draws one figure and
returns the path. Runs are coloured by experiment; seeds share the colour.
The nicer figures of :mod:`regions.plot` may replace these later.
"""
from __future__ import annotations

import numpy as np

__all__ = ["partitions", "region_count", "binned_speed", "residual_energy", "confusion_densities",
           "prediction_scatter", "boundary_distance", "loss_curves"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _colours(results):
    names = list(dict.fromkeys(r["name"] for r in results))
    cmap = _plt().get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


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
            if r["dim"] != dim:
                continue
            lab = r["name"] if r["name"] not in seen else None
            seen.add(r["name"])
            ax.semilogy(r["record_epochs"], r["mean_loss"], color=col[r["name"]], label=lab, lw=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean training loss (MSE)")
        ax.set_title(f"{dim}D signal")
        if seen:
            ax.legend(fontsize=8)
    return _save(fig, path)


def region_count(results, path):
    """Exact region count (solid) and distinct sampled patterns (dashed) over training."""
    plt = _plt()
    col = _colours(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for dim, ax in zip((2, 1), axes):
        seen = set()
        for r in results:
            if r["dim"] != dim:
                continue
            ep = [c["epoch"] for c in r["checkpoints"]]
            exact = [c["n_regions"] if c["n_regions"] is not None else np.nan
                     for c in r["checkpoints"]]
            sampled = [c["n_patterns_sampled"] for c in r["checkpoints"]]
            lab = r["name"] not in seen
            seen.add(r["name"])
            if np.any(np.isfinite(np.asarray(exact, float))):
                ax.plot(ep, exact, "-o", color=col[r["name"]], ms=3,
                        label=f"{r['name']} exact" if lab else None)
            ax.plot(ep, sampled, "--", color=col[r["name"]],
                    label=f"{r['name']} sampled" if lab else None)
        if seen:
            n = next(r["n"] for r in results if r["dim"] == dim)
            ax.axhline(n, color="grey", lw=0.8, ls=":", label="samples")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        ax.set_xlabel("epoch")
        ax.set_ylabel("regions (exact) / patterns (sampled)")
        ax.set_title(f"{dim}D: region count over training")
    return _save(fig, path)


def binned_speed(results, path, features=("occupancy", "hamming", "crossings", "dist_boundary"),
                 checkpoint=1):
    """Mean per-sample speed after a checkpoint in quantile bins of each feature,
    as a z-score within the run (runs learn at very different overall rates)."""
    plt = _plt()
    col = _colours(results)
    fig, axes = plt.subplots(1, len(features), figsize=(3.3 * len(features), 3.2), squeeze=False)
    for ax, feat in zip(axes[0], features):
        for r in results:
            cps = r["checkpoints"]
            c = cps[min(checkpoint, len(cps) - 1)]
            b = c.get("binned", {}).get(feat)
            if b is None or len(b["mean"]) == 0:
                continue
            sp = np.asarray(c.get("speeds", {}).get(c.get("binned_speed", "rate"), []), float)
            sp = sp[np.isfinite(sp)]
            mu, sd = (sp.mean(), sp.std()) if sp.size > 1 and sp.std() > 0 else (0.0, 1.0)
            ax.errorbar(b["centre"], (b["mean"] - mu) / sd, yerr=b["sem"] / sd,
                        color=col[r["name"]], ms=3,
                        fmt="-o", lw=1, capsize=2, label=f"{r['name']} s{r['seed']} @{c['epoch']}")
        ax.set_xlabel(feat)
        if feat in ("occupancy", "dist_boundary", "measure"):
            ax.set_xscale("log")
        ax.set_ylabel("speed after checkpoint (z-score in run)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"speed vs {feat}", fontsize=9)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)


def residual_energy(results, path):
    """Residual energy ratio per frequency band over training, one panel per run."""
    plt = _plt()
    rs = [r for r in results if "residual_energy" in r and r["seed"] == results[0]["seed"]]
    if not rs:
        rs = [r for r in results if "residual_energy" in r]
    n = max(1, len(rs))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    for ax, r in zip(axes[0], rs):
        re = r["residual_energy"]
        cmap = plt.get_cmap("viridis")
        B = re["energy"].shape[1]
        for b in range(B):
            lo, hi = re["bands"][b]
            lab = f"({lo:g}, {hi:g}]" if np.isfinite(hi) else f"> {lo:g}"
            ax.plot(re["epochs"], re["energy"][:, b], color=cmap(b / max(B - 1, 1)), label=lab)
        ax.set_ylim(0, 1.25)
        ax.set_title(f"{r['name']} (seed {r['seed']})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6, title="cycles", title_fontsize=6)
    axes[0][0].set_ylabel("residual energy ratio E_b")
    fig.tight_layout()
    return _save(fig, path)


def confusion_densities(results, path, checkpoint=-1):
    """Densities of gradient cosines for neighbour and distant pairs."""
    plt = _plt()
    rs = [r for r in results if r["seed"] == results[0]["seed"]
          and "confusion" in r["checkpoints"][checkpoint]]
    n = max(1, len(rs))
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 2.8), squeeze=False)
    bins = np.linspace(-1, 1, 41)
    for ax, r in zip(axes[0], rs):
        c = r["checkpoints"][checkpoint]
        for key, colr in (("neighbour", "C3"), ("distant", "C0")):
            v = c["confusion"][key]
            v = v[np.isfinite(v)]
            ax.hist(v, bins=bins, density=True, histtype="step", color=colr, label=key)
        ax.axvline(-0.5, color="grey", lw=0.7, ls=":")
        ax.set_title(f"{r['name']} @ epoch {c['epoch']}", fontsize=9)
        ax.set_xlabel("gradient cosine")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    fig.tight_layout()
    return _save(fig, path)


def prediction_scatter(results, path, checkpoint=1):
    """Predicted first-order loss change against the observed change."""
    plt = _plt()
    rs = [r for r in results if r["seed"] == results[0]["seed"]
          and "observed_change" in r["checkpoints"][min(checkpoint, len(r["checkpoints"]) - 1)]]
    n = max(1, len(rs))
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 2.9), squeeze=False)
    for ax, r in zip(axes[0], rs):
        c = r["checkpoints"][min(checkpoint, len(r["checkpoints"]) - 1)]
        p = sum(c["predicted"].values())
        o = c["observed_change"]
        ax.scatter(p, o, s=2, alpha=0.4, color="C2", rasterized=True)
        rho = c["agreement"]["spearman"]["rho"]
        ax.set_title(f"{r['name']} @ {c['epoch']}: rho={rho:.2f}", fontsize=9)
        ax.set_xlabel("predicted d loss (GD, 1 step)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
    axes[0][0].set_ylabel("observed d loss (next record)")
    fig.tight_layout()
    return _save(fig, path)


def boundary_distance(results, path):
    """Mean exact distance to the region boundary and mean chord between
    boundaries along grid lines, over training."""
    plt = _plt()
    col = _colours(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    seen = set()
    for r in results:
        ep = [c["epoch"] for c in r["checkpoints"]]
        d = [c.get("mean_dist_boundary") for c in r["checkpoints"]]
        ch = [c.get("mean_chord") for c in r["checkpoints"]]
        lab = r["name"] if r["name"] not in seen else None
        seen.add(r["name"])
        if any(v is not None for v in d):
            axes[0].plot(ep, [np.nan if v is None else v for v in d], "-o", ms=3,
                         color=col[r["name"]], label=lab)
        axes[1].plot(ep, [np.nan if v is None else v for v in ch], "-o", ms=3,
                     color=col[r["name"]], label=lab)
    axes[0].set_ylabel("mean exact distance to boundary")
    axes[1].set_ylabel("grid step / mean crossings per step")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def partitions(results, path, name="2d-raw", max_panels=3):
    """The exact partition of a raw 2D run at init, an early checkpoint and the
    end (regions coloured by activation pattern, samples overlaid), drawn with
    :func:`regions.plot.partition`."""
    import regions
    from regions.plot import partition as draw

    r = next((r for r in results if r["name"] == name and r.get("state_dicts")), None)
    if r is None:
        raise ValueError(f"no raw 2D run named {name!r} with checkpoints in the results")
    epochs = sorted(r["state_dicts"])
    pick = sorted({epochs[0], epochs[min(1, len(epochs) - 1)], epochs[-1]})[:max_panels]
    plt = _plt()
    fig, axes = plt.subplots(1, len(pick), figsize=(4.2 * len(pick), 4.0), squeeze=False)
    H, W = r["grid_shape"]
    lo, hi = r.get("coord_range", (0.0, 1.0))
    xs = lo + (hi - lo) * np.arange(W) / W
    ys = lo + (hi - lo) * np.arange(H) / H
    X, Y = np.meshgrid(xs, ys)
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    for ax, e in zip(axes[0], pick):
        p = regions.partition(r["state_dicts"][e], ((lo, hi), (lo, hi)))
        draw(p, ax=ax, color="pattern", points=pts, title=f"{name}, epoch {e}: {len(p)} regions",
             points_kw={"s": 0.5, "c": "k"})
        ax.set_aspect(1)
    fig.tight_layout()
    return _save(fig, path)
