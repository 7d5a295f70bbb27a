"""The result type of the encoded 2D engine: :class:`EncodedPartition2D`."""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ..partition import Partition, PatternIds, pack_patterns

__all__ = ["EncodedPartition2D"]


class EncodedPartition2D(PatternIds, Partition):
    """Connected regions (faces) of an encoded network over a 2D domain.

    The faces are curved: each is stored as a shapely polygon whose boundary
    polylines are within ``tol`` (Hausdorff distance, domain units) of the true
    curves (see :mod:`regions.encoded.engine2d` for what is certified).

    Attributes
    ----------
    geoms : list of shapely Polygons, one per face (may have holes).
    patterns, pattern_id, n_patterns : activation bits, and ids shared by the faces
        with equal patterns (a pattern's set can be disconnected), numbered in the
        order of the faces.
    measure : (n,) the polygons' areas; ``measure_bounds`` ``(n, 2)`` an interval
        holding the true face's area (see :attr:`measure_bounds`).
    affine : ``(A, c)`` in the encoded space, ``A`` ``(n, n_out, n_features)``:
        the output on face ``r`` is ``A[r] @ encode(x, y) + c[r]``.
    tol : the Hausdorff tolerance of the boundaries.
    stats : counts and locations of the degenerate spots: ``corner_zeros`` (a
        curve through a grid corner within the zero tolerance: saddles,
        tangencies, curves through a critical point), ``ambiguous_cells``,
        ``solve_fallbacks``, ``thin_faces`` (faces thinner than ``4 tol``, where
        two curves closer than the tolerance may have been ordered wrongly), with
        ``(x, y, layer, neuron)`` locations; the certified crossings of
        :meth:`certify_crossings` (``crossings``, ``uncertified_crossings`` ...) when
        the engine was asked to certify them (its default); work counters.
    """

    dim = 2

    def __init__(self, network, domain, geoms, bits, A, c, tol, stats=None):
        import shapely

        self.geoms = list(geoms)
        self.tol = float(tol)
        measure = shapely.area(np.asarray(self.geoms, dtype=object)) if self.geoms else np.empty(0)
        super().__init__(network, domain, pack_patterns(bits), measure, A, c, stats)
        self.stats["thin_faces"] = self._thin_faces()

    def _thin_faces(self):
        import shapely

        if not self.geoms:
            return []
        arr = np.asarray(self.geoms, dtype=object)
        width = 2 * self.measure / np.maximum(shapely.length(arr), 1e-300)
        thin = np.flatnonzero(width < 4 * self.tol)
        pts = shapely.get_coordinates(shapely.point_on_surface(arr[thin]))
        return [(int(r), float(x), float(y)) for r, (x, y) in zip(thin, pts)]

    def certify_crossings(self):
        """Check every junction of two curves on the faces' boundaries against the curves
        (:func:`regions.encoded.certify.certify_crossings`: Krawczyk boxes on the two
        neurons' equations, the face's earlier neurons keeping their states there).

        Returns the :class:`~regions.encoded.certify.CrossingCertificate` (computed
        once) and puts its :meth:`~regions.encoded.certify.CrossingCertificate.summary`
        into :attr:`stats`: ``crossings`` certified, ``crossing_error_max`` (the
        largest distance from a polygon corner to its true crossing),
        ``crossing_radius_min``, ``uncertified_crossings`` located with their reason,
        ``unlabelled_segments``, ``repeated_crossings``. Raises ``ValueError`` for a
        network with a max over more than two values (not certified in this version).
        """
        if getattr(self, "_certificate", None) is None:
            from .certify import certify_crossings

            self.adopt_certificate(certify_crossings(self.network, self.geoms, self.patterns,
                                                     self._domain_polygon(), self.tol))
        return self._certificate

    def adopt_certificate(self, certificate):
        """Keep ``certificate`` (a :class:`~regions.encoded.certify.CrossingCertificate`
        of these faces, made in parts: :func:`~regions.encoded.tiles.partition_tiles`)
        as :meth:`certify_crossings`' result, its summary in :attr:`stats`."""
        self._certificate = certificate
        self.stats.update(certificate.summary())

    @cached_property
    def vertices(self):
        """``(V, 2)`` the distinct points of the faces' boundary polylines."""
        import shapely

        if not self.geoms:
            return np.empty((0, 2))
        return np.unique(shapely.get_coordinates(np.asarray(self.geoms, dtype=object)), axis=0)

    @cached_property
    def _curved_boundaries(self):
        """Each face's boundary without the parts on the domain's boundary: the
        region boundary curves (polylines)."""
        import shapely

        arr = np.asarray(self.geoms, dtype=object)
        outline = self._domain_polygon().boundary.buffer(self.tol * 1e-3)
        return shapely.difference(shapely.boundary(arr), outline)

    @cached_property
    def _curved_length(self):
        """Length of each face's boundary that is not on the domain's boundary."""
        import shapely

        return shapely.length(self._curved_boundaries)

    def _domain_polygon(self):
        from .engine2d import _domain_polygon

        return _domain_polygon(self.domain)

    @cached_property
    def measure_bounds(self):
        """``(n, 2)``: an interval holding each true face's area.

        Along a boundary curve every chord of the polyline bounds, with the
        monotone arc between its ends, a region within ``tol`` of the chord and
        over it (the arc is a graph over its chord), so the curved pieces account
        for at most ``tol P`` (``P`` the face's boundary length off the domain's
        boundary). At a corner where two curves cross, the polygon's vertex is the
        polylines' crossing, up to ``e`` (certified by :meth:`certify_crossings`,
        max norm) from the true one ``X``; the curve's arc from ``X`` to the point
        within ``tol`` of the vertex stays in their bounding box, so what differs
        there lies within ``r = sqrt(2) e + 2 tol`` of the vertex. The interval is
        ``area -+ s`` with ``s`` the wider of ``tol P + sum_corners pi r^2`` and the
        engine's ``2 tol P + pi tol^2``; a face with a junction that is not
        certified, or a boundary segment on no curve (``uncertified_crossings``,
        ``unlabelled_segments``), has no bound: ``[0, inf]``. Corners on the domain's
        edge are monotone 1D solves to ``1e-13``. A network with a max over more than
        two values is not certified: its faces keep the engine's ``2 tol P + pi
        tol^2`` (not proven at the corners)."""
        P = self._curved_length
        slack = 2 * self.tol * P + np.pi * self.tol ** 2
        open_ = np.zeros(len(self), dtype=bool)
        if self.network.max_trees is None and len(self):
            cert = self.certify_crossings()
            corner = np.bincount(cert.corner_faces, minlength=len(self),
                                 weights=np.pi * (np.sqrt(2) * cert.corner_errors + 2 * self.tol) ** 2)
            slack = np.maximum(slack, self.tol * P + corner)
            open_[cert.uncertified[:, 4].astype(np.int64)] = True
            open_[cert.unlabelled[:, 2].astype(np.int64)] = True
        lo = np.where(open_, 0.0, np.maximum(self.measure - slack, 0.0))
        hi = np.where(open_, np.inf, self.measure + slack)
        return np.stack([lo, hi], axis=1)

    def polygons(self, tol=None):
        """The faces as shapely polygons, within ``self.tol`` of the true faces.

        ``tol`` (optional): the Hausdorff distance wanted; a value below the
        partition's own tolerance raises ``ValueError`` (recompute with
        ``regions.encoded.partition_encoded_plane(net, domain, tol=...)``)."""
        if tol is not None and float(tol) < self.tol:
            raise ValueError(f"these faces were computed to tol={self.tol:g}; for tol={tol:g} "
                             "recompute with regions.encoded.partition_encoded_plane(model, "
                             f"domain, tol={tol:g})")
        return list(self.geoms)

    def level_set(self, value=0.0, output=0, spots=False):
        """The curves where output ``output`` equals ``value`` (the decision boundary),
        as a shapely ``MultiLineString`` in the domain's coordinates.

        On each face the output is ``F(x) + G(y) + c``; its zero set is traced with
        the engine's certified steps (:func:`regions.encoded.engine2d.level_set_curves`):
        the polylines are within ``self.tol`` (Hausdorff) of the true curves, their
        vertices inside a face are on the curve to ``1e-13`` of the domain's size (the
        ends where an arc meets a face boundary are within ``tol``: that boundary is a
        polyline too), and no closed oval is missed. Arcs are clipped to the faces and joined where they meet;
        where the level set runs along a face boundary it may be reported by both
        faces. With ``spots=True`` returns ``(lines, stats)``: the degenerate spots
        (``corner_zeros``: the level set through a grid corner within the zero
        tolerance, e.g. a saddle or a tangency, located as ``(x, y, -1, face)``),
        and ``flat_faces``: faces on which the output equals ``value`` everywhere,
        not drawn as lines.
        """
        from .engine2d import level_set_curves

        A, c = self.affine
        value, output = self._level_arguments(value, output)
        lines, stats = level_set_curves(self.network, self.geoms, A, c, output, value, self.tol)
        return (lines, stats) if spots else lines

    @cached_property
    def _tree(self):
        import shapely

        return shapely.STRtree(self.geoms)

    def locate(self, points):
        """Face index of each point ``(m, 2)``; ``-1`` outside the domain. A point on a
        shared boundary (within rounding) goes to the face of lowest index."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must be shaped (m, 2), got {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise ValueError("points must be finite")
        import shapely

        out = np.full(pts.shape[0], -1, dtype=np.int64)
        if pts.shape[0] == 0 or not self.geoms:
            return out
        pi, gi = self._tree.query(shapely.points(pts), predicate="intersects")
        order = np.lexsort((gi, pi))
        pi, gi = pi[order], gi[order]
        first = np.ones(pi.shape[0], dtype=bool)
        first[1:] = pi[1:] != pi[:-1]
        out[pi[first]] = gi[first]
        return out

    def encode(self, points):
        """Encoded features at points ``(m, 2)``."""
        return self.network.encoding.encode_numpy(points)

    @cached_property
    def _pairs(self):
        """``(m, 3)`` int64 rows ``(a, b, neuron)``, ``a < b``: faces sharing a boundary
        longer than ``4 tol`` and the first neuron whose state differs (``-1``: none does).
        Shorter contacts (at crossings of two curves, where each face's polylines meet the
        other curve within ``tol`` of the crossing) are counted in
        ``stats["point_contacts"]``."""
        import shapely

        if len(self) < 2:
            return np.empty((0, 3), dtype=np.int64)
        arr = np.asarray(self.geoms, dtype=object)
        a, b = self._tree.query(arr, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        shared = shapely.length(shapely.intersection(shapely.boundary(arr[a]),
                                                     shapely.boundary(arr[b])))
        # a curve crossing a face boundary is cut face by face, so the faces diagonal to
        # each other at a crossing can share a stub about tol long: not an arc
        keep = shared > 4 * self.tol
        self.stats["point_contacts"] = int(np.count_nonzero((shared > 0) & ~keep))
        a, b = a[keep], b[keep]
        diff = self.patterns[a] != self.patterns[b]
        neuron = np.where(diff.any(axis=1), diff.argmax(axis=1), -1)
        return np.stack([a, b, neuron], axis=1).astype(np.int64)

    def adjacent_pairs(self):
        """``(m, 3)`` rows ``(a, b, neuron)``: faces ``a < b`` sharing a boundary arc (longer
        than ``4 tol``), and the neuron whose curve it is (the first whose state differs;
        ``-1`` if none)."""
        return self._pairs.copy()

    def adjacency(self):
        """scipy.sparse CSR ``(n, n)`` bool: faces that share a boundary arc."""
        import scipy.sparse as sp

        a, b = self._pairs[:, 0], self._pairs[:, 1]
        n = len(self)
        m = sp.coo_matrix((np.ones(2 * len(a), dtype=bool), (np.r_[a, b], np.r_[b, a])),
                          shape=(n, n)).tocsr()
        m.sum_duplicates()
        return m

    @cached_property
    def inradius(self):
        """``(n,)`` radius of the largest disk in each face (polygon), to ``tol``."""
        import shapely

        arr = np.asarray(self.geoms, dtype=object)
        return shapely.length(shapely.maximum_inscribed_circle(arr, self.tol))

    def distance_to_boundary(self, points, faces=None):
        """Distance of each point to the boundary of its face, domain boundary excluded
        (the nearest region boundary curve); ``inf`` for a face with no curved boundary,
        ``nan`` outside. Within ``tol`` of the true distance."""
        import shapely

        pts = np.asarray(points, dtype=np.float64)
        idx = self.locate(pts) if faces is None else np.asarray(faces)
        out = np.full(pts.shape[0], np.nan)
        ok = np.flatnonzero(idx >= 0)
        if ok.shape[0] == 0:
            return out
        curved = self._curved_boundaries[idx[ok]]
        d = shapely.distance(shapely.points(pts[ok]), curved)
        out[ok] = np.where(shapely.is_empty(curved), np.inf, d)
        return out
