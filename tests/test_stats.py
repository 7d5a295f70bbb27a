"""The study's statistics (regions.study.stats), the learning-phase window and
time-to-threshold (regions.study.convergence) and the partial rank
correlation (regions.study.coupling), each against an independent computation:
scipy's t-test and t distribution, a literal loop over the Benjamini-Hochberg
and Holm definitions, the published example of Benjamini & Hochberg (1995),
the inverse of the rank-correlation matrix, exponential decays with known
crossing times."""
import csv
import math
import os

import numpy as np
import pytest
from scipy import stats as st

from regions.study import convergence as cv
from regions.study import stats
from regions.study.coupling import partial_spearman

HERE = os.path.dirname(__file__)

# Benjamini & Hochberg (1995), section 4: 15 p-values; at q = 0.05 the
# step-up procedure rejects the four smallest, Bonferroni-type (Holm) three.
BH_1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240,
           0.4262, 0.5719, 0.6528, 0.7590, 1.000]


# ----------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("values, null", [([0.31, 0.27, 0.35], 0.0), ([1.0, 2.0, 4.0, 3.5], 2.0),
                                          ([-0.2, 0.4], 0.1)])
def test_linear_pool_is_scipys_t_test_and_t_interval(values, null):
    e = stats.pool(values, null)
    ref = st.ttest_1samp(values, null)
    assert e.estimate == pytest.approx(np.mean(values), rel=1e-12)
    assert e.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    lo, hi = st.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=st.sem(values))
    assert (e.ci_low, e.ci_high) == pytest.approx((lo, hi), rel=1e-10)
    # the interval is exactly the set of thresholds the t-test does not reject at 5%
    assert st.ttest_1samp(values, e.ci_low).pvalue == pytest.approx(0.05, rel=1e-8)
    assert st.ttest_1samp(values, e.ci_high).pvalue == pytest.approx(0.05, rel=1e-8)
    assert e.n_units == len(values)


def test_fisher_pool_averages_atanh_and_tests_on_that_scale():
    rhos = [0.30, -0.10, 0.45, 0.20]
    e = stats.pool(rhos, 0.1, "fisher")
    z = np.arctanh(rhos)
    assert e.estimate == pytest.approx(np.tanh(z.mean()), rel=1e-12)
    assert e.p_value == pytest.approx(st.ttest_1samp(z, np.arctanh(0.1)).pvalue, rel=1e-10)
    lo, hi = st.t.interval(0.95, 3, loc=z.mean(), scale=st.sem(z))
    assert (e.ci_low, e.ci_high) == pytest.approx((np.tanh(lo), np.tanh(hi)), rel=1e-10)


def test_log_pool_is_the_geometric_mean_ratio():
    ratios = [0.2, 0.5, 0.3]
    e = stats.pool(ratios, 1.0, "log")
    assert e.estimate == pytest.approx(np.exp(np.mean(np.log(ratios))), rel=1e-12)
    assert e.p_value == pytest.approx(st.ttest_1samp(np.log(ratios), 0.0).pvalue, rel=1e-10)


def test_one_unit_has_no_interval_and_no_p_value_and_missing_units_are_dropped():
    e = stats.pool([0.4, None, float("nan")], 0.0)
    assert e.n_units == 1 and e.estimate == 0.4
    assert math.isnan(e.ci_low) and math.isnan(e.ci_high) and math.isnan(e.p_value)
    assert stats.pool([], 0.0).n_units == 0


def test_identical_units_give_a_point_interval():
    e = stats.pool([1.0, 1.0, 1.0], 0.95)
    assert (e.ci_low, e.ci_high, e.p_value) == (1.0, 1.0, 0.0)
    assert stats.pool([0.5, 0.5], 0.5).p_value == 1.0


@pytest.mark.parametrize("values, scale", [([0.5, -1.0], "log"), ([0.5, 1.5], "fisher")])
def test_values_outside_the_scale_are_refused(values, scale):
    with pytest.raises(ValueError, match=scale):
        stats.pool(values, 0.5, scale)


