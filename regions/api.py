"""``regions.partition``: one entry point for every model and domain.

It reads the model (:func:`regions.network.as_network`) and the domain
(:func:`regions.domain.as_domain`) once, checks the network's range over the
domain, and hands the engines a :class:`regions.Network` and a
:class:`regions.domain.Domain`. The memory budget (:func:`memory_budget`,
:class:`MemoryBudgetExceeded`) lives in :mod:`regions._shared`, with the other
helpers the engines share, and is re-exported here.
"""
from __future__ import annotations

import numpy as np

from ._shared import (MemoryBudgetExceeded, check_region_cap, check_value_range,
                      in_domain_coordinates, memory_budget)
from .domain import as_domain
from .network import as_network
from .partition import TooManyRegions

__all__ = ["partition", "TooManyRegions", "MemoryBudgetExceeded", "memory_budget"]

def _positive_int(value, name):
    """``value`` as an int when it is a positive integer (not a bool), else ``ValueError``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer (an int, not a bool or a float), "
                         f"got {value!r}")
    return int(value)


def partition(model, domain, *, max_regions=None, progress=None, memory_budget=None):
    """Exact linear regions of a ReLU network over a 1D or 2D domain.

    Parameters
    ----------
    model : torch.nn.Sequential, state_dict, list of (W, b) or regions.Network
        See :mod:`regions.network` for what is accepted.
    domain : (lo, hi), ((x0, x1), (y0, y1)), shapely Polygon, regions.Segment or regions.Plane
        See :mod:`regions.domain`.
    max_regions : int, optional
        Stop with :class:`TooManyRegions` (saying how many regions were
        reached) instead of building a larger partition. Checked after every
        layer, on every domain. A positive ``int``; bools and floats are refused.
        For a model with a max over ``k > 2`` values it is checked once, on the
        merged regions, after the enumeration (its pieces before the merge can
        exceed the cap; ``memory_budget`` still bounds every layer).
    memory_budget : int, optional
        Bytes one layer of the enumeration may need. Before each layer the
        engine estimates, from its count pass, the memory the layer's arrays
        take and stops with :class:`MemoryBudgetExceeded` (a
        :class:`TooManyRegions`) when the estimate exceeds the budget.
        Default: 80% of the available memory (``MemAvailable``), at least
        1 GiB, see :func:`memory_budget`. The raw 1D and 2D engines; the encoded 1D
        engine is bounded by ``max_regions`` alone.
    progress : bool, optional
        Show a progress bar over layers (default: when stderr is a terminal).

    Returns
    -------
    Partition1D, Partition2D, EncodedPartition1D or EncodedPartition2D
        (an encoded model over a 2D box or polygon: the curved faces of
        :mod:`regions.encoded.engine2d`, boundaries within ``1e-5``; for another
        tolerance call :func:`regions.encoded.partition_encoded_plane`)
        ``len(p)`` regions; ``p.patterns``, ``p.measure``, ``p.locate``,
        ``p.affine`` and the geometry of ``docs/design.md``.

    Raises
    ------
    ValueError
        A model or domain that cannot be read, or a network whose values over
        the domain could overflow float64: every layer's pre-activations and
        their slopes are bounded by interval arithmetic before any engine runs
        and must stay within ``1e300`` (see
        :func:`regions._shared.check_value_range`).
    TooManyRegions, MemoryBudgetExceeded
        See ``max_regions`` and ``memory_budget``.

    Examples
    --------
    >>> import numpy as np, regions
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0]]); b = np.zeros(2)
    >>> p = regions.partition([(W, b), (np.ones((1, 2)), np.zeros(1))], ((-1, 1), (-1, 1)))
    >>> len(p), float(p.measure.sum())
    (4, 4.0)
    """
    if max_regions is not None:
        max_regions = _positive_int(max_regions, "max_regions")
    if memory_budget is not None:
        memory_budget = _positive_int(memory_budget, "memory_budget")
    # the model and the domain are read here, once; the engines take them as they are
    net = as_network(model)
    dom = as_domain(domain, net.input_dim)
    if net.encoding is not None and dom.dim == 2:
        from .encoded.engine2d import partition_encoded_plane, separable_features

        separable_features(net.encoding)   # random Fourier features: refused, saying why
        check_value_range(net, dom)
        return partition_encoded_plane(net, dom, max_regions=max_regions, progress=progress)
    check_value_range(net, dom)
    if net.encoding is not None:
        from .encoded.engine import partition_encoded_line

        return partition_encoded_line(net, dom, max_regions=max_regions, progress=progress)
    if dom.dim == 1:
        from .partition1d import partition_1d

        return partition_1d(net, dom, max_regions=max_regions, progress=progress,
                            memory_budget=memory_budget)
    return _partition_2d(net, dom, max_regions, progress, memory_budget)


def _partition_2d(net, dom, max_regions, progress, memory_budget):
    """The raw 2D engine on a :class:`Network` and a 2D :class:`Domain`: the
    domain's convex pieces cut by :func:`regions.engine2d.enumerate_plane` in
    the domain's coordinates, merged back per region when there are several."""
    from .engine2d import enumerate_plane, merge_pieces
    from .partition2d import Partition2D

    pieces = dom.convex_pieces()
    merged = len(pieces) > 1
    # a max over k > 2 values: the cap is on the merged regions, checked after the merge
    cap = max_regions if net.max_trees is None else None
    out = enumerate_plane(in_domain_coordinates(net, dom), pieces, max_regions=cap,
                          progress=progress, memory_budget=memory_budget, merged=merged)
    faces = len(out["face_offsets"]) - 1
    if net.max_trees is not None:
        # a max's losers swapping order is no boundary: faces whose patterns agree once the
        # comparisons off the winner's path are 0 (Network.canonical) and that share an edge
        # are one region (convex on a convex domain: {other bits fixed, argmax = i})
        out["packed_patterns"] = net.canonical_packed(out["packed_patterns"])
    if merged or net.max_trees is not None:
        out = merge_pieces(out)
        check_region_cap(len(out["face_offsets"]) - 1, max_regions)
    stats = out.pop("stats")
    if net.max_trees is not None:
        stats.update(convex=not merged, faces_before_max_merge=faces)
    return Partition2D(net, dom, stats=stats, **out)
