"""The exact raw 1D engine: an interval (or a segment through any input space)
cut into the linear pieces of a raw-coordinate ReLU / LeakyReLU network
(an MLP, or a traced model whose layers also hold carried units).

Method (kernels in :mod:`kernels.line`): the interval starts as one piece.
Before layer ``l`` is cut, every piece has a fixed pattern for the layers
below, so ``z_l`` is affine on each piece and continuous; its values at the
points (breakpoints and ends) determine it. Layer ``l`` cuts each piece at the
sign changes of each neuron, ``t = z(u) / (z(u) - z(v))``, the values of the
new points are interpolated, and the next layer's values at every point are
``act(Z) @ W.T + b``: one BLAS product per layer. A layer's carried units
(:attr:`regions.Network.linear`: residual streams, input skips) take no part
in the cut; their values are interpolated at the new points and enter the
next product as they are (identity activation), see :func:`line_pieces`.

Tolerance (local): a value ``z_k(p) = sum_j W_kj a_j(p) + b_k`` at a point
counts as zero when ``|z_k(p)| <= 1e-10 * (sum_j |W_kj| |a_j(p)| + |b_k|)``,
the size of the terms it is summed from *at that point* (the point then lies
on neuron ``k``'s breakpoint; :func:`kernels.line.snap_rows` sets it to exactly
0). The rule depends only on the neuron's own terms where it is evaluated, so
the pieces are the same whatever the spread of scales between neurons or
across the domain, and unchanged when a neuron's ``(W_k, b_k)`` is multiplied
by a positive factor (or a neuron's row by ``c`` and the next layer's column
by ``1 / c``). Each (point, neuron) is decided once, so every later test is an
exact sign test. A neuron through an existing breakpoint therefore adds no
point; duplicate neurons add one point; a neuron that is zero at a domain end
never cuts there; crossings of one piece that fall within ``1e-10`` of the
interpolation size of the point just written are merged into it (see
:func:`kernels.line.cut_layer`). A neuron zero at both ends of a piece is
identically zero there (to within rounding) and is off; a tiny constant
(``W_k = 0``, ``b_k = 1e-300``) is its own scale and keeps its sign.

Work and memory: ``max_regions`` is checked after every layer; before a layer
is cut, the engine estimates from its count pass the bytes the layer needs
(points, values, activations, next values, patterns) and stops with
:class:`regions.MemoryBudgetExceeded` when they exceed the memory budget
(see :func:`regions.partition`).
"""

from __future__ import annotations

import numpy as np

from ._shared import (check_layer_memory, check_region_cap, memory_budget as default_budget,
                      progress_bar, split_rows as _split)
from .partition import unpack_patterns

__all__ = ["line_pieces", "affine_from_values"]

# pieces shorter than this fraction of the domain get their slope from the
# weight chain instead of from the difference of the end values
_SHORT = 1e-7


