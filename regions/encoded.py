"""Exact pieces of encoded (sin/cos feature) coordinate networks along lines.

With an input encoding ``gamma`` (see :mod:`regions.encoding`) every
pre-activation is, on a piece where the earlier neurons keep their states, a
trigonometric polynomial of the line parameter ``u``:

    z_l(u) = C_l gamma(x(u)) + c_l,     x(u) = origin + basis u,

and the coefficients of the next layer are ``C_{l+1} = W_{l+1} D_l C_l``
(``D_l`` the states of layer ``l`` on the piece). The engine carries
``(C_l, c_l)`` for every piece, isolates the roots of every neuron with the
certified subdivision of :mod:`kernels.trig`, and cuts the pieces there.

What is exact and what is a tolerance
-------------------------------------
* An interval is cleared of roots only by a bound from the coefficients
  (mean value / Taylor bounds with ``M1 = sum |C| |omega|``,
  ``M2 = sum |C| omega^2``); roots are refined by a bracketed solver to
  ``1e-13`` times the domain length (at least a few ulps).
* A value with ``|z| <= 1e-13 * (|c| + sum_f |C_f| max(1, |phase_f|))`` counts
  as zero (about 500 times the rounding of one evaluation).
* Tangency: a zero without a sign change changes no state and is not a
  breakpoint (the pattern ``z > 0`` is the same on both sides, and the
  single point where ``z = 0`` is not a piece).
* Breakpoints closer than ``1e-12`` times the domain length are merged into
  one (the sliver between them is dropped); a breakpoint that close to a
  piece's end is merged into the end.

Pieces with the same pattern can recur far apart along the line:
:attr:`EncodedPartition1D.pattern_id` groups them.

:meth:`EncodedPartition1D.level_set` finds where an output crosses a value
with the same isolation and tolerances (the sign walk carried from piece to
piece, since the output is continuous).

A full 2D partition of an encoded model is curved and is not computed:
asking for it raises ``ValueError(ENCODED_2D_MESSAGE)``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .partition1d import Partition1D, _show_progress, _too_many

__all__ = ["EncodedPartition1D", "partition_encoded_1d", "partition_encoded_segment",
           "grid_crossings", "GridCrossings", "reject_encoded_2d", "ENCODED_2D_MESSAGE"]

ENCODED_2D_MESSAGE = (
    "the regions of an encoded (sin/cos feature) network in its 2D coordinate space are "
    "curved and may be disconnected, so regions.partition does not compute a full 2D "
    "partition for it. Exact alternatives: regions.encoded.partition_encoded_segment(model, "
    "p0, p1) gives the exact pieces along any segment, and regions.grid_crossings(model, "
    "shape=(H, W)) the exact breakpoints along every pixel row and column with the number "
    "of region boundaries between neighbouring pixels. regions.sampled_patterns(model, "
    "points) counts the distinct patterns among given points (a lower bound of the number "
    "of regions).")

XTOL = 1e-13        # root refinement, relative to the domain length
MERGE = 1e-12       # breakpoints closer than this (relative) are merged
H_TERM = 1e-13      # half-width of a terminal box, relative to the domain length
_ANCHOR = 16        # a child's coefficients come from a full product at least this often
_BLOCK = 1 << 23    # doubles of next-layer coefficients made at a time (64 MB)


def reject_encoded_2d(network=None):
    """Raise the error for a full 2D partition of an encoded model."""
    raise ValueError(ENCODED_2D_MESSAGE)


class EncodedPartition1D(Partition1D):
    """Pieces of a line through the input of an encoded network.

    Same interface as :class:`regions.partition1d.Partition1D`, except:

    * ``affine`` is in the encoded space: ``A`` ``(n, n_out, n_features)``,
      ``c`` ``(n, n_out)``; the output on piece ``r`` is
      ``A[r] @ encode(u) + c[r]`` (see :meth:`encode`);
    * ``pattern_id`` ``(n,)``: pieces with equal activation patterns share an
      id (numbered in order of first appearance along the line);
      ``n_patterns`` is the number of distinct patterns.
    """

    def __init__(self, network, domain, points, packed_patterns, A, c, kinds, alpha, beta,
                 stats=None):
        super().__init__(network, domain, points, packed_patterns, A, c, stats)
        self.kinds, self.alpha, self.beta = kinds, alpha, beta

    @cached_property
    def pattern_id(self):
        _, first, inverse = np.unique(self.packed_patterns, axis=0, return_index=True,
                                      return_inverse=True)
        inverse = inverse.ravel()
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        return rank[inverse]

    @property
    def n_patterns(self) -> int:
        return int(self.pattern_id.max()) + 1 if len(self) else 0

    def encode(self, u):
        """Encoded features at line parameters ``u`` (``(m,)``) -> ``(m, n_features)``."""
        u = np.asarray(u, dtype=np.float64).reshape(-1)
        ph = self.alpha[None, :] + u[:, None] * self.beta[None, :]
        return np.where(self.kinds == 1, np.sin(ph), np.where(self.kinds == 2, np.cos(ph), ph))

    def evaluate(self, u):
        """Network output at ``u`` from the per-piece maps (``(m, n_out)``; nan outside)."""
        u = np.asarray(u, dtype=np.float64).reshape(-1)
        idx = self.locate(u)
        A, c = self.affine
        out = np.full((u.shape[0], c.shape[1]), np.nan)
        ok = idx >= 0
        out[ok] = np.einsum("mof,mf->mo", A[idx[ok]], self.encode(u[ok])) + c[idx[ok]]
        return out

    def level_set(self, value=0.0, output=0):
        """Points where output ``output`` equals ``value``, sorted, in the line parameter.

        On each piece the output is ``A[r, output] . encode(u) + c[r, output]``, a
        trigonometric polynomial of ``u``; the level set is where ``output - value``
        changes sign, found by the certified root isolation of the breakpoints
        (:mod:`kernels.trig`) with the same tolerances: ``|output - value|`` below
        ``1e-13`` of its coefficient scale counts as zero, roots are refined to
        ``1e-13`` of the domain length, and a zero without a sign change (a
        tangency, or a zero at a domain end) is not reported. The sign walk runs
        along the whole line, so a crossing at (or within the tolerance of) a
        breakpoint is found once. Whole pieces on which the output stays within
        the tolerance of ``value`` are reported by their ends, as
        :meth:`Partition1D.level_set` reports constant pieces. Points closer than
        ``1e-12`` of the domain length are merged into one (a flat piece's end
        when one of them is), as breakpoints are.

        Returns a ``(k,)`` float64 array, like :meth:`Partition1D.level_set`.
        """
        from kernels import trig as T

        A, c = self.affine
        n_out = c.shape[1]
        if isinstance(output, bool) or not isinstance(output, (int, np.integer)) \
                or not 0 <= output < n_out:
            raise ValueError(f"output {output!r} out of range; the network has {n_out} outputs")
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"value must be a finite number, got {value}")
        P = len(self)
        if P == 0:
            return np.empty(0)
        F = A.shape[2]
        Cf = np.empty((P, F + 1, 1))
        Cf[:, :F, 0] = A[:, output, :]
        Cf[:, F, 0] = c[:, output] - value
        lo = np.ascontiguousarray(self.points[:-1])
        hi = np.ascontiguousarray(self.points[1:])
        length = float(self.points[-1] - self.points[0])
        kinds = np.ascontiguousarray(self.kinds, dtype=np.int64)
        alpha = np.ascontiguousarray(self.alpha, dtype=np.float64)
        beta = np.ascontiguousarray(self.beta, dtype=np.float64)
        _, roots, _, first, _ = T.isolate_pieces(lo, hi, Cf, kinds, alpha, beta, T.REL_TOL,
                                                 H_TERM * length, XTOL * length, 0, P,
                                                 200_000_000, True)
        flat = first[:, 0] == 0
        pts = np.concatenate([roots, lo[flat], hi[flat]])
        is_end = np.repeat([False, True], [roots.shape[0], 2 * int(flat.sum())])
        if pts.shape[0] == 0:
            return pts
        order = np.argsort(pts, kind="stable")
        pts, is_end = pts[order], is_end[order]
        # points closer than MERGE of the domain are one (as breakpoints are): a
        # crossing in the tolerance band next to a flat piece is that piece's end
        new = np.ones(pts.shape[0], dtype=bool)
        new[1:] = np.diff(pts) > MERGE * length
        group = np.cumsum(new) - 1
        rep = np.flatnonzero(new)
        ends = np.flatnonzero(is_end)[::-1]
        rep[group[ends]] = ends                     # the first flat end of a group wins
        return pts[rep]


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


_POOL = None


def _pool(threads):
    global _POOL
    if _POOL is None or _POOL._max_workers < threads:
        _POOL = ThreadPoolExecutor(threads)
    return _POOL


def _isolate(lo, hi, Cf, kinds, alpha, beta, length, threads):
    from kernels import trig as T

    P, _, n = Cf.shape
    args = (lo, hi, Cf, kinds, alpha, beta, T.REL_TOL, H_TERM * length, XTOL * length)
    if threads <= 1 or (P < 2 * threads and n < 2 * threads):
        rp, rt, rk, first, boxes = T.isolate_pieces(*args, 0, P)
        return rp, rt, rk, first, boxes
    pool = _pool(threads)
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
    """Cut pieces at the roots of layer ``l``: children bounds, states, parents, packed bits."""
    from kernels import line as KL
    from kernels import trig as T

    rp, rt, rk, first, boxes = _isolate(plo, phi, Cf, kinds, alpha, beta, length, threads)
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
    KL.set_bits(packed, states, sum(net.widths[:l]))
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
    list(_pool(threads).map(lambda i: T.children_coefficients(*args, cuts[i], cuts[i + 1]),
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
    bar = None
    if _show_progress(progress) and n_layers > 0:
        from tqdm import tqdm

        bar = tqdm(desc=desc, unit="piece")

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
        if max_regions is not None and reached[l] > max_regions:
            raise _too_many()(
                f"the partition has at least {reached[l]} pieces after hidden layer {l + 1} "
                f"of {n_layers}, more than max_regions={max_regions}")
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


def partition_encoded_1d(network, domain, max_regions=None, progress=None, threads=2):
    """Exact pieces of an encoded network along a 1D domain.

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
    from .domain import Interval, as_domain
    from .network import as_network

    net = as_network(network)
    enc = _encoding_of(net)
    if isinstance(domain, Interval):
        dom = domain
    else:
        dom = as_domain(domain, enc.in_features)
    if not isinstance(dom, Interval) or dom.dim != 1:
        raise ValueError(f"partition_encoded_1d needs a 1D domain ((lo, hi), regions.Interval or "
                         f"regions.Segment), got {domain!r}")
    if dom.input_dim != enc.in_features:
        raise ValueError(f"the domain lives in {dom.input_dim}-dimensional coordinate space but "
                         f"the encoding takes {enc.in_features} coordinates (use "
                         "regions.Segment(p0, p1) or partition_encoded_segment for a line in 2D)")
    kinds, alpha, beta = _line_features(enc, dom.origin, dom.basis[:, 0])
    lo, hi = dom.bounds
    points, packed, A, c, stats = encoded_line_pieces(net, kinds, alpha, beta, lo, hi,
                                                     max_regions, progress, threads)
    stats["engine"] = "encoded 1D"
    return EncodedPartition1D(net, dom, points, packed, A, c, kinds, alpha, beta, stats)


