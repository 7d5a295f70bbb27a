"""Reading torch models as their authors wrote them (regions.trace), against torch itself.

The oracle is torch: outputs are ``model(x)`` in float64, and activation
states are read from the values torch computes at every activation node
(a ``torch.fx.Interpreter`` running the real modules and functions of the
traced graph, and forward hooks on the activation modules).
"""
import operator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import regions
from regions.network import as_network
from regions.trace import trace

RNG = np.random.default_rng(20261202)


def _init(model, seed):
    torch.manual_seed(seed)
    for m in model.modules():
        for p in m.parameters(recurse=False):
            with torch.no_grad():
                p.copy_(torch.randn_like(p) * 0.7)
    return model.double()


class Coord(nn.Module):
    """The issue's example: residual blocks, an input skip, a positional encoding."""

    def __init__(self):
        super().__init__()
        self.enc = regions.PositionalEncoding(4)
        self.inp = nn.Linear(8, 64)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
                                    for _ in range(2))
        self.skip = nn.Linear(64 + 8, 64)
        self.out = nn.Linear(64, 1)

    def forward(self, p):
        e = self.enc(p)
        h = torch.relu(self.inp(e))
        for blk in self.blocks:
            h = torch.relu(h + blk(h))  # residual
        h = torch.relu(self.skip(torch.cat([h, e], -1)))  # input skip
        return self.out(h)


class Raw2D(nn.Module):
    """Raw 2D coordinates: residual block, NeRF-style input concatenation, LeakyReLU,
    slicing, constant scaling, a subtraction and a functional relu."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 12)
        self.res = nn.Sequential(nn.Linear(12, 12), nn.LeakyReLU(0.1), nn.Linear(12, 12))
        self.mid = nn.Linear(12 + 2, 10)
        self.out = nn.Linear(10 + 4, 2)

    def forward(self, x):
        h = F.relu(self.a(x))
        h = h + 0.5 * self.res(h)
        g = torch.relu(self.mid(torch.cat([h, x], dim=1)) - 0.1)
        return self.out(torch.cat([g, h[:, :3], x[..., 1:]], -1)) / 2.0


class MaxNet(nn.Module):
    """Max over groups: MaxPool1d over features, maxout (a max over a viewed axis, a tree
    of three), torch.maximum and torch.min of two tensors."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 12)
        self.pool = nn.MaxPool1d(2)
        self.b = nn.Linear(6, 9)
        self.c = nn.Linear(3, 4)
        self.d = nn.Linear(3, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, x):
        h = self.pool(self.a(x).unsqueeze(1)).flatten(1)            # 12 -> 6
        m = self.b(h).view(x.shape[0], 3, 3).max(dim=-1).values     # maxout, groups of 3
        u = torch.maximum(self.c(m), self.d(m))
        return self.out(torch.min(u, -self.c(m)))


class Clamps(nn.Module):
    """PReLU (one and per-channel slopes), ReLU6, Hardtanh, clamp."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 6)
        self.p1 = nn.PReLU()
        self.b = nn.Linear(6, 6)
        self.p6 = nn.PReLU(6)
        self.c = nn.Linear(6, 5)
        self.r6 = nn.ReLU6()
        self.ht = nn.Hardtanh(-0.5, 0.8)
        self.out = nn.Linear(15, 1)

    def forward(self, x):
        h = self.p6(self.b(self.p1(self.a(x) * 3.0)))
        z = self.c(h) * 4.0
        return self.out(torch.cat([self.r6(z), self.ht(z), z.clamp(min=-0.2)], -1))


class Chain(nn.Module):
    """A custom forward that is really a chain: functional relu, a scaled Linear,
    leaky relu, and a bias added by hand."""

    def __init__(self, d_in):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(d_in, 8), nn.Linear(8, 8), nn.Linear(8, 1)
        self.shift = nn.Parameter(torch.zeros(8))

    def forward(self, x):
        h = F.relu(self.a(x))
        h = F.leaky_relu(2.0 * self.b(h) + self.shift, 0.2)
        return self.c(h)


def _prelu_slopes(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.linspace(-0.3, 0.6, m.weight.numel(), dtype=m.weight.dtype))
    return model


# --- the oracle ------------------------------------------------------------------

class _Recorder(torch.fx.Interpreter):
    """Runs the traced graph with torch, keeping each node's input values."""

    def run_node(self, n):
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        self.inputs[n.name] = (args, kwargs)
        return super().run_node(n)


