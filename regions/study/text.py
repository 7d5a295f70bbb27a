"""Formatting of numbers and Markdown tables for the study's report and claims.

Examples
--------
>>> fmt(0.000123), fmt(12345.6), fmt(0.5), fmt(None)
('1.23e-04', '12346', '0.500', '-')
>>> mean_sd([1.0, 2.0, None])
'1.5 ± 0.71'
>>> print(markdown_table(["a", "b"], [[1, 2]]))
| a | b |
|---|---|
| 1 | 2 |
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["fmt", "aggregate", "mean_sd", "markdown_table", "correlation_summary"]


def fmt(v, nd=3):
    """A number for a table cell: ``nd`` significant digits, exponent notation
    for very small or large values, ``-`` for None (not measured), ``n/a`` for
    NaN (measured but undefined, e.g. the p-value of one run)."""
    if v is None:
        return "-"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(v):
        return "n/a" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        return f"{v:.{nd - 1}e}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{nd}g}" if abs(v) >= 1 else f"{v:.{nd}f}"


def aggregate(values):
    """``(mean, sd, count)`` of the finite values (None / NaN dropped)."""
    v = np.array([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.nan, np.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def mean_sd(values, nd=3):
    """``mean ± sd`` over seeds (just the value for one seed; ``-`` for none)."""
    m, s, k = aggregate(values)
    if k == 0:
        return "-"
    return fmt(m, nd) if k == 1 else f"{fmt(m, nd)} ± {fmt(s, 2)}"


def markdown_table(header, rows):
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(out)


def correlation_summary(rows):
    """A correlation over seeds from a list of coupling rows (one per seed,
    :class:`regions.study.results.CouplingRow`), for a table cell.

    Several seeds: the Fisher-z mean over the seeds with its Student-t 95%
    interval over the seeds (:func:`regions.study.stats.pool`), ``rho [lo,
    hi] (k seeds)``. One seed: its rho with the within-run bootstrap interval
    over the samples, marked as such (``rho (1 seed; samples [lo, hi])``): the
    samples of one run are not independent replications. ``-`` for no row,
    ``n/a (constant)`` when no seed has a finite rho.

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> correlation_summary([R(rho=0.2, lo=0.1, hi=0.3)])
    '+0.20 (1 seed; samples [+0.10, +0.30])'
    >>> correlation_summary([R(rho=0.2, lo=0, hi=0), R(rho=0.4, lo=0, hi=0)])[:5]
    '+0.30'
    """
    from .stats import pool

    if not rows or not np.any(np.isfinite([t.rho for t in rows])):
        return "-" if not rows else "n/a (constant)"
    finite = [t for t in rows if np.isfinite(t.rho)]
    if len(finite) == 1:
        t = finite[0]
        return f"{t.rho:+.2f} (1 seed; samples [{t.lo:+.2f}, {t.hi:+.2f}])"
    e = pool([t.rho for t in finite], 0.0, "fisher")
    return f"{e.estimate:+.2f} [{e.ci_low:+.2f}, {e.ci_high:+.2f}] ({e.n_units} seeds)"
