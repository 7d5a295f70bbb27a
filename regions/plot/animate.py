"""The partition across training checkpoints as a GIF."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.cm import ScalarMappable

from .partition import _value_scale, _values_for, partition

__all__ = ["animate"]


def animate(partitions, path, fps=2, color="pattern", titles=None, dpi=100, figsize=None,
            **kwargs):
    """Write a GIF of partitions (e.g. one per training checkpoint), one frame each.

    With ``color="pattern"`` a region keeps its colour from frame to frame as
    long as its activation pattern survives, so what changes is what moves.
    Value colourings share one colour scale over all frames.

    Parameters
    ----------
    partitions : sequence of Partition, or mapping epoch -> Partition
        All of the same dimension and domain. A mapping titles each frame with
        its key ("epoch 100: 1,234 regions").
    path : str or Path
        Where the ``.gif`` goes (written with matplotlib's PillowWriter).
    fps : frames per second.
    kwargs : passed to :func:`regions.plot.partition` (``level_set``, ``points`` ...).

    Returns
    -------
    The path written.
    """
    if isinstance(partitions, Mapping):
        keys, parts = list(partitions.keys()), list(partitions.values())
        if titles is None:
            kind = lambda p: "pieces" if p.dim == 1 else "regions"
            titles = [f"epoch {k}: {len(p):,} {kind(p)}" for k, p in zip(keys, parts)]
    else:
        parts = list(partitions)
    if not parts:
        raise ValueError("animate needs at least one partition")
    if titles is None:
        titles = [f"frame {i}: {len(p):,} {'pieces' if p.dim == 1 else 'regions'}"
                  for i, p in enumerate(parts)]
    dim = parts[0].dim
    norm = cmap = label = None
    if not (isinstance(color, str) and color == "pattern"):
        # one colour scale for every frame, chosen the way partition() chooses it
        pooled = [_values_for(p, color, kwargs.get("output", 0)) for p in parts]
        allv = np.concatenate([v[0] for v in pooled])
        key, label = pooled[0][1], pooled[0][2]
        cmap, norm = _value_scale(allv, key, kwargs.get("cmap"))
    if figsize is None:
        figsize = (6.0, 5.4) if dim == 2 else (8, 3.6)
    grouped = dim == 1 and any(getattr(p, "pattern_id", None) is not None for p in parts)
    if grouped:
        fig, target = plt.subplots(2, 1, figsize=(8, 5.0), sharex=True, layout="constrained",
                                   gridspec_kw=dict(height_ratios=(2.2, 1.0)))
        ax = target[0]
    else:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        target = ax
    if norm is not None:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.85, label=label)
    kwargs.pop("cmap", None)

    def draw(i):
        for a in np.atleast_1d(target):
            a.clear()
        partition(parts[i], ax=target, color=color, cmap=cmap, norm=norm, colorbar=False,
                  title=titles[i], **kwargs)
        return ()

    anim = FuncAnimation(fig, draw, frames=len(parts), blit=False, repeat=False)
    anim.save(str(path), writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return path
