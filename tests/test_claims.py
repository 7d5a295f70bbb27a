"""Verdicts of regions.study.claims on hand-made results with several seeds: a
claim holds only when the runs agree, is inconclusive when they do not (or
there is one run), not tested when nothing was measured, and every verdict
follows from data/findings.csv alone."""
import csv

import numpy as np
import pytest

from regions.study import stats
from regions.study.claims import findings
from regions.study.report import write_findings
from regions.study.results import Checkpoint, CouplingRow, RunResult

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
