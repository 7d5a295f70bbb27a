"""The training-dynamics measures of one analysed checkpoint: gradient
confusion of neighbour and distant pairs and its pair mechanism, the
predicted first-order loss change (with a real GD step checking it), the NTK
split of the pair quantities into kernel and residual parts, one Adam step
with Adam's own update against its prediction, and the kernel's spectrum
(with the per-band GD prediction for full-batch GD runs).
:func:`gradient_measures` fills these fields of a
:class:`regions.study.results.Checkpoint`; :func:`regions.study.analysis.analyse_checkpoint`
calls it. The claims and the report on them are :mod:`regions.study.claims.dynamics`
and :mod:`regions.study.report.dynamics`.
"""
from __future__ import annotations

import numpy as np

from . import grid
from .results import (AdamStep, Agreement, Confusion, Correlation, GDStep, KernelSplit,
                      PairMechanism, Spectrum)

__all__ = ["gradient_measures", "region_adjacency", "agreement"]


def gradient_measures(out, run, model, feats, part, pats, job):
    """Gradient confusion of neighbour and distant pairs, the pair mechanism and
    the predicted first-order loss change (with a real GD step checking it)."""
    import torch

    from . import gram
    from .factors import backprop_factors
    from .coupling import prediction_agreement

    signal, rec = run.signal, run.record_epochs
    X = torch.as_tensor(signal.coords, dtype=torch.float32)
    Y = torch.as_tensor(signal.targets, dtype=torch.float32)
    fac = backprop_factors(model, X, Y)
    npairs = grid.patch_pairs(signal.grid_shape)
    dpairs = grid.distant_pairs(signal.grid_shape, job["n_distant"], job["seed"])
    cn = np.asarray(gram.confusion(model, X, Y, npairs, factors=fac), float)
    cd = np.asarray(gram.confusion(model, X, Y, dpairs, factors=fac), float)
    out.confusion = Confusion(neighbour=cn, distant=cd,
                              neighbour_below=float(np.mean(cn[np.isfinite(cn)] < -0.5)),
                              distant_below=float(np.mean(cd[np.isfinite(cd)] < -0.5)),
                              neighbour_mean=float(np.nanmean(cn)),
                              distant_mean=float(np.nanmean(cd)))
    rid, adj = region_adjacency(feats, part, pats, signal.grid_shape)
    out.pairs = _pair_mechanism(cn, npairs, pats, rid, job)
    pred = gram.predicted_loss_change(model, X, Y, run.config.lr, groups=(rid, adj),
                                      factors=fac)
    out.predicted = {k: np.asarray(v, float) for k, v in pred.items() if k != "total"}
    i0 = int(np.searchsorted(rec, out.epoch))
    if i0 + 1 < len(rec):
        out.observed_change = run.losses[i0 + 1] - run.losses[i0]
        out.agreement = agreement(prediction_agreement(out.predicted, out.observed_change,
                                                        n_boot=job["n_boot"], seed=job["seed"]))
    out.gd_step = _gd_step_check(model, X, Y, run.config.lr, sum(out.predicted.values()))
    _kernel_measures(out, run, model, (npairs, cn), (dpairs, cd), pats, rid, adj, job)


def region_adjacency(features, partition, pats, grid_shape):
    """Region id of every sample and the regions' adjacency (scipy sparse), for
    splitting the predicted change into same / neighbouring / far regions.

    Exact partitions give exact adjacency (2D: shared edges; 1D: consecutive
    pieces, for encoded 1D the patterns of consecutive pieces); without one
    (encoded 2D) the regions are the distinct sampled patterns and two touch
    when grid neighbours carry them (sampled)."""
    import scipy.sparse as sp

    from ..geometry import interval_adjacency

    if partition is not None and "region" in features:
        rid = np.asarray(features["region"], dtype=np.int64)
        if partition.dim == 2:
            return rid, partition.adjacency()
        return rid, interval_adjacency(partition)
    _, rid = np.unique(pats, axis=0, return_inverse=True)
    rid = rid.ravel().astype(np.int64)
    pairs = grid.adjacent_pairs(grid_shape)
    a, b = rid[pairs[:, 0]], rid[pairs[:, 1]]
    n = int(rid.max()) + 1
    keep = a != b
    A = sp.coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(n, n))
    return rid, ((A + A.T) > 0).astype(np.int8).tocsr()


