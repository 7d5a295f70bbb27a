"""From a user's model to plain float64 weight arrays.

Everything downstream (kernels, features, plots) sees a :class:`Network`:
a list of affine layers ``z_l = W_l a_{l-1} + b_l`` with ``W_l`` shaped
``(out, in)`` as torch stores it, a piecewise-linear activation after every
hidden layer (ReLU, or LeakyReLU with a negative slope) and a final affine
output layer with no activation. An optional input encoding (sin/cos
features, see :mod:`regions.encoding`) sits in front of the first layer.

Accepted models
---------------
* a ``torch.nn.Sequential`` of ``Linear``, ``ReLU``, ``LeakyReLU``
  (``Identity``, ``Dropout`` and ``Flatten`` pass through; an
  :class:`regions.encoding.Encoding` may come first), read directly;
* any other ``torch.nn.Module`` (a custom ``forward``, a ``Sequential``
  subclass that overrides ``forward``, residual and skip connections,
  BatchNorm in eval mode, PReLU, ReLU6, Hardtanh, max-pooling, maxout): read
  by tracing it, see :mod:`regions.trace`. A traced model may need *carried*
  units (:attr:`Network.linear`);
* a ``state_dict`` of such a network (``*.weight`` / ``*.bias`` pairs in
  module order; ReLU is assumed between consecutive Linear layers). The
  buffers of a regions encoding in front (``kinds`` and ``omegas``, and
  ``B`` of :class:`regions.encoding.RandomFourierFeatures`, which wins over
  ``omegas`` as in ``load_state_dict``) rebuild the encoding exactly; a
  state_dict with other entries (BatchNorm statistics, PReLU slopes, ...),
  or with only part of an encoding's table, is refused (pass the model
  instead) rather than read as a raw network;
* a list of ``(W, b)`` pairs of numpy arrays, ``W`` shaped ``(out, in)``;
  ReLU between them;
* a :class:`Network` (returned as is).

Consecutive Linear layers with no activation between them are composed into
one (their product is affine). A Sequential that ends in an activation gets
an identity output layer, so its last activations are the output.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
import sys

import numpy as np

from kernels.line import REL_TOL as ZERO_RTOL, snap_rows

__all__ = ["Network", "as_network"]


@dataclass
class Network:
    """A ReLU / LeakyReLU MLP as float64 arrays.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[l]`` has shape ``(n_l, n_{l-1})``; the last entry is the
        output layer.
    biases : list of ndarray
        ``biases[l]`` has shape ``(n_l,)``.
    slopes : ndarray
        Negative slope of the activation after each hidden layer
        (0.0 for ReLU), shape ``(n_hidden_layers,)``.
    encoding : regions.encoding.Encoding or None
        Input encoding in front of the first layer, if any.
    names : list of str
        A name per layer (for messages).
    linear : list of ndarray or None
        ``linear[l]`` bool ``(n_l,)``: True marks a *carried* unit of hidden
        layer ``l`` (identity activation: a residual stream, an input skip or
        another value a later layer needs, see :mod:`regions.trace`). A carried
        unit is never a region boundary and has no bit in the activation
        pattern. ``None`` (the default): every hidden unit is a kink unit.
    max_trees : (t, 3) int64 ndarray or None
        The max (or min) over ``k > 2`` values a traced model takes, written
        as trees of pairwise comparisons (:mod:`regions.trace`): one row
        ``(bit, first, second)`` per comparison, in the order they were made
        (children before parents). ``bit`` is the comparison's position in
        the pattern (on: its first argument wins); ``first`` / ``second`` the
        position of the comparison whose winner is that argument, or
        ``-1 - i`` when the argument is the max's input ``i``. Where the
        max's argmax is fixed the function does not depend on the
        comparisons off the winner's root-to-leaf path, so they are not
        region boundaries: :meth:`canonical` sets them to 0 in every pattern
        (see :meth:`patterns`) and the engines merge the pieces that then
        agree. ``None``: no such max.
    """

    weights: list
    biases: list
    slopes: np.ndarray
    encoding: object = None
    names: list = field(default_factory=list)
    linear: list = None
    max_trees: np.ndarray = None

    def __post_init__(self):
        if self.linear is not None:
            masks = [np.asarray(m) for m in self.linear]
            widths = [int(W.shape[0]) for W in self.weights[:-1]]
            if len(masks) != len(widths) or any(m.dtype != bool or m.shape != (n,)
                                                for m, n in zip(masks, widths)):
                raise ValueError(f"linear must hold one bool mask per hidden layer, shaped like "
                                 f"the layer's widths {widths}; got {[m.shape for m in masks]}")
            self.linear = masks
        if self.max_trees is not None:
            self.max_trees = _check_max_trees(self.max_trees, self.n_hidden)

    @property
    def input_dim(self) -> int:
        """Dimension of the coordinate the user feeds (before any encoding)."""
        if self.encoding is not None:
            return int(self.encoding.in_features)
        return int(self.weights[0].shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def widths(self) -> list:
        """Number of neurons in each hidden layer."""
        return [int(W.shape[0]) for W in self.weights[:-1]]

    @property
    def n_hidden(self) -> int:
        """Number of kink units (the length of an activation pattern): every
        hidden neuron, less the carried units of :attr:`linear`."""
        return int(sum(self.widths)) - self.n_carried

    @property
    def n_carried(self) -> int:
        """Number of carried (linear, pattern-free) hidden units; 0 for an MLP."""
        return 0 if self.linear is None else int(sum(int(m.sum()) for m in self.linear))

    def kink_mask(self, layer):
        """Bool mask of the kink units (those with a pattern bit) of hidden layer ``layer``."""
        if self.linear is None:
            return np.ones(int(self.weights[layer].shape[0]), dtype=bool)
        return ~self.linear[layer]

    def kink_first(self):
        """The same function with each hidden layer's kink units first, then its carried units.

        Rows of ``W_l, b_l`` (and columns of ``W_{l+1}``) are permuted so that
        hidden layer ``l``'s first ``n_kinks(l)`` units are its kink units, in
        their order (the pattern order is unchanged), and the rest its carried
        units; ``linear`` records it. The raw engines cut along a layer's
        leading kink columns and carry the others. ``self`` when there are no
        carried units (nothing to permute).

        Examples
        --------
        >>> net = Network([np.eye(2), np.ones((1, 2))], [np.array([0.0, 1.0]), np.zeros(1)],
        ...               np.zeros(1), linear=[np.array([True, False])])
        >>> k = net.kink_first()
        >>> k.biases[0].tolist(), k.linear[0].tolist()
        ([1.0, 0.0], [False, True])
        >>> x = np.array([[-1.0, -3.0], [2.0, 5.0]])
        >>> bool(np.array_equal(k.forward(x), net.forward(x)))
        True
        """
        if not self.n_carried:
            return self
        weights, biases = list(self.weights), list(self.biases)
        linear = []
        for l, carried in enumerate(self.linear):
            order = np.concatenate([np.flatnonzero(~carried), np.flatnonzero(carried)])
            weights[l] = weights[l][order]
            biases[l] = biases[l][order]
            weights[l + 1] = weights[l + 1][:, order]
            linear.append(carried[order])
        return Network(weights, biases, self.slopes.copy(), self.encoding, list(self.names), linear,
                       self.max_trees)

    def n_kinks(self, layer):
        """Number of kink units (pattern bits) of hidden layer ``layer``."""
        return int(self.kink_mask(layer).sum())

    @property
    def hidden_layers(self):
        """Iterate ``(W, b, slope)`` over the hidden layers."""
        return zip(self.weights[:-1], self.biases[:-1], self.slopes)

    def _activate(self, layer, z, slope):
        a = np.where(z > 0, z, slope * z)
        if self.linear is not None:
            a[:, self.linear[layer]] = z[:, self.linear[layer]]
        return a

    def pre_activations(self, x, rtol=ZERO_RTOL):
        """Pre-activations of every hidden layer at points ``x`` (numpy, float64).

        ``x`` is in the network's input space (after the encoding, if any).
        Returns a list of arrays ``(n_points, n_l)``.

        A value that is zero to within rounding, ``|z_k(x)| <= rtol *
        (sum_j |W_kj| |a_j(x)| + |b_k|)`` (the size of the terms it is summed
        from at ``x``; ``rtol`` defaults to the engines' ``ZERO_RTOL = 1e-10``),
        is set to exactly 0, and its neuron is off at ``x``: the same rule the
        exact engines apply at vertices, so a neuron that is identically zero on
        a region (where a forward pass reads ``+-1e-15``) reads off there, as
        the partition says (it is the engines' kernel,
        :func:`kernels.line.snap_rows`, that applies it). ``rtol=0`` gives the raw
        float64 signs.

        Examples
        --------
        >>> net = Network([np.array([[1.0], [1.0]]), np.array([[-1.0, 1.0]]), np.ones((1, 1))],
        ...               [np.array([0.1, 0.2]), np.array([-0.1]), np.zeros(1)], np.zeros(2))
        >>> x = np.array([[0.1]])        # z_2 = h_2 - h_1 - 0.1 is identically 0 for x > -0.1
        >>> float(net.pre_activations(x, rtol=0)[1][0, 0]) > 0     # rounding reads it as 2.8e-17
        True
        >>> net.patterns(x).tolist(), net.patterns(x, rtol=0).tolist()
        ([[True, True, False]], [[True, True, True]])
        """
        a = np.asarray(x, dtype=np.float64)
        out = []
        for layer, (W, b, s) in enumerate(self.hidden_layers):
            z = a @ W.T + b
            if rtol > 0:  # the engines' own rule, by their kernel
                carried = None if self.linear is None else self.linear[layer]
                kept = None if carried is None else z[:, carried].copy()
                W_abs = np.abs(W)
                snap_rows(z, np.ascontiguousarray(a), W_abs, np.abs(b), W_abs.max(axis=1),
                          rtol, 0, z.shape[0])
                if carried is not None:  # a carried value is not a kink: never snapped
                    z[:, carried] = kept
            out.append(z)
            a = self._activate(layer, z, s)
        return out

    def forward(self, x):
        """Network output at points ``x`` in input space (numpy, float64)."""
        a = np.asarray(x, dtype=np.float64)
        for layer, (W, b, s) in enumerate(self.hidden_layers):
            a = self._activate(layer, a @ W.T + b, s)
        return a @ self.weights[-1].T + self.biases[-1]

    def patterns(self, x, rtol=ZERO_RTOL):
        """Activation pattern ``z > 0`` of every kink unit, layer-major, bool.

        Hidden layer by hidden layer, the layer's kink units in their order in
        the layer; carried units (:attr:`linear`) have no bit. For a traced
        model this is the order documented in :mod:`regions.trace`. A neuron
        zero to within rounding at ``x`` is off (see :meth:`pre_activations`,
        which takes the same ``rtol``). The comparisons of a max over ``k > 2``
        values that are off the winner's path read 0 (:meth:`canonical`), as in
        the partitions' patterns.
        """
        zs = self.pre_activations(x, rtol)
        if not zs:
            return np.zeros((np.atleast_2d(np.asarray(x)).shape[0], 0), dtype=bool)
        return self.canonical(
            np.concatenate([(z > 0)[:, self.kink_mask(l)] for l, z in enumerate(zs)], axis=1))

    def canonical(self, bits):
        """``bits`` (``(n, n_hidden)`` bool patterns) with every comparison of a
        :attr:`max_trees` tree that is off its winner's path set to 0.

        The winner's path is read from the root down: a comparison that is on
        picks its first argument, off its second; the comparisons below the
        picked argument are on the path, those below the other are not. A
        tree's bits are then those the tree gives for the indicator vector of
        its winner: 1 exactly where the winner is the first argument of a
        comparison it passes. ``bits`` itself when there are no such trees.

        Examples
        --------
        A max of three, ``max(max(x0, x1), x2)``: bit 0 compares ``x0, x1``,
        bit 1 the winner with ``x2``. Where ``x2`` wins, bit 0 is off its path:

        >>> net = Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)],
        ...               np.zeros(1), max_trees=np.array([[0, -1, -2], [1, 0, -3]]))
        >>> net.canonical(np.array([[True, False], [True, True]])).tolist()
        [[False, False], [True, True]]
        """
        if self.max_trees is None or not len(bits):
            return bits
        bits = np.array(bits, dtype=bool)
        bits[:, self.max_trees[:, 0]] &= self.on_path(bits)
        return bits

    def on_path(self, bits):
        """``(n, t)`` bool: is comparison ``r`` of :attr:`max_trees` (row ``r``) on
        its winner's root-to-leaf path in the pattern ``bits`` (``(n, n_hidden)``)?
        Only the comparisons on the path are boundaries of the max; see :meth:`canonical`."""
        T = self.max_trees
        bits = np.asarray(bits, dtype=bool)
        row = {int(b): r for r, b in enumerate(T[:, 0])}
        on = np.zeros((bits.shape[0], len(T)), dtype=bool)
        children = T[:, 1:][T[:, 1:] >= 0]
        on[:, ~np.isin(T[:, 0], children)] = True          # roots
        for r in range(len(T) - 1, -1, -1):                 # parents before children
            bit, first, second = (int(v) for v in T[r])
            wins = bits[:, bit]
            if first >= 0:
                on[:, row[first]] |= on[:, r] & wins
            if second >= 0:
                on[:, row[second]] |= on[:, r] & ~wins
        return on

    def canonical_packed(self, packed):
        """:meth:`canonical` of packed patterns (``(n, words)`` uint64)."""
        if self.max_trees is None:
            return packed
        from .partition import pack_patterns, unpack_patterns

        return pack_patterns(self.canonical(unpack_patterns(packed, self.n_hidden)))

    def sliced(self, origin, basis):
        """The same network fed ``origin + basis @ u`` instead of ``x``.

        Composes the affine slice map into the first layer, so a 1D or 2D
        slice of a high-dimensional input becomes a 1- or 2-input network.
        Only for networks without an encoding (an encoding is not affine).
        """
        if self.encoding is not None:
            raise ValueError("cannot compose an affine slice into an encoded network; "
                             "slice the coordinate before the encoding instead")
        origin = np.asarray(origin, dtype=np.float64)
        basis = np.asarray(basis, dtype=np.float64)
        W0, b0 = self.weights[0], self.biases[0]
        weights = [W0 @ basis] + list(self.weights[1:])
        biases = [b0 + W0 @ origin] + list(self.biases[1:])
        linear = None if self.linear is None else [m.copy() for m in self.linear]
        return Network(weights, biases, self.slopes.copy(), None, list(self.names), linear,
                       self.max_trees)


def _check_max_trees(trees, n_hidden):
    """``trees`` as a ``(t, 3)`` int64 array of valid positions (see :attr:`Network.max_trees`)."""
    T = np.asarray(trees)
    if T.ndim != 2 or T.shape[1] != 3 or not np.issubdtype(T.dtype, np.integer):
        raise ValueError(f"max_trees must be an integer array shaped (t, 3), got {T.dtype} {T.shape}")
    T = T.astype(np.int64)
    bits, kids = T[:, 0], T[:, 1:][T[:, 1:] >= 0]
    if np.any((bits < 0) | (bits >= n_hidden)) or len(np.unique(bits)) != len(bits):
        raise ValueError(f"max_trees: the bits must be distinct positions in 0 .. {n_hidden - 1}")
    order = {int(b): r for r, b in enumerate(bits)}
    if len(np.unique(kids)) != len(kids) or any(
            order.get(int(k), len(T)) >= r for r, row in enumerate(T) for k in row[1:] if k >= 0):
        raise ValueError("max_trees: each child must be the bit of an earlier row, used once")
    # each tree (the rows joined by child links) of m comparisons takes the max's
    # inputs -1 .. -(m + 1), each once
    tree = np.arange(len(T))
    for r, row in enumerate(T):
        for k in row[1:]:
            if k >= 0:
                tree[order[int(k)]] = r
    for r in range(len(T) - 1, -1, -1):                  # a child's tree is its root's
        tree[r] = tree[tree[r]]
    for root in np.unique(tree):
        rows = T[tree == root]
        leaves = np.sort(rows[:, 1:][rows[:, 1:] < 0])
        if not np.array_equal(leaves, -np.arange(len(rows) + 1, 0, -1)):
            raise ValueError(f"max_trees: the tree whose root is bit {int(T[root, 0])} has "
                             f"{len(rows)} comparisons, so its inputs must be -1 .. "
                             f"-{len(rows) + 1} each once; got {leaves.tolist()}")
    return T


def _check_finite(W, b, where):
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ValueError(f"non-finite weights or biases in {where}; "
                         "all parameters must be finite numbers")


# integers of at most this magnitude convert to float64 exactly
_EXACT_INTEGERS = 2.0 ** 53


def _numpy(value, where):
    """``value`` (a torch tensor, numpy array or nested list) as a numpy array of its
    own dtype; torch floating-point tensors (float16, bfloat16, ...) become float64."""
    if hasattr(value, "detach"):  # a torch tensor
        t = value.detach()
        if t.device.type == "meta":
            raise ValueError(f"{where} is a tensor on torch's 'meta' device, which holds no "
                             "values; load the parameters into a real device (e.g. "
                             "model.to_empty(device='cpu') then load_state_dict) first")
        if t.is_floating_point():
            t = t.double()
        try:
            return t.cpu().numpy()
        except TypeError:  # a dtype numpy lacks
            raise ValueError(f"{where} has dtype {t.dtype}; parameters must be real numbers "
                             "(a float or integer tensor)") from None
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} is not an array of numbers ({e})") from None


def _real_float64(value, where):
    """``value`` as float64, refusing what the conversion would alter or guess:
    booleans, complex numbers, strings, objects and integers beyond 2**53."""
    a = _numpy(value, where)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{where} has dtype {a.dtype}; parameters must be real numbers "
                         "(a float or integer array; bool, complex, string and object "
                         "arrays are refused)")
    out = a.astype(np.float64)
    if a.dtype.kind in "iu" and np.any(np.abs(out) >= _EXACT_INTEGERS):
        raise ValueError(f"{where} holds integers of magnitude >= 2**53, which float64 "
                         "cannot represent exactly; pass float weights")
    return out


def _check_layer(W, b, where):
    """A layer's float64 ``W`` ``(out, in)`` and ``b`` ``(out,)``: shapes, size, finiteness."""
    if W.ndim != 2 or b.ndim != 1 or b.shape[0] != W.shape[0]:
        raise ValueError(f"{where}: expected W shaped (out, in) and b shaped (out,), "
                         f"got {W.shape} and {b.shape}")
    if W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError(f"{where}: W has shape {W.shape}; a layer needs at least one "
                         "input and one output")
    _check_finite(W, b, where)


