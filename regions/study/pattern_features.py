"""Per-sample features from the activation patterns at the samples.

:func:`hamming_features` (every model with a grid) compares each sample's
pattern with its grid neighbours' (exact: the patterns are computed at the
samples). :func:`encoded_2d_features` describes the regions of an encoded 2D
model by the exact faces holding the samples
(:func:`regions.study.geometric_features.encoded_2d_face_features`) where they
are asked for, else from the distinct patterns among the samples only, labelled
``'sampled'`` (a lower bound on what they count: two pixels with one pattern
may lie in different regions, and a region between pixels is missed); its
``density`` is always the sampled one; plus the exact crossings of
:func:`regions.study.geometric_features.encoded_grid_crossings`.
"""
from __future__ import annotations

import numpy as np

from .feature_table import EXACT, SAMPLED, grid_step, mean_over_pairs, occupancy
from .geometric_features import encoded_2d_face_features, encoded_grid_crossings
from .grid import adjacent_pairs

__all__ = ["hamming_features", "encoded_2d_features"]


def encoded_2d_features(f, net, coords, grid_shape, radius, pats, crossings=True, faces=None):
    """Add the features of an encoded 2D model to ``f``: the exact features of the
    faces holding the samples when ``faces`` is a domain
    (:func:`regions.study.geometric_features.encoded_2d_face_features`), else the
    sampled region features from the distinct patterns; the sampled density; and
    the exact row/column crossings when ``crossings`` (and the samples form a
    regular grid)."""
    from ..sampling import sampled_patterns

    _, pid = sampled_patterns(net, coords)
    pid = np.asarray(pid, dtype=np.int64)
    f.meta["n_regions"] = None
    if faces is not None:
        encoded_2d_face_features(f, net, coords, faces)
    else:
        occ = occupancy(pid)
        f.add("region", pid, SAMPLED, "distinct pattern among the samples")
        f.add("occupancy", occ, SAMPLED, "samples with the same pattern")
        if grid_shape is not None:
            f.add("measure", occ * _cell_area(coords, grid_shape), SAMPLED,
                  "samples with the pattern x pixel area")
    if grid_shape is not None:
        H, W = grid_shape
        # distinct patterns in the window of radius `radius` (in pixel units)
        step = grid_step(coords, grid_shape)
        r = max(1, int(np.floor(radius / step + 1e-9)))
        img = pid.reshape(H, W)
        dens = np.zeros(H * W, dtype=np.int64)
        for i in range(H):
            for j in range(W):
                win = img[max(0, i - r): i + r + 1, max(0, j - r): j + r + 1]
                dens[i * W + j] = len(np.unique(win))
        f.add("density", dens, SAMPLED, f"distinct patterns in the {2 * r + 1}x{2 * r + 1} window")
        c = encoded_grid_crossings(net, coords, grid_shape) if crossings else None
        if c is not None:
            pairs = adjacent_pairs(grid_shape)
            f.add("crossings", mean_over_pairs(c.astype(float), pairs, len(coords)), EXACT,
                  "mean exact boundary crossings along rows/columns to the grid neighbours")
            f.meta["neighbour_crossings"] = c


def _cell_area(coords, grid_shape):
    lo, hi = coords.min(0), coords.max(0)
    H, W = grid_shape
    return float((hi[0] - lo[0]) / max(W - 1, 1) * (hi[1] - lo[1]) / max(H - 1, 1))


def hamming_features(f, net, pats, grid_shape, layers):
    """Add the mean Hamming distance to the grid neighbours' patterns to ``f``
    (and per hidden layer when ``layers``)."""
    pairs = adjacent_pairs(grid_shape)
    diff = pats[pairs[:, 0]] != pats[pairs[:, 1]]
    n = pats.shape[0]
    f.add("hamming", mean_over_pairs(diff.sum(1).astype(float), pairs, n), EXACT,
          "mean Hamming distance to the grid neighbours' patterns")
    f.meta["neighbour_hamming"] = diff.sum(1)
    if layers:
        start = 0
        for li, w in enumerate(net.widths):
            h = diff[:, start:start + w].sum(1).astype(float)
            f.add(f"hamming_l{li + 1}", mean_over_pairs(h, pairs, n), EXACT,
                  f"mean Hamming distance in hidden layer {li + 1}")
            start += w
