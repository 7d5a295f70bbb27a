"""Vectorised pieces of the encoded 2D engine: univariate trigonometric
polynomials of one coordinate, solved and bounded many at once (numpy).

A separable pre-activation is ``z(x, y) = F(x) + G(y) + c`` with

    F(x) = sum_f a_f g_f(w_f x),     g_f in {raw (the phase itself), sin, cos},

and ``G`` alike in ``y``. Each function here takes coefficient rows ``coef``
``(m, F)`` (or one row ``(F,)`` shared by every problem), the feature kinds
``kinds`` ``(F,)`` (0 raw, 1 sin, 2 cos, as :mod:`kernels.trig`) and
frequencies ``w`` ``(F,)``, and works on ``m`` problems at once.

Bounds used by the engine, for every ``x`` (``M_j = sum_f |a_f| |w_f|^j``
over the sin/cos features, the raw ones adding ``|a_f w_f|`` to ``M_1``):

    |F^(j)(x)| <= M_j          (j >= 1)
    |F^(j)(x)| <= |F^(j)(m)| + M_{j+1} |x - m|

Examples
--------
>>> import numpy as np
>>> kinds, w = np.array([1]), np.array([np.pi])          # F(x) = sin(pi x)
>>> float(evaluate(np.array([1.0]), kinds, w, np.array([0.5]))[0])
1.0
>>> x = solve_monotone(np.array([1.0]), kinds, w, np.array([-0.5]), np.array([0.0]),
...                    np.array([0.5]), 1e-15)           # sin(pi x) = 0.5
>>> bool(abs(x[0] - 1 / 6) < 1e-14)
True
"""
from __future__ import annotations

import numpy as np

__all__ = ["evaluate", "moment", "solve_monotone", "derivative_features"]

RAW, SIN, COS = 0, 1, 2


def _rows(coef, m):
    coef = np.asarray(coef, dtype=np.float64)
    return np.broadcast_to(coef, (m, coef.shape[-1])) if coef.ndim == 1 else coef


def evaluate(coef, kinds, w, x, order=0):
    """``F^(order)(x_i)`` for coefficient rows ``coef`` ``(m, F)`` or ``(F,)``, ``x`` ``(m,)``."""
    x = np.asarray(x, dtype=np.float64)
    coef = _rows(coef, x.shape[0])
    ph = x[:, None] * w[None, :]
    sin_k, cos_k = kinds == SIN, kinds == COS
    if order == 0:
        g = np.where(sin_k, np.sin(ph), np.where(cos_k, np.cos(ph), ph))
    else:
        s, c = np.sin(ph), np.cos(ph)
        # d^j/dx^j sin(wx) = w^j sin(wx + j pi/2); cos likewise
        r = order % 4
        sin_j = (s, c, -s, -c)[r]
        cos_j = (c, -s, -c, s)[r]
        wj = w[None, :] ** order
        raw_j = np.broadcast_to(w[None, :] if order == 1 else np.zeros_like(w)[None, :], ph.shape)
        g = np.where(sin_k, wj * sin_j, np.where(cos_k, wj * cos_j, raw_j))
    return np.einsum("mf,mf->m", coef, g)


def moment(coef, kinds, w, j):
    """``M_j`` of each row: a bound of ``|F^(j)|`` on the whole line (``j >= 1``)."""
    coef = np.abs(np.asarray(coef, dtype=np.float64))
    aw = np.abs(w)
    weights = np.where(kinds == RAW, aw if j == 1 else 0.0, aw ** j)
    return coef @ weights


def solve_monotone(coef, kinds, w, target, a, b, xtol):
    """Roots of ``F(x) + target = 0`` in ``[a_i, b_i]`` where ``F + target`` is monotone and
    changes sign (or is zero at an end): a safeguarded Newton iteration on every bracket
    at once (a Newton step leaving the bracket, or one that did not halve it, is a
    bisection), stopped at a bracket of width ``xtol`` or an exact zero.

    Returns ``(x, ok)``: ``ok`` is False where the end values do not bracket a root
    (the caller counts these; ``x`` is then the end of smaller ``|F + target|``).
    """
    a = np.array(a, dtype=np.float64)
    b = np.array(b, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    m = a.shape[0]
    coef = _rows(coef, m)
    fa = evaluate(coef, kinds, w, a) + target
    fb = evaluate(coef, kinds, w, b) + target
    ok = ~((fa > 0) & (fb > 0) | (fa < 0) & (fb < 0))
    x = np.where(np.abs(fa) <= np.abs(fb), a, b)
    exact = ok & ((fa == 0) | (fb == 0))
    active = np.flatnonzero(ok & ~exact)
    neg_lo = fa < 0                       # the side of a where F + target < 0
    lo, hi = a, b
    xc = 0.5 * (lo + hi)
    width = hi - lo
    for it in range(200):
        if active.shape[0] == 0:
            break
        i = active
        xi = xc[i]
        ci = coef[i]
        f = evaluate(ci, kinds, w, xi) + target[i]
        d = evaluate(ci, kinds, w, xi, 1)
        below = (f < 0) == neg_lo[i]      # xi is on a's side of the root
        lo[i] = np.where(below, xi, lo[i])
        hi[i] = np.where(below, hi[i], xi)
        li, hi_i = lo[i], hi[i]
        done = (f == 0) | (hi_i - li <= xtol)
        x[i[done]] = np.where(f[done] == 0, xi[done], 0.5 * (li[done] + hi_i[done]))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = f / d
        # a step below xtol / 2 goes xtol / 2 past the Newton point, closing the bracket
        small = np.abs(step) < 0.5 * xtol
        step = np.where(small, step + np.copysign(0.5 * xtol, step), step)
        cand = xi - step
        nxt = np.where((cand > li) & (cand < hi_i), cand, 0.5 * (li + hi_i))
        if it % 2 == 1:
            # the bracket must at least halve every two steps
            slow = hi_i - li > 0.5 * width[i]
            nxt = np.where(slow, 0.5 * (li + hi_i), nxt)
            width[i] = hi_i - li
        xc[i] = nxt
        active = i[~done]
    if active.shape[0]:
        x[active] = 0.5 * (lo[active] + hi[active])
    return x, ok


def derivative_features(kinds, w):
    """The features of ``F'`` as ``(kinds, w, scale, constant)``: ``F'(x) = sum_f
    (a_f scale_f) g'_f(w_f x) + sum_f a_f constant_f`` with sin <-> cos swapped
    (``d sin(wx) = w cos(wx)``, ``d cos(wx) = -w sin(wx)``; a raw feature ``w x``
    gives the constant ``w``)."""
    dk = np.where(kinds == SIN, COS, np.where(kinds == COS, SIN, RAW))
    scale = np.where(kinds == SIN, w, np.where(kinds == COS, -w, 0.0))
    constant = np.where(kinds == RAW, w, 0.0)
    return dk.astype(np.int64), np.asarray(w, dtype=np.float64), scale, constant
