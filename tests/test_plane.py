"""The exact 2D engine against things that do not share its code.

Oracles: float64 forward passes (patterns and outputs at sampled points),
torch forward passes, Euler's formula, areas summing to the domain, the
one-layer count 1 + n + n(n-1)/2, hand-counted degenerate arrangements,
scipy's LP for inradii, and a slow shapely reference that splits polygons
neuron by neuron.
"""
import numpy as np
import pytest
import shapely
import torch
from hypothesis import given, settings, HealthCheck, strategies as st

import regions
from regions.partition import pack_patterns

BOX = ((-3.0, 3.0), (-3.0, 3.0))


def he(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, np.sqrt(2 / a), (b, a)), rng.normal(0, 0.1, b))
            for a, b in zip(sizes[:-1], sizes[1:])]


def check_partition(p, net, n_samples=20000, seed=1):
    """Every property that must hold for any exact 2D partition of a box/polygon."""
    N = regions.as_network(net)
    F, V, E = len(p), p.n_vertices, len(p.edges)
    # tiling: Euler for a bounded planar subdivision, areas sum to the domain
    assert V - E + F == 1
    assert p.measure.sum() == pytest.approx(p.domain.measure, rel=1e-9)
    assert np.all(p.measure > 0)
    # one pattern per region, never twice
    assert len(np.unique(p.packed_patterns, axis=0)) == F
    assert p.stats["errors"] == 0
    # sampled points: their exact pattern is a region's, locate finds it, and
    # the region's affine map reproduces the forward pass
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = p.domain.bounds
    pts = np.column_stack([rng.uniform(x0, x1, n_samples), rng.uniform(y0, y1, n_samples)])
    pts = pts[p.contains(pts)]
    x = p.domain.to_input(pts)
    zs = N.pre_activations(x)
    pat = np.concatenate([z > 0 for z in zs], axis=1)
    # a neuron identically zero on a region reads as +-1e-16 in a forward pass:
    # only compare bits whose value is clearly away from zero
    scale = np.concatenate([np.abs(z).max(axis=0, keepdims=True) + 1.0 for z in zs], axis=1)
    clear = np.abs(np.concatenate(zs, axis=1)) > 1e-9 * scale
    r = p.locate(pts)
    assert np.all(r >= 0)
    assert np.array_equal(p.patterns[r][clear], pat[clear])
    A, c = p.affine
    out = np.einsum("nij,nj->ni", A[r], pts) + c[r]
    ref = N.forward(x)
    assert np.allclose(out, ref, rtol=0, atol=1e-9 * (1 + np.abs(ref).max()))
    # counter-clockwise faces, adjacency symmetric and between different patterns
    adj = p.adjacency()
    assert (adj != adj.T).nnz == 0
    i, j = adj.nonzero()
    assert np.all(np.any(p.packed_patterns[i] != p.packed_patterns[j], axis=1))
    ef = p.edge_faces
    assert np.all(ef[:, 0] >= 0) or np.all((ef >= 0).sum(axis=1) >= 1)
    return pts, r


def test_readme_example():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    p = regions.partition(net, ((-1, 1), (-1, 1)))
    assert p.measure.sum() == pytest.approx(4.0)
    assert p.locate([[0.1, 0.2]]).shape == (1,)
    pts, r = check_partition(p, net)
    # the affine map agrees with torch itself (not only with our numpy forward)
    with torch.no_grad():
        y = net(torch.tensor(pts, dtype=torch.float32)).double().numpy()
    A, c = p.affine
    assert np.allclose(np.einsum("nij,nj->ni", A[r], pts) + c[r], y, atol=1e-5)


@pytest.mark.parametrize("sizes,seed", [([2, 8, 1], 0), ([2, 16, 16, 1], 1), ([2, 32, 32, 32, 1], 2),
                                        ([2, 5, 7, 3, 2], 3), ([2, 64, 64, 1], 4)])
def test_random_he_networks(sizes, seed):
    net = he(sizes, seed)
    check_partition(regions.partition(net, BOX), net)


