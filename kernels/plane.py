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
from collections import namedtuple

import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from kernels.line import snap_row
from kernels.polygon import _fit_on_frame, _triangle_frame

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


# ----------------------------------------------------------------------------- cutting faces
# The arrays the face kernels share, grouped as in pynndescent's ``FlatTree``:
# Numba passes a namedtuple of arrays (and scalars) like a tuple, field by field.
# The steps are inlined (``inline="always"``) into the two chunk functions
# (:func:`_count_chunk`, :func:`_write_chunk`), which hand them owner-less views
# (:func:`_borrowed`): a compiled call, or an inlined copy, of a tuple of owned
# arrays costs two atomic reference-count operations per array, while for views
# without an owner LLVM drops the counting altogether. Numba crashes when these
# steps are inlined straight into a ``prange`` body, hence the chunk functions.

@intrinsic
def _borrowed(typingctx, record):
    """``record`` (a tuple of arrays and scalars) with each array replaced by a
    view of the same memory that owns nothing (no meminfo).

    Numba counts references to every array it hands to a compiled function:
    an atomic increment when the function starts and a decrement when it
    ends, for each array of each tuple passed. The face kernels call their
    steps per face, per neuron and per split with tuples of 6 to 20 arrays,
    and these atomic operations (on arrays shared by both threads) took more
    time than the geometry. Views without an owner have nothing to count.
    The caller keeps the owning ``record`` alive for as long as the views are
    used (the chunk functions below: it is their argument); the views never
    leave the kernels.
    """
    if not isinstance(record, types.BaseTuple):
        return None

    def codegen(context, builder, signature, args):
        out = args[0]
        for i, member in enumerate(signature.args[0].types):
            if isinstance(member, types.Array):
                view = context.make_array(member)(context, builder,
                                                  value=builder.extract_value(out, i))
                view.meminfo = cgutils.get_null_value(view.meminfo.type)
                view.parent = cgutils.get_null_value(view.parent.type)
                out = builder.insert_value(out, view._getvalue(), i)
        return out

    return record(record), codegen


Subdivision = namedtuple("Subdivision", ["P", "Z", "face_off", "face_vtx", "face_edge", "edges"])
Subdivision.__doc__ = """The subdivision entering a layer (see the module docstring):
vertex positions ``P`` (V, 2), the layer's values ``Z`` (V, n) at them, faces
as CSR ``face_off``/``face_vtx``/``face_edge`` and ``edges`` (E, 2)."""

EdgeCuts = namedtuple("EdgeCuts", ["first_vertex", "cross_off", "cross_neuron", "cross_group",
                                   "group_off", "group_t", "sub_off"])
EdgeCuts.__doc__ = """This layer's vertices on the old edges, from :func:`edge_crossings`:
vertex ``g`` along edge ``e`` has id ``first_vertex + group_off[e] + g`` (the
old vertices keep ``0 .. first_vertex - 1``); ``sub_off`` (E+1): the first
sub-edge id of each old edge (exclusive prefix sum of ``ngroups + 1``)."""

FaceCuts = namedtuple("FaceCuts", ["cut_off", "cut_neuron", "face_pos", "nbnd"])
FaceCuts.__doc__ = """The neurons cutting each face and its boundary size, from
:func:`face_cutters`."""

Children = namedtuple("Children", ["first_interior_vertex", "first_interior_edge", "bit_offset",
                                   "out", "face_off", "face_vtx", "face_edge", "edges", "P",
                                   "rec_idx", "rec_w", "iv_zero", "bits"])
Children.__doc__ = """Where the write pass puts the next subdivision: the arrays of
:func:`write_edge_vertices` (``P``, ``rec_idx``, ``rec_w``, ``edges``: it fills
their old-edge part) and the new faces. New interior vertices get ids from
``first_interior_vertex``, interior edges from ``first_interior_edge``; ``out``
(F, 4) is where old face ``f`` writes its first (face, slot, interior vertex,
interior edge): the exclusive prefix sums of the count pass. ``bits`` (new
faces, words) receives this layer's bits from bit ``bit_offset``; ``iv_zero``
(interior vertices, m), filled with -1 by the caller, up to m cutting neurons
that are 0 at each new interior vertex (at least the two whose cuts meet
there)."""

Arrangement = namedtuple("Arrangement", [
    "kbuf", "loc_eps", "aff", "lv_gid", "lv_pos", "lv_z", "lv_sign", "s_v", "s_e", "s_next",
    "poly_head", "poly_bb", "ie_a", "ie_b", "sp_q", "sp_w", "sp_qn", "sp_a", "cyc", "sg",
    "lv_on", "poly_on"])
