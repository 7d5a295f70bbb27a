"""Exact region boundaries of an encoded 2D model along the rows and columns
of a pixel grid: :func:`grid_crossings` and its result :class:`GridCrossings`.

Every grid line is a 1D problem for the encoded engine
(:func:`regions.encoded.partition_encoded_line`), so the counts are exact with
the engine's tolerances.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._shared import check_value_range, progress_bar
from ..domain import Box, Interval
from ..network import as_network
from .engine import _encoding_of, partition_encoded_line

__all__ = ["GridCrossings", "grid_crossings"]


@dataclass
class GridCrossings:
    """Exact region boundaries along the rows and columns of a pixel grid.

    Pixel ``(i, j)`` is at ``(xs[j], ys[i])``.

    Attributes
    ----------
    xs, ys : (W,), (H,) pixel coordinates.
    row_breakpoints : list of H arrays, the x of every breakpoint along row i.
    col_breakpoints : list of W arrays, the y of every breakpoint along column j.
    row_crossings : (H, W-1) int64, breakpoints in ``(xs[j], xs[j+1]]`` on row i.
    col_crossings : (H-1, W) int64, breakpoints in ``(ys[i], ys[i+1]]`` on column j.
    row_hamming, col_hamming : same shapes, the number of neurons whose state
        differs between the two neighbouring pixels (exact patterns).
    row_pieces, col_pieces : (H,), (W,) pieces along each full row / column.
    """

    xs: np.ndarray
    ys: np.ndarray
    row_breakpoints: list
    col_breakpoints: list
    row_crossings: np.ndarray
    col_crossings: np.ndarray
    row_hamming: np.ndarray
    col_hamming: np.ndarray
    row_pieces: np.ndarray
    col_pieces: np.ndarray


def _along(net, coords, fixed, axis, max_regions, threads):
    """Pieces along one grid line: coordinate ``axis`` varies over coords, the other is fixed."""
    origin = np.zeros(2)
    origin[1 - axis] = fixed
    basis = np.zeros((2, 1))
    basis[axis, 0] = 1.0
    dom = Interval(coords[0], coords[-1], origin=origin, basis=basis)
    p = partition_encoded_line(net, dom, max_regions, False, threads)
    idx = p.locate(coords)
    counts = np.diff(idx)
    pats = p.patterns[idx]
    ham = np.count_nonzero(pats[1:] != pats[:-1], axis=1)
    return p.breakpoints.copy(), counts, ham, len(p)


def grid_crossings(model, shape=(64, 64), bounds=((0.0, 1.0), (0.0, 1.0)), max_regions=None,
                   progress=None, threads=2):
    """Exact breakpoints along every row and column of a pixel grid of an encoded 2D model.

    The grid is ``xs = linspace(x0, x1, W)``, ``ys = linspace(y0, y1, H)``
    (endpoints included, the paper's PE grid for bounds ``((0, 1), (0, 1))``).

    Returns
    -------
    GridCrossings, with ``row_crossings`` ``(H, W-1)`` and ``col_crossings``
    ``(H-1, W)``: the exact number of region boundaries crossed between each
    pair of neighbouring pixels (a boundary lying exactly on a pixel counts
    between that pixel and its left / lower neighbour).

    Examples
    --------
    One neuron ``relu(sin(pi x) - 0.5)`` changes state at ``x = 1/6`` and
    ``x = 5/6`` on every row; the columns cross no boundary (a column at
    ``x = 1/6`` exactly would lie on it, and a line on a boundary crosses none):

    >>> import numpy as np, torch, regions
    >>> pe = regions.PositionalEncoding(1, in_features=2)     # sin, cos of pi x and pi y
    >>> lin = torch.nn.Linear(4, 1).double()
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    ...     _ = lin.bias.fill_(-0.5)
    >>> model = torch.nn.Sequential(pe, lin, torch.nn.ReLU(), torch.nn.Linear(1, 1).double())
    >>> g = grid_crossings(model, shape=(2, 4), progress=False)
    >>> g.xs.tolist()
    [0.0, 0.3333333333333333, 0.6666666666666666, 1.0]
    >>> g.row_crossings.tolist(), g.col_crossings.tolist()
    ([[1, 0, 1], [1, 0, 1]], [[0, 0, 0, 0]])
    >>> np.round(g.row_breakpoints[0], 12).tolist(), g.row_pieces.tolist()
    ([0.166666666667, 0.833333333333], [3, 3])
    >>> grid_crossings(model, shape=(1, 4))
    Traceback (most recent call last):
    ...
    ValueError: shape must be at least (2, 2) pixels, got (1, 4)
    """
    net = as_network(model)
    enc = _encoding_of(net)
    if enc.in_features != 2:
        raise ValueError(f"grid_crossings needs a model of a 2D coordinate; its encoding takes "
                         f"{enc.in_features}")
    try:
        H, W = (int(shape[0]), int(shape[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if H < 2 or W < 2:
        raise ValueError(f"shape must be at least (2, 2) pixels, got {shape!r}")
    try:
        (x0, x1), (y0, y1) = bounds
        x0, x1, y0, y1 = float(x0), float(x1), float(y0), float(y1)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be ((x0, x1), (y0, y1)), got {bounds!r}") from None
    if not (x1 > x0 and y1 > y0 and np.all(np.isfinite([x0, x1, y0, y1]))):
        raise ValueError(f"bounds must be finite with x0 < x1 and y0 < y1, got {bounds!r}")
    check_value_range(net, Box((x0, x1), (y0, y1)))     # the box holds every grid line
    xs = np.linspace(x0, x1, W)
    ys = np.linspace(y0, y1, H)
    rows_b, cols_b = [], []
    row_c = np.zeros((H, W - 1), dtype=np.int64)
    col_c = np.zeros((H - 1, W), dtype=np.int64)
    row_h = np.zeros((H, W - 1), dtype=np.int64)
    col_h = np.zeros((H - 1, W), dtype=np.int64)
    row_n = np.zeros(H, dtype=np.int64)
    col_n = np.zeros(W, dtype=np.int64)
    bar = progress_bar(progress, total=H + W, desc="grid lines", unit="line")
    try:
        for q in range(H + W):
            if q < H:
                b, cnt, ham, npc = _along(net, xs, ys[q], 0, max_regions, threads)
                rows_b.append(b)
                row_c[q], row_h[q], row_n[q] = cnt, ham, npc
            else:
                j = q - H
                b, cnt, ham, npc = _along(net, ys, xs[j], 1, max_regions, threads)
                cols_b.append(b)
                col_c[:, j], col_h[:, j], col_n[j] = cnt, ham, npc
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return GridCrossings(xs, ys, rows_b, cols_b, row_c, col_c, row_h, col_h, row_n, col_n)
