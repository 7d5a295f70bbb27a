"""Partitions of models with carried units (residual streams, input skips, max),
against torch itself and against the exact Fraction reference.

Carried units (``Network.linear``) pass a value through a layer without a kink:
the engines must not cut along them, must carry them as identity, and must
leave them out of the pattern. The oracles:

* torch: at random interior points the located region's pattern equals the
  activation states torch computes at every activation node of the traced
  graph (the oracle of ``test_trace.py``), and its affine map equals
  ``model(x)``; every pattern torch shows on a dense grid is a region's;
* geometry: the measures sum to the domain's; on a convex domain no two
  neighbouring regions share a pattern (a cut along a carried unit would make
  such a pair);
* the exact reference (``exact_reference.py``, Fractions, carried units as
  identity units that never cut): on integer weights with coincident kinks the
  same number of regions and the same pattern set.
"""
import numpy as np
import pytest
import torch
from torch import nn

import regions
from exact_reference import box, partition_interval, partition_polygon
from regions.trace import trace
from test_trace import (Coord, MaxNet, _init, assemble, bits_of_winners, network_input,
                        torch_states)

RNG = np.random.default_rng(20261203)


# --- models ------------------------------------------------------------------------

class CoordRaw(nn.Module):
    """The issue's ``Coord`` on raw coordinates: residual blocks, an input skip by cat."""

    def __init__(self, d_in, width=16, blocks=2):
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                                  nn.Linear(width, width)) for _ in range(blocks))
        self.skip = nn.Linear(width + d_in, width)
        self.out = nn.Linear(width, 1)

    def forward(self, p):
        h = torch.relu(self.inp(p))
        for blk in self.blocks:
            h = torch.relu(h + blk(h))  # residual
        h = torch.relu(self.skip(torch.cat([h, p], -1)))  # input skip
        return self.out(h)


class CoordPE(CoordRaw):
    """The issue's ``Coord`` with its positional encoding in front."""

    def __init__(self):
        super().__init__(8)
        self.enc = regions.PositionalEncoding(4)

    def forward(self, p):
        e = self.enc(p)
        h = torch.relu(self.inp(e))
        for blk in self.blocks:
            h = torch.relu(h + blk(h))
        return self.out(torch.relu(self.skip(torch.cat([h, e], -1))))


class MaxoutPE(nn.Module):
    """A positional encoding, ReLU, then a maxout over groups of 4 (the encoded 1D
    engine with a max of k > 2)."""

    def __init__(self):
        super().__init__()
        self.enc = regions.PositionalEncoding(4)
        self.a, self.b, self.out = nn.Linear(8, 48), nn.Linear(48, 8), nn.Linear(2, 1)

    def forward(self, p):
        h = self.b(torch.relu(self.a(self.enc(p))))
        return self.out(h.view(h.shape[0], 2, 4).max(dim=-1).values)


class Maxout(nn.Module):
    """MaxPool1d over features, then maxout over groups of 3 (a tree of two maxes)."""

    def __init__(self, d_in):
        super().__init__()
        self.a = nn.Linear(d_in, 12)
        self.pool = nn.MaxPool1d(2)
        self.b = nn.Linear(6, 9)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        h = self.pool(self.a(x).unsqueeze(1)).flatten(1)
        return self.out(self.b(h).view(x.shape[0], 3, 3).max(dim=-1).values)


class BatchNormResidual(nn.Module):
    """A residual block with eval-mode BatchNorm1d inside and after it."""

    def __init__(self, d_in):
        super().__init__()
        self.a = nn.Linear(d_in, 10)
        self.block = nn.Sequential(nn.Linear(10, 10), nn.BatchNorm1d(10), nn.ReLU(),
                                   nn.Linear(10, 10))
        self.bn = nn.BatchNorm1d(10)
        self.out = nn.Linear(10, 1)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.out(torch.relu(self.bn(h + self.block(h))))


class ResidualSequential(nn.Sequential):
    """A Sequential subclass overriding forward: ``x + chain(x)``."""

    def forward(self, x):
        return x + super().forward(x)


def _residual_sequential(d_in):
    return nn.Sequential(nn.Linear(d_in, 8), nn.ReLU(),
                         ResidualSequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)),
                         nn.ReLU(), nn.Linear(8, 1))


def _batchnorm_residual(d_in, seed):
    model = _init(BatchNormResidual(d_in), seed)
    with torch.no_grad():
        for i, bn in enumerate((model.block[1], model.bn)):
            bn.running_mean.copy_(torch.linspace(-0.5, 0.5, 10) * (i + 1))
            bn.running_var.copy_(torch.linspace(0.5, 2.0, 10))
    return model.eval()