Arrangement.__doc__ = """Scratch of one face's local arrangement (one per chunk of faces).

Per cutting neuron ``kk`` (the face's ``kk``-th): ``kbuf`` its neuron id,
``loc_eps`` its zero tolerance on the face, ``aff`` its affine fit
``(gx, gy, c, margin)`` for the bounding-box prefilter. Local vertices: ``lv_gid``
the global id (``>= 0``) or ``-1 - i`` for the face's ``i``-th new interior
vertex, ``lv_pos`` the position, ``lv_z``/``lv_sign`` (vertex, neuron) values and
exact signs (by vertex: a new vertex interpolates all of its row from two
others). Polygons are cycles of slots: slot ``x`` holds vertex ``s_v[x]``, its successor ``s_next[x]`` and the edge ``s_e[x]`` to it (a sub-edge id ``>= 0``,
or ``-1 - q`` for interior edge ``q``); ``poly_head``/``poly_bb``: a slot and the
bounding box ``(x0, x1, y0, y1)`` of each polygon. Interior edge ``q`` runs from
``ie_a[q]`` to ``ie_b[q]``. ``sp_*``: the interior edges the current neuron has
split (edge ``sp_q`` at vertex ``sp_w`` into ``sp_q`` and ``sp_qn``, ``sp_a`` its
first end), so that the two polygons of an edge share the new vertex.
``cyc``/``sg``: the slots and signs of the polygon being cut. ``lv_on``
(vertices, words) the cutting neurons strictly positive at each local vertex, as
bits (bit ``kk``), and ``poly_on`` (words) their union over one polygon.

The arrangement's size is carried as ``size = (vertices, slots, polygons,
interior edges, interior vertices)``."""


@njit(cache=True)
def _scratch(nK, mb):
    """An :data:`Arrangement` for faces cut by at most ``nK`` neurons with at most
    ``mb`` boundary vertices (``regions.engine2d._scratch_bytes`` mirrors
    these sizes for the memory check)."""
    npairs = nK * (nK - 1) // 2
    npoly = 2 * (1 + nK + npairs) + 4
    nlv = mb + 2 * npairs + 8
    ns = mb + 4 * npairs + 2 * npoly + 8
    nie = npoly + 2 * npairs + 8
    k1 = max(nK, 1)
    kwords = (k1 + 63) // 64
    return Arrangement(np.empty(k1, dtype=np.int64), np.empty(k1), np.empty((k1, 4)),
                       np.empty(nlv, dtype=np.int64), np.empty((nlv, 2)), np.empty((nlv, k1)),
                       np.empty((nlv, k1), dtype=np.int8),
                       np.empty(ns, dtype=np.int64), np.empty(ns, dtype=np.int64),
                       np.empty(ns, dtype=np.int64),
                       np.empty(npoly, dtype=np.int64), np.empty((npoly, 4)),
                       np.empty(nie, dtype=np.int64), np.empty(nie, dtype=np.int64),
                       np.empty(nie, dtype=np.int64), np.empty(nie, dtype=np.int64),
                       np.empty(nie, dtype=np.int64), np.empty(nie, dtype=np.int64),
                       np.empty(ns + 2, dtype=np.int64), np.empty(ns + 2, dtype=np.int64),
                       np.empty((nlv, kwords), dtype=np.uint64), np.empty(kwords, dtype=np.uint64))


@njit(cache=True, inline="always")
def _crossing_group(e, k, su, sv, ec):
    """The vertex along edge ``e`` where neuron ``k`` crosses it (its signs ``su``,
    ``sv`` at the ends strictly opposite), or -1 if it does not."""
    if su * sv < 0:
        for i in range(ec.cross_off[e], ec.cross_off[e + 1]):
            if ec.cross_neuron[i] == k:
                return ec.cross_group[i]
    return -1


@njit(cache=True, inline="always")
def _edge_vertex_sign(g, gk, su, sv):
    """Sign of a neuron at vertex ``g`` along an edge, from the order of the
    crossings along the edge (never from a recomputed value): ``gk`` the
    vertex where it crosses (:func:`_crossing_group`), ``su``, ``sv`` its signs at
    the ends."""
    if gk >= 0:
        if gk == g:
            return 0
        return su if g < gk else sv
    return su if su != 0 else sv


@njit(cache=True, inline="always")
def _slot_edge(s, sub, ec):
    """Slot ``s`` of the boundary walk: its vertex ``a``, edge ``e`` = ``(u, v)``,
    whether the face runs along the edge's direction, and this layer's
    vertices on the edge (ids ``ec.first_vertex + g0 + g``, ``g < ng``, in the
    edge's direction)."""
    a = sub.face_vtx[s]
    e = sub.face_edge[s]
    u = sub.edges[e, 0]
    v = sub.edges[e, 1]
    g0 = ec.group_off[e]
    return a, e, u, v, u == a, g0, ec.group_off[e + 1] - g0


