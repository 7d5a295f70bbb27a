"""The report's sections on the paper's own measurements: findings, runs, the
paper's table, regions, per-sample coupling, notes."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .. import stats
from ..claims import GROUPS, seed_correlations
from ..text import correlation_summary as _rho_str
from ..text import fmt as _fmt
from ..text import markdown_table as _table
from ..text import mean_sd as _ms
from .data import KEY_FEATURES
from .format import embed, mean_sd_share, over_seeds, seconds_text, section


# ----------------------------------------------------------------------------- report
@section("Findings")
def findings_section(L, results, g, figs, found):
    """The findings table, the statistics behind it and the verdict rules."""
    counts = OrderedDict((v, sum(f.verdict == v for f in found))
                         for v in ("holds", "does not hold", "inconclusive", "not tested"))
    L.append(f"{len(found)} findings: " + ", ".join(f"{k} {v}" for k, v in counts.items())
             + ". They come in groups, in this order: "
             + "; ".join(title for title, _ in GROUPS) + ".\n")
    replicated = any(f.n_units >= 2 for f in found)
    for verdict, what in () if not replicated else (
            ("does not hold", "Claims that do not hold (the interval lies on the "
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


@section("Runs", ("loss_curves", "loss curves"))
def runs_section(L, results, g, figs, found):
    """The table of runs and the loss curves."""
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


@section("The paper's table, measured exactly")
def paper_table_section(L, results, g, figs, found):
    """The paper's table, measured exactly."""
    rows = []
    for name, rs in g.items():
        rows.append([
            name,
            _ms([r.checkpoint("end").n_regions for r in rs]),
            f"{_ms([r.checkpoint('init').n_patterns_sampled for r in rs])} -> "
            f"{_ms([r.checkpoint('end').n_patterns_sampled for r in rs])} of {rs[0].n}",
            _ms([r.checkpoint("end").hamming_patch for r in rs]),
            _ms([r.checkpoint("end").crossings_neighbour for r in rs]),
            mean_sd_share(over_seeds(rs, "end", "confusion", "neighbour_below")),
            mean_sd_share(over_seeds(rs, "end", "confusion", "distant_below")),
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


@section("Regions over training", ("region_count", "region count"),
         ("boundary_distance", "boundary distance"),
         ("region_sizes", "region sizes",
          "Region sizes at the end of training: the exact sizes, the sizes the training "
          "samples suggest (a pattern's share of the samples times the domain; small "
          "regions holding no sample are missing), and the exact density (1 / size of "
          "the region at each point); for the encoded 2D run of highest L (its whole "
          "partition, where made, only gives the count and median area), the exact "
          "areas of the faces holding the samples against the pixel, the smallest size "
          "sampled patterns on the grid can give:\n"))
def regions_section(L, results, g, figs, found):
    """Region counts, sizes and distances over training."""
    embed(L, figs, "partitions", "partitions",
          "The exact partition of the raw 2D run (colour = activation pattern, dots = "
          "training samples):\n")
    embed(L, figs, "partitions_gif", "partitions over training",
          "The same partition at every checkpoint, as an animation (a region keeps "
          "its colour while its pattern survives):\n")
    embed(L, figs, "encoded_partitions", "curved partitions of a positional-encoded run",
          "The exact curved regions of the positional-encoded run with a whole partition "
          "(the lowest L) in the lower-left corner of the square (only this corner is kept "
          "with the run), faces coloured by activation pattern, dots = training samples:\n")
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
                         seconds_text(c.partition_seconds)])
    L.append(_table(["run", "seed", "epoch", "mean loss", "exact regions"]
                    + (["exact pieces"] if pieces else [])
                    + ["sampled patterns", "Hamming 3x3", "crossings/step",
                       "mean dist. to boundary", "mean chord", "% dead neurons",
                       "layer-2 normal cos", "partition s"], rows))
    L.append("\n*Exact regions* are the sets of inputs sharing one activation pattern: in 2D "
             "the partition's regions, in raw 1D its pieces (intervals). An encoded 1D network "
             "is periodic in its input, so one pattern can recur on several disjoint intervals: "
             "there *exact pieces* counts the intervals and *exact regions* the distinct "
             "patterns over them (pieces - regions = pieces repeating a pattern met elsewhere); "
             "in encoded 2D the pieces are the faces (connected regions). "
             "*Sampled patterns* are the distinct patterns among the training samples. "
             "*Partition s* is the enumeration alone, `-` where no exact partition is computed "
             "(the encoded 2D checkpoints the preset's `encoded_regions` and "
             "`encoded_regions_beyond`, or an experiment's own setting of them, leave "
             "out).\n")
    comp = [(r.name, r.seed, c.epoch, c.compile_seconds) for r in results for c in r.checkpoints
            if c.compile_seconds is not None]
    if comp:
        L.append("Compiling the engine's kernels (or loading them from the cache), once per "
                 "engine and worker process before its first partition, not included above: "
                 + "; ".join(f"{n} seed {s} epoch {e}: {t:.1f} s" for n, s, e, t in comp)
                 + ".\n")


