"""The encoded 2D engine against things independent of it: the encoded 1D engine
along rows and columns, torch forward passes on dense grids, pixel areas,
connected components of high-resolution sign grids, Euler's relation, and
curves built to be degenerate (a saddle on a grid corner, tangent curves, an
oval smaller than a pixel)."""
import numpy as np
import pytest
import shapely
import shapely.ops
import torch

import regions
from regions.encoded import (EncodedPartition2D, partition_encoded_plane, partition_encoded_segment,
                             sample_faces)
from regions.encoded import engine2d

TOL = 1e-5


def pe_mlp(L, widths, seed, leaky=None):
    """2 -> PE(L) -> widths[:-1] (ReLU or LeakyReLU) -> widths[-1], float64."""
    torch.manual_seed(seed)
    mods = [regions.PositionalEncoding(L, in_features=2)]
    n_in = 4 * L
    for w in widths[:-1]:
        mods += [torch.nn.Linear(n_in, w), torch.nn.ReLU() if leaky is None else torch.nn.LeakyReLU(leaky)]
        n_in = w
    mods.append(torch.nn.Linear(n_in, widths[-1]))
    return torch.nn.Sequential(*mods).double()


def one_layer(rows, bias, L=2):
    """PE(L) -> Linear with the given rows (features [sin pi x, cos pi x, sin pi y, cos pi y,
    sin 2 pi x, ...]) -> ReLU -> Linear(., 1)."""
    lin = torch.nn.Linear(4 * L, len(rows)).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(rows, dtype=torch.float64))
        lin.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return torch.nn.Sequential(regions.PositionalEncoding(L, in_features=2), lin, torch.nn.ReLU(),
                               torch.nn.Linear(len(rows), 1).double())


def torch_states(model, pts):
    """Activation states (pre-activation > 0, layer-major) and each point's smallest
    first-order distance ``|z| / |grad z|`` to any neuron's zero curve, by torch."""
    x = torch.tensor(pts, dtype=torch.float64, requires_grad=True)
    h, zs = x, []
    for m in model:
        if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU)):
            zs.append(h)
        h = m(h)
    states = torch.cat([z > 0 for z in zs], dim=1).numpy()
    dist = np.full(len(pts), np.inf)
    for z in zs:
        for k in range(z.shape[1]):
            g, = torch.autograd.grad(z[:, k].sum(), x, retain_graph=True)
            d = (z[:, k].abs() / g.norm(dim=1)).detach().numpy()
            dist = np.minimum(dist, d)
    return states, dist


def grid(n, lo=0.0, hi=1.0):
    g = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    X, Y = np.meshgrid(g, g)
    return np.stack([X.ravel(), Y.ravel()], axis=1)


def crossings_along(p, p0, p1):
    """Parameters t in (0, 1) where the segment p0 -> p1 leaves one face for another."""
    line = shapely.LineString([p0, p1])
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = int(np.argmax(np.abs(p1 - p0)))
    ends = []
    for g in shapely.intersection(np.asarray(p.geoms, dtype=object), line):
        for part in shapely.get_parts(g):
            if isinstance(part, shapely.LineString) and part.length > 0:
                c = np.asarray(part.coords)[[0, -1], axis]
                ends.extend(((c - p0[axis]) / (p1[axis] - p0[axis])).tolist())
    ends = np.sort(np.asarray(ends))
    ends = ends[(ends > 1e-9) & (ends < 1 - 1e-9)]
    if ends.shape[0] == 0:
        return ends
    keep = np.ones(ends.shape[0], dtype=bool)
    keep[1:] = np.diff(ends) > 1e-9           # each crossing ends two faces' intervals
    return ends[keep]


def line_mismatches(p, model, lines):
    """Breakpoints of the encoded 1D engine along each segment that the 2D faces miss
    (or add), beyond what the polylines' tolerance allows."""
    bad = 0
    for p0, p1 in lines:
        exact = partition_encoded_segment(model, p0, p1, progress=False).breakpoints
        seen = crossings_along(p, p0, p1)
        if exact.shape[0] != seen.shape[0]:
            bad += abs(exact.shape[0] - seen.shape[0])
            continue
        bad += int(np.count_nonzero(np.abs(exact - seen) > 200 * TOL))
    return bad


def pattern_mismatches(p, model, pts):
    states, dist = torch_states(model, pts)
    idx = p.locate(pts)
    far = dist > 50 * TOL
    wrong = (idx < 0) | (p.patterns[idx] != states).any(axis=1)
    missing = {s.tobytes() for s in np.unique(states, axis=0)} - {s.tobytes() for s in p.patterns}
    return int(np.count_nonzero(wrong & far)), len(missing), far.mean()


LINES = [((0.0, y), (1.0, y)) for y in (0.1373, 0.5021, 0.8817)] + \
        [((x, 0.0), (x, 1.0)) for x in (0.2291, 0.6659)]


@pytest.fixture(scope="module")
def two_layer():
    model = pe_mlp(2, [10, 10, 1], 3)
    return model, regions.partition(model, ((0, 1), (0, 1)))


def test_rows_and_columns_cross_where_the_encoded_1d_engine_breaks(two_layer):
    model, p = two_layer
    assert isinstance(p, EncodedPartition2D) and len(p) > 50
    assert line_mismatches(p, model, LINES) == 0


def test_every_grid_pattern_is_a_face_and_locate_agrees_with_torch(two_layer):
    model, p = two_layer
    wrong, missing, far = pattern_mismatches(p, model, grid(300))
    assert wrong == 0 and missing == 0 and far > 0.9
    assert p.n_patterns <= len(p) and p.pattern_id.shape == (len(p),)
    same = p.pattern_id[:, None] == p.pattern_id[None, :]
    assert np.array_equal(same, (p.patterns[:, None] == p.patterns[None, :]).all(axis=2))
    assert np.array_equal(p.locate(np.array([[1.5, 0.5], [-0.1, 0.2]])), [-1, -1])


