"""Per-sample features from the exact geometry: the partition and the network.

For raw-coordinate models (1D or 2D), :func:`raw_features` adds the features
of the sample's region in the exact partition (``region``, ``measure``,
``inradius``, ``occupancy``, ``density``, ``dist_polygon``), its distances to
the neuron boundaries (:func:`regions.geometry.boundary_distances`) and the
boundary crossings to its grid neighbours
(:func:`regions.geometry.segment_crossings`). For encoded 1D models,
:func:`encoded_1d_features` does the same from the encoded 1D partition
(regions are patterns, possibly of several pieces). For encoded 2D models,
:func:`encoded_grid_crossings` gives the exact crossings along grid rows and
columns (:func:`regions.grid_crossings`) and :func:`encoded_2d_face_features`
the features of the face holding each sample (:func:`regions.encoded.sample_faces`,
without the whole partition). All are labelled ``'exact'``; the table of names
is in :mod:`regions.study.features`.
"""
from __future__ import annotations

import numpy as np

from ..geometry import boundary_distances, segment_crossings
from .feature_table import EXACT, mean_over_pairs, occupancy
from .grid import adjacent_pairs

__all__ = ["raw_features", "encoded_1d_features", "encoded_2d_face_features",
           "encoded_grid_crossings"]


def _partition(net, domain, partition):
    """The partition to use: the one given, a new one (``None``), or none (``False``)."""
    if partition is False:
        return None
    if partition is not None:
        return partition
    from ..api import partition as compute

    return compute(net, domain)


def raw_features(f, net, coords, grid_shape, domain, radius, partition):
    """Add the exact features of a raw-coordinate model to ``f`` (the partition's
    when there is one, the network's boundary distances, the neighbour crossings)."""
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
        f.add("crossings", mean_over_pairs(c.astype(float), pairs, len(coords)), EXACT,
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
    f.add("occupancy", occupancy(rid), EXACT, "training samples in the region")
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


def encoded_1d_features(f, net, coords, grid_shape, domain, radius, partition):
    """Add the exact features of an encoded 1D model to ``f``, from its encoded
    1D partition (none when ``partition`` is ``False``)."""
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
    f.add("occupancy", occupancy(rid), EXACT, "training samples with the same pattern")
    bp = _add_interval_density(f, p, x, radius)
    f.add("dist_boundary", np.minimum(x - iv[piece, 0], iv[piece, 1] - x), EXACT,
          "distance to the nearest breakpoint (domain ends included)")
    if grid_shape is not None:
        pairs = adjacent_pairs(grid_shape)
        a, b = np.minimum(x[pairs[:, 0]], x[pairs[:, 1]]), np.maximum(x[pairs[:, 0]], x[pairs[:, 1]])
        c = np.searchsorted(bp, b, "left") - np.searchsorted(bp, a, "right")
        f.add("crossings", mean_over_pairs(c.astype(float), pairs, len(x)), EXACT,
              "mean breakpoints between the sample and its neighbours")
        f.meta["neighbour_crossings"] = c


def encoded_grid_crossings(net, coords, grid_shape):
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


#: The study's tolerances for the faces holding the samples: boundaries within
#: FACE_TOL (Hausdorff, domain units) and each face's certified area interval
#: within FACE_REL_TOL of its area (smaller faces are cut again at a finer
#: tolerance, :func:`regions.encoded.sample_faces`'s ``rel_tol``). At the engine's
#: default 1e-5 the trained paper network's faces had intervals of 12% of their
#: area (median) and up to 122%.
FACE_TOL = 1e-6
FACE_REL_TOL = 0.05


def encoded_2d_face_features(f, net, coords, domain, workers=1):
    """Add the features of the face (connected region) of the encoded 2D partition
    holding each sample, from :func:`regions.encoded.sample_faces` (only those
    faces are cut, not the whole partition): ``region`` (one id per face: samples
    whose faces have one pattern and hold each other's samples), ``measure`` (the
    face's area; ``meta["measure_bounds"]`` its certified interval), ``inradius``,
    ``occupancy``, ``dist_boundary`` (to the face's curves, the domain's sides
    excluded) and ``dist_polygon`` (sides included). Areas are certified within
    :data:`FACE_REL_TOL` of each face's area; boundaries, inradii and distances
    within each face's tolerance ``meta["face_tol"]`` (at most :data:`FACE_TOL`)."""
    import shapely

    from ..encoded import sample_faces

    s = sample_faces(net, coords, domain=domain, workers=workers, tol=FACE_TOL,
                     rel_tol=FACE_REL_TOL)
    if any(p is None for p in s.polygons):
        bad = sum(p is None for p in s.polygons)
        raise ValueError(f"{bad} samples lie outside the domain {domain!r}")
    rid = face_ids(s.polygons, s.patterns, coords)
    f.add("region", rid, EXACT, "the sample's face (connected region) in the exact partition")
    f.add("measure", s.area, EXACT, "area of the sample's face (within the tolerance)")
    f.add("inradius", s.inradius, EXACT, "radius of the largest disk in the face")
    f.add("occupancy", occupancy(rid), EXACT, "training samples in the same face")
    f.add("dist_boundary", s.distance, EXACT,
          "distance to the face's boundary curves (domain sides excluded)")
    polys = np.asarray(s.polygons, dtype=object)
    f.add("dist_polygon", shapely.distance(shapely.points(coords), shapely.boundary(polys)),
          EXACT, "distance to the face's boundary (domain sides included)")
    f.meta["measure_bounds"] = s.area_bounds
    f.meta["face_tol"] = s.tol
    f.meta["face_stats"] = {k: (len(v) if isinstance(v, list) else v) for k, v in s.stats.items()}


def face_ids(polygons, patterns, points):
    """One id per face among the samples' faces (``polygons[i]`` holds ``points[i]``):
    two samples share a face when their patterns are equal and one's face holds the
    other's point (faces of one pattern are either one face or disjoint; the
    same face may come as different polylines, within the tolerance, from separate
    runs). Ids are ``0 .. k-1`` in order of first appearance."""
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = len(polygons)
    polys = np.asarray(polygons, dtype=object)
    pi, qi = shapely.STRtree(polys).query(shapely.points(points), predicate="intersects")
    same = (patterns[pi] == patterns[qi]).all(axis=1) & (pi != qi)
    graph = coo_matrix((np.ones(int(same.sum())), (pi[same], qi[same])), shape=(m, m))
    _, labels = connected_components(graph, directed=False)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))          # ids in order of first appearance
    return order[inverse.reshape(-1)].astype(np.int64)
