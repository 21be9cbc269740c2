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
2. In instruction-end mode tokens before the steering start are untouched at
   every layer, so their keys/values (from one unsteered prefix pass) are reused:
   a tail recomputes only the steered suffix (a few tokens) against that cache.
3. Several multipliers at the same layer share the batch's prefix: they run as
   one batch of rows with a per-row multiplier. Multiplier 0 is the unsteered
   pass itself, so the baseline costs nothing extra.
4. Scoring reads one position: the models' own head runs with ``logits_to_keep=1``.
   That is one full-vocabulary row per item (B x hidden x vocab multiply-adds), kept
   on purpose: ``letter_mass`` needs the full-vocabulary log-sum-exp at that
   position, and the row costs about a tenth of one layer over an 80-token prompt.
   No logits are computed at any other position.

How layers are skipped: during a tail, decoder layers 0..L are temporarily
replaced by a stand-in that returns the cached (steered) residual, and the
model's own forward runs unchanged otherwise (embeddings, masks, rotary tables,
per-layer attention types, sliding windows, final norm, soft-capping and head are
the model's code). Replaced layers are always put back (try/finally).

Exactness: batches are the naive engine's (item order), so in all-positions mode
the float32 scores are bit-for-bit the naive engine's. In instruction-end mode the
suffix is computed against a KV cache (other matmul shapes, so other rounding):
on the tiny test models every column agrees to 1e-5; on SmolLM2-135M ``score``
agrees to ~5e-6 and ``logit_diff`` (a difference of log-probabilities, at the
float32 rounding floor of logits) to ~2e-5. For a model type not in
``VERIFIED_ARCHITECTURES`` the engine first checks one point against the naive
engine and falls back to it, with a logged warning, if they differ or the fast
path fails.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .activations import Batch, batches, model_device, pad_id_of, pad_left
from .data import Encoded
from .evaluate import ABScores, letter_scores
from .models import _model_type, get_layers
from .steering import Steering, layer_hooks

log = logging.getLogger(__name__)

# Model types whose fast path tests/test_fast.py checks against the naive engine.
VERIFIED_ARCHITECTURES = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo", "gpt2", "gpt_neox"}
)
VERIFY_TOL = 1e-4


class _Stand(torch.nn.Module):
    """Stands in for a decoder layer: returns ``value`` (a cached residual) or, if None, its input."""

    def __init__(self, orig: torch.nn.Module, value: torch.Tensor | None = None):
        super().__init__()
        object.__setattr__(self, "_orig", orig)  # not a submodule: no parameters, no hooks
        object.__setattr__(self, "value", value)

    def forward(self, hidden_states, *args, **kwargs):
        if self.value is None:
            return hidden_states
        if self.value.shape != hidden_states.shape:
            raise RuntimeError(f"cached residual {tuple(self.value.shape)} != layer input {tuple(hidden_states.shape)}")
        return self.value

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


@dataclass
class EngineStats:
    """Work done, counted as it happens: decoder layer x token evaluations, head rows, forward calls."""

    layer_tokens: int = 0
    head_rows: int = 0
    forward_calls: int = 0
    fallback: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layer_tokens": self.layer_tokens, "head_rows": self.head_rows, "forward_calls": self.forward_calls,
                "fallback": self.fallback}


