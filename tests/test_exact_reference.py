"""The float64 engine against an exact rational partition (tests/exact_reference.py),
on small degenerate networks: integer weights with zeros, duplicated, scaled and
zero rows, lines through one common point, through the domain's corners and
along its edges, second-layer neurons identically zero on a region, ReLU and
LeakyReLU, on intervals, integer boxes, integer triangles and a diamond.

What is compared (see exact_reference's docstring for why this is complete on
convex domains, where one pattern is one region): the same number of regions,
the same multiset of patterns, and for each exact region the engine's region
holding its centroid (midpoint in 1D) has its pattern, its length/area to a
relative 1e-9 of the region's own size, and its affine output map to 1e-9 of
the output's scale. The exact reference itself is checked against a plain exact
forward pass (its regions tile the domain, carry the pattern the forward pass
gives inside them, and no neuron changes sign inside any of them) and against
dense sampling.

Near misses (a bias off by 2**-8 or 2**-16 from an exact degeneracy) must come
out exactly as well; rescaled networks (one neuron or its outgoing weights times
2**+-20 or 2**+-40) are compared above a stated resolution (RESOLUTION below),
since their exact partitions hold regions thinner than any float64 zero test
resolves.

The engine gets the parameters rounded to float64 (a slope of 1/10 becomes
0.1); the reference keeps the intended rationals. That rounding is far below
the engine's zero tolerance, so it must not change the partition.
"""
import doctest
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, reject, settings, strategies as st

import exact_reference
import regions
from exact_reference import (box, orientation, partition_interval, partition_pieces, partition_polygon,
                             polygon_area, polygon_centroid)

REL = 1e-9


# ---------------------------------------------------------------- helpers

def engine_network(net, slopes):
    """The same network for the engine, every entry rounded to float64."""
    weights = [np.array([[float(v) for v in row] for row in W], dtype=np.float64) for W, _ in net]
    biases = [np.array([float(v) for v in b], dtype=np.float64) for _, b in net]
    return regions.Network(weights, biases, np.array([float(s) for s in slopes], dtype=np.float64))


def engine_domain(vertices):
    """An axis-aligned box as ((x0, x1), (y0, y1)), any other polygon as shapely."""
    xs = sorted({v[0] for v in vertices})
    ys = sorted({v[1] for v in vertices})
    if len(vertices) == 4 and len(xs) == 2 and len(ys) == 2:
        return ((float(xs[0]), float(xs[1])), (float(ys[0]), float(ys[1])))
    return shapely.Polygon([(float(x), float(y)) for x, y in vertices])


def hidden_slopes(net, slopes):
    return [Fraction(0)] * (len(net) - 1) if slopes is None else list(slopes)


def engine_patterns(p):
    return [tuple(bool(v) for v in row) for row in p.patterns]


def assert_engine_matches_1d(net, lo, hi, slopes=None):
    slopes = hidden_slopes(net, slopes)
    ref = partition_interval(net, lo, hi, slopes)
    p = regions.partition(engine_network(net, slopes), (float(lo), float(hi)))
    pats = engine_patterns(p)
    assert len(p) == len(ref), (len(p), len(ref))
    assert Counter(pats) == Counter(r.pattern for r in ref)
    # in 1D the order is the order along the interval: the same pieces, end to end
    assert pats == [r.pattern for r in ref]
    ends = np.array([float(ref[0].lo)] + [float(r.hi) for r in ref])
    np.testing.assert_allclose(p.points, ends, rtol=0, atol=1e-12 * float(hi - lo))
    lengths = np.array([float(r.length) for r in ref])
    assert np.all(np.abs(p.measure - lengths) <= REL * lengths)
    mids = np.array([float((r.lo + r.hi) / 2) for r in ref])
    assert p.locate(mids).tolist() == list(range(len(ref)))
    # the output map, evaluated at both ends of every piece
    A, c = p.affine
    t = np.array([[float(r.lo), float(r.hi)] for r in ref])                          # (n, 2)
    got = A[:, :, 0][:, None, :] * t[:, :, None] + c[:, None, :]                      # (n, 2, out)
    want = np.array([[[float(s * x + i) for s, i in zip(r.slope, r.intercept)] for x in (r.lo, r.hi)]
                     for r in ref])
    assert np.abs(got - want).max() <= REL * max(1.0, np.abs(want).max())
    assert p.measure.sum() == pytest.approx(float(hi - lo), rel=1e-12)
    return ref, p