def _tree_bits(values, sign):
    """Bits of a balanced tree of pairwise maxes (sign=1) over the last axis, level by level."""
    items = [values[..., i] for i in range(values.shape[-1])]
    levels = []
    while len(items) > 1:
        a = np.stack(items[0:len(items) - 1:2], -1)
        b = np.stack(items[1:len(items):2], -1)
        levels.append(np.moveaxis(sign * a > sign * b, -1, 0))
        winners = np.where(sign * a > sign * b, a, b)
        nxt = [winners[..., i] for i in range(winners.shape[-1])]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return levels


def bits_of_winners(winner, k):
    """The documented bits of a max over ``k`` values whose argmax is ``winner``
    (``(n, *out)`` ints): those the balanced tree gives for the indicator vector of
    the winner (on its path, 1 where it is the first argument; 0 everywhere else),
    one ``(n, pairs, *out)`` array per tree level."""
    one_hot = (np.arange(k) == np.asarray(winner)[..., None]).astype(float)
    return [np.moveaxis(b, 0, 1) for b in _tree_bits(one_hot, 1.0)]


def winner_bits(values):
    """:func:`bits_of_winners` of torch's argmax over the last axis of ``values``."""
    return bits_of_winners(torch.as_tensor(values).argmax(dim=-1).numpy(), values.shape[-1])


_MAX_KINDS = {"maximum": 1.0, "max": 1.0, "minimum": -1.0, "min": -1.0}


def _nested_leaves(traced, rec, node):
    """The leaf values of a nested chain of two-argument maxes rooted at ``node``, in
    order: an operand that is a max of the same kind which created no bits is an inner
    node of the chain (folded into the root's k-way max)."""
    args, _ = rec.inputs[node.name]
    leaves = []
    for a, v in zip(node.args[:2], args[:2]):
        inner = (isinstance(a, torch.fx.Node) and a.op in ("call_function", "call_method")
                 and a.name not in traced.pattern_index
                 and _MAX_KINDS.get(getattr(a.target, "__name__", a.target))
                 == _MAX_KINDS[getattr(node.target, "__name__", node.target)])
        leaves += _nested_leaves(traced, rec, a) if inner else [v.numpy()]
    return leaves


def torch_states(traced, x):
    """``node name -> list of (n, *block shape) bool arrays``, from torch's values."""
    gm = traced.graph_module
    rec = _Recorder(gm)
    rec.inputs = {}
    with torch.no_grad():
        rec.run(torch.as_tensor(x))
    out = {}
    for node in gm.graph.nodes:
        if node.name not in traced.pattern_index:
            continue
        args, kwargs = rec.inputs[node.name]
        z = args[0].numpy() if isinstance(args[0], torch.Tensor) else None
        kind = (type(gm.get_submodule(node.target)).__name__ if node.op == "call_module"
                else getattr(node.target, "__name__", node.target))
        if kind in _MAX_KINDS and node.name in traced.max_inputs and len(args) > 1 \
                and isinstance(args[1], torch.Tensor):  # a nested max folded into one
            leaves = _nested_leaves(traced, rec, node)
            assert len(leaves) == traced.max_inputs[node.name]
            values = np.stack(np.broadcast_arrays(*leaves), -1)
            out[node.name] = winner_bits(_MAX_KINDS[kind] * values)
        elif kind in ("ReLU", "LeakyReLU", "PReLU", "relu", "leaky_relu"):
            out[node.name] = [z > 0]
        elif kind in ("ReLU6", "Hardtanh"):
            m = gm.get_submodule(node.target)
            out[node.name] = [z > m.min_val, z > m.max_val]
        elif kind == "clamp":
            out[node.name] = [z > kwargs["min"]]
        elif kind in ("maximum",):
            out[node.name] = [z > args[1].numpy()]
        elif kind in ("min",):
            out[node.name] = [z < args[1].numpy()]
        elif kind == "MaxPool1d":  # windows of k over the last axis, a tree per window
            m = gm.get_submodule(node.target)
            k, stride = m.kernel_size, m.stride or m.kernel_size
            starts = np.arange(0, z.shape[-1] - k + 1, stride)
            out[node.name] = winner_bits(z[..., starts[:, None] + np.arange(k)])
        elif kind in ("max", "amax"):  # x.max(dim=-1), amax(-1): a tree over the last axis
            out[node.name] = winner_bits(z)
        else:
            raise AssertionError(f"no oracle for {node.name} ({kind})")
    return out


