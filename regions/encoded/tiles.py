"""The encoded 2D partition computed tile by tile and merged along the tile edges.

A large partition (the paper's PE(5) network has about two million faces) need
not be made in one process: :func:`partition_tiles` cuts the domain into a grid
of tiles, runs the encoded 2D engine (:func:`~regions.encoded.engine2d.encoded_plane_faces`)
on each tile as a separate job of a ``concurrent.futures`` executor (local
processes by default, both cores; ``dask.distributed.Client(...).get_executor()``
for a cluster), and merges the pieces of each face that a tile edge cut.

Why the merge is right: a face of the whole partition is a connected set of one
pattern. Cut by the tile edges it falls into pieces, each a face of its tile's
partition, and two pieces of it in neighbouring tiles share a stretch of their
common tile edge. Conversely two tile faces of one pattern that share such a
stretch are in one face. So the faces are the groups of tile faces joined,
transitively (union-find, :mod:`scipy.sparse.csgraph`), by "same pattern and a
shared stretch of a tile edge", each group unioned into one polygon (shapely).

What is a tolerance: the tile edges are grid lines of every tile's engine, so a
curve's crossing of an edge is solved on that edge by both tiles to ``1e-13`` of
the domain's size, but the chords of an arc cut by an edge differ from the one
run's (both within ``tol`` of the curve), so areas agree to about ``tol`` times
the boundary length, within both runs' ``measure_bounds``. A shared stretch of
``4 tol`` or less is joined and reported in ``stats["tile_contacts"]`` (its
location): at that size a sliver of a face crossing the edge and a point
contact of two faces of one pattern (the opposite sectors of a saddle) look the
same. Faces thinner than a few ``tol`` (``stats["thin_faces"]``, areas near
``tol^2`` and below) can therefore differ in number between a tiled and a
single run; every face wider than that is the same face in both (tested).
"""
from __future__ import annotations

import numpy as np

from .engine2d import DEFAULT_TOL, checked_inputs, encoded_plane_faces
from .joins import join_max_faces, union_groups

__all__ = ["partition_tiles"]

MAX_TILES = 4096


def _tile_job(network, wkb, tol, lines_wkb, domain_wkb=None):
    """One tile's faces (a job of the executor: plain arrays and WKB out), and which
    of them meet an inner tile edge (``lines_wkb``): those are the ones the join may
    change.

    With ``domain_wkb`` the crossings of the others are certified here too
    (:func:`~regions.encoded.certify.certify_faces` against the whole domain's
    outline): such a face is a face of the joined partition as it is, and its
    certificate depends on it alone. Returns ``(wkb, bits, A, c, stats, near,
    raw)``, ``raw``'s face indices the tile's."""
    import shapely

    geoms, bits, A, c, stats = encoded_plane_faces(network, shapely.from_wkb(wkb), tol)
    arr = np.asarray(geoms, dtype=object)
    near = shapely.intersects(arr, shapely.from_wkb(lines_wkb)) if arr.shape[0] \
        else np.zeros(0, dtype=bool)
    raw = None
    if domain_wkb is not None and arr.shape[0]:
        from .certify import certify_faces

        raw = certify_faces(network, geoms, bits, shapely.from_wkb(domain_wkb), tol,
                            np.flatnonzero(~near))
    return shapely.to_wkb(arr), bits, A, c, stats, near, raw


def _tile_polygons(poly, tiles):
    """The parts of ``poly`` in each tile of an ``nx`` x ``ny`` grid over its bounds:
    ``(polygons, tile edges)``, the edges as shapely lines (the grid's inner lines)."""
    import shapely

    nx, ny = tiles
    x0, y0, x1, y1 = poly.bounds
    xs = np.linspace(x0, x1, nx + 1)
    ys = np.linspace(y0, y1, ny + 1)
    xs[-1], ys[-1] = x1, y1
    parts = []
    for i in range(nx):
        for j in range(ny):
            cut = shapely.intersection(poly, shapely.box(xs[i], ys[j], xs[i + 1], ys[j + 1]))
            parts.extend(g for g in shapely.get_parts(cut)
                         if isinstance(g, shapely.Polygon) and g.area > 0)
    edges = [shapely.LineString([(x, y0), (x, y1)]) for x in xs[1:-1]] + \
            [shapely.LineString([(x0, y), (x1, y)]) for y in ys[1:-1]]
    return parts, edges


