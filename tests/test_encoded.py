"""Encodings and the encoded 1D engine (regions/encoding.py, regions/encoded.py,
kernels/trig.py) against dense sampling with bisection, the torch forward pass
and constructed roots known in closed form."""
import numpy as np
import pytest
import torch

import regions
from regions.encoded import grid_crossings, partition_encoded_1d, partition_encoded_segment
from regions.encoding import PositionalEncoding, RandomFourierFeatures
from regions.network import as_network
from torch_reference import bisect_breakpoints, torch_patterns_and_output


def encoded_mlp(enc, widths, seed, bias_std=0.1, torch_init=False):
    g = torch.Generator().manual_seed(seed)
    mods = [enc]
    sizes = [enc.out_features] + list(widths)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(a, b).double()
        if not torch_init:
            with torch.no_grad():
                lin.weight.copy_(torch.randn(b, a, generator=g, dtype=torch.float64)
                                 * np.sqrt(2.0 / a))
                lin.bias.copy_(torch.randn(b, generator=g, dtype=torch.float64) * bias_std)
        mods.append(lin)
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def one_neuron(enc, row, bias):
    lin = torch.nn.Linear(enc.out_features, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(np.asarray(row)[None, :], dtype=torch.float64))
        lin.bias.fill_(bias)
    out = torch.nn.Linear(1, 1).double()
    return torch.nn.Sequential(enc, lin, torch.nn.ReLU(), out)


def numpy_patterns(model):
    net = as_network(model)

    def f(u):
        return net.patterns(net.encoding.encode_numpy(np.asarray(u)[:, None]))
    return f


# ---------------------------------------------------------------- encodings

def test_positional_encoding_features_follow_the_paper():
    pe = PositionalEncoding(3, in_features=2)
    p = np.array([[0.3, 0.7], [0.1, 0.9]])
    out = pe(torch.tensor(p)).numpy()
    expect = []
    for l in range(3):
        w = 2.0 ** l * np.pi
        expect += [np.sin(w * p[:, 0]), np.cos(w * p[:, 0]), np.sin(w * p[:, 1]), np.cos(w * p[:, 1])]
    np.testing.assert_allclose(out, np.stack(expect, axis=1), atol=1e-15)
    pe_in = PositionalEncoding(2, in_features=1, include_input=True, base=3.0)
    out = pe_in(torch.tensor([[0.2]], dtype=torch.float64)).numpy()[0]
    np.testing.assert_allclose(out, [0.2, np.sin(0.2 * np.pi), np.cos(0.2 * np.pi),
                                     np.sin(0.6 * np.pi), np.cos(0.6 * np.pi)], atol=1e-15)
    with pytest.raises(ValueError, match="in_features"):
        PositionalEncoding(2, in_features=3)
    with pytest.raises(ValueError, match="L"):
        PositionalEncoding(0)


def test_encodings_round_trip_through_state_dict():
    model = encoded_mlp(PositionalEncoding(4, 2, include_input=True), [8, 1], 0)
    fresh = encoded_mlp(PositionalEncoding(4, 2, include_input=True), [8, 1], 1)
    fresh.load_state_dict(model.state_dict())
    x = torch.rand(10, 2, dtype=torch.float64)
    assert torch.equal(model(x), fresh(x))
    rff = RandomFourierFeatures(2, 6, sigma=4.0, seed=3)
    assert torch.equal(rff.B, RandomFourierFeatures(2, 6, 4.0, seed=3).B)
    assert not torch.equal(rff.B, RandomFourierFeatures(2, 6, 4.0, seed=4).B)
    assert "B" in rff.state_dict()
    other = RandomFourierFeatures(2, 6, sigma=4.0, seed=99)
    other.load_state_dict(rff.state_dict())
    assert torch.equal(other(x), rff(x))
    # a state_dict with only the frequency matrix defines the features too
    other2 = RandomFourierFeatures(2, 6, sigma=4.0, seed=98)
    other2.load_state_dict({"B": rff.B.clone(), "kinds": rff.kinds.clone(),
                            "omegas": torch.zeros_like(rff.omegas)})
    assert torch.equal(other2(x), rff(x))
    ph = 2 * np.pi * x.numpy() @ rff.B.numpy().T
    np.testing.assert_allclose(rff(x).numpy()[:, 0::2], np.sin(ph), atol=1e-12)
    np.testing.assert_allclose(rff(x).numpy()[:, 1::2], np.cos(ph), atol=1e-12)


