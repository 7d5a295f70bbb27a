"""The encoded 1D engine: exact pieces of an encoded network along a line.

Each layer's roots are isolated piece by piece (:func:`_isolate`, certified
subdivision of :mod:`kernels.trig`), the pieces are cut there (:func:`_cut`)
and the next layer's coefficients are made for the children
(:func:`_children_coefficients`); :func:`encoded_line_pieces` runs this depth
first over blocks of pieces. The tolerances are in
:mod:`regions.encoded.tolerances`, the result type in
:mod:`regions.encoded.result`; what is exact is said in :mod:`regions.encoded`.
"""
from __future__ import annotations

import numpy as np

from .._shared import (check_region_cap, check_value_range, merge_max_runs, progress_bar,
                       thread_pool)
from ..domain import Interval, Segment, as_domain
from ..network import as_network
from .result import EncodedPartition1D
from .tolerances import H_TERM, MERGE, XTOL

__all__ = ["partition_encoded_1d", "partition_encoded_segment", "partition_encoded_line",
           "encoded_line_pieces"]

_ANCHOR = 16        # a child's coefficients come from a full product at least this often
_BLOCK = 1 << 23    # doubles of next-layer coefficients made at a time (64 MB)


def _encoding_of(net):
    if net.encoding is None:
        raise ValueError("this function needs a network whose first module is a regions "
                         "encoding (PositionalEncoding, RandomFourierFeatures); for a "
                         "raw-coordinate network use regions.partition")
    return net.encoding


def _line_features(encoding, origin, direction):
    """``(kinds, alpha, beta)``: feature f is ``kind_f(alpha_f + beta_f u)`` on the line."""
    kinds, omegas = encoding.feature_spec()
    alpha = omegas @ np.asarray(origin, dtype=np.float64)
    beta = omegas @ np.asarray(direction, dtype=np.float64)
    return (np.ascontiguousarray(kinds, dtype=np.int64), np.ascontiguousarray(alpha),
            np.ascontiguousarray(beta))


def _isolate(lo, hi, Cf, kinds, alpha, beta, length, threads):
    from kernels import trig as T

    P, _, n = Cf.shape
    args = (lo, hi, Cf, kinds, alpha, beta, T.REL_TOL, H_TERM * length, XTOL * length)
    if threads <= 1 or (P < 2 * threads and n < 2 * threads):
        rp, rt, rk, first, boxes = T.isolate_pieces(*args, 0, P)
        return rp, rt, rk, first, boxes
    pool = thread_pool(threads)
    if P < 2 * threads:
        # few pieces (the first layer has one): split the neurons instead; each
        # neuron's subdivision is independent of the others, so the result is the same
        cuts = np.linspace(0, n, threads + 1).astype(np.int64)
        parts = list(pool.map(lambda i: T.isolate_pieces(
            lo, hi, np.ascontiguousarray(Cf[:, :, cuts[i]:cuts[i + 1]]), *args[3:], 0, P),
            range(threads)))
        return (np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts]),
                np.concatenate([q[2] + cuts[i] for i, q in enumerate(parts)]),
                np.concatenate([q[3] for q in parts], axis=1), sum(q[4] for q in parts))
    # more ranges than threads: the work per piece is uneven, the pool balances it
    k = min(P, 8 * threads)
    cuts = np.linspace(0, P, k + 1).astype(np.int64)
    parts = list(pool.map(lambda i: T.isolate_pieces(*args, cuts[i], cuts[i + 1]),
                           range(k)))
    return (np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts]),
            np.concatenate([q[2] for q in parts]), np.concatenate([q[3] for q in parts]),
            sum(q[4] for q in parts))


def _fold_features(W, b, kinds, alpha, beta):
    """First-layer weights with repeated features summed into their first copy and
    features constant on the line (``beta = 0``) moved into the bias.

    The features are unchanged, so the output map stays in the encoded space;
    exactly cancelling copies then give an identically zero coefficient, which
    the root isolation clears at once instead of subdividing forever.
    """
    W = W.copy()
    b = b.copy()
    const = beta == 0.0
    if np.any(const):
        val = np.where(kinds == 1, np.sin(alpha), np.where(kinds == 2, np.cos(alpha), alpha))
        b += W[:, const] @ val[const]
        W[:, const] = 0.0
    seen = {}
    for f in range(kinds.shape[0]):
        if const[f]:
            continue
        key = (int(kinds[f]), float(alpha[f]), float(beta[f]))
        if key in seen:
            W[:, seen[key]] += W[:, f]
            W[:, f] = 0.0
        else:
            seen[key] = f
    return W, b


