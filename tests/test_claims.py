"""Verdicts of regions.study.claims on hand-made results with several seeds: a
claim holds only when the runs agree, is inconclusive when they do not (or
there is one run), not tested when nothing was measured, and every verdict
follows from data/findings.csv alone."""
import csv
import os

import numpy as np
import pytest
import scipy.stats as st

from regions.study import stats
from regions.study.claims import across_runs_spearman, findings
from regions.study.report import write_findings
from regions.study.results import (AdamStep, Agreement, BandEnergy, Checkpoint, Confusion,
                                   Correlation, CouplingRow, KernelSplit, PairMechanism,
                                   RunResult, Spectrum)

EPOCHS = (0, 30, 1500)


def _run(name, seed, counts=(None,) * 3, sampled=(700, 600, 600), loss_end=0.1, dead=None,
         chord=(None,) * 3, rows=None, normal=None):
    cps = []
    for i, e in enumerate(EPOCHS):
        cps.append(Checkpoint(epoch=e, mean_loss=0.1, n_regions=counts[i],
                              n_patterns_sampled=sampled[i], hamming_patch=1.0,
                              hamming_neighbour=1.0, mean_chord=chord[i],
                              dead={} if dead is None else {"all": dead[i]},
                              normal_cos={} if normal is None else {"l2": normal[i]},
                              coupling=[CouplingRow(feature=f, speed="rate", rho=rho,
                                                    lo=rho - 0.03, hi=rho + 0.03, n=1024)
                                        for f, rho in (rows or {}).items()] if i == 1 else []))
    return RunResult(name=name, seed=seed, dim=2, n=1024, grid_shape=[32, 32],
                     mean_loss=np.array([0.4, loss_end]), checkpoints=cps)


def _by_claim(results, words, run=None):
    out = [f for f in findings(results) if words in f.claim and (run is None or f.run == run)]
    assert out, f"no finding about {words!r}"
    return out


def _pe(seed, **kw):
    return _run("2d-pe5", seed, sampled=(1024,) * 3, loss_end=1e-4, **kw)


@pytest.mark.parametrize("counts, growth", [
    ([(900, 1200, 1500), (880, 1250, 1480), (910, 1190, 1530)], "holds"),
    ([(1500, 1400, 1300), (1480, 1390, 1310), (1510, 1420, 1290)], "does not hold"),
    ([(900, 1200, 1500), (1500, 1400, 1300), (1200, 1300, 1250)], "inconclusive"),
])
def test_region_growth_needs_the_seeds_to_agree(counts, growth):
    res = [_run("2d-raw", s, c) for s, c in enumerate(counts)] + [_pe(s) for s in range(3)]
    (f,) = _by_claim(res, "number of exact regions grows during training")
    assert f.verdict == growth
    assert f.n_units == 3


def test_one_seed_is_inconclusive_and_missing_measurements_are_not_tested():
    res = [_run("2d-raw", 0, (900, 1200, 1500)), _pe(0)]
    (f,) = _by_claim(res, "number of exact regions grows during training")
    assert f.verdict == "inconclusive" and f.n_units == 1 and np.isnan(f.p_value)
    res = [_run("2d-raw", s) for s in range(3)] + [_pe(s) for s in range(3)]
    (f,) = _by_claim(res, "number of exact regions grows during training")
    assert f.verdict == "not tested" and f.n_units == 0
    (f,) = _by_claim(res, "kill more ReLUs")
    assert f.verdict == "not tested"


def test_sign_flipping_seeds_are_not_called_holds():
    # occupancy against rate: two seeds say "slower", one says "faster", each
    # with a tight within-run interval; hamming agrees in every seed. The old
    # claims averaged the per-seed bootstrap bounds (mean hi < 0) and said "holds".
    occ = (-0.30, 0.10, -0.32)
    res = [_run("2d-raw", s, rows={"occupancy": o, "hamming": 0.3 + 0.01 * s})
           for s, o in enumerate(occ)] + [_pe(s) for s in range(3)]
    for f in _by_claim(res, "sharing their region"):
        assert f.verdict != "holds", f
    (f,) = _by_claim(res, "near-equal patterns learn slower (hamming")
    assert f.verdict == "holds"


