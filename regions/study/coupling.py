"""Coupling of region features to per-sample training speed.

* :func:`spearman_ci` - Spearman's rank correlation with a percentile
  bootstrap confidence interval (resampling samples with replacement).
* :func:`correlation_table` - every feature against every speed measure.
* :func:`prediction_agreement` - does the observed early per-sample loss
  change follow the predicted first-order change?
* :func:`partial_spearman` - Spearman's rho of two variables controlling for
  others (ranks residualised on the controls' ranks).
* :func:`learning_phase` - features against per-sample speed in the run's
  learning-phase window (:func:`regions.study.convergence.learning_window`),
  plain and partial on the sample's own loss and residual at the window start.

All take plain ``(N,)`` arrays (or dicts of them); NaN or infinite values in
either argument drop that sample from that pair only.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["spearman_ci", "correlation_table", "prediction_agreement",
           "rank_data", "partial_spearman", "learning_phase", "LEARNING_FEATURES"]


def rank_data(a, axis=-1):
    """Average ranks (ties share their mean rank) along ``axis``."""
    return stats.rankdata(a, axis=axis)


def _rowwise_pearson(a, b):
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    num = (a * b).sum(-1)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _groups(v):
    """Tie groups of ``v`` in increasing order: ``(group id per value, n_groups)``."""
    _, inv = np.unique(v, return_inverse=True)
    inv = inv.ravel()
    return inv, int(inv.max()) + 1


def _resample_ranks(groups, idx):
    """Average ranks inside each resample ``v[idx[b]]``, without sorting: a value's
    rank is the number of drawn values in lower tie groups plus the mean
    position inside its own group. ``idx`` is ``(B, n)``; returns ``(B, n)``."""
    gid, G = groups
    B = idx.shape[0]
    g = gid[idx] + (np.arange(B) * G)[:, None]
    counts = np.bincount(g.ravel(), minlength=B * G).reshape(B, G).astype(np.float64)
    below = np.cumsum(counts, axis=1) - counts
    rank_of_group = below + (counts + 1) / 2
    return np.take_along_axis(rank_of_group, gid[idx], axis=1)


def _clean_pair(x, y, what):
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{what}: the two arrays differ in length ({x.size} and {y.size}); "
                         "give one value per sample in both")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def spearman_ci(x, y, n_boot=200, level=0.95, seed=0, chunk=50):
    """Spearman's rho of ``x`` and ``y`` with a percentile bootstrap interval.

    Parameters
    ----------
    x, y : (N,) arrays
        Paired values; pairs with a NaN / inf are dropped.
    n_boot : int
        Bootstrap resamples (0 gives no interval).
    level : float
        Confidence level of the interval, in (0, 1).
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict with ``rho``, ``lo``, ``hi``, ``p`` (scipy's p-value) and ``n``
    (samples used). ``rho`` is NaN when fewer than 3 samples remain or one
    side is constant.

    Examples
    --------
    >>> r = spearman_ci([1, 2, 3, 4, 5], [2, 4, 6, 8, 11], n_boot=50)
    >>> round(r["rho"], 6), r["n"]
    (1.0, 5)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    n_boot = int(n_boot)
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    x, y = _clean_pair(x, y, "spearman_ci")
    n = x.size
    out = {"rho": np.nan, "lo": np.nan, "hi": np.nan, "p": np.nan, "n": int(n)}
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return out
    res = stats.spearmanr(x, y)
    out["rho"], out["p"] = float(res.statistic), float(res.pvalue)
    if n_boot == 0:
        return out
    rng = np.random.default_rng(seed)
    gx, gy = _groups(x), _groups(y)
    rhos = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        rhos.append(_rowwise_pearson(_resample_ranks(gx, idx), _resample_ranks(gy, idx)))
    rhos = np.concatenate(rhos)
    rhos = rhos[np.isfinite(rhos)]
    if rhos.size:
        a = (1 - level) / 2
        out["lo"], out["hi"] = (float(v) for v in np.quantile(rhos, [a, 1 - a]))
    return out


def correlation_table(features, speeds, n_boot=200, level=0.95, seed=0, tag=None):
    """Spearman rho with bootstrap intervals for every (feature, speed) pair.

    Parameters
    ----------
    features, speeds : dict name -> (N,) array
        E.g. a :class:`~regions.study.features.Features` and the speed measures.
    tag : dict, optional
        Extra columns copied into every row (run name, checkpoint epoch ...).

    Returns
    -------
    list of dict rows: ``feature``, ``speed``, ``rho``, ``lo``, ``hi``, ``p``,
    ``n``, ``kind`` (the feature's kind when ``features`` has one) and ``tag``.
    """
    kinds = getattr(features, "kind", {})
    rows = []
    for fname, fv in features.items():
        fv = np.asarray(fv)
        if fv.dtype.kind not in "biuf":
            continue
        for sname, sv in speeds.items():
            r = spearman_ci(fv, sv, n_boot=n_boot, level=level, seed=seed)
            row = {"feature": fname, "speed": sname, **r, "kind": kinds.get(fname, "")}
            if tag:
                row.update(tag)
            rows.append(row)
    return rows


def prediction_agreement(predicted, observed, n_boot=200, seed=0):
    """How well the predicted first-order loss change explains the observed one.

    Parameters
    ----------
    predicted : (N,) array or dict of named (N,) terms (summed)
        Predicted per-sample loss change (negative = decrease), e.g. the terms
        of :func:`regions.study.gram.predicted_loss_change`.
    observed : (N,) array
        Observed per-sample loss change over the same (early) interval.

    Returns
    -------
    dict: ``spearman`` (:func:`spearman_ci`), ``pearson``, ``sign_agreement``
    (share of samples whose predicted and observed changes have the same
    sign), ``scale`` (least-squares factor observed ~ scale * predicted) and,
    for a dict, ``term_share`` (each term's share of the summed |terms|) and
    ``term_spearman`` (each term alone against the observed change).
    """
    terms = None
    if isinstance(predicted, dict):
        terms = {k: np.asarray(v, dtype=np.float64) for k, v in predicted.items()}
        if not terms:
            raise ValueError("predicted is an empty dict; give at least one term")
        total = sum(terms.values())
    else:
        total = np.asarray(predicted, dtype=np.float64)
    p, o = _clean_pair(total, observed, "prediction_agreement")
    out = {"spearman": spearman_ci(p, o, n_boot=n_boot, seed=seed), "n": int(p.size)}
    out["pearson"] = float(stats.pearsonr(p, o).statistic) if p.size > 2 and p.std() > 0 \
        and o.std() > 0 else np.nan
    out["sign_agreement"] = float(np.mean(np.sign(p) == np.sign(o))) if p.size else np.nan
    out["scale"] = float(p @ o / (p @ p)) if p.size and (p @ p) > 0 else np.nan
    if terms is not None:
        mags = {k: float(np.nansum(np.abs(v))) for k, v in terms.items()}
        tot = sum(mags.values()) or np.nan
        out["term_share"] = {k: m / tot for k, m in mags.items()}
        out["term_spearman"] = {k: spearman_ci(v, observed, n_boot=0)["rho"]
                                for k, v in terms.items()}
    return out


def partial_spearman(x, y, controls, level=0.95):
    """Spearman's rho of ``x`` and ``y`` controlling for ``controls``.

    The ranks of ``x`` and ``y`` are each regressed (least squares, with an
    intercept) on the ranks of the controls; the partial rho is the Pearson
    correlation of the two residuals. The interval is Fisher's z with the
    Fieller-Hartley-Pearson variance ``1.06 / (n - k - 3)`` for a Spearman
    coefficient with ``k`` controls, the p-value the t-test with ``n - k - 2``
    degrees of freedom.

    Parameters
    ----------
    x, y : (N,) arrays
    controls : (N,) array or sequence of (N,) arrays
        Samples with a NaN / inf in any argument are dropped.

    Returns
    -------
    dict with ``rho``, ``lo``, ``hi``, ``p``, ``n`` (as :func:`spearman_ci`).

    Examples
    --------
    >>> z = np.arange(50.0)
    >>> x = z + np.sin(z)             # both follow z; what is left is unrelated
    >>> y = z + np.cos(3 * z)
    >>> abs(spearman_ci(x, y, n_boot=0)["rho"]) > 0.9, abs(partial_spearman(x, y, z)["rho"]) < 0.5
    (True, True)
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    Z = np.asarray(controls, dtype=np.float64)
    Z = Z[None] if Z.ndim == 1 else Z
    if Z.ndim != 2 or Z.shape[1] != x.size or y.size != x.size:
        raise ValueError(f"partial_spearman: x, y and every control need one value per sample; "
                         f"got {x.size}, {y.size} and controls of shape {np.shape(controls)}")
    keep = np.isfinite(x) & np.isfinite(y) & np.all(np.isfinite(Z), axis=0)
    x, y, Z = x[keep], y[keep], Z[:, keep]
    n, k = x.size, Z.shape[0]
    out = {"rho": np.nan, "lo": np.nan, "hi": np.nan, "p": np.nan, "n": int(n)}
    if n < k + 4 or np.all(x == x[0]) or np.all(y == y[0]):
        return out
    A = np.column_stack([np.ones(n)] + [stats.rankdata(z) for z in Z])

    def resid(v):
        r = stats.rankdata(v)
        return r - A @ np.linalg.lstsq(A, r, rcond=None)[0]

    rho = float(_rowwise_pearson(resid(x), resid(y)))
    if not np.isfinite(rho):
        return out
    rho = float(np.clip(rho, -1.0, 1.0))
    df = n - k - 2
    t = rho * np.sqrt(df / max(1 - rho * rho, 1e-300))
    q = stats.norm.ppf(0.5 + level / 2)
    z, se = np.arctanh(np.clip(rho, -1 + 1e-12, 1 - 1e-12)), np.sqrt(1.06 / (n - k - 3))
    out.update(rho=rho, lo=float(np.tanh(z - q * se)), hi=float(np.tanh(z + q * se)),
               p=float(2 * stats.t.sf(abs(t), df)))
    return out


#: Features coupled to the learning-phase speeds (the others are in the
#: fixed-window rows): region size and crowding, distances, pattern distances.
LEARNING_FEATURES = ("occupancy", "measure", "inradius", "density", "dist_boundary", "hamming",
                     "crossings")


def learning_phase(features, losses, epochs, window, residual_start, n_boot=200, seed=0,
                   tag=None):
    """Features against per-sample speed in a learning-phase window.

    Parameters
    ----------
    features : dict name -> (N,) array
        Features at (or just before) the window start; those named in
        :data:`LEARNING_FEATURES` are used.
    losses, epochs
        The run's per-sample record ``(R, N)`` and its epochs.
    window : (start, stop)
        Recorded epochs (:func:`regions.study.convergence.learning_window`).
    residual_start : (N,) array or None
        The sample's signed residual at the start (mean over output channels);
        None: the partial rows control for the loss only.
    n_boot, seed, tag
        As in :func:`correlation_table` for the plain rows.

    Returns
    -------
    speeds : dict
        ``lp_rate`` (-d log loss / d epoch over the window, larger = faster)
        and ``lp_time`` (epochs to :data:`~regions.study.convergence.TIME_FRACTION`
        of the start loss; censored samples tied after every uncensored one,
        :func:`~regions.study.convergence.censored_for_ranks`; smaller = faster).
    rows : list of dict
        Coupling rows for ``lp_rate`` and ``lp_time`` (:func:`spearman_ci`) and
        ``lp_rate_partial`` and ``lp_time_partial`` (:func:`partial_spearman`
        controlling for the log loss and the residual at the start).
    """
    from . import convergence as cv

    rec = np.asarray(epochs)
    i0 = int(np.searchsorted(rec, window[0]))
    rate = -cv.log_loss_slope(losses, rec, window=window)
    times, cens = cv.time_to_fraction(losses, rec, window)
    speeds = {"lp_rate": rate, "lp_time": cv.censored_for_ranks(times, cens)}
    controls = [np.log(np.maximum(np.asarray(losses)[i0], np.finfo(float).tiny))]
    if residual_start is not None:
        controls.append(np.asarray(residual_start, dtype=np.float64).ravel())
    kinds = getattr(features, "kind", {})
    rows = []
    for fname in LEARNING_FEATURES:
        if fname not in features:
            continue
        fv = np.asarray(features[fname], dtype=np.float64)
        for sname, sv in speeds.items():
            for name, r in ((sname, spearman_ci(fv, sv, n_boot=n_boot, seed=seed)),
                            (f"{sname}_partial", partial_spearman(fv, sv, controls))):
                rows.append({"feature": fname, "speed": name, **r,
                             "kind": kinds.get(fname, ""), **(tag or {})})
    return speeds, rows
