"""Engine ``fast`` (the default): the naive engine's numbers, computing only what steering changes.

Named place and positions are the naive engine's: ``multiplier * vector[L]`` is added to the output of
decoder layer L (the residual stream after the MLP), at every token (``positions="all"``) or from the
last instruction token on (``positions="instruction_end"``). What differs is how much is recomputed:

1. Layers 0..L compute what the unsteered pass computed: per batch the unsteered pass runs once, the
   residual after each swept layer is kept, the vector is added there, and only layers L+1.. run (the
   tail; ``engines.partial``). All positions (``engines.fast_all``): the unsteered pass is walked layer
   by layer and the tokens every item starts with run once per point. Instruction end
   (``engines.fast_ie``): tokens before the steering start are untouched, so their keys/values from one
   unsteered prefix pass are reused and a tail recomputes only the steered suffix.
2. Multiplier 0 is the unsteered pass itself: the baseline costs nothing extra. Several multipliers at
   a layer share the batch's prefix (instruction end: one tail call per layer over items x multipliers).
   ``FastEngine`` keeps the unsteered work between calls (up to ``STATE_MB``), so run_unit's layer
   groups (``layer_groups``) share one unsteered pass.
3. Scoring reads one position: the model's own head runs with ``logits_to_keep=1`` on a contiguous
   input (``steering.contiguous_head``); no logits are computed at any other position.

Layers are skipped by replacing decoder layers 0..L with stand-ins for the duration of a call
(``steering.partial_forward``); the model's own forward runs otherwise, and the layers are always put back.

Exactness: items are batched in prompt-length order and the common prefix is shared;
``sort_by_length=False, share_prefix=False`` gives the naive engine's batches and operations and
bit-for-bit equal float32 scores in all-positions mode. Otherwise rows computed against a KV cache use
other matmul shapes, so scores agree with the naive engine up to float32 rounding (tests/engines/test_fast.py
asserts 1e-5 on tiny models of every supported architecture; measured differences on SmolLM2 and the
cost of each saving: docs/engines.md and docs/cost_model.md).

Checked at run time: every ``FastEngine`` run compares one (layer, multiplier) point of its first
computation with the naive engine on the first batch (``engines.check``) and stops with a
SteerscaleError naming the versions and suggesting ``--engine naive`` if they differ; the record goes
into the manifest (``engine.check``). There is no silent fallback. transformers API differences (cache
keyword, layer outputs) are read from the installed code (``engines.hfcompat``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.batching import Batch, batches, model_device, pad_id_of, pad_left
from ..core.prompts import Encoded
from ..errors import SteerscaleError
from ..core.evaluate import ABScores
from ..core.models import _model_type, get_layers
from .base import Engine, EngineStats
from .check import check_first_batch
from .fast_all import AllPositionsRunner
from .fast_ie import IEBlock, InstructionEndRunner
from .hfcompat import versions_line
from .partial import STATE_MB, scores_of

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..config import SweepConfig
    from ..core.types import LayerVectors, Tokenizer

LAYERS_PER_GROUP = 6  # at most this many layers share one unsteered pass per points() call; at least 5 groups


@dataclass(slots=True)
class FastState:
    """Unsteered work ``sweep_points`` keeps between calls with the same model, vectors, items and settings.

    ``walk`` (all positions): (batch index, shared prefix length) -> (deepest walked layer, residual after it).
    ``blocks`` (instruction end): the prefix caches and suffix residuals of every block, or None until a
    call has kept them (not kept when over ``STATE_MB``).
    """

    walk: dict[tuple[int, int], tuple[int, torch.Tensor]] = field(default_factory=dict)
    blocks: list[IEBlock] | None = None


class FastEngine(Engine):
    """Engine ``fast``: same contract and numbers as the naive engine, far less work (module docstring).

    The first computation covers every (layer, multiplier) point asked for (``prepare``: ``config.layers``
    x the multipliers), batch by batch (one unsteered pass per batch, then the tails); later calls read
    the results. A new encoded list, vectors, model or config starts over. ``baseline(...)`` gives the
    multiplier-0 scores from the same unsteered pass.

    Every run checks itself: the first computation's results are compared with the naive engine on
    the first batch at one point (``engines.check.check_first_batch``); a mismatch, or an error on that
    first computation, raises SteerscaleError (no fallback: the user chooses ``--engine naive``).
    """

    name = "fast"

    def __init__(self, progress: bool = False, sort_by_length: bool = True, share_prefix: bool = True):
        super().__init__(progress)
        self.sort_by_length = sort_by_length
        self.share_prefix = share_prefix
        self._key = None
        self._inputs: tuple | None = None  # (model, vectors, encoded) the kept results were computed for
        self._results: dict[tuple[int, float], ABScores] = {}
        self._baseline: ABScores | None = None
        self._state = FastState()

    # ------------------------------------------------------------------ contract

    def layer_groups(self, layers: list[int]) -> list[list[int]]:
        """A few layers per ``points`` call (at most LAYERS_PER_GROUP, at least 5 groups): they share one
        unsteered pass, and a killed run loses at most one group's work."""
        size = max(1, min(LAYERS_PER_GROUP, -(-len(layers) // 5)))
        return [list(layers[g : g + size]) for g in range(0, len(layers), size)]

    def layer_cost(self, layer: int, n_layers: int) -> float:
        """A steered point at `layer` reruns layers layer+1..n_layers-1 (docs/cost_model.md, layer skipping), plus
        the head: early layers cost more, so a progress bar counting layers would give a wrong first ETA."""
        return (n_layers - layer) / max(1, n_layers)

    def points(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, config: SweepConfig,
               todo: dict[int, list[float]]):
        """Computes every point of `todo` ahead (``prepare``, timed into ``stats.prepare_s``), then yields them."""
        if todo:
            t = time.time()
            self.prepare(model, tokenizer, vectors, encoded, replace(config, layers=list(todo)),
                         sorted({m for ms in todo.values() for m in ms}))
            self.stats.prepare_s += time.time() - t
        for layer, mults in todo.items():
            if mults:
                scores = self.score_layer(model, tokenizer, vectors, encoded, layer, mults, config)
                for m in mults:
                    yield layer, m, scores[m]

    def prepare(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, config: SweepConfig,
                multipliers) -> None:
        """Compute every point of ``config.layers`` x ``multipliers`` and the baseline, batch by batch."""
        self._reset_if_new(model, vectors, encoded, config)
        layers = list(config.layers) if config.layers is not None else list(range(len(get_layers(model))))
        mults = sorted(set(float(m) for m in multipliers))
        todo = [l for l in layers if any((l, m) not in self._results for m in mults)]
        if todo or self._baseline is None:
            self._run(model, tokenizer, vectors, encoded, todo or layers[-1:], mults if todo else [], config)

    def score_layer(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, layer: int,
                    multipliers, config: SweepConfig) -> dict[float, ABScores]:
        self._reset_if_new(model, vectors, encoded, config)
        mults = [float(m) for m in multipliers]
        if any((layer, m) not in self._results for m in mults):
            self._run(model, tokenizer, vectors, encoded, [layer], mults, config)
        return {m: self._results[(layer, float(m))] for m in multipliers}

    def baseline(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded,
                 config: SweepConfig) -> ABScores:
        """Unsteered scores, from the same unsteered pass as the steered points (see ``prepare``)."""
        self._reset_if_new(model, vectors, encoded, config)
        if self._baseline is None:
            self._run(model, tokenizer, vectors, encoded, [len(get_layers(model)) - 1], [], config)
        return self._baseline

    def describe(self) -> dict:
        return dict({"name": self.name}, **self.stats.to_dict())

    # ------------------------------------------------------------------ internals

    def _reset_if_new(self, model: PreTrainedModel, vectors: LayerVectors, encoded, config: SweepConfig):
        # the very objects, compared with `is` and held: an id() alone is reused once its object is freed (the
        # next unit's item list of the same length), and the last unit's scores would be returned for it
        key = (len(encoded), config.positions, config.batch_size, next(model.parameters()).dtype)
        same = self._inputs is not None and all(a is b for a, b in zip(self._inputs, (model, vectors, encoded)))
        if key != self._key or not same:
            self._key, self._inputs = key, (model, vectors, encoded)
            self._results, self._baseline = {}, None
            self._state = FastState()  # unsteered work kept between calls (see sweep_points)
            self.stats.check = None  # a new setup is checked again

    def _run(self, model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded, layers, mults,
             config: SweepConfig) -> None:
        # All positions: the baseline is a tail from the deepest walked layer, so it waits for
        # ``baseline()`` (run_unit asks last); instruction end: it comes with the prefix pass.
        want = self._baseline is None and (config.positions != "all" or not mults)
        first = self.stats.check is None
        try:
            res, base = sweep_points(model, tokenizer, vectors, encoded, layers, mults, config.positions,
                                     config.batch_size, want, self.stats, self.progress,
                                     self.sort_by_length, self._state, self.share_prefix)
        except SteerscaleError:
            raise
        except Exception as e:
            if not first:
                raise
            msg = (str(e).strip().splitlines() or [""])[0][:200]
            raise SteerscaleError(
                f"fast engine: failed on its first batch for model type {_model_type(model)!r} "
                f"({versions_line()}): {type(e).__name__}: {msg}; re-run with --engine naive") from e
        if first:
            self.stats.check = check_first_batch(model, tokenizer, vectors, encoded, config, res, base)
        self._results.update(res)
        if base is not None:
            self._baseline = base


# ---------------------------------------------------------------------- the computation


def _order(encoded: list[Encoded], sort_by_length: bool = False) -> list[int]:
    """Item order for batching: as given (the naive engine's batches), or by prompt length (less padding)."""
    if not sort_by_length:
        return list(range(len(encoded)))
    return sorted(range(len(encoded)), key=lambda i: (len(encoded[i].prefix_ids), i))


def _unsort(parts: list[ABScores], inv: np.ndarray) -> ABScores:
    return ABScores(*(np.concatenate([getattr(p, f) for p in parts])[inv] for f in ("score", "logit_diff", "letter_mass")))


@torch.no_grad()
def sweep_points(model: PreTrainedModel, tokenizer: Tokenizer, vectors: LayerVectors, encoded: list[Encoded],
                 layers: list[int], multipliers: list[float], positions: str = "all", batch_size: int = 8,
                 want_baseline: bool = True, stats: EngineStats | None = None, progress: bool = False,
                 sort_by_length: bool = False, state: FastState | None = None, share_prefix: bool = True):
    """Scores for every (layer, multiplier) in layers x multipliers, and the unsteered scores.

    Returns ({(layer, multiplier): ABScores}, baseline ABScores or None), in item order.
    ``sort_by_length``: batch items in length order (less padding), at the price of float32 rounding
    differences against the naive engine, whose batches are in item order. Off here; ``FastEngine``
    turns it on.
    ``share_prefix`` (all positions): run the tokens every item starts with once per point, not once per
    item (``AllPositionsRunner.shared_prefix``); off, every item runs all its tokens (with
    ``sort_by_length=False`` the scores are then bit-for-bit the naive engine's).
    ``state``: a ``FastState`` kept by the caller between calls with the same model, vectors, items and settings;
    the unsteered work (the walk's residuals in all-positions mode, the prefix keys/values and suffix
    residuals in instruction-end mode) is kept there, up to ``STATE_MB``, so later calls for other
    layers do not repeat it.
    """
    stats = stats if stats is not None else EngineStats()
    runner = (AllPositionsRunner if positions == "all" else InstructionEndRunner)(model, vectors, stats)
    layers = sorted(set(int(l) for l in layers))
    multipliers = [float(m) for m in multipliers]
    dev = model_device(model)
    pad_id = pad_id_of(tokenizer)
    order = _order(encoded, sort_by_length)
    parts: dict[tuple[int, float], list[ABScores]] = {(l, m): [] for l in layers for m in multipliers}
    base_parts: list[ABScores] = []
    batch_list = list(batches(len(order), batch_size))

    def make(idx, C=0):
        encs = [encoded[order[i]] for i in idx]
        b = pad_left([e.prefix_ids[C:] for e in encs], pad_id, [e.instruction_end - C for e in encs])
        if C:  # the tokens after the shared prefix: C more positions, and every row sees the prefix
            ones = torch.ones(len(encs), C, dtype=b.attention_mask.dtype)
            b = Batch(b.input_ids, torch.cat([ones, b.attention_mask], 1), b.position_ids + C, b.pad, b.instruction_end)
        return encs, b.to(dev)

    if positions == "all":
        walk = state.walk if state is not None else None
        shared = runner.shared_prefix(encoded, layers) if share_prefix else None
        C = shared.C if shared else 0
        stats.extra["shared_prefix"] = C
        for bi, idx in enumerate(tqdm(batch_list, desc="fast sweep (all)", disable=not progress, leave=False)):
            encs, b = make(idx, C)
            out, base = runner.batch_all(b, layers, multipliers, want_baseline, walk, (bi, C), shared)
            for key, logits in out.items():
                parts[key].append(scores_of(logits, encs))
            if base is not None:
                base_parts.append(scores_of(base, encs))
    else:
        kept = state.blocks if state is not None else None
        keep = [] if state is not None and kept is None else None
        size = 0
        src = kept if kept is not None else runner.ie_blocks(batch_list, make, len(multipliers), progress)
        for blk in src:
            out = runner.ie_tails(blk, layers, multipliers)
            for key, logits in out.items():
                parts[key].append(scores_of(logits, blk.encs))
            if want_baseline:
                base_parts.extend(blk.base)
            if keep is not None:
                size += blk.nbytes()
                keep = keep + [blk] if size <= STATE_MB * 2**20 else None
        if keep is not None:
            state.blocks = keep
    inv = np.argsort(np.array(order))
    res = {key: _unsort(p, inv) for key, p in parts.items()}
    return res, (_unsort(base_parts, inv) if base_parts else None)
