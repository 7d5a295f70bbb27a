"""Region features of every training sample at one checkpoint.

:func:`sample_features` returns a :class:`Features` table: named ``(N,)``
arrays, one value per sample, each labelled ``'exact'`` (computed from the
exact partition or exactly from the network) or ``'sampled'`` (from the
patterns at the training samples only: a lower bound on what it counts).

Raw-coordinate models (no encoding), 1D or 2D, all exact:

=====================  ==========================================================
``region``             index of the sample's region in the exact partition
``measure``            area (2D) or length (1D) of that region
``inradius``           radius of the largest disk (interval) inside the region
``occupancy``          number of training samples in the same region
``density``            number of regions meeting the disk/interval of radius
                       ``radius`` around the sample
``dist_boundary``      distance to the nearest neuron boundary of the region:
                       ``min_k |z_k(x)| / |grad_x z_k(x)|`` over all neurons with
                       the *local* gradient (all layers); equals the distance to
                       the boundary of the (unclipped) convex region
``dist_polygon``       distance to the boundary of the region clipped to the
                       domain (2D: shapely distance to the polygon's boundary)
``dist_layer1``        ``min_k |z_1k| / |W_1[k]|``: the first layer's own lines
``dist_paper``         the authors' ``min_{l,k} |z_lk| / |W_l[k]|`` (exact for layer
                       1 only; kept for comparison)
``hamming``            mean Hamming distance of the sample's pattern to those of its
                       grid neighbours (4-neighbours in 2D, 2 in 1D)
``hamming_l{i}``       the same restricted to hidden layer ``i`` (1-based)
``crossings``          mean number of region boundaries crossed by the straight
                       segments to the grid neighbours (exact walk along the segment)
=====================  ==========================================================

Encoded models (a :class:`regions.encoding.Encoding` in front):

* 1D, exact from the encoded 1D partition: ``region`` is the pattern id (pieces
  with equal patterns form one region, possibly disconnected), ``measure`` its
  total length, ``piece_length`` the sample's connected piece, ``inradius`` the
  largest half-length over the region's pieces, ``occupancy``, ``density``
  (pieces meeting the interval), ``dist_boundary`` (to the nearest breakpoint),
  ``hamming*`` and ``crossings`` (breakpoints between neighbouring samples).
* 2D: ``hamming*`` (exact: patterns at the samples), ``crossings`` (exact
  crossings along grid rows and columns, :func:`regions.grid_crossings`) and,
  labelled ``'sampled'``: ``region`` / ``occupancy`` / ``measure`` from the
  distinct patterns at the samples, ``density`` (distinct patterns in the
  window of radius ``radius``).

The geometry comes from :mod:`regions.geometry` (``dist_*`` from
:func:`regions.geometry.boundary_distances`, raw ``crossings`` from
:func:`regions.geometry.segment_crossings`) and :func:`regions.grid_crossings`.
"""
from __future__ import annotations

import csv

import numpy as np

from ..geometry import boundary_distances, segment_crossings
from ..network import as_network
from .grid import adjacent_pairs

__all__ = ["Features", "sample_features", "default_domain"]

EXACT, SAMPLED = "exact", "sampled"