def partition_encoded_segment(network, p0, p1, max_regions=None, progress=None, threads=2):
    """Exact pieces of the segment ``x = p0 + t (p1 - p0)``, ``t`` in ``[0, 1]``, through
    the coordinate space of an encoded network (1D or 2D coordinates).

    The phases of the features along the line are ``omega . p0 + t omega . (p1 - p0)``,
    so the segment is a 1D problem in ``t``; breakpoints are in ``t``.
    """
    from .domain import Segment

    return partition_encoded_1d(network, Segment(p0, p1), max_regions, progress, threads)


@dataclass
class GridCrossings:
    """Exact region boundaries along the rows and columns of a pixel grid.

    Pixel ``(i, j)`` is at ``(xs[j], ys[i])``.

    Attributes
    ----------
    xs, ys : (W,), (H,) pixel coordinates.
    row_breakpoints : list of H arrays, the x of every breakpoint along row i.
    col_breakpoints : list of W arrays, the y of every breakpoint along column j.
    row_crossings : (H, W-1) int64, breakpoints in ``(xs[j], xs[j+1]]`` on row i.
    col_crossings : (H-1, W) int64, breakpoints in ``(ys[i], ys[i+1]]`` on column j.
    row_hamming, col_hamming : same shapes, the number of neurons whose state
        differs between the two neighbouring pixels (exact patterns).
    row_pieces, col_pieces : (H,), (W,) pieces along each full row / column.
    """

    xs: np.ndarray
    ys: np.ndarray
    row_breakpoints: list
    col_breakpoints: list
    row_crossings: np.ndarray
    col_crossings: np.ndarray
    row_hamming: np.ndarray
    col_hamming: np.ndarray
    row_pieces: np.ndarray
    col_pieces: np.ndarray


