"""Rank correlations, bootstrap intervals and the prediction check."""
import numpy as np
import pytest
from scipy import stats

from regions.study.coupling import (_groups, _resample_ranks, correlation_table,
                                    prediction_agreement, spearman_ci)


def _pair(n, noise, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, x + noise * rng.normal(size=n)


def test_point_estimate_is_scipy_spearman_and_ci_contains_it():
    for seed, noise in [(0, 0.5), (1, 2.0), (2, 10.0)]:
        x, y = _pair(400, noise, seed)
        r = spearman_ci(x, y, n_boot=300, seed=seed)
        assert r["rho"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        assert r["lo"] <= r["rho"] <= r["hi"]
        assert r["n"] == 400


def test_interval_narrows_with_more_samples():
    small = spearman_ci(*_pair(100, 1.0), n_boot=300)
    large = spearman_ci(*_pair(3000, 1.0), n_boot=300)
    assert (large["hi"] - large["lo"]) < (small["hi"] - small["lo"])


def test_resample_ranks_equal_scipy_rankdata_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 7, 300).astype(float)
    idx = rng.integers(0, 300, (5, 300))
    np.testing.assert_allclose(_resample_ranks(_groups(x), idx),
                               stats.rankdata(x[idx], axis=1))


def test_nan_pairs_are_dropped_and_constants_give_nan():
    x, y = _pair(50, 1.0)
    x[:5] = np.nan
    y[5:8] = np.inf
    r = spearman_ci(x, y, n_boot=20)
    assert r["n"] == 42
    assert r["rho"] == pytest.approx(stats.spearmanr(x[8:], y[8:]).statistic)
    assert np.isnan(spearman_ci(np.ones(10), np.arange(10), n_boot=10)["rho"])


def test_prediction_agreement_perfect_and_terms():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(size=300)
    out = prediction_agreement({"self": a, "far": b}, a + b, n_boot=50)
    assert out["spearman"]["rho"] == pytest.approx(1.0)
    assert out["sign_agreement"] == 1.0
    assert out["scale"] == pytest.approx(1.0)
    assert sum(out["term_share"].values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in length"):
        prediction_agreement(a, b[:10])


def test_correlation_table_covers_every_pair():
    class F(dict):
        kind = {"f1": "exact", "f2": "sampled"}

    x, y = _pair(100, 1.0)
    feats = F(f1=x, f2=-x)
    rows = correlation_table(feats, {"s1": y, "s2": y ** 3}, n_boot=20, tag={"run": "a"})
    assert len(rows) == 4
    assert {r["kind"] for r in rows} == {"exact", "sampled"}
    assert all(r["run"] == "a" for r in rows)
    f2 = [r for r in rows if r["feature"] == "f2" and r["speed"] == "s1"][0]
    f1 = [r for r in rows if r["feature"] == "f1" and r["speed"] == "s1"][0]
    assert f2["rho"] == pytest.approx(-f1["rho"])


def test_bad_level_rejected():
    with pytest.raises(ValueError, match="level"):
        spearman_ci([1, 2, 3], [1, 2, 3], level=1.5)
