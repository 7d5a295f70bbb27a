"""The per-pair NTK blocks ``K_ij = J_i J_j^T`` from the factors of the float64
forward pass, the trace NTK over the samples, and the split of a pair's
gradient similarity into its kernel and residual parts (notation:
:mod:`regions.study.ntk`)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..factors import check_index, check_pairs, forward_factors

__all__ = ["JacobianFactors", "jacobian_factors", "kernel_blocks", "kernel_traces",
           "trace_ntk", "residual_cosines", "kernel_split"]


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
        :func:`regions.study.factors.forward_factors`).
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
    linears, derivs, acts, f = forward_factors(model, inputs)
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
    p = check_pairs(pairs, n)
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
    r = check_index(rows, jf.outputs.shape[0], "rows")
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
    p = check_pairs(pairs, r.shape[0])
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
    p = check_pairs(pairs, y.shape[0])
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