def assemble(traced, states, n):
    """The Network's pattern as torch's states placed at the documented positions."""
    pattern = np.full((n, traced.network.n_hidden), -1, dtype=np.int8)
    for name, blocks in traced.pattern_index.items():
        assert len(blocks) == len(states[name]), name
        for idx, bits in zip(blocks, states[name]):
            assert bits.shape == (n,) + idx.shape, (name, bits.shape, idx.shape)
            pattern[:, idx.reshape(-1)] = bits.reshape(n, -1)
    assert np.all(pattern >= 0), "a pattern position no activation node claims"
    return pattern.astype(bool)


def network_input(net, x):
    return net.encoding.encode_numpy(x) if net.encoding is not None else x


def check_against_torch(model, x):
    traced = trace(model)
    net = traced.network
    with torch.no_grad():
        ref = model(torch.as_tensor(x)).numpy().reshape(len(x), -1)
    u = network_input(net, x)
    got = net.forward(u)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    expected = assemble(traced, torch_states(traced, x), len(x))
    assert np.array_equal(net.patterns(u, rtol=0), expected)
    # the as_network path gives the same network
    assert np.array_equal(as_network(model).forward(u), got)
    return traced


# --- reading ---------------------------------------------------------------------

def test_the_issue_coord_example_matches_torch():
    model = _init(Coord(), 1)
    traced = check_against_torch(model, RNG.uniform(0, 1, (300, 1)))
    net = traced.network
    # 5 relu layers of 64 and the final affine; residual streams and e are carried
    assert net.n_hidden == 64 * 6 and net.n_carried > 0
    assert net.encoding is model.enc
    # the encoded engine takes it (tests/test_carried.py checks the partition against torch)
    assert len(regions.partition(model, (0.0, 1.0))) > 1


def test_a_raw_2d_residual_and_skip_model_matches_torch():
    model = _init(Raw2D(), 2)
    traced = check_against_torch(model, RNG.normal(size=(400, 2)))
    assert traced.network.n_carried > 0
    # the raw engines take carried units (tests/test_carried.py checks them in depth)
    _check_partition(model, ((-1, 1), (-1, 1)), RNG.uniform(-1, 1, (200, 2)))


def test_max_pooling_and_maxout_match_torch():
    model = _init(MaxNet(), 3)
    traced = check_against_torch(model, RNG.normal(size=(400, 2)))
    idx = traced.pattern_index
    # MaxPool1d(2) over 12 features: one bit per pair; maxout of 3: two tree levels
    assert [b.shape for b in idx["pool"]] == [(1, 1, 6)]
    assert [b.shape for b in idx["max_1"]] == [(1, 3), (1, 3)]
    assert traced.network.n_hidden == 6 + 3 + 3 + 4 + 4
    # Traced.winners reads torch's argmax of the pool's windows and of the maxout
    x = RNG.normal(size=(300, 2))
    won = traced.winners(traced.network.patterns(x))
    assert sorted(won) == ["max_1", "pool"] and traced.max_inputs == {"pool": 2, "max_1": 3}
    with torch.no_grad():
        z = model.a(torch.as_tensor(x))
        h = model.pool(z.unsqueeze(1)).flatten(1)
        groups = model.b(h).view(len(x), 3, 3)
    assert np.array_equal(won["pool"], z.view(len(x), 1, 6, 2).argmax(-1).numpy())
    assert np.array_equal(won["max_1"], groups.argmax(-1).numpy())