def line_pieces(net, lo, hi, max_regions=None, progress=None, desc="1D layers",
                memory_budget=None):
    """Core of the raw 1D engine on a 1-input :class:`Network`.

    Returns ``(points, packed, Zout)``: the piece ends, the packed patterns and
    the output values at the points. ``memory_budget`` (bytes, ``None``: the
    default of :func:`regions.api.memory_budget`) bounds the estimated memory of
    each layer.

    Carried units (:attr:`regions.Network.linear`) are never cut: each layer
    is cut along its kink units alone (``Z``, the leading columns of
    :meth:`regions.Network.kink_first`), its carried values ``C`` are
    interpolated at the new points like ``Z`` (both are affine on every piece
    being cut) and pass into the next layer's product unchanged (identity).
    """
    from kernels import line as K

    if net.weights[0].shape[1] != 1:
        raise ValueError(f"line_pieces needs a 1-input network, got {net.weights[0].shape[1]} inputs")
    net = net.kink_first()
    budget = default_budget() if memory_budget is None else memory_budget
    n_hidden = net.n_hidden
    words = max((n_hidden + 63) // 64, 1)
    t = np.array([lo, hi], dtype=np.float64)
    n_layers = len(net.weights) - 1
    Z, C = _layer_values(net, 0, t[:, None], net.weights[0])
    packed = np.zeros((1, words), dtype=np.uint64)
    offset = 0
    bar = progress_bar(progress, total=n_layers, desc=desc, unit="layer") if n_layers else None
    try:
        for l in range(n_layers):
            Z = np.ascontiguousarray(Z)
            n, n_next = Z.shape[1], net.weights[l + 1].shape[0]
            n_carried = 0 if C is None else C.shape[1]
            counts = np.empty(max(Z.shape[0] - 1, 0), dtype=np.int64)
            _split(K.count_rows, Z.shape[0] - 1, Z, counts)
            points = Z.shape[0] + int(counts.sum())    # at most, before merges
            # the current values, then per new point: its position, values (cut,
            # carried and activated), next values and patterns; the next weights twice
            estimate = (Z.nbytes + (0 if C is None else C.nbytes)
                        + points * 8 * (2 + 2 * (n + n_carried) + n_next + 2 * words)
                        + 2 * net.weights[l + 1].nbytes)
            check_layer_memory(estimate, budget, max_regions, f"hidden layer {l + 1} of {n_layers}",
                               f"{points - 1} pieces")
            t_old = t
            t, Z, parent = _cut_layer(t, Z, counts)
            del counts
            n_pieces = len(t) - 1
            check_region_cap(n_pieces, max_regions, f"after hidden layer {l + 1} of {n_layers}",
                             unit="pieces")
            packed = K.gather_rows(packed, parent)
            a, live = _states_and_activations(Z, packed, offset, float(net.slopes[l]))
            offset += n
            W = net.weights[l + 1]
            if C is None:
                if live.shape[0] < W.shape[1]:
                    W = W[:, live]      # neurons off at every point add nothing
            else:
                a = np.hstack([a, _interpolate_carried(t_old, C, t, parent)])
                W = W[:, np.concatenate([live, np.arange(n, n + n_carried)])]
            Z, C = _layer_values(net, l + 1, a, W)
            del a, W
            if bar is not None:
                bar.update(1)
                bar.set_postfix(pieces=n_pieces)
    finally:
        if bar is not None:
            bar.close()
    return t, packed, Z


def _layer_values(net, l, A, W):
    """Layer ``l``'s values at the points from the activations ``A`` below
    (``W``: the layer's weights, columns matching ``A``): ``(Z, C)``, the kink
    units' values (zeros to within rounding snapped, except for the output
    layer) and the carried units' values (``None`` when the layer has none).
    ``net`` is :meth:`regions.Network.kink_first`: the kink units lead."""
    b = net.biases[l]
    hidden = l < len(net.weights) - 1
    n_kinks = net.n_kinks(l) if hidden else W.shape[0]
    if n_kinks == W.shape[0]:
        return _snapped_product(A, W, b, snap=hidden), None
    C = A @ W[n_kinks:].T
    C += b[n_kinks:]
    return _snapped_product(A, W[:n_kinks], b[:n_kinks]), C


def _interpolate_carried(t_old, C, t, parent):
    """The carried values ``C`` (at the points ``t_old``) at the new points ``t``.

    New point ``q < len(t) - 1`` lies in old piece ``parent[q]`` (it is the
    left end of a new piece there), the last point is the old last point;
    ``C`` is affine on every old piece, so it is interpolated between the old
    piece's ends (an old point gets its own value back exactly).
    """
    old = np.empty(len(t), dtype=np.int64)
    old[:-1] = parent
    old[-1] = len(t_old) - 2
    left, right = t_old[old], t_old[old + 1]
    s = ((t - left) / (right - left))[:, None]
    return (1.0 - s) * C[old] + s * C[old + 1]


def _snapped_product(A, W, b, snap=True):
    """``A @ W.T + b`` with the values that are zero to within rounding set to 0
    (:func:`kernels.line.snap_rows`; the output layer is left as computed)."""
    from kernels import line as K

    Z = A @ W.T
    Z += b
    if snap:
        W_abs = np.abs(W)
        w_max = W_abs.max(axis=1) if W.shape[1] else np.zeros(W.shape[0])
        _split(K.snap_rows, Z.shape[0], Z, np.ascontiguousarray(A), W_abs, np.abs(b), w_max,
               K.REL_TOL)
    return Z


def _cut_layer(t, Z, counts):
    """:func:`kernels.line.cut_layer` with the row passes split over two threads
    (``counts`` from :func:`kernels.line.count_rows`)."""
    from kernels import line as K

    P, n = Z.shape
    slots, acc_s, acc_k, req_p, req_k, used, dest, d = K.cut_plan(t, Z, K.REL_TOL, counts)
    new_t = np.empty(d)
    new_Z = np.empty((d, n))
    parent = np.empty(d - 1, dtype=np.int64)
    _split(K.cut_write, P, t, Z, counts, slots, acc_s, acc_k, req_p, used, req_k, dest,
           new_t, new_Z, parent)
    K.cut_right_zeros(counts, slots, req_p, req_k, dest, new_Z)
    return new_t, new_Z, parent


def _states_and_activations(Z, packed, offset, slope):
    """Bits of the layer into ``packed`` and the activations of the live columns
    (:func:`kernels.line.bits_rows`, :func:`kernels.line.act_rows`), split over
    two threads."""
    from kernels import line as K

    P, n = Z.shape
    bit = offset + np.arange(n)
    wi = (bit // 64).astype(np.int64)
    mask = np.left_shift(np.uint64(1), (bit % 64).astype(np.uint64))
    parts = _split(K.bits_rows, P, Z, packed, wi, mask)
    alive = np.logical_or.reduce(parts) if slope == 0.0 else np.ones(n, bool)
    live = np.flatnonzero(alive).astype(np.int64)
    a = np.empty((P, live.shape[0]))
    _split(K.act_rows, P, Z, live, slope, a)
    return a, live


def _exact_slopes(net, packed, idx):
    """d(output)/du on pieces ``idx`` from the weight chain and their patterns."""
    pats = unpack_patterns(packed[idx], net.n_hidden)
    G = np.repeat(net.weights[0][:, 0][None, :], len(idx), axis=0)
    start = 0
    for l, W in enumerate(net.weights[1:]):
        kink = net.kink_mask(l)
        w = int(kink.sum())
        D = np.ones_like(G)     # carried units: identity
        D[:, kink] = np.where(pats[:, start:start + w], 1.0, net.slopes[l])
        G = (G * D) @ W.T
        start += w
    return G  # (m, n_out)


def affine_from_values(net, t, packed, Zout):
    """Per-piece ``(A, c)`` with ``A`` ``(n, n_out, 1)`` from the output values at the ends.

    The slope is the difference quotient, except on pieces shorter than
    ``1e-7`` of the domain, where it comes from the weight chain (the quotient
    would lose digits); ``c`` then makes the map pass through the left value.
    """
    dt = np.diff(t)
    slope = (Zout[1:] - Zout[:-1]) / dt[:, None]
    short = np.flatnonzero(dt < _SHORT * (t[-1] - t[0]))
    if short.size:
        slope[short] = _exact_slopes(net, packed, short)
    c = Zout[:-1] - slope * t[:-1, None]
    return slope[:, :, None], c
