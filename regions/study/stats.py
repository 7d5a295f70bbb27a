"""The study's statistics: runs as units of replication, one test per finding,
false-discovery-rate control over the findings table, and the verdict rules.

Units of replication
    The unit is one trained run of an experiment: one (training seed, target)
    pair. Samples (pixels, points) inside a run are *not* independent units:
    a per-sample correlation is one estimate per run, and only the spread of
    the per-run estimates enters an interval or a p-value.
Pooling (:func:`pool`)
    The per-run values are pooled by their mean with a Student-t interval
    over the runs (``n - 1`` degrees of freedom) and a two-sided one-sample
    t-test against the claim's threshold, on a stated scale: ``linear``
    (the values themselves), ``log`` (a ratio: the mean of the log ratios,
    reported back as the geometric-mean ratio) or ``fisher`` (a correlation:
    the mean of ``atanh(rho)``, reported back through ``tanh``). A
    comparison of two experiments is paired by seed (:func:`paired`).
Multiplicity (:func:`adjust`)
    Every finding's p-value is adjusted with Benjamini-Hochberg over the
    whole findings table (:data:`FDR_METHOD`), controlling the false
    discovery rate at :data:`ALPHA`.
Verdicts (:data:`RULES`, :func:`verdict`)
    One table of rules, checked in order, maps a finding's threshold, side,
    estimate, interval and adjusted p-value to "holds", "does not hold",
    "inconclusive" or "not tested". The report prints the same table
    (:func:`rules_markdown`), and ``data/findings.csv`` has every column the
    rules read, so each verdict can be recomputed from that file alone.

Examples
--------
>>> e = pool([0.30, 0.25, 0.35], null=0.0)
>>> round(e.estimate, 3), e.n_units, e.p_value < 0.05
(0.3, 3, True)
>>> verdict(null=0.0, alternative="greater", estimate=e.estimate, ci_low=e.ci_low,
...         ci_high=e.ci_high, p_adjusted=e.p_value, n_units=e.n_units)
'holds'
>>> adjust([0.01, 0.04, 0.03, 0.2]).round(3).tolist()
[0.04, 0.053, 0.053, 0.2]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["ALPHA", "LEVEL", "FDR_METHOD", "SCALES", "ALTERNATIVES", "Estimate", "pool",
           "paired", "adjust", "holm", "RULES", "verdict", "rule_number", "rules_markdown"]

#: Significance level of the false-discovery-rate control.
ALPHA = 0.05
#: Level of every interval.
LEVEL = 0.95
#: The multiplicity adjustment applied over the whole findings table.
FDR_METHOD = "Benjamini-Hochberg"
#: Scales on which per-unit values are pooled (see the module docstring).
SCALES = ("linear", "log", "fisher")
#: Sides of a claim relative to its threshold.
ALTERNATIVES = ("greater", "less")

#: Correlations are clipped to this magnitude before ``atanh`` (a seed with
#: rho = +-1 exactly would otherwise give an infinite mean).
_MAX_RHO = 1 - 1e-12


@dataclass(frozen=True)
class Estimate:
    """A pooled estimate over units of replication.

    ``estimate``, ``ci_low`` and ``ci_high`` are on the original scale (a
    ratio for ``log``, a correlation for ``fisher``); ``p_value`` is the
    two-sided t-test of the pooled mean against the threshold on the pooling
    scale; ``values`` are the per-unit values it came from.
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n_units: int
    method: str
    values: tuple


def _to_scale(v, scale):
    v = np.asarray(v, dtype=np.float64)
    if scale == "linear":
        return v
    if scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
    return np.arctanh(np.clip(v, -_MAX_RHO, _MAX_RHO))


def _from_scale(v, scale):
    if scale == "linear":
        return float(v)
    if scale == "log":
        return float(np.exp(v))
    return float(np.tanh(v))