def _pair_mechanism(cos, pairs, pats, rid, job):
    """The mechanism at the level of pairs: for the local (3x3-patch) pairs,
    how gradient alignment |cos| depends on how different the two patterns
    are (Hamming) and on sharing a region."""
    from .coupling import spearman_ci

    ham = np.count_nonzero(pats[pairs[:, 0]] != pats[pairs[:, 1]], axis=1).astype(float)
    same = rid[pairs[:, 0]] == rid[pairs[:, 1]]
    a = np.abs(cos)
    ok = np.isfinite(a)

    def mean_or_none(values, where):
        return float(np.mean(values[where])) if np.any(where) else None

    return PairMechanism(
        abs_cos_vs_hamming=Correlation(**spearman_ci(ham[ok], a[ok], n_boot=job["n_boot"],
                                                     seed=job["seed"])),
        share_same_region=float(same.mean()),
        abs_cos_same_region=mean_or_none(a, ok & same),
        abs_cos_other_region=mean_or_none(a, ok & ~same),
        below_same_region=mean_or_none(cos < -0.5, ok & same),
        below_other_region=mean_or_none(cos < -0.5, ok & ~same))


def agreement(d):
    """An :class:`Agreement` from :func:`regions.study.coupling.prediction_agreement`."""
    return Agreement(spearman=Correlation(**d["spearman"]), n=d["n"], pearson=d["pearson"],
                     sign_agreement=d["sign_agreement"], scale=d["scale"],
                     term_share=d.get("term_share", {}), term_spearman=d.get("term_spearman", {}))


