"""regions/geometry.py against references that share no code with it: torch
forward passes on dense grids refined by bisection, a brute-force search on
circles of growing radius, shapely distances to the exact partition's
polygons. The study's own uses (encoded neighbour crossings, region
adjacency) are checked against the same references."""
import numpy as np
import pytest
import shapely
import torch

import regions
from regions.encoding import PositionalEncoding
from regions.geometry import boundary_distances, interval_adjacency, segment_crossings
from regions.network import as_network
from regions.study import dynamics as study_dynamics
from regions.study import features as study_features
from regions.study.grid import adjacent_pairs


def mlp(widths, seed, d_in=2, leaky=0.0, encoding=None, bias_std=0.5):
    """A float64 torch MLP with random weights (an encoding in front if given)."""
    g = torch.Generator().manual_seed(seed)
    mods = [] if encoding is None else [encoding]
    n = d_in if encoding is None else encoding.out_features
    for w in widths:
        lin = torch.nn.Linear(n, w).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(w, n, generator=g, dtype=torch.float64) * np.sqrt(2 / n))
            lin.bias.copy_(torch.randn(w, generator=g, dtype=torch.float64) * bias_std)
        mods += [lin, torch.nn.LeakyReLU(leaky) if leaky else torch.nn.ReLU()]
        n = w
    mods.append(torch.nn.Linear(n, 1).double())
    return torch.nn.Sequential(*mods)


def torch_patterns(model, x):
    """Activation pattern (pre-activation > 0) of every hidden neuron by a plain
    torch forward pass, layer-major, ``(m, n_hidden)`` bool."""
    a = torch.as_tensor(np.asarray(x, dtype=np.float64))
    out = []
    with torch.no_grad():
        for mod in model:
            if isinstance(mod, (torch.nn.ReLU, torch.nn.LeakyReLU)):
                out.append((a > 0).numpy())
            a = mod(a)
    return np.concatenate(out, axis=1)


