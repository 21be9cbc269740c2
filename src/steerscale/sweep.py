"""Layer x multiplier sweeps: engines, tidy result tables and a manifest.

One row per (model, layer, multiplier, item) in ``items.csv`` and one per
(model, layer, multiplier) in ``aggregate.csv`` (mean with a seeded bootstrap
95% interval, and the effect against multiplier 0). Multiplier 0 is the
unsteered model: it is computed once and reported at every layer.

Resumable: with ``out_dir``, every finished (model, layer, multiplier) point is
written at once and atomically to ``out_dir/points/`` (see ``store.ResultsStore``);
re-running the same call continues where an interrupted run stopped, and the
tables, rebuilt from the point files, are byte-identical to an uninterrupted run's.
A different setup (config, model, dataset or vectors) into the same folder is refused.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .config import ENGINES, SweepConfig  # noqa: F401  (SweepConfig moved to config.py; re-exported)
from .data import SCHEME_DEFINITIONS, ABItem, dataset_hash
from .errors import SteerscaleError
from .evaluate import ABScores, ab_scores
from .stats import mean_ci
from .models import ModelInfo, model_info
from .steering import steer
from .results import git_revision, versions, write_csv, write_json  # noqa: F401  (re-exported)
from .store import ResultsStore, tensor_hash

log = logging.getLogger(__name__)

LAYERS_PER_GROUP = 6  # at most this many layers share one unsteered pass (fast engine); at least 5 groups

ITEM_COLUMNS = [
    "model", "n_params", "n_layers", "layer", "depth", "multiplier", "item", "category",
    "score", "logit_diff", "letter_mass",
]
AGG_COLUMNS = [
    "model", "n_params", "n_layers", "layer", "depth", "depth_alt", "multiplier", "n_items",
    "score", "ci_low", "ci_high", "delta", "logit_diff", "letter_mass",
]


def naive_engine(model, tokenizer, vectors, encoded, layer: int, multipliers, config: SweepConfig) -> dict[float, ABScores]:
    """The reference: one full forward pass per item and multiplier, steering hook on `layer`."""
    out = {}
    for m in multipliers:
        with steer(model, vectors, [layer], m, positions=config.positions) as s:
            out[m] = ab_scores(model, tokenizer, encoded, config.batch_size, steering=s)
    return out


def get_engine(name: str):
    """A fresh engine: ``fast`` (steerscale.fast.FastEngine, same numbers, far less work) or ``naive``."""
    if name == "fast":
        from .fast import FastEngine

        return FastEngine()
    if name == "naive":
        return naive_engine
    raise SteerscaleError(f"engine {name!r}: expected one of {', '.join(ENGINES)}")


@dataclass
class SweepResult:
    rows: list[dict]
    aggregate: list[dict]
    manifest: dict

    def save(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "items.csv", self.rows, ITEM_COLUMNS)
        write_csv(out / "aggregate.csv", self.aggregate, AGG_COLUMNS)
        write_json(out / "aggregate.json", self.aggregate)
        write_json(out / "manifest.json", self.manifest)
        return out


def aggregate_rows(rows: list[dict], n_bootstrap: int = 1000, seed: int = 0) -> list[dict]:
    """Mean score per (model, layer, multiplier) with bootstrap interval and delta vs multiplier 0."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["layer"], r["multiplier"]), []).append(r)
    base = {}
    for (model, layer, m), g in groups.items():
        if m == 0.0:
            base[(model, layer)] = float(np.mean([r["score"] for r in g]))
    out = []
    for (model, layer, m), g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        mean, lo, hi = mean_ci([r["score"] for r in g], n_bootstrap, seed)
        r0 = g[0]
        out.append({
            "model": model, "n_params": r0["n_params"], "n_layers": r0["n_layers"], "layer": layer,
            "depth": r0["depth"], "depth_alt": layer / max(r0["n_layers"] - 1, 1), "multiplier": m,
            "n_items": len(g), "score": mean, "ci_low": lo, "ci_high": hi,
            "delta": mean - base[(model, layer)] if (model, layer) in base else float("nan"),
            "logit_diff": float(np.mean([r["logit_diff"] for r in g])),
            "letter_mass": float(np.mean([r["letter_mass"] for r in g])),
        })
    return out


