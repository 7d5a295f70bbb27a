"""The faces holding given samples, without the whole encoded 2D partition.

:func:`sample_faces` runs the encoded 2D engine (:mod:`regions.encoded.engine2d`)
once over the whole domain, keeping after each neuron's cut only the pieces
that hold a sample (``encoded_plane_faces(..., points=...)``): at most one face
per sample is ever cut, and each is the full partition's face, since a face is
cut into its connected parts and the part holding the sample is the one cut on.
The cost grows with the number of samples, not with the partition's size (the
paper's network, about 2 million faces: 4096 samples in about 26 s on one core,
``benchmarks/bench_encoded2d.py``).

A max over ``k > 2`` values joins faces where only its losers swap
(:func:`regions.encoded.joins.join_max_faces`), which needs the neighbouring
pieces the pruning drops; for such networks the engine runs on windows around
the samples instead, joined as in the whole partition, and a window grows while
the (joined) face holding a sample touches its border inside the domain (a face
that does not is the full partition's: it is connected, and closed off by
region boundaries and the domain's boundary alone). Windows start as the tiles
of a grid (samples in one tile share one partition of it, enlarged by half a
tile on each side) and double until a window is the whole domain.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engine2d import DEFAULT_TOL, checked_inputs, encoded_plane_faces
from .joins import join_max_faces

__all__ = ["sample_faces", "SampleFaces", "MIN_TOL", "REFINE_ROUNDS"]

MIN_TOL = 1e-10       # the smallest tolerance rel_tol refines to (1e-5 of the 1e-5 default)
REFINE_ROUNDS = 4     # rounds of refinement for rel_tol


@dataclass
class SampleFaces:
    """Per sample (``m`` samples; ``-1`` / ``nan`` for a sample outside the domain).

    Attributes
    ----------
    polygons : list of shapely Polygons (None outside): the sample's face.
    patterns : (m, n_hidden) bool activation pattern of the face.
    area, area_bounds : (m,), (m, 2): the polygon's area and the engine's interval
        for the true face's area, ``area -+ (2 tol P + pi tol^2)`` (``P`` the curved
        boundary's length). The sample faces' crossings are not certified, so unlike
        :attr:`EncodedPartition2D.measure_bounds` the interval is not proven at the
        corners; measured on whole partitions, it held for every face compared with a
        run at ``tol = 1e-7`` while the certified bound is wider at ~1% of the faces
        (shallow crossings) (``tests/test_encoded2d_crossings.py``).
    distance : (m,) distance from the sample to its face's boundary curves (domain
        boundary excluded; ``inf`` when the face has none), within ``tol``.
    inradius : (m,) radius of the largest disk in the face, within ``tol``.
    window : (m,) width of the window that resolved the sample (the domain's larger
        side when the samples' faces were cut out of the whole domain).
    tol : (m,) the Hausdorff tolerance the sample's face was cut with (smaller than
        the one asked for where ``rel_tol`` refined it).
    stats : work counters (windows partitioned, faces made) and the degenerate
        spots of every window's partition, over every pass; with ``rel_tol``,
        ``rel_tol_unmet``: the samples whose interval stayed wider.
    """

    polygons: list
    patterns: np.ndarray
    area: np.ndarray
    area_bounds: np.ndarray
    distance: np.ndarray
    inradius: np.ndarray
    window: np.ndarray
    stats: dict
    tol: np.ndarray = None


def _faces_job(net, wkb, points, tol):
    """The faces holding ``points`` (a job of the executor: WKB and arrays out)."""
    import shapely

    geoms, bits, _, _, st = encoded_plane_faces(net, shapely.from_wkb(wkb), tol, points=points)
    face = st.pop("face_of_point")
    return shapely.to_wkb(np.asarray(geoms, dtype=object)), bits, face, st


def _groups(points, n):
    """``n`` groups of sample indices (or fewer), each a strip of the samples in x
    order split into squares in y order: neighbouring samples share a group."""
    m = points.shape[0]
    n = max(1, min(n, m))
    strips = np.array_split(np.argsort(points[:, 0], kind="stable"), n)
    return [s[np.argsort(points[s, 1], kind="stable")] for s in strips if s.shape[0]]


def _run(job, jobs, workers, executor):
    """``job(*args)`` for each ``args`` of ``jobs``: in this process, on ``executor``,
    or on ``workers`` local processes."""
    if executor is None and (workers <= 1 or len(jobs) == 1):
        return [job(*args) for args in jobs]
    from .._shared import process_pool

    pool = process_pool(workers) if executor is None else executor
    try:
        return [f.result() for f in [pool.submit(job, *args) for args in jobs]]
    finally:
        if executor is None:
            pool.shutdown()


def sample_faces(model, points, domain=((0.0, 1.0), (0.0, 1.0)), tile=None, tol=DEFAULT_TOL,
                 workers=1, executor=None, rel_tol=None):
    """The face of the encoded 2D partition holding each sample, with its area (and a
    certified interval), inradius and the sample's distance to the face's boundary.

    Parameters
    ----------
    model : a torch ``nn.Sequential`` starting with ``PositionalEncoding(L, in_features=2)``
        (any separable encoding), or a :class:`regions.Network` with it.
    points : (m, 2) samples.
    domain : a 2D box or shapely polygon in the encoding's coordinates.
    tile : starting window width, for a network with a max over ``k > 2`` values
        (default: a 16th of the domain's larger side); other networks need no windows.
    tol : Hausdorff tolerance of the face boundaries (domain units).
    rel_tol : optional: each face's area interval made at most ``rel_tol`` of its
        area (relative, so small faces get a small tolerance): the faces with a
        wider interval are cut again at a smaller tolerance (see ``tol`` of the
        result), down to :data:`MIN_TOL`. The interval's slack is about ``2 tol
        perimeter``, so a face of side ``r`` needs ``tol`` of about ``rel_tol r / 8``.
    workers : local processes that share the samples (in groups of neighbours;
        ``1``: in this process). The faces do not depend on the grouping beyond
        ``tol`` (each is the full partition's face; its polylines may take other
        vertices within ``tol``).
    executor : a ``concurrent.futures.Executor`` to run the groups on instead (e.g.
        the study's Dask client's ``get_executor()``), eight groups.

    Examples
    --------
    >>> import torch, regions
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(regions.PositionalEncoding(1, in_features=2),
    ...                           torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> s = sample_faces(net, [[0.2, 0.3], [0.8, 0.6]])
    >>> s.patterns.shape, bool((s.area_bounds[:, 0] <= s.area).all())
    ((2, 3), True)
    """
    import shapely

    net, dom, poly, tol = checked_inputs(model, domain, tol, "sample_faces")
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.all(np.isfinite(pts)):
        raise ValueError(f"points must be a finite (m, 2) array, got shape {pts.shape}")
    m = pts.shape[0]
    x0, y0, x1, y1 = poly.bounds
    extent = max(x1 - x0, y1 - y0)
    size = extent / 16 if tile is None else float(tile)
    if not (np.isfinite(size) and size > 0):
        raise ValueError(f"tile must be a positive width, got {tile!r}")
    if rel_tol is not None and not (np.isfinite(rel_tol) and 0 < rel_tol < 1):
        raise ValueError(f"rel_tol must be a number in (0, 1) (a share of each face's area), "
                         f"got {rel_tol!r}")
    out_poly = [None] * m
    patterns = np.zeros((m, net.n_hidden), dtype=bool)
    area = np.full(m, np.nan)
    bounds = np.full((m, 2), np.nan)
    distance = np.full(m, np.nan)
    inradius = np.full(m, np.nan)
    window = np.full(m, np.nan)
    stats = {"windows": 0, "faces": 0, "corner_zeros": [], "ambiguous_cells": [], "near_tangencies": [],
             "shallow_crossings": [],
             "solve_fallbacks": 0, "thin_faces": []}
    pending = np.flatnonzero(shapely.covers(poly, shapely.points(pts)))
    sample_tol = np.full(m, np.nan)

    def cut(pending, tol):
        """The faces of the samples ``pending`` with boundaries within ``tol``."""
        sample_tol[pending] = tol
        size = extent / 16 if tile is None else float(tile)
        outline = poly.boundary.buffer(tol * 1e-3)

        def record(s, g, bits_s, size):
            """Sample ``s``'s face ``g`` (pattern ``bits_s``) and its features."""
            curved = shapely.difference(g.boundary, outline)
            slack = 2 * tol * curved.length + np.pi * tol ** 2
            out_poly[s] = g
            patterns[s] = bits_s
            area[s] = g.area
            bounds[s] = (max(g.area - slack, 0.0), g.area + slack)
            distance[s] = (np.inf if curved.is_empty
                           else shapely.distance(shapely.Point(pts[s]), curved))
            inradius[s] = shapely.maximum_inscribed_circle(g, tol).length
            window[s] = size
            if 2 * g.area / max(g.length, 1e-300) < 4 * tol:
                stats["thin_faces"].append((int(s), float(pts[s, 0]), float(pts[s, 1])))

        def count(st, n_faces):
            stats["windows"] += 1
            stats["faces"] += n_faces
            for name in ("corner_zeros", "ambiguous_cells", "near_tangencies", "shallow_crossings"):
                stats[name].extend(st[name])
            stats["solve_fallbacks"] += st["solve_fallbacks"]

        if net.max_trees is None and pending.shape[0]:
            # runs over the whole domain that cut only the faces holding samples: one per
            # group of samples (neighbours share their early cuts), one group per worker
            groups = _groups(pts[pending], max(1, int(workers)) if executor is None else 8)
            jobs = [(net, shapely.to_wkb(poly), pts[pending[g]], tol) for g in groups]
            for g, (wkb, bits, face, st) in zip(groups, _run(_faces_job, jobs, workers, executor)):
                geoms = shapely.from_wkb(wkb)
                count(st, len(geoms))
                for s, f in zip(pending[g].tolist(), face.tolist()):
                    record(s, geoms[f], bits[f], extent)
            pending = pending[:0]
        while pending.shape[0]:
            whole = size >= 2 * extent
            ix = np.floor((pts[pending, 0] - x0) / size).astype(np.int64)
            iy = np.floor((pts[pending, 1] - y0) / size).astype(np.int64)
            resolved = []
            windows = []
            for key in np.unique(np.stack([ix, iy], 1), axis=0):
                here = pending[(ix == key[0]) & (iy == key[1])]
                if whole:
                    windows.append((poly, here))
                    continue
                bx, by = x0 + key[0] * size, y0 + key[1] * size
                clipped = shapely.intersection(poly, shapely.box(bx - size / 2, by - size / 2,
                                                                bx + 1.5 * size, by + 1.5 * size))
                # a non-convex domain can leave several parts: each with its own samples
                for part in shapely.get_parts(clipped):
                    if isinstance(part, shapely.Polygon) and part.area > 0:
                        mine = here[shapely.covers(part, shapely.points(pts[here]))]
                        if mine.shape[0]:
                            windows.append((part, mine))
            for win, here in windows:
                geoms, bits, A, c, st = encoded_plane_faces(net, win, tol)
                # a max over k > 2: the faces where only its losers swap are one face
                geoms, bits, _, _ = join_max_faces(net, geoms, bits, A, c, tol, st)
                count(st, len(geoms))
                arr = np.asarray(geoms, dtype=object)
                tree = shapely.STRtree(arr)
                si, gi = tree.query(shapely.points(pts[here]), predicate="intersects")
                order = np.lexsort((gi, si))
                si, gi = si[order], gi[order]
                first = np.ones(si.shape[0], dtype=bool)
                first[1:] = si[1:] != si[:-1]
                face = np.full(here.shape[0], -1)
                face[si[first]] = gi[first]
                border = shapely.difference(win.boundary, outline)
                for j, s in enumerate(here.tolist()):
                    f = face[j]
                    if f < 0:
                        continue
                    g = geoms[f]
                    if not whole and not border.is_empty and shapely.intersects(g, border):
                        continue
                    record(s, g, bits[f], size)
                    resolved.append(s)
            pending = np.setdiff1d(pending, np.asarray(resolved, dtype=np.int64))
            size *= 2

    cut(pending, tol)
    if rel_tol is not None:
        _refine(cut, pending, bounds, area, sample_tol, tol, rel_tol, stats)
    return SampleFaces(out_poly, patterns, area, bounds, distance, inradius, window, stats,
                       sample_tol)


def _refine(cut, pending, bounds, area, sample_tol, tol, rel_tol, stats):
    """Cut again, at smaller tolerances, the faces whose area interval is wider than
    ``rel_tol`` of their area: the interval's slack grows linearly with the
    tolerance, so a sample wants its tolerance times ``0.8 rel_tol area / width``;
    each round cuts all of them in one run at the smallest tolerance wanted,
    rounded down to ``tol / 2^k`` and at least :data:`MIN_TOL`; at most
    :data:`REFINE_ROUNDS` rounds. The samples still
    wider go to ``stats["rel_tol_unmet"]``."""
    for _ in range(REFINE_ROUNDS):
        width = bounds[pending, 1] - bounds[pending, 0]
        wide = (width > rel_tol * area[pending]) & (sample_tol[pending] > MIN_TOL)
        if not wide.any():
            break
        idx = pending[wide]
        want = sample_tol[idx] * 0.8 * rel_tol * area[idx] / width[wide]
        # one run per round, at the smallest tolerance wanted (each run repeats the
        # large early cuts, so fewer runs at a finer tolerance are cheaper)
        k = int(np.ceil(np.log2(tol / max(float(want.min()), MIN_TOL))))
        cut(idx, max(tol / 2.0 ** k, MIN_TOL))
    width = bounds[pending, 1] - bounds[pending, 0]
    stats["rel_tol_unmet"] = pending[width > rel_tol * area[pending]].tolist()
