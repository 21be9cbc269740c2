"""The contract every sweep engine meets, and the work counters an engine reports.

An engine turns (model, vectors, encoded items, config) into A/B scores at (layer, multiplier)
points. ``units.run_unit`` (the one code path every backend runs) talks to engines only through
``Engine``; it stores each point as the engine yields it and never asks which engine it has.

    engine.layer_groups(layers)  -> [[layer, ...], ...]   how many layers to ask for per ``points`` call
    engine.points(model, tokenizer, vectors, encoded, config, todo)
                                 -> yields (layer, multiplier, ABScores) for todo = {layer: [multipliers]}
    engine.baseline(model, tokenizer, vectors, encoded, config) -> ABScores   (the unsteered model)
    engine.stats / engine.describe()                      work counted, and the manifest's ``engine`` record
    engine(model, tokenizer, vectors, encoded, layer, multipliers, config) -> {multiplier: ABScores}
                                                          one layer (``score_layer``; the older call form)

Exactness: every engine's scores equal the naive engine's (``engines.naive``) up to float rounding;
an engine that is not bit-for-bit the reference checks itself at run time (``engines.check``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from ..core.evaluate import ABScores, ab_scores

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..config import SweepConfig
    from ..core.types import LayerVectors, Tokenizer


@dataclass
class EngineStats:
    """Work done, counted as it happens: decoder layer x token evaluations, head rows, forward calls.

    ``check``: the one-point check against the naive engine (``engines.check.check_first_batch``), once
    it ran. ``prepare_s``: seconds spent computing ahead in ``points`` (run_unit reports it as
    ``engine_prepare_s``; not part of ``to_dict``).
    """

    layer_tokens: int = 0
    head_rows: int = 0
    forward_calls: int = 0
    check: dict | None = None
    extra: dict = field(default_factory=dict)
    prepare_s: float = 0.0

    def to_dict(self) -> dict:
        return {"layer_tokens": self.layer_tokens, "head_rows": self.head_rows, "forward_calls": self.forward_calls,
                "check": self.check}


class Engine(abc.ABC):
    """A sweep engine (see the module docstring for the contract).

    Subclasses set ``name`` (the ``--engine`` value) and implement ``score_layer``; they override
    ``points`` / ``layer_groups`` / ``baseline`` when they share work between points. Inputs:
    `encoded` is ``data.encode_items(...)`` output, `vectors` anything ``steering.steer`` accepts,
    `config` a validated ``SweepConfig`` (``positions``, ``batch_size``, ``layers``). Scores are in item
    order. Errors are SteerscaleError with a one-line message.
    """

    name: str = ""

    def __init__(self, progress: bool = False):
        self.progress = progress
        self.stats = EngineStats()

    @abc.abstractmethod
    def score_layer(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, layer: int,
                    multipliers, config: SweepConfig) -> dict[float, ABScores]:
        """Scores of every item with ``m * vectors[layer]`` added at `layer`, for each m in `multipliers`."""

    def __call__(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, layer: int,
                 multipliers, config: SweepConfig) -> dict[float, ABScores]:
        return self.score_layer(model, tokenizer, vectors, encoded, layer, multipliers, config)

    def points(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, config: SweepConfig,
               todo: dict[int, list[float]]) -> Iterator[tuple[int, float, ABScores]]:
        """(layer, multiplier, scores) for every multiplier of every layer in `todo`, in todo's order,
        each yielded as soon as it is ready (the caller stores it before asking for the next)."""
        for layer, mults in todo.items():
            for m in mults:
                yield layer, m, self.score_layer(model, tokenizer, vectors, encoded, layer, [m], config)[m]

    def layer_groups(self, layers: list[int]) -> list[list[int]]:
        """The layers of one ``points`` call each. Default: one layer per call (no work is shared, so
        finished points reach the store as early as possible)."""
        return [[l] for l in layers]

    def layer_cost(self, layer: int, n_layers: int) -> float:
        """Relative cost of one steered point at `layer`, for progress and ETA (not for results). Default: every
        layer costs one full pass (the naive engine)."""
        return 1.0

    def baseline(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded,
                 config: SweepConfig) -> ABScores:
        """Scores of the unsteered model (multiplier 0). Default: full forward passes."""
        return ab_scores(model, tokenizer, encoded, config.batch_size)

    def describe(self) -> dict:
        """The manifest's ``engine`` record: the name, and the work counters of engines that count."""
        return {"name": self.name}
