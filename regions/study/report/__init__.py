"""Write the study's ``report.md``: tables, figures, the data behind them, and
a findings section checking each claim of the paper (holds / does not hold,
with the numbers).

:func:`write_report` takes the job results of :func:`regions.study.run_study`
(one dict per experiment and seed) and a folder. Layout::

    report.md
    figures/*.png, figures/partitions.gif
    data/summary.csv       one row per run, seed and analysed checkpoint
    data/coupling.csv      every (feature, speed) Spearman rho with its interval
    data/findings.csv      the claims table
    data/runs.npz          loss curves, band energies, per-sample features and speeds

The package: :mod:`.sections` and :mod:`.dynamics` (the sections),
:mod:`.data` (the data files), :mod:`.format` (small formatters).
"""
from __future__ import annotations

import os
from collections import OrderedDict

from .. import figures
from ..claims import findings
from ..intervention import effects_figure
from ..results import CouplingRow, group_by_name
from ..store import atomic_write_text
from .data import record_rows, save_npz, summary_rows, write_csv, write_findings
from .sections import (coupling_section, findings_section, notes_section, paper_table_section,
                       regions_section, runs_section)
from .dynamics import (artefacts_section, first_order_section, gradient_section,
                       intervention_section, kernel_section, spectral_section, spectrum_section)

__all__ = ["write_report", "write_findings", "findings", "summary_rows"]


def write_report(results, out_dir, preset="", description="", wall_seconds=None):
    """Write ``report.md`` with figures and data into ``out_dir``; return its path."""
    if not results:
        raise ValueError("no results to report; run at least one job")
    fig_dir = os.path.join(out_dir, "figures")
    data_dir = os.path.join(out_dir, "data")
    os.makedirs(fig_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)

    figs = OrderedDict()
    for name, fn in (("partitions", figures.partitions),
                     ("partitions_gif", figures.partitions_gif),
                     ("encoded_partitions", figures.encoded_partitions),
                     ("region_sizes", figures.region_sizes),
                     ("loss_curves", figures.loss_curves),
                     ("region_count", figures.region_count),
                     ("speed_vs_features", figures.speed_vs_features),
                     ("band_energy", figures.band_energy),
                     ("confusion", figures.confusion_densities),
                     ("prediction", figures.prediction_scatter),
                     ("kernel_split", figures.kernel_split),
                     ("spectral_coupling", figures.spectral_coupling),
                     ("boundary_distance", figures.boundary_distance),
                     ("intervention", effects_figure)):
        try:
            fname = "partitions.gif" if name == "partitions_gif" else f"{name}.png"
            figs[name] = fn(results, os.path.join(fig_dir, fname))
        except Exception as err:  # noqa: BLE001 - a broken figure must not sink the report
            figs[name] = None
            results[0].notes.append(f"figure {name} failed: {err!r}")

    summ = summary_rows(results)
    write_csv(os.path.join(data_dir, "summary.csv"), summ)
    coup = [row for r in results for c in r.checkpoints for row in c.coupling]
    if coup:
        write_csv(os.path.join(data_dir, "coupling.csv"), record_rows(coup, CouplingRow))
    found = findings(results)
    write_findings(found, os.path.join(data_dir, "findings.csv"))
    save_npz(os.path.join(data_dir, "runs.npz"), results)

    g = group_by_name(results)
    L = []
    L.append(f"# Spectral bias and exact linear regions: study report ({preset})\n")
    if description:
        L.append(f"Preset **{preset}**: {description}.\n")
    seeds = sorted({r.seed for r in results})
    wall = f"; wall time {wall_seconds:.0f} s" if wall_seconds is not None else ""
    L.append(f"{len(results)} runs ({len(g)} configurations x seeds {seeds}){wall}. "
             "Values are mean ± sd over seeds where there are several. `exact` features "
             "come from the exact partition (or exactly from the network); `sampled` ones "
             "from the patterns at the training samples only (lower bounds).\n")

    for section in (findings_section, artefacts_section, runs_section, paper_table_section,
                    regions_section, coupling_section, gradient_section, kernel_section,
                    first_order_section, spectral_section, spectrum_section,
                    intervention_section, notes_section):
        section(L, results, g, figs, found)
    path = os.path.join(out_dir, "report.md")
    atomic_write_text(path, "\n".join(L))
    return path
