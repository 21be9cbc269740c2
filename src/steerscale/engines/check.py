"""The fast engine's run-time check: one point of its first computation against the naive engine.

There is no silent fallback: a mismatch is a SteerscaleError that names the point, the difference, the
model type and the transformers/torch versions, and suggests ``--engine naive``. The tolerances and
the differences they were set from are in docs/cost_model.md ("The one-point check").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import SteerscaleError
from ..core.evaluate import ab_scores
from ..core.models import _model_type
from .hfcompat import versions_line
from .naive import naive_scores

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..config import SweepConfig
    from ..core.types import LayerVectors, Tokenizer

# Tolerances on score and letter_mass (probabilities), by the model's dtype: float32 agrees to rounding,
# half precision rounds the logits themselves, so there the check only catches gross errors such as a
# lost prefix cache. How they were chosen: docs/cost_model.md, "The one-point check".
CHECK_TOL = {"float32": 1e-4, "float16": 3e-2, "bfloat16": 0.15}


def _maxdiff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b|; positions where both are NaN agree, where only one is, the difference is inf."""
    d = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    d[np.isnan(a) & np.isnan(b)] = 0.0
    d[np.isnan(d)] = np.inf
    return float(d.max()) if d.size else 0.0


def check_first_batch(model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, config: SweepConfig,
                      results: dict, baseline) -> dict:
    """Compare one point of a fast computation with the naive engine on the first batch of items.

    The point is the middle computed layer at the multiplier of largest magnitude (or, if only the
    baseline was computed, the unsteered scores); the naive engine scores the first
    ``config.batch_size`` items there, and the fast engine's own results for those items must agree
    within ``CHECK_TOL`` (score and letter_mass). Returns the record kept in the manifest
    (``engine.check``); raises SteerscaleError, naming the point, the difference, the model type and
    the transformers/torch versions, when they differ.
    """
    n = min(len(encoded), config.batch_size)
    sub = encoded[:n]
    steered = sorted(k for k in results if k[1] != 0.0)
    if steered:
        layers = sorted({l for l, _ in steered})
        layer = layers[len(layers) // 2]
        m = max((k[1] for k in steered if k[0] == layer), key=lambda x: (abs(x), x))
        fast, ref = results[(layer, m)], naive_scores(model, tokenizer, vectors, sub, layer, [m], config)[m]
    elif baseline is not None:
        layer, m = None, 0.0
        fast, ref = baseline, ab_scores(model, tokenizer, sub, config.batch_size)
    else:
        return {"ran": False}
    diff = {f: _maxdiff(getattr(fast, f)[:n], getattr(ref, f)) for f in ("score", "logit_diff", "letter_mass")}
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    tol = CHECK_TOL.get(dtype, CHECK_TOL["bfloat16"])
    worst = max(diff["score"], diff["letter_mass"])
    record = {"ran": True, "layer": layer, "multiplier": m, "items": n, "max_abs_diff": diff,
              "tolerance": tol, "dtype": dtype}
    if not worst <= tol:
        where = "unsteered" if layer is None else f"layer {layer}, multiplier {m:g}"
        raise SteerscaleError(
            f"fast engine check failed: on the first {n} items at {where} its scores differ from the naive "
            f"engine's by {worst:.3g} (tolerance {tol:g} in {dtype}); model type {_model_type(model)!r}, "
            f"{versions_line()}: re-run with --engine naive")
    return record