@njit(cache=True, inline="always")
def _boundary_signs(f, k, sub, ec, out):
    """The sign walk: the exact signs of neuron ``k`` at the boundary vertices of
    face ``f`` (each original vertex, then this layer's vertices on the edge that
    follows it, in order) into ``out``; returns their number."""
    m = 0
    for s in range(sub.face_off[f], sub.face_off[f + 1]):
        a, e, u, v, forward, g0, ng = _slot_edge(s, sub, ec)
        su = _sgn(sub.Z[u, k])
        sv = _sgn(sub.Z[v, k])
        out[m] = su if forward else sv
        gk = _crossing_group(e, k, su, sv, ec) if ng else -1
        for step in range(1, ng + 1):
            g = step - 1 if forward else ng - step
            out[m + step] = _edge_vertex_sign(g, gk, su, sv)
        m += 1 + ng
    return m


@njit(cache=True, inline="always")
def _sign_changes(sg, m):
    """Sign changes around the cycle ``sg[:m]``, zeros skipped (2 for a proper cut:
    one + run and one - run)."""
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
    return changes


@njit(cache=True, inline="always")
def _count_single_cut(f, k, sub, ec, nb, sg):
    """Counts (faces, slots, interior vertices, interior edges, errors) of face
    ``f`` cut by its one neuron ``k``, without building the arrangement: the sign
    walk and the checks of :func:`_cut_by_neuron`, so the write pass agrees."""
    m = _boundary_signs(f, k, sub, ec, sg)
    if _sign_changes(sg, m) != 2:
        return 1, nb, 0, 0, ERR_RUNS
    for i in range(m):
        if sg[i] * sg[(i + 1) % m] < 0:   # the cut would cross an edge between its vertices
            return 1, nb, 0, 0, ERR_BOUNDARY
    return 2, nb + 2, 0, 1, 0


@njit(cache=True, inline="always")
def _poly_bbox(h, arr, p):
    """Bounding box of the polygon whose cycle contains slot ``h`` into ``poly_bb[p]``."""
    x0 = np.inf
    x1 = -np.inf
    y0 = np.inf
    y1 = -np.inf
    x = h
    while True:
        lv = arr.s_v[x]
        x0 = min(x0, arr.lv_pos[lv, 0])
        x1 = max(x1, arr.lv_pos[lv, 0])
        y0 = min(y0, arr.lv_pos[lv, 1])
        y1 = max(y1, arr.lv_pos[lv, 1])
        x = arr.s_next[x]
        if x == h:
            break
    arr.poly_bb[p, 0] = x0
    arr.poly_bb[p, 1] = x1
    arr.poly_bb[p, 2] = y0
    arr.poly_bb[p, 3] = y1


BBOX_MIN_CUTS = 6   # faces cut by at least this many neurons prefilter polygons by bounding box
BBOX_MARGIN = 1e3   # in units of the face's zero tolerance: only clearly one-sided boxes are skipped


@njit(cache=True, inline="always")
def _face_neurons(f, sub, fc, rtol, arr):
    """Step 1: the neurons cutting face ``f`` into ``kbuf``, each with its zero
    tolerance inside the face (``rtol`` times its largest ``|z|`` over the face's
    vertices: the size of its own affine function there). Returns their number."""
    nK = fc.cut_off[f + 1] - fc.cut_off[f]
    for kk in range(nK):
        k = fc.cut_neuron[fc.cut_off[f] + kk]
        arr.kbuf[kk] = k
        big = 0.0
        for s in range(sub.face_off[f], sub.face_off[f + 1]):
            big = max(big, abs(sub.Z[sub.face_vtx[s], k]))
        arr.loc_eps[kk] = rtol * big
    return nK


@njit(cache=True, inline="always")
def _boundary_cycle(f, nK, sub, ec, arr):
    """Step 2: face ``f``'s boundary as polygon 0, slot ``i`` on local vertex ``i``:
    the original vertices and this layer's vertices on the edges between them,
    with their positions and the cutting neurons' exact signs (the sign walk)
    and values (0 where the sign is). Returns the number of boundary vertices,
    or -1 if the scratch is too small."""
    nb = 0
    for s in range(sub.face_off[f], sub.face_off[f + 1]):
        e = sub.face_edge[s]
        nb += 1 + ec.group_off[e + 1] - ec.group_off[e]
    if nb > arr.lv_gid.shape[0] or nb > arr.s_v.shape[0]:
        return -1
    P = sub.P
    Z = sub.Z
    i = 0
    for s in range(sub.face_off[f], sub.face_off[f + 1]):
        a, e, u, v, forward, g0, ng = _slot_edge(s, sub, ec)
        arr.lv_gid[i] = a
        arr.lv_pos[i, 0] = P[a, 0]
        arr.lv_pos[i, 1] = P[a, 1]
        arr.s_e[i] = ec.sub_off[e] + (0 if forward else ng)
        for step in range(1, ng + 1):
            g = step - 1 if forward else ng - step
            t = ec.group_t[g0 + g]
            arr.lv_gid[i + step] = ec.first_vertex + g0 + g
            arr.lv_pos[i + step, 0] = (1.0 - t) * P[u, 0] + t * P[v, 0]
            arr.lv_pos[i + step, 1] = (1.0 - t) * P[u, 1] + t * P[v, 1]
            arr.s_e[i + step] = ec.sub_off[e] + (g + 1 if forward else g)
        # the sign walk of every cutting neuron along this edge at once
        for kk in range(nK):
            k = arr.kbuf[kk]
            zu = Z[u, k]
            zv = Z[v, k]
            su = _sgn(zu)
            sv = _sgn(zv)
            arr.lv_sign[i, kk] = su if forward else sv
            arr.lv_z[i, kk] = zu if forward else zv
            if ng:
                gk = _crossing_group(e, k, su, sv, ec)
                for step in range(1, ng + 1):
                    g = step - 1 if forward else ng - step
                    t = ec.group_t[g0 + g]
                    sg = _edge_vertex_sign(g, gk, su, sv)
                    arr.lv_sign[i + step, kk] = sg
                    arr.lv_z[i + step, kk] = 0.0 if sg == 0 else (1.0 - t) * zu + t * zv
        i += 1 + ng
    for i in range(nb):
        arr.s_v[i] = i
        arr.s_next[i] = i + 1
    arr.s_next[nb - 1] = 0
    arr.poly_head[0] = 0
    return nb