def pattern_runs(model, p0, p1, n=4001, tol=1e-11):
    """The patterns met along ``p0 -> p1``, in order: a dense grid of ``t``, every
    gap whose end patterns differ bisected until it is shorter than ``tol``
    (intermediate patterns found on the way are kept)."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)

    def pats(t):
        return torch_patterns(model, p0[None, :] + np.asarray(t)[:, None] * (p1 - p0)[None, :])

    t = np.linspace(0.0, 1.0, n)
    P = pats(t)
    runs = [P[0]]

    def refine(a, b, pa, pb):
        if np.array_equal(pa, pb):
            return
        if b - a < tol:
            runs.append(pb)
            return
        m = 0.5 * (a + b)
        pm = pats(np.array([m]))[0]
        refine(a, m, pa, pm)
        refine(m, b, pm, pb)

    for i in range(n - 1):
        refine(t[i], t[i + 1], P[i], P[i + 1])
    return runs


def random_segments(rng, m, lo=-1.0, hi=1.0, d=2):
    return rng.uniform(lo, hi, (m, d)), rng.uniform(lo, hi, (m, d))


# ----------------------------------------------------------------------------- crossings

@pytest.mark.parametrize("widths, leaky, seed", [([6], 0.0, 0), ([8, 8], 0.0, 1),
                                                 ([6, 6, 6], 0.1, 2)])
def test_raw_crossings_against_bisected_torch_patterns(widths, leaky, seed):
    model = mlp(widths, seed, leaky=leaky)
    p0, p1 = random_segments(np.random.default_rng(seed), 12)
    got = segment_crossings(model, p0, p1)
    want = [len(pattern_runs(model, a, b)) - 1 for a, b in zip(p0, p1)]
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64 and np.sum(want) > 12   # the segments do cross boundaries


@pytest.mark.parametrize("in_features", [1, 2])
def test_encoded_crossings_against_bisected_torch_patterns(in_features):
    model = mlp([8, 8], 3, encoding=PositionalEncoding(2, in_features=in_features),
                bias_std=0.2)
    p0, p1 = random_segments(np.random.default_rng(4), 6, 0.0, 1.0, in_features)
    got = segment_crossings(model, p0, p1)
    want = [len(pattern_runs(model, a, b)) - 1 for a, b in zip(p0, p1)]
    np.testing.assert_array_equal(got, want)
    assert np.sum(want) > 6


def test_crossings_of_degenerate_segments():
    raw = mlp([5, 5], 5)
    enc = mlp([5], 5, encoding=PositionalEncoding(2, in_features=2))
    for model in (raw, enc):
        # a point crosses nothing; a segment and its reverse cross as often
        p0, p1 = random_segments(np.random.default_rng(6), 4, 0.0, 1.0)
        np.testing.assert_array_equal(segment_crossings(model, p0, p0), 0)
        np.testing.assert_array_equal(segment_crossings(model, p0, p1),
                                      segment_crossings(model, p1, p0))
        assert segment_crossings(model, np.empty((0, 2)), np.empty((0, 2))).shape == (0,)
    # a network without hidden layers has one region (the study's walk raised on it)
    linear = [(np.ones((1, 2)), np.zeros(1))]
    np.testing.assert_array_equal(segment_crossings(linear, [[0.0, 0.0]], [[1.0, 1.0]]), [0])


def test_crossings_refuse_bad_segments():
    model = mlp([4], 0)
    with pytest.raises(ValueError, match=r"p0 must be shaped \(m, 2\)"):
        segment_crossings(model, np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="as many points"):
        segment_crossings(model, np.zeros((2, 2)), np.zeros((3, 2)))
    # the study's walk counted nothing on a nan segment, silently
    with pytest.raises(ValueError, match="p1 must be finite"):
        segment_crossings(model, np.zeros((1, 2)), np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="array of numbers"):
        segment_crossings(model, [["a", "b"]], [[0.0, 0.0]])


def _row_major_grid(H, W, lo=0.0, hi=1.0):
    xs, ys = np.linspace(lo, hi, W), np.linspace(lo, hi, H)
    X, Y = np.meshgrid(xs, ys)
    return np.stack([X.ravel(), Y.ravel()], 1)


def test_studys_encoded_neighbour_crossings_against_bisected_torch_patterns():
    """The study counts the crossings between grid neighbours of encoded models
    its own way: encoded 1D from the breakpoints of the whole partition,
    encoded 2D by regions.grid_crossings along rows and columns. Both agree
    with the torch patterns along each segment and with segment_crossings
    (one encoded partition per segment). Raw models: tests/test_features.py."""
    cases = [(mlp([8, 8], 8, d_in=1, encoding=PositionalEncoding(3)), (40,),
              np.linspace(0.0, 1.0, 40)[:, None]),
             (mlp([6, 6], 9, encoding=PositionalEncoding(2, in_features=2)), (5, 6),
              _row_major_grid(5, 6))]
    for model, shape, coords in cases:
        f = study_features.sample_features(model, coords, grid_shape=shape, layers=False)
        pairs = adjacent_pairs(shape)
        a, b = coords[pairs[:, 0]], coords[pairs[:, 1]]
        want = [len(pattern_runs(model, p, q, n=1001)) - 1 for p, q in zip(a, b)]
        np.testing.assert_array_equal(f.meta["neighbour_crossings"], want)
        np.testing.assert_array_equal(segment_crossings(model, a, b), want)
        assert np.sum(want) > 0


# ----------------------------------------------------------------------------- distances

def brute_force_distance(model, x, n_angles=4096, steps=60):
    """Radius of the smallest circle around ``x`` on which some point (of
    ``n_angles``) has another torch pattern than ``x``: bisection between a
    radius whose circle keeps the pattern and one whose circle does not (along
    any ray out of a convex region the pattern stays changed, so this is
    monotone). Over-estimates the distance by at most a factor
    ``1 / cos(pi / n_angles)``."""
    p = torch_patterns(model, x[None, :])[0]
    theta = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    u = np.stack([np.cos(theta), np.sin(theta)], 1)

    def changed(r):
        return bool(np.any(torch_patterns(model, x[None, :] + r * u) != p))

    lo, hi = 0.0, 1e-3
    while not changed(hi):
        lo, hi = hi, 2 * hi
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if changed(mid) else (mid, hi)
    return hi


@pytest.mark.parametrize("widths, leaky, seed", [([6, 6], 0.0, 10), ([5, 5, 5], 0.2, 11)])
def test_boundary_distances_against_brute_force_circles(widths, leaky, seed):
    model = mlp(widths, seed, leaky=leaky)
    x = np.random.default_rng(seed).uniform(-1, 1, (8, 2))
    got = boundary_distances(model, x)
    want = np.array([brute_force_distance(model, xi) for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # the local gradient matters: the first layer alone is not the distance
    assert np.any(boundary_distances(model, x, per_layer=True)[:, 0] > got * (1 + 1e-6))


def test_boundary_distances_against_exact_polygons():
    """Region clipped to the box = convex region and box: the distance to the
    polygon's boundary is the smaller of the unclipped distance and the
    distance to the box's sides."""
    model = mlp([8, 8, 8], 12)
    p = regions.partition(model, ((-1.0, 1.0), (-1.0, 1.0)), progress=False)
    x = np.random.default_rng(12).uniform(-1, 1, (300, 2))
    polys = np.asarray(p.polygons(), dtype=object)[p.locate(x)]
    want = shapely.distance(shapely.points(x), shapely.boundary(polys))
    to_box = np.min(np.concatenate([x + 1, 1 - x], axis=1), axis=1)
    got = np.minimum(boundary_distances(model, x), to_box)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.mean(got < to_box) > 0.5     # mostly a neuron's boundary, not the box


