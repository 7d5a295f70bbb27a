"""The paper's claims, checked on the study's results.

:func:`findings` reads the job results of :func:`regions.study.run_study`
(one :class:`regions.study.results.RunResult` per experiment and seed) and
returns one :class:`regions.study.results.Finding` per claim: what the
paper reports, what was measured here, and a verdict ("holds", "does not
hold" or "not tested"). The thresholds are stated in each check; numbers are
means over seeds.
"""
from __future__ import annotations

import warnings

import numpy as np

from .results import Finding, RunResult, group_by_name
from .text import aggregate as _agg
from .text import correlation_summary, mean_correlation
from .text import fmt as _fmt

__all__ = ["findings", "seed_correlations", "measured_at"]


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


# ----------------------------------------------------------------------------- findings
def _verdict(ok):
    if ok is None:
        return "not tested"
    return "holds" if ok else "does not hold"


def findings(results):
    """The paper's claims checked on the results (a list of
    :class:`regions.study.results.RunResult`): a list of
    :class:`regions.study.results.Finding`."""
    g = group_by_name(results)
    out = []
    raw2, pe2 = g.get("2d-raw"), g.get("2d-pe2")
    pes = [(n, rs) for n, rs in g.items() if n.startswith("2d-pe")]
    pe_hi = max(pes, key=lambda t: int(t[0][5:]))[1] if pes else None
    pe_hi_name = max(pes, key=lambda t: int(t[0][5:]))[0] if pes else "2d-pe"
    N2 = raw2[0].n if raw2 else (pe_hi[0].n if pe_hi else None)

    def mean(rs, fn):
        return _agg([fn(r) for r in rs])[0] if rs else np.nan

    def have(*values):
        """True when every number a verdict rests on was measured (finite)."""
        return all(v is not None and np.isfinite(v) for v in values)

    def add(claim, paper, measured, ok):
        out.append(Finding(claim=claim, paper=paper, measured=measured, verdict=_verdict(ok)))

    ctx = (results, g, raw2, pe2, pe_hi, pe_hi_name, N2, mean, have, add)
    for group in (_claims_paper_table, _claims_mechanism, _claims_prediction,
                  _claims_other_effects):
        group(*ctx)
    return out


