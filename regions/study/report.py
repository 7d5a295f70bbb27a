"""Write the study's ``report.md``: tables, figures, the data behind them, and
a findings section checking each claim of the paper (holds / does not hold,
with the numbers).

:func:`write_report` takes the job results of :func:`regions.study.run_study`
(one dict per experiment and seed) and a folder. Layout::

    report.md
    figures/*.png, figures/partitions.gif
    data/summary.csv       one row per run, seed and analysed checkpoint
    data/coupling.csv      every (feature, speed) Spearman rho with its interval
    data/findings.csv      the claims table
    data/runs.npz          loss curves, band energies, per-sample features and speeds
"""
from __future__ import annotations

import csv
import dataclasses
import os
from collections import OrderedDict

import numpy as np

from . import figures, stats
from .claims import GROUPS, findings, measured_at, seed_correlations
from .intervention import effects_figure, effects_markdown
from .results import (Checkpoint, CouplingRow, Finding, RunResult, csv_columns, csv_row,
                      group_by_name)
from .store import atomic_write_text
from .text import correlation_summary as _rho_str
from .text import fmt as _fmt
from .text import markdown_table as _table
from .text import mean_sd as _ms

# findings: regions.study.claims
__all__ = ["write_report", "write_findings", "findings", "summary_rows"]

KEY_FEATURES = ("occupancy", "measure", "inradius", "density", "dist_boundary", "hamming",
                "crossings")


# ----------------------------------------------------------------------------- tables
def _scalar_columns():
    """The plain (scalar) ``csv`` columns of :class:`RunResult` and :class:`Checkpoint`."""
    return [f.metadata["csv"] for cls in (RunResult, Checkpoint) for f in dataclasses.fields(cls)
            if f.metadata.get("csv") and f.metadata["kind"] == "scalar"]


def summary_rows(results):
    """One row (dict) per run, seed and analysed checkpoint: the fields of
    :class:`RunResult` and :class:`Checkpoint` that the schema marks ``csv``.
    Every plain column is in every row (empty where not measured), so that the
    columns of ``summary.csv`` do not depend on what happened to be measured:
    ``compile_seconds``, for one, is empty in every row of a study whose worker
    processes had already compiled the engine."""
    scalars = _scalar_columns()
    rows = []
    for r in results:
        for c in r.checkpoints:
            row = csv_row(r, c)
            rows.append({**row, **{k: None for k in scalars if k not in row}})
    return rows


def _record_rows(records, cls):
    names = csv_columns(cls)
    return [{k: getattr(x, k) for k in names} for x in records]


def _write_csv(path, rows):
    keys = list(OrderedDict.fromkeys(k for row in rows for k in row))
    tmp = f"{path}.part"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for row in rows:
            w.writerow({k: "" if row.get(k) is None else row[k] for k in keys})
    os.replace(tmp, path)


def write_findings(found, path):
    """Write ``findings.csv``: one row per :class:`regions.study.results.Finding`,
    a column per field of the schema (atomically)."""
    _write_csv(path, _record_rows(found, Finding))


def _save_npz(path, results):
    arrays = {}
    for r in results:
        p = f"{r.name}_s{r.seed}"
        arrays[f"{p}/record_epochs"] = np.asarray(r.record_epochs)
        arrays[f"{p}/mean_loss"] = np.asarray(r.mean_loss)
        for k, v in r.speeds.items():
            arrays[f"{p}/speed/{k}"] = np.asarray(v)
        if r.band_energy is not None:
            arrays[f"{p}/band_energy/epochs"] = r.band_energy.epochs
            arrays[f"{p}/band_energy/ratio"] = r.band_energy.ratio
            arrays[f"{p}/band_energy/bands"] = r.band_energy.bands
        for c in r.checkpoints:
            q = f"{p}/epoch{c.epoch}"
            for k, v in c.features.items():
                arrays[f"{q}/feature/{k}"] = np.asarray(v)
            for k, v in c.speeds.items():
                arrays[f"{q}/speed/{k}"] = np.asarray(v)
            if c.observed_change is not None:
                arrays[f"{q}/observed_change"] = c.observed_change
                for k, v in c.predicted.items():
                    arrays[f"{q}/predicted/{k}"] = v
            if c.confusion is not None:
                arrays[f"{q}/confusion/neighbour"] = c.confusion.neighbour
                arrays[f"{q}/confusion/distant"] = c.confusion.distant
    tmp = f"{path}.part.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- report
