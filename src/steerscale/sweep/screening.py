"""``--screen grad``: screen every layer with the gradient, sweep exactly only the top-K layers of each sign.

``screened_sweep`` is what ``sweep.run_sweep`` runs instead of the full plan when ``config.screen`` is set:

1. **Screen** (``engines.screen.GradScreen``) on the *validation* items, the ones the peak is chosen on
   (``data.split_items`` with ``config.val_fraction`` and ``config.seed``: the same split as
   ``analysis.split_indices``): ds/dm at m = 0 per layer. For the sign of each steered multiplier,
   the predicted movement at the multiplier the peak uses (the largest of that sign, m_s) is
   ``s · m_s · mean ds/dm``; layers are ranked by it. Stored through the store (``put_record``, keyed on the
   run's identity: model fingerprint, items, vectors, positions, template, layers, versions), so a killed
   run does not screen again.
2. **Exact sweep** (``units.run_unit``, the configured engine) of the top ``confirm_top`` layers of each
   sign at every requested multiplier (and the baseline), on all items.
3. **Spot check**: ``spot_check`` screened-out layers, drawn with a seeded generator, are computed exactly at
   each sign's m_s (all items; the baseline is shared). When one moves p further (exact, validation items, at
   m_s) than the K-th confirmed layer of a sign, the screen is wrong there: a warning, that layer is
   confirmed, and K widens: the next K layers in screen order are confirmed (no re-screening), again while a
   widening step adds a layer that beats the K-th best confirmed so far, until stable or every layer is
   measured. A spot-checked layer that does not beat the K-th confirmed one cannot be the peak of that sign.
4. **Tables** of the confirmed layers only (every multiplier, exact). Every other layer is *not measured* in
   the tables: no row, no interval, never a peak (spot-checked layers' exact movement at m_s is in the
   manifest's screen record). The manifest's ``screen`` record holds the per-layer
   gradient, the ranking, K, J, what the spot check found and the exact/predicted ratio per measured layer.

The screen runs in one process (``--shards``/``--shard``/cluster backends are refused with one line).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..core.prompts import encode_items
from ..core.data import split_items
from ..engines.screen import GradScreen
from ..errors import SteerscaleError
from .plan import make_plan
from .units import build_tables, run_unit

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..config import SweepConfig
    from ..core.data import ABItem
    from ..engines.base import Engine
    from ..core.models import ModelInfo
    from ..core.vectors import SteeringVectors

log = logging.getLogger(__name__)

SPOT_SEED_OFFSET = 19  # the spot check's generator: default_rng(seed + 19), apart from the bootstrap's streams


def validation_indices(n_items: int, config: SweepConfig) -> list[int]:
    """The validation item positions: ``data.split_items`` as ``analysis.split_indices`` draws them."""
    val, _ = split_items(list(range(n_items)), config.val_fraction, config.seed)
    return val


def sign_multipliers(config: SweepConfig) -> dict[int, float]:
    """Sign -> the multiplier the peak of that sign uses (the largest |m| of that sign, as ``find_peak``)."""
    out = {}
    for sign in (-1, 1):
        cands = [m for m in config.multipliers if m * sign > 0]
        if cands:
            out[sign] = max(cands, key=abs)
    return out


def screen_key(items, val_idx, layers) -> str:
    """The record key of a screen within a run (the run hash covers model, vectors, config and versions)."""
    h = hashlib.sha256(json.dumps({"val": [items[i].id for i in val_idx], "layers": list(layers)}).encode())
    return f"screen-grad-{h.hexdigest()[:12]}"


def run_screen(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, vectors: SteeringVectors,
               items: list[ABItem], config: SweepConfig, info: ModelInfo, store, val_idx: list[int]) -> dict:
    """The screen's record (per-item gradients on the validation items, work counters), from the store when
    this run already computed it."""
    key = screen_key(items, val_idx, config.layers)
    rec = store.get_record(info.name, key)
    if rec is not None:
        return dict(rec, reused=True)
    encoded = encode_items(tokenizer, [items[i] for i in val_idx], config.template, config.system)
    screen = GradScreen()
    res = screen.gradients(model, tokenizer, vectors, encoded, config)
    if not np.isfinite(res.grad).all():
        raise SteerscaleError("gradient screen: d(score)/dm is NaN or Inf (non-finite logits); try --dtype float32 "
                              "or sweep without --screen")
    rec = {"layers": res.layers, "items": [items[i].id for i in val_idx],
           "grad": [[float(x) for x in row] for row in res.grad], "work": screen.describe()}
    store.put_record(info.name, key, rec)
    return dict(rec, reused=False)


def _val_move(store, name, layer, m, sign, val_idx) -> float:
    """Exact s·Δ at (layer, m) on the validation items, from the stored points."""
    base = store.get(name, None)
    pt = store.get(name, layer, m)
    if base is None or pt is None:
        raise SteerscaleError(f"screen: the exact point layer {layer}, multiplier {m:g} is missing from the store")
    d = np.array([pt[i]["score"] - base[i]["score"] for i in val_idx])
    return float(sign * d.mean())


def screened_sweep(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, vectors: SteeringVectors,
                   items: list[ABItem], config: SweepConfig, info: ModelInfo, identity: dict, store, progress: bool,
                   engine: Engine, where: str = "") -> tuple[list[dict], list[dict], list[dict], dict]:
    """Screen, exact sweep of the confirmed layers, spot check (module docstring). Returns
    (unit reports, item rows, aggregate rows, the manifest's screen record)."""
    if config.screen != "grad":
        raise SteerscaleError(f"screen {config.screen!r}: expected none or grad")
    signs = sign_multipliers(config)
    if not signs:
        raise SteerscaleError("--screen grad: no nonzero multiplier to screen for; add e.g. --multipliers -1,0,1")
    if 0.0 not in config.multipliers:
        raise SteerscaleError("--screen grad: multipliers must include 0 (the baseline every movement is measured "
                              "against)")
    n = len(items)
    val_idx = validation_indices(n, config)
    if not val_idx:
        raise SteerscaleError(f"val_fraction {config.val_fraction}: leaves no validation items for the screen")
    rec = run_screen(model, tokenizer, vectors, items, config, info, store, val_idx)
    g = np.array(rec["grad"]).mean(1)
    layers = list(rec["layers"])
    grad = dict(zip(layers, g.tolist()))
    pred = {s: {l: float(s * m * grad[l]) for l in layers} for s, m in signs.items()}  # predicted s·Δ at m_s
    order = {s: sorted(layers, key=lambda l: (-pred[s][l], l)) for s in signs}
    k = min(config.confirm_top, len(layers))
    confirmed = {s: order[s][:k] for s in signs}
    out = sorted(set(layers) - {l for c in confirmed.values() for l in c})
    rng = np.random.default_rng(config.seed + SPOT_SEED_OFFSET)
    spot = sorted(int(x) for x in rng.choice(out, size=min(config.spot_check, len(out)), replace=False)) if out else []

    reports, measured, checked = [], [], []

    def compute(new_layers, spot_only=False):
        """Exact points of `new_layers`: every multiplier (confirmed), or only the signs' m_s (spot check)."""
        done = checked if spot_only else measured
        new = sorted(set(new_layers) - set(done) - set(measured))
        if not new:
            return
        done.extend(new)
        mults = [0.0] + [signs[s] for s in sorted(signs)] if spot_only else config.multipliers
        stage = replace(config, layers=sorted(set(measured) | set(checked)), multipliers=mults)
        unit = make_plan(n, new, info.n_layers, config.positions, 1, config.batch_size).units[0]
        reports.append(run_unit(model, tokenizer, vectors, items, stage, info, unit, store, progress, engine))

    compute([l for c in confirmed.values() for l in c])
    compute(spot, spot_only=True)
    exact = {s: {} for s in signs}

    def move(s, l):
        if l not in exact[s]:
            exact[s][l] = _val_move(store, info.name, l, signs[s], s, val_idx)
        return exact[s][l]

    findings, widened = [], {s: False for s in signs}
    for s in signs:
        kth = sorted((move(s, l) for l in confirmed[s]), reverse=True)[k - 1]
        beaters = [l for l in spot if l not in confirmed[s] and move(s, l) > kth]
        for l in beaters:
            findings.append({"sign": "positive" if s > 0 else "negative", "layer": l, "exact_move": move(s, l),
                             "kth_confirmed_move": kth, "screen_rank": order[s].index(l) + 1})
        if not beaters:
            continue
        log.warning("gradient screen: spot check: layer(s) %s, screened out, move p further under %+g than the "
                    "%d-th confirmed layer (%.4g on validation items); widening --confirm-top",
                    ", ".join(map(str, beaters)), signs[s], k, kth)
        widened[s] = True
        confirmed[s] = confirmed[s] + [l for l in beaters if l not in confirmed[s]]
        compute(beaters)  # a spot-checked layer that beats the K-th is confirmed: every multiplier
        while True:
            rest = [l for l in order[s] if l not in confirmed[s]]
            if not rest:
                break
            kth = sorted((move(s, l) for l in confirmed[s]), reverse=True)[k - 1]
            step = rest[:k]
            compute(step)
            confirmed[s] = confirmed[s] + step
            if not any(move(s, l) > kth for l in step):
                break  # stable: the widening step changed nothing in the top K
    final = sorted(measured)
    run_id = dict(identity, config=dict(identity["config"], layers=final))
    plan = make_plan(n, final, info.n_layers, config.positions, 1, config.batch_size)
    rows, aggregate = build_tables(store, run_id, plan, where)
    record = screen_record(config, rec, grad, pred, order, confirmed, spot, findings, widened, final, layers,
                           {s: {l: move(s, l) for l in sorted(set(final) | set(spot))} for s in signs}, signs, k,
                           len(val_idx))
    return reports, rows, aggregate, record


def _sign_name(s: int) -> str:
    return "positive" if s > 0 else "negative"


def screen_record(config: SweepConfig, rec, grad, pred, order, confirmed, spot, findings, widened, final, layers, exact, signs, k,
                  n_val) -> dict:
    """The manifest's ``screen`` record (JSON-ready; layer keys are strings)."""
    per_sign = {}
    for s, m in signs.items():
        rows = []
        for l in order[s]:
            p, e = pred[s][l], exact[s].get(l)
            rows.append({"layer": l, "screen_rank": order[s].index(l) + 1, "predicted_move": p,
                         "measured": l in final, "confirmed": l in confirmed[s], "spot_checked": l in spot,
                         "exact_move_val": e, "ratio": (e / p) if (e is not None and p != 0) else None})
        per_sign[_sign_name(s)] = {"multiplier": m, "confirm_top_final": len(confirmed[s]), "widened": widened[s],
                                   "confirmed": sorted(confirmed[s]), "layers": rows}
    return {
        "method": "grad", "definition": "d(score)/dm at m = 0 per layer (one forward + one backward pass per batch), "
        "mean over the validation items; predicted movement s·Δ at the sign's multiplier m_s = s · m_s · gradient",
        "val_fraction": config.val_fraction, "seed": config.seed, "n_val_items": n_val,
        "confirm_top": config.confirm_top, "confirm_top_used": k, "spot_check": config.spot_check,
        "spot_layers": spot, "spot_multipliers": [signs[s] for s in sorted(signs)], "spot_findings": findings, "widened": any(widened.values()),
        "gradient": {str(l): grad[l] for l in layers}, "signs": per_sign, "measured_layers": final,
        "not_measured": sorted(set(layers) - set(final)), "work": rec.get("work", {}), "reused": rec.get("reused", False),
    }
