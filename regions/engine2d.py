"""The exact 2D engine: a convex domain cut into the linear regions of a ReLU network.

The engine (:func:`enumerate_plane`) keeps a convex subdivision of the domain
as arrays and cuts it layer by layer with the kernels of :mod:`kernels.plane`.
Each vertex carries only the current layer's pre-activations; after a layer
is cut, the values at all vertices are pushed through the next weight matrix
in one BLAS product (in chunks, to bound memory). A layer's carried units
(:attr:`regions.Network.linear`: residual streams, skips) are never cut: the
kernels see the layer's kink values only, and the carried values ride along,
interpolated with the same recipes and passed to the next product unchanged
(:func:`_next_values`; ``docs/design.md``, "Reading a model").

Memory
------
The values ``Z`` (vertices x width, float64) dominate: they are grown in
place between layers (``ndarray.resize``), never copied. Each layer's kernel
writes only that layer's pattern bits; the earlier layers' words are gathered
from the parent faces once the old faces are freed, and freed pages go back
to the OS before the next generation of arrays is allocated. Measured on
2-256x4-1 over [-3, 3]^2 (481,387 regions): 963 MB peak for the whole process
(benchmarks/RESULTS.md).

Tolerance (local)
-----------------
A neuron's zero is decided relative to the size of its own affine function
where it is evaluated, never relative to its values elsewhere in the domain:

* at a vertex ``v``, ``z_k(v) = sum_j W_kj a_j(v) + b_k`` counts as zero when
  ``|z_k(v)| <= RTOL * (sum_j |W_kj| |a_j(v)| + |b_k|)`` (``RTOL = 1e-10``), the
  size of the terms it is summed from at ``v``, which bounds its rounding
  (:func:`kernels.line.snap_rows` sets it to exactly 0: the neuron's line
  passes through ``v``, which becomes an end of the cut without a new
  vertex);
* the neurons whose cut creates a vertex are exactly 0 there (for the next
  layer too: they are zeroed before activation);
* inside a face, a value the cut interpolates at a new interior vertex
  counts as zero within ``RTOL`` times the neuron's largest ``|z_k|`` over the
  face's vertices.

Each (vertex, neuron) is decided once, and every sign test after that is
exact, so the faces around a vertex always agree. The partition is the same
whatever the spread of scales float64 can represent between neurons or
across the domain (a neuron scaled by ``1e10`` next to ``O(1)`` ones, weights
from ``1e-150`` to ``1e150``), and unchanged when a neuron's ``(W_k, b_k)`` is
multiplied by a positive factor (with the next layer's column divided by
it). A rule relative to the neuron's largest value over the whole domain (the
former one) swallowed real sign changes wherever the neuron was small; a rule
relative to the neuron's values on a face alone would take the rounding noise
of a neuron identically zero on that face for signal. Two crossings of one
edge closer than ``1e-12`` of the edge's length are one vertex. So regions
thinner than about ``1e-10`` of the size of the terms (about ``1e-10`` of the
domain's scale for the first layer) are never created (they are reported
nowhere; :meth:`regions.partition2d.Partition2D.locate` puts a point inside one into the region
that covers it).

Bounded work
------------
``max_regions`` is checked after every layer's count pass (on a non-convex
polygon, against the regions the merge would give for the layers so far, a
lower bound of the final count); before a layer is built, the memory its
arrays need is estimated from the count pass and checked against the memory
budget (:class:`regions.MemoryBudgetExceeded`). A cut the kernels find
numerically inconsistent raises ``RuntimeError`` (an engine error) instead of
returning a partition that would be wrong.

Degenerate cases (handled by that rule, and tested): a line through an
existing vertex; a line along an edge or touching a face at a vertex (no
strictly positive or no strictly negative vertex: no cut); duplicate and
scaled-duplicate neurons (the second has all its crossings at existing
vertices); neurons constant on the domain (never cut; their bit is the sign
of the constant, and an identically zero neuron is off).
"""
from __future__ import annotations

