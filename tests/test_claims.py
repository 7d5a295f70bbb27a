"""Verdicts of regions.study.claims on hand-made results: a claim holds only when
the numbers say so, and is 'not tested' when the numbers are missing."""
import numpy as np
import pytest

from regions.study.claims import findings
from regions.study.results import Checkpoint, RunResult


def _run(name, counts, sampled, loss_end=0.1, dead=None):
    cps = []
    for i, (e, c, s) in enumerate(zip((0, 30, 1500), counts, sampled)):
        cps.append(Checkpoint(epoch=e, mean_loss=0.1, n_regions=c, n_patterns_sampled=s,
                              hamming_patch=1.0, hamming_neighbour=1.0,
                              dead={} if dead is None else {"all": dead[i]}))
    return RunResult(name=name, seed=0, dim=2, n=1024, grid_shape=[32, 32],
                     mean_loss=np.array([0.4, loss_end]), checkpoints=cps)


def _verdicts(results):
    return {f.claim: f.verdict for f in findings(results)}


GROWTH = "Raw: the number of regions grows during training (init -> end)"
REGROWTH = "Raw: after the early checkpoint the number of regions grows (early -> end)"
UNDERCOUNT = "Sampling the pixel grid undercounts regions and misses the small ones"
DEAD = ("Raw coordinates kill many ReLUs early, PE very few (share of hidden neurons "
        "inactive on every sample, early checkpoint)")
MSE = "PE fits white noise far better than raw coordinates (final training MSE)"


@pytest.mark.parametrize("counts, growth, regrowth", [
    ((2876, 917, 1469), "does not hold", "holds"),   # a net loss with a late regrowth
    ((900, 1200, 1500), "holds", "holds"),
    ((1500, 1400, 1300), "does not hold", "does not hold"),
])
def test_region_growth_is_judged_from_init_and_from_early(counts, growth, regrowth):
    v = _verdicts([_run("2d-raw", counts, (700, 600, 600)),
                   _run("2d-pe5", (None,) * 3, (1024,) * 3, loss_end=1e-4)])
    assert v[GROWTH] == growth
    assert v[REGROWTH] == regrowth
    assert v[UNDERCOUNT] == "holds"          # 600 sampled patterns < exact counts above
    assert v[MSE] == "holds"                 # 0.1 (raw) against 1e-4 (PE)


def test_missing_measurements_are_not_tested_rather_than_refuted():
    v = _verdicts([_run("2d-raw", (None,) * 3, (700, 600, 600)),
                   _run("2d-pe5", (None,) * 3, (1024,) * 3)])
    assert v[GROWTH] == "not tested"
    assert v[DEAD] == "not tested"
    assert v[MSE] == "does not hold"         # equal losses: measured, and no better


def test_dead_relus():
    raw = _run("2d-raw", (10, 10, 10), (5, 5, 5), dead=(0.27, 0.45, 0.45))
    pe = _run("2d-pe5", (None,) * 3, (1024,) * 3, dead=(0.02, 0.02, 0.02))
    assert _verdicts([raw, pe])[DEAD] == "holds"
    raw = _run("2d-raw", (10, 10, 10), (5, 5, 5), dead=(0.01, 0.01, 0.01))
    assert _verdicts([raw, pe])[DEAD] == "does not hold"
