"""A max over k > 2 values in the encoded 2D engine: faces joined where only the
max's losers swap order (issue 13), checked against the encoded 1D engine's own
join along rows and columns, torch's argmax and output at random points, and the
tiled engine."""
import numpy as np
import pytest
import torch

import regions
from regions.encoded import partition_encoded_segment
from regions.encoded.tiles import partition_tiles
from regions.trace import trace
from test_encoded2d import LINES, TOL, _wide_faces_match, crossings_along


class MaxOfK(torch.nn.Module):
    """2 -> PE(L) -> w, ReLU -> k, then the max of the k outputs."""

    def __init__(self, k=6, L=2, width=12):
        super().__init__()
        self.enc = regions.PositionalEncoding(L, in_features=2)
        self.hidden = torch.nn.Linear(4 * L, width)
        self.out = torch.nn.Linear(width, k)

    def outputs(self, p):
        return self.out(torch.relu(self.hidden(self.enc(p))))

    def forward(self, p):
        return self.outputs(p).max(dim=-1, keepdim=True).values


@pytest.fixture(scope="module")
def max6():
    torch.manual_seed(2)
    model = MaxOfK().double()
    return model, regions.partition(model, ((0.0, 1.0), (0.0, 1.0)))


def test_faces_are_joined_where_only_losers_swap(max6):
    model, p = max6
    assert p.stats["faces_before_max_merge"] > len(p) + 20      # the join did something
    assert abs(p.measure.sum() - 1.0) < 1e-9
    # no two faces sharing an arc have one canonical pattern: each join is complete
    assert not np.any(p.adjacent_pairs()[:, 2] == -1)
    # rows and columns cross the joined faces where the encoded 1D engine, which joins
    # its pieces by its own rule (regions._shared.merge_max_runs), has breakpoints
    for p0, p1 in LINES:
        exact = partition_encoded_segment(model, p0, p1, progress=False).breakpoints
        seen = crossings_along(p, p0, p1)
        assert seen.shape == exact.shape, (p0, p1)
        np.testing.assert_allclose(seen, exact, atol=200 * TOL)


def test_the_joined_faces_carry_torchs_winner_and_output(max6):
    model, p = max6
    pts = np.random.default_rng(5).random((3000, 2))
    x = torch.tensor(pts, dtype=torch.float64)
    with torch.no_grad():
        outs = model.outputs(x).numpy()
        value = model(x).numpy()[:, 0]
    top = np.sort(outs, axis=1)
    clear = top[:, -1] - top[:, -2] > 1e-6            # the argmax is not a near tie
    idx = p.locate(pts)
    assert np.all(idx >= 0)
    winner = trace(model).winners(p.patterns[idx])
    (name,) = winner
    np.testing.assert_array_equal(winner[name][clear].ravel(), outs[clear].argmax(axis=1))
    # the face's affine map in the encoded space is the model's value there
    mine = p.evaluate(pts)[:, 0]
    assert np.all(np.abs(mine - value) <= 1e-9 * (1 + np.abs(value)))


def test_tiles_join_a_max_as_one_run_does(max6):
    model, p = max6
    q = partition_tiles(model, tiles=(2, 2), workers=1)
    assert q.stats["faces_before_max_merge"] > len(q)
    assert len(q) == len(p) and abs(q.measure.sum() - 1.0) < 1e-9
    assert _wide_faces_match(p, q, 10 * TOL) > 0.9 * len(p)


def test_the_region_cap_counts_joined_faces(max6):
    model, p = max6
    # between the joined and the engine's count: allowed, the cap is on regions
    assert len(regions.partition(model, ((0.0, 1.0), (0.0, 1.0)),
                                 max_regions=len(p) + 1)) == len(p)
    with pytest.raises(regions.TooManyRegions):
        regions.partition(model, ((0.0, 1.0), (0.0, 1.0)), max_regions=len(p) - 1)


def test_without_the_join_rows_cross_more_often_than_in_1d(monkeypatch, max6):
    from regions.encoded import joins

    model, p = max6
    monkeypatch.setattr(joins, "union_groups",
                        lambda geoms, labels: (list(geoms), np.arange(len(geoms))))
    q = regions.partition(model, ((0.0, 1.0), (0.0, 1.0)))
    assert len(q) == p.stats["faces_before_max_merge"]
    extra = 0
    for p0, p1 in LINES:
        exact = partition_encoded_segment(model, p0, p1, progress=False).breakpoints
        extra += crossings_along(q, p0, p1).shape[0] - exact.shape[0]
    assert extra > 0 and np.any(q.adjacent_pairs()[:, 2] == -1)


def test_the_joined_faces_round_trip_through_a_file(max6, tmp_path):
    # the max tree is stored (format version 2); load checks each joined face's
    # canonical pattern against the network's at a point inside it
    _, p = max6
    q = regions.load(regions.save(p, tmp_path / "p.npz"))
    np.testing.assert_array_equal(q.network.max_trees, p.network.max_trees)
    np.testing.assert_array_equal(q.patterns, p.patterns)
    assert len(q) == len(p)


def test_sample_faces_give_the_joined_face(max6):
    # the whole partition's joined face at each sample is the oracle: the same
    # canonical pattern and the same area (to the two area intervals' slack)
    from regions.encoded import sample_faces

    model, p = max6
    pts = np.random.default_rng(3).uniform(0.02, 0.98, (60, 2))
    s = sample_faces(model, pts)
    r = p.locate(pts)
    assert np.all(r >= 0)
    np.testing.assert_array_equal(s.patterns, p.patterns[r])
    lo, hi = p.measure_bounds[r].T
    assert np.all(np.maximum(lo, s.area_bounds[:, 0]) <= np.minimum(hi, s.area_bounds[:, 1]))
    # some sample sits in a face the join made (else this checks nothing new)
    assert p.stats["faces_before_max_merge"] > len(p)
    whole = np.asarray(p.polygons(), dtype=object)[r]
    import shapely
    assert np.all(shapely.area(shapely.symmetric_difference(whole, np.asarray(s.polygons, dtype=object)))
                  < 1e-3 * shapely.area(whole))