class NestedMax(nn.Module):
    """A max of three slices of one ReLU layer, written several ways: ``nested``
    (torch.maximum of a torch.maximum), ``amax`` / ``max`` (of a torch.stack), ``kept``
    (the same function, but the inner max has a second user, ``m - m``), ``concat``
    (the inner max is also an output). ``relu=False``: the slices of the Linear itself
    (no ties at the zeros of the ReLU, so torch's argmax is the tree's winner)."""

    def __init__(self, how, d_in=2, relu=True):
        super().__init__()
        self.how, self.relu = how, relu
        self.a = nn.Linear(d_in, 12)

    def forward(self, x):
        h = F.relu(self.a(x)) if self.relu else self.a(x)
        a, b, c = h[:, :4], h[:, 4:8], h[:, 8:12]
        if self.how == "nested":
            return torch.maximum(torch.maximum(a, b), c)
        if self.how == "amax":
            return torch.stack([a, b, c], -1).amax(-1)
        if self.how == "max":
            return torch.max(torch.stack([a, b, c], -1), dim=-1).values
        if self.how == "right":      # max(a, max(b, c)), Tensor.max(other), torch.max(a, b)
            return torch.max(a, b.max(c))
        m = torch.maximum(a, b)
        if self.how == "kept":
            return torch.maximum(m, c) + (m - m)
        if self.how == "concat":
            return torch.cat([torch.maximum(m, c), m], -1)
        raise AssertionError(self.how)


def _canonical_per_point(p, x):
    """The set of (point index, canonical pattern) pairs: each point's region pattern."""
    r = p.locate(x)
    assert np.all(r >= 0)
    return {(i, bytes(np.packbits(p.patterns[j]))) for i, j in enumerate(r)}


def test_a_nested_max_of_one_kind_is_one_k_way_max():
    domain, seed = ((-1, 1), (-1, 1)), 2
    x = RNG.uniform(-1, 1, (400, 2))
    parts = {}
    for how in ("nested", "amax", "max", "right"):
        # the bits are torch's argmax of the leaves, placed as a tree of 3 per element
        # (two levels, recorded in max_trees); the inner max node creates nothing
        traced = check_against_torch(_init(NestedMax(how, relu=False), seed),
                                     RNG.normal(size=(300, 2)))
        root = next(iter(traced.max_inputs))
        assert traced.max_inputs == {root: 3} and sorted(traced.pattern_index) == [root]
        assert [b.shape for b in traced.pattern_index[root]] == [(1, 4), (1, 4)]
        assert traced.network.max_trees is not None and len(traced.network.max_trees) == 8
        model = _init(NestedMax(how), seed)
        traced = trace(model)
        assert traced.max_inputs == {root: 3}
        assert sorted(traced.pattern_index) == sorted(["relu", root])
        # Traced.winners: the index of a winning leaf in the order written (ties at the
        # zeros of the ReLU go to a later leaf, as in the tree)
        won = traced.winners(traced.network.patterns(x))[root]
        with torch.no_grad():
            h = F.relu(model.a(torch.as_tensor(x))).view(len(x), 3, 4).numpy()
        assert np.array_equal(np.take_along_axis(h, won[:, None], 1)[:, 0], h.max(1))
        parts[how] = _check_partition(model, domain, x)
    ref = parts["amax"]
    for how, p in parts.items():
        assert len(p) == len(ref), how
        assert np.array_equal(p.patterns, ref.patterns), how
        assert _canonical_per_point(p, x) == _canonical_per_point(ref, x), how
    # pairwise, the a-vs-b comparison cuts regions where c wins too: the same function
    # with the inner max used twice has strictly more regions
    kept = _init(NestedMax("kept"), seed)
    assert len(_check_partition(kept, domain, x)) > len(ref)