# ----------------------------------------------------- encoded 1D vs sampling

@pytest.mark.parametrize("L,widths,seed", [(1, [12, 12, 1], 0), (4, [16, 16, 1], 1),
                                           (7, [16, 16, 1], 2), (10, [16, 16, 1], 3)])
def test_encoded_1d_against_dense_sampling(L, widths, seed):
    model = encoded_mlp(PositionalEncoding(L), widths, seed, bias_std=0.2)
    p = partition_encoded_1d(model, (0.0, 1.0), progress=False)
    u = np.linspace(0.0, 1.0, 1_000_001)
    ref, pats = bisect_breakpoints(numpy_patterns(model), u)
    # every sample lies in a piece with its pattern
    idx = p.locate(u)
    assert np.array_equal(p.patterns[idx], pats)
    bp = p.breakpoints
    assert len(p) >= len(ref) + 1
    # every breakpoint found by sampling + bisection is an engine breakpoint (1e-9)
    j = np.clip(np.searchsorted(bp, ref), 1, len(bp) - 1)
    dist = np.minimum(np.abs(bp[j] - ref), np.abs(bp[j - 1] - ref))
    assert dist.max() < 1e-9
    # every engine breakpoint sampling did not see shares its grid cell with another one
    k = np.clip(np.searchsorted(ref, bp), 1, max(len(ref) - 1, 1))
    seen = np.minimum(np.abs(ref[k] - bp), np.abs(ref[k - 1] - bp)) < 1e-9 if len(ref) > 1 \
        else np.zeros(len(bp), bool)
    cell = np.searchsorted(u, bp)
    per_cell = np.bincount(cell, minlength=len(u) + 1)
    assert np.all(per_cell[cell[~seen]] >= 2)
    assert p.measure.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.all(np.diff(p.points) > 0)


def test_encoded_1d_against_torch_forward():
    model = encoded_mlp(PositionalEncoding(6), [32, 32, 32, 2], 5, torch_init=True)
    p = partition_encoded_1d(model, (0.0, 1.0), progress=False)
    u = np.random.default_rng(0).uniform(0, 1, 20000)
    pats, out = torch_patterns_and_output(model, u[:, None])
    idx = p.locate(u)
    assert np.array_equal(p.patterns[idx], pats)
    np.testing.assert_allclose(p.evaluate(u), out, atol=1e-9)
    A, c = p.affine
    assert A.shape == (len(p), 2, 12) and c.shape == (len(p), 2)
    feats = model[0](torch.tensor(u[:, None])).numpy()
    np.testing.assert_allclose(np.einsum("mof,mf->mo", A[idx], feats) + c[idx], out, atol=1e-9)
    # pattern ids group equal patterns
    pid = p.pattern_id
    assert pid.max() + 1 == len(np.unique(p.patterns, axis=0))
    assert np.all(np.any(p.patterns[1:] != p.patterns[:-1], axis=1))
    first = {}
    for i, row in enumerate(map(bytes, np.packbits(p.patterns, axis=1))):
        assert first.setdefault(row, pid[i]) == pid[i]


def test_random_fourier_features_and_leaky():
    rff = RandomFourierFeatures(1, 8, sigma=3.0, seed=0, include_input=True)
    model = encoded_mlp(rff, [16, 16, 1], 1)
    model[2] = torch.nn.LeakyReLU(0.05)
    p = partition_encoded_1d(model, (-1.0, 1.0), progress=False)
    u = np.random.default_rng(1).uniform(-1, 1, 20000)
    pats, out = torch_patterns_and_output(model, u[:, None])
    assert np.array_equal(p.patterns[p.locate(u)], pats)
    np.testing.assert_allclose(p.evaluate(u), out, atol=1e-9)