def _findings_section(L, results, g, figs, found):
    """The findings table, the statistics behind it and the verdict rules."""
    L.append("## Findings\n")
    counts = OrderedDict((v, sum(f.verdict == v for f in found))
                         for v in ("holds", "does not hold", "inconclusive", "not tested"))
    L.append(f"{len(found)} findings: " + ", ".join(f"{k} {v}" for k, v in counts.items())
             + ". They come in groups, in this order: "
             + "; ".join(title for title, _ in GROUPS) + ".\n")
    replicated = any(f.n_units >= 2 for f in found)
    for verdict, what in () if not replicated else (("does not hold", "Claims that do not hold (the interval lies on the "
                           "other side of the threshold, with the FDR control)"),
                          ("holds", "Claims that hold")):
        hits = [f for f in found if f.verdict == verdict]
        if verdict == "holds" and hits:
            by_group = OrderedDict((t, sum(f.group == t for f in hits)) for t, _ in GROUPS)
            L.append(f"**{what}:** {len(hits)}, by group: "
                     + "; ".join(f"{t} {k}" for t, k in by_group.items() if k)
                     + " (each in the table below and in words after it).\n")
            continue
        if not hits:
            L.append(f"**{what}:** none.\n")
            continue
        L.append(f"**{what}:**\n")
        L += [f"- {f.claim} ({f.run}): {f.statistic} = {_fmt(f.estimate)} "
              f"[{_fmt(f.ci_low)}, {_fmt(f.ci_high)}], threshold "
              f"{'>' if f.alternative == 'greater' else '<'} {_fmt(f.null)}, "
              f"p_adj {_fmt(f.p_adjusted)}." for f in hits]
        L.append("")
    if not replicated:
        L.append("**Every finding is inconclusive by rule 2**: each experiment ran with one "
                 "seed, so there is no spread over runs to test against. The numbers are "
                 "still the measurements; run with several seeds (`--seeds 0,1,2`) for "
                 "verdicts.\n")
    L.append("**How each finding is tested.** A finding is one statistic measured once per "
             "run; the runs (seed x target) are the units of replication, never the samples "
             "inside a run. The per-run values are pooled by their mean with a Student-t "
             "interval over the runs "
             f"({100 * stats.LEVEL:g}%, n - 1 degrees of freedom) and a two-sided one-sample "
             "t-test against the claim's threshold, on the scale the `method` column names: "
             "`linear`, `log` for ratios (reported as the geometric-mean ratio) or `fisher` "
             "for correlations (the mean of atanh(rho), reported through tanh). Comparisons of "
             "two experiments are paired by seed. The p-values are adjusted over the whole "
             f"table with {stats.FDR_METHOD} (false discovery rate {stats.ALPHA}). The "
             "estimate and its interval are the effect size, in the units of the `statistic` "
             "column. With one run per experiment there is no interval and every finding is "
             "inconclusive by rule 2.\n")
    L.append("**Verdict rules**, checked in order (the first that applies gives the verdict; "
             "`data/findings.csv` has every column they read):\n")
    L.append(stats.rules_markdown() + "\n")
    header = ["#", "claim", "run", "statistic", "side", "estimate [CI]", "runs", "p_adj",
              "verdict", "paper"]
    rows = []
    for i, f in enumerate(found):
        side = ">" if f.alternative == "greater" else "<"
        ci = f" [{_fmt(f.ci_low)}, {_fmt(f.ci_high)}]" if f.n_units > 1 else ""
        rows.append([i + 1, f.claim, f.run, f.statistic, f"{side} {_fmt(f.null)}",
                     f"{_fmt(f.estimate)}{ci}", f.n_units,
                     "-" if not np.isfinite(f.p_adjusted) else _fmt(f.p_adjusted),
                     f"**{f.verdict}**", f.paper])
    L.append(_table(header, rows))
    L.append("\nEach finding in words: what was measured, the rule that decided it, and the "
             "verdict (per-run values in `data/findings.csv`):\n")
    group = None
    for i, f in enumerate(found):
        if f.group != group:
            group = f.group
            L.append(f"\n*{group[0].upper() + group[1:]}*\n")
        L.append(f"{i + 1}. {f.claim} ({f.run}). Measured: {f.measured}. "
                 f"**{f.verdict.capitalize()}** by rule {f.rule} ({stats.RULES[f.rule - 1][1]}).")
    L.append("")


def _runs_section(L, results, g, figs, found):
    """The table of runs and the loss curves."""
    L.append("## Runs\n")
    rows = []
    for name, rs in g.items():
        r0 = rs[0]
        c = r0.config
        rows.append([name, r0.dim, f"{tuple(r0.grid_shape)}", r0.encoding or "raw",
                     f"{c['depth']}x{c['width']}", c["optimizer"], c["lr"],
                     c["batch_size"] or "full", c["epochs"], len(rs),
                     _ms([r.mean_loss[0] for r in rs]), _ms([r.mean_loss[-1] for r in rs]),
                     _ms([r.train_seconds for r in rs], 2)])
    L.append(_table(["run", "dim", "grid", "encoding", "net", "optimizer", "lr", "batch",
                     "epochs", "seeds", "loss init", "loss end", "train s"], rows))
    L.append("")
    if figs.get("loss_curves"):
        L.append("![loss curves](figures/loss_curves.png)\n")


def _paper_table_section(L, results, g, figs, found):
    """The paper's table, measured exactly."""
    L.append("## The paper's table, measured exactly\n")
    rows = []
    for name, rs in g.items():
        rows.append([
            name,
            _ms([r.checkpoint("end").n_regions for r in rs]),
            f"{_ms([r.checkpoint('init').n_patterns_sampled for r in rs])} -> "
            f"{_ms([r.checkpoint('end').n_patterns_sampled for r in rs])} of {rs[0].n}",
            _ms([r.checkpoint("end").hamming_patch for r in rs]),
            _ms([r.checkpoint("end").crossings_neighbour for r in rs]),
            _ms_share(_over_seeds(rs, "end", "confusion", "neighbour_below")),
            _ms_share(_over_seeds(rs, "end", "confusion", "distant_below")),
            _ms([r.high_band_ratio_end() for r in rs]),
        ])
    L.append(_table(["run", "exact regions (end)", "distinct patterns on the samples (init -> end)",
                     "mean Hamming, 3x3 patches (end)", "exact crossings per neighbour step (end)",
                     "neighbour pairs cos < -0.5", "distant pairs cos < -0.5",
                     "high-band residual energy (end)"], rows))
    L.append("\nHamming counts differing hidden neurons (all layers); crossings are the exact "
             "number of region boundaries on the straight segment between neighbouring samples "
             "(rows and columns). For 1D runs the 3x3 patch is a 3-sample window and the high "
             "band is the top octave.\n")


