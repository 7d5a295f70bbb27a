"""The encoded 2D engine: regions of a separable-encoded network over a 2D domain.

With a separable encoding (every feature a function of ``x`` alone or of ``y``
alone: :class:`regions.PositionalEncoding` with ``in_features=2``), on a face
where the earlier neurons keep their states every pre-activation is

    z(x, y) = F(x) + G(y) + c,

``F``, ``G`` univariate trigonometric polynomials whose coefficients are the
face's (``C_{l+1} = W_{l+1} D_l C_l``, as in the encoded 1D engine).

How a face is cut by one neuron (:func:`_split_face`)
-----------------------------------------------------
1. *Range test.* On the face's bounding box ``|z(m)| > tol + B_F + B_G`` (``B`` the
   mean value / Taylor bounds of :mod:`kernels.trig2d`) leaves the face uncut.
2. *Critical lines.* The roots of ``F'`` in the box's x range and of ``G'`` in its
   y range, isolated with the certified subdivision of :mod:`kernels.trig`,
   cut the box into a tensor grid of cells on each of which ``F`` and ``G`` are
   monotone. The values at the grid corners then give the exact range of ``z``
   on the box (a second, exact range test).
3. *Cells.* On a cell ``z`` is monotone in ``x`` and in ``y``, so its zero set there
   is empty or one monotone arc, and ``z``'s extreme values sit at the corners:
   a cell whose corners have one sign holds no curve (closed ovals are not
   missed: an oval has extreme ``x`` and ``y`` where ``G' = 0`` or ``F' = 0``, on
   a grid line). A corner with ``z > 0`` is on, else off (``z = 0`` is off, as
   in the forward pass); a corner with ``|z| <= tol`` is a degenerate spot (the
   curve passes through a grid corner within the tolerance, e.g. a saddle or
   a tangency on a corner) and is counted and located in ``stats``. Along each
   cell edge ``z`` is monotone: its root there is a monotone 1D solve to
   ``1e-13`` of the domain's size (:func:`kernels.trig2d.solve_monotone`), shared
   by the two cells of the edge, so neighbouring cells meet exactly.
4. *Arcs.* Each cell's arc joins its two edge roots; points on it come from
   monotone 1D solves at the middle of a chord, until every chord is within
   ``tol`` of the arc. The bound for a chord is the smaller of (a) the
   bounding-box bound ``|dx| |dy| / |chord|`` (a monotone arc between two of
   its points stays in their bounding box) and (b) the curvature bound
   ``dx^2 / 8 max |g''|`` of the arc as a graph ``y = g(x)`` (and its mirror), with
   ``g'' = -(F'' G'^2 + G'' F'^2) / G'^3`` bounded on the chord's box from the
   coefficient moments. Both are rigorous; (b) is what keeps the point count
   near ``sqrt(curvature / tol)`` per unit length.
5. *Split.* The cell pieces on the ``z > 0`` side are unioned with the cells
   wholly positive into one polygon, and the face is split into its
   intersection and difference with it (shapely); each connected part is a face.

A traced model's *carried* units (:attr:`regions.Network.linear`: residual
streams, input skips, the pass-through of a max) are never cut: the network is
taken :meth:`~regions.Network.kink_first`, each layer's cuts run over its
leading kink units only, and the carried units enter the next layer's
coefficients ``W_{l+1} D_l C_l`` with factor 1; they have no pattern bit.

Faces are shapely polygons; a face's boundary is made of polylines each within
``tol`` (Hausdorff) of the true curve. Where two curves cross, the crossing point
of their polylines can be ``tol / sin(angle)`` away from the true one; every such
junction is then checked against the curves (:mod:`regions.encoded.certify`:
a Krawczyk box proves that the two curves cross exactly once near it and bounds
the distance, ``stats["crossing_error_max"]``); the junctions no box certifies
(near-tangencies, triple points to the tolerance) are located in
``stats["uncertified_crossings"]``. Not certified: two curves closer than ``tol``
may swap their order (a sliver face of the wrong pattern, thinner than ``tol``):
such faces are counted and located in ``stats["thin_faces"]``; two curves
crossing twice within ``tol`` of each other may leave no junction (the
``near_tangencies`` scan locates such stretches).
"""
from __future__ import annotations

import numpy as np

from .._shared import check_region_cap, progress_bar
from ..domain import Box, PolygonDomain
from .tolerances import H_TERM, XTOL

__all__ = ["partition_encoded_plane", "separable_features", "NOT_SEPARABLE_MESSAGE",
           "DEFAULT_TOL"]

DEFAULT_TOL = 1e-5       # Hausdorff distance of every boundary polyline to its curve
_REL_TOL = 1e-13         # |z| below this times its coefficient scale counts as zero
_MAX_DEPTH = 60          # halvings of one chord before it is kept above tol (and counted)

NOT_SEPARABLE_MESSAGE = (
    "the 2D partition of an encoded network needs a separable encoding (every feature a "
    "function of x alone or of y alone, as regions.PositionalEncoding(L, in_features=2) "
    "gives); this encoding has features of both coordinates at once (random Fourier "
    "features sin(2 pi b . p) mix x and y), whose zero sets are not cut into monotone "
    "pieces by lines in x and y, so no certified 2D partition is computed for it. Exact "
    "alternatives: regions.encoded.partition_encoded_segment(model, p0, p1) along any "
    "segment, regions.grid_crossings(model, shape=(H, W)) along every pixel row and "
    "column, and regions.sampled_patterns(model, points) for a lower bound of the count.")


def separable_features(encoding):
    """Split an encoding's features by coordinate.

    Returns ``(x_mask, y_mask, const_mask, kinds, wx, wy)``: features of ``x`` alone,
    of ``y`` alone, and constant ones (zero frequency). Raises ``ValueError``
    (:data:`NOT_SEPARABLE_MESSAGE`) when a feature depends on both.
    """
    kinds, omegas = encoding.feature_spec()
    if omegas.shape[1] != 2:
        raise ValueError(f"the encoded 2D engine needs an encoding of 2 coordinates, this one "
                         f"takes {omegas.shape[1]}")
    wx, wy = omegas[:, 0], omegas[:, 1]
    if np.any((wx != 0) & (wy != 0)):
        raise ValueError(NOT_SEPARABLE_MESSAGE)
    xm, ym = wx != 0, wy != 0
    return xm, ym, ~xm & ~ym, kinds, wx, wy


