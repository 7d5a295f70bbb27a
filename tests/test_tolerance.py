"""The zero test is local (issue 9, items 5 and 6): a neuron's zero is decided
relative to its own terms where it is evaluated, so the partition is right
whatever the spread of scales, and invariant under positive rescaling.

Oracles: float64 numpy forward passes on dense grids and random points (every
pattern they see must be a region's pattern), areas and lengths summing to the
domain, exact Fraction arithmetic for the degenerate 1D net, and the same
network rescaled.
"""
from fractions import Fraction

import numpy as np
import pytest

import regions


def _forward_patterns(layers, X):
    """Activation patterns ``z > 0`` of every hidden neuron (float64 numpy, ReLU)."""
    a, pats = np.asarray(X, dtype=np.float64), []
    for W, b in layers[:-1]:
        z = a @ W.T + b
        pats.append(z > 0)
        a = np.maximum(z, 0.0)
    return np.concatenate(pats, axis=1)


def _missing(p, pats):
    """Distinct patterns in ``pats`` that no region of ``p`` has, and the share of rows they cover."""
    seen, counts = np.unique(pats, axis=0, return_counts=True)
    have = {row.tobytes() for row in p.patterns}
    miss = np.array([row.tobytes() not in have for row in seen])
    return int(miss.sum()), float(counts[miss].sum() / len(pats))


def _issue_net(s, dim=2):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(10, dim)); b = 0.3 * rng.normal(size=10)
    W2 = rng.normal(size=(6, 10)); b2 = 0.3 * rng.normal(size=6); Wo = rng.normal(size=(1, 6))
    W[9] *= s; b[9] *= s
    return [(W, b), (W2, b2), (Wo, np.zeros(1))]


def _grid(n=1000, lo=-1.0, hi=1.0):
    g = np.linspace(lo, hi, n)
    gx, gy = np.meshgrid(g, g)
    return np.column_stack([gx.ravel(), gy.ravel()])


def test_issue_reproducer_neuron_scaled_1e10_2d():
    # before: 41 of the 72 grid patterns missing, 43% of the domain
    layers = _issue_net(1e10)
    p = regions.partition(layers, ((-1, 1), (-1, 1)))
    assert _missing(p, _forward_patterns(layers, _grid())) == (0, 0.0)
    assert p.measure.sum() == pytest.approx(4.0, rel=1e-12)
    assert np.all(p.measure > 0)


def _spanning_net(rng, dims, lo=-150, hi=150):
    """ReLU net whose neurons' scales span 10**lo .. 10**hi (each row, and each
    entry of the later layers, scaled by its own power of ten)."""
    layers = []
    for i in range(len(dims) - 2):
        W = rng.normal(size=(dims[i + 1], dims[i]))
        b = 0.3 * rng.normal(size=dims[i + 1])
        row = 10.0 ** rng.uniform(lo, hi, size=dims[i + 1])
        if i > 0:  # keep the products of scales inside float64
            W *= 10.0 ** rng.uniform(lo, hi, size=W.shape) / np.abs(W).max(axis=1, keepdims=True)
            b *= row
        else:
            W *= row[:, None]
            b *= row
        layers.append((W, b))
    layers.append((1e-300 * rng.normal(size=(1, dims[-2])), np.zeros(1)))
    return layers


@pytest.mark.parametrize("seed", [0, 1])
def test_weights_spanning_1e_minus150_to_1e150_2d(seed):
    rng = np.random.default_rng(seed)
    layers = _spanning_net(rng, [2, 10, 8, 1])
    p = regions.partition(layers, ((-1, 1), (-1, 1)))
    X = rng.uniform(-1, 1, size=(20000, 2))
    pats = _forward_patterns(layers, X)
    assert _missing(p, pats)[0] == 0
    assert p.measure.sum() == pytest.approx(4.0, rel=1e-12)
    # and every random point is located in a region with its own pattern
    r = p.locate(X)
    assert np.array_equal(p.patterns[r], pats)


def test_issue_reproducer_neuron_scaled_1e10_1d():
    layers = _issue_net(1e10, dim=1)
    p = regions.partition(layers, (-1.0, 1.0))
    u = np.linspace(-1, 1, 400001)
    pats = _forward_patterns(layers, u[:, None])
    assert _missing(p, pats)[0] == 0
    np.testing.assert_array_equal(p.patterns[p.locate(u)], pats)
    assert p.measure.sum() == pytest.approx(2.0, rel=1e-14)