class FastEngine:
    """Engine ``fast``: same contract as ``naive_engine`` (one layer per call, {multiplier: ABScores}).

    The first call computes every (layer, multiplier) point of ``config.layers`` x the multipliers
    asked for, batch by batch (one unsteered pass per batch, then the tails); later calls read the
    results. A new encoded list, vectors, model or config starts over. ``baseline(...)`` gives the
    multiplier-0 scores from the same unsteered pass.
    """

    name = "fast"

    def __init__(self, progress: bool = False, verify: str = "auto", sort_by_length: bool = False):
        self.progress = progress
        self.sort_by_length = sort_by_length
        self.verify = verify  # "auto": check unverified architectures against naive; "always"; "never"
        self.stats = EngineStats()
        self._key = None
        self._results: dict[tuple[int, float], ABScores] = {}
        self._baseline: ABScores | None = None
        self._fallback = False

    # ------------------------------------------------------------------ contract

    def prepare(self, model, tokenizer, vectors, encoded, config, multipliers) -> None:
        """Compute every point of ``config.layers`` x ``multipliers`` and the baseline, batch by batch."""
        self._reset_if_new(model, vectors, encoded, config)
        layers = list(config.layers) if config.layers is not None else list(range(len(get_layers(model))))
        mults = sorted(set(float(m) for m in multipliers))
        todo = [l for l in layers if any((l, m) not in self._results for m in mults)]
        if not self._fallback and (todo or self._baseline is None):
            self._run(model, tokenizer, vectors, encoded, todo or layers[-1:], mults if todo else [], config)

    def __call__(self, model, tokenizer, vectors, encoded, layer: int, multipliers, config) -> dict[float, ABScores]:
        self._reset_if_new(model, vectors, encoded, config)
        mults = [float(m) for m in multipliers]
        if not self._fallback and any((layer, m) not in self._results for m in mults):
            self._run(model, tokenizer, vectors, encoded, [layer], mults, config)
        if self._fallback:
            return self._naive(model, tokenizer, vectors, encoded, layer, multipliers, config)
        return {m: self._results[(layer, float(m))] for m in multipliers}

    def baseline(self, model, tokenizer, vectors, encoded, config) -> ABScores:
        """Unsteered scores, from the same unsteered pass as the steered points (see ``prepare``)."""
        self._reset_if_new(model, vectors, encoded, config)
        if self._baseline is None and not self._fallback:
            self._run(model, tokenizer, vectors, encoded, [len(get_layers(model)) - 1], [], config)
        if self._baseline is None:  # fallback
            from .evaluate import ab_scores

            self._baseline = ab_scores(model, tokenizer, encoded, config.batch_size)
        return self._baseline

    # ------------------------------------------------------------------ internals

    def _reset_if_new(self, model, vectors, encoded, config):
        key = (id(model), id(vectors), id(encoded), len(encoded), config.positions, config.batch_size,
               next(model.parameters()).dtype)
        if key != self._key:
            self._key = key
            self._results, self._baseline, self._fallback = {}, None, False

    def _naive(self, model, tokenizer, vectors, encoded, layer, multipliers, config):
        from .sweep import naive_engine

        return naive_engine(model, tokenizer, vectors, encoded, layer, multipliers, config)

    def _fall_back(self, why: str) -> bool:
        log.warning("fast engine: %s; falling back to the naive engine for this sweep", why)
        self._fallback = True
        self.stats.fallback = True
        return False

    def _run(self, model, tokenizer, vectors, encoded, layers, mults, config) -> bool:
        mtype = _model_type(model)
        check = self.verify == "always" or (self.verify == "auto" and mtype not in VERIFIED_ARCHITECTURES)
        try:
            if check and not self._verified(model, tokenizer, vectors, encoded, layers, mults, config):
                return self._fall_back(f"model type {mtype!r} does not reproduce the naive scores")
            res, base = sweep_points(model, tokenizer, vectors, encoded, layers, mults, config.positions,
                                     config.batch_size, True, self.stats, self.progress, self.sort_by_length)
        except Exception as e:  # an architecture the stand-in layers do not fit
            if mtype in VERIFIED_ARCHITECTURES:
                raise
            return self._fall_back(f"model type {mtype!r} failed on the fast path ({type(e).__name__}: {e})")
        self._results.update(res)
        if base is not None:
            self._baseline = base
        return True

    def _verified(self, model, tokenizer, vectors, encoded, layers, mults, config) -> bool:
        from .sweep import naive_engine

        sub = encoded[: min(len(encoded), config.batch_size)]
        layer = layers[len(layers) // 2] if layers else 0
        m = next((x for x in mults if x != 0), 1.0)
        fast, _ = sweep_points(model, tokenizer, vectors, sub, [layer], [m], config.positions, config.batch_size,
                               False, EngineStats(), False)
        ref = naive_engine(model, tokenizer, vectors, sub, layer, [m], config)[m]
        diff = float(np.max(np.abs(fast[(layer, m)].score - ref.score)))
        return diff <= VERIFY_TOL


# ---------------------------------------------------------------------- the computation


def _order(encoded: list[Encoded], sort_by_length: bool = False) -> list[int]:
    """Item order for batching: as given (the naive engine's batches), or by prompt length (less padding)."""
    if not sort_by_length:
        return list(range(len(encoded)))
    return sorted(range(len(encoded)), key=lambda i: (len(encoded[i].prefix_ids), i))


@torch.no_grad()
def sweep_points(model, tokenizer, vectors, encoded: list[Encoded], layers: list[int], multipliers: list[float],
                 positions: str = "all", batch_size: int = 8, want_baseline: bool = True,
                 stats: EngineStats | None = None, progress: bool = False, sort_by_length: bool = False):
    """Scores for every (layer, multiplier) in layers x multipliers, and the unsteered scores.

    Returns ({(layer, multiplier): ABScores}, baseline ABScores or None), in item order.
    ``sort_by_length``: batch items in length order (less padding; ~13% fewer tokens on refusal-test),
    at the price of float32 rounding differences (~1e-5 in logit_diff on SmolLM2) against the naive
    engine, whose batches are in item order. Off by default: in all-positions mode the scores are then
    bit-for-bit the naive engine's.
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
    for idx in tqdm(list(batches(len(order), batch_size)), desc=f"fast sweep ({positions})", disable=not progress,
                    leave=False):
        encs = [encoded[order[i]] for i in idx]
        b = pad_left([e.prefix_ids for e in encs], pad_id, [e.instruction_end for e in encs]).to(dev)
        if positions == "all":
            out, base = runner.batch_all(b, layers, multipliers, want_baseline)
        else:
            out, base = runner.batch_instruction_end(b, layers, multipliers, want_baseline)
        for key, logits in out.items():
            parts[key].append(_scores(logits, encs))
        if base is not None:
            base_parts.append(_scores(base, encs))
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

    def _vec(self, layer):
        return {layer: self.vectors[layer]}

    def _count(self, rows, q, n_real, head_rows):
        self.stats.layer_tokens += rows * q * n_real
        self.stats.head_rows += head_rows
        self.stats.forward_calls += 1

    def tail(self, layer: int, h: torch.Tensor, inputs: dict, cache=None) -> torch.Tensor:
        """Logits at the last position after running layers layer+1.. on ``h`` (the output of ``layer``)."""
        repl = {i: _Stand(self.layers[i], h if i == layer else None) for i in range(layer + 1)}
        with _replaced(self.layers, repl):
            out = self.model(**inputs, cache=cache, use_cache=cache is not None, logits_to_keep=1)
        rows, q = inputs["input_ids"].shape
        self._count(rows, q, self.n - 1 - layer, rows)
        return out.logits[:, -1]

    def run_to(self, upto: int, h_from: torch.Tensor | None, start: int, inputs: dict,
               use_cache: bool = False) -> dict:
        """Run the base model's layers start..upto (earlier ones return ``h_from``), later ones skipped.

        Returns {upto: output of layer ``upto``} and, with ``use_cache``, {"cache": the KV cache}.
        """
        repl = {i: _Stand(self.layers[i], h_from if i == start - 1 else None) for i in range(start)}
        repl.update({i: _Stand(self.layers[i]) for i in range(upto + 1, self.n)})
        store: dict = {}
        with _replaced(self.layers, repl), layer_hooks(self.model, {upto: lambda x: store.__setitem__(upto, x)}):
            out = self.base(**inputs, use_cache=use_cache)
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
        st = Steering(self._vec(layer), mult, positions, None if start is None else start.repeat(R))
        return st.add(layer, h.repeat(R, 1, 1))

    @staticmethod
    def _rep(inputs: dict, R: int) -> dict:
        return {k: v.repeat(R, 1) for k, v in inputs.items()}

    def batch_all(self, b: Batch, layers, multipliers, want_baseline):
        """All positions: walk the unsteered pass through the swept layers; a tail per layer."""
        inputs = b.model_inputs()
        out = {}
        h, prev = None, -1
        for layer in layers:
            h = self.run_to(layer, h, prev + 1, inputs)[layer]
            prev = layer
            for m in multipliers:  # one multiplier per tail: memory as the naive engine's
                hs = self._steer(layer, h, [m], "all")
                out[(layer, m)] = self.tail(layer, hs, inputs)
        base = None
        if want_baseline:
            if prev < 0:
                h = self.run_to(0, None, 0, inputs)[0]
                prev = 0
            base = self.tail(prev, h, inputs)
        return out, base

    def batch_instruction_end(self, b: Batch, layers, multipliers, want_baseline):
        """Instruction-end: one prefix pass (KV cache), one unsteered suffix pass, suffix-only tails."""
        T = b.input_ids.shape[1]
        P = int(b.instruction_end.min())  # every row is unsteered before P
        start = b.instruction_end - P  # steering start within the suffix window
        full = b.model_inputs()
        suf = {"input_ids": b.input_ids[:, P:], "attention_mask": b.attention_mask, "position_ids": b.position_ids[:, P:]}
        cache = None
        if P > 0:
            pre = {k: v[:, :P] for k, v in full.items()}
            cache = self.run_to(self.n - 1, None, 0, pre, use_cache=True)["cache"]
        else:
            suf = full
        # unsteered suffix: residuals of the swept layers, and the baseline logits
        store: dict[int, torch.Tensor] = {}
        fns = {l: (lambda x, l=l: store.__setitem__(l, x)) for l in layers}
        with layer_hooks(self.model, fns):
            logits = self.model(**suf, cache=_clone_cache(cache) if cache is not None else None,
                                use_cache=cache is not None, logits_to_keep=1).logits[:, -1]
        rows, q = suf["input_ids"].shape
        self._count(rows, q, self.n, rows)
        base = logits if want_baseline else None
        out = {}
        R = len(multipliers)
        if R:
            rcache = _clone_cache(cache, R) if cache is not None else None
            rinputs = self._rep(suf, R)
            for layer in layers:
                hs = self._steer(layer, store[layer], multipliers, "instruction_end", start)
                logits = self.tail(layer, hs, rinputs, cache=_clone_cache(rcache) if rcache is not None else None)
                for j, m in enumerate(multipliers):
                    out[(layer, m)] = logits[j * rows:(j + 1) * rows]
        return out, base
