"""The result of the raw 1D engine: :class:`Partition1D`, the pieces of an
interval, and :func:`partition_1d`, the engine's entry on a :class:`regions.Network`
and a 1D :class:`regions.domain.Domain`.

How the pieces are computed, and which tolerance decides a neuron's zero, is
said in :mod:`regions.engine1d` (whose :func:`line_pieces` is importable from
here too).
"""
from __future__ import annotations

import numpy as np

from ._shared import check_region_cap, in_domain_coordinates, merge_max_runs
from .engine1d import affine_from_values, line_pieces
from .partition import Partition

__all__ = ["Partition1D", "partition_1d", "line_pieces"]


class Partition1D(Partition):
    """Pieces of an interval in the domain's own coordinate.

    Attributes (besides :class:`regions.partition.Partition`)
    ----------------------------------------------------------
    points : (n+1,) float64
        ``lo``, the sorted interior breakpoints, ``hi``.
    breakpoints : (n-1,) float64
        Sorted interior breakpoints.
    intervals : (n, 2) float64
        ``[start, end]`` of every piece, in order.
    """

    dim = 1

    def __init__(self, network, domain, points, packed_patterns, A, c, stats=None):
        points = np.asarray(points, dtype=np.float64)
        super().__init__(network, domain, packed_patterns, np.diff(points), A, c, stats)
        self.points = points

    @property
    def breakpoints(self):
        return self.points[1:-1]

    @property
    def intervals(self):
        return np.column_stack([self.points[:-1], self.points[1:]])

    @property
    def midpoints(self):
        return 0.5 * (self.points[:-1] + self.points[1:])

    def locate(self, points):
        """Piece index of each point (domain coordinate), ``-1`` outside ``[lo, hi]``.

        A point exactly on a breakpoint belongs to the piece on its right
        (the last piece holds ``hi``). Accepts ``(m,)`` or ``(m, 1)``.
        """
        u = np.asarray(points, dtype=np.float64)
        if u.ndim == 2 and u.shape[1] == 1:
            u = u[:, 0]
        elif u.ndim == 0:
            u = u[None]
        elif u.ndim != 1:
            raise ValueError(f"points must be shaped (m,) or (m, 1) for a 1D partition, got {u.shape}")
        n = len(self)
        idx = np.searchsorted(self.points, u, side="right") - 1
        idx = np.minimum(idx, n - 1)
        outside = ~((u >= self.points[0]) & (u <= self.points[-1]))
        idx[outside] = -1
        return idx.astype(np.int64)

    def level_set(self, value=0.0, output=0):
        """Points where output ``output`` equals ``value`` (sorted; whole pieces
        on which the output is constantly ``value`` are reported by their ends)."""
        A, c = self.affine
        a = A[:, output, 0] if A.shape[2] == 1 else None
        if a is None:
            raise ValueError("level_set needs the affine map in the domain coordinate")
        f0 = a * self.points[:-1] + c[:, output] - value
        f1 = a * self.points[1:] + c[:, output] - value
        out = []
        cross = (np.sign(f0) * np.sign(f1) < 0) & (a != 0)
        out.append(self.points[:-1][cross] - f0[cross] / a[cross])
        out.append(self.points[:-1][f0 == 0])
        out.append(self.points[1:][f1 == 0])
        return np.unique(np.concatenate(out))


def partition_1d(network, domain, max_regions=None, progress=None, memory_budget=None) -> Partition1D:
    """The raw 1D engine: exact pieces of a raw-coordinate network over a 1D domain.

    It reads nothing: :func:`regions.partition` converts the model and the
    domain once and hands them here (call that for any other model form).

    Parameters
    ----------
    network : regions.Network (no encoding)
    domain : regions.Interval or regions.Segment (``domain.dim == 1``); for a
        segment or any sliced interval the network is composed with
        ``origin + basis @ u`` (:func:`regions._shared.in_domain_coordinates`)
        and the pieces are in the parameter ``u``.
    max_regions : int or None
        Raise ``regions.TooManyRegions`` as soon as a layer leaves more pieces.
    progress : None, True or False
        A tqdm bar over layers (None: only when stderr is a terminal).
    memory_budget : int or None
        Bytes a layer may need (estimated before it is built); ``None``: the
        default of :func:`regions.api.memory_budget`. Exceeding it raises
        ``regions.MemoryBudgetExceeded``.

    Raises
    ------
    TypeError
        ``network`` is not a :class:`regions.Network`.
    ValueError
        An encoded network, a domain that is not 1D, or one in another input dimension.

    Examples
    --------
    >>> import numpy as np
    >>> from regions.network import as_network
    >>> from regions.domain import Interval
    >>> net = as_network([(np.array([[1.0], [-1.0]]), np.array([0.0, 0.5])),
    ...                   (np.array([[1.0, 1.0]]), np.array([0.0]))])
    >>> p = partition_1d(net, Interval(-1, 1))
    >>> p.breakpoints.tolist(), len(p)
    ([0.0, 0.5], 3)
    """
    from .domain import Interval
    from .network import Network

    if not isinstance(network, Network):
        raise TypeError(f"partition_1d takes a regions.Network, got {type(network).__name__}; "
                        "convert it with regions.as_network, or call regions.partition")
    if network.encoding is not None:
        raise ValueError("partition_1d takes a raw-coordinate network; for an encoded network "
                         "use regions.encoded.partition_encoded_1d")
    if not isinstance(domain, Interval) or domain.dim != 1:
        raise ValueError(f"partition_1d needs a 1D domain (regions.Interval or regions.Segment), "
                         f"got {domain!r}")
    if domain.input_dim != network.input_dim:
        raise ValueError(f"the domain lives in {domain.input_dim}-dimensional input space but the "
                         f"network takes {network.input_dim} inputs (use regions.Segment to slice)")
    work = in_domain_coordinates(network, domain)
    lo, hi = domain.bounds
    # a max over k > 2 values: the cap is on the merged pieces, checked after the merge
    cap = max_regions if work.max_trees is None else None
    t, packed, Zout = line_pieces(work, lo, hi, cap, progress, memory_budget=memory_budget)
    cut = len(t) - 1
    first, packed = merge_max_runs(work, packed)     # a max's losers swapping is no cut
    if len(first) < cut:
        ends = np.r_[first, cut]
        t, Zout = t[ends], Zout[ends]
    check_region_cap(len(t) - 1, max_regions, unit="pieces")
    A, c = affine_from_values(work, t, packed, Zout)
    stats = {"pieces": len(t) - 1, "engine": "raw 1D"}
    if work.max_trees is not None:
        stats["pieces_before_max_merge"] = cut
    return Partition1D(network, domain, t, packed, A, c, stats=stats)
