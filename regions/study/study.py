"""The study driver: train a set of configurations, measure, couple, report.

``run_study(preset="quick")`` trains raw-coordinate and positional-encoding
MLPs on a white-noise image and on the paper's 1D sum of sinusoids, measures
per-sample speed, exact region features at checkpoints, gradient confusion
and the predicted first-order loss change, and writes ``report.md`` (see
:mod:`regions.study.report`).

Every (experiment, seed) pair is one job; jobs run through any
``concurrent.futures.Executor`` (``executor.submit(fn, arg)``): local
processes by default, ``dask.distributed.Client(...).get_executor()`` for a
cluster, or :class:`SerialExecutor` in-process. Everything is validated
(signals, configurations, encodings, checkpoints) before any job starts.
"""
from __future__ import annotations

import copy
import math
import os
import sys
import time
from concurrent.futures import Executor, Future

import numpy as np

__all__ = ["PRESETS", "run_study", "main_study", "analyse_run", "run_job", "build_jobs",
           "SerialExecutor", "validate_jobs", "report_from_jobs"]


# ----------------------------------------------------------------------------- presets
def _image(size, epochs, encodings, seeds, record_every=1, analyse=(0.0, 0.02, 0.1, 0.5, 1.0),
           width=128, depth=2, batch=256, lr=1e-3):
    exps = []
    for enc in encodings:
        exps.append({
            "name": "2d-raw" if enc is None else f"2d-pe{enc}",
            "signal": ("random_image", {"size": size, "channels": 3, "seed": 0}),
            "train": {"width": width, "depth": depth, "encoding": enc, "optimizer": "adam",
                      "lr": lr, "batch_size": batch, "shuffle": "once", "epochs": epochs,
                      "record_every": record_every, "record_predictions": True},
            "analyse": list(analyse),
        })
    return exps


def _sines(n, epochs, encodings, record_every=1, analyse=(0.0, 0.02, 0.1, 0.5, 1.0),
           width=128, depth=4, lr=1e-3):
    exps = []
    for enc in encodings:
        exps.append({
            "name": "1d-raw" if enc is None else f"1d-pe{enc}",
            "signal": ("sum_of_sinusoids", {"n": n, "seed": 0}),
            "train": {"width": width, "depth": depth, "encoding": enc, "optimizer": "adam",
                      "lr": lr, "batch_size": None, "shuffle": "none", "epochs": epochs,
                      "record_every": record_every, "record_predictions": True},
            "analyse": list(analyse),
        })
    return exps


#: Study presets. ``analyse`` lists the checkpoints analysed, as fractions of
#: the epochs. ``encoded_crossings`` says at which analysed checkpoints the
#: exact row/column crossings of encoded 2D models are computed ("all", "ends",
#: "end"; they cost ~30 s per checkpoint at 32x32, L = 5). ``tiny`` is for
#: tests and smoke runs (seconds).
PRESETS = {
    "quick": {
        "description": "raw vs PE (L=2, 5) on a 32x32 noise image (2x128, Adam 1e-3, batch 256 "
                       "shuffled once, 800 epochs) and raw vs PE L=5 on the 1D sum of "
                       "sinusoids (2048 points, 4x128, full batch, 300 epochs); 1 seed",
        "experiments": _image(32, 800, [None, 2, 5], [0]) + _sines(2048, 300, [None, 5]),
        "seeds": [0],
        "n_boot": 200, "eps": 0.5, "window": 0.1, "n_distant": 2000,
        "encoded_crossings": "end",
    },
    "paper": {
        "description": "the paper's settings: 64x64x3 noise, 2x128, Adam 1e-3, batch 256 "
                       "shuffled once, 5000 epochs, raw / PE L=2 / PE L=5; 1D sum of "
                       "sinusoids, 4x128, full batch, 500 epochs, raw / PE L=5; 3 seeds",
        "experiments": _image(64, 5000, [None, 2, 5], [0, 1, 2], record_every=10,
                              analyse=(0.0, 0.01, 0.05, 0.2, 0.5, 1.0))
        + _sines(2048, 500, [None, 5]),
        "seeds": [0, 1, 2],
        "n_boot": 500, "eps": 0.5, "window": 0.1, "n_distant": 5000,
        "encoded_crossings": "ends",
    },
    "tiny": {
        "description": "a smoke test: 10x10 noise and 128-point sinusoids, 2x16 networks, "
                       "60 epochs",
        "experiments": _image(10, 60, [None, 3], [0], width=16, batch=32,
                              analyse=(0.0, 0.5, 1.0))
        + _sines(128, 60, [None, 3], width=16, depth=2, analyse=(0.0, 0.5, 1.0)),
        "seeds": [0],
        "n_boot": 50, "eps": 0.5, "window": 0.2, "n_distant": 200,
    },
}


