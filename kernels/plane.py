"""Numba kernels of the exact 2D engine: cut a convex subdivision by one layer.

Arrays in, arrays out. The subdivision entering layer ``l`` is

* ``P`` ``(V, 2)`` vertex positions, ``Z`` ``(V, n)`` the layer's pre-activations
  at the vertices (``z_l`` is affine on every face, so its vertex values
  describe it exactly);
* faces as CSR: ``face_off`` ``(F+1,)``, ``face_vtx`` (counter-clockwise) and
  ``face_edge`` (slot ``s`` holds the edge from ``face_vtx[s]`` to the next
  vertex of the face);
* ``edges`` ``(E, 2)`` vertex pairs; an edge's direction is the one stored.

One layer is cut in three steps:

1. :func:`edge_crossings` -- every edge with strictly opposite signs of neuron
   ``k`` at its ends gets a crossing at ``t = z(u) / (z(u) - z(v))``. Crossings of
   one edge closer than ``T_MERGE`` in ``t`` are one vertex. The vertices on an
   edge are computed once, from the edge, so the two faces of an edge agree.
2. :func:`cut_faces` (two passes: count, then write) -- each face is cut by all
   the neurons whose sign is strictly positive at one of its vertices and
   strictly negative at another, one after another, as a small local
   arrangement (polygons as linked lists of slots). The sign of a neuron at a
   vertex on an original edge is decided combinatorially from the order of the
   crossings along that edge, never from a recomputed value, so the cut ends on
   the boundary are exactly the shared edge vertices. New vertices inside the
   face are shared by the two sub-polygons of the interior edge they split.
3. new vertices carry a recipe (up to 3 old vertices and weights), from which
   the caller interpolates ``z_l`` at the new vertices (exact: ``z_l`` is affine on
   the old face) and pushes it through the next layer in one BLAS product.

Signs at the vertices are exact: ``z > 0`` is +, ``z < 0`` is -, ``z == 0`` (the
vertex lies on the neuron's line) is 0. The caller has set to exactly 0 every
value that is zero to within rounding (:func:`kernels.line.snap_rows`), and
the neurons whose cuts make a new vertex (:func:`crossing_vertices` for the
vertices on edges, the ``iv_zero`` output of :func:`cut_faces` for those
inside faces), once per (vertex, neuron), so the
faces around a vertex see one decision. Inside a face, the values a cut
interpolates at new interior vertices count as zero within ``rtol`` times the
largest ``|z_k|`` over the face's vertices (the size of the neuron's own
affine function on that face, which bounds the interpolation's rounding).
"""
import numpy as np
from numba import njit, prange

from kernels.polygon import _triangle_frame

T_MERGE = 1e-12   # crossings of one edge closer than this (in edge parameter) are one vertex

# error codes (bit flags) returned by the face kernel
ERR_RUNS = 1        # a polygon's sign sequence was not one + run and one - run (numerical)
ERR_BOUNDARY = 2    # a cut crossed an original edge between two of its own vertices
ERR_CAPACITY = 4    # a local scratch bound was exceeded


@njit(cache=True, inline="always")
def _sign(z, eps):
    if z > eps:
        return 1
    if z < -eps:
        return -1
    return 0


@njit(cache=True, inline="always")
def _sgn(z):
    return _sign(z, 0.0)


_ONE = np.uint64(1)


@njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True, parallel=True)
def vertex_sign_bits(Z):
    """Packed signs of every neuron at every vertex: ``pos`` (z > 0) and ``neg``
    (z < 0), ``(V, ceil(n / 64))`` uint64. Every later sign test is a word
    operation on these, 64 neurons at a time."""
    V, n = Z.shape
    w = (n + 63) // 64
    pos = np.zeros((V, w), dtype=np.uint64)
    neg = np.zeros((V, w), dtype=np.uint64)
    for v in prange(V):
        for j in range(w):
            pw = np.uint64(0)
            nw = np.uint64(0)
            for b in range(min(64, n - 64 * j)):
                z = Z[v, 64 * j + b]
                if z > 0.0:
                    pw |= _ONE << np.uint64(b)
                elif z < 0.0:
                    nw |= _ONE << np.uint64(b)
            pos[v, j] = pw
            neg[v, j] = nw
    return pos, neg