def _slope(module, where):
    """The negative slope of a ReLU (0.0) or LeakyReLU module, checked finite."""
    import torch.nn as nn

    if not isinstance(module, nn.LeakyReLU):
        return 0.0
    try:
        slope = float(module.negative_slope)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: negative_slope {module.negative_slope!r} is not a "
                         "number") from None
    if not np.isfinite(slope):
        raise ValueError(f"{where}: negative_slope is {slope}; a LeakyReLU slope must be a "
                         "finite number")
    return slope


def _finish(layers, slopes_after, encoding, names):
    """layers: list of (W, b); slopes_after[i]: activation slope after layer i or None."""
    if not layers:
        raise ValueError("the model has no Linear layer; expected at least one "
                         "Linear (an affine output layer)")
    # compose runs of affine layers with no activation between them
    weights, biases, slopes, merged_names = [], [], [], []
    W, b = layers[0]
    name = names[0]
    for i in range(1, len(layers)):
        if slopes_after[i - 1] is None:
            W2, b2 = layers[i]
            if W2.shape[1] != W.shape[0]:
                raise ValueError(f"{names[i]} expects {W2.shape[1]} inputs but {name} "
                                 f"gives {W.shape[0]}")
            with np.errstate(over="ignore", invalid="ignore"):
                W, b = W2 @ W, W2 @ b + b2
            name = f"{name}+{names[i]}"
            _check_finite(W, b, f"the composition {name} of consecutive Linear layers")
        else:
            weights.append(W), biases.append(b), slopes.append(slopes_after[i - 1])
            merged_names.append(name)
            W, b = layers[i]
            if W.shape[1] != weights[-1].shape[0]:
                raise ValueError(f"{names[i]} expects {W.shape[1]} inputs but {name} "
                                 f"gives {weights[-1].shape[0]}")
            name = names[i]
    weights.append(W), biases.append(b), merged_names.append(name)
    if slopes_after[-1] is not None:
        # ends in an activation: its activations are the output
        slopes.append(slopes_after[-1])
        n = W.shape[0]
        weights.append(np.eye(n)), biases.append(np.zeros(n)), merged_names.append("identity output")
    if encoding is not None and weights[0].shape[1] != encoding.out_features:
        raise ValueError(f"the encoding gives {encoding.out_features} features but the first "
                         f"Linear layer expects {weights[0].shape[1]} inputs")
    return Network(weights, biases, np.asarray(slopes, dtype=np.float64), encoding, merged_names)


