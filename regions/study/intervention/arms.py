"""The two arms of the half-image intervention: :class:`HalfEncoding`, the
positional encoding switched on in one area only, and what tells an arm and
its area (:mod:`regions.study.intervention`)."""
from __future__ import annotations

import numpy as np
import torch

from ...encoding import PositionalEncoding

__all__ = ["ARMS", "EARLY_FRACTION", "HalfEncoding", "is_intervention", "inside_mask",
           "hidden_patterns"]

#: The two arms: where the encoded features are switched on.
ARMS = {"treated": "inside", "control": "nowhere"}
#: The early epoch of an effect: the record nearest this share of the epochs.
EARLY_FRACTION = 0.1


class HalfEncoding(torch.nn.Module):
    """``[x, y, m(p) PE_L(p)]``: raw 2D coordinates and the paper's positional
    encoding (:class:`regions.encoding.PositionalEncoding`, ``4 L`` features)
    switched on by ``m(p)`` only where ``p[axis] < threshold`` (``where="inside"``)
    or nowhere (``where="nowhere"``, the control arm: the same input width).

    No trainable parameters (the study precomputes it once); the settings are
    buffers, so they enter the state dict and the study's job key.

    Parameters
    ----------
    L : int
        Frequencies of the encoding.
    where : {"inside", "nowhere"}
        Where the encoded features are on.
    threshold : float
        The inside is ``p[axis] < threshold``.
    axis : {0, 1}
        0: x (columns), 1: y (rows).
    """

    in_features = 2

    def __init__(self, L, where="inside", threshold=0.5, axis=0):
        super().__init__()
        if where not in ("inside", "nowhere"):
            raise ValueError(f"where must be 'inside' or 'nowhere', got {where!r}")
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 (x) or 1 (y), got {axis!r}")
        threshold = float(threshold)
        if not np.isfinite(threshold):
            raise ValueError(f"threshold must be finite, got {threshold!r}")
        self.pe = PositionalEncoding(int(L), in_features=2)
        self.L, self.where, self.threshold, self.axis = int(L), where, threshold, int(axis)
        self.out_features = 2 + 4 * self.L
        self.register_buffer("setting", torch.tensor(
            [self.L, self.axis, threshold, 1.0 if where == "inside" else 0.0],
            dtype=torch.float64))

    def inside(self, x):
        """Boolean ``(B,)``: the samples of ``x`` in the inside area."""
        return x[:, self.axis] < self.threshold

    def forward(self, x):
        pe = self.pe(x)
        if self.where == "inside":
            pe = pe * self.inside(x).to(pe.dtype)[:, None]
        else:
            pe = torch.zeros_like(pe)
        return torch.cat([x, pe.to(x.dtype)], dim=1)

    def extra_repr(self):
        return f"L={self.L}, where={self.where!r}, inside: p[{self.axis}] < {self.threshold:g}"


def is_intervention(config):
    """Whether a :class:`~regions.study.training_config.TrainConfig` is an arm
    of this intervention (its encoding a :class:`HalfEncoding`)."""
    return isinstance(getattr(config, "encoding", None), HalfEncoding)


def inside_mask(coords, encoding):
    """``(N,)`` bool: the samples in the inside area of ``encoding``."""
    return np.asarray(coords)[:, encoding.axis] < encoding.threshold


def hidden_patterns(model, coords):
    """``(N, n_hidden)`` bool activation patterns (pre-activation > 0 of every
    ReLU, in layer order) of a ``Sequential`` at ``coords`` (float64)."""
    import copy

    m = copy.deepcopy(model).double()
    x = torch.as_tensor(np.asarray(coords), dtype=torch.float64)
    out = []
    with torch.no_grad():
        for layer in m:
            if isinstance(layer, torch.nn.ReLU):
                out.append((x > 0).numpy())
            x = layer(x)
    return np.concatenate(out, axis=1)