def test_a_nested_max_in_1d_and_a_min_chain():
    x = RNG.uniform(-1, 1, 200)
    nested = _check_partition(_init(NestedMax("nested", 1), 0), (-1.0, 1.0), x)
    amax = _check_partition(_init(NestedMax("amax", 1), 0), (-1.0, 1.0), x)
    kept = _check_partition(_init(NestedMax("kept", 1), 0), (-1.0, 1.0), x)
    assert len(nested) == len(amax) < len(kept)
    assert np.array_equal(nested.patterns, amax.patterns)

    class MinChain(nn.Module):       # min(min(a, b), min(c, d)): one min over 4
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 8)

        def forward(self, x):
            h = self.a(x)
            return torch.min(torch.minimum(h[:, 0:2], h[:, 2:4]), h[:, 4:6].min(h[:, 6:8]))
    traced = check_against_torch(_init(MinChain(), 1), RNG.normal(size=(300, 2)))
    assert traced.max_inputs == {"min_2": 4}
    assert [b.shape for b in traced.pattern_index["min_2"]] == [(2, 2), (1, 2)]


def test_an_inner_max_with_two_users_stays_pairwise():
    traced = check_against_torch(_init(NestedMax("concat", relu=False), 2),
                                 RNG.normal(size=(300, 2)))
    assert traced.max_inputs == {} and traced.network.max_trees is None
    assert [b.shape for b in traced.pattern_index["maximum"]] == [(4,)]
    assert [b.shape for b in traced.pattern_index["maximum_1"]] == [(4,)]
    model = _init(NestedMax("concat"), 2)
    traced = trace(model)
    assert traced.max_inputs == {} and traced.network.max_trees is None
    assert [b.shape for b in traced.pattern_index["maximum"]] == [(4,)]
    assert [b.shape for b in traced.pattern_index["maximum_1"]] == [(4,)]
    # the a-vs-b comparison is a region boundary everywhere: the bit of the region
    # each point falls in is a > b at that point, where c wins too
    x = RNG.uniform(-1, 1, (400, 2))
    p = _check_partition(model, ((-1, 1), (-1, 1)), x)
    with torch.no_grad():
        h = F.relu(model.a(torch.as_tensor(x))).numpy()
    (bit,) = traced.pattern_index["maximum"]
    got = p.patterns[p.locate(x)][:, bit]
    c_wins = h[:, 8:12] > np.maximum(h[:, :4], h[:, 4:8])
    assert np.array_equal(got, h[:, :4] > h[:, 4:8]) and np.any(c_wins & got) \
        and np.any(c_wins & ~got)
    # a max and a min do not fold either (MaxNet: torch.min of a torch.maximum)
    traced = trace(_init(MaxNet(), 3))
    assert [b.shape for b in traced.pattern_index["maximum"]] == [(4,)]
    assert [b.shape for b in traced.pattern_index["min_1"]] == [(4,)]


def test_an_inner_max_whose_outer_is_a_max_over_a_dim_is_pairwise():
    # torch.max(m, n) looks like a max of two tensors in the graph, but n is a size
    # (an int): the outer is a max over dim 1, and the inner max is lowered pairwise
    class OverDim(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 8)

        def forward(self, x):
            h = self.a(x)
            a, b = h[:, :4].view(-1, 2, 2), h[:, 4:].view(-1, 2, 2)
            return torch.max(torch.maximum(a, b), a.size(1)).values
    traced = check_against_torch(_init(OverDim(), 1), RNG.normal(size=(200, 2)))
    assert traced.max_inputs == {"max_1": 2}
    assert [b.shape for b in traced.pattern_index["maximum"]] == [(2, 2)]


def test_a_nested_max_of_shapes_that_do_not_broadcast_is_refused():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 11)

        def forward(self, x):
            h = self.a(x)
            return torch.maximum(torch.maximum(h[:, :4], h[:, 4:8]), h[:, 8:11])
    with pytest.raises(ValueError, match=r"node 'maximum_1'.*nested max of 3 tensors.*"
                                         r"\(4,\), \(4,\), \(3,\)\] do not broadcast"):
        trace(_init(Bad(), 1))


