"""A slow, exact reference partition in rational arithmetic (``fractions.Fraction``).

It shares no code with the engine (no ``regions`` or ``kernels`` import): every
number is a ``Fraction``, every sign is decided exactly, and the method is the
textbook one, written for being checked by eye rather than for speed.

Method
------
A network is a list of ``(W, b)`` pairs, ``W`` shaped ``(out, in)`` as nested
sequences of ints or Fractions (floats are taken at their exact binary value);
every pair but the last is a hidden layer followed by ReLU, or LeakyReLU with
the negative slope ``slopes[l]``; the last pair is the affine output layer.
Optionally ``linear[l]`` (one bool per unit of hidden layer ``l``) marks
*carried* units: identity activation (``a = z``), never a cut, no pattern bit
(the residual streams and skips of ``regions.Network.linear``). A pattern
holds the bits of the other (kink) units, layer-major, in their order.

An entry ``("max", groups)`` of ``net`` (between pairs) is a true max over
groups of the current activations: ``groups`` lists, for each output, the
indices of the activations it is the max of (a group of one passes its value
through). A region is cut by the argmax of every group of two or more: the
part where input ``i`` wins is the region intersected with ``g_i >= g_j`` for
every other member ``j`` (cut one half-plane at a time; where ``g_i = g_j``
on a whole part, the later member wins, as a comparison that is 0 is off in
``regions``), and that part's activation is
``g_i``. Its pattern entry is the winner's index in the group (an int), in
the order of the groups; ``slopes`` and ``linear`` count the pairs only.

Each region carries the exact affine map of the current layer's activations,
``a(x) = M x + m``. Hidden layer ``l`` turns it into the pre-activations
``z(x) = (W M) x + (W m + b)``; the neurons of the layer then split the regions
one after the other (all neurons of a layer use the parent region's map: the
bits of layer ``l`` do not change layer ``l``'s own pre-activations):

* 1D: a piece ``[lo, hi]`` is split at the zero ``t = -g / G`` of
  ``z(t) = G t + g`` when ``z(lo)`` and ``z(hi)`` have strictly opposite signs;
* 2D: a convex polygon is split (Sutherland-Hodgman) by the line ``z(x) = 0``
  when it has a vertex with ``z > 0`` and a vertex with ``z < 0``. A line that
  only touches the polygon (at a vertex, or along an edge) does not cut it.

A neuron that does not cut a region takes one state on it: on (``z > 0``) when
``z`` is positive at some vertex (it is then positive in the whole interior),
off otherwise, so a neuron identically zero on a region is off. After the
layer, ``a = d * z`` with ``d = 1`` for on and ``d = slope`` for off.

What a region is, and how to compare with the engine
-----------------------------------------------------
For a fixed activation pattern every layer's map is affine, so the set of
points with that pattern is an intersection of half-planes (open for on,
closed for off) with the domain. On a convex domain (an interval, a box, a
convex polygon) that set is convex, hence connected: each pattern whose set
has an interior is exactly one region, and no two regions share a pattern.
Both this reference and the engine produce exactly these regions (every cut
separates strictly positive from strictly negative values of one neuron, so
the two sides differ in that bit, and descendants inherit it: adjacent pieces
never carry equal patterns, and there is nothing to merge). A comparison is
therefore: the same number of regions, the same set of patterns, and, matched
by pattern, the same length/area and affine output map. Lower-dimensional
pattern sets (a pattern seen only on a line or at a point) are not regions in
either.

On a non-convex polygon a pattern's set is convex intersected with the domain,
which may fall apart: a region is then a connected component of it (pieces of
the set that share an edge of positive length; the engine refuses components
that touch themselves only at a point). :func:`partition_pieces` takes such a
domain as convex pieces that tile it, partitions each, and joins pieces of one
pattern across shared edges; patterns may then repeat, and a comparison matches
regions by location.

Examples
--------
>>> from fractions import Fraction
>>> net = [([[1], [-1]], [0, Fraction(1, 2)]), ([[1, 1]], [0])]
>>> [(str(p.lo), str(p.hi), p.pattern) for p in partition_interval(net, -1, 1)]
[('-1', '0', (False, True)), ('0', '1/2', (True, True)), ('1/2', '1', (True, False))]
>>> regs = partition_polygon([([[1, 0], [0, 1], [1, 1]], [0, 0, 0]), ([[1, 1, 1]], [0])],
...                          box(-1, 1, -1, 1))
>>> len(regs), sum(r.area for r in regs)
(6, Fraction(4, 1))
"""
from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