def _domain_polygon(domain):
    import shapely

    if not domain.is_identity:
        raise ValueError("the encoded 2D engine works in the encoding's own (x, y) coordinates; "
                         "a Plane or a mapped domain would mix x and y in every feature (not "
                         "separable). Give a box ((x0, x1), (y0, y1)) or a shapely Polygon")
    if isinstance(domain, Box):
        (x0, x1), (y0, y1) = domain.xr, domain.yr
        return shapely.box(x0, y0, x1, y1)
    if isinstance(domain, PolygonDomain):
        return domain.polygon
    raise ValueError(f"the encoded 2D engine needs a 2D box or polygon domain, got {domain!r}")


def checked_inputs(model, domain, tol, caller):
    """``(network, domain, polygon, tol)`` of an encoded 2D call, each checked: a model
    with a separable encoding first, a 2D box or polygon domain (in the encoding's
    coordinates) on which the network's values stay finite, a positive ``tol``."""
    from .._shared import check_value_range
    from ..domain import as_domain
    from ..network import as_network

    net = as_network(model)
    if net.encoding is None:
        raise ValueError(f"{caller} needs a model whose first module is a regions encoding")
    separable_features(net.encoding)
    dom = as_domain(domain, 2)
    check_value_range(net, dom)
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number (a distance in domain units), got {tol}")
    return net, dom, _domain_polygon(dom), tol


class _Axis:
    """One coordinate's features: kinds, frequencies, and the derivative's features."""

    def __init__(self, kinds, w):
        from kernels import trig2d as T2

        self.kinds = np.ascontiguousarray(kinds, dtype=np.int64)
        self.w = np.ascontiguousarray(w, dtype=np.float64)
        self.dkinds, _, self.dscale, self.dconst = T2.derivative_features(self.kinds, self.w)

    def critical_points(self, coef, lo, hi, scale):
        """Roots of ``F'`` (sign changes) per row of ``coef`` on ``[lo_i, hi_i]``:
        ``(row, t)`` arrays (certified isolation of :mod:`kernels.trig`)."""
        from kernels import trig as T

        P = coef.shape[0]
        F = self.kinds.shape[0]
        if F == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        Cf = np.empty((P, F + 1, 1))
        Cf[:, :F, 0] = coef * self.dscale
        Cf[:, F, 0] = coef @ self.dconst
        rp, rt, _, _, _ = T.isolate_pieces(np.ascontiguousarray(lo), np.ascontiguousarray(hi),
                                           Cf, self.dkinds, np.zeros(F), self.w, T.REL_TOL,
                                           H_TERM * scale, XTOL * scale, 0, P)
        return rp, rt


def _cell_arcs(xs, ys, a, b, c, ax, ay, tol, tol_z, xtol, where, stats, face=None):
    """The zero set of ``z = F(x) + G(y) + c`` on the tensor grid ``xs`` x ``ys`` (lines
    between which ``F`` and ``G`` are monotone), one monotone arc per cell.

    Returns ``(S, full, arcs)``: ``S`` the corner signs (``z > 0``), ``full`` the cells
    whose four corners are positive, ``arcs`` a list of ``(line, e0, e1, i, j)``: the
    polyline of cell ``(i, j)``'s arc (within ``tol`` of the curve) from its root on
    cell edge ``e0`` to its root on edge ``e1`` (edges counter-clockwise: bottom,
    right, top, left). With ``face``, only the cells whose box meets the face are
    kept. Corners with ``|z| <= tol_z`` (on the face, with ``face``) are degenerate
    spots, appended to ``stats["corner_zeros"]`` with ``where``."""
    import shapely
    from kernels import trig2d as T2

    Fv = T2.evaluate(a, ax.kinds, ax.w, xs)
    Gv = T2.evaluate(b, ay.kinds, ay.w, ys)
    Z = Fv[:, None] + Gv[None, :] + c
    S = Z > 0
    near = np.argwhere(np.abs(Z) <= tol_z)
    if face is not None and near.shape[0]:
        # only the spots on the face (within tol) are degenerate spots of the partition
        on_face = shapely.dwithin(face, shapely.points(xs[near[:, 0]], ys[near[:, 1]]), tol)
        near = near[on_face]
    for i, j in near:
        stats["corner_zeros"].append((float(xs[i]), float(ys[j])) + where)
    # roots on the grid edges, one per edge with a sign change, shared by its cells
    hmask = S[:-1, :] != S[1:, :]
    vmask = S[:, :-1] != S[:, 1:]
    hroot = np.full(hmask.shape, np.nan)
    vroot = np.full(vmask.shape, np.nan)
    hi_, hj = np.nonzero(hmask)
    if hi_.shape[0]:
        r, ok = T2.solve_monotone(a, ax.kinds, ax.w, Gv[hj] + c, xs[hi_], xs[hi_ + 1], xtol)
        hroot[hi_, hj] = r
        stats["solve_fallbacks"] += int((~ok).sum())
    vi, vj = np.nonzero(vmask)
    if vi.shape[0]:
        r, ok = T2.solve_monotone(b, ay.kinds, ay.w, Fv[vi] + c, ys[vj], ys[vj + 1], xtol)
        vroot[vi, vj] = r
        stats["solve_fallbacks"] += int((~ok).sum())
    s00, s10, s11, s01 = S[:-1, :-1], S[1:, :-1], S[1:, 1:], S[:-1, 1:]
    full = s00 & s10 & s11 & s01
    mixed = ~full & (s00 | s10 | s11 | s01)
    if face is not None and full.size > 4:
        ii, jj = np.nonzero(full | mixed)
        meets = shapely.intersects(face, shapely.box(xs[ii], ys[jj], xs[ii + 1], ys[jj + 1]))
        keep = np.zeros_like(full)
        keep[ii[meets], jj[meets]] = True
        full &= keep
        mixed &= keep
    ci, cj = np.nonzero(mixed)
    if ci.shape[0] == 0:
        return S, full, []
    P, Q, ends = [], [], []
    for i, j in zip(ci.tolist(), cj.tolist()):
        cut = []
        if hmask[i, j]:
            cut.append((0, (hroot[i, j], ys[j])))
        if vmask[i + 1, j]:
            cut.append((1, (xs[i + 1], vroot[i + 1, j])))
        if hmask[i, j + 1]:
            cut.append((2, (hroot[i, j + 1], ys[j + 1])))
        if vmask[i, j]:
            cut.append((3, (xs[i], vroot[i, j])))
        if len(cut) != 2:
            # four sign changes cannot happen for a separable z (z00 + z11 = z10 + z01);
            # rounding at a saddle can give it: located, and paired along the cell
            stats["ambiguous_cells"].append((float(xs[i]), float(ys[j])) + where)
            pairs = [(cut[0], cut[1]), (cut[2], cut[3])] if len(cut) == 4 else []
        else:
            pairs = [(cut[0], cut[1])]
        for (e0, p0), (e1, p1) in pairs:
            P.append(p0), Q.append(p1), ends.append((e0, e1, i, j))
    pts, bounds, fallbacks, unrefined = T2.refine_arcs(
        np.array(P), np.array(Q), np.ascontiguousarray(a), ax.kinds, ax.w,
        np.ascontiguousarray(b), ay.kinds, ay.w, float(c), float(tol), float(xtol), _MAX_DEPTH)
    stats["solve_fallbacks"] += int(fallbacks)
    stats["unrefined_arcs"] += int(unrefined)
    return S, full, [(pts[bounds[n]:bounds[n + 1]],) + e for n, e in enumerate(ends)]