class Features(dict):
    """Named ``(N,)`` arrays with a kind per name (``'exact'`` or ``'sampled'``).

    A plain dict (``features['occupancy']``) with two extra attributes:
    ``kind`` (name -> kind) and ``meta`` (free-form: radius, region count ...).
    """

    def __init__(self, n):
        super().__init__()
        self.n = int(n)
        self.kind = {}
        self.doc = {}
        self.meta = {}

    def add(self, name, values, kind=EXACT, doc=""):
        values = np.asarray(values)
        if values.shape != (self.n,):
            raise ValueError(f"feature {name!r} has shape {values.shape}, expected ({self.n},)")
        if kind not in (EXACT, SAMPLED):
            raise ValueError(f"feature kind must be 'exact' or 'sampled', got {kind!r}")
        self[name] = values
        self.kind[name] = kind
        self.doc[name] = doc

    @property
    def names(self):
        return list(self.keys())

    def exact(self):
        return [k for k in self if self.kind[k] == EXACT]

    def sampled(self):
        return [k for k in self if self.kind[k] == SAMPLED]

    def to_arrays(self, prefix=""):
        """``{prefix + name: array}`` plus ``{prefix + '_kinds': ...}`` for ``np.savez``."""
        out = {prefix + k: v for k, v in self.items()}
        out[prefix + "_names"] = np.array(self.names)
        out[prefix + "_kinds"] = np.array([self.kind[k] for k in self.names])
        return out

    def to_csv(self, path):
        names = self.names
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            w.writerow([self.kind[k] for k in names])
            cols = [self[k] for k in names]
            for i in range(self.n):
                w.writerow([c[i] for c in cols])


# ----------------------------------------------------------------------------
# grid helpers (the grid itself: regions.study.grid)

def _mean_over_pairs(values, pairs, n):
    """Mean of a per-pair value over the pairs touching each sample."""
    s = np.bincount(pairs[:, 0], values, n) + np.bincount(pairs[:, 1], values, n)
    c = np.bincount(pairs[:, 0], None, n) + np.bincount(pairs[:, 1], None, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def default_domain(coords, grid_shape=None):
    """A box (2D) or interval (1D) around the samples: their range padded by half a
    grid step on each side (by 1e-9 of the span without a grid)."""
    coords = np.asarray(coords, dtype=np.float64)
    lo, hi = coords.min(0), coords.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    if grid_shape is not None:
        shape = tuple(grid_shape)
        # coords index order: 2D grids are (H, W) with x = column, y = row
        counts = np.array(shape[::-1] if len(shape) == 2 else shape, dtype=float)
        pad = 0.5 * span / np.maximum(counts - 1, 1)
    else:
        pad = 1e-9 * span
    lo, hi = lo - pad, hi + pad
    if coords.shape[1] == 1:
        return (float(lo[0]), float(hi[0]))
    return ((float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])))


def _grid_step(coords, grid_shape):
    pairs = adjacent_pairs(grid_shape)
    steps = np.linalg.norm(coords[pairs[:, 1]] - coords[pairs[:, 0]], axis=1)
    return float(np.min(steps[steps > 0])) if np.any(steps > 0) else 1.0


# ----------------------------------------------------------------------------
# the table