def _regions_section(L, results, g, figs, found):
    """Region counts, sizes and distances over training."""
    L.append("## Regions over training\n")
    if figs.get("partitions"):
        L.append("The exact partition of the raw 2D run (colour = activation pattern, dots = "
                 "training samples):\n")
        L.append("![partitions](figures/partitions.png)\n")
    if figs.get("partitions_gif"):
        L.append("The same partition at every checkpoint, as an animation (a region keeps "
                 "its colour while its pattern survives):\n")
        L.append("![partitions over training](figures/partitions.gif)\n")
    pieces = any(c.n_pieces is not None for r in results for c in r.checkpoints)
    rows = []
    for r in results:
        for c in r.checkpoints:
            rows.append([r.name, r.seed, c.epoch, _fmt(c.mean_loss),
                         _fmt(c.n_regions)] + ([_fmt(c.n_pieces)] if pieces else [])
                        + [_fmt(c.n_patterns_sampled),
                         _fmt(c.hamming_patch), _fmt(c.crossings_neighbour),
                         _fmt(c.mean_dist_boundary), _fmt(c.mean_chord),
                         _fmt(100 * c.dead["all"]), _fmt(c.normal_cos.get("l2")),
                         _seconds(c.partition_seconds)])
    L.append(_table(["run", "seed", "epoch", "mean loss", "exact regions"]
                    + (["exact pieces"] if pieces else [])
                    + ["sampled patterns", "Hamming 3x3", "crossings/step",
                       "mean dist. to boundary", "mean chord", "% dead neurons",
                       "layer-2 normal cos", "partition s"], rows))
    L.append("\n*Exact regions* are the sets of inputs sharing one activation pattern: in 2D "
             "the partition's regions, in raw 1D its pieces (intervals). An encoded 1D network "
             "is periodic in its input, so one pattern can recur on several disjoint intervals: "
             "there *exact pieces* counts the intervals and *exact regions* the distinct "
             "patterns over them (pieces - regions = pieces repeating a pattern met elsewhere). "
             "*Sampled patterns* are the distinct patterns among the training samples. "
             "*Partition s* is the enumeration alone, `-` where no exact partition is computed "
             "(encoded 2D runs).\n")
    comp = [(r.name, r.seed, c.epoch, c.compile_seconds) for r in results for c in r.checkpoints
            if c.compile_seconds is not None]
    if comp:
        L.append("Compiling the engine's kernels (or loading them from the cache), once per "
                 "engine and worker process before its first partition, not included above: "
                 + "; ".join(f"{n} seed {s} epoch {e}: {t:.1f} s" for n, s, e, t in comp)
                 + ".\n")
    if figs.get("region_count"):
        L.append("![region count](figures/region_count.png)\n")
    if figs.get("boundary_distance"):
        L.append("![boundary distance](figures/boundary_distance.png)\n")
    if figs.get("region_sizes"):
        L.append("Region sizes at the end of training: the exact sizes, the sizes the training "
                 "samples suggest (a pattern's share of the samples times the domain; small "
                 "regions holding no sample are missing), and the exact density (1 / size of "
                 "the region at each point):\n")
        L.append("![region sizes](figures/region_sizes.png)\n")


def _coupling_section(L, results, g, figs, found):
    """Region features against per-sample speed."""
    L.append("## Coupling: region features against per-sample speed\n")
    L.append("Spearman rho between each feature at a checkpoint and the speed in the fixed "
             "window after it (`rate` = -d log loss / d epoch, larger = faster): with several "
             "seeds the Fisher-z mean over the seeds with its t-interval over the seeds; with "
             "one seed its rho and the bootstrap interval over its samples (not replications). "
             "At the last checkpoint the speed is replaced by the final loss. Every feature and "
             "speed measure (`rate`, `drop`, `epochs_to_eps` after the checkpoint; at init also "
             "the whole-run `run_epochs_to_eps` and `run_auc`, smaller = faster; the "
             "learning-phase `lp_*` below) is in `data/coupling.csv`. These tables are "
             "exploratory and carry no verdict: only the rows of the findings table are tested, "
             "with the multiplicity control over that table. A fixed window can lie on a loss "
             "plateau; the learning-phase tables below do not.\n")
    for name, rs in g.items():
        cps = rs[0].checkpoints
        feats = [k for k in KEY_FEATURES if k in cps[0].features]
        header = ["feature (kind)"] + [f"epoch {c.epoch}" + (" (final loss)" if i == len(cps) - 1
                                                               else "")
                                       for i, c in enumerate(cps)]
        has_run = "run_auc" in cps[0].speeds
        if has_run:
            header.insert(1, "epoch 0 vs whole-run AUC")
        rows = []
        for f in feats:
            row = [f"{f} ({cps[0].kinds.get(f, '')})"]
            if has_run:
                row.append(_rho_str(seed_correlations(results, name, f, "run_auc", 0)))
            for i, c in enumerate(cps):
                sp = "final_loss" if i == len(cps) - 1 else "rate"
                row.append(_rho_str(seed_correlations(results, name, f, sp, i)))
            rows.append(row)
        L.append(f"**{name}** (window {cps[0].window if cps[0].window is not None else '-'} "
                 "epochs)\n")
        L.append(_table(header, rows))
        L.append("")
    _learning_phase_tables(L, results, g)
    if figs.get("speed_vs_features"):
        L.append("Per-sample speed against each feature at the second analysed checkpoint "
                 "(one row per run, first seed): the samples, the median and interquartile "
                 "band in quantile bins of the feature, and Spearman rho:\n")
        L.append("![speed vs features](figures/speed_vs_features.png)\n")


