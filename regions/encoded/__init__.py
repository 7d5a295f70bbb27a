"""Exact pieces of encoded (sin/cos feature) coordinate networks along lines.

With an input encoding ``gamma`` (see :mod:`regions.encoding`) every
pre-activation is, on a piece where the earlier neurons keep their states, a
trigonometric polynomial of the line parameter ``u``:

    z_l(u) = C_l gamma(x(u)) + c_l,     x(u) = origin + basis u,

and the coefficients of the next layer are ``C_{l+1} = W_{l+1} D_l C_l``
(``D_l`` the states of layer ``l`` on the piece). The engine carries
``(C_l, c_l)`` for every piece, isolates the roots of every neuron with the
certified subdivision of :mod:`kernels.trig`, and cuts the pieces there.

What is exact and what is a tolerance
-------------------------------------
* An interval is cleared of roots only by a bound from the coefficients
  (mean value / Taylor bounds with ``M1 = sum |C| |omega|``,
  ``M2 = sum |C| omega^2``); roots are refined by a bracketed solver to
  ``1e-13`` times the domain length (at least a few ulps).
* A value with ``|z| <= 1e-13 * (|c| + sum_f |C_f| max(1, |phase_f|))`` counts
  as zero (about 500 times the rounding of one evaluation).
* Tangency: a zero without a sign change changes no state and is not a
  breakpoint (the pattern ``z > 0`` is the same on both sides, and the
  single point where ``z = 0`` is not a piece).
* Breakpoints closer than ``1e-12`` times the domain length are merged into
  one (the sliver between them is dropped); a breakpoint that close to a
  piece's end is merged into the end.

Pieces with the same pattern can recur far apart along the line:
:attr:`EncodedPartition1D.pattern_id` groups them.

:meth:`EncodedPartition1D.level_set` finds where an output crosses a value
with the same isolation and tolerances (the sign walk carried from piece to
piece, since the output is continuous).

In 2D, a *separable* encoding (:class:`regions.PositionalEncoding` with
``in_features=2``) is partitioned by :mod:`~regions.encoded.engine2d` into
curved faces (:class:`EncodedPartition2D`); random Fourier features mix the
coordinates and stay refused (:data:`~regions.encoded.engine2d.NOT_SEPARABLE_MESSAGE`).

Modules
-------
:mod:`~regions.encoded.engine`
    the engine (:func:`partition_encoded_line` on a Network and a Domain; its
    entry points :func:`partition_encoded_1d`, :func:`partition_encoded_segment`
    for any model; its core :func:`encoded_line_pieces`);
:mod:`~regions.encoded.result`
    its result type, :class:`EncodedPartition1D`;
:mod:`~regions.encoded.crossings`
    exact crossings along the rows and columns of a pixel grid
    (:func:`grid_crossings`, :class:`GridCrossings`);
:mod:`~regions.encoded.engine2d`, :mod:`~regions.encoded.result2d`
    the encoded 2D engine (:func:`partition_encoded_plane`) and its result,
    :class:`EncodedPartition2D`; :mod:`~regions.encoded.local2d` the faces
    holding given samples without the whole partition (:func:`sample_faces`);
    :mod:`~regions.encoded.tiles` the same partition tile by tile on an executor's
    workers, merged along the tile edges (:func:`partition_tiles`);
    :mod:`~regions.encoded.certify` the check of every crossing of two curves on
    the faces' boundaries (:func:`certify_crossings`, :class:`CrossingCertificate`);
:mod:`~regions.encoded.tolerances`
    the tolerances above, shared by the engine and the result's level sets.
"""
from .certify import CrossingCertificate, certify_crossings
from .crossings import GridCrossings, grid_crossings
from .engine import (encoded_line_pieces, partition_encoded_1d, partition_encoded_line,
                     partition_encoded_segment)
from .engine2d import NOT_SEPARABLE_MESSAGE, partition_encoded_plane
from .local2d import sample_faces
from .result import EncodedPartition1D
from .result2d import EncodedPartition2D
from .tiles import partition_tiles
from .tolerances import H_TERM, MERGE, XTOL

__all__ = ["EncodedPartition1D", "EncodedPartition2D", "partition_encoded_plane", "sample_faces",
           "partition_tiles",
           "NOT_SEPARABLE_MESSAGE", "partition_encoded_1d", "partition_encoded_segment",
           "partition_encoded_line", "grid_crossings", "GridCrossings", "certify_crossings",
           "CrossingCertificate"]