def _gd_step_check(model, X, Y, lr, predicted_total):
    """One actual full-batch gradient-descent step (float64) from the checkpoint:
    the per-sample loss change against the first-order prediction (same ``lr``).
    Validates the Gram decomposition; returns Spearman, Pearson and the
    least-squares scale (1 when the first order is exact)."""
    import copy as _copy

    import torch
    from scipy import stats

    m = _copy.deepcopy(model).double()
    x, y = X.double(), Y.double()
    with torch.no_grad():
        before = ((m(x) - y) ** 2).mean(dim=1)
    loss = ((m(x) - y) ** 2).mean()
    params = [p for p in m.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= lr * g
        after = ((m(x) - y) ** 2).mean(dim=1)
    actual = (after - before).numpy()
    p = np.asarray(predicted_total, float)
    ok = np.isfinite(p) & np.isfinite(actual)
    if ok.sum() < 3 or np.std(p[ok]) == 0 or np.std(actual[ok]) == 0:
        return GDStep(spearman=float("nan"), pearson=float("nan"), scale=float("nan"))
    return GDStep(spearman=float(stats.spearmanr(p[ok], actual[ok]).statistic),
                  pearson=float(stats.pearsonr(p[ok], actual[ok]).statistic),
                  scale=float(p[ok] @ actual[ok] / (p[ok] @ p[ok])))


def _confusion_of(neighbour, distant, keep_arrays=True):
    """A :class:`Confusion` record of any pair similarity (cosine-like, in [-1, 1])."""
    def below(v):
        v = v[np.isfinite(v)]
        return float(np.mean(v < -0.5)) if v.size else None

    def mean(v):
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else None

    return Confusion(neighbour=neighbour if keep_arrays else None,
                     distant=distant if keep_arrays else None,
                     neighbour_below=below(neighbour), distant_below=below(distant),
                     neighbour_mean=mean(neighbour), distant_mean=mean(distant))


def _pearson(a, b):
    from scipy import stats

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return None
    return float(stats.pearsonr(a[ok], b[ok]).statistic)


def _kernel_measures(out, run, model, neighbour, distant, pats, rid, adj, job):
    """The NTK measures of a checkpoint (:mod:`regions.study.ntk`): the pair
    quantities split into kernel and residual parts, one Adam step with Adam's
    own update (Adam runs), the trace NTK's spectrum and, for full-batch GD
    runs, its per-band prediction to the next analysed checkpoint."""
    from . import ntk

    signal = run.signal
    (npairs, cn), (dpairs, cd) = neighbour, distant
    jf = ntk.jacobian_factors(model, signal.coords)
    split_n = ntk.kernel_split(jf, signal.targets, npairs)
    split_d = ntk.kernel_split(jf, signal.targets, dpairs)
    out.confusion_kernel = _confusion_of(split_n["kernel"], split_d["kernel"])
    out.confusion_residual = _confusion_of(split_n["residual"], split_d["residual"])
    out.confusion_product = _confusion_of(split_n["product"], split_d["product"], False)
    out.pairs_kernel = _pair_mechanism(split_n["kernel"], npairs, pats, rid, job)
    out.pairs_residual = _pair_mechanism(split_n["residual"], npairs, pats, rid, job)
    aniso = split_n["anisotropy"][np.isfinite(split_n["anisotropy"])]
    out.kernel_split = KernelSplit(
        pearson_residual=_pearson(cn, split_n["residual"]),
        pearson_kernel=_pearson(cn, split_n["kernel"]),
        pearson_product=_pearson(cn, split_n["product"]),
        distant_pearson_residual=_pearson(cd, split_d["residual"]),
        distant_pearson_product=_pearson(cd, split_d["product"]),
        anisotropy=float(aniso.mean()) if aniso.size else None)
    cfg = run.config
    if cfg.optimizer == "adam":
        out.adam_step = _adam_step(model, signal, cfg, rid, adj, out.epoch, job)
    out.spectrum = _spectrum(jf, run, out.epoch, job)


def _adam_step(model, signal, cfg, rid, adj, epoch, job):
    """One Adam step from the checkpoint (state rebuilt over ``adam_warmup_steps``
    seeded minibatches of the run's batch size) against its prediction."""
    from scipy import stats

    from . import ntk

    n = signal.n
    warmup = int(job.get("adam_warmup_steps", 20))
    bs = n if cfg.batch_size is None else min(int(cfg.batch_size), n)
    rng = np.random.default_rng([int(job["seed"]), int(epoch)])
    order = np.concatenate([rng.permutation(n) for _ in range(-(-(warmup + 1) * bs // n))])
    batches = [order[k * bs:(k + 1) * bs] for k in range(warmup + 1)]
    res = ntk.adam_step_split(model, signal.coords, signal.targets, batches, (rid, adj), cfg.lr,
                              seed=int(job["seed"]))
    p, a = res["predicted"], res["actual"]
    sizes = {k: float(np.abs(v).sum()) for k, v in res["terms"].items()}
    total = sum(sizes.values())
    ok = np.isfinite(p) & np.isfinite(a)
    pearson = _pearson(p, a)
    return AdamStep(
        warmup=warmup, step=res["step"], batch_size=res["batch_size"], pearson=pearson,
        spearman=float(stats.spearmanr(p[ok], a[ok]).statistic) if pearson is not None else None,
        scale=float(p[ok] @ a[ok] / (p[ok] @ p[ok])) if np.any(p[ok] != 0) else None,
        decomposition_error=res["decomposition_error"], update_error=res["update_error"],
        cos_batch_gradient=res["cos_batch_gradient"], cos_full_gradient=res["cos_full_gradient"],
        predicted=p, actual=a, terms=res["terms"],
        term_share={k: (v / total if total > 0 else None) for k, v in sizes.items()},
        pair_count=res["pair_count"], mean_abs_pair=res["mean_abs_pair"],
        mean_abs_gram=res["mean_abs_gram"])


def _full_batch_gd(cfg, n):
    """Whether every training step of the config is one full-batch GD step."""
    return cfg.optimizer == "gd" or (cfg.optimizer == "sgd" and
                                     (cfg.batch_size is None or cfg.batch_size >= n))


def _spectrum(jf, run, epoch, job):
    """The trace NTK's spectrum at a checkpoint; with all samples in the kernel
    and full-batch GD training, the per-band prediction to the next analysed
    checkpoint against the measured residual there."""
    from . import ntk
    from .bands import default_bands

    signal = run.signal
    rows, shape, stride = ntk.subgrid(signal.grid_shape, int(job.get("ntk_max_samples", 1024)))
    theta = ntk.trace_ntk(jf, rows)
    lam, U = ntk.eigen(theta)
    residual = jf.outputs[rows] - signal.targets[rows]
    summ = ntk.spectrum_summary(lam, U, residual, shape)
    bands = default_bands(signal.grid_shape)  # those of RunResult.band_energy
    mean_eig = float(lam.mean())
    out = Spectrum(rows=rows, shape=list(shape), stride=int(stride), eigenvalues=lam,
                   frequencies=summ["frequencies"], residual_energy=summ["energy"],
                   band_gain=(ntk.band_gains(theta, shape, bands) / mean_eig
                              if mean_eig > 0 else np.full(len(bands), np.nan)),
                   **{k: summ[k] for k in ("effective_rank", "rank_90", "decay_exponent",
                                           "top_share", "top_frequency", "frequency_order",
                                           "residual_top_share", "residual_alignment")})
    later = [e for e in job["analyse"] if e > epoch]
    if stride == 1 and later and _full_batch_gd(run.config, signal.n):
        # the epochs of RunResult.band_energy: every record with predictions, else checkpoints
        recorded = run.predictions is not None
        band_epochs = np.asarray(run.record_epochs if recorded else run.checkpoint_epochs)
        window = (band_epochs > epoch) & (band_epochs <= later[0])
        ep = band_epochs[window]
        measured = (run.predictions[np.flatnonzero(window)] if recorded
                    else np.stack([run.predictions_at(e) for e in ep])) - signal.targets[None]
        check = ntk.gd_band_check(lam, U, residual, measured, ep - epoch, signal.grid_shape,
                                  bands, run.config.lr, signal.targets)
        out.horizon = int(later[0] - epoch)
        out.step_scale, out.sharpness = check["scale"], check["sharpness"]
        out.predicted_band = np.full((band_epochs.size, len(bands)), np.nan)
        out.predicted_band[window] = check["predicted_band"]
        out.prediction_error = np.full(band_epochs.size, np.nan)
        out.prediction_error[window] = check["prediction_error"]
        out.prediction_error_end = float(check["prediction_error"][-1])
        out.predicted_energy = check["predicted_energy"]
        out.measured_energy = check["measured_energy"]
    return out