def test_operationalisation_higher_l_compares_change_from_init():
    # PE L=5 ends with wider chords than PE L=2 in absolute terms (0.06 > 0.02),
    # but widened less relative to its start (x1.2 against x2): the old
    # absolute comparison said "holds"
    pe2 = [_run("2d-pe2", s, sampled=(1024,) * 3, chord=(0.01, 0.015, 0.02 + 1e-3 * s))
           for s in range(3)]
    pe5 = [_pe(s, chord=(0.05, 0.055, 0.06 + 1e-3 * s)) for s in range(3)]
    raw = [_run("2d-raw", s) for s in range(3)]
    (f,) = _by_claim(raw + pe2 + pe5, "Higher L gives wider regions")
    assert f.verdict == "does not hold"
    assert f.estimate == pytest.approx(np.exp(np.mean(
        [np.log((0.06 + 1e-3 * s) / 0.05 / ((0.02 + 1e-3 * s) / 0.01)) for s in range(3)])))


def test_normals_are_judged_on_the_change_over_seeds():
    up = [_run("2d-raw", s, normal=(0.001 * s, 0.05, 0.10 + 0.002 * s)) for s in range(3)]
    (f,) = _by_claim(up + [_pe(s) for s in range(3)], "Layer-2 hyperplane normals", "2d-raw")
    assert f.verdict == "holds"
    # a change smaller than the spread at init and of either sign: no claim
    mixed = [_run("2d-raw", s, normal=(c0, 0.0, c1))
             for s, (c0, c1) in enumerate([(0.01, 0.03), (0.04, 0.02), (0.02, 0.035)])]
    (f,) = _by_claim(mixed, "Layer-2 hyperplane normals", "2d-raw")
    assert f.verdict == "inconclusive"


def test_a_dip_is_found_on_the_other_seeds_and_tested_on_each():
    def run(seed, d):
        r = _run("1d-pe5", seed)
        r.dim = 1
        for c, v in zip(r.checkpoints, d):
            c.mean_dist_boundary = v
        return r
    dips = [(1.0, 0.50, 0.90), (1.1, 0.60, 1.00), (0.9, 0.45, 0.85)]
    res = [run(s, d) for s, d in enumerate(dips)]
    (drop,) = _by_claim(res, "first drops")
    (grow,) = _by_claim(res, "then grows")
    assert drop.verdict == "holds" and grow.verdict == "holds"
    rising = [run(s, d) for s, d in enumerate([(1.0, 1.2, 1.5), (1.0, 1.25, 1.4),
                                               (1.0, 1.3, 1.6)])]
    (drop,) = _by_claim(rising, "first drops")
    assert drop.verdict == "does not hold"


def test_verdicts_and_adjusted_p_values_follow_from_findings_csv(tmp_path):
    rng = np.random.default_rng(0)
    res = []
    for s in range(3):
        res.append(_run("2d-raw", s, tuple(int(v) for v in rng.integers(800, 1600, 3)),
                        dead=(0.2, 0.3 + 0.01 * s, 0.3), chord=(0.02, 0.03, 0.04),
                        rows={"occupancy": rng.uniform(-0.3, 0.1), "hamming": 0.2},
                        normal=(0.0, 0.01, 0.02 * s)))
        res.append(_pe(s, dead=(0.0, 0.01, 0.01)))
    found = findings(res)
    path = tmp_path / "findings.csv"
    write_findings(found, str(path))
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(found)
    assert {"claim", "run", "statistic", "estimate", "ci_low", "ci_high", "p_value",
            "p_adjusted", "verdict", "n_units", "method"} <= set(rows[0])
    p = np.array([float(r["p_value"]) for r in rows])
    np.testing.assert_allclose(np.array([float(r["p_adjusted"]) for r in rows]),
                               stats.adjust(p), rtol=1e-15)
    verdicts = set()
    for r in rows:
        v = stats.verdict(null=float(r["null"]), alternative=r["alternative"],
                          estimate=float(r["estimate"]), ci_low=float(r["ci_low"]),
                          ci_high=float(r["ci_high"]), p_adjusted=float(r["p_adjusted"]),
                          n_units=int(r["n_units"]))
        assert v == r["verdict"], r
        verdicts.add(v)
    assert {"holds", "inconclusive", "not tested"} <= verdicts


