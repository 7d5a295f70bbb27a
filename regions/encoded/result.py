"""The result type of the encoded 1D engine: :class:`EncodedPartition1D`."""
from __future__ import annotations

import numpy as np

from ..partition import PatternIds
from ..partition1d import Partition1D
from .tolerances import H_TERM, MERGE, XTOL

__all__ = ["EncodedPartition1D"]


class EncodedPartition1D(PatternIds, Partition1D):
    """Pieces of a line through the input of an encoded network.

    Same interface as :class:`regions.partition1d.Partition1D`, except:

    * ``affine`` is in the encoded space: ``A`` ``(n, n_out, n_features)``,
      ``c`` ``(n, n_out)``; the output on piece ``r`` is
      ``A[r] @ encode(u) + c[r]`` (see :meth:`encode`);
    * ``pattern_id`` ``(n,)``: pieces with equal activation patterns share an
      id (numbered in order of first appearance along the line);
      ``n_patterns`` is the number of distinct patterns.
    """

    def __init__(self, network, domain, points, packed_patterns, A, c, kinds, alpha, beta,
                 stats=None):
        super().__init__(network, domain, points, packed_patterns, A, c, stats)
        self.kinds, self.alpha, self.beta = kinds, alpha, beta

    def encode(self, u):
        """Encoded features at line parameters ``u`` (``(m,)``) -> ``(m, n_features)``."""
        u = np.asarray(u, dtype=np.float64).reshape(-1)
        ph = self.alpha[None, :] + u[:, None] * self.beta[None, :]
        return np.where(self.kinds == 1, np.sin(ph), np.where(self.kinds == 2, np.cos(ph), ph))

    def level_set(self, value=0.0, output=0):
        """Points where output ``output`` equals ``value``, sorted, in the line parameter.

        On each piece the output is ``A[r, output] . encode(u) + c[r, output]``, a
        trigonometric polynomial of ``u``; the level set is where ``output - value``
        changes sign, found by the certified root isolation of the breakpoints
        (:mod:`kernels.trig`) with the same tolerances: ``|output - value|`` below
        ``1e-13`` of its coefficient scale counts as zero, roots are refined to
        ``1e-13`` of the domain length, and a zero without a sign change (a
        tangency, or a zero at a domain end) is not reported. The sign walk runs
        along the whole line, so a crossing at (or within the tolerance of) a
        breakpoint is found once. Whole pieces on which the output stays within
        the tolerance of ``value`` are reported by their ends, as
        :meth:`Partition1D.level_set` reports constant pieces. Points closer than
        ``1e-12`` of the domain length are merged into one (a flat piece's end
        when one of them is), as breakpoints are.

        Returns a ``(k,)`` float64 array, like :meth:`Partition1D.level_set`.
        """
        from kernels import trig as T

        A, c = self.affine
        value, output = self._level_arguments(value, output)
        P = len(self)
        if P == 0:
            return np.empty(0)
        F = A.shape[2]
        Cf = np.empty((P, F + 1, 1))
        Cf[:, :F, 0] = A[:, output, :]
        Cf[:, F, 0] = c[:, output] - value
        lo = np.ascontiguousarray(self.points[:-1])
        hi = np.ascontiguousarray(self.points[1:])
        length = float(self.points[-1] - self.points[0])
        kinds = np.ascontiguousarray(self.kinds, dtype=np.int64)
        alpha = np.ascontiguousarray(self.alpha, dtype=np.float64)
        beta = np.ascontiguousarray(self.beta, dtype=np.float64)
        _, roots, _, first, _ = T.isolate_pieces(lo, hi, Cf, kinds, alpha, beta, T.REL_TOL,
                                                 H_TERM * length, XTOL * length, 0, P,
                                                 200_000_000, True)
        flat = first[:, 0] == 0
        pts = np.concatenate([roots, lo[flat], hi[flat]])
        is_end = np.repeat([False, True], [roots.shape[0], 2 * int(flat.sum())])
        if pts.shape[0] == 0:
            return pts
        order = np.argsort(pts, kind="stable")
        pts, is_end = pts[order], is_end[order]
        # points closer than MERGE of the domain are one (as breakpoints are): a
        # crossing in the tolerance band next to a flat piece is that piece's end
        new = np.ones(pts.shape[0], dtype=bool)
        new[1:] = np.diff(pts) > MERGE * length
        group = np.cumsum(new) - 1
        rep = np.flatnonzero(new)
        ends = np.flatnonzero(is_end)[::-1]
        rep[group[ends]] = ends                     # the first flat end of a group wins
        return pts[rep]
