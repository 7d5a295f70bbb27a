"""Claims about the training dynamics: the first-order predictions (GD and
the run's own optimiser step), the kernel against the residual, spectral
coupling, and the intervention (:mod:`regions.study.claims`)."""
from __future__ import annotations

import numpy as np

from ..stats import paired
from .table import (at_checkpoint, epoch_span, group_by_seed, is_gd, measured,
                    pair_ratio, per_run, safe_ratio, record_steps)


def claims_prediction(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The Gram formula's sanity check, and the old comparison of the
    full-batch GD prediction with training under another optimiser."""
    for name, rs in g.items():
        gd = per_run(rs, measured("init", "gd_step", "pearson"))
        if any(v is not None for v in gd.values()):
            t.add("Sanity check of the Gram formula: one real full-batch GD step from init "
                  "changes each loss as predicted to first order (Pearson above 0.99)", name,
                  "Pearson (predicted, actual one-step change) over the samples", gd, 0.99,
                  "greater", "fisher", "(exact formula)")
            sc = per_run(rs, at_checkpoint("init", lambda c: None if c.gd_step is None
                                 else abs(c.gd_step.scale - 1)))
            t.add("Sanity check of the Gram formula: least-squares scale of actual on predicted "
                  "within 0.05 of 1", name, "|scale - 1|", sc, 0.05, "less", "linear",
                  "(exact formula)")
        if is_gd(rs[0]):
            continue  # the prediction is the run's own step: claims_first_order
        for which in ("init", "early"):
            rho = per_run(rs, measured(which, "agreement", "spearman", "rho"))
            if not any(v is not None for v in rho.values()):
                continue
            ep = rs[0].checkpoint(which).epoch
            steps = record_steps(rs[0], which)
            t.add(f"The measured per-sample loss change over the next {epoch_span(steps)} follows the "
                  f"full-batch GD prediction although training uses "
                  f"{rs[0].config.get('optimizer', 'another optimiser')} (epoch {ep}; the old "
                  "measurement)", name,
                  "Spearman rho (GD-predicted, measured change) over the samples", rho, 0.0,
                  "greater", "fisher", "implied by the confusion argument",
                  "the prediction is a GD step, training takes the optimiser's steps "
                  "(issue 11 item 2): see the own-step prediction")
            rho = per_run(rs, measured(which, "agreement_window", "spearman", "rho"))
            if any(v is not None for v in rho.values()):
                t.add(f"The GD-predicted relative rate follows the measured rate over the "
                      f"{rs[0].checkpoint(which).window}-epoch window (epoch {ep}; the old "
                      "measurement)", name, "Spearman rho (predicted, measured rate)", rho, 0.0,
                      "greater", "fisher", "implied by the confusion argument")


def claims_kernel_split(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """Issue 11 item 1: every pair quantity split into its kernel part
    ``s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)`` and its residual part
    ``cos(r_i, r_j)``; the confusion rows and the pair mechanism on each part
    beside the full-gradient numbers."""
    for name, rs in g.items():
        c0 = rs[0].checkpoint("end")
        if c0.kernel_split is None or rs[0].dim != 2:
            continue
        ep = c0.epoch
        pr = per_run(rs, measured("end", "kernel_split", "pearson_residual"))
        t.add(f"With 3 output channels the gradient cosine of neighbour pairs is set by the "
              f"residual cosine (Pearson of cos(g_i, g_j) against cos(r_i, r_j) over the 3x3-patch "
              f"pairs above 0.9, epoch {ep})", name,
              "Pearson (gradient cosine, residual cosine) over the pairs of a run", pr, 0.9,
              "greater", "fisher", "(not in the paper: the paper reads the cosines as regions)",
              "issue 11 item 1: if this holds, the full-gradient confusion rows measure the "
              "residuals")
        pk = per_run(rs, measured("end", "kernel_split", "pearson_kernel"))
        t.add(f"The kernel part alone does not carry the gradient cosine (Pearson of cos(g_i, g_j) "
              f"against s_ij below 0.5, epoch {ep})", name,
              "Pearson (gradient cosine, kernel similarity) over the pairs of a run", pk, 0.5,
              "less", "fisher", "(not in the paper)")
    if raw2 and pe_hi:
        for record, what in (("confusion_kernel", "kernel similarity s_ij"),
                             ("confusion_residual", "residual cosine cos(r_i, r_j)")):
            below = measured("end", record, "neighbour_below")
            diff = paired(per_run(raw2, below), per_run(pe_hi, below), lambda a, b: a - b)
            t.add(f"The paper's confusion row on the {what} alone: more neighbour pairs below "
                  f"-0.5 with raw inputs than with PE (end; difference raw - PE)",
                  f"2d-raw - {pe_hi_name}", f"share difference (2d-raw - {pe_hi_name}), paired by seed",
                  diff, 0.0, "greater", "linear", "raw ~26%, PE L=2 ~22%, PE L=5 ~2% (full "
                  "gradients)", "beside the full-gradient row above")
        mean = measured("end", "confusion_kernel", "neighbour_mean")
        t.add("Neighbours share their kernel more with raw inputs than with PE (mean kernel "
              "similarity s_ij of 3x3-patch pairs, end; difference raw - PE)",
              f"2d-raw - {pe_hi_name}", f"mean s_ij difference (2d-raw - {pe_hi_name}), paired by seed",
              paired(per_run(raw2, mean), per_run(pe_hi, mean), lambda a, b: a - b), 0.0,
              "greater", "linear", "the mechanism: shared patterns give shared gradients")
    for name, rs in g.items():
        ep = rs[0].checkpoint("early").epoch
        for record, what in (("pairs_kernel", "|s_ij|, the kernel part"),
                             ("pairs_residual", "|cos(r_i, r_j)|, the residual part")):
            rho = per_run(rs, measured("early", record, "abs_cos_vs_hamming", "rho"))
            if not any(v is not None for v in rho.values()):
                continue
            t.add(f"Local pairs with more different patterns are less aligned, on {what} "
                  f"(Spearman against the pair's Hamming distance over the 3x3-patch pairs, "
                  f"epoch {ep})", name, "Spearman rho over the pairs of a run", rho, 0.0, "less",
                  "fisher", "the mechanism: shared patterns give (anti)parallel gradients",
                  "beside the full-gradient finding")


def claims_first_order(t, g, raw2, pe2, pe_hi, pe_hi_name):
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
            pe = per_run(rs, measured(which, "agreement", "pearson"))
            if any(v is not None for v in pe.values()):
                t.add(f"Full-batch GD: the per-sample loss change over the next {steps} GD "
                      f"step{'s' if steps != 1 else ''} is the first-order prediction (Pearson "
                      f"above 0.9, epoch {c.epoch})", name,
                      "Pearson (predicted, measured change) over the samples", pe, 0.9,
                      "greater", "fisher", "implied by the confusion argument",
                      f"window {steps} GD steps (one per epoch)")
            rho = per_run(rs, measured(which, "agreement_window", "spearman", "rho"))
            if any(v is not None for v in rho.values()):
                t.add(f"Full-batch GD: the predicted relative rate ranks the samples' measured "
                      f"rate over the {c.window}-step window after epoch {c.epoch} (Spearman "
                      "above 0)", name, "Spearman rho (predicted, measured rate)", rho, 0.0,
                      "greater", "fisher", "implied by the confusion argument",
                      f"window {c.window} GD steps")
            err = per_run(rs, measured(which, "spectrum", "prediction_error_end"))
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
        own = per_run(rs, measured("early", "adam_step", "pearson"))
        t.add(f"Adam: with the optimiser's own preconditioned step the first-order prediction "
              f"g_i . dtheta gives the one-step change of each loss (Pearson above 0.99, epoch "
              f"{ep})", name, "Pearson (g_i . dtheta, measured one-step change) over the samples",
              own, 0.99, "greater", "fisher", "(first-order theory)",
              "issue 11 item 2: the GD-direction prediction tested Adam against GD")
        cos = per_run(rs, measured("early", "adam_step", "cos_full_gradient"))
        t.add(f"Adam's step is not the GD direction (cosine of Adam's update with the negative "
              f"full-batch gradient below 0.9, epoch {ep})", name,
              "cosine (Adam update, -full-batch gradient)", cos, 0.9, "less", "linear",
              "(the old prediction assumed the GD direction)")
        for cls in ("same_region", "neighbour_region"):
            ratio = per_run(rs, at_checkpoint("early", lambda c, k=cls: pair_ratio(c, k)))
            if not any(v is not None for v in ratio.values()):
                continue
            t.add(f"Adam step, per pair: a {cls.replace('_', '-')} pair moves a sample's loss "
                  f"more than a far pair (mean |c g_i^T D g_j| of the class / of far pairs, "
                  f"epoch {ep})", name, f"mean |pair term| ratio ({cls} / far)", ratio, 1.0,
                  "greater", "log", "the mechanism: samples sharing a region couple strongly",
                  "summed shares are dominated by the number of far pairs; see the report's "
                  "table")


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


def claims_spectral(t, g, raw2, pe2, pe_hi, pe_hi_name):
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
                         per_run(ra, lambda r: top_band_gain(r, r.checkpoint("init"))), safe_ratio),
                  1.0, "greater",
                  "log", "PE learns high frequencies (spectral bias of raw inputs)")
    for name, rs in g.items():
        if rs[0].checkpoint("init").spectrum is None:
            continue
        fo = per_run(rs, at_checkpoint("init", lambda c: c.spectrum.frequency_order))
        t.add("The kernel's eigenvectors go from low to high frequency as the eigenvalue falls "
              "(Spearman of eigenvalue rank against eigenvector frequency, init)", name,
              "Spearman rho (eigenvalue rank, frequency) over the eigenvectors", fo, 0.0,
              "greater", "fisher", "spectral bias (NTK picture)")
        al = per_run(rs, measured("end", "spectrum", "residual_alignment"))
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


#: The groups of findings, in the order of the table: (title, function).
def claims_intervention(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The causal test: positional encoding on one half of the image only
    (:mod:`regions.study.intervention`), both arms of a seed from the same
    weights. First the manipulation check (the regions are denser inside), then
    whether the treated half converges faster than the control arm's same half
    (difference in differences of the log loss drop), whether the other half is
    left alone (spillover), and per frequency band; under GD and under Adam."""
    from ..intervention import intervention_effects

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
