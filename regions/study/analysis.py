"""Everything measured on one trained run: per-sample speed, exact region
features at each analysed checkpoint, region counts, Hamming distances, dead
neurons, hyperplane-normal cosines, gradient confusion, the predicted
first-order loss change (and a real GD step checking it), the NTK split of
the pair quantities into kernel and residual parts, one Adam step with
Adam's own update against its prediction, the kernel's spectrum (with the
per-band GD prediction for full-batch GD runs), and the coupling tables.
:func:`analyse_run` returns one :class:`regions.study.results.RunResult` per
run; the claims, report and figures read only that record.
"""
from __future__ import annotations

import time

import numpy as np

from . import grid
from .results import (AdamStep, Agreement, BandEnergy, Checkpoint, Confusion, Correlation,
                      CouplingRow, GDStep, KernelSplit, PairMechanism, RunResult, Spectrum)

__all__ = ["analyse_run", "analyse_checkpoint"]


def _domain(signal):
    lo, hi = signal.coord_range
    if signal.dim == 1:
        return (lo, hi)
    return ((lo, hi), (lo, hi))


def _window_speeds(losses, rec, e, w, eps):
    """Per-sample speed after epoch ``e`` (features at ``e`` are coupled to these):

    * ``rate``: ``-d log loss / d epoch`` over ``[e, e + w]`` (larger = faster);
    * ``drop``: ``log loss(e) - log loss(e + w)`` (larger = faster);
    * ``epochs_to_eps``: epochs after ``e`` until ``loss <= eps * loss(e)``
      (censored samples get the epochs left + 1; smaller = faster).
    """
    from . import convergence as cv

    i0 = int(np.searchsorted(rec, e))
    i1 = int(np.searchsorted(rec, e + w, side="right")) - 1
    if i1 <= i0:
        return {}
    L = np.log(np.maximum(losses[[i0, i1]], np.finfo(float).tiny))
    out = {"rate": -cv.log_loss_slope(losses, rec, window=(rec[i0], rec[i1])),
           "drop": L[0] - L[1]}
    ep, cens = cv.epochs_to_fraction(losses[i0:], rec[i0:], eps)
    out["epochs_to_eps"] = np.where(cens, rec[-1] - rec[i0] + 1, ep - rec[i0]).astype(float)
    return out


def _global_speeds(run, eps):
    """Whole-run speed measures from :mod:`regions.study.convergence`."""
    from . import convergence as cv

    rec, L = run.record_epochs, run.losses
    out = {}
    ep, cens = cv.epochs_to_fraction(L, rec, eps)
    out["epochs_to_eps"] = np.where(cens, rec[-1] + 1, ep).astype(float)
    out["auc"] = np.asarray(cv.normalized_auc(L, rec), dtype=float)
    out["final_loss"] = L[-1]
    return out, np.asarray(cens, bool)


def _dead_fraction(pats, widths):
    """Share of hidden neurons inactive on every sample, overall and per layer."""
    never = ~pats.any(0)
    out = {"all": float(never.mean())}
    start = 0
    for i, w in enumerate(widths):
        out[f"l{i + 1}"] = float(never[start:start + w].mean())
        start += w
    return out


def _normal_cosines(net):
    """Mean pairwise cosine between the weight rows of each hidden layer."""
    out = {}
    for i, W in enumerate(net.weights[:-1]):
        n = np.linalg.norm(W, axis=1, keepdims=True)
        U = W / np.where(n > 0, n, 1)
        C = U @ U.T
        k = C.shape[0]
        out[f"l{i + 1}"] = float((C.sum() - np.trace(C)) / max(k * (k - 1), 1))
    return out


def _region_adjacency(features, partition, pats, grid_shape):
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


def _agreement(d):
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


#: Engines already compiled (or loaded from the kernel cache) in this process:
#: (input dimension, encoded).
_WARM_ENGINES = set()