def _from_sequential(model):
    import torch.nn as nn
    from .encoding import Encoding

    modules = list(model) if isinstance(model, nn.Sequential) else [model]
    passthrough = (nn.Identity, nn.Dropout, nn.Flatten)
    layers, slopes_after, names = [], [], []
    encoding = None
    for i, m in enumerate(modules):
        where = f"layer {i} ({type(m).__name__})"
        if isinstance(m, Encoding):
            if i != 0 or layers:
                raise ValueError(f"{where}: an encoding must be the first module of the Sequential")
            encoding = m
        elif isinstance(m, nn.Linear):
            W = _real_float64(m.weight, f"{where} weight")
            b = (_real_float64(m.bias, f"{where} bias") if m.bias is not None
                 else np.zeros(W.shape[0]))
            _check_layer(W, b, where)
            layers.append((W, b)), slopes_after.append(None), names.append(where)
        elif isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            if not layers:
                raise ValueError(f"{where}: an activation must follow a Linear layer")
            if slopes_after[-1] is not None:
                raise ValueError(f"{where}: two activations in a row are not supported")
            slopes_after[-1] = _slope(m, where)
        elif isinstance(m, passthrough):
            continue
        elif isinstance(m, nn.Sequential):
            raise ValueError(f"{where}: nested Sequential; flatten it with "
                             "nn.Sequential(*inner, ...) first")
        else:
            raise ValueError(
                f"unsupported {where}; accepted modules are Linear, ReLU, LeakyReLU, "
                "Identity, Dropout, Flatten and a regions encoding as the first module")
    return _finish(layers, slopes_after, encoding, names)