import time

import numpy as np

from ._shared import (check_layer_memory, check_region_cap, memory_budget as default_budget,
                      progress_bar, split_rows as _split)
from .network import ZERO_RTOL

RTOL = ZERO_RTOL  # one zero rule: kernels.line.REL_TOL
_ROWS_PER_CHUNK = 8192


def _malloc_trim():
    """``malloc_trim`` of glibc, or a no-op elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
        trim.argtypes = [ctypes.c_size_t]
        return lambda: trim(0)
    except (OSError, AttributeError):  # not glibc
        return lambda: None


# Between layers the engine frees one generation of arrays (tens to hundreds
# of MB) and allocates the next. glibc keeps freed heap blocks resident
# (after the first large free it raises its mmap threshold to 32 MB, so most
# of these arrays live on the heap); handing the free pages back before the
# next generation is allocated keeps the peak at the live data (measured on
# 2-256x4-1: 960 MB instead of 1,100 MB).
_release_free_memory = _malloc_trim()

__all__ = ["enumerate_plane", "merge_pieces", "RTOL"]


def _initial(pieces):
    """Convex CCW pieces -> (P, face_off, face_vtx, face_edge, edges), vertices shared."""
    coords = np.concatenate(pieces, axis=0)
    uniq, inv = np.unique(coords, axis=0, return_inverse=True)
    inv = inv.ravel()
    face_off = np.zeros(len(pieces) + 1, dtype=np.int64)
    face_off[1:] = np.cumsum([len(p) for p in pieces])
    face_vtx = inv.astype(np.int64)
    nxt = face_vtx.copy()
    for f in range(len(pieces)):
        s0, s1 = face_off[f], face_off[f + 1]
        nxt[s0:s1] = np.roll(face_vtx[s0:s1], -1)
    lo = np.minimum(face_vtx, nxt)
    hi = np.maximum(face_vtx, nxt)
    key = lo * len(uniq) + hi
    ukeys, eid = np.unique(key, return_inverse=True)
    edges = np.stack([ukeys // len(uniq), ukeys % len(uniq)], axis=1).astype(np.int64)
    return uniq.astype(np.float64), face_off, face_vtx, eid.ravel().astype(np.int64), edges


def enumerate_plane(network, pieces, max_regions=None, progress=None, memory_budget=None,
                    merged=False):
    """Cut the convex ``pieces`` (list of CCW ``(m, 2)`` arrays) by every hidden
    layer of a 2-input ``network``. Returns a dict of arrays.

    ``max_regions`` is checked after every layer's count pass; with
    ``merged=True`` (the pieces of one non-convex domain, to be merged by
    :func:`merge_pieces`) it is checked against the number of regions the
    merge would give for the layers so far, which never exceeds the final
    one. ``memory_budget`` (bytes; ``None``: :func:`regions.api.memory_budget`)
    bounds the estimated memory of each layer (``MemoryBudgetExceeded``).
    A numerically inconsistent cut raises ``RuntimeError`` (an engine error).
    ``stats['products']`` lists the ``[rows, inputs, outputs]`` of every product
    of vertex values with a weight matrix (what the BLAS alone would take:
    ``benchmarks/bench_engine.py`` times them as the engine's floor).

    The layer loop stays in this one frame on purpose: it frees each
    generation's arrays (``del``) at the points that bound the peak memory
    (one full pattern array, not two; the old faces gone before the next
    values are formed), which helpers holding references would defeat.
    """
    from kernels import line, plane
    from kernels.polygon import affine_fits

    t0 = time.perf_counter()
    budget = default_budget() if memory_budget is None else memory_budget
    P, face_off, face_vtx, face_edge, edges = _initial(pieces)
    # carried units (residual streams, input skips) are never cut: each layer's
    # kink units lead (Z, what the kernels see), its carried values C follow
    network = network.kink_first()
    n_hidden = network.n_hidden
    words = max(1, (n_hidden + 63) // 64)
    bits = np.zeros((len(pieces), words), dtype=np.uint64)
    layers = list(network.hidden_layers)
    W0, b0 = network.weights[0], network.biases[0]
    k0 = network.n_kinks(0) if layers else W0.shape[0]
    Z = P @ W0[:k0].T + b0[:k0]
    C = P @ W0[k0:].T + b0[k0:] if k0 < W0.shape[0] else None
    # (rows, inputs, outputs) of each product of vertex values, for stats['products']
    products = [[P.shape[0], W0.shape[1], W0.shape[0]]]
    if layers:
        _snap(Z, P, W0[:k0], b0[:k0])
    bit_offset = 0
    bar = progress_bar(progress, total=len(layers), desc="regions", unit="layer")
    try:
        for li, (W, b, slope) in enumerate(layers):
            n = Z.shape[1]      # the kink units: the layer's cuts and pattern bits
            where = f"hidden layer {li + 1} of {len(layers)}"
            V = P.shape[0]
            pos, neg = plane.vertex_sign_bits(Z)
            cross_off, cross_neuron, cross_group, ngroups, group_off, group_t = plane.edge_crossings(edges, Z, pos, neg)
            n_ev = int(group_off[-1])
            sub_off = np.zeros(len(edges) + 1, dtype=np.int64)
            np.cumsum(ngroups + 1, out=sub_off[1:])
            E_sub = int(sub_off[-1])
            F = len(face_off) - 1
            chunk = max(1, min(256, F // 64 + 1))
            cut_off, cut_neuron, nbnd, face_pos = plane.face_cutters(pos, neg, face_off, face_vtx, face_edge, ngroups)
            del pos, neg
            live = (0 if C is None else C.nbytes) + sum(
                x.nbytes for x in (P, face_off, face_vtx, face_edge, edges, bits, Z, cross_off,
                                          cross_neuron, cross_group, group_off, group_t, cut_off,
                                          cut_neuron, face_pos, nbnd))
            # the faces' local arrangements: scratch per chunk of faces, cubic
            # in the number of neurons cutting one face (a wide first layer)
            scratch, widest = _scratch_bytes(cut_off, nbnd, chunk)
            check_layer_memory(live + scratch, budget, max_regions, where,
                               f"count pass; a face cut by {widest} neurons")
            subdivision = plane.Subdivision(P, Z, face_off, face_vtx, face_edge, edges)
            edge_cuts = plane.EdgeCuts(V, cross_off, cross_neuron, cross_group, group_off, group_t,
                                       sub_off)
            face_cuts = plane.FaceCuts(cut_off, cut_neuron, face_pos, nbnd)
            counts = plane.count_cuts(chunk, subdivision, edge_cuts, face_cuts, RTOL)
            errors = int(np.bitwise_or.reduce(counts[:, 4])) if F else 0
            if errors:
                raise RuntimeError(
                    f"engine error in {where}: numerically inconsistent cuts (flags {errors}: "
                    f"{_describe_errors(errors)}); the partition would be wrong, so none is "
                    "returned. Please report it with the network and the domain.")
            F_new = int(counts[:, 0].sum())
            if not merged:
                check_region_cap(F_new, max_regions, f"after {where}")
            # exclusive prefix sums of (faces, slots, interior vertices, interior edges)
            # per old face: where each face writes its output
            offs = np.zeros((F + 1, 4), dtype=np.int64)
            np.cumsum(counts[:, :4], axis=0, out=offs[1:])
            del counts
            S_new, n_iv, n_ie = (int(x) for x in offs[-1, 1:])
            V_new = V + n_ev + n_iv
            n_next = network.weights[li + 1].shape[0]
            lo_bit = bit_offset & 63
            layer_words = (lo_bit + n + 63) // 64
            # the arrays alive at the layer's peak: this generation's, the next
            # one's (positions, recipes, edges, faces, bits, parents), the next
            # values (grown in place from Z when the width does not change) and
            # the write pass's scratch
            new = (scratch + V_new * (16 + 24 + 24) + (E_sub + n_ie) * 16 + (F_new + 1) * 8 + S_new * 16
                   + F_new * 8 * (words + layer_words + 1) + n_iv * 8 * _IV_ZERO
                   + V_new * n_next * 8 - (Z.nbytes if n_next == n else 0))
            check_layer_memory(live + new, budget, max_regions, where, f"{F_new} regions")
            parent = np.repeat(np.arange(F), np.diff(offs[:, 0]))  # old face of each new face
            new_P = np.empty((V_new, 2))
            new_P[:V] = P
            rec_idx = np.full((V_new, 3), -1, dtype=np.int64)
            rec_idx[:V, 0] = np.arange(V)
            rec_w = np.zeros((V_new, 3))
            rec_w[:V, 0] = 1.0
            new_edges = np.empty((E_sub + n_ie, 2), dtype=np.int64)
            plane.write_edge_vertices(P, edges, group_off, group_t, V, sub_off, new_P, rec_idx, rec_w,
                                      new_edges)
            new_face_off = np.empty(F_new + 1, dtype=np.int64)
            new_face_off[F_new] = S_new
            new_face_vtx = np.empty(S_new, dtype=np.int64)
            new_face_edge = np.empty(S_new, dtype=np.int64)
            iv_zero = np.full((n_iv, _IV_ZERO), -1, dtype=np.int64)
            # the kernel writes only this layer's bits (in words starting at word
            # bit_offset // 64); the earlier layers' words are gathered from the
            # parent faces afterwards, once the old faces are freed: peak memory
            # holds one full bit array, not two
            layer_bits = np.zeros((F_new, layer_words), dtype=np.uint64)
            children = plane.Children(V + n_ev, E_sub, lo_bit, offs[:-1], new_face_off, new_face_vtx,
                                      new_face_edge, new_edges, new_P, rec_idx, rec_w, iv_zero,
                                      layer_bits)
            plane.write_cuts(chunk, subdivision, edge_cuts, face_cuts, RTOL, children)
            del subdivision, edge_cuts, face_cuts, children
            # the crossing neurons of each new edge vertex: exactly 0 there
            cross_vertex = plane.crossing_vertices(cross_off, cross_group, group_off, V)
            del (cross_off, cross_group, group_t, group_off, sub_off, offs, cut_off,
                 cut_neuron, face_pos, nbnd, ngroups, P, face_off, face_vtx, face_edge, edges)
            _release_free_memory()
            new_bits = bits[parent]
            del bits, parent
            w0 = bit_offset >> 6
            new_bits[:, w0:w0 + layer_words] |= layer_bits
            del layer_bits
            P, face_off, face_vtx, face_edge, edges, bits = (new_P, new_face_off, new_face_vtx,
                                                             new_face_edge, new_edges, new_bits)
            del new_P, new_face_off, new_face_vtx, new_face_edge, new_edges, new_bits
            _release_free_memory()
            if merged and max_regions is not None and len(face_off) - 1 > max_regions:
                n_merged = _same_pattern_components(face_off, face_vtx, face_edge, edges, bits)[0]
                check_region_cap(n_merged, max_regions, f"after {where} (same-pattern faces merged)")
            # values of the next layer at every vertex: interpolate z_l at the new
            # vertices, activate, one BLAS product; old vertices in place
            Wn, bn = network.weights[li + 1], network.biases[li + 1]
            zeros = _NewVertexZeros(cross_vertex, cross_neuron, iv_zero, V + n_ev)
            del cross_vertex, cross_neuron, iv_zero
            products.append([V_new, Wn.shape[1], Wn.shape[0]])
            hidden = li + 1 < len(layers)
            Z, C = _next_values(Z, C, rec_idx, rec_w, V, V_new, slope, Wn, bn,
                                network.n_kinks(li + 1) if hidden else Wn.shape[0], zeros,
                                snap=hidden)
            del rec_idx, rec_w, zeros
            _release_free_memory()
            bit_offset += n
            if bar is not None:
                bar.set_postfix(regions=F_new)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    A, c = affine_fits(P, np.ascontiguousarray(Z), face_off, face_vtx)
    return dict(vertices=P, face_offsets=face_off, face_vertices=face_vtx, face_edges=face_edge,
                edges=edges, packed_patterns=bits, A=A, c=c, vertex_values=Z,
                stats=dict(seconds=time.perf_counter() - t0, errors=0, products=products))


_IV_ZERO = 4   # neurons recorded as exactly 0 at a new interior vertex (two meet at each)


def _scratch_bytes(cut_off, nbnd, chunk):
    """Bytes of the face kernel's scratch (``kernels.plane._scratch``) for the
    chunks of faces that run at once, and the most neurons cutting one face."""
    import numba

    F = len(cut_off) - 1
    if F == 0:
        return 0, 0
    starts = np.arange(0, F, chunk)
    k = np.maximum.reduceat(np.diff(cut_off), starts).astype(np.int64)
    m = np.maximum.reduceat(nbnd, starts).astype(np.int64)
    pairs = k * (k - 1) // 2
    polys = 2 * (1 + k + pairs) + 4
    local_vertices = m + 2 * pairs + 8
    slots = m + 4 * pairs + 2 * polys + 8
    inner_edges = polys + 2 * pairs + 8
    k1 = np.maximum(k, 1)
    kwords = (k1 + 63) // 64
    per_chunk = (local_vertices * (24 + 9 * k1 + 8 * kwords) + slots * 40 + 32 + polys * 40
                 + inner_edges * 48 + 48 * k1 + 8 * kwords)
    at_once = min(numba.get_num_threads(), len(per_chunk))
    return int(np.sort(per_chunk)[-at_once:].sum()), int(k.max())


def _describe_errors(flags):
    from kernels import plane

    names = {plane.ERR_RUNS: "a face's signs were not one + run and one - run",
             plane.ERR_BOUNDARY: "a cut crossed an edge between two of its own vertices",
             plane.ERR_CAPACITY: "a local scratch bound was exceeded"}
    return "; ".join(text for flag, text in names.items() if flags & flag)


def _snap(Z, A, W, b):
    """Set to exactly 0 the entries of ``Z = A @ W.T + b`` that are zero to within
    rounding of their terms (:func:`kernels.line.snap_rows`)."""
    from kernels import line

    W_abs = np.abs(W)
    w_max = W_abs.max(axis=1) if W.shape[1] else np.zeros(W.shape[0])
    line.snap_rows(Z, np.ascontiguousarray(A), W_abs, np.abs(b), w_max, RTOL, 0, Z.shape[0])


class _NewVertexZeros:
    """The neurons that are exactly 0 at the vertices a layer created: the
    crossing neurons of each edge vertex (``vertex``, ``neuron``, sorted by
    vertex) and up to ``_IV_ZERO`` per interior vertex (``iv_zero``, rows from
    ``iv_start``; -1: none). :func:`kernels.plane.activation_rows` applies them."""

    def __init__(self, vertex, neuron, iv_zero, iv_start):
        self.vertex, self.neuron, self.iv_zero, self.iv_start = vertex, neuron, iv_zero, iv_start


def _same_pattern_components(face_off, face_vtx, face_edge, edges, bits):
    """Connected components of the faces under "shares an edge and has the same
    pattern": ``(count, label per face, per edge whether it joins two such faces)``."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    F, E = len(face_off) - 1, len(edges)
    face_of_slot = np.repeat(np.arange(F), np.diff(face_off))
    fwd = face_vtx == edges[face_edge, 0]
    ef = np.full((E, 2), -1, dtype=np.int64)
    ef[face_edge[fwd], 0] = face_of_slot[fwd]
    ef[face_edge[~fwd], 1] = face_of_slot[~fwd]
    inner = (ef[:, 0] >= 0) & (ef[:, 1] >= 0)
    same = inner.copy()
    same[inner] = np.all(bits[ef[inner, 0]] == bits[ef[inner, 1]], axis=1)
    g = sp.coo_matrix((np.ones(same.sum()), (ef[same, 0], ef[same, 1])), shape=(F, F))
    n_regions, label = connected_components(g, directed=False)
    return n_regions, label, same


def merge_pieces(out):
    """Merge faces of one pattern that share an edge (a non-convex domain was
    triangulated into convex pieces; the triangulation's edges are not
    region boundaries). Regions become the connected pieces of
    (pattern cell) intersected with the domain; they may be non-convex.
    """
    face_off, face_vtx, face_edge = out["face_offsets"], out["face_vertices"], out["face_edges"]
    edges, bits = out["edges"], out["packed_patterns"]
    F, E = len(face_off) - 1, len(edges)
    n_regions, label, same = _same_pattern_components(face_off, face_vtx, face_edge, edges, bits)
    if n_regions == F:
        return out
    face_of_slot = np.repeat(np.arange(F), np.diff(face_off))
    # boundary slots of each region: edges that are not merged away
    keep_slot = ~same[face_edge]
    region_of_slot = label[face_of_slot]
    slots = np.flatnonzero(keep_slot)
    src = face_vtx[slots]
    nxt_slot = slots + 1
    ends = face_off[face_of_slot[slots] + 1]
    nxt_slot[nxt_slot == ends] = face_off[face_of_slot[slots][nxt_slot == ends]]
    dst = face_vtx[nxt_slot]
    order = np.lexsort((src, region_of_slot[slots]))
    new_off = np.zeros(n_regions + 1, dtype=np.int64)
    new_vtx = np.empty(len(slots), dtype=np.int64)
    new_edge = np.empty(len(slots), dtype=np.int64)
    by_region = {}
    for i in order:
        by_region.setdefault(region_of_slot[slots[i]], {})
        d = by_region[region_of_slot[slots[i]]]
        if src[i] in d:
            raise ValueError("a region of this polygon domain touches itself at a vertex; "
                             "such pinched domains are not supported")
        d[src[i]] = i
    pos = 0
    for r in range(n_regions):
        d = by_region[r]
        start = min(d)
        i = d[start]
        new_off[r] = pos
        count = 0
        while True:
            new_vtx[pos] = src[i]
            new_edge[pos] = face_edge[slots[i]]
            pos += 1
            count += 1
            i = d[dst[i]]
            if src[i] == start:
                break
        if count != len(d):
            raise ValueError("a region of this polygon domain has a hole; polygon domains "
                             "must be simple (no holes) for now")
    new_off[n_regions] = pos
    # drop merged-away edges and vertices no region uses, renumber
    used_e = np.zeros(E, dtype=bool)
    used_e[new_edge] = True
    emap = np.cumsum(used_e) - 1
    used_v = np.zeros(len(out["vertices"]), dtype=bool)
    used_v[new_vtx] = True
    vmap = np.cumsum(used_v) - 1
    first = np.zeros(n_regions, dtype=np.int64)
    first[label[::-1]] = np.arange(F)[::-1]     # one face of each region
    res = dict(out)
    res.update(vertices=out["vertices"][used_v], face_offsets=new_off, face_vertices=vmap[new_vtx],
               face_edges=emap[new_edge], edges=vmap[edges[used_e]], packed_patterns=bits[first],
               A=out["A"][first], c=out["c"][first], vertex_values=out["vertex_values"][used_v])
    res["stats"] = dict(out["stats"], convex=False)
    return res


def _next_values(Z, C, rec_idx, rec_w, V, V_new, slope, Wn, bn, n_kinks, zeros, snap):
    """Values of the next layer at all ``V_new`` vertices: ``(Z, C)``, its kink
    units' values (the first ``n_kinks`` rows of ``Wn``) and its carried units'
    values (``None`` when it has none).

    The current layer's values at the new vertices are interpolated, the
    neurons ``zeros`` names are set to exactly 0 there (their cut passes
    through the vertex), and after the product the kink values that are zero
    to within rounding of their terms are set to 0 (``snap``; not for the
    output layer). The current layer's carried values ``C`` are interpolated
    with the same recipes and enter the product as they are (identity), after
    the activated kink values (the columns of ``Wn`` are in that order:
    :meth:`regions.Network.kink_first`).

    Rows go in chunks of ``_ROWS_PER_CHUNK``: the chunk's activations are formed
    in one buffer (:func:`kernels.plane.activation_rows`), multiplied by the
    weights in one BLAS product, and the bias and the snap applied to the
    product in place (:func:`kernels.plane.bias_snap_rows`); the two row passes
    are split over the engine's threads.

    When a width does not change, its array is grown with ``ndarray.resize``
    (a remap, not a copy), the new rows are written from the old ones, and
    then the old rows are transformed in place: the peak memory is one array
    of values, not two.
    """
    import numba

    from kernels import plane

    Wk, bk = Wn[:n_kinks], bn[:n_kinks]
    W_abs = np.abs(Wk)
    w_max = W_abs.max(axis=1) if Wk.shape[1] else np.zeros(n_kinks)
    b_abs = np.abs(bk)
    target = _grown(Z, V_new, n_kinks)
    carried = Wn.shape[0] > n_kinks
    if carried:
        Wc, bc = Wn[n_kinks:], bn[n_kinks:]
        target_c = _grown(C, V_new, Wc.shape[0])
    C_in = np.empty((0, 0)) if C is None else C
    buf = np.empty((min(_ROWS_PER_CHUNK, V_new), Wn.shape[1]))
    threads = numba.get_num_threads()

    def rows(s, e):
        # activations of rows s:e -> next values, in place of target[s:e]
        a = buf[:e - s]
        _split(plane.activation_rows, e - s, Z, C_in, rec_idx, rec_w, V, zeros.vertex,
               zeros.neuron, zeros.iv_zero, zeros.iv_start, slope, a, s, threads=threads)
        out = target[s:e]
        np.dot(a, Wk.T, out=out)
        _split(plane.bias_snap_rows, e - s, out, a, bk, W_abs, b_abs, w_max, RTOL, snap,
               threads=threads)
        if carried:
            out = target_c[s:e]
            np.dot(a, Wc.T, out=out)
            out += bc

    # new vertices first, while the old rows still hold this layer's values
    for s in range(V, V_new, _ROWS_PER_CHUNK):
        rows(s, min(V_new, s + _ROWS_PER_CHUNK))
    for s in range(0, V, _ROWS_PER_CHUNK):
        rows(s, min(V, s + _ROWS_PER_CHUNK))
    return target, (target_c if carried else None)


def _grown(Z, rows, width):
    """An array ``(rows, width)`` for the next values: ``Z`` itself grown in place
    (``ndarray.resize``, its first rows kept) when it has that width and owns
    its memory, else a new one. ``Z`` may be ``None`` (no carried values yet)."""
    if Z is not None and width == Z.shape[1] and Z.base is None and Z.flags.c_contiguous:
        # numpy fills the new rows of a writeable array with zeros (one more
        # pass over them); every row is written by the caller anyway
        Z.flags.writeable = False
        Z.resize((rows, width), refcheck=False)
        Z.flags.writeable = True
        return Z
    return np.empty((rows, width))