def test_prelu_relu6_hardtanh_clamp_match_torch():
    model = _prelu_slopes(_init(Clamps(), 4))
    traced = check_against_torch(model, RNG.normal(size=(400, 2)))
    # two units per ReLU6 / Hardtanh element, one per clamp(min) element
    assert [b.shape for b in traced.pattern_index["r6"]] == [(5,), (5,)]
    assert traced.network.n_hidden == 6 + 6 + 5 * 2 + 5 * 2 + 5
    # the per-channel PReLU layer has mixed slopes: slope 0 plus linear units for s z
    assert 0.0 in traced.network.slopes


def test_activation_modules_seen_by_forward_hooks_agree():
    # forward hooks on the activation modules read their inputs from torch's own forward
    model = _prelu_slopes(_init(Clamps(), 5))
    seen = {}

    def record(name):
        def hook(module, inputs, output):  # returns None: the output stays torch's
            seen[name] = inputs[0]
        return hook
    hooks = [m.register_forward_hook(record(name))
             for name, m in model.named_children() if name in ("p1", "p6", "r6", "ht")]
    x = RNG.normal(size=(50, 2))
    with torch.no_grad():
        model(torch.as_tensor(x))
    for h in hooks:
        h.remove()
    traced = trace(model)
    pattern = traced.network.patterns(x, rtol=0)
    for name in ("p1", "p6"):
        (idx,) = traced.pattern_index[name]
        assert np.array_equal(pattern[:, idx], seen[name].numpy() > 0)
    lo, hi = traced.pattern_index["ht"]
    z = seen["ht"].numpy()
    assert np.array_equal(pattern[:, lo], z > -0.5) and np.array_equal(pattern[:, hi], z > 0.8)


def _batchnorm_chain(width, seed):
    """Linear, BatchNorm1d (set running statistics) in eval mode, ReLU, Linear."""
    model = nn.Sequential(nn.Linear(2, width), nn.BatchNorm1d(width), nn.ReLU(),
                          nn.Linear(width, 1))
    _init(model, seed)
    with torch.no_grad():
        model[1].running_mean.copy_(torch.linspace(-1, 1, width))
        model[1].running_var.copy_(torch.linspace(0.5, 3, width))
    return model.eval()


def test_batchnorm_in_eval_mode_is_folded():
    model = _batchnorm_chain(6, 6)
    traced = check_against_torch(model, RNG.normal(size=(200, 2)))
    assert traced.network.widths == [6] and traced.network.n_carried == 0
    model.train()
    with pytest.raises(ValueError, match=r"node '_1' \(layer 1 \(BatchNorm1d\)\).*model\.eval\(\)"):
        as_network(model)


# --- chains partition today ---------------------------------------------------------

def _check_partition(model, domain, points):
    p = regions.partition(model, domain)
    r = p.locate(points)
    assert np.all(r >= 0)
    A, c = p.affine
    u = points.reshape(len(points), -1)
    got = np.einsum("noi,ni->no", A[r], u) + c[r]
    with torch.no_grad():
        ref = model(torch.as_tensor(u)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    return p


def test_chain_like_custom_modules_partition_in_1d_and_2d():
    model = _init(Chain(1), 7)
    _check_partition(model, (-2.0, 2.0), RNG.uniform(-2, 2, 200))
    model = _init(Chain(2), 8)
    _check_partition(model, ((-2, 2), (-1, 1)), np.column_stack([RNG.uniform(-2, 2, 200),
                                                                  RNG.uniform(-1, 1, 200)]))


def test_an_eval_batchnorm_chain_partitions():
    model = _batchnorm_chain(8, 9)
    _check_partition(model, ((-1, 1), (-1, 1)), RNG.uniform(-1, 1, (200, 2)))


class Negated(nn.Sequential):
    """A Sequential subclass with its own forward (the issue's silent misreading)."""

    def forward(self, x):
        return 3.0 * super().forward(x) - 1.0


def test_a_sequential_subclass_overriding_forward_is_read_as_its_forward():
    # fails on the old reader, which read the children as a plain chain
    model = _init(Negated(nn.Linear(1, 6), nn.ReLU(), nn.Linear(6, 1)), 10)
    x = RNG.uniform(-1, 1, (100, 1))
    with torch.no_grad():
        ref = model(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(as_network(model).forward(x), ref, rtol=1e-12, atol=1e-12)
    _check_partition(model, (-1.0, 1.0), x[:, 0])


def test_a_plain_sequential_keeps_the_direct_reader(monkeypatch):
    import regions.trace as trace_module

    def refuse(*args, **kwargs):
        raise AssertionError("a plain Sequential must not be traced")
    monkeypatch.setattr(trace_module, "trace", refuse)
    model = _init(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)), 11)
    assert as_network(model).widths == [4] and as_network(model).linear is None


