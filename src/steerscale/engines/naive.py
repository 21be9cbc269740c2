"""Engine ``naive``: the reference. One full forward pass per item and multiplier, the steering hook on the layer.

Everything else is checked against it: the fast engine's tests (to 1e-5 in float32) and its run-time
one-point check (``engines.check``) call ``naive_scores``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.evaluate import ABScores, ab_scores
from ..core.steering import steer
from .base import Engine

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..config import SweepConfig
    from ..core.types import LayerVectors, Tokenizer


def naive_scores(model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, layer: int, multipliers,
                 config: SweepConfig) -> dict[float, ABScores]:
    """{m: scores} with ``m * vectors[layer]`` added to the output of `layer` (``config.positions``),
    one full forward pass per batch of ``config.batch_size`` items, batches in item order."""
    out = {}
    for m in multipliers:
        with steer(model, vectors, [layer], m, positions=config.positions) as s:
            out[m] = ab_scores(model, tokenizer, encoded, config.batch_size, steering=s)
    return out


class NaiveEngine(Engine):
    """Every point costs one full pass per item, so points are computed (and stored) one at a time;
    the baseline is the unsteered full pass (``Engine.baseline``)."""

    name = "naive"

    def score_layer(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, layer: int,
                    multipliers, config: SweepConfig) -> dict[float, ABScores]:
        return naive_scores(model, tokenizer, vectors, encoded, layer, multipliers, config)