def _learning_phase_tables(L, results, g):
    """Features against the learning-phase speeds, plain and partial."""
    from . import convergence as cv
    from .claims import LEARNING_SPEEDS
    from .coupling import LEARNING_FEATURES

    L.append("### In the learning phase\n")
    L.append(f"Window rule, fixed before any coupling was computed: with `excess` = (mean loss - "
             f"lowest mean loss) / (loss of the best constant predictor - lowest mean loss), "
             f"the window runs from the first record with excess <= {1 - cv.WINDOW_START:g} to "
             f"the first later record with excess <= {1 - cv.WINDOW_STOP:g}; the features are "
             "those of the last analysed checkpoint at or before its start. `lp_rate` = -d log "
             "loss / d epoch over the window; `lp_time` = epochs (interpolated on the log-loss "
             f"scale) until the loss falls to {cv.TIME_FRACTION:g} of its value at the window "
             "start, samples that never get there tied after all the others (all share the "
             "window, so that is all that is known of them; only ranks are used); `_partial` = "
             "partial Spearman controlling for the sample's own log loss and signed residual at "
             "the window start (intervals: Fisher z with variance 1.06 / (n - k - 3)).\n")
    for name, rs in g.items():
        cps = [(r, next((c for c in r.checkpoints if c.learning_window is not None), None))
               for r in rs]
        cps = [(r, c) for r, c in cps if c is not None]
        if not cps:
            L.append(f"**{name}**: no learning-phase window (the mean loss never falls below "
                     "the constant predictor's).\n")
            continue
        rows = []
        for f in LEARNING_FEATURES:
            if f not in cps[0][1].features:
                continue
            rows.append([f"{f} ({cps[0][1].kinds.get(f, '')})"]
                        + [_rho_str([c.rho(f, sp) for _, c in cps if c.rho(f, sp) is not None])
                           for sp in LEARNING_SPEEDS])
        where = ", ".join(f"seed {r.seed}: features at {c.epoch}, window "
                          f"{c.learning_window[0]}-{c.learning_window[1]}" for r, c in cps)
        L.append(f"**{name}** ({where})\n")
        L.append(_table(["feature (kind)"] + list(LEARNING_SPEEDS), rows))
        L.append("")


def _plural(k, word):
    return f"{k} {word}" + ("" if k == 1 else "s")


def _seconds(v):
    """Seconds for a table cell: two decimals, ``<0.01``, or ``-`` when nothing ran."""
    if v is None or not np.isfinite(v):
        return "-"
    return "<0.01" if v < 0.005 else f"{v:.2f}"


def _share(v):
    """A share in [0, 1] as a percentage cell: one decimal, ``<0.1%`` for a
    positive share below that, ``0%`` for none, ``-`` when not measured."""
    if v is None or not np.isfinite(v):
        return "-"
    if v == 0:
        return "0%"
    return "<0.1%" if 100 * v < 0.05 else f"{100 * v:.1f}%"


def _ms_share(values):
    """Mean ± sd over seeds of shares, as percentages (see :func:`_share`; the sd
    in percentage points, left out when the seeds agree exactly)."""
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "-"
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    if sd == 0:
        return _share(v[0])
    return f"{_share(float(np.mean(v)))} ± {100 * sd:.1f}"


def _get(obj, *path):
    for k in path:
        if obj is None:
            return None
        obj = obj.get(k) if isinstance(obj, dict) else getattr(obj, k)
    return obj


def _over_seeds(rs, which, *path):
    return [_get(r.checkpoint(which), *path) for r in rs]


