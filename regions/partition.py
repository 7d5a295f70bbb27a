"""The result type shared by every engine: arrays in, derived quantities lazily.

A :class:`Partition` stores only what the engine produced (packed activation
bits, measures, affine maps and the geometry arrays of its subclass);
everything else (``patterns`` as bool, adjacency, polygons, inradius ...) is
computed on first use and cached, in the manner of trimesh.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

__all__ = ["Partition", "PatternIds", "TooManyRegions", "pack_patterns", "unpack_patterns"]


class TooManyRegions(RuntimeError):
    """The partition would have more regions than ``max_regions`` allows.

    Raised as soon as the count is known to exceed it; the message says how
    many regions were reached. A truncated partition is never returned.
    """


def pack_patterns(bits):
    """``(n, n_hidden)`` bool -> ``(n, ceil(n_hidden / 64))`` uint64 (little-endian bit order)."""
    bits = np.asarray(bits, dtype=bool)
    n, h = bits.shape
    words = (h + 63) // 64
    padded = np.zeros((n, words * 64), dtype=bool)
    padded[:, :h] = bits
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64).reshape(n, words)


def unpack_patterns(packed, n_hidden):
    """Inverse of :func:`pack_patterns`."""
    packed = np.ascontiguousarray(packed, dtype=np.uint64)
    as_bytes = packed.view(np.uint8).reshape(packed.shape[0], -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :n_hidden].astype(bool)


class Partition:
    """Common part of 1D and 2D partitions.

    Parameters
    ----------
    network : regions.Network
    domain : regions.Domain
    packed_patterns : (n, words) uint64
        Activation bits, neuron ``k`` of the layer-major order in bit ``k % 64``
        of word ``k // 64``. ``patterns`` unpacks them to bool.
    measure : (n,) float64
        Length (1D) or area (2D) of each region, in domain coordinates: on a
        :class:`~regions.Segment` or :class:`~regions.Plane` these are in
        parameter units (they sum to 1.0 on the default parameter range,
        whatever the slice's true length or area); :attr:`measure_input` gives
        them in input-space units.
    A, c : arrays
        Affine map of the output on each region: ``A`` ``(n, n_out, dim)``,
        ``c`` ``(n, n_out)``.
    """

    dim: int = 0

    def __init__(self, network, domain, packed_patterns, measure, A, c, stats=None):
        self.network = network
        self.domain = domain
        self.packed_patterns = np.ascontiguousarray(packed_patterns, dtype=np.uint64)
        self.measure = np.asarray(measure, dtype=np.float64)
        self._A = np.asarray(A, dtype=np.float64)
        self._c = np.asarray(c, dtype=np.float64)
        self.stats = dict(stats or {})

    def __len__(self):
        return int(self.measure.shape[0])

    def __repr__(self):
        kind = "pieces" if self.dim == 1 else "regions"
        return (f"<{type(self).__name__}: {len(self)} {kind}, {self.network.n_hidden} hidden "
                f"neurons, domain {self.domain!r}>")

    @property
    def n_hidden(self) -> int:
        return self.network.n_hidden

    @property
    def measure_input(self):
        """``(n,)`` float64: :attr:`measure` in input-space units, lengths or
        areas of the regions as sets of the network's input space (equal to
        :attr:`measure` unless the domain is a slice)."""
        return self.measure * self.domain.input_scale

    @cached_property
    def patterns(self):
        """``(n, n_hidden)`` bool activation patterns (``z > 0``), layer-major."""
        return unpack_patterns(self.packed_patterns, self.n_hidden)

    @cached_property
    def layer_slices(self):
        """Columns of :attr:`patterns` belonging to each hidden layer."""
        out, start = [], 0
        for l in range(len(self.network.widths)):
            w = self.network.n_kinks(l)     # carried units have no bit
            out.append(slice(start, start + w))
            start += w
        return out

    @property
    def affine(self):
        """``(A, c)`` with the output equal to ``A[r] @ u + c[r]`` on region ``r``."""
        return self._A, self._c

    def locate(self, points):  # pragma: no cover - subclasses implement
        raise NotImplementedError


class PatternIds:
    """Mixin of the encoded partitions, where one activation pattern can own
    several pieces or faces (a periodic encoding repeats it): ids shared by the
    regions with equal patterns, numbered in the order of the regions; and the
    output from the per-region maps in the encoded space (the subclass gives
    ``locate`` and ``encode``)."""

    def evaluate(self, points):
        """Network output at ``points`` (line parameters ``(m,)`` in 1D, ``(m, 2)``
        in 2D) from the per-region maps: ``(m, n_out)``, nan outside the domain."""
        pts = np.asarray(points, dtype=np.float64)
        if self.dim == 1:
            pts = pts.reshape(-1)
        idx = self.locate(pts)
        A, c = self.affine
        out = np.full((pts.shape[0], c.shape[1]), np.nan)
        ok = idx >= 0
        out[ok] = np.einsum("mof,mf->mo", A[idx[ok]], self.encode(pts[ok])) + c[idx[ok]]
        return out

    def _level_arguments(self, value, output):
        """``(value, output)`` of a ``level_set`` call, checked: an output index of the
        network and a finite value."""
        n_out = self.affine[1].shape[1]
        if isinstance(output, bool) or not isinstance(output, (int, np.integer)) \
                or not 0 <= output < n_out:
            raise ValueError(f"output {output!r} out of range; the network has {n_out} outputs")
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"value must be a finite number, got {value}")
        return value, int(output)

    @cached_property
    def pattern_id(self):
        """``(n,)`` int64: regions with equal activation patterns share an id,
        numbered by first appearance."""
        if len(self) == 0:
            return np.empty(0, dtype=np.int64)
        _, first, inverse = np.unique(self.packed_patterns, axis=0, return_index=True,
                                      return_inverse=True)
        inverse = inverse.ravel()
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        return rank[inverse]

    @property
    def n_patterns(self) -> int:
        """Number of distinct activation patterns."""
        return int(self.pattern_id.max()) + 1 if len(self) else 0
