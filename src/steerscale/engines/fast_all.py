"""The fast engine with ``positions="all"``: walk the unsteered pass, run a tail per point, share the items' prefix.

Per batch the unsteered pass is *walked* through the swept layers in ascending order (one residual
held at a time); at each swept layer L the vector is added to that residual and only layers L+1.. run
(the tail). The baseline is a tail from the deepest walked layer. Tokens every item starts with (a
chat template's system turn) have the same states in every item, steered or not: they run once per
point as one row (``shared_prefix`` / ``steered_prefix``) and each item's tail runs only its own tokens
against their keys/values. Exactness: without the shared prefix and with batches in item order these
are the naive engine's operations (bit-for-bit); against a cache, equal up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..core.batching import Batch, model_device
from ..core.prompts import Encoded
from ..core.steering import layer_hooks, partial_forward
from .partial import STATE_MB, PartialRunner, cache_of, common_prefix, nbytes, plain_cache, prefix_cache


@dataclass(frozen=True, slots=True)
class SharedPrefix:
    """The tokens every item starts with, run once as one row (``AllPositionsRunner.shared_prefix``)."""

    C: int  # number of shared tokens
    inputs: dict[str, torch.Tensor]  # the row's model inputs (input_ids, attention_mask, position_ids)
    template: object  # the unsteered pass's KV cache (its class and settings are reused)
    resid: dict[int, torch.Tensor]  # output of each swept layer, unsteered
    keys: list[torch.Tensor]  # unsteered keys of every layer
    values: list[torch.Tensor]  # unsteered values of every layer
    steered: dict[tuple[int, float], tuple[list, list]] = field(default_factory=dict)  # (layer, m) -> keys, values


class AllPositionsRunner(PartialRunner):
    """All-positions tails over walked residuals, with the items' common prefix run once."""

    def batch_all(self, b: Batch, layers, multipliers, want_baseline, walk: dict | None = None, key=None,
                  shared: SharedPrefix | None = None):
        """All positions: walk the unsteered pass through the swept layers; a tail per layer.

        ``walk``: {key: (layer, residual after it)} kept between calls, so a later call for deeper
        layers goes on from where this one stopped instead of starting again at layer 0.
        ``shared``: the items' common prefix (``shared_prefix``); ``b`` then holds only the tokens after it.
        Returns ({(layer, m): logits}, baseline logits or None).
        """
        inputs = b.model_inputs()
        out = {}
        h, prev = None, -1
        base_cache = prefix_cache(shared.template, shared.keys, shared.values) if shared else None
        if walk is not None and key in walk and layers and walk[key][0] <= layers[0]:
            prev, h = walk[key]
        for layer in layers:
            if layer > prev:
                h = self.run_to(layer, h, prev + 1, inputs, cache=base_cache).resid
                prev = layer
            for m in multipliers:  # one multiplier per tail: memory as the naive engine's
                hs = self.steer(layer, h, [m], "all")
                cache = self.steered_prefix(shared, layer, m) if shared else None
                out[(layer, m)] = self.tail(layer, hs, inputs, cache=cache)
        base = None
        if want_baseline:
            if prev < 0:
                h = self.run_to(0, None, 0, inputs, cache=base_cache).resid
                prev = 0
            base = self.tail(prev, h, inputs, cache=base_cache)
        if walk is not None and h is not None:
            walk.pop(key, None)
            if sum(nbytes(v[1]) for v in walk.values()) + nbytes(h) <= STATE_MB * 2**20:
                walk[key] = (prev, h)
        return out, base

    def shared_prefix(self, encoded: list[Encoded], layers) -> SharedPrefix | None:
        """Run the tokens every item starts with (a chat template's system turn) once, as one row.

        Those tokens have the same positions and see the same tokens in every item, so their residuals
        and keys/values are the same in every item, steered or not: per (layer, multiplier) the steered
        prefix runs once (``steered_prefix``) and every item's tail runs only its own tokens against it.
        None when there is no common prefix or the model's cache is not a plain per-layer cache.
        """
        ids = [e.prefix_ids for e in encoded]
        C = common_prefix(ids)
        if C < 1:
            return None
        dev = model_device(self.model)
        inputs = {"input_ids": torch.tensor([ids[0][:C]], device=dev),
                  "attention_mask": torch.ones(1, C, dtype=torch.long, device=dev),
                  "position_ids": torch.arange(C, device=dev)[None]}
        store: dict[int, torch.Tensor] = {}
        with layer_hooks(self.model, {l: (lambda x, l=l: store.__setitem__(l, x)) for l in layers}):
            out = self.base(**inputs, use_cache=True)
        self.count(1, C, self.n, 0)
        cache = cache_of(out)
        if cache is None or not plain_cache(cache, C, max(len(x) for x in ids)):
            return None
        return SharedPrefix(C, inputs, cache, store, [l.keys for l in cache.layers], [l.values for l in cache.layers])

    def steered_prefix(self, sh: SharedPrefix, layer: int, m: float):
        """The common prefix's keys/values with ``m * vector`` added after ``layer`` (computed once per point)."""
        kv = sh.steered.get((layer, m))
        if kv is None:
            hs = self.steer(layer, sh.resid[layer], [m], "all")
            with partial_forward(self.layers, start_at=layer + 1, residual=hs, as_tuple=self._tuple):
                c = cache_of(self.base(**sh.inputs, use_cache=True))
            self.count(1, sh.C, self.n - 1 - layer, 0)
            kv = sh.steered[(layer, m)] = (
                [sh.keys[i] if i <= layer else c.layers[i].keys for i in range(self.n)],
                [sh.values[i] if i <= layer else c.layers[i].values for i in range(self.n)])
        return prefix_cache(sh.template, *kv)
