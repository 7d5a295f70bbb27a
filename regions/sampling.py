"""Distinct activation patterns among sample points: a LOWER BOUND on the
number of regions.

This is what grid-sampling studies report as a "region count" (the paper's
scripts do it on the pixel grid). It can only undercount: a region that holds
no sample is missed, and with an input encoding one pattern can occupy
several disjoint pieces, which sampling cannot separate either. Use
:func:`regions.partition` (raw networks, 1D and 2D) or
:mod:`regions.encoded` (encoded networks along lines) for exact counts.
"""
from __future__ import annotations

import numpy as np

from .partition import pack_patterns

__all__ = ["sampled_patterns"]


def sampled_patterns(model, points, chunk=65536):
    """Count the distinct activation patterns among ``points`` (a lower bound).

    Parameters
    ----------
    model : anything :func:`regions.as_network` accepts; an encoded model
        (first module a regions encoding) is evaluated on the encoded points.
    points : (m, d) array of coordinates (``(m,)`` is accepted when ``d = 1``),
        in the model's input space (before the encoding).
    chunk : points evaluated at a time (bounds the memory).

    Returns
    -------
    count : int
        Number of distinct patterns ``z > 0`` over all hidden neurons: a
        lower bound on the number of (linear) regions met by the points.
    pattern_id : (m,) int64
        Id of each point's pattern, numbered in order of first appearance.

    Examples
    --------
    >>> import numpy as np
    >>> net = [(np.array([[1.0], [-1.0]]), np.array([0.0, 0.5])), (np.ones((1, 2)), np.zeros(1))]
    >>> sampled_patterns(net, np.linspace(-1, 1, 9))   # exact count is 3: (-1,0), (0,.5), (.5,1)
    (3, array([0, 0, 0, 0, 0, 1, 2, 2, 2]))
    >>> sampled_patterns(net, np.linspace(-1, 1, 5))[0]  # no sample in (0, 0.5): undercounts
    2
    """
    from .network import as_network

    net = as_network(model)
    d = net.input_dim
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 1 and d == 1:
        p = p[:, None]
    if p.ndim != 2 or p.shape[1] != d:
        raise ValueError(f"points must be shaped (m, {d}) for this model (it takes {d} input "
                         f"coordinates), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("points must be finite")
    m = p.shape[0]
    if m == 0:
        return 0, np.zeros(0, dtype=np.int64)
    chunk = max(int(chunk), 1)
    packed = []
    for s in range(0, m, chunk):
        x = p[s:s + chunk]
        if net.encoding is not None:
            x = net.encoding.encode_numpy(x)
        packed.append(pack_patterns(net.patterns(x)))
    packed = np.concatenate(packed, axis=0)
    if packed.shape[1] == 0:          # no hidden neuron: one pattern
        return 1, np.zeros(m, dtype=np.int64)
    _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return int(len(first)), rank[inverse]