def _check_tiles(tiles):
    try:
        nx, ny = (int(tiles), int(tiles)) if np.isscalar(tiles) else tuple(tiles)
    except (TypeError, ValueError):
        raise ValueError(f"tiles must be a positive integer or a pair (nx, ny), got {tiles!r}") \
            from None
    for n in (nx, ny):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"tiles must be positive integers, got {tiles!r}")
    if nx * ny > MAX_TILES:
        raise ValueError(f"tiles {nx} x {ny} = {nx * ny} is more than {MAX_TILES} tiles")
    return int(nx), int(ny)


def _merge(geoms, near, tile_of, patterns, edges, tol, scale, stats):
    """Groups of tile faces that are one face: ``(n,)`` group label per tile face
    (``near``: the faces that meet an inner tile edge, from the tiles' jobs)."""
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(geoms)
    if n == 0 or not edges:
        return np.arange(n)
    arr = np.asarray(geoms, dtype=object)
    lines = shapely.union_all(np.asarray(edges, dtype=object))
    idx = np.flatnonzero(near)
    a, b = shapely.STRtree(arr[idx]).query(arr[idx], predicate="intersects")
    a, b = idx[a], idx[b]
    keep = (a < b) & (tile_of[a] != tile_of[b])
    keep[keep] = (patterns[a[keep]] == patterns[b[keep]]).all(axis=1)
    a, b = a[keep], b[keep]
    shared = shapely.intersection(shapely.intersection(shapely.boundary(arr[a]),
                                                       shapely.boundary(arr[b])), lines)
    length = shapely.length(shared)
    # any stretch joins (a sliver of a face crossing an edge is still one face); a
    # short one is also reported: at a point contact of two faces of one pattern on
    # the edge (a saddle's opposite sectors) the polylines can share up to ~tol
    join = length > 1e-12 * scale
    touch = join & (length <= 4 * tol)
    for g in shared[touch]:
        x, y = shapely.get_coordinates(g)[0]
        stats["tile_contacts"].append((float(x), float(y)))
    graph = coo_matrix((np.ones(int(join.sum())), (a[join], b[join])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def partition_tiles(model, domain=((0.0, 1.0), (0.0, 1.0)), tiles=(2, 2), tol=DEFAULT_TOL,
                    executor=None, workers=2, certify=True):
    """The encoded 2D partition of ``model`` over ``domain`` made tile by tile.

    Parameters
    ----------
    model : a model with a separable encoding (``regions.PositionalEncoding(L,
        in_features=2)`` first) or a :class:`regions.Network` with it.
    domain : a 2D box or shapely polygon in the encoding's coordinates.
    tiles : ``nx`` or ``(nx, ny)``: the grid of tiles over the domain's bounds (at most
        :data:`MAX_TILES` tiles).
    tol : Hausdorff tolerance of the face boundaries, as the engine's.
    executor : a ``concurrent.futures.Executor`` (``submit``) that runs the tile jobs;
        by default ``workers`` local processes (``workers=1``: in this process).
    certify : check the crossings of the joined faces' curves, as
        :func:`~regions.encoded.partition_encoded_plane` does: the faces that meet no
        inner tile edge by the tile's job (``stats["faces_certified_in_tiles"]``),
        the others after the join, in this process; the same certificate as
        certifying the joined faces at once.

    Returns an :class:`~regions.encoded.EncodedPartition2D` with the same faces as
    one run of the engine (faces in another order), and in ``stats`` the tiles
    run, the tile faces merged and ``tile_contacts`` (see the module's docstring).

    Examples
    --------
    >>> import torch, regions
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(regions.PositionalEncoding(2, in_features=2),
    ...                           torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1))
    >>> p = partition_tiles(net, tiles=(2, 2), workers=1)
    >>> len(p) == len(regions.partition(net, ((0, 1), (0, 1))))
    True
    """
    import shapely

    from .result2d import EncodedPartition2D

    net, dom, poly, tol = checked_inputs(model, domain, tol, "partition_tiles")
    nx, ny = _check_tiles(tiles)
    parts, edges = _tile_polygons(poly, (nx, ny))
    wkbs = [shapely.to_wkb(g) for g in parts]
    certify = certify and net.max_trees is None
    # the jobs find their faces on the inner tile edges and certify the others (most)
    lines = shapely.to_wkb(shapely.union_all(np.asarray(edges, dtype=object)) if edges
                           else shapely.GeometryCollection())
    job_args = (tol, lines, shapely.to_wkb(poly) if certify else None)
    if executor is None and workers <= 1:
        results = [_tile_job(net, w, *job_args) for w in wkbs]
    else:
        from .._shared import process_pool

        pool = process_pool(workers) if executor is None else executor
        try:
            results = [f.result() for f in [pool.submit(_tile_job, net, w, *job_args)
                                            for w in wkbs]]
        finally:
            if executor is None:
                pool.shutdown()
    # the tiles' arrays copied into one each and dropped tile by tile (the paper's
    # PE(5) network: 1.7M tile faces, ~0.7 KB of patterns and maps per face)
    n = sum(len(r[0]) for r in results)
    b0, A0, c0 = results[0][1:4]
    bits = np.empty((n,) + b0.shape[1:], dtype=b0.dtype)
    A = np.empty((n,) + A0.shape[1:], dtype=A0.dtype)
    c = np.empty((n,) + c0.shape[1:], dtype=c0.dtype)
    tile_of = np.empty(n, dtype=np.int64)
    near = np.empty(n, dtype=bool)
    geoms, raws, spans = [], [], []
    stats = {"tiles": len(parts), "tile_faces": 0, "tile_contacts": []}
    for t in range(len(results)):
        wkb, b, At, ct, st, near_t, raw = results[t]
        results[t] = None
        # the tile's faces are numbered on from len(geoms)
        lo, hi = len(geoms), len(geoms) + len(wkb)
        raws.append(raw), spans.append((lo, hi))
        geoms.extend(shapely.from_wkb(wkb))
        tile_of[lo:hi], near[lo:hi], bits[lo:hi], A[lo:hi], c[lo:hi] = t, near_t, b, At, ct
        for k, v in st.items():
            if isinstance(v, list) and k != "faces_per_layer":
                stats.setdefault(k, []).extend(v)
            elif isinstance(v, (int, np.integer)):
                stats[k] = stats.get(k, 0) + int(v)
    stats["tile_faces"] = len(geoms)
    x0, y0, x1, y1 = poly.bounds
    labels = _merge(geoms, near, tile_of, bits, edges, tol, max(x1 - x0, y1 - y0), stats)
    faces, first = union_groups(geoms, labels)
    del geoms                  # the joined faces keep the tile faces they are
    bits, A, c = bits[first], A[first], c[first]
    faces, bits, A, c = join_max_faces(net, faces, bits, A, c, tol, stats)
    stats["engine"] = "encoded 2D, tiled"
    stats["tol"] = tol
    p = EncodedPartition2D(net, dom, faces, bits, A, c, tol, stats)
    if certify:
        # on the joined faces: the workers did those that are tile faces as they are
        # (labels: a tile face's joined face); the rest, joined across an edge, here,
        # where their junctions on the tile edges are gone
        from .certify import certificate_from, certify_faces, merge_raw

        p.stats["faces_certified_in_tiles"] = int(np.count_nonzero(~near))
        rest = np.ones(len(faces), dtype=bool)
        rest[labels[~near]] = False
        here = certify_faces(net, p.geoms, bits, poly, tol, np.flatnonzero(rest))
        mine = [t for t, r in enumerate(raws) if r is not None]
        cert = certificate_from(merge_raw([raws[t] for t in mine] + [here],
                                          [labels[slice(*spans[t])] for t in mine] + [None]))
        p.adopt_certificate(cert)
    return p