# ----------------------------------------------------------------------------- issue 11 items 1, 2, 6
def _conf(below, mean=0.5):
    return Confusion(neighbour_below=below, distant_below=0.0, neighbour_mean=mean,
                     distant_mean=0.0)


def _mech(rho):
    return PairMechanism(abs_cos_vs_hamming=Correlation(rho=rho, lo=rho, hi=rho, p=0.0, n=100))


def _kernel_run(name, seed, pearson_residual, kernel_mean, kernel_rho, residual_rho,
                residual_below=0.25, optimizer="adam", adam=None, spectrum=None):
    r = _run(name, seed, sampled=(700, 600, 600) if "raw" in name else (1024,) * 3)
    r.config = {"optimizer": optimizer}
    for c in r.checkpoints:
        c.kernel_split = KernelSplit(pearson_residual=pearson_residual, pearson_kernel=0.01,
                                     pearson_product=pearson_residual, anisotropy=0.1)
        c.confusion = _conf(residual_below)
        c.confusion_kernel = _conf(0.0, kernel_mean)
        c.confusion_residual = _conf(residual_below)
        c.pairs_kernel = _mech(kernel_rho)
        c.pairs_residual = _mech(residual_rho)
        if adam is not None:
            c.adam_step = adam
        if spectrum is not None:
            c.spectrum = spectrum(c)
    return r


def test_kernel_split_findings_pool_the_per_seed_values():
    pr = {"2d-raw": (0.99, 0.98, 0.995), "2d-pe5": (0.90, 0.88, 0.93)}
    km = {"2d-raw": (0.97, 0.96, 0.98), "2d-pe5": (0.50, 0.45, 0.55)}
    res = [_kernel_run(n, s, pr[n][s], km[n][s], kernel_rho=-0.8 + 0.01 * s,
                       residual_rho=(-0.05, 0.04, 0.01)[s], residual_below=0.25 + 0.01 * s)
           for n in ("2d-raw", "2d-pe5") for s in range(3)]
    found = findings(res)
    (f,) = _by_claim(res, "set by the residual cosine", "2d-raw")
    assert f.estimate == pytest.approx(np.tanh(np.mean(np.arctanh(pr["2d-raw"]))), rel=1e-12)
    assert f.verdict == "holds" and f.group == "kernel against residual"
    (f,) = _by_claim(res, "share their kernel more")
    diff = np.subtract(km["2d-raw"], km["2d-pe5"])
    assert f.estimate == pytest.approx(diff.mean(), rel=1e-12)
    t = st.ttest_1samp(diff, 0.0)
    assert f.p_value == pytest.approx(t.pvalue, rel=1e-9)
    assert f.verdict == "holds"
    # the kernel part falls with the Hamming distance in every seed; the residual part does not
    (f,) = _by_claim(res, "on |s_ij|, the kernel part", "2d-raw")
    assert f.verdict == "holds"
    (f,) = _by_claim(res, "on |cos(r_i, r_j)|, the residual part", "2d-raw")
    assert f.verdict == "inconclusive"
    # the kernel similarity never falls below -0.5: no difference to find
    (f,) = _by_claim(res, "confusion row on the kernel similarity")
    assert f.estimate == 0 and f.verdict == "inconclusive"
    assert {x.rule for x in found} <= {1, 2, 3, 4, 5}


