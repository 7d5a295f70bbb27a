"""Pictures of one partition: 2D regions as one PolyCollection, 1D pieces under the output."""
from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
from matplotlib import patheffects
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import CenteredNorm, LogNorm, Normalize

from .colors import VALUE_CMAPS, pattern_colors

__all__ = ["partition", "region_values", "network_output"]

_VALUE_LABELS = {"area": "region area", "inradius": "inradius (largest inscribed disk)",
                 "slope": "slope norm |A|", "output": "network output at the centroid",
                 "length": "piece length", "measure": "region measure"}


def region_values(p, what, output=0):
    """A named per-region quantity of a partition as a ``(len(p),)`` float64 array.

    ``what`` is ``"area"`` (or ``"length"``: ``p.measure``), ``"inradius"``,
    ``"slope"`` (Frobenius norm of the region's affine map ``A[r]``) or
    ``"output"`` (the output ``output`` at the region's centroid, 2D; at the
    piece's midpoint, 1D).
    """
    if what in ("area", "length", "measure"):
        return np.asarray(p.measure, dtype=np.float64)
    if what == "inradius":
        if p.dim == 1:
            return 0.5 * np.asarray(p.measure, dtype=np.float64)
        return np.asarray(p.inradius, dtype=np.float64)
    A, c = p.affine
    if what == "slope":
        return np.linalg.norm(A.reshape(A.shape[0], -1), axis=1)
    if what == "output":
        if p.dim == 2 and getattr(p, "face_offsets", None) is None:   # curved faces
            import shapely

            inside = shapely.point_on_surface(np.asarray(p.polygons(), dtype=object))
            return p.evaluate(shapely.get_coordinates(inside))[:, output]
        if p.dim == 2:
            return np.einsum("rd,rd->r", A[:, output, :], np.asarray(p.centroids)) + c[:, output]
        mid = np.asarray(p.intervals).mean(axis=1)
        return network_output(p, mid, output)
    raise ValueError(f"unknown region value {what!r}; expected 'pattern', 'area', 'inradius', "
                     "'slope', 'output' or an array with one value per region")


def network_output(p, t, output=0):
    """The network's output ``output`` at domain coordinates ``t`` (1D or 2D), float64."""
    x = p.domain.to_input(np.asarray(t, dtype=np.float64))
    net = p.network
    if getattr(net, "encoding", None) is not None:
        x = net.encoding.encode_numpy(x)
    return net.forward(x)[:, output]


def _values_for(p, color, output):
    """-> (values, key, label): the per-region values a colouring asks for."""
    if isinstance(color, str):
        values = region_values(p, color, output)
        key = "length" if (p.dim == 1 and color in ("area", "measure")) else color
        return values, key, _VALUE_LABELS.get(key, key)
    values = np.asarray(color, dtype=np.float64).ravel()
    if values.shape[0] != len(p):
        raise ValueError(f"color has {values.shape[0]} values but the partition has "
                         f"{len(p)} regions; pass one value per region")
    return values, "values", None


def _value_scale(values, key, cmap=None, norm=None):
    """-> (cmap, norm) for per-region values: log for sizes, centred at 0 for the output."""
    cmap = plt.get_cmap(cmap or VALUE_CMAPS.get(key, "viridis"))
    if norm is None:
        finite = values[np.isfinite(values)]
        if key in ("area", "inradius", "length", "measure") and finite.size and finite.min() > 0:
            # sizes span decades; slivers at the tolerance would stretch the scale to
            # 1e-16, so the scale starts at the 2nd percentile (the colour bar says so)
            norm = LogNorm(max(finite.min(), np.quantile(finite, 0.02)), finite.max())
        elif key == "output":
            norm = CenteredNorm(0.0)                      # sign of the output matters
        else:
            norm = Normalize()
        norm.autoscale_None(finite)
    return cmap, norm


def _resolve_colors(p, color, cmap, norm, output):
    """-> (facecolors or None, values or None, cmap, norm, label)."""
    if isinstance(color, str) and color == "pattern":
        return pattern_colors(p.packed_patterns), None, None, None, None
    values, key, label = _values_for(p, color, output)
    cmap, norm = _value_scale(values, key, cmap, norm)
    return None, values, cmap, norm, label


def _auto_linewidth(n):
    # ~0.6 pt for a few hundred regions, thinning to 0.1 pt at 10^5 (still visible
    # as a dark hairline at 150 dpi)
    return float(np.clip(0.6 * np.sqrt(300.0 / max(n, 1)), 0.1, 0.6))