# ------------------------------------------------------- constructed roots

def test_two_roots_closer_than_any_grid_step():
    # z = sin(2^9 pi t) - (1 - d): two roots around each of the 256 peaks in [0, 1],
    # 2 arccos(1 - d) / w ~ 5.6e-7 apart: closer than the 1e-6 step of a 10^6 grid
    L, d = 10, 1e-7
    w = 2.0 ** 9 * np.pi
    row = np.zeros(2 * L)
    row[2 * 9] = 1.0
    model = one_neuron(PositionalEncoding(L), row, -(1 - d))
    p = partition_encoded_1d(model, (0.0, 1.0), progress=False)
    a = np.arcsin(1 - d)
    m = np.arange(256)
    exact = np.sort(np.concatenate([(a + 2 * np.pi * m) / w, (np.pi - a + 2 * np.pi * m) / w]))
    assert len(p.breakpoints) == 512
    np.testing.assert_allclose(p.breakpoints, exact, atol=1e-11)
    assert np.diff(exact).min() < 1e-6
    # on between each pair, off elsewhere
    assert p.patterns[:, 0].tolist() == [False, True] * 256 + [False]
    # a 10^6 grid misses some of these pieces: sampling is only a lower bound
    n_sampled, _ = regions.sampled_patterns(model, np.linspace(0, 1, 1_000_000)[:, None])
    assert n_sampled <= p.n_patterns == 2


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_tangency_changes_no_state(sign):
    # z = sin(2 pi t) - 1 touches 0 at t = 1/4 from below (off on the whole interval);
    # z = -sin(2 pi t) + 1 touches it from above (on everywhere except one point)
    row = np.zeros(8)
    row[0] = sign
    model = one_neuron(PositionalEncoding(4), row, -sign)
    p = partition_encoded_1d(model, (0.0, 1.0), progress=False)
    assert len(p) == 1
    assert p.patterns[0, 0] == (sign < 0)
    # with a real crossing elsewhere the tangency still adds nothing:
    # z = sin(2 pi t) - 1 + 0.5 (sin(4 pi t) + 1) ... built as a 2-neuron layer
    lin = torch.nn.Linear(8, 2).double()
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, 0] = 1.0          # sin(pi t) - 1: tangent at t = 1/2
        lin.weight[1, 2] = 1.0          # sin(2 pi t): roots at 1/2 (inside)
        lin.bias.copy_(torch.tensor([-1.0, 0.0], dtype=torch.float64))
    m2 = torch.nn.Sequential(PositionalEncoding(4), lin, torch.nn.ReLU(), torch.nn.Linear(2, 1))
    p2 = partition_encoded_1d(m2, (0.0, 1.0), progress=False)
    np.testing.assert_allclose(p2.breakpoints, [0.5], atol=1e-12)
    assert not p2.patterns[:, 0].any()


def test_pattern_recurs_on_disjoint_pieces():
    row = np.zeros(2)
    row[0] = 1.0                        # sin(pi t) on [0, 4]: on, off, on, off
    model = one_neuron(PositionalEncoding(1), row, 0.0)
    p = partition_encoded_1d(model, (0.0, 4.0), progress=False)
    np.testing.assert_allclose(p.breakpoints, [1.0, 2.0, 3.0], atol=1e-12)
    assert p.pattern_id.tolist() == [0, 1, 0, 1]
    assert p.n_patterns == 2


# ------------------------------------------------------------- lines in 2D