def assert_engine_matches_2d(net, vertices, slopes=None):
    slopes = hidden_slopes(net, slopes)
    ref = partition_polygon(net, vertices, slopes)
    p = regions.partition(engine_network(net, slopes), engine_domain(vertices))
    assert p.stats["errors"] == 0
    assert len(p) == len(ref), (len(p), len(ref))
    assert Counter(engine_patterns(p)) == Counter(r.pattern for r in ref)
    centroids = np.array([[float(v) for v in polygon_centroid(r.vertices)] for r in ref])
    idx = p.locate(centroids)
    # one engine region per exact region, found where the exact one is
    assert sorted(idx.tolist()) == list(range(len(p)))
    pats = engine_patterns(p)
    assert [pats[i] for i in idx] == [r.pattern for r in ref]
    areas = np.array([float(r.area) for r in ref])
    assert np.all(np.abs(p.measure[idx] - areas) <= REL * areas)
    # the output map, evaluated at the exact region's vertices
    A, c = p.affine
    for r, i in zip(ref, idx):
        V = np.array([[float(x), float(y)] for x, y in r.vertices])
        want = np.array([[float(a[0] * x + a[1] * y + ck) for a, ck in zip(r.A, r.c)]
                         for x, y in r.vertices])
        assert np.abs(V @ A[i].T + c[i] - want).max() <= REL * max(1.0, np.abs(want).max())
    assert p.measure.sum() == pytest.approx(float(polygon_area([tuple(v) for v in vertices])), rel=1e-12)
    return ref, p


def _fractions(points):
    return [(Fraction(x), Fraction(y)) for x, y in points]


# non-convex domains: the outline (CCW) and convex pieces that tile it
L_SHAPE = (_fractions([(-2, -2), (2, -2), (2, 0), (0, 0), (0, 2), (-2, 2)]),
           [box(-2, 2, -2, 0), box(-2, 0, 0, 2)])
DART = (_fractions([(-2, -2), (0, -1), (2, -2), (0, 2)]),
        [_fractions([(-2, -2), (0, -1), (0, 2)]), _fractions([(0, -1), (2, -2), (0, 2)])])
NONCONVEX = {tuple(outline): pieces for outline, pieces in (L_SHAPE, DART)}


def assert_engine_matches_pieces(net, outline, slopes, check_locate=False):
    """:func:`assert_engine_matches_2d` on a non-convex domain: regions (connected
    components of a pattern's set) matched by location, since patterns may repeat.
    The location is read from the engine's polygons (shapely containment); with
    ``check_locate``, ``p.locate`` must agree with it."""
    ref = partition_pieces(net, NONCONVEX[tuple(outline)], slopes)
    p = regions.partition(engine_network(net, slopes), engine_domain(outline))
    assert p.stats["errors"] == 0
    assert len(p) == len(ref), (len(p), len(ref))
    pats = engine_patterns(p)
    assert Counter(pats) == Counter(r.pattern for r in ref)
    polygons = p.polygons()
    owner = []
    A, c = p.affine
    for r in ref:
        centroids = [[float(v) for v in polygon_centroid(part.vertices)] for part in r.parts]
        holders = [[i for i, poly in enumerate(polygons) if poly.contains(shapely.Point(q))]
                   for q in centroids]
        # all parts of a component in one engine region, with its pattern and area
        assert all(len(h) == 1 for h in holders) and len({h[0] for h in holders}) == 1, holders
        i = holders[0][0]
        if check_locate:
            assert p.locate(np.array(centroids)).tolist() == [i] * len(centroids)
        owner.append(i)
        assert pats[i] == r.pattern
        assert abs(p.measure[i] - float(r.area)) <= REL * float(r.area)
        for part in r.parts:
            V = np.array([[float(x), float(y)] for x, y in part.vertices])
            want = np.array([[float(a[0] * x + a[1] * y + ck) for a, ck in zip(part.A, part.c)]
                             for x, y in part.vertices])
            assert np.abs(V @ A[i].T + c[i] - want).max() <= REL * max(1.0, np.abs(want).max())
    assert sorted(owner) == list(range(len(p)))
    assert p.measure.sum() == pytest.approx(float(polygon_area(outline)), rel=1e-12)
    return ref, p


# Rescaled networks (weights spanning 2**-40..2**40) have exact regions far
# thinner than any float64 zero test resolves (a neuron 2**40 t + 1 has a piece
# of length 2**-40 next to t = 0). Their comparison is above a resolution: an
# exact region at least RESOLUTION times the domain's diameter wide must be
# found (its centroid in an engine region with its pattern, its area within
# 1e-9 * diameter * perimeter plus the area of the thinner regions, which the
# engine may merge into a neighbour); no engine region may hold two of them
# or carry a pattern that is no exact region's.
RESOLUTION = 1e-7


def _resolution_checks(ref_patterns, wide, pats, idx, got, want, slack):
    assert set(pats) <= set(ref_patterns), "the engine reports a pattern no exact region has"
    assert len(set(idx.tolist())) == len(idx), "an engine region holds two wide exact regions"
    assert len(wide) <= len(pats) <= len(ref_patterns)
    assert [pats[i] for i in idx] == [ref_patterns[j] for j in wide]
    assert np.all(np.abs(got - want) <= slack)