def test_bad_scale_and_alternative_are_refused():
    with pytest.raises(ValueError, match="scale must be one of"):
        stats.pool([1.0], 0.0, "probit")
    with pytest.raises(ValueError, match="alternative must be one of"):
        stats.verdict(null=0, alternative="two-sided", estimate=1, ci_low=0.5, ci_high=1.5,
                      p_adjusted=0.01, n_units=3)


# ----------------------------------------------------------------------------- multiplicity
def _bh_by_definition(p):
    """p_adj_i = min over j with p_j >= p_i of min(1, m p_j / rank_j), a literal loop."""
    m = len(p)
    rank = {i: 1 + sum(p[j] < p[i] or (p[j] == p[i] and j < i) for j in range(m))
            for i in range(m)}
    return [min(min(1.0, m * p[j] / rank[j]) for j in range(m) if p[j] >= p[i])
            for i in range(m)]


def _holm_by_definition(p):
    """p_adj_(i) = max over k <= i of min(1, (m - k + 1) p_(k)), a literal loop."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    out = [0.0] * m
    for pos, i in enumerate(order):
        out[i] = max(min(1.0, (m - k) * p[order[k]]) for k in range(pos + 1))
    return out


def test_bh_hand_example():
    # sorted 0.01, 0.03, 0.04, 0.2 -> 4p/rank = 0.04, 0.06, 0.0533, 0.2 -> step-up minimum
    assert stats.adjust([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert stats.adjust([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05] * 5)
    assert stats.holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09,
                                                                       0.09])


def test_bh_and_holm_on_the_published_example():
    bh, holm = stats.adjust(BH_1995), stats.holm(BH_1995)
    assert int((bh <= 0.05).sum()) == 4
    assert int((holm <= 0.05).sum()) == 3
    assert bh == pytest.approx(_bh_by_definition(BH_1995), rel=1e-12)
    assert holm == pytest.approx(_holm_by_definition(BH_1995), rel=1e-12)


def test_bh_against_definition_and_scipy_on_random_p_values_with_ties_and_nans():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.uniform(size=rng.integers(1, 30)) ** 3
        p[rng.uniform(size=p.size) < 0.2] = p[0]            # ties
        assert stats.adjust(p) == pytest.approx(_bh_by_definition(list(p)), rel=1e-12)
        assert stats.adjust(p) == pytest.approx(st.false_discovery_control(p), rel=1e-12)
        assert stats.holm(p) == pytest.approx(_holm_by_definition(list(p)), rel=1e-12)
    with_nan = [0.01, float("nan"), 0.04]
    out = stats.adjust(with_nan)
    assert math.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.02, 0.04])


def test_p_values_outside_the_unit_interval_are_refused():
    with pytest.raises(ValueError, match=r"p-values must be in \[0, 1\]"):
        stats.adjust([0.5, 1.2])


# ----------------------------------------------------------------------------- verdicts
def _v(**kw):
    base = dict(null=0.0, alternative="greater", estimate=0.3, ci_low=0.1, ci_high=0.5,
                p_adjusted=0.01, n_units=3)
    return stats.verdict(**{**base, **kw})


def test_verdict_rules():
    assert _v() == "holds"
    assert _v(alternative="less") == "does not hold"
    assert _v(p_adjusted=0.2) == "inconclusive"
    assert _v(ci_low=-0.1) == "inconclusive"                 # the interval reaches the threshold
    assert _v(n_units=1, ci_low=float("nan"), ci_high=float("nan"),
              p_adjusted=float("nan")) == "inconclusive"
    assert _v(estimate=float("nan"), n_units=0) == "not tested"
    assert _v(null=0.2, ci_low=0.15) == "inconclusive"       # a threshold other than 0


def test_sign_flipping_units_are_not_called_holds():
    e = stats.pool([0.30, -0.25, 0.35], 0.0, "fisher")
    assert _v(estimate=e.estimate, ci_low=e.ci_low, ci_high=e.ci_high,
              p_adjusted=stats.adjust([e.p_value])[0]) == "inconclusive"


def test_the_report_states_the_same_rules_in_the_same_order():
    text = stats.rules_markdown()
    positions = [text.index(f"**{name}**: {words}") for name, words, _ in stats.RULES]
    assert positions == sorted(positions)


def test_pinned_tiny_findings_verdicts_follow_from_the_file():
    with open(os.path.join(HERE, "data", "study_tiny", "findings.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for r in rows:
        assert r["verdict"] == stats.verdict(
            null=float(r["null"]), alternative=r["alternative"], estimate=float(r["estimate"]),
            ci_low=float(r["ci_low"]), ci_high=float(r["ci_high"]),
            p_adjusted=float(r["p_adjusted"]), n_units=int(r["n_units"]))


# ----------------------------------------------------------------------------- learning phase
def test_learning_window_rule():
    epochs = np.arange(0, 110, 10)
    baseline = 1.0
    # learns the mean first (2 -> 1), then beyond it down to 0.2
    mean = np.array([2.0, 1.2, 1.0, 0.95, 0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.2])
    # excess = (L - 0.2) / 0.8: <= 0.9 first at 0.9 (epoch 40), <= 0.5 first at 0.6 (epoch 60)
    assert cv.learning_window(mean, epochs, baseline) == (40, 60)
    assert cv.learning_window(mean, epochs, baseline, start=0.0, stop=1.0) == (20, 90)
    # never below the constant predictor: no window
    assert cv.learning_window([2.0, 1.5, 1.0], [0, 1, 2], 1.0) is None
    with pytest.raises(ValueError, match="start < stop"):
        cv.learning_window(mean, epochs, baseline, start=0.5, stop=0.5)


def test_constant_baseline_is_the_mse_of_the_channel_means():
    rng = np.random.default_rng(0)
    Y = rng.uniform(size=(50, 3))
    ref = np.mean([np.mean((Y[:, c] - Y[:, c].mean()) ** 2) for c in range(3)])
    assert cv.constant_baseline(Y) == pytest.approx(ref, rel=1e-12)


def test_time_to_fraction_is_exact_for_exponential_decays_and_censors():
    rates = np.array([0.05, 0.02, 0.011, 0.001, 0.0])
    epochs = np.arange(0, 101, 5)
    losses = 3.0 * np.exp(-np.outer(epochs - 20, rates))
    t, cens = cv.time_to_fraction(losses, epochs, (20, 80), 0.5)
    reach = np.log(2) / np.where(rates > 0, rates, np.nan) <= 60
    assert cens.tolist() == (~reach).tolist()
    assert t[reach] == pytest.approx(np.log(2) / rates[reach], rel=1e-9)
    assert np.all(np.isinf(t[cens]))
    ranked = cv.censored_for_ranks(t, cens)
    assert np.all(ranked[cens] > ranked[~cens].max())
    with pytest.raises(ValueError, match="two recorded epochs"):
        cv.time_to_fraction(losses, epochs, (21, 80))


# ----------------------------------------------------------------------------- partial rank
def _partial_by_precision_matrix(x, y, z):
    """Partial correlation of the ranks from the inverse of their correlation matrix."""
    R = np.corrcoef(np.vstack([st.rankdata(v) for v in (x, y, *z)]))
    P = np.linalg.inv(R)
    return -P[0, 1] / np.sqrt(P[0, 0] * P[1, 1])


def test_partial_spearman_against_the_precision_matrix():
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(2, 300))
    x = z1 + 0.5 * z2 + rng.normal(size=300)
    y = np.exp(z1) + rng.normal(size=300) + 0.3 * x
    r = partial_spearman(x, y, [z1, z2])
    assert r["rho"] == pytest.approx(_partial_by_precision_matrix(x, y, [z1, z2]), abs=1e-12)
    assert r["n"] == 300 and r["lo"] < r["rho"] < r["hi"]
    df = 300 - 2 - 2
    t = r["rho"] * np.sqrt(df / (1 - r["rho"] ** 2))
    assert r["p"] == pytest.approx(2 * st.t.sf(abs(t), df), rel=1e-10)


def test_partial_spearman_removes_a_shared_cause():
    rng = np.random.default_rng(2)
    z = rng.normal(size=2000)
    x, y = z + 0.3 * rng.normal(size=2000), z + 0.3 * rng.normal(size=2000)
    assert st.spearmanr(x, y).statistic > 0.8
    r = partial_spearman(x, y, z)
    assert abs(r["rho"]) < 0.1 and r["lo"] < 0 < r["hi"]
