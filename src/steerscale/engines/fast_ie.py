"""The fast engine with ``positions="instruction_end"``: reuse the unsteered prompt, recompute only the steered suffix.

Tokens before each row's steering start are untouched at every layer, so their keys/values come from
one unsteered prefix pass per batch (``ie_unsteered``, which also gives the baseline and the suffix
residuals of every layer). A tail then recomputes only the steered suffix (a few tokens) against that
cache. The tails of a block of batches (up to ``TAIL_ROWS`` rows = items x multipliers) run as one call
per layer: the batches' prefix caches are left-padded into one ``BlockPrefix`` once, and each tail's
cache broadcasts it over the multiplier copies. Caches that cannot be padded (sliding windows already
full, non-dynamic caches) run per batch with the model's own cache layers. Exactness: equal to the
naive engine up to float rounding (suffix rows against a cache use other matmul shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..core.batching import Batch
from ..core.evaluate import ABScores, last_logits
from ..core.prompts import Encoded
from ..core.steering import layer_hooks
from . import hfcompat
from .partial import BLOCK_MB, TAIL_ROWS, BlockPrefix, PartialRunner, clone_cache, nbytes, plain_cache, scores_of


@dataclass(slots=True)
class IEBatch:
    """One batch's unsteered work (``ie_unsteered``): the prefix cache, suffix inputs and residuals, baseline.

    Mutable only to be released: once a block has copied it (``release``), it holds no tensors."""

    encs: list[Encoded]
    P: int  # prefix tokens (every row is unsteered before P)
    S: int  # suffix tokens (T - P)
    cache: object | None  # KV cache of the P prefix tokens (None when P == 0)
    resid: dict[int, torch.Tensor] | None  # layer -> suffix residual [rows, S, hidden]
    suf: dict[str, torch.Tensor] | None  # the suffix's model inputs
    start: torch.Tensor | None  # per-row steering start within the suffix
    base: ABScores  # baseline (multiplier 0) scores

    def nbytes(self) -> int:
        """Bytes of the tensors held (the cache, residuals, inputs and starts)."""
        return nbytes(self.cache) + nbytes(self.resid) + nbytes(self.suf) + nbytes(self.start)

    def release(self) -> None:
        self.cache = self.resid = self.suf = self.start = None


@dataclass(frozen=True, slots=True)
class BatchwiseBlock:
    """A block whose caches cannot be left-padded into one prefix: its batches' tails run one by one."""

    encs: list[Encoded]
    base: list[ABScores]  # per batch
    batches: list[IEBatch]

    def nbytes(self) -> int:
        return sum(b.nbytes() for b in self.batches)


@dataclass(frozen=True, slots=True)
class PaddedBlock:
    """A block of batches left-padded into one prefix (``BlockPrefix``) and one suffix batch."""

    encs: list[Encoded]
    base: list[ABScores]  # per batch
    prefix: BlockPrefix
    suf: dict[str, torch.Tensor]  # the block's suffix model inputs (left-padded to the longest suffix)
    start: torch.Tensor  # per-row steering start within the suffix
    resid: dict[int, torch.Tensor]  # layer -> suffix residual

    def nbytes(self) -> int:
        return self.prefix.nbytes() + nbytes(self.suf) + nbytes(self.start) + nbytes(self.resid)


IEBlock = BatchwiseBlock | PaddedBlock