def test_areas_bracket_the_domain_and_match_pixel_counts(two_layer):
    model, p = two_layer
    lo, hi = p.measure_bounds.T
    assert np.all(lo <= p.measure) and np.all(p.measure <= hi)
    assert lo.sum() <= 1.0 <= hi.sum()
    assert abs(p.measure.sum() - 1.0) < 1e-9
    # per pattern: pixel fraction of a 600^2 grid against the faces' area, within the
    # pixels the pattern's boundary passes through
    n = 600
    states, _ = torch_states(model, grid(n))
    keys, counts = np.unique(states, axis=0, return_counts=True)
    perim = np.zeros(len(keys))
    area = np.zeros(len(keys))
    index = {k.tobytes(): i for i, k in enumerate(keys)}
    for r in range(len(p)):
        i = index.get(p.patterns[r].tobytes())
        if i is not None:
            area[i] += p.measure[r]
            perim[i] += p.geoms[r].length
    err = np.abs(counts / n ** 2 - area)
    assert np.all(err <= perim * np.sqrt(2) / n + 4 / n ** 2)


def test_euler_relation_of_the_boundary_graph(two_layer):
    _, p = two_layer
    lines = shapely.line_merge(shapely.union_all(shapely.boundary(np.asarray(p.geoms, dtype=object))))
    parts = list(shapely.get_parts(lines))
    ends = np.concatenate([np.asarray(g.coords)[[0, -1]] for g in parts])
    keys, inv = np.unique(np.round(ends, 12), axis=0, return_inverse=True)
    V, E = len(keys), len(parts)
    import scipy.sparse as sp
    import scipy.sparse.csgraph as csg

    a, b = inv.reshape(-1, 2).T
    C = csg.connected_components(sp.coo_matrix((np.ones(E), (a, b)), shape=(V, V)))[0]
    # V - E + F = 1 + C with F counting the unbounded face
    assert V - E + len(p) == C


def test_one_layer_face_counts_match_connected_components_of_a_fine_sign_grid():
    model = pe_mlp(2, [4, 1], 11)
    p = regions.partition(model, ((0, 1), (0, 1)))
    from scipy import ndimage

    n = 1500
    states, _ = torch_states(model, grid(n))
    code = states.astype(np.int64) @ (1 << np.arange(states.shape[1]))
    code = code.reshape(n, n)
    total = 0
    for v in np.unique(code):
        # 8-connected: a pixel touching its face only diagonally (at a crossing of two
        # curves) is not a face of its own; two faces of one pattern touch at a point
        # only at a tangency, which a random network does not have
        total += ndimage.label(code == v, structure=np.ones((3, 3)))[1]
    # the count is meaningful: every face is several pixels wide
    assert p.inradius.min() > 5 / n
    assert len(p) == total


def test_leaky_relu_and_a_polygon_domain():
    model = pe_mlp(2, [6, 6, 1], 5, leaky=0.1)
    poly = shapely.Polygon([(0.1, 0.1), (0.9, 0.2), (0.5, 0.5), (0.8, 0.9), (0.15, 0.7)])
    p = regions.partition(model, poly)
    assert abs(p.measure.sum() - poly.area) < 1e-9
    pts = grid(200)
    inside = shapely.contains_xy(poly, pts[:, 0], pts[:, 1])
    wrong, _, _ = pattern_mismatches(p, model, pts[inside])
    assert wrong == 0
    assert np.all(p.locate(pts[~shapely.intersects_xy(poly, pts[:, 0], pts[:, 1])]) == -1)
    # outputs from the per-face maps equal the forward pass away from boundaries
    _, dist = torch_states(model, pts[inside])
    far = pts[inside][dist > 50 * TOL]
    with torch.no_grad():
        ref = model(torch.tensor(far)).numpy()
    np.testing.assert_allclose(p.evaluate(far), ref, atol=1e-9)


def test_adjacent_faces_differ_in_the_flipping_neuron(two_layer):
    model, p = two_layer
    pairs = p.adjacent_pairs()
    diff = p.patterns[pairs[:, 0]] != p.patterns[pairs[:, 1]]
    assert np.all(pairs[:, 2] >= 0)
    assert np.all(diff[np.arange(len(pairs)), pairs[:, 2]])
    assert np.all(diff.sum(axis=1) == 1)
    # horizontally neighbouring pixels whose torch patterns differ in one bit (the step
    # between them crosses one curve, once) lie in adjacent faces
    n = 200
    pts = grid(n)
    idx = p.locate(pts).reshape(n, n)
    states, dist = torch_states(model, pts)
    states = states.reshape(n, n, -1)
    d = dist.reshape(n, n)
    one_bit = ((states[:, :-1] != states[:, 1:]).sum(axis=2) == 1).ravel()
    clear = (np.minimum(d[:, :-1], d[:, 1:]) > 50 * TOL).ravel()
    left, right = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    sel = one_bit & clear
    assert sel.sum() > 100
    A = p.adjacency()
    assert np.all(np.asarray(A[left[sel], right[sel]]).ravel())


def test_a_saddle_exactly_on_a_grid_corner_is_located():
    # z = cos(2 pi x) - cos(2 pi y): zero set the two diagonals, crossing at the saddle
    # (0.5, 0.5), where z = 0 exactly and both derivatives vanish
    p = regions.partition(one_layer([[0, 0, 0, 0, 0, 1, 0, -1]], [0.0]), ((0, 1), (0, 1)))
    assert len(p) == 4
    np.testing.assert_allclose(p.measure, 0.25, atol=1e-12)
    spots = np.array([s[:2] for s in p.stats["corner_zeros"]])
    assert np.min(np.hypot(*(spots - 0.5).T)) < 1e-12
    assert p.patterns[p.locate(np.array([[0.1, 0.5], [0.5, 0.1]])), 0].tolist() == [True, False]