def sample_features(model, coords, grid_shape=None, domain=None, radius=None,
                    partition=None, layers=True, encoded_crossings=True):
    """Region features of every sample at one checkpoint (see the module docstring).

    Parameters
    ----------
    model : torch model, state_dict, (W, b) list or regions.Network
        At the checkpoint. An encoding in front makes it an encoded model.
    coords : (N, d) array, d = 1 or 2
        The training samples' coordinates (before any encoding), in the
        domain's coordinates; row-major grid order when ``grid_shape`` is given.
    grid_shape : (n,) or (H, W), optional
        Needed for the neighbour features (Hamming, crossings).
    domain : optional
        Where the partition is computed (default :func:`default_domain`).
    radius : float, optional
        Radius of the disk/interval for ``density`` (default: one grid step).
    partition : regions.Partition or False, optional
        A partition already computed for this model and domain (reused);
        ``False`` skips the partition-based features (network-exact ones stay).
    layers : bool
        Add per-layer Hamming distances.
    encoded_crossings : bool
        For encoded 2D models, compute the exact crossings along rows and
        columns (:func:`regions.grid_crossings`; the costly part, seconds to
        tens of seconds for 32x32 pixels at L = 5).

    Returns
    -------
    Features
        ``meta`` holds ``radius``, ``n_regions`` (exact count in the domain,
        when known), ``n_patterns_sampled`` and ``domain``; for raw models
        also ``layer_distances``: ``{'local': ..., 'weight_norm': ...}``, the
        ``(N, n_layers)`` per-layer distances of
        :func:`regions.geometry.boundary_distances` by either method.
    """
    net = as_network(model)
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 1:
        coords = coords[:, None]
    if coords.ndim != 2 or coords.shape[1] not in (1, 2):
        raise ValueError(f"coords must be (N, 1) or (N, 2), got shape {coords.shape}")
    if not np.all(np.isfinite(coords)):
        raise ValueError("coords contain NaN or infinite values")
    n, dim = coords.shape
    if dim != net.input_dim:
        raise ValueError(f"coords have {dim} columns but the model takes {net.input_dim}-"
                         "dimensional coordinates" + (" (before its encoding)" if net.encoding
                                                       is not None else ""))
    if grid_shape is not None:
        grid_shape = tuple(int(s) for s in np.atleast_1d(grid_shape))
        if int(np.prod(grid_shape)) != n or len(grid_shape) != dim:
            raise ValueError(f"grid_shape {grid_shape} does not match {n} samples in {dim}D")
    if domain is None:
        domain = default_domain(coords, grid_shape)
    if radius is None:
        radius = _grid_step(coords, grid_shape) if grid_shape is not None else 0.01
    radius = float(radius)
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")

    f = Features(n)
    f.meta.update(radius=radius, domain=domain, dim=dim,
                  encoded=net.encoding is not None)
    x_in = net.encoding.encode_numpy(coords) if net.encoding is not None else coords
    pats = net.patterns(x_in)
    f.meta["n_patterns_sampled"] = int(len(np.unique(pats, axis=0)))
    f.meta["widths"] = net.widths

    if net.encoding is None:
        _raw_features(f, net, coords, grid_shape, domain, radius, partition)
    elif dim == 1:
        _encoded_1d_features(f, net, coords, grid_shape, domain, radius, partition)
    else:
        _encoded_2d_features(f, net, coords, grid_shape, radius, pats, encoded_crossings)

    if grid_shape is not None:
        _hamming_features(f, net, pats, grid_shape, layers)
    return f


def _partition(net, domain, partition):
    """The partition to use: the one given, a new one (``None``), or none (``False``)."""
    if partition is False:
        return None
    if partition is not None:
        return partition
    from ..api import partition as compute

    return compute(net, domain)


def _occupancy(labels):
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return counts[inv.ravel()]


def _raw_features(f, net, coords, grid_shape, domain, radius, partition):
    p = _partition(net, domain, partition)
    if p is None:  # partition=False (the engine failed or was skipped): network-only features
        f.meta["n_regions"] = None
        f.meta["missing"] = ("no exact partition (skipped or failed): region, measure, "
                             "inradius, occupancy, density not computed")
    else:
        _partition_features(f, p, coords, domain, radius)
    local = boundary_distances(net, coords, per_layer=True)
    paper = boundary_distances(net, coords, per_layer=True, method="weight_norm")
    f.meta["layer_distances"] = {"local": local, "weight_norm": paper}
    f.add("dist_boundary", local.min(axis=1), EXACT,
          "distance to the nearest neuron boundary of the region")
    f.add("dist_layer1", local[:, 0], EXACT, "distance to the nearest first-layer line")
    f.add("dist_paper", paper.min(axis=1), EXACT,
          "the authors' |z|/|W_l[k]| (exact for layer 1 only)")
    if grid_shape is not None:
        pairs = adjacent_pairs(grid_shape)
        c = segment_crossings(net, coords[pairs[:, 0]], coords[pairs[:, 1]])
        f.add("crossings", _mean_over_pairs(c.astype(float), pairs, len(coords)), EXACT,
              "mean boundary crossings on the segments to the grid neighbours")
        f.meta["neighbour_crossings"] = c