def _artefacts_section(L, results, g, figs, found):
    """Where the old measurements were an artefact (issue 11 items 1-3), with the numbers."""
    L.append("## Where the old numbers were an artefact\n")
    L.append("Three of the study's earlier measurements measured something other than what "
             "their claim is about. The numbers below are from this run of the study "
             "(mean ± sd over seeds); the findings above test the corrected measurements.\n")
    items = []
    for name, rs in g.items():
        if rs[0].dim != 2 or rs[0].checkpoint("end").kernel_split is None:
            continue
        ep = rs[0].checkpoint("end").epoch
        items.append(
            f"{name}, epoch {ep}: {_ms_share(_over_seeds(rs, 'end', 'confusion', 'neighbour_below'))}"
            f" of neighbour pairs have gradient cosine < -0.5, "
            f"{_ms_share(_over_seeds(rs, 'end', 'confusion_residual', 'neighbour_below'))} have "
            f"residual cosine < -0.5 and "
            f"{_ms_share(_over_seeds(rs, 'end', 'confusion_kernel', 'neighbour_below'))} have kernel "
            f"similarity < -0.5; Pearson(gradient cosine, residual cosine) = "
            f"{_ms(_over_seeds(rs, 'end', 'kernel_split', 'pearson_residual'))}, against the "
            f"kernel similarity {_ms(_over_seeds(rs, 'end', 'kernel_split', 'pearson_kernel'))}")
    if items:
        L.append("**1. Confusion in 2D is set by the residuals, not the regions.** With three "
                 "output channels `g_i = (2/C) J_i^T r_i` and neighbours share nearly the same "
                 "Jacobian, so the gradient cosine follows the residual cosine:\n")
        L += [f"- {x}." for x in items]
        weak = [name for name, rs in g.items() if rs[0].dim == 2
                and rs[0].checkpoint("end").kernel_split is not None
                and np.nanmean([np.nan if v is None else v for v in
                                _over_seeds(rs, "end", "kernel_split", "pearson_residual")]) < 0.9]
        if weak:
            L.append("\nThe exception: " + ", ".join(
                f"{n} at the end (mean loss {_ms([r.mean_loss[-1] for r in g[n]])})"
                for n in weak) + ", where the image is nearly fitted: there the gradient cosine "
                "follows the residual cosine less (Pearson below 0.9) and the kernel part more.")
        L.append("\nThe kernel similarity `s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)` of neighbours "
                 "is positive: the regions make neighbours' kernels alike, but they cannot make "
                 "neighbours conflict. The paper's '% of neighbour pairs below -0.5' row is a "
                 "statement about the residuals; the region mechanism is tested on the kernel "
                 "part (section *Kernel against residual*).\n")
    items = []
    for name, rs in g.items():
        if rs[0].checkpoint("early").adam_step is None:
            continue
        from .claims import record_steps
        ep = rs[0].checkpoint("early").epoch
        items.append(
            f"{name}, epoch {ep}: the full-batch GD prediction against the change over the next "
            f"{_plural(record_steps(rs[0], 'early'), 'epoch')}, Spearman "
            f"{_ms(_over_seeds(rs, 'early', 'agreement', 'spearman', 'rho'))}; Adam's own step "
            f"against its one-step change, Pearson "
            f"{_ms(_over_seeds(rs, 'early', 'adam_step', 'pearson'))}; cosine of Adam's update "
            f"with the negative full-batch gradient "
            f"{_ms(_over_seeds(rs, 'early', 'adam_step', 'cos_full_gradient'))} (with the "
            f"batch's gradient {_ms(_over_seeds(rs, 'early', 'adam_step', 'cos_batch_gradient'))})")
    if items:
        L.append("**2. The old first-order prediction tested 'Adam is not GD', not the theory.** "
                 "It predicted a full-batch GD step while training takes Adam steps:\n")
        L += [f"- {x}." for x in items]
        L.append("\nWith the step the run really takes the first-order formula is exact to "
                 "rounding; the theory is tested on the `gd` runs and on Adam's own step "
                 "(section *The first-order prediction with the run's own step*).\n")
    items = []
    for name, rs in g.items():
        c = rs[0].checkpoint("early")
        if "rate" not in c.speeds:
            continue
        worse = [float(np.mean(np.asarray(r.checkpoint("early").speeds["rate"]) < 0))
                 for r in rs if "rate" in r.checkpoint("early").speeds]
        lw = next((x.learning_window for x in rs[0].checkpoints if x.learning_window), None)
        items.append(f"{name}: after epoch {c.epoch} (mean loss {_fmt(c.mean_loss)}) "
                     f"{_ms_share(worse)} of the samples get worse over the fixed {c.window}-epoch "
                     "window; learning-phase window "
                     + (f"epochs {lw[0]}-{lw[1]}" if lw else "none (the loss never falls below "
                                                           "the constant predictor's)"))
    if items:
        L.append("**3. The per-sample speed was taken on plateaus.** The fixed window after the "
                 "early checkpoint can lie where the network predicts the mean and the "
                 "per-sample rate is a random walk:\n")
        L += [f"- {x}." for x in items]
        L.append("\nThe coupling findings are therefore also tested in the learning-phase window "
                 "chosen from the loss curve by a rule fixed in advance, with partial "
                 "correlations controlling for each sample's own loss and residual.\n")


def _kernel_section(L, results, g, figs, found):
    """The pair quantities split into kernel and residual parts."""
    L.append("## Kernel against residual\n")
    L.append("Every pair quantity split (`regions.study.ntk.kernel_split`): with `K_ij = J_i "
             "J_j^T` the pair's NTK block, `G_ij = (4/C^2) r_i^T K_ij r_j`; the kernel part is "
             "`s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)`, the residual part `cos(r_i, r_j)`, and "
             "their product is the gradient cosine when `K_ij ~ (tr K_ij / C) I` (`anisotropy` "
             "is how far from that the blocks are; 0 for one channel). Shares of 3x3-patch "
             "(3-window in 1D) pairs below -0.5 and the pair mechanism (Spearman of |part| "
             "against the pair's Hamming distance) for each part; mean ± sd over seeds.\n")
    rows = []
    for name, rs in g.items():
        for which in ("init", "early", "end"):
            if rs[0].checkpoint(which).kernel_split is None:
                continue
            rows.append([
                name, rs[0].checkpoint(which).epoch,
                _ms_share(_over_seeds(rs, which, "confusion", "neighbour_below")),
                _ms_share(_over_seeds(rs, which, "confusion_kernel", "neighbour_below")),
                _ms_share(_over_seeds(rs, which, "confusion_residual", "neighbour_below")),
                _ms_share(_over_seeds(rs, which, "confusion_product", "neighbour_below")),
                _ms(_over_seeds(rs, which, "confusion_kernel", "neighbour_mean")),
                _ms(_over_seeds(rs, which, "kernel_split", "pearson_residual")),
                _ms(_over_seeds(rs, which, "kernel_split", "pearson_kernel")),
                _ms(_over_seeds(rs, which, "kernel_split", "pearson_product")),
                _ms(_over_seeds(rs, which, "kernel_split", "anisotropy")),
                _ms(_over_seeds(rs, which, "pairs", "abs_cos_vs_hamming", "rho")),
                _ms(_over_seeds(rs, which, "pairs_kernel", "abs_cos_vs_hamming", "rho")),
                _ms(_over_seeds(rs, which, "pairs_residual", "abs_cos_vs_hamming", "rho"))])
    L.append(_table(["run", "epoch", "< -0.5: gradient", "< -0.5: kernel", "< -0.5: residual",
                     "< -0.5: product", "mean s_ij", "Pearson(grad, residual)",
                     "Pearson(grad, kernel)", "Pearson(grad, product)", "anisotropy",
                     "rho(|grad cos|, Hamming)", "rho(|s_ij|, Hamming)",
                     "rho(|residual cos|, Hamming)"], rows))
    L.append("\nA '-' in the residual columns of 1D runs: with one output channel the residual "
             "cosine is +-1, so it has no spread to correlate; the product is the gradient "
             "cosine exactly.\n")
    if figs.get("kernel_split"):
        L.append("![kernel split](figures/kernel_split.png)\n")


