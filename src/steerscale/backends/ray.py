"""The Ray backend (``pip install 'steerscale[ray]'``): Ray Core actors, one per model replica.

Each actor loads the model itself from its spec (weights never travel through Ray), reserving
``gpus_per_worker`` GPUs (``device="auto"`` inside the actor shards a model over them with accelerate)
and ``cpus_per_worker`` CPUs (its torch thread count). The driver hands each idle actor one unit at a
time and waits with ``ray.wait``. Ray does not retry actor tasks by default: when an actor dies (node
lost, OOM, ``ray.kill``) the driver puts its unit back in the queue for a surviving actor; a unit is
deterministic and its points idempotent, so a unit that ran twice writes the same bytes.

Inputs go by hash-checked reference: the items (JSON) and vectors (safetensors bytes) are put in the
object store once; each actor checks them against the run identity's ``dataset_hash`` and
``vectors_hash`` before computing anything. Each actor reports its package versions when it starts
and with every unit; a version that differs from the driver's is refused.

Store modes: ``shared`` (default) — actors write point files into the run folder, which must be on a
filesystem every node sees (docs/scaling_out.md); ``driver`` — actors return the points and the driver
writes them (no shared filesystem needed; a unit whose actor dies is recomputed whole).
"""

from __future__ import annotations

import logging
import os
import platform
from collections import deque

from ..errors import SteerscaleError

log = logging.getLogger(__name__)


def _ray():
    try:
        import ray
    except ImportError:
        raise SteerscaleError("--backend ray needs Ray: pip install 'steerscale[ray]'") from None
    return ray


class _PointRecorder:
    """A store for --store driver: keeps the points a unit computes, to return them to the driver."""

    def __init__(self):
        self.points: dict = {}

    def get(self, model, layer, m=None, part=None):
        return self.points.get((model, layer, None if m is None else float(m), part))

    def put(self, model, layer, m, rows, part=None):
        self.points[(model, layer, None if m is None else float(m), part)] = rows


class SweepWorker:
    """The actor body (wrapped with ``ray.remote`` by RayBackend): one model replica."""

    def __init__(self, ref: dict, threads: int = 1):
        import torch

        from ..models import load_model

        if threads:
            torch.set_num_threads(int(threads))
        self.model, self.tokenizer, self.info = load_model(ref["spec"], dtype=ref["dtype"], device=ref["device"],
                                                           trust_remote_code=ref["trust_remote_code"])
        if ref.get("name"):
            self.info.name = ref["name"]
        self._inputs: dict = {}

    def hello(self) -> dict:
        from ..units import package_versions

        return {"info": self.info.to_dict(), "versions": package_versions(), "host": platform.node(),
                "pid": os.getpid()}

    def _decode(self, inputs: dict, identity: dict):
        key = (identity["dataset_hash"], identity["vectors_hash"])
        if key not in self._inputs:
            import json

            from safetensors.torch import load as st_load

            from ..data import ABItem, dataset_hash
            from ..sweep import vectors_hash
            from ..vectors import SteeringVectors

            items = [ABItem(**dict(d, choices=tuple(d["choices"]))) for d in json.loads(inputs["items"])]
            if dataset_hash(items) != identity["dataset_hash"]:
                raise SteerscaleError("Ray worker: the items it received do not match the run's dataset hash")
            vecs = SteeringVectors(st_load(inputs["vectors"])["vectors"].float(), json.loads(inputs["vectors_meta"]))
            if vectors_hash(vecs) != identity["vectors_hash"]:
                raise SteerscaleError("Ray worker: the vectors it received do not match the run's vectors hash")
            vecs.check_model(self.model)
            self._inputs = {key: (items, vecs)}
        return self._inputs[key]

    def run(self, inputs: dict, identity: dict, config: dict, unit: dict, out_dir: str | None, store_mode: str) -> dict:
        from ..plan import Unit
        from ..store import ResultsStore
        from ..sweep import SweepConfig
        from ..units import check_versions, package_versions, run_unit

        check_versions(package_versions(), identity["versions"], f"Ray worker on host {platform.node()}")
        items, vecs = self._decode(inputs, identity)
        u = Unit(unit["index"], unit["n_shards"], unit["item_shard"], unit["n_item_shards"], unit["items"][0],
                 unit["items"][1], tuple(unit["layers"]), unit["owns_baseline"])
        ident = {k: v for k, v in identity.items() if k != "store_version"}
        store = ResultsStore(out_dir, ident, lock=None) if store_mode == "shared" else _PointRecorder()
        report = run_unit(self.model, self.tokenizer, vecs, items, SweepConfig(**config), self.info, u, store)
        report["pid"] = os.getpid()
        if store_mode == "driver":
            report["points"] = [[k[1], k[2], k[3], rows] for k, rows in store.points.items()]
        return report