def test_tangent_curves_give_the_true_faces_and_are_located():
    # an oval sin(pi x) + sin(pi y) = 1.5 touching the lines sin(pi y) = 0.5 (y = 1/6, 5/6)
    # at (0.5, 1/6) and (0.5, 5/6): the band between the lines is cut in two by the oval
    p = regions.partition(one_layer([[1, 0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0]],
                                    [-1.5, -0.5]), ((0, 1), (0, 1)))
    assert sorted(map(tuple, p.patterns.astype(int).tolist())) == \
        [(0, 0), (0, 0), (0, 1), (0, 1), (1, 1)]
    spots = np.array([s[:2] for s in p.stats["near_tangencies"]])
    for target in ((0.5, 1 / 6), (0.5, 5 / 6)):
        assert np.min(np.hypot(*(spots - target).T)) < 1e-3


def test_an_oval_smaller_than_a_pixel_is_a_face():
    eps = 1e-6               # z = sin(pi x) + sin(pi y) - 2 + eps: radius sqrt(2 eps) / pi
    p = regions.partition(one_layer([[1, 0, 1, 0, 0, 0, 0, 0]], [-2 + eps]), ((0, 1), (0, 1)))
    assert len(p) == 2
    inner = p.locate(np.array([[0.5, 0.5]]))[0]
    assert p.patterns[inner, 0] and not p.patterns[1 - inner, 0]
    lo, hi = p.measure_bounds[inner]
    assert lo <= 2 * eps / np.pi <= hi            # the oval's area to second order
    # a 1000^2 grid of forward passes does not see it
    states, _ = torch_states(one_layer([[1, 0, 1, 0, 0, 0, 0, 0]], [-2 + eps]), grid(1000))
    assert not states.any()


def test_random_fourier_features_are_refused_saying_why():
    model = torch.nn.Sequential(regions.RandomFourierFeatures(2, 4, 1.0, seed=0),
                                torch.nn.Linear(8, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="separable.*partition_encoded_segment"):
        regions.partition(model, ((0, 1), (0, 1)))
    with pytest.raises(ValueError, match="separable"):
        sample_faces(model, [[0.5, 0.5]])


def test_bad_tolerances_and_domains_are_refused():
    model = pe_mlp(1, [3, 1], 0)
    net = regions.as_network(model)
    with pytest.raises(ValueError, match="tol must be a positive"):
        partition_encoded_plane(net, regions.Box((0, 1), (0, 1)), tol=0.0)
    with pytest.raises(ValueError, match="not separable"):
        regions.partition(model, regions.Plane(origin=[0, 0], directions=[[1, 1], [1, -1]]))
    p = regions.partition(model, ((0, 1), (0, 1)))
    with pytest.raises(ValueError, match="recompute"):
        p.polygons(tol=1e-9)
    with pytest.raises(ValueError, match=r"\(m, 2\)"):
        p.locate(np.zeros(3))


def test_sample_faces_equal_the_whole_partition_faces(two_layer):
    model, p = two_layer
    rng = np.random.default_rng(1)
    pts = rng.random((60, 2))
    s = sample_faces(model, pts, tile=1 / 8)
    idx = p.locate(pts)
    assert np.array_equal(s.patterns, p.patterns[idx])
    lo = np.maximum(s.area_bounds[:, 0], p.measure_bounds[idx, 0])
    hi = np.minimum(s.area_bounds[:, 1], p.measure_bounds[idx, 1])
    assert np.all(lo <= hi)                                  # the intervals overlap
    np.testing.assert_allclose(s.distance, p.distance_to_boundary(pts), atol=4 * TOL)
    np.testing.assert_allclose(s.inradius, p.inradius[idx], atol=4 * TOL)
    # torch: the circle of radius distance - 2 tol around a sample stays in its pattern
    # (away from the domain's edge, which is not a region boundary), and the nearest
    # boundary point seen 2 tol further out is in another pattern
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], 1)
    for i in range(len(pts)):
        r = s.distance[i] - 2 * TOL
        circle = pts[i] + r * ring
        inside = np.all((circle > 0) & (circle < 1), axis=1)
        states, _ = torch_states(model, circle[inside])
        assert np.all(states == s.patterns[i])
        near = shapely.ops.nearest_points(shapely.Point(pts[i]), s.polygons[i].boundary)[1]
        q = np.asarray(near.coords[0])
        if 0 < q[0] < 1 and 0 < q[1] < 1:
            beyond = q + (q - pts[i]) / np.linalg.norm(q - pts[i]) * 2 * TOL
            assert not np.array_equal(torch_states(model, beyond[None])[0][0], s.patterns[i])


def test_the_checks_fail_when_a_curve_is_dropped(monkeypatch, two_layer):
    """The independent checks above see a missing neuron: drop neuron 2's curve in
    layer 1 and they report mismatches."""
    model, _ = two_layer
    split = engine2d._split_by_shared_neuron

    def dropping(geoms, a, b, c, ax, ay, tol, scale, domain, curves, layer, k, stats):
        if layer == 1 and k == 2:
            return list(geoms), np.arange(len(geoms)), np.ones(len(geoms), dtype=bool)
        return split(geoms, a, b, c, ax, ay, tol, scale, domain, curves, layer, k, stats)

    monkeypatch.setattr(engine2d, "_split_by_shared_neuron", dropping)
    broken = regions.partition(model, ((0, 1), (0, 1)))
    assert line_mismatches(broken, model, LINES) > 0
    wrong, missing, _ = pattern_mismatches(broken, model, grid(150))
    assert wrong > 0 and missing > 0


