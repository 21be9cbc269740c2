"""Point-by-point persistence of an open-ended sweep (through store.ResultsStore), so nothing is lost.

With an output folder, `run_openended` stores each measured point (the unsteered baseline and every
(window, multiplier)) as soon as it is measured, and the judge's verdicts for it as a separate point
right after, so a judge that fails late keeps every measurement (and the verdicts before it). A
re-run of the same command reads the stored points and computes only what is missing; the tables are
always built from the stored (JSON round-tripped, exact for float64) values, so a resumed run writes
the same table bytes as an uninterrupted one.

Store keys (model, layer, multiplier): the baseline is (name, None); a window starting at s of width
w is (name + ".w<w>", s, m); judge verdicts use the same keys with ".judge-<hash of the judge>"
appended to the model part, so verdicts of another judge are never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np

from ..measures.capability import CrossEntropy
from ..measures.refusal import LogOdds

if TYPE_CHECKING:
    from ..config import OpenEndedConfig
    from ..core.vectors import SteeringVectors

log = logging.getLogger(__name__)


def identity(config: OpenEndedConfig, info, lo_prompts, gen_prompts, neutral, phrases,
             vectors: SteeringVectors) -> dict:
    """What must match for an open-ended run folder to be resumed."""
    from ..sweep.run import vectors_hash

    model = {k: v for k, v in info.to_dict().items() if k not in ("spec", "device")}

    def h(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]

    return {"kind": "openended", "config": asdict(config), "model": model,
            "prompts_hash": h([[p.id, p.text, p.category, k] for p, k in lo_prompts + gen_prompts]),
            "neutral_hash": h(list(neutral)), "phrases_hash": h(list(phrases.phrases)),
            "vectors_hash": vectors_hash(vectors)}


def judge_tag(judge) -> str:
    desc = {"type": getattr(judge, "name", type(judge).__name__), "url": getattr(judge, "url", None),
            "model": getattr(judge, "model", None) if isinstance(getattr(judge, "model", None), str) else None,
            "prompt": getattr(judge, "prompt", None)}
    return "judge-" + hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:8]


def keys(name: str, point, judge=None) -> tuple:
    """(model, layer) store key of a point: None = the unsteered baseline, else (start, end)."""
    suffix = f".{judge_tag(judge)}" if judge is not None else ""
    if point is None:
        return name + suffix, None
    s, e = point
    return f"{name}.w{e - s + 1}{suffix}", s


def pack(lo, gens: dict, ce) -> list[dict]:
    rows = [{"part": "logodds", "logodds": lo.logodds.tolist(), "p_open": lo.p_open.tolist(),
             "opening_tokens": list(lo.opening_tokens)},
            {"part": "generations", "texts": {k: list(v) for k, v in gens.items()}}]
    if ce is not None:
        rows.append({"part": "ce", "nll_sum": ce.nll_sum.tolist(), "n_tokens": ce.n_tokens.tolist()})
    return rows


def unpack(rows, n_lo: int, n_gen: int, modes: list[str], n_ce: int):
    """(lo, gens, ce) from stored rows, or None when they do not fit this run (then the point is recomputed)."""
    try:
        parts = {r["part"]: r for r in rows}
        lo = LogOdds(np.asarray(parts["logodds"]["logodds"], dtype=np.float64),
                     np.asarray(parts["logodds"]["p_open"], dtype=np.float64),
                     list(parts["logodds"]["opening_tokens"]))
        gens = {k: list(v) for k, v in parts["generations"]["texts"].items()}
        ce = None
        if n_ce:
            ce = CrossEntropy(np.asarray(parts["ce"]["nll_sum"], dtype=np.float64),
                              np.asarray(parts["ce"]["n_tokens"], dtype=np.float64))
    except (KeyError, TypeError, ValueError):
        return None
    ok = (lo.logodds.shape == (n_lo,) and lo.p_open.shape == (n_lo,)
          and (sorted(gens) == sorted(modes) if n_gen else not gens)
          and all(len(v) == n_gen and all(isinstance(t, str) for t in v) for v in gens.values())
          and (ce is None or (ce.nll_sum.shape == (n_ce,) and ce.n_tokens.shape == (n_ce,))))
    return (lo, gens, ce) if ok else None


def unpack_verdicts(rows, modes, n_gen: int) -> dict | None:
    try:
        out = {r["mode"]: [float(v) for v in r["verdicts"]] for r in rows}
    except (KeyError, TypeError, ValueError):
        return None
    return out if sorted(out) == sorted(modes) and all(len(v) == n_gen for v in out.values()) else None


def measured(store, name: str, point, m, compute, n_lo, n_gen, modes, n_ce):
    """The stored (lo, gens, ce) of a point, or compute() it, store it at once, and return the stored form."""
    model, layer = keys(name, point)
    rows = store.get(model, layer, m)
    got = unpack(rows, n_lo, n_gen, modes, n_ce) if rows is not None else None
    if got is None:
        if rows is not None:
            log.warning("open-ended point %s layer %s m %s: stored rows do not fit this run; recomputing",
                        model, layer, m)
        rows = pack(*compute())
        store.put(model, layer, m, rows)
        got = unpack(rows, n_lo, n_gen, modes, n_ce)
    return got


def verdicts(store, name: str, point, m, judge, gens: dict, ask, n_gen: int) -> dict:
    """The judge's verdicts for a point's generations: stored ones, or ask() now and store them at once."""
    if judge is None or not gens:
        return {}
    model, layer = keys(name, point, judge)
    rows = store.get(model, layer, m)
    got = unpack_verdicts(rows, list(gens), n_gen) if rows is not None else None
    if got is None:
        out = ask(gens)
        rows = [{"mode": k, "verdicts": [float(v) for v in out[k]]} for k in gens]
        store.put(model, layer, m, rows)
        got = unpack_verdicts(rows, list(gens), n_gen)
    return got