def assert_engine_matches_1d_above_resolution(net, lo, hi, slopes):
    ref = partition_interval(net, lo, hi, slopes)
    p = regions.partition(engine_network(net, slopes), (float(lo), float(hi)))
    span = float(hi - lo)
    lengths = np.array([float(r.length) for r in ref])
    wide = np.flatnonzero(lengths >= RESOLUTION * span)
    idx = p.locate(np.array([float((ref[j].lo + ref[j].hi) / 2) for j in wide]))
    thin = lengths.sum() - lengths[wide].sum()
    _resolution_checks([r.pattern for r in ref], wide, engine_patterns(p), idx, p.measure[idx],
                       lengths[wide], 2e-9 * span + thin)
    assert p.measure.sum() == pytest.approx(span, rel=1e-12)


def assert_engine_matches_2d_above_resolution(net, vertices, slopes):
    ref = partition_polygon(net, vertices, slopes)
    p = regions.partition(engine_network(net, slopes), engine_domain(vertices))
    pts = np.array([[float(x), float(y)] for x, y in vertices])
    diameter = np.linalg.norm(pts[:, None] - pts[None], axis=2).max()
    areas = np.array([float(r.area) for r in ref])
    perimeters = np.array([np.linalg.norm(np.diff(np.array([[float(x), float(y)] for x, y in
                                                           r.vertices + r.vertices[:1]]), axis=0),
                                          axis=1).sum() for r in ref])
    wide = np.flatnonzero(2 * areas / perimeters >= RESOLUTION * diameter)
    centroids = np.array([[float(v) for v in polygon_centroid(ref[j].vertices)] for j in wide])
    idx = p.locate(centroids)
    thin = areas.sum() - areas[wide].sum()
    _resolution_checks([r.pattern for r in ref], wide, engine_patterns(p), idx, p.measure[idx],
                       areas[wide], 1e-9 * diameter * perimeters[wide] + thin)
    assert p.measure.sum() == pytest.approx(float(polygon_area([tuple(v) for v in vertices])), rel=1e-12)


def forward_pre_activations(net, x, slopes):
    """Exact pre-activations of every hidden neuron at the point ``x``, layer by
    layer (a list per layer), and the output: a plain forward pass."""
    a = [Fraction(v) for v in x]
    layers = []
    for (W, b), slope in zip(net[:-1], slopes):
        z = [sum(Fraction(w) * ai for w, ai in zip(row, a)) + Fraction(bk) for row, bk in zip(W, b)]
        layers.append(z)
        a = [zk if zk > 0 else Fraction(slope) * zk for zk in z]
    Wo, bo = net[-1]
    out = [sum(Fraction(w) * ai for w, ai in zip(row, a)) + Fraction(bk) for row, bk in zip(Wo, bo)]
    return layers, out


def assert_reference_is_the_partition(net, domain_vertices, regions_, slopes):
    """The exact regions are the pattern cells, by an independent forward pass.

    Induction over layers on each region: if no neuron of layers < l changes sign
    inside the region, layer l is affine on its closure, so its signs inside are
    those at the vertices; with no strict sign change at the vertices the pattern
    is constant inside and equals the forward pass's at the centroid. Distinct
    patterns then make the regions' interiors disjoint, and areas summing exactly
    to the domain make them tile it.
    """
    for r in regions_:
        corner_values = [forward_pre_activations(net, v, slopes)[0] for v in r.vertices]
        for l in range(len(net) - 1):
            for k in range(len(net[l][0])):
                values = [z[l][k] for z in corner_values]
                assert not (min(values) < 0 < max(values)), ("sign change inside", r, l, k)
        zs, out = forward_pre_activations(net, polygon_centroid(r.vertices), slopes)
        assert tuple(z > 0 for layer in zs for z in layer) == r.pattern
        x, y = polygon_centroid(r.vertices)
        assert [a[0] * x + a[1] * y + ck for a, ck in zip(r.A, r.c)] == out
        assert r.area > 0
    assert len({r.pattern for r in regions_}) == len(regions_)
    assert sum(r.area for r in regions_) == polygon_area([tuple(map(Fraction, v)) for v in domain_vertices])


def assert_reference_is_the_partition_1d(net, lo, hi, pieces, slopes):
    """The 1D twin of :func:`assert_reference_is_the_partition` (pieces in order)."""
    assert pieces[0].lo == lo and pieces[-1].hi == hi
    assert all(a.hi == b.lo for a, b in zip(pieces[:-1], pieces[1:]))
    for r in pieces:
        assert r.lo < r.hi
        ends = [forward_pre_activations(net, (t,), slopes)[0] for t in (r.lo, r.hi)]
        for l in range(len(net) - 1):
            for k in range(len(net[l][0])):
                values = [z[l][k] for z in ends]
                assert not (min(values) < 0 < max(values)), ("sign change inside", r, l, k)
        mid = (r.lo + r.hi) / 2
        zs, out = forward_pre_activations(net, (mid,), slopes)
        assert tuple(z > 0 for layer in zs for z in layer) == r.pattern
        assert [s * mid + i for s, i in zip(r.slope, r.intercept)] == out
    assert len({r.pattern for r in pieces}) == len(pieces)


# ---------------------------------------------------------------- strategies

