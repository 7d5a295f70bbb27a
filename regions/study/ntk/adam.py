"""The first-order prediction of one Adam step with the optimiser's own
(preconditioned) update, split by where the batch samples lie relative to
each sample: itself, its region, the neighbouring regions, far (notation:
:mod:`regions.study.ntk`)."""
from __future__ import annotations

import copy
import threading

import numpy as np
import torch

from .. import gram
from ..factors import as_sequential, backprop_factors, check_index, check_inputs

# torch's forward-AD levels are process-global state: two jvp calls in threads of one
# process (a dask worker with 2 threads) delete each other's level
_FORWARD_AD = threading.Lock()

__all__ = ["adam_step_split", "PAIR_CLASSES"]

#: Where sample ``j`` lies relative to sample ``i`` (:func:`adam_step_split`).
PAIR_CLASSES = ("self", "same_region", "neighbour_region", "far")


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


def _check_step_inputs(inputs, targets, batches, groups, lr):
    """Validated ``(x, y, batches, (region_id, adjacency))`` of :func:`adam_step_split`."""
    x, y = check_inputs(inputs, targets)
    n = x.shape[0]
    batches = [check_index(b, n, "batches[k]") for b in batches]
    if not batches or any(b.size == 0 for b in batches):
        raise ValueError("batches must be a non-empty list of non-empty index arrays (warm-up "
                         "batches, then the probed batch)")
    if np.unique(batches[-1]).size != batches[-1].size:
        raise ValueError("the probed batch (batches[-1]) must not repeat a sample")
    if not (np.isscalar(lr) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return x, y, batches, gram.region_groups(groups, n)


def _float64_copy(model):
    """A float64 copy of the checkpoint, its Linear layers and their parameters
    (which must be all its trainable ones)."""
    m64 = copy.deepcopy(as_sequential(model)).double()
    linears = [m for m in m64 if isinstance(m, torch.nn.Linear)]
    params = [p for p in m64.parameters() if p.requires_grad]
    lin_params = {id(p) for lin in linears for p in (lin.weight, lin.bias)}
    if {id(p) for p in params} != lin_params:
        raise ValueError("adam_step_split needs every trainable parameter in the Linear layers "
                         "(with biases); the encoding must have none")
    return m64, linears, params


def _probed_step(m64, params, X, Y, batches, lr, betas, eps):
    """Train ``m64`` with Adam on the warm-up batches, then take the probed step
    on ``batches[-1]``; returns what the prediction needs from before and after
    it: the parameters before, their change, the first moments before the step
    and second moments after it, the step count ``t``, every sample's loss
    before and after, and the backprop factors before the step."""
    opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)

    def step(idx):
        opt.zero_grad(set_to_none=True)
        ((m64(X[idx]) - Y[idx]) ** 2).mean().backward()
        opt.step()

    for b in batches[:-1]:
        step(torch.as_tensor(b))
    before = {p: p.detach().clone() for p in params}
    exp_avg = {p: opt.state[p]["exp_avg"].clone() if p in opt.state else torch.zeros_like(p)
               for p in params}
    factors = backprop_factors(m64, X.numpy(), Y.numpy())
    with torch.no_grad():
        loss_before = ((m64(X) - Y) ** 2).mean(1)
    step(torch.as_tensor(batches[-1]))
    with torch.no_grad():
        loss_after = ((m64(X) - Y) ** 2).mean(1)
    return {"before": before, "dtheta": {p: p.detach() - before[p] for p in params},
            "exp_avg_before": exp_avg, "exp_avg_sq": {p: opt.state[p]["exp_avg_sq"] for p in params},
            "step": int(opt.state[params[0]]["step"]), "factors": factors,
            "loss_before": loss_before, "loss_after": loss_after}


def _mean_abs_by_class(fac, D, coef, pairs):
    """Mean ``|c g_i^T D g_j|`` (one pair's share of the step) and mean plain
    ``|G_ij|`` over the drawn pairs of each class (``None`` for a class with none)."""
    mean_pair, mean_gram = {}, {}
    for k in PAIR_CLASSES:
        p = pairs[k]
        if p.shape[0] == 0:
            mean_pair[k] = mean_gram[k] = None
            continue
        gd = gram.gram_pairs(None, None, None, p, factors=fac, metric=D)
        mean_pair[k] = float(np.mean(np.abs(coef * gd)))
        mean_gram[k] = float(np.mean(np.abs(gram.gram_pairs(None, None, None, p, factors=fac))))
    return mean_pair, mean_gram


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

    x, y, batches, (rid, adj) = _check_step_inputs(inputs, targets, batches, groups, lr)
    n = x.shape[0]
    b1, b2 = (float(b) for b in betas)
    m64, linears, params = _float64_copy(model)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    probe = batches[-1]
    st = _probed_step(m64, params, X, Y, batches, float(lr), (b1, b2), float(eps))
    fac = st["factors"]
    names = {id(p): k for k, p in m64.named_parameters()}

    def losses(flat):
        out = functional_call(m64, {names[id(p)]: q for p, q in zip(params, flat)}, (X,))
        return ((out - Y) ** 2).mean(1)

    with _FORWARD_AD:
        predicted = jvp(losses, (tuple(st["before"][p] for p in params),),
                        (tuple(st["dtheta"][p] for p in params),))[1].detach().numpy()

    t = st["step"]
    bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
    D = [1.0 / (np.sqrt(vl / bc2) + eps) for vl in _layered(linears, st["exp_avg_sq"])]
    coef = -float(lr) * (1.0 - b1) / (bc1 * probe.size)
    mom = [-float(lr) * b1 / bc1 * d * m for d, m in zip(D, _layered(linears, st["exp_avg_before"]))]
    batch_grad = [g / probe.size for g in gram.gradient_sum(fac, probe)]
    update = [mo + coef * probe.size * d * g for mo, d, g in zip(mom, D, batch_grad)]
    actual_update = _layered(linears, st["dtheta"])
    terms = {"momentum": gram.gradient_dot(fac, mom)}
    sums = _class_sums(fac, D, rid, adj, probe, coef)
    terms.update({k: sums[k] for k in PAIR_CLASSES})
    scale = max(float(np.abs(predicted).max()), np.finfo(float).tiny)
    upd_scale = max(max(float(np.abs(u).max()) for u in actual_update), np.finfo(float).tiny)
    counts, pairs = _class_pairs(rid, adj, probe, int(n_pairs), np.random.default_rng(seed))
    mean_pair, mean_gram = _mean_abs_by_class(fac, D, coef, pairs)
    full_grad = [g / n for g in gram.gradient_sum(fac, np.arange(n))]
    return {
        "predicted": predicted,
        "actual": (st["loss_after"] - st["loss_before"]).numpy(),
        "terms": terms,
        "decomposition_error": float(np.abs(sum(terms.values()) - predicted).max() / scale),
        "update_error": float(max(np.abs(u - a).max() for u, a in zip(update, actual_update))
                              / upd_scale),
        "pair_count": counts, "mean_abs_pair": mean_pair, "mean_abs_gram": mean_gram,
        "cos_batch_gradient": _flat_cos(actual_update, [-g for g in batch_grad]),
        "cos_full_gradient": _flat_cos(actual_update, [-g for g in full_grad]),
        "step": t, "batch_size": int(probe.size),
    }
