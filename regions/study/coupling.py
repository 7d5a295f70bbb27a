"""Coupling of region features to per-sample training speed.

* :func:`spearman_ci` - Spearman's rank correlation with a percentile
  bootstrap confidence interval (resampling samples with replacement).
* :func:`correlation_table` - every feature against every speed measure.
* :func:`prediction_agreement` - does the observed early per-sample loss
  change follow the predicted first-order change?

All take plain ``(N,)`` arrays (or dicts of them); NaN or infinite values in
either argument drop that sample from that pair only.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["spearman_ci", "correlation_table", "prediction_agreement",
           "rank_data"]


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
