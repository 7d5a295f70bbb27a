"""Per-sample convergence speed and the learning phase of a run.

Inputs are the training record of :func:`regions.study.training.train`:
``losses`` ``(R, N)`` at recorded ``epochs`` ``(R,)`` (the first record is
the reference, normally epoch 0).

* :func:`epochs_to_fraction` -- first recorded epoch with
  ``loss_i <= eps * loss_i(0)`` (``inf`` and censored when never);
* :func:`log_loss_slope` -- least-squares slope of ``log loss_i`` over a window;
* :func:`normalized_auc` -- area under ``loss_i(t) / loss_i(0)`` divided by the
  time span (1 = never improved, smaller = faster);
* :func:`learning_window` -- the learning phase of a run, from its mean loss
  curve by a rule fixed in advance (:data:`WINDOW_START`, :data:`WINDOW_STOP`);
* :func:`time_to_fraction` -- per-sample time (interpolated) for the loss to
  fall to a fraction of its value at a window start, censored at the window's
  end (:func:`censored_for_ranks` turns it into values rank statistics can use);
* :func:`window_speeds`, :func:`run_speeds` -- the per-sample speeds the study
  couples to region features: after a checkpoint over a fixed window, and
  over the whole run.

The residual energy per frequency band is :mod:`regions.study.bands`.
"""
from __future__ import annotations

import numpy as np


__all__ = ["epochs_to_fraction", "log_loss_slope", "normalized_auc",
           "learning_window", "constant_baseline", "time_to_fraction", "censored_for_ranks",
           "WINDOW_START", "WINDOW_STOP", "TIME_FRACTION", "window_speeds", "run_speeds"]


def _record(losses, epochs):
    L = np.asarray(losses, dtype=np.float64)
    e = np.asarray(epochs, dtype=np.float64).ravel()
    if L.ndim == 1:
        L = L[:, None]
    if L.ndim != 2:
        raise ValueError(f"losses must be (R, N) (records x samples), got shape {L.shape}")
    if e.shape[0] != L.shape[0]:
        raise ValueError(f"epochs must have one entry per record: losses has {L.shape[0]} "
                         f"records, epochs has {e.shape[0]}")
    if e.size == 0:
        raise ValueError("the record is empty (no epochs)")
    if e.size > 1 and np.any(np.diff(e) <= 0):
        raise ValueError("epochs must be strictly increasing")
    return L, e


def epochs_to_fraction(losses, epochs, eps=0.1):
    """First recorded epoch at which each sample's loss falls to ``eps`` of its start.

    Parameters
    ----------
    losses : array_like
        ``(R, N)`` per-sample losses; row 0 is the reference ``loss_i(0)``.
    epochs : array_like
        ``(R,)`` strictly increasing epochs of the records.
    eps : float
        Fraction in ``(0, 1]``.

    Returns
    -------
    epochs_hit : ndarray
        ``(N,)`` float64; ``inf`` where never reached (censored).
    censored : ndarray
        ``(N,)`` bool.

    Examples
    --------
    >>> L = np.array([[1.0, 1.0, 0.0], [0.5, 0.05, 0.0], [0.2, 0.01, 0.0]])
    >>> t, c = epochs_to_fraction(L, [0, 10, 20])
    >>> t.tolist(), c.tolist()
    ([inf, 10.0, 0.0], [True, False, False])
    """
    L, e = _record(losses, epochs)
    if not (np.isscalar(eps) and 0 < eps <= 1):
        raise ValueError(f"eps must be a number in (0, 1], got {eps!r}")
    hit = L <= eps * L[0]
    reached = hit.any(axis=0)
    first = np.argmax(hit, axis=0)
    out = np.where(reached, e[first], np.inf)
    return out, ~reached


def log_loss_slope(losses, epochs, window=None):
    """Least-squares slope of ``log loss_i`` against epoch.

    Parameters
    ----------
    losses, epochs
        As in :func:`epochs_to_fraction`.
    window : (start, stop), optional
        Use the records with ``start <= epoch <= stop`` (default: all). At
        least two records must fall in it.

    Returns
    -------
    ndarray
        ``(N,)`` slopes per epoch (negative = decreasing). Zero losses are
        clipped to the smallest positive float64.

    Examples
    --------
    >>> L = np.exp(-0.5 * np.arange(4.0))[:, None]
    >>> np.round(log_loss_slope(L, np.arange(4)), 6).tolist()
    [-0.5]
    """
    L, e = _record(losses, epochs)
    if window is not None:
        try:
            lo, hi = (float(v) for v in window)
        except (TypeError, ValueError):
            raise ValueError(f"window must be (start, stop) epochs, got {window!r}") from None
        keep = (e >= lo) & (e <= hi)
        L, e = L[keep], e[keep]
    if e.size < 2:
        raise ValueError(f"log_loss_slope needs at least two records in the window {window!r}, "
                         f"found {e.size}")
    y = np.log(np.maximum(L, np.finfo(np.float64).tiny))
    t = e - e.mean()
    return (t[:, None] * (y - y.mean(axis=0))).sum(axis=0) / (t * t).sum()