@section("Coupling: region features against per-sample speed",
         ("speed_vs_features", "speed vs features",
          "Per-sample speed against each feature at the second analysed checkpoint "
          "(one row per run, first seed): the samples, the median and interquartile "
          "band in quantile bins of the feature, and Spearman rho:\n"))
def coupling_section(L, results, g, figs, found):
    """Region features against per-sample speed."""
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
            row = [f"{f} ({kind_label(cps, f)})"]
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
    learning_phase_tables(L, results, g)


def kind_label(checkpoints, feature):
    """``exact`` or ``sampled`` when every checkpoint measured ``feature`` one way;
    else which epochs measured it how (e.g. the exact faces of an encoded 2D run
    at its first and last checkpoints only, the sampled patterns between)."""
    kinds = {}
    for c in checkpoints:
        if feature in c.features:
            kinds.setdefault(c.kinds.get(feature, ""), []).append(c.epoch)
    if len(kinds) <= 1:
        return next(iter(kinds), "")
    return "; ".join(f"{k} at epoch{'s' if len(e) > 1 else ''} {', '.join(map(str, e))}"
                     for k, e in kinds.items())


def learning_phase_tables(L, results, g):
    """Features against the learning-phase speeds, plain and partial."""
    from .. import convergence as cv
    from ..claims import LEARNING_SPEEDS
    from ..coupling import LEARNING_FEATURES

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
            rows.append([f"{f} ({kind_label([c for _, c in cps], f)})"]
                        + [_rho_str([c.rho(f, sp) for _, c in cps if c.rho(f, sp) is not None])
                           for sp in LEARNING_SPEEDS])
        where = ", ".join(f"seed {r.seed}: features at {c.epoch}, window "
                          f"{c.learning_window[0]}-{c.learning_window[1]}" for r, c in cps)
        L.append(f"**{name}** ({where})\n")
        L.append(_table(["feature (kind)"] + list(LEARNING_SPEEDS), rows))
        L.append("")


@section("Notes")
def notes_section(L, results, g, figs, found):
    """Notes: data files, conventions, what was skipped."""
    L.append("- Data: `data/summary.csv`, `data/coupling.csv`, `data/findings.csv`, "
             "`data/runs.npz` (per-sample features, speeds, predicted and observed changes, "
             "confusion cosines, loss curves, residual energies).")
    L.append("- Encoded 2D runs: the whole partition of a run with L at most the preset's "
             "`encoded_regions_max_L` (default 2) is made at the checkpoints its "
             "`encoded_regions` names, for the exact region count and the median area of all "
             "faces (about 20-30 s for 2x128 at L = 2); above that L at those "
             "`encoded_regions_beyond` names (an experiment may set either for itself: the "
             "paper preset asks it of its Adam L = 5 runs at their first and last checkpoint; "
             "at L = 5 some 5-10 minutes a checkpoint, made tile by tile). "
             "At the checkpoints the preset's `encoded_faces` names, the "
             "face (connected region) holding each sample is cut exactly "
             "(`regions.encoded.sample_faces`, curves within 1e-6 or finer, each face's area "
             "certified within 5% of its value) and its region, occupancy, "
             "measure, inradius, dist_boundary and dist_polygon are `exact`; at the others "
             "region, occupancy and measure are `sampled` (distinct patterns among the "
             "samples). Their density is `exact` (faces within the radius) where the whole "
             "partition was made, else `sampled`; their Hamming distances and "
             "crossings (exact row/column boundary crossings, at the checkpoints "
             "`encoded_crossings` names) are exact.")
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