def test_segment_in_2d_against_sampling():
    model = encoded_mlp(PositionalEncoding(3, in_features=2), [24, 24, 1], 4)
    p0, p1 = np.array([0.1, 0.9]), np.array([0.8, 0.05])
    p = partition_encoded_segment(model, p0, p1, progress=False)
    t = np.linspace(0, 1, 200001)
    x = p0 + t[:, None] * (p1 - p0)
    pats, out = torch_patterns_and_output(model, x)
    assert np.array_equal(p.patterns[p.locate(t)], pats)
    np.testing.assert_allclose(p.evaluate(t), out, atol=1e-9)


def test_grid_crossings_match_the_lines():
    model = encoded_mlp(PositionalEncoding(2, in_features=2), [10, 10, 1], 6)
    H, W = 7, 9
    g = grid_crossings(model, shape=(H, W), progress=False)
    assert g.row_crossings.shape == (H, W - 1) and g.col_crossings.shape == (H - 1, W)
    net = as_network(model)
    xx, yy = np.meshgrid(g.xs, g.ys)
    pats = net.patterns(net.encoding.encode_numpy(np.stack([xx.ravel(), yy.ravel()], 1)))
    pats = pats.reshape(H, W, -1)
    np.testing.assert_array_equal(g.row_hamming, np.count_nonzero(pats[:, 1:] != pats[:, :-1], axis=2))
    np.testing.assert_array_equal(g.col_hamming, np.count_nonzero(pats[1:] != pats[:-1], axis=2))
    # a neighbouring pair with different patterns is separated by at least one boundary
    assert np.all(g.row_crossings[g.row_hamming > 0] >= 1)
    assert np.all(g.col_crossings[g.col_hamming > 0] >= 1)
    for i in range(H):
        assert g.row_crossings[i].sum() == np.count_nonzero(g.row_breakpoints[i] > g.xs[0])
        assert g.row_pieces[i] == len(g.row_breakpoints[i]) + 1
    # the counts agree with an independent segment computation of one row
    q = partition_encoded_segment(model, [0.0, g.ys[3]], [1.0, g.ys[3]], progress=False)
    np.testing.assert_allclose(q.breakpoints, g.row_breakpoints[3], atol=1e-12)


def test_encoded_errors():
    model = encoded_mlp(PositionalEncoding(2, in_features=2), [4, 1], 0)
    with pytest.raises(ValueError, match="Segment"):
        partition_encoded_1d(model, (0.0, 1.0))
    raw = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="encoding"):
        partition_encoded_1d(raw, (0.0, 1.0))
    big = encoded_mlp(PositionalEncoding(8), [32, 32, 1], 0)
    with pytest.raises(RuntimeError, match="max_regions=3"):
        partition_encoded_1d(big, (0.0, 1.0), max_regions=3, progress=False)


def test_zero_and_cancelling_neurons_are_cleared():
    # base=1 repeats the frequency pi: sin(pi t) - sin(pi t) is identically zero,
    # a zero row is zero; both stay off and add no breakpoint; cos(pi t) + 0.1 cuts twice
    pe = PositionalEncoding(3, base=1.0)
    lin = torch.nn.Linear(6, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1, 0, -1, 0, 0, 0], [0] * 6, [0, 1, 0, 0, 0, 0]],
                                      dtype=torch.float64))
        lin.bias.copy_(torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64))
    model = torch.nn.Sequential(pe, lin, torch.nn.ReLU(), torch.nn.Linear(3, 1).double())
    p = partition_encoded_1d(model, (0.0, 2.0), progress=False)
    r = np.arccos(-0.1) / np.pi
    np.testing.assert_allclose(p.breakpoints, [r, 2 - r], atol=1e-12)
    assert p.patterns.astype(int).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 1]]
    assert p.stats["boxes"] < 100


def test_feature_table_stays_float64_through_dtype_casts():
    model = encoded_mlp(PositionalEncoding(10), [4, 1], 0).float()
    assert model[0].omegas.dtype == torch.float64
    x = torch.rand(5, 1)
    assert model(x).dtype == torch.float32
    rff = RandomFourierFeatures(1, 3, 2.0, seed=1)
    B = rff.B.clone()
    rff.half()
    assert rff.B.dtype == torch.float64 and torch.equal(rff.B, B)


