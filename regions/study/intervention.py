"""An intervention on region density: positional encoding on one half of the
image only, and its causal effect on where the network converges.

Design
------
Two arms share everything but the encoding of one area (the *inside*,
``x < threshold``, by default the left half of the image):

* **treated**: :class:`HalfEncoding` ``where="inside"`` feeds
  ``[x, y, m(p) PE_L(p)]`` with ``m(p) = 1`` inside and 0 outside, so inside
  the network sees the paper's positional encoding (dense regions) beside the
  raw coordinates, outside the raw coordinates only;
* **control**: :class:`HalfEncoding` ``where="nowhere"``: the same input width
  with the encoded features zero everywhere (raw coordinates everywhere).

Both arms of one seed start from the *same* weights (the same input width,
the same ``torch.manual_seed``) and fit the same target (the seed's noise
draw), so the only difference between them is the encoding inside. The
seeds (each a training seed and a target draw) are the units of
replication. The manipulation is checked on the samples: the treated arm
must have a larger neighbour Hamming distance (more boundaries between
neighbouring samples) inside than outside, relative to the control arm.

Measures (:func:`analyse_intervention`, stored as
:class:`regions.study.results.Intervention`)
    per area, the mean per-sample loss at every recorded epoch and the log
    loss drop ``log(L_area(0) / L_area(t))`` (larger = faster), the residual
    energy ratio per frequency band of each area's sub-grid
    (:func:`regions.study.bands.band_residual_ratio` on the area as its
    own grid: the areas are column blocks), and per analysed checkpoint the
    distinct patterns and the mean neighbour Hamming distance inside each area.
Effects (:func:`intervention_effects`)
    per optimiser, at the early epoch (the record nearest :data:`EARLY_FRACTION`
    of the epochs) and at the end, with the seeds as units and a Student-t
    interval over them (:func:`regions.study.stats.pool`):
    ``within`` = treated arm, inside minus outside log drop;
    ``did`` = that minus the same difference in the control arm (difference
    in differences: the causal effect of the encoding on the inside's
    convergence relative to the outside's);
    ``direct`` = treated minus control, inside; ``spillover`` = treated minus
    control, outside (the shared weights carry the intervention across);
    ``band_did`` per band: the difference in differences of the band's log
    residual drop; ``density`` = treated arm's log(mean neighbour Hamming
    distance inside / outside) minus the control arm's (the manipulation
    check: the distinct patterns saturate at one per sample on small grids,
    the Hamming distance, the boundaries crossed between neighbours, does not).

Examples
--------
>>> import torch
>>> enc = HalfEncoding(2)
>>> enc(torch.tensor([[0.25, 0.5], [0.75, 0.5]], dtype=torch.float64)).shape
torch.Size([2, 10])
>>> enc(torch.tensor([[0.75, 0.5]], dtype=torch.float64))[0, 2:].abs().max().item()
0.0
"""
from __future__ import annotations

import numpy as np
import torch

from ..encoding import PositionalEncoding

__all__ = ["HalfEncoding", "ARMS", "EARLY_FRACTION", "is_intervention", "inside_mask",
           "hidden_patterns", "analyse_intervention", "intervention_effects",
           "effects_markdown", "effects_figure"]

#: The two arms: where the encoded features are switched on.
ARMS = {"treated": "inside", "control": "nowhere"}
#: The early epoch of an effect: the record nearest this share of the epochs.
EARLY_FRACTION = 0.1


class HalfEncoding(torch.nn.Module):
    """``[x, y, m(p) PE_L(p)]``: raw 2D coordinates and the paper's positional
    encoding (:class:`regions.encoding.PositionalEncoding`, ``4 L`` features)
    switched on by ``m(p)`` only where ``p[axis] < threshold`` (``where="inside"``)
    or nowhere (``where="nowhere"``, the control arm: the same input width).

    No trainable parameters (the study precomputes it once); the settings are
    buffers, so they enter the state dict and the study's job key.

    Parameters
    ----------
    L : int
        Frequencies of the encoding.
    where : {"inside", "nowhere"}
        Where the encoded features are on.
    threshold : float
        The inside is ``p[axis] < threshold``.
    axis : {0, 1}
        0: x (columns), 1: y (rows).
    """

    in_features = 2

    def __init__(self, L, where="inside", threshold=0.5, axis=0):
        super().__init__()
        if where not in ("inside", "nowhere"):
            raise ValueError(f"where must be 'inside' or 'nowhere', got {where!r}")
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 (x) or 1 (y), got {axis!r}")
        threshold = float(threshold)
        if not np.isfinite(threshold):
            raise ValueError(f"threshold must be finite, got {threshold!r}")
        self.pe = PositionalEncoding(int(L), in_features=2)
        self.L, self.where, self.threshold, self.axis = int(L), where, threshold, int(axis)
        self.out_features = 2 + 4 * self.L
        self.register_buffer("setting", torch.tensor(
            [self.L, self.axis, threshold, 1.0 if where == "inside" else 0.0],
            dtype=torch.float64))

    def inside(self, x):
        """Boolean ``(B,)``: the samples of ``x`` in the inside area."""
        return x[:, self.axis] < self.threshold

    def forward(self, x):
        pe = self.pe(x)
        if self.where == "inside":
            pe = pe * self.inside(x).to(pe.dtype)[:, None]
        else:
            pe = torch.zeros_like(pe)
        return torch.cat([x, pe.to(x.dtype)], dim=1)

    def extra_repr(self):
        return f"L={self.L}, where={self.where!r}, inside: p[{self.axis}] < {self.threshold:g}"