def _rings(geom):
    """The coordinate arrays of every ring of a polygonal geometry."""
    import shapely

    # exterior then holes of each polygon part (other parts have no rings)
    coords, ring = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geom)),
                                           return_index=True)
    if coords.shape[0] == 0:
        return []
    return np.split(coords, np.flatnonzero(np.diff(ring)) + 1)


def face_rings(geoms):
    """Every ring of the polygons ``geoms`` (exterior, then holes, part by part), back to
    back: ``(V, ends, ring_face)``, ring ``r`` the vertices before ``ends[r]`` (closed:
    its last repeats its first) of face ``ring_face[r]``; from three vectorised shapely
    calls."""
    import shapely

    parts, part_face = shapely.get_parts(np.asarray(geoms, dtype=object), return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, vert_ring = shapely.get_coordinates(rings, return_index=True)
    ends = np.searchsorted(vert_ring, np.arange(1, rings.shape[0] + 1)).astype(np.int64)
    return np.ascontiguousarray(coords), ends, part_face[ring_part]


def _record_runs(V, verts, lengths, crossing, where, stats):
    """The near-tangency scan's runs into ``stats`` (see :func:`_near_tangencies`)."""
    for v, length, cross in zip(verts.tolist(), lengths.tolist(), crossing.tolist()):
        kind = "shallow_crossings" if cross else "near_tangencies"
        stats[kind].append((float(V[v, 0]), float(V[v, 1])) + where + (length,))


def _near_tangencies(rings, a, b, c, ax, ay, tol, tol_z, where, stats):
    """Locate the stretches of a face's boundary (its closed ``rings``) that run within ``2 tol`` of the new
    curve for longer than ``8 tol``: where the polylines (each within ``tol``) may
    cross or not whatever the true curves do. A stretch on which the estimated
    distance keeps one sign is a near-tangency (``stats["near_tangencies"]``: the
    curve touches the boundary, or passes within the tolerance of it); one on which
    it changes sign is a crossing at an angle below about 30 degrees
    (``stats["shallow_crossings"]``: its location is good to ``tol / sin(angle)``).
    Entries are ``(x, y, layer, neuron, length)``; a spot on the boundary of two
    faces is found from each of them.

    The signed distance of a boundary vertex to the curve is estimated as
    ``z / |grad z|`` and interpolated linearly along each boundary segment
    (:func:`kernels.trig2d.boundary_runs`, all of the face's rings in one call).
    """
    from kernels import trig2d as T2

    if not rings:
        return
    V = np.ascontiguousarray(np.concatenate(rings))
    ends = np.cumsum([r.shape[0] for r in rings]).astype(np.int64)
    verts, lengths, crossing = T2.boundary_runs(
        V, ends, np.ascontiguousarray(a), ax.kinds, ax.w, np.ascontiguousarray(b), ay.kinds,
        ay.w, float(c), float(tol_z), 2 * tol, 8 * tol)
    _record_runs(V, verts, lengths, crossing, where, stats)


def _near_tangencies_many(geoms, a, b, c, ax, ay, tol, tol_z, where, stats):
    """:func:`_near_tangencies` of every face ``geoms[t]`` against its own rows ``a[t]``,
    ``b[t]``, ``c[t]``, ``tol_z[t]``: the faces' rings from one vectorised shapely call
    and one kernel call (:func:`kernels.trig2d.boundary_runs_many`), the entries in the
    order of one call per face."""
    from kernels import trig2d as T2

    if not geoms:
        return
    V, ends, ring_face = face_rings(geoms)
    if V.shape[0] == 0:
        return
    last_ring = np.searchsorted(ring_face, np.arange(1, len(geoms) + 1)).astype(np.int64)
    verts, lengths, crossing, _ = T2.boundary_runs_many(
        V, ends, last_ring, _rows(a), ax.kinds, ax.w, _rows(b), ay.kinds, ay.w,
        np.ascontiguousarray(c, dtype=np.float64), np.ascontiguousarray(tol_z, dtype=np.float64),
        2 * tol, 8 * tol)
    _record_runs(V, verts, lengths, crossing, where, stats)


def _parts(geom):
    """The polygons of positive area among the parts of ``geom``; of an array of
    geometries, ``(parts, index)`` with each part's index into the array."""
    import shapely

    if isinstance(geom, np.ndarray):
        parts, at = shapely.get_parts(geom, return_index=True)
        good = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)
        return parts[good], at[good]
    if geom is None or geom.is_empty:
        return []
    return [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon) and g.area > 0]


