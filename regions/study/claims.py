"""The paper's claims, checked on the study's results.

:func:`findings` reads the job results of :func:`regions.study.run_study`
(one :class:`regions.study.results.RunResult` per experiment and seed) and
returns one :class:`regions.study.results.Finding` per tested statistic.
Every finding is one per-run statistic with a threshold and a claimed side
(a claim with several parts is several findings), pooled over the runs
(seeds x targets), the units of replication, by :func:`regions.study.stats.pool`;
comparisons of two experiments are paired by seed. The p-values are adjusted
over the whole table and each verdict comes from the rules of
:data:`regions.study.stats.RULES`; nothing here decides a verdict.
"""
from __future__ import annotations

import numpy as np

from .results import Finding, RunResult, group_by_name
from .stats import RULES, adjust, paired, pool, rule_number
from .text import fmt as _fmt

__all__ = ["findings", "seed_correlations", "measured_at", "per_run", "is_gd", "record_steps",
           "top_band_gain", "across_runs_spearman", "LEARNING_SPEEDS", "GROUPS"]

#: The learning-phase speed measures (regions.study.convergence.learning_window)
#: and their partial versions, as named in the coupling rows.
LEARNING_SPEEDS = ("lp_rate", "lp_rate_partial", "lp_time", "lp_time_partial")


def measured_at(runs, which, get):
    """``get(checkpoint)`` at checkpoint ``which`` (see :meth:`RunResult.checkpoint`)
    of every run, leaving out the runs where it was not measured (None)."""
    values = [get(r.checkpoint(which)) for r in runs]
    return [v for v in values if v is not None]


def seed_correlations(results, name, feature, speed, which):
    """The coupling rows of ``(feature, speed)`` at a checkpoint (``which``, see
    :meth:`RunResult.checkpoint`) of every seed of run ``name``."""
    out = []
    for r in group_by_name(results).get(name, []):
        row = r.checkpoint(which).rho(feature, speed)
        if row is not None:
            out.append(row)
    return out


def per_run(runs, get):
    """``{seed: get(run)}`` over the runs of one experiment; a None or
    non-finite value is kept as None (the run did not measure it)."""
    out = {}
    for r in runs:
        v = get(r)
        out[r.seed] = None if v is None or not np.isfinite(v) else float(v)
    return out


def _ratio(a, b):
    return a / b if b != 0 else np.nan


