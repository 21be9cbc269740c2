"""Layer x multiplier sweeps: the run (identity, plan, store, manifest) around an engine, on a backend.

``drive_sweep`` is the one driver of every sweep: it validates the config, plans the work units (plan.py),
holds the shard locks, hands the units to a backend (``backends.base.Backend``: in this process, or Ray
actors), where ``units.run_unit`` asks the engine (``engines.get_engine(config.engine)``) for points and
stores them; the tables are then built from the store alone (``units.build_tables``, tables.py), and the
manifest written. ``run_sweep`` is the local backend holding a loaded model, driven by ``drive_sweep``;
``run_shard`` runs one static shard (``--shard K/N``) for ``steerscale merge``.

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

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import SweepConfig
from ..core.prompts import SCHEME_DEFINITIONS
from ..core.data import ABItem, dataset_hash
from ..errors import SteerscaleError
from ..core.models import ModelInfo, model_info
from ..io.results import manifest as make_manifest
from ..io.store import ResultsStore, tensor_hash
from .backends.base import Backend, Job, ModelRef, screen_refused
from .backends.local import LocalBackend
from .backends.workers import check_workers
from .tables import SweepResult
from .units import build_tables, package_versions, run_unit, unit_points, write_shard_report

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..core.vectors import SteeringVectors
    from .plan import ShardPlan

log = logging.getLogger(__name__)


def vectors_hash(vectors: SteeringVectors) -> str:
    """Content hash of the steering vectors (SteeringVectors, tensor, or dict layer -> tensor)."""
    import torch

    v = getattr(vectors, "vectors", vectors)
    if isinstance(v, dict):
        v = torch.stack([torch.as_tensor(v[k]).float().reshape(-1) for k in sorted(v)])
    return tensor_hash(torch.as_tensor(v))


def run_identity(config: SweepConfig, info: ModelInfo, items: list[ABItem], vectors: SteeringVectors) -> dict:
    """What must match for a run folder to be resumed: config, model (with ``weights_fingerprint``, so
    another checkpoint of the same name and shape is refused), dataset and vectors."""
    model = {k: v for k, v in info.to_dict().items() if k not in ("spec", "device")}
    return {"config": config.identity(), "model": model, "dataset_hash": dataset_hash(items),
            "n_items": len(items), "vectors_hash": vectors_hash(vectors)}


class _MemoryStore:
    """The store used without an output folder: points live in a dict."""

    def __init__(self):
        self.d = {}

    def get(self, model: str, layer, m=None, part=None):
        return self.d.get((model, layer, None if m is None else float(m), part))

    def put(self, model: str, layer, m, rows, part=None):
        self.d[(model, layer, None if m is None else float(m), part)] = rows

    def get_record(self, model: str, key):
        return self.d.get(("record", model, key))

    def put_record(self, model: str, key, data):
        self.d[("record", model, key)] = data

    def close(self):
        pass


def sweep_identity(config: SweepConfig, info: ModelInfo, items: list[ABItem], vectors: SteeringVectors,
                   plan: ShardPlan) -> dict:
    """run_identity plus the shard plan (shards change batch composition) and the package versions (a run
    must not mix them: resuming after an upgrade, or a shard on a node with other versions, is refused)."""
    return dict(run_identity(config, info, items, vectors), plan=plan.to_dict(), versions=package_versions())


def prepare_sweep(config: SweepConfig | None, info: ModelInfo, items: list[ABItem], vectors: SteeringVectors,
                  shards: int = 1) -> tuple[SweepConfig, ShardPlan, dict]:
    """(validated config, plan, identity) of a sweep: everything but the model work."""
    from .plan import make_plan

    config = (config or SweepConfig()).validate(info.n_layers)
    if not items:
        raise SteerscaleError("no items to evaluate")
    plan = make_plan(len(items), config.layers, info.n_layers, config.positions, shards, config.batch_size)
    return config, plan, sweep_identity(config, info, items, vectors, plan)


def run_sweep(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    vectors: SteeringVectors,
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

    This is the local backend holding `model` (``backends.local.LocalBackend``) driven by ``drive_sweep``.
    """
    info = info or model_info(model)
    if hasattr(vectors, "check_model"):
        vectors.check_model(model)
    return drive_sweep(LocalBackend(model, tokenizer, info), None, items, vectors, config, out_dir, shards,
                       progress=progress)


