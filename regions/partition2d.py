"""The result of the 2D engine: :class:`Partition2D`, the regions of a 2D domain.

The regions are convex polygons (except where a non-convex polygon domain
clips them) computed by :func:`regions.engine2d.enumerate_plane`, whose
docstring says how, and which tolerance decides a neuron's zero (``RTOL``).
The engine's names (``enumerate_plane``, ``merge_pieces``, ``RTOL``) are
importable from here too.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ._shared import in_domain_coordinates
from .engine2d import RTOL, enumerate_plane, merge_pieces
from .partition import Partition

LOCATE_SLACK = 100.0   # locate: a sliver may be this many times the tolerance wide

__all__ = ["Partition2D", "enumerate_plane", "merge_pieces", "RTOL"]


def _distance_to_zero_lines(network, u):
    """``(m, n_hidden)``: distance of each point ``u`` (2 inputs) from each hidden
    neuron's zero line, ``|z_k(u)| / |grad z_k(u)|`` (``inf`` where the gradient is 0)."""
    a = np.asarray(u, dtype=np.float64)
    grad = np.broadcast_to(np.eye(2), (len(a), 2, 2))     # d a / d u, (m, width, 2)
    dist = []
    for l, (W, b, slope) in enumerate(network.hidden_layers):
        z = a @ W.T + b
        gz = np.einsum("kj,mjd->mkd", W, grad)
        norm = np.sqrt((gz ** 2).sum(axis=2))
        kink = network.kink_mask(l)     # carried units have no zero line
        with np.errstate(divide="ignore", invalid="ignore"):
            dist.append(np.where(norm > 0, np.abs(z) / norm, np.where(z == 0, 0.0, np.inf))[:, kink])
        d = np.where(z > 0, 1.0, slope)
        d[:, ~kink] = 1.0
        a = z * d
        grad = gz * d[:, :, None]
    return np.concatenate(dist, axis=1)


