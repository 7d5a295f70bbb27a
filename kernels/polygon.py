"""Numba kernels on convex polygons stored as CSR (``off``, ``idx`` into ``P``).

Areas, centroids, perimeters, affine fits from vertex values, Chebyshev
centres (largest inscribed disks) and level sets. One polygon per loop
iteration, parallel over polygons.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def areas_centroids_perimeters(P, off, idx):
    F = off.shape[0] - 1
    area = np.empty(F)
    cen = np.empty((F, 2))
    per = np.empty(F)
    for f in prange(F):
        s0 = off[f]
        s1 = off[f + 1]
        m = s1 - s0
        # shift to the first vertex for accuracy
        ox = P[idx[s0], 0]
        oy = P[idx[s0], 1]
        a2 = 0.0
        cx = 0.0
        cy = 0.0
        pl = 0.0
        for i in range(m):
            u = idx[s0 + i]
            v = idx[s0 + (i + 1) % m]
            x0 = P[u, 0] - ox
            y0 = P[u, 1] - oy
            x1 = P[v, 0] - ox
            y1 = P[v, 1] - oy
            cr = x0 * y1 - x1 * y0
            a2 += cr
            cx += (x0 + x1) * cr
            cy += (y0 + y1) * cr
            pl += np.sqrt((x1 - x0) ** 2 + (y1 - y0) ** 2)
        area[f] = 0.5 * a2
        if a2 != 0.0:
            cen[f, 0] = ox + cx / (3.0 * a2)
            cen[f, 1] = oy + cy / (3.0 * a2)
        else:
            cen[f, 0] = ox
            cen[f, 1] = oy
        per[f] = pl
    return area, cen, per


@njit(cache=True)
def _best_triangle(P, off, idx, f):
    """Three vertices of polygon f spanning a large triangle (for well-conditioned fits)."""
    s0 = off[f]
    s1 = off[f + 1]
    q0 = idx[s0]
    best = -1.0
    q1 = q0
    for s in range(s0, s1):
        v = idx[s]
        d2 = (P[v, 0] - P[q0, 0]) ** 2 + (P[v, 1] - P[q0, 1]) ** 2
        if d2 > best:
            best = d2
            q1 = v
    best = -1.0
    q2 = q0
    for s in range(s0, s1):
        v = idx[s]
        cr = abs((P[q1, 0] - P[q0, 0]) * (P[v, 1] - P[q0, 1])
                 - (P[q1, 1] - P[q0, 1]) * (P[v, 0] - P[q0, 0]))
        if cr > best:
            best = cr
            q2 = v
    return q0, q1, q2


@njit(cache=True)
def _triangle_frame(P, off, idx, f):
    """A well-shaped triangle ``q0, q1, q2`` of polygon f with its edge vectors
    ``e1 = q1 - q0``, ``e2 = q2 - q0`` and ``det = e1 x e2``: the frame in which
    a function linear on the polygon is fitted (gradient from two differences)."""
    q0, q1, q2 = _best_triangle(P, off, idx, f)
    e1x = P[q1, 0] - P[q0, 0]
    e1y = P[q1, 1] - P[q0, 1]
    e2x = P[q2, 0] - P[q0, 0]
    e2y = P[q2, 1] - P[q0, 1]
    return q0, q1, q2, e1x, e1y, e2x, e2y, e1x * e2y - e1y * e2x


@njit(cache=True, inline="always")
def _fit_on_frame(frame, P, z0, z1, z2):
    """The affine function ``z = gx * x + gy * y + c`` taking the values ``z0, z1,
    z2`` at the vertices ``q0, q1, q2`` of ``frame`` (from :func:`_triangle_frame`):
    ``(gx, gy, c)``. The one gradient fit of the package (here for
    :func:`affine_fits`, in ``kernels.plane`` for the bounding-box prefilter)."""
    q0, _, _, e1x, e1y, e2x, e2y, det = frame
    d1 = z1 - z0
    d2 = z2 - z0
    gx = (d1 * e2y - d2 * e1y) / det
    gy = (e1x * d2 - e2x * d1) / det
    return gx, gy, z0 - gx * P[q0, 0] - gy * P[q0, 1]


@njit(cache=True, parallel=True)
def affine_fits(P, values, off, idx):
    """Affine map ``values = A @ x + c`` on each polygon from three of its vertices.

    ``values`` is ``(V, n_out)``; returns ``A`` ``(F, n_out, 2)``, ``c`` ``(F, n_out)``.
    """
    F = off.shape[0] - 1
    n_out = values.shape[1]
    A = np.empty((F, n_out, 2))
    c = np.empty((F, n_out))
    for f in prange(F):
        frame = _triangle_frame(P, off, idx, f)
        q0, q1, q2 = frame[0], frame[1], frame[2]
        for o in range(n_out):
            gx, gy, c0 = _fit_on_frame(frame, P, values[q0, o], values[q1, o], values[q2, o])
            A[f, o, 0] = gx
            A[f, o, 1] = gy
            c[f, o] = c0
    return A, c


@njit(cache=True, parallel=True)
def chebyshev(P, off, idx):
    """Largest inscribed disk of each convex CCW polygon: radius and centre.

    The LP max r s.t. n_i . (x - p_i) >= r over the edge lines (inward unit
    normals n_i) is solved exactly by its vertices: every triple of edge lines
    whose equidistant point is feasible.
    """
    F = off.shape[0] - 1
    rad = np.zeros(F)
    cen = np.zeros((F, 2))
    for f in prange(F):
        s0 = off[f]
        s1 = off[f + 1]
        m = s1 - s0
        nx = np.empty(m)
        ny = np.empty(m)
        h = np.empty(m)
        ml = 0
        for i in range(m):
            u = idx[s0 + i]
            v = idx[s0 + (i + 1) % m]
            dx = P[v, 0] - P[u, 0]
            dy = P[v, 1] - P[u, 1]
            L = np.sqrt(dx * dx + dy * dy)
            if L == 0.0:
                continue
            ax = -dy / L
            ay = dx / L
            # skip a line equal to the previous one (collinear consecutive edges)
            hh = ax * P[u, 0] + ay * P[u, 1]
            dup = False
            for j in range(ml):
                if abs(nx[j] - ax) < 1e-14 and abs(ny[j] - ay) < 1e-14 and abs(h[j] - hh) < 1e-12 * (1.0 + abs(hh)):
                    dup = True
                    break
            if dup:
                continue
            nx[ml] = ax
            ny[ml] = ay
            h[ml] = hh
            ml += 1
        best = -1.0
        bx = 0.0
        by = 0.0
        for i in range(ml):
            for j in range(i + 1, ml):
                for k in range(j + 1, ml):
                    # n . x - r = h for i, j, k
                    a11 = nx[i]; a12 = ny[i]
                    a21 = nx[j]; a22 = ny[j]
                    a31 = nx[k]; a32 = ny[k]
                    det = (a11 * (a22 * -1.0 - (-1.0) * a32) - a12 * (a21 * -1.0 - (-1.0) * a31)
                           + (-1.0) * (a21 * a32 - a22 * a31))
                    if abs(det) < 1e-14:
                        continue
                    b1 = h[i]; b2 = h[j]; b3 = h[k]
                    dx_ = (b1 * (a22 * -1.0 - (-1.0) * a32) - a12 * (b2 * -1.0 - (-1.0) * b3)
                           + (-1.0) * (b2 * a32 - a22 * b3))
                    dy_ = (a11 * (b2 * -1.0 - (-1.0) * b3) - b1 * (a21 * -1.0 - (-1.0) * a31)
                           + (-1.0) * (a21 * b3 - b2 * a31))
                    dr_ = (a11 * (a22 * b3 - b2 * a32) - a12 * (a21 * b3 - b2 * a31)
                           + b1 * (a21 * a32 - a22 * a31))
                    x = dx_ / det
                    y = dy_ / det
                    r = dr_ / det
                    if r <= best:
                        continue
                    ok = True
                    for l in range(ml):
                        if nx[l] * x + ny[l] * y - h[l] < r * (1.0 - 1e-9) - 1e-12:
                            ok = False
                            break
                    if ok:
                        best = r
                        bx = x
                        by = y
        rad[f] = max(best, 0.0)
        cen[f, 0] = bx
        cen[f, 1] = by
    return rad, cen


@njit(cache=True)
def level_segments(P, values, off, idx, level, tol):
    """Pieces of ``{values == level}`` inside each polygon (values linear on each).
    A vertex with ``|value - level| <= tol`` counts as on the level.

    Returns ``(k, 2, 2)`` segments, the polygon of each, and for a segment that
    is an edge of the polygon lying on the level, its two vertex indices
    (``-1`` otherwise). Such an edge is reported by every polygon that has it;
    the caller keeps one copy per vertex pair. A polygon on which the values
    equal the level everywhere reports nothing (its edges come from the
    neighbours that are not flat).
    """
    F = off.shape[0] - 1
    cap = 1024
    seg = np.empty((cap, 2, 2))
    owner = np.empty(cap, dtype=np.int64)
    ends = np.empty((cap, 2), dtype=np.int64)
    ns = 0
    pts = np.empty((2, 2))
    for f in range(F):
        s0 = off[f]
        s1 = off[f + 1]
        m = s1 - s0
        nz = 0
        for i in range(m):
            if abs(values[idx[s0 + i]] - level) <= tol:
                nz += 1
        if nz == m:
            continue
        # an edge on the level: both ends exactly on it (the level set is then
        # that side of the convex polygon, possibly several collinear edges)
        on_edge = False
        for i in range(m):
            u = idx[s0 + i]
            v = idx[s0 + (i + 1) % m]
            if abs(values[u] - level) <= tol and abs(values[v] - level) <= tol:
                on_edge = True
                if ns + 1 >= cap:
                    cap *= 2
                    seg, owner, ends = _grow_segments(seg, owner, ends, ns, cap)
                seg[ns, 0, 0] = P[u, 0]
                seg[ns, 0, 1] = P[u, 1]
                seg[ns, 1, 0] = P[v, 0]
                seg[ns, 1, 1] = P[v, 1]
                owner[ns] = f
                ends[ns, 0] = u
                ends[ns, 1] = v
                ns += 1
        if on_edge:
            continue
        npt = 0
        for i in range(m):
            u = idx[s0 + i]
            v = idx[s0 + (i + 1) % m]
            du = values[u] - level
            dv = values[v] - level
            if abs(du) <= tol:
                if npt < 2:
                    pts[npt, 0] = P[u, 0]
                    pts[npt, 1] = P[u, 1]
                npt += 1
            elif abs(dv) > tol and du * dv < 0.0:
                t = du / (du - dv)
                if npt < 2:
                    pts[npt, 0] = (1 - t) * P[u, 0] + t * P[v, 0]
                    pts[npt, 1] = (1 - t) * P[u, 1] + t * P[v, 1]
                npt += 1
        if npt == 2:
            if ns + 1 >= cap:
                cap *= 2
                seg, owner, ends = _grow_segments(seg, owner, ends, ns, cap)
            seg[ns] = pts
            owner[ns] = f
            ends[ns, 0] = -1
            ends[ns, 1] = -1
            ns += 1
    return seg[:ns].copy(), owner[:ns].copy(), ends[:ns].copy()


@njit(cache=True)
def _grow_segments(seg, owner, ends, ns, cap):
    seg2 = np.empty((cap, 2, 2))
    seg2[:ns] = seg[:ns]
    ow2 = np.empty(cap, dtype=np.int64)
    ow2[:ns] = owner[:ns]
    en2 = np.empty((cap, 2), dtype=np.int64)
    en2[:ns] = ends[:ns]
    return seg2, ow2, en2