def _warm_engine(net, signal):
    """Compile (or load from the cache) the exact engine the checkpoint needs,
    once per process, by partitioning a tiny corner of the domain: its time
    (seconds) the first time, None afterwards and where no engine runs. The
    timed partition then measures the enumeration alone."""
    key = (signal.dim, net.encoding is not None)
    if key in _WARM_ENGINES or (net.encoding is not None and signal.dim == 2):
        return None
    from ..api import partition

    lo, hi = signal.coord_range
    corner = (lo, lo + 1e-6 * (hi - lo))
    t0 = time.perf_counter()
    try:
        partition(net, corner if signal.dim == 1 else (corner, corner))
    except Exception:  # noqa: BLE001 - the real partition reports the engine's failure
        return None
    _WARM_ENGINES.add(key)
    return time.perf_counter() - t0


def _exact_partition(net, signal):
    """The exact partition of the checkpoint over the signal's domain, or None
    for encoded 2D models (no exact engine)."""
    from ..api import partition

    if net.encoding is not None and signal.dim == 2:
        return None
    return partition(net, _domain(signal), max_regions=2_000_000)


def _shape_features(out, feats, part, step, n_layers):
    """The checkpoint's summaries of the region features (mean distances,
    crossings, region sizes, the authors' distance ratio)."""
    if part is not None and "region" in feats:
        hit = np.unique(np.asarray(feats["region"]))
        out.measure_all_median = float(np.median(part.measure))
        out.measure_hit_median = float(np.median(part.measure[hit]))
        out.regions_with_samples = int(hit.size)
    if "neighbour_crossings" in feats.meta:
        c = np.asarray(feats.meta["neighbour_crossings"], float)
        out.crossings_neighbour = float(c.mean())
        out.mean_chord = float(step / c.mean()) if c.mean() > 0 else float("inf")
    for k in ("dist_boundary", "dist_paper", "dist_layer1", "dist_polygon"):
        if k in feats:
            v = np.asarray(feats[k], float)
            setattr(out, f"mean_{k}",
                    float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else None)
    if "layer_distances" in feats.meta:
        # exact (local normal) over the authors' |z|/|W_l[k]|, per deeper layer and overall
        local, paper = (feats.meta["layer_distances"][k] for k in ("local", "weight_norm"))
        ratios = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for li in range(2, n_layers + 1):
                ratios[f"l{li}"] = _finite_median(local[:, li - 1] / paper[:, li - 1])
            ratios["all"] = _finite_median(local.min(axis=1) / paper.min(axis=1))
        out.paper_distance_ratio = ratios


