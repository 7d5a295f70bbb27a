"""What every figure of the study shares: matplotlib on the Agg backend, one
colour per experiment, the first seed's runs, panel grids, saving
(:mod:`regions.study.figures`)."""
from __future__ import annotations

def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def colours(results):
    names = list(dict.fromkeys(r.name for r in results))
    cmap = pyplot().get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def rplot():
    """:mod:`regions.plot`, imported after the Agg backend is chosen."""
    pyplot()
    import regions.plot

    return regions.plot


def save(fig, path):
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return str(path)


def one_seed(results):
    """One run per experiment: the first seed's."""
    seed = results[0].seed
    return [r for r in results if r.seed == seed]


def rows_by_dim(runs):
    """Runs grouped into rows, 2D signals first."""
    return [g for g in ([r for r in runs if r.dim == d] for d in (2, 1)) if g]


def panel_grid(rows, size, **kw):
    """A figure with one row of panels per group; unused panels hidden."""
    plt = pyplot()
    ncols = max(len(g) for g in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size[0] * ncols + 0.4, size[1] * len(rows)),
                             layout="constrained", squeeze=False, **kw)
    for row, g in zip(axes, rows):
        for ax in row[len(g):]:
            ax.set_visible(False)
    return fig, axes


def legend(ax, **kw):
    """A legend, when the panel has labelled artists."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", **kw)


def frame(ax, xlabel, ylabel, title):
    """Axis labels, a title, a light grid and the legend (when anything is
    labelled) of one panel."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, lw=0.5)
    legend(ax)