__all__ = ["Piece", "Region", "Component", "exact", "box", "partition_interval",
           "partition_polygon", "partition_pieces",
           "orientation", "polygon_area", "polygon_centroid"]


class Piece(NamedTuple):
    """One linear piece of a 1D partition: ``[lo, hi]``, its pattern and its
    output map ``y = slope * t + intercept`` (one entry per output)."""

    lo: Fraction
    hi: Fraction
    pattern: tuple
    slope: tuple
    intercept: tuple

    @property
    def length(self):
        return self.hi - self.lo


class Region(NamedTuple):
    """One linear region of a 2D partition: a convex CCW polygon, its pattern,
    its exact area and its output map ``y = A @ x + c`` (``A`` rows per output)."""

    vertices: tuple
    pattern: tuple
    area: Fraction
    A: tuple
    c: tuple


class Component(NamedTuple):
    """One region of a domain given in convex pieces: the exact regions of the
    pieces it joins (all with one pattern), and its total area."""

    parts: tuple
    pattern: tuple
    area: Fraction


def exact(x):
    """``x`` as a Fraction: ints and Fractions as they are, floats at their exact
    binary value (numpy scalars through ``.item()``)."""
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, (int, float, Fraction)):
        raise ValueError(f"expected an int, float or Fraction entry, got {x!r}")
    return Fraction(x)


def _layers(net, input_dim):
    """Validated exact copy of ``net``: a list of (rows of W, b) and ("max", groups)."""
    if len(net) < 1 or _is_max(net[-1]):
        raise ValueError("the network needs at least the output layer (one (W, b) pair), last")
    out, width = [], input_dim
    for i, entry in enumerate(net):
        if _is_max(entry):
            groups = [[int(j) for j in g] for g in entry[1]]
            if not groups or any(not g or min(g) < 0 or max(g) >= width for g in groups):
                raise ValueError(f"entry {i}: max groups must be non-empty lists of indices "
                                 f"into the {width} activations, got {entry[1]!r}")
            out.append(("max", groups))
            width = len(groups)
            continue
        W, b = entry
        W = [[exact(v) for v in row] for row in W]
        b = [exact(v) for v in b]
        if not W or len(b) != len(W) or any(len(row) != width for row in W):
            raise ValueError(f"pair {i}: expected W shaped ({len(b)}, {width}) and b shaped "
                             f"({len(W)},), got {len(W)} rows of lengths "
                             f"{sorted({len(r) for r in W})} and {len(b)} biases")
        out.append((W, b))
        width = len(W)
    return out


def _is_max(entry):
    return isinstance(entry, tuple) and len(entry) == 2 and entry[0] == "max"


def _pairs(layers):
    """The (W, b) entries of ``layers`` (hidden pairs, then the output pair)."""
    return [e for e in layers if not _is_max(e)]


def _slopes(slopes, n_hidden_layers):
    if slopes is None:
        return [Fraction(0)] * n_hidden_layers
    slopes = [exact(s) for s in slopes]
    if len(slopes) != n_hidden_layers:
        raise ValueError(f"expected {n_hidden_layers} slopes (one per hidden layer), got {len(slopes)}")
    return slopes


def _compose(W, b, M, m):
    """Rows and offsets of ``W (M x + m) + b``: ``M`` is a list of coefficient rows."""
    dim = len(M[0])
    G = [tuple(sum(w * M[j][i] for j, w in enumerate(row)) for i in range(dim)) for row in W]
    g = [sum(w * m[j] for j, w in enumerate(row)) + bk for row, bk in zip(W, b)]
    return G, g


