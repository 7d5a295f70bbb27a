"""The paper's own claims: its table, the pair-level mechanism, per-sample
coupling and its other effects (:mod:`regions.study.claims`)."""
from __future__ import annotations

import numpy as np

from ..results import RunResult
from ..stats import paired
from ..text import fmt as _fmt
from .table import at_checkpoint, measured, per_run, safe_ratio, window_note


# ----------------------------------------------------------------------------- groups
def _encoded_region_claims(t, raw2, groups):
    """Exact region counts of the positional-encoded 2D runs, where the preset made
    their whole partition (``encoded_regions``) at the last checkpoint."""
    count = lambda c: c.n_regions  # noqa: E731
    seen = set()
    for name, rs in groups:
        if not rs or name in seen or any(r.checkpoint("end").n_regions is None for r in rs):
            continue
        seen.add(name)
        t.add(f"{name}: the pixel grid sees far fewer patterns than there are exact regions "
              "(end)", name, "exact regions / distinct sampled patterns, end",
              per_run(rs, at_checkpoint("end", lambda c: safe_ratio(c.n_regions,
                                                                    c.n_patterns_sampled))),
              1.0, "greater", "log",
              "(the paper counts sampled patterns only)")
        if raw2 and all(r.checkpoint("end").n_regions is not None for r in raw2):
            t.add(f"More exact regions with {name} than with raw coordinates (end)",
                  f"{name} / 2d-raw", f"exact regions ratio ({name} / 2d-raw), end, paired by "
                  "seed", paired(per_run(rs, at_checkpoint("end", count)),
                                 per_run(raw2, at_checkpoint("end", count)), safe_ratio),
                  1.0, "greater", "log", "PE multiplies the regions")
        if all(r.checkpoint("init").n_regions is not None for r in rs):
            t.add(f"{name}: the number of exact regions grows during training (init -> end), "
                  "as with raw coordinates",
                  name, "exact regions end / init",
                  paired(per_run(rs, at_checkpoint("end", count)),
                         per_run(rs, at_checkpoint("init", count)), safe_ratio),
                  1.0, "greater", "log", "(the paper says so for raw coordinates)")


def claims_paper_table(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The paper's table: fit, patterns, exact counts, Hamming, confusion."""
    final = lambda r: r.mean_loss[-1]  # noqa: E731
    if raw2 and pe_hi:
        t.add("PE fits white noise far better than raw coordinates: final training MSE of "
              f"{pe_hi_name} below half of raw's", f"{pe_hi_name} / 2d-raw",
              f"final MSE ratio ({pe_hi_name} / 2d-raw), paired by seed",
              paired(per_run(pe_hi, final), per_run(raw2, final), safe_ratio), 0.5, "less", "log",
              "raw ~0.079, PE L=5 ~0.012")
    if raw2 and pe2:
        t.add("PE L=2 fits better than raw coordinates (final training MSE)", "2d-pe2 / 2d-raw",
              "final MSE ratio (2d-pe2 / 2d-raw), paired by seed",
              paired(per_run(pe2, final), per_run(raw2, final), safe_ratio), 1.0, "less", "log",
              "raw ~0.079, PE L=2 ~0.062")
    if pe2 and pe_hi and pe_hi_name != "2d-pe2":
        t.add(f"Higher L fits better: {pe_hi_name} below PE L=2 (final training MSE)",
              f"{pe_hi_name} / 2d-pe2", f"final MSE ratio ({pe_hi_name} / 2d-pe2), paired by seed",
              paired(per_run(pe_hi, final), per_run(pe2, final), safe_ratio), 1.0, "less", "log",
              "PE L=2 ~0.062, PE L=5 ~0.012")
    if raw2:
        N = raw2[0].n
        t.add("Raw: distinct patterns on the pixels well below the pixel count (end)", "2d-raw",
              "distinct sampled patterns / pixels, end", per_run(raw2, at_checkpoint(
                  "end", lambda c: c.n_patterns_sampled / N)), 0.9, "less", "linear",
              "raw ~1.5k -> ~2.3k of 4096")
    if pe_hi:
        N = pe_hi[0].n
        t.add("PE: about one distinct pattern per pixel from initialisation", pe_hi_name,
              "distinct sampled patterns / pixels, init", per_run(pe_hi, at_checkpoint(
                  "init", lambda c: c.n_patterns_sampled / N)), 0.95, "greater", "linear",
              "PE L=5 4096 of 4096 from init")
    if raw2:
        def count(which):
            return at_checkpoint(which, lambda c: c.n_regions)
        t.add("Raw: the number of exact regions grows during training (init -> end)", "2d-raw",
              "exact regions end / init", paired(per_run(raw2, count("end")),
                                                 per_run(raw2, count("init")), safe_ratio),
              1.0, "greater", "log", "~1.5k -> ~2.3k sampled patterns")
        t.add("Raw: after the early checkpoint the number of exact regions grows (early -> end)",
              "2d-raw", "exact regions end / early",
              paired(per_run(raw2, count("end")), per_run(raw2, count("early")), safe_ratio),
              1.0, "greater", "log",
              "(not in the paper; the growth that remains when init is excluded)")
        t.add("Sampling the pixel grid undercounts the regions (end)", "2d-raw",
              "exact regions / distinct sampled patterns, end",
              per_run(raw2, at_checkpoint("end", lambda c: None if c.n_regions is None
                                else safe_ratio(c.n_regions, c.n_patterns_sampled))),
              1.0, "greater", "log",
              "a 2048^2 grid finds ~2/3 of a 2-64x4-1 net's regions")
        t.add("The regions the samples miss are small: median area of regions holding a sample "
              "above the median of all regions (end)", "2d-raw",
              "median area (regions with a sample) / median area (all regions), end",
              per_run(raw2, at_checkpoint("end", lambda c: None if c.measure_all_median is None
                                else safe_ratio(c.measure_hit_median, c.measure_all_median))),
              1.0, "greater", "log", "missed regions are small")
    _encoded_region_claims(t, raw2, [("2d-pe2", pe2), (pe_hi_name, pe_hi)])
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
                  paired(per_run(rb, ham), per_run(ra, ham), safe_ratio), 1.0, "greater", "log",
                  "raw ~2-3, PE L=2 ~8-10, PE L=5 ~41-46 of 256")
    if raw2 and pe_hi:
        below = measured("end", "confusion", "neighbour_below")
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
                  per_run(pe2, at_checkpoint("end", lambda c: c.n_patterns_sampled / N)), 0.9, "greater",
                  "linear", "PE L=2: own region for ~98% of pixels")
            t.add("A region of its own is not enough: PE L=2 still confuses neighbours, more than "
                  f"twice as often as {pe_hi_name} (share 2d-pe2 - 2 x share {pe_hi_name})",
                  f"2d-pe2 - 2 x {pe_hi_name}", f"share(2d-pe2) - 2 share({pe_hi_name}), paired by seed",
                  paired(per_run(pe2, below), per_run(pe_hi, below), lambda a, b: a - 2 * b),
                  0.0, "greater", "linear", "~22% (PE L=2) vs ~2% (PE L=5)")