def item_rows(info: ModelInfo, layer: int, m: float, items: list[ABItem], s: ABScores) -> list[dict]:
    return [
        {
            "model": info.name, "n_params": info.n_params, "n_layers": info.n_layers, "layer": layer,
            "depth": layer / info.n_layers, "multiplier": m, "item": it.id, "category": it.category,
            "score": float(s.score[i]), "logit_diff": float(s.logit_diff[i]), "letter_mass": float(s.letter_mass[i]),
        }
        for i, it in enumerate(items)
    ]


def vectors_hash(vectors) -> str:
    """Content hash of the steering vectors (SteeringVectors, tensor, or dict layer -> tensor)."""
    import torch

    v = getattr(vectors, "vectors", vectors)
    if isinstance(v, dict):
        v = torch.stack([torch.as_tensor(v[k]).float().reshape(-1) for k in sorted(v)])
    return tensor_hash(torch.as_tensor(v))


def run_identity(config: SweepConfig, info: ModelInfo, items: list[ABItem], vectors) -> dict:
    """What must match for a run folder to be resumed: config, model (with ``weights_fingerprint``, so
    another checkpoint of the same name and shape is refused), dataset and vectors."""
    model = {k: v for k, v in info.to_dict().items() if k not in ("spec", "device")}
    return {"config": asdict(config), "model": model, "dataset_hash": dataset_hash(items),
            "n_items": len(items), "vectors_hash": vectors_hash(vectors)}


def _check_scores(s: ABScores, layer, m) -> ABScores:
    if not (np.isfinite(s.score).all() and np.isfinite(s.logit_diff).all()):
        where = "unsteered" if layer is None else f"layer {layer}, multiplier {m:g}"
        raise SteerscaleError(f"scores at {where} are NaN or Inf: the model produced non-finite logits "
                              f"(try --dtype float32 or smaller multipliers)")
    return s


def _fits(point, n_items: int, layer, m) -> bool:
    """A stored point is usable when it has one row per item; otherwise (e.g. empty rows under a valid
    checksum) it is recomputed instead of failing the same way on every re-run."""
    if point is None:
        return False
    if len(point) != n_items:
        log.warning("stored point layer %s, multiplier %g has %d rows for %d items; recomputing it",
                    layer, m, len(point), n_items)
        return False
    return True


class _MemoryStore:
    """The store used without an output folder: points live in a dict."""

    def __init__(self):
        self.d = {}

    def get(self, model, layer, m=None, part=None):
        return self.d.get((model, layer, None if m is None else float(m), part))

    def put(self, model, layer, m, rows, part=None):
        self.d[(model, layer, None if m is None else float(m), part)] = rows

    def close(self):
        pass


def sweep_identity(config: SweepConfig, info: ModelInfo, items: list[ABItem], vectors, plan) -> dict:
    """run_identity plus the shard plan (shards change batch composition) and the package versions (a run
    must not mix them: resuming after an upgrade, or a shard on a node with other versions, is refused)."""
    from .units import package_versions

    return dict(run_identity(config, info, items, vectors), plan=plan.to_dict(), versions=package_versions())


def prepare_sweep(config: SweepConfig | None, info: ModelInfo, items: list[ABItem], vectors, shards: int = 1):
    """(validated config, plan, identity) of a sweep: everything but the model work."""
    from .plan import make_plan

    config = (config or SweepConfig()).validate(info.n_layers)
    if not items:
        raise SteerscaleError("no items to evaluate")
    plan = make_plan(len(items), config.layers, info.n_layers, config.positions, shards, config.batch_size)
    return config, plan, sweep_identity(config, info, items, vectors, plan)


