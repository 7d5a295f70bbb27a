"""The :class:`Signal` record (targets on a regular grid, validated) and
:func:`from_array`, a signal from a plain array (:mod:`regions.study.signals`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import check_coord_range, check_grid_shape, grid_coordinates

__all__ = ["Signal", "from_array", "check_finite", "image_size"]


@dataclass
class Signal:
    """Targets on a regular grid.

    Attributes
    ----------
    name : str
        A label for reports.
    coords : ndarray
        ``(N, d)`` float64 grid coordinates in ``coord_range`` (``d`` = 1 or 2).
    targets : ndarray
        ``(N, C)`` float64 targets, finite.
    grid_shape : tuple
        ``(N,)`` in 1D, ``(H, W)`` in 2D (row-major; ``coords[:, 0]`` is x, the
        column, and ``coords[:, 1]`` is y, the row).
    coord_range : tuple
        ``(lo, hi)`` of the grid, half-open unless ``endpoint``.
    endpoint : bool
        Whether the grid includes ``hi`` (``linspace`` with the end point).
    """

    name: str
    coords: np.ndarray
    targets: np.ndarray
    grid_shape: tuple
    coord_range: tuple = (0.0, 1.0)
    endpoint: bool = False

    def __post_init__(self):
        self.coord_range = check_coord_range(self.coord_range)
        self.endpoint = bool(self.endpoint)
        try:
            self.grid_shape = check_grid_shape(self.grid_shape)
        except ValueError as err:
            raise ValueError(f"Signal {self.name!r}: {err}") from None
        N = int(np.prod(self.grid_shape))
        coords = np.asarray(self.coords, dtype=np.float64)
        targets = np.asarray(self.targets, dtype=np.float64)
        if targets.ndim == 1:
            targets = targets[:, None]
        if coords.shape != (N, len(self.grid_shape)):
            raise ValueError(f"Signal {self.name!r}: coords must have shape "
                             f"{(N, len(self.grid_shape))} for grid_shape {self.grid_shape}, "
                             f"got {coords.shape}")
        if targets.ndim != 2 or targets.shape[0] != N or targets.shape[1] < 1:
            raise ValueError(f"Signal {self.name!r}: targets must have shape (N, C) = ({N}, C) "
                             f"for grid_shape {self.grid_shape}, got {targets.shape}")
        check_finite(targets, f"Signal {self.name!r} targets")
        if not np.all(np.isfinite(coords)):
            raise ValueError(f"Signal {self.name!r}: coords contain NaN or inf")
        self.coords, self.targets = coords, targets

    @property
    def n(self) -> int:
        """Number of samples ``N``."""
        return int(self.targets.shape[0])

    @property
    def dim(self) -> int:
        """Input dimension (1 or 2)."""
        return len(self.grid_shape)

    @property
    def channels(self) -> int:
        """Number of output channels ``C``."""
        return int(self.targets.shape[1])

    def as_grid(self, values=None):
        """Reshape per-sample values (default: the targets) to the grid.

        ``(N,)`` -> ``grid_shape``; ``(N, C)`` -> ``grid_shape + (C,)``.
        """
        v = self.targets if values is None else np.asarray(values)
        if v.shape[0] != self.n:
            raise ValueError(f"values must have {self.n} rows (one per sample), got {v.shape}")
        return v.reshape(self.grid_shape + v.shape[1:])

    def __repr__(self):
        return (f"Signal(name={self.name!r}, grid_shape={self.grid_shape}, "
                f"channels={self.channels}, coord_range={self.coord_range})")


def check_finite(a, what):
    bad = ~np.isfinite(a)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        raise ValueError(f"{what} contain {int(bad.sum())} NaN or inf values (first at index "
                         f"{first}); targets must be finite")


def image_size(size):
    """``(H, W)`` of an int or pair, positive integers, else ``ValueError``."""
    try:
        H, W = (size, size) if np.isscalar(size) else tuple(size)
        H, W = int(H), int(W)
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or an (H, W) pair of ints, got {size!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return H, W


def from_array(targets, coord_range=(0, 1), name="array", dim=None, endpoint=False) -> Signal:
    """Targets given as an array on a 1D or 2D grid.

    Parameters
    ----------
    targets : array_like
        ``(N,)`` or ``(N, C)`` for a 1D grid, ``(H, W)`` or ``(H, W, C)`` for a
        2D grid. A 2-dimensional array is ambiguous: it is read as ``(N, C)``
        when ``dim=1`` and as an ``(H, W)`` image when ``dim=2``; with
        ``dim=None`` it is an error unless its second axis has size 1 (then 1D).
    coord_range, endpoint
        The coordinate grid (see :mod:`regions.study.signals`).
    name : str
        Label.
    dim : {None, 1, 2}
        Grid dimension.

    Returns
    -------
    Signal

    Examples
    --------
    >>> from_array(np.zeros(5)).grid_shape
    (5,)
    >>> from_array(np.zeros((4, 6)), dim=2).grid_shape
    (4, 6)
    >>> from_array(np.zeros((4, 6, 3))).targets.shape
    (24, 3)
    """
    if dim not in (None, 1, 2):
        raise ValueError(f"dim must be None, 1 or 2, got {dim!r}")
    try:
        a = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"targets must be a numeric array, got {type(targets).__name__}: "
                         f"{err}") from None
    if a.size == 0:
        raise ValueError(f"targets are empty (shape {a.shape}); need at least one sample")
    if a.ndim == 2 and dim is None:
        if a.shape[1] == 1:
            dim = 1
        else:
            raise ValueError(f"targets of shape {a.shape} are ambiguous: pass dim=1 for N="
                             f"{a.shape[0]} samples with C={a.shape[1]} channels, or dim=2 for "
                             f"an {a.shape[0]}x{a.shape[1]} image")
    if dim is None:
        dim = {1: 1, 3: 2}.get(a.ndim)
    if dim == 1 and a.ndim in (1, 2):
        grid = (a.shape[0],)
        a = a.reshape(a.shape[0], -1)
    elif dim == 2 and a.ndim in (2, 3):
        grid = a.shape[:2]
        a = a.reshape(grid[0] * grid[1], -1)
    else:
        raise ValueError(f"targets must be (N,) or (N, C) for a 1D grid, or (H, W) or (H, W, C) "
                         f"for a 2D grid; got shape {np.shape(targets)} (dim={dim})")
    check_finite(a, f"targets {name!r}")
    return Signal(name=name, coords=grid_coordinates(grid, coord_range, endpoint), targets=a,
                  grid_shape=grid, coord_range=coord_range, endpoint=endpoint)
