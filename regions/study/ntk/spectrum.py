"""The trace NTK's spectrum over a sample grid (on a strided subgrid when the
grid is large), the frequencies of its eigenvectors, per-band gains, and the
residual's convergence that full-batch gradient descent on the linearised
model predicts from it (notation: :mod:`regions.study.ntk`)."""
from __future__ import annotations

import numpy as np
import torch

from ..bands import band_residual_ratio, radial_frequency
from ..grid import check_grid_shape

__all__ = ["subgrid", "eigen", "eigenvector_frequencies", "band_gains", "spectrum_summary",
           "gd_step_scale", "gd_spectral_prediction", "gd_band_check", "ROUNDING_FLOOR"]

#: Eigenvalues below this fraction of the largest are at the rounding level of
#: a float64 eigendecomposition (about ``S * 1e-16``): :func:`spectrum_summary`
#: leaves them out of the decay fit and the frequency order.
ROUNDING_FLOOR = 1e-10


def subgrid(grid_shape, max_samples):
    """A strided subgrid of at most ``max_samples`` samples for the kernel's
    eigendecomposition.

    Every ``s``-th sample along each axis, with the smallest stride ``s``
    that fits (``s = 1``: the whole grid).

    Returns
    -------
    rows : ndarray
        ``(S,)`` int64 flat indices, row-major like the grid.
    shape : tuple
        The subgrid's shape.
    stride : int

    Examples
    --------
    >>> rows, shape, stride = subgrid((64, 64), 1024)
    >>> rows.size, shape, stride, rows[:3].tolist(), int(rows[32])
    (1024, (32, 32), 2, [0, 2, 4], 128)
    >>> subgrid((100,), 1000)[1:]
    ((100,), 1)
    """
    shape = check_grid_shape(grid_shape)
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) \
            or max_samples < 1:
        raise ValueError(f"max_samples must be a positive integer, got {max_samples!r}")
    stride = 1
    while int(np.prod([-(-n // stride) for n in shape])) > max_samples:
        stride += 1
    axes = [np.arange(0, n, stride) for n in shape]
    if len(shape) == 1:
        rows = axes[0]
    else:
        rows = (axes[0][:, None] * shape[1] + axes[1][None, :]).ravel()
    return rows.astype(np.int64), tuple(a.size for a in axes), stride


def eigen(theta):
    """Eigenvalues (descending) and orthonormal eigenvectors (columns) of a
    symmetric kernel matrix, float64.

    Uses ``torch.linalg.eigh``, which runs on torch's threads (the study's
    jobs set one per worker): numpy's LAPACK takes every core of the machine,
    and two workers doing so run 10-30x slower than one thread each (1024
    samples: 0.3 s on one thread, 8 s oversubscribed).
    """
    t = np.asarray(theta, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or not np.all(np.isfinite(t)):
        raise ValueError(f"theta must be a finite square matrix, got shape {t.shape}")
    lam, U = torch.linalg.eigh(torch.from_numpy(t))
    return lam.numpy()[::-1].copy(), U.numpy()[:, ::-1].copy()


def eigenvector_frequencies(U, shape) -> np.ndarray:
    """Mean radial frequency (cycles over the grid) of each column of ``U``
    laid out on the grid ``shape``: ``sum_w f_w |U_hat(w)|^2 / sum_w |U_hat(w)|^2``."""
    shape = check_grid_shape(shape)
    U = np.asarray(U, dtype=np.float64)
    S = int(np.prod(shape))
    if U.ndim != 2 or U.shape[0] != S:
        raise ValueError(f"U must be (S, k) with S = {S} rows for shape {shape}, got {U.shape}")
    spec = np.fft.fftn(U.reshape(shape + (U.shape[1],)), axes=tuple(range(len(shape))))
    power = (spec.real ** 2 + spec.imag ** 2).reshape(S, -1)
    f = radial_frequency(shape).ravel()
    tot = power.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, f @ power / np.where(tot > 0, tot, 1.0), np.nan)


def band_gains(theta, shape, bands) -> np.ndarray:
    """Mean Rayleigh quotient ``phi_w^H Theta phi_w`` of the kernel over the
    unit Fourier vectors ``phi_w`` of each frequency band ``(lo, hi]``.

    For a translation-invariant kernel these are its eigenvalues; in general
    the average gain the kernel applies to the band under gradient descent.

    Returns
    -------
    ndarray
        ``(B,)`` float64 in the kernel's units; NaN for a band with no DFT bin
        on this grid.
    """
    shape = check_grid_shape(shape)
    t = np.asarray(theta, dtype=np.float64)
    S = int(np.prod(shape))
    if t.shape != (S, S):
        raise ValueError(f"theta must be ({S}, {S}) for shape {shape}, got {t.shape}")
    axes = tuple(range(1, 1 + len(shape)))
    A = np.fft.fftn(t.reshape((S,) + shape), axes=axes).reshape(S, S)        # A[i, w]
    B = np.fft.ifftn(A.reshape(shape + (S,)), axes=tuple(range(len(shape)))).reshape(S, S)
    rayleigh = np.real(np.diagonal(B))                                        # phi_w^H T phi_w
    f = radial_frequency(shape).ravel()
    out = np.full(len(bands), np.nan)
    for k, (lo, hi) in enumerate(np.asarray(bands, dtype=np.float64)):
        m = (f > lo) & (f <= hi)
        if m.any():
            out[k] = float(rayleigh[m].mean())
    return out


def spectrum_summary(lam, U, residual, shape, top=10) -> dict:
    """Scalar descriptions of a kernel's spectrum and of the residual in it.

    Parameters
    ----------
    lam, U
        :func:`eigen` of the trace NTK over the samples of ``shape``.
    residual : array_like
        ``(S, C)`` residuals on those samples.
    shape : tuple
        Grid shape of the samples.
    top : int
        Eigenvectors counted as the top of the spectrum.

    Returns
    -------
    dict
        ``effective_rank`` ``(sum lam)^2 / sum lam^2``; ``rank_90`` the
        eigenvalues holding 90% of the trace; ``decay_exponent`` ``alpha`` of
        a least-squares fit ``lam_k ~ k^-alpha`` over ``k = 1..S/4`` (only
        eigenvalues above ``ROUNDING_FLOOR * lam_1``: below it they and their
        eigenvectors are rounding noise);
        ``top_share`` share of the trace in the ``top`` eigenvalues;
        ``top_frequency`` mean of the ``top`` eigenvectors' mean frequencies
        (resolved ones only);
        ``frequency_order`` Spearman of eigenvalue rank against the
        eigenvector's frequency over the same resolved eigenvalues (+1: the
        kernel learns strictly low to high);
        ``residual_top_share`` share of the residual energy on the top 10%
        of the eigenvectors; ``residual_alignment``
        ``(r^T Theta r / |r|^2) / (tr Theta / S)`` (1: the residual meets the
        kernel like a random vector; < 1: it sits in the slow tail);
        ``frequencies`` and ``energy`` the ``(S,)`` arrays behind them.
    """
    from scipy import stats

    lam = np.asarray(lam, dtype=np.float64)
    r = np.asarray(residual, dtype=np.float64)
    r = r[:, None] if r.ndim == 1 else r
    S = lam.size
    pos = np.clip(lam, 0.0, None)
    total = pos.sum()
    freqs = eigenvector_frequencies(U, shape)
    energy = ((U.T @ r) ** 2).sum(1)
    k = np.arange(1, S + 1)
    resolved = lam > ROUNDING_FLOOR * lam[0] if S and lam[0] > 0 else np.zeros(S, bool)
    fit = (k <= max(2, S // 4)) & resolved
    alpha = (-float(np.polyfit(np.log(k[fit]), np.log(lam[fit]), 1)[0])
             if fit.sum() >= 2 else float("nan"))
    top = int(min(top, S))
    n10 = max(1, S // 10)
    rr = float((r * r).sum())
    ok = np.isfinite(freqs) & resolved
    return {
        "effective_rank": float(total ** 2 / (pos ** 2).sum()) if total > 0 else float("nan"),
        "rank_90": int(np.searchsorted(np.cumsum(pos), 0.9 * total) + 1) if total > 0 else 0,
        "decay_exponent": alpha,
        "top_share": float(pos[:top].sum() / total) if total > 0 else float("nan"),
        "top_frequency": (float(np.nanmean(freqs[:top][resolved[:top]]))
                          if resolved[:top].any() else float("nan")),
        "frequency_order": (float(stats.spearmanr(k[ok], freqs[ok]).statistic)
                            if ok.sum() >= 3 else float("nan")),
        "residual_top_share": float(energy[:n10].sum() / rr) if rr > 0 else float("nan"),
        "residual_alignment": (float((lam @ energy / rr) / (lam.sum() / S))
                               if rr > 0 and lam.sum() > 0 else float("nan")),
        "frequencies": freqs, "energy": energy,
    }


def gd_step_scale(lr, n, channels) -> float:
    """Per-step factor ``2 eta / (N C^2)``: under full-batch GD with step ``eta``
    on the mean (over samples and channels) squared error, the residual
    component along an eigenvector of the trace NTK with eigenvalue ``lambda``
    is multiplied by ``1 - gd_step_scale * lambda`` each step (exact for
    ``C = 1`` on the linearised model; for ``C > 1`` when ``K_ij = Theta_ij / C I``).

    Examples
    --------
    >>> gd_step_scale(0.5, 100, 1)
    0.01
    """
    for name, v in (("lr", lr), ("n", n), ("channels", channels)):
        if not (np.isscalar(v) and np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return 2.0 * float(lr) / (float(n) * float(channels) ** 2)


def gd_spectral_prediction(lam, U, residual, lr, steps, channels) -> dict:
    """The residual after ``steps`` full-batch GD steps, predicted by the
    frozen trace NTK over all ``N`` samples (see :func:`gd_step_scale`).

    Parameters
    ----------
    lam, U
        :func:`eigen` of the trace NTK over *all* training samples.
    residual : array_like
        ``(N, C)`` residual at the start.
    lr : float
        The GD step.
    steps : int
        Number of steps.
    channels : int
        ``C`` (the residual's columns).

    Returns
    -------
    dict
        ``'residual'`` ``(N, C)`` predicted residual; ``'energy'`` ``(N,)``
        predicted residual energy along each eigenvector
        (``(1 - scale lam_k)^(2 steps)`` times the initial one); ``'scale'``;
        ``'sharpness'`` ``scale * lam_max`` (above 2 the linearised GD
        diverges along the top eigenvector, and so does the prediction:
        values may overflow to inf).
    """
    r = np.asarray(residual, dtype=np.float64)
    r = r[:, None] if r.ndim == 1 else r
    if r.shape[0] != np.asarray(U).shape[0] or r.shape[1] != int(channels):
        raise ValueError(f"residual must be (N, C) = ({np.asarray(U).shape[0]}, {channels}), "
                         f"got {r.shape}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    lam = np.asarray(lam, dtype=np.float64)
    scale = gd_step_scale(lr, r.shape[0], channels)
    with np.errstate(over="ignore", invalid="ignore"):
        factor = (1.0 - scale * lam) ** int(steps)
        proj = U.T @ r
        return {"residual": U @ (factor[:, None] * proj),
                "energy": factor ** 2 * (proj ** 2).sum(1), "scale": scale,
                "sharpness": float(scale * lam.max())}


def gd_band_check(lam, U, start, later, steps, grid_shape, bands, lr, targets) -> dict:
    """The spectral GD prediction against measured residuals at later steps.

    Parameters
    ----------
    lam, U
        :func:`eigen` of the trace NTK over all samples at the start.
    start : array_like
        ``(N, C)`` residual at the start.
    later : array_like
        ``(H, N, C)`` measured residuals after ``steps[h]`` GD steps.
    steps : array_like of int
        ``(H,)`` steps after the start.
    grid_shape, bands, targets
        As in :func:`regions.study.bands.band_residual_ratio`.
    lr : float
        The GD step.

    Returns
    -------
    dict
        ``predicted_band`` and ``measured_band`` ``(H, B)`` residual energy
        ratios of the predicted and the measured residuals;
        ``prediction_error`` ``(H,)`` ``|r_pred - r| / |r_start - r|`` (0:
        exact; 1: no better than predicting no change); ``predicted_energy``
        and ``measured_energy`` ``(N,)`` per eigenvector after the last
        step; ``scale`` and ``sharpness`` (:func:`gd_spectral_prediction`).
    """
    y = np.asarray(targets, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    r0 = np.asarray(start, dtype=np.float64).reshape(y.shape)
    R = np.asarray(later, dtype=np.float64)
    steps = [int(t) for t in np.atleast_1d(steps)]
    if R.shape != (len(steps),) + y.shape:
        raise ValueError(f"later must be (H, N, C) = ({len(steps)}, {y.shape[0]}, {y.shape[1]}) "
                         f"for {len(steps)} steps, got {R.shape}")
    preds = [gd_spectral_prediction(lam, U, r0, lr, t, y.shape[1]) for t in steps]
    P = np.stack([p["residual"] for p in preds])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        change = np.linalg.norm((R - r0).reshape(len(steps), -1), axis=1)
        miss = np.linalg.norm((P - R).reshape(len(steps), -1), axis=1)
        error = np.where(change > 0, miss / np.where(change > 0, change, 1.0), np.nan)
        predicted_band = band_residual_ratio(P, grid_shape, bands, targets=y)
    return {"predicted_band": predicted_band,
            "measured_band": band_residual_ratio(R, grid_shape, bands, targets=y),
            "prediction_error": error, "predicted_energy": preds[-1]["energy"],
            "measured_energy": ((U.T @ R[-1]) ** 2).sum(1), "scale": preds[-1]["scale"],
            "sharpness": preds[-1]["sharpness"]}