@njit(cache=True, parallel=True)
def edge_crossings(edges, Z, pos, neg):
    """Crossings of every edge by every neuron of the layer.

    Returns ``cross_off`` (E+1), ``cross_neuron``, ``cross_group`` (index of the
    merged vertex along the edge), ``ngroups`` (E,) and ``group_t`` (per edge
    vertex, CSR by ``group_off`` = exclusive prefix sum of ``ngroups``).
    Crossings are sorted by ``t`` along the stored edge direction.
    """
    E = edges.shape[0]
    w = pos.shape[1]
    count = np.zeros(E, dtype=np.int64)
    for e in prange(E):
        u = edges[e, 0]
        v = edges[e, 1]
        c = np.uint64(0)
        for j in range(w):
            c += _popcount((pos[u, j] & neg[v, j]) | (neg[u, j] & pos[v, j]))
        count[e] = c
    cross_off = np.zeros(E + 1, dtype=np.int64)
    for e in range(E):
        cross_off[e + 1] = cross_off[e] + count[e]
    total = cross_off[E]
    cross_neuron = np.empty(total, dtype=np.int64)
    cross_t = np.empty(total)
    cross_group = np.empty(total, dtype=np.int64)
    ngroups = np.zeros(E, dtype=np.int64)
    for e in prange(E):
        j0 = cross_off[e]
        if cross_off[e + 1] == j0:
            continue
        u = edges[e, 0]
        v = edges[e, 1]
        j = j0
        for wd in range(w):
            m = (pos[u, wd] & neg[v, wd]) | (neg[u, wd] & pos[v, wd])
            if m == 0:
                continue
            for b in range(64):
                if (m >> np.uint64(b)) & _ONE:
                    k = 64 * wd + b
                    zu = Z[u, k]
                    zv = Z[v, k]
                    t = zu / (zu - zv)
                    # insertion sort by t (stable: ties keep neuron order)
                    i = j
                    while i > j0 and cross_t[i - 1] > t:
                        cross_t[i] = cross_t[i - 1]
                        cross_neuron[i] = cross_neuron[i - 1]
                        i -= 1
                    cross_t[i] = t
                    cross_neuron[i] = k
                    j += 1
        g = -1
        tstart = -1.0
        for i in range(j0, j):
            if g < 0 or cross_t[i] - tstart > T_MERGE:
                g += 1
                tstart = cross_t[i]
            cross_group[i] = g
        ngroups[e] = g + 1
    group_off = np.zeros(E + 1, dtype=np.int64)
    for e in range(E):
        group_off[e + 1] = group_off[e] + ngroups[e]
    group_t = np.empty(group_off[E])
    for e in prange(E):
        j0 = cross_off[e]
        for i in range(j0, cross_off[e + 1]):
            gi = group_off[e] + cross_group[i]
            if i == j0 or cross_group[i] != cross_group[i - 1]:
                group_t[gi] = cross_t[i]
    return cross_off, cross_neuron, cross_group, ngroups, group_off, group_t


@njit(cache=True, parallel=True)
def write_edge_vertices(P, edges, group_off, group_t, V_old, sub_off,
                        new_P, rec_idx, rec_w, new_edges):
    """Positions and recipes of the vertices on old edges, and the endpoints of
    the sub-edges the old edges are split into (sub-edge ``j`` of edge ``e`` has
    id ``sub_off[e] + j`` and runs in the edge's direction)."""
    E = edges.shape[0]
    for e in prange(E):
        u = edges[e, 0]
        v = edges[e, 1]
        prev = u
        j = sub_off[e]
        for gi in range(group_off[e], group_off[e + 1]):
            t = group_t[gi]
            w = V_old + gi
            new_P[w, 0] = (1.0 - t) * P[u, 0] + t * P[v, 0]
            new_P[w, 1] = (1.0 - t) * P[u, 1] + t * P[v, 1]
            rec_idx[w, 0] = u
            rec_idx[w, 1] = v
            rec_idx[w, 2] = u
            rec_w[w, 0] = 1.0 - t
            rec_w[w, 1] = t
            rec_w[w, 2] = 0.0
            new_edges[j, 0] = prev
            new_edges[j, 1] = w
            prev = w
            j += 1
        new_edges[j, 0] = prev
        new_edges[j, 1] = v


