"""The encoded 2D engine's cut of many faces by one neuron, compiled: the steps of
:func:`regions.encoded.engine2d._cell_arcs` and ``_positive_region`` for every face
the range test leaves open, in two calls instead of a dozen Python and Numba calls
per face (the paper's PE(5) network cuts some 1.5 million faces a layer).

The neuron's rows differ by face (``a[s]``, ``b[s]``, ``c[s]`` for problem ``s``).
Between the two kernels the caller keeps only the cells that meet their face
(shapely, vectorised over every face at once); the float operations on each face
are the ones of the per-face code, in the same order, so faces, patterns and
stats are bit for bit the same (``benchmarks/kernel_hashes.py``).

:func:`grid_cells`
    The tensor grid of each face's box between the critical lines of ``F`` and
    ``G`` (sorted, duplicates removed), ``z`` at its corners, the exact range test
    on them, the roots on the grid edges with a sign change (one monotone solve
    each, shared by the two cells of the edge), the corners with ``|z| <= tol_z``
    and the cells that are wholly positive or hold an arc.
:func:`cell_rings`
    For the cells kept, each cell's arc (between the roots on its edges, refined
    until every chord is within ``tol``) closed by the cell's corners on its
    positive side into a ring.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.trig2d import _refine_arc, _solve_one, _value, arc_moments

__all__ = ["grid_cells", "cell_rings"]

CLOSED_OFF, CLOSED_ON, SEARCHED = 0, 1, 2


@njit(cache=True, nogil=True)
def _grid_line(lo, hi, t, start, stop, out, at):
    """``np.unique([lo, *t[start:stop], hi])`` written to ``out[at:]``; returns its size."""
    k = stop - start + 2
    tmp = np.empty(k)
    tmp[0] = lo
    tmp[1:k - 1] = t[start:stop]
    tmp[k - 1] = hi
    tmp.sort()
    n = 0
    for i in range(k):
        if i == 0 or tmp[i] != tmp[i - 1]:
            out[at + n] = tmp[i]
            n += 1
    return n


@njit(cache=True, nogil=True)
def grid_cells(bounds, tx, sx, ty, sy, a, ka, wa, b, kb, wb, c, tol_z, xtol, range_test=True):
    """The grids, corner signs, edge roots and candidate cells of ``m`` faces.

    ``bounds`` ``(m, 4)`` the faces' boxes ``(x0, y0, x1, y1)``; the critical points of
    face ``s`` are ``tx[sx[s]:sx[s + 1]]`` in x and ``ty[sy[s]:sy[s + 1]]`` in y; rows
    ``a`` ``(m, Fx)``, ``b`` ``(m, Fy)``, ``c`` ``(m,)``; ``tol_z`` ``(m,)`` the zero band;
    ``range_test=False`` searches every face (the engine's first layer, whose one
    grid over the domain is wanted whole).

    Returns ``(status, gx, gxo, gy, gyo, S, so, hroot, ho, vroot, vo, near, cells,
    fallbacks)``: ``status[s]`` :data:`CLOSED_OFF` / :data:`CLOSED_ON` where the grid's
    corners give one sign beyond ``tol_z`` (the face is not cut), else
    :data:`SEARCHED`; face ``s``'s grid lines ``gx[gxo[s]:gxo[s + 1]]`` (``nx``) and
    ``gy[gyo[s]:gyo[s + 1]]`` (``ny``); its corner signs ``S[so[s]:so[s + 1]]`` (``z > 0``,
    row-major ``nx x ny``); roots on its horizontal edges ``hroot[ho[s]:]``
    (``(nx - 1) x ny``, NaN without a sign change) and vertical edges ``vroot[vo[s]:]``
    (``nx x (ny - 1)``); ``near`` ``(k, 3)`` the corners ``(s, i, j)`` with
    ``|z| <= tol_z[s]``, and ``cells`` ``(q, 4)`` the cells ``(s, i, j, full)`` wholly
    positive (``full = 1``) or with mixed signs (0), both in row-major order per
    searched face; ``fallbacks`` the solves whose ends did not bracket a root.
    """
    m = bounds.shape[0]
    Fx = ka.shape[0]
    Fy = kb.shape[0]
    gxo = np.zeros(m + 1, dtype=np.int64)
    gyo = np.zeros(m + 1, dtype=np.int64)
    gx = np.empty(tx.shape[0] + 2 * m)
    gy = np.empty(ty.shape[0] + 2 * m)
    for s in range(m):
        gxo[s + 1] = gxo[s] + _grid_line(bounds[s, 0], bounds[s, 2], tx, sx[s], sx[s + 1], gx,
                                         gxo[s])
        gyo[s + 1] = gyo[s] + _grid_line(bounds[s, 1], bounds[s, 3], ty, sy[s], sy[s + 1], gy,
                                         gyo[s])
    so = np.zeros(m + 1, dtype=np.int64)
    ho = np.zeros(m + 1, dtype=np.int64)
    vo = np.zeros(m + 1, dtype=np.int64)
    for s in range(m):
        nx = gxo[s + 1] - gxo[s]
        ny = gyo[s + 1] - gyo[s]
        so[s + 1] = so[s] + nx * ny
        ho[s + 1] = ho[s] + (nx - 1) * ny
        vo[s + 1] = vo[s] + nx * (ny - 1)
    S = np.zeros(so[m], dtype=np.bool_)
    hroot = np.full(ho[m], np.nan)
    vroot = np.full(vo[m], np.nan)
    status = np.empty(m, dtype=np.int64)
    near = np.empty((so[m], 3), dtype=np.int64)
    cells = np.empty((so[m], 4), dtype=np.int64)
    n_near = 0
    n_cells = 0
    fallbacks = 0
    ck = np.empty(max(Fx, Fy) + 1)
    zero = np.zeros(max(Fx, Fy))
    for s in range(m):
        nx = gxo[s + 1] - gxo[s]
        ny = gyo[s + 1] - gyo[s]
        xs = gx[gxo[s]:gxo[s + 1]]
        ys = gy[gyo[s]:gyo[s + 1]]
        Fv = np.empty(nx)
        Gv = np.empty(ny)
        for i in range(nx):
            Fv[i] = _value(a[s], ka, wa, xs[i], 0)
        for j in range(ny):
            Gv[j] = _value(b[s], kb, wb, ys[j], 0)
        Z = np.empty((nx, ny))
        zmin = np.inf
        zmax = -np.inf
        for i in range(nx):
            for j in range(ny):
                Z[i, j] = Fv[i] + Gv[j] + c[s]
                zmin = min(zmin, Z[i, j])
                zmax = max(zmax, Z[i, j])
        tz = tol_z[s]
        if range_test and (zmin > tz or zmax < -tz):
            status[s] = CLOSED_ON if zmin > 0 else CLOSED_OFF
            continue
        status[s] = SEARCHED
        Ss = S[so[s]:so[s + 1]].reshape((nx, ny))
        for i in range(nx):
            for j in range(ny):
                Ss[i, j] = Z[i, j] > 0
                if abs(Z[i, j]) <= tz:
                    near[n_near, 0] = s
                    near[n_near, 1] = i
                    near[n_near, 2] = j
                    n_near += 1
        # roots on the grid edges with a sign change, shared by the edge's two cells
        h = hroot[ho[s]:ho[s + 1]].reshape((nx - 1, ny))
        ck[:Fx] = a[s]
        for i in range(nx - 1):
            for j in range(ny):
                if Ss[i, j] != Ss[i + 1, j]:
                    ck[Fx] = Gv[j] + c[s]
                    r, ok = _solve_one(ck[:Fx + 1], ka, zero[:Fx], wa, xs[i], xs[i + 1], xtol)
                    h[i, j] = r
                    if not ok:
                        fallbacks += 1
        v = vroot[vo[s]:vo[s + 1]].reshape((nx, ny - 1))
        ck[:Fy] = b[s]
        for i in range(nx):
            for j in range(ny - 1):
                if Ss[i, j] != Ss[i, j + 1]:
                    ck[Fy] = Fv[i] + c[s]
                    r, ok = _solve_one(ck[:Fy + 1], kb, zero[:Fy], wb, ys[j], ys[j + 1], xtol)
                    v[i, j] = r
                    if not ok:
                        fallbacks += 1
        for i in range(nx - 1):
            for j in range(ny - 1):
                n_on = (int(Ss[i, j]) + int(Ss[i + 1, j]) + int(Ss[i + 1, j + 1])
                        + int(Ss[i, j + 1]))
                if n_on == 0:
                    continue
                cells[n_cells, 0] = s
                cells[n_cells, 1] = i
                cells[n_cells, 2] = j
                cells[n_cells, 3] = 1 if n_on == 4 else 0
                n_cells += 1
    return (status, gx, gxo, gy, gyo, S, so, hroot, ho, vroot, vo, near[:n_near].copy(),
            cells[:n_cells].copy(), fallbacks)


@njit(cache=True, nogil=True)
def cell_rings(cells, gx, gxo, gy, gyo, S, so, hroot, ho, vroot, vo, a, ka, wa, b, kb, wb, c,
               tol, xtol, max_depth):
    """The positive side of the arc of each mixed cell ``cells[q] = (s, i, j, 0)`` (kept
    cells of :func:`grid_cells`, grouped by face), as closed rings.

    A cell's edges are numbered counter-clockwise (bottom, right, top, left); its arc
    joins the roots on the two edges with a sign change. Four sign changes cannot
    happen for a separable ``z`` but rounding at a saddle can give them: the cell is
    listed in ``ambiguous`` and its roots paired along the cell (0-1, 2-3); a cell
    with another count is listed and has no arc.

    Returns ``(V, ends, ring_cell, ambiguous, arcs, fallbacks, unrefined)``: ring
    ``r`` is ``V[ends[r - 1]:ends[r]]`` (not closed: shapely closes it) of cell
    ``ring_cell[r]`` (an index into ``cells``), made only of rings of 3 or more
    vertices; ``ambiguous`` the indices of the ambiguous cells; ``arcs[q]`` the arcs
    cell ``q`` has (0, 1 or 2); the counters as :func:`kernels.trig2d.refine_arcs`.
    """
    q_n = cells.shape[0]
    Fx = ka.shape[0]
    Fy = kb.shape[0]
    pts = np.empty((16 * q_n + 16, 2))
    V = np.empty((24 * q_n + 16, 2))
    ends = np.empty(2 * q_n, dtype=np.int64)
    ring_cell = np.empty(2 * q_n, dtype=np.int64)
    ambiguous = np.empty(q_n, dtype=np.int64)
    arcs = np.zeros(q_n, dtype=np.int64)
    stack = np.empty((max_depth + 2, 2))
    cka = np.empty(Fx + 1)
    ckb = np.empty(Fy + 1)
    za = np.zeros(Fx)
    zb = np.zeros(Fy)
    n_v = 0
    n_rings = 0
    n_amb = 0
    fallbacks = 0
    unrefined = 0
    edge = np.empty(4, dtype=np.int64)
    ex = np.empty(4)
    ey = np.empty(4)
    cx = np.empty(4)
    cy = np.empty(4)
    sg = np.empty(4, dtype=np.bool_)
    last = -1
    moments = (0.0, 0.0, 0.0, 0.0)
    for q in range(q_n):
        s, i, j = cells[q, 0], cells[q, 1], cells[q, 2]
        if s != last:
            moments = arc_moments(a[s], ka, wa, b[s], kb, wb)
            cka[:Fx] = a[s]
            ckb[:Fy] = b[s]
            last = s
        nx = gxo[s + 1] - gxo[s]
        ny = gyo[s + 1] - gyo[s]
        xs = gx[gxo[s]:gxo[s + 1]]
        ys = gy[gyo[s]:gyo[s + 1]]
        Ss = S[so[s]:so[s + 1]].reshape((nx, ny))
        h = hroot[ho[s]:ho[s + 1]].reshape((nx - 1, ny))
        v = vroot[vo[s]:vo[s + 1]].reshape((nx, ny - 1))
        n_cut = 0
        if Ss[i, j] != Ss[i + 1, j]:
            edge[n_cut], ex[n_cut], ey[n_cut] = 0, h[i, j], ys[j]
            n_cut += 1
        if Ss[i + 1, j] != Ss[i + 1, j + 1]:
            edge[n_cut], ex[n_cut], ey[n_cut] = 1, xs[i + 1], v[i + 1, j]
            n_cut += 1
        if Ss[i, j + 1] != Ss[i + 1, j + 1]:
            edge[n_cut], ex[n_cut], ey[n_cut] = 2, h[i, j + 1], ys[j + 1]
            n_cut += 1
        if Ss[i, j] != Ss[i, j + 1]:
            edge[n_cut], ex[n_cut], ey[n_cut] = 3, xs[i], v[i, j]
            n_cut += 1
        if n_cut != 2:
            ambiguous[n_amb] = q
            n_amb += 1
            n_pairs = 2 if n_cut == 4 else 0
        else:
            n_pairs = 1
        arcs[q] = n_pairs
        cx[0], cy[0], sg[0] = xs[i], ys[j], Ss[i, j]
        cx[1], cy[1], sg[1] = xs[i + 1], ys[j], Ss[i + 1, j]
        cx[2], cy[2], sg[2] = xs[i + 1], ys[j + 1], Ss[i + 1, j + 1]
        cx[3], cy[3], sg[3] = xs[i], ys[j + 1], Ss[i, j + 1]
        for p in range(n_pairs):
            e0 = edge[2 * p]
            e1 = edge[2 * p + 1]
            pts, n_line, fb, ur = _refine_arc(pts, 0, stack, ex[2 * p], ey[2 * p],
                                              ex[2 * p + 1], ey[2 * p + 1], a[s], ka, wa, b[s],
                                              kb, wb, c[s], moments, cka, ckb, za, zb, tol,
                                              xtol, max_depth)
            fallbacks += fb
            unrefined += ur
            # the corners met walking counter-clockwise from the arc's end (edge e1) to
            # its start (edge e0): one side of the arc; the other side otherwise
            n_side = (e0 - e1) % 4
            forward = n_side > 0 and sg[(e1 + 1) % 4]
            n_corner = n_side if forward else (e1 - e0) % 4
            size = n_line + n_corner
            if size < 3:
                continue
            if n_v + size > V.shape[0]:
                grown = np.empty((2 * V.shape[0] + size, 2))
                grown[:n_v] = V[:n_v]
                V = grown
            if n_rings >= ends.shape[0]:
                e2 = np.empty(2 * ends.shape[0] + 2, dtype=np.int64)
                e2[:n_rings] = ends[:n_rings]
                ends = e2
                r2 = np.empty(2 * ring_cell.shape[0] + 2, dtype=np.int64)
                r2[:n_rings] = ring_cell[:n_rings]
                ring_cell = r2
            for t in range(n_line):
                src = t if forward else n_line - 1 - t
                V[n_v, 0] = pts[src, 0]
                V[n_v, 1] = pts[src, 1]
                n_v += 1
            for t in range(n_corner):
                k = (e1 + 1 + t) % 4 if forward else (e0 + 1 + t) % 4
                V[n_v, 0] = cx[k]
                V[n_v, 1] = cy[k]
                n_v += 1
            ends[n_rings] = n_v
            ring_cell[n_rings] = q
            n_rings += 1
    return (V[:n_v].copy(), ends[:n_rings].copy(), ring_cell[:n_rings].copy(),
            ambiguous[:n_amb].copy(), arcs, fallbacks, unrefined)