def _check_choice(value, accepted, what):
    if value not in accepted:
        raise ValueError(f"{what} must be one of {accepted}, got {value!r}")


def pool(values, null, scale="linear", level=LEVEL):
    """Pool per-unit values: mean, Student-t interval and t-test against ``null``.

    Parameters
    ----------
    values : iterable of float or None
        One value per unit (run); None and NaN are dropped (the unit did not
        measure it). On the ``log`` scale values must be positive, on the
        ``fisher`` scale in [-1, 1]; a value outside raises ``ValueError``.
    null : float
        The claim's threshold on the original scale (a ratio for ``log``, a
        correlation for ``fisher``).
    scale : {"linear", "log", "fisher"}
    level : float
        Interval level in (0, 1).

    Returns
    -------
    Estimate
        With one unit the estimate is that unit's value and the interval and
        p-value are NaN (no replication). With several units of identical
        value the interval is that value and the p-value is 0 (1 when it
        equals the threshold).
    """
    _check_choice(scale, SCALES, "scale")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    v = np.array([np.nan if x is None else float(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if scale == "log" and np.any(v <= 0):
        raise ValueError(f"pool on the log scale needs positive values (ratios), got {v.tolist()}")
    if scale == "fisher" and np.any(np.abs(v) > 1):
        raise ValueError(f"pool on the fisher scale needs correlations in [-1, 1], got "
                         f"{v.tolist()}")
    n = int(v.size)
    method = f"mean over {n} runs ({scale} scale), Student-t {100 * level:g}% interval"
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, 0, method, ())
    z = _to_scale(v, scale)
    z0 = float(_to_scale([null], scale)[0])
    m = float(z.mean())
    if n == 1:
        return Estimate(_from_scale(m, scale), math.nan, math.nan, math.nan, 1, method,
                        tuple(v.tolist()))
    sd = float(z.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0 or not math.isfinite(se):
        lo = hi = m
        p = 1.0 if m == z0 else 0.0
    else:
        q = float(_st.t.ppf(0.5 + level / 2, n - 1))
        lo, hi = m - q * se, m + q * se
        p = float(2 * _st.t.sf(abs(m - z0) / se, n - 1))
    return Estimate(_from_scale(m, scale), _from_scale(lo, scale), _from_scale(hi, scale), p, n,
                    method, tuple(v.tolist()))


def paired(a, b, combine):
    """Per-unit values of a comparison of two experiments, paired by unit.

    Parameters
    ----------
    a, b : dict unit -> float or None
        Per-unit values of each experiment (e.g. ``{seed: value}``).
    combine : callable
        ``combine(a_value, b_value) -> value`` (e.g. a ratio or a difference).

    Returns
    -------
    dict unit -> float
        Only the units both measured (finite), in ``a``'s order.

    Examples
    --------
    >>> paired({0: 2.0, 1: 4.0, 2: None}, {0: 1.0, 1: 1.0, 2: 3.0}, lambda x, y: x / y)
    {0: 2.0, 1: 4.0}
    """
    out = {}
    for k, x in a.items():
        y = b.get(k)
        if x is None or y is None or not (np.isfinite(x) and np.isfinite(y)):
            continue
        out[k] = float(combine(x, y))
    return out


def _step_adjusted(p_values, step):
    """Adjusted p-values of a step procedure: the finite p-values (NaN entries
    stay NaN and do not count) sorted ascending and mapped by
    ``step(sorted_p, m)`` (``m`` the number of finite ones), capped at 1."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must be in [0, 1] (or NaN), got {p.tolist()}")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        out[order] = np.minimum(1.0, step(p[order], ok.size))
    return out


def adjust(p_values):
    """Benjamini-Hochberg adjusted p-values (NaN entries stay NaN and do not count).

    ``p_adj(i) = min over k >= rank(i) of  m * p_(k) / k``, capped at 1, with
    ``m`` the number of finite p-values.
    """
    return _step_adjusted(p_values, lambda p, m: np.minimum.accumulate(
        (p * m / np.arange(1, m + 1))[::-1])[::-1])


def holm(p_values):
    """Holm (step-down Bonferroni) adjusted p-values, for comparison with
    :func:`adjust` (NaN entries stay NaN and do not count):
    ``p_adj(i) = max over k <= rank(i) of (m - k + 1) p_(k)``, capped at 1."""
    return _step_adjusted(p_values, lambda p, m: np.maximum.accumulate(p * (m - np.arange(m))))


# ----------------------------------------------------------------------------- verdicts
def _finite(*v):
    return all(x is not None and math.isfinite(x) for x in v)


def _claimed_side(r):
    if r["alternative"] == "greater":
        return r["ci_low"] > r["null"]
    return r["ci_high"] < r["null"]


def _opposite_side(r):
    if r["alternative"] == "greater":
        return r["ci_high"] < r["null"]
    return r["ci_low"] > r["null"]


def _significant(r):
    return _finite(r["p_adjusted"], r["ci_low"], r["ci_high"]) and r["p_adjusted"] < ALPHA


#: The verdict rules, checked in order; the first that applies gives the
#: verdict. Each reads only columns of ``data/findings.csv``.
RULES = (
    ("not tested", "no run measured the statistic (the estimate is missing)",
     lambda r: not _finite(r["estimate"])),
    ("inconclusive", "fewer than 2 runs: there is no spread over runs, hence no interval "
     "and no p-value", lambda r: r["n_units"] < 2),
    ("holds", f"p_adjusted < {ALPHA} and the whole {100 * LEVEL:g}% interval lies on the "
     "claimed side of the threshold", lambda r: _significant(r) and _claimed_side(r)),
    ("does not hold", f"p_adjusted < {ALPHA} and the whole {100 * LEVEL:g}% interval lies on "
     "the other side of the threshold", lambda r: _significant(r) and _opposite_side(r)),
    ("inconclusive", "otherwise (the interval reaches the threshold, or p_adjusted >= "
     f"{ALPHA})", lambda r: True),
)


def verdict(*, null, alternative, estimate, ci_low, ci_high, p_adjusted, n_units):
    """The verdict of one finding by :data:`RULES` (the first rule that applies).

    ``alternative`` says on which side of the threshold ``null`` the claim
    puts the statistic ("greater" or "less").
    """
    return RULES[rule_number(null=null, alternative=alternative, estimate=estimate,
                             ci_low=ci_low, ci_high=ci_high, p_adjusted=p_adjusted,
                             n_units=n_units) - 1][0]


def rule_number(*, null, alternative, estimate, ci_low, ci_high, p_adjusted, n_units):
    """The number (from 1) of the first rule of :data:`RULES` that applies to a
    finding (arguments as in :func:`verdict`).

    Examples
    --------
    >>> rule_number(null=0.0, alternative="greater", estimate=0.3, ci_low=float("nan"),
    ...             ci_high=float("nan"), p_adjusted=float("nan"), n_units=1)
    2
    """
    _check_choice(alternative, ALTERNATIVES, "alternative")
    row = {"null": float(null), "alternative": alternative,
           "estimate": math.nan if estimate is None else float(estimate),
           "ci_low": math.nan if ci_low is None else float(ci_low),
           "ci_high": math.nan if ci_high is None else float(ci_high),
           "p_adjusted": math.nan if p_adjusted is None else float(p_adjusted),
           "n_units": int(n_units)}
    for i, (_, _, applies) in enumerate(RULES):
        if applies(row):
            return i + 1
    raise AssertionError("the last rule applies to every finding")  # pragma: no cover


def rules_markdown():
    """The verdict rules as a Markdown list, in the order they are checked."""
    lines = [f"{i + 1}. **{name}**: {text}" for i, (name, text, _) in enumerate(RULES)]
    return "\n".join(lines)