@njit(cache=True, inline="always")
def _neuron_fits(f, nK, sub, arr):
    """Step 2b (faces cut by many neurons): each cutting neuron's affine function
    on the face, fitted from three vertices, and polygon 0's bounding box, for
    the prefilter of :func:`_cut_by_neuron`."""
    _poly_bbox(0, arr, 0)
    frame = _triangle_frame(sub.P, sub.face_off, sub.face_vtx, f)
    q0, q1, q2 = frame[0], frame[1], frame[2]
    for kk in range(nK):
        k = arr.kbuf[kk]
        gx, gy, c = _fit_on_frame(frame, sub.P, sub.Z[q0, k], sub.Z[q1, k], sub.Z[q2, k])
        arr.aff[kk, 0] = gx
        arr.aff[kk, 1] = gy
        arr.aff[kk, 2] = c
        arr.aff[kk, 3] = BBOX_MARGIN * arr.loc_eps[kk]


@njit(cache=True, inline="always")
def _crossing_slot(kk, nK, which, m, size, nsp, arr):
    """Step 3b: the slot where neuron ``kk``'s cut enters (``which`` 0: from + to -)
    or leaves (1: from - to +) the polygon whose slots and signs are
    ``cyc[:m]``/``sg[:m]``: the first zero of the gap between the runs, or a new
    vertex on the interior edge crossed there (shared with the polygon across
    that edge through ``sp_*``), inserted into the cycle and into ``cyc``/``sg``.
    Returns ``(slot, m, size, nsp, err)``; on an error the slot is -1."""
    nlv, ns, npoly, nie, niv = size
    sg = arr.sg
    cyc = arr.cyc
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
        return cyc[inext], m, size, nsp, 0
    # crossing on the edge from slot cyc[i_end] to cyc[inext]
    xs = cyc[i_end]
    d = arr.s_e[xs]
    if d >= 0:
        return -1, m, size, nsp, ERR_BOUNDARY
    q = -d - 1
    found = -1
    for r in range(nsp):
        if arr.sp_q[r] == q:
            found = r
            break
    if found >= 0:
        w = arr.sp_w[found]
        qn = arr.sp_qn[found]
        qa = arr.sp_a[found]
    else:
        if nlv >= arr.lv_gid.shape[0] or nie >= arr.ie_a.shape[0] or nsp >= arr.sp_q.shape[0]:
            return -1, m, size, nsp, ERR_CAPACITY
        qa = arr.ie_a[q]
        qb = arr.ie_b[q]
        za = arr.lv_z[qa, kk]
        zb = arr.lv_z[qb, kk]
        t = za / (za - zb)
        w = nlv
        arr.lv_gid[w] = -1 - niv
        niv += 1
        arr.lv_pos[w, 0] = (1.0 - t) * arr.lv_pos[qa, 0] + t * arr.lv_pos[qb, 0]
        arr.lv_pos[w, 1] = (1.0 - t) * arr.lv_pos[qa, 1] + t * arr.lv_pos[qb, 1]
        for k2 in range(nK):
            zz = (1.0 - t) * arr.lv_z[qa, k2] + t * arr.lv_z[qb, k2]
            sgn = _sign(zz, arr.loc_eps[k2])
            arr.lv_z[w, k2] = 0.0 if sgn == 0 else zz
            arr.lv_sign[w, k2] = sgn
        arr.lv_z[w, kk] = 0.0
        arr.lv_sign[w, kk] = 0
        nlv += 1
        qn = nie
        nie += 1
        arr.ie_a[qn] = w
        arr.ie_b[qn] = qb
        arr.ie_b[q] = w
        arr.sp_q[nsp] = q
        arr.sp_w[nsp] = w
        arr.sp_qn[nsp] = qn
        arr.sp_a[nsp] = qa
        nsp += 1
    if ns >= arr.s_v.shape[0]:
        return -1, m, (nlv, ns, npoly, nie, niv), nsp, ERR_CAPACITY
    sw = ns
    ns += 1
    arr.s_v[sw] = w
    arr.s_next[sw] = arr.s_next[xs]
    arr.s_next[xs] = sw
    if arr.s_v[xs] == qa:
        arr.s_e[xs] = -(q + 1)
        arr.s_e[sw] = -(qn + 1)
    else:
        arr.s_e[xs] = -(qn + 1)
        arr.s_e[sw] = -(q + 1)
    # keep the cycle arrays valid for the second transition
    for r in range(m, i_end + 1, -1):
        cyc[r] = cyc[r - 1]
        sg[r] = sg[r - 1]
    cyc[i_end + 1] = sw
    sg[i_end + 1] = 0
    return sw, m + 1, (nlv, ns, npoly, nie, niv), nsp, 0


