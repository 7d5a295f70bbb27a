"""Everything measured on one trained run: per-sample speed, exact region
features at each analysed checkpoint, region counts, Hamming distances, dead
neurons, hyperplane-normal cosines, the training-dynamics measures
(:mod:`regions.study.dynamics`: gradient confusion, the first-order
prediction, the NTK measures), and the coupling tables.
:func:`analyse_run` returns one :class:`regions.study.results.RunResult` per
run; the claims, report and figures read only that record.
"""
from __future__ import annotations

import time

import numpy as np

from . import grid
from .convergence import run_speeds, window_speeds
from .dynamics import agreement, gradient_measures
from .results import BandEnergy, Checkpoint, CouplingRow, RunResult

__all__ = ["analyse_run", "analyse_checkpoint", "dead_fraction"]


def _domain(signal):
    lo, hi = signal.coord_range
    if signal.dim == 1:
        return (lo, hi)
    return ((lo, hi), (lo, hi))


def dead_fraction(pats, widths):
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


def _measured_here(job, key, epoch):
    """Whether the costly measurement ``job[key]`` (``"all"``, ``"ends"``, ``"end"``,
    ``"none"``) runs at analysed checkpoint ``epoch``."""
    which = job.get(key, "all")
    last, first = epoch == job["analyse"][-1], epoch == job["analyse"][0]
    return which == "all" or (which == "end" and last) or (which == "ends" and (last or first))


def _exact_partition(net, signal):
    """The exact partition of the checkpoint over the signal's domain, or None
    for encoded 2D models (their whole partition takes minutes to an hour at the
    study's sizes; the faces holding the samples are cut instead, see
    :func:`regions.study.geometric_features.encoded_2d_face_features`, and where
    the job asks for it only the count is kept, :func:`_encoded_regions`)."""
    from ..api import partition

    if net.encoding is not None and signal.dim == 2:
        return None
    return partition(net, _domain(signal), max_regions=2_000_000)


#: The side of the box (a fraction of the domain's, from its lower-left corner) whose
#: encoded 2D partition is kept with a run for the report's picture (at L <= 3; halved
#: for each L above, so that the picture holds some thousands of faces)
CROP = 0.25

#: From this L on, an encoded 2D whole partition is made on TILES x TILES tiles in
#: this process (:func:`regions.encoded.partition_tiles`, one tile's faces in memory
#: while it is cut): one run at L = 5 would hold its second layer's rows for ~430k
#: first-layer faces (~9 GB)
TILED_FROM_L = 4
TILES = 8


def _encoded_regions(feats, net, signal):
    """The whole exact partition of an encoded 2D checkpoint (where the job's
    ``encoded_regions`` asks for it): ``(fields, crop)``, ``fields`` the checkpoint's
    values from it, its distinct patterns as ``n_regions`` and its faces as
    ``n_pieces`` (as for encoded 1D), the median face area as
    ``measure_all_median``, its time as ``partition_seconds``; and the
    samples' ``density`` in ``feats`` made exact (faces within the feature radius of the sample,
    as for raw runs; it replaces the sampled window count). The samples' own faces
    still come from :func:`regions.study.geometric_features.encoded_2d_face_features`
    (at the study's finer tolerance). The crossings are not certified here (the
    count does not depend on it; the certificate would add about a sixth).

    From L = :data:`TILED_FROM_L` on the partition is made on :data:`TILES` x
    :data:`TILES` tiles in this process (bounded memory; faces thinner than a few
    ``tol`` may differ in number from one run, see :mod:`regions.encoded.tiles`).

    ``crop`` is the partition of the lower-left corner of the domain (a box
    :data:`CROP` of its side, halved for each L above 3: about 1/16 of the faces at
    L = 2, 1/256 at L = 5), saved with the run for the report's picture of the
    curved regions (the whole partition, tens of MB per checkpoint, is not
    kept)."""
    import shapely

    from ..domain import Box, as_domain
    from ..encoded import partition_encoded_plane
    from .feature_table import EXACT

    from ..encoded import partition_tiles

    L = getattr(net.encoding, "L", None)
    t0 = time.perf_counter()
    if L is not None and L >= TILED_FROM_L:
        p = partition_tiles(net, _domain(signal), tiles=TILES, workers=1, certify=False)
    else:
        p = partition_encoded_plane(net, as_domain(_domain(signal), 2), max_regions=2_000_000,
                                    certify=False)
    fields = {"partition_seconds": time.perf_counter() - t0, "n_regions": int(p.n_patterns),
              "n_pieces": len(p), "measure_all_median": float(np.median(p.measure))}
    radius = float(feats.meta["radius"])
    hit = shapely.STRtree(p.geoms).query(shapely.points(signal.coords), predicate="dwithin",
                                         distance=radius)
    feats.add("density", np.bincount(hit[0], minlength=len(signal.coords)), EXACT,
              f"faces meeting the disk of radius {radius:.3g} (whole exact partition)")
    (x0, x1), (y0, y1) = _domain(signal)
    side = CROP / 2.0 ** max(0, (L or 0) - 3)
    crop = Box((x0, x0 + side * (x1 - x0)), (y0, y0 + side * (y1 - y0)))
    return fields, partition_encoded_plane(net, crop, certify=False)


