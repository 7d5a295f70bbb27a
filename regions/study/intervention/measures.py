"""The per-run analysis of an intervention arm: per-area losses, band
energies and patterns (:mod:`regions.study.intervention`)."""
from __future__ import annotations

import numpy as np

from .arms import EARLY_FRACTION, hidden_patterns, inside_mask

__all__ = ["analyse_intervention"]


def _column_blocks(signal, inside):
    """The two areas as column blocks of the grid: ``[(rows, shape)] * 2``
    (inside, outside); ``ValueError`` when an area is not a block of whole
    columns (or rows) or is empty."""
    H, W = signal.grid_shape
    grid = inside.reshape(H, W)
    out = []
    for area in (grid, ~grid):
        cols = np.flatnonzero(area.all(axis=0))
        rows = np.flatnonzero(area.all(axis=1))
        if area.any() and cols.size and area[:, cols].sum() == area.sum():
            shape = (H, cols.size)
        elif area.any() and rows.size and area[rows].sum() == area.sum():
            shape = (rows.size, W)
        else:
            raise ValueError("the intervention's areas must be non-empty blocks of whole grid "
                             f"columns or rows; got {int(grid.sum())} of {H * W} samples inside")
        out.append((np.flatnonzero(area.ravel()), shape))
    return out


def _area_bands(run, blocks):
    """Band energy ratio per area: ``(epochs, (K, 2, B) ratios, bands)``."""
    from ..bands import band_residual_ratio, default_bands

    sig = run.signal
    if run.predictions is not None:
        epochs = np.asarray(run.record_epochs, dtype=np.int64)
        res = np.asarray(run.predictions, dtype=np.float64) - sig.targets[None]
    else:
        epochs = np.asarray(run.checkpoint_epochs, dtype=np.int64)
        res = np.stack([run.predictions_at(e) - sig.targets for e in epochs])
    bands = default_bands(blocks[0][1])
    ratios = np.stack([band_residual_ratio(res[:, rows], shape, bands,
                                           targets=sig.targets[rows])
                       for rows, shape in blocks], axis=1)
    return epochs, ratios, bands


def analyse_intervention(run, job):
    """Analyse an arm of the intervention: a
    :class:`regions.study.results.RunResult` whose ``intervention`` holds the
    per-area measures, with light checkpoints (sampled patterns and the
    neighbour Hamming features coupled to the per-sample speed; no exact
    partition, gradient or kernel measures: the encoding is not one the exact
    engines take)."""
    from .. import grid
    from ..analysis import dead_fraction
    from ..bands import band_energy_from_run
    from ..convergence import run_speeds, window_speeds
    from ..coupling import correlation_table
    from ..feature_table import EXACT, SAMPLED, mean_over_pairs, occupancy
    from ..results import BandEnergy, Checkpoint, CouplingRow, Intervention, RunResult

    signal, cfg = run.signal, run.config
    enc = cfg.encoding
    if signal.dim != 2:
        raise ValueError(f"{job['name']}: the intervention needs a 2D signal, got "
                         f"{signal.dim}D")
    inside = inside_mask(signal.coords, enc)
    blocks = _column_blocks(signal, inside)
    rec = np.asarray(run.record_epochs)
    L = np.asarray(run.losses, float)
    area_loss = np.stack([L[:, rows].mean(axis=1) for rows, _ in blocks], axis=1)
    speeds, censored = run_speeds(run, job["eps"])
    ep, ratio, bands = band_energy_from_run(run)
    b_ep, b_ratio, b_bands = _area_bands(run, blocks)
    res = RunResult(
        name=job["name"], seed=job["seed"], dim=2, n=signal.n,
        grid_shape=[int(s) for s in signal.grid_shape],
        coord_range=[float(v) for v in signal.coord_range], coords=np.asarray(signal.coords),
        encoding=type(enc).__name__,
        config={k: v for k, v in cfg.to_dict().items() if k != "encoding"},
        record_epochs=rec, mean_loss=np.asarray(run.mean_loss), train_seconds=float(run.seconds),
        speeds=speeds, censored=float(censored.mean()),
        band_energy=BandEnergy(epochs=np.asarray(ep), ratio=np.asarray(ratio),
                               bands=np.asarray(bands, float)))
    pairs = grid.adjacent_pairs(signal.grid_shape)
    E = int(cfg.epochs)
    w = max(int(round(job["window"] * E)), int(rec[1] - rec[0]) if len(rec) > 1 else 1)
    n_pat, ham = [], []
    for e in job["analyse"]:
        pats = hidden_patterns(run.model_at(e), signal.coords)
        _, pid = np.unique(pats, axis=0, return_inverse=True)
        pid = pid.ravel()
        diff = np.count_nonzero(pats[pairs[:, 0]] != pats[pairs[:, 1]], axis=1).astype(float)
        per_sample = mean_over_pairs(diff, pairs, signal.n)
        n_pat.append([len(np.unique(pid[rows])) for rows, _ in blocks])
        both = [inside[pairs[:, 0]] & inside[pairs[:, 1]],
                ~inside[pairs[:, 0]] & ~inside[pairs[:, 1]]]
        ham.append([float(diff[b].mean()) if b.any() else np.nan for b in both])
        feats = {"hamming": per_sample, "occupancy": occupancy(pid),
                 "inside": inside.astype(float)}
        kinds = {"hamming": EXACT, "occupancy": SAMPLED, "inside": EXACT, "region": SAMPLED}
        sp = window_speeds(run.losses, rec, e, w, job["eps"]) if e < E else \
            {"final_loss": run.losses[-1]}
        rows = correlation_table(feats, sp, n_boot=job["n_boot"], seed=job["seed"],
                                 tag={"run": job["name"], "seed": job["seed"], "epoch": int(e)})
        widths = [cfg.width] * cfg.depth
        res.checkpoints.append(Checkpoint(
            epoch=int(e), mean_loss=float(L[np.searchsorted(rec, e)].mean()),
            n_patterns_sampled=int(pid.max()) + 1,
            hamming_patch=float(grid.patch_hamming(pats, signal.grid_shape)),
            hamming_neighbour=float(diff.mean()), dead=dead_fraction(pats, widths),
            features={**feats, "region": pid.astype(np.int64)}, kinds=kinds,
            speeds=sp, window=w,
            coupling=[CouplingRow(**{**r, "kind": kinds.get(r["feature"], "")}) for r in rows]))
    early = int(rec[np.argmin(np.abs(rec - EARLY_FRACTION * E))])
    res.intervention = Intervention(
        arm="treated" if enc.where == "inside" else "control",
        pair=str(job.get("intervention_pair", job["name"])), optimizer=cfg.optimizer,
        L=enc.L, inside=f"{'xy'[enc.axis]} < {enc.threshold:g}",
        inside_share=float(inside.mean()), early_epoch=early, epochs=rec, area_loss=area_loss,
        band_epochs=b_ep, band_ratio=b_ratio, bands=np.asarray(b_bands, float),
        analysed_epochs=np.asarray(job["analyse"], dtype=np.int64),
        area_patterns=np.asarray(n_pat, dtype=np.int64), area_hamming=np.asarray(ham, float))
    res.notes.append(f"{job['name']}: intervention arm (HalfEncoding): light analysis only "
                     "(sampled patterns, Hamming, per-area convergence), no exact partition, "
                     "gradient or kernel measures")
    return res
