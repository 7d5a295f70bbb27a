"""The paper's claims, checked on the study's results.

:func:`findings` reads the job results of :func:`regions.study.run_study`
(one :class:`regions.study.results.RunResult` per experiment and seed) and
returns one :class:`regions.study.results.Finding` per tested statistic.
Every finding is one per-run statistic with a threshold and a claimed side
(a claim with several parts is several findings), pooled over the runs
(seeds x targets), the units of replication, by :func:`regions.study.stats.pool`;
comparisons of two experiments are paired by seed. The p-values are adjusted
over the whole table and each verdict comes from the rules of
:data:`regions.study.stats.RULES`; nothing here decides a verdict.

The package: :mod:`.table` (the table and shared helpers), :mod:`.paper` (the
paper's claims), :mod:`.dynamics` (predictions, kernel, spectrum, intervention).
"""
from __future__ import annotations

from ..results import group_by_name
from .dynamics import (across_runs_spearman, band_prediction_miss, claims_first_order,
                       claims_intervention, claims_kernel_split, claims_prediction,
                       claims_spectral, top_band_gain)
from .paper import claims_coupling, claims_mechanism, claims_other_effects, claims_paper_table
from .table import (LEARNING_SPEEDS, Table, is_gd, measured_at, per_run, record_steps,
                    seed_correlations)

__all__ = ["findings", "seed_correlations", "measured_at", "per_run", "is_gd", "record_steps",
           "top_band_gain", "band_prediction_miss", "across_runs_spearman", "LEARNING_SPEEDS",
           "GROUPS"]


def findings(results):
    """The paper's claims checked on the results (a list of
    :class:`regions.study.results.RunResult`): a list of
    :class:`regions.study.results.Finding`, p-values adjusted over the list."""
    g = group_by_name(results)
    pes = sorted((int(n[5:]), n) for n in g if n.startswith("2d-pe") and n[5:].isdigit())
    ctx = {"g": g, "raw2": g.get("2d-raw"), "pe2": g.get("2d-pe2"),
           "pe_hi_name": pes[-1][1] if pes else None,
           "pe_hi": g[pes[-1][1]] if pes else None}
    table = Table()
    for title, group in GROUPS:
        table.group = title
        group(table, **ctx)
    return table.findings()


GROUPS = (("the paper's table", claims_paper_table),
          ("mechanism at pair level, high frequencies", claims_mechanism),
          ("kernel against residual", claims_kernel_split),
          ("per-sample coupling", claims_coupling),
          ("the old first-order prediction", claims_prediction),
          ("first-order prediction with the run's own step", claims_first_order),
          ("spectral coupling", claims_spectral),
          ("the paper's other effects", claims_other_effects),
          ("the intervention: denser regions on half the image", claims_intervention))