def _first_order_section(L, results, g, figs, found):
    """The first-order prediction with the step each run really takes."""
    from .claims import band_prediction_miss, is_gd, record_steps

    L.append("## The first-order prediction with the run's own step\n")
    rows = []
    for name, rs in g.items():
        if not is_gd(rs[0]):
            continue
        for which in ("init", "early", "end"):
            c = rs[0].checkpoint(which)
            if c.agreement is None:
                continue
            sp = c.spectrum
            rows.append([name, c.epoch, record_steps(rs[0], which),
                         _ms(_over_seeds(rs, which, "agreement", "pearson")),
                         _ms(_over_seeds(rs, which, "agreement", "spearman", "rho")),
                         c.window, _ms(_over_seeds(rs, which, "agreement_window", "spearman",
                                                   "rho")),
                         "-" if sp is None or sp.horizon is None else sp.horizon,
                         _ms(_over_seeds(rs, which, "spectrum", "prediction_error_end")),
                         _ms([band_prediction_miss(r, which) for r in rs]),
                         _ms(_over_seeds(rs, which, "spectrum", "sharpness"))])
    strided = [name for name, rs in g.items() if is_gd(rs[0])
               and any(c.spectrum is not None and (c.spectrum.stride or 1) > 1
                       for c in rs[0].checkpoints)]
    if strided:
        L.append(f"The spectral prediction needs every sample in the kernel; for "
                 f"{', '.join(strided)} the kernel was taken on a strided subgrid (more samples "
                 "than the job's `ntk_max_samples`), so there is none and its findings are "
                 "missing.\n")
    if rows:
        L.append("**Full-batch gradient descent** (`gd` runs), where the first-order theory "
                 "applies: the per-sample prediction `-(lr/N) sum_j G_ij` against the change "
                 "over the next record (its length in GD steps is stated) and its relative rate "
                 "against the rate over the coupling window; the kernel's spectral prediction "
                 "(each eigen-component of the residual times `(1 - step_scale lambda_k)` per "
                 "step) against the measured residual over the horizon to the next analysed "
                 "checkpoint: relative error `|r_pred - r| / |r_start - r|` and the largest "
                 "per-band miss of the residual energy ratio. Sharpness above 2 means the "
                 "linearised GD diverges along the top eigenvector (the run is at the edge of "
                 "stability) and the prediction cannot hold.\n")
        L.append(_table(["run", "epoch", "record (steps)", "Pearson(pred, change)",
                         "Spearman(pred, change)", "window (steps)",
                         "Spearman(pred rate, window rate)", "horizon (steps)",
                         "spectral error", "max band miss", "sharpness"], rows))
        L.append("")
    rows = []
    from regions.study.ntk import PAIR_CLASSES
    for name, rs in g.items():
        for which in ("init", "early", "end"):
            a = rs[0].checkpoint(which).adam_step
            if a is None:
                continue
            rows.append([name, rs[0].checkpoint(which).epoch,
                         _ms(_over_seeds(rs, which, "adam_step", "pearson")),
                         _ms(_over_seeds(rs, which, "agreement", "spearman", "rho")),
                         _ms(_over_seeds(rs, which, "adam_step", "cos_full_gradient")),
                         _ms_share(_over_seeds(rs, which, "adam_step", "term_share",
                                               "momentum"))]
                        + [f"{a.pair_count.get(k, 0)}: "
                           f"{_ms_share(_over_seeds(rs, which, 'adam_step', 'term_share', k))}, "
                           f"{_ms(_over_seeds(rs, which, 'adam_step', 'mean_abs_pair', k))}"
                           for k in PAIR_CLASSES])
    if rows:
        L.append("**Adam**, with the optimiser's own step: the state is rebuilt over "
                 "warm-up minibatches, then one step's `dtheta` (Adam's preconditioned update) "
                 "gives the prediction `g_i . dtheta`, split into the momentum term and, per "
                 "batch sample j, `c g_i^T D g_j` by where j lies relative to i. Per class: "
                 "pairs (first seed), the class's share of the summed |terms|, and the mean "
                 "|term| of one pair; the summed shares grow with the number of pairs, the "
                 "per-pair mean is the coupling of one pair. 'GD-direction Spearman' is the old "
                 "prediction, for comparison.\n")
        L.append(_table(["run", "epoch", "Pearson(own step, change)", "GD-direction Spearman",
                         "cos(update, -full grad)", "momentum share"]
                        + [f"{k.replace('_', ' ')}: pairs: share, mean |term|"
                           for k in PAIR_CLASSES], rows))
        L.append("")
    if figs.get("prediction"):
        L.append("![prediction](figures/prediction.png)\n")