@njit(cache=True, parallel=True)
def face_cutters(pos, neg, face_off, face_vtx, face_edge, ngroups):
    """Neurons cutting each face (a strictly + and a strictly - vertex), as CSR
    ``(cut_off, cut_neuron)``; the number of boundary vertices of each face
    including this layer's edge vertices; and ``face_pos`` (F, words): the
    neurons positive at some vertex of the face (the bits of uncut neurons)."""
    F = face_off.shape[0] - 1
    w = pos.shape[1]
    ncut = np.zeros(F, dtype=np.int64)
    nbnd = np.zeros(F, dtype=np.int64)
    face_pos = np.zeros((F, w), dtype=np.uint64)
    face_cut = np.zeros((F, w), dtype=np.uint64)
    for f in prange(F):
        c = np.uint64(0)
        for j in range(w):
            pw = np.uint64(0)
            nw = np.uint64(0)
            for s in range(face_off[f], face_off[f + 1]):
                pw |= pos[face_vtx[s], j]
                nw |= neg[face_vtx[s], j]
            face_pos[f, j] = pw
            face_cut[f, j] = pw & nw
            c += _popcount(pw & nw)
        ncut[f] = c
        m = 0
        for s in range(face_off[f], face_off[f + 1]):
            m += 1 + ngroups[face_edge[s]]
        nbnd[f] = m
    cut_off = np.zeros(F + 1, dtype=np.int64)
    for f in range(F):
        cut_off[f + 1] = cut_off[f] + ncut[f]
    cut_neuron = np.empty(cut_off[F], dtype=np.int64)
    for f in prange(F):
        i = cut_off[f]
        for j in range(w):
            m = face_cut[f, j]
            if m == 0:
                continue
            for b in range(64):
                if (m >> np.uint64(b)) & _ONE:
                    cut_neuron[i] = 64 * j + b
                    i += 1
    return cut_off, cut_neuron, nbnd, face_pos


@njit(cache=True)
def _edge_vertex_sign(e, g, k, su, sv, cross_off, cross_neuron, cross_group):
    """Sign of neuron k at vertex g of edge e, from the order of crossings along
    the edge (never from a recomputed value), given its signs su, sv at the ends."""
    if su * sv < 0:
        for i in range(cross_off[e], cross_off[e + 1]):
            if cross_neuron[i] == k:
                gk = cross_group[i]
                if gk == g:
                    return 0
                return su if g < gk else sv
    return su if su != 0 else sv


@njit(cache=True)
def _count_single_cut(f, k, Z, face_off, face_vtx, face_edge, edges,
                      cross_off, cross_neuron, cross_group, group_off, nb):
    """Counts of a face cut by one neuron, without building it: the same sign
    walk and checks as :func:`_cut_face`, so the write pass agrees."""
    first = 0
    last = 0
    changes = 0
    prev = 0
    first_sg = 0
    boundary_cross = False
    for s in range(face_off[f], face_off[f + 1]):
        a = face_vtx[s]
        e = face_edge[s]
        u = edges[e, 0]
        v = edges[e, 1]
        forward = u == a
        g0 = group_off[e]
        ng = group_off[e + 1] - g0
        su = _sgn(Z[u, k])
        sv = _sgn(Z[v, k])
        for step in range(ng + 1):
            if step == 0:
                sgv = _sgn(Z[a, k])
            else:
                g = step - 1 if forward else ng - step
                sgv = _edge_vertex_sign(e, g, k, su, sv, cross_off, cross_neuron, cross_group)
            if s == face_off[f] and step == 0:
                first_sg = sgv
            elif prev * sgv < 0:
                boundary_cross = True
            prev = sgv
            if sgv != 0:
                if last != 0 and sgv != last:
                    changes += 1
                if first == 0:
                    first = sgv
                last = sgv
    if prev * first_sg < 0:
        boundary_cross = True
    if last != first:
        changes += 1
    if changes != 2:
        return 1, nb, 0, 0, ERR_RUNS
    if boundary_cross:
        return 1, nb, 0, 0, ERR_BOUNDARY
    return 2, nb + 2, 0, 1, 0


