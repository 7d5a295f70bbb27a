"""Exact per-sample gradient Gram matrix, gradient confusion and the
predicted first-order loss change, from back-propagation factors
(:mod:`regions.study.factors`).

With the per-sample gradient of ``loss_i`` with respect to ``(W_l, b_l)``
equal to ``(delta_{l,i} a_{l-1,i}^T, delta_{l,i})``, the Gram matrix of the
per-sample parameter gradients factorises::

    G_ij = sum_l (delta_{l,i} . delta_{l,j}) (a_{l-1,i} . a_{l-1,j} + 1)

Nothing here materialises per-sample gradients: blocks of ``G`` cost
``O(B N sum_l n_l)`` time and ``O(B N)`` memory.

All computations are in float64 on a float64 copy of the model. The Gram
covers the parameters of the ``Linear`` layers (trainable parameters of an
encoding module, if any, are not included; a warning says so).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .factors import as_array, check_index, check_pairs, factors_of

__all__ = ["gram", "gram_pairs", "gradient_norms", "gradient_sum", "gradient_dot", "confusion",
           "region_groups", "predicted_loss_change"]


def _block(deltas, acts, rows, cols):
    G = None
    for d, a in zip(deltas, acts):
        term = (d[rows] @ d[cols].T) * (a[rows] @ a[cols].T + 1.0)
        G = term if G is None else G + term
    return G


def gram(model, inputs, targets, rows=None, cols=None, factors=None) -> np.ndarray:
    """A block ``G[rows][:, cols]`` of the per-sample gradient Gram matrix.

    Parameters
    ----------
    model, inputs, targets
        As in :func:`backprop_factors`.
    rows, cols : array_like of int or bool mask, optional
        Sample indices (default: all).
    factors : tuple, optional
        Precomputed ``backprop_factors(model, inputs, targets)``; then
        ``model``, ``inputs`` and ``targets`` are ignored.

    Returns
    -------
    ndarray
        ``(len(rows), len(cols))`` float64; ``G_ij = <g_i, g_j>`` with ``g_i``
        the gradient of ``loss_i`` over all Linear parameters.
    """
    deltas, acts = factors_of(model, inputs, targets, factors)
    n = deltas[0].shape[0]
    return _block(deltas, acts, check_index(rows, n, "rows"), check_index(cols, n, "cols"))


def _check_layered(arrays, deltas, acts, name):
    """Per-Linear-layer ``(n_l, n_{l-1} + 1)`` arrays (weight columns, then the
    bias column) as float64, checked against the factors' widths."""
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(deltas):
        raise ValueError(f"{name} must be a list of {len(deltas)} arrays, one per Linear layer, "
                         f"got {type(arrays).__name__} of length "
                         f"{len(arrays) if hasattr(arrays, '__len__') else '?'}")
    out = []
    for l, (m, d, a) in enumerate(zip(arrays, deltas, acts)):
        m = as_array(m, f"{name}[{l}]", (2,))
        want = (d.shape[1], a.shape[1] + 1)
        if m.shape != want:
            raise ValueError(f"{name}[{l}] must have shape (n_out, n_in + 1) = {want} (weight "
                             f"columns, then the bias column), got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError(f"{name}[{l}] must be finite (found NaN or inf)")
        out.append(m)
    return out


def gram_pairs(model, inputs, targets, pairs, factors=None, chunk=16384, metric=None) -> np.ndarray:
    """Gram entries ``G_ij`` for a list of pairs.

    Parameters
    ----------
    model, inputs, targets, factors
        As in :func:`gram`.
    pairs : array_like
        ``(P, 2)`` int sample indices.
    chunk : int
        Pairs processed at once (memory ``O(chunk * width)``).
    metric : list of array_like, optional
        A diagonal preconditioner ``M``: per Linear layer an ``(n_l, n_{l-1} + 1)``
        array (the weight's entries, then the bias as the last column); then
        ``G_ij = g_i^T diag(M) g_j = sum_l (delta_{l,i} * delta_{l,j})^T M_l
        ([a_{l-1,i}, 1] * [a_{l-1,j}, 1])`` (costs ``O(n_l n_{l-1})`` per pair
        and layer). ``None`` is the plain Gram (``M = 1``).

    Returns
    -------
    ndarray
        ``(P,)`` float64.
    """
    deltas, acts = factors_of(model, inputs, targets, factors)
    p = check_pairs(pairs, deltas[0].shape[0])
    out = np.zeros(p.shape[0])
    if metric is not None:
        metric = _check_layered(metric, deltas, acts, "metric")
    for s in range(0, p.shape[0], chunk):
        i, j = p[s:s + chunk, 0], p[s:s + chunk, 1]
        for layer, (d, a) in enumerate(zip(deltas, acts)):
            if metric is None:
                out[s:s + chunk] += (np.einsum("pk,pk->p", d[i], d[j])
                                     * (np.einsum("pk,pk->p", a[i], a[j]) + 1.0))
            else:
                u = d[i] * d[j]
                v = np.concatenate([a[i] * a[j], np.ones((i.size, 1))], axis=1)
                out[s:s + chunk] += np.einsum("pk,pk->p", u @ metric[layer], v)
    return out


def gradient_sum(factors, rows, weights=None) -> list:
    """The summed per-sample gradient ``sum_{j in rows} w_j g_j``, per Linear
    layer as an ``(n_l, n_{l-1} + 1)`` array (weight, then bias column), built
    from the factors without materialising any ``g_j``.

    Parameters
    ----------
    factors : tuple
        ``backprop_factors(model, inputs, targets)``.
    rows : array_like of int or bool mask
        The samples summed.
    weights : array_like, optional
        ``(len(rows),)`` weights ``w_j`` (default 1).

    Returns
    -------
    list of ndarray
    """
    deltas, acts = factors_of(None, None, None, factors)
    r = check_index(rows, deltas[0].shape[0], "rows")
    w = np.ones(r.size) if weights is None else as_array(weights, "weights", (1,))
    if w.shape != (r.size,):
        raise ValueError(f"weights must have shape ({r.size},) like rows, got {w.shape}")
    out = []
    for d, a in zip(deltas, acts):
        dw = d[r] * w[:, None]
        out.append(np.concatenate([dw.T @ a[r], dw.sum(0)[:, None]], axis=1))
    return out


def gradient_dot(factors, direction, rows=None) -> np.ndarray:
    """``g_i . v`` for every sample ``i`` in ``rows`` and a parameter direction ``v``.

    Parameters
    ----------
    factors : tuple
        ``backprop_factors(model, inputs, targets)``.
    direction : list of array_like
        ``v`` per Linear layer, ``(n_l, n_{l-1} + 1)`` (weight, then bias column;
        e.g. from :func:`gradient_sum` or a parameter update).
    rows : array_like of int or bool mask, optional
        Samples (default: all).

    Returns
    -------
    ndarray
        ``(len(rows),)`` float64 ``sum_l delta_{l,i}^T V_l [a_{l-1,i}, 1]``.
    """
    deltas, acts = factors_of(None, None, None, factors)
    r = check_index(rows, deltas[0].shape[0], "rows")
    v = _check_layered(direction, deltas, acts, "direction")
    out = np.zeros(r.size)
    for d, a, m in zip(deltas, acts, v):
        out += np.einsum("pk,pk->p", d[r] @ m[:, :-1], a[r]) + d[r] @ m[:, -1]
    return out


def gradient_norms(model, inputs, targets, factors=None) -> np.ndarray:
    """``(N,)`` norms ``|g_i| = sqrt(G_ii)`` of the per-sample gradients."""
    deltas, acts = factors_of(model, inputs, targets, factors)
    sq = sum((d * d).sum(1) * ((a * a).sum(1) + 1.0) for d, a in zip(deltas, acts))
    return np.sqrt(sq)


def confusion(model, inputs, targets, pairs, factors=None) -> np.ndarray:
    """Gradient confusion: cosines ``c_ij = G_ij / (|g_i| |g_j|)`` for pairs.

    Returns
    -------
    ndarray
        ``(P,)`` float64 in ``[-1, 1]``; NaN where a gradient is zero (a sample
        with zero residual, or all its paths dead).
    """
    factors = factors_of(model, inputs, targets, factors)
    p = check_pairs(pairs, factors[0][0].shape[0])
    g = gram_pairs(None, None, None, p, factors=factors)
    norms = gradient_norms(None, None, None, factors=factors)
    denom = norms[p[:, 0]] * norms[p[:, 1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(denom > 0, g / np.where(denom > 0, denom, 1.0), np.nan)
    return np.clip(c, -1.0, 1.0)


# --------------------------------------------------------------------------- first-order change

def region_groups(groups, n):
    """Validated ``(region_id, region_adjacency)`` of ``n`` samples.

    ``groups`` is the pair ``(region_id (N,) non-negative int, region_adjacency
    (R, R) sparse or dense, or None)``. Returns ``region_id`` as int64 and the
    adjacency as a 0/1 float64 CSR matrix with an empty diagonal (``R`` is its
    size, at least ``max(region_id) + 1``; ``None`` gives no adjacent regions).
    """
    try:
        region_id, adjacency = groups
    except (TypeError, ValueError):
        raise ValueError("groups must be a pair (region_id (N,) int, region_adjacency (R, R) "
                         "sparse bool or None)") from None
    rid = np.asarray(region_id)
    if rid.shape != (n,) or not np.issubdtype(rid.dtype, np.integer):
        raise ValueError(f"region_id must be an (N,) = ({n},) integer array, got shape "
                         f"{rid.shape} dtype {rid.dtype}")
    if n and rid.min() < 0:
        raise ValueError("region_id has negative entries (samples outside every region); "
                         "give every sample a region")
    R = int(rid.max()) + 1 if n else 0
    if adjacency is None:
        return rid.astype(np.int64), sp.csr_matrix((R, R), dtype=np.float64)
    adj = sp.csr_matrix(adjacency, dtype=np.float64)
    if adj.shape[0] != adj.shape[1] or adj.shape[0] < R:
        raise ValueError(f"region_adjacency must be square (R, R) with R >= max(region_id)+1 "
                         f"= {R}, got shape {adj.shape}")
    adj = (adj != 0).astype(np.float64)
    adj.setdiag(0.0)
    adj.eliminate_zeros()
    return rid.astype(np.int64), adj


def predicted_loss_change(model, inputs, targets, lr, groups, block=1024, factors=None) -> dict:
    """First-order change of every sample's loss under one full-batch GD step.

    One step ``theta <- theta - lr * grad(mean_j loss_j)`` changes ``loss_i`` by
    ``-(lr / N) sum_j G_ij`` to first order. The sum is split by where ``j``
    lies relative to ``i``.

    Parameters
    ----------
    model, inputs, targets, factors
        As in :func:`gram`.
    lr : float
        Step size.
    groups : tuple
        ``(region_id, region_adjacency)``: ``(N,)`` non-negative int region of
        each sample and a scipy sparse (or dense) ``(R, R)`` boolean adjacency
        of regions (its diagonal is ignored). ``region_adjacency=None`` means no
        region has neighbours.
    block : int
        Rows of ``G`` computed at once (memory ``O(block * (N + R))``).

    Returns
    -------
    dict of ndarray
        ``(N,)`` float64 arrays ``'self'`` (``j = i``), ``'same_region'``
        (``j != i`` in ``i``'s region), ``'neighbour_region'`` (``j`` in a region
        adjacent to ``i``'s), ``'far'`` (the rest) and ``'total'`` (their sum,
        ``-(lr/N) (G 1)_i``), each already multiplied by ``-(lr / N)``.
    """
    deltas, acts = factors_of(model, inputs, targets, factors)
    n = deltas[0].shape[0]
    if not (np.isscalar(lr) and np.isfinite(lr)):
        raise ValueError(f"lr must be a finite number, got {lr!r}")
    rid, adj = region_groups(groups, n)
    R = adj.shape[0]
    member = sp.csr_matrix((np.ones(n), (np.arange(n), rid)), shape=(n, R))
    diag = sum((d * d).sum(1) * ((a * a).sum(1) + 1.0) for d, a in zip(deltas, acts))
    out = {k: np.zeros(n) for k in ("self", "same_region", "neighbour_region", "far", "total")}
    cols = np.arange(n)
    for s in range(0, n, int(block)):
        rows = np.arange(s, min(n, s + int(block)))
        G = _block(deltas, acts, rows, cols)                  # (B, N)
        S = np.asarray((member.T @ G.T).T)                    # (B, R): sum of G_ij over j in r
        total = G.sum(axis=1)
        same = S[np.arange(rows.size), rid[rows]] - diag[rows]
        nbr = np.asarray(adj[rid[rows]].multiply(S).sum(axis=1)).ravel()
        out["total"][rows] = total
        out["self"][rows] = diag[rows]
        out["same_region"][rows] = same
        out["neighbour_region"][rows] = nbr
        out["far"][rows] = total - diag[rows] - same - nbr
    scale = -float(lr) / n
    return {k: v * scale for k, v in out.items()}
