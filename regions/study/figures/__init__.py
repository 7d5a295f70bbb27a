"""Figures for the study report (matplotlib, Agg backend).

Each function takes the list of job results of :func:`regions.study.run_study`
(one :class:`regions.study.results.RunResult` per experiment and seed) and a
PNG path, draws one figure and returns the path. Figures only draw: the
partitions are those saved with the runs and the samples are the runs' own
coordinates (the engine never runs here). Runs keep one colour per
experiment in every figure. The region count, band energy and gradient
confusion are drawn by :mod:`regions.plot` (``region_count``, ``band_energy``,
``confusion_densities``) from these results, and so are the partitions
(``partition``, ``animate``) and the region sizes and densities
(``region_sizes``, ``density_map``); the speed against region features, the
kernel split, the spectral coupling and the first-order prediction are drawn
here.

The package, by figure family: :mod:`.curves` (quantities over training),
:mod:`.partitions` (the saved exact partitions), :mod:`.coupling` (speed
against features), :mod:`.gradients` (pair cosines, the first-order
prediction, the kernel split), :mod:`.spectrum` (the kernel's spectrum), and
:mod:`.common` (what they share).
"""
from __future__ import annotations

from .coupling import speed_vs_features
from .curves import band_energy, boundary_distance, loss_curves, region_count
from .gradients import confusion_densities, kernel_split, prediction_scatter
from .partitions import encoded_partitions, partitions, partitions_gif, region_sizes
from .spectrum import spectral_coupling

__all__ = ["partitions", "encoded_partitions", "partitions_gif", "region_sizes", "region_count", "speed_vs_features",
           "band_energy", "confusion_densities", "prediction_scatter", "boundary_distance",
           "loss_curves", "kernel_split", "spectral_coupling"]