@njit(cache=True)
def _cut_face(f, write, cut_off, cut_neuron, face_pos, P, Z, rtol, face_off, face_vtx, face_edge, edges,
              cross_off, cross_neuron, cross_group, group_off, group_t, sub_off,
              V_old, n_edge_vertices, E_sub,
              kbuf, lv_gid, lv_pos, lv_z, lv_sign, s_v, s_e, s_next, poly_head, poly_alive,
              ie_a, ie_b, sp_q, sp_w, sp_qn, sp_a, cyc, sg, bit_on, poly_bb, aff, loc_eps,
              out_face, out_slot, out_iv, out_ie,
              new_face_off, new_face_vtx, new_face_edge, new_edges, new_P, rec_idx, rec_w,
              iv_zero, old_bits, new_bits, bit_offset):
    """Cut face ``f`` by its neurons. Returns (faces, slots, interior vertices,
    interior edges, error flags). In write mode also writes the outputs at the
    given bases, and in ``iv_zero`` the cutting neurons that are 0 at each new
    interior vertex."""
    err = 0
    nK = cut_off[f + 1] - cut_off[f]
    for kk in range(nK):
        k = cut_neuron[cut_off[f] + kk]
        kbuf[kk] = k
        # zero tolerance inside the face: relative to the neuron's own values on it
        big = 0.0
        for s in range(face_off[f], face_off[f + 1]):
            big = max(big, abs(Z[face_vtx[s], k]))
        loc_eps[kk] = rtol * big
    cap_lv = lv_gid.shape[0]
    cap_s = s_v.shape[0]
    cap_p = poly_head.shape[0]
    cap_ie = ie_a.shape[0]

    # ---- boundary cycle: original vertices and the edge vertices between them
    nlv = 0
    ns = 0
    for s in range(face_off[f], face_off[f + 1]):
        a = face_vtx[s]
        e = face_edge[s]
        u = edges[e, 0]
        v = edges[e, 1]
        forward = u == a
        g0 = group_off[e]
        ng = group_off[e + 1] - g0
        for step in range(ng + 1):
            if nlv >= cap_lv or ns >= cap_s:
                return 0, 0, 0, 0, ERR_CAPACITY
            if step == 0:
                gid = a
                lv_pos[nlv, 0] = P[a, 0]
                lv_pos[nlv, 1] = P[a, 1]
                for kk in range(nK):
                    k = kbuf[kk]
                    lv_z[kk, nlv] = Z[a, k]
                    lv_sign[kk, nlv] = _sgn(Z[a, k])
                sub = sub_off[e] + (0 if forward else ng)
            else:
                g = step - 1 if forward else ng - step
                gid = V_old + g0 + g
                t = group_t[g0 + g]
                lv_pos[nlv, 0] = (1.0 - t) * P[u, 0] + t * P[v, 0]
                lv_pos[nlv, 1] = (1.0 - t) * P[u, 1] + t * P[v, 1]
                for kk in range(nK):
                    k = kbuf[kk]
                    su = _sgn(Z[u, k])
                    sv = _sgn(Z[v, k])
                    sgn = _edge_vertex_sign(e, g, k, su, sv, cross_off, cross_neuron, cross_group)
                    lv_z[kk, nlv] = 0.0 if sgn == 0 else (1.0 - t) * Z[u, k] + t * Z[v, k]
                    lv_sign[kk, nlv] = sgn
                sub = sub_off[e] + (g + 1 if forward else g)
            lv_gid[nlv] = gid
            s_v[ns] = nlv
            s_e[ns] = sub
            s_next[ns] = ns + 1
            nlv += 1
            ns += 1
    s_next[ns - 1] = 0
    poly_head[0] = 0
    poly_alive[0] = True
    npoly = 1
    nie = 0
    niv = 0
    use_bb = nK >= BBOX_MIN_CUTS
    if use_bb:
        # each cutting neuron is affine on the face: fit it from three vertices
        _poly_bbox(0, s_v, s_next, lv_pos, poly_bb, 0)
        q0, q1, q2, e1x, e1y, e2x, e2y, det = _triangle_frame(P, face_off, face_vtx, f)
        for kk in range(nK):
            k = kbuf[kk]
            d1 = Z[q1, k] - Z[q0, k]
            d2 = Z[q2, k] - Z[q0, k]
            gx = (d1 * e2y - d2 * e1y) / det
            gy = (e1x * d2 - e2x * d1) / det
            aff[kk, 0] = gx
            aff[kk, 1] = gy
            aff[kk, 2] = Z[q0, k] - gx * P[q0, 0] - gy * P[q0, 1]
            aff[kk, 3] = BBOX_MARGIN * loc_eps[kk]

    # ---- cut by each neuron in turn
    for kk in range(nK):
        nsp = 0
        npoly_start = npoly
        if use_bb:
            gx = aff[kk, 0]
            gy = aff[kk, 1]
            c0 = aff[kk, 2]
            margin = aff[kk, 3]
        for p in range(npoly_start):
            if not poly_alive[p]:
                continue
            if use_bb:
                cx = 0.5 * (poly_bb[p, 0] + poly_bb[p, 1])
                cy = 0.5 * (poly_bb[p, 2] + poly_bb[p, 3])
                zc = gx * cx + gy * cy + c0
                spread = abs(gx) * 0.5 * (poly_bb[p, 1] - poly_bb[p, 0]) + abs(gy) * 0.5 * (poly_bb[p, 3] - poly_bb[p, 2])
                if zc - spread > margin or zc + spread < -margin:
                    continue
            # collect the cycle
            h = poly_head[p]
            m = 0
            x = h
            has_pos = False
            has_neg = False
            while True:
                if m >= cyc.shape[0]:
                    return 0, 0, 0, 0, ERR_CAPACITY
                cyc[m] = x
                sgv = lv_sign[kk, s_v[x]]
                sg[m] = sgv
                if sgv > 0:
                    has_pos = True
                elif sgv < 0:
                    has_neg = True
                m += 1
                x = s_next[x]
                if x == h:
                    break
            if not (has_pos and has_neg):
                continue
            # one + run and one - run (ignoring zeros)?
            changes = 0
            last = 0
            first = 0
            for i in range(m):
                if sg[i] != 0:
                    if last != 0 and sg[i] != last:
                        changes += 1
                    if first == 0:
                        first = sg[i]
                    last = sg[i]
            if last != first:
                changes += 1
            if changes != 2:
                err |= ERR_RUNS
                continue
            # the two transitions: (+ ... last +) gap (first - ...) and (- ... last -) gap (first + ...)
            # A: + -> -, B: - -> +; each either the first zero of the gap or a new vertex on an edge
            ta = -1  # slot holding A
            tb = -1  # slot holding B
            bad = False
            for which in range(2):
                src = 1 if which == 0 else -1
                # find i with sg[i] == src and next nonzero is -src
                i_end = -1
                for i in range(m):
                    if sg[i] == src:
                        j = (i + 1) % m
                        while sg[j] == 0:
                            j = (j + 1) % m
                        if sg[j] == -src:
                            i_end = i
                            break
                inext = (i_end + 1) % m
                if sg[inext] == 0:
                    if which == 0:
                        ta = cyc[inext]
                    else:
                        tb = cyc[inext]
                    continue
                # crossing on the edge from slot cyc[i_end] to cyc[inext]
                xs = cyc[i_end]
                d = s_e[xs]
                if d >= 0:
                    err |= ERR_BOUNDARY
                    bad = True
                    break
                q = -d - 1
                found = -1
                for r in range(nsp):
                    if sp_q[r] == q:
                        found = r
                        break
                if found >= 0:
                    w = sp_w[found]
                    qn = sp_qn[found]
                    qa = sp_a[found]
                else:
                    if nlv >= cap_lv or nie >= cap_ie or nsp >= sp_q.shape[0]:
                        return 0, 0, 0, 0, ERR_CAPACITY
                    qa = ie_a[q]
                    qb = ie_b[q]
                    za = lv_z[kk, qa]
                    zb = lv_z[kk, qb]
                    t = za / (za - zb)
                    w = nlv
                    lv_gid[w] = -1 - niv
                    niv += 1
                    lv_pos[w, 0] = (1.0 - t) * lv_pos[qa, 0] + t * lv_pos[qb, 0]
                    lv_pos[w, 1] = (1.0 - t) * lv_pos[qa, 1] + t * lv_pos[qb, 1]
                    for k2 in range(nK):
                        zz = (1.0 - t) * lv_z[k2, qa] + t * lv_z[k2, qb]
                        lv_z[k2, w] = zz
                        sgn = _sign(zz, loc_eps[k2])
                        lv_z[k2, w] = 0.0 if sgn == 0 else zz
                        lv_sign[k2, w] = sgn
                    lv_z[kk, w] = 0.0
                    lv_sign[kk, w] = 0
                    nlv += 1
                    qn = nie
                    nie += 1
                    ie_a[qn] = w
                    ie_b[qn] = qb
                    ie_b[q] = w
                    sp_q[nsp] = q
                    sp_w[nsp] = w
                    sp_qn[nsp] = qn
                    sp_a[nsp] = qa
                    nsp += 1
                if ns >= cap_s:
                    return 0, 0, 0, 0, ERR_CAPACITY
                sw = ns
                ns += 1
                s_v[sw] = w
                s_next[sw] = s_next[xs]
                s_next[xs] = sw
                if s_v[xs] == qa:
                    s_e[xs] = -(q + 1)
                    s_e[sw] = -(qn + 1)
                else:
                    s_e[xs] = -(qn + 1)
                    s_e[sw] = -(q + 1)
                if which == 0:
                    ta = sw
                else:
                    tb = sw
                # keep the cycle arrays valid for the second transition
                for r in range(m, i_end + 1, -1):
                    cyc[r] = cyc[r - 1]
                    sg[r] = sg[r - 1]
                cyc[i_end + 1] = sw
                sg[i_end + 1] = 0
                m += 1
            if bad:
                continue
            sa = ta
            sb = tb
            # predecessor of B's slot (on the - side)
            x = sa
            while s_next[x] != sb:
                x = s_next[x]
            prev_b = x
            if ns + 2 > cap_s or nie >= cap_ie or npoly >= cap_p:
                return 0, 0, 0, 0, ERR_CAPACITY
            qc = nie
            nie += 1
            ie_a[qc] = s_v[sa]
            ie_b[qc] = s_v[sb]
            a2 = ns
            b2 = ns + 1
            ns += 2
            # P- = A2 -> (old continuation of A) ... prev_b -> B2 -> (chord) A2
            s_v[a2] = s_v[sa]
            s_e[a2] = s_e[sa]
            s_next[a2] = s_next[sa]
            s_v[b2] = s_v[sb]
            s_e[b2] = -(qc + 1)
            s_next[b2] = a2
            s_next[prev_b] = b2
            if prev_b == sa:  # A directly followed by B: impossible for a proper cut
                s_next[a2] = b2
            # P+ = B ... A -> (chord) B
            s_e[sa] = -(qc + 1)
            s_next[sa] = sb
            poly_head[p] = sb
            poly_head[npoly] = a2
            poly_alive[npoly] = True
            if use_bb:
                _poly_bbox(sb, s_v, s_next, lv_pos, poly_bb, p)
                _poly_bbox(a2, s_v, s_next, lv_pos, poly_bb, npoly)
            npoly += 1

    # ---- count / write
    nslots = 0
    nfaces = 0
    for p in range(npoly):
        if not poly_alive[p]:
            continue
        h = poly_head[p]
        x = h
        while True:
            nslots += 1
            x = s_next[x]
            if x == h:
                break
        nfaces += 1
    if not write:
        return nfaces, nslots, niv, nie, err

    # interior vertex recipes: barycentric in a well-shaped triangle of the face
    base_iv = V_old + n_edge_vertices + out_iv
    if niv > 0:
        q0, q1, q2, e1x, e1y, e2x, e2y, det = _triangle_frame(P, face_off, face_vtx, f)
        for lv in range(nlv):
            if lv_gid[lv] < 0:
                gid = base_iv + (-1 - lv_gid[lv])
                px = lv_pos[lv, 0]
                py = lv_pos[lv, 1]
                new_P[gid, 0] = px
                new_P[gid, 1] = py
                dx = px - P[q0, 0]
                dy = py - P[q0, 1]
                l1 = (dx * e2y - dy * e2x) / det
                l2 = (e1x * dy - e1y * dx) / det
                rec_idx[gid, 0] = q0
                rec_idx[gid, 1] = q1
                rec_idx[gid, 2] = q2
                rec_w[gid, 0] = 1.0 - l1 - l2
                rec_w[gid, 1] = l1
                rec_w[gid, 2] = l2
                r = out_iv + (-1 - lv_gid[lv])
                nz = 0
                for kk in range(nK):
                    if lv_sign[kk, lv] == 0 and nz < iv_zero.shape[1]:
                        iv_zero[r, nz] = kbuf[kk]
                        nz += 1
    base_ie = E_sub + out_ie
    for q in range(nie):
        a = ie_a[q]
        b = ie_b[q]
        new_edges[base_ie + q, 0] = lv_gid[a] if lv_gid[a] >= 0 else base_iv + (-1 - lv_gid[a])
        new_edges[base_ie + q, 1] = lv_gid[b] if lv_gid[b] >= 0 else base_iv + (-1 - lv_gid[b])
    fo = out_face
    so = out_slot
    n_old_words = old_bits.shape[1]
    nwords = new_bits.shape[1]
    for p in range(npoly):
        if not poly_alive[p]:
            continue
        new_face_off[fo] = so
        h = poly_head[p]
        x = h
        while True:
            lv = s_v[x]
            new_face_vtx[so] = lv_gid[lv] if lv_gid[lv] >= 0 else base_iv + (-1 - lv_gid[lv])
            d = s_e[x]
            new_face_edge[so] = d if d >= 0 else base_ie + (-d - 1)
            so += 1
            x = s_next[x]
            if x == h:
                break
        # pattern bits: inherited words, this layer's "positive somewhere on the
        # face" bits, then the cutting neurons by the side this polygon is on
        nwl = face_pos.shape[1]
        for wd in range(n_old_words):
            new_bits[fo, wd] = old_bits[f, wd]
        sh = np.uint64(bit_offset & 63)
        w0 = bit_offset >> 6
        for j in range(nwl):
            word = face_pos[f, j]
            if word == 0:
                continue
            new_bits[fo, w0 + j] |= word << sh
            if sh != 0 and w0 + j + 1 < nwords:
                new_bits[fo, w0 + j + 1] |= word >> (np.uint64(64) - sh)
        for kk in range(nK):
            on = False
            x = h
            while True:
                if lv_sign[kk, s_v[x]] > 0:
                    on = True
                    break
                x = s_next[x]
                if x == h:
                    break
            if not on:
                bb = bit_offset + kbuf[kk]
                new_bits[fo, bb >> 6] &= ~(_ONE << np.uint64(bb & 63))
        fo += 1
    return nfaces, nslots, niv, nie, err


