"""The table of per-sample features and the helpers its builders share.

:class:`Features` is a dict of named ``(N,)`` arrays with a kind per name
(``'exact'`` or ``'sampled'``, see :mod:`regions.study.features`);
:func:`mean_over_pairs` averages a per-pair value over each sample's grid
neighbours, :func:`occupancy` counts the samples sharing a label and
:func:`grid_step` is the smallest spacing of a sample grid.
"""
from __future__ import annotations

import csv

import numpy as np

from .grid import adjacent_pairs

__all__ = ["Features", "EXACT", "SAMPLED", "mean_over_pairs", "occupancy", "grid_step"]

EXACT, SAMPLED = "exact", "sampled"


class Features(dict):
    """Named ``(N,)`` arrays with a kind per name (``'exact'`` or ``'sampled'``).

    A plain dict (``features['occupancy']``) with two extra attributes:
    ``kind`` (name -> kind) and ``meta`` (free-form: radius, region count ...).
    """

    def __init__(self, n):
        super().__init__()
        self.n = int(n)
        self.kind = {}
        self.doc = {}
        self.meta = {}

    def add(self, name, values, kind=EXACT, doc=""):
        values = np.asarray(values)
        if values.shape != (self.n,):
            raise ValueError(f"feature {name!r} has shape {values.shape}, expected ({self.n},)")
        if kind not in (EXACT, SAMPLED):
            raise ValueError(f"feature kind must be 'exact' or 'sampled', got {kind!r}")
        self[name] = values
        self.kind[name] = kind
        self.doc[name] = doc

    @property
    def names(self):
        return list(self.keys())

    def exact(self):
        return [k for k in self if self.kind[k] == EXACT]

    def sampled(self):
        return [k for k in self if self.kind[k] == SAMPLED]

    def to_arrays(self, prefix=""):
        """``{prefix + name: array}`` plus ``{prefix + '_kinds': ...}`` for ``np.savez``."""
        out = {prefix + k: v for k, v in self.items()}
        out[prefix + "_names"] = np.array(self.names)
        out[prefix + "_kinds"] = np.array([self.kind[k] for k in self.names])
        return out

    def to_csv(self, path):
        names = self.names
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            w.writerow([self.kind[k] for k in names])
            cols = [self[k] for k in names]
            for i in range(self.n):
                w.writerow([c[i] for c in cols])


def mean_over_pairs(values, pairs, n):
    """Mean of a per-pair value over the pairs touching each sample (NaN for a
    sample in no pair)."""
    s = np.bincount(pairs[:, 0], values, n) + np.bincount(pairs[:, 1], values, n)
    c = np.bincount(pairs[:, 0], None, n) + np.bincount(pairs[:, 1], None, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def occupancy(labels):
    """For each sample, how many samples carry its label."""
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return counts[inv.ravel()]


def grid_step(coords, grid_shape):
    """The smallest positive distance between grid neighbours (1.0 if none)."""
    pairs = adjacent_pairs(grid_shape)
    steps = np.linalg.norm(coords[pairs[:, 1]] - coords[pairs[:, 0]], axis=1)
    return float(np.min(steps[steps > 0])) if np.any(steps > 0) else 1.0