def test_area_intervals_hold_an_oval_area_integrated_independently():
    # z = sin(pi x) + sin(pi y) - c: for each x the oval's y-extent is
    # 1 - 2 asin(c - sin(pi x)) / pi where c - sin(pi x) <= 1
    from scipy.integrate import quad

    c = 1.3
    p = regions.partition(one_layer([[1, 0, 1, 0, 0, 0, 0, 0]], [-c]), ((0, 1), (0, 1)))
    x_in = np.arcsin(c - 1) / np.pi
    exact, _ = quad(lambda x: 1 - 2 * np.arcsin(c - np.sin(np.pi * x)) / np.pi, x_in, 1 - x_in,
                    epsabs=1e-14, epsrel=1e-14)
    assert len(p) == 2
    inner = int(np.flatnonzero(p.patterns[:, 0])[0])
    lo, hi = p.measure_bounds[inner]
    assert lo <= exact <= hi and hi - lo < 1e-4
    lo, hi = p.measure_bounds[1 - inner]
    assert lo <= 1 - exact <= hi


def test_raw_coordinates_beside_the_encoding():
    torch.manual_seed(2)
    pe = regions.PositionalEncoding(2, in_features=2, include_input=True)
    model = torch.nn.Sequential(pe, torch.nn.Linear(pe.out_features, 6), torch.nn.ReLU(),
                                torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1)).double()
    p = regions.partition(model, ((-0.5, 1.0), (0.0, 2.0)))
    assert abs(p.measure.sum() - 3.0) < 1e-9
    wrong, missing, _ = pattern_mismatches(p, model, 1.5 * grid(200) * [1, 4 / 3] + [-0.5, 0])
    assert wrong == 0 and missing == 0
    assert line_mismatches(p, model, [((-0.5, 0.7311), (1.0, 0.7311)), ((0.3137, 0.0), (0.3137, 2.0))]) == 0


def test_sample_faces_in_groups_on_two_workers_are_the_same_faces(two_layer):
    # the samples split into groups of neighbours run in two processes; duplicates,
    # samples sharing a face and samples on the domain's edge and corner included
    model, p = two_layer
    rng = np.random.default_rng(2)
    pts = np.concatenate([rng.random((40, 2)), [[0.0, 0.0], [1.0, 0.5], [0.5, 0.0]]])
    pts = np.concatenate([pts, pts[:5]])
    one = sample_faces(model, pts)
    two = sample_faces(model, pts, workers=2)
    idx = p.locate(pts)
    for s in (one, two):
        assert np.array_equal(s.patterns, p.patterns[idx])
        lo = np.maximum(s.area_bounds[:, 0], p.measure_bounds[idx, 0])
        hi = np.minimum(s.area_bounds[:, 1], p.measure_bounds[idx, 1])
        assert np.all(lo <= hi)
    # each sample's face holds it; every face is cut only while it holds a sample, so
    # at most one face per distinct sample was made
    assert all(g.distance(shapely.Point(x)) <= TOL for g, x in zip(two.polygons, pts))
    assert one.stats["faces"] <= len(np.unique(pts, axis=0)) and two.stats["windows"] == 2


def test_sample_faces_on_a_non_convex_domain_and_outside_it():
    # a U: a window around a sample in one arm also meets the other arm
    model = pe_mlp(2, [6, 1], 8)
    u = shapely.Polygon([(0, 0), (1, 0), (1, 1), (0.7, 1), (0.7, 0.3), (0.3, 0.3), (0.3, 1), (0, 1)])
    p = regions.partition(model, u)
    pts = np.array([[0.15, 0.8], [0.85, 0.8], [0.5, 0.1], [0.5, 0.6], [1.5, 0.5]])
    s = sample_faces(model, pts, domain=u, tile=0.25)
    idx = p.locate(pts)
    assert idx[3] == -1 and idx[4] == -1 and s.polygons[3] is None and np.isnan(s.area[4])
    ok = idx >= 0
    assert np.array_equal(s.patterns[ok], p.patterns[idx[ok]])
    np.testing.assert_allclose(s.area[ok], p.measure[idx[ok]], atol=1e-6)


def test_the_cli_enumerates_an_encoded_2d_model(tmp_path, capsys):
    from regions.cli import main

    model = pe_mlp(1, [5, 1], 4)
    path = tmp_path / "pe.pt"
    torch.save(model.state_dict(), path)
    assert main(["enumerate", str(path), "--domain", "0,1,0,1", "--json", "--no-progress"]) == 0
    import json

    s = json.loads(capsys.readouterr().out)
    assert s["regions"] == len(regions.partition(model, ((0, 1), (0, 1)))) and s["dim"] == 2
    assert abs(s["area"]["sum"] - 1.0) < 1e-9
    # .npz, GeoJSON and a picture are written
    assert main(["enumerate", str(path), "--domain", "0,1,0,1", "--no-progress",
                 "--out", str(tmp_path / "p.npz"), "--plot", str(tmp_path / "p.png")]) == 0
    assert len(regions.load(tmp_path / "p.npz")) == s["regions"]
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert main(["enumerate", str(path), "--domain", "0,1,0,1", "--no-progress",
                 "--out", str(tmp_path / "p.geojson")]) == 0
    gj = json.loads((tmp_path / "p.geojson").read_text())
    assert len(gj["features"]) == s["regions"]


def test_geojson_of_curved_faces_keeps_their_polygons_holes_and_bounds(tmp_path):
    import json

    from regions.io import to_geojson

    # an oval inside a band: the band's face has a hole
    p = regions.partition(one_layer([[1, 0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0]],
                                    [-1.7, -0.3]), ((0, 1), (0, 1)))
    assert any(len(g.interiors) for g in p.geoms)
    gj = to_geojson(p, tmp_path / "p.geojson")
    assert json.loads((tmp_path / "p.geojson").read_text()) == json.loads(json.dumps(gj))
    assert not list(tmp_path.glob(".*.tmp"))
    assert gj["properties"]["boundary_tolerance"] == p.tol
    total = 0.0
    for r, f in enumerate(gj["features"]):
        g = shapely.geometry.shape(f["geometry"])
        assert g.equals_exact(p.geoms[r], 0.0) or shapely.equals(g, p.geoms[r])
        rings = f["geometry"]["coordinates"]
        assert len(rings) == 1 + len(p.geoms[r].interiors)
        # RFC 7946: exterior counter-clockwise, holes clockwise
        assert shapely.LinearRing(rings[0]).is_ccw
        assert all(not shapely.LinearRing(h).is_ccw for h in rings[1:])
        lo, hi = f["properties"]["area_bounds"]
        assert lo <= f["properties"]["area"] <= hi
        assert f["properties"]["area"] == pytest.approx(g.area, rel=1e-12)
        # the pattern as an integer, bit k for neuron k, independently of pattern_hex
        assert int(f["properties"]["pattern"], 16) == sum(int(b) << k for k, b in
                                                           enumerate(p.patterns[r]))
        assert f["properties"]["pattern_id"] == p.pattern_id[r]
        total += g.area
    assert abs(total - 1.0) < 1e-9