@njit(cache=True)
def _poly_bbox(h, s_v, s_next, lv_pos, bb, p):
    x0 = np.inf
    x1 = -np.inf
    y0 = np.inf
    y1 = -np.inf
    x = h
    while True:
        lv = s_v[x]
        x0 = min(x0, lv_pos[lv, 0])
        x1 = max(x1, lv_pos[lv, 0])
        y0 = min(y0, lv_pos[lv, 1])
        y1 = max(y1, lv_pos[lv, 1])
        x = s_next[x]
        if x == h:
            break
    bb[p, 0] = x0
    bb[p, 1] = x1
    bb[p, 2] = y0
    bb[p, 3] = y1


BBOX_MIN_CUTS = 6   # faces cut by at least this many neurons prefilter polygons by bounding box
BBOX_MARGIN = 1e3   # in units of the face's zero tolerance: only clearly one-sided boxes are skipped


@njit(cache=True)
def _scratch(nK, mb, n):
    npairs = nK * (nK - 1) // 2
    npoly = 2 * (1 + nK + npairs) + 4
    nlv = mb + 2 * npairs + 8
    ns = mb + 4 * npairs + 2 * npoly + 8
    nie = npoly + 2 * npairs + 8
    kbuf = np.empty(max(n, 1), dtype=np.int64)
    lv_gid = np.empty(nlv, dtype=np.int64)
    lv_pos = np.empty((nlv, 2))
    lv_z = np.empty((max(nK, 1), nlv))
    lv_sign = np.empty((max(nK, 1), nlv), dtype=np.int8)
    s_v = np.empty(ns, dtype=np.int64)
    s_e = np.empty(ns, dtype=np.int64)
    s_next = np.empty(ns, dtype=np.int64)
    poly_head = np.empty(npoly, dtype=np.int64)
    poly_alive = np.zeros(npoly, dtype=np.bool_)
    ie_a = np.empty(nie, dtype=np.int64)
    ie_b = np.empty(nie, dtype=np.int64)
    sp_q = np.empty(nie, dtype=np.int64)
    sp_w = np.empty(nie, dtype=np.int64)
    sp_qn = np.empty(nie, dtype=np.int64)
    sp_a = np.empty(nie, dtype=np.int64)
    cyc = np.empty(ns + 2, dtype=np.int64)
    sg = np.empty(ns + 2, dtype=np.int64)
    bit_on = np.empty(2 * max(n, 1), dtype=np.bool_)
    poly_bb = np.empty((npoly, 4))
    aff = np.empty((max(nK, 1), 4))
    loc_eps = np.empty(max(nK, 1))
    return (kbuf, lv_gid, lv_pos, lv_z, lv_sign, s_v, s_e, s_next, poly_head, poly_alive,
            ie_a, ie_b, sp_q, sp_w, sp_qn, sp_a, cyc, sg, bit_on, poly_bb, aff, loc_eps)


