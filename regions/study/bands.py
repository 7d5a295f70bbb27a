"""Per-frequency residual energy: the paper's spectral-bias measure.

* :func:`band_residual_ratio` -- the residual energy ratio per frequency band
  ``E_b(t) = sum_{w in b} |R(w, t)|^2 / sum_{w in b} |Y_c(w)|^2`` with ``R``
  the DFT of the residual and ``Y_c`` the DFT of the mean-removed target (1D:
  bins by frequency index; 2D: radial bands of the 2D DFT; summed over
  channels);
* :func:`band_energy_from_run` -- that ratio over a trained run's record;
* :func:`radial_frequency`, :func:`default_bands`, :func:`bands_around` -- the
  frequency of each DFT bin and the bands.

Inputs are the training record of :func:`regions.study.training.train`
(residuals at the recorded epochs) on the grid of its signal.
"""
from __future__ import annotations

import numpy as np

from .grid import check_grid_shape

__all__ = ["band_residual_ratio", "band_energy_from_run", "radial_frequency", "default_bands",
           "bands_around"]


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
