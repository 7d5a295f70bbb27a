"""Geometry of a network's linear regions: crossings, distances, adjacency.

* :func:`segment_crossings`: the exact number of region boundaries each
  segment crosses, for raw and encoded networks (along the rows and columns
  of a pixel grid of an encoded 2D model, :func:`regions.grid_crossings`
  partitions each grid line once instead);
* :func:`boundary_distances`: the exact distance from points to the boundary
  of their region (raw networks), over all layers or per layer;
* :func:`interval_adjacency`: which regions of a 1D partition touch.

Every function takes any model :func:`regions.as_network` accepts and
converts it once; inputs are checked (shapes, finiteness) before any
computation and refused with a ``ValueError`` that says what is accepted.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .domain import Segment
from .encoded import EncodedPartition1D, partition_encoded_1d
from .network import as_network
from .partition1d import Partition1D, partition_1d

__all__ = ["segment_crossings", "boundary_distances", "interval_adjacency"]

# values of z within this fraction of their rounding scale count as zero in the walk
_WALK_RTOL = 1e-9


def _points(net, x, name):
    """``x`` as a finite ``(m, input_dim)`` float64 array (``(m,)`` for a 1-input
    network and ``(input_dim,)`` for one point are accepted too)."""
    d = net.input_dim
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers shaped (m, {d}), got "
                         f"{type(x).__name__}") from None
    if a.ndim == 1:
        a = a[:, None] if d == 1 else a[None, :]
    if a.ndim != 2 or a.shape[1] != d:
        raise ValueError(f"{name} must be shaped (m, {d}) for a network of {d} input "
                         f"coordinate(s), got shape {np.shape(x)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; it holds {int(np.sum(~np.isfinite(a)))} "
                         "nan or inf values")
    return a


# ----------------------------------------------------------------------------- crossings

def segment_crossings(model, p0, p1, max_steps=100_000, threads=2):
    """Exact number of region boundaries crossed by the segments ``p0[i] -> p1[i]``.

    A crossing is a change of the activation pattern strictly inside the
    segment: the count is the number of regions met minus one, and a
    boundary through an end point is not counted.

    Raw networks: each segment is walked through the partition. In the
    current region every pre-activation is affine along the segment, so the
    next boundary is at the smallest positive ``-z_k / dz_k`` over the neurons
    heading towards zero; there the states of the next region are read
    one-sidedly (a neuron at zero takes the sign of its derivative, layer by
    layer). Boundaries closer than the rounding tolerance (``1e-9`` of the
    values' scale) are one crossing. All segments advance together.

    A raw network with a max over ``k > 2`` values (:attr:`regions.Network.max_trees`)
    is not walked (the walk would count two losers swapping order): its count is
    the number of pieces of the segment by the raw 1D engine minus one.

    Encoded networks: the exact pieces of each segment by the encoded engine
    (:func:`regions.encoded.partition_encoded_segment`, with its tolerances:
    a tangency is no crossing, breakpoints within ``1e-12`` of the segment's
    length are one); the count is the number of pieces minus one.

    Parameters
    ----------
    model : any model :func:`regions.as_network` accepts, raw or encoded
    p0, p1 : (m, d) arrays of end points in the ``d``-dimensional input space
        (``(m,)`` when ``d = 1``); finite. A segment with ``p0[i] == p1[i]``
        crosses nothing.
    max_steps : int
        Raw networks: stop with ``RuntimeError`` if a walk takes more steps
        (a bound on the boundaries of one segment, against a walk stuck in
        rounding).
    threads : int
        Encoded networks: threads of the encoded engine per segment.

    Returns
    -------
    (m,) int64

    See Also
    --------
    regions.grid_crossings : crossings between the neighbouring pixels of a grid
        (encoded 2D models; a boundary exactly on a pixel counts once, towards
        the pixel's left / lower neighbour).

    Examples
    --------
    Two first-layer breakpoints, at ``x = 0.25`` and ``x = 0.5``:

    >>> import numpy as np
    >>> net = [(np.array([[1.0], [1.0]]), np.array([-0.25, -0.5])), (np.ones((1, 2)), np.zeros(1))]
    >>> segment_crossings(net, [0.0, 0.3, 0.25, 0.7], [1.0, 0.4, 0.5, 0.7]).tolist()
    [2, 0, 0, 0]

    The third segment runs from one breakpoint to the other (its ends are not
    counted); the fourth is a point. Zero segments give an empty array:

    >>> segment_crossings(net, np.empty((0, 1)), np.empty((0, 1))).shape
    (0,)
    >>> segment_crossings(net, [[0.0, 0.0]], [[1.0, 1.0]])
    Traceback (most recent call last):
    ...
    ValueError: p0 must be shaped (m, 1) for a network of 1 input coordinate(s), got shape (1, 2)
    """
    net = as_network(model)
    a = _points(net, p0, "p0")
    b = _points(net, p1, "p1")
    if a.shape != b.shape:
        raise ValueError(f"p0 and p1 must hold as many points; got {a.shape[0]} and {b.shape[0]}")
    if net.encoding is None and net.max_trees is None:
        return _walk(net, a, b, int(max_steps))
    count = np.zeros(a.shape[0], dtype=np.int64)
    for i in np.flatnonzero(np.any(a != b, axis=1)):
        if net.encoding is None:   # a max over k > 2: its losers' swaps are no boundary
            pieces = partition_1d(net, Segment(a[i], b[i]), progress=False)
        else:
            pieces = partition_encoded_1d(net, Segment(a[i], b[i]), progress=False,
                                          threads=threads)
        count[i] = len(pieces) - 1
    return count


def _layer_tolerance(a_abs, W, b):
    """Rounding scale of ``z = W a + b``: values within it count as zero."""
    return _WALK_RTOL * (a_abs @ np.abs(W).T + np.abs(b)) + 1e-300


def _one_sided(net, x, d):
    """Pre-activations ``z``, derivatives ``dz`` along ``d`` and the states on the
    ``t -> 0+`` side of ``x + t d`` (a neuron at zero takes the sign of ``dz``).
    Returns concatenated ``(m, n_hidden)`` arrays ``z, dz, on``."""
    a, da = x, d
    zs, dzs, ons = [], [], []
    for l, (W, b, s) in enumerate(net.hidden_layers):
        z = a @ W.T + b
        dz = da @ W.T
        tol = _layer_tolerance(np.abs(a), W, b)
        on = (z > tol) | ((np.abs(z) <= tol) & (dz > 0))
        kink = net.kink_mask(l)     # carried units: identity, no boundary
        slope = np.where(on | ~kink, 1.0, s)
        a, da = z * slope, dz * slope
        zs.append(z[:, kink]), dzs.append(dz[:, kink]), ons.append(on[:, kink])
    m = x.shape[0]
    if not zs:
        empty = np.empty((m, 0))
        return empty, empty, np.empty((m, 0), dtype=bool)
    return np.concatenate(zs, 1), np.concatenate(dzs, 1), np.concatenate(ons, 1)


def _walk(net, p0, p1, max_steps):
    """The raw walk of :func:`segment_crossings`."""
    m = p0.shape[0]
    d = p1 - p0
    t = np.zeros(m)
    count = np.zeros(m, dtype=np.int64)
    active = np.arange(m)
    for _ in range(max_steps):
        if active.size == 0:
            return count
        x = p0[active] + t[active, None] * d[active]
        z, dz, on = _one_sided(net, x, d[active])
        heading = np.where(on, dz < 0, dz > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = np.where(heading, -z / dz, np.inf)
        tau = np.where(tau > 0, tau, np.inf)
        step = tau.min(axis=1) if tau.shape[1] else np.full(active.size, np.inf)
        t_new = t[active] + step
        crossing = t_new < 1.0
        count[active[crossing]] += 1
        t[active] = t_new
        active = active[crossing]
    if active.size == 0:
        return count
    raise RuntimeError(f"segment_crossings: {active.size} segment(s) (the first is "
                       f"{p0[active[0]].tolist()} -> {p1[active[0]].tolist()}) crossed more "
                       f"than max_steps={max_steps} boundaries; raise max_steps if the "
                       "network really has that many regions along them")


# ----------------------------------------------------------------------------- distances

_DISTANCE_METHODS = ("local", "weight_norm")


def boundary_distances(model, points, per_layer=False, method="local"):
    """Exact distance from each point to the boundary of its region (raw networks).

    With ``method='local'`` the distance is ``min_k |z_k(x)| / |grad_x z_k(x)|``
    over the hidden neurons of all layers, with the *local* gradient of each
    neuron in the point's region (deeper neurons see the input through the
    states of the earlier layers). The region is the convex polytope cut out
    by these local affine functions, so this is the exact Euclidean distance
    to its boundary, not clipped to any domain (the distance to a region
    clipped to a convex domain is the smaller of this and the distance to the
    domain's boundary). A neuron whose local gradient is zero bounds nothing
    and counts as ``inf``; a point on a boundary is at distance 0.

    A max over ``k > 2`` values (:attr:`regions.Network.max_trees`) bounds its
    region where another input overtakes the winner, not where two losers swap
    order: its comparisons are replaced by the ``k - 1`` constraints
    ``v_w - v_j >= 0`` of the winner ``w`` over each other input ``j``. Each
    is a signed sum of the tree's comparisons on the way from ``j`` up to where
    ``j``'s side lost (so it is affine on the region too), and the region, where
    every kink unit keeps its sign and ``w`` wins, is again a convex polytope:
    the distance is exact there as well. With ``per_layer=True`` a tree's
    constraints count in the hidden layer of its root comparison.

    ``method='weight_norm'`` gives ``min_{l,k} |z_lk(x)| / |W_l[k]|`` instead,
    the formula of the coordinate-network paper: exact for the first layer,
    whose lines are global, but not for deeper layers.

    Parameters
    ----------
    model : any raw (unencoded) model :func:`regions.as_network` accepts
    points : (m, d) array of finite points in input space (``(m,)`` when ``d = 1``)
    per_layer : bool
        ``False``: the minimum over all hidden layers, ``(m,)``. ``True``: the
        minimum within each hidden layer, ``(m, n_layers)`` (column ``l`` is
        hidden layer ``l + 1``; its row minimum is the ``per_layer=False``
        value).
    method : ``'local'`` or ``'weight_norm'``

    Returns
    -------
    (m,) or (m, n_layers) float64, ``inf`` where no neuron bounds the region.

    Examples
    --------
    Two first-layer lines ``x = 0.25`` and ``y = 0.5``, and a second-layer
    neuron ``relu(x - 0.25) + relu(y - 0.5) - 0.25``, which is ``x + y - 1`` where
    both first-layer neurons are on (at ``(1, 1)``: ``1 / sqrt(2)`` away):

    >>> import numpy as np
    >>> net = [(np.eye(2), np.array([-0.25, -0.5])), (np.ones((1, 2)), np.array([-0.25])),
    ...        (np.ones((1, 1)), np.zeros(1))]
    >>> boundary_distances(net, [[1.0, 1.0], [0.25, 0.9], [0.0, 0.0]]).round(4).tolist()
    [0.5, 0.0, 0.25]
    >>> boundary_distances(net, [[1.0, 1.0]], per_layer=True).round(4).tolist()
    [[0.5, 0.7071]]

    At ``(0, 0)`` both first-layer neurons are off, so the second layer's
    neuron is constant there (zero local gradient): no bound, ``inf``. Its
    weight row still gives the paper's formula a finite value:

    >>> boundary_distances(net, [[0.0, 0.0]], per_layer=True).tolist()
    [[0.25, inf]]
    >>> boundary_distances(net, [[0.0, 0.0]], per_layer=True, method="weight_norm").round(4).tolist()
    [[0.25, 0.1768]]

    A network without hidden layers has one region, with no boundary:

    >>> boundary_distances([(np.ones((1, 2)), np.zeros(1))], [[0.0, 0.0]]).tolist()
    [inf]
    """
    net = as_network(model)
    if net.encoding is not None:
        raise ValueError("boundary_distances needs a raw-coordinate network (no encoding): the "
                         "regions of an encoded network are curved; use "
                         "regions.encoded.partition_encoded_segment for exact pieces along lines")
    if method not in _DISTANCE_METHODS:
        raise ValueError(f"method must be one of {_DISTANCE_METHODS}, got {method!r}")
    x = _points(net, points, "points")
    m, dim = x.shape
    a = x
    J = np.broadcast_to(np.eye(dim), (m, dim, dim))  # d a / d x, (m, n_prev, dim)
    columns, kept, start = [], {}, 0
    trees = net.max_trees if method == "local" else None
    tree_bits = set() if trees is None else set(trees[:, 0].tolist())
    for l, (W, b, s) in enumerate(net.hidden_layers):
        z = a @ W.T + b
        Jz = np.einsum("kj,mjd->mkd", W, J)
        kink = net.kink_mask(l)     # carried units: identity, no boundary
        if method == "local":
            scale = np.linalg.norm(Jz, axis=2)
        else:
            scale = np.broadcast_to(np.linalg.norm(W, axis=1), z.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(scale > 0, np.abs(z) / scale, np.inf)[:, kink]
        units = np.flatnonzero(kink)
        for i, bit in enumerate(range(start, start + len(units))):
            if bit in tree_bits:     # the tree's own constraints replace its comparisons
                kept[bit] = (l, z[:, units[i]], Jz[:, units[i]])
                dist[:, i] = np.inf
        start += len(units)
        columns.append(dist.min(axis=1) if dist.shape[1] else np.full(m, np.inf))
        slope = np.where((z > 0) | ~kink, 1.0, s)
        a = z * slope
        J = Jz * slope[:, :, None]
    if trees is not None:
        for layer, dist in _max_tree_distances(trees, kept):
            columns[layer] = np.minimum(columns[layer], dist)
    layers = np.stack(columns, axis=1) if columns else np.empty((m, 0))
    if per_layer:
        return layers
    return layers.min(axis=1) if columns else np.full(m, np.inf)


def _max_tree_distances(trees, kept):
    """Per tree of ``trees`` (:attr:`regions.Network.max_trees`): the hidden layer
    of its root and, per point, the distance to the nearest hyperplane
    ``v_w = v_j`` of its winner ``w`` and another input ``j``.

    ``kept[bit]`` is ``(layer, z, grad)``: the comparison's local value ``(m,)``
    and gradient ``(m, d)``; it is on (``z > 0``) where its first argument wins,
    and ``|z|`` is the margin of the winner of that comparison over the loser.
    Bottom up, each node keeps, for every input below it, the local affine
    margin ``win(node) - v_j`` (value and gradient): a comparison adds ``|z|``
    to the margins of the inputs on its losing side."""
    row_of = {int(bit): r for r, bit in enumerate(trees[:, 0])}
    margins = {}     # row -> list of (value, grad) of its inputs' margins
    children = set(trees[:, 1:][trees[:, 1:] >= 0].tolist())
    out = []
    for r, (bit, first, second) in enumerate(trees.tolist()):
        layer, z, g = kept[bit]
        on = z > 0
        sides = []
        for child, lost in ((first, ~on), (second, on)):
            if child < 0:
                below = [(np.zeros_like(z), np.zeros_like(g))]
            else:
                below = margins.pop(row_of[child])
            sign = np.where(on, 1.0, -1.0)            # |z| = sign z on the losing side
            add = np.where(lost, sign * z, 0.0)
            add_g = np.where(lost[:, None], sign[:, None] * g, 0.0)
            sides += [(v + add, G + add_g) for v, G in below]
        margins[r] = sides
        if bit not in children:   # a root: its inputs' margins are the constraints
            value = np.stack([v for v, _ in sides], axis=1)
            scale = np.linalg.norm(np.stack([G for _, G in sides], axis=1), axis=2)
            with np.errstate(divide="ignore", invalid="ignore"):
                dist = np.where(scale > 0, np.abs(value) / scale, np.inf)
            out.append((layer, dist.min(axis=1)))
            del margins[r]
    return out


# ----------------------------------------------------------------------------- adjacency

def interval_adjacency(pieces) -> sp.csr_matrix:
    """Which regions of a 1D partition touch, as a symmetric boolean sparse matrix.

    Parameters
    ----------
    pieces : int, Partition1D or EncodedPartition1D
        * an int ``n``: ``n`` consecutive intervals, region ``r`` touching
          ``r - 1`` and ``r + 1``;
        * a raw :class:`regions.partition1d.Partition1D`: its pieces, in order
          (the same as ``len(partition)``);
        * an :class:`regions.encoded.EncodedPartition1D`: its regions are the
          distinct patterns (``pattern_id``), and two touch when two
          consecutive pieces carry them (a pattern that recurs touches the
          patterns next to each of its pieces).

    Returns
    -------
    ``(R, R)`` scipy.sparse csr matrix of bool, zero diagonal.

    Examples
    --------
    >>> interval_adjacency(3).toarray().astype(int).tolist()
    [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    >>> interval_adjacency(1).toarray().tolist()
    [[False]]
    >>> interval_adjacency(0)
    Traceback (most recent call last):
    ...
    ValueError: the number of regions must be >= 1, got 0
    """
    if isinstance(pieces, EncodedPartition1D):
        pid = np.asarray(pieces.pattern_id, dtype=np.int64)
        n = pieces.n_patterns
        a, b = pid[:-1], pid[1:]
        keep = a != b
        A = sp.coo_matrix((np.ones(int(keep.sum()), dtype=bool), (a[keep], b[keep])),
                          shape=(n, n))
        return ((A + A.T) > 0).tocsr()
    if isinstance(pieces, Partition1D):
        n = len(pieces)
    elif isinstance(pieces, (int, np.integer)) and not isinstance(pieces, bool):
        n = int(pieces)
        if n < 1:
            raise ValueError(f"the number of regions must be >= 1, got {pieces!r}")
    else:
        raise ValueError("interval_adjacency takes a number of intervals or a 1D partition "
                         f"(Partition1D, EncodedPartition1D), got {type(pieces).__name__}; "
                         "a 2D partition has partition.adjacency()")
    off = np.ones(n - 1, dtype=bool)
    return sp.diags([off, off], [-1, 1], shape=(n, n), format="csr", dtype=bool)
