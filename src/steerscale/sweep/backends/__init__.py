"""Where a sweep's work units run: one small interface, several engines.

A backend takes the units of a shard plan and gets their points into the run's store:

    backend.start(model_ref)  -> [hello]   load the model where the work runs; each worker says
                                           {"info": ModelInfo dict, "versions": ..., "host": ...}
    backend.run(job, units, store) -> [report]   compute the units; a report per finished unit
    backend.close()

``local`` (the default) runs the units in this process with ``units.run_unit``; ``ray`` runs the same
function in Ray actors, one per model replica (backends/ray.py). ``drive_sweep`` is the driver both
share: it builds the identity and plan, holds the shard locks, skips finished units, checks that every
worker runs the same package versions, and builds the tables from the store alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import SteerscaleError
from .workers import check_workers

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class ModelRef:
    """How a worker loads the model itself (weights never travel between processes)."""

    spec: str
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False
    name: str | None = None  # the name results carry (default: from the spec)


@dataclass
class Job:
    """What every unit of one sweep needs besides the model."""

    config: object  # validated SweepConfig
    identity: dict
    items: list
    vectors: object  # SteeringVectors
    out_dir: str | None
    store_mode: str = "shared"  # "shared": workers write the store; "driver": they return points
    progress: bool = False
    extra: dict = field(default_factory=dict)


def get_backend(name: str, **kw):
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(**kw)
    if name == "ray":
        from .ray import RayBackend

        return RayBackend(**kw)
    raise SteerscaleError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")


def unit_done(store, unit, config, name: str) -> bool:
    from ..units import unit_points

    n = unit.item_stop - unit.item_start
    for layer, m in unit_points(unit, config):
        rows = store.get(name, layer, m, part=unit.part)
        if rows is None or len(rows) != n:
            return False
    return True


def default_shards(want: int, n_items: int, layers: list[int], n_layers: int, positions: str, batch_size: int) -> int:
    """The largest shard count <= `want` that the plan can make (plan.make_plan's rules), at least 1: a
    default plan is clamped to the units the items and layers allow instead of being refused."""
    from ..plan import make_plan

    for n in range(max(1, int(want)), 0, -1):
        try:
            make_plan(n_items, layers, n_layers, positions, n, batch_size)
            return n
        except SteerscaleError:
            continue
    return 1


def _read_json(path: Path):
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _model_files(model_ref: ModelRef) -> dict | None:
    """What the driver can tell about the model without loading it: its files' fingerprint (None when the
    files are not on this machine, e.g. a hub id not cached here)."""
    from ...core.models import model_files_fingerprint

    fp = model_files_fingerprint(model_ref.spec)
    if fp is None:
        return None
    return {"spec": model_ref.spec, "dtype": model_ref.dtype, "name": model_ref.name, "files_fingerprint": fp}


def drive_sweep(backend, model_ref: ModelRef, items, vectors, config, out_dir, shards: int | None = None,
                store_mode: str = "shared", progress: bool = True):
    """Run a whole sweep on `backend` into `out_dir` (resumable) and write its tables. Returns SweepResult.

    Same folder, points and table bytes as ``run_sweep(..., shards=shards)``: the units are the plan's and
    every worker runs ``units.run_unit``. ``shards=None``: the plan of the folder's run record when it has
    one, else two units per worker, clamped to what the items and layers allow (``default_shards``).
    A kill at any moment loses at most the units in flight.

    Before any worker starts (or loads a model), on the driver: `out_dir` is made absolute (workers get
    that path, never one relative to where they run); the plan is made, so an infeasible plan is refused;
    and when the folder holds this very run, finished, made from the same model files (the files
    fingerprint the driver recorded), the tables are rebuilt from the store and no model is loaded.
    """
    import os

    from ...core.models import ModelInfo
    from ...io.store import ResultsStore
    from ..tables import SweepResult
    from ..run import prepare_sweep, sweep_manifest
    from ..units import build_tables, package_versions

    if store_mode not in ("shared", "driver"):
        raise SteerscaleError(f"--store {store_mode!r}: expected shared or driver")
    t0 = time.time()
    out_dir = Path(os.path.abspath(os.path.expanduser(str(out_dir))))
    old_run = _read_json(out_dir / "run.json")
    old_manifest = _read_json(out_dir / "manifest.json")
    n_layers = getattr(vectors, "n_layers", None)
    pre = None  # (config, plan) known before any worker starts
    if shards is None and isinstance(old_run, dict) and isinstance(old_run.get("plan"), dict):
        shards = old_run["plan"].get("n_shards") if isinstance(old_run["plan"].get("n_shards"), int) else None
    if n_layers:
        probe = ModelInfo(name=model_ref.name or "?", spec=model_ref.spec, model_type="?", n_layers=int(n_layers),
                          hidden_size=int(vectors.hidden_size), n_params=0, dtype=model_ref.dtype,
                          device=model_ref.device)
        cfg = (config or _sweep_config()).validate(probe.n_layers)
        if shards is None:
            want = backend.planned_workers() * 2
            shards = default_shards(want, len(items), cfg.layers, probe.n_layers, cfg.positions, cfg.batch_size)
        pre = prepare_sweep(config, probe, items, vectors, shards)[:2]  # refuses an infeasible plan, loads nothing
        done = _finished_without_loading(out_dir, old_run, old_manifest, model_ref, items, vectors, config, shards)
        if done is not None:
            return done
    t_start = time.time()
    hellos = backend.start(model_ref)
    t_start = time.time() - t_start
    info = check_workers(hellos, package_versions())
    if hasattr(vectors, "n_layers") and (vectors.n_layers, vectors.hidden_size) != (info.n_layers, info.hidden_size):
        raise SteerscaleError(f"vectors have {vectors.n_layers} layers x hidden {vectors.hidden_size}; the model "
                              f"{model_ref.spec} has {info.n_layers} layers x hidden {info.hidden_size}")
    if shards is None:
        shards = default_shards(2 * len(hellos), len(items), (config or _sweep_config()).validate(info.n_layers).layers,
                                info.n_layers, (config or _sweep_config()).positions,
                                (config or _sweep_config()).batch_size)
    config, plan, identity = prepare_sweep(config, info, items, vectors, shards)
    if pre is not None and pre[1] != plan:
        raise SteerscaleError("internal: the plan made before loading differs from the plan after loading")
    store = ResultsStore(out_dir, identity, lock=None)
    try:
        for u in plan.units:  # this driver writes every shard: hold every shard's lock
            store.lock(f"shard-{u.index}of{u.n_shards}")
        store.clean_stale_temps()
        todo = [u for u in plan.units if not unit_done(store, u, config, info.name)]
        job = Job(config, identity, items, vectors, str(out_dir), store_mode, progress)
        t1 = time.time()
        reports = backend.run(job, todo, store) if todo else []
        t_run = time.time() - t1
        lost = [u.tag for u in todo if not unit_done(store, u, config, info.name)]
        if lost:
            raise SteerscaleError(f"the Ray workers reported units {', '.join(lost[:10])} finished, but their points "
                                  f"are not in {out_dir}: the workers wrote into a folder the driver cannot see; "
                                  f"put --out on a filesystem every node shares, or use --store driver")
        rows, aggregate = build_tables(store, identity, plan, str(out_dir))
    finally:
        store.close()
    manifest = sweep_manifest(config, info, items, vectors, plan, reports, t0)
    _keep_unit_facts(manifest, reports, old_manifest)
    manifest["backend"] = dict(backend.describe(), store=store_mode, units_run=[r["unit"]["index"] for r in reports],
                               hosts=sorted({h.get("host", "?") for h in hellos}), model_loads=len(hellos),
                               model_files=_model_files(model_ref), out=str(out_dir),
                               start_s=round(t_start, 3), units_s=round(t_run, 3))
    result = SweepResult(rows, aggregate, manifest)
    result.save(out_dir)
    return result


def _sweep_config():
    from ...config import SweepConfig

    return SweepConfig()


def _keep_unit_facts(manifest: dict, reports: list, old_manifest) -> None:
    """A run that computed no unit now keeps what the units had reported (answer scheme, tokens, engine)."""
    if reports or not isinstance(old_manifest, dict):
        return
    for k in ("answer_scheme", "answer_tokens", "engine"):
        if old_manifest.get(k) is not None:
            manifest[k] = old_manifest[k]


def _finished_without_loading(out_dir: Path, old_run, old_manifest, model_ref, items, vectors, config, shards):
    """The SweepResult of a finished run rebuilt from its store without loading a model, or None when the
    folder does not hold this run finished (the caller then starts the workers, which check everything).

    This run: run.json equals the identity this command gives with the recorded model (anything else but
    the model differing is refused here, before any load), and the manifest records the same model spec,
    dtype and files fingerprint as the files the driver sees now."""
    from ...core.models import ModelInfo
    from ...io.store import ResultsStore
    from ..tables import SweepResult
    from ..run import prepare_sweep, sweep_manifest
    from ..units import build_tables

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
