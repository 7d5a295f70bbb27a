"""Numba kernels of the raw 1D engine (see regions/engine1d.py).

Representation: the interval is cut into pieces by sorted points
``t[0] = lo < t[1] < ... < t[P-1] = hi``. Before layer ``l`` is cut, every
piece has one activation pattern for the layers below ``l``, so the
pre-activation ``z_l`` is affine on every piece and continuous, and its values
``Z[p, :]`` at the points determine it (linear interpolation is exact).

Zeros: before a layer is cut, :func:`snap_rows` sets to exactly 0 every value
that is zero to within rounding, ``|z_k(p)| <= REL_TOL * (sum_j |W_kj| |a_j(p)|
+ |b_k|)`` (the size of the terms the value was summed from, at that point;
the same kernel serves the 2D engine). Every later test is then an exact sign
test: a piece is cut by neuron ``k`` where its two ends have strictly
opposite signs (:func:`cut_layer`), it is on for ``k`` when one end is
strictly positive (:func:`bits_rows`), and a neuron zero at both ends of a
piece is identically zero there, so off. Crossings of one piece that fall
within ``REL_TOL`` of the interpolation size of the point just written are
merged into it.

The kernels are serial on purpose: the BLAS product between layers uses
both cores, and a Numba ``parallel=True`` launch costs 5-30 ms per call once
torch's OpenMP runtime and OpenBLAS threads are loaded in the process (the
omp threading layer spins against them), more than these passes take.
"""
from __future__ import annotations

import numpy as np
from numba import njit

REL_TOL = 1e-10


@njit(cache=True, nogil=True)
def count_rows(Z, counts, start, stop):
    """``counts[i]``: neurons with strictly opposite signs at the two ends of piece ``i``,
    for pieces ``start .. stop-1``."""
    n = Z.shape[1]
    for i in range(start, stop):
        c = 0
        for k in range(n):
            a = Z[i, k]
            b = Z[i + 1, k]
            c += ((a > 0.0) & (b < 0.0)) | ((a < 0.0) & (b > 0.0))
        counts[i] = c


@njit(cache=True)
def cut_plan(t, Z, rtol, counts):
    """Which crossings of each piece become points (see :func:`cut_layer`).

    Returns ``(slots, acc_s, acc_k, req_p, req_k, used, dest, total)``: the
    accepted crossings of piece ``i`` (fraction ``s``, neuron ``k``) in slots
    ``slots[i] ..``, zero requests (local point, neuron; ``-2`` = the right
    end, ``-3`` = none), points per piece ``used`` and their first index
    ``dest`` in the new arrays, and the new number of points.
    """
    P, n = Z.shape
    slots = np.empty(P, dtype=np.int64)
    s0 = 0
    for i in range(P - 1):
        slots[i] = s0
        s0 += counts[i]
    slots[P - 1] = s0
    acc_s = np.empty(s0)
    acc_k = np.empty(s0, dtype=np.int64)
    req_p = np.full(s0, -3, dtype=np.int64)
    req_k = np.empty(s0, dtype=np.int64)
    used = np.ones(P, dtype=np.int64)
    for i in range(P - 1):
        m = counts[i]
        if m == 0:
            continue
        base = slots[i]
        tl = t[i]
        tr = t[i + 1]
        buf_s = np.empty(m)
        buf_k = np.empty(m, dtype=np.int64)
        j = 0
        for k in range(n):
            a = Z[i, k]
            b = Z[i + 1, k]
            if a * b < 0.0:
                buf_s[j] = a / (a - b)
                buf_k[j] = k
                j += 1
        order = np.argsort(buf_s, kind="mergesort")
        last_s = 0.0
        last_t = tl
        last_r = 0          # local index of the last point (0 = the left end)
        na = 0
        nr = 0
        for jj in range(m):
            j = order[jj]
            k = buf_k[j]
            if last_r > 0:
                # the value at the last point written, and the size of the terms
                # it is interpolated from: within rounding of zero, k passes there
                v = (1.0 - last_s) * Z[i, k] + last_s * Z[i + 1, k]
                size = (1.0 - last_s) * abs(Z[i, k]) + last_s * abs(Z[i + 1, k])
                if abs(v) <= rtol * size:
                    req_p[base + nr] = last_r
                    req_k[base + nr] = k
                    nr += 1
                    continue
            s = buf_s[j]
            tn = tl + s * (tr - tl)
            if tn <= last_t:
                req_p[base + nr] = last_r
                req_k[base + nr] = k
                nr += 1
                continue
            if tn >= tr:
                req_p[base + nr] = -2
                req_k[base + nr] = k
                nr += 1
                continue
            acc_s[base + na] = s
            acc_k[base + na] = k
            na += 1
            last_s = s
            last_t = tn
            last_r = na
        used[i] = 1 + na
    dest = np.empty(P, dtype=np.int64)
    d = 0
    for i in range(P):
        dest[i] = d
        d += used[i]
    return slots, acc_s, acc_k, req_p, req_k, used, dest, d