def _claims_paper_table(results, g, raw2, pe2, pe_hi, pe_hi_name, N2, mean, have, add):
    """The paper's table: fit, patterns, exact counts, Hamming, confusion."""
    # 1. fit quality
    if raw2 and pe_hi:
        m_raw = mean(raw2, lambda r: r.mean_loss[-1])
        m_pe = mean(pe_hi, lambda r: r.mean_loss[-1])
        m_pe2 = mean(pe2, lambda r: r.mean_loss[-1]) if pe2 else np.nan
        ok = m_pe < 0.5 * m_raw and (not pe2 or m_pe <= m_pe2 <= m_raw)
        add("PE fits white noise far better than raw coordinates (final training MSE)",
            "raw ~0.079, PE L=2 ~0.062, PE L=5 ~0.012",
            f"raw {_fmt(m_raw)}" + (f", PE L=2 {_fmt(m_pe2)}" if pe2 else "")
            + f", {pe_hi_name} {_fmt(m_pe)}", ok)
    # 2. sampled patterns
    if raw2 and pe_hi:
        r0 = mean(raw2, lambda r: r.checkpoint("init").n_patterns_sampled)
        r1 = mean(raw2, lambda r: r.checkpoint("end").n_patterns_sampled)
        p0 = mean(pe_hi, lambda r: r.checkpoint("init").n_patterns_sampled)
        ok = r1 / N2 < 0.9 and p0 / N2 > 0.95
        add("Distinct patterns on the pixels: raw well below the pixel count; PE ~ one per "
            "pixel from init",
            "raw ~1.5k -> ~2.3k of 4096; PE L=5 4096 from init",
            f"raw {_fmt(r0)} (init) -> {_fmt(r1)} (end) of {N2}; {pe_hi_name} {_fmt(p0)} at init",
            ok)
        e_ex = mean(raw2, lambda r: r.checkpoint("early").n_regions)
        x_ex = mean(raw2, lambda r: r.checkpoint("end").n_regions)
        i_ex = mean(raw2, lambda r: r.checkpoint("init").n_regions)
        e_sa = mean(raw2, lambda r: r.checkpoint("early").n_patterns_sampled)
        counts = (f"exact regions {_fmt(i_ex)} (init) -> {_fmt(e_ex)} (early) -> {_fmt(x_ex)} "
                  f"(end); sampled {_fmt(r0)} -> {_fmt(e_sa)} -> {_fmt(r1)}")
        # the paper's claim is growth from init to the end of training; a
        # regrowth after an early drop is a different (weaker) statement,
        # checked separately so a net loss is not reported as growth
        ok = None if not (np.isfinite(x_ex) and np.isfinite(i_ex)) else bool(x_ex > i_ex)
        add("Raw: the number of regions grows during training (init -> end)",
            "~1.5k -> ~2.3k sampled patterns", counts, ok)
        ok = None if not (np.isfinite(x_ex) and np.isfinite(e_ex)) else bool(x_ex > e_ex)
        add("Raw: after the early checkpoint the number of regions grows (early -> end)",
            "(not in the paper; the part of the growth that remains when init is excluded)",
            counts, ok)
    # 3. exact vs sampled counts
    if raw2:
        ex = mean(raw2, lambda r: r.checkpoint("end").n_regions)
        sa = mean(raw2, lambda r: r.checkpoint("end").n_patterns_sampled)
        hit = mean(raw2, lambda r: r.checkpoint("end").measure_hit_median)
        allm = mean(raw2, lambda r: r.checkpoint("end").measure_all_median)
        ok = None if not np.isfinite(ex) else bool(ex > sa)
        add("Sampling the pixel grid undercounts regions and misses the small ones",
            "a 2048^2 grid finds ~2/3 of a 2-64x4-1 net's regions; missed ones are small",
            f"raw end: exact {_fmt(ex)} regions vs {_fmt(sa)} sampled patterns "
            f"({_fmt(sa / ex if ex else np.nan)} found); median area of regions holding a "
            f"sample {_fmt(hit)} vs all regions {_fmt(allm)}", ok)
    # 4. Hamming
    if raw2 and pe_hi:
        h = {n: mean(rs, lambda r: r.checkpoint("end").hamming_patch) for n, rs in g.items()
             if n.startswith("2d")}
        order = [h.get("2d-raw"), h.get("2d-pe2"), h.get(pe_hi_name)]
        order = [v for v in order if v is not None]
        ok = (all(a < b for a, b in zip(order, order[1:])) and h["2d-raw"] < 6
              if have(*order) and len(order) > 1 else None)
        add("Neighbouring pixels have nearly equal patterns with raw inputs, very different "
            "with PE (mean Hamming over 3x3 patches, end)",
            "raw ~2-3, PE L=2 ~8-10, PE L=5 ~41-46 of 256",
            ", ".join(f"{n} {_fmt(v)}" for n, v in h.items()), ok)
    # 5. confusion
    if raw2 and pe_hi and raw2[0].checkpoint("end").confusion is not None:
        sr = mean(raw2, lambda r: r.checkpoint("end").confusion.neighbour_below)
        sd = mean(raw2, lambda r: r.checkpoint("end").confusion.distant_below)
        sp = mean(pe_hi, lambda r: r.checkpoint("end").confusion.neighbour_below)
        s2 = mean(pe2, lambda r: r.checkpoint("end").confusion.neighbour_below) if pe2 else None
        ok = sr > sp
        add("Neighbour gradients conflict with raw inputs, rarely with PE "
            "(share of 3x3-patch pairs with cosine < -0.5, end)",
            "raw ~26%, PE L=2 ~22%, PE L=5 ~2%",
            f"raw {_fmt(100 * sr)}% (distant pairs {_fmt(100 * sd)}%)"
            + (f", PE L=2 {_fmt(100 * s2)}%" if s2 is not None else "")
            + f", {pe_hi_name} {_fmt(100 * sp)}%", ok)
        if pe2:
            own = mean(pe2, lambda r: r.checkpoint("end").n_patterns_sampled) / N2
            ok2 = own > 0.9 and s2 > 2 * sp
            add("A region of its own per sample is not enough: PE L=2 gives most pixels their "
                "own pattern and still confuses neighbours",
                "PE L=2: own region for ~98% of pixels, ~22% confused neighbour pairs",
                f"PE L=2: {_fmt(100 * own)}% distinct patterns per pixel, {_fmt(100 * s2)}% "
                f"confused (vs {_fmt(100 * sp)}% for {pe_hi_name})", ok2)


