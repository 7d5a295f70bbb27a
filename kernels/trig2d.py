"""Vectorised pieces of the encoded 2D engine: univariate trigonometric
polynomials of one coordinate, solved and bounded many at once (numpy).

A separable pre-activation is ``z(x, y) = F(x) + G(y) + c`` with

    F(x) = sum_f a_f g_f(w_f x),     g_f in {raw (the phase itself), sin, cos},

and ``G`` alike in ``y``. Each function here takes coefficient rows ``coef``
``(m, F)`` (or one row ``(F,)`` shared by every problem), the feature kinds
``kinds`` ``(F,)`` (0 raw, 1 sin, 2 cos, as :mod:`kernels.trig`) and
frequencies ``w`` ``(F,)``, and works on ``m`` problems at once.

Bounds used by the engine, for every ``x`` (``M_j = sum_f |a_f| |w_f|^j``
over the sin/cos features, the raw ones adding ``|a_f w_f|`` to ``M_1``):

    |F^(j)(x)| <= M_j          (j >= 1)
    |F^(j)(x)| <= |F^(j)(m)| + M_{j+1} |x - m|

Examples
--------
>>> import numpy as np
>>> kinds, w = np.array([1]), np.array([np.pi])          # F(x) = sin(pi x)
>>> float(evaluate(np.array([1.0]), kinds, w, np.array([0.5]))[0])
1.0
>>> x = solve_monotone(np.array([1.0]), kinds, w, np.array([-0.5]), np.array([0.0]),
...                    np.array([0.5]), 1e-15)           # sin(pi x) = 0.5
>>> bool(abs(x[0] - 1 / 6) < 1e-14)
True
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from kernels.trig import _value as _value_const_last, refine_bracket

__all__ = ["evaluate", "moment", "solve_monotone", "derivative_features", "boundary_runs",
           "boundary_runs_many", "range_bounds"]

RAW, SIN, COS = 0, 1, 2


@njit(cache=True, nogil=True)
def _value(coef, kinds, w, x, order):
    v = 0.0
    r = order % 4
    for f in range(kinds.shape[0]):
        ph = w[f] * x
        if kinds[f] == RAW:
            if order == 0:
                v += coef[f] * ph
            elif order == 1:
                v += coef[f] * w[f]
            continue
        s = math.sin(ph)
        c = math.cos(ph)
        if kinds[f] == COS:
            # cos(t) = sin(t + pi/2): shift the derivative order by one
            rr = (r + 1) % 4
        else:
            rr = r
        g = s if rr == 0 else (c if rr == 1 else (-s if rr == 2 else -c))
        v += coef[f] * w[f] ** order * g
    return v


@njit(cache=True, nogil=True)
def _value_slope(coef, kinds, w, x):
    """``(F(x), F'(x))`` with one sine and cosine per feature: the same sums, term for
    term, as ``_value`` of order 0 and 1 (so the same floats)."""
    v = 0.0
    d = 0.0
    for f in range(kinds.shape[0]):
        ph = w[f] * x
        if kinds[f] == RAW:
            v += coef[f] * ph
            d += coef[f] * w[f]
            continue
        s = math.sin(ph)
        c = math.cos(ph)
        if kinds[f] == COS:
            v += coef[f] * w[f] ** 0 * c
            d += coef[f] * w[f] ** 1 * -s
        else:
            v += coef[f] * w[f] ** 0 * s
            d += coef[f] * w[f] ** 1 * c
    return v, d


@njit(cache=True, nogil=True)
def _evaluate(coef, kinds, w, x, order, out):
    shared = coef.shape[0] == 1
    for i in range(x.shape[0]):
        out[i] = _value(coef[0] if shared else coef[i], kinds, w, x[i], order)
    return out


def _as_rows(coef):
    coef = np.asarray(coef, dtype=np.float64)
    return np.ascontiguousarray(coef[None, :] if coef.ndim == 1 else coef)


def evaluate(coef, kinds, w, x, order=0):
    """``F^(order)(x_i)`` for coefficient rows ``coef`` ``(m, F)`` or one row ``(F,)``
    shared by every point, at ``x`` ``(m,)``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    return _evaluate(_as_rows(coef), np.ascontiguousarray(kinds, dtype=np.int64),
                     np.ascontiguousarray(w, dtype=np.float64), x, int(order), np.empty(x.shape[0]))


def moment(coef, kinds, w, j):
    """``M_j`` of each row: a bound of ``|F^(j)|`` on the whole line (``j >= 1``)."""
    coef = np.abs(np.asarray(coef, dtype=np.float64))
    aw = np.abs(w)
    weights = np.where(kinds == RAW, aw if j == 1 else 0.0, aw ** j)
    return coef @ weights


@njit(cache=True, nogil=True)
def _solve_one(ck, kinds, zero, w, a, b, xtol):
    """One monotone solve of ``F(x) + target = 0`` in ``[a, b]`` (see :func:`solve_monotone`):
    ``(x, ok)``. ``ck`` holds ``F``'s coefficients and then ``target``: the layout of
    :mod:`kernels.trig`, whose features ``kind(alpha + beta x)`` are these with
    ``alpha = zero`` and ``beta = w``, so that its bracketed solver does the work."""
    fa = _value_const_last(ck, kinds, zero, w, a)
    fb = _value_const_last(ck, kinds, zero, w, b)
    if (fa > 0 and fb > 0) or (fa < 0 and fb < 0):
        return (a if abs(fa) <= abs(fb) else b), False
    return refine_bracket(ck, kinds, zero, w, a, b, fa, fb, xtol), True


@njit(cache=True, nogil=True)
def _solve(coef, kinds, w, target, a, b, xtol, x, ok):
    shared = coef.shape[0] == 1
    F = kinds.shape[0]
    ck = np.empty(F + 1)
    ck[:F] = coef[0]
    zero = np.zeros(F)
    for i in range(a.shape[0]):
        if not shared:
            ck[:F] = coef[i]
        ck[F] = target[i]
        x[i], ok[i] = _solve_one(ck, kinds, zero, w, a[i], b[i], xtol)


def solve_monotone(coef, kinds, w, target, a, b, xtol):
    """Roots of ``F(x) + target = 0`` in ``[a_i, b_i]`` where ``F + target`` is monotone and
    changes sign (or is zero at an end): a safeguarded Newton iteration (a Newton step
    leaving the bracket, or a bracket that did not halve over two steps, is a
    bisection), stopped at a bracket of width ``xtol`` or an exact zero.

    Returns ``(x, ok)``: ``ok`` is False where the end values do not bracket a root
    (the caller counts these; ``x`` is then the end of smaller ``|F + target|``).
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    target = np.ascontiguousarray(np.broadcast_to(target, a.shape), dtype=np.float64)
    x = np.empty(a.shape[0])
    ok = np.empty(a.shape[0], dtype=np.bool_)
    _solve(_as_rows(coef), np.ascontiguousarray(kinds, dtype=np.int64),
           np.ascontiguousarray(w, dtype=np.float64), target, a, b, float(xtol), x, ok)
    return x, ok


def derivative_features(kinds, w):
    """The features of ``F'`` as ``(kinds, w, scale, constant)``: ``F'(x) = sum_f
    (a_f scale_f) g'_f(w_f x) + sum_f a_f constant_f`` with sin <-> cos swapped
    (``d sin(wx) = w cos(wx)``, ``d cos(wx) = -w sin(wx)``; a raw feature ``w x``
    gives the constant ``w``)."""
    dk = np.where(kinds == SIN, COS, np.where(kinds == COS, SIN, RAW))
    scale = np.where(kinds == SIN, w, np.where(kinds == COS, -w, 0.0))
    constant = np.where(kinds == RAW, w, 0.0)
    return dk.astype(np.int64), np.asarray(w, dtype=np.float64), scale, constant


@njit(cache=True, nogil=True)
def _moment(coef, kinds, w, j):
    m = 0.0
    for f in range(kinds.shape[0]):
        if kinds[f] == RAW:
            if j == 1:
                m += abs(coef[f] * w[f])
        else:
            m += abs(coef[f]) * abs(w[f]) ** j
    return m


@njit(cache=True, nogil=True)
def _chord_error(x0, y0, x1, y1, a, ka, wa, b, kb, wb, M2a, M3a, M2b, M3b):
    """A bound of the Hausdorff distance between the chord and the monotone arc of
    ``F(x) + G(y) + c = 0`` between its ends (see :mod:`regions.encoded.engine2d`)."""
    dx = abs(x1 - x0)
    dy = abs(y1 - y0)
    length = math.hypot(dx, dy)
    if length == 0.0:
        return 0.0
    box = dx * dy / length
    xm = 0.5 * (x0 + x1)
    ym = 0.5 * (y0 + y1)
    hx = 0.5 * dx
    hy = 0.5 * dy
    f1 = abs(_value(a, ka, wa, xm, 1))
    f2 = abs(_value(a, ka, wa, xm, 2))
    g1 = abs(_value(b, kb, wb, ym, 1))
    g2 = abs(_value(b, kb, wb, ym, 2))
    F1hi = f1 + M2a * hx
    F1lo = f1 - M2a * hx
    F2 = min(M2a, f2 + M3a * hx)
    G1hi = g1 + M2b * hy
    G1lo = g1 - M2b * hy
    G2 = min(M2b, g2 + M3b * hy)
    num = F2 * G1hi * G1hi + G2 * F1hi * F1hi
    err = box
    if G1lo > 0.0:                       # the arc is a graph y = g(x) on the chord's box
        err = min(err, dx * dx / 8.0 * num / G1lo ** 3)
    if F1lo > 0.0:                       # and x = h(y)
        err = min(err, dy * dy / 8.0 * num / F1lo ** 3)
    return err


@njit(cache=True, nogil=True)
def _refine_arc(pts, npts, stack, px, py, qx, qy, a, ka, wa, b, kb, wb, c, moments, cka, ckb,
                za, zb, tol, xtol, max_depth):
    """Append the polyline of one arc, from ``(px, py)`` to ``(qx, qy)``, to ``pts`` (rows
    ``npts`` on, grown by doubling): see :func:`refine_arcs`. ``cka``, ``ckb`` hold the
    rows ``a``, ``b`` with a free slot last, ``za``, ``zb`` zeros, ``moments``
    ``(M2a, M3a, M2b, M3b)``. Returns ``(pts, npts, fallbacks, unrefined)``."""
    M2a, M3a, M2b, M3b = moments
    fallbacks = 0
    unrefined = 0
    if npts + 1 >= pts.shape[0]:
        grown = np.empty((2 * pts.shape[0], 2))
        grown[:npts] = pts[:npts]
        pts = grown
    cx = px
    cy = py
    pts[npts, 0] = cx
    pts[npts, 1] = cy
    npts += 1
    stack[0, 0] = qx
    stack[0, 1] = qy
    sp = 1
    while sp > 0:
        tx = stack[sp - 1, 0]
        ty = stack[sp - 1, 1]
        err = _chord_error(cx, cy, tx, ty, a, ka, wa, b, kb, wb, M2a, M3a, M2b, M3b)
        if err <= tol or sp > max_depth:
            if err > tol:
                unrefined += 1
            if npts >= pts.shape[0]:
                grown = np.empty((2 * pts.shape[0], 2))
                grown[:npts] = pts[:npts]
                pts = grown
            pts[npts, 0] = tx
            pts[npts, 1] = ty
            npts += 1
            cx = tx
            cy = ty
            sp -= 1
            continue
        mx = 0.5 * (cx + tx)
        my = 0.5 * (cy + ty)
        if abs(tx - cx) >= abs(ty - cy):
            ckb[-1] = _value(a, ka, wa, mx, 0) + c
            my, ok = _solve_one(ckb, kb, zb, wb, min(cy, ty), max(cy, ty), xtol)
        else:
            cka[-1] = _value(b, kb, wb, my, 0) + c
            mx, ok = _solve_one(cka, ka, za, wa, min(cx, tx), max(cx, tx), xtol)
        if not ok:
            fallbacks += 1
        stack[sp, 0] = mx
        stack[sp, 1] = my
        sp += 1
    return pts, npts, fallbacks, unrefined


@njit(cache=True, nogil=True)
def arc_moments(a, ka, wa, b, kb, wb):
    """``(M2a, M3a, M2b, M3b)`` of one pair of rows, for :func:`_refine_arc`."""
    return (_moment(a, ka, wa, 2), _moment(a, ka, wa, 3), _moment(b, kb, wb, 2),
            _moment(b, kb, wb, 3))


@njit(cache=True, nogil=True)
def refine_arcs(P, Q, a, ka, wa, b, kb, wb, c, tol, xtol, max_depth):
    """Polylines along the monotone arcs of ``F(x) + G(y) + c = 0`` from ``P[i]`` to
    ``Q[i]``, every chord within ``tol`` of its arc (:func:`_chord_error`).

    In-order subdivision: the chord from the last point out to the next target is
    kept when its bound is within ``tol``, else the arc's point at the chord's middle
    (a monotone solve in the coordinate of the chord's smaller extent, at the middle
    of the larger one) becomes the next target.

    Returns ``(points, offsets, fallbacks, unrefined)``: arc ``i`` is
    ``points[offsets[i]:offsets[i + 1]]``; ``fallbacks`` counts solves whose ends did
    not bracket a root, ``unrefined`` chords left above ``tol`` at ``max_depth``.
    """
    n = P.shape[0]
    moments = arc_moments(a, ka, wa, b, kb, wb)
    pts = np.empty((max(16, 8 * n), 2))
    offsets = np.empty(n + 1, dtype=np.int64)
    stack = np.empty((max_depth + 2, 2))
    # the coefficients with a slot for the target last, for _solve_one
    cka = np.empty(a.shape[0] + 1)
    cka[:-1] = a
    ckb = np.empty(b.shape[0] + 1)
    ckb[:-1] = b
    za = np.zeros(a.shape[0])
    zb = np.zeros(b.shape[0])
    npts = 0
    fallbacks = 0
    unrefined = 0
    for i in range(n):
        offsets[i] = npts
        pts, npts, fb, ur = _refine_arc(pts, npts, stack, P[i, 0], P[i, 1], Q[i, 0], Q[i, 1],
                                        a, ka, wa, b, kb, wb, c, moments, cka, ckb, za, zb,
                                        tol, xtol, max_depth)
        fallbacks += fb
        unrefined += ur
    offsets[n] = npts
    return pts[:npts], offsets, fallbacks, unrefined


@njit(cache=True, nogil=True, error_model="numpy")   # z / 0 is inf, as in numpy
def boundary_runs(V, ends, a, ka, wa, b, kb, wb, c, tol_z, band, min_length):
    """The stretches of closed rings that run within ``band`` of the curve
    ``F(x) + G(y) + c = 0`` for longer than ``min_length`` (the engine's
    near-tangency scan, :func:`regions.encoded.engine2d._near_tangencies`).

    ``V`` ``(N, 2)``: the rings' vertices back to back, ring ``r`` ending before
    ``ends[r]`` (each ring closed: its last vertex repeats its first). A vertex's
    signed distance to the curve is estimated as ``d = z / |grad z|`` (0 where
    ``|z| <= tol_z``) and interpolated linearly along each segment; a run is a
    maximal sequence of consecutive segments (wrapping around the ring) with a
    part inside the band. Returns ``(vertex, length, crossing)`` per run longer than
    ``min_length``: the run's vertex of smallest ``|d|``, the length of its parts in
    the band, and whether ``d`` takes both signs on its vertices.
    """
    N = V.shape[0]
    d = np.empty(N)
    for i in range(N):
        fx, dfx = _value_slope(a, ka, wa, V[i, 0])
        gy, dgy = _value_slope(b, kb, wb, V[i, 1])
        z = fx + gy + c
        if abs(z) <= tol_z:
            d[i] = 0.0
            continue
        v = z / math.hypot(dfx, dgy)
        d[i] = 0.0 if v != v else v
    part = np.zeros(N)
    out_v = []
    out_len = []
    out_cross = []
    lo_v = 0
    for r in range(ends.shape[0]):
        hi_v = ends[r]
        n_seg = hi_v - lo_v - 1
        any_on = False
        for i in range(n_seg):
            d0 = d[lo_v + i]
            d1 = d[lo_v + i + 1]
            if d1 == d0:
                inside = 1.0 if abs(d0) <= band else 0.0
            else:
                ta = (-band - d0) / (d1 - d0)
                tb = (band - d0) / (d1 - d0)
                if ta != ta or tb != tb:
                    inside = 0.0
                else:
                    lo = min(max(min(ta, tb), 0.0), 1.0)
                    hi = min(max(max(ta, tb), 0.0), 1.0)
                    inside = hi - lo
                    if not math.isfinite(inside):
                        inside = 0.0
            dx = V[lo_v + i + 1, 0] - V[lo_v + i, 0]
            dy = V[lo_v + i + 1, 1] - V[lo_v + i, 1]
            part[i] = inside * math.hypot(dx, dy)
            if part[i] > 0:
                any_on = True
        if any_on:
            whole = True
            for s0 in range(n_seg):
                if part[s0] > 0 and not part[(s0 - 1) % n_seg] > 0:
                    whole = False
                    break
            for s0 in range(n_seg):
                if whole:
                    if s0 > 0:
                        break
                elif not (part[s0] > 0 and not part[(s0 - 1) % n_seg] > 0):
                    continue
                length = 0.0
                i = s0
                while part[i % n_seg] > 0 and i - s0 < n_seg:
                    length += part[i % n_seg]
                    i += 1
                if length > min_length:
                    best = -1
                    pos = False
                    neg = False
                    for j in range(s0, i + 1):
                        q = lo_v + j % n_seg
                        if best < 0 or abs(d[q]) < abs(d[best]):
                            best = q
                        pos = pos or d[q] > 0
                        neg = neg or d[q] < 0
                    out_v.append(best)
                    out_len.append(length)
                    out_cross.append(pos and neg)
        lo_v = hi_v
    m = len(out_v)
    verts = np.empty(m, dtype=np.int64)
    lengths = np.empty(m)
    crossing = np.empty(m, dtype=np.bool_)
    for i in range(m):
        verts[i] = out_v[i]
        lengths[i] = out_len[i]
        crossing[i] = out_cross[i]
    return verts, lengths, crossing


@njit(cache=True, nogil=True, error_model="numpy")
def boundary_runs_many(V, ends, face_rings, a, ka, wa, b, kb, wb, c, tol_z, band, min_length):
    """:func:`boundary_runs` of many faces in one call: face ``t`` owns the rings
    ``face_rings[t - 1] .. face_rings[t] - 1`` (``face_rings[-1]`` is 0) of ``V``,
    ``ends`` as there, and its own rows ``a[t]``, ``b[t]``, ``c[t]``, ``tol_z[t]``.
    Returns ``(vertex, length, crossing, face)`` per run, faces in order, ``vertex``
    an index into ``V``: the same runs, in the same order, as one call per face."""
    out_v = []
    out_len = []
    out_cross = []
    out_face = []
    r0 = 0
    for t in range(face_rings.shape[0]):
        r1 = face_rings[t]
        if r1 > r0:
            lo = ends[r0 - 1] if r0 > 0 else 0
            hi = ends[r1 - 1]
            local = ends[r0:r1] - lo
            verts, lengths, crossing = boundary_runs(V[lo:hi], local, a[t], ka, wa, b[t], kb, wb,
                                                     c[t], tol_z[t], band, min_length)
            for i in range(verts.shape[0]):
                out_v.append(verts[i] + lo)
                out_len.append(lengths[i])
                out_cross.append(crossing[i])
                out_face.append(t)
        r0 = r1
    m = len(out_v)
    verts = np.empty(m, dtype=np.int64)
    lengths = np.empty(m)
    crossing = np.empty(m, dtype=np.bool_)
    face = np.empty(m, dtype=np.int64)
    for i in range(m):
        verts[i] = out_v[i]
        lengths[i] = out_len[i]
        crossing[i] = out_cross[i]
        face[i] = out_face[i]
    return verts, lengths, crossing, face


@njit(cache=True, nogil=True)
def _scale_and_moments(coef, kinds, w, ext):
    """``(sum_f |a_f| max(1, |w_f| ext), M_1, M_2)`` of one row."""
    s = 0.0
    m1 = 0.0
    m2 = 0.0
    for f in range(kinds.shape[0]):
        aa = abs(coef[f])
        aw = abs(w[f])
        s += aa * max(1.0, aw * ext)
        m1 += aa * aw
        if kinds[f] != RAW:
            m2 += aa * aw * aw
    return s, m1, m2


@njit(cache=True, nogil=True)
def range_bounds(a, ka, wa, b, kb, wb, c, bounds, rel_tol):
    """The engine's cheap range test of ``z = F(x) + G(y) + c`` on boxes
    ``bounds[i] = (x0, y0, x1, y1)`` (rows ``a[i]``, ``b[i]``, ``c[i]``; a single row
    is shared by every box): ``(z(m), tol_z, reach)`` per box, ``m`` its centre,
    ``tol_z = rel_tol (|c| + sum |a_f| max(1, |w_f| |x|_max) + ...)`` the zero band and
    ``reach`` the mean value / Taylor bound of ``|z - z(m)|`` on the box,
    ``min(M_1 h, |F'(m)| h + M_2 h^2 / 2)`` in ``x`` plus the same in ``y``."""
    n = bounds.shape[0]
    zm = np.empty(n)
    tol_z = np.empty(n)
    reach = np.empty(n)
    for i in range(n):
        ra = a[0] if a.shape[0] == 1 else a[i]
        rb = b[0] if b.shape[0] == 1 else b[i]
        ci = c[0] if c.shape[0] == 1 else c[i]
        x0 = bounds[i, 0]
        y0 = bounds[i, 1]
        x1 = bounds[i, 2]
        y1 = bounds[i, 3]
        mx = 0.5 * (x0 + x1)
        my = 0.5 * (y0 + y1)
        hx = 0.5 * (x1 - x0)
        hy = 0.5 * (y1 - y0)
        sa, m1a, m2a = _scale_and_moments(ra, ka, wa, max(abs(x0), abs(x1)))
        sb, m1b, m2b = _scale_and_moments(rb, kb, wb, max(abs(y0), abs(y1)))
        tol_z[i] = rel_tol * (abs(ci) + sa + sb)
        fm, dfa = _value_slope(ra, ka, wa, mx)
        gm, dgb = _value_slope(rb, kb, wb, my)
        zm[i] = fm + gm + ci
        dfa = abs(dfa)
        dgb = abs(dgb)
        reach[i] = (min(m1a * hx, dfa * hx + 0.5 * m2a * hx * hx)
                    + min(m1b * hy, dgb * hy + 0.5 * m2b * hy * hy))
    return zm, tol_z, reach
