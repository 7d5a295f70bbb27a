"""Read a piecewise-linear torch model as its authors wrote it (``torch.fx``).

:func:`trace` turns any ``nn.Module`` whose ``forward`` is a fixed graph of
affine maps and piecewise-linear activations (custom ``forward``, residual
blocks, input skips, concatenation, slicing, max-pooling over features,
BatchNorm in eval mode) into a :class:`regions.Network`.

The representation
------------------
The module is traced by :class:`torch.fx.Tracer` (torch's own ``nn`` modules
and the regions encodings are leaves). Every tensor of the graph is then read
as an affine function of *variables*: the network input (after the encoding,
if any) and the output of every kink unit created so far. A tensor with
per-sample shape ``s`` carries ``(M, m)`` with ``value = M @ vars + m``
(``M`` shaped ``(prod(s), n_vars)``, flattened in C order). Affine nodes
(Linear, F.linear, a matmul with a constant, BatchNorm1d in eval mode folded,
add / sub / neg, mul / div by a constant, cat, slicing, flatten / view /
unsqueeze / squeeze, Identity, Dropout in eval mode) transform ``(M, m)``.
A *kink unit* is one scalar ``v = z if z > 0 else s z`` of an affine ``z``;
it becomes a new variable. Activations are written with kink units:

* ReLU, F.relu, torch.relu, Tensor.relu: one unit (slope 0) per element;
  LeakyReLU / F.leaky_relu: slope ``s``; PReLU: the slope of the element's
  channel (one or per-channel parameters);
* Hardtanh(lo, hi), ReLU6 (= Hardtanh(0, 6)), F.hardtanh, F.relu6 and
  ``clamp(z, lo, hi)`` with constant bounds: two units per element,
  ``lo + relu(z - lo) - relu(z - hi)``, so their bits read ``(z > lo, z > hi)``;
  ``clamp(z, min=lo)`` alone is ``lo + relu(z - lo)`` (bit ``z > lo``),
  ``clamp(z, max=hi)`` alone is ``hi - relu(hi - z)`` (bit ``z < hi``);
* ``max(a, b) = b + relu(a - b)`` (torch.maximum, torch.max(a, b),
  Tensor.max(b)): one unit whose zero set is ``a = b``; its bit is ``a > b``
  (the first argument wins). ``min(a, b) = b - relu(b - a)``, bit ``a < b``
  (the first argument wins again). A max over ``k`` values (MaxPool1d over
  features, ``x.max(dim)`` / ``amax`` for maxout) is a balanced tree of pairwise
  maxes: first ``(x0, x1), (x2, x3), ...`` (an odd last value passes up), then
  the winners the same way. For ``k > 2`` the tree is recorded in
  ``Network.max_trees`` and its pattern says which input wins and nothing
  else: :meth:`regions.Network.canonical` sets the comparisons off the
  winner's root-to-leaf path to 0, so a tree's bits are those it gives for the
  indicator vector of the winner (1 exactly where the winner is the first
  argument of a comparison it passes). Example, a max of 4 (bits ``c01``,
  ``c23`` at level 1, ``c`` at level 2): ``x0`` wins is ``(1, 0, 1)``, ``x1``
  ``(0, 0, 1)``, ``x2`` ``(0, 1, 0)``, ``x3`` ``(0, 0, 0)``. The engines merge
  the pieces whose canonical patterns agree, so regions are cut only where an
  argmax changes (docs/design.md, "A max over k values").
* a nested chain of two-argument maxes of one kind, ``torch.maximum(
  torch.maximum(a, b), c)`` (any mix of torch.maximum, torch.max(a, b),
  Tensor.max(b); or all minimum / min), in which every inner max has exactly
  one user, the outer max, is read as ONE max over its ``k`` leaves in the
  order written (``a, b, c``; ``max(a, max(b, c))`` too), broadcast to one
  shape and stacked along a new last axis: the same tree, ``max_trees`` and
  merged regions as ``torch.stack([a, b, c], -1).amax(-1)``, its bits and
  :meth:`Traced.winners` under the root (outermost) node's name; the inner
  nodes create no units. An inner max with another user (a value used
  elsewhere) stays a pairwise max, its comparison a boundary everywhere.

Anything else (GELU, SiLU, tanh, softmax, LayerNorm, attention, a product of
two tensors that depend on the input, a branch on tensor values that fx
cannot trace) is refused with a ``ValueError`` naming the node, the source
line fx recorded for it, and what is accepted: never read as something else.

Layers and carried units
------------------------
Input variables have depth 0; a kink unit has depth ``1 +`` the largest depth
of the variables its pre-activation depends on (a nonzero coefficient). The
:class:`regions.Network` has one hidden layer per depth: its kink units, whose
pre-activations are affine in the previous layer's activations, plus
*carried* units (``Network.linear`` True): a variable that a later layer or
the output still needs (a residual stream, an input skip, the ``b`` of
``max(a, b)``) passes through unchanged, with no kink and no pattern bit.
A layer's activation slope is shared by its kink units: when the kink units of
one depth have different slopes (PReLU per channel, or a ReLU next to a
LeakyReLU), the layer gets slope 0 and every unit of slope ``s != 0`` is
written ``s z + (1 - s) relu(z)``, with ``z`` itself a linear unit of the same
layer (its bit is still ``z > 0``).

Pattern order: layer-major (by depth); within a layer, kink units in the
order the graph creates them (node order of the fx graph, elements in C
order within a node, for a two-unit activation first every ``lo`` unit of the
node then every ``hi`` unit, for a max tree level by level, a level's units
shaped ``(pairs at that level, *output shape)``, pair-major (a folded nested
max: at its root node, whose tree's inputs are the leaves in the order
written); a comparison lies
in a later layer than the comparisons whose winners it compares, and layer-major
order comes first); carried and
linear units have no bit. :attr:`Traced.pattern_index` maps each activation
node to the positions of its bits in ``Network.patterns``.
"""
from __future__ import annotations

import math
import operator
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from .encoding import Encoding
from .network import Network, _real_float64

__all__ = ["Traced", "trace"]

ACCEPTED = ("accepted: Linear / F.linear / matmul by a constant, BatchNorm1d in eval mode, "
            "Identity, Flatten, Dropout in eval mode, +, -, negation, * and / by a constant, "
            "torch.cat / torch.stack along a feature axis, slicing of features, view / "
            "reshape / flatten / unsqueeze / squeeze that keep the batch axis, ReLU, LeakyReLU, "
            "PReLU, ReLU6, Hardtanh, clamp with constant bounds, torch.maximum / minimum / max / "
            "min of two tensors (nested ones of one kind read as one max), max / amax over a "
            "feature axis, MaxPool1d over features, and a regions encoding applied to the input")

_TORCH_DIR = os.path.dirname(torch.__file__)