def _adam(same, far, pearson=0.9999):
    return AdamStep(pearson=pearson, cos_full_gradient=0.3,
                    mean_abs_pair={"self": 3 * same, "same_region": same,
                                   "neighbour_region": None, "far": far})


def test_adam_own_step_and_per_pair_class_ratio():
    same, far = (2e-4, 3e-4, 2.5e-4), (1e-4, 1e-4, 1.2e-4)
    res = [_kernel_run("2d-raw", s, 0.99, 0.97, -0.8, 0.0, adam=_adam(same[s], far[s]))
           for s in range(3)]
    (f,) = _by_claim(res, "a same-region pair moves a sample's loss more")
    assert f.estimate == pytest.approx(np.exp(np.mean(np.log(np.divide(same, far)))), rel=1e-12)
    assert f.verdict == "holds"
    # no neighbour-region pair was drawn in any seed: no finding rather than a fake one
    assert not [x for x in findings(res) if "neighbour-region pair moves" in x.claim]
    (f,) = _by_claim(res, "optimiser's own preconditioned step")
    assert f.verdict == "holds" and f.group == "first-order prediction with the run's own step"


def _gd_run(seed, error, pred_shift):
    """A full-batch GD run whose spectral prediction misses the measured
    residual energy ratio by ``pred_shift`` in every band."""
    ratio = np.array([[1.0, 1.0], [0.5, 0.9], [0.3, 0.8]])
    be = BandEnergy(epochs=np.array([0, 30, 1500]), ratio=ratio,
                    bands=np.array([[0.0, 4.0], [4.0, np.inf]]))

    def spectrum(c):
        if c.epoch != 0:
            return Spectrum(band_gain=np.array([1.0, 0.1]))
        pred = np.full(ratio.shape, np.nan)
        pred[1] = ratio[1] + pred_shift
        return Spectrum(band_gain=np.array([1.0, 0.1]), horizon=30,
                        prediction_error_end=error, predicted_band=pred)
    r = _kernel_run("gd-2d-raw", seed, 0.99, 0.97, -0.8, 0.0, optimizer="gd",
                    spectrum=spectrum)
    r.record_epochs = np.array([0, 1, 2, 30, 1500])
    r.band_energy = be
    for c in r.checkpoints:
        c.agreement = Agreement(pearson=0.999 - 0.0005 * seed,
                                spearman=Correlation(rho=0.99, lo=0.98, hi=1.0, p=0.0, n=100))
    return r


def test_gd_first_order_findings_state_their_window_and_use_the_band_miss():
    res = [_gd_run(s, (0.02, 0.05, 0.03)[s], (0.01, -0.02, 0.015)[s]) for s in range(3)]
    (f,) = _by_claim(res, "per-sample loss change over the next 1 GD step is", "gd-2d-raw")
    assert "epoch 0" in f.claim and f.verdict == "holds"
    (f,) = _by_claim(res, "per band, the predicted residual energy ratio")
    assert "30 steps" in f.claim
    assert f.estimate == pytest.approx(np.mean([0.01, 0.02, 0.015]), rel=1e-12)
    assert f.verdict == "holds"
    (f,) = _by_claim(res, "spectral prediction of the residual over the 30 steps")
    assert f.estimate == pytest.approx(np.mean([0.02, 0.05, 0.03]), rel=1e-12)
    # the old GD-direction comparison is not made for GD runs: there it is the run's own step
    assert not [x for x in findings(res) if "the old measurement" in x.claim
                and x.run == "gd-2d-raw"]