# ------------------------------------------------- state_dict of an encoded model

def _same_partition(p, q):
    assert type(q) is type(p) and len(q) == len(p)
    np.testing.assert_array_equal(q.points, p.points)
    np.testing.assert_array_equal(q.packed_patterns, p.packed_patterns)
    for a, b in zip(q.affine, p.affine):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(q.network.encoding.feature_spec(), p.network.encoding.feature_spec()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("which", ["pe", "pe_input_base3", "rff", "pe2d_segment"])
def test_state_dict_of_encoded_model_partitions_like_the_model(which):
    if which == "pe":
        model, domain = encoded_mlp(PositionalEncoding(5), [16, 16, 1], 7), (0.0, 1.0)
    elif which == "pe_input_base3":
        model = encoded_mlp(PositionalEncoding(3, include_input=True, base=3.0), [12, 2], 8)
        domain = (-1.0, 1.5)
    elif which == "rff":
        model, domain = encoded_mlp(RandomFourierFeatures(1, 6, 2.0, seed=1, include_input=True),
                                    [16, 16, 1], 9), (-1.0, 1.0)
    else:
        model = encoded_mlp(PositionalEncoding(3, in_features=2), [16, 16, 1], 10)
        domain = regions.Segment([0.1, 0.9], [0.8, 0.2])
    p = regions.partition(model, domain, progress=False)
    for sd in (model.state_dict(), {k: v.numpy() for k, v in model.state_dict().items()}):
        q = regions.partition(sd, domain, progress=False)
        _same_partition(p, q)
    # and the torch forward pass of the model agrees with the state_dict's partition
    t = np.random.default_rng(0).uniform(p.points[0], p.points[-1], 5000)
    x = t[:, None] if not isinstance(domain, regions.Segment) else domain.origin + t[:, None] * domain.basis[:, 0]
    pats, out = torch_patterns_and_output(model, x)
    np.testing.assert_array_equal(q.patterns[q.locate(t)], pats)
    np.testing.assert_allclose(q.evaluate(t), out, atol=1e-9)


def test_state_dict_rff_frequency_matrix_wins_as_in_load_state_dict():
    # RandomFourierFeatures' load hook rebuilds omegas from B: an edited B must count
    model = encoded_mlp(RandomFourierFeatures(1, 4, 1.0, seed=2), [10, 1], 3)
    sd = model.state_dict()
    sd["0.B"] = sd["0.B"] * 1.7
    loaded = encoded_mlp(RandomFourierFeatures(1, 4, 1.0, seed=5), [10, 1], 4)
    loaded.load_state_dict(sd)
    assert not torch.equal(loaded[0].omegas, model[0].omegas)
    _same_partition(regions.partition(loaded, (0.0, 1.0), progress=False),
                    regions.partition(sd, (0.0, 1.0), progress=False))
    # B alone (no omegas) is enough; kinds tell whether raw inputs come first
    del sd["0.omegas"]
    _same_partition(regions.partition(loaded, (0.0, 1.0), progress=False),
                    regions.partition(sd, (0.0, 1.0), progress=False))


def test_state_dict_of_encoded_model_is_never_read_as_raw():
    # PE(1) of a 1D coordinate has 2 features: read as raw weights, this state_dict
    # would be a 2-input network and a box domain would silently give a wrong partition
    model = encoded_mlp(PositionalEncoding(1), [6, 1], 0)
    sd = model.state_dict()
    assert as_network(sd).input_dim == 1 and as_network(sd).encoding is not None
    with pytest.raises(ValueError, match="2-dimensional input space but the network takes 1"):
        regions.partition(sd, ((0, 1), (0, 1)))
    model2 = encoded_mlp(PositionalEncoding(2, in_features=2), [6, 1], 0)
    # a 2D PE model read from its state_dict partitions in 2D (tests/test_encoded2d.py)
    assert regions.partition(model2.state_dict(), ((0, 1), (0, 1))).dim == 2
    # part of the feature table: refused, saying what to pass instead
    partial = dict(sd)
    del partial["0.omegas"]
    with pytest.raises(ValueError, match=r"missing \['0.omegas'\].*pass the nn.Sequential"):
        regions.partition(partial, (0, 1))
    # an unknown input module before the first Linear layer: refused too
    custom = {"0.freqs": torch.ones(3), **{k: v for k, v in sd.items() if not k.startswith("0.")}}
    with pytest.raises(ValueError, match=r"'0.freqs'.*pass the nn.Sequential"):
        as_network(custom)
    # an encoding buffer after a Linear layer
    late = {k: v for k, v in sd.items() if not k.startswith("0.")}
    late.update({"9.kinds": sd["0.kinds"], "9.omegas": sd["0.omegas"]})
    with pytest.raises(ValueError, match="first module"):
        as_network(late)
    # a raw state_dict is read as before
    raw = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    assert as_network(raw.state_dict()).encoding is None


# ------------------------------------------------------------------ level sets

def torch_output(model, u, output=0):
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(u, dtype=np.float64)[:, None])).numpy()[:, output]


