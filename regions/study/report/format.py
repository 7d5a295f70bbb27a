"""Small formatters of the report: plurals, seconds, shares, mean +- sd over seeds,
lookups of optional fields, and the markdown of a figure."""
from __future__ import annotations

import numpy as np


def embed(L, figs, name, alt):
    """Append the markdown image of figure ``name`` (``figures/<name>.png``) to
    ``L`` when it was drawn (``figs[name]`` is its path, None if it failed)."""
    if figs.get(name):
        L.append(f"![{alt}](figures/{name}.png)\n")


def plural(k, word):
    return f"{k} {word}" + ("" if k == 1 else "s")


def seconds_text(v):
    """Seconds for a table cell: two decimals, ``<0.01``, or ``-`` when nothing ran."""
    if v is None or not np.isfinite(v):
        return "-"
    return "<0.01" if v < 0.005 else f"{v:.2f}"


def share_text(v):
    """A share in [0, 1] as a percentage cell: one decimal, ``<0.1%`` for a
    positive share below that, ``0%`` for none, ``-`` when not measured."""
    if v is None or not np.isfinite(v):
        return "-"
    if v == 0:
        return "0%"
    return "<0.1%" if 100 * v < 0.05 else f"{100 * v:.1f}%"


def mean_sd_share(values):
    """Mean ± sd over seeds of shares, as percentages (see :func:`share_text`; the sd
    in percentage points, left out when the seeds agree exactly)."""
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "-"
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    if sd == 0:
        return share_text(v[0])
    return f"{share_text(float(np.mean(v)))} ± {100 * sd:.1f}"


def field(obj, *path):
    for k in path:
        if obj is None:
            return None
        obj = obj.get(k) if isinstance(obj, dict) else getattr(obj, k)
    return obj


def over_seeds(rs, which, *path):
    return [field(r.checkpoint(which), *path) for r in rs]