# ----------------------------------------------------------------------------- executors
class SerialExecutor(Executor):
    """Runs each submitted call at once, in this process (an ``Executor``)."""

    def submit(self, fn, /, *args, **kwargs):
        fut = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - delivered through the future
            fut.set_exception(err)
        return fut


def _default_executor(workers=2):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))


# ----------------------------------------------------------------------------- jobs
def _resolve_preset(preset):
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; accepted: {sorted(PRESETS)} or a dict "
                             "with an 'experiments' list")
        return copy.deepcopy(PRESETS[preset]), preset
    if isinstance(preset, dict) and "experiments" in preset:
        base = copy.deepcopy(PRESETS["quick"])
        base.update(copy.deepcopy(preset))
        return base, preset.get("name", "custom")
    raise ValueError(f"preset must be one of {sorted(PRESETS)} or a dict with an 'experiments' "
                     f"list, got {type(preset).__name__}")


def _make_signal(spec):
    from . import signals

    if hasattr(spec, "targets") and hasattr(spec, "grid_shape"):
        return spec  # a Signal
    try:
        kind, kwargs = spec
    except (TypeError, ValueError):
        raise ValueError(f"an experiment's 'signal' must be a Signal or a (constructor, kwargs) "
                         f"pair such as ('random_image', {{'size': 32}}), got {spec!r}") from None
    makers = {"random_image": signals.random_image, "sum_of_sinusoids": signals.sum_of_sinusoids,
              "image_file": signals.image_file, "from_array": signals.from_array}
    if kind not in makers:
        raise ValueError(f"unknown signal constructor {kind!r}; accepted: {sorted(makers)}")
    return makers[kind](**kwargs)


def _analysed_epochs(exp, epochs):
    """Analysed checkpoints: floats are fractions of the epochs, ints are epochs."""
    out = set()
    for a in exp.get("analyse", (0.0, 1.0)):
        if isinstance(a, float) and 0.0 <= a <= 1.0:
            out.add(int(round(a * epochs)))
        elif isinstance(a, (int, np.integer)) and not isinstance(a, bool) and 0 <= a <= epochs:
            out.add(int(a))
        else:
            raise ValueError(f"experiment {exp.get('name')!r}: analysed checkpoint {a!r} must be "
                             f"a fraction (float) in [0.0, 1.0] or an epoch (int) in 0..{epochs}")
    return sorted(out | {0, epochs})