# --- carried units: residual streams, input skips, max (traced models) --------------

class Coord2D(torch.nn.Module):
    """Issue 13's ``Coord`` in 2D: ``PositionalEncoding(L, in_features=2)``, residual blocks
    and an input skip by concatenation (``torch.cat([h, e], -1)``). With ``plain`` the
    same layers as a chain: no residual sums, and the skip layer sees ``h`` only."""

    def __init__(self, L=2, width=6, blocks=2, plain=False):
        super().__init__()
        nn = torch.nn
        self.enc = regions.PositionalEncoding(L, in_features=2)
        self.inp = nn.Linear(4 * L, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                                  nn.Linear(width, width)) for _ in range(blocks))
        self.skip = nn.Linear(width + 4 * L, width)
        self.out = nn.Linear(width, 1)
        self.plain, self.width = plain, width

    def forward(self, p):
        e = self.enc(p)
        h = torch.relu(self.inp(e))
        for blk in self.blocks:
            h = torch.relu(blk(h) if self.plain else h + blk(h))       # residual
        if self.plain:
            return self.out(torch.relu(self.skip(torch.cat([h, 0 * e], -1))))
        return self.out(torch.relu(self.skip(torch.cat([h, e], -1))))   # input skip


class MaxLeakyPE(torch.nn.Module):
    """A max of pairs after a LeakyReLU layer, and a residual: carried units from
    ``torch.maximum``'s second argument and the residual stream."""

    def __init__(self, L=2):
        super().__init__()
        nn = torch.nn
        self.enc = regions.PositionalEncoding(L, in_features=2)
        self.a, self.b, self.c = nn.Linear(4 * L, 6), nn.Linear(6, 6), nn.Linear(6, 6)
        self.out = nn.Linear(6, 1)

    def forward(self, p):
        h = torch.nn.functional.leaky_relu(self.a(self.enc(p)), 0.2)
        h = h + torch.relu(self.b(h))
        return self.out(torch.maximum(self.c(h), h))


def _small(model, seed, gain=0.35):
    """Float64 weights ~ N(0, gain^2): partitions of a few hundred faces."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for q in model.parameters():
            q.copy_(torch.randn_like(q) * gain)
    return model.double()


CARRIED_2D = {"Coord: residual blocks + input skip": lambda: _small(Coord2D(), 61),
              "LeakyReLU, residual, torch.maximum": lambda: _small(MaxLeakyPE(), 62, 0.6)}


def traced_torch_states(model, pts):
    """The traced forward's activation states at ``pts`` (every activation node's, at the
    pattern positions ``trace`` documents: test_trace's oracle), and each point's smallest
    first-order distance ``|z| / |grad z|`` (torch autograd) to the zero curve of any
    activation node's input."""
    from test_trace import _Recorder, assemble, torch_states as node_states
    from regions.trace import trace

    traced = trace(model)
    states = assemble(traced, node_states(traced, pts), len(pts))
    x = torch.tensor(pts, dtype=torch.float64, requires_grad=True)
    rec = _Recorder(traced.graph_module)
    rec.inputs = {}
    rec.run(x)
    dist = np.full(len(pts), np.inf)
    for name in traced.pattern_index:
        args, _ = rec.inputs[name]
        z = args[0].reshape(len(pts), -1)
        for k in range(z.shape[1]):
            g, = torch.autograd.grad(z[:, k].sum(), x, retain_graph=True)
            d = (z[:, k].abs() / g.norm(dim=1)).detach().numpy()
            # torch.maximum(a, b) is cut where a - b changes sign
            if len(args) > 1 and isinstance(args[1], torch.Tensor):
                w = (z[:, k] - args[1].reshape(len(pts), -1)[:, k])
                g, = torch.autograd.grad(w.sum(), x, retain_graph=True)
                d = (w.abs() / g.norm(dim=1)).detach().numpy()
            dist = np.minimum(dist, d)
    return traced, states, dist


def carried_mismatches(p, model, pts, columns=None):
    """``(wrong, missing, far)``: points farther than ``50 tol`` from every curve whose face's
    pattern is not torch's, torch patterns on ``pts`` that are no face's, and the share of
    far points. ``columns``: which of the partition's pattern columns to compare."""
    _, states, dist = traced_torch_states(model, pts)
    pats = p.patterns if columns is None else p.patterns[:, columns]
    idx = p.locate(pts)
    far = dist > 50 * TOL
    wrong = (idx < 0) | (pats[idx] != states).any(axis=1)
    missing = {q.tobytes() for q in np.unique(states, axis=0)} - {q.tobytes() for q in pats}
    return int(np.count_nonzero(wrong & far)), len(missing), far.mean()


@pytest.fixture(scope="module", params=sorted(CARRIED_2D))
def carried(request):
    model = CARRIED_2D[request.param]()
    return model, regions.partition(model, ((0.0, 1.0), (0.0, 1.0)))


