"""Run one work unit into a results store, and build a sweep's tables from the store alone.

``run_unit`` is the one code path every backend runs (in-process, a static ``--shard``, a Ray actor):
it computes the unit's missing points (plan.Unit: an item shard, a layer set, every multiplier) and
writes each one to the store as it finishes. A finished point is never computed again, and a point is
a deterministic function of (run, unit), so a retried or duplicated unit rewrites the same bytes.

``collect_rows`` / ``build_tables`` read only run.json and points/: ``steerscale merge`` builds the
tables of a sharded run without loading a model, and names the shards whose points are missing.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from ..core.prompts import answer_scheme, answer_tokens, encode_items
from ..core.prompts import answer_record
from ..engines.base import Engine
from ..engines import get_engine
from ..errors import SteerscaleError
from ..core.evaluate import ABScores
from ..core.models import get_layers
from .plan import ShardPlan, Unit, make_plan
from .tables import SweepResult, aggregate_rows, item_rows

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..config import SweepConfig
    from ..core.data import ABItem
    from ..core.models import ModelInfo
    from ..core.vectors import SteeringVectors

log = logging.getLogger(__name__)

VERSION_KEYS = ("steerscale", "python", "torch", "transformers", "numpy")


def package_versions() -> dict:
    """The versions that change numbers; every unit reports them and a run must not mix them."""
    from ..io.results import versions

    v = versions()
    return {k: v[k] for k in VERSION_KEYS}


def check_versions(got: dict, want: dict, where: str) -> None:
    if got != want:
        diff = "; ".join(f"{k} {got.get(k)} vs {want.get(k)}" for k in sorted(set(got) | set(want))
                         if got.get(k) != want.get(k))
        raise SteerscaleError(f"{where}: package versions differ from the run's ({diff}); a run must not mix "
                              f"versions across nodes: install the same versions everywhere")


def plan_for(identity: dict) -> ShardPlan:
    """The plan a run identity describes (run.json's 'plan', 'config', 'model', 'n_items')."""
    cfg, p = identity["config"], identity.get("plan") or {"n_shards": 1}
    return make_plan(identity["n_items"], cfg["layers"], identity["model"]["n_layers"], cfg["positions"],
                     p["n_shards"], cfg["batch_size"])


def unit_points(unit: Unit, config: SweepConfig) -> list[tuple[int | None, float | None]]:
    """(layer, multiplier) of every point the unit writes; (None, None) is the item shard's baseline."""
    pts = [(l, m) for l in unit.layers for m in config.multipliers if m != 0.0]
    if unit.owns_baseline and 0.0 in config.multipliers:
        pts += [(None, None)] + [(l, 0.0) for l in config.layers]
    return pts


def check_scores(s: ABScores, layer, m) -> ABScores:
    """`s` if every score and logit_diff is finite; otherwise a SteerscaleError naming the point."""
    if not (np.isfinite(s.score).all() and np.isfinite(s.logit_diff).all()):
        where = "unsteered" if layer is None else f"layer {layer}, multiplier {m:g}"
        raise SteerscaleError(f"scores at {where} are NaN or Inf: the model produced non-finite logits "
                              f"(try --dtype float32 or smaller multipliers)")
    return s


def fits(point, n_items: int, layer, m) -> bool:
    """A stored point is usable when it has one row per item; otherwise (e.g. empty rows under a valid
    checksum) it is recomputed instead of failing the same way on every re-run."""
    if point is None:
        return False
    if len(point) != n_items:
        log.warning("stored point layer %s, multiplier %g has %d rows for %d items; recomputing it",
                    layer, m, len(point), n_items)
        return False
    return True


def run_unit(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, vectors: SteeringVectors, items: list[ABItem],
             config: SweepConfig, info: ModelInfo, unit: Unit, store, progress: bool = False,
             engine: Engine | None = None) -> dict:
    """Compute the missing points of `unit` (over the full `items` list) into `store`; return a report.

    `config` is a validated SweepConfig; `store` has ``get``/``put`` with ``part``; `engine` an
    ``engines.Engine`` (default: a fresh ``get_engine(config.engine)``). The engine computes, this function
    stores: the unit's layers go to ``engine.points`` in ``engine.layer_groups`` and every point it
    yields is checked finite and stored at once. Exactness is the engine's (fast == naive to 1e-5).
    """
    t0 = time.time()
    sub = items[unit.item_start : unit.item_stop]
    part, name = unit.part, info.name
    engine = engine or get_engine(config.engine)
    engine.progress = progress
    # Encoded over all items (tokenising only), so every unit of a run gets the same answer scheme.
    all_encoded = encode_items(tokenizer, items, config.template, config.system)
    encoded = all_encoded[unit.item_start : unit.item_stop]
    scheme = answer_scheme(encoded)
    steered = [m for m in config.multipliers if m != 0.0]
    zero = [l for l in config.layers if unit.owns_baseline and 0.0 in config.multipliers
            and not fits(store.get(name, l, 0.0, part=part), len(sub), l, 0.0)]
    n_computed, t_base = 0, 0.0
    prep0 = engine.stats.prepare_s
    layers = list(unit.layers)
    # progress in cost units (engine.layer_cost): with the fast engine early layers cost more, so the ETA of a
    # bar that counted layers would start several times too long
    n_layers = len(get_layers(model))
    cost = {l: engine.layer_cost(l, n_layers) * max(1, len(steered)) for l in layers}
    pbar = tqdm(total=round(sum(cost.values()), 3), desc=f"sweep {name} [{unit.tag}] (cost-weighted)",
                unit="pt", disable=not progress, bar_format="{l_bar}{bar}| [{elapsed}<{remaining}]")
    for group in engine.layer_groups(layers):
        missing = {l: [m for m in steered if not fits(store.get(name, l, m, part=part), len(sub), l, m)]
                   for l in group}
        todo = {l: ms for l, ms in missing.items() if ms}
        for layer, m, scores in engine.points(model, tokenizer, vectors, encoded, config, todo):
            store.put(name, layer, m, item_rows(info, layer, m, sub, check_scores(scores, layer, m)), part=part)
            n_computed += 1
        pbar.update(round(sum(cost[l] for l in group), 3))
    pbar.close()
    if zero or (unit.owns_baseline and 0.0 in config.multipliers and store.get(name, None, part=part) is None):
        # The baseline is asked for last: the fast engine reads it from the end of its unsteered walk.
        cached = store.get(name, None, part=part)
        if cached is not None and len(cached) == len(sub):
            base = ABScores(*(np.array([r[k] for r in cached]) for k in ("score", "logit_diff", "letter_mass")))
        else:
            t = time.time()
            base = check_scores(engine.baseline(model, tokenizer, vectors, encoded, config), None, 0.0)
            t_base = time.time() - t
            store.put(name, None, None, [
                {"item": it.id, "score": float(a), "logit_diff": float(b), "letter_mass": float(c)}
                for it, a, b, c in zip(sub, base.score, base.logit_diff, base.letter_mass)], part=part)
        for layer in zero:
            store.put(name, layer, 0.0, item_rows(info, layer, 0.0, sub, base), part=part)
    return {"unit": unit.to_dict(), "points_computed": n_computed, "seconds": round(time.time() - t0, 3),
            "engine_prepare_s": round(engine.stats.prepare_s - prep0, 3), "baseline_s": round(t_base, 3),
            "answer_scheme": scheme, "answer_tokens": answer_tokens(tokenizer, encoded[0]) if encoded else {},
            **answer_record(tokenizer, all_encoded),  # the run's opening and its first item's last tokens
            "engine": engine.describe(), "versions": package_versions(), "host": platform.node()}


def collect_rows(store, identity: dict, plan: ShardPlan | None = None) -> tuple[list[dict], list[int]]:
    """All item rows of a run from its store, in serial order (layer, multiplier, item), and the
    1-based indices of the units whose points are missing or damaged (rows are then incomplete)."""
    plan = plan or plan_for(identity)
    cfg, name = identity["config"], identity["model"]["name"]
    owners = {u.item_shard: u for u in plan.units if u.owns_baseline}
    of_layer = {(u.item_shard, l): u for u in plan.units for l in u.layers}
    rows, missing = [], set()
    for layer in cfg["layers"]:
        for m in cfg["multipliers"]:
            m = float(m)
            for i in range(plan.item_shards):
                u = owners[i] if m == 0.0 else of_layer[(i, layer)]
                point = store.get(name, layer, m, part=u.part)
                if point is None or len(point) != u.item_stop - u.item_start:
                    missing.add(u.index)
                else:
                    rows.extend(point)
    return rows, sorted(missing)


def build_tables(store, identity: dict, plan: ShardPlan | None = None, where: str = "") -> tuple[list[dict], list[dict]]:
    """(item rows, aggregate rows) of a finished run, from the store alone; a one-line error naming the
    missing shards when some points are not there."""
    plan = plan or plan_for(identity)
    rows, missing = collect_rows(store, identity, plan)
    if missing:
        shown = ", ".join(f"{k}/{plan.n_shards}" for k in missing[:20]) + (" ..." if len(missing) > 20 else "")
        what = (f"shard{'s' if len(missing) > 1 else ''} {shown} {'have' if len(missing) > 1 else 'has'}"
                if plan.n_shards > 1 else "some points have")
        raise SteerscaleError(f"results store {where or getattr(store, 'folder', '')}: {what} missing or damaged "
                              f"points ({len(missing)} of {plan.n_shards} shards incomplete); run them "
                              f"(the same command with --shard K/{plan.n_shards}) and merge again")
    cfg = identity["config"]
    return rows, aggregate_rows(rows, cfg["n_bootstrap"], cfg["seed"])


def write_shard_report(folder, report: dict) -> None:
    from ..io.store import atomic_write_text, inside

    u = report["unit"]
    atomic_write_text(inside(Path(folder) / "shards", f"shard-{u['index']}of{u['n_shards']}.json"),
                      json.dumps(report, indent=2, sort_keys=True) + "\n")


def merge(folder, progress: bool = False):
    """`steerscale merge FOLDER`: check every shard's points, then write the tables (no model is loaded).

    Refuses shard reports that mix package versions; removes stale temporary files. Returns SweepResult.
    """
    from ..io.store import ResultsStore, clean_stale_temps
    from ..io.results import manifest as make_manifest

    folder = Path(folder)
    path = folder / "run.json"
    if not path.is_file():
        raise SteerscaleError(f"{folder}: no run.json; is this a 'steerscale sweep --shard' output folder?")
    try:
        identity = json.loads(path.read_text(encoding="utf-8"))
        identity.pop("store_version")
        plan = plan_for(identity)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SteerscaleError(f"{path}: unreadable run record ({type(e).__name__}: {e})") from None
    store = ResultsStore(folder, identity, lock="merge")
    try:
        clean_stale_temps(folder)
        reports = []
        for f in sorted((folder / "shards").glob("shard-*.json")) if (folder / "shards").is_dir() else []:
            try:
                reports.append(json.loads(f.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        want = identity.get("versions")
        for r in reports:
            if want is not None and r.get("versions") is not None:
                check_versions(r["versions"], want, f"{folder}: shard {r['unit']['index']}/{plan.n_shards} "
                               f"(host {r.get('host')})")
        _check_record_unchanged(folder, store.run_hash)
        rows, agg = build_tables(store, identity, plan, str(folder))
    finally:
        store.close()
    manifest = make_manifest(
        "sweep", identity["config"], identity["model"], time.time(), flags={"merged": True},
        dataset={"n_items": identity["n_items"], "hash": identity["dataset_hash"]},
        answer_scheme="/".join(sorted({str(r.get("answer_scheme")) for r in reports})),  # one: shards agree
        answer_opening=reports[0].get("answer_opening") if reports else None,
        last_prompt_tokens=reports[0].get("last_prompt_tokens") if reports else None,
        plan=dict(plan.to_dict(), units=[u.to_dict() for u in plan.units]),
        shards=sorted(({"index": r["unit"]["index"], "host": r.get("host"), "seconds": r.get("seconds"),
                        "points_computed": r.get("points_computed")} for r in reports), key=lambda r: r["index"]),
        resume={"points_total": len(identity["config"]["layers"]) * len(identity["config"]["multipliers"])},
        identity={"dataset_hash": identity["dataset_hash"], "vectors_hash": identity["vectors_hash"]},
    )
    result = SweepResult(rows, agg, manifest)
    result.save(folder)
    return result


def _check_record_unchanged(folder: Path, run_hash: str, sample: int = 64) -> None:
    """Points exist but none names this run.json's hash: run.json was edited after they were written. Re-running
    shards would be refused (the record no longer matches the command), so say what does work."""
    points = sorted((folder / "points").glob("*.json"))[:sample] if (folder / "points").is_dir() else []
    seen = set()
    for p in points:
        try:
            seen.add(json.loads(p.read_text(encoding="utf-8")).get("run"))
        except (OSError, ValueError, AttributeError):
            continue
    seen.discard(None)
    if seen and run_hash not in seen:
        raise SteerscaleError(f"{folder / 'run.json'}: changed after its points were written (the points name run "
                              f"{sorted(seen)[0]}, run.json now hashes to {run_hash}); restore the original run.json "
                              f"(the points are intact) and merge again, or re-run the sweep into a new --out folder")


__all__ = ["run_unit", "collect_rows", "build_tables", "merge", "package_versions", "check_versions", "plan_for",
           "unit_points", "write_shard_report"]
