"""Exact per-sample gradient Gram matrix, gradient confusion and the
predicted first-order loss change, from back-propagation factors.

For an MLP ``z_l = W_l a_{l-1} + b_l``, ``a_l = act(z_l)`` with per-sample
loss ``loss_i = mean_c (f_c(x_i) - y_{i,c})^2``, the gradient of ``loss_i``
with respect to ``(W_l, b_l)`` is ``(delta_{l,i} a_{l-1,i}^T, delta_{l,i})``,
so the Gram matrix of the per-sample parameter gradients factorises::

    G_ij = sum_l (delta_{l,i} . delta_{l,j}) (a_{l-1,i} . a_{l-1,j} + 1)

with ``delta_{L+1,i} = dloss_i/df = 2 (f_i - y_i) / C`` and
``delta_{l,i} = D_l(x_i) W_{l+1}^T delta_{l+1,i}`` (``D_l`` the activation
slopes). ``a_0`` is the network input after the encoding. Nothing here
materialises per-sample gradients: blocks of ``G`` cost ``O(B N sum_l n_l)``
time and ``O(B N)`` memory.

All computations are in float64 on a float64 copy of the model. The Gram
covers the parameters of the ``Linear`` layers (trainable parameters of an
encoding module, if any, are not included; a warning says so).
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["forward_factors", "backprop_factors", "gram", "gram_pairs", "gradient_norms",
           "gradient_sum", "gradient_dot", "confusion", "predicted_loss_change"]

_PASS = (torch.nn.Identity, torch.nn.Dropout, torch.nn.Flatten)


def _as_sequential(model):
    if isinstance(model, torch.nn.Sequential):
        return model
    raise ValueError(f"model must be a torch.nn.Sequential of [encoding,] Linear, ReLU, ..., "
                     f"Linear (e.g. from regions.study.training_config.build_model), got "
                     f"{type(model).__name__}")


def _as_array(a, name, ndim_ok, dtype=np.float64):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=dtype)
    if a.ndim not in ndim_ok:
        raise ValueError(f"{name} must have {' or '.join(str(n) for n in ndim_ok)} dimensions, "
                         f"got shape {a.shape}")
    return a


def _check_inputs(inputs, targets=None):
    """``inputs`` as ``(N, d)`` float64 (and ``targets`` as ``(N, C)``), finite."""
    x = _as_array(inputs, "inputs", (1, 2))
    if x.ndim == 1:
        x = x[:, None]
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs must be finite (found NaN or inf)")
    if targets is None:
        return x, None
    y = _as_array(targets, "targets", (1, 2))
    if y.ndim == 1:
        y = y[:, None]
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs and targets must have the same number of rows, got "
                         f"{x.shape[0]} and {y.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise ValueError("inputs and targets must be finite (found NaN or inf)")
    return x, y


def forward_factors(model, inputs):
    """The float64 forward pass of an MLP, layer by layer: what every factor
    formula of this module (and of :mod:`regions.study.ntk`) is built from.

    Parameters
    ----------
    model : torch.nn.Sequential
        ``[encoding,] Linear, ReLU|LeakyReLU, ..., Linear`` (``Identity``,
        ``Dropout`` and ``Flatten`` pass through; dropout is treated as off).
    inputs : array_like
        ``(N, d)`` coordinates as fed to the model (before the encoding).

    Returns
    -------
    linears : list of torch.nn.Linear
        The Linear layers of a float64 copy of the model, in order.
    derivs : list
        ``derivs[l]`` is the ``(N, n_l)`` float64 tensor of activation slopes
        after the l-th Linear layer (``None`` for the output layer).
    activations : list of torch.Tensor
        ``activations[l]`` is ``(N, n_{l-1})`` float64, the input of the l-th
        Linear layer (``activations[0]`` is the encoded input).
    outputs : torch.Tensor
        ``(N, C)`` float64 network outputs.

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> lin, der, act, out = forward_factors(m, np.zeros((3, 2)))
    >>> len(lin), der[-1] is None, [a.shape[1] for a in act], tuple(out.shape)
    (2, True, [2, 4], (3, 1))
    """
    model = _as_sequential(model)
    x, _ = _check_inputs(inputs)
    if not list(model):
        raise ValueError("model is an empty Sequential")
    mods = list(copy.deepcopy(model).double())
    h = torch.as_tensor(x, dtype=torch.float64)
    start = 0
    if not isinstance(mods[0], (torch.nn.Linear,) + _PASS):
        enc = mods[0]
        if any(p.requires_grad for p in enc.parameters()):
            warnings.warn("the encoding module has trainable parameters; the Gram covers only "
                          "the Linear layers' parameters", RuntimeWarning, stacklevel=3)
        try:
            with torch.no_grad():
                h = enc(h)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"encoding mismatch: the first module {type(enc).__name__} fails on "
                             f"inputs of shape {x.shape}: {err}") from None
        start = 1
    linears, slopes = [], []  # slopes[l] = activation slope after linear l (None = none)
    for i, m in enumerate(mods[start:], start):
        if isinstance(m, torch.nn.Linear):
            linears.append(m)
            slopes.append(None)
        elif isinstance(m, torch.nn.ReLU):
            slope = 0.0
        elif isinstance(m, torch.nn.LeakyReLU):
            slope = float(m.negative_slope)
        elif isinstance(m, _PASS):
            continue
        else:
            raise ValueError(f"module {i} ({type(m).__name__}) is not supported: accepted are an "
                             f"encoding first, then Linear, ReLU, LeakyReLU, Identity, Dropout, "
                             f"Flatten")
        if not isinstance(m, torch.nn.Linear):
            if not linears or slopes[-1] is not None:
                raise ValueError(f"module {i} ({type(m).__name__}): an activation must follow a "
                                 f"Linear layer")
            slopes[-1] = slope
    if not linears:
        raise ValueError("model has no Linear layer")
    if slopes[-1] is not None:
        raise ValueError("model must end with a Linear output layer (no activation after it)")
    if h.shape[1] != linears[0].in_features:
        raise ValueError(f"encoding mismatch: the first Linear layer takes "
                         f"{linears[0].in_features} features, the (encoded) inputs have "
                         f"{h.shape[1]}")
    acts, derivs = [], []
    with torch.no_grad():
        for lin, slope in zip(linears, slopes):
            acts.append(h)
            z = h @ lin.weight.T + lin.bias
            if slope is None:
                h = z
                derivs.append(None)
            else:
                d = torch.where(z > 0, torch.ones_like(z), torch.full_like(z, slope))
                derivs.append(d)
                h = z * d
    return linears, derivs, acts, h


def backprop_factors(model, inputs, targets):
    """Forward activations and backward deltas of every ``Linear`` layer.

    Parameters
    ----------
    model : torch.nn.Sequential
        As in :func:`forward_factors`.
    inputs : array_like
        ``(N, d)`` coordinates as fed to the model (before the encoding).
    targets : array_like
        ``(N, C)`` targets (``(N,)`` is read as one channel).

    Returns
    -------
    deltas : list of ndarray
        ``deltas[l]`` is ``(N, n_l)`` float64, ``dloss_i/dz_l`` for the l-th
        Linear layer (the last one is ``2 (f - y) / C``).
    activations : list of ndarray
        ``activations[l]`` is ``(N, n_{l-1})`` float64, the input of the l-th
        Linear layer (``activations[0]`` is the encoded input).

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> d, a = backprop_factors(m, np.zeros((3, 2)), np.zeros((3, 1)))
    >>> [x.shape for x in d], [x.shape for x in a]
    ([(3, 4), (3, 1)], [(3, 2), (3, 4)])
    """
    x, y = _check_inputs(inputs, targets)
    linears, derivs, acts, f = forward_factors(model, x)
    if y.shape[1] != linears[-1].out_features:
        raise ValueError(f"targets have {y.shape[1]} channels but the model outputs "
                         f"{linears[-1].out_features}")
    with torch.no_grad():
        C = f.shape[1]
        delta = 2.0 * (f - torch.as_tensor(y)) / C
        deltas = [None] * len(linears)
        deltas[-1] = delta
        for l in range(len(linears) - 2, -1, -1):
            delta = (delta @ linears[l + 1].weight) * derivs[l]
            deltas[l] = delta
    return [d.numpy() for d in deltas], [a.numpy() for a in acts]


def _factors(model, inputs, targets, factors):
    if factors is not None:
        deltas, acts = factors
        if len(deltas) != len(acts) or not deltas:
            raise ValueError("factors must be (deltas, activations) lists of equal length, as "
                             "returned by backprop_factors")
        return deltas, acts
    return backprop_factors(model, inputs, targets)


def _index(idx, n, name):
    if idx is None:
        return np.arange(n)
    a = np.asarray(idx)
    if a.dtype == bool:
        if a.shape != (n,):
            raise ValueError(f"{name} as a boolean mask must have shape ({n},), got {a.shape}")
        return np.flatnonzero(a)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integer indices or a boolean mask, got dtype {a.dtype}")
    a = a.astype(np.int64).ravel()
    if a.size and (a.min() < -n or a.max() >= n):
        raise ValueError(f"{name} has indices outside 0..{n - 1}")
    return a


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
    deltas, acts = _factors(model, inputs, targets, factors)
    n = deltas[0].shape[0]
    return _block(deltas, acts, _index(rows, n, "rows"), _index(cols, n, "cols"))


def _check_pairs(pairs, n):
    p = np.asarray(pairs)
    if p.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 2 or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"pairs must be a (P, 2) integer array of sample indices, got shape "
                         f"{p.shape} dtype {p.dtype}")
    if p.min() < 0 or p.max() >= n:
        raise ValueError(f"pairs has indices outside 0..{n - 1}")
    return p.astype(np.int64)


def _check_layered(arrays, deltas, acts, name):
    """Per-Linear-layer ``(n_l, n_{l-1} + 1)`` arrays (weight columns, then the
    bias column) as float64, checked against the factors' widths."""
    if not isinstance(arrays, (list, tuple)) or len(arrays) != len(deltas):
        raise ValueError(f"{name} must be a list of {len(deltas)} arrays, one per Linear layer, "
                         f"got {type(arrays).__name__} of length "
                         f"{len(arrays) if hasattr(arrays, '__len__') else '?'}")
    out = []
    for l, (m, d, a) in enumerate(zip(arrays, deltas, acts)):
        m = _as_array(m, f"{name}[{l}]", (2,))
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
    deltas, acts = _factors(model, inputs, targets, factors)
    p = _check_pairs(pairs, deltas[0].shape[0])
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
    deltas, acts = _factors(None, None, None, factors)
    r = _index(rows, deltas[0].shape[0], "rows")
    w = np.ones(r.size) if weights is None else _as_array(weights, "weights", (1,))
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
    deltas, acts = _factors(None, None, None, factors)
    r = _index(rows, deltas[0].shape[0], "rows")
    v = _check_layered(direction, deltas, acts, "direction")
    out = np.zeros(r.size)
    for d, a, m in zip(deltas, acts, v):
        out += np.einsum("pk,pk->p", d[r] @ m[:, :-1], a[r]) + d[r] @ m[:, -1]
    return out


def gradient_norms(model, inputs, targets, factors=None) -> np.ndarray:
    """``(N,)`` norms ``|g_i| = sqrt(G_ii)`` of the per-sample gradients."""
    deltas, acts = _factors(model, inputs, targets, factors)
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
    factors = _factors(model, inputs, targets, factors)
    p = _check_pairs(pairs, factors[0][0].shape[0])
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
    deltas, acts = _factors(model, inputs, targets, factors)
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