@njit(cache=True, nogil=True)
def cut_write(t, Z, counts, slots, acc_s, acc_k, req_p, used, req_k, dest,
              new_t, new_Z, parent, start, stop):
    """Write the points of pieces ``start .. stop-1`` (and the last point when
    ``stop == P``) into the new arrays; requests on a piece's own points are
    applied here, those on its right end by :func:`cut_right_zeros`."""
    P, n = Z.shape
    for i in range(start, stop):
        o = dest[i]
        new_t[o] = t[i]
        new_Z[o, :] = Z[i, :]
        if i == P - 1:
            continue
        parent[o] = i
        base = slots[i]
        tl = t[i]
        tr = t[i + 1]
        for r in range(used[i] - 1):
            s = acc_s[base + r]
            q = o + 1 + r
            new_t[q] = tl + s * (tr - tl)
            for kk in range(n):
                new_Z[q, kk] = (1.0 - s) * Z[i, kk] + s * Z[i + 1, kk]
            new_Z[q, acc_k[base + r]] = 0.0
            parent[q] = i
        for r in range(counts[i]):
            lp = req_p[base + r]
            if lp == -3:
                break
            if lp >= 0:
                new_Z[o + lp, req_k[base + r]] = 0.0


@njit(cache=True)
def cut_right_zeros(counts, slots, req_p, req_k, dest, new_Z):
    """Apply the merges into a piece's right end (the next piece's left point)."""
    for i in range(counts.shape[0]):
        base = slots[i]
        for r in range(counts[i]):
            if req_p[base + r] == -3:
                break
            if req_p[base + r] == -2:
                new_Z[dest[i + 1], req_k[base + r]] = 0.0


@njit(cache=True)
def count_crossings(Z):
    """Number of neurons whose sign is strictly opposite at the two ends of each piece."""
    counts = np.zeros(max(Z.shape[0] - 1, 0), dtype=np.int64)
    count_rows(Z, counts, 0, Z.shape[0] - 1)
    return counts


@njit(cache=True)
def cut_layer(t, Z, rtol=REL_TOL):
    """Cut every piece at the sign changes of every neuron of the current layer.

    Parameters
    ----------
    t : (P,) float64, sorted points (ends included).
    Z : (P, n) float64, the layer's pre-activations at the points.
    rtol : float, relative size below which a crossing merges into the point before it.

    Returns
    -------
    new_t : (P',) float64, new_Z : (P', n) float64 (values at the new points,
    interpolated; the crossing neuron's own value is set to exactly 0),
    parent : (P'-1,) int64, the old piece holding each new piece.

    Pieces are processed independently (the result of a piece depends only
    on its two end rows). Within one piece the crossings are
    taken in increasing ``t`` (ties by neuron index). A crossing of neuron
    ``k`` is merged into the last point written when ``|z_k|`` there is
    within ``rtol`` of the size of the values it is interpolated from (that
    point lies on ``k``'s breakpoint to within rounding), or when rounding
    puts it at or before that point, and then ``z_k`` of that point is set to
    0; or at or after the piece's right end (then ``z_k`` of the right end is
    set to 0). No piece of the result has strictly opposite signs of one
    neuron at its two ends.
    """
    P, n = Z.shape
    counts = count_crossings(Z)
    slots, acc_s, acc_k, req_p, req_k, used, dest, d = cut_plan(t, Z, rtol, counts)
    new_t = np.empty(d)
    new_Z = np.empty((d, n))
    parent = np.empty(d - 1, dtype=np.int64)
    cut_write(t, Z, counts, slots, acc_s, acc_k, req_p, used, req_k, dest,
              new_t, new_Z, parent, 0, P)
    cut_right_zeros(counts, slots, req_p, req_k, dest, new_Z)
    return new_t, new_Z, parent