def test_a_2d_encoded_model_with_carried_units_matches_torch(carried):
    model, p = carried
    net = regions.as_network(model)
    assert net.n_carried > 0 and isinstance(p, EncodedPartition2D) and len(p) > 30
    assert p.patterns.shape[1] == net.n_hidden          # kink units only
    rng = np.random.default_rng(7)
    pts = rng.random((400, 2))
    _, states, dist = traced_torch_states(model, pts)
    far = dist > 50 * TOL
    assert far.mean() > 0.9
    idx = p.locate(pts[far])
    assert np.all(idx >= 0)
    assert np.array_equal(p.patterns[idx], states[far])
    with torch.no_grad():
        ref = model(torch.as_tensor(pts[far])).numpy()
    np.testing.assert_allclose(p.evaluate(pts[far]), ref, rtol=1e-9,
                               atol=1e-9 * np.abs(ref).max())
    # every pattern torch shows on a dense grid is a face's
    wrong, missing, _ = carried_mismatches(p, model, grid(150))
    assert wrong == 0 and missing == 0
    # areas: the intervals hold the polygons' areas and bracket the domain's
    lo, hi = p.measure_bounds.T
    assert np.all(lo <= p.measure) and np.all(p.measure <= hi)
    assert lo.sum() <= 1.0 <= hi.sum() and abs(p.measure.sum() - 1.0) < 1e-9
    # every arc between two faces is a kink unit's curve: a cut along a carried unit
    # would leave two neighbours with one pattern
    assert np.all(p.adjacent_pairs()[:, 2] >= 0)


def test_sample_faces_of_a_model_with_carried_units_are_the_partition_faces(carried):
    model, p = carried
    pts = np.random.default_rng(8).random((40, 2))
    s = sample_faces(model, pts, tile=1 / 4)
    idx = p.locate(pts)
    assert np.array_equal(s.patterns, p.patterns[idx])
    assert np.all(np.maximum(s.area_bounds[:, 0], p.measure_bounds[idx, 0])
                  <= np.minimum(s.area_bounds[:, 1], p.measure_bounds[idx, 1]))
    _, states, dist = traced_torch_states(model, pts)
    far = dist > 50 * TOL
    assert np.array_equal(s.patterns[far], states[far])


def test_the_torch_oracle_fails_when_carried_units_are_dropped_or_cut():
    # the checks above can fail: the plain chain of the same layers (residual sums and the
    # skip of e dropped) and the same network with its carried units read as ReLU units
    # (cut, and rectified) give faces whose patterns are not the traced forward's
    model = CARRIED_2D["Coord: residual blocks + input skip"]()
    pts = grid(120)
    plain = Coord2D(plain=True).double()
    plain.load_state_dict(model.state_dict())
    dropped = regions.partition(plain, ((0.0, 1.0), (0.0, 1.0)))
    assert regions.as_network(plain).n_carried == 0
    assert dropped.patterns.shape[1] == regions.as_network(model).n_hidden
    wrong, missing, _ = carried_mismatches(dropped, model, pts)
    assert wrong > 100 and missing > 10
    net = regions.as_network(model)
    cut = regions.Network(net.weights, net.biases, net.slopes, net.encoding, net.names)
    assert cut.n_hidden == net.n_hidden + net.n_carried
    q = partition_encoded_plane(cut, regions.Box((0, 1), (0, 1)))
    kinks = np.concatenate([net.kink_mask(l) for l in range(len(net.widths))])
    wrong, missing, _ = carried_mismatches(q, model, pts, columns=kinks)
    assert len(q) > len(regions.partition(model, ((0.0, 1.0), (0.0, 1.0))))
    assert wrong > 100 and missing > 10


def test_an_encoded_2d_partition_with_carried_units_round_trips(carried, tmp_path):
    # the file stores the carried units (format version 2); load checks the faces'
    # patterns against the network with them, so it must read them back as carried
    _, p = carried
    q = regions.load(regions.save(p, tmp_path / "p.npz"))
    assert q.network.n_carried == p.network.n_carried > 0 and len(q) == len(p)
    np.testing.assert_array_equal(q.patterns, p.patterns)
    np.testing.assert_array_equal(q.measure, p.measure)


# --- files: save / load round trip, and what load refuses ---------------------------

def _saved(tmp_path):
    p = regions.partition(pe_mlp(2, [12, 12, 1], 0), ((0, 1), (0, 1)))
    path = regions.save(p, tmp_path / "pe2d")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return p, path, arrays


def _rewritten(tmp_path, arrays, **changes):
    out = tmp_path / "edited.npz"
    np.savez(out, **{**arrays, **changes})
    return out


def test_an_encoded_2d_partition_round_trips_through_a_file(tmp_path):
    p, path, _ = _saved(tmp_path)
    q = regions.load(path)
    assert type(q) is EncodedPartition2D and len(q) == len(p) and q.tol == p.tol
    np.testing.assert_array_equal(q.packed_patterns, p.packed_patterns)
    np.testing.assert_array_equal(q.measure, p.measure)
    pts = np.random.default_rng(1).random((2000, 2))
    np.testing.assert_array_equal(q.locate(pts), p.locate(pts))
    np.testing.assert_array_equal(q.evaluate(pts), p.evaluate(pts))
    # and the loaded faces still carry torch's patterns (not only the saved bits)
    assert pattern_mismatches(q, pe_mlp(2, [12, 12, 1], 0), pts)[:2] == (0, 0)