def test_one_layer_general_position_count():
    rng = np.random.default_rng(5)
    n = 12
    W = rng.normal(size=(n, 2))
    pts = rng.uniform(-0.5, 0.5, (n, 2))
    b = -np.einsum("ij,ij->i", W, pts)          # line i passes through pts[i]
    # a box that holds every pairwise intersection
    inter = []
    for i in range(n):
        for j in range(i + 1, n):
            inter.append(np.linalg.solve(W[[i, j]], -b[[i, j]]))
    R = np.abs(inter).max() + 1.0
    net = [(W, b), (np.ones((1, n)), np.zeros(1))]
    p = regions.partition(net, ((-R, R), (-R, R)))
    assert len(p) == 1 + n + n * (n - 1) // 2
    check_partition(p, net)


def _one_layer(W, b):
    W = np.asarray(W, float)
    return [(W, np.asarray(b, float)), (np.ones((1, W.shape[0])), np.zeros(1))]


@pytest.mark.parametrize("W,b,expected", [
    # duplicate, scaled and negated duplicates: one line
    ([[1, 0], [1, 0], [2, 0], [-1, 0]], [0, 0, 0, 0], 2),
    # zero rows and constant neurons never cut
    ([[0, 0], [0, 0], [1, 1]], [0, 1, 0], 2),
    # three concurrent lines through the origin
    ([[1, 0], [0, 1], [1, 1]], [0, 0, 0], 6),
    # parallel lines
    ([[1, 0], [1, 0], [1, 0]], [0.5, 0.0, -0.5], 4),
    # a line along the domain's edge x = 1 and one touching the corner (1, 1)
    ([[1, 0], [1, 1], [0, 1]], [-1, -2, 0], 2),
    # a line through an existing vertex (intersection of the first two)
    ([[1, 0], [0, 1], [1, -1], [1, 2]], [0, 0, 0, -0.0], 8),
])
def test_degenerate_one_layer(W, b, expected):
    net = _one_layer(W, b)
    p = regions.partition(net, ((-1, 1), (-1, 1)))
    assert len(p) == expected
    check_partition(p, net, n_samples=4000)


def test_deeper_degenerate_duplicates():
    # a second layer that repeats the first layer's lines (z2 = z1 on the on-side)
    W1 = np.array([[1.0, 0.0], [0.0, 1.0]])
    net = [(W1, np.zeros(2)), (np.eye(2), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))]
    p = regions.partition(net, ((-1, 1), (-1, 1)))
    assert len(p) == 4
    check_partition(p, net, n_samples=4000)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_integer_networks_are_exact(seed, widths):
    """Small integer weights make concurrent, parallel and vertex-hitting lines everywhere."""
    rng = np.random.default_rng(seed)
    sizes = [2] + widths + [1]
    net = [(rng.integers(-2, 3, (b, a)).astype(float), rng.integers(-2, 3, b).astype(float))
           for a, b in zip(sizes[:-1], sizes[1:])]
    check_partition(regions.partition(net, ((-2, 2), (-2, 2))), net, n_samples=3000, seed=seed)


def _reference_regions(net, box):
    """Slow, independent: split shapely polygons neuron by neuron with each
    polygon's own affine pre-activation (from its pattern). Returns areas."""
    (x0, x1), (y0, y1) = box
    polys = [(shapely.box(x0, y0, x1, y1), np.eye(2), np.zeros(2))]  # polygon, M, m: a = M x + m
    big = 10 * max(abs(x0), abs(x1), abs(y0), abs(y1)) + 10
    for W, b in net[:-1]:
        cells = [(poly, W @ M, W @ m + b, []) for poly, M, m in polys]
        for k in range(W.shape[0]):
            nxt = []
            for poly, G, g, bits in cells:
                a, c = G[k], g[k]
                if np.allclose(a, 0):
                    nxt.append((poly, G, g, bits + [c > 0]))
                    continue
                d = np.array([-a[1], a[0]]) / np.linalg.norm(a)
                p0 = -c * a / (a @ a)
                line = shapely.LineString([p0 - big * d, p0 + big * d])
                parts = shapely.get_parts(shapely.ops.split(poly, line))
                for part in parts:
                    if part.area < 1e-12:
                        continue
                    q = np.asarray(part.representative_point().coords[0])
                    nxt.append((part, G, g, bits + [a @ q + c > 0]))
            cells = nxt
        polys = []
        for poly, G, g, bits in cells:
            D = np.asarray(bits, float)
            polys.append((poly, D[:, None] * G, D * g))
    return np.sort([p.area for p, _, _ in polys])