def _spectrum_section(L, results, g, figs, found):
    """The trace NTK's spectrum against the region structure."""
    from .claims import top_band_gain

    L.append("## Spectral coupling: the kernel's spectrum\n")
    L.append("The trace NTK `Theta_ij = tr K_ij` over the samples (a strided subgrid above "
             "the job's `ntk_max_samples`), its eigen-decomposition, and the residual in its "
             "eigenbasis. `band gain`: mean Rayleigh quotient of Theta over the unit Fourier "
             "vectors of a band over the mean eigenvalue (> 1: the kernel learns that band "
             "faster than average); `freq. order`: Spearman of eigenvalue rank against "
             "eigenvector frequency (+1: strictly low to high); `residual alignment` (r^T Theta "
             "r / |r|^2 over the mean eigenvalue; < 1: what is left sits in slow directions); "
             "beside them the region structure: mean Hamming over 3x3 patches and distinct "
             "patterns per sample.\n")
    rows = []
    for name, rs in g.items():
        for c in rs[0].checkpoints:
            s = c.spectrum
            if s is None:
                continue
            i = rs[0].checkpoints.index(c)
            gains = ", ".join("-" if not np.isfinite(x) else _fmt(x) for x in s.band_gain)
            rows.append([name, c.epoch, _fmt(s.stride), _ms([_get(r.checkpoints[i], "spectrum",
                                                           "effective_rank") for r in rs]),
                         _ms([_get(r.checkpoints[i], "spectrum", "decay_exponent") for r in rs]),
                         _ms([_get(r.checkpoints[i], "spectrum", "frequency_order")
                              for r in rs]),
                         gains, _ms([top_band_gain(r, r.checkpoints[i]) for r in rs]),
                         _ms([_get(r.checkpoints[i], "spectrum", "residual_alignment")
                              for r in rs]),
                         _ms([r.checkpoints[i].hamming_patch for r in rs]),
                         _ms([r.checkpoints[i].n_patterns_sampled / r.n for r in rs])])
    L.append(_table(["run", "epoch", "stride", "effective rank", "decay exponent",
                     "freq. order", "band gains (first seed)", "top-band gain",
                     "residual alignment", "Hamming 3x3", "patterns / sample"], rows))
    L.append("")
    if figs.get("spectral_coupling"):
        L.append("![spectral coupling](figures/spectral_coupling.png)\n")


def _gradient_section(L, results, g, figs, found):
    """Gradient confusion and the first-order prediction."""
    L.append("## Gradient confusion and the old first-order prediction\n")
    rows = []
    for name, rs in g.items():
        for which in ("init", "early", "end"):
            c = rs[0].checkpoint(which)
            ag = measured_at(rs, which, lambda c: c.agreement)
            conf = measured_at(rs, which, lambda c: c.confusion)
            if not conf:
                continue
            shares = ag[0].term_share if ag else {}
            agw = measured_at(rs, which, lambda c: c.agreement_window)
            gd = measured_at(rs, which, lambda c: c.gd_step)
            rows.append([name, c.epoch,
                         _ms([x.neighbour_mean for x in conf]),
                         _ms([x.distant_mean for x in conf]),
                         _ms_share([x.neighbour_below for x in conf]),
                         _ms_share([x.distant_below for x in conf]),
                         _ms([a.spearman.rho for a in ag]) if ag else "-",
                         _ms_share([a.sign_agreement for a in ag]) if ag else "-",
                         _ms([a.spearman.rho for a in agw]) if agw else "-",
                         _ms([x.pearson for x in gd]) if gd else "-",
                         ", ".join(f"{k.replace('_', ' ')} {_share(v)}"
                                   for k, v in shares.items())])
    L.append(_table(["run", "epoch", "mean cos neighbours", "mean cos distant",
                     "neighbours < -0.5", "distant < -0.5",
                     "Spearman(predicted, observed d loss)", "same sign",
                     "Spearman(predicted rel. rate, window rate)", "GD-step check (Pearson)",
                     "share of |predicted| by term"], rows))
    L.append("\nThe full-gradient cosines, as in the paper (they follow the residuals: "
             "see *Kernel against residual*). The old prediction, kept for comparison, is one "
             "full-batch gradient-descent step on the mean loss, "
             "-(lr/N) sum_j G_ij, split by where j lies (same exact region, an adjacent region, "
             "elsewhere); the observed change is the loss change to the next record under the "
             "actual optimiser (Adam, mini-batches for 2D), so only ranks are compared; the "
             "window rate is -d log loss / d epoch over the coupling window against "
             "-predicted / loss. The GD-step check takes one real full-batch GD step from the "
             "checkpoint and compares the per-sample change with the prediction (it validates "
             "the formula, not the mechanism).\n")
    if figs.get("confusion"):
        L.append("![confusion](figures/confusion.png)\n")


def _spectral_section(L, results, g, figs, found):
    """Residual energy per band."""
    L.append("## Spectral bias: residual energy per band\n")
    rows = []
    for name, rs in g.items():
        be = rs[0].band_energy
        if be is None:
            continue
        labels = [f"({lo:g},{hi:g}]" if np.isfinite(hi) else f">{lo:g}" for lo, hi in be.bands]
        rows.append([name] + [f"{lab}: {_ms([r.band_energy.ratio[-1, b] for r in rs])}"
                              for b, lab in enumerate(labels)])
    if rows:
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        L.append(_table(["run"] + [f"band {i + 1} (end)" for i in range(width - 1)], rows))
        L.append("")
    if figs.get("band_energy"):
        L.append("![residual energy per band](figures/band_energy.png)\n")