def build_jobs(preset="quick", seeds=None):
    """The list of jobs (dicts) for a preset: one per experiment and seed.

    Everything is validated here, before any training: the signal (shape,
    finite targets), the training configuration, that the encoding's input
    dimension matches the signal, and that the analysed checkpoints are
    epochs of the run.
    """
    from .train import TrainConfig

    cfg, name = _resolve_preset(preset)
    if seeds is None:
        seeds = cfg.get("seeds", [0])
    seeds = [int(s) for s in np.atleast_1d(seeds)]
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    exps = cfg.get("experiments", [])
    if not exps:
        raise ValueError(f"preset {name!r} has no experiments")
    names = [e.get("name") for e in exps]
    if len(set(names)) != len(names) or None in names:
        raise ValueError(f"experiment names must be present and unique, got {names}")
    jobs = []
    for exp in exps:
        signal = _make_signal(exp["signal"])
        tr = dict(exp["train"])
        epochs = int(tr.get("epochs", 500))
        analysed = _analysed_epochs(exp, epochs)
        for seed in seeds:
            tcfg = TrainConfig(**{**tr, "seed": seed, "checkpoints": tuple(analysed)})
            validate_jobs_signal(signal, tcfg, exp["name"])
            jobs.append({
                "name": exp["name"], "seed": seed, "signal": signal, "config": tcfg,
                "analyse": analysed, "n_boot": int(cfg["n_boot"]), "eps": float(cfg["eps"]),
                "window": float(cfg["window"]), "n_distant": int(cfg["n_distant"]),
                "encoded_crossings": cfg.get("encoded_crossings", "all"),
                "threads": 1,
            })
    return jobs, cfg, name


def validate_jobs_signal(signal, config, name):
    """Check that ``config`` can be trained on ``signal``; ``ValueError`` if not."""
    import torch

    from .signals import Signal
    from .train import build_model

    if not isinstance(signal, Signal):
        raise ValueError(f"experiment {name!r}: the signal must be a regions.study Signal, got "
                         f"{type(signal).__name__}")
    if not np.all(np.isfinite(signal.targets)):
        raise ValueError(f"experiment {name!r}: the signal's targets contain NaN or inf")
    if signal.dim not in (1, 2):
        raise ValueError(f"experiment {name!r}: signals must be 1D or 2D grids, got "
                         f"grid_shape {signal.grid_shape}")
    try:
        model = build_model(config, signal.dim, signal.channels)
        with torch.no_grad():
            out = model(torch.as_tensor(signal.coords[:2], dtype=torch.float32))
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"experiment {name!r}: the model of the config does not accept the "
                         f"{signal.dim}D coordinates of signal {signal.name!r} (encoding "
                         f"mismatch?): {err}") from None
    if tuple(out.shape) != (2, signal.channels):
        raise ValueError(f"experiment {name!r}: the model outputs {tuple(out.shape[1:])} values "
                         f"per sample but the signal has {signal.channels} channels")
    enc = model[0] if not isinstance(model[0], torch.nn.Linear) else None
    if enc is not None and getattr(enc, "in_features", signal.dim) != signal.dim:
        raise ValueError(f"experiment {name!r}: the encoding takes {enc.in_features}-dimensional "
                         f"coordinates but the signal is {signal.dim}D")
    bad = [e for e in config.checkpoint_epochs if e > config.epochs]
    if bad:
        raise ValueError(f"experiment {name!r}: checkpoints {bad} are past the last epoch "
                         f"{config.epochs}")


def validate_jobs(jobs):
    for j in jobs:
        validate_jobs_signal(j["signal"], j["config"], j["name"])


# ----------------------------------------------------------------------------- analysis
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


