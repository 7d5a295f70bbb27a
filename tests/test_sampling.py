"""sampled_patterns is a lower bound of the exact count, and equals it when every
piece holds a sample."""
import numpy as np
import pytest
import torch

import regions
from regions.domain import Interval
from regions.encoded import partition_encoded_1d
from regions.network import as_network
from regions.partition1d import partition_1d
from regions.sampling import sampled_patterns


def he_pairs(widths, seed):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, np.sqrt(2 / a), (b, a)), rng.normal(0, 0.2, b))
            for a, b in zip(widths[:-1], widths[1:])]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_raw_lower_bound_and_equality_at_midpoints(seed):
    net = as_network(he_pairs([1, 16, 16, 16, 1], seed))
    p = partition_1d(net, Interval(-3, 3), progress=False)
    # raw pieces have distinct patterns: the exact region count is the piece count
    n_exact = len(np.unique(p.patterns, axis=0))
    for m in (50, 500, 5000):
        count, ids = sampled_patterns(net, np.linspace(-3, 3, m))
        assert count <= n_exact
        assert ids.shape == (m,) and ids.max() + 1 == count
    count, ids = sampled_patterns(net, p.midpoints[:, None])
    assert count == n_exact
    # ids number patterns by first appearance and group equal patterns
    pats = net.patterns(p.midpoints[:, None])
    assert ids[0] == 0 and np.all(np.diff(np.maximum.accumulate(ids)) <= 1)
    for i in range(len(ids)):
        assert np.array_equal(pats[ids == ids[i]], np.repeat(pats[i:i + 1], (ids == ids[i]).sum(), 0))


def test_raw_2d_grid_undercounts_exact_regions_if_available():
    try:
        from regions.api import partition
    except ImportError:
        pytest.skip("the 2D dispatcher (regions.api) is not available")
    net = as_network(he_pairs([2, 24, 24, 1], 3))
    p = partition(net, ((-1, 1), (-1, 1)))
    g = np.linspace(-1, 1, 64)
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    count, _ = sampled_patterns(net, pts)
    assert count <= len(p)
    assert sampled_patterns(net, p.chebyshev_centers)[0] == len(p)


def test_encoded_lower_bound_and_equality_at_midpoints():
    torch.manual_seed(0)
    model = torch.nn.Sequential(regions.PositionalEncoding(5), torch.nn.Linear(10, 32),
                                torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 1))
    p = partition_encoded_1d(model, (0.0, 1.0), progress=False)
    count, _ = sampled_patterns(model, np.linspace(0, 1, 2048)[:, None])
    assert count <= p.n_patterns
    count, ids = sampled_patterns(model, p.midpoints[:, None])
    assert count == p.n_patterns
    assert np.array_equal(ids, p.pattern_id)


def test_bad_points_are_rejected():
    net = as_network(he_pairs([2, 4, 1], 0))
    with pytest.raises(ValueError, match=r"\(m, 2\)"):
        sampled_patterns(net, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="finite"):
        sampled_patterns(net, np.full((2, 2), np.nan))
    assert sampled_patterns(net, np.zeros((0, 2)))[0] == 0
