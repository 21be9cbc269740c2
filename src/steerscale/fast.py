"""The fast sweep engine: compute only what steering changes.

Named place and positions are the naive engine's: ``multiplier * vector[L]`` is
added to the output of decoder layer L (the residual stream after the MLP), at
every token (``positions="all"``) or from the last instruction token on
(``positions="instruction_end"``). What differs is how much is recomputed:

1. Layers 0..L compute what the unsteered pass computed. Per batch the
   unsteered pass runs once; the residual after each swept layer is kept, the
   vector is added there, and only layers L+1..end run ("the tail").
   In all-positions mode the unsteered pass is *walked* layer by layer (swept
   layers in ascending order), so only one layer's residual is held at a time.
   Tokens every item starts with (a chat template's system turn: 24 of SmolLM2's
   ~117) have the same states in every item, steered or not: they run once per
   point as one row, and each item's tail runs only its own tokens against their
   keys/values (``share_prefix``).
2. In instruction-end mode tokens before the steering start are untouched at
   every layer, so their keys/values (from one unsteered prefix pass) are reused:
   a tail recomputes only the steered suffix (a few tokens) against that cache.
3. Several multipliers at the same layer share the batch's prefix: they run as
   one batch of rows with a per-row multiplier. Multiplier 0 is the unsteered
   pass itself, so the baseline costs nothing extra. In instruction-end mode the
   tails of a whole block of batches (up to ``TAIL_ROWS`` rows = items x
   multipliers) run as one call per layer: the batches' prefix caches are
   left-padded into one block prefix once, and each tail's cache broadcasts it
   over the multiplier copies (no tiled copy is kept).
   ``FastEngine`` keeps the unsteered work (walk residuals; prefix caches and
   suffix residuals) between calls, up to ``STATE_MB``, so run_sweep's layer
   groups share one unsteered pass.
4. Scoring reads one position: the models' own head runs with ``logits_to_keep=1``
   on a contiguous input (``evaluate.contiguous_head``: torch's matmul would
   otherwise expand the head weight per row, ~100x slower in bfloat16).
   That is one full-vocabulary row per item (B x hidden x vocab multiply-adds), kept
   on purpose: ``letter_mass`` needs the full-vocabulary log-sum-exp at that
   position, and the row costs about a tenth of one layer over an 80-token prompt.
   No logits are computed at any other position.

How layers are skipped: during a tail, decoder layers 0..L are temporarily
replaced by a stand-in that returns the cached (steered) residual, and the
model's own forward runs unchanged otherwise (embeddings, masks, rotary tables,
per-layer attention types, sliding windows, final norm, soft-capping and head are
the model's code). Replaced layers are always put back (try/finally).

Exactness: items are batched in prompt-length order (less padding) and the common prefix is
shared; ``sort_by_length=False, share_prefix=False`` gives the naive engine's batches and operations
and bit-for-bit equal float32 scores in all-positions mode. Otherwise the tokens after the prefix
(all positions) or the steered suffix (instruction end) are computed against a KV cache (other
matmul shapes, so other rounding): on the tiny test models every column agrees to 1e-5; on
SmolLM2-135M (bench, 50 items x 30 layers) ``score`` agrees to 1.01e-5 in all-positions mode and
5.6e-6 in instruction-end mode, and ``logit_diff`` (a difference of log-probabilities, at the
float32 rounding floor of logits) to ~3e-5.

Checked at run time: every ``FastEngine`` run compares one (layer, multiplier) point of its first
computation with the naive engine on the first batch (``check_first_batch``, tolerances
``CHECK_TOL``) and stops with a SteerscaleError naming the versions and suggesting
``--engine naive`` if they differ; the record goes into the manifest (``engine.check``). There is
no silent fallback. transformers API differences (cache keyword, layer outputs) are read from the
installed code (``hfcompat``).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .activations import Batch, batches, model_device, pad_id_of, pad_left
from .data import Encoded
from .evaluate import ABScores, last_logits, letter_scores
from .errors import SteerscaleError
from .hfcompat import cache_kwargs, layer_returns_tuple, versions_line
from .models import _model_type, get_layers
from .steering import Steering, layer_hooks

class _Stand(torch.nn.Module):
    """Stands in for a decoder layer: returns ``value`` (a cached residual) or, if None, its input.

    ``as_tuple``: return ``(hidden,)``, as the layers of some models do (``hfcompat.layer_returns_tuple``).
    """

    def __init__(self, orig: torch.nn.Module, value: torch.Tensor | None = None, as_tuple: bool = False):
        super().__init__()
        object.__setattr__(self, "_orig", orig)  # not a submodule: no parameters, no hooks
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "as_tuple", as_tuple)

    def forward(self, hidden_states, *args, **kwargs):
        out = hidden_states
        if self.value is not None:
            if self.value.shape != hidden_states.shape:
                raise RuntimeError(f"cached residual {tuple(self.value.shape)} != layer input "
                                   f"{tuple(hidden_states.shape)}")
            out = self.value
        return (out,) if self.as_tuple else out

    def __getattr__(self, name):  # attributes a model loop may read (attention_type, layer_idx, ...)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_orig"), name)


@contextmanager
def _replaced(layers: torch.nn.ModuleList, repl: dict[int, torch.nn.Module]):
    orig = {i: layers[i] for i in repl}
    try:
        for i, m in repl.items():
            layers[i] = m
        yield
    finally:
        for i, m in orig.items():
            layers[i] = m


def _base_model(model):
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    return base if isinstance(base, torch.nn.Module) else model


def _cache_of(out):
    c = getattr(out, "cache", None)
    return c if c is not None else getattr(out, "past_key_values", None)


def _clone_cache(cache, repeat: int = 1):
    """A copy of a DynamicCache that shares the tensors (updates concatenate, so the original stays intact)."""
    c = copy.copy(cache)
    c.layers = [copy.copy(layer) for layer in cache.layers]
    if repeat > 1:
        for layer in c.layers:
            if getattr(layer, "keys", None) is not None and layer.keys.numel():
                layer.keys = layer.keys.repeat(repeat, 1, 1, 1)
                layer.values = layer.values.repeat(repeat, 1, 1, 1)
    return c


class _BlockPrefix:
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
        c.layers = [_prefix_layer(k, v, R) for k, v in zip(self.keys, self.values)]
        return c


def _prefix_layer(keys, values, R: int):
    """One layer of ``_BlockPrefix.cache``: prefix [B, kv, P, hd] shared by R row copies."""
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


_PrefixLayer = None


@dataclass
class EngineStats:
    """Work done, counted as it happens: decoder layer x token evaluations, head rows, forward calls.

    ``check``: the one-point check against the naive engine (``check_first_batch``), once it ran.
    """

    layer_tokens: int = 0
    head_rows: int = 0
    forward_calls: int = 0
    check: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layer_tokens": self.layer_tokens, "head_rows": self.head_rows, "forward_calls": self.forward_calls,
                "check": self.check}


class FastEngine:
    """Engine ``fast``: same contract as ``naive_engine`` (one layer per call, {multiplier: ABScores}).

    The first call computes every (layer, multiplier) point of ``config.layers`` x the multipliers
    asked for, batch by batch (one unsteered pass per batch, then the tails); later calls read the
    results. A new encoded list, vectors, model or config starts over. ``baseline(...)`` gives the
    multiplier-0 scores from the same unsteered pass.

    Every run checks itself: the first computation's results are compared with the naive engine on
    the first batch at one point (``check_first_batch``); a mismatch, or an error on that first
    computation, raises SteerscaleError (no fallback: the user chooses ``--engine naive``).
    """

    name = "fast"

    def __init__(self, progress: bool = False, sort_by_length: bool = True, share_prefix: bool = True):
        self.progress = progress
        self.sort_by_length = sort_by_length
        self.share_prefix = share_prefix
        self.stats = EngineStats()
        self._key = None
        self._results: dict[tuple[int, float], ABScores] = {}
        self._baseline: ABScores | None = None
        self._state: dict = {}

    # ------------------------------------------------------------------ contract

    def prepare(self, model, tokenizer, vectors, encoded, config, multipliers) -> None:
        """Compute every point of ``config.layers`` x ``multipliers`` and the baseline, batch by batch."""
        self._reset_if_new(model, vectors, encoded, config)
        layers = list(config.layers) if config.layers is not None else list(range(len(get_layers(model))))
        mults = sorted(set(float(m) for m in multipliers))
        todo = [l for l in layers if any((l, m) not in self._results for m in mults)]
        if todo or self._baseline is None:
            self._run(model, tokenizer, vectors, encoded, todo or layers[-1:], mults if todo else [], config)

    def __call__(self, model, tokenizer, vectors, encoded, layer: int, multipliers, config) -> dict[float, ABScores]:
        self._reset_if_new(model, vectors, encoded, config)
        mults = [float(m) for m in multipliers]
        if any((layer, m) not in self._results for m in mults):
            self._run(model, tokenizer, vectors, encoded, [layer], mults, config)
        return {m: self._results[(layer, float(m))] for m in multipliers}

    def baseline(self, model, tokenizer, vectors, encoded, config) -> ABScores:
        """Unsteered scores, from the same unsteered pass as the steered points (see ``prepare``)."""
        self._reset_if_new(model, vectors, encoded, config)
        if self._baseline is None:
            self._run(model, tokenizer, vectors, encoded, [len(get_layers(model)) - 1], [], config)
        return self._baseline

    # ------------------------------------------------------------------ internals

    def _reset_if_new(self, model, vectors, encoded, config):
        key = (id(model), id(vectors), id(encoded), len(encoded), config.positions, config.batch_size,
               next(model.parameters()).dtype)
        if key != self._key:
            self._key = key
            self._results, self._baseline = {}, None
            self._state = {}  # unsteered work kept between calls (see sweep_points)
            self.stats.check = None  # a new setup is checked again

    def _run(self, model, tokenizer, vectors, encoded, layers, mults, config) -> None:
        # All positions: the baseline is a tail from the deepest walked layer, so it waits for
        # ``baseline()`` (run_sweep asks last); instruction end: it comes with the prefix pass.
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


# One-point check tolerances on score and letter_mass (probabilities), by the model's dtype, from the
# differences between the engines measured on one batch (docs/cost_model.md, "The one-point check"):
# float32 agrees to ~1e-5, so 1e-4; half precision rounds the logits themselves (in bfloat16 to 0.25
# at SmolLM2's logit sizes), so there the check only catches gross errors such as a lost prefix cache.
CHECK_TOL = {"float32": 1e-4, "float16": 3e-2, "bfloat16": 0.15}


def _maxdiff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b|; positions where both are NaN agree, where only one is, the difference is inf."""
    d = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    d[np.isnan(a) & np.isnan(b)] = 0.0
    d[np.isnan(d)] = np.inf
    return float(d.max()) if d.size else 0.0


