"""Per-sample convergence speed and per-frequency residual energy.

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
* :func:`band_residual_ratio` -- the paper's residual energy ratio per frequency
  band ``E_b(t) = sum_{w in b} |R(w, t)|^2 / sum_{w in b} |Y_c(w)|^2`` with
  ``R`` the DFT of the residual and ``Y_c`` the DFT of the mean-removed target
  (1D: bins by frequency index; 2D: radial bands of the 2D DFT; summed over
  channels).
"""
from __future__ import annotations

import numpy as np

from .grid import check_grid_shape

__all__ = ["epochs_to_fraction", "log_loss_slope", "normalized_auc", "band_residual_ratio",
           "learning_window", "constant_baseline", "time_to_fraction", "censored_for_ranks",
           "WINDOW_START", "WINDOW_STOP", "TIME_FRACTION",
           "default_bands", "bands_around", "radial_frequency", "band_energy_from_run"]


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


# --------------------------------------------------------------------------- spectra
def radial_frequency(grid_shape) -> np.ndarray:
    """Frequency of every DFT bin in cycles over the grid, shaped like the grid.

    1D: ``|k|`` for bin ``k`` of ``numpy.fft.fft``; 2D:
    ``sqrt(kx^2 + ky^2)`` with ``ky`` along rows and ``kx`` along columns.
    """
    shape = check_grid_shape(grid_shape)
    if len(shape) == 1:
        return np.abs(np.fft.fftfreq(shape[0]) * shape[0])
    H, W = shape
    ky = np.fft.fftfreq(H) * H
    kx = np.fft.fftfreq(W) * W
    return np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def default_bands(grid_shape) -> np.ndarray:
    """Default frequency bands ``(lo, hi]`` in cycles over the grid.

    1D: octaves ``(0, 8], (8, 16], (16, 32], ...`` up to ``n / 2``; 2D:
    ``(0, 4], (4, 8], (8, 12], (12, inf)`` (the paper's "more than 12 cycles"
    is the last band), dropping bands with no DFT bin. The DC bin (frequency
    0) is in no band.

    Returns
    -------
    ndarray
        ``(n_bands, 2)`` float64.

    Examples
    --------
    >>> default_bands((64,)).tolist()
    [[0.0, 8.0], [8.0, 16.0], [16.0, 32.0]]
    >>> default_bands((64, 64))[-1].tolist()
    [12.0, inf]
    """
    shape = check_grid_shape(grid_shape)
    f = radial_frequency(shape)
    if len(shape) == 1:
        top = shape[0] // 2
        edges = [0.0]
        while edges[-1] < top:
            edges.append(min(top, max(8.0, 2 * edges[-1])))
        bands = np.array(list(zip(edges[:-1], edges[1:])), dtype=np.float64)
    else:
        bands = np.array([[0, 4], [4, 8], [8, 12], [12, np.inf]], dtype=np.float64)
    keep = [((f > lo) & (f <= hi)).any() for lo, hi in bands]
    return bands[np.asarray(keep, dtype=bool)].reshape(-1, 2)


def bands_around(freqs, half_width=2.5) -> np.ndarray:
    """Bands ``(f - half_width, f + half_width]`` around given frequencies
    (e.g. the components ``5, 10, ..., 70`` of the paper's 1D signal)."""
    f = np.asarray(freqs, dtype=np.float64).ravel()
    return np.stack([f - half_width, f + half_width], axis=1)


def _check_bands(bands, shape):
    if bands is None:
        return default_bands(shape)
    b = np.asarray(bands, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] < 1 or np.any(b[:, 0] >= b[:, 1]) \
            or np.any(np.isnan(b)):
        raise ValueError(f"bands must be a non-empty (n_bands, 2) array of (lo, hi] frequency "
                         f"intervals with lo < hi, got {np.asarray(bands).tolist()!r}")
    return b