class InstructionEndRunner(PartialRunner):
    """Instruction-end tails over cached unsteered prompts, a block of batches per call."""

    def ie_unsteered(self, b: Batch, encs: list[Encoded]) -> IEBatch:
        """One batch's unsteered work: prefix KV cache (one prefix pass), suffix residuals of every layer
        and the baseline scores (one suffix pass against the cache)."""
        T = b.input_ids.shape[1]
        P = int(b.instruction_end.min())  # every row is unsteered before P
        full = b.model_inputs()
        suf = {"input_ids": b.input_ids[:, P:], "attention_mask": b.attention_mask, "position_ids": b.position_ids[:, P:]}
        cache = None
        if P > 0:
            pre = {k: v[:, :P] for k, v in full.items()}
            cache = self.run_to(self.n - 1, None, 0, pre, use_cache=True).cache
        else:
            suf = full
        store: dict[int, torch.Tensor] = {}
        fns = {l: (lambda x, l=l: store.__setitem__(l, x)) for l in range(self.n)}
        with layer_hooks(self.model, fns):
            logits = last_logits(self.model, suf, use_cache=cache is not None,
                                 **hfcompat.cache_kwargs(self.model, clone_cache(cache) if cache is not None else None))
        rows, q = suf["input_ids"].shape
        self.count(rows, q, self.n, rows)
        return IEBatch(encs, P, T - P, cache, store, suf, b.instruction_end - P, scores_of(logits, encs))

    def ie_blocks(self, batch_list, make, n_mults: int, progress: bool = False):
        """Blocks of consecutive batches (up to TAIL_ROWS // multipliers items, BLOCK_MB of prefix keys/values)."""
        cap = max(1, TAIL_ROWS // max(1, n_mults))
        pending, items, size = [], 0, 0
        for idx in tqdm(batch_list, desc="fast sweep (instruction_end)", disable=not progress, leave=False):
            st = self.ie_unsteered(*reversed(make(idx)))
            pending.append(st)
            items += len(st.encs)
            size += nbytes(st.cache)
            if items >= cap or size >= BLOCK_MB * 2**20:
                yield self._block(pending)
                pending, items, size = [], 0, 0
        if pending:
            yield self._block(pending)

    @staticmethod
    def _combinable(pending: list[IEBatch]) -> bool:
        """Can these batches' caches be left-padded to one prefix? Plain (or not yet sliding) dynamic layers only."""
        total = max(st.P for st in pending) + max(st.S for st in pending)
        return all(st.cache is not None and plain_cache(st.cache, st.P, total) for st in pending)

    def _block(self, pending: list[IEBatch]) -> IEBlock:
        encs = [e for st in pending for e in st.encs]
        base = [st.base for st in pending]
        if not self._combinable(pending):  # the per-batch path keeps the model's own cache layers
            return BatchwiseBlock(encs, base, list(pending))
        Pc = max(st.P for st in pending)
        Sc = max(st.S for st in pending)
        prefix = BlockPrefix([st.cache for st in pending], [st.P for st in pending])
        ids, mask, pos, start = [], [], [], []
        resid: dict[int, list[torch.Tensor]] = {l: [] for l in range(self.n)}
        for st in pending:
            s, P, suf = Sc - st.S, st.P, st.suf
            B = suf["input_ids"].shape[0]
            am = suf["attention_mask"]
            z = am.new_zeros
            # [prefix padded on the left to Pc | suffix padded on the left to Sc]: padding is masked out
            ids.append(torch.cat([suf["input_ids"].new_zeros(B, s), suf["input_ids"]], 1))
            mask.append(torch.cat([z(B, Pc - P), am[:, :P], z(B, s), am[:, P:]], 1))
            pos.append(torch.cat([suf["position_ids"].new_zeros(B, s), suf["position_ids"]], 1))
            start.append(st.start + s)
            for l, h in st.resid.items():
                resid[l].append(torch.cat([h.new_zeros(B, s, h.shape[-1]), h], 1) if s else h)
            st.release()  # drop the batch's own cache: the block's prefix holds its keys/values
        cat = (lambda xs: xs[0]) if len(pending) == 1 else (lambda xs: torch.cat(xs))
        return PaddedBlock(encs, base, prefix,
                           {"input_ids": cat(ids), "attention_mask": cat(mask), "position_ids": cat(pos)},
                           cat(start), {l: cat(v) for l, v in resid.items()})

    def ie_tails(self, blk: IEBlock, layers, multipliers) -> dict[tuple[int, float], torch.Tensor]:
        """Logits of every (layer, multiplier) for a block: one tail call per layer over items x multipliers."""
        out: dict[tuple[int, float], torch.Tensor] = {}
        if not multipliers:
            return out
        if isinstance(blk, BatchwiseBlock):
            per = [self._ie_tails_batch(st, layers, multipliers) for st in blk.batches]
            return {k: torch.cat([p[k] for p in per]) for k in per[0]}
        Bk = len(blk.encs)
        chunk = max(1, TAIL_ROWS // Bk)
        for c in range(0, len(multipliers), chunk):
            ms = multipliers[c:c + chunk]
            R = len(ms)
            rinputs = self.repeat_rows(blk.suf, R)
            for layer in layers:
                hs = self.steer(layer, blk.resid[layer], ms, "instruction_end", blk.start)
                logits = self.tail(layer, hs, rinputs, cache=blk.prefix.cache(R))
                for j, m in enumerate(ms):
                    out[(layer, m)] = logits[j * Bk:(j + 1) * Bk]
        return out

    def _ie_tails_batch(self, st: IEBatch, layers, multipliers) -> dict[tuple[int, float], torch.Tensor]:
        """One batch, its own cache tiled per multiplier (caches that cannot be padded into a block)."""
        out = {}
        R = len(multipliers)
        rows = st.suf["input_ids"].shape[0]
        cache = st.cache
        rcache = clone_cache(cache, R) if cache is not None else None
        rinputs = self.repeat_rows(st.suf, R)
        for layer in layers:
            hs = self.steer(layer, st.resid[layer], multipliers, "instruction_end", st.start)
            logits = self.tail(layer, hs, rinputs, cache=clone_cache(rcache) if rcache is not None else None)
            for j, m in enumerate(multipliers):
                out[(layer, m)] = logits[j * rows:(j + 1) * rows]
        return out