# --- refusals name the node, its source line, and what is accepted ------------------

class Between(nn.Module):
    """``b(mid(a(x)))``: ``mid`` a module (traced as a layer) or a function
    (traced as a function call)."""

    def __init__(self, mid):
        super().__init__()
        self.a, self.mid, self.b = nn.Linear(2, 4), mid, nn.Linear(4, 1)

    def forward(self, x):
        return self.b(self.mid(self.a(x)))


class Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 1)

    def forward(self, x):
        if x.sum() > 0:
            return self.a(x)
        return -self.a(x)


class Square(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3)

    def forward(self, x):
        h = self.a(x)
        return h * h


class BatchMix(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3)

    def forward(self, x):
        return self.a(x)[0]


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 1)

    def forward(self, x, y):
        return self.a(x) + y


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.att = nn.Linear(2, 4), nn.MultiheadAttention(4, 1)

    def forward(self, x):
        h = self.a(x)
        return self.att(h, h, h)[0]


@pytest.mark.parametrize("model,message", [
    (Between(nn.GELU()), r"node 'mid' \(layer mid \(GELU\)\) at File .*test_trace\.py.*"
                        r"self\.mid\(self\.a\(x\)\).*unsupported layer mid \(GELU\).*accepted: Linear"),
    (Between(nn.LayerNorm(4)), r"layer mid \(LayerNorm\).*accepted"),
    (Between(nn.Tanh()), r"unsupported layer mid \(Tanh\)"),
    (Between(F.silu), r"node 'silu' \(function silu\) at .*test_trace\.py.*self\.mid\(.*"
                         r"not a piecewise-linear operation.*accepted"),
    (Between(torch.tanh), r"node 'tanh' \(function tanh\).*not a piecewise-linear"),
    (Between(lambda h: torch.softmax(h, -1)), r"node 'softmax'.*test_trace\.py.*softmax"),
    (Attention(), r"layer att \(MultiheadAttention\)"),
    (Branch(), r"torch\.fx cannot trace Branch\.forward.*no branch or loop on tensor values"),
    (Square(), r"node 'mul' .*h \* h.*product of two tensors"),
    (BatchMix(), r"node 'getitem'.*batch axis"),
    (TwoInputs(), r"takes 2 inputs"),
    (nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.0), nn.ReLU(), nn.Linear(3, 1), nn.Tanh()),
     r"unsupported layer 4 \(Tanh\)"),
])
def test_refused_constructs_are_named(model, message):
    with pytest.raises(ValueError, match=message):
        as_network(model.double())


class EncodedTwice(nn.Module):
    def __init__(self, second):
        super().__init__()
        self.enc, self.second = regions.PositionalEncoding(2), second
        self.a = nn.Linear(5 if second is None else 4, 1)

    def forward(self, x):
        e = self.enc(x)
        return self.a(torch.cat([e, x], -1) if self.second is None else self.second(e))


