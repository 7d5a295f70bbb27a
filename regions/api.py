"""``regions.partition``: one entry point for every model and domain."""
from __future__ import annotations

import numpy as np

from .domain import as_domain
from .network import as_network
from .partition import TooManyRegions

__all__ = ["partition", "TooManyRegions"]


def partition(model, domain, *, max_regions=None, progress=None):
    """Exact linear regions of a ReLU network over a 1D or 2D domain.

    Parameters
    ----------
    model : torch.nn.Sequential, state_dict, list of (W, b) or regions.Network
        See :mod:`regions.network` for what is accepted.
    domain : (lo, hi), ((x0, x1), (y0, y1)), shapely Polygon, regions.Segment or regions.Plane
        See :mod:`regions.domain`.
    max_regions : int, optional
        Stop with :class:`TooManyRegions` (saying how many regions were
        reached) instead of building a larger partition.
    progress : bool, optional
        Show a progress bar over layers (default: when stderr is a terminal).

    Returns
    -------
    Partition1D or Partition2D
        ``len(p)`` regions; ``p.patterns``, ``p.measure``, ``p.locate``,
        ``p.affine`` and the geometry of ``docs/design.md``.

    Examples
    --------
    >>> import numpy as np, regions
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0]]); b = np.zeros(2)
    >>> p = regions.partition([(W, b), (np.ones((1, 2)), np.zeros(1))], ((-1, 1), (-1, 1)))
    >>> len(p), float(p.measure.sum())
    (4, 4.0)
    """
    net = as_network(model)
    dom = as_domain(domain, net.input_dim)
    if max_regions is not None:
        if int(max_regions) != max_regions or max_regions < 1:
            raise ValueError(f"max_regions must be a positive integer, got {max_regions!r}")
        max_regions = int(max_regions)
    if net.encoding is not None:
        from . import encoded

        if dom.dim == 2:
            raise ValueError(encoded.ENCODED_2D_MESSAGE)
        return encoded.partition_encoded_1d(net, dom, max_regions=max_regions, progress=progress)
    if dom.dim == 1:
        from .partition1d import partition_1d

        return partition_1d(net, dom, max_regions=max_regions, progress=progress)
    return _partition_2d(net, dom, max_regions, progress)


def _partition_2d(net, dom, max_regions, progress):
    from .partition2d import Partition2D, enumerate_plane

    local = net if dom.is_identity else net.sliced(dom.origin, dom.basis)
    pieces = dom.convex_pieces()
    if len(pieces) > 1:
        from .partition2d import merge_pieces

        out = enumerate_plane(local, pieces, max_regions=None, progress=progress)
        out = merge_pieces(out)
        if max_regions is not None and len(out["face_offsets"]) - 1 > max_regions:
            raise TooManyRegions(f"the partition has {len(out['face_offsets']) - 1} regions, more "
                                 f"than max_regions={max_regions}")
    else:
        out = enumerate_plane(local, pieces, max_regions=max_regions, progress=progress)
    stats = out.pop("stats")
    if stats["errors"]:
        import warnings

        warnings.warn(f"the 2D engine met numerically inconsistent cuts (flags {stats['errors']}); "
                      "the partition may be wrong near nearly degenerate vertices", RuntimeWarning)
    return Partition2D(net, dom, stats=stats, **out)