class RayBackend:
    """Ray Core actors, one per model replica; see the module docstring.

    address: ``"auto"`` (a running cluster), ``"ray://host:10001"``, or None (an existing
    ``ray.init`` in this process, else a new local cluster). workers: actors to start (default: as many
    as the cluster's CPUs/GPUs fit).
    """

    def __init__(self, address: str | None = None, workers: int | None = None, gpus_per_worker: float = 0,
                 cpus_per_worker: int = 1):
        self.ray = _ray()
        self.address, self.workers = address, workers
        self.gpus, self.cpus = gpus_per_worker, cpus_per_worker
        self.actors: list = []
        self.dead: int = 0
        self.requeued: int = 0
        self.on_report = None  # called with each finished unit's report (tests use it to kill an actor mid-run)

    def describe(self) -> dict:
        return {"name": "ray", "address": self.address, "workers": len(self.actors) + self.dead,
                "gpus_per_worker": self.gpus, "cpus_per_worker": self.cpus, "actors_died": self.dead,
                "units_requeued": self.requeued}

    def _n_workers(self) -> int:
        if self.workers:
            return int(self.workers)
        res = self.ray.cluster_resources()
        n = int(res.get("CPU", 1) // max(self.cpus, 1))
        if self.gpus:
            n = min(n, int(res.get("GPU", 0) // self.gpus))
        if n < 1:
            raise SteerscaleError(f"the Ray cluster has {res.get('GPU', 0):g} GPUs and {res.get('CPU', 0):g} CPUs: "
                                  f"not enough for one worker ({self.gpus:g} GPUs, {self.cpus} CPUs)")
        return n

    def start(self, ref) -> list[dict]:
        ray = self.ray
        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False)
        actor_cls = ray.remote(SweepWorker).options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0)
        rd = {"spec": ref.spec, "dtype": ref.dtype, "device": ref.device, "trust_remote_code": ref.trust_remote_code,
              "name": ref.name}
        self.actors = [actor_cls.remote(rd, self.cpus) for _ in range(self._n_workers())]
        try:
            return ray.get([a.hello.remote() for a in self.actors])
        except ray.exceptions.RayTaskError as e:
            raise _unwrap(e) from None
        except ray.exceptions.RayActorError as e:
            last = [l for l in str(e).strip().splitlines() if l.strip()][-1:] or [""]
            raise SteerscaleError(f"a Ray worker could not start or load the model {ref.spec}: "
                                  f"{last[0].strip()[:300]} (is steerscale installed on every node?)") from None

    def run(self, job, units, store) -> list[dict]:
        import json
        from dataclasses import asdict

        from safetensors.torch import save as st_save

        ray = self.ray
        inputs = ray.put({"items": json.dumps([asdict(it) for it in job.items]),
                          "vectors": st_save({"vectors": job.vectors.vectors.contiguous()}),
                          "vectors_meta": json.dumps(getattr(job.vectors, "meta", {}))})
        config = asdict(job.config)
        queue, idle, pending, reports = deque(units), list(self.actors), {}, []
        while queue or pending:
            while queue and idle:
                a, u = idle.pop(0), queue.popleft()
                ref = a.run.remote(inputs, job.identity, config, u.to_dict(),
                                   job.out_dir, job.store_mode)
                pending[ref] = (a, u)
            if not pending:
                raise SteerscaleError(f"every Ray worker died; {len(queue)} units not run (finished points are "
                                      f"kept: re-run the same command to continue)")
            done, _ = ray.wait(list(pending), num_returns=1)
            a, u = pending.pop(done[0])
            try:
                rep = ray.get(done[0])
            except ray.exceptions.RayActorError as e:  # the actor died: its unit goes back in the queue
                log.warning("Ray worker died running unit %s (%s); re-queued", u.tag, _first_line(e))
                self.actors.remove(a)
                self.dead += 1
                self.requeued += 1
                queue.appendleft(u)
                continue
            except ray.exceptions.RayTaskError as e:
                raise _unwrap(e) from None
            for layer, m, part, rows in rep.pop("points", []):
                store.put(job.identity["model"]["name"], layer, m, rows, part=part)
            reports.append(rep)
            idle.append(a)
            if self.on_report is not None:
                self.on_report(rep)
        return sorted(reports, key=lambda r: r["unit"]["index"])

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # already gone
                pass
        self.actors = []


def _first_line(e) -> str:
    s = str(e).strip()
    return s.splitlines()[0][:300] if s else type(e).__name__


def _unwrap(e) -> Exception:
    """The worker's own error: a SteerscaleError stays one (one line, exit 2); anything else says where."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, SteerscaleError):
        return SteerscaleError(str(cause))
    return SteerscaleError(f"Ray worker failed: {type(cause).__name__ if cause else 'error'}: "
                           f"{_first_line(cause or e)}")
