"""From a sweep's per-item rows to findings: effects with intervals, per-item slopes, peaks, asymmetry.

Everything here works on the tidy per-item rows of a sweep (``SweepResult.rows``
or ``items.csv``): one row per (model, layer, multiplier, item) with the item's
behaviour ``score`` (p(matching letter) normalised over the choice letters) and
``logit_diff``. Definitions (the same as the rest of steerscale):

- baseline p(0): mean score at multiplier 0 (the unsteered model; the sweep
  repeats it at every layer, so any layer's copy is used).
- effect Δ(L, m) = p(L, m) − p(0), with a *paired* seeded percentile bootstrap
  over items: each resample draws items once and uses the same items for both
  terms.
- depth = L / n_layers (``depth``; used by the plots) and L / (n_layers − 1)
  (``depth_alt``; 0 = first layer, 1 = last layer).
- movement: s·Δ for a multiplier of sign s (−Δ under −m, +Δ under +m), i.e. how
  far p moved in the direction the multiplier asks for; negative = the wrong way.
- peak: for each multiplier sign, the layer with the largest *movement* s·Δ (never
  |Δ|: a layer that breaks the format and pulls p the wrong way is not a peak) on
  a seeded *validation* half of the items; its effect is reported on the other,
  *test* half, so the layer is never picked and reported on the same items.
  Layers whose Δ (all items, Bonferroni-corrected over layers) lies on the wrong
  side of 0 are listed separately (``ModelAnalysis.wrong_way``). ``selection="in-sample"`` (the CAA
  protocol) picks and reports on all items instead, and says so.
- asymmetry: movement under −m vs under +m, each at its own peak layer, measured
  on the test items with a paired bootstrap, in probability and in log-odds of the
  mean score (probability mixes in headroom: from a 0.74 baseline +m can add at
  most 0.26, −m can remove 0.74); ratio and difference are given on both scales.

Layout: ``items`` (reading rows, :class:`ItemTable`), ``effects`` (baseline, Δ, per-item slopes), ``peaks``
(held-out peaks, wrong-way layers), ``asymmetry`` and ``model`` (:func:`analyze`, :class:`ModelAnalysis`,
:func:`effects_at_peaks` on another test set). The verdicts on the paper's claims live in ``steerscale.verdicts``
and are re-exported here, as are the bootstrap helpers of ``steerscale.stats``.
"""

from __future__ import annotations

from ..stats import LEVEL, bootstrap_weights, percentile_ci
from .verdicts import (
    DEPTH_BAND, DEPTH_CLAIM, DEPTH_TOLERANCE, check_asymmetry_claim, check_depth_claim, check_openended,
)
from .asymmetry import Asymmetry, asymmetry
from .effects import baseline, effects, item_slopes, steerability
from .items import ItemTable, read_items_csv
from .model import SELECTIONS, ModelAnalysis, analyze, effects_at_peaks, mark_screened
from .peaks import Peak, find_peak, split_indices, wrong_way_layers

__all__ = [
    "LEVEL", "bootstrap_weights", "percentile_ci", "DEPTH_BAND", "DEPTH_CLAIM", "DEPTH_TOLERANCE",
    "check_asymmetry_claim", "check_depth_claim", "check_openended", "Asymmetry", "asymmetry", "baseline", "effects",
    "item_slopes", "steerability", "ItemTable", "read_items_csv", "SELECTIONS", "ModelAnalysis", "analyze", "Peak",
    "effects_at_peaks", "mark_screened", "find_peak", "split_indices", "wrong_way_layers",
]
