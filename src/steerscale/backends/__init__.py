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

from ..errors import SteerscaleError

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


def check_workers(hellos: list[dict], versions: dict):
    """The ModelInfo every worker loaded (they must agree), after checking their package versions."""
    from ..models import ModelInfo
    from ..units import check_versions

    if not hellos:
        raise SteerscaleError("no worker could be started")
    for h in hellos:
        check_versions(h["versions"], versions, f"worker on host {h.get('host')}")
    key = lambda h: {k: v for k, v in h["info"].items() if k != "device"}  # noqa: E731
    for h in hellos[1:]:
        if key(h) != key(hellos[0]):
            raise SteerscaleError(f"workers loaded different models: {key(hellos[0])} vs {key(h)} "
                                  f"(host {h.get('host')}); every node must see the same model files")
    return ModelInfo(**hellos[0]["info"])


def drive_sweep(backend, model_ref: ModelRef, items, vectors, config, out_dir, shards: int | None = None,
                store_mode: str = "shared", progress: bool = True):
    """Run a whole sweep on `backend` into `out_dir` (resumable) and write its tables. Returns SweepResult.

    Same folder, points and table bytes as ``run_sweep(..., shards=shards)``: the units are the plan's and
    every worker runs ``units.run_unit``. ``shards=None``: two units per worker. A kill at any moment loses at most the units in flight.
    """
    from ..store import ResultsStore
    from ..sweep import SweepResult, prepare_sweep, sweep_manifest
    from ..units import build_tables, package_versions

    if store_mode not in ("shared", "driver"):
        raise SteerscaleError(f"--store {store_mode!r}: expected shared or driver")
    t0 = time.time()
    hellos = backend.start(model_ref)
    t_start = time.time() - t0
    info = check_workers(hellos, package_versions())
    if hasattr(vectors, "n_layers") and (vectors.n_layers, vectors.hidden_size) != (info.n_layers, info.hidden_size):
        raise SteerscaleError(f"vectors have {vectors.n_layers} layers x hidden {vectors.hidden_size}; the model "
                              f"{model_ref.spec} has {info.n_layers} layers x hidden {info.hidden_size}")
    config, plan, identity = prepare_sweep(config, info, items, vectors, shards or 2 * len(hellos))
    store = ResultsStore(out_dir, identity, lock=None)
    try:
        for u in plan.units:  # this driver writes every shard: hold every shard's lock
            store.lock(f"shard-{u.index}of{u.n_shards}")
        store.clean_stale_temps()
        todo = [u for u in plan.units if not unit_done(store, u, config, info.name)]
        job = Job(config, identity, items, vectors, str(Path(out_dir)), store_mode, progress)
        t1 = time.time()
        reports = backend.run(job, todo, store) if todo else []
        t_run = time.time() - t1
        rows, aggregate = build_tables(store, identity, plan, str(out_dir))
    finally:
        store.close()
    manifest = sweep_manifest(config, info, items, vectors, plan, reports, t0)
    manifest["backend"] = dict(backend.describe(), store=store_mode, units_run=[r["unit"]["index"] for r in reports],
                               hosts=sorted({h.get("host", "?") for h in hellos}),
                               start_s=round(t_start, 3), units_s=round(t_run, 3))
    result = SweepResult(rows, aggregate, manifest)
    result.save(out_dir)
    return result
