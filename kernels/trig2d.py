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

import math

import numpy as np
from numba import njit

__all__ = ["evaluate", "moment", "solve_monotone", "derivative_features"]

RAW, SIN, COS = 0, 1, 2


@njit(cache=True, nogil=True)
def _value(coef, kinds, w, x, order):
    v = 0.0
    r = order % 4
    for f in range(kinds.shape[0]):
        ph = w[f] * x
        if kinds[f] == RAW:
            if order == 0:
                v += coef[f] * ph
            elif order == 1:
                v += coef[f] * w[f]
            continue
        s = math.sin(ph)
        c = math.cos(ph)
        if kinds[f] == COS:
            # cos(t) = sin(t + pi/2): shift the derivative order by one
            rr = (r + 1) % 4
        else:
            rr = r
        g = s if rr == 0 else (c if rr == 1 else (-s if rr == 2 else -c))
        v += coef[f] * w[f] ** order * g
    return v


@njit(cache=True, nogil=True)
def _evaluate(coef, kinds, w, x, order, out):
    shared = coef.shape[0] == 1
    for i in range(x.shape[0]):
        out[i] = _value(coef[0] if shared else coef[i], kinds, w, x[i], order)
    return out


def _as_rows(coef):
    coef = np.asarray(coef, dtype=np.float64)
    return np.ascontiguousarray(coef[None, :] if coef.ndim == 1 else coef)


def evaluate(coef, kinds, w, x, order=0):
    """``F^(order)(x_i)`` for coefficient rows ``coef`` ``(m, F)`` or one row ``(F,)``
    shared by every point, at ``x`` ``(m,)``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    return _evaluate(_as_rows(coef), np.ascontiguousarray(kinds, dtype=np.int64),
                     np.ascontiguousarray(w, dtype=np.float64), x, int(order), np.empty(x.shape[0]))


def moment(coef, kinds, w, j):
    """``M_j`` of each row: a bound of ``|F^(j)|`` on the whole line (``j >= 1``)."""
    coef = np.abs(np.asarray(coef, dtype=np.float64))
    aw = np.abs(w)
    weights = np.where(kinds == RAW, aw if j == 1 else 0.0, aw ** j)
    return coef @ weights


@njit(cache=True, nogil=True)
def _solve_one(ck, kinds, w, target, a, b, xtol):
    """One safeguarded Newton solve (see :func:`solve_monotone`): ``(x, ok)``."""
    fa = _value(ck, kinds, w, a, 0) + target
    fb = _value(ck, kinds, w, b, 0) + target
    if (fa > 0 and fb > 0) or (fa < 0 and fb < 0):
        return (a if abs(fa) <= abs(fb) else b), False
    if fa == 0.0:
        return a, True
    if fb == 0.0:
        return b, True
    neg_lo = fa < 0
    lo = a
    hi = b
    x = (a * fb - b * fa) / (fb - fa)
    if not (x > lo and x < hi):
        x = 0.5 * (lo + hi)
    width = hi - lo
    for it in range(300):
        f = _value(ck, kinds, w, x, 0) + target
        if f == 0.0:
            return x, True
        if (f < 0) == neg_lo:
            lo = x
        else:
            hi = x
        if hi - lo <= xtol:
            break
        d = _value(ck, kinds, w, x, 1)
        nxt = 0.5 * (lo + hi)
        if d != 0.0:
            step = f / d
            if abs(step) < 0.5 * xtol:
                # xtol / 2 past the Newton point, so that the bracket closes
                step = step + 0.5 * xtol if step > 0 else step - 0.5 * xtol
            cand = x - step
            if cand > lo and cand < hi:
                nxt = cand
        if it % 2 == 1:
            # the bracket must at least halve every two steps
            if hi - lo > 0.5 * width:
                nxt = 0.5 * (lo + hi)
            width = hi - lo
        x = nxt
    return 0.5 * (lo + hi), True


@njit(cache=True, nogil=True)
def _solve(coef, kinds, w, target, a, b, xtol, x, ok):
    shared = coef.shape[0] == 1
    for i in range(a.shape[0]):
        x[i], ok[i] = _solve_one(coef[0] if shared else coef[i], kinds, w, target[i],
                                 a[i], b[i], xtol)


def solve_monotone(coef, kinds, w, target, a, b, xtol):
    """Roots of ``F(x) + target = 0`` in ``[a_i, b_i]`` where ``F + target`` is monotone and
    changes sign (or is zero at an end): a safeguarded Newton iteration (a Newton step
    leaving the bracket, or a bracket that did not halve over two steps, is a
    bisection), stopped at a bracket of width ``xtol`` or an exact zero.

    Returns ``(x, ok)``: ``ok`` is False where the end values do not bracket a root
    (the caller counts these; ``x`` is then the end of smaller ``|F + target|``).
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    target = np.ascontiguousarray(np.broadcast_to(target, a.shape), dtype=np.float64)
    x = np.empty(a.shape[0])
    ok = np.empty(a.shape[0], dtype=np.bool_)
    _solve(_as_rows(coef), np.ascontiguousarray(kinds, dtype=np.int64),
           np.ascontiguousarray(w, dtype=np.float64), target, a, b, float(xtol), x, ok)
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