def run_sweep(
    model,
    tokenizer,
    vectors,
    items: list[ABItem],
    config: SweepConfig | None = None,
    info: ModelInfo | None = None,
    out_dir=None,
    progress: bool = True,
    shards: int = 1,
) -> SweepResult:
    """Score every (layer, multiplier) point on `items`; write tables to `out_dir` if given.

    With `out_dir`, finished points are stored as they complete and an interrupted
    run resumes: only missing points are computed. `shards` > 1 runs the units of that shard plan
    (plan.py) one after another in this process: the same points, bytes and folder as running each
    unit with ``run_shard`` (or on a cluster backend) and merging.
    """
    from .units import build_tables, run_unit

    info = info or model_info(model)
    if hasattr(vectors, "check_model"):
        vectors.check_model(model)
    config, plan, identity = prepare_sweep(config, info, items, vectors, shards)
    t0 = time.time()
    store = ResultsStore(out_dir, identity, lock=None) if out_dir is not None else _MemoryStore()
    try:
        if out_dir is not None:
            for u in plan.units:  # this process writes every shard (a --shard K/N run takes one of these)
                store.lock(f"shard-{u.index}of{u.n_shards}")
            store.clean_stale_temps()  # this process is the run's driver
        engine = get_engine(config.engine)
        reports = [run_unit(model, tokenizer, vectors, items, config, info, u, store, progress, engine)
                   for u in plan.units]
        rows, aggregate = build_tables(store, identity, plan, str(out_dir))
    finally:
        store.close()
    manifest = sweep_manifest(config, info, items, vectors, plan, reports, t0)
    result = SweepResult(rows, aggregate, manifest)
    if out_dir is not None:
        result.save(out_dir)
    return result


def run_shard(model, tokenizer, vectors, items, config: SweepConfig | None, info: ModelInfo | None, out_dir,
              shard: tuple[int, int], progress: bool = True) -> dict:
    """One static shard (``--shard K/N``) into the shared run folder `out_dir`; `steerscale merge` builds the
    tables once every shard is there. Holds the lock ``locks/shard-KofN.lock`` while it runs (a second
    process for the same shard is refused; other shards may write the folder at the same time).
    Returns the unit report (also written to ``shards/shard-KofN.json``)."""
    from .units import run_unit, write_shard_report

    info = info or model_info(model)
    if hasattr(vectors, "check_model"):
        vectors.check_model(model)
    k, n = shard
    config, plan, identity = prepare_sweep(config, info, items, vectors, n)
    unit = plan.unit(k)
    store = ResultsStore(out_dir, identity, lock=f"shard-{k}of{n}")
    try:
        report = run_unit(model, tokenizer, vectors, items, config, info, unit, store, progress)
        write_shard_report(out_dir, report)
    finally:
        store.close()
    return report


def sweep_manifest(config, info, items, vectors, plan, reports: list[dict], t0: float) -> dict:
    engine = dict(reports[-1]["engine"]) if reports else {"name": config.engine}
    scheme = reports[0]["answer_scheme"] if reports else None  # one scheme for the whole run (run_unit)
    return {
        "kind": "sweep",
        "created_unix": round(t0, 3),
        "command": sys.argv,
        "git_revision": git_revision(),
        "versions": versions(),
        "model": info.to_dict(),
        "config": asdict(config),
        "vectors": getattr(vectors, "meta", {}),
        "dataset": {"n_items": len(items), "hash": dataset_hash(items)},
        "answer_scheme": scheme,
        "answer_tokens": reports[0]["answer_tokens"] if reports else None,
        "definitions": {
            "steered_at": "output of decoder layer L (residual stream after the MLP), "
            + ("every token position" if config.positions == "all" else "token positions from the last instruction token on"),
            "score": "p(matching answer token) / sum of p(the choices' answer tokens), where the answer starts",
            "answer_scheme": SCHEME_DEFINITIONS.get(scheme, ""),
            "depth": "layer / n_layers (depth_alt = layer / (n_layers - 1))",
            "baseline": "multiplier 0 is the unsteered model, computed once and repeated at every layer",
        },
        "timings_s": {"total": round(time.time() - t0, 3),
                      "engine_prepare": round(sum(r["engine_prepare_s"] for r in reports), 3),
                      "baseline": round(sum(r["baseline_s"] for r in reports), 3)},
        "engine": engine,
        "plan": dict(plan.to_dict(), units=[u.to_dict() for u in plan.units]),
        "resume": {"points_total": len(config.layers) * len(config.multipliers),
                   "points_computed_now": sum(r["points_computed"] for r in reports),
                   "store": "points/: one atomically written JSON file per (model, layer, multiplier)"},
        "identity": {"dataset_hash": dataset_hash(items), "vectors_hash": vectors_hash(vectors)},
    }
