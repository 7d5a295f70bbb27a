"""Raw 1D engine (regions/partition1d.py, kernels/line.py) against independent oracles:
the torch forward pass, dense sampling with bisection, and counts known in closed form."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regions.domain import Interval, Segment
from regions.network import as_network
from regions.partition1d import partition_1d
from torch_reference import bisect_breakpoints, torch_patterns_and_output


def he_sequential(widths, seed, bias_std=0.1, leaky=None):
    g = torch.Generator().manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = torch.nn.Linear(a, b).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, dtype=torch.float64) * np.sqrt(2.0 / a))
            lin.bias.copy_(torch.randn(b, generator=g, dtype=torch.float64) * bias_std)
        mods.append(lin)
        if i < len(widths) - 2:
            mods.append(torch.nn.LeakyReLU(leaky) if leaky else torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def check_against_torch(model, p, lo, hi, n=20000, seed=0, to_input=None):
    rng = np.random.default_rng(seed)
    u = rng.uniform(lo, hi, n)
    x = u[:, None] if to_input is None else to_input(u)
    pats, out = torch_patterns_and_output(model, x)
    idx = p.locate(u)
    assert np.all(idx >= 0)
    # the located piece's pattern is the pattern of the forward pass there
    assert np.array_equal(p.patterns[idx], pats)
    # every sampled pattern is a piece's pattern
    have = {r.tobytes() for r in np.packbits(p.patterns, axis=1)}
    assert all(r.tobytes() in have for r in np.packbits(pats, axis=1))
    # affine map reproduces the output inside the pieces
    A, c = p.affine
    pred = A[idx, :, 0] * u[:, None] + c[idx]
    scale = max(1.0, np.abs(out).max())
    assert np.abs(pred - out).max() <= 1e-9 * scale
    # pieces tile the interval
    assert p.measure.sum() == pytest.approx(hi - lo, rel=1e-12)
    assert np.all(p.measure > 0)
    assert np.all(np.diff(p.points) > 0)


@pytest.mark.parametrize("widths,seed,leaky", [
    ([1, 8, 8, 1], 0, None),
    ([1, 16, 16, 16, 2], 1, None),
    ([1, 12, 12, 3], 2, 0.1),
    ([1, 32, 32, 32, 32, 1], 3, None),
])
def test_random_nets_against_torch_and_bisection(widths, seed, leaky):
    model = he_sequential(widths, seed, bias_std=0.3, leaky=leaky)
    net = as_network(model)
    p = partition_1d(net, Interval(-3, 3), progress=False)
    check_against_torch(model, p, -3, 3, seed=seed)
    # oracle: sampled pattern changes refined by bisection are breakpoints
    u = np.linspace(-3, 3, 200001)
    ref, _ = bisect_breakpoints(lambda t: torch_patterns_and_output(model, t[:, None])[0], u)
    if ref.size:
        nearest = np.abs(p.breakpoints[np.clip(np.searchsorted(p.breakpoints, ref), 0,
                                              len(p.breakpoints) - 1)] - ref)
        left = np.abs(p.breakpoints[np.clip(np.searchsorted(p.breakpoints, ref) - 1, 0,
                                           len(p.breakpoints) - 1)] - ref)
        assert np.minimum(nearest, left).max() < 1e-9
    assert len(p) >= len(ref) + 1
    # distinct consecutive patterns, and at most prod(n_l + 1) pieces
    assert np.all(np.any(p.patterns[1:] != p.patterns[:-1], axis=1))
    assert len(p) <= np.prod([w + 1 for w in widths[1:-1]])


def test_one_layer_general_position_gives_n_plus_one():
    rng = np.random.default_rng(5)
    n = 40
    roots = np.sort(rng.uniform(-0.9, 0.9, n))
    w = rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 2.0, n)
    net = as_network([(w[:, None], -w * roots), (rng.normal(size=(1, n)), np.zeros(1))])
    p = partition_1d(net, Interval(-1, 1), progress=False)
    assert len(p) == n + 1
    np.testing.assert_allclose(p.breakpoints, roots, atol=1e-14)


def test_degenerate_neurons():
    # duplicate, scaled duplicate, zero row with positive / negative / zero bias,
    # a root exactly at each domain end
    W1 = np.array([[1.0], [1.0], [2.0], [0.0], [0.0], [0.0], [1.0], [1.0]])
    b1 = np.array([-0.25, -0.25, -0.5, 1.0, -1.0, 0.0, 1.0, -1.0])
    net = as_network([(W1, b1), (np.ones((1, 8)), np.zeros(1))])
    p = partition_1d(net, Interval(-1, 1), progress=False)
    assert p.breakpoints.tolist() == [0.25]
    pats = p.patterns
    assert pats[:, 3].all() and not pats[:, 4].any() and not pats[:, 5].any()
    # the root at lo = -1 (neuron 6, z = x + 1) is on inside; at hi = 1 (z = x - 1) off
    assert pats[:, 6].all() and not pats[:, 7].any()
    assert p.locate([-1.0, 0.25, 1.0, 1.5, -2.0]).tolist() == [0, 1, 1, -1, -1]


def test_neuron_through_existing_breakpoint():
    # layer 1: relu(x), relu(-x), relu(x - 0.5); layer 2: relu(x) - relu(-x) = x is
    # zero exactly at the existing breakpoint 0; a second one is zero at 0.5
    W1 = np.array([[1.0], [-1.0], [1.0]])
    b1 = np.array([0.0, 0.0, -0.5])
    W2 = np.array([[1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, -1.0, -3.0]])
    b2 = np.array([0.0, -0.5, 0.0])
    net = as_network([(W1, b1), (W2, b2), (np.ones((1, 3)), np.zeros(1))])
    p = partition_1d(net, Interval(-1, 1), progress=False)
    # breakpoints: 0 (layer 1 and layer 2 neuron 0), 0.5 (layer 1 and layer 2 neuron 1),
    # layer 2 neuron 2: x - 3 relu(x - 0.5) = 0 at x = 0.75
    np.testing.assert_allclose(p.breakpoints, [0.0, 0.5, 0.75], atol=1e-15)
    u = np.array([-0.5, 0.25, 0.6, 0.9])
    np.testing.assert_array_equal(p.patterns[p.locate(u)], net.patterns(u[:, None]))


def test_segment_through_3d_input():
    model = he_sequential([3, 16, 16, 2], 7, bias_std=0.2)
    p0, p1 = np.array([-1.0, 0.5, 2.0]), np.array([1.5, -1.0, -0.5])
    from regions import partition1d

    p = partition1d.partition_1d(as_network(model), Segment(p0, p1), progress=False)
    check_against_torch(model, p, 0.0, 1.0, to_input=lambda t: p0 + t[:, None] * (p1 - p0))


def test_max_regions_raises_with_count():
    model = he_sequential([1, 32, 32, 1], 0)
    with pytest.raises(RuntimeError, match=r"at least \d+ pieces"):
        partition_1d(as_network(model), Interval(-3, 3), max_regions=5, progress=False)


def test_rejects_wrong_inputs():
    net = as_network(he_sequential([2, 4, 1], 0))
    with pytest.raises(ValueError, match="2 inputs"):
        partition_1d(net, Interval(0, 1), progress=False)


def test_deep_wide_exact_slopes_on_tiny_pieces():
    # many pieces: the affine map must still be exact at interior points
    model = he_sequential([1, 64, 64, 64, 64, 1], 11)
    p = partition_1d(as_network(model), Interval(-3, 3), progress=False)
    mids = p.midpoints
    _, out = torch_patterns_and_output(model, mids[:, None])
    A, c = p.affine
    np.testing.assert_allclose(A[:, :, 0] * mids[:, None] + c, out, atol=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(widths=st.lists(st.integers(1, 6), min_size=1, max_size=3), seed=st.integers(0, 10_000),
       bias=st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), lo=st.floats(-3, 0),
       span=st.floats(0.1, 4))
def test_hypothesis_small_nets(widths, seed, bias, lo, span):
    # biases of order 1e-272 make whole pieces of a neuron sit below the stated
    # tolerance of an earlier layer (documented in partition1d); zero biases stay in
    model = he_sequential([1] + widths + [1], seed, bias_std=bias)
    p = partition_1d(as_network(model), Interval(lo, lo + span), progress=False)
    check_against_torch(model, p, lo, lo + span, n=2000, seed=seed)
    assert len(p) <= np.prod([w + 1 for w in widths])


def test_kernels_against_numpy_twins():
    from kernels import line as K

    rng = np.random.default_rng(3)
    P, n = 40, 7
    t = np.sort(rng.uniform(-1, 1, P))
    Z = rng.normal(size=(P, n))
    new_t, new_Z, parent = K.cut_layer(t, Z)
    # numpy twin: every strict sign change of every piece, in order, interpolated
    ref_t, ref_parent = [t[0]], []
    for i in range(P - 1):
        a, b = Z[i], Z[i + 1]
        s = np.sort(a[a * b < 0] / (a[a * b < 0] - b[a * b < 0]))
        ref_parent += [i] * (len(s) + 1)
        ref_t += list(t[i] + s * (t[i + 1] - t[i])) + [t[i + 1]]
    np.testing.assert_allclose(new_t, ref_t, rtol=0, atol=1e-15)
    assert parent.tolist() == ref_parent
    # the values at the new points are the linear interpolation, the crossing neuron exactly 0
    i = np.searchsorted(t, new_t, side="right") - 1
    i = np.minimum(i, P - 2)
    w = ((new_t - t[i]) / (t[i + 1] - t[i]))[:, None]
    interp = (1 - w) * Z[i] + w * Z[i + 1]
    assert np.abs(new_Z - interp).max() < 1e-12
    is_new = ~np.isin(new_t, t)
    assert is_new.sum() == len(new_t) - P
    assert np.all(np.abs(new_Z[is_new]).min(axis=1) == 0)
    # bits and activations
    words = 1
    packed = np.zeros((len(new_t) - 1, words), dtype=np.uint64)
    bit = np.arange(n)
    alive = K.bits_rows(new_Z, packed, bit // 64, np.left_shift(np.uint64(1), bit.astype(np.uint64)), 0, len(new_t))
    from regions.partition import unpack_patterns

    on = unpack_patterns(packed, n)
    ref_on = (new_Z[:-1] > 0) | (new_Z[1:] > 0)
    assert np.array_equal(on, ref_on)
    assert np.array_equal(alive, (new_Z > 0).any(0))
    out = np.empty((len(new_t), n))
    K.act_rows(new_Z, np.arange(n), 0.0, out, 0, len(new_t))
    np.testing.assert_array_equal(out, np.maximum(new_Z, 0.0))


def test_threaded_cut_equals_serial_kernel():
    from kernels import line as K
    from regions.engine1d import _cut_layer

    rng = np.random.default_rng(8)
    P, n = 5000, 20
    t = np.sort(rng.uniform(-3, 3, P))
    Z = np.cumsum(rng.normal(size=(P, n)), axis=0)   # a few crossings per piece
    Z[100, 3] = 0.0                                    # a point on a breakpoint
    a = K.cut_layer(t, Z)
    b = _cut_layer(t, Z, K.count_crossings(Z))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert len(a[0]) > P
