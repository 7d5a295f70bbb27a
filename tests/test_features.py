"""Region features per sample, against independent oracles (brute force on the
network, dense sampling, a single hidden layer's closed form)."""
import numpy as np
import pytest
import shapely
import torch

from regions.network import as_network
from regions.study.features import Features, sample_features
from regions.study.grid import adjacent_pairs
from regions.study.training_config import positional_encoding


def _mlp(widths, seed=0, d_in=2, d_out=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    layers, n = [], d_in
    for w in widths:
        lin = torch.nn.Linear(n, w)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(w, n, generator=g) * scale)
            lin.bias.copy_(torch.randn(w, generator=g) * 0.5 * scale)
        layers += [lin, torch.nn.ReLU()]
        n = w
    layers.append(torch.nn.Linear(n, d_out))
    return torch.nn.Sequential(*layers).double()


def _torch_patterns(model, x):
    """Activation pattern from a plain torch forward (float64), layer-major."""
    out, a = [], torch.as_tensor(x, dtype=torch.float64)
    for m in model:
        a = m(a)
        if isinstance(m, torch.nn.Linear) and m is not model[-1]:
            out.append((a > 0).numpy())
    return np.concatenate(out, axis=1)


def _grid(H, W, lo=-1.0, hi=1.0):
    xs = lo + (hi - lo) * np.arange(W) / W
    ys = lo + (hi - lo) * np.arange(H) / H
    X, Y = np.meshgrid(xs, ys)
    return np.stack([X.ravel(), Y.ravel()], 1)


@pytest.fixture(scope="module")
def raw2d():
    model = _mlp([8, 8], seed=3)
    coords = _grid(12, 12)
    f = sample_features(model, coords, grid_shape=(12, 12), domain=((-1, 1), (-1, 1)))
    return model, coords, f