# ----------------------------------------------------------------------------- table
class _Table:
    """The findings under construction: one pooled statistic per row."""

    def __init__(self):
        self.rows = []
        self.group = ""

    def add(self, claim, run, statistic, units, null, alternative, scale, paper, note=""):
        """Pool ``units`` ({seed: value}) and keep the row; ``note`` is appended
        to the generated description of what was measured."""
        finite = {k: v for k, v in units.items() if v is not None and np.isfinite(v)}
        if scale == "log":
            finite = {k: v for k, v in finite.items() if v > 0}
        est = pool(finite.values(), null, scale)
        ci = (f" [{_fmt(est.ci_low)}, {_fmt(est.ci_high)}]" if est.n_units > 1 else "")
        measured = (f"{_fmt(est.estimate)}{ci} over {est.n_units} run"
                    f"{'s' if est.n_units != 1 else ''}" if est.n_units else "not measured")
        left_out = [k for k in units if k not in finite]
        if left_out:
            why = "not measured, or not a positive ratio" if scale == "log" else "not measured"
            measured += f"; left out ({why}): seed {', '.join(str(k) for k in left_out)}"
        if note:
            measured += f"; {note}"
        self.rows.append(dict(
            group=self.group, claim=claim, run=run, statistic=statistic, null=float(null),
            alternative=alternative, estimate=est.estimate, ci_low=est.ci_low,
            ci_high=est.ci_high, n_units=est.n_units, method=est.method, p_value=est.p_value,
            values="; ".join(f"seed {k}={_fmt(v, 4)}" for k, v in finite.items()),
            paper=paper, measured=measured))

    def findings(self):
        """The rows as Findings, p-values adjusted over the whole table."""
        p_adj = adjust([r["p_value"] for r in self.rows])
        out = []
        for r, p in zip(self.rows, p_adj):
            r = {**r, "p_adjusted": float(p)}
            k = rule_number(null=r["null"], alternative=r["alternative"],
                            estimate=r["estimate"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                            p_adjusted=r["p_adjusted"], n_units=r["n_units"])
            out.append(Finding(**r, verdict=RULES[k - 1][0], rule=k))
        return out


def findings(results):
    """The paper's claims checked on the results (a list of
    :class:`regions.study.results.RunResult`): a list of
    :class:`regions.study.results.Finding`, p-values adjusted over the list."""
    g = group_by_name(results)
    pes = sorted((int(n[5:]), n) for n in g if n.startswith("2d-pe") and n[5:].isdigit())
    ctx = {"g": g, "raw2": g.get("2d-raw"), "pe2": g.get("2d-pe2"),
           "pe_hi_name": pes[-1][1] if pes else None,
           "pe_hi": g[pes[-1][1]] if pes else None}
    table = _Table()
    for title, group in GROUPS:
        table.group = title
        group(table, **ctx)
    return table.findings()


def _cp(which, get):
    """A getter of ``get(checkpoint)`` at checkpoint ``which`` of a run."""
    return lambda r: get(r.checkpoint(which))


def _conf(which, attr):
    return _cp(which, lambda c: None if c.confusion is None else getattr(c.confusion, attr))


# ----------------------------------------------------------------------------- groups
def _claims_paper_table(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The paper's table: fit, patterns, exact counts, Hamming, confusion."""
    final = lambda r: r.mean_loss[-1]  # noqa: E731
    if raw2 and pe_hi:
        t.add("PE fits white noise far better than raw coordinates: final training MSE of "
              f"{pe_hi_name} below half of raw's", f"{pe_hi_name} / 2d-raw",
              f"final MSE ratio ({pe_hi_name} / 2d-raw), paired by seed",
              paired(per_run(pe_hi, final), per_run(raw2, final), _ratio), 0.5, "less", "log",
              "raw ~0.079, PE L=5 ~0.012")
    if raw2 and pe2:
        t.add("PE L=2 fits better than raw coordinates (final training MSE)", "2d-pe2 / 2d-raw",
              "final MSE ratio (2d-pe2 / 2d-raw), paired by seed",
              paired(per_run(pe2, final), per_run(raw2, final), _ratio), 1.0, "less", "log",
              "raw ~0.079, PE L=2 ~0.062")
    if pe2 and pe_hi and pe_hi_name != "2d-pe2":
        t.add(f"Higher L fits better: {pe_hi_name} below PE L=2 (final training MSE)",
              f"{pe_hi_name} / 2d-pe2", f"final MSE ratio ({pe_hi_name} / 2d-pe2), paired by seed",
              paired(per_run(pe_hi, final), per_run(pe2, final), _ratio), 1.0, "less", "log",
              "PE L=2 ~0.062, PE L=5 ~0.012")
    if raw2:
        N = raw2[0].n
        t.add("Raw: distinct patterns on the pixels well below the pixel count (end)", "2d-raw",
              "distinct sampled patterns / pixels, end", per_run(raw2, _cp(
                  "end", lambda c: c.n_patterns_sampled / N)), 0.9, "less", "linear",
              "raw ~1.5k -> ~2.3k of 4096")
    if pe_hi:
        N = pe_hi[0].n
        t.add("PE: about one distinct pattern per pixel from initialisation", pe_hi_name,
              "distinct sampled patterns / pixels, init", per_run(pe_hi, _cp(
                  "init", lambda c: c.n_patterns_sampled / N)), 0.95, "greater", "linear",
              "PE L=5 4096 of 4096 from init")
    if raw2:
        def count(which):
            return _cp(which, lambda c: c.n_regions)
        t.add("Raw: the number of exact regions grows during training (init -> end)", "2d-raw",
              "exact regions end / init", paired(per_run(raw2, count("end")),
                                                 per_run(raw2, count("init")), _ratio),
              1.0, "greater", "log", "~1.5k -> ~2.3k sampled patterns")
        t.add("Raw: after the early checkpoint the number of exact regions grows (early -> end)",
              "2d-raw", "exact regions end / early",
              paired(per_run(raw2, count("end")), per_run(raw2, count("early")), _ratio),
              1.0, "greater", "log",
              "(not in the paper; the growth that remains when init is excluded)")
        t.add("Sampling the pixel grid undercounts the regions (end)", "2d-raw",
              "exact regions / distinct sampled patterns, end",
              per_run(raw2, _cp("end", lambda c: None if c.n_regions is None
                                else _ratio(c.n_regions, c.n_patterns_sampled))),
              1.0, "greater", "log",
              "a 2048^2 grid finds ~2/3 of a 2-64x4-1 net's regions")
        t.add("The regions the samples miss are small: median area of regions holding a sample "
              "above the median of all regions (end)", "2d-raw",
              "median area (regions with a sample) / median area (all regions), end",
              per_run(raw2, _cp("end", lambda c: None if c.measure_all_median is None
                                else _ratio(c.measure_hit_median, c.measure_all_median))),
              1.0, "greater", "log", "missed regions are small")
    if raw2 and pe_hi:
        ham = lambda r: r.checkpoint("end").hamming_patch  # noqa: E731
        t.add("Raw inputs: neighbouring pixels have nearly equal patterns (mean Hamming over 3x3 "
              "patches, end, below 6 neurons)", "2d-raw", "mean Hamming over 3x3 patches, end",
              per_run(raw2, ham), 6.0, "less", "linear", "raw ~2-3 of 256")
        chain = [("2d-raw", raw2)] + ([("2d-pe2", pe2)] if pe2 and pe_hi_name != "2d-pe2"
                                      else []) + [(pe_hi_name, pe_hi)]
        for (na, ra), (nb, rb) in zip(chain, chain[1:]):
            t.add(f"Patterns of neighbouring pixels differ more with {nb} than with {na} "
                  "(mean Hamming over 3x3 patches, end)", f"{nb} / {na}",
                  f"Hamming ratio ({nb} / {na}), paired by seed",
                  paired(per_run(rb, ham), per_run(ra, ham), _ratio), 1.0, "greater", "log",
                  "raw ~2-3, PE L=2 ~8-10, PE L=5 ~41-46 of 256")
    if raw2 and pe_hi:
        below = _conf("end", "neighbour_below")
        t.add("Neighbour gradients conflict more with raw inputs than with PE (share of 3x3-patch "
              "pairs with cosine < -0.5, end; difference raw - PE)", f"2d-raw - {pe_hi_name}",
              f"share difference (2d-raw - {pe_hi_name}), paired by seed",
              paired(per_run(raw2, below), per_run(pe_hi, below), lambda a, b: a - b),
              0.0, "greater", "linear", "raw ~26%, PE L=2 ~22%, PE L=5 ~2%",
              "full-gradient cosines; with several output channels they mostly follow the "
              "residual cosines (issue item 1)")
        if pe2 and pe_hi_name != "2d-pe2":
            N = pe2[0].n
            t.add("PE L=2 gives most pixels a pattern of their own (distinct patterns / pixels, "
                  "end)", "2d-pe2", "distinct sampled patterns / pixels, end",
                  per_run(pe2, _cp("end", lambda c: c.n_patterns_sampled / N)), 0.9, "greater",
                  "linear", "PE L=2: own region for ~98% of pixels")
            t.add("A region of its own is not enough: PE L=2 still confuses neighbours, more than "
                  f"twice as often as {pe_hi_name} (share 2d-pe2 - 2 x share {pe_hi_name})",
                  f"2d-pe2 - 2 x {pe_hi_name}", f"share(2d-pe2) - 2 share({pe_hi_name}), paired by seed",
                  paired(per_run(pe2, below), per_run(pe_hi, below), lambda a, b: a - 2 * b),
                  0.0, "greater", "linear", "~22% (PE L=2) vs ~2% (PE L=5)")


def _claims_mechanism(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The mechanism at pair level, high-frequency energy, final loss against
    occupancy."""
    for name, rs in g.items():
        rho = per_run(rs, _cp("early", lambda c: None if c.pairs is None
                              else c.pairs.abs_cos_vs_hamming.rho))
        if not any(v is not None for v in rho.values()):
            continue
        ep = rs[0].checkpoint("early").epoch
        t.add(f"Local pairs with more different patterns have less aligned gradients (|cos| of "
              f"3x3-patch pairs against their Hamming distance, epoch {ep})", name,
              "Spearman rho over the pairs of a run", rho, 0.0, "less", "fisher",
              "the mechanism: shared patterns give (anti)parallel gradients",
              "full-gradient cosines")
    if raw2 and pe_hi and raw2[0].band_energy is not None:
        band = raw2[0].band_energy.bands[raw2[0].high_band()]
        t.add(f"High frequencies stay unlearnt with raw inputs (residual energy ratio of the band "
              f"> {band[0]:g} cycles, end, above 0.8)", "2d-raw",
              "residual energy ratio, top band, end", per_run(raw2, RunResult.high_band_ratio_end),
              0.8, "greater", "linear", "raw ~0.98")
        t.add("PE learns the high frequencies: its top-band residual energy ratio is below half "
              "of raw's (end)", f"{pe_hi_name} / 2d-raw",
              f"top-band ratio ({pe_hi_name} / 2d-raw), paired by seed",
              paired(per_run(pe_hi, RunResult.high_band_ratio_end),
                     per_run(raw2, RunResult.high_band_ratio_end), _ratio), 0.5, "less", "log",
              "raw ~0.98, PE L=2 ~0.78, PE L=5 ~0.1")
    if raw2:
        rho = per_run(raw2, _cp("end", lambda c: None if c.rho("occupancy", "final_loss") is None
                                else abs(c.rho("occupancy", "final_loss").rho)))
        if any(v is not None for v in rho.values()):
            t.add("The final per-pixel loss barely correlates with region occupancy: |Spearman "
                  "rho| below 0.2 (raw, end)", "2d-raw", "|Spearman rho| over the pixels of a run",
                  rho, 0.2, "less", "linear", "barely correlates")


def _claims_coupling(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """Region features against per-sample speed: at the early checkpoint (the
    old measurement, for comparison) and in the learning phase chosen from the
    loss curve, plain and partial (controlling for the sample's own loss and
    residual at the window start)."""
    tests = (("occupancy", "less", "samples sharing their region with many samples learn slower"),
             ("hamming", "greater", "samples whose neighbours have near-equal patterns learn "
                                    "slower"))
    for name, rs in g.items():
        if len(rs[0].checkpoints) < 3:
            continue
        ep = rs[0].checkpoint("early").epoch
        for feature, side, words in tests:
            rho = per_run(rs, _cp("early", lambda c, f=feature: None if c.rho(f, "rate") is None
                                  else c.rho(f, "rate").rho))
            if any(v is not None for v in rho.values()):
                t.add(f"{words.capitalize()} ({feature} at epoch {ep} against -d log loss / d "
                      "epoch in the fixed window after it)", name,
                      f"Spearman rho ({feature}, rate) over the samples of a run", rho, 0.0,
                      side, "fisher", "argued from confusion, never measured",
                      "the fixed window can lie on a loss plateau (issue item 3)")
        for speed, what in (("lp_rate", "-d log loss / d epoch, plain Spearman"),
                            ("lp_rate_partial", "-d log loss / d epoch, partial Spearman"),
                            ("lp_time_partial", "epochs to halve the loss, partial Spearman")):
            for feature, side, words in tests:
                # a longer time to the threshold is slower: the sign flips
                s = side if speed.startswith("lp_rate") else \
                    ("greater" if side == "less" else "less")

                def get(r, f=feature, sp=speed):
                    c = next((c for c in r.checkpoints if c.learning_window is not None), None)
                    row = None if c is None else c.rho(f, sp)
                    return None if row is None else row.rho
                rho = per_run(rs, get)
                if any(v is not None for v in rho.values()):
                    control = (", controlling for the sample's own log loss and residual at the "
                               "window start" if "partial" in speed else "")
                    t.add(f"{words.capitalize()}, in the learning phase ({feature} against "
                          f"{what}{control})", name,
                          f"Spearman rho ({feature}, {speed}) over the samples of a run",
                          rho, 0.0, s, "fisher", "argued from confusion, never measured",
                          _window_note(rs))


def _window_note(rs):
    cps = [next((c for c in r.checkpoints if c.learning_window is not None), None) for r in rs]
    return "windows " + ", ".join(f"seed {r.seed}: features at {c.epoch}, window "
                                  f"{c.learning_window[0]}-{c.learning_window[1]}"
                                  for r, c in zip(rs, cps) if c is not None)


def is_gd(r):
    """Whether run ``r`` was trained by plain full-batch gradient descent."""
    return (r.config or {}).get("optimizer") == "gd"


def record_steps(r, which):
    """Epochs from checkpoint ``which`` of run ``r`` to the next record: the
    length of the interval of its ``observed_change`` (None at the last record)."""
    e = r.checkpoint(which).epoch
    rec = np.asarray(r.record_epochs)
    i = int(np.searchsorted(rec, e))
    return int(rec[i + 1] - rec[i]) if i + 1 < rec.size else None


def _claims_prediction(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The Gram formula's sanity check, and the old comparison of the
    full-batch GD prediction with training under another optimiser."""
    for name, rs in g.items():
        gd = per_run(rs, _cp("init", lambda c: None if c.gd_step is None else c.gd_step.pearson))
        if any(v is not None for v in gd.values()):
            t.add("Sanity check of the Gram formula: one real full-batch GD step from init "
                  "changes each loss as predicted to first order (Pearson above 0.99)", name,
                  "Pearson (predicted, actual one-step change) over the samples", gd, 0.99,
                  "greater", "fisher", "(exact formula)")
            sc = per_run(rs, _cp("init", lambda c: None if c.gd_step is None
                                 else abs(c.gd_step.scale - 1)))
            t.add("Sanity check of the Gram formula: least-squares scale of actual on predicted "
                  "within 0.05 of 1", name, "|scale - 1|", sc, 0.05, "less", "linear",
                  "(exact formula)")
        if is_gd(rs[0]):
            continue  # the prediction is the run's own step: _claims_first_order
        for which in ("init", "early"):
            rho = per_run(rs, _cp(which, lambda c: None if c.agreement is None
                                  else c.agreement.spearman.rho))
            if not any(v is not None for v in rho.values()):
                continue
            ep = rs[0].checkpoint(which).epoch
            steps = record_steps(rs[0], which)
            t.add(f"The measured per-sample loss change over the next {_epochs(steps)} follows the "
                  f"full-batch GD prediction although training uses "
                  f"{rs[0].config.get('optimizer', 'another optimiser')} (epoch {ep}; the old "
                  "measurement)", name,
                  "Spearman rho (GD-predicted, measured change) over the samples", rho, 0.0,
                  "greater", "fisher", "implied by the confusion argument",
                  "the prediction is a GD step, training takes the optimiser's steps "
                  "(issue 11 item 2): see the own-step prediction")
            rho = per_run(rs, _cp(which, lambda c: None if c.agreement_window is None
                                  else c.agreement_window.spearman.rho))
            if any(v is not None for v in rho.values()):
                t.add(f"The GD-predicted relative rate follows the measured rate over the "
                      f"{rs[0].checkpoint(which).window}-epoch window (epoch {ep}; the old "
                      "measurement)", name, "Spearman rho (predicted, measured rate)", rho, 0.0,
                      "greater", "fisher", "implied by the confusion argument")


def _kernel_conf(which, attr, record="confusion_kernel"):
    return _cp(which, lambda c: None if getattr(c, record) is None
               else getattr(getattr(c, record), attr))


def _claims_kernel_split(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """Issue 11 item 1: every pair quantity split into its kernel part
    ``s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)`` and its residual part
    ``cos(r_i, r_j)``; the confusion rows and the pair mechanism on each part
    beside the full-gradient numbers."""
    for name, rs in g.items():
        c0 = rs[0].checkpoint("end")
        if c0.kernel_split is None or rs[0].dim != 2:
            continue
        ep = c0.epoch
        pr = per_run(rs, _cp("end", lambda c: None if c.kernel_split is None
                             else c.kernel_split.pearson_residual))
        t.add(f"With 3 output channels the gradient cosine of neighbour pairs is set by the "
              f"residual cosine (Pearson of cos(g_i, g_j) against cos(r_i, r_j) over the 3x3-patch "
              f"pairs above 0.9, epoch {ep})", name,
              "Pearson (gradient cosine, residual cosine) over the pairs of a run", pr, 0.9,
              "greater", "fisher", "(not in the paper: the paper reads the cosines as regions)",
              "issue 11 item 1: if this holds, the full-gradient confusion rows measure the "
              "residuals")
        pk = per_run(rs, _cp("end", lambda c: None if c.kernel_split is None
                             else c.kernel_split.pearson_kernel))
        t.add(f"The kernel part alone does not carry the gradient cosine (Pearson of cos(g_i, g_j) "
              f"against s_ij below 0.5, epoch {ep})", name,
              "Pearson (gradient cosine, kernel similarity) over the pairs of a run", pk, 0.5,
              "less", "fisher", "(not in the paper)")
    if raw2 and pe_hi:
        for record, what in (("confusion_kernel", "kernel similarity s_ij"),
                             ("confusion_residual", "residual cosine cos(r_i, r_j)")):
            below = _kernel_conf("end", "neighbour_below", record)
            diff = paired(per_run(raw2, below), per_run(pe_hi, below), lambda a, b: a - b)
            t.add(f"The paper's confusion row on the {what} alone: more neighbour pairs below "
                  f"-0.5 with raw inputs than with PE (end; difference raw - PE)",
                  f"2d-raw - {pe_hi_name}", f"share difference (2d-raw - {pe_hi_name}), paired by seed",
                  diff, 0.0, "greater", "linear", "raw ~26%, PE L=2 ~22%, PE L=5 ~2% (full "
                  "gradients)", "beside the full-gradient row above")
        mean = _kernel_conf("end", "neighbour_mean")
        t.add("Neighbours share their kernel more with raw inputs than with PE (mean kernel "
              "similarity s_ij of 3x3-patch pairs, end; difference raw - PE)",
              f"2d-raw - {pe_hi_name}", f"mean s_ij difference (2d-raw - {pe_hi_name}), paired by seed",
              paired(per_run(raw2, mean), per_run(pe_hi, mean), lambda a, b: a - b), 0.0,
              "greater", "linear", "the mechanism: shared patterns give shared gradients")
    for name, rs in g.items():
        ep = rs[0].checkpoint("early").epoch
        for record, what in (("pairs_kernel", "|s_ij|, the kernel part"),
                             ("pairs_residual", "|cos(r_i, r_j)|, the residual part")):
            rho = per_run(rs, _cp("early", lambda c, rec=record: None if getattr(c, rec) is None
                                  else getattr(c, rec).abs_cos_vs_hamming.rho))
            if not any(v is not None for v in rho.values()):
                continue
            t.add(f"Local pairs with more different patterns are less aligned, on {what} "
                  f"(Spearman against the pair's Hamming distance over the 3x3-patch pairs, "
                  f"epoch {ep})", name, "Spearman rho over the pairs of a run", rho, 0.0, "less",
                  "fisher", "the mechanism: shared patterns give (anti)parallel gradients",
                  "beside the full-gradient finding")


def _claims_first_order(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """Issue 11 item 2: the first-order prediction against the step the run
    really takes. Full-batch GD runs: the per-sample prediction against the
    change over the next record and over the coupling window, and the
    kernel's per-band prediction against the measured residual energy. Adam
    runs: the prediction with Adam's own preconditioned step, split by pair
    class, per-pair sizes beside the summed shares."""
    for name, rs in g.items():
        if not is_gd(rs[0]):
            continue
        for which in ("init", "early"):
            c = rs[0].checkpoint(which)
            steps = record_steps(rs[0], which)
            pe = per_run(rs, _cp(which, lambda c: None if c.agreement is None
                                 else c.agreement.pearson))
            if any(v is not None for v in pe.values()):
                t.add(f"Full-batch GD: the per-sample loss change over the next {steps} GD "
                      f"step{'s' if steps != 1 else ''} is the first-order prediction (Pearson "
                      f"above 0.9, epoch {c.epoch})", name,
                      "Pearson (predicted, measured change) over the samples", pe, 0.9,
                      "greater", "fisher", "implied by the confusion argument",
                      f"window {steps} GD steps (one per epoch)")
            rho = per_run(rs, _cp(which, lambda c: None if c.agreement_window is None
                                  else c.agreement_window.spearman.rho))
            if any(v is not None for v in rho.values()):
                t.add(f"Full-batch GD: the predicted relative rate ranks the samples' measured "
                      f"rate over the {c.window}-step window after epoch {c.epoch} (Spearman "
                      "above 0)", name, "Spearman rho (predicted, measured rate)", rho, 0.0,
                      "greater", "fisher", "implied by the confusion argument",
                      f"window {c.window} GD steps")
            err = per_run(rs, _cp(which, lambda c: None if c.spectrum is None
                                  else c.spectrum.prediction_error_end))
            if any(v is not None for v in err.values()):
                h = c.spectrum.horizon
                t.add(f"Full-batch GD: the kernel's spectral prediction of the residual over the "
                      f"{h} steps after epoch {c.epoch} misses by less than half of the "
                      "measured change (|r_pred - r| / |r_start - r| below 0.5)", name,
                      "relative error of the predicted residual at the end of the horizon", err,
                      0.5, "less", "linear", "(the NTK theory of spectral bias)",
                      f"horizon {h} GD steps")
                miss = per_run(rs, lambda r, w=which: band_prediction_miss(r, w))
                t.add(f"Full-batch GD: per band, the predicted residual energy ratio after the "
                      f"{h} steps from epoch {c.epoch} is within 0.1 of the measured one (largest "
                      "|predicted - measured| over the bands)", name,
                      "max over bands |predicted - measured| residual energy ratio", miss, 0.1,
                      "less", "linear", "(the NTK theory of spectral bias)",
                      f"horizon {h} GD steps")
    for name, rs in g.items():
        if rs[0].checkpoint("early").adam_step is None:
            continue
        ep = rs[0].checkpoint("early").epoch
        own = per_run(rs, _cp("early", lambda c: None if c.adam_step is None
                              else c.adam_step.pearson))
        t.add(f"Adam: with the optimiser's own preconditioned step the first-order prediction "
              f"g_i . dtheta gives the one-step change of each loss (Pearson above 0.99, epoch "
              f"{ep})", name, "Pearson (g_i . dtheta, measured one-step change) over the samples",
              own, 0.99, "greater", "fisher", "(first-order theory)",
              "issue 11 item 2: the GD-direction prediction tested Adam against GD")
        cos = per_run(rs, _cp("early", lambda c: None if c.adam_step is None
                              else c.adam_step.cos_full_gradient))
        t.add(f"Adam's step is not the GD direction (cosine of Adam's update with the negative "
              f"full-batch gradient below 0.9, epoch {ep})", name,
              "cosine (Adam update, -full-batch gradient)", cos, 0.9, "less", "linear",
              "(the old prediction assumed the GD direction)")
        for cls in ("same_region", "neighbour_region"):
            ratio = per_run(rs, _cp("early", lambda c, k=cls: _pair_ratio(c, k)))
            if not any(v is not None for v in ratio.values()):
                continue
            t.add(f"Adam step, per pair: a {cls.replace('_', '-')} pair moves a sample's loss "
                  f"more than a far pair (mean |c g_i^T D g_j| of the class / of far pairs, "
                  f"epoch {ep})", name, f"mean |pair term| ratio ({cls} / far)", ratio, 1.0,
                  "greater", "log", "the mechanism: samples sharing a region couple strongly",
                  "summed shares are dominated by the number of far pairs; see the report's "
                  "table")


def _epochs(k):
    return f"{k} epoch" + ("" if k == 1 else "s")


def _pair_ratio(c, cls):
    a = c.adam_step
    if a is None:
        return None
    x, y = a.mean_abs_pair.get(cls), a.mean_abs_pair.get("far")
    return None if x is None or y is None or y <= 0 else x / y


def band_prediction_miss(r, which):
    """Largest |predicted - measured| residual energy ratio over the bands at
    the end of the spectral prediction's horizon from checkpoint ``which``
    (None without a prediction)."""
    s = r.checkpoint(which).spectrum
    if s is None or s.predicted_band is None or r.band_energy is None:
        return None
    rows = np.flatnonzero(np.any(np.isfinite(s.predicted_band), axis=1))
    if rows.size == 0:
        return None
    k = rows[-1]
    pred, meas = s.predicted_band[k], r.band_energy.ratio[k]
    ok = np.isfinite(pred) & np.isfinite(meas)
    return float(np.max(np.abs(pred[ok] - meas[ok]))) if ok.any() else None


def top_band_gain(r, c):
    """The kernel's gain (``Spectrum.band_gain``) at checkpoint ``c`` of run ``r``
    in the run's high band: the highest band where the target has energy
    (:meth:`RunResult.high_band`), else the highest band with a finite gain;
    None without a spectrum."""
    s = c.spectrum
    if s is None or s.band_gain is None:
        return None
    gain = np.asarray(s.band_gain, float)
    b = r.high_band()
    if b is None or b >= gain.size or not np.isfinite(gain[b]):
        ok = np.flatnonzero(np.isfinite(gain))
        if not ok.size:
            return None
        b = ok[-1]
    return float(gain[b])


def across_runs_spearman(runs, x, y):
    """Spearman rho of ``x(run, checkpoint)`` against ``y(run, checkpoint)`` over
    every (run, checkpoint) of ``runs`` where both are finite (None with fewer
    than 4 such points or a constant side)."""
    from scipy import stats as st

    pts = [(x(r, c), y(r, c)) for r in runs for c in r.checkpoints]
    pts = np.array([p for p in pts if p[0] is not None and p[1] is not None
                    and np.isfinite(p[0]) and np.isfinite(p[1])], float)
    if len(pts) < 4 or np.ptp(pts[:, 0]) == 0 or np.ptp(pts[:, 1]) == 0:
        return None
    return float(st.spearmanr(pts[:, 0], pts[:, 1]).statistic)


def _claims_spectral(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """Issue 11 item 6: the trace NTK's spectrum. Band gains raw against PE,
    the order of its eigenvectors by frequency, where the residual sits, and
    the spectrum against the region structure over runs and checkpoints."""
    chains = []
    if raw2:
        chains.append([("2d-raw", raw2)] + ([("2d-pe2", pe2)] if pe2 and pe_hi_name != "2d-pe2"
                                            else []) + ([(pe_hi_name, pe_hi)] if pe_hi else []))
    gd_names = [n for n in g if n.startswith("gd-2d-")]
    if "gd-2d-raw" in g:
        chains.append([(n, g[n]) for n in ["gd-2d-raw"] + [n for n in gd_names if n != "gd-2d-raw"]])
    for chain in chains:
        for (na, ra), (nb, rb) in zip(chain, chain[1:]):
            if ra[0].checkpoint("init").spectrum is None:
                continue
            t.add(f"The kernel of {nb} weights the highest frequency band more than {na}'s "
                  "(band gain of the top band, Rayleigh quotient over the mean eigenvalue, "
                  "init)", f"{nb} / {na}", f"top-band gain ratio ({nb} / {na}), paired by seed",
                  paired(per_run(rb, lambda r: top_band_gain(r, r.checkpoint("init"))),
                         per_run(ra, lambda r: top_band_gain(r, r.checkpoint("init"))), _ratio),
                  1.0, "greater",
                  "log", "PE learns high frequencies (spectral bias of raw inputs)")
    for name, rs in g.items():
        if rs[0].checkpoint("init").spectrum is None:
            continue
        fo = per_run(rs, _cp("init", lambda c: c.spectrum.frequency_order))
        t.add("The kernel's eigenvectors go from low to high frequency as the eigenvalue falls "
              "(Spearman of eigenvalue rank against eigenvector frequency, init)", name,
              "Spearman rho (eigenvalue rank, frequency) over the eigenvectors", fo, 0.0,
              "greater", "fisher", "spectral bias (NTK picture)")
        al = per_run(rs, _cp("end", lambda c: None if c.spectrum is None
                             else c.spectrum.residual_alignment))
        t.add("What is left to learn sits in the kernel's slow directions (residual alignment "
              "r^T Theta r / |r|^2 over the mean eigenvalue below 1, end)", name,
              "residual alignment, end", al, 1.0, "less", "log", "spectral bias (NTK picture)")
    two_d = [r for r in (x for rs in g.values() for x in rs) if r.dim == 2]
    if two_d:
        by_seed = group_by_seed(two_d)
        for what, y in (("the mean Hamming distance over 3x3 patches",
                         lambda r, c: c.hamming_patch),
                        ("the share of pixels with a pattern of their own (sampled patterns / "
                         "pixels)", lambda r, c: c.n_patterns_sampled / r.n)):
            rho = {s: across_runs_spearman(rs, top_band_gain, y) for s, rs in by_seed.items()}
            if any(v is not None for v in rho.values()):
                t.add(f"Where patterns change faster in space the kernel weights high frequencies "
                      f"more (Spearman of the top-band gain against {what}, over every 2D run "
                      "and checkpoint of a seed)", "all 2D runs",
                      "Spearman rho over (run, checkpoint) points of a seed", rho, 0.0,
                      "greater", "fisher", "the paper's coupling of regions and spectral bias")


def group_by_seed(results):
    """Runs grouped by seed, in first-appearance order."""
    out = {}
    for r in results:
        out.setdefault(r.seed, []).append(r)
    return out


def _dip_series(rs):
    """``(what, epochs, {seed: values})`` of the distance series of a run over
    the checkpoints where every seed measured it; None with fewer than three."""
    one_d = rs[0].dim == 1
    exact = one_d or rs[0].encoding is None

    def value(c):
        v = c.mean_dist_boundary if exact else c.mean_chord
        return np.nan if v is None else float(v)

    series = {r.seed: np.array([value(c) for c in r.checkpoints]) for r in rs}
    if len({len(s) for s in series.values()}) != 1:
        return None
    keep = np.all(np.isfinite(np.stack(list(series.values()))), axis=0)
    if keep.sum() < 3:
        return None
    epochs = [c.epoch for c, k in zip(rs[0].checkpoints, keep) if k]
    what = ("exact mean distance to the region boundary" if exact
            else "mean chord between boundaries along grid lines")
    return what, epochs, {k: v[keep] for k, v in series.items()}


def _leave_one_out_dip(series):
    """Per seed, the interior checkpoint where the *other* seeds' mean curve
    (each normalised by its initial value) is lowest, so that a seed's own
    noise does not choose its dip (with one seed, its own curve)."""
    out = {}
    for k in series:
        others = [v / v[0] for j, v in series.items() if j != k] or [series[k] / series[k][0]]
        mean = np.mean(others, axis=0)
        out[k] = 1 + int(np.argmin(mean[1:-1]))
    return out


def _claims_other_effects(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The paper's other effects: dead ReLUs, boundary distance, region width,
    normals, the authors' distance."""
    if raw2 and pe_hi:
        dead = lambda r: r.checkpoint("early").dead.get("all")  # noqa: E731
        t.add("Raw coordinates kill more ReLUs early than PE (share of hidden neurons inactive "
              "on every sample, early checkpoint; difference raw - PE)", f"2d-raw - {pe_hi_name}",
              f"dead share difference (2d-raw - {pe_hi_name}), paired by seed",
              paired(per_run(raw2, dead), per_run(pe_hi, dead), lambda a, b: a - b), 0.0,
              "greater", "linear", "many (raw) vs very few (PE)")
        t.add("Raw coordinates kill many ReLUs early (share of hidden neurons inactive on every "
              "sample above 5%, early checkpoint)", "2d-raw", "dead share, early",
              per_run(raw2, dead), 0.05, "greater", "linear", "many (raw)")
    for name, rs in g.items():
        dip = _dip_series(rs)
        if dip is None:
            continue
        what, epochs, series = dip
        at = _leave_one_out_dip(series)
        where = ", ".join(f"seed {k}: {epochs[i]}" for k, i in at.items())
        t.add(f"The {what} first drops (dip below its initial value)", name,
              "distance at the dip / at init (dip: interior checkpoint chosen on the other seeds)",
              {k: s[at[k]] / s[0] for k, s in series.items()}, 1.0, "less", "log",
              "drops then grows (PE)", f"checkpoints {epochs}; dip at {where}")
        t.add(f"The {what} then grows again (end above the dip)", name,
              "distance at the end / at the dip", {k: s[-1] / s[at[k]] for k, s in series.items()},
              1.0, "greater", "log", "drops then grows (PE)",
              f"checkpoints {epochs}; dip at {where}")
    if pe2 and pe_hi and pe_hi_name != "2d-pe2":
        def rel(r):
            a, b = r.checkpoint("init").mean_chord, r.checkpoint("end").mean_chord
            return None if a is None or b is None or a <= 0 else b / a
        t.add("Higher L gives wider regions late in training, relative to initialisation (mean "
              f"chord along grid lines end / init, {pe_hi_name} over 2d-pe2)", f"{pe_hi_name} / 2d-pe2",
              f"(chord end / init of {pe_hi_name}) / (the same of 2d-pe2), paired by seed",
              paired(per_run(pe_hi, rel), per_run(pe2, rel), _ratio), 1.0, "greater", "log",
              "higher L -> wider regions late",
              "absolute chords are not compared: PE L=5 starts several times denser")
    for name, rs in g.items():
        layers = sorted(rs[0].checkpoint("init").normal_cos)
        for layer in layers:
            a = per_run(rs, _cp("init", lambda c, k=layer: c.normal_cos.get(k)))
            b = per_run(rs, _cp("end", lambda c, k=layer: c.normal_cos.get(k)))
            diff = paired(b, a, lambda x, y: x - y)
            init = [v for v in a.values() if v is not None]
            sd0 = float(np.std(init, ddof=1)) if len(init) > 1 else np.nan
            eff = (np.mean(list(diff.values())) / sd0) if diff and sd0 > 0 else np.nan
            t.add(f"Layer-{layer[1:]} hyperplane normals become more positively correlated "
                  "during training (mean pairwise cosine of the weight rows, end - init)", name,
                  "mean pairwise cosine end - init, paired by seed", diff, 0.0, "greater",
                  "linear", "positively correlated during training",
                  f"spread at init over seeds (sd) {_fmt(sd0)}; change / that sd {_fmt(eff)}")
    for name, rs in g.items():
        if rs[0].encoding is not None:
            continue
        for which in ("init", "end"):
            layers = sorted({k for r in rs for k in (r.checkpoint(which).paper_distance_ratio
                                                     or {}) if k != "all"})
            for layer in layers:
                ratio = per_run(rs, _cp(which, lambda c, k=layer:
                                        (c.paper_distance_ratio or {}).get(k)))
                t.add(f"The authors' |z|/|W_l[k]| underestimates the distance to layer "
                      f"{layer[1:]}'s boundaries ({which})", name,
                      "median exact local distance / the authors' distance", ratio, 1.0,
                      "greater", "log", "1.3-5x too small")


#: The groups of findings, in the order of the table: (title, function).
def _claims_intervention(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The causal test: positional encoding on one half of the image only
    (:mod:`regions.study.intervention`), both arms of a seed from the same
    weights. First the manipulation check (the regions are denser inside), then
    whether the treated half converges faster than the control arm's same half
    (difference in differences of the log loss drop), whether the other half is
    left alone (spillover), and per frequency band; under GD and under Adam."""
    from .intervention import intervention_effects

    rows = intervention_effects([r for rs in g.values() for r in rs])
    claims = {
        "density": ("greater", "The intervention makes the regions denser where the encoding "
                               "is on (manipulation check: log ratio of neighbour Hamming "
                               "distance inside / outside, treated minus control)"),
        "did": ("greater", "Denser regions on one half make that half converge faster "
                           "(difference in differences of the log loss drop, treated minus "
                           "control arm, inside minus outside)"),
        "spillover": ("greater", "The intervention speeds up the half without the encoding as "
                                 "well (outside: treated minus control log loss drop; the "
                                 "expected answer is no)"),
        "band_did": ("greater", "Denser regions speed up every frequency band of the treated "
                                "half (difference in differences of the band's log "
                                "residual-energy drop)")}
    for row in rows:
        if row["effect"] not in claims:
            continue
        side, words = claims[row["effect"]]
        band = f", band {row['band']} cycles" if row["band"] else ""
        t.add(f"{words} [{row['optimizer']}, {row['when']}: epoch {row['epoch']}{band}]",
              row["pair"], f"{row['effect']}: {row['meaning']}", row["values"], 0.0, side,
              "linear", "not in the paper (issue 11 item 7)",
              "paired by seed: both arms of a seed start from the same weights")


GROUPS = (("the paper's table", _claims_paper_table),
          ("mechanism at pair level, high frequencies", _claims_mechanism),
          ("kernel against residual", _claims_kernel_split),
          ("per-sample coupling", _claims_coupling),
          ("the old first-order prediction", _claims_prediction),
          ("first-order prediction with the run's own step", _claims_first_order),
          ("spectral coupling", _claims_spectral),
          ("the paper's other effects", _claims_other_effects),
          ("the intervention: denser regions on half the image", _claims_intervention))