def _rows(coef):
    coef = np.asarray(coef, dtype=np.float64)
    return np.ascontiguousarray(coef[None, :] if coef.ndim == 1 else coef)


def _range_test(geoms, a, b, c, ax, ay, stats, bnd=None):
    """The cheap range test of one neuron (rows ``a``, ``b``, ``c`` per face, or one row
    shared by every face) on each face's bounding box (:func:`kernels.trig2d.range_bounds`;
    ``bnd``, the boxes, when the caller has them):
    ``(bounds, bit, open, tol_z)``, ``bit`` the neuron's state on the faces it leaves
    closed, ``open`` the faces it may cut."""
    import shapely
    from kernels import trig2d as T2

    n = len(geoms)
    if bnd is None:
        bnd = shapely.bounds(np.asarray(geoms, dtype=object))
    zm, tol_z, reach = T2.range_bounds(_rows(a), ax.kinds, ax.w, _rows(b), ay.kinds, ay.w,
                                       np.ascontiguousarray(np.atleast_1d(c), dtype=np.float64),
                                       bnd, _REL_TOL)
    bit = zm > 0
    open_ = np.flatnonzero(np.abs(zm) <= tol_z + reach)
    stats["range_tests"] += n
    stats["range_open"] += int(open_.shape[0])
    return bnd, bit, open_, tol_z


def _split_by_shared_neuron(geoms, a, b, c, ax, ay, tol, scale, domain, curves, layer, k, stats):
    """Cut every face by one neuron whose coefficients are the same on all of them (the
    first layer): its positive set is made once over the domain's bounding box and
    every face the range test leaves open is cut by it (vectorised shapely).

    ``curves`` holds the rings of the earlier neurons' positive sets (within the
    domain): the near-tangencies of the new curve are looked for along them once,
    instead of along every face's boundary. Returns ``(children, parent, bit)``.
    """
    import shapely

    n = len(geoms)
    bnd, bit, open_, tol_z = _range_test(geoms, a, b, c, ax, ay, stats)
    if open_.shape[0] == 0:
        return list(geoms), np.arange(n), bit
    x0, y0, x1, y1 = domain.bounds
    rx, tx = ax.critical_points(a[None], np.array([x0]), np.array([x1]), scale)
    ry, ty = ay.critical_points(b[None], np.array([y0]), np.array([y1]), scale)
    # the neuron's positive set on the domain's box: one problem of the per-face code
    _, cells, _ = _positive_pieces(
        np.array([domain], dtype=object), np.array([[x0, y0, x1, y1]]), tx,
        np.array([0, tx.shape[0]]), ty, np.array([0, ty.shape[0]]), a[None], b[None],
        np.array([c], dtype=np.float64), np.array([tol_z.max()]), ax, ay, tol, XTOL * scale,
        (layer, k), stats, range_test=False)
    boundary_rings = curves + _rings(domain)
    _near_tangencies(boundary_rings, a, b, c, ax, ay, tol, tol_z.max(), (layer, k), stats)
    if not cells.shape[0]:
        bit[open_] = False
        return list(geoms), np.arange(n), bit
    curves.extend(_rings(shapely.intersection(shapely.union_all(cells), domain)))
    # each face is cut by the union of the cell pieces that meet it only (a face
    # against the whole positive set would cost the whole set's size every time)
    cells = np.asarray(cells, dtype=object)
    arr = np.asarray(geoms, dtype=object)[open_]
    fi, pj = shapely.STRtree(cells).query(arr, predicate="intersects")
    order = np.argsort(fi, kind="stable")
    fi, pj = fi[order], pj[order]
    starts = np.searchsorted(fi, np.arange(open_.shape[0] + 1))
    pieces = {}
    for slot, f in enumerate(open_.tolist()):
        near = pj[starts[slot]:starts[slot + 1]]
        if near.shape[0] == 0:
            bit[f] = False
            continue
        local = shapely.union_all(cells[near])
        g = geoms[f]
        on, off = _parts(shapely.intersection(g, local)), _parts(shapely.difference(g, local))
        if not on or not off:
            bit[f] = bool(on)
            continue
        pieces[f] = [(p, True) for p in on] + [(p, False) for p in off]
    children, parent, bits = [], [], []
    for f in range(n):
        if f in pieces:
            for p, s in pieces[f]:
                children.append(p), parent.append(f), bits.append(s)
        else:
            children.append(geoms[f]), parent.append(f), bits.append(bit[f])
    return children, np.asarray(parent, dtype=np.int64), np.asarray(bits, dtype=bool)


def _by_problem(row, t, m):
    """Roots ``t`` of problems ``row`` (``0 .. m-1``) grouped by problem: ``(t, starts)``,
    problem ``i``'s roots ``t[starts[i]:starts[i + 1]]`` in their order (a mask per
    problem would cost the number of problems times the number of roots)."""
    order = np.argsort(row, kind="stable")
    return t[order], np.searchsorted(row[order], np.arange(m + 1))


