"""Small formatters of the report: plurals, seconds, shares, mean +- sd over seeds,
lookups of optional fields, the markdown of a figure, and the frame of a
section (:func:`section`)."""
from __future__ import annotations

import functools
import os

import numpy as np

from ..results import lookup


def embed(L, figs, name, alt, caption=None):
    """Append the markdown image of figure ``name`` to ``L`` when it was drawn
    (``figs[name]`` is the path of its file in ``figures/``, None if it was
    not), after its ``caption`` if one is given."""
    if figs.get(name):
        if caption:
            L.append(caption)
        L.append(f"![{alt}](figures/{os.path.basename(figs[name])})\n")


def section(heading, *figures):
    """Declare a section of the report: ``heading`` (a ``##`` title), then what
    the body appends to its list ``L``, then each of ``figures`` that was drawn
    (``(name, alt)`` or ``(name, alt, caption)``, as :func:`embed` takes them).
    A body that returns False has nothing to say: the whole section is left out.
    The section is called as ``section(L, results, g, figs, found)``: the report
    so far, the run results, the results grouped by name, the drawn figures and
    the findings."""
    def declare(body):
        @functools.wraps(body)
        def write(L, results, g, figs, found):
            lines = []
            if body(lines, results, g, figs, found) is False:
                return
            L.append(f"## {heading}\n")
            L += lines
            for fig in figures:
                embed(L, figs, *fig)
        return write
    return declare


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


def at_checkpoints(g, *path):
    """``(name, runs, which, checkpoint)`` for every experiment of ``g`` (runs
    grouped by name) at its ``init``, ``early`` and ``end`` checkpoints, the
    checkpoint that of the first seed; only where that checkpoint measured
    ``path`` (see :func:`~regions.study.results.lookup`), when one is given."""
    for name, rs in g.items():
        for which in ("init", "early", "end"):
            c = rs[0].checkpoint(which)
            if lookup(c, *path) is not None:
                yield name, rs, which, c


def over_seeds(rs, which, *path):
    """The value at ``path`` (see :func:`~regions.study.results.lookup`) at
    checkpoint ``which`` of every run in ``rs``, None where not measured."""
    return [lookup(r.checkpoint(which), *path) for r in rs]