def _value(G_k, g_k, point):
    return sum(a * x for a, x in zip(G_k, point)) + g_k


def _linear(linear, layers):
    """Validated carried masks: one list of bools per hidden layer (all False by default)."""
    widths = [len(W) for W, _ in _pairs(layers)[:-1]]
    if linear is None:
        return [[False] * w for w in widths]
    linear = [[bool(v) for v in mask] for mask in linear]
    if [len(m) for m in linear] != widths:
        raise ValueError(f"linear must hold one mask per hidden layer of widths {widths}, got "
                         f"lengths {[len(m) for m in linear]}")
    return linear


def _activate(G, g, bits, slope, carried):
    """The activations' map ``d * z`` with ``d = 1`` (on, or a carried unit) or
    ``slope`` (off); ``bits`` holds the kink units' states in order."""
    states = iter(bits)
    d = [Fraction(1) if c or next(states) else slope for c in carried]
    return [tuple(dk * a for a in row) for dk, row in zip(d, G)], [dk * gk for dk, gk in zip(d, g)]


def _sign_part(part, G_k, g_k, split, corners):
    """``part`` cut by ``z = G_k . x + g_k``: a list of ``(piece, on)`` (``on``: z > 0
    inside; a part where ``z`` is 0 throughout is off)."""
    values = [_value(G_k, g_k, v) for v in corners(part)]
    if any(s > 0 for s in values) and any(s < 0 for s in values):
        pos, neg = split(part, G_k, g_k)
        return [(pos, True), (neg, False)]
    return [(part, any(s > 0 for s in values))]


def _argmax_parts(part, G, g, group, split, corners):
    """``(piece, i)``: the parts of ``part`` where member ``i`` of ``group`` wins."""
    out = []
    for i, a in enumerate(group):
        pieces = [part]
        for j, b in enumerate(group):
            if j == i:
                continue
            d = tuple(x - y for x, y in zip(G[a], G[b]))
            keep = []
            for piece in pieces:
                values = [_value(d, g[a] - g[b], v) for v in corners(piece)]
                if all(v == 0 for v in values):    # equal on the whole piece: later wins
                    keep += [piece] if i > j else []
                else:
                    keep += [p for p, on in _sign_part(piece, d, g[a] - g[b], split, corners)
                             if on]
            pieces = keep
        out += [(piece, i) for piece in pieces]
    return out


def _cut_max(cells, groups, split, corners):
    """Cut every cell by the argmax of each group; the activations become the winners'."""
    done = []
    for cell, pattern, M, m in cells:
        parts = [(cell, (), [])]
        for group in groups:
            if len(group) == 1:
                parts = [(p, bits, rows + [group[0]]) for p, bits, rows in parts]
                continue
            parts = [(piece, bits + (i,), rows + [group[i]]) for p, bits, rows in parts
                     for piece, i in _argmax_parts(p, M, m, group, split, corners)]
        done += [(p, pattern + bits, [M[r] for r in rows], [m[r] for r in rows])
                 for p, bits, rows in parts]
    return done


def _cut_layers(layers, slopes, first_cell, split, corners, linear):
    """Cut ``first_cell`` by every hidden layer. ``split(cell, G_k, g_k)`` returns
    the (positive, negative) parts of a cell that the neuron cuts; ``corners(cell)``
    its points at which a non-cutting neuron's sign is read. Carried units
    (``linear``) neither cut nor take a bit; a ("max", groups) entry cuts by the
    argmax of each group (:func:`_cut_max`).

    Returns a list of ``(cell, pattern, M, m)``: the activation map of the last
    hidden layer on each cell.
    """
    dim = len(_pairs(layers)[0][0][0])
    identity = [tuple(Fraction(int(i == j)) for j in range(dim)) for i in range(dim)]
    cells = [(first_cell, (), identity, [Fraction(0)] * dim)]
    hidden = iter(zip(slopes, linear))
    for entry in layers[:-1]:
        if _is_max(entry):
            cells = _cut_max(cells, entry[1], split, corners)
            continue
        (W, b), (slope, carried) = entry, next(hidden)
        done = []
        for cell, pattern, M, m in cells:
            G, g = _compose(W, b, M, m)
            parts = [(cell, ())]
            for k in range(len(W)):
                if not carried[k]:
                    parts = [(piece, bits + (on,)) for part, bits in parts
                             for piece, on in _sign_part(part, G[k], g[k], split, corners)]
            for part, bits in parts:
                M2, m2 = _activate(G, g, bits, slope, carried)
                done.append((part, pattern + bits, M2, m2))
        cells = done
    return cells