def test_load_refuses_edited_encoded_2d_files(tmp_path):
    p, path, a = _saved(tmp_path)
    swapped = a["packed_patterns"].copy()
    i, j = np.argsort(-p.measure)[:2]                   # two large faces: points far inside
    swapped[[i, j]] = swapped[[j, i]]
    with pytest.raises(ValueError, match="packed_patterns.*pattern of another region"):
        regions.load(_rewritten(tmp_path, a, packed_patterns=swapped))
    off = a["geom.wkb_offsets"]
    # the last face dropped: the face count no longer matches packed_patterns
    with pytest.raises(ValueError, match="geom.wkb_offsets.*shape"):
        regions.load(_rewritten(tmp_path, a, **{"geom.wkb": a["geom.wkb"][:off[-2]],
                                                "geom.wkb_offsets": off[:-1]}))
    # a face replaced by a copy of another: the areas no longer tile the square
    big = int(np.argmax(p.measure))
    blobs = [a["geom.wkb"][off[r]:off[r + 1]] for r in range(len(p))]
    blobs[int(np.argmin(p.measure))] = blobs[big]
    sizes = np.r_[0, np.cumsum([b.size for b in blobs])]
    with pytest.raises(ValueError, match="cover .* but the domain measures"):
        regions.load(_rewritten(tmp_path, a, **{"geom.wkb": np.concatenate(blobs),
                                                "geom.wkb_offsets": sizes.astype(np.int64),
                                                "measure": np.array([shapely.from_wkb(b.tobytes()).area for b in blobs])}))
    # a ring that claims 10^9 points is refused before the WKB parser sees it
    crafted = blobs[0].copy()
    crafted[9:13] = np.frombuffer(np.uint32(10 ** 9).tobytes(), dtype=np.uint8)
    blobs2 = [crafted] + [a["geom.wkb"][off[r]:off[r + 1]] for r in range(1, len(p))]
    sizes2 = np.r_[0, np.cumsum([b.size for b in blobs2])].astype(np.int64)
    with pytest.raises(ValueError, match="face 0 is truncated"):
        regions.load(_rewritten(tmp_path, a, **{"geom.wkb": np.concatenate(blobs2),
                                                "geom.wkb_offsets": sizes2}))
    with pytest.raises(ValueError, match="geom.tol"):
        regions.load(_rewritten(tmp_path, a, **{"geom.tol": np.float64(0.5)}))
    with pytest.raises(ValueError, match="domain.kind.*'plane'.*accepted: box, polygon"):
        regions.load(_rewritten(tmp_path, a, **{"domain.kind": np.asarray("plane")}))


def _crossings_of(lines, p0, p1):
    """Parameters t in [0, 1] where the polylines cross the segment p0 -> p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = int(np.argmax(np.abs(p1 - p0)))
    hit = shapely.intersection(lines, shapely.LineString([p0, p1]))
    pts = shapely.get_coordinates(hit)
    t = np.sort((pts[:, axis] - p0[axis]) / (p1[axis] - p0[axis]))
    keep = np.ones(t.shape[0], dtype=bool)
    keep[1:] = np.diff(t) > 1e-9         # a crossing on a face boundary is found by both faces
    return t[keep]


def test_level_set_of_an_oval_is_within_tol_of_the_true_curve():
    # one face (the neuron is always on): output sin(pi x) + sin(pi y); its 1.5-level is
    # the closed curve y = asin(1.5 - sin(pi x)) / pi and its mirror y -> 1 - y
    lin = torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0, 1, 0]]))
        lin.bias.fill_(5.0)
    out = torch.nn.Linear(1, 1).double()
    with torch.no_grad():
        out.weight.fill_(1.0)
        out.bias.fill_(-5.0)
    model = torch.nn.Sequential(regions.PositionalEncoding(1, in_features=2), lin,
                                torch.nn.ReLU(), out)
    p = regions.partition(model, ((0, 1), (0, 1)))
    assert len(p) == 1
    lines, spots = p.level_set(1.5, spots=True)
    assert len(lines.geoms) == 1 and lines.geoms[0].is_ring and not spots["corner_zeros"]
    x = np.linspace(0, 1, 4001)
    s = 1.5 - np.sin(np.pi * x)
    x, s = x[(s >= 0) & (s <= 1)], s[(s >= 0) & (s <= 1)]
    y = np.arcsin(s) / np.pi
    true = np.concatenate([np.stack([x, y], 1), np.stack([x, 1 - y], 1)])
    # Hausdorff: the true curve near the polylines, and the polylines near the curve
    assert shapely.distance(shapely.points(true), lines).max() <= TOL * (1 + 1e-6)
    v = shapely.get_coordinates(lines)
    f = np.sin(np.pi * v[:, 0]) + np.sin(np.pi * v[:, 1]) - 1.5
    grad = np.pi * np.hypot(np.cos(np.pi * v[:, 0]), np.cos(np.pi * v[:, 1]))
    assert np.max(np.abs(f) / grad) <= 1e-10               # vertices are solved points
    # the enclosed area against quadrature of the same curve
    from scipy.integrate import quad

    lo, hi = np.arcsin(0.5) / np.pi, 1 - np.arcsin(0.5) / np.pi
    area, _ = quad(lambda t: 1 - 2 * np.arcsin(1.5 - np.sin(np.pi * t)) / np.pi, lo, hi)
    ring = shapely.Polygon(lines.geoms[0].coords)
    assert abs(ring.area - area) <= TOL * ring.length * 1.01


def test_level_set_crosses_rows_where_the_encoded_1d_level_set_does(two_layer):
    model, p = two_layer
    with torch.no_grad():
        value = float(np.median(model(torch.tensor(grid(64))).numpy()))
    lines = p.level_set(value)
    assert len(lines.geoms) > 0
    total = 0
    for p0, p1 in LINES:
        exact = partition_encoded_segment(model, p0, p1, progress=False).level_set(value)
        seen = _crossings_of(lines, p0, p1)
        assert seen.shape == exact.shape, (p0, p1, seen, exact)
        np.testing.assert_allclose(seen, exact, atol=200 * TOL)
        total += exact.shape[0]
    assert total >= 4
    # and every sign change of torch's output between grid neighbours is crossed
    n = 48
    g = (np.arange(n) + 0.5) / n
    X, Y = np.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        sign = model(torch.tensor(np.stack([X.ravel(), Y.ravel()], 1))).numpy()[:, 0] > value
    sign = sign.reshape(n, n)
    i, j = np.nonzero(sign[1:, :] != sign[:-1, :])
    steps = shapely.linestrings(np.stack([np.stack([g[i], g[j]], 1),
                                          np.stack([g[i + 1], g[j]], 1)], 1))
    assert steps.shape[0] > 0
    assert np.all(shapely.distance(steps, lines) <= TOL)


def test_level_set_checks_its_arguments_and_finds_nothing_beyond_the_range(two_layer):
    model, p = two_layer
    with torch.no_grad():
        top = float(model(torch.tensor(grid(64))).max())
    assert p.level_set(top + 10.0).is_empty
    for bad in (1, -1, 0.5, True):
        with pytest.raises(ValueError, match="out of range"):
            p.level_set(0.0, output=bad)
    with pytest.raises(ValueError, match="finite"):
        p.level_set(float("nan"))


def _wide_faces_match(p, q, width):
    """Every face of ``p`` with an inradius above ``width`` is one face of ``q`` with its
    pattern and an area within both faces' bounds, and the other way round."""
    for a, b in ((p, q), (q, p)):
        wide = np.flatnonzero(a.inradius > width)
        pts = np.array([shapely.maximum_inscribed_circle(a.geoms[r], a.tol).coords[0]
                        for r in wide])
        idx = b.locate(pts)
        assert np.all(idx >= 0) and np.unique(idx).shape[0] == wide.shape[0]
        np.testing.assert_array_equal(b.patterns[idx], a.patterns[wide])
        lo = np.maximum(a.measure_bounds[wide, 0], b.measure_bounds[idx, 0])
        hi = np.minimum(a.measure_bounds[wide, 1], b.measure_bounds[idx, 1])
        assert np.all(lo <= hi)
    return wide.shape[0]