def is_intervention(config):
    """Whether a :class:`~regions.study.training_config.TrainConfig` is an arm
    of this intervention (its encoding a :class:`HalfEncoding`)."""
    return isinstance(getattr(config, "encoding", None), HalfEncoding)


def inside_mask(coords, encoding):
    """``(N,)`` bool: the samples in the inside area of ``encoding``."""
    return np.asarray(coords)[:, encoding.axis] < encoding.threshold


def hidden_patterns(model, coords):
    """``(N, n_hidden)`` bool activation patterns (pre-activation > 0 of every
    ReLU, in layer order) of a ``Sequential`` at ``coords`` (float64)."""
    import copy

    m = copy.deepcopy(model).double()
    x = torch.as_tensor(np.asarray(coords), dtype=torch.float64)
    out = []
    with torch.no_grad():
        for layer in m:
            if isinstance(layer, torch.nn.ReLU):
                out.append((x > 0).numpy())
            x = layer(x)
    return np.concatenate(out, axis=1)


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
    from .bands import band_residual_ratio, default_bands

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
    from . import grid
    from .analysis import dead_fraction
    from .bands import band_energy_from_run
    from .convergence import run_speeds, window_speeds
    from .coupling import correlation_table
    from .feature_table import EXACT, SAMPLED, mean_over_pairs, occupancy
    from .results import BandEnergy, Checkpoint, CouplingRow, Intervention, RunResult

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


# ----------------------------------------------------------------------------- effects
def _log_drop(curve, epochs, epoch):
    """``log(curve[0] / curve[at epoch])`` along the first axis."""
    i = int(np.searchsorted(epochs, epoch))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(curve[0] / curve[i])


def _arm_values(iv, when):
    """Per-area log drops of the loss and per band, and log patterns, of one
    arm at ``when`` ("early" or "end")."""
    epochs = np.asarray(iv.epochs)
    epoch = iv.early_epoch if when == "early" else int(epochs[-1])
    loss = _log_drop(iv.area_loss, epochs, epoch)  # (2,)
    b_ep = np.asarray(iv.band_epochs)
    b_epoch = b_ep[np.argmin(np.abs(b_ep - epoch))]
    band = _log_drop(iv.band_ratio, b_ep, b_epoch)  # (2, B)
    a_ep = np.asarray(iv.analysed_epochs)
    k = int(np.argmin(np.abs(a_ep - epoch)))
    with np.errstate(divide="ignore"):
        density = np.log(np.asarray(iv.area_hamming, float)[k])  # (2,)
    return {"epoch": epoch, "loss": loss, "band": band, "density": density,
            "pattern_epoch": int(a_ep[k])}