def _is_plain_chain(model, nn):
    """True for what the direct reader takes as it is (and fast): an ``nn.Sequential``
    whose ``forward`` is Sequential's own chain, of Linear, ReLU, LeakyReLU,
    Identity, Dropout, Flatten and an encoding, or one such module alone.
    Anything else (a custom ``forward``, a Sequential subclass that overrides
    it, other layers, nested Sequentials) is traced (:mod:`regions.trace`)."""
    from .encoding import Encoding

    chain = (nn.Linear, nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout, nn.Flatten, Encoding)

    def plain(m):  # one of these, with the forward of its class (not a subclass's own)
        return any(isinstance(m, c) and type(m).forward is c.forward for c in chain)

    if isinstance(model, nn.Sequential):
        return type(model).forward is nn.Sequential.forward and all(plain(m) for m in model)
    return plain(model)


def _from_pairs(pairs, names=None, encoding=None):
    layers, names_out = [], []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"entry {i} of the weight list is not a (W, b) pair")
        where = names[i] if names else f"pair {i}"
        W = _real_float64(pair[0], f"{where} W")
        b = _real_float64(pair[1], f"{where} b")
        _check_layer(W, b, where)
        layers.append((W, b)), names_out.append(where)
    slopes_after = [0.0] * (len(layers) - 1) + [None]
    return _finish(layers, slopes_after, encoding, names_out)