def _split_layer_neuron(geoms, a, b, c, ax, ay, tol, scale, layer, k, stats, bnd=None):
    """Cut every face by neuron ``k`` (coefficient rows ``a``, ``b``, ``c``, one per face;
    ``bnd`` the faces' boxes, when the caller has them).

    Returns ``(children, parent, bit, boxes)``: the new faces (an object array), the
    face each came from, the neuron's state on it and its box.
    """
    import shapely
    from kernels import facecut2d as F2

    n = len(geoms)
    arr = np.asarray(geoms, dtype=object)
    bnd, bit, open_, tol_z = _range_test(arr, a, b, c, ax, ay, stats, bnd)
    x0, y0, x1, y1 = bnd.T
    if open_.shape[0] == 0:
        return arr, np.arange(n), bit, bnd
    rx, tx = ax.critical_points(a[open_], x0[open_], x1[open_], scale)
    ry, ty = ay.critical_points(b[open_], y0[open_], y1[open_], scale)
    tx, sx = _by_problem(rx, tx, open_.shape[0])
    ty, sy = _by_problem(ry, ty, open_.shape[0])
    status, pos = _positive_regions(arr[open_], bnd[open_], tx, sx, ty, sy, a[open_], b[open_],
                                    c[open_], tol_z[open_], ax, ay, tol, XTOL * scale,
                                    (layer, k), stats)
    closed = status != F2.SEARCHED
    bit[open_[closed]] = status[closed] == F2.CLOSED_ON
    scanned = open_[~closed]          # faces whose boundary is scanned for near-tangencies
    has = np.asarray([q is not None for q in pos], dtype=bool)
    bit[scanned[~has]] = False
    split = scanned[has]              # faces to split, against the neuron's positive set
    n_on = n_off = np.zeros(0, dtype=np.int64)
    on = off = np.empty(0, dtype=object)
    if split.shape[0]:
        # every face against its positive set, both sides, in two vectorised shapely calls
        pos_arr = np.asarray([q for q in pos if q is not None], dtype=object)
        on, on_at = _parts(shapely.intersection(arr[split], pos_arr))
        off, off_at = _parts(shapely.difference(arr[split], pos_arr))
        n_on = np.bincount(on_at, minlength=split.shape[0])
        n_off = np.bincount(off_at, minlength=split.shape[0])
        bit[split[n_on == 0]] = False
        bit[split[(n_on > 0) & (n_off == 0)]] = True
    _near_tangencies_many(arr[scanned].tolist(), a[scanned], b[scanned], c[scanned], ax, ay,
                          tol, tol_z[scanned], (layer, k), stats)
    # the children in face order, a cut face's positive parts before its negative ones
    cut = (n_on > 0) & (n_off > 0)
    count = np.ones(n, dtype=np.int64)
    count[split[cut]] = n_on[cut] + n_off[cut]
    first = np.cumsum(count) - count
    children = np.empty(int(count.sum()), dtype=object)
    bits = np.empty(children.shape[0], dtype=bool)
    boxes = np.empty((children.shape[0], 4))
    keep = np.ones(n, dtype=bool)
    keep[split[cut]] = False
    children[first[keep]] = arr[keep]
    bits[first[keep]] = bit[keep]
    boxes[first[keep]] = bnd[keep]
    for parts, at, side in ((on, n_on, True), (off, n_off, False)):
        idx = np.repeat(np.arange(split.shape[0]), at)
        sel = cut[idx]
        rank = np.arange(idx.shape[0]) - (np.cumsum(at) - at)[idx]
        place = first[split[idx[sel]]] + rank[sel] + (0 if side else n_on[idx[sel]])
        children[place] = parts[sel]
        bits[place] = side
        boxes[place] = shapely.bounds(parts[sel])
    return children, np.repeat(np.arange(n), count), bits, boxes


def _positive_regions(faces, bnd, tx, sx, ty, sy, a, b, c, tol_z, ax, ay, tol, xtol, where,
                      stats):
    """The positive set of one neuron on each of the faces ``faces``
    (:func:`_positive_pieces`, each face's pieces unioned).

    Returns ``(status, pos)``: ``status[s]`` as :func:`kernels.facecut2d.grid_cells`
    (the faces the grid's corners leave uncut), and for each searched face in order
    its positive set (a shapely geometry within ``tol``), ``None`` where it has none.
    """
    import shapely
    from kernels import facecut2d as F2

    status, pieces, bounds = _positive_pieces(faces, bnd, tx, sx, ty, sy, a, b, c, tol_z, ax,
                                              ay, tol, xtol, where, stats)
    pos = []
    for s_ in np.flatnonzero(status == F2.SEARCHED).tolist():
        group = pieces[bounds[s_]:bounds[s_ + 1]]
        pos.append(shapely.union_all(group) if group.shape[0] else None)
    return status, pos


