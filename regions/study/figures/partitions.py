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


def encoded_partitions(results, path, name=None, max_panels=3):
    """The curved exact regions of an encoded 2D run in the lower-left corner of the
    domain (the crop saved with the run, :data:`regions.study.analysis.CROP` of the
    side) at init, an early checkpoint and the end, faces coloured by activation
    pattern, samples overlaid; titles give the crop's faces and the whole square's.
    ``name``: the run (default: the first with such partitions); None, and nothing
    drawn, when no run has them."""
    from ...encoded import EncodedPartition2D
    from ..analysis import CROP

    draw = rplot().partition
    if name is None:
        name = next((r.name for r in results if r.partitions and isinstance(
            next(iter(r.partitions.values())), EncodedPartition2D)), None)
        if name is None:
            return None
    r = _run_with_partitions(results, name)
    epochs = sorted(r.partitions)
    pick = sorted({epochs[0], epochs[min(1, len(epochs) - 1)], epochs[-1]})[:max_panels]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pick), figsize=(4.2 * len(pick), 4.3), squeeze=False)
    for ax, e in zip(axes[0], pick):
        p = r.partitions[e]
        (x0, x1), (y0, y1) = p.domain.xr, p.domain.yr
        pts = r.coords[(r.coords[:, 0] <= x1) & (r.coords[:, 1] <= y1)]
        cp = next((c for c in r.checkpoints if c.epoch == e), None)
        whole = f" of {cp.n_pieces:,}" if cp is not None and cp.n_pieces else ""
        draw(p, ax=ax, color="pattern", points=pts, points_kw={"s": 2, "c": "k"},
             title=f"{name}, epoch {e}: {len(p):,}{whole} faces\nin [{x0:g}, {x1:g}] x "
                   f"[{y0:g}, {y1:g}] ({CROP:g} of each side)")
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
    the raw 2D run, one for the highest-L encoded 1D run (or the raw 1D run), and
    one for the highest-L encoded 2D run with exact sample faces (no whole
    partition: the faces holding the samples, against the pixel a grid resolves)."""
    import regions

    rp = rplot()
    one_d = sorted({r.name for r in results if r.dim == 1 and r.partitions},
                   key=lambda n: -int(n[5:]) if n[5:].isdigit() else 0)  # highest L first
    rows = [x for x in (_end_partition(results, ["2d-raw"]), _end_partition(results, one_d))
            if x is not None]
    faces = _end_faces(results)
    if not rows and faces is None:
        raise ValueError("no run with an exact partition (raw 2D, or 1D) or exact sample "
                         "faces (encoded 2D) in the results")
    plt = pyplot()
    n_rows = len(rows) + (faces is not None)
    fig = plt.figure(figsize=(14, 3.9 * n_rows), layout="constrained")
    sub = fig.subfigures(n_rows, 1, squeeze=False)[:, 0]
    if faces is not None:
        _faces_row(sub[-1], *faces)
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


def _end_faces(results):
    """(run, checkpoint) of the encoded 2D run of highest L whose last checkpoint has
    the exact features of the faces holding its samples, or None."""
    def level(r):
        digits = "".join(ch for ch in r.name.rsplit("pe", 1)[-1] if ch.isdigit())
        return int(digits) if "pe" in r.name and digits else 0
    runs = [r for r in results if r.dim == 2 and r.encoding is not None and r.checkpoints
            and r.checkpoints[-1].kinds.get("measure") == "exact"
            and r.checkpoints[-1].kinds.get("region") == "exact"]
    if not runs:
        return None
    r = max(runs, key=lambda r: (level(r), -r.seed))
    return r, r.checkpoints[-1]


def _faces_row(sf, r, c):
    """Histogram of the distinct faces' areas with the pixel's area marked, and the
    area of the face holding each pixel's sample as an image."""
    import numpy as np
    from matplotlib.colors import LogNorm

    area = np.asarray(c.features["measure"], dtype=np.float64)
    rid = np.asarray(c.features["region"])
    _, first = np.unique(rid, return_index=True)
    faces = area[first]
    H, W = r.grid_shape
    lo, hi = r.coord_range
    pixel = (hi - lo) ** 2 / (H * W)
    ax1, ax2 = sf.subplots(1, 2, gridspec_kw={"width_ratios": [2.1, 1.1]})
    edges = np.logspace(np.log10(faces.min()) - 0.05, np.log10(max(faces.max(), pixel)) + 0.05, 41)
    ax1.hist(faces, bins=edges, color="C0", alpha=0.85, label="exact faces holding samples")
    ax1.axvline(pixel, color="C1", lw=2, label="one pixel: the smallest size a grid's\n"
                                                 "sampled patterns can give")
    ax1.set_xscale("log")
    ax1.set_xlabel("face area")
    ax1.set_ylabel("faces")
    ax1.legend(fontsize="small", loc="upper left")
    ax1.set_title(f"median face {np.median(faces):.2g}, {pixel / np.median(faces):.0f}x smaller "
                  "than a pixel", fontsize="medium")
    img = area.reshape(H, W)
    m = ax2.imshow(img, origin="lower", extent=(lo, hi, lo, hi), cmap="magma_r",
                   norm=LogNorm(img.min(), img.max()), interpolation="nearest")
    sf.colorbar(m, ax=ax2, shrink=0.85, label="area of the sample's face")
    ax2.set_xlabel("$x_1$")
    ax2.set_ylabel("$x_2$")
    ax2.set_title("the face holding each pixel's sample", fontsize="medium")
    sf.suptitle(f"{r.name} (seed {r.seed}) at epoch {c.epoch}: {faces.size:,} distinct exact "
                f"faces hold the {rid.size:,} samples (regions.encoded.sample_faces; no whole "
                f"partition); {c.n_patterns_sampled:,} patterns among them", fontsize="medium")