def _along(net, coords, fixed, axis, max_regions, threads):
    """Pieces along one grid line: coordinate ``axis`` varies over coords, the other is fixed."""
    from .domain import Interval

    origin = np.zeros(2)
    origin[1 - axis] = fixed
    basis = np.zeros((2, 1))
    basis[axis, 0] = 1.0
    dom = Interval(coords[0], coords[-1], origin=origin, basis=basis)
    p = partition_encoded_1d(net, dom, max_regions, False, threads)
    idx = p.locate(coords)
    counts = np.diff(idx)
    pats = p.patterns[idx]
    ham = np.count_nonzero(pats[1:] != pats[:-1], axis=1)
    return p.breakpoints.copy(), counts, ham, len(p)


def grid_crossings(model, shape=(64, 64), bounds=((0.0, 1.0), (0.0, 1.0)), max_regions=None,
                   progress=None, threads=2):
    """Exact breakpoints along every row and column of a pixel grid of an encoded 2D model.

    The grid is ``xs = linspace(x0, x1, W)``, ``ys = linspace(y0, y1, H)``
    (endpoints included, the paper's PE grid for bounds ``((0, 1), (0, 1))``).

    Returns
    -------
    GridCrossings, with ``row_crossings`` ``(H, W-1)`` and ``col_crossings``
    ``(H-1, W)``: the exact number of region boundaries crossed between each
    pair of neighbouring pixels (a boundary lying exactly on a pixel counts
    between that pixel and its left / lower neighbour).
    """
    from .network import as_network

    net = as_network(model)
    enc = _encoding_of(net)
    if enc.in_features != 2:
        raise ValueError(f"grid_crossings needs a model of a 2D coordinate; its encoding takes "
                         f"{enc.in_features}")
    try:
        H, W = (int(shape[0]), int(shape[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if H < 2 or W < 2:
        raise ValueError(f"shape must be at least (2, 2) pixels, got {shape!r}")
    try:
        (x0, x1), (y0, y1) = bounds
        x0, x1, y0, y1 = float(x0), float(x1), float(y0), float(y1)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be ((x0, x1), (y0, y1)), got {bounds!r}") from None
    if not (x1 > x0 and y1 > y0 and np.all(np.isfinite([x0, x1, y0, y1]))):
        raise ValueError(f"bounds must be finite with x0 < x1 and y0 < y1, got {bounds!r}")
    xs = np.linspace(x0, x1, W)
    ys = np.linspace(y0, y1, H)
    rows_b, cols_b = [], []
    row_c = np.zeros((H, W - 1), dtype=np.int64)
    col_c = np.zeros((H - 1, W), dtype=np.int64)
    row_h = np.zeros((H, W - 1), dtype=np.int64)
    col_h = np.zeros((H - 1, W), dtype=np.int64)
    row_n = np.zeros(H, dtype=np.int64)
    col_n = np.zeros(W, dtype=np.int64)
    it = range(H + W)
    if _show_progress(progress):
        from tqdm import tqdm

        it = tqdm(it, desc="grid lines", unit="line")
    for q in it:
        if q < H:
            b, cnt, ham, npc = _along(net, xs, ys[q], 0, max_regions, threads)
            rows_b.append(b)
            row_c[q], row_h[q], row_n[q] = cnt, ham, npc
        else:
            j = q - H
            b, cnt, ham, npc = _along(net, ys, xs[j], 1, max_regions, threads)
            cols_b.append(b)
            col_c[:, j], col_h[:, j], col_n[j] = cnt, ham, npc
    return GridCrossings(xs, ys, rows_b, cols_b, row_c, col_c, row_h, col_h, row_n, col_n)
