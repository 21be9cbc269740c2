"""Layer x multiplier sweeps: the run (plan, store, manifest) around an engine.

``run_sweep`` validates the config, plans the work units (plan.py), and hands each unit to
``units.run_unit``, which asks the engine (``engines.get_engine(config.engine)``) for points and stores
them; the tables are then built from the store alone (``units.build_tables``, tables.py).

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
from dataclasses import asdict

from ..config import SweepConfig
from ..core.prompts import SCHEME_DEFINITIONS
from ..core.data import ABItem, dataset_hash
from ..engines import get_engine
from ..errors import SteerscaleError
from ..core.models import ModelInfo, model_info
from ..io.results import git_revision, versions
from ..io.store import ResultsStore, tensor_hash
from .tables import SweepResult
from .units import build_tables, package_versions, run_unit, write_shard_report

log = logging.getLogger(__name__)


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
    return {"config": config.identity(), "model": model, "dataset_hash": dataset_hash(items),
            "n_items": len(items), "vectors_hash": vectors_hash(vectors)}


class _MemoryStore:
    """The store used without an output folder: points live in a dict."""

    def __init__(self):
        self.d = {}

    def get(self, model, layer, m=None, part=None):
        return self.d.get((model, layer, None if m is None else float(m), part))

    def put(self, model, layer, m, rows, part=None):
        self.d[(model, layer, None if m is None else float(m), part)] = rows

    def get_record(self, model, key):
        return self.d.get(("record", model, key))

    def put_record(self, model, key, data):
        self.d[("record", model, key)] = data

    def close(self):
        pass


def sweep_identity(config: SweepConfig, info: ModelInfo, items: list[ABItem], vectors, plan) -> dict:
    """run_identity plus the shard plan (shards change batch composition) and the package versions (a run
    must not mix them: resuming after an upgrade, or a shard on a node with other versions, is refused)."""
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
    unit with ``run_shard`` (or on a cluster backend) and merging. The engine (``config.engine``,
    ``engines.get_engine``) computes the points; this function only stores and aggregates them.
    """
    info = info or model_info(model)
    if hasattr(vectors, "check_model"):
        vectors.check_model(model)
    config, plan, identity = prepare_sweep(config, info, items, vectors, shards)
    if config.screen != "none" and shards != 1:
        raise SteerscaleError(f"--screen {config.screen} runs in one process (the exact layers follow from the "
                              f"screen): drop --shards {shards}, or sweep without the screen")
    t0 = time.time()
    store = ResultsStore(out_dir, identity, lock=None) if out_dir is not None else _MemoryStore()
    try:
        if out_dir is not None:
            for u in plan.units:  # this process writes every shard (a --shard K/N run takes one of these)
                store.lock(f"shard-{u.index}of{u.n_shards}")
            store.clean_stale_temps()  # this process is the run's driver
        engine = get_engine(config.engine)
        screen = None
        if config.screen != "none":  # screening.py: screen, exact sweep of the confirmed layers, spot check
            from .screening import screened_sweep

            reports, rows, aggregate, screen = screened_sweep(model, tokenizer, vectors, items, config, info,
                                                              identity, store, progress, engine, str(out_dir))
        else:
            reports = [run_unit(model, tokenizer, vectors, items, config, info, u, store, progress, engine)
                       for u in plan.units]
            rows, aggregate = build_tables(store, identity, plan, str(out_dir))
    finally:
        store.close()
    manifest = sweep_manifest(config, info, items, vectors, plan, reports, t0)
    if screen is not None:
        manifest["screen"] = screen
        manifest["resume"]["points_total"] = len(screen["measured_layers"]) * len(config.multipliers)
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
    info = info or model_info(model)
    if hasattr(vectors, "check_model"):
        vectors.check_model(model)
    k, n = shard
    if config is not None and config.screen != "none":
        raise SteerscaleError(f"--screen {config.screen} runs in one process (the exact layers follow from the "
                              f"screen): --shard, --shards and cluster backends cannot run it; sweep without the screen")
    config, plan, identity = prepare_sweep(config, info, items, vectors, n)
    unit = plan.unit(k)
    store = ResultsStore(out_dir, identity, lock=f"shard-{k}of{n}")
    try:
        report = run_unit(model, tokenizer, vectors, items, config, info, unit, store, progress)
        write_shard_report(out_dir, report)
    finally:
        store.close()
    return report


def config_from_identity(identity: dict) -> SweepConfig:
    """The SweepConfig a run identity (run.json) records (moved here from units.py)."""
    return SweepConfig(**identity["config"])


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
        "dataset": {"n_items": len(items), "hash": dataset_hash(items),
                    "sampling": "a limit takes a seeded (seed 0; reproduce: [run] seed), letter-stratified sample"},
        "answer_scheme": scheme,
        "answer_tokens": reports[0]["answer_tokens"] if reports else None,
        "answer_opening": reports[0].get("answer_opening") if reports else None,
        "last_prompt_tokens": reports[0].get("last_prompt_tokens") if reports else None,
        "definitions": {
            "steered_at": "output of decoder layer L (residual stream after the MLP), "
            + ("every token position" if config.positions == "all" else "token positions from the last instruction token on"),
            "score": "p(matching answer token) / sum of p(the choices' answer tokens), where the answer starts",
            "answer_scheme": SCHEME_DEFINITIONS.get(scheme, ""),
            "answer_opening": "what follows the prompt (without its trailing spaces) before the answer letter: '(' "
                              "or ' (', whichever the tokenizer reads with no token across the boundary "
                              "(prompts.answer_opening); last_prompt_tokens: the first item's last tokens before "
                              "the answer token",
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