@njit(cache=True, inline="always")
def _split_polygon(kk, nK, p, m, size, nsp, use_bb, arr):
    """Step 3a: split polygon ``p`` (slots and signs in ``cyc[:m]``/``sg[:m]``, one +
    run and one - run) by neuron ``kk`` along the chord between its two crossing
    slots: ``p`` keeps the + side, a new polygon gets the - side. Returns
    ``(size, nsp, err)``."""
    sa, m, size, nsp, err = _crossing_slot(kk, nK, 0, m, size, nsp, arr)
    if err:
        return size, nsp, err
    sb, m, size, nsp, err = _crossing_slot(kk, nK, 1, m, size, nsp, arr)
    if err:
        return size, nsp, err
    nlv, ns, npoly, nie, niv = size
    s_v = arr.s_v
    s_e = arr.s_e
    s_next = arr.s_next
    # predecessor of B's slot (on the - side)
    x = sa
    while s_next[x] != sb:
        x = s_next[x]
    prev_b = x
    if ns + 2 > s_v.shape[0] or nie >= arr.ie_a.shape[0] or npoly >= arr.poly_head.shape[0]:
        return size, nsp, ERR_CAPACITY
    qc = nie
    nie += 1
    arr.ie_a[qc] = s_v[sa]
    arr.ie_b[qc] = s_v[sb]
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
    arr.poly_head[p] = sb
    arr.poly_head[npoly] = a2
    if use_bb:
        _poly_bbox(sb, arr, p)
        _poly_bbox(a2, arr, npoly)
    return (nlv, ns, npoly + 1, nie, niv), nsp, 0


@njit(cache=True, inline="always")
def _cut_by_neuron(kk, nK, use_bb, size, arr):
    """Step 3: cut every polygon of the arrangement that neuron ``kk`` is strictly
    positive and strictly negative on (polygons whose bounding box is clearly
    on one side are skipped when ``use_bb``). Returns ``(size, err)``; the error
    flags of a polygon that could not be cut leave that polygon whole."""
    err = 0
    nsp = 0
    npoly_start = size[2]
    if use_bb:
        gx = arr.aff[kk, 0]
        gy = arr.aff[kk, 1]
        c0 = arr.aff[kk, 2]
        margin = arr.aff[kk, 3]
    for p in range(npoly_start):
        if use_bb:
            bb = arr.poly_bb
            cx = 0.5 * (bb[p, 0] + bb[p, 1])
            cy = 0.5 * (bb[p, 2] + bb[p, 3])
            zc = gx * cx + gy * cy + c0
            spread = abs(gx) * 0.5 * (bb[p, 1] - bb[p, 0]) + abs(gy) * 0.5 * (bb[p, 3] - bb[p, 2])
            if zc - spread > margin or zc + spread < -margin:
                continue
        # collect the cycle
        h = arr.poly_head[p]
        m = 0
        x = h
        has_pos = False
        has_neg = False
        while True:
            if m >= arr.cyc.shape[0]:
                return size, ERR_CAPACITY
            arr.cyc[m] = x
            sgv = arr.lv_sign[arr.s_v[x], kk]
            arr.sg[m] = sgv
            if sgv > 0:
                has_pos = True
            elif sgv < 0:
                has_neg = True
            m += 1
            x = arr.s_next[x]
            if x == h:
                break
        if not (has_pos and has_neg):
            continue
        if _sign_changes(arr.sg, m) != 2:
            err |= ERR_RUNS
            continue
        size, nsp, e = _split_polygon(kk, nK, p, m, size, nsp, use_bb, arr)
        if e & ERR_CAPACITY:
            return size, ERR_CAPACITY
        err |= e
    return size, err


@njit(cache=True, inline="always")
def _cut_face(f, sub, ec, fc, rtol, arr):
    """Face ``f``'s local arrangement in ``arr``: its boundary cut by each of its
    neurons in turn. Returns ``(size, err)``."""
    nK = _face_neurons(f, sub, fc, rtol, arr)
    nb = _boundary_cycle(f, nK, sub, ec, arr)
    size = (nb, nb, 1, 0, 0)
    if nb < 0:
        return size, ERR_CAPACITY
    use_bb = nK >= BBOX_MIN_CUTS
    if use_bb:
        _neuron_fits(f, nK, sub, arr)
    err = 0
    for kk in range(nK):
        size, e = _cut_by_neuron(kk, nK, use_bb, size, arr)
        if e & ERR_CAPACITY:
            return size, ERR_CAPACITY
        err |= e
    return size, err