def test_occupancy_equals_brute_force_pattern_count(raw2d):
    model, coords, f = raw2d
    pats = _torch_patterns(model, coords)
    _, inv, cnt = np.unique(pats, axis=0, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(f["occupancy"], cnt[inv.ravel()])
    # same region <=> same pattern (raw inputs: a pattern's set is one convex region)
    same_region = f["region"][:, None] == f["region"][None, :]
    same_pattern = inv.ravel()[:, None] == inv.ravel()[None, :]
    np.testing.assert_array_equal(same_region, same_pattern)


def test_kinds_and_table(raw2d):
    _, coords, f = raw2d
    assert isinstance(f, Features)
    for k in ("region", "measure", "inradius", "occupancy", "density", "dist_boundary",
              "dist_polygon", "dist_layer1", "dist_paper", "hamming", "hamming_l1",
              "hamming_l2", "crossings"):
        assert k in f and f[k].shape == (len(coords),)
        assert f.kind[k] == "exact"
    assert f.meta["n_regions"] >= f.meta["n_patterns_sampled"]
    np.testing.assert_allclose(f["hamming_l1"] + f["hamming_l2"], f["hamming"])
    assert np.all(f["inradius"] > 0) and np.all(f["inradius"] ** 2 * np.pi <= f["measure"] + 1e-12)


def _first_exits(net, x, U, t_max, n=400):
    """Distance along each ray x + t u (u in U) to the first pattern change:
    dense steps, then bisection (all rays at once)."""
    p0 = net.patterns(x[None])[0]
    ts = np.linspace(0, t_max, n + 1)[1:]
    pts = x[None, None] + ts[None, :, None] * U[:, None, :]
    P = net.patterns(pts.reshape(-1, 2)).reshape(len(U), n, -1)
    changed = np.any(P != p0, axis=2)
    has = changed.any(axis=1)
    first = changed.argmax(axis=1)
    hi = np.where(has, ts[first], np.inf)
    lo = np.where(first > 0, ts[np.maximum(first - 1, 0)], 0.0)
    for _ in range(50):
        mid = 0.5 * (lo + np.where(has, hi, lo))
        moved = np.any(net.patterns(x[None] + mid[:, None] * U) != p0, axis=1)
        hi = np.where(has & moved, mid, hi)
        lo = np.where(has & ~moved, mid, lo)
    return hi


def test_distance_to_boundary_matches_rays(raw2d):
    model, coords, f = raw2d
    net = as_network(model)
    angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    U = np.stack([np.cos(angles), np.sin(angles)], 1)
    for i in (0, 17, 50, 77, 143):
        d = f["dist_boundary"][i]
        ray = _first_exits(net, coords[i], U, t_max=4 * d + 0.1).min()
        # every ray leaves no earlier than the exact distance; the best ray is
        # within the angular resolution of it
        assert ray >= d * (1 - 1e-6)
        assert ray <= d / np.cos(np.pi / 720) * (1 + 1e-6) + 1e-9


def test_polygon_distance_is_min_of_neuron_and_domain(raw2d):
    _, coords, f = raw2d
    to_domain = np.min(np.concatenate([coords + 1, 1 - coords], axis=1), axis=1)
    np.testing.assert_allclose(f["dist_polygon"], np.minimum(f["dist_boundary"], to_domain),
                               rtol=1e-7, atol=1e-9)
    assert np.all(f["dist_layer1"] >= f["dist_boundary"] - 1e-12)


def _torch_preactivations(model, x):
    """Pre-activations of every hidden layer by a plain torch forward pass (float64)."""
    out, a = [], torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        for m in model:
            a = m(a)
            if isinstance(m, torch.nn.Linear) and m is not model[-1]:
                out.append(a.numpy())
    return out


def test_distance_features_against_torch_preactivations():
    model = _mlp([6, 6, 6], seed=5)
    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    f = sample_features(model, x, partition=False)
    weights = [m.weight.detach().numpy() for m in model if isinstance(m, torch.nn.Linear)]
    # the authors' |z_lk| / |W_l[k]|, layer by layer
    paper = np.stack([np.min(np.abs(z) / np.linalg.norm(W, axis=1), axis=1)
                      for z, W in zip(_torch_preactivations(model, x), weights)], axis=1)
    layers = f.meta["layer_distances"]
    assert layers["local"].shape == layers["weight_norm"].shape == (50, 3)
    np.testing.assert_allclose(layers["weight_norm"], paper, rtol=1e-12)
    np.testing.assert_allclose(f["dist_paper"], paper.min(axis=1), rtol=1e-12)
    # the first layer's lines are global: its local gradient is its weight row
    np.testing.assert_allclose(f["dist_layer1"], paper[:, 0], rtol=1e-12)
    np.testing.assert_allclose(layers["local"][:, 0], paper[:, 0], rtol=1e-12)
    np.testing.assert_array_equal(f["dist_boundary"], layers["local"].min(axis=1))
    assert np.all(f["dist_boundary"] <= f["dist_layer1"])
    # deeper layers see the input through the earlier ones: not the authors' formula
    assert not np.allclose(layers["local"][:, 1:], paper[:, 1:])


def test_crossings_single_layer_closed_form():
    # one hidden layer: every line is straight, so a segment between grid
    # neighbours crosses exactly the lines whose sign differs at its two ends
    model = _mlp([20], seed=1)
    coords = _grid(12, 12)
    f = sample_features(model, coords, grid_shape=(12, 12), partition=False)
    pairs = adjacent_pairs((12, 12))
    W, b = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    p0, p1 = coords[pairs[:, 0]], coords[pairs[:, 1]]
    want = np.sum((p0 @ W.T + b > 0) != (p1 @ W.T + b > 0), axis=1)
    np.testing.assert_array_equal(f.meta["neighbour_crossings"], want)
    assert want.sum() > 0


def test_crossings_deep_net_against_dense_sampling_and_partition(raw2d):
    model, coords, f = raw2d
    net = as_network(model)
    pairs = adjacent_pairs((12, 12))
    c = f.meta["neighbour_crossings"]
    # dense sampling: pattern changes along the segment (a lower bound; equal
    # unless two changes fall between samples)
    ts = np.linspace(0, 1, 2001)
    for k in range(0, len(pairs), 7):
        a, b = coords[pairs[k, 0]], coords[pairs[k, 1]]
        P = net.patterns(a[None] + ts[:, None] * (b - a)[None])
        dense = int(np.sum(np.any(P[1:] != P[:-1], axis=1)))
        assert dense == c[k]
    # partition: regions whose interior the segment passes through, minus one
    import regions

    p = regions.partition(model, ((-1, 1), (-1, 1)))
    polys = np.asarray(p.polygons(), dtype=object)
    segs = shapely.linestrings(np.stack([coords[pairs[:, 0]], coords[pairs[:, 1]]], 1))
    tree = shapely.STRtree(polys)
    si, pi = tree.query(segs, predicate="intersects")
    lengths = shapely.length(shapely.intersection(segs[si], polys[pi]))
    step = np.linalg.norm(coords[pairs[:, 1]] - coords[pairs[:, 0]], axis=1)
    inside = lengths > 1e-9 * step[si]
    met = np.bincount(si[inside], minlength=len(pairs))
    np.testing.assert_array_equal(met - 1, c)


def test_density_bounds_from_dense_disk_sampling(raw2d):
    model, coords, f = raw2d
    import regions

    p = regions.partition(model, ((-1, 1), (-1, 1)))
    h = f.meta["radius"]
    rng = np.random.default_rng(0)
    r = h * np.sqrt(rng.uniform(0, 1, 4000))
    th = rng.uniform(0, 2 * np.pi, 4000)
    disk = np.stack([r * np.cos(th), r * np.sin(th)], 1)
    polys = p.polygons()
    for i in range(0, len(coords), 11):
        pts = coords[i] + disk
        pts = pts[np.all(np.abs(pts) <= 1, axis=1)]
        sampled = len(np.unique(p.locate(pts)))
        assert sampled <= f["density"][i]
        # and the definition, region by region
        want = sum(shapely.distance(shapely.Point(coords[i]), q) <= h for q in polys)
        assert want == f["density"][i]


def test_raw_1d_features():
    model = _mlp([10, 10], seed=4, d_in=1)
    x = (np.arange(64) / 64)[:, None]
    f = sample_features(model, x, grid_shape=(64,), domain=(0.0, 1.0))
    net = as_network(model)
    pats = net.patterns(x)
    _, inv, cnt = np.unique(pats, axis=0, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(f["occupancy"], cnt[inv.ravel()])
    # crossings between consecutive samples: dense sampling of the pattern
    ts = np.linspace(0, 1, 4001)
    c = f.meta["neighbour_crossings"]
    for k in range(63):
        xs = x[k, 0] + ts * (x[k + 1, 0] - x[k, 0])
        P = net.patterns(xs[:, None])
        assert int(np.sum(np.any(P[1:] != P[:-1], axis=1))) == c[k]
    # distance to the piece's ends: the exact local distance when no domain end is nearer
    to_end = np.minimum(x[:, 0], 1 - x[:, 0])
    np.testing.assert_allclose(f["dist_polygon"], np.minimum(f["dist_boundary"], to_end),
                               rtol=1e-7, atol=1e-12)
    assert np.all(f["density"] >= 1)


def _encoded_2d(width, side):
    """A one-hidden-layer model behind a 2D positional encoding (L = 2), a
    ``side x side`` grid on [0, 1)^2 and its features."""
    enc = positional_encoding(2, 2)
    model = torch.nn.Sequential(enc, torch.nn.Linear(8, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, 1))
    coords = _grid(side, side, 0, 1)
    return enc, model, coords, sample_features(model, coords, grid_shape=(side, side))


def test_encoded_2d_sampled_features_are_labelled():
    enc, model, coords, _ = _encoded_2d(8, 6)
    f = sample_features(model, coords, grid_shape=(6, 6), encoded_faces=False)
    assert f.kind["occupancy"] == "sampled" and f.kind["region"] == "sampled"
    assert f.kind["hamming"] == "exact" and "inradius" not in f
    net = as_network(model)
    pats = net.patterns(enc.encode_numpy(coords))
    _, inv, cnt = np.unique(pats, axis=0, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(f["occupancy"], cnt[inv.ravel()])


def test_bad_inputs_name_the_problem():
    model = _mlp([4], seed=0)
    with pytest.raises(ValueError, match="coords"):
        sample_features(model, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="grid_shape"):
        sample_features(model, _grid(3, 3), grid_shape=(4, 4))
    with pytest.raises(ValueError, match="NaN"):
        sample_features(model, np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="radius"):
        sample_features(model, _grid(3, 3), grid_shape=(3, 3), radius=-1.0)


def test_encoded_2d_face_features_are_the_whole_partitions():
    # the oracle: the whole encoded 2D partition (another run of the engine, every
    # face cut) and shapely on its faces; samples of one face share an id, and a
    # pattern met in several faces (PE is periodic) gives several ids
    import regions

    enc = positional_encoding(2, 2)
    torch.manual_seed(4)
    model = torch.nn.Sequential(enc, torch.nn.Linear(8, 10), torch.nn.ReLU(),
                                torch.nn.Linear(10, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1))
    coords = _grid(12, 12, 0, 1)
    f = sample_features(model, coords, grid_shape=(12, 12))
    for k in ("region", "measure", "inradius", "occupancy", "dist_boundary", "dist_polygon"):
        assert f.kind[k] == "exact", k
    assert f.kind["density"] == "sampled"
    p = regions.partition(model, f.meta["domain"])
    r = p.locate(coords)
    # one id per face: the same grouping of the samples as the whole partition's faces
    _, want = np.unique(r, return_inverse=True)
    _, got = np.unique(f["region"], return_inverse=True)
    assert len(np.unique(np.stack([want, got], 1), axis=0)) == len(np.unique(want)) \
        == len(np.unique(got))
    pats = p.patterns[r]
    _, by_pattern = np.unique(pats, axis=0, return_inverse=True)
    assert len(np.unique(by_pattern)) < len(np.unique(got)), "no pattern recurs: nothing tested"
    np.testing.assert_array_equal(f["occupancy"], np.bincount(r)[r])
    lo, hi = p.measure_bounds[r].T
    b = f.meta["measure_bounds"]
    assert np.all(np.maximum(lo, b[:, 0]) <= np.minimum(hi, b[:, 1]))
    # the study's faces are cut at 1e-6 or finer, the whole partition at its 1e-5
    assert np.all(f.meta["face_tol"] <= 1e-6)
    w = b[:, 1] - b[:, 0]
    assert np.all(w <= 0.05 * f["measure"])          # the relative area tolerance
    tol = 4 * 1e-5
    np.testing.assert_allclose(f["inradius"], p.inradius[r], atol=tol)
    polys = np.asarray(p.polygons(), dtype=object)[r]
    np.testing.assert_allclose(f["dist_polygon"],
                               shapely.distance(shapely.points(coords), shapely.boundary(polys)),
                               atol=tol)
    np.testing.assert_allclose(f["dist_boundary"], p.distance_to_boundary(coords), atol=tol)


def _dense_changes(net, enc, a, b, n=4001):
    ts = np.linspace(0, 1, n)
    pts = a[None] + ts[:, None] * (b - a)[None]
    P = net.patterns(enc.encode_numpy(pts))
    return int(np.sum(np.any(P[1:] != P[:-1], axis=1)))


def test_encoded_1d_features_exact():
    enc = positional_encoding(3, 1)
    model = torch.nn.Sequential(enc, torch.nn.Linear(6, 10), torch.nn.ReLU(),
                                torch.nn.Linear(10, 10), torch.nn.ReLU(), torch.nn.Linear(10, 1))
    x = (np.arange(48) / 48)[:, None]
    f = sample_features(model, x, grid_shape=(48,), domain=(0.0, 1.0))
    assert all(f.kind[k] == "exact" for k in f)
    net = as_network(model)
    pats = net.patterns(enc.encode_numpy(x))
    _, inv, cnt = np.unique(pats, axis=0, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(f["occupancy"], cnt[inv.ravel()])
    # a pattern's total length is at least its sample's own piece
    assert np.all(f["measure"] >= f["piece_length"] - 1e-15)
    c = f.meta["neighbour_crossings"]
    for k in range(0, 47, 3):
        assert _dense_changes(net, enc, x[k], x[k + 1]) <= c[k]
        assert _dense_changes(net, enc, x[k], x[k + 1], n=8001) == c[k]


def test_encoded_2d_crossings_exact_along_rows_and_columns():
    enc, model, coords, f = _encoded_2d(12, 5)
    assert f.kind["crossings"] == "exact"
    net = as_network(model)
    pairs = adjacent_pairs((5, 5))
    c = f.meta["neighbour_crossings"]
    for k in range(0, len(pairs), 3):
        a, b = coords[pairs[k, 0]], coords[pairs[k, 1]]
        assert _dense_changes(net, enc, a, b, n=8001) == c[k]


def test_partition_false_keeps_network_exact_features():
    model = _mlp([6, 6], seed=2)
    coords = _grid(5, 5)
    f = sample_features(model, coords, grid_shape=(5, 5), partition=False)
    assert "occupancy" not in f and "missing" in f.meta
    for k in ("dist_boundary", "dist_paper", "hamming", "crossings"):
        assert f.kind[k] == "exact"