def _hamming_patch(pats, grid_shape):
    """Mean Hamming distance over all pairs inside 3x3 patches (3-windows in 1D),
    each pair weighted by the number of patches holding both (the paper's
    local pairs)."""
    if len(grid_shape) == 1:
        offs = [((1,), 2), ((2,), 1)]
        P = pats
        tot, cnt = 0.0, 0.0
        for (d,), wgt in offs:
            h = (P[d:] != P[:-d]).sum(1)
            tot += wgt * h.sum()
            cnt += wgt * h.size
        return tot / cnt
    H, W = grid_shape
    P = pats.reshape(H, W, -1)
    tot, cnt = 0.0, 0.0
    for di in range(0, 3):
        for dj in range(-2, 3):
            if di == 0 and dj <= 0:
                continue
            wgt = (3 - di) * (3 - abs(dj))
            if dj >= 0:
                a, b = P[: H - di, : W - dj], P[di:, dj:]
            else:
                a, b = P[: H - di, -dj:], P[di:, : W + dj]
            h = (a != b).sum(-1)
            tot += wgt * h.sum()
            cnt += wgt * h.size
    return tot / cnt


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

    from .features import grid_neighbours

    if partition is not None and "region" in features:
        rid = np.asarray(features["region"], dtype=np.int64)
        if partition.dim == 2:
            return rid, partition.adjacency()
        if hasattr(partition, "pattern_id"):
            pid = np.asarray(partition.pattern_id, dtype=np.int64)
            n = int(pid.max()) + 1
            a, b = pid[:-1], pid[1:]
        else:
            n = len(partition)
            a, b = np.arange(n - 1), np.arange(1, n)
    else:
        _, rid = np.unique(pats, axis=0, return_inverse=True)
        rid = rid.ravel().astype(np.int64)
        pairs = grid_neighbours(grid_shape)
        a, b = rid[pairs[:, 0]], rid[pairs[:, 1]]
        n = int(rid.max()) + 1
    keep = a != b
    A = sp.coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(n, n))
    return rid, ((A + A.T) > 0).astype(np.int8).tocsr()


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
        return {"spearman": float("nan"), "pearson": float("nan"), "scale": float("nan")}
    return {"spearman": float(stats.spearmanr(p[ok], actual[ok]).statistic),
            "pearson": float(stats.pearsonr(p[ok], actual[ok]).statistic),
            "scale": float(p[ok] @ actual[ok] / (p[ok] @ p[ok]))}


def _maybe_partition(net, signal):
    if net.encoding is not None and signal.dim == 2:
        return None
    try:
        from ..api import partition
    except ImportError:
        return None
    return partition(net, _domain(signal))