@pytest.mark.parametrize("seed", [0, 1])
def test_weights_spanning_1e_minus150_to_1e150_1d(seed):
    rng = np.random.default_rng(seed)
    layers = _spanning_net(rng, [1, 12, 10, 1])
    p = regions.partition(layers, (-1.0, 1.0))
    u = rng.uniform(-1, 1, 50000)
    pats = _forward_patterns(layers, u[:, None])
    assert _missing(p, pats)[0] == 0
    np.testing.assert_array_equal(p.patterns[p.locate(u)], pats)


def _he(rng, dims):
    return [(rng.normal(size=(dims[i + 1], dims[i])) * np.sqrt(2.0 / dims[i]),
             0.1 * rng.normal(size=dims[i + 1])) for i in range(len(dims) - 1)]


def _rescaled(layers, rng, share=0.5, compensate=True):
    """Rows (W_k, b_k) of random hidden neurons times random factors in [1e-100, 1e100];
    with ``compensate`` the next layer's column k is divided by the same factor."""
    out = [(W.copy(), b.copy()) for W, b in layers]
    for l in range(len(out) - 1):
        W, b = out[l]
        pick = np.flatnonzero(rng.random(len(b)) < share)
        c = 10.0 ** rng.uniform(-100, 100, size=len(pick))
        W[pick] *= c[:, None]
        b[pick] *= c
        if compensate:
            out[l + 1][0][:, pick] /= c
    return out


def _pattern_set(p):
    return {row.tobytes() for row in p.packed_patterns}


@pytest.mark.parametrize("dims, domain", [([2, 12, 10, 8, 1], ((-2, 2), (-2, 2))),
                                          ([1, 16, 16, 16, 1], (-3.0, 3.0))])