def _cut(net, l, plo, phi, Cf, packed, kinds, alpha, beta, length, threads, stats):
    """Cut pieces at the roots of layer ``l``: children bounds, states, parents, packed bits.

    ``net`` is :meth:`regions.Network.kink_first`: the roots are isolated for the
    layer's leading kink units only; its carried units are never cut, have no
    bit, and are on (identity) in the returned states."""
    from kernels import line as KL
    from kernels import trig as T

    n_kinks = net.n_kinks(l)
    Ck = Cf if n_kinks == Cf.shape[2] else np.ascontiguousarray(Cf[:, :, :n_kinks])
    rp, rt, rk, first, boxes = _isolate(plo, phi, Ck, kinds, alpha, beta, length, threads)
    stats["boxes"] += int(boxes)
    stats["roots"] += int(rp.shape[0])
    order = np.lexsort((rk, rt, rp))
    rp, rt, rk = rp[order], rt[order], rk[order]
    P = plo.shape[0]
    merge = MERGE * length
    # merged breakpoints: a new group where the piece changes or the gap exceeds merge
    near_lo = rt - plo[rp] <= merge
    near_hi = phi[rp] - rt <= merge
    inner = ~(near_lo | near_hi)
    ri = np.flatnonzero(inner)
    newgrp = np.ones(ri.shape[0], dtype=bool)
    if ri.shape[0] > 1:
        same = rp[ri[1:]] == rp[ri[:-1]]
        close = (rt[ri[1:]] - rt[ri[:-1]]) <= merge
        newgrp[1:] = ~(same & close)
    gstart = ri[newgrp]                                   # first root of each group
    gpiece = rp[gstart]
    n_groups = np.bincount(gpiece, minlength=P)
    gofs = np.concatenate([[0], np.cumsum(n_groups)])
    # group number within the piece for every root
    group = np.empty(rp.shape[0], dtype=np.int64)
    gid = np.cumsum(newgrp) - 1                           # global group id per inner root
    group[ri] = gid - gofs[rp[ri]]
    group[near_lo] = -1
    group[near_hi] = n_groups[rp[near_hi]]
    n_children = n_groups + 1
    states = T.child_states(first, n_children, group, rk, rp)
    parent = np.repeat(np.arange(P), n_children)
    n_pieces = parent.shape[0]
    # child bounds: child j >= 1 of a piece starts at its group j-1
    bt = rt[gstart]
    cofs = np.concatenate([[0], np.cumsum(n_children)])
    new_lo = np.empty(n_pieces)
    new_hi = np.empty(n_pieces)
    new_lo[cofs[:-1]] = plo
    new_hi[cofs[1:] - 1] = phi
    starts = np.ones(n_pieces, dtype=bool)
    starts[cofs[:-1]] = False
    new_lo[starts] = bt
    ends = np.ones(n_pieces, dtype=bool)
    ends[cofs[1:] - 1] = False
    new_hi[ends] = bt
    packed = KL.gather_rows(packed, parent)
    KL.set_bits(packed, states, sum(net.n_kinks(j) for j in range(l)))
    if n_kinks < Cf.shape[2]:
        states = np.hstack([states, np.ones((n_pieces, Cf.shape[2] - n_kinks), dtype=bool)])
    rank = np.arange(n_pieces) - cofs[:-1][parent]
    return new_lo, new_hi, states, parent, rank, packed


def _children_coefficients(net, l, WT, Cf, states, parent, rank, s, e, Cn, threads):
    """Next-layer coefficients ``(e - s, F+1, n2)`` of children ``s .. e-1``, written
    into ``Cn`` (a reused buffer of at least that many rows); ``WT`` is the next
    layer's weight matrix transposed, C-contiguous.

    Anchors (the first child of a parent, every ``_ANCHOR``-th sibling and the
    first child of the block) get a full product ``(D C) W^T + b``; the others a
    rank-one update of their left sibling per toggled neuron. The children are
    split over ``threads`` at anchors (the same anchors whatever the thread count,
    so the result does not depend on it).
    """
    from kernels import trig as T

    slope = float(net.slopes[l])
    m = e - s
    st = states[s:e]
    par = parent[s:e]
    is_anchor = rank[s:e] % _ANCHOR == 0
    is_anchor[0] = True
    Cn = Cn[:m]
    args = (Cn, Cf, WT, net.biases[l + 1], st, par, is_anchor, slope)
    if threads <= 1 or m < 8 * threads:
        T.children_coefficients(*args, 0, m)
        return Cn
    anchors = np.flatnonzero(is_anchor)
    cuts = np.unique(anchors[np.searchsorted(anchors, np.linspace(0, m, threads + 1)[1:-1])
                             .clip(0, anchors.shape[0] - 1)])
    cuts = np.concatenate([[0], cuts[cuts > 0], [m]])
    list(thread_pool(threads).map(lambda i: T.children_coefficients(*args, cuts[i], cuts[i + 1]),
                            range(cuts.shape[0] - 1)))
    return Cn