@njit(cache=True)
def gather_rows(packed, parent):
    """``packed[parent]`` for a 2D uint64 array (inherit the bits of the parent piece)."""
    m = parent.shape[0]
    w = packed.shape[1]
    out = np.empty((m, w), dtype=np.uint64)
    for j in range(m):
        p = parent[j]
        for c in range(w):
            out[j, c] = packed[p, c]
    return out


@njit(cache=True)
def set_bits(packed, on, offset):
    """Write the bool columns ``on`` into bits ``offset ..`` of ``packed`` (in place)."""
    m, n = on.shape
    one = np.uint64(1)
    for j in range(m):
        for k in range(n):
            if on[j, k]:
                b = offset + k
                packed[j, b // 64] |= one << np.uint64(b % 64)


# --------------------------------------------------------------------------
# Row-range kernels (nogil): the caller splits the rows over Python threads,
# which costs microseconds, unlike a Numba parallel launch next to torch.

@njit(cache=True, nogil=True)
def snap_rows(Z, A, W_abs, b_abs, w_max, rtol, start, stop):
    """Set to exactly 0 the values of rows ``start .. stop-1`` that are zero to within rounding.

    ``Z = A @ W.T + b`` was computed by the caller (``A`` the activations, or
    the coordinates for the first layer); ``Z[p, k]`` becomes 0 when
    ``|Z[p, k]| <= rtol * (sum_j |W[k, j]| |A[p, j]| + |b[k]|)``, the size of
    the terms it was summed from at that point. The sum is formed only where
    the cheap bound ``w_max[k] * sum_j |A[p, j]| + |b[k]|`` (``w_max[k] =
    max_j |W[k, j]|``) does not already decide it.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[0.1, 0.2]]); W = np.array([[1.0, 1.0], [1e-30, 0.0]]); b = np.array([-0.3, 0.0])
    >>> Z = A @ W.T + b          # 0.1 + 0.2 - 0.3 is rounding; 1e-31 is a tiny but real value
    >>> snap_rows(Z, A, np.abs(W), np.abs(b), np.abs(W).max(1), 1e-10, 0, 1)
    >>> Z.tolist()
    [[0.0, 1e-31]]
    """
    for p in range(start, stop):
        snap_row(Z, A, p, W_abs, b_abs, w_max, rtol)


@njit(cache=True, inline="always")
def snap_row(Z, A, p, W_abs, b_abs, w_max, rtol):
    """Row ``p`` of :func:`snap_rows` (also inlined into the 2D engine's
    :func:`kernels.plane.bias_snap_rows`)."""
    n = Z.shape[1]
    m = A.shape[1]
    a_sum = 0.0
    for j in range(m):
        a_sum += abs(A[p, j])
    for k in range(n):
        z = abs(Z[p, k])
        if z > rtol * (w_max[k] * a_sum + b_abs[k]):
            continue
        size = b_abs[k]
        for j in range(m):
            size += W_abs[k, j] * abs(A[p, j])
        if z <= rtol * size:
            Z[p, k] = 0.0


@njit(cache=True, nogil=True)
def bits_rows(Z, packed, wi, mask, start, stop):
    """Layer bits of pieces ``start .. stop-1`` (``wi[k]``, ``mask[k]``: word and bit
    of neuron ``k``, ``wi`` non-decreasing): on where an end of the piece is
    strictly positive (a neuron zero at both ends is identically zero on the
    piece: off); and the columns strictly positive at a point of those rows."""
    P, n = Z.shape
    alive = np.zeros(n, dtype=np.uint8)
    zero = np.uint64(0)
    for j in range(start, stop):
        if j + 1 >= P:
            for k in range(n):
                alive[k] |= np.uint8(Z[j, k] > 0.0)
            continue
        word = zero
        w = wi[0] if n > 0 else 0
        for k in range(n):
            pa = Z[j, k] > 0.0
            alive[k] |= np.uint8(pa)
            on = pa | (Z[j + 1, k] > 0.0)
            if wi[k] != w:
                packed[j, w] |= word
                word = zero
                w = wi[k]
            word |= mask[k] * np.uint64(on)
        if n > 0:
            packed[j, w] |= word
    return alive.astype(np.bool_)


@njit(cache=True, nogil=True)
def act_rows(Z, live, slope, out, start, stop):
    """``out[p, i] = act(Z[p, live[i]])`` for rows ``start .. stop-1``."""
    m = live.shape[0]
    for p in range(start, stop):
        for i in range(m):
            z = Z[p, live[i]]
            out[p, i] = z if z > 0.0 else slope * z