def _as_array(v, dtype=None, where="a state_dict entry"):
    v = _numpy(v, where)
    return v if dtype is None else np.asarray(v, dtype=dtype)


# buffers of a regions encoding (regions.encoding.Encoding and its subclasses)
_ENCODING_BUFFERS = ("kinds", "omegas", "B")
_PASS_INSTEAD = ("pass the nn.Sequential itself (or load the state_dict into it with "
                 "model.load_state_dict(sd) and pass the model)")


_NOT_AN_MLP = ("for any other architecture (residual or skip connections, BatchNorm, PReLU, "
               "max-pooling, a custom forward) pass the module itself, with the state_dict "
               "loaded into it (model.load_state_dict(sd))")


def _split_key(key):
    prefix, _, leaf = key.rpartition(".")
    return (prefix + "." if prefix else ""), leaf


def _rff_omegas(kinds, B, where):
    """The feature table a RandomFourierFeatures module builds from its matrix ``B``
    (its load hook makes ``B`` win over a saved ``omegas``): ``[I]`` for raw inputs
    when ``kinds`` starts with them, then ``2 pi b_i`` twice (sin, cos) per row."""
    B = np.asarray(B, dtype=np.float64)
    if B.ndim != 2:
        raise ValueError(f"{where}B: expected a frequency matrix (n_frequencies, in_features), "
                         f"got shape {B.shape}")
    n, d = B.shape
    n_raw = kinds.shape[0] - 2 * n
    layout = np.array([0] * n_raw + [1, 2] * n, dtype=np.int64) if n_raw in (0, d) else None
    if layout is None or not np.array_equal(kinds, layout):
        raise ValueError(f"{where}B has shape {B.shape} but {where}kinds does not have the "
                         f"layout of RandomFourierFeatures ({'raw ' * d}+ sin, cos per "
                         f"frequency); cannot tell which features the state_dict describes; "
                         f"{_PASS_INSTEAD}")
    rows = [np.eye(d)] if n_raw else []
    rows.append(np.repeat(2 * np.pi * B, 2, axis=0))
    return np.concatenate(rows, axis=0)