@njit(cache=True, inline="always")
def _count_slots(size, arr):
    """Slots over all polygons of the arrangement."""
    nslots = 0
    for p in range(size[2]):
        h = arr.poly_head[p]
        x = h
        while True:
            nslots += 1
            x = arr.s_next[x]
            if x == h:
                break
    return nslots


@njit(cache=True, inline="always")
def _write_interior_vertices(f, nK, size, sub, ch, arr):
    """Step 4a: positions and recipes of the new interior vertices (barycentric in
    a well-shaped triangle of the old face) and the cutting neurons that are 0
    at each."""
    nlv, niv = size[0], size[4]
    if niv == 0:
        return
    P = sub.P
    base = ch.first_interior_vertex + ch.out[f, 2]
    q0, q1, q2, e1x, e1y, e2x, e2y, det = _triangle_frame(P, sub.face_off, sub.face_vtx, f)
    for lv in range(nlv):
        if arr.lv_gid[lv] < 0:
            i = -1 - arr.lv_gid[lv]
            gid = base + i
            px = arr.lv_pos[lv, 0]
            py = arr.lv_pos[lv, 1]
            ch.P[gid, 0] = px
            ch.P[gid, 1] = py
            dx = px - P[q0, 0]
            dy = py - P[q0, 1]
            l1 = (dx * e2y - dy * e2x) / det
            l2 = (e1x * dy - e1y * dx) / det
            ch.rec_idx[gid, 0] = q0
            ch.rec_idx[gid, 1] = q1
            ch.rec_idx[gid, 2] = q2
            ch.rec_w[gid, 0] = 1.0 - l1 - l2
            ch.rec_w[gid, 1] = l1
            ch.rec_w[gid, 2] = l2
            r = ch.out[f, 2] + i
            nz = 0
            for kk in range(nK):
                if arr.lv_sign[lv, kk] == 0 and nz < ch.iv_zero.shape[1]:
                    ch.iv_zero[r, nz] = arr.kbuf[kk]
                    nz += 1


@njit(cache=True, inline="always")
def _global_vertex(lv, base_iv, arr):
    g = arr.lv_gid[lv]
    return g if g >= 0 else base_iv + (-1 - g)


@njit(cache=True, inline="always")
def _positive_bits(f, fo, fc, ch):
    """Old face ``f``'s "positive somewhere" bits of this layer into new face ``fo``."""
    nwords = ch.bits.shape[1]
    sh = np.uint64(ch.bit_offset & 63)
    w0 = ch.bit_offset >> 6
    for j in range(fc.face_pos.shape[1]):
        word = fc.face_pos[f, j]
        if word == 0:
            continue
        ch.bits[fo, w0 + j] |= word << sh
        if sh != 0 and w0 + j + 1 < nwords:
            ch.bits[fo, w0 + j + 1] |= word >> (np.uint64(64) - sh)


@njit(cache=True, inline="always")
def _write_uncut_face(f, sub, ec, fc, ch):
    """Step 4 for a face no neuron cuts: it becomes one new face, its boundary
    the old vertices and this layer's vertices on its edges (in the order of
    :func:`_boundary_cycle`), its bits those of :func:`_positive_bits`."""
    fo = ch.out[f, 0]
    so = ch.out[f, 1]
    ch.face_off[fo] = so
    for s in range(sub.face_off[f], sub.face_off[f + 1]):
        a, e, u, v, forward, g0, ng = _slot_edge(s, sub, ec)
        ch.face_vtx[so] = a
        ch.face_edge[so] = ec.sub_off[e] + (0 if forward else ng)
        so += 1
        for step in range(1, ng + 1):
            g = step - 1 if forward else ng - step
            ch.face_vtx[so] = ec.first_vertex + g0 + g
            ch.face_edge[so] = ec.sub_off[e] + (g + 1 if forward else g)
            so += 1
    _positive_bits(f, fo, fc, ch)


@njit(cache=True, inline="always")
def _positive_vertex_bits(nK, nlv, arr):
    """``lv_on``: for each of the ``nlv`` local vertices, the cutting neurons
    strictly positive there, as bits (one pass over ``lv_sign`` in memory order
    instead of one strided walk per polygon and neuron)."""
    kwords = (nK + 63) >> 6
    for v in range(nlv):
        for j in range(kwords):
            arr.lv_on[v, j] = 0
        for kk in range(nK):
            if arr.lv_sign[v, kk] > 0:
                arr.lv_on[v, kk >> 6] |= _ONE << np.uint64(kk & 63)