def _shape_features(out, feats, part, step, n_layers):
    """The checkpoint's summaries of the region features (mean distances,
    crossings, region sizes, the authors' distance ratio)."""
    if part is not None and "region" in feats:
        hit = np.unique(np.asarray(feats["region"]))
        out.measure_all_median = float(np.median(part.measure))
        out.measure_hit_median = float(np.median(part.measure[hit]))
        out.regions_with_samples = int(hit.size)
    elif feats.kind.get("region") == "exact" and "measure" in feats:
        # the exact faces holding the samples (encoded 2D): no whole partition
        rid = np.asarray(feats["region"])
        hit, first = np.unique(rid, return_index=True)
        out.measure_hit_median = float(np.median(np.asarray(feats["measure"])[first]))
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


def _coupling(out, run, feats, job, extra_speeds):
    """Features at the checkpoint against the per-sample speed after it."""
    from .coupling import correlation_table, prediction_agreement

    rec, epoch = run.record_epochs, out.epoch
    E = int(run.config.epochs)
    w = max(int(round(job["window"] * E)), int(rec[1] - rec[0]) if len(rec) > 1 else 1)
    speeds = window_speeds(run.losses, rec, epoch, w, job["eps"])
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
        out.agreement_window = agreement(prediction_agreement(rel, speeds["rate"],
                                                               n_boot=job["n_boot"],
                                                               seed=job["seed"]))
    feat_for_corr = {k: v for k, v in feats.items() if k != "region"}
    rows = correlation_table(feat_for_corr, speeds, n_boot=job["n_boot"], seed=job["seed"],
                             tag={"run": job["name"], "seed": job["seed"], "epoch": int(epoch)})
    out.coupling = [CouplingRow(**{**row, "kind": feats.kind.get(row["feature"], "")})
                    for row in rows]


def analyse_checkpoint(run, epoch, job, notes, extra_speeds=None):
    """Everything measured at one checkpoint of a run: ``(Checkpoint, partition)``
    (the exact partition, None where there is none; for an encoded 2D run with a
    whole partition, that partition over the lower-left :data:`CROP` of the domain,
    kept for pictures)."""
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
    exact_2d_missing = part is None and not (net.encoding is not None and signal.dim == 2)
    enc_faces = _measured_here(job, "encoded_faces", epoch) and net.encoding is not None \
        and signal.dim == 2
    feats = sample_features(net, coords, grid_shape=signal.grid_shape, domain=_domain(signal),
                            radius=step, partition=False if exact_2d_missing else part,
                            encoded_crossings=_measured_here(job, "encoded_crossings", epoch),
                            encoded_faces=enc_faces)
    if feats.meta.get("missing"):
        notes.append(f"{job['name']}: {feats.meta['missing']}")
    x_in = net.encoding.encode_numpy(coords) if net.encoding is not None else coords
    pats = net.patterns(x_in)
    whole = {"n_regions": feats.meta.get("n_regions"), "n_pieces": feats.meta.get("n_pieces"),
             "partition_seconds": t_part}
    crop = None              # an encoded 2D run's corner partition, kept for pictures only
    if "encoded_regions" in job and _measured_here(job, "encoded_regions", epoch):
        try:
            fields, crop = _encoded_regions(feats, net, signal)
            whole.update(fields)
        except Exception as err:  # noqa: BLE001 - reported; the rest of the analysis runs
            notes.append(f"{job['name']} seed {job['seed']} epoch {epoch}: whole encoded 2D "
                         f"partition failed: {err!r}")
    out = Checkpoint(
        epoch=int(epoch),
        mean_loss=float(run.losses[np.searchsorted(run.record_epochs, epoch)].mean()),
        n_patterns_sampled=feats.meta.get("n_patterns_sampled"),
        hamming_patch=float(grid.patch_hamming(pats, signal.grid_shape)),
        hamming_neighbour=float(np.mean(feats.meta["neighbour_hamming"])),
        dead=dead_fraction(pats, net.widths), normal_cos=_normal_cosines(net),
        compile_seconds=t_compile, **whole,
        features={k: np.asarray(v) for k, v in feats.items()}, kinds=dict(feats.kind))
    _shape_features(out, feats, part, step, len(net.widths))
    gradient_measures(out, run, model, feats, part, pats, job)
    _coupling(out, run, feats, job, extra_speeds)
    return out, part if part is not None else crop


def analyse_run(run, job):
    """All measurements of a trained run (see :func:`regions.study.runner.run_job`):
    a :class:`regions.study.results.RunResult`. An arm of the half-image
    intervention (:func:`regions.study.intervention.is_intervention`) gets its
    own, lighter analysis (:func:`regions.study.intervention.analyse_intervention`)."""
    from .bands import band_energy_from_run
    from .intervention import analyse_intervention, is_intervention

    if is_intervention(run.config):
        return analyse_intervention(run, job)
    notes = []
    signal = run.signal
    speeds, censored = run_speeds(run, job["eps"])
    ep, ratio, bands = band_energy_from_run(run)
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