def analyse_checkpoint(run, epoch, job, notes, extra_speeds=None):
    """Everything measured at one checkpoint of a run (a dict of arrays and numbers)."""
    import torch

    from ..network import as_network
    from .coupling import binned_curve, correlation_table, prediction_agreement
    from .features import sample_features

    signal = run.signal
    model = run.model_at(epoch)
    net = as_network(model)
    coords = signal.coords
    t0 = time.perf_counter()
    try:
        part = _maybe_partition(net, signal)
    except Exception as err:  # noqa: BLE001 - reported, the rest still runs
        notes.append(f"{job['name']} seed {job['seed']} epoch {epoch}: partition failed: {err!r}")
        part = None
    t_part = time.perf_counter() - t0
    step = (signal.coord_range[1] - signal.coord_range[0]) / max(signal.grid_shape)
    which = job.get("encoded_crossings", "all")
    last = epoch == job["analyse"][-1]
    enc_cross = which == "all" or (which == "end" and last) or \
        (which == "ends" and (last or epoch == job["analyse"][0]))
    feats = sample_features(net, coords, grid_shape=signal.grid_shape, domain=_domain(signal),
                            radius=step, partition=part, encoded_crossings=enc_cross)
    if feats.meta.get("missing"):
        notes.append(f"{job['name']}: {feats.meta['missing']}")
    x_in = net.encoding.encode_numpy(coords) if net.encoding is not None else coords
    pats = net.patterns(x_in)
    out = {
        "epoch": int(epoch),
        "features": {k: np.asarray(v) for k, v in feats.items()},
        "kinds": dict(feats.kind),
        "n_regions": feats.meta.get("n_regions"),
        "n_pieces": feats.meta.get("n_pieces"),
        "n_patterns_sampled": feats.meta.get("n_patterns_sampled"),
        "partition_seconds": t_part,
        "hamming_patch": float(_hamming_patch(pats, signal.grid_shape)),
        "hamming_neighbour": float(np.mean(feats.meta["neighbour_hamming"])),
        "dead": _dead_fraction(pats, net.widths),
        "normal_cos": _normal_cosines(net),
        "mean_loss": float(run.losses[np.searchsorted(run.record_epochs, epoch)].mean()),
    }
    if part is not None and "region" in feats:
        hit = np.unique(np.asarray(feats["region"]))
        out["measure_all_median"] = float(np.median(part.measure))
        out["measure_hit_median"] = float(np.median(part.measure[hit]))
        out["regions_with_samples"] = int(hit.size)
    if "neighbour_crossings" in feats.meta:
        c = np.asarray(feats.meta["neighbour_crossings"], float)
        out["crossings_neighbour"] = float(c.mean())
        out["mean_chord"] = float(step / c.mean()) if c.mean() > 0 else float("inf")
    for k in ("dist_boundary", "dist_paper", "dist_layer1", "dist_polygon"):
        if k in feats:
            v = np.asarray(feats[k], float)
            out[f"mean_{k}"] = float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else None
    if "distances" in feats.meta:
        # exact (local normal) over the authors' |z|/|W_l[k]|, per deeper layer and overall
        dd = feats.meta["distances"]
        ratios = {}
        for li in range(2, len(net.widths) + 1):
            with np.errstate(invalid="ignore", divide="ignore"):
                r = dd[f"layer{li}"] / dd[f"paper_layer{li}"]
            r = r[np.isfinite(r)]
            ratios[f"l{li}"] = float(np.median(r)) if r.size else None
        with np.errstate(invalid="ignore", divide="ignore"):
            r = dd["all"] / dd["paper"]
        r = r[np.isfinite(r)]
        ratios["all"] = float(np.median(r)) if r.size else None
        out["paper_distance_ratio"] = ratios

    # gradients: confusion of neighbour and distant pairs, predicted change
    rec = run.record_epochs
    try:
        from . import gram

        X = torch.as_tensor(coords, dtype=torch.float32)
        Y = torch.as_tensor(signal.targets, dtype=torch.float32)
        fac = gram.backprop_factors(model, X, Y)
        npairs = gram.neighbour_pairs(signal.grid_shape)
        dpairs = gram.distant_pairs(signal.grid_shape, job["n_distant"], job["seed"])
        cn = np.asarray(gram.confusion(model, X, Y, npairs, factors=fac), float)
        cd = np.asarray(gram.confusion(model, X, Y, dpairs, factors=fac), float)
        out["confusion"] = {"neighbour": cn, "distant": cd,
                            "neighbour_below": float(np.mean(cn[np.isfinite(cn)] < -0.5)),
                            "distant_below": float(np.mean(cd[np.isfinite(cd)] < -0.5)),
                            "neighbour_mean": float(np.nanmean(cn)),
                            "distant_mean": float(np.nanmean(cd))}
        rid, adj = _region_adjacency(feats, part, pats, signal.grid_shape)
        pred = gram.predicted_loss_change(model, X, Y, run.config.lr, groups=(rid, adj),
                                          factors=fac)
        pred = {k: np.asarray(v, float) for k, v in pred.items() if k != "total"}
        out["predicted"] = pred
        i0 = int(np.searchsorted(rec, epoch))
        if i0 + 1 < len(rec):
            observed = run.losses[i0 + 1] - run.losses[i0]
            out["observed_change"] = observed
            out["agreement"] = prediction_agreement(pred, observed, n_boot=job["n_boot"],
                                                    seed=job["seed"])
        out["gd_step"] = _gd_step_check(model, X, Y, run.config.lr, sum(pred.values()))
    except ImportError as err:
        notes.append(f"gradient measures skipped ({err})")

    # coupling: features at this checkpoint against speed after it
    E = int(run.config.epochs)
    w = max(int(round(job["window"] * E)), int(rec[1] - rec[0]) if len(rec) > 1 else 1)
    speeds = _window_speeds(run.losses, rec, epoch, w, job["eps"])
    if epoch == E:
        speeds = {"final_loss": run.losses[-1]}
    if extra_speeds:
        speeds = {**speeds, **extra_speeds}
    out["speeds"] = speeds
    out["window"] = w
    if "predicted" in out and "rate" in speeds:
        # predicted relative rate -(d loss)/loss against the measured rate in the window
        loss_e = run.losses[int(np.searchsorted(rec, epoch))]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = {k: -v / loss_e for k, v in out["predicted"].items()}
        out["agreement_window"] = prediction_agreement(rel, speeds["rate"],
                                                       n_boot=job["n_boot"], seed=job["seed"])
    feat_for_corr = {k: v for k, v in feats.items() if k != "region"}
    out["coupling"] = correlation_table(feat_for_corr, speeds, n_boot=job["n_boot"],
                                        seed=job["seed"],
                                        tag={"run": job["name"], "seed": job["seed"],
                                             "epoch": int(epoch)})
    for row in out["coupling"]:
        row["kind"] = feats.kind.get(row["feature"], "")
    key = "rate" if "rate" in speeds else next(iter(speeds))
    out["binned"] = {k: binned_curve(feats[k], speeds[key]) for k in
                     ("occupancy", "hamming", "crossings", "dist_boundary", "density", "measure")
                     if k in feats}
    out["binned_speed"] = key
    return out