@pytest.mark.parametrize("sizes,seed", [([2, 4, 1], 0), ([2, 5, 4, 1], 1), ([2, 6, 6, 6, 1], 2)])
def test_against_slow_shapely_reference(sizes, seed):
    import shapely.ops  # noqa: F401

    net = he(sizes, seed)
    box = ((-2.0, 2.0), (-2.0, 2.0))
    p = regions.partition(net, box)
    ref = _reference_regions(net, box)
    assert len(p) == len(ref)
    assert np.allclose(np.sort(p.measure), ref, atol=1e-9)


def test_inradius_matches_scipy_linprog():
    from scipy.optimize import linprog

    net = he([2, 12, 12, 1], 7)
    p = regions.partition(net, BOX)
    rng = np.random.default_rng(0)
    for r in rng.choice(len(p), 25, replace=False):
        P = p.region_vertices(r)
        Q = np.roll(P, -1, axis=0)
        d = Q - P
        L = np.linalg.norm(d, axis=1)
        keep = L > 0
        nrm = np.column_stack([-d[:, 1], d[:, 0]])[keep] / L[keep, None]   # inward (CCW)
        h = np.einsum("ij,ij->i", nrm, P[keep])
        # max r  s.t.  -n.x + r <= -h
        res = linprog([0, 0, -1], A_ub=np.column_stack([-nrm, np.ones(len(h))]), b_ub=-h,
                      bounds=[(None, None), (None, None), (0, None)], method="highs")
        assert p.inradius[r] == pytest.approx(-res.fun, rel=1e-7, abs=1e-12)
        # the centre is inside the region: its pattern is the region's
        if p.inradius[r] > 1e-6:
            cpat = regions.as_network(net).patterns(p.chebyshev_centers[r][None])[0]
            assert np.array_equal(cpat, p.patterns[r])


def test_plane_slice_of_higher_dimensional_input():
    net = he([5, 16, 16, 2], 8)
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 5))
    dom = regions.Plane(points=(a, b, c), box=((-1, 2), (-1, 2)))
    p = regions.partition(net, dom)
    assert p.dim == 2
    check_partition(p, net)


def test_leaky_relu_and_torch_models():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(2, 12), torch.nn.LeakyReLU(0.1), torch.nn.Dropout(0.0),
                              torch.nn.Linear(12, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    net.eval()
    p = regions.partition(net, BOX)
    pts, r = check_partition(p, net)
    with torch.no_grad():
        y = net(torch.tensor(pts, dtype=torch.float32)).double().numpy()
    A, c = p.affine
    assert np.allclose(np.einsum("nij,nj->ni", A[r], pts) + c[r], y, atol=1e-4)


def test_convex_polygon_domain():
    net = he([2, 16, 16, 1], 9)
    tri = shapely.Polygon([(-2, -2), (3, -1), (0, 2.5)])
    p = regions.partition(net, tri)
    assert p.measure.sum() == pytest.approx(tri.area, rel=1e-12)
    check_partition(p, net)
    union = shapely.union_all(p.polygons())
    assert union.symmetric_difference(tri).area < 1e-9


def test_level_set_lies_on_the_value():
    net = he([2, 16, 16, 1], 10)
    p = regions.partition(net, BOX)
    seg = p.level_set(0.0)
    assert len(seg) > 0
    N = regions.as_network(net)
    mid = seg.mean(axis=1)
    assert np.abs(N.forward(np.concatenate([seg[:, 0], seg[:, 1], mid]))).max() < 1e-9


def test_level_set_along_an_edge_is_reported_once():
    # output |x| = relu(x) + relu(-x): its zero set is the line x = 0, which is
    # an edge between regions on both sides (cut at y = 0.3 by a third neuron)
    net = [(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]), np.array([0.0, 0.0, -0.3])),
           (np.array([[1.0, 1.0, 0.0]]), np.zeros(1))]
    p = regions.partition(net, BOX)
    seg = p.level_set(0.0)
    assert np.all(seg[:, :, 0] == 0.0)
    lengths = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1)
    assert lengths.sum() == pytest.approx(6.0, abs=1e-12)      # not 12: once, not per side
    assert len(seg) == 2                                        # split at y = 0.3
    # relu(x) is 0 on the whole left half: a flat piece; only its edge is reported
    flat = [(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.0, -0.3])),
            (np.array([[1.0, 0.0]]), np.zeros(1))]
    seg = regions.partition(flat, BOX).level_set(0.0)
    assert np.all(seg[:, :, 0] == 0.0)
    assert np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum() == pytest.approx(6.0, abs=1e-12)