def encoded_line_pieces(net, kinds, alpha, beta, lo, hi, max_regions=None, progress=None,
                        threads=2, desc="encoded 1D"):
    """Core of the encoded 1D engine, depth first over blocks of pieces.

    After a layer cuts a block of pieces, the children's next-layer
    coefficients are made and descended into ``_BLOCK`` doubles at a time, so
    the memory holds one block of coefficients per layer instead of the
    coefficients of every piece. The pieces come out in order along the line.

    Returns ``(points, packed, A, c, stats)``: ``A`` ``(n, n_out, F)`` and ``c``
    ``(n, n_out)`` are the output map of every piece in the encoded space.
    """
    net = net.kink_first()   # carried units after each layer's kink units (see _cut)
    length = hi - lo
    F = kinds.shape[0]
    W0, b0 = _fold_features(net.weights[0], net.biases[0], kinds, alpha, beta)
    n_layers = len(net.weights) - 1
    words = (net.n_hidden + 63) // 64
    stats = {"boxes": 0, "roots": 0}
    reached = [0] * n_layers
    bufs = [None] * n_layers
    WTs = [np.ascontiguousarray(W.T) for W in net.weights]
    out = []
    bar = progress_bar(progress, desc=desc, unit="piece") if n_layers > 0 else None

    def descend(l, plo, phi, Cf, packed):
        if l == n_layers:
            out.append((plo, phi, packed, Cf))
            if bar is not None:
                bar.update(plo.shape[0])
            return
        new_lo, new_hi, states, parent, rank, packed = _cut(
            net, l, plo, phi, Cf, packed, kinds, alpha, beta, length, threads, stats)
        m = new_lo.shape[0]
        reached[l] += m
        check_region_cap(reached[l], max_regions, f"after hidden layer {l + 1} of {n_layers}",
                         unit="pieces")
        n2 = net.weights[l + 1].shape[0]
        block = max(1, _BLOCK // (n2 * (F + 1)))
        if l + 1 < n_layers:
            # one reused buffer per layer (fresh pages cost a fault each)
            size = min(block, m)
            if bufs[l] is None or bufs[l].shape[0] < size:
                bufs[l] = np.empty((size, F + 1, n2))
            dest = bufs[l]
        for s in range(0, m, block):
            e = min(s + block, m)
            if l + 1 == n_layers:
                dest = np.empty((e - s, F + 1, n2))    # the output maps are kept
            Cn = _children_coefficients(net, l, WTs[l + 1], Cf, states, parent, rank, s, e,
                                        dest, threads)
            descend(l + 1, new_lo[s:e], new_hi[s:e], Cn, packed[s:e])

    Cf0 = np.ascontiguousarray(np.concatenate([W0, b0[:, None]], axis=1).T[None, :, :])
    try:
        descend(0, np.array([lo], dtype=np.float64), np.array([hi], dtype=np.float64), Cf0,
                np.zeros((1, words), dtype=np.uint64))
    finally:
        if bar is not None:
            bar.close()
    plo = np.concatenate([o[0] for o in out])
    phi = np.concatenate([o[1] for o in out])
    packed = np.concatenate([o[2] for o in out])
    Cout = np.concatenate([o[3] for o in out])              # (n, F+1, n_out)
    A = np.ascontiguousarray(Cout[:, :-1, :].transpose(0, 2, 1))
    c = np.ascontiguousarray(Cout[:, -1, :])
    points = np.concatenate([plo, phi[-1:]])
    stats["pieces"] = int(plo.shape[0])
    stats["pieces_per_layer"] = [int(r) for r in reached]
    return points, packed, A, c, stats


def partition_encoded_line(network, domain, max_regions=None, progress=None, threads=2):
    """The encoded 1D engine: exact pieces of an encoded :class:`regions.Network`
    along a 1D :class:`regions.Interval` (or :class:`regions.Segment`).

    It reads nothing: :func:`regions.partition` and :func:`partition_encoded_1d`
    convert the model and the domain once and hand them here. The domain's map
    ``x = origin + basis u`` is composed into the encoding's phases
    (feature ``f`` is ``kind_f(alpha_f + beta_f u)``, see :func:`_line_features`),
    not into a layer as the raw engines do (:func:`regions._shared.in_domain_coordinates`):
    the encoding is not affine.
    """
    enc = _encoding_of(network)
    if not isinstance(domain, Interval) or domain.dim != 1:
        raise ValueError(f"the encoded engine needs a 1D domain ((lo, hi), regions.Interval or "
                         f"regions.Segment), got {domain!r}")
    if domain.input_dim != enc.in_features:
        raise ValueError(f"the domain lives in {domain.input_dim}-dimensional coordinate space but "
                         f"the encoding takes {enc.in_features} coordinates (use "
                         "regions.Segment(p0, p1) or partition_encoded_segment for a line in 2D)")
    kinds, alpha, beta = _line_features(enc, domain.origin, domain.basis[:, 0])
    lo, hi = domain.bounds
    # a max over k > 2 values: the cap is on the merged pieces, checked after the merge
    cap = max_regions if network.max_trees is None else None
    points, packed, A, c, stats = encoded_line_pieces(network, kinds, alpha, beta, lo, hi,
                                                     cap, progress, threads)
    first, packed = merge_max_runs(network, packed)   # a max's losers swapping is no cut
    if len(first) < len(A):
        stats["pieces_before_max_merge"] = len(A)
        points, A, c = points[np.r_[first, len(A)]], A[first], c[first]
        stats["pieces"] = len(first)
    check_region_cap(len(first), max_regions, unit="pieces")
    stats["engine"] = "encoded 1D"
    return EncodedPartition1D(network, domain, points, packed, A, c, kinds, alpha, beta, stats)


def partition_encoded_1d(network, domain, max_regions=None, progress=None, threads=2):
    """Exact pieces of an encoded network along a 1D domain.

    Reads the model and the domain once, checks the network's range over the
    domain (:func:`regions._shared.check_value_range`) and runs the engine,
    :func:`partition_encoded_line`.

    Parameters
    ----------
    network : a torch ``nn.Sequential`` starting with a regions encoding, or a
        :class:`regions.Network` with ``encoding`` set.
    domain : ``(lo, hi)`` for a 1D coordinate, or a :class:`regions.Interval` /
        :class:`regions.Segment` through the coordinate space (any input dim).
    max_regions : int or None
        Raise ``regions.TooManyRegions`` as soon as a layer leaves more pieces.
    progress : None, True or False
        A tqdm bar counting finished pieces (None: only when stderr is a terminal).
    threads : int
        Pieces are split over this many threads for the root isolation.

    Returns
    -------
    EncodedPartition1D

    Examples
    --------
    >>> import torch, regions
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(regions.PositionalEncoding(3), torch.nn.Linear(6, 8),
    ...                           torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> p = partition_encoded_1d(net, (0.0, 1.0), progress=False)
    >>> bool(p.n_patterns <= len(p)), p.affine[0].shape[1:]
    (True, (1, 6))
    """
    net = as_network(network)
    enc = _encoding_of(net)
    dom = as_domain(domain, enc.in_features)
    if not isinstance(dom, Interval) or dom.dim != 1:
        raise ValueError(f"partition_encoded_1d needs a 1D domain ((lo, hi), regions.Interval or "
                         f"regions.Segment), got {domain!r}")
    check_value_range(net, dom)
    return partition_encoded_line(net, dom, max_regions, progress, threads)


def partition_encoded_segment(network, p0, p1, max_regions=None, progress=None, threads=2):
    """Exact pieces of the segment ``x = p0 + t (p1 - p0)``, ``t`` in ``[0, 1]``, through
    the coordinate space of an encoded network (1D or 2D coordinates).

    The phases of the features along the line are ``omega . p0 + t omega . (p1 - p0)``,
    so the segment is a 1D problem in ``t``; breakpoints are in ``t``.

    Examples
    --------
    One neuron ``relu(sin(pi x))`` of a 2D coordinate ``(x, y)``: along ``y = 0.5`` from
    ``x = 0.5`` to ``x = 1.5`` it switches off at ``x = 1``, half way; along a
    column, where ``x`` is fixed, it never changes:

    >>> import torch, regions
    >>> lin = torch.nn.Linear(4, 1).double()
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    ...     _ = lin.bias.zero_()
    >>> model = torch.nn.Sequential(regions.PositionalEncoding(1, in_features=2), lin,
    ...                             torch.nn.ReLU(), torch.nn.Linear(1, 1).double())
    >>> p = partition_encoded_segment(model, [0.5, 0.5], [1.5, 0.5], progress=False)
    >>> p.breakpoints.round(12).tolist(), p.patterns[:, 0].tolist()
    ([0.5], [True, False])
    >>> len(partition_encoded_segment(model, [0.5, 0.0], [0.5, 1.0], progress=False))
    1
    >>> partition_encoded_segment(model, [0.5, 0.5], [0.5, 0.5])
    Traceback (most recent call last):
    ...
    ValueError: the segment is empty: its two end points are equal
    """
    return partition_encoded_1d(network, Segment(p0, p1), max_regions, progress, threads)