def drive_sweep(backend: Backend, model_ref: ModelRef | None, items: list[ABItem], vectors: SteeringVectors,
                config: SweepConfig | None, out_dir, shards: int | None = None, store_mode: str = "shared",
                progress: bool = True) -> SweepResult:
    """Run a whole sweep on `backend` into `out_dir` and write its tables: the one driver of every sweep.

    The units are the plan's and every worker runs ``units.run_unit``, so every backend gives the same
    folder, points and table bytes. This function alone holds the shard locks, removes stale temporaries,
    skips finished units (``Backend.reruns_finished_units``), checks that every worker runs the same package
    versions and model, builds the tables from the store, writes the manifest and saves. A kill at any
    moment loses at most the units in flight. `store_mode` is the Ray backend's (``shared`` / ``driver``).

    `model_ref` None (``run_sweep``): `backend` already holds a model loaded in this process; `out_dir` is
    used as given, and may be None (points in memory, nothing written); the manifest is ``run_sweep``'s
    (no ``backend`` record). With a `model_ref`, the workers load the model, and before any of them starts,
    on the driver: `out_dir` is made absolute (workers get that path, never one relative to where they run);
    ``shards=None`` becomes the plan of the folder's run record when it has one, else two units per worker,
    clamped to what the items and layers allow (``default_shards``); the plan is made, so an infeasible plan
    is refused; and when the folder holds this very run, finished, made from the same model files (the files
    fingerprint the driver recorded), the tables are rebuilt from the store and no model is loaded.
    """
    if store_mode not in ("shared", "driver"):
        raise SteerscaleError(f"--store {store_mode!r}: expected shared or driver")
    t0 = time.time()
    old_manifest = pre = None
    if model_ref is not None:
        out_dir = Path(os.path.abspath(os.path.expanduser(str(out_dir))))
        old_run, old_manifest = _read_json(out_dir / "run.json"), _read_json(out_dir / "manifest.json")
        shards, pre, done = _before_loading(backend, model_ref, items, vectors, config, out_dir, shards, old_run,
                                            old_manifest)
        if done is not None:
            return done
    t_start = time.time()
    hellos = backend.start(model_ref)
    t_start = time.time() - t_start
    info = check_workers(hellos, package_versions())
    if hasattr(vectors, "n_layers") and (vectors.n_layers, vectors.hidden_size) != (info.n_layers, info.hidden_size):
        raise SteerscaleError(f"vectors have {vectors.n_layers} layers x hidden {vectors.hidden_size}; the model "
                              f"{model_ref.spec if model_ref else info.spec} has {info.n_layers} layers x hidden "
                              f"{info.hidden_size}")
    if shards is None:
        cfg = (config or SweepConfig()).validate(info.n_layers)
        shards = default_shards(2 * len(hellos), len(items), cfg.layers, info.n_layers, cfg.positions, cfg.batch_size)
    config, plan, identity = prepare_sweep(config, info, items, vectors, shards)
    if pre is not None and pre != plan:
        raise SteerscaleError("internal: the plan made before loading differs from the plan after loading")
    if config.screen != "none" and not backend.can_screen:
        raise SteerscaleError(screen_refused(config.screen))
    if config.screen != "none" and shards != 1:
        raise SteerscaleError(f"--screen {config.screen} runs in one process (the exact layers follow from the "
                              f"screen): drop --shards {shards}, or sweep without the screen")
    where = str(out_dir)
    store = ResultsStore(out_dir, identity, lock=None) if out_dir is not None else _MemoryStore()
    screen = None
    try:
        if out_dir is not None:
            for u in plan.units:  # this driver writes every shard (a --shard K/N run takes one of these)
                store.lock(f"shard-{u.index}of{u.n_shards}")
            store.clean_stale_temps()
        job = Job(config, identity, items, vectors, None if out_dir is None else str(out_dir), store_mode, progress)
        t1 = time.time()
        if config.screen != "none":  # screening.py: screen, exact sweep of the confirmed layers, spot check
            reports, rows, aggregate, screen = backend.screen(job, store, where)
        else:
            todo = [u for u in plan.units
                    if backend.reruns_finished_units or not unit_done(store, u, config, info.name)]
            reports = backend.run(job, todo, store) if todo else []
            lost = [u.tag for u in todo if not unit_done(store, u, config, info.name)]
            if lost:
                raise SteerscaleError(f"the Ray workers reported units {', '.join(lost[:10])} finished, but their "
                                      f"points are not in {out_dir}: the workers wrote into a folder the driver cannot "
                                      f"see; put --out on a filesystem every node shares, or use --store driver")
            rows, aggregate = build_tables(store, identity, plan, where)
        t_run = time.time() - t1
    finally:
        store.close()
    manifest = sweep_manifest(config, info, items, vectors, plan, reports, t0)
    if screen is not None:
        manifest["screen"] = screen
        manifest["resume"]["points_total"] = len(screen["measured_layers"]) * len(config.multipliers)
    if model_ref is not None:
        _keep_unit_facts(manifest, reports, old_manifest)
        manifest["backend"] = dict(backend.describe(), store=store_mode,
                                   units_run=[r["unit"]["index"] for r in reports],
                                   hosts=sorted({h.get("host", "?") for h in hellos}), model_loads=len(hellos),
                                   model_files=_model_files(model_ref), out=str(out_dir),
                                   start_s=round(t_start, 3), units_s=round(t_run, 3))
    result = SweepResult(rows, aggregate, manifest)
    if out_dir is not None:
        result.save(out_dir)
    return result


