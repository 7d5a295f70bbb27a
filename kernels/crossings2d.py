"""Certified crossings of two separable curves (the encoded 2D engine's junctions).

A face of the encoded 2D engine is bounded by polylines that follow curves

    z_n(x, y) = F_n(x) + G_n(y) + c_n = 0,

one per neuron ``n`` (``F``, ``G`` univariate trigonometric polynomials, as in
:mod:`kernels.trig2d`). Where the boundary turns from one curve to another the
polygon has a *junction* vertex, the crossing point of two polylines. These
kernels find the curves each boundary vertex lies on, label the boundary's
segments, and certify each junction by the Krawczyk test on the system
``z_i = z_j = 0``:

For a box ``X = m + [-r, r]^2`` and ``Y`` the inverse of the Jacobian at ``m``,

    K(X) = m - Y z(m) + (I - Y J(X)) (X - m).

If ``K(X)`` lies in the interior of ``X``, the curves cross exactly once in ``X``
and the crossing lies in ``K(X)`` (Krawczyk; Moore, Kearfott and Cloud,
*Introduction to Interval Analysis*, 2009, section 8.2). The Jacobian of a
separable pair is ``[[F_i'(x), G_i'(y)], [F_j'(x), G_j'(y)]]``; its enclosure on
the box is ``F'(m_x) +- M_2 r`` per entry (``M_2 = sum_f |a_f| w_f^2`` bounds
``|F''|``), widened by the rounding of the sums (``rel_tol`` of the terms'
sizes). The test fails, and the junction is reported rather than certified,
where the determinant ``F_i' G_j' - F_j' G_i'`` is not bounded away from 0 on
the box: a tangency or a crossing at an angle too small for the box.

Arrays in, arrays out; no Python objects. Feature kinds and frequencies are as
in :mod:`kernels.trig2d` (0 raw, 1 sin, 2 cos).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from kernels.trig import _features as _phase_features

__all__ = ["face_candidates", "nearest_curves", "segment_labels", "certify_pairs"]

RAW, SIN, COS = 0, 1, 2
EDGE = -2          # a segment on the domain's boundary
UNKNOWN = -1       # a segment on no curve within the band


@njit(cache=True, nogil=True)
def _scratch(kx, ky):
    """Buffers for the features at a point and their derivatives, per coordinate
    (``vx``, ``dx``, ``vy``, ``dy``), and the features' phase offsets (none:
    ``sin(w t)``, ``cos(w t)``; ``zx``, ``zy``)."""
    return (np.empty(kx.shape[0]), np.empty(kx.shape[0]), np.empty(ky.shape[0]),
            np.empty(ky.shape[0]), np.zeros(kx.shape[0]), np.zeros(ky.shape[0]))


@njit(cache=True, nogil=True)
def _axis_sums(row, kinds, w, val, der, z, size):
    """One coordinate's terms of a pre-activation, added to the running ``z`` and
    ``size`` (the sum of the terms' magnitudes): ``(z, size, slope, M1, M2)`` with the
    slope ``sum a_f g_f'``, ``M1 = sum |a_f w_f|`` and ``M2 = sum |a_f| w_f^2`` over the
    sin/cos features (``val``, ``der``: the features and their derivatives there)."""
    slope = 0.0
    m1 = 0.0
    m2 = 0.0
    for q in range(kinds.shape[0]):
        a = row[q]
        t = a * val[q]
        z += t
        size += abs(t)
        slope += a * der[q]
        m1 += abs(a * w[q])
        if kinds[q] != RAW:
            m2 += abs(a) * w[q] * w[q]
    return z, size, slope, m1, m2


@njit(cache=True, nogil=True)
def face_candidates(Ax, By, Cc, kx, wx, ky, wy, bounds, band, rel_tol):
    """``(faces, N)`` bool: may neuron ``n``'s curve come within ``band`` of face ``f``'s
    bounding box ``bounds[f] = (x0, y0, x1, y1)``? False only where, for every point of
    the box, ``|z| > band |grad z|`` and ``|z|`` is above the zero band: by the mean value
    bound ``|z(p) - z(m)| <= M1x hx + M1y hy`` (``m`` the box's centre, ``M1`` the sums of
    ``|a_f w_f|``) and ``|grad z| <= M1x + M1y``."""
    nf = Ax.shape[0]
    N = Ax.shape[1]
    cand = np.zeros((nf, N), dtype=np.bool_)
    vx, dx, vy, dy, zx, zy = _scratch(kx, ky)
    for f in range(nf):
        x0, y0, x1, y1 = bounds[f, 0], bounds[f, 1], bounds[f, 2], bounds[f, 3]
        hx = 0.5 * (x1 - x0)
        hy = 0.5 * (y1 - y0)
        ext_x = max(abs(x0), abs(x1))
        ext_y = max(abs(y0), abs(y1))
        _phase_features(kx, zx, wx, 0.5 * (x0 + x1), vx, dx)
        _phase_features(ky, zy, wy, 0.5 * (y0 + y1), vy, dy)
        for n in range(N):
            z = Cc[f, n]
            size = abs(Cc[f, n])
            m1 = 0.0
            reach = 0.0
            for q in range(kx.shape[0]):
                a = Ax[f, n, q]
                z += a * vx[q]
                size += abs(a) * max(1.0, abs(wx[q]) * ext_x)
                m1 += abs(a * wx[q])
                reach += abs(a * wx[q]) * hx
            for q in range(ky.shape[0]):
                b = By[f, n, q]
                z += b * vy[q]
                size += abs(b) * max(1.0, abs(wy[q]) * ext_y)
                m1 += abs(b * wy[q])
                reach += abs(b * wy[q]) * hy
            # 1e-12 of the sizes: the rounding of these sums, with room to spare
            cand[f, n] = abs(z) <= reach + band * m1 + (rel_tol + 1e-12) * size
    return cand


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def nearest_curves(V, face, Ax, By, Cc, cand, kx, wx, ky, wy, k_best, rel_tol):
    """For every vertex ``V[p]`` (of face ``face[p]``) the ``k_best`` curves of that
    face's neurons nearest to it: ``(ids, dist)`` ``(P, k_best)``, ``dist`` the
    first-order distance ``|z| / |grad z|`` (0 where ``|z|`` is within ``rel_tol`` of
    the terms' sizes), sorted ascending; ``ids`` ``-1`` and ``dist`` ``inf`` pad.

    ``Ax`` ``(faces, N, Fx)``, ``By`` ``(faces, N, Fy)``, ``Cc`` ``(faces, N)``: each
    face's rows of its ``N`` neurons; only the neurons ``cand[f]`` of
    :func:`face_candidates` are evaluated (the others are farther than its ``band``
    everywhere on the face, so they never label a segment)."""
    P = V.shape[0]
    ids = np.full((P, k_best), -1, dtype=np.int64)
    dist = np.full((P, k_best), np.inf)
    step = 4096
    for c in prange((P + step - 1) // step):      # chunks of vertices over the threads
        _nearest_chunk(V, face, Ax, By, Cc, cand, kx, wx, ky, wy, rel_tol, ids, dist,
                       c * step, min(P, (c + 1) * step))
    return ids, dist


@njit(cache=True, nogil=True, error_model="numpy")
def _nearest_chunk(V, face, Ax, By, Cc, cand, kx, wx, ky, wy, rel_tol, ids, dist, lo, hi):
    N = Ax.shape[1]
    k_best = ids.shape[1]
    vx, dx, vy, dy, zx, zy = _scratch(kx, ky)
    for p in range(lo, hi):
        f = face[p]
        _phase_features(kx, zx, wx, V[p, 0], vx, dx)
        _phase_features(ky, zy, wy, V[p, 1], vy, dy)
        for n in range(N):
            if not cand[f, n]:
                continue
            z, size, gx, _, _ = _axis_sums(Ax[f, n], kx, wx, vx, dx, Cc[f, n], abs(Cc[f, n]))
            z, size, gy, _, _ = _axis_sums(By[f, n], ky, wy, vy, dy, z, size)
            if abs(z) <= rel_tol * size:
                d = 0.0
            else:
                d = abs(z) / math.hypot(gx, gy)
                if d != d:
                    d = np.inf
            if d < dist[p, k_best - 1]:
                s = k_best - 1
                while s > 0 and dist[p, s - 1] > d:
                    dist[p, s] = dist[p, s - 1]
                    ids[p, s] = ids[p, s - 1]
                    s -= 1
                dist[p, s] = d
                ids[p, s] = n


@njit(cache=True, nogil=True)
def segment_labels(ends, ids, dist, mid_ids, mid_dist, on_edge, band):
    """The curve each boundary segment follows, and the junctions where it changes.

    Rings are back to back, ring ``r`` ending before ``ends[r]``, each closed (its
    last vertex repeats its first); segment ``s`` joins vertices ``s`` and ``s + 1``
    of its ring. A segment with ``on_edge`` set lies on the domain's boundary
    (label ``EDGE``); otherwise its label is the neuron among the nearest curves of
    both ends and of its midpoint (``ids``, ``dist`` and ``mid_ids``, ``mid_dist`` of
    :func:`nearest_curves`, the midpoint's in the segment's slot) within ``band`` of
    all three, the one of smallest largest distance, or ``UNKNOWN``. (A segment
    between two crossings has both curves at its ends; its midpoint tells which.)

    Returns ``(label, junction, before, after)``: ``label`` per vertex slot (the
    segment starting there; the closing slot repeats the first), and per junction
    the vertex and the labels of the segments before and after it.
    """
    N = ids.shape[0]
    K = ids.shape[1]
    label = np.full(N, UNKNOWN, dtype=np.int64)
    out_v = []
    out_a = []
    out_b = []
    lo = 0
    for r in range(ends.shape[0]):
        hi = ends[r]
        n_seg = hi - lo - 1
        for s in range(n_seg):
            p = lo + s
            q = p + 1
            if on_edge[p]:
                label[p] = EDGE
                continue
            best = np.inf
            for i in range(K):
                if ids[p, i] < 0 or dist[p, i] > band:
                    continue
                for j in range(K):
                    if ids[q, j] != ids[p, i] or dist[q, j] > band:
                        continue
                    for k in range(K):
                        if mid_ids[p, k] == ids[p, i] and mid_dist[p, k] <= band:
                            worst = max(max(dist[p, i], dist[q, j]), mid_dist[p, k])
                            if worst < best:
                                best = worst
                                label[p] = ids[p, i]
        if n_seg > 0:
            label[hi - 1] = label[lo]
        for s in range(n_seg):
            a = label[lo + (s - 1) % n_seg]
            b = label[lo + s]
            if a != b:
                out_v.append(lo + s)
                out_a.append(a)
                out_b.append(b)
        lo = hi
    m = len(out_v)
    junction = np.empty(m, dtype=np.int64)
    before = np.empty(m, dtype=np.int64)
    after = np.empty(m, dtype=np.int64)
    for t in range(m):
        junction[t] = out_v[t]
        before[t] = out_a[t]
        after[t] = out_b[t]
    return label, junction, before, after


@njit(cache=True, nogil=True)
def _row(A, B, C, f, n, kx, wx, ky, wy, x, y, vx, dx, vy, dy, zx, zy):
    """``(z, F', G', size, M1x, M1y, M2x, M2y)`` of neuron ``n`` of face ``f`` at ``(x, y)``
    (``vx`` .. ``dy`` scratch for the features, ``zx``, ``zy`` their zero phases)."""
    _phase_features(kx, zx, wx, x, vx, dx)
    _phase_features(ky, zy, wy, y, vy, dy)
    return _row_sums(A, B, C, f, n, kx, wx, ky, wy, vx, dx, vy, dy)


@njit(cache=True, nogil=True)
def _row_sums(A, B, C, f, n, kx, wx, ky, wy, vx, dx, vy, dy):
    """:func:`_row` with the features at the point already in ``vx`` .. ``dy``."""
    z, size, fx, m1x, m2x = _axis_sums(A[f, n], kx, wx, vx, dx, C[f, n], abs(C[f, n]))
    z, size, gy, m1y, m2y = _axis_sums(B[f, n], ky, wy, vy, dy, z, size)
    return z, fx, gy, size, m1x, m1y, m2x, m2y


@njit(cache=True, nogil=True)
def _krawczyk(r, yf, eps, E, Ya, m2, d1):
    """Largest ``lhs_k - r`` of the Krawczyk inclusion ``|K(X) - m|_k < r`` on the box of
    half-width ``r`` (negative: certified). ``yf = Y z(m)``, ``eps``: the enclosure of
    ``Y z(m)``'s rounding, ``E = |I - Y J(m)|``, ``Ya = |Y|``, ``m2[i, k]`` the second
    moment of equation ``i`` in variable ``k``, ``d1[i, k]`` its derivative's rounding."""
    worst = -np.inf
    for k in range(2):
        lhs = abs(yf[k]) + eps[k]
        for l in range(2):
            jr = Ya[k, 0] * (m2[0, l] * r + d1[0, l]) + Ya[k, 1] * (m2[1, l] * r + d1[1, l])
            lhs += (E[k, l] + jr) * r
        worst = max(worst, lhs - r)
    return worst


@njit(cache=True, nogil=True, parallel=True)
def certify_pairs(P, face, ni, nj, limit, bits, Ax, By, Cc, kx, wx, ky, wy, rel_tol, scale):
    """Certify that curves ``ni[t]`` and ``nj[t]`` of face ``face[t]`` cross exactly once
    in a box around the junction vertex ``P[t]``.

    From ``P[t]`` Newton's method on ``z_i = z_j = 0`` gives ``m``; the Krawczyk test
    is tried on boxes ``m + [-r, r]^2`` from the smallest that holds ``P[t]`` up,
    doubling ``r`` (at most 40 times). Returns ``(m, ok, error, radius)``:
    ``error`` bounds the distance (max norm) from ``P[t]`` to the true crossing
    (``|P - m|`` plus ``K(X)``'s half-width on the smallest certified box),
    ``radius`` the largest certified half-width found by doubling, at most ``scale``
    (the curves cross nowhere else in that box).

    The rows are the face's, valid where the neurons before ``limit[t]`` (the
    earlier layers, on which the two rows depend) have the face's states ``bits``;
    the crossing is one of the true curves only if it lies there. So every such
    neuron must keep its state on the enclosure of the crossing: its value at ``m``
    beyond the mean value / Taylor reach over the enclosure, with the sign of its
    bit. ``status``: 0 certified, 1 no box holding ``P[t]`` passes (a tangency, two
    curves nearly parallel, a singular system), 2 a third curve within the
    enclosure (a triple point to the tolerance), 3 the crossing lies where an
    earlier neuron has the other state (the two rows' crossing is not one of the
    true curves). Returns ``(m, status, error, radius)``.
    """
    T = P.shape[0]
    m_out = np.empty((T, 2))
    status = np.ones(T, dtype=np.int64)
    err = np.full(T, np.inf)
    rad = np.zeros(T)
    step = 512
    for c in prange((T + step - 1) // step):      # chunks of junctions over the threads
        _certify_chunk(P, face, ni, nj, limit, bits, Ax, By, Cc, kx, wx, ky, wy, rel_tol,
                       scale, m_out, status, err, rad, c * step, min(T, (c + 1) * step))
    return m_out, status, err, rad


@njit(cache=True, nogil=True)
def _certify_chunk(P, face, ni, nj, limit, bits, Ax, By, Cc, kx, wx, ky, wy, rel_tol, scale,
                   m_out, status, err, rad, lo, hi):
    """:func:`certify_pairs` on the junctions ``lo .. hi - 1``, into its output arrays
    (each junction's results depend on it alone)."""
    vx, dx, vy, dy, zx, zy = _scratch(kx, ky)
    tiny = 1e-15 * scale
    for t in range(lo, hi):
        f = face[t]
        x = P[t, 0]
        y = P[t, 1]
        good = True
        for _ in range(30):
            zi, fi, gi, _s, _a, _b, _c, _d = _row(Ax, By, Cc, f, ni[t], kx, wx, ky, wy, x, y,
                                                  vx, dx, vy, dy, zx, zy)
            zj, fj, gj, _s, _a, _b, _c, _d = _row(Ax, By, Cc, f, nj[t], kx, wx, ky, wy, x, y,
                                                  vx, dx, vy, dy, zx, zy)
            det = fi * gj - gi * fj
            if det == 0.0 or not math.isfinite(det):
                good = False
                break
            sx = (gj * zi - gi * zj) / det
            sy = (fi * zj - fj * zi) / det
            x -= sx
            y -= sy
            if abs(sx) <= tiny and abs(sy) <= tiny:
                break
        m_out[t, 0] = x
        m_out[t, 1] = y
        if not good or not (math.isfinite(x) and math.isfinite(y)):
            continue
        zi, fi, gi, si, m1xi, m1yi, m2xi, m2yi = _row(Ax, By, Cc, f, ni[t], kx, wx, ky, wy,
                                                      x, y, vx, dx, vy, dy, zx, zy)
        zj, fj, gj, sj, m1xj, m1yj, m2xj, m2yj = _row(Ax, By, Cc, f, nj[t], kx, wx, ky, wy,
                                                      x, y, vx, dx, vy, dy, zx, zy)
        det = fi * gj - gi * fj
        if det == 0.0 or not math.isfinite(det):
            continue
        Y = np.empty((2, 2))
        Y[0, 0] = gj / det
        Y[0, 1] = -gi / det
        Y[1, 0] = -fj / det
        Y[1, 1] = fi / det
        Ya = np.abs(Y)
        J = np.empty((2, 2))
        J[0, 0] = fi
        J[0, 1] = gi
        J[1, 0] = fj
        J[1, 1] = gj
        E = np.empty((2, 2))
        for k in range(2):
            for l in range(2):
                s = Y[k, 0] * J[0, l] + Y[k, 1] * J[1, l]
                # |I - Y J(m)| and the rounding of that product
                E[k, l] = abs((1.0 if k == l else 0.0) - s) + 4e-16 * (
                    abs(Y[k, 0] * J[0, l]) + abs(Y[k, 1] * J[1, l]) + 1.0)
        yf = np.empty(2)
        eps = np.empty(2)
        ez_i = rel_tol * si
        ez_j = rel_tol * sj
        for k in range(2):
            yf[k] = Y[k, 0] * zi + Y[k, 1] * zj
            eps[k] = Ya[k, 0] * ez_i + Ya[k, 1] * ez_j + 4e-16 * abs(yf[k])
        m2 = np.empty((2, 2))
        m2[0, 0] = m2xi
        m2[0, 1] = m2yi
        m2[1, 0] = m2xj
        m2[1, 1] = m2yj
        d1 = np.empty((2, 2))
        d1[0, 0] = rel_tol * m1xi
        d1[0, 1] = rel_tol * m1yi
        d1[1, 0] = rel_tol * m1xj
        d1[1, 1] = rel_tol * m1yj
        off = max(abs(P[t, 0] - x), abs(P[t, 1] - y))
        r = max(off * 1.0001, tiny)
        first = -1.0
        for _ in range(40):
            w = _krawczyk(r, yf, eps, E, Ya, m2, d1)
            if w < 0:
                first = r
                err[t] = off + (r + w)
                break
            r *= 2.0
        if first < 0:
            continue
        h = err[t] - off          # |true crossing - m| <= h in each coordinate
        status[t] = 0
        # the features at m are in vx .. dy from the last _row call: every earlier
        # neuron's value there is a sum over them
        for n in range(limit[t]):
            if n == ni[t] or n == nj[t]:
                continue
            zn, fn, gn, sn, _a, _b, m2xn, m2yn = _row_sums(Ax, By, Cc, f, n, kx, wx, ky, wy,
                                                           vx, dx, vy, dy)
            reach = ((abs(fn) + 0.5 * m2xn * h) * h + (abs(gn) + 0.5 * m2yn * h) * h
                     + rel_tol * sn)
            if abs(zn) <= reach:
                status[t] = 2
                break
            if (zn > 0) != bits[f, n]:
                status[t] = 3
                break
        if status[t] != 0:
            continue
        rad[t] = first
        r = first
        while r * 2.0 <= scale:
            if _krawczyk(2.0 * r, yf, eps, E, Ya, m2, d1) >= 0:
                break
            r *= 2.0
            rad[t] = r