def _positive_pieces(faces, bnd, tx, sx, ty, sy, a, b, c, tol_z, ax, ay, tol, xtol, where,
                     stats, range_test=True):
    """The pieces of one neuron's positive set on each of the faces ``faces`` (rows
    ``a[s]``, ``b[s]``, ``c[s]``, boxes ``bnd[s]``, critical points
    ``tx[sx[s]:sx[s + 1]]`` and ``ty[sy[s]:sy[s + 1]]``), one per cell: the wholly
    positive cells of the face's grid and the positive sides of its cells' arcs, only
    the cells that meet the face on a grid of more than 4 cells
    (:mod:`kernels.facecut2d`, the cells that meet their face by one vectorised
    shapely call).

    Returns ``(status, pieces, bounds)``: ``status[s]`` as
    :func:`kernels.facecut2d.grid_cells`, face ``s``'s pieces
    ``pieces[bounds[s]:bounds[s + 1]]`` (its wholly positive cells, then its cells'
    pieces, in the cells' order). Degenerate spots on the faces (within ``tol``) go
    into ``stats``. ``range_test=False``: every face searched (see ``grid_cells``).
    """
    import shapely
    from kernels import facecut2d as F2

    (status, gx, gxo, gy, gyo, S, so, hroot, ho, vroot, vo, near, cells,
     fallbacks) = F2.grid_cells(np.ascontiguousarray(bnd), tx, sx, ty, sy, _rows(a), ax.kinds,
                                ax.w, _rows(b), ay.kinds, ay.w, np.ascontiguousarray(c),
                                np.ascontiguousarray(tol_z), float(xtol), range_test)
    stats["solve_fallbacks"] += int(fallbacks)
    stats["faces_searched"] += int(np.count_nonzero(status == F2.SEARCHED))
    if near.shape[0]:
        # only the spots on the face (within tol) are degenerate spots of the partition
        px, py = gx[gxo[near[:, 0]] + near[:, 1]], gy[gyo[near[:, 0]] + near[:, 2]]
        on_face = shapely.dwithin(faces[near[:, 0]], shapely.points(px, py), tol)
        for x, y in zip(px[on_face].tolist(), py[on_face].tolist()):
            stats["corner_zeros"].append((x, y) + where)
    cs, ci, cj = cells[:, 0], cells[:, 1], cells[:, 2]
    big = ((np.diff(gxo) - 1) * (np.diff(gyo) - 1) > 4)[cs]
    if big.any():          # on a grid of more than 4 cells, only those meeting the face
        b_s, b_i, b_j = cs[big], ci[big], cj[big]
        meets = shapely.intersects(faces[b_s], shapely.box(
            gx[gxo[b_s] + b_i], gy[gyo[b_s] + b_j], gx[gxo[b_s] + b_i + 1],
            gy[gyo[b_s] + b_j + 1]))
        keep = np.ones(cells.shape[0], dtype=bool)
        keep[np.flatnonzero(big)[~meets]] = False
        cells = cells[keep]
        cs, ci, cj = cells[:, 0], cells[:, 1], cells[:, 2]
    full = cells[:, 3] == 1
    mixed = np.ascontiguousarray(cells[~full])
    V, ends, ring_cell, ambiguous, arcs, fb, unrefined = F2.cell_rings(
        mixed, gx, gxo, gy, gyo, S, so, hroot, ho, vroot, vo, _rows(a), ax.kinds, ax.w,
        _rows(b), ay.kinds, ay.w, np.ascontiguousarray(c), float(tol), float(xtol), _MAX_DEPTH)
    stats["solve_fallbacks"] += int(fb)
    stats["unrefined_arcs"] += int(unrefined)
    for q in ambiguous.tolist():
        s_, i_, j_ = mixed[q, 0], mixed[q, 1], mixed[q, 2]
        stats["ambiguous_cells"].append((float(gx[gxo[s_] + i_]), float(gy[gyo[s_] + j_]))
                                        + where)
    fs, fi, fj = cs[full], ci[full], cj[full]
    boxes = shapely.box(gx[gxo[fs] + fi], gy[gyo[fs] + fj], gx[gxo[fs] + fi + 1],
                        gy[gyo[fs] + fj + 1])
    if ends.shape[0]:      # the cells' pieces made at once (each ring closed by shapely)
        polys = shapely.polygons(shapely.linearrings(
            V, indices=np.repeat(np.arange(ends.shape[0]), np.diff(ends, prepend=0))))
        bad = ~shapely.is_valid(polys)
        if bad.any():
            polys[bad] = shapely.make_valid(polys[bad])
    else:
        polys = np.empty(0, dtype=object)
    # per face: its wholly positive cells, then its cells' pieces, in the cells' order
    piece_face = np.concatenate([fs, mixed[ring_cell, 0]])
    order = np.argsort(piece_face, kind="stable")
    pieces = np.concatenate([boxes, polys])[order]
    bounds = np.searchsorted(piece_face[order], np.arange(faces.shape[0] + 1))
    return status, pieces, bounds


def level_set_curves(network, geoms, A, c, output, value, tol):
    """Where output ``output`` equals ``value`` on the faces ``geoms`` (output maps ``A``
    ``(n, n_out, n_features)``, ``c`` ``(n, n_out)`` in the encoded space, as the engine
    returns them): on a face the output minus ``value`` is ``F(x) + G(y) + c``, a curve
    of the same kind as a neuron's, traced with the same certified steps (range test,
    critical lines, one monotone arc per cell, chords within ``tol``) and clipped to
    the face.

    Returns ``(lines, stats)``: the arcs as a shapely MultiLineString (cell arcs joined
    where they meet) and the degenerate spots in ``stats``: ``corner_zeros``,
    ``ambiguous_cells`` (with ``(x, y, -1, face)`` locations), ``solve_fallbacks``,
    ``unrefined_arcs``, and ``flat_faces``, the faces on which the output equals
    ``value`` everywhere to the zero tolerance (not drawn as lines).
    """
    import shapely

    xm, ym, _, kinds, wx, wy = separable_features(network.encoding)
    ax, ay = _Axis(kinds[xm], wx[xm]), _Axis(kinds[ym], wy[ym])
    a = np.ascontiguousarray(A[:, output][:, xm])
    b = np.ascontiguousarray(A[:, output][:, ym])
    cc = np.ascontiguousarray(c[:, output], dtype=np.float64) - value   # constants are in c
    stats = {"corner_zeros": [], "ambiguous_cells": [], "solve_fallbacks": 0,
             "unrefined_arcs": 0, "range_tests": 0, "range_open": 0, "flat_faces": []}
    if not geoms:
        return shapely.MultiLineString([]), stats
    bnd, _, open_, tol_z = _range_test(geoms, a, b, cc, ax, ay, stats)
    # the faces' extent from their boxes (a union of every face would be an overlay)
    scale = max(bnd[:, 2].max() - bnd[:, 0].min(), bnd[:, 3].max() - bnd[:, 1].min())
    coef = np.abs(a).sum(axis=1) + np.abs(b).sum(axis=1)
    rx, tx = ax.critical_points(a[open_], bnd[open_, 0], bnd[open_, 2], scale)
    ry, ty = ay.critical_points(b[open_], bnd[open_, 1], bnd[open_, 3], scale)
    tx, sx = _by_problem(rx, tx, open_.shape[0])
    ty, sy = _by_problem(ry, ty, open_.shape[0])
    lines = []
    for slot, f in enumerate(open_.tolist()):
        if coef[f] <= tol_z[f] and abs(cc[f]) <= tol_z[f]:
            stats["flat_faces"].append(f)
            continue
        xs = np.unique(np.concatenate([[bnd[f, 0]], tx[sx[slot]:sx[slot + 1]], [bnd[f, 2]]]))
        ys = np.unique(np.concatenate([[bnd[f, 1]], ty[sy[slot]:sy[slot + 1]], [bnd[f, 3]]]))
        g = geoms[f]
        _, _, arcs = _cell_arcs(xs, ys, a[f], b[f], cc[f], ax, ay, tol, tol_z[f],
                                XTOL * scale, (-1, f), stats, face=g)
        if arcs:
            clipped = shapely.intersection(shapely.MultiLineString([t[0] for t in arcs]), g)
            lines.extend(p for p in shapely.get_parts(clipped)
                         if isinstance(p, shapely.LineString) and p.length > 0)
    merged = shapely.line_merge(shapely.MultiLineString(lines)) if lines else None
    if merged is None or merged.is_empty:
        return shapely.MultiLineString([]), stats
    if isinstance(merged, shapely.LineString):
        merged = shapely.MultiLineString([merged])
    return merged, stats