def _claims_mechanism(results, g, raw2, pe2, pe_hi, pe_hi_name, N2, mean, have, add):
    """The mechanism at pair level, high-frequency energy, final loss against
    occupancy, per-sample coupling."""
    # 5b. the mechanism at pair level
    for name, rs in g.items():
        prs = measured_at(rs, "early", lambda c: c.pairs)
        if not prs:
            continue
        rho, lo, hi = mean_correlation([p.abs_cos_vs_hamming for p in prs])
        same = np.nanmean([p.share_same_region for p in prs])
        cs = _agg([p.abs_cos_same_region for p in prs])[0]
        co = _agg([p.abs_cos_other_region for p in prs])[0]
        ep = rs[0].checkpoint("early").epoch
        add(f"{name}: local pairs with more different patterns have less aligned gradients "
            f"(|cos| against the pair's Hamming distance, epoch {ep})",
            "the mechanism: shared patterns give (anti)parallel gradients",
            f"Spearman {rho:+.2f} [{lo:+.2f}, {hi:+.2f}]; mean |cos| same region {_fmt(cs)} "
            f"({_fmt(100 * same)}% of pairs) vs different regions {_fmt(co)}",
            bool(hi < 0))
    # 6. high-frequency energy
    if raw2 and pe_hi and raw2[0].band_energy is not None:
        er = mean(raw2, RunResult.high_band_ratio_end)
        ep = mean(pe_hi, RunResult.high_band_ratio_end)
        band = raw2[0].band_energy.bands[raw2[0].high_band()]
        ok = er > 0.8 and ep < 0.5 * er
        add(f"High frequencies stay unlearnt with raw inputs (residual energy ratio, band > "
            f"{band[0]:g} cycles, end)", "raw ~0.98, PE L=2 ~0.78, PE L=5 ~0.1",
            f"raw {_fmt(er)}"
            + (f", PE L=2 {_fmt(mean(pe2, RunResult.high_band_ratio_end))}" if pe2 else "")
            + f", {pe_hi_name} {_fmt(ep)}", ok)
    # 7. final loss vs occupancy
    if raw2:
        tr = [t for r in raw2
              for t in seed_correlations([r], "2d-raw", "occupancy", "final_loss", "end")]
        if tr:
            rho = float(np.nanmean([t.rho for t in tr]))
            add("The final per-pixel loss barely correlates with region occupancy (raw, end)",
                "barely correlates", f"Spearman {correlation_summary(tr)}", abs(rho) < 0.2)
    # 8. coupling during training (the project's test of the mechanism)
    for name, rs in g.items():
        if not rs or len(rs[0].checkpoints) < 3:
            continue
        occ = seed_correlations(results, name, "occupancy", "rate", "early")
        ham = seed_correlations(results, name, "hamming", "rate", "early")
        if not ham:
            continue
        msg = []
        ok = []
        if occ and np.any(np.isfinite([t.hi for t in occ])):
            msg.append(f"occupancy vs rate {correlation_summary(occ)}")
            ok.append(np.nanmean([t.hi for t in occ]) < 0)
        msg.append(f"Hamming to neighbours vs rate {correlation_summary(ham)}")
        if np.any(np.isfinite([t.lo for t in ham])):
            ok.append(np.nanmean([t.lo for t in ham]) > 0)
        ep = rs[0].checkpoint("early").epoch
        rhos = [abs(t.rho) for t in (occ or []) + ham if np.isfinite(t.rho)]
        if rhos:
            big = max(rhos)
            msg.append("effect size: " + ("weak (|rho| <= 0.1)" if big <= 0.1 else
                                          "moderate" if big <= 0.3 else "strong"))
        add(f"{name}: samples sharing their region with many samples / with near-equal "
            f"neighbour patterns learn slower (features at epoch {ep} vs speed in the window "
            "after it; 95% bootstrap CI)",
            "argued from confusion, never measured",
            "; ".join(msg), bool(all(ok)))


def _claims_prediction(results, g, raw2, pe2, pe_hi, pe_hi_name, N2, mean, have, add):
    """The first-order (Gram) prediction and its sanity check."""
    # 9. first-order prediction
    for name, rs in g.items():
        gd = measured_at(rs, "init", lambda c: c.gd_step)
        if gd:
            sc = np.nanmean([x.scale for x in gd])
            pe = np.nanmean([x.pearson for x in gd])
            add(f"{name}: sanity check of the Gram formula: one real full-batch GD step from "
                "init changes each loss as predicted to first order",
                "(exact formula)", f"Pearson {pe:+.4f}, scale {_fmt(sc, 4)}",
                bool(pe > 0.99 and abs(sc - 1) < 0.05))
        for which in ("init", "early"):
            ags = measured_at(rs, which, lambda c: c.agreement)
            agw = measured_at(rs, which, lambda c: c.agreement_window)
            if not ags:
                continue
            rho, lo, hi = mean_correlation([a.spearman for a in ags])
            sign = np.nanmean([a.sign_agreement for a in ags])
            shares = ags[0].term_share
            tsp = ags[0].term_spearman
            ep = rs[0].checkpoint(which).epoch
            wtxt = ""
            ok = lo > 0
            if agw:
                wr, wl, wh = mean_correlation([a.spearman for a in agw])
                wtxt = (f"; predicted relative rate vs measured rate over the window "
                        f"{wr:+.2f} [{wl:+.2f}, {wh:+.2f}]")
                ok = ok and wl > 0
            add(f"{name}: the measured per-sample loss change follows the first-order (Gram) "
                f"prediction (epoch {ep}; actual optimiser)",
                "implied by the confusion argument",
                f"next record: Spearman {rho:+.2f} [{lo:+.2f}, {hi:+.2f}], same sign "
                f"{_fmt(100 * sign)}%{wtxt}; share of |terms|: "
                + ", ".join(f"{k} {_fmt(100 * v)}%" for k, v in shares.items())
                + "; each term alone vs next record: "
                + ", ".join(f"{k} {v:+.2f}" for k, v in tsp.items()),
                bool(ok))


