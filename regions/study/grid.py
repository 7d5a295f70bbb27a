"""The study's sample grids: coordinates, steps, neighbour pairs and patches.

Samples lie on a regular grid of shape ``(n,)`` (1D) or ``(H, W)`` (2D),
flattened row-major (index ``row * W + col``; ``coords[:, 0]`` is x, the
column, ``coords[:, 1]`` is y, the row). An axis of ``n`` points over
``(lo, hi)`` is half-open, ``lo + (hi - lo) * i / n``, or closed with
``endpoint=True``, ``lo + (hi - lo) * i / (n - 1)``. Everything in the study
that needs the grid (signals, features, gradient pairs, spectra, the
report) takes it from here.

* :func:`check_grid_shape`, :func:`check_coord_range`, :func:`grid_coordinates`, :func:`grid_step`
* :func:`adjacent_pairs` -- 4-neighbour edges (2 in 1D): per-sample
  Hamming distances and crossings;
* :func:`patch_pairs` -- every pair inside 3x3 patches: the paper's local
  pairs for gradient confusion;
* :func:`distant_pairs` -- pairs from opposite corners: the paper's global pairs;
* :func:`patch_hamming` -- mean Hamming distance over all pairs of every 3x3
  patch (the paper's table).
"""
from __future__ import annotations

import numpy as np

__all__ = ["check_grid_shape", "check_coord_range", "grid_coordinates", "grid_step",
           "adjacent_pairs", "patch_pairs", "distant_pairs", "patch_hamming"]


def check_grid_shape(grid_shape):
    """``grid_shape`` as a tuple of positive ints, ``(n,)`` or ``(H, W)``; else ``ValueError``."""
    try:
        shape = tuple(int(s) for s in np.atleast_1d(grid_shape))
    except (TypeError, ValueError):
        shape = ()
    if len(shape) not in (1, 2) or min(shape, default=0) < 1:
        raise ValueError(f"grid_shape must be (n,) or (H, W) with positive sizes, got "
                         f"{grid_shape!r}")
    return shape


def check_coord_range(coord_range):
    """``(lo, hi)`` as floats, finite with ``lo < hi``; else ``ValueError``."""
    try:
        lo, hi = (float(v) for v in coord_range)
    except (TypeError, ValueError):
        raise ValueError(f"coord_range must be a pair (lo, hi) of numbers such as (0, 1) or "
                         f"(-1, 1), got {coord_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"coord_range must be finite with lo < hi, e.g. (0, 1) or (-1, 1), "
                         f"got {coord_range!r}")
    return lo, hi


def grid_coordinates(grid_shape, coord_range=(0, 1), endpoint=False):
    """Coordinates of a regular grid (half-open unless ``endpoint``).

    Returns
    -------
    ndarray
        ``(N, d)`` float64, 2D in row-major order with columns ``(x, y)``.

    Examples
    --------
    >>> grid_coordinates((4,)).ravel().tolist()
    [0.0, 0.25, 0.5, 0.75]
    >>> grid_coordinates((3,), endpoint=True).ravel().tolist()
    [0.0, 0.5, 1.0]
    >>> grid_coordinates((2, 2), (-1, 1)).tolist()
    [[-1.0, -1.0], [0.0, -1.0], [-1.0, 0.0], [0.0, 0.0]]
    """
    lo, hi = check_coord_range(coord_range)
    shape = check_grid_shape(grid_shape)

    def axis(n):
        return lo + (hi - lo) * np.arange(n) / ((n - 1) if endpoint and n > 1 else n)

    if len(shape) == 1:
        return axis(shape[0])[:, None]
    H, W = shape
    xx, yy = np.meshgrid(axis(W), axis(H))  # (H, W): xx varies along columns
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def grid_step(coord_range, grid_shape, endpoint=False):
    """Spacing of the finest axis of the grid, in coordinate units.

    Examples
    --------
    >>> grid_step((0, 1), (4,)), grid_step((0, 1), (5,), endpoint=True)
    (0.25, 0.25)
    """
    lo, hi = check_coord_range(coord_range)
    n = max(check_grid_shape(grid_shape))
    return (hi - lo) / ((n - 1) if endpoint and n > 1 else n)


def adjacent_pairs(grid_shape):
    """Index pairs ``(i, j)`` of grid neighbours: right and down in 2D, next in 1D.

    Returns ``(P, 2)`` int64, the right pairs (row by row) before the down pairs.

    Examples
    --------
    >>> adjacent_pairs((3,)).tolist()
    [[0, 1], [1, 2]]
    >>> adjacent_pairs((2, 2)).tolist()
    [[0, 1], [2, 3], [0, 2], [1, 3]]
    """
    shape = check_grid_shape(grid_shape)
    if len(shape) == 1:
        i = np.arange(shape[0] - 1)
        return np.stack([i, i + 1], 1)
    H, W = shape
    idx = np.arange(H * W).reshape(H, W)
    right = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1)
    down = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)
    return np.concatenate([right, down])