def next_rows(net, l, bits, A, B, C, rows=None, chunk=4096):
    """Each face's coefficient rows of hidden layer ``l + 1`` (or the output) from those
    of layer ``l`` (``A`` ``(n, n_l, Fx)``, ``B`` ``(n, n_l, Fy)``, ``C`` ``(n, n_l)``) and
    the faces' states ``bits`` ``(n, n_kinks(l))`` of its kink units: ``W_{l+1} D_l C_l``.
    ``net`` is :meth:`~regions.Network.kink_first` (the layer's kink units lead).

    With ``rows`` (``(n,)``), face ``i``'s layer-``l`` rows are ``A[rows[i]]`` (the faces at
    the layer's start, before its neurons cut them): gathered ``chunk`` faces at a
    time, so that the gathered ``(n, n_l, F)`` rows are never held at once (for the
    paper's PE(5) network, tens of GB at the last hidden layer)."""
    W, bias = net.weights[l + 1], net.biases[l + 1]
    n = bits.shape[0]
    if rows is None:
        rows = np.arange(n)
    outs = [np.empty((n, W.shape[0], A.shape[2])), np.empty((n, W.shape[0], B.shape[2])),
            np.empty((n, W.shape[0]))]
    for s in range(0, n, chunk):
        r = rows[s:s + chunk]
        # the activations' factors: 1 or the slope for a kink unit, 1 (identity) for a
        # carried unit, which has no bit and is never toggled
        D = np.ones((r.shape[0], net.weights[l].shape[0]))
        D[:, :bits.shape[1]] = np.where(bits[s:s + chunk], 1.0, net.slopes[l])
        # one batched BLAS product per coordinate: (n, j, k) @ (n, k, f); each face's
        # product is its own, so the chunks give the same floats as one call
        outs[0][s:s + chunk] = np.matmul(W, D[:, :, None] * A[r])
        outs[1][s:s + chunk] = np.matmul(W, D[:, :, None] * B[r])
        outs[2][s:s + chunk] = (D * C[r]) @ W.T + bias
    return tuple(outs)


def _keep_faces_at(points, owner, geoms, parent):
    """After a neuron's cut: the children (indices into ``geoms``) that hold one of
    ``points``, and each point's child. ``owner[i]`` is point ``i``'s face before
    the cut (``parent`` maps each child to it, non-decreasing). A point on the
    boundary of two children goes to the first that covers it, one in no child
    (a gap of the polylines, below ``tol``) to the nearest."""
    import shapely

    n_old = int(owner.max()) + 1 if owner.shape[0] else 0
    count = np.bincount(parent, minlength=n_old)
    first = np.searchsorted(parent, np.arange(n_old))
    new = first[owner]
    split = np.flatnonzero(count[owner] > 1)
    if split.shape[0]:
        o = owner[split]
        reps = count[o]
        pt = np.repeat(split, reps)
        within = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        child = np.repeat(first[o], reps) + within       # every child of the point's face
        arr = np.asarray(geoms, dtype=object)
        dist = shapely.distance(arr[child], shapely.points(points[pt]))
        # per point the first child at distance 0, else the nearest
        order = np.lexsort((child, dist, pt))
        pick = np.ones(order.shape[0], dtype=bool)
        pick[1:] = pt[order][1:] != pt[order][:-1]
        new[pt[order][pick]] = child[order][pick]
    kept, owner = np.unique(new, return_inverse=True)
    return kept, owner.reshape(-1)


