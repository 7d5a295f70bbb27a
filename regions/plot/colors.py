"""Colours that belong to an activation pattern, and the defaults for per-region values.

A region's fill colour is a hash of its packed activation bits, so the same
pattern gets the same colour in every partition of the same architecture: a
region keeps its colour across training checkpoints, across zooms and across
slices, and neighbouring regions (whose patterns differ in one bit) get
unrelated colours.
"""
from __future__ import annotations

import numpy as np
from matplotlib.colors import hsv_to_rgb

__all__ = ["pattern_hash", "pattern_colors", "VALUE_CMAPS"]

# default colour map per named per-region value (sequential for sizes,
# diverging and centred at zero for the output)
VALUE_CMAPS = {"area": "viridis", "inradius": "viridis", "slope": "magma", "output": "RdBu_r",
               "values": "viridis"}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x):
    # uint64 arithmetic wraps modulo 2**64 in numpy arrays (no overflow warning)
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def pattern_hash(packed):
    """64-bit hash of each row of packed activation bits.

    Parameters
    ----------
    packed : (n, words) uint64
        ``Partition.packed_patterns`` (or :func:`regions.partition.pack_patterns`
        of a bool pattern array).

    Returns
    -------
    (n,) uint64, equal for equal rows whatever partition they come from.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[5], [5], [6]], dtype=np.uint64)
    >>> h = pattern_hash(a)
    >>> bool(h[0] == h[1]), bool(h[0] == h[2])
    (True, False)
    """
    packed = np.atleast_2d(np.asarray(packed, dtype=np.uint64))
    h = np.full(packed.shape[0], np.uint64(0x243F6A8885A308D3))
    for w in range(packed.shape[1]):
        h = _splitmix64(h ^ packed[:, w])
    return h


def pattern_colors(packed, alpha=1.0):
    """RGBA colour per row of packed activation bits (a stable hash of the bits).

    Hue is uniform over the circle; saturation and value stay in a band
    (0.22-0.55, 0.86-0.99) so every colour is light enough for black edges and
    a black decision boundary to read on top, and no colour is grey.

    Returns
    -------
    (n, 4) float64 RGBA in [0, 1].
    """
    h = pattern_hash(packed)
    unit = lambda shift: ((h >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.float64) / 65535.0
    hsv = np.stack([unit(0), 0.22 + 0.33 * unit(16), 0.86 + 0.13 * unit(32)], axis=1)
    rgba = np.empty((h.shape[0], 4))
    rgba[:, :3] = hsv_to_rgb(hsv)
    rgba[:, 3] = alpha
    return rgba