def _partition_features(f, p, coords, domain, radius):
    f.meta["n_regions"] = len(p)
    rid = np.asarray(p.locate(coords), dtype=np.int64)
    if np.any(rid < 0):
        bad = int(np.sum(rid < 0))
        raise ValueError(f"{bad} samples lie outside the partition's domain {domain!r}")
    f.add("region", rid, EXACT, "region index in the exact partition")
    f.add("measure", p.measure[rid], EXACT, "area/length of the region")
    f.add("occupancy", _occupancy(rid), EXACT, "training samples in the region")
    if coords.shape[1] == 2:
        import shapely

        f.add("inradius", np.asarray(p.inradius)[rid], EXACT, "Chebyshev radius of the region")
        polys = np.asarray(p.polygons(), dtype=object)
        pts = shapely.points(coords)
        tree = shapely.STRtree(polys)
        pairs = tree.query(pts, predicate="dwithin", distance=radius)
        f.add("density", np.bincount(pairs[0], minlength=len(coords)), EXACT,
              f"regions meeting the disk of radius {radius:.3g}")
        f.add("dist_polygon", shapely.distance(pts, shapely.boundary(polys[rid])), EXACT,
              "distance to the region polygon's boundary (domain sides included)")
    else:
        iv = np.asarray(p.intervals)
        x = coords[:, 0]
        f.add("inradius", 0.5 * (iv[rid, 1] - iv[rid, 0]), EXACT, "half the piece length")
        _add_interval_density(f, p, x, radius)
        f.add("dist_polygon", np.minimum(x - iv[rid, 0], iv[rid, 1] - x), EXACT,
              "distance to the piece's ends (domain ends included)")


def _add_interval_density(f, p, x, radius):
    """Add ``density`` of a 1D partition ``p`` (pieces meeting ``[x - radius, x +
    radius]``); returns its sorted breakpoints."""
    bp = np.sort(np.asarray(p.breakpoints, dtype=np.float64))
    f.add("density", 1 + np.searchsorted(bp, x + radius, "left")
          - np.searchsorted(bp, x - radius, "right"), EXACT,
          f"pieces meeting [x - {radius:.3g}, x + {radius:.3g}]")
    return bp


def _encoded_1d_features(f, net, coords, grid_shape, domain, radius, partition):
    p = _partition(net, domain, partition)
    if p is None:
        f.meta["n_regions"] = None
        f.meta["missing"] = "no encoded 1D partition (skipped or failed): region features skipped"
        return
    x = coords[:, 0]
    piece = np.asarray(p.locate(coords), dtype=np.int64)
    if np.any(piece < 0):
        raise ValueError(f"{int(np.sum(piece < 0))} samples lie outside the domain {domain!r}")
    iv = np.asarray(p.intervals)
    lengths = iv[:, 1] - iv[:, 0]
    pid = np.asarray(p.pattern_id, dtype=np.int64)
    n_pat = int(pid.max()) + 1 if pid.size else 0
    f.meta["n_regions"] = n_pat
    f.meta["n_pieces"] = len(p)
    total = np.bincount(pid, lengths, n_pat)
    half_max = np.zeros(n_pat)
    np.maximum.at(half_max, pid, 0.5 * lengths)
    rid = pid[piece]
    f.add("region", rid, EXACT, "pattern id (pieces with equal patterns)")
    f.add("measure", total[rid], EXACT, "total length of the pattern's pieces")
    f.add("piece_length", lengths[piece], EXACT, "length of the sample's connected piece")
    f.add("inradius", half_max[rid], EXACT, "largest half-length over the pattern's pieces")
    f.add("occupancy", _occupancy(rid), EXACT, "training samples with the same pattern")
    bp = _add_interval_density(f, p, x, radius)
    f.add("dist_boundary", np.minimum(x - iv[piece, 0], iv[piece, 1] - x), EXACT,
          "distance to the nearest breakpoint (domain ends included)")
    if grid_shape is not None:
        pairs = adjacent_pairs(grid_shape)
        a, b = np.minimum(x[pairs[:, 0]], x[pairs[:, 1]]), np.maximum(x[pairs[:, 0]], x[pairs[:, 1]])
        c = np.searchsorted(bp, b, "left") - np.searchsorted(bp, a, "right")
        f.add("crossings", _mean_over_pairs(c.astype(float), pairs, len(x)), EXACT,
              "mean breakpoints between the sample and its neighbours")
        f.meta["neighbour_crossings"] = c


