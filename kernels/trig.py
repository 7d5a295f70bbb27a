"""Certified root isolation of trigonometric polynomials (encoded 1D engine).

On a piece ``[lo, hi]`` where the earlier neurons keep their states, each
neuron's pre-activation is

    z_k(t) = c0[k] + sum_f C[k, f] g_f(t),   g_f(t) = kind_f(alpha_f + beta_f t)

with kind 0 = the raw phase (a linear term), 1 = sin, 2 = cos. Bounds from
the coefficients, for every t:

    |z_k'(t)|  <= M1[k] = sum_f |C[k, f]| |beta_f|
    |z_k''(t)| <= M2[k] = sum_{f sin/cos} |C[k, f]| beta_f^2

Recursive subdivision (depth first, left half first, all neurons of a piece
share the feature evaluations at a box's midpoint m, half-width h):

* excluded: ``|z(m)| > tol + B`` with ``B = min(M1 h, |z'(m)| h + M2 h^2 / 2)``:
  z keeps the strict sign of z(m) on the whole box (mean value / Taylor bound);
* within the tolerance: ``|z(m)| + B <= tol``: z counts as zero on the whole
  box (no state change there; an identically zero neuron ends here at once);
* monotone: ``|z'(m)| > M2 h``: z' does not vanish on the box, so it holds at
  most one root; the signs at the box's ends decide;
* terminal: ``h < h_term``: the signs at the ends and the midpoint decide;
* otherwise the box is halved for the neurons not yet resolved.

Signs use a tolerance: ``|z| <= tol[k]`` counts as zero, with
``tol[k] = rel_tol * (|c0[k]| + sum_f |C[k, f]| max(1, max |phase_f|))``
(a bound on the rounding of one evaluation, scaled up). A neuron's state is
its last *strict* sign; a breakpoint is recorded only where the strict sign
flips, located by a bracketed solver (safeguarded Newton: a step leaving the
bracket, or a bracket not halving over two steps, is a bisection) between
the last strictly signed point and the first point of the opposite strict
sign, to a bracket of width ``xtol``.

Tangency: a zero without a sign change (z touches 0 and turns back, or
stays within the tolerance) changes no state and adds no breakpoint. Two
roots closer together than the extreme value between them is above the
tolerance are both found: the bounds are certified, not sampled.

Level sets of the output (``EncodedPartition1D.level_set``) use the same
isolation with ``carry=True``: the output is continuous along the line, so
the sign walk continues from one piece into the next and a crossing that
falls within the tolerance band at a breakpoint is found once
(:func:`solve_across`).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

RAW, SIN, COS = 0, 1, 2
REL_TOL = 1e-13


@njit(cache=True, nogil=True)
def _features(kind, alpha, beta, t, g, dg):
    for f in range(kind.shape[0]):
        ph = alpha[f] + beta[f] * t
        if kind[f] == 0:
            g[f] = ph
            dg[f] = beta[f]
        elif kind[f] == 1:
            g[f] = math.sin(ph)
            dg[f] = beta[f] * math.cos(ph)
        else:
            g[f] = math.cos(ph)
            dg[f] = -beta[f] * math.sin(ph)


@njit(cache=True, nogil=True)
def _value(Ck, kind, alpha, beta, t):
    v = Ck[kind.shape[0]]
    for f in range(kind.shape[0]):
        ph = alpha[f] + beta[f] * t
        if kind[f] == 0:
            v += Ck[f] * ph
        elif kind[f] == 1:
            v += Ck[f] * math.sin(ph)
        else:
            v += Ck[f] * math.cos(ph)
    return v


@njit(cache=True, nogil=True)
def evaluate(C, c0, kind, alpha, beta, t):
    """``z[i, k] = c0[k] + C[k] . g(t[i])`` for one coefficient matrix (a reference)."""
    m = t.shape[0]
    n, F = C.shape
    out = np.empty((m, n))
    g = np.empty(F)
    dg = np.empty(F)
    for i in range(m):
        _features(kind, alpha, beta, t[i], g, dg)
        for k in range(n):
            v = c0[k]
            for f in range(F):
                v += C[k, f] * g[f]
            out[i, k] = v
    return out


@njit(cache=True, nogil=True)
def _sgn(z, tol):
    if z > tol:
        return 1
    if z < -tol:
        return -1
    return 0


@njit(cache=True, nogil=True)
def _value_slope(Ck, kind, alpha, beta, t):
    """``(z(t), z'(t))`` for the coefficients ``Ck`` (constant last)."""
    v = Ck[kind.shape[0]]
    d = 0.0
    for f in range(kind.shape[0]):
        ph = alpha[f] + beta[f] * t
        if kind[f] == 0:
            v += Ck[f] * ph
            d += Ck[f] * beta[f]
        elif kind[f] == 1:
            v += Ck[f] * math.sin(ph)
            d += Ck[f] * beta[f] * math.cos(ph)
        else:
            v += Ck[f] * math.cos(ph)
            d -= Ck[f] * beta[f] * math.sin(ph)
    return v, d


@njit(cache=True, nogil=True)
def solve_bracket(Ck, kind, alpha, beta, x0, x1, xtol):
    """A sign change of z in ``[x0, x1]`` (z(x0), z(x1) of opposite signs), to a
    bracket of width ``xtol``; ``Ck`` holds the coefficients and the constant last.

    Safeguarded Newton: every iterate shrinks the bracket by its sign; a Newton
    step that leaves the bracket, or a bracket that did not halve over two steps,
    gives a bisection instead. Once the Newton step is below ``xtol / 2`` the next
    iterate is placed ``xtol / 2`` beyond the Newton point, on the far side of the
    root, so that the bracket closes around it.
    """
    return refine_bracket(Ck, kind, alpha, beta, x0, x1, _value(Ck, kind, alpha, beta, x0),
                          _value(Ck, kind, alpha, beta, x1), xtol)


@njit(cache=True, nogil=True)
def refine_bracket(Ck, kind, alpha, beta, x0, x1, f0, f1, xtol):
    """:func:`solve_bracket` given the values ``f0 = z(x0)``, ``f1 = z(x1)`` (for a
    caller that has them already: the encoded 2D engine's monotone solves,
    :mod:`kernels.trig2d`)."""
    if f0 == 0.0:
        return x0
    if f1 == 0.0:
        return x1
    s0 = f0 > 0.0
    # start from the secant point
    x = (x0 * f1 - x1 * f0) / (f1 - f0)
    if not (x > x0 and x < x1):
        x = 0.5 * (x0 + x1)
    width_before = x1 - x0
    for it in range(300):
        if x1 - x0 <= xtol:
            break
        fx, dfx = _value_slope(Ck, kind, alpha, beta, x)
        if fx == 0.0:
            return x
        if (fx > 0.0) == s0:
            x0 = x
        else:
            x1 = x
        if x1 - x0 <= xtol:
            break
        xn = 0.5 * (x0 + x1)
        if dfx != 0.0:
            step = fx / dfx
            cand = x - step
            if abs(step) < 0.5 * xtol:
                cand = x - step - 0.5 * xtol if step > 0.0 else x - step + 0.5 * xtol
            if cand > x0 and cand < x1:
                xn = cand
        if it % 2 == 1:
            # the bracket must at least halve every two steps
            if x1 - x0 > 0.5 * width_before:
                xn = 0.5 * (x0 + x1)
            width_before = x1 - x0
        x = xn
    return 0.5 * (x0 + x1)


@njit(cache=True, nogil=True)
def _gather(Cf, j, k, out):
    """``out[f] = Cf[j, f, k]``: neuron ``k``'s coefficients on piece ``j``, contiguous."""
    for f in range(Cf.shape[1]):
        out[f] = Cf[j, f, k]
    return out


@njit(cache=True, nogil=True)
def solve_across(Cf, k, q, p, hi, kind, alpha, beta, x0, x1, xtol, ck):
    """A sign change of the piecewise function ``z = Cf[j, :, k] . g`` on piece ``j``
    between ``x0`` (in piece ``q``, strict sign) and ``x1`` (in piece ``p > q``, the
    opposite strict sign), pieces ``j`` ending at ``hi[j]`` (``ck``: a scratch
    ``(F+1,)`` buffer).

    Walks the pieces from ``x0``: the first piece whose own values at the ends of
    its part of ``[x0, x1]`` differ in sign gets :func:`solve_bracket`; a value of
    exactly zero at an end, or a sign that differs across a shared end (the two
    pieces' values there agree only up to rounding), is returned as is.
    """
    x = x0
    fprev = _value(_gather(Cf, q, k, ck), kind, alpha, beta, x)
    for j in range(q, p + 1):
        e = hi[j] if j < p else x1
        _gather(Cf, j, k, ck)
        fx = _value(ck, kind, alpha, beta, x)
        if j > q:
            if fx == 0.0 or (fx > 0.0) != (fprev > 0.0):
                return x
        fe = _value(ck, kind, alpha, beta, e)
        if fe == 0.0:
            return e
        if (fe > 0.0) != (fx > 0.0):
            return solve_bracket(ck, kind, alpha, beta, x, e, xtol)
        fprev = fe
        x = e
    return x1


@njit(cache=True, nogil=True)
def isolate_pieces(lo, hi, Cf, kind, alpha, beta, rel_tol, h_term, xtol, start, stop,
                   max_boxes=200_000_000, carry=False):
    """Root isolation for pieces ``start .. stop-1``.

    One long function on purpose: the per-box, per-neuron loop is the encoded
    engine's hot path. Moving its steps into helper kernels (piece bounds,
    midpoint values, the sign walk, root recording; tried 2026-12-02, outputs
    bit-identical by ``benchmarks/kernel_hashes.py``) cost 25-40% CPU on
    PE(L=8) 1-128x4-1 in paired runs (``farm-bench --vs``), with or without
    ``inline="always"``.

    Parameters
    ----------
    lo, hi : (P,) piece ends. Cf : (P, F+1, n) coefficients per piece, feature
    and neuron, the constant last (piece-major: one piece's coefficients are
    contiguous, and the neurons are the inner axis, so the bounds and the values
    at a box's midpoint are computed for all neurons at once).
    kind, alpha, beta : (F,) the features ``kind(alpha + beta t)``.
    rel_tol : the relative zero tolerance. h_term : half-width of a terminal box.
    xtol : bracket width at which a root is returned.
    carry : False (the engine): each piece is a separate function and a sign
    change is looked for inside a piece only. True (level sets of the
    continuous output along consecutive pieces ``lo[p+1] == hi[p]``): a
    neuron's last strict sign carries over to the next piece, so a sign change
    that falls within the tolerance band at a shared end is found too (located
    by :func:`solve_across`); a piece on which the neuron stays within the
    tolerance throughout (``first == 0``) breaks the walk: no sign change is
    looked for across it.

    Returns
    -------
    root_piece, root_t, root_k : (R,) every strict sign flip (piece, location,
    neuron), in no particular order.
    first : (stop - start, n) int8, each neuron's first strict sign on the
    piece (0 if it is within the tolerance on the whole piece).
    boxes : number of boxes visited (work measure).
    """
    n = Cf.shape[2]
    F = Cf.shape[1] - 1
    cap = 256
    rp = np.empty(cap, dtype=np.int64)
    rt = np.empty(cap)
    rk = np.empty(cap, dtype=np.int64)
    nr = 0
    first = np.zeros((stop - start, n), dtype=np.int8)
    g = np.empty(F)
    dg = np.empty(F)
    ga = np.empty(F)
    gb = np.empty(F)
    tmp = np.empty(F)
    ck = np.empty(F + 1)
    M1 = np.empty(n)
    M2 = np.empty(n)
    tol = np.empty(n)
    zv = np.empty(n)
    dzv = np.empty(n)
    last_s = np.zeros(n, dtype=np.int8)
    last_t = np.zeros(n)
    last_p = np.zeros(n, dtype=np.int64)
    maxdepth = 80
    seg = np.empty(n * (maxdepth + 2), dtype=np.int64)
    st_a = np.empty(2 * maxdepth + 4)
    st_b = np.empty(2 * maxdepth + 4)
    st_s = np.empty(2 * maxdepth + 4, dtype=np.int64)
    st_n = np.empty(2 * maxdepth + 4, dtype=np.int64)
    st_d = np.empty(2 * maxdepth + 4, dtype=np.int64)
    boxes = 0
    for p in range(start, stop):
        a0 = lo[p]
        b0 = hi[p]
        C = Cf[p]
        # bounds and tolerances of all neurons at once (neurons inner)
        for k in range(n):
            M1[k] = 0.0
            M2[k] = 0.0
            tol[k] = abs(C[F, k])
        for f in range(F):
            pa = abs(alpha[f] + beta[f] * a0)
            pb = abs(alpha[f] + beta[f] * b0)
            tf = max(1.0, max(pa, pb))
            bf = beta[f]
            abf = abs(bf)
            if kind[f] != 0:
                for k in range(n):
                    ac = abs(C[f, k])
                    M1[k] += ac * abf
                    M2[k] += ac * bf * bf
                    tol[k] += ac * tf
            else:
                for k in range(n):
                    ac = abs(C[f, k])
                    M1[k] += ac * abf
                    tol[k] += ac * tf
        for k in range(n):
            tol[k] = rel_tol * tol[k]
            if not carry or p == start:
                last_s[k] = 0
                last_t[k] = a0
            seg[k] = k
        sp = 0
        st_a[0] = a0
        st_b[0] = b0
        st_s[0] = 0
        st_n[0] = n
        st_d[0] = 0
        sp = 1
        while sp > 0:
            sp -= 1
            a = st_a[sp]
            b = st_b[sp]
            s0 = st_s[sp]
            cnt0 = st_n[sp]
            depth = st_d[sp]
            top = s0 + cnt0
            boxes += 1
            if boxes > max_boxes:
                raise RuntimeError("root isolation exceeded its box budget: a neuron is "
                                   "within the tolerance of zero on a long stretch without "
                                   "being identically zero (a high-order zero or cancelling "
                                   "features)")
            m = 0.5 * (a + b)
            h = 0.5 * (b - a)
            terminal = h < h_term or depth >= maxdepth or not (a < m and m < b)
            _features(kind, alpha, beta, m, g, dg)
            # values and slopes at the midpoint of the active neurons
            if depth == 0:
                for k in range(n):
                    zv[k] = C[F, k]
                    dzv[k] = 0.0
                for f in range(F):
                    gf = g[f]
                    dgf = dg[f]
                    for k in range(n):
                        zv[k] += C[f, k] * gf
                        dzv[k] += C[f, k] * dgf
            else:
                for idx in range(cnt0):
                    k = seg[s0 + idx]
                    zm = C[F, k]
                    dzm = 0.0
                    for f in range(F):
                        zm += C[f, k] * g[f]
                        dzm += C[f, k] * dg[f]
                    zv[k] = zm
                    dzv[k] = dzm
            ends = False
            cnt = 0
            for idx in range(cnt0):
                k = seg[s0 + idx]
                zm = zv[k]
                dzm = dzv[k]
                bound = min(M1[k] * h, abs(dzm) * h + 0.5 * M2[k] * h * h)
                nev = 0
                ev_t0 = a
                ev_t1 = b
                ev_t2 = b
                ev_s0 = 0
                ev_s1 = 0
                ev_s2 = 0
                if abs(zm) > tol[k] + bound:
                    sa = 1 if zm > 0 else -1
                    ev_t0 = a
                    ev_s0 = sa
                    ev_t1 = b
                    ev_s1 = sa
                    ev_t2 = b
                    ev_s2 = 0
                    nev = 2
                elif abs(zm) + bound <= tol[k]:
                    # |z| <= tol on the whole box: zero there, no state change
                    continue
                elif terminal or abs(dzm) > M2[k] * h:
                    if not ends:
                        _features(kind, alpha, beta, a, ga, tmp)
                        _features(kind, alpha, beta, b, gb, tmp)
                        ends = True
                    za = C[F, k]
                    zb = C[F, k]
                    for f in range(F):
                        za += C[f, k] * ga[f]
                        zb += C[f, k] * gb[f]
                    ev_t0 = a
                    ev_s0 = _sgn(za, tol[k])
                    if terminal:
                        ev_t1 = m
                        ev_s1 = _sgn(zm, tol[k])
                        ev_t2 = b
                        ev_s2 = _sgn(zb, tol[k])
                        nev = 3
                    else:
                        ev_t1 = b
                        ev_s1 = _sgn(zb, tol[k])
                        ev_t2 = b
                        ev_s2 = 0
                        nev = 2
                else:
                    seg[top + cnt] = k
                    cnt += 1
                    continue
                # feed the events (in increasing t) to the neuron's walk
                for e in range(nev):
                    if e == 0:
                        et = ev_t0
                        es = ev_s0
                    elif e == 1:
                        et = ev_t1
                        es = ev_s1
                    else:
                        et = ev_t2
                        es = ev_s2
                    if es == 0:
                        continue
                    if first[p - start, k] == 0:
                        first[p - start, k] = es
                    if last_s[k] == 0:
                        last_s[k] = es
                        last_t[k] = et
                        last_p[k] = p
                    elif es == last_s[k]:
                        last_t[k] = et
                        last_p[k] = p
                    else:
                        if last_p[k] == p:
                            r = solve_bracket(_gather(Cf, p, k, ck), kind, alpha, beta,
                                              last_t[k], et, xtol)
                        else:
                            r = solve_across(Cf, k, last_p[k], p, hi, kind, alpha, beta,
                                             last_t[k], et, xtol, ck)
                        if nr == cap:
                            cap *= 2
                            rp2 = np.empty(cap, dtype=np.int64)
                            rt2 = np.empty(cap)
                            rk2 = np.empty(cap, dtype=np.int64)
                            rp2[:nr] = rp[:nr]
                            rt2[:nr] = rt[:nr]
                            rk2[:nr] = rk[:nr]
                            rp = rp2
                            rt = rt2
                            rk = rk2
                        rp[nr] = p
                        rt[nr] = r
                        rk[nr] = k
                        nr += 1
                        last_s[k] = es
                        last_t[k] = et
                        last_p[k] = p
            if cnt > 0:
                # right half first on the stack so the left half is done first
                for side in range(2):
                    st_a[sp] = m if side == 0 else a
                    st_b[sp] = b if side == 0 else m
                    st_s[sp] = top
                    st_n[sp] = cnt
                    st_d[sp] = depth + 1
                    sp += 1
        if carry:
            # a piece within the tolerance throughout breaks the walk
            for k in range(n):
                if first[p - start, k] == 0:
                    last_s[k] = 0
    return rp[:nr].copy(), rt[:nr].copy(), rk[:nr].copy(), first, boxes


@njit(cache=True)
def child_states(first, n_children, root_group, root_k, root_piece):
    """States (on = True) of every neuron on every child piece.

    ``first`` (P, n) int8: first strict sign per piece; roots sorted by
    (piece, t); ``root_group`` numbers each root's merged breakpoint within
    its piece (0, 1, ...; -1 for roots merged into the piece's left end,
    ``n_children`` for roots merged into its right end); child ``j`` of
    piece ``p`` has the states after every root of a group ``< j``. A
    neuron toggles at each of its roots.
    """
    P, n = first.shape
    total = 0
    for p in range(P):
        total += n_children[p]
    out = np.empty((total, n), dtype=np.bool_)
    r = 0
    R = root_k.shape[0]
    row = 0
    state = np.empty(n, dtype=np.bool_)
    for p in range(P):
        while r < R and root_piece[r] < p:
            r += 1
        for k in range(n):
            state[k] = first[p, k] > 0
        for j in range(n_children[p]):
            # apply the roots of breakpoint j-1 (those closing the previous child)
            while r < R and root_piece[r] == p and root_group[r] < j:
                state[root_k[r]] = not state[root_k[r]]
                r += 1
            out[row, :] = state
            row += 1
    return out


@njit(cache=True, nogil=True)
def children_coefficients(Cn, Cf, WT, bias, states, parent, is_anchor, slope, start, stop):
    """Next-layer coefficients of the children ``start .. stop-1`` (``Cn`` ``(m, F+1, n2)``,
    ``Cf`` ``(P, F+1, n)`` the parents', ``WT`` the next weight matrix transposed
    ``(n, n2)``), child ``start`` an anchor.

    An anchor gets a full product ``Cn[j] = (D_j Cf[p]) W^T + b`` (one small GEMM,
    the masked rows in a scratch block that stays in the L1 cache; for ReLU over
    the neurons that are on only, gathered with their rows of ``W^T``); the other
    children a rank-one update of their left sibling per toggled neuron: child
    ``j`` and child ``j-1`` of the same parent differ only in the neurons that
    toggle at the breakpoint between them, so
    ``Cn[j] = Cn[j-1] + sum_k (d_j[k] - d_{j-1}[k]) Cf[p, :, k] W[:, k]``.
    Anchors (the first child of each parent and every 16th after it) bound the
    chain of updates. Ranges starting at an anchor are independent, so the
    children can be split over threads at anchors.
    """
    m, G, n2 = Cn.shape
    n = Cf.shape[2]
    X = np.empty((G, n))
    Xb = np.empty(G * n)
    Wc = np.empty((n, n2))
    idx = np.empty(n, dtype=np.int64)
    dv = np.empty(n)
    w = np.empty(n2)
    compact = slope == 0.0 and n2 >= 8
    for j in range(start, stop):
        p = parent[j]
        if is_anchor[j]:
            if compact:
                # ReLU: only the neurons that are on contribute; the product over
                # them alone (about half the flops) has the same terms
                q = 0
                for k in range(n):
                    if states[j, k]:
                        idx[q] = k
                        q += 1
                if q == 0:
                    for f in range(G):
                        for k2 in range(n2):
                            Cn[j, f, k2] = 0.0
                else:
                    Xq = Xb[:G * q].reshape((G, q))
                    for f in range(G):
                        for i in range(q):
                            Xq[f, i] = Cf[p, f, idx[i]]
                    for i in range(q):
                        k = idx[i]
                        for k2 in range(n2):
                            Wc[i, k2] = WT[k, k2]
                    np.dot(Xq, Wc[:q], Cn[j])
            else:
                for k in range(n):
                    dv[k] = 1.0 if states[j, k] else slope
                for f in range(G):
                    for k in range(n):
                        X[f, k] = dv[k] * Cf[p, f, k]
                np.dot(X, WT, Cn[j])
            for k2 in range(n2):
                Cn[j, G - 1, k2] += bias[k2]
            continue
        for f in range(G):
            for k2 in range(n2):
                Cn[j, f, k2] = Cn[j - 1, f, k2]
        for k in range(n):
            a = states[j, k]
            if a != states[j - 1, k]:
                delta = (1.0 - slope) if a else (slope - 1.0)
                for k2 in range(n2):
                    w[k2] = delta * WT[k, k2]
                for f in range(G):
                    c = Cf[p, f, k]
                    for k2 in range(n2):
                        Cn[j, f, k2] += w[k2] * c