def partition_interval(net, lo, hi, slopes=None, linear=None):
    """Exact pieces of ``[lo, hi]`` for a 1-input network, sorted by position.

    ``lo < hi`` (int, Fraction or float); ``net``, ``slopes`` (negative slope
    after each hidden pair, default 0: ReLU) and ``linear`` (carried units of
    each hidden pair, default none) as in the module's "Method". Returns a
    list of :class:`Piece`.
    """
    lo, hi = exact(lo), exact(hi)
    if not lo < hi:
        raise ValueError(f"the interval must have lo < hi, got ({lo}, {hi})")
    layers = _layers(net, 1)
    slopes = _slopes(slopes, len(_pairs(layers)) - 1)

    def split(piece, G_k, g_k):
        t = -g_k / G_k[0]
        left, right = (piece[0], t), (t, piece[1])
        return (right, left) if G_k[0] > 0 else (left, right)

    cells = _cut_layers(layers, slopes, (lo, hi), split, lambda piece: [(piece[0],), (piece[1],)],
                        _linear(linear, layers))
    Wo, bo = layers[-1]
    pieces = []
    for (a, b), pattern, M, m in cells:
        A, c = _compose(Wo, bo, M, m)
        pieces.append(Piece(a, b, pattern, tuple(row[0] for row in A), tuple(c)))
    return sorted(pieces, key=lambda p: p.lo)