def test_rescaling_neurons_with_compensation_changes_nothing(dims, domain):
    rng = np.random.default_rng(5)
    layers = _he(rng, dims)
    p = regions.partition(layers, domain)
    for trial in range(3):
        q = regions.partition(_rescaled(layers, rng), domain)
        assert len(q) == len(p)
        assert _pattern_set(q) == _pattern_set(p)
        np.testing.assert_allclose(q.measure, p.measure, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dims, domain", [([2, 40, 1], ((-2, 2), (-2, 2))), ([1, 40, 1], (-3.0, 3.0))])
def test_rescaling_first_layer_neurons_leaves_one_layer_partition(dims, domain):
    rng = np.random.default_rng(6)
    layers = _he(rng, dims)
    p = regions.partition(layers, domain)
    q = regions.partition(_rescaled(layers, rng, share=0.7, compensate=False), domain)
    assert len(q) == len(p)
    assert _pattern_set(q) == _pattern_set(p)


# ---------------------------------------------------------------- identically zero (item 6)
def _exact_patterns(layers, x):
    """Patterns ``z > 0`` at the rational point ``x`` in exact Fraction arithmetic (1 input)."""
    a = [Fraction(x)]
    pats = []
    for W, b in layers[:-1]:
        z = [sum((Fraction(float(W[k, j])) * a[j] for j in range(len(a))), Fraction(float(b[k])))
             for k in range(len(b))]
        pats += [v > 0 for v in z]
        a = [max(v, Fraction(0)) for v in z]
    return pats


def test_issue_reproducer_identically_zero_neuron_1d():
    # before: neuron 8 (exactly 0 on (-0.5, 0)) reported on there, from the
    # rounding of a midpoint forward pass (+1e-16)
    W0 = np.array([[0], [-2], [0], [-1], [-1], [1], [-2], [1]], float)
    b0 = np.array([0, -1, 2, -2, 2, 1, -1, 0.])
    W1 = np.array([[-2, -2, 1, 1, -1, -1, 1, -1], [-2, 1, -2, -1, 2, -1, 2, 2]], float)
    b1 = np.array([1., 0])
    layers = [(W0, b0), (W1, b1), (np.ones((1, 2)), np.zeros(1))]
    p = regions.partition(layers, (-1., 1.))
    # exact breakpoints: layer 1 at -1/2 and 0, neuron 9 (-3x - 1 on (-1/2, 0)) at -1/3
    exact = [Fraction(-1), Fraction(-1, 2), Fraction(-1, 3), Fraction(0), Fraction(1)]
    np.testing.assert_allclose(p.points, [float(v) for v in exact], rtol=0, atol=1e-15)
    expected = [_exact_patterns(layers, (exact[i] + exact[i + 1]) / 2) for i in range(4)]
    assert p.patterns.tolist() == expected
    assert not p.patterns[1:3, 8].any()


def test_neuron_identically_zero_on_a_region_2d_is_off():
    # z_8 = h0 - 3 h1 with h0 = relu(x), h1 = relu(x / 3): exactly 0 everywhere in
    # exact arithmetic, rounding noise (about 1e-17) where x > 0
    W0 = np.array([[1.0, 0.0], [1.0 / 3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b0 = np.array([0.0, 0.0, -0.2, -0.1])
    W1 = np.array([[1.0, -3.0, 0.0, 0.0], [1.0, 1.0, -1.0, 1.0]])
    b1 = np.array([0.0, -0.3])
    layers = [(W0, b0), (W1, b1), (np.ones((1, 2)), np.zeros(1))]
    x = np.linspace(1e-3, 1, 7)
    h0, h1 = np.maximum(x, 0), np.maximum(x / 3.0, 0)
    assert np.any(h0 - 3 * h1 != 0)        # the forward pass is not exactly 0: rounding
    p = regions.partition(layers, ((-1, 1), (-1, 1)))
    assert not p.patterns[:, 4].any()
    # the other neurons are intact: every grid pattern (neuron 4 taken as off) is a region's
    pats = _forward_patterns(layers, _grid(400))
    pats[:, 4] = False
    assert _missing(p, pats)[0] == 0
    assert p.measure.sum() == pytest.approx(4.0, rel=1e-12)


def test_tiny_constant_neuron_keeps_its_sign():
    # W_k = 0, b_k = 1e-300: its own scale; positive everywhere, so on
    W0 = np.array([[1.0], [0.0]]); b0 = np.array([0.0, 1e-300])
    p = regions.partition([(W0, b0), (np.ones((1, 2)), np.zeros(1))], (-1.0, 1.0))
    assert p.patterns[:, 1].all()
    W0 = np.array([[1.0, 0.0], [0.0, 0.0]]); b0 = np.array([0.0, -1e-300])
    q = regions.partition([(W0, b0), (np.ones((1, 2)), np.zeros(1))], ((-1, 1), (-1, 1)))
    assert len(q) == 2 and not q.patterns[:, 1].any()


# ---------------------------------------------------------------- locate
def test_locate_point_in_a_sliver_goes_to_the_covering_region():
    import shapely

    # the third line passes 1e-12 from the vertex (0, 0): snapped through it, so
    # the sliver x + y < 1e-12 in the first quadrant is no region
    W0 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); b0 = np.array([0.0, 0.0, -1e-12])
    layers = [(W0, b0), (np.ones((1, 3)), np.zeros(1))]
    p = regions.partition(layers, ((-1, 1), (-1, 1)))
    pt = np.array([[2e-13, 2e-13]])
    assert _missing(p, _forward_patterns(layers, pt))[0] == 1
    r = p.locate(pt)[0]
    assert p.polygons()[r].covers(shapely.Point(pt[0]))
    assert p.patterns[r, :2].all()


def test_locate_reports_a_point_no_region_holds():
    from regions.partition2d import Partition2D

    W0 = np.array([[1.0, 0.0], [0.0, 1.0]]); b0 = np.zeros(2)
    p = regions.partition([(W0, b0), (np.ones((1, 2)), np.zeros(1))], ((-1, 1), (-1, 1)))
    assert len(p) == 4
    keep = [r for r in range(4) if not p.patterns[r].all()]   # drop the quadrant x, y > 0
    off = p.face_offsets
    face_vertices = np.concatenate([p.face_vertices[off[r]:off[r + 1]] for r in keep])
    face_edges = np.concatenate([p.face_edges[off[r]:off[r + 1]] for r in keep])
    offsets = np.concatenate([[0], np.cumsum([off[r + 1] - off[r] for r in keep])])
    broken = Partition2D(p.network, p.domain, p.vertices, offsets, face_vertices, face_edges,
                         p.edges, p.packed_patterns[keep], p.affine[0][keep], p.affine[1][keep])
    np.testing.assert_array_equal(broken.locate([[-0.5, -0.5], [3.0, 0.0]]),
                                  [keep.index(p.locate([[-0.5, -0.5]])[0]), -1])
    with pytest.raises(RuntimeError, match="engine error: no region"):
        broken.locate([[-0.5, 0.5], [0.5, 0.5]])