@njit(cache=True, parallel=True)
def cut_faces(write, chunk, cut_off, cut_neuron, face_pos, nbnd, P, Z, rtol, face_off, face_vtx, face_edge, edges,
              cross_off, cross_neuron, cross_group, group_off, group_t, sub_off,
              V_old, n_edge_vertices, E_sub,
              out_face, out_slot, out_iv, out_ie,
              new_face_off, new_face_vtx, new_face_edge, new_edges, new_P, rec_idx, rec_w,
              iv_zero, old_bits, new_bits, bit_offset):
    """Cut every face (parallel over chunks of faces). Count mode (``write`` False)
    returns per-face (faces, slots, interior vertices, interior edges, errors);
    write mode writes at the exclusive prefix sums ``out_*`` of those counts.
    Each new face gets its parent's ``old_bits`` words (``old_bits`` may have no
    columns) and this layer's bits from bit ``bit_offset`` of ``new_bits``.
    ``iv_zero`` (interior vertices, m), filled with -1 by the caller, receives
    up to m cutting neurons that are 0 at each new interior vertex (at least
    the two whose cuts meet there). ``rtol``: the zero tolerance of values
    interpolated inside a face, relative to the neuron's largest ``|z|`` on it."""
    F = face_off.shape[0] - 1
    n = Z.shape[1]
    counts = np.zeros((F, 5), dtype=np.int64)
    nchunks = (F + chunk - 1) // chunk
    for c in prange(nchunks):
        f0 = c * chunk
        f1 = min(F, f0 + chunk)
        kmax = 0
        mmax = 0
        for f in range(f0, f1):
            kmax = max(kmax, cut_off[f + 1] - cut_off[f])
            mmax = max(mmax, nbnd[f])
        (kbuf, lv_gid, lv_pos, lv_z, lv_sign, s_v, s_e, s_next, poly_head, poly_alive,
         ie_a, ie_b, sp_q, sp_w, sp_qn, sp_a, cyc, sg, bit_on, poly_bb, aff, loc_eps) = _scratch(kmax, mmax, n)
        for f in range(f0, f1):
            nK = cut_off[f + 1] - cut_off[f]
            if not write and nK <= 1:
                if nK == 0:
                    counts[f, 0] = 1
                    counts[f, 1] = nbnd[f]
                else:
                    r = _count_single_cut(f, cut_neuron[cut_off[f]], Z, face_off, face_vtx,
                                          face_edge, edges, cross_off, cross_neuron, cross_group,
                                          group_off, nbnd[f])
                    counts[f, 0] = r[0]
                    counts[f, 1] = r[1]
                    counts[f, 2] = r[2]
                    counts[f, 3] = r[3]
                    counts[f, 4] = r[4]
                continue
            r = _cut_face(f, write, cut_off, cut_neuron, face_pos, P, Z, rtol, face_off, face_vtx, face_edge, edges,
                          cross_off, cross_neuron, cross_group, group_off, group_t, sub_off,
                          V_old, n_edge_vertices, E_sub,
                          kbuf, lv_gid, lv_pos, lv_z, lv_sign, s_v, s_e, s_next, poly_head,
                          poly_alive, ie_a, ie_b, sp_q, sp_w, sp_qn, sp_a, cyc, sg, bit_on,
                          poly_bb, aff, loc_eps,
                          out_face[f], out_slot[f], out_iv[f], out_ie[f],
                          new_face_off, new_face_vtx, new_face_edge, new_edges, new_P,
                          rec_idx, rec_w, iv_zero, old_bits, new_bits, bit_offset)
            counts[f, 0] = r[0]
            counts[f, 1] = r[1]
            counts[f, 2] = r[2]
            counts[f, 3] = r[3]
            counts[f, 4] = r[4]
    return counts