@pytest.mark.parametrize("fn,message", [
    (lambda h: h.view(-1), r"node 'view' \(method \.view\(\)\).*without mixing samples"),
    (lambda h: torch.flatten(h), r"node 'flatten'.*merges the batch axis"),
    (lambda h: torch.cat([h, h], 0), r"node 'cat'.*not the batch axis"),
    (lambda h: h.max(), r"node 'max'.*whole tensor"),
    (lambda h: h.clamp(1.0, -1.0), r"node 'clamp'.*min < max"),
    (lambda h: 1.0 / h, r"node 'truediv'.*division of a traced tensor by a constant"),
    (lambda h: h @ h.T, r"node 'matmul'.*traced tensor @ constant"),
    (lambda h: h + torch.randn(4), r"Between\.forward draws random numbers"),
    (lambda h: h.squeeze(), r"node 'squeeze'.*pass the dim"),
    (lambda h: torch.max(h, -1)[1].double(), r"node 'double'.*argmax.*data-dependent"),
    (lambda h: F.max_pool1d(h, 2, padding=1), r"node 'max_pool1d'.*padding=0"),
    (lambda h: h[:, [0, 2]], r"node 'getitem'.*no tensor or list indexing"),
])
def test_refused_operations_are_named(fn, message):
    with pytest.raises(ValueError, match=message):
        as_network(Between(fn).double())


def test_encoding_misuse_is_refused():
    with pytest.raises(ValueError, match="raw input is also used by"):
        as_network(EncodedTwice(None))
    with pytest.raises(ValueError, match="a second encoding"):
        as_network(EncodedTwice(regions.PositionalEncoding(1, in_features=1)))


def test_an_unknown_input_width_can_be_given():
    class Doubled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 1)

        def forward(self, x):
            return self.a(torch.relu(torch.cat([x, -x], -1)))
    model = _init(Doubled(), 14)
    with pytest.raises(ValueError, match=r"input width.*input_dim"):
        as_network(model)
    x = RNG.normal(size=(30, 2))
    got = trace(model, input_dim=2).network.forward(x)
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.as_tensor(x)).numpy(), rtol=1e-12)


def test_dropout_in_training_mode_is_refused_and_eval_reads_it():
    class Drop(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.d, self.b = nn.Linear(2, 3), nn.Dropout(0.3), nn.Linear(3, 1)

        def forward(self, x):
            return self.b(torch.relu(self.d(self.a(x))))
    model = _init(Drop(), 12)
    with pytest.raises(ValueError, match=r"node 'd' \(layer d \(Dropout\)\).*model\.eval\(\)"):
        as_network(model)
    check_against_torch(model.eval(), RNG.normal(size=(50, 2)))


def test_a_state_dict_that_is_not_a_plain_mlp_says_pass_the_module():
    model = _init(Coord(), 13)
    with pytest.raises(ValueError, match="pass the module itself"):
        as_network(model.state_dict())
    bn = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"running_mean.*not a plain MLP.*pass the module"):
        as_network(bn.state_dict())


def test_an_encoding_with_its_own_forward_is_refused():
    class Shifted(regions.PositionalEncoding):
        def forward(self, p):
            return super().forward(p + 1.0)
    model = nn.Sequential(Shifted(2), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="overrides the forward of a regions Encoding"):
        as_network(model)


# --- the Network's carried units ---------------------------------------------------

def test_carried_units_are_identity_and_have_no_bit():
    # layer 1: relu(x0) (kink) and x1 carried; output relu(x0) + x1
    net = regions.Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)], np.zeros(1),
                          linear=[np.array([False, True])])
    x = np.array([[-1.0, -2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(net.forward(x), [[-2.0], [-1.0]])
    assert net.patterns(x).tolist() == [[False], [True]]
    assert net.n_hidden == 1 and net.n_carried == 1
    s = net.sliced(np.zeros(2), np.eye(2))
    assert s.linear[0].tolist() == [False, True]
    with pytest.raises(ValueError, match="one bool mask per hidden layer"):
        regions.Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)], np.zeros(1),
                        linear=[np.array([True])])
    # the engines cut along relu(x0) only: two regions, x1 passes through
    p = regions.partition(net, ((-1, 1), (-1, 1)))
    assert len(p) == 2 and p.patterns.tolist() in ([[False], [True]], [[True], [False]])
    A, c = p.affine
    assert sorted(A[:, 0].tolist()) == [[0.0, 1.0], [1.0, 1.0]]