def _domain_limits(p):
    b = getattr(p.domain, "bounds", None)
    if b is not None and len(b) == 4:
        return (b[0], b[2]), (b[1], b[3])
    v = np.asarray(p.vertices)
    return (v[:, 0].min(), v[:, 0].max()), (v[:, 1].min(), v[:, 1].max())


def _polygons(p):
    """CSR faces -> list of (m_i, 2) vertex arrays (no Python loop over regions)."""
    v = np.asarray(p.vertices)[np.asarray(p.face_vertices)]
    return np.split(v, np.asarray(p.face_offsets)[1:-1])


def _face_collection(p, **kw):
    """One collection of the faces: a PolyCollection of the CSR faces, or for
    curved faces (shapely polygons within ``p.tol``, holes included) a
    PathCollection of compound paths, so that a face around an oval is drawn
    with its hole."""
    if getattr(p, "face_offsets", None) is not None:
        return PolyCollection(_polygons(p), closed=True, **kw)
    from matplotlib.collections import PathCollection
    from matplotlib.path import Path
    from shapely.geometry.polygon import orient

    paths = []
    for g in p.polygons():
        # exterior counter-clockwise, holes clockwise: holes stay unfilled under
        # either fill rule
        g = orient(g, 1.0)
        rings = [np.asarray(g.exterior.coords)] + [np.asarray(r.coords) for r in g.interiors]
        codes = [np.r_[Path.MOVETO, np.full(len(r) - 2, Path.LINETO), Path.CLOSEPOLY]
                 for r in rings]
        paths.append(Path(np.concatenate(rings), np.concatenate(codes).astype(Path.code_type)))
    return PathCollection(paths, **kw)


def partition(p, ax=None, color="pattern", points=None, level_set=None, edgecolor=None,
              linewidth=None, cmap=None, colorbar=True, output=0, norm=None, signal=None,
              title=True, breakpoints=None, points_kw=None):
    """Draw a partition: 2D regions with their edges, or 1D pieces under the output.

    Parameters
    ----------
    p : Partition
        A 2D partition (``p.dim == 2``) or a 1D one (raw or encoded).
    ax : matplotlib Axes, optional
        Where to draw; a new figure when omitted. The figure is ``ax.figure``.
        For an encoded 1D partition a pair ``(ax, row_ax)`` puts the
        pattern-id rows on ``row_ax`` (otherwise a strip is taken below ``ax``);
        the rows are drawn only when some pattern owns several pieces.
    color : "pattern", "area", "inradius", "slope", "output" or array
        ``"pattern"`` fills each region with a colour hashed from its activation
        bits (:func:`regions.plot.pattern_colors`): the same pattern keeps its
        colour in every partition of the same network architecture, e.g. across
        training checkpoints. Any other choice colours by a per-region value
        with a colour bar (log scale for sizes, centred at 0 for the output).
    points : (m, 2) array (2D) or (m,) array (1D), optional
        Sample points to overlay, in domain coordinates (1D: a rug of ticks).
    level_set : float or True, optional
        Overlay the level set ``output == level_set`` (``True`` means 0: the
        decision boundary) as one LineCollection (2D) or markers (1D).
    edgecolor, linewidth : optional
        Region edges (2D); by default a dark hairline whose width shrinks with
        the number of regions (0.1 pt at 10^5).
    cmap, norm : optional
        Colour map and normalisation for value colouring.
    colorbar : bool
        Add a colour bar when colouring by value.
    output : int
        Which network output ``"output"`` colouring and the level set use.
    signal : (t, y), optional
        1D only: a target signal drawn under the network output.
    title : bool or str
        ``True``: the number of regions; a string: that title.
    breakpoints : bool, optional
        1D only: draw a thin line at every breakpoint (default: when at most
        100 pieces; the coloured pieces show them otherwise).

    Returns
    -------
    matplotlib Axes (the main axes; ``ax.figure`` is the figure).

    Examples
    --------
    >>> ax = regions.plot.partition(p, level_set=0.0)          # doctest: +SKIP
    >>> ax.figure.savefig("partition.png", dpi=150)             # doctest: +SKIP
    """
    if p.dim == 2:
        return _partition_2d(p, ax, color, points, level_set, edgecolor, linewidth, cmap,
                             colorbar, output, norm, title, points_kw)
    if p.dim == 1:
        return _partition_1d(p, ax, color, signal, level_set, cmap, colorbar, output, norm,
                             title, breakpoints, points)
    raise ValueError(f"can only draw 1D or 2D partitions, got dim={p.dim!r}")


