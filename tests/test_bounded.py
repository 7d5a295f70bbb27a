"""Bounded work (issue 9, items 7, 8, 9) and engine errors that must not pass silently.

Oracles: the region count of the unbounded run (a limit must never fire at or
above it, and must fire below it), the documented exceptions and their
messages.
"""
import numpy as np
import pytest

import regions
from regions.cli import he_network

L_SHAPE = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]


def _l_shape():
    import shapely

    return shapely.Polygon([(3 * x - 3, 3 * y - 3) for x, y in L_SHAPE])


def _net(arch, seed=0):
    return he_network(arch, seed)


@pytest.mark.parametrize("bad", [True, False, 1.5, 10.0, np.float64(3.0), "10", 0, -3])
def test_max_regions_refuses_bools_and_non_integers(bad):
    # before: True was taken as 1 (and 10.0 as 10)
    net = [(np.eye(2), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))]
    with pytest.raises(ValueError, match="max_regions must be a positive integer"):
        regions.partition(net, ((-1, 1), (-1, 1)), max_regions=bad)
    with pytest.raises(ValueError, match="max_regions must be a positive integer"):
        regions.partition(net, (-1, 1), max_regions=bad)


def test_max_regions_accepts_numpy_integers():
    net = [(np.eye(2), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))]
    assert len(regions.partition(net, ((-1, 1), (-1, 1)), max_regions=np.int64(4))) == 4


def test_max_regions_bounds_the_work_on_a_non_convex_polygon():
    # before: the whole enumeration ran (210,700 regions), checked only after merging
    with pytest.raises(regions.TooManyRegions, match="after hidden layer 1 of 3"):
        regions.partition(_net("2-256x3-1"), _l_shape(), max_regions=10)


def test_max_regions_on_a_polygon_fires_exactly_above_the_merged_count():
    net = _net("2-8x3-1", seed=2)
    p = regions.partition(net, _l_shape())
    assert not p.convex
    n = len(p)
    assert len(regions.partition(net, _l_shape(), max_regions=n)) == n
    with pytest.raises(regions.TooManyRegions):
        regions.partition(net, _l_shape(), max_regions=n - 1)


def test_max_regions_per_layer_count_is_a_lower_bound_of_the_merged_count():
    # the per-layer merged count never exceeds the final one: a limit just at
    # the final count never fires, on several nets and polygons
    import shapely

    star = shapely.Polygon([(np.cos(a) * r, np.sin(a) * r) for a, r in
                            zip(np.linspace(0, 2 * np.pi, 10, endpoint=False), [2, 0.8] * 5)])
    for seed in range(3):
        net = _net("2-6x4-1", seed=seed)
        for dom in (_l_shape(), star):
            n = len(regions.partition(net, dom))
            assert len(regions.partition(net, dom, max_regions=n)) == n


def test_memory_budget_stops_before_the_layer_2d():
    net = _net("2-64x4-1")
    with pytest.raises(regions.MemoryBudgetExceeded) as info:
        regions.partition(net, ((-3, 3), (-3, 3)), memory_budget=2_000_000)
    msg = str(info.value)
    assert "hidden layer" in msg and "would need about" in msg and "MiB" in msg
    assert "memory budget of 2 MiB" in msg and "max_regions=None" in msg
    assert isinstance(info.value, regions.TooManyRegions)
    # a budget that suffices changes nothing
    p = regions.partition(net, ((-3, 3), (-3, 3)))
    q = regions.partition(net, ((-3, 3), (-3, 3)), memory_budget=2**34)
    assert len(p) == len(q)


def test_memory_budget_on_a_polygon_and_in_1d():
    with pytest.raises(regions.MemoryBudgetExceeded, match="max_regions=500000"):
        regions.partition(_net("2-64x3-1"), _l_shape(), memory_budget=500_000, max_regions=500_000)
    net = _net("1-256x8-1")
    with pytest.raises(regions.MemoryBudgetExceeded, match="hidden layer .* pieces"):
        regions.partition(net, (-3.0, 3.0), memory_budget=200_000)
    assert len(regions.partition(net, (-3.0, 3.0), memory_budget=2**34)) > 100


@pytest.mark.parametrize("bad", [True, 0, -1, 1e9, "1GB"])
def test_memory_budget_refuses_non_integers(bad):
    with pytest.raises(ValueError, match="memory_budget must be a positive integer"):
        regions.partition(_net("2-4-1"), ((-1, 1), (-1, 1)), memory_budget=bad)


def test_default_memory_budget_is_a_share_of_available_memory(monkeypatch):
    from regions import _shared

    monkeypatch.setattr(_shared, "_meminfo", lambda: {"MemTotal": 64 * 2**30, "MemAvailable": 10 * 2**30})
    assert _shared.memory_budget() == int(0.8 * 10 * 2**30)
    monkeypatch.setattr(_shared, "_meminfo", lambda: {"MemTotal": 64 * 2**30, "MemAvailable": 2**20})
    assert _shared.memory_budget() == 2**30          # the floor
    monkeypatch.setattr(_shared, "_meminfo", lambda: {"MemTotal": 2**30, "MemAvailable": 2**20})
    assert _shared.memory_budget() == 2**29          # half of a small machine
    monkeypatch.setattr(_shared, "_meminfo", lambda: {})
    assert _shared.memory_budget() == int(0.8 * 4 * 2**30)
    # the real file parses
    monkeypatch.undo()
    assert _shared._meminfo().get("MemAvailable", 1) > 0


def test_inconsistent_cut_is_an_engine_error(monkeypatch):
    # a face the kernels could not cut consistently must not leave a silently
    # wrong partition (before: a warning at most, and none from enumerate_plane)
    from kernels import plane

    real = plane.count_cuts

    def flagging(*args):
        counts = real(*args)
        counts[0, 4] |= plane.ERR_RUNS
        return counts

    monkeypatch.setattr(plane, "count_cuts", flagging)
    with pytest.raises(RuntimeError, match="engine error in hidden layer 1 of 2.*one \\+ run"):
        regions.partition(_net("2-8x2-1"), ((-1, 1), (-1, 1)))


def test_memory_budget_covers_the_count_pass_of_a_wide_first_layer():
    # one face cut by 512 lines: the local arrangement's scratch (cubic in the
    # number of lines) is checked before the count pass allocates it
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(regions.MemoryBudgetExceeded, match="count pass; a face cut by 512 neurons"):
        regions.partition(_net("2-512-1"), ((-3, 3), (-3, 3)), memory_budget=2**29)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 256      # it stopped before allocating the scratch (about 1.2 GB)