def claims_mechanism(t, g, raw2, pe2, pe_hi, pe_hi_name):
    """The mechanism at pair level, high-frequency energy, final loss against
    occupancy."""
    for name, rs in g.items():
        rho = per_run(rs, measured("early", "pairs", "abs_cos_vs_hamming", "rho"))
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
                     per_run(raw2, RunResult.high_band_ratio_end), safe_ratio), 0.5, "less", "log",
              "raw ~0.98, PE L=2 ~0.78, PE L=5 ~0.1")
    if raw2:
        rho = per_run(raw2, at_checkpoint("end", lambda c: None if c.rho("occupancy", "final_loss") is None
                                else abs(c.rho("occupancy", "final_loss").rho)))
        if any(v is not None for v in rho.values()):
            t.add("The final per-pixel loss barely correlates with region occupancy: |Spearman "
                  "rho| below 0.2 (raw, end)", "2d-raw", "|Spearman rho| over the pixels of a run",
                  rho, 0.2, "less", "linear", "barely correlates")


def claims_coupling(t, g, raw2, pe2, pe_hi, pe_hi_name):
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
            rho = per_run(rs, at_checkpoint("early", lambda c, f=feature: None if c.rho(f, "rate") is None
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
                          window_note(rs))


def dip_series(rs):
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


def leave_one_out_dip(series):
    """Per seed, the interior checkpoint where the *other* seeds' mean curve
    (each normalised by its initial value) is lowest, so that a seed's own
    noise does not choose its dip (with one seed, its own curve)."""
    out = {}
    for k in series:
        others = [v / v[0] for j, v in series.items() if j != k] or [series[k] / series[k][0]]
        mean = np.mean(others, axis=0)
        out[k] = 1 + int(np.argmin(mean[1:-1]))
    return out


def claims_other_effects(t, g, raw2, pe2, pe_hi, pe_hi_name):
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
        dip = dip_series(rs)
        if dip is None:
            continue
        what, epochs, series = dip
        at = leave_one_out_dip(series)
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
              paired(per_run(pe_hi, rel), per_run(pe2, rel), safe_ratio), 1.0, "greater", "log",
              "higher L -> wider regions late",
              "absolute chords are not compared: PE L=5 starts several times denser")
    for name, rs in g.items():
        layers = sorted(rs[0].checkpoint("init").normal_cos)
        for layer in layers:
            a = per_run(rs, at_checkpoint("init", lambda c, k=layer: c.normal_cos.get(k)))
            b = per_run(rs, at_checkpoint("end", lambda c, k=layer: c.normal_cos.get(k)))
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
                ratio = per_run(rs, at_checkpoint(which, lambda c, k=layer:
                                        (c.paper_distance_ratio or {}).get(k)))
                t.add(f"The authors' |z|/|W_l[k]| underestimates the distance to layer "
                      f"{layer[1:]}'s boundaries ({which})", name,
                      "median exact local distance / the authors' distance", ratio, 1.0,
                      "greater", "log", "1.3-5x too small")
