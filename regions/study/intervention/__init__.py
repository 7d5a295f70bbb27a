"""An intervention on region density: positional encoding on one half of the
image only, and its causal effect on where the network converges.

Design
------
Two arms share everything but the encoding of one area (the *inside*,
``x < threshold``, by default the left half of the image):

* **treated**: :class:`HalfEncoding` ``where="inside"`` feeds
  ``[x, y, m(p) PE_L(p)]`` with ``m(p) = 1`` inside and 0 outside, so inside
  the network sees the paper's positional encoding (dense regions) beside the
  raw coordinates, outside the raw coordinates only;
* **control**: :class:`HalfEncoding` ``where="nowhere"``: the same input width
  with the encoded features zero everywhere (raw coordinates everywhere).

Both arms of one seed start from the *same* weights (the same input width,
the same ``torch.manual_seed``) and fit the same target (the seed's noise
draw), so the only difference between them is the encoding inside. The
seeds (each a training seed and a target draw) are the units of
replication. The manipulation is checked on the samples: the treated arm
must have a larger neighbour Hamming distance (more boundaries between
neighbouring samples) inside than outside, relative to the control arm.

Measures (:func:`analyse_intervention`, stored as
:class:`regions.study.results.Intervention`)
    per area, the mean per-sample loss at every recorded epoch and the log
    loss drop ``log(L_area(0) / L_area(t))`` (larger = faster), the residual
    energy ratio per frequency band of each area's sub-grid
    (:func:`regions.study.bands.band_residual_ratio` on the area as its
    own grid: the areas are column blocks), and per analysed checkpoint the
    distinct patterns and the mean neighbour Hamming distance inside each area.
Effects (:func:`intervention_effects`)
    per optimiser, at the early epoch (the record nearest :data:`EARLY_FRACTION`
    of the epochs) and at the end, with the seeds as units and a Student-t
    interval over them (:func:`regions.study.stats.pool`):
    ``within`` = treated arm, inside minus outside log drop;
    ``did`` = that minus the same difference in the control arm (difference
    in differences: the causal effect of the encoding on the inside's
    convergence relative to the outside's);
    ``direct`` = treated minus control, inside; ``spillover`` = treated minus
    control, outside (the shared weights carry the intervention across);
    ``band_did`` per band: the difference in differences of the band's log
    residual drop; ``density`` = treated arm's log(mean neighbour Hamming
    distance inside / outside) minus the control arm's (the manipulation
    check: the distinct patterns saturate at one per sample on small grids,
    the Hamming distance, the boundaries crossed between neighbours, does not).

The package: :mod:`.arms` (the two arms' encoding), :mod:`.measures`
(the per-run analysis), :mod:`.effects` (the effects over seeds, their table
and figure).

Examples
--------
>>> import torch
>>> enc = HalfEncoding(2)
>>> enc(torch.tensor([[0.25, 0.5], [0.75, 0.5]], dtype=torch.float64)).shape
torch.Size([2, 10])
>>> enc(torch.tensor([[0.75, 0.5]], dtype=torch.float64))[0, 2:].abs().max().item()
0.0
"""
from __future__ import annotations

from .arms import ARMS, EARLY_FRACTION, HalfEncoding, hidden_patterns, inside_mask, is_intervention
from .effects import effects_figure, effects_markdown, intervention_effects
from .measures import analyse_intervention

__all__ = ["HalfEncoding", "ARMS", "EARLY_FRACTION", "is_intervention", "inside_mask",
           "hidden_patterns", "analyse_intervention", "intervention_effects",
           "effects_markdown", "effects_figure"]