def _claims_other_effects(results, g, raw2, pe2, pe_hi, pe_hi_name, N2, mean, have, add):
    """The paper's other effects: dead ReLUs, boundary distance, region width,
    normals, the authors' distance."""
    # 10. dead ReLUs
    if raw2 and pe_hi:
        dr = mean(raw2, lambda r: r.checkpoint("early").dead.get("all"))
        dp = mean(pe_hi, lambda r: r.checkpoint("early").dead.get("all"))
        d0 = mean(raw2, lambda r: r.checkpoint("init").dead.get("all"))
        add("Raw coordinates kill many ReLUs early, PE very few (share of hidden neurons "
            "inactive on every sample, early checkpoint)", "many (raw) vs very few (PE)",
            f"raw {_fmt(100 * d0)}% at init -> {_fmt(100 * dr)}%; {pe_hi_name} {_fmt(100 * dp)}%",
            bool(dr > dp and dr > 0.05) if have(dr, dp) else None)
    # 11. PE distance to the boundary drops then grows
    for name, rs in g.items():
        if "pe" not in name or len(rs[0].checkpoints) < 3:
            continue
        one_d = rs[0].dim == 1

        def value(c):
            v = c.mean_dist_boundary if one_d else c.mean_chord
            return np.nan if v is None else v

        series = np.array([[value(c) for c in r.checkpoints] for r in rs], float)
        if not np.any(np.isfinite(series)):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns -> NaN
            s = np.nanmean(series, 0)
        eps = [c.epoch for c in rs[0].checkpoints]
        if not np.all(np.isfinite(s)):
            continue
        k = int(np.argmin(s))
        # a real dip: at least 5% below the start and recovered by at least 5%
        ok = 0 < k < len(s) - 1 and s[k] < 0.95 * s[0] and s[-1] > 1.05 * s[k]
        what = "exact distance to the boundary" if one_d \
            else "mean chord between boundaries along grid lines"
        add(f"{name}: with PE the mean {what} first drops then grows (by > 5% each way)",
            "drops then grows",
            ", ".join(f"{e}: {_fmt(v)}" for e, v in zip(eps, s)), bool(ok))
    # 12. higher L, wider regions late
    if pe2 and pe_hi and pe_hi_name != "2d-pe2":
        c2 = mean(pe2, lambda r: r.checkpoint("end").mean_chord)
        c5 = mean(pe_hi, lambda r: r.checkpoint("end").mean_chord)
        add("Higher L gives wider regions late in training (mean chord along grid lines, end)",
            "higher L -> wider regions late", f"PE L=2 {_fmt(c2)}, {pe_hi_name} {_fmt(c5)}",
            bool(c5 > c2))
    # 13. deeper normals correlate
    for name, rs in g.items():
        if not rs[0].checkpoints[0].normal_cos.get("l2"):
            continue
        a = mean(rs, lambda r: r.checkpoint("init").normal_cos["l2"])
        b = mean(rs, lambda r: r.checkpoint("end").normal_cos["l2"])
        add(f"{name}: layer-2 hyperplane normals become positively correlated "
            "(mean pairwise cosine of W_2 rows)", "positively correlated during training",
            f"init {_fmt(a)} -> end {_fmt(b)}", bool(b > a and b > 0.02))
    # 14. the authors' distance
    for name, rs in g.items():
        if "raw" not in name:
            continue
        per = {}
        for r in rs:
            for w in ("init", "end"):
                for k, v in (r.checkpoint(w).paper_distance_ratio or {}).items():
                    if v is not None and k != "all":
                        per.setdefault(k, []).append(v)
        if not per:
            continue
        vals = [v for vs in per.values() for v in vs]
        add(f"{name}: the authors' per-layer |z|/|W_l[k]| underestimates the distance to the "
            "deeper layers' boundaries (median exact local / authors', per layer, init and end)",
            "1.3-5x too small",
            "; ".join(f"layer {k[1:]}: {_fmt(min(v))} - {_fmt(max(v))}x" for k, v in per.items()),
            bool(min(vals) > 1.0))
