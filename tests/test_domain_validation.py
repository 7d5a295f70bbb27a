"""Domains whose length, area or coordinates float64 cannot multiply are refused with
a ValueError naming the bound; domains up to the bound partition without a warning
and their pieces still cover them."""
import warnings

import numpy as np
import pytest
import shapely

import regions
from regions.domain import MAX_COORDINATE, as_domain
from regions.cli import he_network


@pytest.mark.parametrize("domain,match", [
    (((-1e308, 1e308), (-1e308, 1e308)), r"x range .*1e\+308.*at most 1e\+150"),
    ((-1e308, 1e308), r"interval .*1e\+308.*at most 1e\+150"),
    (((0.0, 1.0), (0.0, 1e151)), r"y range .*1e\+151.*at most 1e\+150"),
    (((0.0, 1e-200), (0.0, 1e-200)), r"area .* is 0.*positive finite"),
])
def test_boxes_and_intervals_out_of_scale(domain, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # and no numpy overflow warning first
        with pytest.raises(ValueError, match=match):
            as_domain(domain)
        with pytest.raises(ValueError, match=match):
            regions.partition(he_network([len(domain) if np.ndim(domain[0]) else 1, 4, 1]),
                              domain)


def test_slices_and_polygons_out_of_scale():
    with pytest.raises(ValueError, match=r"segment's directions .*2e\+150"):
        regions.Segment([-1e150, 0.0], [1e150, 0.0])      # p1 - p0 = 2e150
    with pytest.raises(ValueError, match=r"segment's end points .*1e\+308"):
        regions.Segment([-1e308, 0.0], [1e308, 0.0])      # p1 - p0 would overflow
    with pytest.raises(ValueError, match=r"plane in input space .*1e\+200"):
        regions.Plane(origin=[0.0, 0.0, 0.0], directions=[[1e100, 0, 0], [0, 1e100, 0]],
                      box=((0.0, 1e100), (0.0, 1.0)))
    with pytest.raises(ValueError, match=r"polygon's coordinates .*1e\+200"):
        as_domain(shapely.Polygon([(0, 0), (1e200, 0), (0, 1e200)]))


@pytest.mark.parametrize("domain", [((-MAX_COORDINATE, MAX_COORDINATE),) * 2,
                                    (-MAX_COORDINATE, MAX_COORDINATE)])
def test_the_largest_accepted_domains_partition_cleanly(domain):
    dim = 2 if np.ndim(domain[0]) else 1
    net = he_network([dim, 16, 16, 1], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = regions.partition(net, domain)
    measure = as_domain(domain).measure
    assert np.isfinite(measure) and p.measure.sum() == pytest.approx(measure, rel=1e-9)
    # every piece holds the pattern that the network has at its points
    rng = np.random.default_rng(0)
    x = rng.uniform(-MAX_COORDINATE, MAX_COORDINATE, size=(500, dim))
    from regions.network import as_network

    want = as_network(net).patterns(x)
    r = p.locate(x if dim == 2 else x[:, 0])
    np.testing.assert_array_equal(p.patterns[r], want)