def _encoding_from_state_dict(sd, keys, first_weight):
    """The regions encoding a state_dict describes (its ``kinds`` / ``omegas`` / ``B``
    buffers), or None. Refuses anything before the first Linear layer it cannot read."""
    from .encoding import Encoding

    enc_keys = [k for k in keys if _split_key(k)[1] in _ENCODING_BUFFERS]
    prefixes = sorted({_split_key(k)[0] for k in enc_keys})
    before = keys[:keys.index(first_weight)]
    unknown = [k for k in before if k not in enc_keys and not k.endswith(".bias")]
    if unknown:
        raise ValueError(f"the state_dict has entries {unknown[:4]} before its first Linear layer "
                         f"({first_weight!r}) that are neither weights nor the buffers of a "
                         "regions encoding (kinds, omegas); an input module this reader cannot "
                         f"rebuild would be silently ignored; {_PASS_INSTEAD}")
    if not enc_keys:
        return None
    if len(prefixes) > 1:
        raise ValueError(f"the state_dict holds encoding buffers under several prefixes "
                         f"{prefixes}; only one input encoding (the first module) is supported")
    late = [k for k in enc_keys if k not in before]
    if late:
        raise ValueError(f"the state_dict has encoding buffers {late} after its first Linear "
                         f"layer ({first_weight!r}); an encoding must be the first module")
    pre = prefixes[0]
    have = {_split_key(k)[1]: sd[k] for k in enc_keys}
    if "kinds" not in have or ("omegas" not in have and "B" not in have):
        missing = [f"{pre}{n}" for n in ("kinds", "omegas") if n not in have]
        raise ValueError(f"the state_dict holds only part of an encoding's feature table "
                         f"(missing {missing}); without it the first Linear layer's inputs "
                         f"are unknown; {_PASS_INSTEAD}")
    kinds = _as_array(have["kinds"], where=f"{pre}kinds").astype(np.int64).ravel()
    if "B" in have:
        omegas = _rff_omegas(kinds, _as_array(have["B"], np.float64, f"{pre}B"), pre)
    else:
        omegas = _as_array(have["omegas"], np.float64, f"{pre}omegas")
    try:
        return Encoding.from_spec(kinds, omegas)
    except ValueError as e:
        raise ValueError(f"state_dict encoding {pre!r}: {e}") from None


