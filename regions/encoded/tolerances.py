"""Tolerances of the encoded 1D engine, relative to the length of the line's domain.

They are shared by the engine (:mod:`regions.encoded.engine`) and
:meth:`regions.encoded.EncodedPartition1D.level_set`, so that level sets are
found with exactly the isolation and merging the breakpoints had.
"""
__all__ = ["XTOL", "MERGE", "H_TERM"]

XTOL = 1e-13        # root refinement, relative to the domain length
MERGE = 1e-12       # breakpoints closer than this (relative) are merged
H_TERM = 1e-13      # half-width of a terminal box, relative to the domain length