def test_tiles_merge_into_the_faces_of_one_run(two_layer):
    from concurrent.futures import ThreadPoolExecutor

    from regions.encoded.tiles import partition_tiles

    model, p = two_layer
    q = partition_tiles(model, tiles=(3, 2), workers=1)
    assert type(q) is EncodedPartition2D and q.stats["tiles"] == 6
    assert q.stats["tile_faces"] > len(q)                  # faces were cut and merged
    assert len(q) == len(p)
    assert _wide_faces_match(p, q, 10 * TOL) > 0.9 * len(p)
    assert abs(q.measure.sum() - 1.0) < 1e-9
    # the merged faces still carry torch's patterns, and the rows cross where 1D says
    pts = np.random.default_rng(2).random((3000, 2))
    assert pattern_mismatches(q, model, pts)[:2] == (0, 0)
    assert line_mismatches(q, model, LINES) == 0
    # any executor with submit; a non-convex domain cut into tile parts
    poly = shapely.Polygon([(0, 0), (1, 0), (1, 1), (0.5, 0.4), (0, 1)])
    with ThreadPoolExecutor(2) as pool:
        r = partition_tiles(model, poly, tiles=4, executor=pool)
    s = regions.partition(model, poly)
    assert len(r) == len(s) and abs(r.measure.sum() - poly.area) < 1e-9
    _wide_faces_match(s, r, 10 * TOL)


def test_tiles_without_merging_would_be_too_many_faces(monkeypatch, two_layer):
    from regions.encoded import tiles

    model, p = two_layer
    monkeypatch.setattr(tiles, "_merge", lambda geoms, *a: np.arange(len(geoms)))
    q = tiles.partition_tiles(model, tiles=(3, 2), workers=1)
    assert len(q) > len(p)
    with pytest.raises(AssertionError):
        _wide_faces_match(p, q, 10 * TOL)


def test_tiles_in_worker_processes_and_bad_tiles():
    from regions.encoded.tiles import partition_tiles

    model = pe_mlp(1, [6, 1], 5)
    q = partition_tiles(model, tiles=(2, 2), workers=2)
    assert len(q) == len(regions.partition(model, ((0, 1), (0, 1))))
    for bad in (0, (2, 0), (1.5, 2), "x", (True, 2), (100, 100)):
        with pytest.raises(ValueError, match="tiles"):
            partition_tiles(model, tiles=bad, workers=1)


def test_progress_shows_a_bar_over_the_neurons(capsys):
    # the bar counts every kink neuron once and ends with the faces' count
    model = pe_mlp(1, [4, 3, 1], 11)
    p = regions.partition(model, ((0, 1), (0, 1)), progress=True)
    err = capsys.readouterr().err
    assert "regions (encoded 2D)" in err and "7/7" in err and f"faces={len(p)}" in err
    regions.partition(model, ((0, 1), (0, 1)), progress=False)
    assert capsys.readouterr().err == ""


def test_sample_faces_refine_to_a_relative_area_tolerance():
    # at a coarse tolerance the small faces' area intervals are wide; rel_tol cuts
    # those faces again at smaller tolerances until each interval is within 2% of
    # its area. The oracle: each refined area lies in the coarse certified interval,
    # and the patterns are the forward pass's (the same faces, finer polylines)
    model = pe_mlp(3, [24, 16, 1], 5)
    pts = np.random.default_rng(4).uniform(0.05, 0.95, (40, 2))
    coarse = sample_faces(model, pts, tol=1e-4)
    width = coarse.area_bounds[:, 1] - coarse.area_bounds[:, 0]
    assert np.sum(width > 0.02 * coarse.area) >= 10, "nothing to refine: the test is vacuous"
    fine = sample_faces(model, pts, tol=1e-4, rel_tol=0.02)
    w = fine.area_bounds[:, 1] - fine.area_bounds[:, 0]
    assert np.all(w <= 0.02 * fine.area) and fine.stats["rel_tol_unmet"] == []
    assert np.all(fine.tol[width > 0.02 * coarse.area] < 1e-4)
    assert np.all(fine.tol[width <= 0.02 * coarse.area] == 1e-4)
    assert np.all((coarse.area_bounds[:, 0] <= fine.area) & (fine.area <= coarse.area_bounds[:, 1]))
    np.testing.assert_array_equal(fine.patterns, coarse.patterns)
    states, _ = torch_states(model, pts)
    assert np.array_equal(fine.patterns, states)
    with pytest.raises(ValueError, match="rel_tol"):
        sample_faces(model, pts, rel_tol=0.0)