@dataclass
class Traced:
    """What :func:`trace` reads from a module.

    Attributes
    ----------
    network : regions.Network
        The lowered network (carried units marked in ``network.linear``).
    pattern_index : dict
        ``node name -> list of int arrays``: for every activation node of
        ``graph_module``, one array per kink block it creates (two for a
        two-sided clamp, one per tree level of a max), shaped like the block's
        elements, holding the positions of their bits in ``network.patterns``.
    graph_module : torch.fx.GraphModule
        The traced graph (node names as in ``pattern_index``).
    max_inputs : dict
        ``node name -> k`` for every max (or min) over an axis of ``k >= 2``
        values (MaxPool1d, ``x.max(dim)``, ``amax``) and every root of a nested
        chain of ``k > 2`` two-argument maxes read as one: the nodes
        :meth:`winners` decodes.
    """

    network: object
    pattern_index: dict
    graph_module: object
    max_inputs: dict = field(default_factory=dict)

    def winners(self, patterns):
        """Which input wins every max over an axis, read from activation patterns.

        ``patterns``: ``(n, network.n_hidden)`` bool (``Partition.patterns``, or
        :meth:`regions.Network.patterns`). Returns ``node name -> (n, *output
        shape)`` int64: the index along the reduced axis (within the window, for
        MaxPool1d; for a nested max such as ``maximum(maximum(a, b), c)``, under
        the outermost node's name, the position of the leaf in the order written,
        ``a`` 0, ``b`` 1, ``c`` 2) of the input that wins, following the tree from
        the leaves up (a comparison that is on passes its first argument, so a tie
        goes to the later input).

        Examples
        --------
        >>> import torch
        >>> class Maxout(torch.nn.Module):
        ...     def forward(self, x):
        ...         return torch.cat([x[:, :1], -x[:, :1], x[:, 1:]], -1).max(dim=-1).values
        >>> t = trace(Maxout(), input_dim=2)
        >>> x = np.array([[2.0, 1.0], [-3.0, 0.5], [0.1, 0.4]])
        >>> t.winners(t.network.patterns(x))["max_1"].tolist()
        [0, 1, 2]
        """
        bits = np.asarray(patterns, dtype=bool)
        out = {}
        for name, k in self.max_inputs.items():
            levels = self.pattern_index[name]
            shape = (bits.shape[0],) + levels[0].shape[1:]
            items = [np.full(shape, i, dtype=np.int64) for i in range(k)]
            for idx in levels:
                pairs = [bits[:, idx[p].reshape(-1)].reshape(shape) for p in range(idx.shape[0])]
                nxt = [np.where(b, items[2 * p], items[2 * p + 1]) for p, b in enumerate(pairs)]
                items = nxt + ([items[-1]] if len(items) % 2 else [])
            out[name] = items[0]
        return out


class _Tracer(fx.Tracer):
    """torch.fx tracer that keeps regions encodings as leaves (their sin/cos are
    read as a feature table, not traced) and records source lines."""

    def __init__(self):
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m, module_qualified_name):
        return isinstance(m, Encoding) or super().is_leaf_module(m, module_qualified_name)


@dataclass
class _Affine:
    """A traced tensor: per sample of shape ``shape``, ``M @ vars + m``.

    ``M`` may have fewer columns than there are variables now (variables
    created later do not enter it): :meth:`tensor` pads."""

    shape: tuple
    M: np.ndarray
    m: np.ndarray

    def tensor(self, n_vars=None):
        """``(T, t)``: ``T`` shaped ``shape + (n_vars,)``, ``t`` shaped ``shape``;
        without ``n_vars``, only the columns ``M`` has (no padding)."""
        M = self.M
        n_vars = M.shape[1] if n_vars is None else n_vars
        if M.shape[1] < n_vars:
            M = np.concatenate([M, np.zeros((M.shape[0], n_vars - M.shape[1]))], axis=1)
        return M.reshape(self.shape + (n_vars,)), self.m.reshape(self.shape)

    @staticmethod
    def of(T, t):
        shape = tuple(t.shape)
        return _Affine(shape, np.ascontiguousarray(T).reshape(-1, T.shape[-1]),
                       np.ascontiguousarray(t, dtype=np.float64).reshape(-1))


class _Batch:
    """The batch size (``x.shape[0]``, ``x.size(0)``): allowed as the first
    entry of a view / reshape."""


class _Shape(tuple):
    """``x.shape`` / ``x.size()`` of a traced tensor: ``(_Batch, *shape)``."""


class _Indices:
    """The argmax of a max over an axis: data-dependent, refused when used."""


@dataclass
class _MaxResult:
    """``(values, indices)`` of a max over an axis."""

    values: "_Affine"

    def __getitem__(self, i):
        if i not in (0, 1, -1, -2):
            raise _Refused(f"index {i!r} of a max's (values, indices)")
        return self.values if i in (0, -2) else _Indices()


@dataclass
class _Pending:
    """An inner node of a nested chain of two-argument maxes (or mins) whose only user
    is the outer max of the same kind: not lowered; its leaf operands (in order of
    appearance) wait for the chain's root, which takes one k-way max over all of them."""

    node: str
    sign: float
    leaves: list


@dataclass
class _Block:
    """Kink units created together by one node: ``v = z if z > 0 else slope z``
    with ``z = A @ vars[:A.shape[1]] + c``; its variables are ``start .. start + len``."""

    node: str
    A: np.ndarray
    c: np.ndarray
    slopes: np.ndarray
    start: int
    shape: tuple


class _Refused(ValueError):
    pass


def _where(node):
    """``File "...", line N: code`` of the user's frame fx recorded for ``node``."""
    trace = node.meta.get("stack_trace") or getattr(node, "stack_trace", None)
    if not trace:
        return ""
    lines = trace.splitlines()
    best = ""
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("File ") and _TORCH_DIR not in s:
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            best = f" at {s.split(', in ')[0]}: {code}"
    return best


def _describe(node, gm):
    if node.op == "call_module":
        return f"layer {node.target} ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        return f"method .{node.target}()"
    target = getattr(node.target, "__name__", repr(node.target))
    return f"function {target}"


# canonical names of the call_function targets read here
_FUNCTIONS = {
    operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub",
    torch.subtract: "sub", operator.mul: "mul", torch.mul: "mul", torch.multiply: "mul",
    operator.truediv: "div", torch.div: "div", torch.true_divide: "div",
    operator.neg: "neg", torch.neg: "neg", operator.pos: "pos",
    operator.getitem: "getitem", getattr: "getattr",
    torch.cat: "cat", torch.concat: "cat", torch.concatenate: "cat", torch.stack: "stack",
    torch.relu: "relu", F.relu: "relu", F.leaky_relu: "leaky_relu", F.relu6: "relu6",
    F.hardtanh: "hardtanh", F.prelu: "prelu", torch.prelu: "prelu",
    torch.clamp: "clamp", torch.clip: "clamp", torch.clamp_min: "clamp_min",
    torch.clamp_max: "clamp_max",
    torch.maximum: "maximum", torch.minimum: "minimum", torch.max: "max", torch.min: "min",
    torch.amax: "amax", torch.amin: "amin",
    F.linear: "linear", torch.matmul: "matmul", operator.matmul: "matmul", torch.mm: "matmul",
    F.dropout: "dropout", torch.flatten: "flatten", torch.unsqueeze: "unsqueeze",
    torch.squeeze: "squeeze", torch.reshape: "reshape", F.max_pool1d: "max_pool1d",
}
_METHODS = {
    "add": "add", "sub": "sub", "mul": "mul", "div": "div", "neg": "neg", "relu": "relu",
    "clamp": "clamp", "clip": "clamp", "clamp_min": "clamp_min", "clamp_max": "clamp_max",
    "maximum": "maximum", "minimum": "minimum", "max": "max", "min": "min", "amax": "amax",
    "amin": "amin", "view": "reshape", "reshape": "reshape", "flatten": "flatten",
    "unsqueeze": "unsqueeze", "squeeze": "squeeze", "size": "size", "matmul": "matmul",
    "contiguous": "identity", "float": "identity", "double": "identity",
}
# constant folding never runs these (their value is not a constant of the model)
_RANDOM = ("rand", "normal", "bernoulli", "dropout", "multinomial", "poisson", "empty")


