"""The neural tangent kernel of the study's MLPs, exactly: per pair, over the
samples, split against the residual; its spectrum and the gradient-descent
convergence it predicts; and the first-order prediction of one Adam step with
the optimiser's own (preconditioned) update.

Notation (as in :mod:`regions.study.gram`): ``f_i = f(x_i)`` in ``R^C``, the
residual ``r_i = f_i - y_i``, ``J_i = df_i / dtheta`` the ``(C, P)`` Jacobian
over the Linear layers' parameters, the per-sample loss
``loss_i = |r_i|^2 / C`` (training minimises the mean over samples and
channels) and its gradient ``g_i = (2 / C) J_i^T r_i``. Then

* ``K_ij = J_i J_j^T`` is the ``(C, C)`` NTK block of a pair and
  ``G_ij = g_i . g_j = (4 / C^2) r_i^T K_ij r_j``;
* the kernel similarity ``s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)`` and the
  residual cosine ``cos(r_i, r_j)`` split the gradient cosine: when
  ``K_ij`` is close to ``(tr K_ij / C) I``, ``cos(g_i, g_j) ~ s_ij cos(r_i, r_j)``;
* ``Theta_ij = tr K_ij`` is the trace NTK over the samples (``N x N``).

Everything is computed from the factors of the float64 forward pass
(:func:`regions.study.gram.forward_factors`): with ``delta^c_{l,i} = d f_{i,c} / d z_l``,
``K_ij[c, c'] = sum_l (delta^c_{l,i} . delta^{c'}_{l,j}) (a_{l-1,i} . a_{l-1,j} + 1)``;
nothing materialises a Jacobian. The first-order prediction of an Adam step
uses :func:`torch.func.jvp` through :func:`torch.func.functional_call`.

Gradient descent on the linearised model: full-batch GD with step ``eta`` on
``L = (1 / (N C)) sum_i |r_i|^2`` changes the residuals by
``r <- r - (2 eta / (N C)) K r`` (``K`` the ``NC x NC`` NTK). With one
channel ``K = Theta``, so the component of the residual along the
eigenvector ``u_k`` of ``Theta`` (eigenvalue ``lambda_k``) is multiplied by
``(1 - 2 eta lambda_k / N)`` per step; with ``C`` channels and
``K_ij = (Theta_ij / C) I_C`` (exact for a linear model, an approximation for
an MLP whose size :func:`kernel_split` reports as ``anisotropy``) the factor is
``(1 - 2 eta lambda_k / (N C^2))`` (:func:`gd_step_scale`). The
eigendecomposition is ``O(N^3)`` (:func:`eigen`): 1024 samples take about
0.3 s on one thread, 2048 about 2.5 s, 4096 about 20 s; grids above the
study's limit are analysed on a strided subgrid (:func:`subgrid`).
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from . import gram
from .convergence import band_residual_ratio, radial_frequency
from .grid import check_grid_shape

__all__ = ["JacobianFactors", "jacobian_factors", "kernel_blocks", "kernel_traces",
           "trace_ntk", "residual_cosines", "kernel_split", "subgrid", "eigen",
           "eigenvector_frequencies", "band_gains", "spectrum_summary", "gd_step_scale",
           "gd_spectral_prediction", "gd_band_check", "adam_step_split", "PAIR_CLASSES",
           "ROUNDING_FLOOR"]

#: Eigenvalues below this fraction of the largest are at the rounding level of
#: a float64 eigendecomposition (about ``S * 1e-16``): :func:`spectrum_summary`
#: leaves them out of the decay fit and the frequency order.
ROUNDING_FLOOR = 1e-10

#: Where sample ``j`` lies relative to sample ``i`` (:func:`adam_step_split`).
PAIR_CLASSES = ("self", "same_region", "neighbour_region", "far")


class JacobianFactors(NamedTuple):
    """Factors of the output Jacobians of every sample.

    Attributes
    ----------
    deltas : list of ndarray
        ``deltas[l]`` is ``(N, C, n_l)`` float64, ``d f_{i,c} / d z_l`` for the
        l-th Linear layer (the last one is the identity ``(N, C, C)``).
    activations : list of ndarray
        ``activations[l]`` is ``(N, n_{l-1})`` float64, the l-th Linear layer's input.
    outputs : ndarray
        ``(N, C)`` float64 network outputs.
    """

    deltas: list
    activations: list
    outputs: np.ndarray


def jacobian_factors(model, inputs) -> JacobianFactors:
    """The factors of every sample's output Jacobian ``J_i`` (float64).

    Parameters
    ----------
    model : torch.nn.Sequential
        ``[encoding,] Linear, ReLU|LeakyReLU, ..., Linear`` (see
        :func:`regions.study.gram.forward_factors`).
    inputs : array_like
        ``(N, d)`` coordinates as fed to the model.

    Returns
    -------
    JacobianFactors

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    >>> jf = jacobian_factors(m, np.zeros((5, 2)))
    >>> [d.shape for d in jf.deltas], jf.outputs.shape
    ([(5, 3, 4), (5, 3, 3)], (5, 3))
    """
    linears, derivs, acts, f = gram.forward_factors(model, inputs)
    n, c = f.shape
    with torch.no_grad():
        delta = torch.eye(c, dtype=torch.float64).expand(n, c, c)
        deltas = [None] * len(linears)
        deltas[-1] = delta
        for l in range(len(linears) - 2, -1, -1):
            delta = (delta @ linears[l + 1].weight) * derivs[l][:, None, :]
            deltas[l] = delta
    return JacobianFactors([d.contiguous().numpy() for d in deltas], [a.numpy() for a in acts],
                           f.numpy())


def _check_factors(jf):
    if not isinstance(jf, JacobianFactors):
        raise ValueError(f"expected the JacobianFactors of jacobian_factors(model, inputs), got "
                         f"{type(jf).__name__}")
    return jf


def kernel_blocks(jf, pairs, chunk=8192) -> np.ndarray:
    """The NTK blocks ``K_ij = J_i J_j^T`` of a list of pairs.

    Parameters
    ----------
    jf : JacobianFactors
    pairs : array_like
        ``(P, 2)`` int sample indices.
    chunk : int
        Pairs processed at once.

    Returns
    -------
    ndarray
        ``(P, C, C)`` float64; ``K[p, c, c'] = d f_{i,c}/dtheta . d f_{j,c'}/dtheta``.
    """
    jf = _check_factors(jf)
    n, c = jf.outputs.shape
    p = gram._check_pairs(pairs, n)
    out = np.zeros((p.shape[0], c, c))
    for s in range(0, p.shape[0], int(chunk)):
        i, j = p[s:s + chunk, 0], p[s:s + chunk, 1]
        for d, a in zip(jf.deltas, jf.activations):
            dot = np.einsum("pk,pk->p", a[i], a[j]) + 1.0
            out[s:s + chunk] += np.einsum("pck,pdk->pcd", d[i], d[j]) * dot[:, None, None]
    return out


def kernel_traces(jf) -> np.ndarray:
    """``(N,)`` float64 ``tr K_ii = |J_i|_F^2``, the diagonal of the trace NTK."""
    jf = _check_factors(jf)
    return sum(np.einsum("nck,nck->n", d, d) * (np.einsum("nk,nk->n", a, a) + 1.0)
               for d, a in zip(jf.deltas, jf.activations))


def trace_ntk(jf, rows=None) -> np.ndarray:
    """The trace NTK ``Theta_ij = tr K_ij`` over a set of samples.

    Parameters
    ----------
    jf : JacobianFactors
    rows : array_like of int, optional
        The samples (default: all).

    Returns
    -------
    ndarray
        ``(S, S)`` float64, symmetric positive semi-definite.
    """
    jf = _check_factors(jf)
    r = gram._index(rows, jf.outputs.shape[0], "rows")
    theta = torch.zeros((r.size, r.size), dtype=torch.float64)
    for d, a in zip(jf.deltas, jf.activations):     # torch matmuls: torch's threads (see eigen)
        ar = torch.from_numpy(a[r])
        dd = torch.from_numpy(d[r])
        theta += sum(dd[:, ch] @ dd[:, ch].T for ch in range(dd.shape[1])) * (ar @ ar.T + 1.0)
    theta = theta.numpy()
    return 0.5 * (theta + theta.T)


def residual_cosines(residuals, pairs) -> np.ndarray:
    """``cos(r_i, r_j)`` for pairs of ``(N, C)`` residual rows (one channel:
    the sign agreement ``+-1``); NaN where a residual is zero."""
    r = np.asarray(residuals, dtype=np.float64)
    r = r[:, None] if r.ndim == 1 else r
    p = gram._check_pairs(pairs, r.shape[0])
    num = np.einsum("pc,pc->p", r[p[:, 0]], r[p[:, 1]])
    norm = np.linalg.norm(r, axis=1)
    den = norm[p[:, 0]] * norm[p[:, 1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan), -1.0, 1.0)


def kernel_split(jf, targets, pairs) -> dict:
    """Pair quantities split into the kernel part and the residual part.

    Parameters
    ----------
    jf : JacobianFactors
    targets : array_like
        ``(N, C)`` (or ``(N,)``) targets; ``r = jf.outputs - targets``.
    pairs : array_like
        ``(P, 2)`` int sample indices.

    Returns
    -------
    dict of ndarray, each ``(P,)`` float64
        ``'kernel'``: ``s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)`` (NaN where a
        Jacobian is zero); ``'residual'``: ``cos(r_i, r_j)``; ``'product'``:
        their product; ``'gram'``: ``G_ij = (4 / C^2) r_i^T K_ij r_j``;
        ``'anisotropy'``: ``|K_ij - (tr K_ij / C) I|_F / |K_ij|_F`` (0 when the
        block is a multiple of the identity, always for ``C = 1``).
    """
    jf = _check_factors(jf)
    y = np.asarray(targets, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if y.shape != jf.outputs.shape:
        raise ValueError(f"targets must have the outputs' shape {jf.outputs.shape}, got {y.shape}")
    r = jf.outputs - y
    p = gram._check_pairs(pairs, y.shape[0])
    K = kernel_blocks(jf, p)
    c = y.shape[1]
    tr = np.trace(K, axis1=1, axis2=2)
    diag = kernel_traces(jf)
    den = np.sqrt(diag[p[:, 0]] * diag[p[:, 1]])
    iso = K - (tr / c)[:, None, None] * np.eye(c)[None]
    frob = np.linalg.norm(K, axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(den > 0, tr / np.where(den > 0, den, 1.0), np.nan)
        aniso = np.where(frob > 0, np.linalg.norm(iso, axis=(1, 2)) / np.where(frob > 0, frob, 1),
                         np.nan)
    rc = residual_cosines(r, p)
    G = (4.0 / c ** 2) * np.einsum("pc,pcd,pd->p", r[p[:, 0]], K, r[p[:, 1]])
    return {"kernel": np.clip(s, -1.0, 1.0), "residual": rc, "product": np.clip(s, -1, 1) * rc,
            "gram": G, "anisotropy": aniso}


# --------------------------------------------------------------------------- spectrum
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
        As in :func:`regions.study.convergence.band_residual_ratio`.
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


# --------------------------------------------------------------------------- Adam
def _layered(linears, tensors):
    """Per-Linear ``(n_out, n_in + 1)`` float64 arrays ``[W | b]`` from a
    ``{parameter: tensor}`` lookup."""
    return [np.concatenate([tensors[lin.weight].detach().double().numpy(),
                            tensors[lin.bias].detach().double().numpy()[:, None]], axis=1)
            for lin in linears]


def _flat_cos(a, b):
    x = np.concatenate([m.ravel() for m in a])
    y = np.concatenate([m.ravel() for m in b])
    d = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / d) if d > 0 else float("nan")


def _groups(region_id, adjacency, n):
    rid = np.asarray(region_id)
    if rid.shape != (n,) or not np.issubdtype(rid.dtype, np.integer) or (n and rid.min() < 0):
        raise ValueError(f"region_id must be an (N,) = ({n},) non-negative integer array, got "
                         f"shape {rid.shape} dtype {rid.dtype}")
    R = int(rid.max()) + 1 if n else 0
    if adjacency is None:
        adj = sp.csr_matrix((R, R), dtype=np.int8)
    else:
        adj = sp.csr_matrix(adjacency)
        if adj.shape[0] != adj.shape[1] or adj.shape[0] < R:
            raise ValueError(f"region_adjacency must be square (R, R) with R >= max(region_id)+1 "
                             f"= {R}, got shape {adj.shape}")
        adj = (adj != 0).astype(np.int8).tolil()
        adj.setdiag(0)
        adj = adj.tocsr()
        adj.eliminate_zeros()
    return rid.astype(np.int64), adj


def _members(rid, R):
    """Samples of every region: ``order`` (sorted by region) and ``start`` offsets."""
    order = np.argsort(rid, kind="stable")
    start = np.searchsorted(rid[order], np.arange(R + 1))
    return order, start


def _class_sums(fac, metric, rid, adj, batch, coef):
    """Exact per-row sums of ``coef * g_i^T diag(metric) g_j`` over the batch
    samples ``j`` in each pair class, streamed region by region."""
    n = rid.size
    R = adj.shape[0]
    order, start = _members(rid, R)
    border, bstart = _members(rid[batch], R)
    bsorted = batch[border]

    def direction(js):
        return [coef * m * g for m, g in zip(metric, gram.gradient_sum(fac, js))]

    out = {k: np.zeros(n) for k in PAIR_CLASSES}
    out["total"] = gram.gradient_dot(fac, direction(batch))
    selfpairs = np.stack([batch, batch], axis=1)
    out["self"][batch] = coef * gram.gram_pairs(None, None, None, selfpairs, factors=fac,
                                                metric=metric)
    for r in np.flatnonzero(np.diff(start)):
        rows = order[start[r]:start[r + 1]]
        same = bsorted[bstart[r]:bstart[r + 1]]
        if same.size:
            out["same_region"][rows] = gram.gradient_dot(fac, direction(same), rows)
        nb = adj.indices[adj.indptr[r]:adj.indptr[r + 1]]
        near = np.concatenate([bsorted[bstart[q]:bstart[q + 1]] for q in nb]) if nb.size \
            else np.zeros(0, np.int64)
        if near.size:
            out["neighbour_region"][rows] = gram.gradient_dot(fac, direction(near), rows)
    out["same_region"] -= out["self"]
    in_batch = np.zeros(n, bool)
    in_batch[batch] = True
    alone = (np.diff(bstart)[rid] - in_batch) == 0     # no other batch sample in i's region
    out["same_region"][alone] = 0.0                     # not a rounding residue of the subtraction
    out["far"] = out["total"] - out["self"] - out["same_region"] - out["neighbour_region"]
    return out


def _class_pairs(rid, adj, batch, n_pairs, rng):
    """Exact pair counts per class over ``(i in all, j in batch)`` and up to
    ``n_pairs`` pairs per class drawn uniformly (with replacement)."""
    n, R = rid.size, adj.shape[0]
    order, start = _members(rid, R)
    size = np.diff(start)
    rb = rid[batch]
    w_same = size[rb] - 1
    nbr_size = adj @ size                               # samples in the neighbour regions
    w_nbr = nbr_size[rb]
    counts = {"self": int(batch.size), "same_region": int(w_same.sum()),
              "neighbour_region": int(w_nbr.sum())}
    counts["far"] = int(n * batch.size - sum(counts.values()))
    pairs = {"self": np.stack([batch, batch], 1)[rng.integers(0, batch.size, n_pairs)]
             if batch.size else np.zeros((0, 2), np.int64)}
    for name, w in (("same_region", w_same), ("neighbour_region", w_nbr)):
        if w.sum() == 0:
            pairs[name] = np.zeros((0, 2), np.int64)
            continue
        js = rng.choice(batch.size, size=n_pairs, p=w / w.sum())
        out = np.empty((n_pairs, 2), np.int64)
        for t, jb in enumerate(js):
            j, r = batch[jb], rb[jb]
            if name == "same_region":
                cand = order[start[r]:start[r + 1]]
                cand = cand[cand != j]
            else:
                nb = adj.indices[adj.indptr[r]:adj.indptr[r + 1]]
                cand = np.concatenate([order[start[q]:start[q + 1]] for q in nb])
            out[t] = (cand[rng.integers(0, cand.size)], j)
        pairs[name] = out
    far = []
    got = 0
    for _ in range(50):
        if got >= n_pairs or counts["far"] == 0:
            break
        i = rng.integers(0, n, 4 * n_pairs)
        j = batch[rng.integers(0, batch.size, 4 * n_pairs)]
        ri, rj = rid[i], rid[j]
        keep = (ri != rj) & (np.asarray(adj[ri, rj]).ravel() == 0)
        far.append(np.stack([i[keep], j[keep]], 1))
        got += int(keep.sum())
    pairs["far"] = np.concatenate(far)[:n_pairs] if far else np.zeros((0, 2), np.int64)
    return counts, pairs


def adam_step_split(model, inputs, targets, batches, groups, lr, betas=(0.9, 0.999), eps=1e-8,
                    n_pairs=4096, seed=0) -> dict:
    """First-order prediction of one Adam step with Adam's own update, split
    by where the batch samples lie.

    A float64 copy of the model is trained by ``torch.optim.Adam`` on
    ``batches[:-1]`` (rebuilding the optimiser state: the study's checkpoints
    hold none), then takes the probed step on ``batches[-1]``. With the state
    after that step (``t`` steps, ``m_{t-1}``, ``v_t``), torch's update is
    exactly::

        dtheta = -(lr / (1 - b1^t)) D * (b1 m_{t-1} + (1 - b1) mean_{j in B} g_j),
        D = 1 / (sqrt(v_t / (1 - b2^t)) + eps)

    so the predicted change of every sample's loss, ``g_i . dtheta``, is a
    momentum term plus a sum over the batch samples ``j`` of
    ``c g_i^T D g_j`` (``c = -lr (1 - b1) / ((1 - b1^t) |B|)``), split here by
    the class of the pair ``(i, j)``: ``self``, ``same_region``,
    ``neighbour_region`` (adjacent regions), ``far``.

    Parameters
    ----------
    model : torch.nn.Sequential
        The checkpoint (not modified); trainable parameters only in its
        Linear layers.
    inputs, targets : array_like
        ``(N, d)`` coordinates and ``(N, C)`` targets.
    batches : sequence of array_like of int
        Warm-up batches, then the probed batch ``B`` (sample indices).
    groups : tuple
        ``(region_id (N,), region_adjacency (R, R) sparse or None)`` as in
        :func:`regions.study.gram.predicted_loss_change`.
    lr, betas, eps
        Adam's settings (torch's defaults besides ``lr``).
    n_pairs : int
        Pairs drawn per class for the mean absolute per-pair values.
    seed : int
        Seeds that draw.

    Returns
    -------
    dict
        ``predicted`` ``(N,)`` ``g_i . dtheta`` (by :func:`torch.func.jvp`),
        ``actual`` ``(N,)`` the measured loss change of the step (float64),
        ``terms`` ``{momentum, self, same_region, neighbour_region, far}`` of
        ``(N,)`` arrays summing to the prediction, ``decomposition_error``
        (max deviation of that sum from ``predicted``, relative to
        ``max |predicted|``), ``update_error`` (the same for the update formula
        above against the actual parameter change), ``pair_count``,
        ``mean_abs_pair`` (mean ``|c g_i^T D g_j|`` per class: one pair's
        contribution), ``mean_abs_gram`` (mean plain ``|G_ij|`` per class),
        ``cos_batch_gradient`` and ``cos_full_gradient`` (cosine of
        ``dtheta`` with the negative batch and full-batch gradients), ``step``
        (``t``), ``batch_size``.
    """
    from torch.func import functional_call, jvp

    x, y = gram._check_inputs(inputs, targets)
    n = x.shape[0]
    batches = [gram._index(b, n, "batches[k]") for b in batches]
    if not batches or any(b.size == 0 for b in batches):
        raise ValueError("batches must be a non-empty list of non-empty index arrays (warm-up "
                         "batches, then the probed batch)")
    if np.unique(batches[-1]).size != batches[-1].size:
        raise ValueError("the probed batch (batches[-1]) must not repeat a sample")
    if not (np.isscalar(lr) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    b1, b2 = (float(b) for b in betas)
    try:
        region_id, adjacency = groups
    except (TypeError, ValueError):
        raise ValueError("groups must be a pair (region_id (N,) int, region_adjacency (R, R) "
                         "sparse bool or None)") from None
    rid, adj = _groups(region_id, adjacency, n)
    m64 = copy.deepcopy(gram._as_sequential(model)).double()
    linears = [m for m in m64 if isinstance(m, torch.nn.Linear)]
    params = [p for p in m64.parameters() if p.requires_grad]
    lin_params = {id(p) for lin in linears for p in (lin.weight, lin.bias)}
    if {id(p) for p in params} != lin_params:
        raise ValueError("adam_step_split needs every trainable parameter in the Linear layers "
                         "(with biases); the encoding must have none")
    X = torch.as_tensor(x)
    Y = torch.as_tensor(y)
    opt = torch.optim.Adam(params, lr=float(lr), betas=(b1, b2), eps=float(eps))

    def step(idx):
        opt.zero_grad(set_to_none=True)
        ((m64(X[idx]) - Y[idx]) ** 2).mean().backward()
        opt.step()

    for b in batches[:-1]:
        step(torch.as_tensor(b))
    probe = batches[-1]
    names = {id(p): k for k, p in m64.named_parameters()}
    before = {p: p.detach().clone() for p in params}
    m_prev = {p: opt.state[p]["exp_avg"].clone() if p in opt.state else torch.zeros_like(p)
              for p in params}
    fac = gram.backprop_factors(m64, x, y)
    with torch.no_grad():
        loss_before = ((m64(X) - Y) ** 2).mean(1)
    step(torch.as_tensor(probe))
    with torch.no_grad():
        loss_after = ((m64(X) - Y) ** 2).mean(1)
    dtheta = {p: (p.detach() - before[p]) for p in params}
    t = int(opt.state[params[0]]["step"])
    v = {p: opt.state[p]["exp_avg_sq"] for p in params}

    def losses(flat):
        out = functional_call(m64, {names[id(p)]: q for p, q in zip(params, flat)}, (X,))
        return ((out - Y) ** 2).mean(1)

    predicted = jvp(losses, (tuple(before[p] for p in params),),
                    (tuple(dtheta[p] for p in params),))[1].detach().numpy()

    bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
    D = [1.0 / (np.sqrt(vl / bc2) + eps) for vl in _layered(linears, v)]
    coef = -float(lr) * (1.0 - b1) / (bc1 * probe.size)
    mom = [-float(lr) * b1 / bc1 * d * m for d, m in zip(D, _layered(linears, m_prev))]
    batch_grad = [g / probe.size for g in gram.gradient_sum(fac, probe)]
    update = [mo + coef * probe.size * d * g for mo, d, g in zip(mom, D, batch_grad)]
    actual_update = _layered(linears, dtheta)
    terms = {"momentum": gram.gradient_dot(fac, mom)}
    sums = _class_sums(fac, D, rid, adj, probe, coef)
    terms.update({k: sums[k] for k in PAIR_CLASSES})
    scale = max(float(np.abs(predicted).max()), np.finfo(float).tiny)
    upd_scale = max(max(float(np.abs(u).max()) for u in actual_update), np.finfo(float).tiny)
    counts, pairs = _class_pairs(rid, adj, probe, int(n_pairs), np.random.default_rng(seed))
    mean_pair, mean_gram = {}, {}
    for k in PAIR_CLASSES:
        p = pairs[k]
        if p.shape[0] == 0:
            mean_pair[k] = mean_gram[k] = None
            continue
        gd = gram.gram_pairs(None, None, None, p, factors=fac, metric=D)
        mean_pair[k] = float(np.mean(np.abs(coef * gd)))
        mean_gram[k] = float(np.mean(np.abs(gram.gram_pairs(None, None, None, p, factors=fac))))
    full_grad = [g / n for g in gram.gradient_sum(fac, np.arange(n))]
    return {
        "predicted": predicted,
        "actual": (loss_after - loss_before).numpy(),
        "terms": terms,
        "decomposition_error": float(np.abs(sum(terms.values()) - predicted).max() / scale),
        "update_error": float(max(np.abs(u - a).max() for u, a in zip(update, actual_update))
                              / upd_scale),
        "pair_count": counts, "mean_abs_pair": mean_pair, "mean_abs_gram": mean_gram,
        "cos_batch_gradient": _flat_cos(actual_update, [-g for g in batch_grad]),
        "cos_full_gradient": _flat_cos(actual_update, [-g for g in full_grad]),
        "step": t, "batch_size": int(probe.size),
    }
