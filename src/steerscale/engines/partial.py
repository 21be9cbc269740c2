"""Partial forward passes and KV caches: the primitives the fast engine is built from.

``PartialRunner`` runs the model's own forward over a slice of its decoder layers
(``steering.partial_forward``, the form of TransformerLens's ``start_at_layer`` / ``stop_at_layer``):

- ``run_to(upto, h_from, start, inputs)``: layers ``start .. upto`` on ``h_from`` (the output of layer
  ``start-1``), returning the output of ``upto`` (and the KV cache, if asked);
- ``tail(layer, h, inputs, cache)``: layers ``layer+1 ..`` on ``h`` (a steered output of ``layer``),
  returning the logits at the last position.

Both count the work they do into ``EngineStats`` (decoder layer x token evaluations, head rows, calls).
The cache helpers give keys/values of earlier tokens to a later call without copying them:
``clone_cache`` (a DynamicCache whose updates leave the original intact), ``BlockPrefix`` (several
batches' prefix caches left-padded into one, broadcast over multiplier copies of the rows).

Exactness: a partial pass performs the same per-layer operations as the full pass it replaces; rows
computed against a cache use other matmul shapes than a full pass, so they agree with it up to float
rounding (the engine's run-time check compares against the naive engine).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..core.batching import model_device
from ..core.evaluate import ABScores, last_logits, letter_scores
from ..core.models import get_layers
from ..core.steering import Steering, layer_hooks, partial_forward
from . import hfcompat
from .base import EngineStats

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..core.types import LayerVectors

TAIL_ROWS = 256  # rows (items x multipliers) of one instruction-end tail call
BLOCK_MB = 256  # prefix keys/values of one block of items (instruction-end tails run per block)
STATE_MB = 512  # unsteered state an engine keeps between calls (one prefix pass / one walk per sweep)


@dataclass(frozen=True, slots=True)
class PartialOutput:
    """What ``PartialRunner.run_to`` returns: the output of its last layer and, if asked, the KV cache."""

    resid: torch.Tensor  # output of layer ``upto`` [rows, tokens, hidden]
    cache: object | None = None  # the model's KV cache (``use_cache=True``), else None


def base_model(model: PreTrainedModel):
    """The model without its head (``model.<base_model_prefix>``), or the model itself."""
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    return base if isinstance(base, torch.nn.Module) else model


def cache_of(out):
    """The KV cache a forward call returned (``cache`` or ``past_key_values``), or None."""
    c = getattr(out, "cache", None)
    return c if c is not None else getattr(out, "past_key_values", None)


def clone_cache(cache, repeat: int = 1):
    """A copy of a DynamicCache that shares the tensors (updates concatenate, so the original stays intact)."""
    c = copy.copy(cache)
    c.layers = [copy.copy(layer) for layer in cache.layers]
    if repeat > 1:
        for layer in c.layers:
            if getattr(layer, "keys", None) is not None and layer.keys.numel():
                layer.keys = layer.keys.repeat(repeat, 1, 1, 1)
                layer.values = layer.values.repeat(repeat, 1, 1, 1)
    return c


class BlockPrefix:
    """The unsteered prefix keys/values of a block of batches, left-padded to a common length ``P``.

    Built once per block (one copy of the batches' caches, which are then dropped). ``cache(R)`` gives
    a cache for one tail call over R copies of the block (rows multiplier-major): each layer's
    ``update`` writes the prefix (broadcast over the R copies, never tiled in memory) and the new
    suffix keys into one fresh tensor, as ``DynamicLayer.update``'s concatenation would, and stores
    nothing, so the block's prefix serves every tail call.
    """

    def __init__(self, caches: list, lengths: list[int]):
        self.P = max(lengths)
        self.template = caches[0]
        self.keys, self.values = [], []
        for i in range(len(caches[0].layers)):
            ks = [c.layers[i].keys for c in caches]
            vs = [c.layers[i].values for c in caches]
            self.keys.append(self._pad(ks, lengths))
            self.values.append(self._pad(vs, lengths))
        self.rows = self.keys[0].shape[0]

    def _pad(self, parts, lengths):
        if len(parts) == 1 and lengths[0] == self.P:
            return parts[0]
        B = sum(p.shape[0] for p in parts)
        kv, hd = parts[0].shape[1], parts[0].shape[3]
        out = parts[0].new_zeros(B, kv, self.P, hd)
        r = 0
        for p, n in zip(parts, lengths):
            out[r:r + p.shape[0], :, self.P - n:] = p
            r += p.shape[0]
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def cache(self, R: int):
        c = copy.copy(self.template)
        c.layers = [prefix_layer(k, v, R) for k, v in zip(self.keys, self.values)]
        return c


_PrefixLayer = None


def prefix_layer(keys, values, R: int):
    """One layer of ``BlockPrefix.cache``: prefix [B, kv, P, hd] shared by R row copies."""
    from transformers.cache_utils import DynamicLayer

    global _PrefixLayer
    if _PrefixLayer is None:

        class _PrefixLayer(DynamicLayer):
            def _full(self, prefix, new):  # prefix [B or 1, kv, P, hd] broadcasts over the rows
                _, kv, P, hd = prefix.shape
                S = new.shape[-2]
                B = new.shape[0] // self.R
                out = new.new_empty(self.R, B, kv, P + S, hd)
                out[:, :, :, :P] = prefix
                out[:, :, :, P:] = new.reshape(self.R, B, kv, S, hd)
                return out.view(self.R * B, kv, P + S, hd)

            def update(self, key_states, value_states, *args, **kwargs):
                return self._full(self.keys, key_states), self._full(self.values, value_states)

    layer = _PrefixLayer()
    layer.keys, layer.values, layer.R = keys, values, R
    layer.device = keys.device
    layer.is_initialized = True
    return layer


def prefix_cache(template, keys, values):
    """A cache like `template` whose layers hold `keys`/`values` (one row, broadcast to every row of a call)."""
    c = copy.copy(template)
    c.layers = [prefix_layer(k, v, 1) for k, v in zip(keys, values)]
    return c


def scores_of(logits: torch.Tensor, encs) -> ABScores:
    """A/B scores from last-position logits (the naive engine's formula: log-softmax in float32, then letters)."""
    return letter_scores(torch.log_softmax(logits.float(), -1).cpu(), encs)


def common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix of every sequence, leaving each at least one token of its own."""
    n = min(len(x) for x in seqs) - 1
    first = seqs[0]
    for i in range(max(n, 0)):
        if any(x[i] != first[i] for x in seqs):
            return i
    return max(n, 0)


def plain_cache(cache, P: int, total: int) -> bool:
    """Is ``cache`` P tokens of plain per-layer keys/values that a longer sequence (``total`` tokens) can extend?"""
    for layer in getattr(cache, "layers", None) or [None]:
        if type(layer).__name__ not in ("DynamicLayer", "DynamicSlidingWindowLayer"):
            return False
        if getattr(layer, "keys", None) is None or layer.keys.shape[-2] != P:
            return False
        w = getattr(layer, "sliding_window", None)
        if w is not None and total >= w:
            return False
    return True


def nbytes(t) -> int:
    """Bytes held by tensors in `t` (a tensor, dict, list, BlockPrefix or KV cache)."""
    if isinstance(t, torch.Tensor):
        return t.numel() * t.element_size()
    if isinstance(t, dict):
        return sum(nbytes(v) for v in t.values())
    if isinstance(t, (list, tuple)):
        return sum(nbytes(v) for v in t)
    if isinstance(t, BlockPrefix):
        return t.nbytes()
    if hasattr(t, "layers"):  # a KV cache
        return sum(nbytes(getattr(l, "keys", None)) + nbytes(getattr(l, "values", None)) for l in t.layers)
    return 0


class PartialRunner:
    """Forward passes over a slice of the decoder layers (stand-ins for the rest); counts the work done."""

    def __init__(self, model: PreTrainedModel, vectors: LayerVectors, stats: EngineStats):
        self.model = model
        self.base = base_model(model)
        self.layers = get_layers(model)
        self.n = len(self.layers)
        self.vectors = vectors
        self.stats = stats
        self._vcache: dict = {}
        self._tuple = hfcompat.layer_returns_tuple(self.base, self.layers, model_device(model))

    def _vec(self, layer, h):
        """{layer: vector} in the residual's dtype and device, converted once per sweep."""
        key = (layer, h.dtype, h.device)
        v = self._vcache.get(key)
        if v is None:
            v = self._vcache[key] = torch.as_tensor(self.vectors[layer]).to(device=h.device, dtype=h.dtype)
        return {layer: v}

    def count(self, rows, q, n_real, head_rows):
        self.stats.layer_tokens += rows * q * n_real
        self.stats.head_rows += head_rows
        self.stats.forward_calls += 1

    def tail(self, layer: int, h: torch.Tensor, inputs: dict, cache=None) -> torch.Tensor:
        """Logits at the last position after running layers layer+1.. on ``h`` (the output of ``layer``)."""
        with partial_forward(self.layers, start_at=layer + 1, residual=h, as_tuple=self._tuple):
            logits = last_logits(self.model, inputs, use_cache=cache is not None,
                                 **hfcompat.cache_kwargs(self.model, cache))
        rows, q = inputs["input_ids"].shape
        self.count(rows, q, self.n - 1 - layer, rows)
        return logits

    def run_to(self, upto: int, h_from: torch.Tensor | None, start: int, inputs: dict,
               use_cache: bool = False, cache=None) -> PartialOutput:
        """Run the base model's layers start..upto (earlier ones return ``h_from``), later ones skipped.

        Returns the output of layer ``upto`` and, with ``use_cache``, the KV cache (``PartialOutput``).
        ``cache``: keys/values of earlier tokens to attend to (the shared prefix).
        """
        store: dict[int, torch.Tensor] = {}
        kw = (dict(hfcompat.cache_kwargs(self.base, cache), use_cache=True) if cache is not None
              else {"use_cache": use_cache})
        with partial_forward(self.layers, start_at=start, residual=h_from, stop_after=upto, as_tuple=self._tuple), \
                layer_hooks(self.model, {upto: lambda x: store.__setitem__(upto, x)}):
            out = self.base(**inputs, **kw)
        rows, q = inputs["input_ids"].shape
        self.count(rows, q, upto + 1 - start, 0)
        if not use_cache:
            return PartialOutput(store[upto])
        kv = cache_of(out)
        if kv is None:
            raise RuntimeError("the model returned no KV cache")
        return PartialOutput(store[upto], kv)

    def steer(self, layer, h, multipliers, positions, start=None):
        """Rows = len(multipliers) copies of the batch, each with its multiplier added (naive arithmetic)."""
        R = len(multipliers)
        B = h.shape[0]
        mult = torch.tensor(multipliers, dtype=torch.float32).repeat_interleave(B)
        st = Steering(self._vec(layer, h), mult, positions, None if start is None else start.repeat(R))
        return st.add(layer, h.repeat(R, 1, 1))

    @staticmethod
    def repeat_rows(inputs: dict, R: int) -> dict:
        return {k: v.repeat(R, 1) for k, v in inputs.items()}