def run_shard(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, vectors: SteeringVectors, items: list[ABItem],
              config: SweepConfig | None, info: ModelInfo | None, out_dir, shard: tuple[int, int],
              progress: bool = True) -> dict:
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


def sweep_manifest(config: SweepConfig, info: ModelInfo, items: list[ABItem], vectors: SteeringVectors,
                   plan: ShardPlan, reports: list[dict], t0: float) -> dict:
    """The manifest of a sweep (``io.results.manifest``'s head, then the sweep's sections), from the unit
    reports of this run (none: a run that computed nothing now)."""
    engine = dict(reports[-1]["engine"]) if reports else {"name": config.engine}
    scheme = reports[0]["answer_scheme"] if reports else None  # one scheme for the whole run (run_unit)
    return make_manifest(
        "sweep", config, info, t0,
        vectors=getattr(vectors, "meta", {}),
        dataset={"n_items": len(items), "hash": dataset_hash(items),
                 "sampling": "a limit takes a seeded (seed 0; reproduce: [run] seed), letter-stratified sample"},
        answer_scheme=scheme,
        answer_tokens=reports[0]["answer_tokens"] if reports else None,
        answer_opening=reports[0].get("answer_opening") if reports else None,
        last_prompt_tokens=reports[0].get("last_prompt_tokens") if reports else None,
        definitions={
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
        timings_s={"total": round(time.time() - t0, 3),
                   "engine_prepare": round(sum(r["engine_prepare_s"] for r in reports), 3),
                   "baseline": round(sum(r["baseline_s"] for r in reports), 3)},
        engine=engine,
        plan=dict(plan.to_dict(), units=[u.to_dict() for u in plan.units]),
        resume={"points_total": len(config.layers) * len(config.multipliers),
                "points_computed_now": sum(r["points_computed"] for r in reports),
                "store": "points/: one atomically written JSON file per (model, layer, multiplier)"},
        identity={"dataset_hash": dataset_hash(items), "vectors_hash": vectors_hash(vectors)},
    )


def unit_done(store, unit, config: SweepConfig, name: str) -> bool:
    """Every point of `unit` is in `store` with one row per item."""
    n = unit.item_stop - unit.item_start
    for layer, m in unit_points(unit, config):
        rows = store.get(name, layer, m, part=unit.part)
        if rows is None or len(rows) != n:
            return False
    return True


def default_shards(want: int, n_items: int, layers: list[int], n_layers: int, positions: str, batch_size: int) -> int:
    """The largest shard count <= `want` that the plan can make (plan.make_plan's rules), at least 1: a
    default plan is clamped to the units the items and layers allow instead of being refused."""
    from .plan import make_plan

    for n in range(max(1, int(want)), 0, -1):
        try:
            make_plan(n_items, layers, n_layers, positions, n, batch_size)
            return n
        except SteerscaleError:
            continue
    return 1


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _model_files(model_ref: ModelRef) -> dict | None:
    """What the driver can tell about the model without loading it: its files' fingerprint (None when the
    files are not on this machine, e.g. a hub id not cached here)."""
    from ..core.models import model_files_fingerprint

    fp = model_files_fingerprint(model_ref.spec)
    if fp is None:
        return None
    return {"spec": model_ref.spec, "dtype": model_ref.dtype, "name": model_ref.name, "files_fingerprint": fp}


def _before_loading(backend: Backend, model_ref: ModelRef, items: list[ABItem], vectors: SteeringVectors,
                    config: SweepConfig | None, out_dir: Path, shards: int | None, old_run, old_manifest):
    """(shards, the plan made before any worker starts or None, the finished run's SweepResult or None): what
    the driver settles from the vectors' shape alone (drive_sweep's docstring)."""
    if shards is None and isinstance(old_run, dict) and isinstance(old_run.get("plan"), dict):
        shards = old_run["plan"].get("n_shards") if isinstance(old_run["plan"].get("n_shards"), int) else None
    n_layers = getattr(vectors, "n_layers", None)
    if not n_layers:
        return shards, None, None
    probe = ModelInfo(name=model_ref.name or "?", spec=model_ref.spec, model_type="?", n_layers=int(n_layers),
                      hidden_size=int(vectors.hidden_size), n_params=0, dtype=model_ref.dtype, device=model_ref.device)
    if shards is None:
        cfg = (config or SweepConfig()).validate(probe.n_layers)
        shards = default_shards(backend.planned_workers() * 2, len(items), cfg.layers, probe.n_layers, cfg.positions,
                                cfg.batch_size)
    pre = prepare_sweep(config, probe, items, vectors, shards)[1]  # refuses an infeasible plan, loads nothing
    return shards, pre, _finished_without_loading(out_dir, old_run, old_manifest, model_ref, items, vectors, config,
                                                  shards)


def _keep_unit_facts(manifest: dict, reports: list, old_manifest) -> None:
    """A run that computed no unit now keeps what the units had reported (answer scheme, tokens, engine)."""
    if reports or not isinstance(old_manifest, dict):
        return
    for k in ("answer_scheme", "answer_tokens", "engine"):
        if old_manifest.get(k) is not None:
            manifest[k] = old_manifest[k]


def _finished_without_loading(out_dir: Path, old_run, old_manifest, model_ref: ModelRef, items: list[ABItem],
                              vectors: SteeringVectors, config: SweepConfig | None, shards: int):
    """The SweepResult of a finished run rebuilt from its store without loading a model, or None when the
    folder does not hold this run finished (the caller then starts the workers, which check everything).

    This run: run.json equals the identity this command gives with the recorded model (anything else but
    the model differing is refused here, before any load), and the manifest records the same model spec,
    dtype and files fingerprint as the files the driver sees now."""
    if not (isinstance(old_run, dict) and isinstance(old_run.get("model"), dict)):
        return None
    try:
        info = ModelInfo(**dict(old_run["model"], spec=model_ref.spec, device=model_ref.device))
    except TypeError:
        return None
    t0 = time.time()
    config, plan, identity = prepare_sweep(config, info, items, vectors, shards)
    # refuses a folder of another setup (config, plan, items, vectors, versions) before any load; the model
    # part is the recorded one here, so the workers check it after loading when the run is not finished
    store = ResultsStore(out_dir, identity, lock=None)
    try:
        was = (old_manifest.get("backend") or {}).get("model_files") if isinstance(old_manifest, dict) else None
        if not was or was != _model_files(model_ref):
            return None
        for u in plan.units:
            store.lock(f"shard-{u.index}of{u.n_shards}")
        if not all(unit_done(store, u, config, info.name) for u in plan.units):
            return None
        store.clean_stale_temps()
        rows, aggregate = build_tables(store, identity, plan, str(out_dir))
    finally:
        store.close()
    manifest = sweep_manifest(config, info, items, vectors, plan, [], t0)
    _keep_unit_facts(manifest, [], old_manifest)
    manifest["model"] = dict(old_manifest.get("model") or info.to_dict(), spec=model_ref.spec, device=model_ref.device)
    manifest["backend"] = dict(old_manifest["backend"], units_run=[], hosts=[], model_loads=0, out=str(out_dir),
                               start_s=0.0, units_s=0.0, note="finished run: tables rebuilt from the store, no worker "
                               "started, no model loaded")
    result = SweepResult(rows, aggregate, manifest)
    result.save(out_dir)
    return result