class _Reader:
    """Propagates ``(M, m)`` through the graph and collects the kink blocks."""

    def __init__(self, gm, input_dim):
        self.gm = gm
        self.input_dim = input_dim
        self.n_vars = 0
        self.blocks = []
        self.trees = []      # (unit, first, second) rows of the max trees over k > 2 values
        self.max_inputs = {}  # node name -> k of every max over an axis
        self.encoding = None
        self.env = {}
        self.deferred = _nested_max_inner(gm)  # inner nodes of nested max chains
        self.nodes = {n.name: n for n in gm.graph.nodes}

    # --- the graph ------------------------------------------------------------
    def run(self):
        output = None
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ValueError(f"{type(self.gm).__name__}: the forward takes "
                             f"{len(placeholders)} inputs ({[n.name for n in placeholders]}); "
                             "a model read by regions takes one tensor, the coordinates "
                             "(n_points, input_dim)")
        for node in self.gm.graph.nodes:
            try:
                if node.op == "output":
                    output = self._output(node)
                else:
                    self.env[node.name] = self._node(node)
            except _Refused as e:
                raise ValueError(f"cannot read node {node.name!r} ({_describe(node, self.gm)})"
                                 f"{_where(node)}: {e}; {ACCEPTED}") from None
        return output

    def _value(self, arg):
        if isinstance(arg, fx.Node):
            return self.env[arg.name]
        if isinstance(arg, (list, tuple)) and not isinstance(arg, _Shape):
            return type(arg)(self._value(a) for a in arg)
        if isinstance(arg, slice):
            return slice(self._value(arg.start), self._value(arg.stop), self._value(arg.step))
        return arg

    def _output(self, node):
        out = self._value(node.args[0])
        if not isinstance(out, _Affine):
            raise _Refused("the forward must return one tensor that depends on the input, "
                           f"got {type(out).__name__}")
        return out

    def _node(self, node):
        if node.op == "placeholder":
            if self.input_dim is None:
                raise _Refused("cannot tell the input width from the graph (no Linear layer or "
                               "encoding reads the input directly); call "
                               "regions.trace.trace(model, input_dim=...)")
            self.n_vars = self.input_dim
            return _Affine((self.input_dim,), np.eye(self.input_dim), np.zeros(self.input_dim))
        if node.op == "get_attr":
            value = self.gm
            for part in node.target.split("."):
                value = getattr(value, part)
            return value
        args = self._value(node.args)
        kwargs = {k: self._value(v) for k, v in node.kwargs.items()}
        if node.op == "call_module":
            return self._module(node, self.gm.get_submodule(node.target), args, kwargs)
        if node.op == "call_function":
            op = _FUNCTIONS.get(node.target)
            name = getattr(node.target, "__name__", "")
        else:
            op = _METHODS.get(node.target)
            name = node.target
        if _found(args, kwargs, _Indices):
            raise _Refused("the argmax of a max over an axis is data-dependent; only the max "
                           "values (.values or [0]) are accepted")
        if node.name in self.deferred or _found(args, kwargs, _Pending):
            folded = self._nested_max(node, op, args, kwargs)
            if folded is not None:
                return folded
            args, kwargs = self._lowered(args), self._lowered(kwargs)
        if not _depends(args, kwargs):
            return self._fold(node, name, args, kwargs)
        if op is None:
            raise _Refused("not a piecewise-linear operation this reader knows")
        return getattr(self, "_op_" + op)(node, *args, **kwargs)

    def _fold(self, node, name, args, kwargs):
        """A node none of whose inputs depends on the model input: evaluated by torch."""
        if any(word in name.lower() for word in _RANDOM):
            raise _Refused(f"{name} draws random numbers; the model must be deterministic")
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return self.gm.get_submodule(node.target)(*args, **kwargs)

    # --- helpers ----------------------------------------------------------------
    def _affine(self, value, shape=None):
        """``value`` (an _Affine, a number or a constant tensor) as an _Affine broadcast
        to ``shape`` (per sample); constants must not carry a batch axis."""
        if isinstance(value, _Affine):
            if shape is None or value.shape == tuple(shape):
                return value
            T, t = value.tensor(self.n_vars)
            try:
                return _Affine.of(np.broadcast_to(T, tuple(shape) + (self.n_vars,)),
                                  np.broadcast_to(t, shape))
            except ValueError:
                raise _Refused(f"shapes {value.shape} and {tuple(shape)} (per sample) do not "
                               "broadcast") from None
        c = _constant(value)
        if shape is None:
            shape = c.shape
        if c.ndim > len(shape):
            raise _Refused(f"a constant of shape {c.shape} would broadcast over the batch axis "
                           f"of a tensor of per-sample shape {tuple(shape)}")
        try:
            t = np.broadcast_to(c, shape)
        except ValueError:
            raise _Refused(f"a constant of shape {c.shape} does not broadcast to the per-sample "
                           f"shape {tuple(shape)}") from None
        return _Affine(tuple(shape), np.zeros((t.size, 0)), np.array(t, dtype=np.float64).ravel())

    def _shape_of(self, *values):
        shapes = [v.shape for v in values if isinstance(v, _Affine)]
        shapes += [_constant(v).shape for v in values if not isinstance(v, _Affine)]
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise _Refused(f"per-sample shapes {shapes} do not broadcast") from None

    def _structural(self, x, fn):
        """Apply an indexing / reshaping ``fn`` of the per-sample axes to ``x``."""
        T, t = x.tensor(self.n_vars)
        return _Affine.of(fn(T, True), fn(t, False))

    def _kinks(self, node, z, slopes):
        """New kink units ``v = relu_s(z)`` for every element of ``z``; returns their values."""
        A, c = z.M, z.m
        if A.shape[1] < self.n_vars:
            A = np.concatenate([A, np.zeros((A.shape[0], self.n_vars - A.shape[1]))], axis=1)
        n = c.shape[0]
        slopes = np.broadcast_to(np.asarray(slopes, dtype=np.float64), (n,)).copy()
        if not np.all(np.isfinite(A)) or not np.all(np.isfinite(c)) \
                or not np.all(np.isfinite(slopes)):
            raise _Refused("non-finite weights, biases or slopes reach this activation")
        self.blocks.append(_Block(node.name, A, c, slopes, self.n_vars, z.shape))
        M = np.zeros((n, self.n_vars + n))
        M[:, self.n_vars:] = np.eye(n)
        self.n_vars += n
        return _Affine(z.shape, M, np.zeros(n))

    def _combine(self, a, b, ca, cb, shift=0.0):
        """``ca a + cb b + shift`` of two _Affine of one shape."""
        n = max(a.M.shape[1], b.M.shape[1])
        Ta, ta = a.tensor(n)
        Tb, tb = b.tensor(n)
        return _Affine.of(ca * Ta + cb * Tb, ca * ta + cb * tb + shift)

    def _relu_s(self, node, x, slope):
        return self._kinks(node, self._affine(x), slope)

    def _clamp(self, node, x, lo, hi):
        x = self._affine(x)
        if lo is not None and hi is not None:
            lo, hi = _scalar(lo, "min"), _scalar(hi, "max")
            if not lo < hi:
                raise _Refused(f"clamp bounds min={lo}, max={hi} must satisfy min < max")
            up = self._kinks(node, self._combine(x, x, 1.0, 0.0, -lo), 0.0)
            down = self._kinks(node, self._combine(x, x, 1.0, 0.0, -hi), 0.0)
            return self._combine(up, down, 1.0, -1.0, lo)
        if lo is not None:
            lo = _scalar(lo, "min")
            return self._combine(self._kinks(node, self._combine(x, x, 1.0, 0.0, -lo), 0.0),
                                 x, 1.0, 0.0, lo)
        if hi is not None:
            hi = _scalar(hi, "max")
            return self._combine(self._kinks(node, self._combine(x, x, -1.0, 0.0, hi), 0.0),
                                 x, -1.0, 0.0, hi)
        raise _Refused("clamp needs a min or a max bound")

    def _max2(self, node, a, b, sign=1.0):
        """``max(a, b)`` (``sign=1``) or ``min(a, b)`` (``sign=-1``) elementwise."""
        shape = self._shape_of(a, b)
        a, b = self._affine(a, shape), self._affine(b, shape)
        gap = self._kinks(node, self._combine(a, b, sign, -sign), 0.0)
        return self._combine(b, gap, 1.0, sign)

    def _nested_max(self, node, op, args, kwargs):
        """A node of a nested chain of two-argument maxes (see :func:`_nested_max_inner`):
        an inner node becomes a :class:`_Pending` of its leaves, the root one k-way max
        over all the leaves of the chain. ``None`` when ``node`` turns out not to be a
        two-argument max of the chain's kind here (it is then read as usual)."""
        pair = _two_operands(op, args, kwargs)
        if pair is None:
            return None
        sign, a, b = pair
        if any(isinstance(v, _Pending) and v.sign != sign for v in (a, b)):
            return None
        if not _depends((a, b), {}) and not _found((a, b), {}, _Pending):
            return None                             # constants: folded by torch
        leaves = [leaf for v in (a, b)
                  for leaf in (v.leaves if isinstance(v, _Pending) else [v])]
        if node.name in self.deferred:
            return _Pending(node.name, sign, leaves)
        return self._max_k(node, leaves, sign)

    def _lowered(self, value):
        """``value`` with every :class:`_Pending` in it lowered (as a k-way max under its
        own node's name): the chain's root was not a max of its kind after all."""
        if isinstance(value, _Pending):
            return self._max_k(self.nodes[value.node], value.leaves, value.sign)
        if isinstance(value, (list, tuple)) and not isinstance(value, _Shape):
            return type(value)(self._lowered(v) for v in value)
        if isinstance(value, dict):
            return {k: self._lowered(v) for k, v in value.items()}
        return value

    def _max_k(self, node, leaves, sign):
        """The max (``sign=1``) or min of the ``leaves`` (traced tensors or constants),
        broadcast to one shape: ``_max2`` for two, else ``_reduce_max`` over a new axis."""
        if len(leaves) == 2:
            return self._max2(node, leaves[0], leaves[1], sign)
        shapes = [v.shape if isinstance(v, _Affine) else _constant(v).shape for v in leaves]
        try:
            shape = tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise _Refused(f"a nested max of {len(leaves)} tensors is read as one max over all "
                           f"of them, but their per-sample shapes {shapes} do not broadcast to "
                           "one shape") from None
        items = [self._affine(v, shape).tensor(self.n_vars) for v in leaves]
        axis = len(shape)
        x = _Affine.of(np.stack([T for T, _ in items], axis=axis),
                       np.stack([t for _, t in items], axis=axis))
        return self._reduce_max(node, x, axis, sign)

    def _reduce_max(self, node, x, axis, sign=1.0):
        """Max (or min) of ``x`` over its per-sample ``axis`` by a balanced tree.

        For ``k > 2`` values the comparisons are recorded in ``self.trees``
        (rows ``(unit, first, second)`` of variables, an argument that is the
        max's input ``i`` as ``-1 - i``; see :attr:`regions.Network.max_trees`)."""
        T, t = x.tensor(self.n_vars)
        k = t.shape[axis]
        items = [_Affine.of(np.take(T, i, axis=axis), np.take(t, i, axis=axis)) for i in range(k)]
        if not items:
            raise _Refused("a max over an empty axis")
        out_shape = items[0].shape
        source = [np.full(out_shape, -1 - i, dtype=np.int64) for i in range(k)]
        if k > 1:
            self.max_inputs[node.name] = k
        while len(items) > 1:
            n_pairs = len(items) // 2
            a = _stack(items[0:2 * n_pairs:2], self.n_vars)
            b = _stack(items[1:2 * n_pairs:2], self.n_vars)
            winners = self._max2(node, a, b, sign)
            blk = self.blocks[-1]
            units = blk.start + np.arange(len(blk.c)).reshape((n_pairs,) + out_shape)
            if k > 2:
                self.trees.append(np.stack([units, np.stack(source[0:2 * n_pairs:2]),
                                            np.stack(source[1:2 * n_pairs:2])], -1).reshape(-1, 3))
            Tw, tw = winners.tensor(self.n_vars)
            nxt = [_Affine.of(Tw[i], tw[i]) for i in range(n_pairs)]
            nxt_source = [units[i] for i in range(n_pairs)]
            if len(items) % 2:
                nxt.append(items[-1])
                nxt_source.append(source[-1])
            items, source = nxt, nxt_source
        return items[0]

    def _feature_axis(self, x, dim, what):
        """The per-sample axis of torch ``dim`` of a tensor ``(batch, *x.shape)``."""
        dim = _int(dim, "dim")
        ndim = len(x.shape) + 1
        if dim < 0:
            dim += ndim
        if not 1 <= dim < ndim:
            raise _Refused(f"{what} along dim {dim} of a tensor with {ndim} axes; only the "
                           "feature axes (not the batch axis 0) are accepted")
        return dim - 1

    # --- modules --------------------------------------------------------------
    def _module(self, node, m, args, kwargs):
        if isinstance(m, Encoding):
            return self._encoding(node, m, args)
        if not _depends(args, kwargs):
            return self._fold(node, type(m).__name__, args, kwargs)
        x = args[0] if args else None
        if not isinstance(x, _Affine) or len(args) != 1 or kwargs:
            raise _Refused("a layer must be called on one traced tensor")
        if isinstance(m, nn.Linear):
            W = _param(m.weight, "weight")
            b = _param(m.bias, "bias") if m.bias is not None else np.zeros(W.shape[0])
            return self._linear(x, W, b)
        if isinstance(m, (nn.Identity,)):
            return x
        if isinstance(m, nn.Flatten):
            return self._op_flatten(node, x, m.start_dim, m.end_dim)
        if isinstance(m, nn.modules.dropout._DropoutNd):
            return self._op_dropout(node, x, m.p, m.training)
        if isinstance(m, nn.BatchNorm1d):
            return self._batchnorm(x, m)
        if isinstance(m, nn.ReLU):
            return self._relu_s(node, x, 0.0)
        if isinstance(m, nn.LeakyReLU):
            return self._relu_s(node, x, _scalar(m.negative_slope, "negative_slope"))
        if isinstance(m, nn.PReLU):
            return self._op_prelu(node, x, m.weight)
        if isinstance(m, nn.Hardtanh):  # and ReLU6
            return self._clamp(node, x, m.min_val, m.max_val)
        if isinstance(m, nn.MaxPool1d):
            return self._op_max_pool1d(node, x, m.kernel_size, m.stride, m.padding, m.dilation,
                                       m.ceil_mode, m.return_indices)
        raise _Refused(f"unsupported layer {node.target} ({type(m).__name__})")

    def _encoding(self, node, m, args):
        source = node.args[0] if node.args else None
        if type(m).forward is not Encoding.forward:
            raise _Refused(f"{type(m).__name__} overrides the forward of a regions Encoding; "
                           "only the feature table (kinds, omegas) of an Encoding is read")
        if self.encoding is not None:
            raise _Refused("a second encoding; only one regions encoding, applied to the input, "
                           "is accepted")
        if not (isinstance(source, fx.Node) and source.op == "placeholder") or len(node.args) != 1:
            raise _Refused("a regions encoding must be applied to the model's input itself")
        raw_users = [u.name for u in source.users if u is not node]
        if raw_users:
            raise _Refused(f"the raw input is also used by {raw_users}; with an encoding the "
                           "network's input is the encoded features (use include_input=True "
                           "to feed the raw coordinates too)")
        if self.input_dim != m.in_features:
            raise _Refused(f"the encoding takes {m.in_features} inputs")
        self.encoding = m
        n = m.out_features
        self.input_dim = n
        self.n_vars = n
        return _Affine((n,), np.eye(n), np.zeros(n))

    def _linear(self, x, W, b):
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise _Refused(f"expected a weight (out, in) and a bias (out,), got {W.shape} and "
                           f"{b.shape}")
        if not x.shape or x.shape[-1] != W.shape[1]:
            raise _Refused(f"expects {W.shape[1]} input features but gets a tensor of "
                           f"per-sample shape {x.shape}")
        # only the columns x has: variables created after x do not enter it
        T, t = x.tensor()
        with np.errstate(over="ignore", invalid="ignore"):
            out = _Affine.of(np.matmul(W, T), t @ W.T + b)
        if not (np.all(np.isfinite(out.M)) and np.all(np.isfinite(out.m))):
            raise _Refused("non-finite weights, or an affine map that overflows float64")
        return out

    def _batchnorm(self, x, m):
        if m.training:
            raise _Refused("BatchNorm in training mode normalises by the batch's own statistics; "
                           "call model.eval() first (eval mode uses the running statistics, an "
                           "affine map)")
        if m.running_mean is None or m.running_var is None:
            raise _Refused("BatchNorm without running statistics (track_running_stats=False) "
                           "normalises by the batch's own statistics in eval mode too")
        mean, var = _param(m.running_mean, "running_mean"), _param(m.running_var, "running_var")
        scale = 1.0 / np.sqrt(var + float(m.eps))
        shift = -mean * scale
        if m.weight is not None:
            w, bias = _param(m.weight, "weight"), _param(m.bias, "bias")
            scale, shift = scale * w, shift * w + bias
        if not x.shape or x.shape[0] != scale.shape[0]:
            raise _Refused(f"BatchNorm1d of {scale.shape[0]} channels on a tensor of per-sample "
                           f"shape {x.shape}")
        extra = (1,) * (len(x.shape) - 1)
        T, t = x.tensor(self.n_vars)
        return _Affine.of(T * scale.reshape(scale.shape + extra + (1,)),
                          t * scale.reshape(scale.shape + extra) + shift.reshape(shift.shape + extra))

    # --- functions and methods ------------------------------------------------------
    def _op_identity(self, node, x, *args, **kwargs):
        if args or kwargs:
            raise _Refused("only the argument-free form is accepted")
        return x

    def _op_add(self, node, a, b, alpha=1):
        shape = self._shape_of(a, b)
        return self._combine(self._affine(a, shape), self._affine(b, shape), 1.0,
                             _scalar(alpha, "alpha"))

    def _op_sub(self, node, a, b, alpha=1):
        shape = self._shape_of(a, b)
        return self._combine(self._affine(a, shape), self._affine(b, shape), 1.0,
                             -_scalar(alpha, "alpha"))

    def _op_neg(self, node, x):
        x = self._affine(x)
        return _Affine(x.shape, -x.M, -x.m)

    def _op_pos(self, node, x):
        return self._affine(x)

    def _op_mul(self, node, a, b):
        if isinstance(a, _Affine) and isinstance(b, _Affine):
            raise _Refused("a product of two tensors that both depend on the input is not "
                           "piecewise linear")
        x, c = (a, b) if isinstance(a, _Affine) else (b, a)
        return self._scale(x, _constant(c))

    def _op_div(self, node, a, b, rounding_mode=None):
        if not isinstance(a, _Affine) or isinstance(b, _Affine) or rounding_mode is not None:
            raise _Refused("only division of a traced tensor by a constant is affine")
        c = _constant(b)
        if np.any(c == 0):
            raise _Refused("division by zero")
        return self._scale(a, 1.0 / c)

    def _scale(self, x, c):
        shape = self._shape_of(x, c)
        x = self._affine(x, shape)
        if c.ndim > len(shape):
            raise _Refused(f"a constant of shape {c.shape} would broadcast over the batch axis")
        T, t = x.tensor(self.n_vars)
        cb = np.broadcast_to(c, shape)
        return _Affine.of(T * cb[..., None], t * cb)

    def _op_getitem(self, node, x, index):
        if isinstance(x, _Shape):
            return x[index]
        if isinstance(x, _MaxResult):
            return x[index]
        if not isinstance(x, _Affine):
            raise _Refused(f"indexing a {type(x).__name__}")
        index = index if isinstance(index, tuple) else (index,)
        for i in index:
            if not (i is Ellipsis or i is None or isinstance(i, (slice, int))) \
                    or isinstance(i, bool):
                raise _Refused(f"index {i!r}: only integers, slices, None and ... are accepted "
                               "(no tensor or list indexing)")
            if isinstance(i, slice) and not all(v is None or isinstance(v, int)
                                                for v in (i.start, i.stop, i.step)):
                raise _Refused(f"slice {i!r} with non-integer bounds")
        if index and index[0] is Ellipsis:
            rest = index[1:]
            if sum(i is not None for i in rest) > len(x.shape):
                raise _Refused("the index reaches the batch axis")
            per_sample = (Ellipsis,) + rest
        elif index and index[0] == slice(None):
            per_sample = index[1:]
        else:
            raise _Refused(f"index {index!r} selects along the batch axis; the first index must "
                           "be : (or ...)")
        if Ellipsis in per_sample[1:]:
            raise _Refused("only one ... is accepted")
        has_ellipsis = bool(per_sample) and per_sample[0] is Ellipsis

        def fn(a, with_vars):
            if with_vars and has_ellipsis:
                return a[per_sample + (slice(None),)]
            return a[per_sample]
        try:
            return self._structural(x, fn)
        except IndexError as e:
            raise _Refused(f"index {index!r}: {e}") from None

    def _op_getattr(self, node, x, name):
        if isinstance(x, _Affine) and name == "shape":
            return _Shape((_Batch(),) + x.shape)
        if isinstance(x, _MaxResult) and name in ("values", "indices"):
            return x[0] if name == "values" else x[1]
        if isinstance(x, _Affine) and name == "T" and len(x.shape) == 0:
            return x
        raise _Refused(f"attribute {name!r} of a traced tensor")

    def _op_size(self, node, x, dim=None):
        shape = _Shape((_Batch(),) + x.shape)
        return shape if dim is None else shape[_int(dim, "dim")]

    def _op_cat(self, node, tensors, dim=0):
        parts = [self._affine(t) for t in tensors]
        if not parts:
            raise _Refused("cat of no tensors")
        axis = self._feature_axis(parts[0], dim, "cat")
        if any(len(p.shape) != len(parts[0].shape) for p in parts):
            raise _Refused(f"cat of tensors of per-sample shapes {[p.shape for p in parts]}")
        pairs = [p.tensor(self.n_vars) for p in parts]
        try:
            return _Affine.of(np.concatenate([T for T, _ in pairs], axis=axis),
                              np.concatenate([t for _, t in pairs], axis=axis))
        except ValueError:
            raise _Refused(f"cat along dim {dim} of per-sample shapes "
                           f"{[p.shape for p in parts]}") from None

    def _op_stack(self, node, tensors, dim=0):
        parts = [self._affine(t) for t in tensors]
        if not parts:
            raise _Refused("stack of no tensors")
        if any(p.shape != parts[0].shape for p in parts):
            raise _Refused(f"stack of tensors of per-sample shapes {[p.shape for p in parts]}")
        dim = _int(dim, "dim")
        ndim = len(parts[0].shape) + 2      # the batch axis and the new axis
        if dim < 0:
            dim += ndim
        if not 1 <= dim < ndim:
            raise _Refused(f"stack along dim {dim} of a result with {ndim} axes; only a new "
                           "feature axis (not before the batch axis) is accepted")
        pairs = [p.tensor(self.n_vars) for p in parts]
        return _Affine.of(np.stack([T for T, _ in pairs], axis=dim - 1),
                          np.stack([t for _, t in pairs], axis=dim - 1))

    def _op_flatten(self, node, x, start_dim=0, end_dim=-1):
        ndim = len(x.shape) + 1
        start, end = _int(start_dim, "start_dim") % ndim, _int(end_dim, "end_dim") % ndim
        if start == 0:
            raise _Refused("flatten from dim 0 merges the batch axis; use flatten(1)")
        if end < start:
            raise _Refused(f"flatten with end_dim {end_dim} before start_dim {start_dim}")
        shape = x.shape[:start - 1] + (int(np.prod(x.shape[start - 1:end], dtype=np.int64)),) \
            + x.shape[end:]
        return self._reshaped(x, shape)

    def _reshaped(self, x, shape):
        return self._structural(x, lambda a, v: a.reshape(shape + ((a.shape[-1],) if v else ())))

    def _op_reshape(self, node, x, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if not shape or not (isinstance(shape[0], _Batch) or shape[0] == -1):
            raise _Refused(f"view / reshape to {shape}: the first size must be the batch "
                           "(x.shape[0], x.size(0) or -1) so samples stay apart")
        rest = [_int(s, "size") for s in shape[1:]]
        size = int(np.prod(x.shape, dtype=np.int64))
        if rest.count(-1) > (0 if shape[0] == -1 else 1):
            raise _Refused(f"view / reshape to {shape}: only one size may be -1")
        if -1 in rest:
            known = int(np.prod([s for s in rest if s != -1], dtype=np.int64))
            if known == 0 or size % known:
                raise _Refused(f"cannot view per-sample shape {x.shape} as {shape}")
            rest[rest.index(-1)] = size // known
        if int(np.prod(rest, dtype=np.int64)) != size:
            raise _Refused(f"cannot view per-sample shape {x.shape} as (batch, {rest}) "
                           "without mixing samples")
        return self._reshaped(x, tuple(rest))

    def _op_unsqueeze(self, node, x, dim):
        dim = _int(dim, "dim")
        ndim = len(x.shape) + 2
        dim = dim + ndim if dim < 0 else dim
        if not 1 <= dim < ndim:
            raise _Refused(f"unsqueeze at dim {dim}: only after the batch axis")
        return self._reshaped(x, x.shape[:dim - 1] + (1,) + x.shape[dim - 1:])

    def _op_squeeze(self, node, x, dim=None):
        if dim is None:
            raise _Refused("squeeze without dim could drop the batch axis; pass the dim")
        axis = self._feature_axis(x, dim, "squeeze")
        if x.shape[axis] != 1:
            return x
        return self._reshaped(x, x.shape[:axis] + x.shape[axis + 1:])

    def _op_linear(self, node, x, weight, bias=None):
        if not isinstance(x, _Affine) or _depends((weight, bias), {}):
            raise _Refused("F.linear of a traced input with constant weights is accepted")
        W = _constant(weight)
        b = _constant(bias) if bias is not None else np.zeros(W.shape[0])
        return self._linear(x, W, b)

    def _op_matmul(self, node, a, b):
        if not isinstance(a, _Affine) or isinstance(b, _Affine):
            raise _Refused("only traced tensor @ constant matrix is accepted")
        W = _constant(b)
        if W.ndim != 2:
            raise _Refused(f"matmul by a constant of shape {W.shape}; a matrix is accepted")
        return self._linear(a, W.T, np.zeros(W.shape[1]))

    def _op_dropout(self, node, x, p=0.5, training=True, inplace=False):
        if training and float(p) > 0:
            raise _Refused(f"Dropout(p={p}) in training mode zeroes random units; call "
                           "model.eval() first")
        return x

    def _op_relu(self, node, x, inplace=False):
        return self._relu_s(node, x, 0.0)

    def _op_leaky_relu(self, node, x, negative_slope=0.01, inplace=False):
        return self._relu_s(node, x, _scalar(negative_slope, "negative_slope"))

    def _op_prelu(self, node, x, weight):
        x = self._affine(x)
        w = _constant(weight).ravel()
        if w.size == 1:
            return self._kinks(node, x, w[0])
        if not x.shape or x.shape[0] != w.size:
            raise _Refused(f"PReLU with {w.size} channel slopes on a tensor of per-sample shape "
                           f"{x.shape}")
        slopes = np.broadcast_to(w.reshape((w.size,) + (1,) * (len(x.shape) - 1)), x.shape)
        return self._kinks(node, x, slopes.ravel())

    def _op_relu6(self, node, x, inplace=False):
        return self._clamp(node, x, 0.0, 6.0)

    def _op_hardtanh(self, node, x, min_val=-1.0, max_val=1.0, inplace=False):
        return self._clamp(node, x, min_val, max_val)

    def _op_clamp(self, node, x, min=None, max=None):
        return self._clamp(node, x, min, max)

    def _op_clamp_min(self, node, x, min):
        return self._clamp(node, x, min, None)

    def _op_clamp_max(self, node, x, max):
        return self._clamp(node, x, None, max)

    def _op_maximum(self, node, a, b):
        return self._max2(node, a, b, 1.0)

    def _op_minimum(self, node, a, b):
        return self._max2(node, a, b, -1.0)

    def _max_or_reduce(self, node, sign, x, other=None, dim=None, keepdim=False):
        if other is not None and not isinstance(other, (int, np.integer)):
            if dim is not None:
                raise _Refused("max(a, b) takes no dim")
            return self._max2(node, x, other, sign)
        dim = other if other is not None else dim
        if dim is None:
            raise _Refused("a max over the whole tensor mixes the batch; give a feature dim")
        return _MaxResult(self._reduce(node, x, dim, keepdim, sign))

    def _reduce(self, node, x, dim, keepdim, sign):
        x = self._affine(x)
        if isinstance(dim, (tuple, list)):
            if len(dim) != 1:
                raise _Refused("a max over several axes at once; reduce one axis at a time")
            dim = dim[0]
        axis = self._feature_axis(x, dim, "max")
        out = self._reduce_max(node, x, axis, sign)
        if keepdim:
            out = self._reshaped(out, x.shape[:axis] + (1,) + x.shape[axis + 1:])
        return out

    def _op_max(self, node, x, other=None, dim=None, keepdim=False):
        return self._max_or_reduce(node, 1.0, x, other, dim, keepdim)

    def _op_min(self, node, x, other=None, dim=None, keepdim=False):
        return self._max_or_reduce(node, -1.0, x, other, dim, keepdim)

    def _op_amax(self, node, x, dim=(), keepdim=False):
        if dim in ((), None, []):
            raise _Refused("amax over the whole tensor mixes the batch; give a feature dim")
        return self._reduce(node, x, dim, keepdim, 1.0)

    def _op_amin(self, node, x, dim=(), keepdim=False):
        if dim in ((), None, []):
            raise _Refused("amin over the whole tensor mixes the batch; give a feature dim")
        return self._reduce(node, x, dim, keepdim, -1.0)

    def _op_max_pool1d(self, node, x, kernel_size, stride=None, padding=0, dilation=1,
                       ceil_mode=False, return_indices=False):
        k, s = _one(kernel_size, "kernel_size"), _one(stride or kernel_size, "stride")
        pad, dil = _one(padding, "padding"), _one(dilation, "dilation")
        if return_indices:
            raise _Refused("return_indices: the argmax is data-dependent")
        if pad != 0:
            raise _Refused("MaxPool1d with padding; only padding=0 is accepted")
        x = self._affine(x)
        if not x.shape:
            raise _Refused("MaxPool1d of a scalar per sample")
        L = x.shape[-1]
        span = dil * (k - 1) + 1
        n_out = (L - span) // s + 1 if L >= span else 0
        if ceil_mode and (L - span) % s:
            raise _Refused("MaxPool1d with ceil_mode=True and a partial last window")
        if n_out < 1:
            raise _Refused(f"MaxPool1d window {span} longer than the {L} features")
        windows = np.arange(n_out)[:, None] * s + np.arange(k)[None, :] * dil
        grouped = self._structural(x, lambda a, v: a[..., windows, :] if v else a[..., windows])
        return self._reduce_max(node, grouped, len(grouped.shape) - 1, 1.0)


def _depends(args, kwargs):
    """True when an argument is a traced tensor (depends on the model's input)."""
    return _found(args, kwargs, (_Affine, _MaxResult))


def _found(args, kwargs, kind):
    found = []

    def visit(a):
        if isinstance(a, kind):
            found.append(a)
        elif isinstance(a, (list, tuple)):
            for b in a:
                visit(b)
        elif isinstance(a, dict):
            for b in a.values():
                visit(b)
    visit(args), visit(kwargs)
    return bool(found)


def _two_operands(op, args, kwargs, static=False):
    """``(sign, first, second)`` of a max (``sign=1``) or min of two tensors
    (``torch.maximum(a, b)``, ``torch.max(a, b)``, ``a.max(b)``, ...), else ``None``
    (``torch.max(x, dim)`` and the like). ``static``: ``args`` are the fx node's own
    (a tensor operand is an ``fx.Node``), else the values read."""
    if op not in ("maximum", "minimum", "max", "min"):
        return None
    sign = 1.0 if op in ("maximum", "max") else -1.0
    rest, kw = list(args), dict(kwargs)
    first = rest.pop(0) if rest else kw.pop("input", None)
    second = rest.pop(0) if rest else kw.pop("other", None)
    if rest or kw or first is None or second is None:
        return None
    tensor = (fx.Node,) if static else (_Affine, _Pending, torch.Tensor, np.ndarray)
    if op in ("max", "min") and not isinstance(second, tensor):
        return None          # max(x, dim)
    return sign, first, second


def _nested_max_inner(gm):
    """Names of the inner nodes of nested chains of two-argument maxes of one kind:
    a max (min) of two tensors whose only user is a max (min) of two tensors that
    takes it once. The chain's root reads all its leaves as one k-way max (a max
    with more users is a value used elsewhere and stays pairwise)."""
    pairs = {}
    for n in gm.graph.nodes:
        if n.op == "call_function":
            op = _FUNCTIONS.get(n.target)
        elif n.op == "call_method":
            op = _METHODS.get(n.target)
        else:
            continue
        p = _two_operands(op, n.args, n.kwargs, static=True)
        if p is not None:
            pairs[n] = p
    inner = set()
    for n, (sign, _, _) in pairs.items():
        if len(n.users) != 1:
            continue
        (user,) = n.users
        q = pairs.get(user)
        if q is not None and q[0] == sign and (q[1] is n) + (q[2] is n) == 1:
            inner.add(n.name)
    return inner


def _stack(items, n_vars):
    pairs = [it.tensor(n_vars) for it in items]
    return _Affine.of(np.stack([T for T, _ in pairs]), np.stack([t for _, t in pairs]))


def _constant(value):
    """A constant operand (number or tensor) as float64 numpy."""
    if isinstance(value, (_Batch, _Shape, _Indices)):
        raise _Refused("the batch size or an argmax used as a number")
    if isinstance(value, bool):
        raise _Refused("a boolean operand")
    if isinstance(value, (torch.Tensor, np.ndarray)):  # the checks weights get (network.py)
        try:
            return _real_float64(value, "a constant")
        except ValueError as e:
            raise _Refused(str(e)) from None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return np.asarray(float(value))
    raise _Refused(f"an operand of type {type(value).__name__}")


def _param(value, name):
    a = _constant(value)
    if not np.all(np.isfinite(a)):
        raise _Refused(f"non-finite {name}")
    return a


def _scalar(value, name):
    c = _constant(value)
    if c.size != 1:
        raise _Refused(f"{name} must be one number, got shape {c.shape}")
    v = float(c.ravel()[0])
    if not math.isfinite(v):
        raise _Refused(f"{name} is {v}; it must be a finite number")
    return v


def _int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _Refused(f"{name} must be an integer, got {value!r}")
    return int(value)


def _one(value, name):
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise _Refused(f"{name} {value!r}: one number expected")
        value = value[0]
    return _int(value, name)


def _input_width(gm):
    """The input width the graph implies: the in_features of the first Linear
    layer or encoding that reads the input (through shape-keeping nodes)."""
    keep = {"relu", "leaky_relu", "dropout", "identity", "add", "sub", "mul", "div", "neg"}
    todo = [n for n in gm.graph.nodes if n.op == "placeholder"][:1]
    seen = set()
    while todo:
        node = todo.pop(0)
        for user in node.users:
            if user.name in seen:
                continue
            seen.add(user.name)
            if user.op == "call_module":
                m = gm.get_submodule(user.target)
                if isinstance(m, Encoding):
                    return int(m.in_features)
                if isinstance(m, nn.Linear):
                    return int(m.in_features)
                if isinstance(m, nn.Bilinear):
                    continue
                if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Hardtanh,
                                  nn.modules.dropout._DropoutNd, nn.BatchNorm1d, nn.PReLU)):
                    todo.append(user)
            elif user.op == "call_function" and _FUNCTIONS.get(user.target) == "linear":
                weight = user.args[1] if len(user.args) > 1 else user.kwargs.get("weight")
                if isinstance(weight, fx.Node) and weight.op == "get_attr":
                    value = gm
                    for part in weight.target.split("."):
                        value = getattr(value, part)
                    return int(value.shape[1])
            elif (_FUNCTIONS.get(user.target) if user.op == "call_function"
                  else _METHODS.get(user.target)) in keep:
                todo.append(user)
    return None