def _finite_median(values):
    """Median of the finite entries, ``None`` if there are none."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None


def _gradient_measures(out, run, model, feats, part, pats, job):
    """Gradient confusion of neighbour and distant pairs, the pair mechanism and
    the predicted first-order loss change (with a real GD step checking it)."""
    import torch

    from . import gram
    from .coupling import prediction_agreement

    signal, rec = run.signal, run.record_epochs
    X = torch.as_tensor(signal.coords, dtype=torch.float32)
    Y = torch.as_tensor(signal.targets, dtype=torch.float32)
    fac = gram.backprop_factors(model, X, Y)
    npairs = grid.patch_pairs(signal.grid_shape)
    dpairs = grid.distant_pairs(signal.grid_shape, job["n_distant"], job["seed"])
    cn = np.asarray(gram.confusion(model, X, Y, npairs, factors=fac), float)
    cd = np.asarray(gram.confusion(model, X, Y, dpairs, factors=fac), float)
    out.confusion = Confusion(neighbour=cn, distant=cd,
                              neighbour_below=float(np.mean(cn[np.isfinite(cn)] < -0.5)),
                              distant_below=float(np.mean(cd[np.isfinite(cd)] < -0.5)),
                              neighbour_mean=float(np.nanmean(cn)),
                              distant_mean=float(np.nanmean(cd)))
    rid, adj = _region_adjacency(feats, part, pats, signal.grid_shape)
    out.pairs = _pair_mechanism(cn, npairs, pats, rid, job)
    pred = gram.predicted_loss_change(model, X, Y, run.config.lr, groups=(rid, adj),
                                      factors=fac)
    out.predicted = {k: np.asarray(v, float) for k, v in pred.items() if k != "total"}
    i0 = int(np.searchsorted(rec, out.epoch))
    if i0 + 1 < len(rec):
        out.observed_change = run.losses[i0 + 1] - run.losses[i0]
        out.agreement = _agreement(prediction_agreement(out.predicted, out.observed_change,
                                                        n_boot=job["n_boot"], seed=job["seed"]))
    out.gd_step = _gd_step_check(model, X, Y, run.config.lr, sum(out.predicted.values()))
    _kernel_measures(out, run, model, (npairs, cn), (dpairs, cd), pats, rid, adj, job)


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
    from .convergence import default_bands

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


def _coupling(out, run, feats, job, extra_speeds):
    """Features at the checkpoint against the per-sample speed after it."""
    from .coupling import correlation_table, prediction_agreement

    rec, epoch = run.record_epochs, out.epoch
    E = int(run.config.epochs)
    w = max(int(round(job["window"] * E)), int(rec[1] - rec[0]) if len(rec) > 1 else 1)
    speeds = _window_speeds(run.losses, rec, epoch, w, job["eps"])
    if epoch == E:
        speeds = {"final_loss": run.losses[-1]}
    if extra_speeds:
        speeds = {**speeds, **extra_speeds}
    out.speeds = speeds
    out.window = w
    if out.predicted and "rate" in speeds:
        # predicted relative rate -(d loss)/loss against the measured rate in the window
        loss_e = run.losses[int(np.searchsorted(rec, epoch))]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = {k: -v / loss_e for k, v in out.predicted.items()}
        out.agreement_window = _agreement(prediction_agreement(rel, speeds["rate"],
                                                               n_boot=job["n_boot"],
                                                               seed=job["seed"]))
    feat_for_corr = {k: v for k, v in feats.items() if k != "region"}
    rows = correlation_table(feat_for_corr, speeds, n_boot=job["n_boot"], seed=job["seed"],
                             tag={"run": job["name"], "seed": job["seed"], "epoch": int(epoch)})
    out.coupling = [CouplingRow(**{**row, "kind": feats.kind.get(row["feature"], "")})
                    for row in rows]


def analyse_checkpoint(run, epoch, job, notes, extra_speeds=None):
    """Everything measured at one checkpoint of a run: ``(Checkpoint, partition)``
    (the exact partition, or None where there is none)."""
    from ..network import as_network
    from .features import sample_features

    signal = run.signal
    model = run.model_at(epoch)
    net = as_network(model)
    coords = signal.coords
    t_compile = _warm_engine(net, signal)
    t0 = time.perf_counter()
    try:
        part = _exact_partition(net, signal)
    except Exception as err:  # noqa: BLE001 - the engine's failure is reported, the rest runs
        notes.append(f"{job['name']} seed {job['seed']} epoch {epoch}: partition failed: {err!r}")
        part = None
    t_part = time.perf_counter() - t0 if part is not None else None
    step = grid.grid_step(signal.coord_range, signal.grid_shape, signal.endpoint)
    which = job.get("encoded_crossings", "all")
    last = epoch == job["analyse"][-1]
    enc_cross = which == "all" or (which == "end" and last) or \
        (which == "ends" and (last or epoch == job["analyse"][0]))
    exact_2d_missing = part is None and not (net.encoding is not None and signal.dim == 2)
    feats = sample_features(net, coords, grid_shape=signal.grid_shape, domain=_domain(signal),
                            radius=step, partition=False if exact_2d_missing else part,
                            encoded_crossings=enc_cross)
    if feats.meta.get("missing"):
        notes.append(f"{job['name']}: {feats.meta['missing']}")
    x_in = net.encoding.encode_numpy(coords) if net.encoding is not None else coords
    pats = net.patterns(x_in)
    out = Checkpoint(
        epoch=int(epoch),
        mean_loss=float(run.losses[np.searchsorted(run.record_epochs, epoch)].mean()),
        n_regions=feats.meta.get("n_regions"), n_pieces=feats.meta.get("n_pieces"),
        n_patterns_sampled=feats.meta.get("n_patterns_sampled"),
        hamming_patch=float(grid.patch_hamming(pats, signal.grid_shape)),
        hamming_neighbour=float(np.mean(feats.meta["neighbour_hamming"])),
        dead=_dead_fraction(pats, net.widths), normal_cos=_normal_cosines(net),
        partition_seconds=t_part, compile_seconds=t_compile,
        features={k: np.asarray(v) for k, v in feats.items()}, kinds=dict(feats.kind))
    _shape_features(out, feats, part, step, len(net.widths))
    _gradient_measures(out, run, model, feats, part, pats, job)
    _coupling(out, run, feats, job, extra_speeds)
    return out, part


def analyse_run(run, job):
    """All measurements of a trained run (see :func:`regions.study.runner.run_job`):
    a :class:`regions.study.results.RunResult`. An arm of the half-image
    intervention (:func:`regions.study.intervention.is_intervention`) gets its
    own, lighter analysis (:func:`regions.study.intervention.analyse_intervention`)."""
    from . import convergence as cv
    from .intervention import analyse_intervention, is_intervention

    if is_intervention(run.config):
        return analyse_intervention(run, job)
    notes = []
    signal = run.signal
    speeds, censored = _global_speeds(run, job["eps"])
    ep, ratio, bands = cv.band_energy_from_run(run)
    res = RunResult(
        name=job["name"], seed=job["seed"], dim=signal.dim, n=signal.n,
        grid_shape=[int(s) for s in signal.grid_shape],
        coord_range=[float(v) for v in signal.coord_range], coords=np.asarray(signal.coords),
        encoding=(None if run.config.encoding is None else str(run.config.encoding)
                  if not hasattr(run.config.encoding, "forward")
                  else type(run.config.encoding).__name__),
        config={k: v for k, v in run.config.to_dict().items() if k != "encoding"},
        record_epochs=np.asarray(run.record_epochs), mean_loss=np.asarray(run.mean_loss),
        train_seconds=float(run.seconds), speeds=speeds, censored=float(censored.mean()),
        band_energy=BandEnergy(epochs=np.asarray(ep), ratio=np.asarray(ratio),
                               bands=np.asarray(bands, float)))
    # whole-run speed (from init) is coupled to the features at init
    extra = {f"run_{k}": v for k, v in speeds.items() if k != "final_loss"}
    for e in job["analyse"]:
        cp, part = analyse_checkpoint(run, e, job, notes, extra if e == 0 else None)
        res.checkpoints.append(cp)
        if part is not None:
            res.partitions[int(e)] = part
    _learning_phase(res, run, job, notes)
    res.notes = sorted(set(notes))
    return res


def _learning_phase(res, run, job, notes):
    """Couple the features of the last analysed checkpoint at or before the
    run's learning-phase window (:func:`regions.study.convergence.learning_window`)
    to the per-sample speed over that window (:func:`regions.study.coupling.learning_phase`)."""
    from . import convergence as cv
    from .coupling import learning_phase

    signal, rec = run.signal, np.asarray(run.record_epochs)
    window = cv.learning_window(run.mean_loss, rec, cv.constant_baseline(signal.targets))
    before = [c for c in res.checkpoints if window is not None and c.epoch <= window[0]]
    if not before:
        notes.append(f"{job['name']}: no learning-phase window (the mean loss never falls "
                     "below the constant predictor's)")
        return
    cp = before[-1]
    i0 = int(np.searchsorted(rec, window[0]))
    residual = None
    if run.predictions is not None:
        residual = (np.asarray(run.predictions[i0], np.float64).reshape(signal.n, -1)
                    - np.asarray(signal.targets, np.float64).reshape(signal.n, -1)).mean(axis=1)
    else:
        notes.append(f"{job['name']}: no recorded predictions, the learning-phase partial "
                     "correlations control for the loss only")
    speeds, rows = learning_phase(
        {k: v for k, v in cp.features.items() if k != "region"}, run.losses, rec, window,
        residual, n_boot=job["n_boot"], seed=job["seed"],
        tag={"run": job["name"], "seed": job["seed"], "epoch": int(cp.epoch)})
    cp.speeds.update(speeds)
    cp.coupling.extend(CouplingRow(**{**r, "kind": cp.kinds.get(r["feature"], "")}) for r in rows)
    cp.learning_window = [int(window[0]), int(window[1])]