def intervention_effects(results):
    """The intervention's effects, one row (dict) per optimiser, statistic and
    time ("early", "end"), the seeds as units (paired: both arms of a seed).

    Every row has ``pair``, ``optimizer``, ``effect`` (``within``, ``control``,
    ``did``, ``direct``, ``spillover``, ``band_did``, ``density``), ``band``
    (``"(lo, hi]"`` for ``band_did``, else ``""``), ``when``, ``epoch``,
    ``estimate``, ``ci_low``, ``ci_high`` (Student-t 95% over the seeds, NaN
    for one seed), ``p_value`` (two-sided t-test against 0, not adjusted),
    ``n_units``, ``values`` (``{seed: value}``) and ``meaning``. Log drops
    are natural logs: an effect of ``+0.7`` means the treated quantity fell
    about twice as much (``e^0.7``). Positive = faster inside (or, for
    ``density``, denser inside).

    Returns ``[]`` when the results hold no complete pair of arms.
    """
    from .stats import pool

    arms = {}
    for r in results:
        iv = getattr(r, "intervention", None)
        if iv is not None:
            arms.setdefault(iv.pair, {}).setdefault(iv.arm, {})[r.seed] = (r, iv)
    meaning = {
        "within": "treated arm: inside minus outside log loss drop",
        "control": "control arm: inside minus outside log loss drop (baseline asymmetry)",
        "did": "difference in differences: (treated in - out) - (control in - out) log drop",
        "direct": "inside: treated minus control log loss drop",
        "spillover": "outside: treated minus control log loss drop",
        "band_did": "difference in differences of the band's log residual-energy drop",
        "density": "log(neighbour Hamming inside / outside), treated minus control (the "
                   "manipulation check: boundaries crossed between neighbours)"}
    rows = []
    for pair, by_arm in arms.items():
        seeds = sorted(set(by_arm.get("treated", {})) & set(by_arm.get("control", {})))
        if not seeds:
            continue
        opt = by_arm["treated"][seeds[0]][1].optimizer
        for when in ("early", "end"):
            vals = {s: (_arm_values(by_arm["treated"][s][1], when),
                        _arm_values(by_arm["control"][s][1], when)) for s in seeds}
            t0 = vals[seeds[0]][0]
            per = {
                "within": {s: t["loss"][0] - t["loss"][1] for s, (t, c) in vals.items()},
                "control": {s: c["loss"][0] - c["loss"][1] for s, (t, c) in vals.items()},
                "did": {s: (t["loss"][0] - t["loss"][1]) - (c["loss"][0] - c["loss"][1])
                        for s, (t, c) in vals.items()},
                "direct": {s: t["loss"][0] - c["loss"][0] for s, (t, c) in vals.items()},
                "spillover": {s: t["loss"][1] - c["loss"][1] for s, (t, c) in vals.items()},
                "density": {s: (t["density"][0] - t["density"][1])
                            - (c["density"][0] - c["density"][1])
                            for s, (t, c) in vals.items()}}
            items = [(k, "", v) for k, v in per.items()]
            bands = by_arm["treated"][seeds[0]][1].bands
            for b, (lo, hi) in enumerate(bands):
                label = f"({lo:g}, {hi:g}]" if np.isfinite(hi) else f"> {lo:g}"
                items.append(("band_did", label, {
                    s: (t["band"][0, b] - t["band"][1, b]) - (c["band"][0, b] - c["band"][1, b])
                    for s, (t, c) in vals.items()}))
            for effect, band, v in items:
                v = {s: float(x) for s, x in v.items() if np.isfinite(x)}
                est = pool(v.values(), 0.0)
                rows.append({"pair": pair, "optimizer": opt, "effect": effect, "band": band,
                             "when": when,
                             "epoch": t0["pattern_epoch"] if effect == "density"
                             else t0["epoch"],
                             "estimate": est.estimate, "ci_low": est.ci_low,
                             "ci_high": est.ci_high, "p_value": est.p_value,
                             "n_units": est.n_units, "values": v, "meaning": meaning[effect]})
    return rows


def effects_markdown(results):
    """The effects of :func:`intervention_effects` as a markdown table (a
    string; empty when there is no complete pair of arms), for a report."""
    rows = intervention_effects(results)
    if not rows:
        return ""
    out = ["| comparison | optimiser | effect | band | epoch | estimate [95% CI] | seeds | p "
           "(unadjusted) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = (f" [{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]" if np.isfinite(r["ci_low"])
              else "")
        out.append(f"| {r['pair']} | {r['optimizer']} | {r['effect']} | {r['band']} | "
                   f"{r['when']} ({r['epoch']}) | {r['estimate']:+.3g}{ci} | {r['n_units']} | "
                   f"{r['p_value']:.2g} |")
    meanings = dict.fromkeys(f"`{r['effect']}`: {r['meaning']}" for r in rows)
    return "\n".join(out) + "\n\n" + "; ".join(meanings) + "."


def effects_figure(results, path):
    """The main effects (``did``, ``direct``, ``spillover``, ``density``, and
    ``band_did`` per band) with their intervals over the seeds, one panel per
    optimiser, early and end side by side; returns ``path`` (None when there
    is no complete pair of arms)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = intervention_effects(results)
    if not rows:
        return None
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 3.8),
                             layout="constrained", squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        sel = [r for r in rows if r["pair"] == pair and r["effect"] not in ("within", "control")]
        labels = list(dict.fromkeys((r["effect"] if not r["band"] else f"band {r['band']}")
                                    for r in sel))
        for k, (when, colour) in enumerate((("early", "tab:blue"), ("end", "tab:orange"))):
            rs = [r for r in sel if r["when"] == when]
            y = np.arange(len(rs)) + (k - 0.5) * 0.3
            est = np.array([r["estimate"] for r in rs])
            lo = np.array([r["ci_low"] for r in rs])
            hi = np.array([r["ci_high"] for r in rs])
            err = np.where(np.isfinite(lo), [est - lo, hi - est], 0.0)
            ax.errorbar(est, y, xerr=err, fmt="o", ms=4, color=colour, capsize=2,
                        label=f"{when} (epoch {rs[0]['epoch']})" if rs else when)
        ax.axvline(0.0, color="0.5", lw=0.8)
        ax.set_yticks(np.arange(len(labels)), labels, fontsize="small")
        ax.invert_yaxis()
        n = max(r["n_units"] for r in sel)
        ax.set_title(f"{pair} ({sel[0]['optimizer']}), {n} seeds", fontsize="medium")
        ax.set_xlabel("effect (natural log units; > 0: inside faster / denser)")
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize="small")
    fig.suptitle("Positional encoding on one half only: effect on that half's convergence "
                 "(mean and 95% t-interval over seeds)", fontsize="medium")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