def patch_pairs(grid_shape, patch=3, n_patches=None, seed=0) -> np.ndarray:
    """The paper's local pairs: all pairs of samples inside small patches.

    Parameters
    ----------
    grid_shape : tuple
        ``(n,)`` or ``(H, W)`` (row-major flattening).
    patch : int
        Patch side (``patch x patch`` pixels in 2D, ``patch`` points in 1D).
    n_patches : int, optional
        ``None``: the grid tiled by non-overlapping patches (deterministic,
        incomplete border patches dropped); an int: that many patches at random
        positions (the paper's Monte-Carlo choice), seeded by ``seed``.
    seed : int

    Returns
    -------
    ndarray
        ``(P, 2)`` int64 flat indices with ``i < j``; ``patch*patch*(patch*patch-1)/2``
        pairs per patch in 2D.

    Examples
    --------
    >>> patch_pairs((4,), patch=2).tolist()
    [[0, 1], [2, 3]]
    >>> patch_pairs((3, 3)).shape
    (36, 2)
    """
    shape = check_grid_shape(grid_shape)
    patch = int(patch)
    if patch < 2 or patch > min(shape):
        raise ValueError(f"patch must be between 2 and the smallest grid side {min(shape)}, "
                         f"got {patch}")
    if len(shape) == 1:
        offsets = np.arange(patch)
        n_pos = shape[0] - patch + 1
        if n_patches is None:
            starts = np.arange(0, shape[0] - patch + 1, patch)
        else:
            starts = np.random.default_rng(seed).integers(0, n_pos, size=int(n_patches))
    else:
        H, W = shape
        r, c = np.meshgrid(np.arange(patch), np.arange(patch), indexing="ij")
        offsets = (r * W + c).ravel()
        if n_patches is None:
            rr, cc = np.meshgrid(np.arange(0, H - patch + 1, patch),
                                 np.arange(0, W - patch + 1, patch), indexing="ij")
        else:
            rng = np.random.default_rng(seed)
            rr = rng.integers(0, H - patch + 1, size=int(n_patches))
            cc = rng.integers(0, W - patch + 1, size=int(n_patches))
        starts = (rr * W + cc).ravel()
    a, b = np.triu_indices(offsets.size, k=1)
    members = starts[:, None] + offsets[None, :]
    return np.stack([members[:, a].ravel(), members[:, b].ravel()], axis=1).astype(np.int64)


def distant_pairs(grid_shape, n_pairs, seed=0, quadrant=None) -> np.ndarray:
    """The paper's global pairs: samples far apart on the grid.

    In 2D one sample is drawn from a ``quadrant x quadrant`` corner block and
    the other from the opposite corner block (top-left with bottom-right or
    top-right with bottom-left, chosen at random per pair); the paper uses 25
    on a 64x64 image, the default here is ``round(25/64 * min(H, W))`` capped at
    25. In 1D one sample comes from the first and one from the last
    ``quadrant`` points (default ``round(25/64 * n)``).

    Returns
    -------
    ndarray
        ``(n_pairs, 2)`` int64 flat indices.

    Examples
    --------
    >>> distant_pairs((64, 64), 5, seed=1).shape
    (5, 2)
    """
    shape = check_grid_shape(grid_shape)
    n_pairs = int(n_pairs)
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    rng = np.random.default_rng(seed)
    if quadrant is None:
        quadrant = max(1, int(round(25 / 64 * min(shape))))
        if len(shape) == 2:
            quadrant = min(quadrant, 25)
    q = int(quadrant)
    if q < 1 or 2 * q > min(shape):
        raise ValueError(f"quadrant must be between 1 and half the smallest grid side "
                         f"({min(shape) // 2}), got {q}")
    if len(shape) == 1:
        n = shape[0]
        i = rng.integers(0, q, size=n_pairs)
        j = rng.integers(n - q, n, size=n_pairs)
        return np.stack([i, j], axis=1).astype(np.int64)
    H, W = shape
    r1, c1 = rng.integers(0, q, size=n_pairs), rng.integers(0, q, size=n_pairs)
    r2, c2 = rng.integers(H - q, H, size=n_pairs), rng.integers(W - q, W, size=n_pairs)
    flip = rng.random(n_pairs) < 0.5  # top-right with bottom-left instead
    c1f = np.where(flip, W - 1 - c1, c1)
    c2f = np.where(flip, W - 1 - c2, c2)
    return np.stack([r1 * W + c1f, r2 * W + c2f], axis=1).astype(np.int64)


def patch_hamming(patterns, grid_shape):
    """Mean Hamming distance over all pairs inside every 3x3 patch (3-window in
    1D), each pair weighted by the number of patches holding both (the paper's
    local pairs, all patch positions).

    ``patterns`` is ``(N, n_hidden)`` bool in grid order.

    Examples
    --------
    >>> patch_hamming(np.array([[0], [1], [1]], bool), (3,))   # pairs (0,1) x2, (1,2) x2, (0,2) x1
    0.6
    """
    shape = check_grid_shape(grid_shape)
    P = np.asarray(patterns)
    if len(shape) == 1:
        tot, cnt = 0.0, 0.0
        for d, wgt in ((1, 2), (2, 1)):
            h = (P[d:] != P[:-d]).sum(1)
            tot += wgt * h.sum()
            cnt += wgt * h.size
        return float(tot / cnt)
    H, W = shape
    P = P.reshape(H, W, -1)
    tot, cnt = 0.0, 0.0
    for di in range(0, 3):
        for dj in range(-2, 3):
            if di == 0 and dj <= 0:
                continue
            wgt = (3 - di) * (3 - abs(dj))
            if dj >= 0:
                a, b = P[: H - di, : W - dj], P[di:, dj:]
            else:
                a, b = P[: H - di, -dj:], P[di:, : W + dj]
            h = (a != b).sum(-1)
            tot += wgt * h.sum()
            cnt += wgt * h.size
    return float(tot / cnt)