def _partition_2d(p, ax, color, points, level_set, edgecolor, linewidth, cmap, colorbar,
                  output, norm, title, points_kw):
    if ax is None:
        by_value = not (isinstance(color, str) and color == "pattern")
        (x0, x1), (y0, y1) = _domain_limits(p)
        # the figure takes the domain's shape, so a colour bar matches the plot's height
        width = 5.2 if (x1 - x0) >= (y1 - y0) else 5.2 * (x1 - x0) / (y1 - y0)
        height = float(np.clip(width * (y1 - y0) / (x1 - x0), 1.8, 6.5)) + 0.7
        width = max(width, 2.5) + (1.2 if (by_value and colorbar) else 0.4)
        _, ax = plt.subplots(figsize=(width, height), layout="constrained")
    n = len(p)
    faces, values, cmap, norm, label = _resolve_colors(p, color, cmap, norm, output)
    lw = _auto_linewidth(n) if linewidth is None else linewidth
    if edgecolor is not None:
        ec = edgecolor
    elif faces is not None or n <= 2000:
        ec = (0.08, 0.08, 0.10, 0.85)
    else:   # many regions coloured by value: faint edges, or they hide the values
        ec = (0.08, 0.08, 0.10, 0.25)
    pc = _face_collection(p, edgecolors=ec, linewidths=lw, antialiaseds=True)
    if faces is not None:
        pc.set_facecolor(faces)
    else:
        pc.set_array(values)
        pc.set_cmap(cmap)
        pc.set_norm(norm)
    pc.set_gid("regions")
    # in PDF/SVG, 10^4+ polygons become a huge file that viewers choke on: rasterise them
    # (the level set, points and text stay vector)
    pc.set_rasterized(n > 20000)
    ax.add_collection(pc)
    (x0, x1), (y0, y1) = _domain_limits(p)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    names = ("u", "v") if not getattr(p.domain, "is_identity", True) else ("$x_1$", "$x_2$")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if faces is None and colorbar:
        below = values is not None and np.nanmin(values) < norm.vmin
        ax.figure.colorbar(pc, ax=ax, label=label, shrink=0.85,
                           extend="min" if below else "neither")
    if points is not None:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        size = 6.0 if len(pts) < 500 else 2.5 if len(pts) < 2000 else 1.0
        kw = dict(s=size, c="k", linewidths=0, zorder=3)
        kw.update(points_kw or {})
        ax.scatter(pts[:, 0], pts[:, 1], **kw)
    if level_set is not None and level_set is not False:
        value = 0.0 if level_set is True else float(level_set)
        lines = p.level_set(value, output)
        if hasattr(lines, "geoms"):       # curved faces: shapely polylines within p.tol
            segs = [np.asarray(g.coords) for g in lines.geoms]
        else:
            segs = np.asarray(lines, dtype=np.float64).reshape(-1, 2, 2)
        lc = LineCollection(segs, colors="k", linewidths=1.6, zorder=4,
                            path_effects=[patheffects.withStroke(linewidth=3.4, foreground="w")])
        lc.set_gid("level_set")
        ax.add_collection(lc)
    if title is True:
        ax.set_title(f"{n:,} regions")
    elif title:
        ax.set_title(title)
    return ax


def _x_label(p):
    return "t (along the segment)" if hasattr(p.domain, "p0") else "x"