def check_first_batch(model, tokenizer, vectors, encoded, config, results: dict, baseline) -> dict:
    """Compare one point of a fast computation with the naive engine on the first batch of items.

    The point is the middle computed layer at the multiplier of largest magnitude (or, if only the
    baseline was computed, the unsteered scores); the naive engine scores the first
    ``config.batch_size`` items there, and the fast engine's own results for those items must agree
    within ``CHECK_TOL`` (score and letter_mass). Returns the record kept in the manifest
    (``engine.check``); raises SteerscaleError, naming the point, the difference, the model type and
    the transformers/torch versions, when they differ.
    """
    from .evaluate import ab_scores
    from .sweep import naive_engine

    n = min(len(encoded), config.batch_size)
    sub = encoded[:n]
    steered = sorted(k for k in results if k[1] != 0.0)
    if steered:
        layers = sorted({l for l, _ in steered})
        layer = layers[len(layers) // 2]
        m = max((k[1] for k in steered if k[0] == layer), key=lambda x: (abs(x), x))
        fast, ref = results[(layer, m)], naive_engine(model, tokenizer, vectors, sub, layer, [m], config)[m]
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


# ---------------------------------------------------------------------- the computation


def _order(encoded: list[Encoded], sort_by_length: bool = False) -> list[int]:
    """Item order for batching: as given (the naive engine's batches), or by prompt length (less padding)."""
    if not sort_by_length:
        return list(range(len(encoded)))
    return sorted(range(len(encoded)), key=lambda i: (len(encoded[i].prefix_ids), i))


TAIL_ROWS = 256  # rows (items x multipliers) of one instruction-end tail call
BLOCK_MB = 256  # prefix keys/values of one block of items (instruction-end tails run per block)
STATE_MB = 512  # unsteered state an engine keeps between calls (one prefix pass / one walk per sweep)


def _common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix of every sequence, leaving each at least one token of its own."""
    n = min(len(x) for x in seqs) - 1
    first = seqs[0]
    for i in range(max(n, 0)):
        if any(x[i] != first[i] for x in seqs):
            return i
    return max(n, 0)


def _plain_cache(cache, P: int, total: int) -> bool:
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


def _nbytes(t) -> int:
    if isinstance(t, torch.Tensor):
        return t.numel() * t.element_size()
    if isinstance(t, dict):
        return sum(_nbytes(v) for v in t.values())
    if isinstance(t, (list, tuple)):
        return sum(_nbytes(v) for v in t)
    if isinstance(t, _BlockPrefix):
        return t.nbytes()
    if hasattr(t, "layers"):  # a KV cache
        return sum(_nbytes(getattr(l, "keys", None)) + _nbytes(getattr(l, "values", None)) for l in t.layers)
    return 0


@torch.no_grad()
def sweep_points(model, tokenizer, vectors, encoded: list[Encoded], layers: list[int], multipliers: list[float],
                 positions: str = "all", batch_size: int = 8, want_baseline: bool = True,
                 stats: EngineStats | None = None, progress: bool = False, sort_by_length: bool = False,
                 state: dict | None = None, share_prefix: bool = True):
    """Scores for every (layer, multiplier) in layers x multipliers, and the unsteered scores.

    Returns ({(layer, multiplier): ABScores}, baseline ABScores or None), in item order.
    ``sort_by_length``: batch items in length order (less padding; 17% fewer tokens on 50 refusal-test items),
    at the price of float32 rounding differences (~1e-5 in logit_diff on SmolLM2) against the naive
    engine, whose batches are in item order. Off here; ``FastEngine`` turns it on.
    ``share_prefix`` (all positions): run the tokens every item starts with once per point, not once per
    item (``_Runner.shared_prefix``); off, every item runs all its tokens (with ``sort_by_length=False``
    the scores are then bit-for-bit the naive engine's).
    ``state``: a dict kept by the caller between calls with the same model, vectors, items and settings;
    the unsteered work (the walk's residuals in all-positions mode, the prefix keys/values and suffix
    residuals in instruction-end mode) is kept there, up to ``STATE_MB``, so later calls for other
    layers do not repeat it.
    """
    stats = stats if stats is not None else EngineStats()
    runner = _Runner(model, vectors, stats)
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
        walk = state.setdefault("walk", {}) if state is not None else None
        shared = runner.shared_prefix(encoded, layers) if share_prefix else None
        C = shared["C"] if shared else 0
        stats.extra["shared_prefix"] = C
        for bi, idx in enumerate(tqdm(batch_list, desc="fast sweep (all)", disable=not progress, leave=False)):
            encs, b = make(idx, C)
            out, base = runner.batch_all(b, layers, multipliers, want_baseline, walk, (bi, C), shared)
            for key, logits in out.items():
                parts[key].append(_scores(logits, encs))
            if base is not None:
                base_parts.append(_scores(base, encs))
    else:
        kept = state.get("blocks") if state is not None else None
        keep = [] if state is not None and kept is None else None
        size = 0
        src = kept if kept is not None else runner.ie_blocks(batch_list, make, len(multipliers), progress)
        for blk in src:
            out = runner.ie_tails(blk, layers, multipliers)
            for key, logits in out.items():
                parts[key].append(_scores(logits, blk["encs"]))
            if want_baseline:
                base_parts.extend(blk["base"])
            if keep is not None:
                size += _nbytes(blk)
                keep = keep + [blk] if size <= STATE_MB * 2**20 else None
        if keep is not None:
            state["blocks"] = keep
    inv = np.argsort(np.array(order))
    res = {key: _unsort(p, inv) for key, p in parts.items()}
    return res, (_unsort(base_parts, inv) if base_parts else None)


def _scores(logits: torch.Tensor, encs) -> ABScores:
    return letter_scores(torch.log_softmax(logits.float(), -1).cpu(), encs)


def _unsort(parts: list[ABScores], inv: np.ndarray) -> ABScores:
    return ABScores(*(np.concatenate([getattr(p, f) for p in parts])[inv] for f in ("score", "logit_diff", "letter_mass")))


class _Runner:
    """Forward passes with decoder layers replaced by stand-ins; counts the work done."""

    def __init__(self, model, vectors, stats: EngineStats):
        self.model = model
        self.base = _base_model(model)
        self.layers = get_layers(model)
        self.n = len(self.layers)
        self.vectors = vectors
        self.stats = stats
        self._vcache: dict = {}
        self._tuple = layer_returns_tuple(self.base, self.layers, model_device(model))

    def _stand(self, i: int, value: torch.Tensor | None = None) -> _Stand:
        return _Stand(self.layers[i], value, self._tuple)

    def _vec(self, layer, h):
        """{layer: vector} in the residual's dtype and device, converted once per sweep."""
        key = (layer, h.dtype, h.device)
        v = self._vcache.get(key)
        if v is None:
            v = self._vcache[key] = torch.as_tensor(self.vectors[layer]).to(device=h.device, dtype=h.dtype)
        return {layer: v}

    def _count(self, rows, q, n_real, head_rows):
        self.stats.layer_tokens += rows * q * n_real
        self.stats.head_rows += head_rows
        self.stats.forward_calls += 1

    def tail(self, layer: int, h: torch.Tensor, inputs: dict, cache=None) -> torch.Tensor:
        """Logits at the last position after running layers layer+1.. on ``h`` (the output of ``layer``)."""
        repl = {i: self._stand(i, h if i == layer else None) for i in range(layer + 1)}
        with _replaced(self.layers, repl):
            logits = last_logits(self.model, inputs, use_cache=cache is not None, **cache_kwargs(self.model, cache))
        rows, q = inputs["input_ids"].shape
        self._count(rows, q, self.n - 1 - layer, rows)
        return logits

    def run_to(self, upto: int, h_from: torch.Tensor | None, start: int, inputs: dict,
               use_cache: bool = False, cache=None) -> dict:
        """Run the base model's layers start..upto (earlier ones return ``h_from``), later ones skipped.

        Returns {upto: output of layer ``upto``} and, with ``use_cache``, {"cache": the KV cache}.
        ``cache``: keys/values of earlier tokens to attend to (the shared prefix).
        """
        repl = {i: self._stand(i, h_from if i == start - 1 else None) for i in range(start)}
        repl.update({i: self._stand(i) for i in range(upto + 1, self.n)})
        store: dict = {}
        kw = dict(cache_kwargs(self.base, cache), use_cache=True) if cache is not None else {"use_cache": use_cache}
        with _replaced(self.layers, repl), layer_hooks(self.model, {upto: lambda x: store.__setitem__(upto, x)}):
            out = self.base(**inputs, **kw)
        rows, q = inputs["input_ids"].shape
        self._count(rows, q, upto + 1 - start, 0)
        if use_cache:
            store["cache"] = _cache_of(out)
            if store["cache"] is None:
                raise RuntimeError("the model returned no KV cache")
        return store

    def _steer(self, layer, h, multipliers, positions, start=None):
        """Rows = len(multipliers) copies of the batch, each with its multiplier added (naive arithmetic)."""
        R = len(multipliers)
        B = h.shape[0]
        mult = torch.tensor(multipliers, dtype=torch.float32).repeat_interleave(B)
        st = Steering(self._vec(layer, h), mult, positions, None if start is None else start.repeat(R))
        return st.add(layer, h.repeat(R, 1, 1))

    @staticmethod
    def _rep(inputs: dict, R: int) -> dict:
        return {k: v.repeat(R, 1) for k, v in inputs.items()}

    def batch_all(self, b: Batch, layers, multipliers, want_baseline, walk: dict | None = None, key=None,
                  shared: dict | None = None):
        """All positions: walk the unsteered pass through the swept layers; a tail per layer.

        ``walk``: {key: (layer, residual after it)} kept between calls, so a later call for deeper
        layers goes on from where this one stopped instead of starting again at layer 0.
        ``shared``: the items' common prefix (``shared_prefix``); ``b`` then holds only the tokens after it.
        """
        inputs = b.model_inputs()
        out = {}
        h, prev = None, -1
        base_cache = self._prefix_cache(shared, shared["keys"], shared["values"]) if shared else None
        if walk is not None and key in walk and layers and walk[key][0] <= layers[0]:
            prev, h = walk[key]
        for layer in layers:
            if layer > prev:
                h = self.run_to(layer, h, prev + 1, inputs, cache=base_cache)[layer]
                prev = layer
            for m in multipliers:  # one multiplier per tail: memory as the naive engine's
                hs = self._steer(layer, h, [m], "all")
                cache = self.steered_prefix(shared, layer, m) if shared else None
                out[(layer, m)] = self.tail(layer, hs, inputs, cache=cache)
        base = None
        if want_baseline:
            if prev < 0:
                h = self.run_to(0, None, 0, inputs, cache=base_cache)[0]
                prev = 0
            base = self.tail(prev, h, inputs, cache=base_cache)
        if walk is not None and h is not None:
            walk.pop(key, None)
            if sum(_nbytes(v[1]) for v in walk.values()) + _nbytes(h) <= STATE_MB * 2**20:
                walk[key] = (prev, h)
        return out, base

    # ------------------------------------------------------------ the items' common prefix (all positions)

    def shared_prefix(self, encoded: list[Encoded], layers) -> dict | None:
        """Run the tokens every item starts with (a chat template's system turn) once, as one row.

        Those tokens have the same positions and see the same tokens in every item, so their residuals
        and keys/values are the same in every item, steered or not: per (layer, multiplier) the steered
        prefix runs once (``steered_prefix``) and every item's tail runs only its own tokens against it.
        None when there is no common prefix or the model's cache is not a plain per-layer cache.
        """
        ids = [e.prefix_ids for e in encoded]
        C = _common_prefix(ids)
        if C < 1:
            return None
        dev = model_device(self.model)
        inputs = {"input_ids": torch.tensor([ids[0][:C]], device=dev),
                  "attention_mask": torch.ones(1, C, dtype=torch.long, device=dev),
                  "position_ids": torch.arange(C, device=dev)[None]}
        store: dict[int, torch.Tensor] = {}
        with layer_hooks(self.model, {l: (lambda x, l=l: store.__setitem__(l, x)) for l in layers}):
            out = self.base(**inputs, use_cache=True)
        self._count(1, C, self.n, 0)
        cache = _cache_of(out)
        if cache is None or not _plain_cache(cache, C, max(len(x) for x in ids)):
            return None
        return {"C": C, "inputs": inputs, "template": cache, "resid": store, "steered": {},
                "keys": [l.keys for l in cache.layers], "values": [l.values for l in cache.layers]}

    def steered_prefix(self, sh: dict, layer: int, m: float):
        """The common prefix's keys/values with ``m * vector`` added after ``layer`` (computed once per point)."""
        kv = sh["steered"].get((layer, m))
        if kv is None:
            hs = self._steer(layer, sh["resid"][layer], [m], "all")
            repl = {i: self._stand(i, hs if i == layer else None) for i in range(layer + 1)}
            with _replaced(self.layers, repl):
                c = _cache_of(self.base(**sh["inputs"], use_cache=True))
            self._count(1, sh["C"], self.n - 1 - layer, 0)
            kv = sh["steered"][(layer, m)] = (
                [sh["keys"][i] if i <= layer else c.layers[i].keys for i in range(self.n)],
                [sh["values"][i] if i <= layer else c.layers[i].values for i in range(self.n)])
        return self._prefix_cache(sh, *kv)

    @staticmethod
    def _prefix_cache(sh: dict, keys, values):
        c = copy.copy(sh["template"])
        c.layers = [_prefix_layer(k, v, 1) for k, v in zip(keys, values)]
        return c

    # ------------------------------------------------------------ instruction-end positions

    def ie_unsteered(self, b: Batch, encs) -> dict:
        """One batch's unsteered work: prefix KV cache (one prefix pass), suffix residuals of every layer
        and the baseline scores (one suffix pass against the cache)."""
        T = b.input_ids.shape[1]
        P = int(b.instruction_end.min())  # every row is unsteered before P
        full = b.model_inputs()
        suf = {"input_ids": b.input_ids[:, P:], "attention_mask": b.attention_mask, "position_ids": b.position_ids[:, P:]}
        cache = None
        if P > 0:
            pre = {k: v[:, :P] for k, v in full.items()}
            cache = self.run_to(self.n - 1, None, 0, pre, use_cache=True)["cache"]
        else:
            suf = full
        store: dict[int, torch.Tensor] = {}
        fns = {l: (lambda x, l=l: store.__setitem__(l, x)) for l in range(self.n)}
        with layer_hooks(self.model, fns):
            logits = last_logits(self.model, suf, use_cache=cache is not None,
                                 **cache_kwargs(self.model, _clone_cache(cache) if cache is not None else None))
        rows, q = suf["input_ids"].shape
        self._count(rows, q, self.n, rows)
        return {"encs": encs, "P": P, "S": T - P, "cache": cache, "resid": store, "suf": suf,
                "start": b.instruction_end - P, "base": _scores(logits, encs)}

    def ie_blocks(self, batch_list, make, n_mults: int, progress: bool = False):
        """Blocks of consecutive batches (up to TAIL_ROWS // multipliers items, BLOCK_MB of prefix keys/values)."""
        cap = max(1, TAIL_ROWS // max(1, n_mults))
        pending, items, size = [], 0, 0
        for idx in tqdm(batch_list, desc="fast sweep (instruction_end)", disable=not progress, leave=False):
            st = self.ie_unsteered(*reversed(make(idx)))
            pending.append(st)
            items += len(st["encs"])
            size += _nbytes(st["cache"])
            if items >= cap or size >= BLOCK_MB * 2**20:
                yield self._block(pending)
                pending, items, size = [], 0, 0
        if pending:
            yield self._block(pending)

    @staticmethod
    def _combinable(pending) -> bool:
        """Can these batches' caches be left-padded to one prefix? Plain (or not yet sliding) dynamic layers only."""
        total = max(st["P"] for st in pending) + max(st["S"] for st in pending)
        return all(st["cache"] is not None and _plain_cache(st["cache"], st["P"], total) for st in pending)

    def _block(self, pending) -> dict:
        encs = [e for st in pending for e in st["encs"]]
        base = [st["base"] for st in pending]
        if not self._combinable(pending):
            for st in pending:  # the per-batch path keeps the model's own cache layers
                st.pop("base")
            return {"encs": encs, "base": base, "batches": pending}
        Pc = max(st["P"] for st in pending)
        Sc = max(st["S"] for st in pending)
        prefix = _BlockPrefix([st["cache"] for st in pending], [st["P"] for st in pending])
        ids, mask, pos, start = [], [], [], []
        resid = {l: [] for l in range(self.n)}
        for st in pending:
            s, P, suf = Sc - st["S"], st["P"], st["suf"]
            B = suf["input_ids"].shape[0]
            am = suf["attention_mask"]
            z = am.new_zeros
            # [prefix padded on the left to Pc | suffix padded on the left to Sc]: padding is masked out
            ids.append(torch.cat([suf["input_ids"].new_zeros(B, s), suf["input_ids"]], 1))
            mask.append(torch.cat([z(B, Pc - P), am[:, :P], z(B, s), am[:, P:]], 1))
            pos.append(torch.cat([suf["position_ids"].new_zeros(B, s), suf["position_ids"]], 1))
            start.append(st["start"] + s)
            for l, h in st["resid"].items():
                resid[l].append(torch.cat([h.new_zeros(B, s, h.shape[-1]), h], 1) if s else h)
            st.clear()  # drop the batch's own cache: the block's prefix holds its keys/values
        cat = (lambda xs: xs[0]) if len(pending) == 1 else (lambda xs: torch.cat(xs))
        return {"encs": encs, "base": base, "prefix": prefix,
                "suf": {"input_ids": cat(ids), "attention_mask": cat(mask), "position_ids": cat(pos)},
                "start": cat(start), "resid": {l: cat(v) for l, v in resid.items()}}

    def ie_tails(self, blk: dict, layers, multipliers) -> dict:
        """Logits of every (layer, multiplier) for a block: one tail call per layer over items x multipliers."""
        out: dict = {}
        if not multipliers:
            return out
        if "batches" in blk:
            per = [self._ie_tails_batch(st, layers, multipliers) for st in blk["batches"]]
            return {k: torch.cat([p[k] for p in per]) for k in per[0]}
        Bk = len(blk["encs"])
        chunk = max(1, TAIL_ROWS // Bk)
        for c in range(0, len(multipliers), chunk):
            ms = multipliers[c:c + chunk]
            R = len(ms)
            rinputs = self._rep(blk["suf"], R)
            for layer in layers:
                hs = self._steer(layer, blk["resid"][layer], ms, "instruction_end", blk["start"])
                logits = self.tail(layer, hs, rinputs, cache=blk["prefix"].cache(R))
                for j, m in enumerate(ms):
                    out[(layer, m)] = logits[j * Bk:(j + 1) * Bk]
        return out

    def _ie_tails_batch(self, st: dict, layers, multipliers) -> dict:
        """One batch, its own cache tiled per multiplier (caches that cannot be padded into a block)."""
        out = {}
        R = len(multipliers)
        rows = st["suf"]["input_ids"].shape[0]
        cache = st["cache"]
        rcache = _clone_cache(cache, R) if cache is not None else None
        rinputs = self._rep(st["suf"], R)
        for layer in layers:
            hs = self._steer(layer, st["resid"][layer], multipliers, "instruction_end", st["start"])
            logits = self.tail(layer, hs, rinputs, cache=_clone_cache(rcache) if rcache is not None else None)
            for j, m in enumerate(multipliers):
                out[(layer, m)] = logits[j * rows:(j + 1) * rows]
        return out
