"""Certified crossings of the boundary curves of an encoded 2D partition.

The faces of :mod:`regions.encoded.engine2d` are polygons whose boundary
polylines follow the neurons' curves ``z_n = F_n(x) + G_n(y) + c_n = 0`` within
``tol``. Where a face's boundary turns from one curve to another, its vertex is
the crossing of two polylines, which can lie ``tol / sin(angle)`` from the true
crossing, and two polylines within ``tol`` of each other may cross where the
curves do not (or not where they do). :func:`certify_crossings` checks every
such junction against the curves themselves:

1. *Labels.* On each face the neurons' rows are the face's (its pattern gives
   them, layer by layer, as in the engine). Every boundary vertex gets its
   nearest curves by the first-order distance ``|z| / |grad z|``; a boundary
   segment is labelled with the curve both of its ends and its midpoint are
   within ``2 tol`` of (the one nearest), or as the domain's edge. A segment on no curve is
   *unlabelled* (reported: the polygon has a piece of boundary that no neuron
   of its face explains).
2. *Junctions.* A vertex whose two segments have different curve labels is a
   junction of curves ``i`` and ``j``: Newton's method on ``z_i = z_j = 0`` from
   the vertex, then the Krawczyk test (:func:`kernels.crossings2d.certify_pairs`)
   on boxes around the Newton point that hold the vertex. A pass certifies that
   the two curves cross exactly once in the box, gives the distance from the
   polygon's vertex to the true crossing (``error``) and a box in which there is
   no other crossing of the two (``radius``). A junction where no box passes
   (a tangency, or curves so nearly parallel that the box must be larger than
   their straightness allows) is *uncertified* and reported with its place,
   never counted as a crossing.
3. *Crossings.* Certified junctions of one pair of curves at one point (the
   corners of the up to four faces around it) are one crossing. Two junctions
   of one face at one crossing mean the polylines cross more often than the
   curves (``repeated``; measured: each such face is a sliver thinner than the
   tolerance, also in ``stats["thin_faces"]``, e.g. 5 of 5 on a 2-PE(5)-16-16-1
   net).

Not checked: that every true crossing has a junction (two curves crossing twice
within ``tol`` of each other may leave no trace in the polylines; the engine's
``near_tangencies`` locate such stretches). Curves meeting the domain's edge
are counted (``edge_junctions``); their points come from the engine's monotone
1D solves on the edge, which are certified already. A network with a max over
more than two values (joined faces whose boundary changes curve where the
winner changes) is not certified in this version.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CrossingCertificate", "certify_crossings", "certify_faces", "merge_raw",
           "certificate_from", "face_rows"]

_REL_TOL = 1e-13        # rounding of a pre-activation, relative to its terms' sizes
_CHUNK_BYTES = 64e6     # per chunk of faces, the rows of their neurons


@dataclass(frozen=True)
class CrossingCertificate:
    """What :func:`certify_crossings` found; neurons are pattern indices (columns of
    ``partition.patterns``).

    Attributes
    ----------
    points : (m, 2) the certified crossings (Newton points; the true crossing is
        within ``error`` of every polygon vertex that stands for it).
    neurons : (m, 2) the two neurons whose curves cross there, ascending.
    error : (m,) the largest distance (max norm) from a polygon vertex at the
        crossing to the true crossing, certified.
    radius : (m,) half-width of a box around ``points`` in which the two curves
        cross nowhere else, certified.
    junctions : number of junction vertices (of curve pairs) examined.
    uncertified : (u, 6) rows ``(x, y, neuron_i, neuron_j, face, reason)`` of the
        junctions not certified; ``reason`` 1: no box passed (a near-tangency or a
        crossing at a tiny angle), 2: a third curve within the crossing's enclosure
        (a triple point), 3: the two rows cross where an earlier neuron has the other
        state (not a crossing of the true curves: the polygon's corner skips a piece
        of a third curve shorter than a few tolerances; measured: the third curve
        passes 2e-6 to 9e-5 from the corner at tol 1e-5).
    unlabelled : (v, 3) rows ``(x, y, face)``: boundary segments on no curve of
        their face within ``2 tol`` (the segment's first vertex).
    repeated : (w, 4) rows ``(x, y, face, count)``: a face meeting one crossing at
        more than one junction.
    edge_junctions : number of junctions of a curve with the domain's edge.
    corner_faces, corner_errors : (t,) each certified junction's face and the
        certified distance (max norm) from its polygon vertex to the true crossing
        (what :attr:`EncodedPartition2D.measure_bounds` needs at the corners).
    """

    points: np.ndarray
    neurons: np.ndarray
    error: np.ndarray
    radius: np.ndarray
    junctions: int
    uncertified: np.ndarray
    unlabelled: np.ndarray
    repeated: np.ndarray
    edge_junctions: int
    corner_faces: np.ndarray
    corner_errors: np.ndarray

    def __len__(self):
        return int(self.points.shape[0])

    def summary(self):
        """Counts and extremes, as :attr:`EncodedPartition2D.stats` keeps them."""
        n = len(self)
        return {"crossings": n, "crossing_junctions": int(self.junctions),
                "crossing_error_max": float(self.error.max()) if n else 0.0,
                "crossing_radius_min": float(self.radius.min()) if n else float("inf"),
                "uncertified_crossings": [tuple(r) for r in self.uncertified.tolist()],
                "unlabelled_segments": int(self.unlabelled.shape[0]),
                "repeated_crossings": int(self.repeated.shape[0]),
                "edge_junctions": int(self.edge_junctions)}


def face_rows(network, bits):
    """Each face's rows of its kink neurons, all layers, in the encoded coordinates:
    ``(Ax, By, Cc)``, ``Ax`` ``(n, N, Fx)`` the coefficients of the x features, ``By``
    ``(n, N, Fy)`` of the y features, ``Cc`` ``(n, N)`` the constants, ``N`` the
    pattern's length; ``bits`` ``(n, N)`` the faces' patterns. The same recurrence as
    the engine (``C_{l+1} = W_{l+1} D_l C_l``, carried units with factor 1)."""
    from .engine2d import next_rows, separable_features

    net = network.kink_first()
    xm, ym, cm, kinds, _, _ = separable_features(net.encoding)
    const_val = np.where(kinds == 2, 1.0, 0.0)
    bits = np.asarray(bits, dtype=bool)
    n = bits.shape[0]
    W0, b0 = net.weights[0], net.biases[0]
    # the rows of distinct pattern prefixes only: faces whose earlier layers' states
    # agree have the same rows (a face of the first layer is cut into several)
    A, B = W0[None, :, xm], W0[None, :, ym]
    C = (b0 + W0[:, cm] @ const_val[cm])[None, :]
    group = np.zeros(n, dtype=np.int64)      # each face's row of A, B, C
    out_a, out_b, out_c = [], [], []
    start = 0
    for l in range(len(net.weights) - 1):
        k = net.n_kinks(l)
        out_a.append(A[group, :k]), out_b.append(B[group, :k]), out_c.append(C[group, :k])
        if l == len(net.weights) - 2:
            break
        key = np.packbits(bits[:, :start + k], axis=1)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        A, B, C = next_rows(net, l, bits[first, start:start + k], A, B, C, group[first])
        group = inverse.reshape(-1)
        start += k
    cat = (lambda parts, axis: np.ascontiguousarray(np.concatenate(parts, axis=axis)))
    return cat(out_a, 1), cat(out_b, 1), cat(out_c, 1)


def _edge_segments(V, ends, vface, touches, outline, tol_edge):
    """Per vertex slot: does the segment starting there lie on the domain's boundary
    (both ends and its midpoint within ``tol_edge`` of it)? Only the vertices of faces
    that ``touches`` (per face: within ``tol_edge`` of the outline) are measured."""
    import shapely

    near = np.zeros(V.shape[0], dtype=bool)
    some = np.flatnonzero(touches[vface])
    near[some] = shapely.distance(shapely.points(V[some]), outline) <= tol_edge
    mid = 0.5 * (V[:-1] + V[1:])
    on = np.zeros(V.shape[0], dtype=bool)
    seg = near[:-1] & near[1:]
    cand = np.flatnonzero(seg)
    on[cand] = shapely.distance(shapely.points(mid[cand]), outline) <= tol_edge
    on[ends - 1] = False             # a ring's closing slot starts no segment
    return on


def certify_crossings(network, geoms, bits, domain_polygon, tol):
    """Certify the junctions of the faces ``geoms`` (shapely polygons with patterns
    ``bits`` ``(n, N)``) of an encoded 2D partition of ``network`` over
    ``domain_polygon`` with boundary tolerance ``tol``: see the module's text.
    Returns a :class:`CrossingCertificate`.

    Examples
    --------
    ``relu(sin(pi x) - 0.5)`` and ``relu(sin(pi y) - 0.5)``: the lines ``x, y = 1/6, 5/6``
    cross at right angles in four points, each a corner of four faces:

    >>> import numpy as np, regions
    >>> W = np.zeros((2, 8)); W[0, 0], W[1, 2] = 1.0, 1.0
    >>> net = regions.Network([W, np.ones((1, 2))], [np.full(2, -0.5), np.zeros(1)],
    ...                       np.zeros(2), regions.PositionalEncoding(2, in_features=2))
    >>> p = regions.partition(net, ((0, 1), (0, 1)))
    >>> c = p.certify_crossings()
    >>> len(c), c.junctions, np.round(6 * c.points[np.lexsort(c.points.T)], 12).tolist()
    (4, 16, [[1.0, 1.0], [5.0, 1.0], [1.0, 5.0], [5.0, 5.0]])
    """
    return certificate_from(certify_faces(network, geoms, bits, domain_polygon, tol))


def certify_faces(network, geoms, bits, domain_polygon, tol, subset=None):
    """The per-face part of :func:`certify_crossings` on the faces ``subset`` (indices
    into ``geoms``; all by default): each face's junctions, labels and Krawczyk
    tests depend on that face alone (its rings, box and pattern) and the domain's
    outline, so parts of a partition can be certified apart (the tiles' workers)
    and joined by :func:`merge_raw`. Returns a dict of arrays, face indices into
    ``geoms``; :func:`certificate_from` makes the certificate.
    """
    import shapely
    from kernels import crossings2d as K

    from .engine2d import face_rings, separable_features

    if network.max_trees is not None:
        raise ValueError("crossings of a network with a max over more than two values are "
                         "not certified (its joined faces change curve where the winner "
                         "changes); certify_crossings takes networks without max_trees")
    xm, ym, _, kinds, wx, wy = separable_features(network.encoding)
    kx = np.ascontiguousarray(kinds[xm], dtype=np.int64)
    ky = np.ascontiguousarray(kinds[ym], dtype=np.int64)
    fx = np.ascontiguousarray(wx[xm], dtype=np.float64)
    fy = np.ascontiguousarray(wy[ym], dtype=np.float64)
    x0, y0, x1, y1 = domain_polygon.bounds
    scale = max(x1 - x0, y1 - y0, abs(x0), abs(x1), abs(y0), abs(y1))
    outline = domain_polygon.boundary
    bits = np.asarray(bits, dtype=bool)
    n, N = bits.shape
    per_face = 8.0 * max(N, 1) * (kx.shape[0] + ky.shape[0] + 1)
    chunk = max(1, int(_CHUNK_BYTES // per_face))
    band = 2.0 * tol + 1e-12 * scale
    kinks = [network.n_kinks(l) for l in range(len(network.weights) - 1)]
    layer_start = np.concatenate([[0], np.cumsum(kinks)]).astype(np.int64)
    layer_of = np.repeat(np.arange(len(kinks)), kinks)
    found = {"pair": [], "face": [], "m": [], "err": [], "rad": [],
             "uncertified": [], "unlabelled": []}
    junctions = edges = 0
    subset = np.arange(n) if subset is None else np.asarray(subset, dtype=np.int64)
    for s in range(0, subset.shape[0], chunk):
        faces = subset[s:s + chunk]
        V, ends, ring_face = face_rings([geoms[f] for f in faces])
        vface = np.repeat(ring_face, np.diff(ends, prepend=0))
        if V.shape[0] == 0 or N == 0:
            continue
        Ax, By, Cc = face_rows(network, bits[faces])
        bounds = np.ascontiguousarray(shapely.bounds(np.asarray([geoms[f] for f in faces],
                                                                dtype=object)))
        cand = K.face_candidates(Ax, By, Cc, kx, fx, ky, fy, bounds, band, _REL_TOL)
        ids, dist = K.nearest_curves(V, vface, Ax, By, Cc, cand, kx, fx, ky, fy, 3, _REL_TOL)
        mid = np.ascontiguousarray(np.concatenate([0.5 * (V[:-1] + V[1:]), V[-1:]]))
        mid_ids, mid_dist = K.nearest_curves(mid, vface, Ax, By, Cc, cand, kx, fx, ky, fy, 3,
                                             _REL_TOL)
        touches = shapely.dwithin(np.asarray([geoms[f] for f in faces], dtype=object),
                                  outline, 1e-12 * scale)
        on_edge = _edge_segments(V, ends, vface, touches, outline, 1e-12 * scale)
        label, jv, before, after = K.segment_labels(ends, ids, dist, mid_ids, mid_dist, on_edge,
                                                    band)
        slot = np.ones(V.shape[0], dtype=bool)
        slot[ends - 1] = False
        bad = np.flatnonzero(slot & (label == K.UNKNOWN))
        found["unlabelled"].append(np.column_stack([V[bad], faces[vface[bad]]]))
        curve = (before >= 0) & (after >= 0)
        edges += int(np.count_nonzero(((before == K.EDGE) & (after >= 0))
                                      | ((after == K.EDGE) & (before >= 0))))
        jv, ni, nj = jv[curve], before[curve], after[curve]
        junctions += int(jv.shape[0])
        if jv.shape[0] == 0:
            continue
        P = np.ascontiguousarray(V[jv])
        pair = np.sort(np.stack([ni, nj], axis=1), axis=1)
        limit = layer_start[layer_of[pair[:, 1]]]   # the rows depend on the earlier layers
        m, status, err, rad = K.certify_pairs(P, vface[jv], ni, nj, limit, bits[faces], Ax, By,
                                              Cc, kx, fx, ky, fy, _REL_TOL, scale)
        no = np.flatnonzero(status != 0)
        found["uncertified"].append(np.column_stack([P[no], pair[no], faces[vface[jv[no]]],
                                                     status[no]]))
        yes = np.flatnonzero(status == 0)
        for key, val in (("pair", pair[yes]), ("face", faces[vface[jv[yes]]]),
                         ("m", m[yes]), ("err", err[yes]), ("rad", rad[yes])):
            found[key].append(val)
    raw = {k: (np.concatenate(v) if v else None) for k, v in found.items()}
    raw["junctions"], raw["edge_junctions"], raw["scale"] = junctions, edges, scale
    return raw


def merge_raw(parts, face_maps):
    """One set of :func:`certify_faces` results from several (``parts``), each
    ``parts[t]``'s face indices mapped through ``face_maps[t]`` (an array, or ``None``
    for indices kept): the entries ordered by face, stably, as one call over all
    faces orders them (per face its vertices' order), so that
    :func:`certificate_from` gives the same certificate."""
    keys = ("pair", "face", "m", "err", "rad")
    out = {k: [] for k in keys + ("uncertified", "unlabelled")}
    for raw, fmap in zip(parts, face_maps):
        mapf = (lambda f: f) if fmap is None else (lambda f: fmap[f.astype(np.int64)])
        if raw["face"] is not None:
            for key in keys:
                out[key].append(mapf(raw["face"]) if key == "face" else raw[key])
        for key, col in (("uncertified", 4), ("unlabelled", 2)):
            if raw[key] is not None:
                rows = raw[key].copy()
                rows[:, col] = mapf(rows[:, col])
                out[key].append(rows)
    merged = {k: (np.concatenate(v) if v else None) for k, v in out.items()}
    if merged["face"] is not None:
        order = np.argsort(merged["face"], kind="stable")
        for key in keys:
            merged[key] = merged[key][order]
    for key, col in (("uncertified", 4), ("unlabelled", 2)):
        if merged[key] is not None:
            merged[key] = merged[key][np.argsort(merged[key][:, col], kind="stable")]
    merged["junctions"] = sum(r["junctions"] for r in parts)
    merged["edge_junctions"] = sum(r["edge_junctions"] for r in parts)
    merged["scale"] = parts[0]["scale"] if parts else 1.0
    return merged


def certificate_from(raw):
    """The :class:`CrossingCertificate` of :func:`certify_faces` results (or of
    :func:`merge_raw`): certified junctions grouped into crossings."""
    points, neurons, error, radius, repeated = _group(raw, raw["scale"])
    unc, unl = raw["uncertified"], raw["unlabelled"]
    return CrossingCertificate(
        points=points, neurons=neurons, error=error, radius=radius,
        junctions=raw["junctions"],
        uncertified=unc if unc is not None else np.empty((0, 6)),
        unlabelled=unl if unl is not None else np.empty((0, 3)),
        repeated=repeated, edge_junctions=raw["edge_junctions"],
        corner_faces=(raw["face"] if raw["face"] is not None else np.zeros(0)).astype(np.int64),
        corner_errors=raw["err"] if raw["err"] is not None else np.zeros(0))

def _group(found, scale):
    """Certified junctions of one pair at one point are one crossing (scipy: pairs of
    Newton points within ``1e-9 scale``, connected components)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if found["m"] is None or found["m"].shape[0] == 0:
        return (np.empty((0, 2)), np.empty((0, 2), dtype=np.int64), np.empty(0), np.empty(0),
                np.empty((0, 4)))
    m, pair = found["m"], found["pair"]
    T = m.shape[0]
    close = cKDTree(m).query_pairs(1e-9 * scale, output_type="ndarray")
    same = np.all(pair[close[:, 0]] == pair[close[:, 1]], axis=1) if close.size else []
    close = close[same] if close.size else close.reshape(0, 2)
    graph = sp.coo_matrix((np.ones(close.shape[0]), (close[:, 0], close[:, 1])), shape=(T, T))
    k, comp = connected_components(graph, directed=False)
    first = np.full(k, -1, dtype=np.int64)
    first[comp[::-1]] = np.arange(T)[::-1]
    error = np.zeros(k)
    np.maximum.at(error, comp, found["err"])
    radius = np.full(k, np.inf)
    np.minimum.at(radius, comp, found["rad"])
    # one face at one crossing twice: the polylines cross more often than the curves
    key, count = np.unique(np.stack([comp, found["face"]], axis=1), axis=0, return_counts=True)
    rep = key[count > 1]
    repeated = np.column_stack([m[first[rep[:, 0]]], rep[:, 1], count[count > 1]]) \
        if rep.shape[0] else np.empty((0, 4))
    return m[first], pair[first].astype(np.int64), error, radius, repeated