def box(x0, x1, y0, y1):
    """The CCW vertices of ``[x0, x1] x [y0, y1]`` as Fractions."""
    x0, x1, y0, y1 = map(exact, (x0, x1, y0, y1))
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def orientation(o, a, b):
    """Twice the signed area of the triangle ``o, a, b`` (positive: counter-clockwise)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def polygon_area(vertices):
    """Signed area (shoelace); positive for a CCW polygon."""
    n = len(vertices)
    return sum(vertices[i][0] * vertices[(i + 1) % n][1] - vertices[(i + 1) % n][0] * vertices[i][1]
               for i in range(n)) / 2


def polygon_centroid(vertices):
    """The centroid of a polygon with nonzero area (an interior point when convex)."""
    n = len(vertices)
    cx = cy = Fraction(0)
    for i in range(n):
        (x0, y0), (x1, y1) = vertices[i], vertices[(i + 1) % n]
        w = x0 * y1 - x1 * y0
        cx += (x0 + x1) * w
        cy += (y0 + y1) * w
    six_a = 6 * polygon_area(vertices)
    return cx / six_a, cy / six_a


def _split_polygon(poly, G_k, g_k):
    """(positive, negative) parts of a convex polygon cut by ``G_k . x + g_k = 0``."""
    values = [_value(G_k, g_k, v) for v in poly]
    pos, neg = [], []
    n = len(poly)
    for i in range(n):
        p, s = poly[i], values[i]
        q, t = poly[(i + 1) % n], values[(i + 1) % n]
        if s >= 0:
            pos.append(p)
        if s <= 0:
            neg.append(p)
        if (s > 0 > t) or (s < 0 < t):
            lam = s / (s - t)
            x = (p[0] + lam * (q[0] - p[0]), p[1] + lam * (q[1] - p[1]))
            pos.append(x)
            neg.append(x)
    return tuple(pos), tuple(neg)


def partition_polygon(net, vertices, slopes=None, linear=None):
    """Exact regions of a 2-input network over a convex polygon.

    ``vertices``: a strictly convex polygon, counter-clockwise, without
    repeating the first vertex (see :func:`box`); ``net``, ``slopes`` and
    ``linear`` as for :func:`partition_interval`. Returns a list of
    :class:`Region`.
    """
    poly = tuple((exact(x), exact(y)) for x, y in vertices)
    n = len(poly)
    if n < 3 or any(orientation(poly[i - 1], poly[i], poly[(i + 1) % n]) <= 0 for i in range(n)):
        raise ValueError("the domain must be a strictly convex polygon given counter-clockwise "
                         f"(at least 3 vertices, no collinear ones), got {vertices!r}")
    layers = _layers(net, 2)
    slopes = _slopes(slopes, len(_pairs(layers)) - 1)
    cells = _cut_layers(layers, slopes, poly, _split_polygon, lambda polygon: polygon,
                        _linear(linear, layers))
    Wo, bo = layers[-1]
    regions = []
    for part, pattern, M, m in cells:
        A, c = _compose(Wo, bo, M, m)
        regions.append(Region(part, pattern, polygon_area(part), tuple(A), tuple(c)))
    return regions



def _share_an_edge(p, q):
    """True when convex polygons ``p`` and ``q`` have edges that overlap in a segment
    of positive length."""
    for i in range(len(p)):
        a, b = p[i], p[(i + 1) % len(p)]
        d = (b[0] - a[0], b[1] - a[1])
        dd = d[0] * d[0] + d[1] * d[1]
        for j in range(len(q)):
            c, e = q[j], q[(j + 1) % len(q)]
            if orientation(a, b, c) != 0 or orientation(a, b, e) != 0:
                continue
            tc = ((c[0] - a[0]) * d[0] + (c[1] - a[1]) * d[1]) / dd
            te = ((e[0] - a[0]) * d[0] + (e[1] - a[1]) * d[1]) / dd
            if min(1, max(tc, te)) > max(0, min(tc, te)):
                return True
    return False


def partition_pieces(net, pieces, slopes=None):
    """Exact regions of a 2-input network over a domain tiled by convex pieces.

    Parameters
    ----------
    net : list of (W, b)
        As for :func:`partition_polygon`.
    pieces : list of vertex sequences
        Strictly convex CCW polygons with disjoint interiors whose union is the
        domain (e.g. an L shape as two rectangles).
    slopes : sequence, optional
        Negative slope after each hidden layer (default: 0, ReLU).

    Returns
    -------
    list of Component
        The connected components of each pattern's set: exact regions of the
        pieces with one pattern, joined where they share an edge.

    Examples
    --------
    An L shape cut by the line x + y = 1: the on side falls apart in two regions
    with one pattern; the off side is one region across both pieces.

    >>> L = [box(-2, 2, -2, 0), box(-2, 0, 0, 2)]
    >>> regs = partition_pieces([([[1, 1]], [-1]), ([[1]], [0])], L)
    >>> sorted((r.pattern, str(r.area), len(r.parts)) for r in regs)
    [((False,), '11', 2), ((True,), '1/2', 1), ((True,), '1/2', 1)]
    """
    cells = [r for piece in pieces for r in partition_polygon(net, piece, slopes)]
    label = list(range(len(cells)))

    def root(i):
        while label[i] != i:
            label[i] = label[label[i]]
            i = label[i]
        return i

    for i in range(len(cells)):
        for j in range(i + 1, len(cells)):
            if cells[i].pattern == cells[j].pattern and _share_an_edge(cells[i].vertices, cells[j].vertices):
                label[root(i)] = root(j)
    groups = {}
    for i, cell in enumerate(cells):
        groups.setdefault(root(i), []).append(cell)
    return [Component(tuple(g), g[0].pattern, sum(c.area for c in g)) for g in groups.values()]