def _intervention_section(L, results, g, figs, found):
    """The causal test: positional encoding on half of the image only."""
    table = effects_markdown(results)
    if not table:
        return
    L.append("## The intervention: denser regions on one half of the image\n")
    L.append("The regions are changed locally and the effect on convergence is measured, so "
             "that the coupling is tested causally. Treated arm: the positional encoding is "
             "fed only where x < 0.5 (`[x, y, m PE(x, y)]`, `m = 1` inside); control arm: the "
             "same network with `m = 0` everywhere, from the same initial weights (same input "
             "width). Each seed is one unit (its own target and initialisation, both arms "
             "paired). `density` is the manipulation check (more boundaries between "
             "neighbouring samples inside); `did` is the difference in differences of the log "
             "loss drop (treated minus control, inside minus outside), positive when the "
             "denser half converges faster; `spillover` is the outside half's change. The "
             "verdicts, with the rules and the false-discovery adjustment of every finding, "
             "are in the findings above (group \"the intervention\").\n")
    L.append("What this does and does not show: the treated arm differs from the control in "
             "its input features as well as in its region density, so a positive `did` says "
             "that adding the encoding speeds up the half that gets it, together with denser "
             "regions there; it does not separate the two. Each half's band energies are "
             "taken as if the half were periodic (leakage at the cut, shared by both arms, "
             "partly cancelled in the difference in differences).\n")
    L.append(table + "\n")
    if figs.get("intervention"):
        L.append("![intervention effects](figures/intervention.png)\n")


def _notes_section(L, results, g, figs, found):
    """Notes: data files, conventions, what was skipped."""
    L.append("## Notes\n")
    L.append("- Data: `data/summary.csv`, `data/coupling.csv`, `data/findings.csv`, "
             "`data/runs.npz` (per-sample features, speeds, predicted and observed changes, "
             "confusion cosines, loss curves, residual energies).")
    L.append("- Encoded 2D runs have no exact partition: their region, occupancy, measure and "
             "density are `sampled` (distinct patterns among the samples); their Hamming "
             "distances and crossings (exact row/column boundary crossings, computed at the "
             "checkpoints the preset's `encoded_crossings` names) are exact.")
    L.append("- Speeds: `rate` = -d log loss_i / d epoch over the window after the checkpoint "
             "(larger = faster); `drop` = log loss_i(e) - log loss_i(e + window); "
             "`epochs_to_eps` = epochs after the checkpoint until loss_i <= eps * loss_i(e) "
             "(censored samples get the epochs left + 1); `run_*` are measured from init over "
             "the whole run (`run_auc`: area under loss_i(t)/loss_i(0), smaller = faster).")
    L.append("- `jobs/` keeps each run's full result as data (`<run>_s<seed>.json` with the "
             "scalars, `.npz` with the arrays, `.partition-e<epoch>.npz` with the exact "
             "partitions, read by `regions.load`); `regions.study.report_from_jobs(folder)` "
             "rewrites this report from them, and a rerun into the folder reuses them.")
    for n in sorted({n for r in results for n in r.notes}):
        L.append(f"- {n}")
    L.append("")


def write_report(results, out_dir, preset="", description="", wall_seconds=None):
    """Write ``report.md`` with figures and data into ``out_dir``; return its path."""
    if not results:
        raise ValueError("no results to report; run at least one job")
    fig_dir = os.path.join(out_dir, "figures")
    data_dir = os.path.join(out_dir, "data")
    os.makedirs(fig_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)

    figs = OrderedDict()
    for name, fn in (("partitions", figures.partitions),
                     ("partitions_gif", figures.partitions_gif),
                     ("region_sizes", figures.region_sizes),
                     ("loss_curves", figures.loss_curves),
                     ("region_count", figures.region_count),
                     ("speed_vs_features", figures.speed_vs_features),
                     ("band_energy", figures.band_energy),
                     ("confusion", figures.confusion_densities),
                     ("prediction", figures.prediction_scatter),
                     ("kernel_split", figures.kernel_split),
                     ("spectral_coupling", figures.spectral_coupling),
                     ("boundary_distance", figures.boundary_distance),
                     ("intervention", effects_figure)):
        try:
            fname = "partitions.gif" if name == "partitions_gif" else f"{name}.png"
            figs[name] = fn(results, os.path.join(fig_dir, fname))
        except Exception as err:  # noqa: BLE001 - a broken figure must not sink the report
            figs[name] = None
            results[0].notes.append(f"figure {name} failed: {err!r}")

    summ = summary_rows(results)
    _write_csv(os.path.join(data_dir, "summary.csv"), summ)
    coup = [row for r in results for c in r.checkpoints for row in c.coupling]
    if coup:
        _write_csv(os.path.join(data_dir, "coupling.csv"), _record_rows(coup, CouplingRow))
    found = findings(results)
    write_findings(found, os.path.join(data_dir, "findings.csv"))
    _save_npz(os.path.join(data_dir, "runs.npz"), results)

    g = group_by_name(results)
    L = []
    L.append(f"# Spectral bias and exact linear regions: study report ({preset})\n")
    if description:
        L.append(f"Preset **{preset}**: {description}.\n")
    seeds = sorted({r.seed for r in results})
    wall = f"; wall time {wall_seconds:.0f} s" if wall_seconds is not None else ""
    L.append(f"{len(results)} runs ({len(g)} configurations x seeds {seeds}){wall}. "
             "Values are mean ± sd over seeds where there are several. `exact` features "
             "come from the exact partition (or exactly from the network); `sampled` ones "
             "from the patterns at the training samples only (lower bounds).\n")

    for section in (_findings_section, _artefacts_section, _runs_section, _paper_table_section,
                    _regions_section, _coupling_section, _gradient_section, _kernel_section,
                    _first_order_section, _spectral_section, _spectrum_section,
                    _intervention_section, _notes_section):
        section(L, results, g, figs, found)
    path = os.path.join(out_dir, "report.md")
    atomic_write_text(path, "\n".join(L))
    return path