MODELS_1D = {
    "coord residual + input skip": lambda: _init(CoordRaw(1), 11),
    "maxpool + maxout": lambda: _init(Maxout(1), 12),
    "batchnorm residual": lambda: _batchnorm_residual(1, 13),
    "Sequential subclass with its own forward": lambda: _init(_residual_sequential(1), 14),
}
MODELS_2D = {
    "coord residual + input skip": lambda: _init(CoordRaw(2), 21),
    "maxpool + maxout": lambda: _init(Maxout(2), 22),
    "max, maximum, min (test_trace.MaxNet)": lambda: _init(MaxNet(), 23),
    "batchnorm residual": lambda: _batchnorm_residual(2, 24),
    "Sequential subclass with its own forward": lambda: _init(_residual_sequential(2), 25),
}


# --- the torch oracle --------------------------------------------------------------

def _torch_patterns(traced, x):
    """The pattern torch's own values give at ``x`` (every activation node's states,
    at the positions ``pattern_index`` documents)."""
    return assemble(traced, torch_states(traced, x), len(x))


def _torch_output(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy().reshape(len(x), -1)


def _packed_set(patterns):
    return {row.tobytes() for row in np.packbits(patterns, axis=1)}


def check_against_torch(model, domain, points, grid):
    traced = trace(model)
    assert traced.network.n_carried > 0, "not a model with carried units"
    p = regions.partition(model, domain)
    # the pattern is the kink units', in the traced network's order
    assert p.patterns.shape[1] == traced.network.n_hidden
    r = p.locate(points)
    assert np.all(r >= 0)
    u = points.reshape(len(points), -1)
    assert np.array_equal(p.patterns[r], _torch_patterns(traced, u))
    A, c = p.affine
    ref = _torch_output(model, u)
    got = np.einsum("noi,ni->no", A[r], u) + c[r]
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    # every pattern torch shows on a dense grid is one of the partition's
    grid = grid.reshape(len(grid), -1)
    seen = _packed_set(_torch_patterns(traced, grid))
    missing = seen - _packed_set(p.patterns)
    assert not missing, f"{len(missing)} grid patterns are in no region"
    return p


def _no_neighbours_share_a_pattern(p):
    """On a convex domain every boundary separates two patterns: a cut along a
    carried unit would leave neighbours with one pattern."""
    if p.dim == 1:
        pats = p.patterns
        return not np.any(np.all(pats[1:] == pats[:-1], axis=1))
    ef = p.edge_faces
    a, b = ef[(ef[:, 0] >= 0) & (ef[:, 1] >= 0)].T
    return not np.any(np.all(p.packed_patterns[a] == p.packed_patterns[b], axis=1))


@pytest.mark.parametrize("name", sorted(MODELS_1D))
def test_1d_partitions_of_models_with_carried_units_match_torch(name):
    model = MODELS_1D[name]()
    lo, hi = -2.0, 2.0
    p = check_against_torch(model, (lo, hi), RNG.uniform(lo, hi, 300),
                            np.linspace(lo, hi, 40001))
    assert abs(p.measure.sum() - (hi - lo)) <= 1e-12 * (hi - lo)
    assert np.all(p.measure > 0)
    assert _no_neighbours_share_a_pattern(p)


@pytest.mark.parametrize("name", sorted(MODELS_2D))
def test_2d_partitions_of_models_with_carried_units_match_torch(name):
    model = MODELS_2D[name]()
    g = np.linspace(-1.5, 1.5, 301)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    p = check_against_torch(model, ((-1.5, 1.5), (-1.5, 1.5)), RNG.uniform(-1.5, 1.5, (300, 2)),
                            grid)
    assert abs(p.measure.sum() - 9.0) <= 1e-9
    assert _no_neighbours_share_a_pattern(p)


def test_a_segment_through_a_residual_model_matches_torch():
    model = _init(CoordRaw(3), 31)
    p0, p1 = np.array([-1.0, 0.5, 2.0]), np.array([1.5, -1.0, -0.5])
    p = regions.partition(model, regions.Segment(p0, p1))
    t = RNG.uniform(0, 1, 300)
    x = p0 + t[:, None] * (p1 - p0)
    r = p.locate(t)
    A, c = p.affine
    np.testing.assert_allclose(A[r, :, 0] * t[:, None] + c[r], _torch_output(model, x),
                               rtol=1e-9, atol=1e-9)
    assert np.array_equal(p.patterns[r], _torch_patterns(trace(model), x))


@pytest.mark.parametrize("make", [lambda: _init(CoordRaw(2, width=8), 32),
                                  lambda: _init(Maxout(2), 33)], ids=["residual", "maxout"])
def test_a_non_convex_domain_of_a_residual_or_max_model_matches_torch(make):
    import shapely

    model = make()
    L = shapely.Polygon([(-1, -1), (1, -1), (1, 0), (0, 0), (0, 1), (-1, 1)])
    p = regions.partition(model, L)
    assert abs(p.measure.sum() - 3.0) <= 1e-9
    pts = RNG.uniform(-1, 1, (600, 2))
    pts = pts[~((pts[:, 0] > 0) & (pts[:, 1] > 0))]
    r = p.locate(pts)
    assert np.array_equal(p.patterns[r], _torch_patterns(trace(model), pts))
    A, c = p.affine
    got = np.einsum("noi,ni->no", A[r], pts) + c[r]
    np.testing.assert_allclose(got, _torch_output(model, pts), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("make", [lambda: _init(CoordPE(), 41), lambda: _init(Coord(), 42),
                                  lambda: _init(MaxoutPE(), 43)],
                         ids=["width 16", "test_trace.Coord (width 64)", "maxout of 4"])
def test_the_issue_coord_example_with_its_encoding_matches_torch(make):
    # the encoded 1D engine takes carried units too; its affine maps are in the
    # encoded space (the features of the positional encoding)
    model = make()
    traced = trace(model)
    assert traced.network.n_carried > 0 and traced.network.encoding is not None
    p = regions.partition(model, (0.0, 1.0))
    assert abs(p.measure.sum() - 1.0) <= 1e-12 and np.all(p.measure > 0)
    x = RNG.uniform(0, 1, (300, 1))
    r = p.locate(x[:, 0])
    assert np.all(r >= 0)
    assert np.array_equal(p.patterns[r], _torch_patterns(traced, x))
    A, c = p.affine
    u = network_input(traced.network, x)
    ref = _torch_output(model, x)
    np.testing.assert_allclose(np.einsum("noi,ni->no", A[r], u) + c[r], ref, rtol=1e-9,
                               atol=1e-9 * np.abs(ref).max())
    seen = _packed_set(_torch_patterns(traced, np.linspace(0, 1, 50001)[:, None]))
    assert not seen - _packed_set(p.patterns)
    pats = p.patterns
    assert not np.any(np.all(pats[1:] == pats[:-1], axis=1)), "neighbours with one pattern"


# --- the exact reference -------------------------------------------------------------

def _integer_weights(model, rng, lo=-2, hi=3):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.as_tensor(rng.integers(lo, hi, p.shape), dtype=p.dtype))
    return model


class SmallResidual(nn.Module):
    """Two residual blocks and an input skip, small enough for Fractions."""

    def __init__(self, d_in, width):
        super().__init__()
        self.a = nn.Linear(d_in, width)
        self.b1 = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.b2 = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.out = nn.Linear(width + d_in, 1)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = torch.relu(h + self.b1(h))
        h = torch.relu(h - self.b2(h))
        return self.out(torch.cat([h, x], -1))


class SmallMax(nn.Module):
    """A max of pairs, a maxout of ``k`` and a torch.maximum with a skip."""

    def __init__(self, d_in, k=3):
        super().__init__()
        self.k = k
        self.a = nn.Linear(d_in, 6)
        self.b = nn.Linear(3, 2 * k)
        self.c = nn.Linear(2, 2)
        self.out = nn.Linear(2, 1)

    def forward(self, x):
        h = self.a(x).view(x.shape[0], 3, 2).max(dim=-1).values
        m = self.b(h).view(x.shape[0], 2, self.k).max(dim=-1).values
        return self.out(torch.maximum(self.c(m), x[:, :1]))


def _small_max_reference(model):
    """``SmallMax`` for the exact reference, with true maxes: (net, slopes, linear).
    The pairs before a max are identity layers (all units carried); the input's
    ``x0`` rides along as a group of one until the last max."""
    W = {name: (m.weight.detach().numpy(), m.bias.detach().numpy())
         for name, m in model.named_children()}
    (Wa, ba), (Wb, bb), (Wc, bc), out = W["a"], W["b"], W["c"], W["out"]
    d_in, k = Wa.shape[1], model.k

    def rows(*blocks):
        return [[int(v) for v in row] for block in blocks for row in block]

    def ride(width):    # x0 appended to the activations (a row selecting it)
        return [[0] * width + [1]]

    x0 = [[1] + [0] * (d_in - 1)]
    net = [(rows(Wa, x0), rows([ba])[0] + [0]), ("max", [[0, 1], [2, 3], [4, 5], [6]]),
           (rows(np.hstack([Wb, np.zeros((2 * k, 1))]), ride(3)), rows([bb])[0] + [0]),
           ("max", [list(range(k)), list(range(k, 2 * k)), [2 * k]]),
           (rows([list(Wc[0]) + [0]], ride(2), [list(Wc[1]) + [0]], ride(2)),
            [int(bc[0]), 0, int(bc[1]), 0]),
           ("max", [[0, 1], [2, 3]]), (rows(out[0]), rows([out[1]])[0])]
    linear = [[True] * 7, [True] * (2 * k + 1), [True] * 4]
    return net, [0, 0, 0], linear


def _pattern_of_winners(traced, k, winners):
    """The traced pattern (the documented layout) of the reference's winners:
    3 pair maxes, 2 maxes of ``k``, 2 maximums per piece."""
    w = np.asarray(winners).reshape(len(winners), -1)
    groups = {"max_1": (w[:, 0:3], 2), "max_2": (w[:, 3:5], k), "maximum": (w[:, 5:7], 2)}
    states = {name: [bits.reshape((len(w),) + idx.shape)
                     for bits, idx in zip(bits_of_winners(v, kk), traced.pattern_index[name])]
              for name, (v, kk) in groups.items()}
    return [tuple(r) for r in assemble(traced, states, len(w)).tolist()]


def _reference_input(net):
    pairs = [(W.tolist(), b.tolist()) for W, b in zip(net.weights, net.biases)]
    linear = [m.tolist() for m in net.linear]
    for W, b in pairs:  # integer weights compose to integers: the reference sees them exactly
        assert all(float(v).is_integer() for row in W for v in row) and all(
            float(v).is_integer() for v in b)
    return pairs, list(net.slopes), linear


def _exact_case(case, d_in, partition_exact, domain):
    """``(name, exact regions, their patterns in the traced layout, the partition)``.
    Residual nets go to the reference as their traced network (carried units as
    identity); max nets as their torch layers with true maxes (the reference cuts by
    the argmax, :mod:`exact_reference`)."""
    rng = np.random.default_rng(99 + d_in)
    cases = []
    for i in range(4):
        cases.append((f"residual {i}", _integer_weights(
            SmallResidual(d_in, 3 if d_in == 2 else 4).double(), rng)))
        cases.append((f"max of {3 + i % 2}, {i}", _integer_weights(
            SmallMax(d_in, 3 + i % 2).double(), rng)))
    name, model = cases[case]
    traced = trace(model)
    assert traced.network.n_carried > 0
    if name.startswith("residual"):
        exact = partition_exact(*_reference_input(traced.network))
        patterns = [x.pattern for x in exact]
    else:
        exact = partition_exact(*_small_max_reference(model))
        patterns = _pattern_of_winners(traced, model.k, [x.pattern for x in exact])
    return name, exact, patterns, regions.partition(model, domain)


@pytest.mark.parametrize("case", range(8))
def test_1d_residual_and_max_nets_agree_with_the_exact_reference(case):
    name, exact, patterns, p = _exact_case(
        case, 1, lambda net, slopes, linear: partition_interval(net, -3, 3, slopes, linear),
        (-3.0, 3.0))
    assert len(p) == len(exact), name
    assert [tuple(r) for r in p.patterns.tolist()] == patterns, name
    np.testing.assert_allclose(p.points, [float(x.lo) for x in exact] + [3.0], atol=1e-12)
    A, c = p.affine
    np.testing.assert_allclose(A[:, :, 0], [[float(v) for v in x.slope] for x in exact],
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(c, [[float(v) for v in x.intercept] for x in exact],
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", range(8))
def test_2d_residual_and_max_nets_agree_with_the_exact_reference(case):
    name, exact, patterns, p = _exact_case(
        case, 2, lambda net, slopes, linear: partition_polygon(net, box(-2, 2, -2, 2), slopes,
                                                               linear),
        ((-2.0, 2.0), (-2.0, 2.0)))
    assert len(p) == len(exact), name
    ref = dict(zip(patterns, exact))
    assert len(ref) == len(exact)       # convex domain: one region per pattern
    assert {tuple(r) for r in p.patterns.tolist()} == set(ref), name
    A, c = p.affine
    for i, pattern in enumerate(p.patterns.tolist()):
        x = ref[tuple(pattern)]
        assert abs(p.measure[i] - float(x.area)) <= 1e-9, name
        np.testing.assert_allclose(A[i], [[float(v) for v in row] for row in x.A], atol=1e-9)
        np.testing.assert_allclose(c[i], [float(v) for v in x.c], atol=1e-9)


def test_the_exact_reference_treats_carried_units_as_identity_without_a_cut():
    # relu(x) with x carried: output relu(x) + x - 1; a cut at x = 0 from the kink only,
    # none at x = 1 where the carried value's output crosses zero
    net = [([[1], [1]], [0, -1]), ([[1, 1]], [0])]
    pieces = partition_interval(net, -2, 2, linear=[[False, True]])
    assert [(str(x.lo), str(x.hi), x.pattern, x.slope) for x in pieces] == [
        ("-2", "0", (False,), (1,)), ("0", "2", (True,), (2,))]


# --- the peer tool ---------------------------------------------------------------------

@pytest.mark.parametrize("d_in, width, seed", [(2, 16, 0), (2, 24, 1), (1, 64, 2)])
def test_region_counts_agree_with_regioncams_residual_layer(d_in, width, seed):
    regioncam = pytest.importorskip("regioncam")
    rng = np.random.default_rng(seed)
    sizes = [d_in, width, width, width, width, width, 1]   # input, two blocks, output
    pairs = []
    for k, m in zip(sizes[:-1], sizes[1:]):   # float32 weights: what regioncam computes with
        W = (rng.normal(size=(m, k)) * np.sqrt(2 / k)).astype(np.float32).astype(np.float64)
        b = (rng.normal(size=m) * 0.1).astype(np.float32).astype(np.float64)
        pairs.append((W, b))

    class Blocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.ModuleList(nn.Linear(k, m) for k, m in zip(sizes[:-1], sizes[1:]))

        def forward(self, x):
            h = torch.relu(self.lin[0](x))
            h = torch.relu(h + self.lin[2](torch.relu(self.lin[1](h))))
            h = torch.relu(h + self.lin[4](torch.relu(self.lin[3](h))))
            return self.lin[5](h)

    model = Blocks().double()
    with torch.no_grad():
        for lin, (W, b) in zip(model.lin, pairs):
            lin.weight.copy_(torch.as_tensor(W))
            lin.bias.copy_(torch.as_tensor(b))

    def lin(W, b):  # regioncam's Linear takes W as (in, out)
        return regioncam.Linear(np.ascontiguousarray(W.T, dtype=np.float32), b.astype(np.float32))

    block = [regioncam.Residual(regioncam.Sequential(lin(*pairs[i]), regioncam.ReLU(),
                                                     lin(*pairs[i + 1]))) for i in (1, 3)]
    layers = [lin(*pairs[0]), regioncam.ReLU(), block[0], regioncam.ReLU(), block[1],
              regioncam.ReLU(), lin(*pairs[5])]
    half = 2.0
    rc = regioncam.Regioncam(size=half) if d_in == 2 else regioncam.Regioncam1D((-half, half))
    rc.add(regioncam.Sequential(*layers))
    theirs = int(rc.num_faces if d_in == 2 else rc.num_edges)
    domain = (-half, half) if d_in == 1 else ((-half, half), (-half, half))
    ours = len(regions.partition(model, domain))
    # float32 effects (slivers near float32 resolution) move a count by a few at most
    assert ours > 10, "a trivial network compares nothing"
    assert abs(ours - theirs) <= max(2, 0.002 * theirs), (ours, theirs)


@pytest.mark.parametrize("case", ["residual-2d", "residual-1d", "maxout-2d", "maxout-pe-1d"])
def test_partitions_of_traced_models_round_trip_through_a_file(tmp_path, case):
    # the file stores the carried units and max trees (format version 2); the loaded
    # partition is array by array the saved one, and its network agrees with torch
    model, domain = {
        "residual-2d": (lambda: _init(_residual_sequential(2), 51), ((-1, 1), (-1, 1))),
        "residual-1d": (lambda: _init(CoordRaw(1), 52), (-2.0, 2.0)),
        "maxout-2d": (lambda: _init(Maxout(2), 53), ((-1, 1), (-1, 1))),
        "maxout-pe-1d": (lambda: _init(MaxoutPE(), 54), (0.0, 1.0)),
    }[case]
    model = model()
    p = regions.partition(model, domain)
    path = regions.save(p, tmp_path / "p.npz")
    with np.load(path, allow_pickle=False) as z:
        assert int(z["version"]) == 2
        assert ("net.carried" in z.files) == bool(p.network.n_carried)
        assert ("net.max_trees" in z.files) == (p.network.max_trees is not None)
    q = regions.load(path)
    assert type(q) is type(p) and len(q) == len(p) > 1
    np.testing.assert_array_equal(q.packed_patterns, p.packed_patterns)
    np.testing.assert_array_equal(q.measure, p.measure)
    for a, b in zip(q.affine, p.affine):
        np.testing.assert_array_equal(a, b)
    assert q.network.n_carried == p.network.n_carried and q.network.n_hidden == p.network.n_hidden
    if p.network.max_trees is not None:
        np.testing.assert_array_equal(q.network.max_trees, p.network.max_trees)
    # torch is the oracle: the loaded partition's map at random points is model(x)
    lo, hi = (np.array(domain, dtype=float).T if p.dim == 2 else np.array(domain, dtype=float))
    u = RNG.uniform(lo, hi, (200, p.dim))
    r = q.locate(u if p.dim == 2 else u[:, 0])
    A, c = q.affine
    feats = u if q.network.encoding is None else q.network.encoding.encode_numpy(u)
    with torch.no_grad():
        want = model(torch.as_tensor(u)).numpy()
    got = np.einsum("nod,nd->no", A[r], feats) + c[r]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_a_file_with_a_wrong_carried_flag_or_max_tree_is_refused(tmp_path):
    # the new fields are checked as every other: a flipped carried flag changes the
    # function (the forward pass at the corners disagrees), a re-wired tree is not one
    p = regions.partition(_init(Maxout(2), 53), ((-1, 1), (-1, 1)))
    path = regions.save(p, tmp_path / "p.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    trees = arrays["net.max_trees"]
    bad = {"leaf": trees.copy(), "child": trees.copy()}
    bad["leaf"][0, 1] = bad["leaf"][0, 2]          # an input taken twice
    bad["child"][-1, 1] = bad["child"][-1, 0]      # a comparison that is its own child
    for name, value in bad.items():
        np.savez(tmp_path / f"{name}.npz", **dict(arrays, **{"net.max_trees": value}))
        with pytest.raises(ValueError, match="net.max_trees"):
            regions.load(tmp_path / f"{name}.npz")
    # a pattern with a comparison set off its winner's path is not canonical
    from regions.partition import pack_patterns, unpack_patterns
    net = p.network
    u = unpack_patterns(arrays["packed_patterns"], net.n_hidden)
    path_on = net.on_path(u)
    r, t = np.argwhere(~path_on)[0]
    u[r, net.max_trees[t, 0]] = True
    np.savez(tmp_path / "pattern.npz", **dict(arrays, packed_patterns=pack_patterns(u)))
    with pytest.raises(ValueError, match="packed_patterns.*canonical"):
        regions.load(tmp_path / "pattern.npz")
    # version 2 fields in a file that says version 1
    np.savez(tmp_path / "v1.npz", **dict(arrays, version=np.int64(1)))
    with pytest.raises(ValueError, match="version 2 field"):
        regions.load(tmp_path / "v1.npz")
    # a carried flag set on a kink unit of a residual model
    q = regions.partition(_init(_residual_sequential(2), 51), ((-1, 1), (-1, 1)))
    qpath = regions.save(q, tmp_path / "q.npz")
    with np.load(qpath, allow_pickle=False) as z:
        qarrays = {k: z[k] for k in z.files}
    flags = qarrays["net.carried"].copy()
    flags[np.flatnonzero(flags == 0)[0]] = 1
    np.savez(tmp_path / "flag.npz", **dict(qarrays, **{"net.carried": flags}))
    with pytest.raises(ValueError, match="packed_patterns"):     # one bit fewer
        regions.load(tmp_path / "flag.npz")


# --- geometry on models with carried units ---------------------------------------------

def test_segment_crossings_and_boundary_distances_see_no_boundary_at_carried_units():
    # regions.geometry walks the same traced network: carried units are identity there
    # too (they were rectified and counted as boundaries: the walk did not end)
    import shapely
    from regions.geometry import boundary_distances, segment_crossings

    model = _init(_residual_sequential(2), 52)
    p0 = RNG.uniform(-1, 1, (6, 2))
    p1 = RNG.uniform(-1, 1, (6, 2))
    counts = segment_crossings(model, p0, p1)
    exact = [len(regions.partition(model, regions.Segment(a, b))) - 1 for a, b in zip(p0, p1)]
    assert counts.tolist() == exact
    p = regions.partition(model, ((-1, 1), (-1, 1)))
    pts = RNG.uniform(-0.9, 0.9, (100, 2))
    polygons = p.polygons()
    to_region = np.array([polygons[r].exterior.distance(shapely.Point(x))
                          for r, x in zip(p.locate(pts), pts)])
    to_domain = 1.0 - np.abs(pts).max(axis=1)
    np.testing.assert_allclose(np.minimum(boundary_distances(model, pts), to_domain), to_region,
                               atol=1e-9)


def test_segment_crossings_of_a_max_over_k_count_argmax_changes_only():
    from regions.geometry import segment_crossings

    model, _ = _bench_residual().max_model(12, 4, 9)
    rng = np.random.default_rng(9)     # segments on which the walk counted loser swaps
    p0, p1 = rng.uniform(-2, 2, (8, 2)), rng.uniform(-2, 2, (8, 2))
    counts = segment_crossings(model, p0, p1)
    # the brute-force count: changes of torch's (ReLU states, argmax) key along a
    # dense sampling of each segment
    t = np.linspace(0, 1, 20001)
    for i in range(8):
        x = torch.as_tensor(p0[i] + t[:, None] * (p1[i] - p0[i]))
        with torch.no_grad():
            h = model.a(x)
            key = np.column_stack([h.numpy() > 0, model.b(torch.relu(h)).argmax(1).numpy()])
        assert counts[i] == np.any(key[1:] != key[:-1], axis=1).sum(), i


@pytest.mark.parametrize("case", ["maxout-of-9", "pool-then-maxout"])
def test_boundary_distances_of_a_max_over_k_are_the_distances_to_the_joined_faces(case):
    # the oracle: shapely's distance from each point to the boundary of the joined
    # face holding it (the raw 2D engine's polygons), clipped by the domain's sides
    import shapely
    from regions.geometry import boundary_distances

    model = _bench_residual().max_model(12, 4, 9)[0] if case == "maxout-of-9" \
        else _init(Maxout(2), 53)
    p = regions.partition(model, ((-1, 1), (-1, 1)))
    pts = np.random.default_rng(7).uniform(-0.95, 0.95, (1000, 2))
    faces = np.asarray(p.polygons(), dtype=object)[p.locate(pts)]
    to_face = shapely.distance(shapely.points(pts), shapely.boundary(faces))
    to_domain = 1.0 - np.abs(pts).max(axis=1)
    got = boundary_distances(model, pts)
    np.testing.assert_allclose(np.minimum(got, to_domain), to_face, rtol=1e-9, atol=1e-12)
    # the tree's comparisons as plain boundaries (the former lower bound) are nearer
    # at many points: a test that fails if the losers' swaps still counted
    net = p.network
    finer = regions.Network(net.weights, net.biases, net.slopes, None, net.names, net.linear)
    assert np.sum(boundary_distances(finer, pts) < got * (1 - 1e-6)) >= 5
    # per layer: the minimum over the layers is the distance
    np.testing.assert_array_equal(boundary_distances(model, pts, per_layer=True).min(axis=1), got)


def test_the_1d_slopes_from_the_weight_chain_carry_the_carried_units():
    # pieces shorter than 1e-7 of the domain take their slope from the weight chain and
    # their pattern (engine1d._exact_slopes): with carried units as identity factors it
    # equals the difference quotient of the output values on every piece
    from regions.engine1d import _exact_slopes

    model = _init(CoordRaw(1), 61)
    p = regions.partition(model, (-2.0, 2.0))
    chain = _exact_slopes(p.network, p.packed_patterns, np.arange(len(p)))
    A, _ = p.affine
    np.testing.assert_allclose(chain, A[:, :, 0], rtol=1e-9, atol=1e-9 * np.abs(A).max())


def _bench_residual():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_residual.py"
    spec = importlib.util.spec_from_file_location("bench_residual", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("d_in, k", [(d, k) for d in (1, 2) for k in (2, 3, 4, 8)])
def test_a_max_over_k_cuts_where_regioncams_max_pool_does(d_in, k):
    # regioncam's max_pool splits where the argmax changes; so does regions' max of k
    # (a tree of pairwise maxes whose losers' order is no boundary), on the same
    # float32-rounded weights. Nothing is left to join along edges with one output map
    pytest.importorskip("regioncam")
    width, seed = (128, 3) if d_in == 1 else (16, 1)
    ours, joined, theirs = _bench_residual().max_counts(width, k, seed, 2.0, d_in)
    assert ours > 15, "a trivial network compares nothing"
    assert ours == joined == theirs


@pytest.mark.parametrize("d_in, k", [(d, k) for d in (1, 2) for k in (3, 4, 8)])
def test_a_max_over_k_records_torchs_argmax_and_matches_its_output(d_in, k):
    model, _ = _bench_residual().max_model(96 if d_in == 1 else 12, k, 5 + k, d_in)
    traced = trace(model)
    lo, hi = -2.0, 2.0
    p = regions.partition(model, (lo, hi) if d_in == 1 else ((lo, hi),) * 2)
    # (the case exercises the merge: losers swapped order somewhere)
    assert p.stats.get("pieces_before_max_merge", p.stats.get("faces_before_max_merge")) > len(p)
    x = RNG.uniform(lo, hi, (400, d_in))
    r = p.locate(x[:, 0] if d_in == 1 else x)
    assert np.all(r >= 0)
    # which input wins, from the pattern at the documented positions, is torch's argmax
    with torch.no_grad():
        scores = model.b(torch.relu(model.a(torch.as_tensor(x)))).numpy()
    bits = p.patterns[r]
    for level, idx in zip(bits_of_winners(scores.argmax(axis=1), k),
                          traced.pattern_index["max_1"]):
        assert np.array_equal(bits[:, idx.reshape(-1)], level.reshape(len(x), -1))
    assert np.array_equal(traced.winners(bits)["max_1"], scores.argmax(axis=1))
    A, c = p.affine
    ref = _torch_output(model, x)
    np.testing.assert_allclose(np.einsum("noi,ni->no", A[r], x) + c[r], ref, rtol=1e-9,
                               atol=1e-9 * np.abs(ref).max())
    assert abs(p.measure.sum() - (hi - lo) ** d_in) <= 1e-9 * (hi - lo) ** d_in


@pytest.mark.parametrize("engine", ["raw 1D", "raw 2D", "encoded 1D"])
def test_max_regions_caps_the_merged_regions_of_a_max_over_k(engine):
    if engine == "encoded 1D":
        model, domain = _init(MaxoutPE(), 43), (0.0, 1.0)
    else:
        d_in = int(engine[4])
        model, _ = _bench_residual().max_model(96 if d_in == 1 else 12, 4, 9, d_in)
        domain = (-2.0, 2.0) if d_in == 1 else ((-2.0, 2.0),) * 2
    p = regions.partition(model, domain)
    assert p.stats.get("pieces_before_max_merge", p.stats.get("faces_before_max_merge")) > len(p)
    assert len(regions.partition(model, domain, max_regions=len(p))) == len(p)
    with pytest.raises(regions.TooManyRegions, match=f"at least {len(p)} "):
        regions.partition(model, domain, max_regions=len(p) - 1)


@pytest.mark.parametrize("d_in", [1, 2])
def test_on_a_dense_grid_no_two_neighbouring_regions_have_one_argmax_and_other_bits(d_in):
    # brute force: torch's key of every grid point (the ReLU states and the argmax of
    # the max of 4); grid neighbours in different regions must have different keys,
    # and all the points of one region one key
    model, _ = _bench_residual().max_model(64 if d_in == 1 else 10, 4, 17, d_in)
    g = np.linspace(-2.0, 2.0, 4001 if d_in == 1 else 401)
    grid = g[:, None] if d_in == 1 else np.stack(np.meshgrid(g, g, indexing="ij"), -1)
    x = grid.reshape(-1, d_in)
    with torch.no_grad():
        h = model.a(torch.as_tensor(x))
        scores = model.b(torch.relu(h))
    key = np.column_stack([h.numpy() > 0, scores.argmax(1).numpy()]).astype(np.int64)
    p = regions.partition(model, (-2.0, 2.0) if d_in == 1 else ((-2.0, 2.0),) * 2)
    assert p.stats.get("pieces_before_max_merge", p.stats.get("faces_before_max_merge")) > len(p)
    r = p.locate(x[:, 0] if d_in == 1 else x).reshape(grid.shape[:-1])
    key = key.reshape(grid.shape[:-1] + (-1,))
    for axis in range(d_in):
        n = r.shape[axis]
        a = [np.take(v, np.arange(n - 1), axis=axis) for v in (r, key)]
        b = [np.take(v, np.arange(1, n), axis=axis) for v in (r, key)]
        apart = a[0] != b[0]
        assert apart.any()
        assert not np.any(np.all(a[1][apart] == b[1][apart], axis=-1)), "one key, two regions"
        same = ~apart   # and one region, one key
        assert np.all(a[1][same] == b[1][same])
    step = (g[1] - g[0]) * np.sqrt(d_in)
    wide = np.flatnonzero(p.inradius > step) if d_in == 2 else np.flatnonzero(p.measure > step)
    assert np.isin(wide, r).all(), "the grid misses a region wider than its step"