@njit(cache=True, inline="always")
def _write_children(f, nK, size, sub, fc, ch, arr):
    """Step 4: write face ``f``'s arrangement: interior vertices, interior edges,
    and each polygon as a new face with its slots and this layer's pattern bits
    (the face's "positive somewhere" bits, minus the cutting neurons strictly
    positive at none of the polygon's vertices)."""
    _write_interior_vertices(f, nK, size, sub, ch, arr)
    base_iv = ch.first_interior_vertex + ch.out[f, 2]
    base_ie = ch.first_interior_edge + ch.out[f, 3]
    for q in range(size[3]):
        ch.edges[base_ie + q, 0] = _global_vertex(arr.ie_a[q], base_iv, arr)
        ch.edges[base_ie + q, 1] = _global_vertex(arr.ie_b[q], base_iv, arr)
    _positive_vertex_bits(nK, size[0], arr)
    fo = ch.out[f, 0]
    so = ch.out[f, 1]
    for p in range(size[2]):
        ch.face_off[fo] = so
        h = arr.poly_head[p]
        x = h
        while True:
            ch.face_vtx[so] = _global_vertex(arr.s_v[x], base_iv, arr)
            d = arr.s_e[x]
            ch.face_edge[so] = d if d >= 0 else base_ie + (-d - 1)
            so += 1
            x = arr.s_next[x]
            if x == h:
                break
        _positive_bits(f, fo, fc, ch)
        kwords = (nK + 63) >> 6
        for j in range(kwords):
            arr.poly_on[j] = 0
        x = h
        while True:
            for j in range(kwords):
                arr.poly_on[j] |= arr.lv_on[arr.s_v[x], j]
            x = arr.s_next[x]
            if x == h:
                break
        for kk in range(nK):
            if not (arr.poly_on[kk >> 6] >> np.uint64(kk & 63)) & _ONE:
                bb = ch.bit_offset + arr.kbuf[kk]
                ch.bits[fo, bb >> 6] &= ~(_ONE << np.uint64(bb & 63))
        fo += 1


@njit(cache=True)
def _chunk_scratch(f0, f1, fc):
    """The :data:`Arrangement` for faces ``f0:f1``: sized for the most cutting
    neurons and boundary vertices of one of them."""
    kmax = 0
    mmax = 0
    for f in range(f0, f1):
        kmax = max(kmax, fc.cut_off[f + 1] - fc.cut_off[f])
        mmax = max(mmax, fc.nbnd[f])
    return _scratch(kmax, mmax)


@njit(cache=True)
def _count_chunk(f0, f1, sub, ec, fc, rtol, counts, scratch):
    """The count pass over faces ``f0:f1`` into ``counts`` (see :func:`count_cuts`),
    in the arrangement ``scratch``."""
    sub, ec, fc, arr, (counts,) = (_borrowed(sub), _borrowed(ec), _borrowed(fc),
                                   _borrowed(scratch), _borrowed((counts,)))
    for f in range(f0, f1):
        nK = fc.cut_off[f + 1] - fc.cut_off[f]
        if nK == 0:
            counts[f, 0] = 1
            counts[f, 1] = fc.nbnd[f]
            continue
        if nK == 1:
            r = _count_single_cut(f, fc.cut_neuron[fc.cut_off[f]], sub, ec, fc.nbnd[f], arr.sg)
        else:
            size, err = _cut_face(f, sub, ec, fc, rtol, arr)
            if err & ERR_CAPACITY:
                r = (0, 0, 0, 0, ERR_CAPACITY)
            else:
                r = (size[2], _count_slots(size, arr), size[4], size[3], err)
        for j in range(5):
            counts[f, j] = r[j]


@njit(cache=True)
def _write_chunk(f0, f1, sub, ec, fc, rtol, ch, scratch):
    """The write pass over faces ``f0:f1`` into ``ch`` (see :func:`write_cuts`), in
    the arrangement ``scratch``."""
    sub, ec, fc, ch, arr = (_borrowed(sub), _borrowed(ec), _borrowed(fc), _borrowed(ch),
                            _borrowed(scratch))
    for f in range(f0, f1):
        nK = fc.cut_off[f + 1] - fc.cut_off[f]
        if nK == 0:
            _write_uncut_face(f, sub, ec, fc, ch)
            continue
        size, err = _cut_face(f, sub, ec, fc, rtol, arr)
        _write_children(f, nK, size, sub, fc, ch, arr)


@njit(cache=True, parallel=True)
def count_cuts(chunk, sub, ec, fc, rtol):
    """Count pass: per old face, the (faces, slots, interior vertices, interior
    edges, error flags) it is cut into, ``(F, 5)`` (parallel over chunks of
    ``chunk`` faces, one :data:`Arrangement` per chunk). Faces cut by at most one
    neuron are counted from the sign walk alone. ``rtol``: the zero tolerance
    of values interpolated inside a face, relative to the neuron's largest
    ``|z|`` on it."""
    F = sub.face_off.shape[0] - 1
    counts = np.zeros((F, 5), dtype=np.int64)
    nchunks = (F + chunk - 1) // chunk
    for c in prange(nchunks):
        f0 = c * chunk
        f1 = min(F, f0 + chunk)
        _count_chunk(f0, f1, sub, ec, fc, rtol, counts, _chunk_scratch(f0, f1, fc))
    return counts