def _encoded_2d_features(f, net, coords, grid_shape, radius, pats, crossings=True):
    from ..sampling import sampled_patterns

    _, pid = sampled_patterns(net, coords)
    pid = np.asarray(pid, dtype=np.int64)
    occ = _occupancy(pid)
    f.meta["n_regions"] = None
    f.add("region", pid, SAMPLED, "distinct pattern among the samples")
    f.add("occupancy", occ, SAMPLED, "samples with the same pattern")
    if grid_shape is not None:
        H, W = grid_shape
        cell = _cell_area(coords, grid_shape)
        f.add("measure", occ * cell, SAMPLED, "samples with the pattern x pixel area")
        # distinct patterns in the window of radius `radius` (in pixel units)
        step = _grid_step(coords, grid_shape)
        r = max(1, int(np.floor(radius / step + 1e-9)))
        img = pid.reshape(H, W)
        dens = np.zeros(H * W, dtype=np.int64)
        for i in range(H):
            for j in range(W):
                win = img[max(0, i - r): i + r + 1, max(0, j - r): j + r + 1]
                dens[i * W + j] = len(np.unique(win))
        f.add("density", dens, SAMPLED, f"distinct patterns in the {2 * r + 1}x{2 * r + 1} window")
        c = _encoded_grid_crossings(net, coords, grid_shape) if crossings else None
        if c is not None:
            pairs = adjacent_pairs(grid_shape)
            f.add("crossings", _mean_over_pairs(c.astype(float), pairs, len(coords)), EXACT,
                  "mean exact boundary crossings along rows/columns to the grid neighbours")
            f.meta["neighbour_crossings"] = c


def _cell_area(coords, grid_shape):
    lo, hi = coords.min(0), coords.max(0)
    H, W = grid_shape
    return float((hi[0] - lo[0]) / max(W - 1, 1) * (hi[1] - lo[1]) / max(H - 1, 1))


def _encoded_grid_crossings(net, coords, grid_shape):
    """Exact crossings between grid neighbours of an encoded 2D model, in the
    order of :func:`regions.study.grid.adjacent_pairs` (rows, then columns), from
    :func:`regions.grid_crossings`; ``None`` when the samples are not a regular grid."""
    from ..encoded import grid_crossings

    H, W = grid_shape
    X = coords[:, 0].reshape(H, W)
    Y = coords[:, 1].reshape(H, W)
    xs, ys = X[0, :], Y[:, 0]
    if not (np.allclose(X, xs[None, :]) and np.allclose(Y, ys[:, None])
            and np.allclose(np.diff(xs), xs[1] - xs[0]) and np.allclose(np.diff(ys), ys[1] - ys[0])):
        return None  # not a regular row-major grid
    gc = grid_crossings(net, (H, W), bounds=((xs[0], xs[-1]), (ys[0], ys[-1])), progress=False)
    return np.concatenate([np.asarray(gc.row_crossings).ravel(),
                           np.asarray(gc.col_crossings).ravel()]).astype(np.int64)


def _hamming_features(f, net, pats, grid_shape, layers):
    pairs = adjacent_pairs(grid_shape)
    diff = pats[pairs[:, 0]] != pats[pairs[:, 1]]
    n = pats.shape[0]
    f.add("hamming", _mean_over_pairs(diff.sum(1).astype(float), pairs, n), EXACT,
          "mean Hamming distance to the grid neighbours' patterns")
    f.meta["neighbour_hamming"] = diff.sum(1)
    if layers:
        start = 0
        for li, w in enumerate(net.widths):
            h = diff[:, start:start + w].sum(1).astype(float)
            f.add(f"hamming_l{li + 1}", _mean_over_pairs(h, pairs, n), EXACT,
                  f"mean Hamming distance in hidden layer {li + 1}")
            start += w