def analyse_run(run, job):
    """All measurements of a trained run (see :func:`run_job`)."""
    notes = []
    signal = run.signal
    res = {"name": job["name"], "seed": job["seed"], "dim": signal.dim,
           "grid_shape": tuple(signal.grid_shape), "n": signal.n,
           "encoding": run.config.encoding if not hasattr(run.config.encoding, "forward")
           else type(run.config.encoding).__name__,
           "config": {k: v for k, v in run.config.to_dict().items() if k != "encoding"},
           "record_epochs": run.record_epochs, "mean_loss": run.mean_loss,
           "train_seconds": float(run.seconds)}
    try:
        speeds, censored = _global_speeds(run, job["eps"])
        res["speeds"] = speeds
        res["censored"] = float(censored.mean())
    except ImportError as err:
        notes.append(f"global speed measures skipped ({err})")
    try:
        from . import convergence as cv

        ep, energy, bands = cv.residual_energy_from_run(run)
        res["residual_energy"] = {"epochs": np.asarray(ep), "energy": np.asarray(energy),
                                  "bands": np.asarray(bands)}
    except ImportError as err:
        notes.append(f"residual energy skipped ({err})")
    # whole-run speed (from init) is coupled to the features at init
    extra = {f"run_{k}": v for k, v in res.get("speeds", {}).items() if k != "final_loss"}
    res["checkpoints"] = [analyse_checkpoint(run, e, job, notes, extra if e == 0 else None)
                          for e in job["analyse"]]
    res["notes"] = sorted(set(notes))
    return res


def run_job(job):
    """Train one (experiment, seed) job and analyse it; returns a picklable dict."""
    import torch

    from .train import train

    threads = job.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    run = train(job["signal"], job["config"], progress=False)
    res = analyse_run(run, job)
    res["seconds"] = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------- driver
def _progress_fn(progress):
    if callable(progress):
        return progress
    show = progress if progress is not None else (hasattr(sys.stderr, "isatty")
                                                  and sys.stderr.isatty())
    if show:
        return lambda msg: print(msg, file=sys.stderr, flush=True)
    return lambda msg: None