@njit(cache=True, parallel=True)
def interpolate_rows(Z, rec_idx, rec_w, start, stop):
    """Rows ``start:stop`` of the values at the new vertices: sum_i w_i Z[idx_i]."""
    n = Z.shape[1]
    out = np.empty((stop - start, n))
    for r in prange(stop - start):
        v = start + r
        i0 = rec_idx[v, 0]
        i1 = rec_idx[v, 1]
        i2 = rec_idx[v, 2]
        w0 = rec_w[v, 0]
        w1 = rec_w[v, 1]
        w2 = rec_w[v, 2]
        if i1 < 0:
            for k in range(n):
                out[r, k] = Z[i0, k]
        elif w2 == 0.0:
            for k in range(n):
                out[r, k] = w0 * Z[i0, k] + w1 * Z[i1, k]
        else:
            for k in range(n):
                out[r, k] = w0 * Z[i0, k] + w1 * Z[i1, k] + w2 * Z[i2, k]
    return out


@njit(cache=True, parallel=True)
def crossing_vertices(cross_off, cross_group, group_off, V_old):
    """The new vertex of every crossing (``V_old + group_off[e] + cross_group[i]``
    for crossing ``i`` of edge ``e``): non-decreasing, since crossings are
    stored edge by edge in the order of their vertices."""
    E = cross_off.shape[0] - 1
    out = np.empty(cross_off[E], dtype=np.int64)
    for e in prange(E):
        for i in range(cross_off[e], cross_off[e + 1]):
            out[i] = V_old + group_off[e] + cross_group[i]
    return out
