"""Input encodings (sin/cos features of the coordinate) as torch modules.

Every encoding is described by one general table, :meth:`Encoding.feature_spec`:
feature ``i`` is ``kind[i]`` applied to ``omega[i] . p`` with kind 0 = the raw
projection ``omega . p``, 1 = ``sin(omega . p)``, 2 = ``cos(omega . p)``.
The exact engines (:mod:`regions.encoded`) read only that table.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["Encoding"]

RAW, SIN, COS = 0, 1, 2


class Encoding(torch.nn.Module):
    """Base class: subclasses set ``in_features`` and register buffers
    ``kinds`` (int64, (F,)) and ``omegas`` (float64, (F, in_features))."""

    in_features: int

    @property
    def out_features(self) -> int:
        return int(self.kinds.shape[0])

    def feature_spec(self):
        """``(kinds, omegas)`` as numpy arrays: int64 ``(F,)`` and float64 ``(F, d)``."""
        return (self.kinds.detach().cpu().numpy().astype(np.int64),
                self.omegas.detach().cpu().double().numpy())

    def forward(self, p):
        phase = p.to(self.omegas.dtype) @ self.omegas.T
        out = torch.where(self.kinds == SIN, torch.sin(phase),
                          torch.where(self.kinds == COS, torch.cos(phase), phase))
        return out.to(p.dtype)

    def encode_numpy(self, p):
        """The same features in float64 numpy, for exact work."""
        kinds, omegas = self.feature_spec()
        phase = np.atleast_2d(np.asarray(p, dtype=np.float64)) @ omegas.T
        return np.where(kinds == SIN, np.sin(phase), np.where(kinds == COS, np.cos(phase), phase))