def test_across_runs_spearman_is_scipys_over_the_finite_points():
    rng = np.random.default_rng(3)
    runs = []
    for name in ("2d-raw", "2d-pe5"):
        r = _run(name, 0)
        for c in r.checkpoints:
            c.hamming_patch = float(rng.uniform(1, 50))
            c.mean_chord = float(rng.uniform(0.01, 0.1))
        runs.append(r)
    runs[0].checkpoints[1].mean_chord = None        # a point without a value is left out
    x = [c.hamming_patch for r in runs for c in r.checkpoints if c.mean_chord is not None]
    y = [c.mean_chord for r in runs for c in r.checkpoints if c.mean_chord is not None]
    got = across_runs_spearman(runs, lambda r, c: c.hamming_patch, lambda r, c: c.mean_chord)
    assert got == pytest.approx(st.spearmanr(x, y).statistic, rel=1e-12)
    assert across_runs_spearman(runs[:1], lambda r, c: 1.0, lambda r, c: c.hamming_patch) is None


def test_adjusted_p_values_are_a_literal_bh_over_the_whole_table():
    res = [_kernel_run(n, s, (0.99, 0.97, 0.995)[s], (0.97, 0.5)[i] + 0.01 * s, -0.8 + 0.05 * s,
                       (-0.05, 0.04, 0.01)[s], adam=_adam((2e-4, 3e-4, 2.5e-4)[s], 1e-4))
           for i, n in enumerate(("2d-raw", "2d-pe5")) for s in range(3)]
    found = findings(res)
    p = np.array([f.p_value for f in found])
    ok = np.flatnonzero(np.isfinite(p))
    assert ok.size > 10
    m = ok.size
    ranked = sorted(ok, key=lambda i: p[i])
    for i in ok:
        rank = ranked.index(i) + 1
        want = min(1.0, min(m * p[j] / (k + 1) for k, j in enumerate(ranked) if k + 1 >= rank))
        assert found[i].p_adjusted == pytest.approx(want, rel=1e-12)
    for f in found:
        assert f.verdict == stats.RULES[f.rule - 1][0]


# ----------------------------------------------------------------------------- pinned fixture
def _csv(name):
    path = os.path.join(os.path.dirname(__file__), "data", "study_tiny", name)
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_pinned_tiny_findings_agree_with_the_pinned_summary():
    """The findings of the tiny study, recomputed by hand from its summary.csv
    (one seed: the estimate is the run's own value, or the pair's difference
    or ratio)."""
    summary = {(r["run"], int(r["epoch"])): r for r in _csv("summary.csv")}
    found = _csv("findings.csv")

    def one(words, run):
        (f,) = [f for f in found if words in f["claim"] and f["run"] == run]
        return float(f["estimate"])

    def val(run, epoch, col):
        return float(summary[(run, epoch)][col])

    assert one("set by the residual cosine", "2d-raw") == pytest.approx(
        val("2d-raw", 60, "ksplit_pearson_residual"), rel=1e-12)
    assert one("share their kernel more", "2d-raw - 2d-pe3") == pytest.approx(
        val("2d-raw", 60, "kconf_neighbour_mean") - val("2d-pe3", 60, "kconf_neighbour_mean"),
        rel=1e-12)
    for run in ("2d-raw", "1d-raw"):
        assert one("a same-region pair moves", run) == pytest.approx(
            val(run, 30, "adam_mean_abs_pair_same_region") / val(run, 30, "adam_mean_abs_pair_far"),
            rel=1e-12)
        assert one("optimiser's own preconditioned step", run) == pytest.approx(
            val(run, 30, "adam_pearson"), rel=1e-12)
    groups = [f["group"] for f in found]
    assert {"kernel against residual", "first-order prediction with the run's own step",
            "spectral coupling"} <= set(groups)
    for f in found:
        assert int(f["rule"]) == stats.rule_number(
            null=float(f["null"]), alternative=f["alternative"], estimate=float(f["estimate"]),
            ci_low=float(f["ci_low"]), ci_high=float(f["ci_high"]),
            p_adjusted=float(f["p_adjusted"]), n_units=int(f["n_units"]))
