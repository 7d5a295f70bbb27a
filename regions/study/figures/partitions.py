"""Figures of the exact partitions saved with the runs: the partition at three
checkpoints, its animation, and the region sizes and density (:mod:`regions.study.figures`)."""
from __future__ import annotations

from .common import pyplot, rplot, save


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
    draw = rplot().partition
    r = _run_with_partitions(results, name)
    epochs = sorted(r.partitions)
    pick = sorted({epochs[0], epochs[min(1, len(epochs) - 1)], epochs[-1]})[:max_panels]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pick), figsize=(4.2 * len(pick), 4.0), squeeze=False)
    pts = _samples(r)
    for ax, e in zip(axes[0], pick):
        p = r.partitions[e]
        draw(p, ax=ax, color="pattern", points=pts, title=f"{name}, epoch {e}: {len(p)} regions",
             points_kw={"s": 0.5, "c": "k"})
        ax.set_aspect(1)
    fig.tight_layout()
    return save(fig, path)


def partitions_gif(results, path, name="2d-raw", fps=2):
    """A GIF of the raw 2D run's exact partition at every checkpoint (a region
    keeps its colour while its activation pattern survives), from the saved
    partitions."""
    r = _run_with_partitions(results, name)
    return rplot().animate(dict(sorted(r.partitions.items())), path, fps=fps,
                            points=_samples(r), points_kw={"s": 0.5, "c": "k"})


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

    rp = rplot()
    one_d = sorted({r.name for r in results if r.dim == 1 and r.partitions},
                   key=lambda n: -int(n[5:]) if n[5:].isdigit() else 0)  # highest L first
    rows = [x for x in (_end_partition(results, ["2d-raw"]), _end_partition(results, one_d))
            if x is not None]
    if not rows:
        raise ValueError("no run with an exact partition (raw 2D, or 1D) in the results")
    plt = pyplot()
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
    return save(fig, path)
