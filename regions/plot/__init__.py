"""Pictures of partitions, of regions over training and of the coupling study (matplotlib).

Every function draws with collections (one artist for all regions, never one
per region) and returns the Axes it drew on (an array of Axes for multi-panel
figures); the figure is ``ax.figure``::

    ax = regions.plot.partition(p, level_set=0.0)
    ax.figure.savefig("partition.png", dpi=150)

Functions:

- ``partition``: 2D regions (pattern colours or a per-region value) or 1D pieces
- ``density_map``: regions per unit area (1 / area of the region at each point)
- ``region_sizes``: distribution of region sizes, exact beside sampled
- ``region_count``: number of regions at each checkpoint over training
- ``speed_vs_feature``: per-sample convergence speed against region features
- ``band_energy``: residual energy per frequency band over training
- ``confusion_densities``: gradient-cosine densities, neighbour vs distant pairs
- ``animate``: a GIF of the partition across checkpoints
- ``pattern_colors``: the stable colour of an activation pattern
"""
from .animate import animate
from .colors import pattern_colors, pattern_hash
from .coupling import band_energy, confusion_densities, speed_vs_feature
from .partition import network_output, partition, region_values
from .sizes import density_map, region_count, region_sizes

__all__ = ["partition", "density_map", "region_sizes", "region_count", "speed_vs_feature",
           "band_energy", "confusion_densities", "animate", "pattern_colors",
           "pattern_hash", "region_values", "network_output"]