def test_boundary_distances_of_degenerate_points_and_networks():
    model = mlp([4, 4], 13)
    net = as_network(model)
    # a point on a first-layer line is at distance 0
    W, b = net.weights[0], net.biases[0]
    on_line = np.array([[0.0, -b[0] / W[0, 1]]])
    assert boundary_distances(model, on_line)[0] < 1e-15
    # 1D points may be given as (m,)
    m1 = mlp([4], 14, d_in=1)
    np.testing.assert_array_equal(boundary_distances(m1, [0.1, 0.2]),
                                  boundary_distances(m1, [[0.1], [0.2]]))
    # per layer: the row minimum is the overall distance
    x = np.random.default_rng(13).uniform(-1, 1, (50, 2))
    np.testing.assert_array_equal(boundary_distances(model, x, per_layer=True).min(axis=1),
                                  boundary_distances(model, x))
    assert boundary_distances(model, np.empty((0, 2)), per_layer=True).shape == (0, 2)
    with pytest.raises(ValueError, match="points must be finite"):
        boundary_distances(model, [[np.inf, 0.0]])
    with pytest.raises(ValueError, match="method must be one of"):
        boundary_distances(model, x, method="paper")
    with pytest.raises(ValueError, match="raw-coordinate"):
        boundary_distances(mlp([4], 0, encoding=PositionalEncoding(2, in_features=2)), x)


# ----------------------------------------------------------------------------- adjacency

def sampled_region_sequence(model, lo, hi):
    """Labels (numbered by first appearance) of the patterns met along
    ``[lo, hi]``, from bisected torch patterns."""
    runs = pattern_runs(model, [lo], [hi], n=20001)
    labels, seq = {}, []
    for r in runs:
        seq.append(labels.setdefault(r.tobytes(), len(labels)))
    return np.array(seq), len(labels)


def adjacency_of_sequence(seq, n):
    A = np.zeros((n, n), dtype=bool)
    A[seq[:-1], seq[1:]] = True
    A |= A.T
    np.fill_diagonal(A, False)
    return A


def test_interval_adjacency_of_a_raw_partition_against_sampled_pieces():
    model = mlp([8, 8], 30, d_in=1)
    p = regions.partition(model, (-2.0, 2.0), progress=False)
    seq, n = sampled_region_sequence(model, -2.0, 2.0)
    assert n == len(seq) == len(p) > 5         # raw 1D: every piece is its own pattern
    A = interval_adjacency(p)
    assert A.dtype == bool and A.shape == (n, n)
    np.testing.assert_array_equal(A.toarray(), adjacency_of_sequence(np.arange(n), n))
    # the pieces meet at the breakpoints: just left and right of each lie neighbours
    bp = p.breakpoints
    left, right = p.locate(bp - 1e-9), p.locate(bp + 1e-9)
    assert np.all(A.toarray()[left, right])


def test_interval_adjacency_of_an_encoded_partition_against_sampled_patterns():
    model = mlp([6, 6], 31, d_in=1, encoding=PositionalEncoding(3), bias_std=0.3)
    p = regions.partition(model, (0.0, 1.0), progress=False)
    seq, n = sampled_region_sequence(model, 0.0, 1.0)
    assert len(seq) == len(p) and n == p.n_patterns < len(p)   # some patterns recur
    np.testing.assert_array_equal(p.pattern_id, seq)
    np.testing.assert_array_equal(interval_adjacency(p).toarray(), adjacency_of_sequence(seq, n))


def test_studys_region_adjacency_of_an_encoded_1d_model_against_sampled_patterns():
    """The regions and adjacency the study splits the predicted loss change by."""
    model = mlp([6, 6], 31, d_in=1, encoding=PositionalEncoding(3), bias_std=0.3)
    p = regions.partition(model, (0.0, 1.0), progress=False)
    x = np.linspace(0.0, 1.0, 64)[:, None]
    f = study_features.sample_features(model, x, grid_shape=(64,), domain=(0.0, 1.0),
                                       partition=p)
    rid, A = study_dynamics.region_adjacency(f, p, None, (64,))
    labels = {}   # torch pattern -> number, by first appearance along [0, 1]
    seq = np.array([labels.setdefault(r.tobytes(), len(labels))
                    for r in pattern_runs(model, [0.0], [1.0], n=20001)])
    np.testing.assert_array_equal(rid, [labels[q.tobytes()] for q in torch_patterns(model, x)])
    np.testing.assert_array_equal(A.toarray(), adjacency_of_sequence(seq, len(labels)))
    assert len(np.unique(rid)) < len(labels) < len(seq)   # samples miss regions; some recur


def test_interval_adjacency_refuses_what_is_not_1d():
    p2 = regions.partition(mlp([3], 0), ((0, 1), (0, 1)), progress=False)
    for bad in (p2, 2.0, True, "3"):
        with pytest.raises(ValueError, match="number of intervals or a 1D partition"):
            interval_adjacency(bad)
    with pytest.raises(ValueError, match=">= 1"):
        interval_adjacency(-1)