def test_max_regions_stops_with_the_count():
    net = he([2, 32, 32, 1], 11)
    with pytest.raises(regions.TooManyRegions, match=r"has at least \d+ regions .* max_regions=50"):
        regions.partition(net, BOX, max_regions=50)


@pytest.mark.parametrize("model,domain,message", [
    (he([3, 4, 1]), BOX, "3 inputs"),
    (he([2, 4, 1]), ((1, -1), (0, 1)), "empty or inverted"),
    (he([2, 4, 1]), ((0, np.inf), (0, 1)), "finite"),
    ([(np.full((4, 2), np.nan), np.zeros(4)), (np.ones((1, 4)), np.zeros(1))], BOX, "non-finite"),
    (torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)), BOX,
     r"unsupported layer 1 \(Tanh\)"),
    (he([2, 4, 1]), shapely.LineString([(0, 0), (1, 1)]), "not a domain"),
])
def test_bad_input_is_named(model, domain, message):
    with pytest.raises(ValueError, match=message):
        regions.partition(model, domain)


def test_nonconvex_polygon_domain_clips_the_partition():
    net = he([2, 16, 16, 1], 12)
    # an L-shaped domain: not convex, so it is triangulated and merged back
    L = shapely.Polygon([(-2, -2), (2, -2), (2, 0), (0, 0), (0, 2), (-2, 2)])
    p = regions.partition(net, L)
    assert not p.convex
    assert p.measure.sum() == pytest.approx(L.area, rel=1e-12)
    check_partition(p, net)
    assert shapely.union_all(p.polygons()).symmetric_difference(L).area < 1e-9
    # every region is one pattern cell of the full box clipped to the L
    full = regions.partition(net, ((-2, 2), (-2, 2)))
    clipped = [q.intersection(L) for q in full.polygons()]
    assert len(p) == sum(len(shapely.get_parts(c)) for c in clipped if c.area > 1e-12)
    # inradius of a clipped region is at most that of its cell and positive
    assert np.all(p.inradius > 0)


def test_polygon_with_hole_is_refused():
    ring = shapely.Polygon([(-2, -2), (2, -2), (2, 2), (-2, 2)], [[(-1, -1), (1, -1), (1, 1), (-1, 1)]])
    with pytest.raises(ValueError, match="holes"):
        regions.partition(he([2, 4, 1]), ring)


def test_numpy_weights_do_not_import_torch():
    # a fresh interpreter: partitioning numpy (W, b) pairs must not pull in torch
    import subprocess
    import sys

    code = ("import sys, numpy as np, regions\n"
            "net = [(np.array([[1.0, 0.5], [-0.3, 1.0]]), np.array([0.1, -0.2])),"
            " (np.ones((1, 2)), np.zeros(1))]\n"
            "p = regions.partition(net, ((-1, 1), (-1, 1)))\n"
            "assert len(p) == 4, len(p)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == "False"