@njit(cache=True, parallel=True)
def write_cuts(chunk, sub, ec, fc, rtol, ch):
    """Write pass: build every face's arrangement again (the same computation as
    :func:`count_cuts`) and write it into ``ch`` (:data:`Children`) at the offsets
    the count pass gave."""
    F = sub.face_off.shape[0] - 1
    nchunks = (F + chunk - 1) // chunk
    for c in prange(nchunks):
        f0 = c * chunk
        f1 = min(F, f0 + chunk)
        _write_chunk(f0, f1, sub, ec, fc, rtol, ch, _chunk_scratch(f0, f1, fc))


# ----------------------------------------------------------------------------- next values
# Row-range kernels (nogil) for the values of the next layer: the engine runs
# them over the rows of one chunk split between Python threads, around the
# BLAS product of the chunk (``regions.engine2d._next_values``).

@njit(cache=True, inline="always")
def _recipe_row(Z, rec_idx, rec_w, v, out, r, col0):
    """``out[r, col0:col0 + n] = sum_i w_i Z[idx_i]``: the values at new vertex ``v``
    from its recipe (one old vertex; two with ``w2 == 0``; else three)."""
    n = Z.shape[1]
    i0 = rec_idx[v, 0]
    i1 = rec_idx[v, 1]
    i2 = rec_idx[v, 2]
    w0 = rec_w[v, 0]
    w1 = rec_w[v, 1]
    w2 = rec_w[v, 2]
    if i1 < 0:
        for k in range(n):
            out[r, col0 + k] = Z[i0, k]
    elif w2 == 0.0:
        for k in range(n):
            out[r, col0 + k] = w0 * Z[i0, k] + w1 * Z[i1, k]
    else:
        for k in range(n):
            out[r, col0 + k] = w0 * Z[i0, k] + w1 * Z[i1, k] + w2 * Z[i2, k]


@njit(cache=True, nogil=True)
def activation_rows(Z, C, rec_idx, rec_w, V_old, zero_vertex, zero_neuron, iv_zero, iv_start,
                    slope, a, first, start, stop):
    """The next product's input at vertices ``first + start .. first + stop - 1``
    into rows ``start .. stop - 1`` of ``a``: the activated kink values ``Z``
    (``a[:, :n]``), then the carried values ``C`` as they are (``a[:, n:]``;
    ``C`` may have no columns).

    An old vertex (``< V_old``) keeps its row; a new one is interpolated from
    its recipe (``rec_idx``, ``rec_w``) and the neurons whose cut made it are set
    to exactly 0 before the activation: those listed for it in ``zero_vertex``
    (sorted) / ``zero_neuron`` (edge vertices) and in row ``v - iv_start`` of
    ``iv_zero`` (interior vertices from ``iv_start``; -1: none). The activation
    is ``max(z, 0)`` for ``slope == 0`` (as ``numpy.maximum``: ``-0.0`` gives ``0.0``),
    else ``z`` for ``z > 0`` and ``slope * z`` otherwise."""
    n = Z.shape[1]
    i = np.searchsorted(zero_vertex, first + start)
    nz = zero_vertex.shape[0]
    for r in range(start, stop):
        v = first + r
        if v < V_old:
            for k in range(n):
                a[r, k] = Z[v, k]
            for k in range(C.shape[1]):
                a[r, n + k] = C[v, k]
        else:
            _recipe_row(Z, rec_idx, rec_w, v, a, r, 0)
            while i < nz and zero_vertex[i] == v:
                a[r, zero_neuron[i]] = 0.0
                i += 1
            if v >= iv_start:
                for j in range(iv_zero.shape[1]):
                    k = iv_zero[v - iv_start, j]
                    if k >= 0:
                        a[r, k] = 0.0
            if C.shape[1]:
                _recipe_row(C, rec_idx, rec_w, v, a, r, n)
        if slope == 0.0:
            for k in range(n):
                z = a[r, k]
                a[r, k] = 0.0 if z <= 0.0 else z
        else:
            for k in range(n):
                z = a[r, k]
                a[r, k] = z if z > 0.0 else z * slope


@njit(cache=True, nogil=True)
def bias_snap_rows(out, a, b, W_abs, b_abs, w_max, rtol, snap, start, stop):
    """Rows ``start .. stop - 1`` of ``out = a @ W.T`` (the product done): add the bias
    ``b``, then, with ``snap``, set the values zero to within rounding of their
    terms to exactly 0 (:func:`kernels.line.snap_rows`)."""
    n = out.shape[1]
    for p in range(start, stop):
        for k in range(n):
            out[p, k] += b[k]
        if snap:
            snap_row(out, a, p, W_abs, b_abs, w_max, rtol)


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