def _partition_1d(p, ax, color, signal, level_set, cmap, colorbar, output, norm, title,
                  breakpoints, points=None):
    pattern_id = getattr(p, "pattern_id", None)
    # the rows of pattern ids say something only where a pattern owns several
    # pieces; with one piece per pattern they would draw a plain diagonal
    repeats = pattern_id is not None and len(np.unique(pattern_id)) < len(p)
    grouped = repeats
    row = None
    if isinstance(ax, (tuple, list, np.ndarray)):    # (output axes, pattern-row axes)
        ax, row = ax[0], (ax[1] if grouped and len(ax) > 1 else None)
    if ax is None and grouped:
        _, (ax, row) = plt.subplots(2, 1, figsize=(8, 5.0), sharex=True, layout="constrained",
                                    gridspec_kw=dict(height_ratios=(2.2, 1.0)))
    elif ax is None:
        _, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
    n = len(p)
    iv = np.asarray(p.intervals, dtype=np.float64)
    lo, hi = float(iv[0, 0]), float(iv[-1, 1])
    faces, values, cmap, norm, label = _resolve_colors(p, color, cmap, norm, output)
    if faces is None:
        faces = cmap(norm(values))
    # pieces as rectangles spanning the axes' height (x in data, y in axes coordinates)
    rects = np.stack([np.stack([iv[:, 0], np.zeros(n)], 1), np.stack([iv[:, 1], np.zeros(n)], 1),
                      np.stack([iv[:, 1], np.ones(n)], 1), np.stack([iv[:, 0], np.ones(n)], 1)], 1)
    shade = faces.copy()
    shade[:, 3] = 0.55
    pc = PolyCollection(rects, facecolors=shade, edgecolors="none",
                        transform=ax.get_xaxis_transform(), zorder=0)
    pc.set_gid("pieces")
    ax.add_collection(pc)
    bps = np.asarray(getattr(p, "breakpoints", iv[1:, 0]), dtype=np.float64)
    if breakpoints is None:
        breakpoints = n <= 100
    if breakpoints and bps.size:
        ax.vlines(bps, 0, 1, transform=ax.get_xaxis_transform(), colors="0.25",
                  linewidths=0.5, alpha=0.6, zorder=1)
    # the output: exact at the breakpoints plus a dense grid (curved between breakpoints when
    # the network is encoded)
    t = np.union1d(np.linspace(lo, hi, 4000), bps)
    y = network_output(p, t, output)
    if signal is not None:
        ts, ys = (np.asarray(a, dtype=np.float64).ravel() for a in signal)
        ax.plot(ts, ys, color="0.45", lw=0.9, label="signal", zorder=2)
    ax.plot(t, y, color="k", lw=1.3, label="network output", zorder=3)
    if level_set is not None and level_set is not False:
        if not hasattr(p, "level_set"):
            raise ValueError(f"{type(p).__name__} has no level_set yet: draw it without "
                             "level_set=, or with a contour of p.evaluate on a grid")
        value = 0.0 if level_set is True else float(level_set)
        roots = np.asarray(p.level_set(value, output), dtype=np.float64).ravel()
        if roots.size:
            ax.plot(roots, np.full(roots.shape, value), "o", ms=4, mfc="w", mec="k", zorder=4,
                    label=f"output = {value:g}")
    if points is not None:       # sample positions as a rug along the bottom
        pts = np.asarray(points, dtype=np.float64).ravel()
        ax.plot(pts, np.full(pts.shape, 0.02), "|", color="k", ms=6, mew=0.6, alpha=0.7,
                transform=ax.get_xaxis_transform(), zorder=4, label="samples")
    ax.set_xlim(lo, hi)
    ax.set_ylabel("output" if p.network.output_dim == 1 else f"output {output}")
    if len(ax.get_legend_handles_labels()[0]) > 1:
        ax.legend(loc="best", fontsize="small", framealpha=0.85)
    if values is not None and colorbar:
        from matplotlib.cm import ScalarMappable
        ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label, pad=0.01)
    if grouped:
        pid = np.asarray(pattern_id)
        n_patterns = int(pid.max()) + 1 if pid.size else 0
        ax.tick_params(labelbottom=False)
        if row is None:   # the caller's axes: take a strip below it
            from mpl_toolkits.axes_grid1 import make_axes_locatable
            row = make_axes_locatable(ax).append_axes("bottom", size="45%", pad=0.08, sharex=ax)
        segs = np.stack([np.stack([iv[:, 0], pid], 1), np.stack([iv[:, 1], pid], 1)], 1)
        dark = faces.copy()
        dark[:, :3] *= 0.78            # the pastel fills are too faint as thin bars on white
        dark[:, 3] = 1.0
        lc = LineCollection(segs, colors=dark, linewidths=3.5 if n_patterns < 60 else 2.0,
                            capstyle="butt")
        lc.set_gid("pattern_rows")
        row.add_collection(lc)
        # a tick at each piece's centre, so pieces shorter than a pixel still show
        row.scatter(iv.mean(axis=1), pid, s=14 if n < 300 else 5, c=dark, marker="|",
                    linewidths=0.8, zorder=3)
        row.set_ylim(-0.5 - 0.02 * n_patterns, n_patterns - 0.5 + 0.02 * n_patterns)
        row.set_ylabel("pattern id")
        row.set_xlabel(_x_label(p))
        row.grid(axis="y", lw=0.3, alpha=0.5)
        ax._regions_pattern_axes = row
    else:
        ax.set_xlabel(_x_label(p))
    if title is True:
        if grouped:
            ax.set_title(f"{n:,} pieces, {n_patterns:,} distinct patterns", fontsize="medium")
            row.set_title("one row per pattern: pieces on the same row share it",
                          fontsize="small", loc="left")
        elif pattern_id is not None:
            ax.set_title(f"{n:,} pieces, each with a pattern of its own", fontsize="medium")
        else:
            ax.set_title(f"{n:,} pieces")
    elif title:
        ax.set_title(title)
    return ax