def bisect_level(model, u, value, output=0):
    """Every sign change of (output - value) between grid points, bisected by torch."""
    s = torch_output(model, u, output) - value > 0
    cell = np.flatnonzero(s[1:] != s[:-1])
    a, b = u[cell].copy(), u[cell + 1].copy()
    sa = s[cell]
    for _ in range(60):
        m = 0.5 * (a + b)
        same = (torch_output(model, m, output) - value > 0) == sa
        a = np.where(same, m, a)
        b = np.where(same, b, m)
    return 0.5 * (a + b), cell


def check_level_set_against_grid(model, p, value, output, u):
    roots = p.level_set(value, output)
    assert roots.dtype == np.float64 and roots.ndim == 1 and np.all(np.diff(roots) > 0)
    ref, cell = bisect_level(model, u, value, output)
    assert len(ref) >= 4, "the case should cross the level several times"
    # every crossing the grid sees is a root of the engine
    j = np.clip(np.searchsorted(roots, ref), 1, len(roots) - 1)
    dist = np.minimum(np.abs(roots[j] - ref), np.abs(roots[j - 1] - ref))
    assert dist.max() < 1e-9
    # in every grid cell the number of roots has the parity of the sign change:
    # a root the grid did not see comes with another one in the same cell
    per_cell = np.bincount(np.searchsorted(u, roots) - 1, minlength=len(u) - 1)
    change = np.zeros(len(u) - 1, dtype=np.int64)
    change[cell] = 1
    np.testing.assert_array_equal(per_cell % 2, change)
    # the output is the level at every root (torch, relative to the output's scale)
    scale = np.abs(torch_output(model, u[::1000], output)).max() + abs(value)
    assert np.abs(torch_output(model, roots, output) - value).max() < 1e-9 * scale
    return roots, ref


@pytest.mark.parametrize("L,widths,seed,output,q", [(3, [16, 16, 1], 11, 0, 0.5),
                                                    (6, [24, 24, 2], 12, 1, 0.3),
                                                    (8, [16, 16, 16, 1], 13, 0, 0.7)])
def test_level_set_against_dense_grid(L, widths, seed, output, q):
    model = encoded_mlp(PositionalEncoding(L), widths, seed, bias_std=0.2)
    p = partition_encoded_1d(model, (0.0, 1.0), progress=False)
    u = np.linspace(0.0, 1.0, 1_000_001)
    value = float(np.quantile(torch_output(model, u[::997], output), q))
    check_level_set_against_grid(model, p, value, output, u)


def test_level_set_rff_leaky_two_outputs():
    rff = RandomFourierFeatures(1, 8, sigma=2.0, seed=4, include_input=True)
    model = encoded_mlp(rff, [16, 16, 2], 14)
    model[2] = torch.nn.LeakyReLU(0.1)
    p = partition_encoded_1d(model, (-1.0, 1.0), progress=False)
    u = np.linspace(-1.0, 1.0, 1_000_001)
    for output in (0, 1):
        value = float(np.median(torch_output(model, u[::997], output)))
        check_level_set_against_grid(model, p, value, output, u)
    with pytest.raises(ValueError, match="out of range"):
        p.level_set(0.0, output=2)