class Partition2D(Partition):
    """Exact linear regions of a network over a 2D domain.

    Regions are convex polygons in the domain's coordinates ``u`` (for a
    :class:`regions.Plane`, ``x = origin + basis @ u``), stored as CSR lists of
    vertex indices, counter-clockwise, with vertices shared by index.
    See ``docs/design.md`` for the contract.
    """

    dim = 2

    def __init__(self, network, domain, vertices, face_offsets, face_vertices, face_edges, edges,
                 packed_patterns, A, c, vertex_values=None, stats=None, measure=None):
        from kernels.polygon import areas_centroids_perimeters

        self.vertices = np.asarray(vertices, dtype=np.float64)
        self.face_offsets = np.asarray(face_offsets, dtype=np.int64)
        self.face_vertices = np.asarray(face_vertices, dtype=np.int64)
        self.face_edges = np.asarray(face_edges, dtype=np.int64)
        self.edges = np.asarray(edges, dtype=np.int64)
        self.vertex_values = None if vertex_values is None else np.asarray(vertex_values, np.float64)
        area, cen, per = areas_centroids_perimeters(self.vertices, self.face_offsets, self.face_vertices)
        self.centroids = cen
        self.perimeters = per
        super().__init__(network, domain, packed_patterns, area if measure is None else measure,
                         A, c, stats)

    @property
    def n_vertices(self):
        return int(self.vertices.shape[0])

    @property
    def convex(self):
        """True when every region is convex (always, except on non-convex polygon domains)."""
        return self.stats.get("convex", True)

    @cached_property
    def _inradius(self):
        from kernels.polygon import chebyshev

        rad, cen = chebyshev(self.vertices, self.face_offsets, self.face_vertices)
        if not self.convex:
            # regions clipped by a non-convex domain: shapely's maximum inscribed
            # circle, to a tolerance of 1e-9 of each region's size (approximate)
            import shapely

            polys = self.polygons()
            tol = 1e-9 * np.sqrt(self.measure)
            circles = shapely.maximum_inscribed_circle(polys, tolerance=tol)
            c0 = shapely.get_coordinates(shapely.get_point(circles, 0))
            rad = shapely.length(circles)
            cen = c0
        return rad, cen

    @property
    def inradius(self):
        """Radius of the largest disk inside each region (exact Chebyshev radius of
        the convex region; on non-convex polygon domains, clipped regions use
        shapely's maximum_inscribed_circle to 1e-9 of their size)."""
        return self._inradius[0]

    @property
    def chebyshev_centers(self):
        """Centre of the largest inscribed disk of each region."""
        return self._inradius[1]

    @cached_property
    def edge_faces(self):
        """``(E, 2)`` the regions on the two sides of each edge (``-1``: domain boundary)."""
        E = self.edges.shape[0]
        out = np.full((E, 2), -1, dtype=np.int64)
        face_of_slot = np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.face_offsets))
        # the face that traverses the edge in its stored direction is column 0
        start = self.face_vertices
        fwd = start == self.edges[self.face_edges, 0]
        out[self.face_edges[fwd], 0] = face_of_slot[fwd]
        out[self.face_edges[~fwd], 1] = face_of_slot[~fwd]
        return out

    def adjacency(self):
        """scipy.sparse CSR matrix (n, n), True where two regions share an edge."""
        import scipy.sparse as sp

        ef = self.edge_faces
        both = (ef[:, 0] >= 0) & (ef[:, 1] >= 0)
        a, b = ef[both, 0], ef[both, 1]
        n = len(self)
        m = sp.coo_matrix((np.ones(2 * len(a), dtype=bool), (np.r_[a, b], np.r_[b, a])), shape=(n, n))
        m = m.tocsr()
        m.sum_duplicates()
        return m

    def polygons(self):
        """The regions as a list of shapely Polygons (domain coordinates)."""
        import shapely

        counts = np.diff(self.face_offsets)
        rings = shapely.linearrings(self.vertices[self.face_vertices],
                                    indices=np.repeat(np.arange(len(self)), counts))
        return list(shapely.polygons(rings))

    def region_vertices(self, r):
        """``(m, 2)`` vertices of region ``r``, counter-clockwise."""
        return self.vertices[self.face_vertices[self.face_offsets[r]:self.face_offsets[r + 1]]]

    @cached_property
    def _pattern_index(self):
        """Pattern bytes -> the regions that carry it (one, except on a non-convex
        domain, where a pattern's set can be cut into several regions by the notch)."""
        index = {}
        for i, row in enumerate(self.packed_patterns):
            index.setdefault(row.tobytes(), []).append(i)
        return index

    def contains(self, points):
        """Whether each point (domain coordinates) lies in the domain (boundary included)."""
        import shapely

        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if hasattr(self.domain, "polygon"):
            return shapely.covers(self.domain.polygon, shapely.points(pts))
        x0, y0, x1, y1 = self.domain.bounds
        return (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)

    def locate(self, points):
        """Index of the region holding each point (domain coordinates), ``-1`` outside.

        The activation pattern of each point is computed by a float64 forward
        pass and looked up among the regions' patterns; a point on a boundary
        goes to the region on the side where the boundary neuron is off. A
        point whose pattern belongs to no region lies in a sliver thinner than
        the engine's tolerance (which creates none): it goes to the region
        whose polygon holds it, provided every neuron on which the two
        patterns differ has its zero line within ``LOCATE_SLACK * RTOL`` times
        the domain's scale of the point (the sliver's width). Otherwise no
        region holds the point, which is an engine error: ``RuntimeError``,
        naming the first such point. Points outside the domain are ``-1``.
        """
        from .partition import pack_patterns

        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must be shaped (m, 2) in the domain's coordinates, got {pts.shape}")
        out = np.full(len(pts), -1, dtype=np.int64)
        inside = self.contains(pts)
        if not inside.any():
            return out
        x = self.domain.to_input(pts[inside])
        pats = self.network.patterns(x)
        packed = pack_patterns(pats)
        index = self._pattern_index
        candidates = [index.get(row.tobytes(), ()) for row in packed]
        found = np.array([c[0] if len(c) == 1 else -1 for c in candidates], dtype=np.int64)
        shared = np.flatnonzero([len(c) > 1 for c in candidates])
        if len(shared):  # one pattern, several regions: the one whose polygon holds the point
            found[shared] = self._locate_among(pts[inside][shared], [candidates[i] for i in shared])
        missing = np.flatnonzero(found < 0)
        if len(missing):
            found[missing] = self._locate_in_sliver(pts[inside][missing], pats[missing])
        out[inside] = found
        return out

    def _locate_among(self, u, candidates):
        """For each point ``u[i]``, the region of ``candidates[i]`` (regions sharing the
        point's pattern) whose polygon covers it; ``-1`` when none does (then the
        sliver rule of :meth:`locate` decides)."""
        import shapely

        polygons = self.polygons()
        answer = np.full(len(u), -1, dtype=np.int64)
        for i, (point, regions) in enumerate(zip(shapely.points(u), candidates)):
            for r in regions:
                if shapely.covers(polygons[r], point):
                    answer[i] = r
                    break
        return answer

    def _locate_in_sliver(self, u, pats):
        """Regions for points ``u`` whose patterns ``pats`` no region has (see :meth:`locate`)."""
        import shapely

        tree = shapely.STRtree(self.polygons())
        point_idx, region_idx = tree.query(shapely.points(u), predicate="intersects")
        x0, y0, x1, y1 = self.domain.bounds
        scale = max(abs(x0), abs(x1), abs(y0), abs(y1), x1 - x0, y1 - y0)
        width = LOCATE_SLACK * RTOL * scale
        dist = _distance_to_zero_lines(in_domain_coordinates(self.network, self.domain), u)
        answer = np.full(len(u), -1, dtype=np.int64)
        for i, r in zip(point_idx, region_idx):
            differ = pats[i] != self.patterns[r]
            if answer[i] < 0 and np.all(dist[i, differ] <= width):
                answer[i] = r
        bad = np.flatnonzero(answer < 0)
        if len(bad):
            raise RuntimeError(
                f"engine error: no region of this partition holds {len(bad)} of the points located "
                f"(the first: {u[bad[0]].tolist()}); its pattern is in no region and no region "
                "within the tolerance covers it. The partition is wrong there; please report it "
                "with the network and the domain.")
        return answer

    def level_set(self, value=0.0, output=0):
        """Segments ``(k, 2, 2)`` where output ``output`` equals ``value`` (the decision boundary).

        Inside a region the level set is one straight segment; where it runs
        along an edge between regions the edge is reported once. Regions on
        which the output equals ``value`` everywhere (a flat piece of the level
        set) are not reported as areas; their edges to non-flat neighbours are.
        A vertex within ``RTOL * max |output|`` of ``value`` (``RTOL = 1e-10``,
        relative to the output's largest value over the partition: the output
        layer is not cut, so it has no vertex-local zero test) is on the level;
        elsewhere the crossing is interpolated linearly along the edge.
        """
        from kernels.polygon import level_segments

        if self.vertex_values is None:
            raise ValueError("this partition has no vertex values (loaded from an older file)")
        if not 0 <= output < self.vertex_values.shape[1]:
            raise ValueError(f"output {output} out of range; the network has "
                             f"{self.vertex_values.shape[1]} outputs")
        vals = np.ascontiguousarray(self.vertex_values[:, output])
        # values carry rounding from interpolation
        tol = RTOL * max(float(np.abs(vals).max(initial=0.0)), abs(float(value)))
        seg, _, ends = level_segments(self.vertices, vals, self.face_offsets, self.face_vertices,
                                      float(value), tol)
        on_edge = np.flatnonzero(ends[:, 0] >= 0)
        if on_edge.size:  # an edge on the level: once, not once per region that has it
            _, first = np.unique(np.sort(ends[on_edge], axis=1), axis=0, return_index=True)
            keep = np.ones(len(seg), dtype=bool)
            keep[on_edge] = False
            keep[on_edge[first]] = True
            seg = seg[keep]
        return seg