def normalized_auc(losses, epochs):
    """Area under ``loss_i(t) / loss_i(0)`` divided by the time span.

    Returns
    -------
    ndarray
        ``(N,)``; 1 = never improved, near 0 = converged at once; NaN where
        ``loss_i(0) = 0``. Trapezoidal rule over the recorded epochs.

    Examples
    --------
    >>> normalized_auc([[2.0], [0.0]], [0, 1]).tolist()
    [0.5]
    """
    L, e = _record(losses, epochs)
    if e.size < 2:
        raise ValueError("normalized_auc needs at least two records")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(L[0] > 0, L / np.where(L[0] > 0, L[0], 1.0), np.nan)
    area = (0.5 * (ratio[1:] + ratio[:-1]) * np.diff(e)[:, None]).sum(axis=0)
    return area / (e[-1] - e[0])


def window_speeds(losses, rec, e, w, eps):
    """Per-sample speed after epoch ``e`` (features at ``e`` are coupled to these):

    * ``rate``: ``-d log loss / d epoch`` over ``[e, e + w]`` (larger = faster);
    * ``drop``: ``log loss(e) - log loss(e + w)`` (larger = faster);
    * ``epochs_to_eps``: epochs after ``e`` until ``loss <= eps * loss(e)``
      (censored samples get the epochs left + 1; smaller = faster).
    """
    i0 = int(np.searchsorted(rec, e))
    i1 = int(np.searchsorted(rec, e + w, side="right")) - 1
    if i1 <= i0:
        return {}
    L = np.log(np.maximum(losses[[i0, i1]], np.finfo(float).tiny))
    out = {"rate": -log_loss_slope(losses, rec, window=(rec[i0], rec[i1])),
           "drop": L[0] - L[1]}
    ep, cens = epochs_to_fraction(losses[i0:], rec[i0:], eps)
    out["epochs_to_eps"] = np.where(cens, rec[-1] - rec[i0] + 1, ep - rec[i0]).astype(float)
    return out


def run_speeds(run, eps):
    """Whole-run speed measures of a trained run (:class:`regions.study.run_record.Run`):
    ``({"epochs_to_eps", "auc", "final_loss"}, censored)``, each ``(N,)``;
    ``epochs_to_eps`` of a censored sample (never at ``eps`` of its start) is the
    last epoch + 1."""
    rec, L = run.record_epochs, run.losses
    out = {}
    ep, cens = epochs_to_fraction(L, rec, eps)
    out["epochs_to_eps"] = np.where(cens, rec[-1] + 1, ep).astype(float)
    out["auc"] = np.asarray(normalized_auc(L, rec), dtype=float)
    out["final_loss"] = L[-1]
    return out, np.asarray(cens, bool)


# --------------------------------------------------------------------------- learning phase
#: The learning-phase window starts at the first record where the mean loss has
#: covered this share of its way from the best constant predictor's loss to the
#: run's lowest mean loss (excess <= 1 - share, see :func:`learning_window`) ...
WINDOW_START = 0.1
#: ... and stops at the first later record where it has covered this share.
WINDOW_STOP = 0.5
#: :func:`time_to_fraction` measures the time for a sample's loss to fall to
#: this fraction of its value at the window start.
TIME_FRACTION = 0.5