def band_residual_ratio(residuals, grid_shape, bands=None, targets=None, chunk_values=1 << 22):
    """Residual energy ratio per frequency band.

    Parameters
    ----------
    residuals : array_like
        ``(R, N, C)``, ``(N, C)`` or ``(N,)``: prediction minus target (the sign
        does not matter) on the row-major grid.
    grid_shape : tuple
        ``(N,)`` or ``(H, W)``.
    bands : array_like, optional
        ``(n_bands, 2)`` frequency intervals ``(lo, hi]`` in cycles over the
        grid (default :func:`default_bands`).
    targets : array_like
        ``(N, C)`` or ``(N,)`` targets; their per-channel mean is removed before
        the DFT (``Y_c``). Required.
    chunk_values : int
        Records are transformed in chunks of about this many values.

    Returns
    -------
    ndarray
        ``(R, n_bands)`` (``(n_bands,)`` for a single residual)
        ``E_b = sum_{w in b, c} |R_c(w)|^2 / sum_{w in b, c} |Y_c(w)|^2``;
        NaN for bands where the target has (numerically) no energy.

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 3 * np.arange(16) / 16)
    >>> band_residual_ratio(np.zeros(16), (16,), [[0, 4]], targets=y).tolist()
    [0.0]
    >>> band_residual_ratio(y - y.mean(), (16,), [[0, 4]], targets=y).tolist()
    [1.0]
    """
    shape = check_grid_shape(grid_shape)
    N = int(np.prod(shape))
    if targets is None:
        raise ValueError("band_residual_ratio needs the targets (N, C) to normalise each band by "
                         "the energy of the mean-removed target")
    Y = np.asarray(targets, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.ndim != 2 or Y.shape[0] != N:
        raise ValueError(f"targets must be (N, C) with N = {N} for grid_shape {shape}, got "
                         f"shape {Y.shape}")
    res = np.asarray(residuals, dtype=np.float64)
    single = res.ndim < 3
    if res.ndim == 1:
        res = res[:, None]
    if res.ndim == 2:
        res = res[None]
    if res.ndim != 3 or res.shape[1:] != Y.shape:
        raise ValueError(f"residuals must be (R, N, C), (N, C) or (N,) matching targets "
                         f"{Y.shape}, got shape {np.shape(residuals)}")
    b = _check_bands(bands, shape)
    f = radial_frequency(shape).ravel()
    masks = np.stack([(f > lo) & (f <= hi) for lo, hi in b]).astype(np.float64)  # (B, N)
    axes = tuple(range(1, 1 + len(shape)))

    def band_energy(x):  # x (k, N, C) -> (k, n_bands)
        k = x.shape[0]
        spec = np.fft.fftn(x.reshape((k,) + shape + (x.shape[2],)), axes=axes)
        power = (spec.real ** 2 + spec.imag ** 2).sum(axis=-1).reshape(k, N)
        return power @ masks.T

    Yc = Y - Y.mean(axis=0)
    ref = band_energy(Yc[None])[0]
    total = N * float((Yc * Yc).sum())  # Parseval: all bins of the target spectrum
    floor = 1e-12 * total if total > 0 else 0.0
    step = max(1, int(chunk_values) // max(1, N * Y.shape[1]))
    out = np.empty((res.shape[0], b.shape[0]))
    for s in range(0, res.shape[0], step):
        out[s:s + step] = band_energy(res[s:s + step])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(ref > floor, out / np.where(ref > floor, ref, 1.0), np.nan)
    return out[0] if single else out


def band_energy_from_run(run, bands=None):
    """Residual energy ratios over a training run.

    Uses the predictions recorded at every recorded epoch when the run kept
    them (``TrainConfig(record_predictions=True)``), else the checkpoints.

    Returns
    -------
    epochs : ndarray
        ``(K,)`` int64 epochs.
    energy : ndarray
        ``(K, n_bands)`` ratios (see :func:`band_residual_ratio`).
    bands : ndarray
        ``(n_bands, 2)`` the bands used.
    """
    sig = run.signal
    b = _check_bands(bands, sig.grid_shape)
    if getattr(run, "predictions", None) is not None:
        epochs = np.asarray(run.record_epochs, dtype=np.int64)
        res = np.asarray(run.predictions, dtype=np.float64) - sig.targets[None]
    else:
        epochs = np.asarray(run.checkpoint_epochs, dtype=np.int64)
        res = np.stack([run.predictions_at(e) - sig.targets for e in epochs])
    return epochs, band_residual_ratio(res, sig.grid_shape, b, targets=sig.targets), b