def trace(model, input_dim=None) -> Traced:
    """Read a torch module into a :class:`Traced` (its :class:`regions.Network`).

    Parameters
    ----------
    model : torch.nn.Module
        Its ``forward`` takes one tensor ``(n_points, input_dim)`` and returns
        ``(n_points, n_out)`` (or ``(n_points,)``, read as one output).
    input_dim : int, optional
        Width of the input; by default the ``in_features`` of the first
        Linear layer or encoding that reads it.

    Raises
    ------
    ValueError
        A forward fx cannot trace, or a node that is not piecewise linear
        (named, with its source line and what is accepted).

    Examples
    --------
    >>> import torch, numpy as np
    >>> class Res(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         torch.manual_seed(0)
    ...         self.a, self.b = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    ...     def forward(self, x):
    ...         h = torch.relu(self.a(x))
    ...         return self.b(h + torch.relu(h - 1.0))      # a residual on top of h
    >>> model = Res().double()
    >>> t = trace(model)
    >>> t.network.widths, [int(m.sum()) for m in t.network.linear]   # 3 carried units in layer 2
    ([3, 6], [0, 3])
    >>> x = np.random.default_rng(0).normal(size=(5, 2))
    >>> bool(np.allclose(t.network.forward(x), model(torch.as_tensor(x)).detach().numpy()))
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"trace reads a torch nn.Module, got {type(model).__name__}")
    tracer = _Tracer()
    rng = torch.random.get_rng_state()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # user code: fx raises many kinds (TraceError, TypeError, ...)
        raise ValueError(f"torch.fx cannot trace {type(model).__name__}.forward ({type(e).__name__}: "
                         f"{e}); the forward must be a fixed graph of tensor operations (no "
                         "branch or loop on tensor values); " + ACCEPTED) from e
    finally:
        drew = not torch.equal(rng, torch.random.get_rng_state())
        torch.random.set_rng_state(rng)
    if drew:
        # fx runs a random draw on no traced input (torch.randn(4)) once and keeps
        # the sample as a constant: the model's own forward would draw anew each call
        raise ValueError(f"{type(model).__name__}.forward draws random numbers (torch's random "
                         "generator advanced while tracing it); the model must be a "
                         "deterministic function of its input")
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    if input_dim is not None:
        input_dim = _int(input_dim, "input_dim")
    reader = _Reader(gm, input_dim if input_dim is not None else _input_width(gm))
    output = reader.run()
    return _lower(reader, output, gm)


def _lower(reader, output, gm):
    """The kink blocks and the output as a :class:`regions.Network` (see the module doc)."""

    n_in = reader.input_dim
    n_vars = reader.n_vars
    depth = np.zeros(n_vars, dtype=np.int64)
    slope = np.zeros(n_vars)
    A = np.zeros((n_vars, n_vars))  # row v: pre-activation of kink variable v over all vars
    c = np.zeros(n_vars)
    for blk in reader.blocks:
        rows = slice(blk.start, blk.start + len(blk.c))
        k = blk.A.shape[1]
        A[rows, :k], c[rows], slope[rows] = blk.A, blk.c, blk.slopes
        used = blk.A != 0
        depth[rows] = np.where(used, depth[None, :k], 0).max(axis=1, initial=0) + 1
    is_kink = np.arange(n_vars) >= n_in
    depth[~is_kink] = 0
    n_layers = int(depth.max(initial=0))
    out_T, out_t = output.tensor(n_vars)
    out_M, out_m = out_T.reshape(-1, n_vars), out_t.reshape(-1)
    # last layer that reads each variable (n_layers + 1: the output)
    last_use = np.where((A != 0) & is_kink[:, None], depth[:, None], -1).max(axis=0, initial=-1)
    last_use[np.any(out_M != 0, axis=0)] = n_layers + 1

    # R: rows = variables, columns = activations of the current layer
    R = np.zeros((n_vars, n_in))
    R[:n_in] = np.eye(n_in)
    available = ~is_kink.copy()
    weights, biases, slopes, linear, names = [], [], [], [], []
    position = np.full(n_vars, -1)
    bits = 0
    for layer in range(1, n_layers + 1):
        kinks = np.flatnonzero(is_kink & (depth == layer))
        s = np.unique(slope[kinks])
        shared = float(s[0]) if len(s) == 1 else 0.0
        split = kinks[slope[kinks] != shared]           # written s z + (1 - s) relu(z)
        carried = np.flatnonzero(available & (depth < layer) & (last_use > layer))
        live = np.flatnonzero(available)     # R is zero on every other row
        rows_W = [A[np.ix_(kinks, live)] @ R[live], A[np.ix_(split, live)] @ R[live], R[carried]]
        rows_b = [c[kinks], c[split], np.zeros(len(carried))]
        W, b = np.concatenate(rows_W), np.concatenate(rows_b)
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise ValueError(f"hidden layer {layer}: composing the affine maps overflows float64")
        n_k, n_s = len(kinks), len(split)
        lin = np.zeros(len(b), dtype=bool)
        lin[n_k:] = True
        R_new = np.zeros((n_vars, len(b)))
        R_new[kinks, np.arange(n_k)] = 1.0
        for j, v in enumerate(split):
            col = np.flatnonzero(kinks == v)[0]
            R_new[v, col] = 1.0 - slope[v]
            R_new[v, n_k + j] = slope[v]
        R_new[carried, n_k + n_s + np.arange(len(carried))] = 1.0
        position[kinks] = bits + np.arange(n_k)
        bits += n_k
        available = np.zeros(n_vars, dtype=bool)
        available[kinks] = True
        available[carried] = True
        R = R_new
        weights.append(W), biases.append(b), slopes.append(shared), linear.append(lin)
        names.append(f"depth {layer} ({n_k} kink, {len(b) - n_k} linear units)")
    need = np.any(out_M != 0, axis=0)
    weights.append(out_M[:, need] @ R[need]), biases.append(out_m.copy())
    names.append("output")
    if not np.all(np.isfinite(weights[-1])):
        raise ValueError("the output layer: composing the affine maps overflows float64")
    if not any(m.any() for m in linear):
        linear = None  # a chain: the same Network the direct reader builds
    max_trees = None
    if reader.trees:
        rows = np.concatenate(reader.trees)
        max_trees = np.where(rows >= 0, position[np.maximum(rows, 0)], rows)
    net = Network(weights, biases, np.asarray(slopes, dtype=np.float64), reader.encoding, names,
                  linear, max_trees)
    pattern_index = {}
    for blk in reader.blocks:
        idx = position[blk.start: blk.start + len(blk.c)].reshape(blk.shape)
        pattern_index.setdefault(blk.node, []).append(idx)
    return Traced(net, pattern_index, gm, dict(reader.max_inputs))