def run_study(preset="quick", out_dir="report", executor=None, progress=None, seeds=None):
    """Run the study and write ``out_dir/report.md``; returns its path.

    Parameters
    ----------
    preset : {"quick", "paper", "tiny"} or dict
        A name from :data:`PRESETS`, or a dict with an ``experiments`` list
        in the same form (other keys default to the quick preset's).
    out_dir : str or path-like
        Report folder (created); figures and data go beside ``report.md``.
    executor : concurrent.futures.Executor, optional
        Runs the jobs (``submit``). Default: 2 local processes. Pass
        ``SerialExecutor()`` to stay in-process, or a dask client's
        ``get_executor()``.
    progress : bool, callable or None
        ``True`` prints one line per finished job to stderr; a callable gets
        the messages; ``None`` prints when stderr is a terminal.
    seeds : sequence of int, optional
        Overrides the preset's seeds.

    Returns
    -------
    str : the path of ``report.md``.
    """
    from concurrent.futures import as_completed

    from .report import write_report

    say = _progress_fn(progress)
    if executor is not None and not hasattr(executor, "submit"):
        raise ValueError(f"executor must be a concurrent.futures.Executor (with submit), got "
                         f"{type(executor).__name__}")
    jobs, cfg, name = build_jobs(preset, seeds)
    os.makedirs(out_dir, exist_ok=True)
    own = executor is None
    if own:
        executor = _default_executor(2)
    t0 = time.perf_counter()
    say(f"study {name!r}: {len(jobs)} jobs")
    results = []
    job_dir = os.path.join(out_dir, "jobs")
    os.makedirs(job_dir, exist_ok=True)
    try:
        futures = {executor.submit(run_job, j): j for j in jobs}
        for k, fut in enumerate(as_completed(futures), 1):
            j = futures[fut]
            res = fut.result()
            results.append(res)
            _save_job(res, job_dir)
            say(f"[{k}/{len(jobs)}] {j['name']} seed {j['seed']} done in {res['seconds']:.1f} s "
                f"(final mean loss {res['mean_loss'][-1]:.4g})")
    finally:
        if own:
            executor.shutdown()
    order = {(j["name"], j["seed"]): i for i, j in enumerate(jobs)}
    results.sort(key=lambda r: order[(r["name"], r["seed"])])
    wall = time.perf_counter() - t0
    path = write_report(results, out_dir, preset=name, description=cfg.get("description", ""),
                        wall_seconds=wall)
    say(f"report: {path} ({wall:.0f} s)")
    return path


def _save_job(res, job_dir):
    """Keep every finished job's result (pickle) so a partial study can be reported."""
    import pickle

    path = os.path.join(job_dir, f"{res['name']}_s{res['seed']}.pkl")
    with open(path, "wb") as fh:
        pickle.dump(res, fh, protocol=pickle.HIGHEST_PROTOCOL)


def report_from_jobs(out_dir, preset="partial", description=""):
    """Write ``report.md`` from the job results saved in ``out_dir/jobs`` (for
    instance of an interrupted study); returns its path. Loads pickles: only
    use it on folders you wrote yourself."""
    import glob
    import pickle

    from .report import write_report

    files = sorted(glob.glob(os.path.join(out_dir, "jobs", "*.pkl")))
    if not files:
        raise ValueError(f"no saved job results in {os.path.join(out_dir, 'jobs')!r}")
    results = []
    for f in files:
        with open(f, "rb") as fh:
            results.append(pickle.load(fh))
    results.sort(key=lambda r: (r["dim"] != 2, r["name"], r["seed"]))
    return write_report(results, out_dir, preset=preset, description=description)


def main_study(argv=None):
    """``regions study``-style entry point: ``[--preset P] [--out DIR] [--workers N]
    [--seeds 0,1] [--progress/--no-progress]``; returns the exit code."""
    import argparse

    p = argparse.ArgumentParser(prog="regions study", description="Run the study.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--out", default="report")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seeds", default=None)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error(f"--workers must be >= 1, got {a.workers}")
    seeds = [int(s) for s in a.seeds.split(",")] if a.seeds else None
    ex = SerialExecutor() if a.workers == 1 else _default_executor(a.workers)
    try:
        path = run_study(a.preset, a.out, executor=ex, progress=a.progress, seeds=seeds)
    finally:
        ex.shutdown()
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_study())