def test_level_set_root_pairs_closer_than_the_grid_step():
    # output = relu(sin(2^9 pi t)): the level 1 - d is crossed twice around each of the
    # 256 peaks, 2 arccos(1 - d) / w ~ 5.6e-7 apart, closer than the 1e-6 grid step
    L, d = 10, 1e-7
    w = 2.0 ** 9 * np.pi
    row = np.zeros(2 * L)
    row[2 * 9] = 1.0
    model = one_neuron(PositionalEncoding(L), row, 0.0)
    with torch.no_grad():
        model[3].weight.fill_(1.0)
        model[3].bias.fill_(0.0)
    p = partition_encoded_1d(model, (0.0, 1.0), progress=False)
    roots = p.level_set(1 - d)
    a = np.arcsin(1 - d)
    m = np.arange(256)
    exact = np.sort(np.concatenate([(a + 2 * np.pi * m) / w, (np.pi - a + 2 * np.pi * m) / w]))
    assert len(roots) == 512
    np.testing.assert_allclose(roots, exact, atol=1e-11)
    # a 10^6 grid sees only some of the pairs; every one it sees is there
    u = np.linspace(0.0, 1.0, 1_000_001)
    ref, _ = bisect_level(model, u, 1 - d)
    assert len(ref) < 512
    assert np.abs(roots[np.argmin(np.abs(roots[:, None] - ref[None, :]), axis=0)] - ref).max() < 1e-9
    # the level 1 is only touched (a tangency at every peak): no root, as for breakpoints
    assert len(p.level_set(1.0)) == 0


def test_level_set_at_breakpoints_and_on_flat_pieces():
    # relu(z) - relu(-z) = z = sin(pi t) on [0, 4]: it crosses 0 exactly at the
    # breakpoints 1, 2, 3, where both neurons switch and the pieces change
    lin = torch.nn.Linear(2, 2).double()
    out = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64))
        lin.bias.zero_()
        out.weight.copy_(torch.tensor([[1.0, -1.0]], dtype=torch.float64))
        out.bias.zero_()
    model = torch.nn.Sequential(PositionalEncoding(1), lin, torch.nn.ReLU(), out)
    p = partition_encoded_1d(model, (0.0, 4.0), progress=False)
    np.testing.assert_allclose(p.breakpoints, [1, 2, 3], atol=1e-12)
    roots = p.level_set(0.0)
    np.testing.assert_allclose(roots, [1, 2, 3], atol=1e-12)
    r = np.arcsin(0.25) / np.pi
    np.testing.assert_allclose(p.level_set(0.25), [r, 1 - r, 2 + r, 3 - r], atol=1e-12)
    np.testing.assert_allclose(p.level_set(-0.25), [1 + r, 2 - r, 3 + r, 4 - r], atol=1e-12)
    # relu(sin(pi t)): 0 on [1, 2] and [3, 4]; those flat pieces are reported by
    # their ends (as Partition1D.level_set does); the zero at t = 0 has no sign
    # change and is not reported
    one = one_neuron(PositionalEncoding(1), [1.0, 0.0], 0.0)
    with torch.no_grad():
        one[3].weight.fill_(1.0)
        one[3].bias.fill_(0.0)
    q = partition_encoded_1d(one, (0.0, 4.0), progress=False)
    np.testing.assert_allclose(q.level_set(0.0), [1, 2, 3, 4], atol=1e-12)
    np.testing.assert_allclose(q.level_set(0.5), [1 / 6, 5 / 6, 2 + 1 / 6, 2 + 5 / 6], atol=1e-12)
    assert len(q.level_set(-0.5)) == 0 and len(q.level_set(1.5)) == 0