def _from_state_dict(sd):
    keys = [str(k) for k in sd.keys()]
    wkeys = [k for k in keys if k.endswith(".weight")]
    if not wkeys:
        raise ValueError("the state_dict has no '*.weight' entries")
    encoding = _encoding_from_state_dict(sd, keys, wkeys[0])
    others = [k for k in keys if _split_key(k)[1] not in ("weight", "bias") + _ENCODING_BUFFERS]
    if others:
        raise ValueError(f"the state_dict has entries {others[:4]} that are neither Linear "
                         "weights and biases nor an encoding's buffers: it is not a plain MLP, and "
                         "a state_dict cannot say how its layers connect; " + _NOT_AN_MLP)
    pairs, names = [], []
    for k in wkeys:
        prefix = k[: -len(".weight")]
        name = f"state_dict entry '{prefix}'"
        W = _numpy(sd[k], f"{name} weight")
        bk = prefix + ".bias"
        b = _numpy(sd[bk], f"{name} bias") if bk in sd else np.zeros(W.shape[:1])
        pairs.append((W, b)), names.append(name)
    try:
        return _from_pairs(pairs, names, encoding)
    except ValueError as e:
        raise ValueError(f"{e}; a state_dict is read as a plain MLP (Linear layers with ReLU "
                         f"between them); {_NOT_AN_MLP}") from None


def as_network(model) -> Network:
    """Convert any accepted model description to a :class:`Network`.

    Raises ``ValueError`` naming the offending layer for unsupported modules,
    mismatched shapes or non-finite parameters.
    """
    if isinstance(model, Network):
        return model
    # a torch module exists only if torch is already imported: numpy weights
    # never pay torch's import (seconds, and ~180 MB of resident memory)
    nn = sys.modules.get("torch.nn")
    if nn is not None and isinstance(model, nn.Module):
        if _is_plain_chain(model, nn):
            return _from_sequential(model)
        from .trace import trace

        return trace(model).network
    if isinstance(model, (dict, OrderedDict)):
        return _from_state_dict(model)
    if isinstance(model, (list, tuple)):
        return _from_pairs(model)
    raise TypeError(f"cannot read a network from {type(model).__name__}; expected a torch "
                    "nn.Sequential, a state_dict, a list of (W, b) pairs or a regions.Network")