def constant_baseline(targets):
    """Mean loss (MSE over samples and channels) of the best constant predictor,
    the per-channel mean of the targets: the loss a network has when it has
    learnt only the mean.

    Examples
    --------
    >>> constant_baseline([[0.0], [2.0]])
    1.0
    """
    Y = np.asarray(targets, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.ndim != 2 or Y.shape[0] < 1 or not np.all(np.isfinite(Y)):
        raise ValueError(f"targets must be a finite (N, C) or (N,) array, got shape {Y.shape}")
    return float(((Y - Y.mean(axis=0)) ** 2).mean())


def learning_window(mean_loss, epochs, baseline, start=WINDOW_START, stop=WINDOW_STOP):
    """The learning phase of a run, chosen from its mean loss curve alone.

    With ``L_min`` the lowest recorded mean loss and ``excess(t) = (L(t) -
    L_min) / (baseline - L_min)`` (1 when the network has learnt only the
    mean, 0 at its best), the window runs from the first record with
    ``excess <= 1 - start`` to the first later record with ``excess <= 1 -
    stop``. The rule is fixed before any coupling is computed; it skips the
    fit of the mean (where per-sample rates measure the mean's drift, not
    learning) and the late plateau.

    Parameters
    ----------
    mean_loss, epochs : (R,) arrays
        The run's mean training loss at its recorded (increasing) epochs.
    baseline : float
        The best constant predictor's loss (:func:`constant_baseline`).
    start, stop : float
        Shares of the way from ``baseline`` to ``L_min``, ``0 <= start < stop <= 1``.

    Returns
    -------
    (int, int) or None
        ``(start_epoch, stop_epoch)``; None when the run never gets below the
        baseline by more than 1e-9 of it (nothing beyond the mean was learnt).

    Examples
    --------
    >>> learning_window([1.0, 0.5, 0.45, 0.3, 0.1, 0.1], [0, 10, 20, 30, 40, 50], 0.5)
    (20, 30)
    >>> learning_window([1.0, 0.6, 0.5], [0, 1, 2], 0.5) is None
    True
    """
    L, e = _record(mean_loss, epochs)
    L = L[:, 0]
    if not (0 <= start < stop <= 1):
        raise ValueError(f"need 0 <= start < stop <= 1, got start={start!r}, stop={stop!r}")
    if not np.all(np.isfinite(L)):
        raise ValueError("mean_loss has non-finite values")
    low = float(L.min())
    if not np.isfinite(baseline) or baseline - low <= 1e-9 * abs(baseline):
        return None
    excess = (L - low) / (baseline - low)
    i0 = int(np.argmax(excess <= 1 - start))
    later = np.flatnonzero(excess[i0 + 1:] <= 1 - stop)
    if later.size == 0:  # the lowest record itself is the start
        return None
    return int(e[i0]), int(e[i0 + 1 + later[0]])


def time_to_fraction(losses, epochs, window, fraction=TIME_FRACTION):
    """Per-sample time for the loss to fall to ``fraction`` of its value at the
    window start, interpolated between records on the log-loss scale, censored
    at the window's end.

    Parameters
    ----------
    losses, epochs
        As in :func:`epochs_to_fraction`.
    window : (start, stop)
        Recorded epochs.
    fraction : float
        In (0, 1).

    Returns
    -------
    times : ndarray
        ``(N,)`` epochs after ``start`` (``inf`` where censored).
    censored : ndarray
        ``(N,)`` bool: the threshold was not reached by ``stop``.

    Examples
    --------
    >>> L = np.array([[1.0, 1.0], [0.5, 1.0], [0.25, 0.9]])
    >>> t, c = time_to_fraction(L, [0, 10, 20], (0, 20), 0.25)
    >>> t.tolist(), c.tolist()
    ([20.0, inf], [False, True])
    """
    L, e = _record(losses, epochs)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    i0 = int(np.searchsorted(e, window[0]))
    i1 = int(np.searchsorted(e, window[1]))
    if i0 >= e.size or i1 >= e.size or e[i0] != window[0] or e[i1] != window[1] or i1 <= i0:
        raise ValueError(f"window must be two recorded epochs (start < stop), got {window!r}")
    y = np.log(np.maximum(L[i0:i1 + 1], np.finfo(np.float64).tiny))
    t = e[i0:i1 + 1] - e[i0]
    target = y[0] + np.log(fraction)
    hit = y <= target
    reached = hit[1:].any(axis=0)
    k = 1 + np.argmax(hit[1:], axis=0)
    cols = np.arange(y.shape[1])
    ya, yb = y[k - 1, cols], y[k, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(yb < ya, (ya - target) / (ya - yb), 1.0)
    times = t[k - 1] + np.clip(w, 0.0, 1.0) * (t[k] - t[k - 1])
    return np.where(reached, times, np.inf), ~reached


def censored_for_ranks(times, censored):
    """Censored times replaced by one value above every observed time.

    All samples share the window, so a censored sample is known to be slower
    than every sample that reached the threshold, and nothing more: ranking
    the censored samples tied last is exactly the available information.
    Only rank statistics may use the result.

    Examples
    --------
    >>> censored_for_ranks(np.array([3.0, np.inf, 1.0]), np.array([False, True, False])).tolist()
    [3.0, 4.0, 1.0]
    """
    t = np.asarray(times, dtype=np.float64)
    c = np.asarray(censored, dtype=bool)
    top = float(t[~c].max()) + 1.0 if np.any(~c) else 1.0
    return np.where(c, top, t)