def encoded_plane_faces(net, domain_polygon, tol=DEFAULT_TOL, max_regions=None, points=None,
                        progress=False):
    """Core of the encoded 2D engine: faces of ``net`` (a separable-encoded
    :class:`regions.Network`) over a shapely polygon.

    Returns ``(geoms, bits, A, c, stats)``: the faces (shapely Polygons), their
    activation patterns ``(n, n_hidden)`` bool, and the output map of each face in
    the encoded space (``A`` ``(n, n_out, n_features)``, ``c`` ``(n, n_out)``).

    With ``points`` (``(m, 2)``, inside the polygon) only the faces holding them are
    made: after each neuron's cut the pieces that hold no point are dropped, so at
    most ``m`` faces are cut at any time; each kept face is the full partition's
    (a face is cut into its connected parts, and the part holding a point is cut
    on). ``stats["face_of_point"]`` is then each point's face. ``progress``: a bar
    over the neurons (:func:`regions._shared.progress_bar`).
    """
    net = net.kink_first()   # carried units after each layer's kink units: never cut
    xm, ym, cm, kinds, wx, wy = separable_features(net.encoding)
    ax, ay = _Axis(kinds[xm], wx[xm]), _Axis(kinds[ym], wy[ym])
    const_val = np.where(kinds == 2, 1.0, 0.0)          # sin 0 = 0, cos 0 = 1, raw 0
    W0, b0 = net.weights[0], net.biases[0]
    A = W0[None, :, xm].copy()
    B = W0[None, :, ym].copy()
    C = (b0 + W0[:, cm] @ const_val[cm])[None, :].copy()
    x0, y0, x1, y1 = domain_polygon.bounds
    scale = max(x1 - x0, y1 - y0)
    geoms = [domain_polygon]
    stats = {"corner_zeros": [], "ambiguous_cells": [], "near_tangencies": [],
             "shallow_crossings": [], "solve_fallbacks": 0,
             "unrefined_arcs": 0, "range_tests": 0, "range_open": 0, "faces_searched": 0}
    all_bits = []
    n_layers = len(net.weights) - 1
    faces_per_layer = []
    if points is not None:
        points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 2)
        owner = np.zeros(points.shape[0], dtype=np.int64)
    bar = progress_bar(progress, total=sum(net.n_kinks(l) for l in range(n_layers)),
                       desc="regions (encoded 2D)", unit="neuron")
    try:
        for l in range(n_layers):
            n_kinks = net.n_kinks(l)         # the layer's leading units; the rest are carried
            steps = []       # each neuron's (parent, bit): the layer's bits composed at its end
            curves = []
            # each face's row of A, B, C and of the earlier bits (the faces at the layer's
            # start): gathered once per layer, not once per neuron
            rows = np.arange(len(geoms))
            boxes = None     # the faces' boxes, kept up to date through the layer's cuts
            for k in range(n_kinks):
                if l == 0 and points is None:
                    geoms, parent, bit = _split_by_shared_neuron(
                        geoms, A[0, k], B[0, k], C[0, k], ax, ay, tol, scale, domain_polygon,
                        curves, l + 1, k, stats)
                else:
                    geoms, parent, bit, boxes = _split_layer_neuron(
                        geoms, A[rows, k], B[rows, k], C[rows, k], ax, ay, tol, scale, l + 1, k,
                        stats, boxes)
                if points is not None and len(geoms) > len(rows):
                    kept, owner = _keep_faces_at(points, owner, geoms, parent)
                    geoms = np.asarray(geoms, dtype=object)[kept]
                    parent, bit = parent[kept], bit[kept]
                    boxes = None if boxes is None else boxes[kept]
                rows = rows[parent]
                steps.append((parent, bit))
                if bar is not None:
                    bar.set_postfix(layer=l + 1, faces=len(geoms), refresh=False)
                    bar.update(1)
            # neuron k's state on a final face: its bit on the face's ancestor after
            # neuron k (one gather per neuron, instead of carrying the (n, n_kinks) bits
            # through every cut)
            layer_bits = np.zeros((len(geoms), n_kinks), dtype=bool)
            at = np.arange(len(geoms))
            for k in range(n_kinks - 1, -1, -1):
                parent, bit = steps[k]
                layer_bits[:, k] = bit[at]
                at = parent[at]
            all_bits = [bb[rows] for bb in all_bits] + [layer_bits]
            faces_per_layer.append(len(geoms))
            check_region_cap(len(geoms), max_regions,
                             f"after hidden layer {l + 1} of {n_layers}")
            A, B, C = next_rows(net, l, layer_bits, A, B, C, rows)
    finally:
        if bar is not None:
            bar.close()
    geoms = list(geoms)
    n = len(geoms)
    F = kinds.shape[0]
    A_out = np.zeros((n, A.shape[1], F))
    A_out[:, :, xm] = A
    A_out[:, :, ym] = B
    bits = np.concatenate(all_bits, axis=1) if all_bits else np.zeros((n, 0), dtype=bool)
    stats["faces_per_layer"] = faces_per_layer
    if points is not None:
        stats["face_of_point"] = owner
    return geoms, bits, A_out, C, stats


def partition_encoded_plane(network, domain, tol=DEFAULT_TOL, max_regions=None, progress=None,
                            certify=True):
    """The encoded 2D engine on a :class:`regions.Network` (separable encoding) and a
    2D :class:`regions.domain.Box` or polygon domain in the encoding's coordinates.

    ``tol`` is the Hausdorff distance within which every boundary polyline follows
    its curve. ``max_regions`` raises ``regions.TooManyRegions`` after a layer that
    leaves more faces. ``progress``: a bar over the neurons on stderr, with the
    faces so far (default: when stderr is a terminal). ``certify`` (default): check
    every crossing of two curves on the faces' boundaries
    (:meth:`~regions.encoded.EncodedPartition2D.certify_crossings`, results in
    ``stats``; about a sixth of the engine's time; skipped for a max over more than
    two values, which it does not cover). Returns
    :class:`regions.encoded.EncodedPartition2D`.

    Examples
    --------
    One neuron ``relu(cos(2 pi x) - cos(2 pi y))``: its zero set is the two diagonals of
    the unit square, crossing at the saddle ``(0.5, 0.5)``, which sits on a grid corner
    with ``z = 0`` and is reported:

    >>> import numpy as np, regions
    >>> W = np.zeros((1, 8)); W[0, 5], W[0, 7] = 1.0, -1.0
    >>> net = regions.Network([W, np.ones((1, 1))], [np.zeros(1), np.zeros(1)], np.zeros(1),
    ...                       regions.PositionalEncoding(2, in_features=2))
    >>> p = partition_encoded_plane(net, regions.Box((0, 1), (0, 1)))
    >>> len(p), p.measure.round(12).tolist()
    (4, [0.25, 0.25, 0.25, 0.25])
    >>> (0.5, 0.5) in [tuple(np.round(s[:2], 9)) for s in p.stats["corner_zeros"]]
    True
    """
    from .result2d import EncodedPartition2D

    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number (a distance in domain units), got {tol}")
    poly = _domain_polygon(domain)
    # a max over k > 2 values: the cap is on the joined faces, checked after the join
    cap = max_regions if network.max_trees is None else None
    geoms, bits, A, c, stats = encoded_plane_faces(network, poly, tol, cap, progress=progress)
    if network.max_trees is not None:
        from .joins import join_max_faces

        geoms, bits, A, c = join_max_faces(network, geoms, bits, A, c, tol, stats)
        check_region_cap(len(geoms), max_regions, "after joining the faces of a max")
    stats["engine"] = "encoded 2D"
    stats["tol"] = tol
    p = EncodedPartition2D(network, domain, geoms, bits, A, c, tol, stats)
    if certify and network.max_trees is None:
        p.certify_crossings()
    return p