small = st.integers(-2, 2)
SLOPES = [Fraction(0), Fraction(1, 10), Fraction(1, 2)]
# mostly exact degeneracy, sometimes a near miss: a bias off by 2**-8 or 2**-16
# (lines nearly through a point, a corner or along an edge; near duplicates)
NEAR = [Fraction(0)] * 3 + [s * Fraction(1, 2 ** e) for e in (8, 16) for s in (1, -1)]


def _deeper_rows(draw, n_in, n):
    """Rows of a later layer: integers in -2..2 (many zeros), with duplicated,
    scaled-duplicate and zero rows."""
    W, b = [], []
    for k in range(n):
        kind = draw(st.sampled_from(["free", "free", "dup", "scaled", "zero"])) if W else "free"
        if kind == "free":
            W.append([draw(small) for _ in range(n_in)]), b.append(draw(small))
        else:
            _append_repeated_row(draw, W, b, kind, n_in)
    return W, b


def _append_repeated_row(draw, W, b, kind, n_in):
    """Append a row made from the rows so far: ``dup`` (a near duplicate: the bias off
    by one of NEAR), ``scaled`` (an exact multiple) or ``zero`` (a constant neuron)."""
    if kind == "dup":
        j = draw(st.integers(0, len(W) - 1))
        W.append(list(W[j])), b.append(b[j] + draw(st.sampled_from(NEAR)))
    elif kind == "scaled":
        j = draw(st.integers(0, len(W) - 1))
        s = draw(st.sampled_from([2, -1, -2, Fraction(1, 2)]))
        W.append([s * w for w in W[j]]), b.append(s * b[j])
    else:
        W.append([0] * n_in), b.append(draw(st.integers(-1, 1)))


def _tail(draw, first_width):
    """Later hidden layers, the output layer and the slopes."""
    net = []
    width = first_width
    for _ in range(draw(st.integers(0, 2))):
        n = draw(st.integers(1, 6))
        net.append(_deeper_rows(draw, width, n))
        width = n
    net.append(([[draw(small) for _ in range(width)]], [draw(small)]))
    slopes = [draw(st.sampled_from(SLOPES)) for _ in range(len(net))]  # first layer + later ones
    return net, slopes


@st.composite
def degenerate_net_1d(draw):
    lo = draw(st.integers(-3, 1))
    hi = lo + draw(st.integers(1, 4))
    points = [Fraction(lo), Fraction(hi), Fraction(lo + hi, 2), Fraction(draw(st.integers(lo, hi)))]
    common = draw(st.sampled_from(points))
    n = draw(st.integers(1, 6))
    W, b = [], []
    for k in range(n):
        kinds = ["free", "through_common", "through_end"] + (["dup", "scaled", "zero"] if W else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "free":
            W.append([draw(small)]), b.append(draw(small))
        elif kind in ("through_common", "through_end"):
            w = draw(st.sampled_from([-2, -1, 1, 2]))
            t = common if kind == "through_common" else draw(st.sampled_from(points[:2]))
            W.append([w]), b.append(-w * t + draw(st.sampled_from(NEAR)))
        else:
            _append_repeated_row(draw, W, b, kind, 1)
    tail, slopes = _tail(draw, n)
    return [(W, b)] + tail, Fraction(lo), Fraction(hi), slopes


@st.composite
def convex_domain(draw):
    """An integer box, an integer triangle or a diamond, CCW."""
    kind = draw(st.sampled_from(["box", "triangle", "diamond"]))
    if kind == "box":
        x0, y0 = draw(st.integers(-2, 1)), draw(st.integers(-2, 1))
        return box(x0, x0 + draw(st.integers(1, 3)), y0, y0 + draw(st.integers(1, 3)))
    if kind == "diamond":
        return [(Fraction(x), Fraction(y)) for x, y in ((-2, 0), (0, -2), (2, 0), (0, 2))]
    pts = draw(st.lists(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), min_size=3, max_size=3,
                        unique=True).filter(lambda q: orientation(*q) != 0))
    pts = [(Fraction(x), Fraction(y)) for x, y in pts]
    return pts if orientation(*pts) > 0 else pts[::-1]


