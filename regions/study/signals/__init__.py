"""Target signals on regular 1D and 2D grids, for coordinate-MLP training.

A :class:`Signal` is plain arrays: the grid coordinates the network sees,
the targets, the grid shape and the coordinate range. Every constructor
validates its input (shape, finiteness, non-empty) and raises a
``ValueError`` naming the problem before any training starts.

Grid conventions
----------------
* 1D, ``n`` points: ``t_i = lo + (hi - lo) * i / n`` (half-open ``[lo, hi)``,
  ``(0, 1)`` gives the paper's ``t = i / n``); ``grid_shape = (n,)``.
* 2D, ``H x W`` pixels, row-major flattening ``index = row * W + col``;
  ``coords[:, 0] = x = lo + (hi - lo) * col / W`` and
  ``coords[:, 1] = y = lo + (hi - lo) * row / H``; ``grid_shape = (H, W)``.
* ``endpoint=True`` divides by ``n - 1`` instead (a closed grid, like the
  paper's ``linspace(0, 1, W)`` for its 2D positional-encoding runs).

Every constructor takes ``coord_range`` (the ``(lo, hi)`` above, default
``(0, 1)``) and ``endpoint`` (the closed grid above, default False).

The grid itself (coordinates, steps, neighbour pairs) is :mod:`regions.study.grid`.
The package: :mod:`.signal` (the :class:`Signal` record and :func:`from_array`),
:mod:`.synthetic` (seeded synthetic targets), :mod:`.images` (image files and
the sample photograph).
"""
from __future__ import annotations

from .images import NATURAL_IMAGE, image_file, natural_image
from .signal import Signal, from_array
from .synthetic import band_limited_image, random_image, sum_of_sinusoids

__all__ = ["Signal", "sum_of_sinusoids", "random_image", "band_limited_image", "natural_image",
           "image_file", "from_array", "NATURAL_IMAGE"]