@st.composite
def degenerate_net_2d(draw, domains=convex_domain()):
    """A degenerate net and its domain (``domains`` draws the outline's CCW vertices:
    its corners and edges are the ones lines go through and along)."""
    vertices = draw(domains)
    n = len(vertices)
    # a common point: a vertex, the midpoint of an edge, or a point of the domain's bounding box
    xs, ys = [v[0] for v in vertices], [v[1] for v in vertices]
    i = draw(st.integers(0, n - 1))
    common = draw(st.sampled_from([
        vertices[i],
        ((vertices[i][0] + vertices[(i + 1) % n][0]) / 2, (vertices[i][1] + vertices[(i + 1) % n][1]) / 2),
        (Fraction(draw(st.integers(int(min(xs)), int(max(xs))))),
         Fraction(draw(st.integers(int(min(ys)), int(max(ys)))))),
    ]))
    width = draw(st.integers(1, 6))
    W, b = [], []
    for k in range(width):
        kinds = ["free", "free", "through_common", "through_corner", "along_edge"] + (
            ["dup", "scaled", "zero"] if W else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "free":
            W.append([draw(small), draw(small)]), b.append(draw(small))
        elif kind in ("through_common", "through_corner"):
            a = draw(st.tuples(small, small).filter(lambda a: a != (0, 0)))
            p = common if kind == "through_common" else vertices[draw(st.integers(0, n - 1))]
            W.append(list(a)), b.append(-(a[0] * p[0] + a[1] * p[1]) + draw(st.sampled_from(NEAR)))
        elif kind == "along_edge":
            j = draw(st.integers(0, n - 1))
            (px, py), (qx, qy) = vertices[j], vertices[(j + 1) % n]
            s = draw(st.sampled_from([-2, -1, 1, 2]))
            a = (s * (py - qy), s * (qx - px))
            W.append(list(a)), b.append(-(a[0] * px + a[1] * py) + draw(st.sampled_from(NEAR)))
        else:
            _append_repeated_row(draw, W, b, kind, 2)
    tail, slopes = _tail(draw, width)
    return [(W, b)] + tail, vertices, slopes


@st.composite
def rescaled(draw, cases):
    """A case of ``cases`` with one hidden neuron's row and bias, or the weights it
    sends to the next layer, multiplied by 2**e (|e| up to 40, exact in float64).

    Mostly large factors after a ReLU layer: a next-layer neuron is then huge where
    the scaled neuron is on and of order one where it is exactly zero, the case a
    zero test relative to the neuron's maximum over the domain gets wrong.
    """
    case = draw(cases)
    net = [([list(row) for row in W], list(b)) for W, b in case[0]]
    slopes = list(case[-1])
    l = draw(st.integers(0, len(net) - 2))
    k = draw(st.integers(0, len(net[l][0]) - 1))
    s = Fraction(2) ** draw(st.sampled_from([20, 40, 40, -20, -40]))
    if draw(st.booleans()):
        slopes[l] = Fraction(0)
    if draw(st.booleans()):
        W, b = net[l]
        W[k] = [s * w for w in W[k]]
        b[k] = s * b[k]
    else:
        for row in net[l + 1][0]:
            row[k] = s * row[k]
    return (net,) + tuple(case[1:-1]) + (slopes,)


# ---------------------------------------------------------------- the reference itself

def test_reference_docstring_examples():
    assert doctest.testmod(exact_reference).failed == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(degenerate_net_1d())
def test_reference_1d_is_the_partition_by_a_forward_pass(case):
    net, lo, hi, slopes = case
    pieces = partition_interval(net, lo, hi, slopes)
    assert_reference_is_the_partition_1d(net, lo, hi, pieces, slopes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(degenerate_net_2d())
def test_reference_2d_is_the_partition_by_a_forward_pass(case):
    net, vertices, slopes = case
    assert_reference_is_the_partition(net, vertices, partition_polygon(net, vertices, slopes), slopes)


def _float_patterns(net, slopes, x):
    """Patterns of the points ``x`` (float64 forward pass) whose pre-activations are
    all clearly away from zero (points on a region's boundary are dropped)."""
    a, bits, clear = x, [], np.ones(len(x), dtype=bool)
    for (W, b), s in zip(net[:-1], slopes):
        z = a @ np.array(W, dtype=float).T + np.array(b, dtype=float)
        bits.append(z > 0)
        clear &= np.all(np.abs(z) > 1e-9 * (1.0 + np.abs(z).max()), axis=1)
        a = np.where(z > 0, z, float(s) * z)
    return {tuple(row) for row in np.concatenate(bits, axis=1)[clear].tolist()}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(degenerate_net_2d())
def test_grid_patterns_are_reference_patterns(case):
    # dense sampling is a lower bound: every pattern it sees inside a region is an exact region's
    net, vertices, slopes = case
    xs, ys = [float(v[0]) for v in vertices], [float(v[1]) for v in vertices]
    g = np.stack(np.meshgrid(np.linspace(min(xs), max(xs), 61), np.linspace(min(ys), max(ys), 61)), -1)
    g = g.reshape(-1, 2)
    g = g[shapely.contains_xy(shapely.Polygon([(float(x), float(y)) for x, y in vertices]), g[:, 0], g[:, 1])]
    ref = {r.pattern for r in partition_polygon(net, vertices, slopes)}
    assert _float_patterns(net, slopes, g) <= ref


GENERAL_2D = [([[3, -1], [1, 2], [-2, 1], [2, 3], [-1, -3]], [1, -1, 2, -2, 1]),
              ([[1, -2, 1, 2, -1], [2, 1, -1, 1, 2], [-1, 1, 2, -2, 1], [1, 1, 1, 1, -2]], [1, -2, 2, 1]),
              ([[1, 1, 1, 1]], [0])]


def test_reference_equals_a_fine_grid_in_general_position():
    # no three lines through a point, no line through a corner: a fine grid sees every region
    vertices = box(-2, 2, -2, 2)
    slopes = [Fraction(0), Fraction(1, 10)]
    ref = partition_polygon(GENERAL_2D, vertices, slopes)
    u = np.linspace(-2, 2, 801)
    g = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
    assert len(ref) > 20
    assert _float_patterns(GENERAL_2D, slopes, g) == {r.pattern for r in ref}


def test_reference_1d_equals_a_fine_grid_in_general_position():
    net = [([[3], [-2], [1], [2], [-1]], [1, 1, -1, -3, -2]),
           ([[1, 2, -1, 1, 1], [-2, 1, 1, 1, -1], [1, -1, 2, -1, 1]], [-1, 1, 2]), ([[1, 1, 1]], [0])]
    slopes = [Fraction(1, 2), Fraction(0)]
    ref = partition_interval(net, -3, 3, slopes)
    u = np.linspace(-3, 3, 600001)[:, None]
    assert len(ref) > 6
    assert _float_patterns(net, slopes, u) == {r.pattern for r in ref}


# ---------------------------------------------------------------- the engine against it

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(degenerate_net_1d())
def test_engine_1d_matches_exact_reference(case):
    net, lo, hi, slopes = case
    assert_engine_matches_1d(net, lo, hi, slopes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(degenerate_net_2d())
def test_engine_2d_matches_exact_reference(case):
    net, vertices, slopes = case
    assert_engine_matches_2d(net, vertices, slopes)


def _with_output(hidden):
    width = len(hidden[-1][0])
    return list(hidden) + [([[1] * width], [0])]


SQUARE = box(-1, 1, -1, 1)
TRIANGLE = [(Fraction(-2), Fraction(-1)), (Fraction(2), Fraction(-2)), (Fraction(0), Fraction(2))]


@pytest.mark.parametrize("hidden,vertices,count", [
    # three lines through one point (the origin): 6 sectors
    ([([[1, 0], [0, 1], [1, 1]], [0, 0, 0])], SQUARE, 6),
    # a duplicated row and a scaled, negated duplicate: one line, 2 regions
    ([([[1, 2], [1, 2], [-2, -4]], [1, 1, -2])], SQUARE, 2),
    # a zero row with bias 0 (identically zero: off everywhere) beside one line
    ([([[0, 0], [1, -1]], [0, 0])], SQUARE, 2),
    # a line along the domain boundary x = 1 and a line touching only the corner (1, 1)
    ([([[1, 0], [1, 1], [0, 1]], [-1, -2, 0])], SQUARE, 2),
    # the triangle (-2, -1), (2, -2), (0, 2): lines along its three edges (one negated)
    # and x = 2 touching only the corner (2, -2) do not cut; x = 0 and y = -1 run
    # from a corner through the inside and cross at (0, -1)
    ([([[1, 4], [2, 1], [-3, 2], [1, 0], [1, 0], [0, 1]], [6, -2, -4, -2, 0, 1])], TRIANGLE, 4),
    # second layer: neurons 0 and 1 (a duplicate) are relu(x), identically zero where
    # x <= 0; neuron 2, relu(x) - relu(y), is identically zero on the quadrant x, y <= 0
    ([([[1, 0], [0, 1]], [0, 0]), ([[1, 0], [1, 0], [1, -1]], [0, 0, 0])], SQUARE, 5),
    # second layer: relu(x) + relu(y) is zero on a whole quadrant, relu(x) - relu(y)
    # bends through the first layer's common vertex, 2 relu(x) + 2 relu(y) = 1 bends
    # on the axes: 4 regions in the first quadrant, 2 in the second and fourth, 1 in the third
    ([([[1, 0], [0, 1]], [0, 0]), ([[1, 1], [1, -1], [2, 2]], [0, 0, -1])], SQUARE, 9),
])
def test_engine_2d_regressions(hidden, vertices, count):
    net = _with_output(hidden)
    slopes = [Fraction(0)] * len(hidden)
    ref, _ = assert_engine_matches_2d(net, vertices, slopes)
    assert_reference_is_the_partition(net, vertices, ref, slopes)
    assert len(ref) == count
    leaky = [Fraction(1, 10)] * len(hidden)
    assert_engine_matches_2d(net, vertices, leaky)


@pytest.mark.parametrize("hidden,lo,hi,count", [
    # three neurons with their zero at the same point, a duplicate, a zero row
    ([([[1], [-1], [2], [1], [0]], [0, 0, 0, 0, 0])], -1, 1, 2),
    # zeros at both ends of the interval never cut
    ([([[1], [1], [-2]], [1, -1, 2])], -1, 1, 1),
    # layer 2: relu(t) - relu(-t) = t changes sign exactly at the existing breakpoint 0,
    # relu(-t) is identically zero on [0, 1] (off there)
    ([([[1], [-1]], [0, 0]), ([[1, -1], [0, 1]], [0, 0])], -1, 1, 2),
])
def test_engine_1d_regressions(hidden, lo, hi, count):
    net = _with_output(hidden)
    slopes = [Fraction(0)] * len(hidden)
    ref, _ = assert_engine_matches_1d(net, Fraction(lo), Fraction(hi), slopes)
    assert_reference_is_the_partition_1d(net, lo, hi, ref, slopes)
    assert len(ref) == count


@pytest.mark.parametrize("net,lo,hi,slopes,neuron", [
    # minimised from the reproducer of issue 9, item 6. Layer 1 on [-1, 1]: 2, 2 - t,
    # t + 1 (all on) and t (cuts at 0). Layer 2 neuron 0 is 2 - (2 - t) - (t + 1) + 1 = 0
    # on the whole interval, so it is off everywhere; neuron 1, -4 + 2 (2 - t) - (t + 1)
    # = -1 - 3 t, cuts at -1/3. On the piece (-1/3, 0) the engine decides neuron 0 by a
    # forward pass at the midpoint -1/6, where float64 gives 1.1e-16 > 0: it reports it on.
    ([([[0], [-1], [1], [1]], [2, 2, 1, 0]), ([[1, -1, -1, 0], [-2, 2, -1, 0]], [1, 0]),
      ([[1, 1]], [0])], -1, 1, [0, 0], 4),
    # found by test_engine_1d_matches_exact_reference, minimised: layer 1 on [0, 1] is
    # 1, 1, 2, -2 t, -2 t with LeakyReLU 1/10; layer 2 neuron 1 is
    # 1 + 1 - 2 + 2 (-t / 5) - 2 (-t / 5) = 0 on the whole interval (one piece, no cut),
    # and the midpoint forward pass rounds it to a positive value
    ([([[0], [0], [0], [-2], [-2]], [1, 1, 2, 0, 0]), ([[0, 0, 0, 0, 0], [1, 1, -1, 2, -2]], [0, 0]),
      ([[0, 0]], [0]), ([[1]], [0])], 0, 1, [Fraction(1, 10), 0, 0], 6),
])
def test_engine_1d_identically_zero_neuron_is_off_after_rounding(net, lo, hi, slopes, neuron):
    lo, hi, slopes = Fraction(lo), Fraction(hi), [Fraction(s) for s in slopes]
    ref = partition_interval(net, lo, hi, slopes)
    assert_reference_is_the_partition_1d(net, lo, hi, ref, slopes)
    assert not any(r.pattern[neuron] for r in ref)
    assert_engine_matches_1d(net, lo, hi, slopes)


# derandomized: a fixed set of examples, so that the outcome on a given engine is
# reproducible (the 2D ones hit issue 9 item 5 on the engine of today)
@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rescaled(degenerate_net_1d()))
def test_engine_1d_matches_exact_reference_rescaled(case):
    net, lo, hi, slopes = case
    assert_engine_matches_1d_above_resolution(net, lo, hi, slopes)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rescaled(degenerate_net_2d()))
def test_engine_2d_matches_exact_reference_rescaled(case):
    net, vertices, slopes = case
    assert_engine_matches_2d_above_resolution(net, vertices, slopes)


SCALE = 2 ** 40


def test_engine_2d_constant_neuron_beside_a_huge_one_keeps_its_sign():
    # layer 1: relu(2**40 y); layer 2: n = relu(2**40 y) + 1 >= 1, on everywhere. Where
    # y < 0, n is the constant 1, below 1e-10 of its maximum 2**41 + 1 over the square:
    # the engine reads it as zero and reports n off on the lower half.
    net = [([[0, SCALE]], [0]), ([[1]], [1]), ([[1]], [0])]
    slopes = [Fraction(0), Fraction(0)]
    ref = partition_polygon(net, SQUARE, slopes)
    assert_reference_is_the_partition(net, SQUARE, ref, slopes)
    assert sorted(r.pattern for r in ref) == [(False, True), (True, True)]
    assert_engine_matches_2d(net, SQUARE, slopes)


def test_engine_1d_sign_change_beside_a_huge_neuron_is_cut():
    # layer 1: relu(2**40 t), relu(t + 2); layer 2: n = relu(2**40 t) + relu(t + 2) - 3/2.
    # On [-1, 0], n = t + 1/2 changes sign at t = -1/2, but both ends' values (+-1/2) are
    # below 1e-10 of n's maximum 2**40 + 3/2: the engine misses the breakpoint -1/2.
    net = [([[SCALE], [1]], [0, 2]), ([[1, 1]], [Fraction(-3, 2)]), ([[1]], [0])]
    slopes = [Fraction(0), Fraction(0)]
    ref = partition_interval(net, -1, 1, slopes)
    assert_reference_is_the_partition_1d(net, -1, 1, ref, slopes)
    assert [r.lo for r in ref] == [-1, Fraction(-1, 2), 0]
    assert_engine_matches_1d(net, Fraction(-1), Fraction(1), slopes)


def test_engine_1d_constant_neuron_beside_a_huge_one_feeds_the_next_layer():
    # found by the rescaled 1D property (5000 examples), minimised. On [0, 1]: layer 1 is
    # 1 and t - 1/2; layer 2: n = 1 - 2**40 relu(t - 1/2), the constant 1 on [0, 1/2];
    # layer 3: m = relu(n) - 1/2 = 1/2 there, on. n's value 1 is below 1e-10 of its
    # maximum |n| (about 2**39): the engine keeps n on (its midpoint forward pass) but
    # activates it to 0, so m is -1/2 at both ends and reported off on half the domain.
    net = [([[0], [1]], [1, Fraction(-1, 2)]), ([[1, -SCALE]], [0]), ([[1]], [Fraction(-1, 2)]),
           ([[1]], [0])]
    slopes = [Fraction(0)] * 3
    ref = partition_interval(net, 0, 1, slopes)
    assert_reference_is_the_partition_1d(net, 0, 1, ref, slopes)
    assert ref[0].hi == Fraction(1, 2) and ref[0].pattern == (True, False, True, True)
    assert_engine_matches_1d_above_resolution(net, Fraction(0), Fraction(1), slopes)


def test_pieces_tile_their_outline():
    for outline, pieces in (L_SHAPE, DART):
        assert sum(polygon_area(q) for q in pieces) == polygon_area(outline) > 0
        assert shapely.Polygon([(float(x), float(y)) for x, y in outline]).is_valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(degenerate_net_2d(domains=st.sampled_from([L_SHAPE[0], DART[0]])))
def test_engine_nonconvex_matches_exact_reference(case):
    # lines through the reflex corner and along the inner edges, regions of one
    # pattern split in two by the notch
    net, outline, slopes = case
    for piece in NONCONVEX[tuple(outline)]:
        assert_reference_is_the_partition(net, piece, partition_polygon(net, piece, slopes), slopes)
    try:
        assert_engine_matches_pieces(net, outline, slopes)
    except ValueError as e:
        if "touches itself at a vertex" not in str(e):
            raise
        reject()  # a documented refusal: a region pinched at a vertex


@pytest.mark.parametrize("hidden,count", [
    # x + y = 1 leaves two on-regions of one pattern, one either side of the notch
    ([([[1, 1]], [-1])], 3),
    # lines through the reflex corner (0, 0): along both inner edges (no cut) and x = y
    ([([[0, 1], [1, 0], [1, -1]], [0, 0, 0])], 4),
    # the axes meet at the reflex corner (three quadrants); relu(x) + relu(y) - 1 is
    # -1 on the third and cuts the second (y = 1) and the fourth (x = 1)
    ([([[1, 0], [0, 1]], [0, 0]), ([[1, 1]], [-1])], 5),
])
def test_engine_l_shape_regressions(hidden, count):
    net = _with_output(hidden)
    slopes = [Fraction(0)] * len(hidden)
    ref, _ = assert_engine_matches_pieces(net, L_SHAPE[0], slopes)
    assert len(ref) == count


def test_engine_locate_on_a_pattern_split_by_the_notch():
    # the L shape cut by x + y = 1: two regions carry the on pattern, the triangles
    # (2, -1), (2, 0), (1, 0) and (0, 1), (0, 2), (-1, 2); locate sends the centroid of
    # one of them to the other
    net = _with_output([([[1, 1]], [-1])])
    ref, p = assert_engine_matches_pieces(net, L_SHAPE[0], [Fraction(0)])
    assert [r.pattern for r in ref].count((True,)) == 2
    assert_engine_matches_pieces(net, L_SHAPE[0], [Fraction(0)], check_locate=True)


# A neuron identically zero on a region (z = -2z1 + 4z1 - 4 + 2z1 + 2 - 4z1 + 2 for
# z1 > 1) reads +-1e-15 in a float64 forward pass. The engine calls it off there
# (zero rule); locate once read the rounding as "on", found no region with that
# pattern and raised an engine error (hypothesis seed 3027, widths [1, 6, 3]).
IDENTICALLY_ZERO_ON_A_REGION = [
    ([[-1, -2]], [2]),
    ([[-2], [2], [2], [2], [-2], [2]], [-1, 0, -2, 2, 1, 0]),
    ([[2, 2, -2, -2, 0, -2], [2, 1, 1, 1, 2, -2], [-2, -1, 2, 1, 1, -2]], [-1, 2, 2]),
    ([[0, 2, -1]], [1])]


def test_locate_agrees_with_the_reference_where_a_neuron_is_identically_zero():
    net = IDENTICALLY_ZERO_ON_A_REGION
    ref, p = assert_engine_matches_2d(net, box(-2, 2, -2, 2))
    rng = np.random.default_rng(3027)
    pts = rng.uniform(-2, 2, (3000, 2))
    got = [engine_patterns(p)[i] for i in p.locate(pts)]
    # the exact pattern of each point: the reference region whose polygon holds it
    polys = [shapely.Polygon([(float(x), float(y)) for x, y in r.vertices]) for r in ref]
    for point, pattern in zip(pts, got):
        holders = [r.pattern for r, q in zip(ref, polys) if q.covers(shapely.Point(point))]
        assert pattern in holders, (point, pattern, holders)
