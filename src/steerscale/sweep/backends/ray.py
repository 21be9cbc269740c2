"""The Ray backend (``pip install 'steerscale[ray]'``): Ray Core actors, one per model replica.

Each actor loads the model itself from its spec (weights never travel through Ray), reserving
``gpus_per_worker`` GPUs (``device="auto"`` inside the actor shards a model over them with accelerate,
within ``--max-memory`` / ``--offload-folder`` when given) and ``cpus_per_worker`` CPUs (its torch
thread count). Before loading, a worker with GPUs refuses a model whose weights do not fit the GPUs it
reserved (backends/resources.py) instead of letting accelerate spill layers to CPU unasked.

The driver hands each idle actor one unit at a time and waits with ``ray.wait`` and a timeout
(``unit_timeout``: a unit that takes longer, or a load that takes longer than
max(unit_timeout, 300 s), is given up and its actor killed). Ray does not retry
actor tasks: when an actor dies (node lost, OOM, ``ray.kill``, a kill while loading) or times out, the
driver starts a replacement actor and puts the unit back in the queue, at most ``unit_retries`` times
per unit, then stops with one line naming the unit and the cause. A unit is deterministic and its
points idempotent, so a unit that ran twice writes the same bytes. One log line per finished unit.

Inputs go by hash-checked reference: the items (JSON) and vectors (safetensors bytes) are put in the
object store once; each actor checks them against the run identity's ``dataset_hash`` and
``vectors_hash`` before computing anything. Each actor reports its package versions when it starts
and with every unit; a version that differs from the driver's is refused.

Store modes: ``shared`` (default) — actors write point files into the run folder, which must be on a
filesystem every node sees (docs/scaling_out.md); an actor that cannot see the driver's run record
(``run.json`` with the run's hash) refuses instead of starting a folder of its own; ``driver`` — actors
return the points and the driver writes them (no shared filesystem needed; a unit whose actor dies is
recomputed whole).

Fault injection (tests only): ``STEERSCALE_FAULT_RAY_LOAD_EXIT=PATH`` in the driver's environment makes
the first actor to create PATH exit (``os._exit``) while loading; ``STEERSCALE_FAULT_RAY_UNIT_HANG=PATH``
makes the first unit to create PATH hang.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
from collections import deque

from typing import TYPE_CHECKING

from ...errors import SteerscaleError
from .base import Backend, Job, ModelRef, register_backend
from .ray_connect import auth_hint, check_address, connect

if TYPE_CHECKING:
    from ..plan import Unit

log = logging.getLogger(__name__)

FAULT_LOAD_EXIT = "STEERSCALE_FAULT_RAY_LOAD_EXIT"
FAULT_UNIT_HANG = "STEERSCALE_FAULT_RAY_UNIT_HANG"
MIN_LOAD_TIMEOUT = 300.0  # a model load may take max(unit_timeout, this) seconds


def _ray():
    try:
        import ray
    except ImportError:
        raise SteerscaleError("--backend ray needs Ray: pip install 'steerscale[ray]'") from None
    return ray


def _claim(marker: str | None) -> bool:
    """True for the one caller that creates `marker` (fault injection)."""
    if not marker:
        return False
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except OSError:
        return False


class _PointRecorder:
    """A store for --store driver: keeps the points a unit computes, to return them to the driver."""

    def __init__(self):
        self.points: dict = {}

    def get(self, model: str, layer, m=None, part=None):
        return self.points.get((model, layer, None if m is None else float(m), part))

    def put(self, model: str, layer, m, rows, part=None):
        self.points[(model, layer, None if m is None else float(m), part)] = rows


def open_worker_store(out_dir: str, identity: dict):
    """The run's store as a worker opens it: only a folder holding the driver's run record (run.json of this
    very run); a worker never starts a run folder of its own (it would not be the driver's folder)."""
    from pathlib import Path

    from ...io.store import STORE_VERSION, ResultsStore, identity_hash

    record = Path(out_dir) / "run.json"
    host = platform.node()
    try:
        old = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SteerscaleError(f"Ray worker on host {host} cannot see the run record {record} that the driver wrote: "
                              f"--out must be on a filesystem every node sees; without one, use --store driver") from None
    except (OSError, ValueError) as e:
        raise SteerscaleError(f"Ray worker on host {host}: unreadable run record {record} ({e}); "
                              f"use --store driver when --out is not shared by every node") from None
    want = json.loads(json.dumps(dict(identity, store_version=STORE_VERSION), default=str))
    if identity_hash(old) != identity_hash(want):
        raise SteerscaleError(f"Ray worker on host {host}: {record} holds another run than the driver's (a folder of "
                              f"the same path on another filesystem?); use --store driver when --out is not shared")
    return ResultsStore(out_dir, identity, lock=None)


class SweepWorker:
    """The actor body (wrapped with ``ray.remote`` by RayBackend): one model replica, loaded by ``load``."""

    def __init__(self, threads: int = 1):
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.model = self.tokenizer = self.info = None
        self._inputs: dict = {}
        self.note = None

    def load(self, ref: dict) -> dict:
        """Check that the model fits the reserved GPUs, load it, and say hello."""
        from ...core.models import load_model
        from .resources import check_fit, count_file_params, reserved_gpu_bytes

        if _claim(ref.get("fault_load_exit")):
            os._exit(17)  # fault injection: this worker dies while loading
        device = ref["device"]
        if device == "auto" or device.startswith("cuda"):
            gpus = reserved_gpu_bytes()
            self.note = check_fit(ref["spec"], count_file_params(ref["spec"]), ref["dtype"],
                                  gpus if device == "auto" else gpus[:1],
                                  bool(ref.get("max_memory") or ref.get("offload_folder")))
        else:
            self.note = "device cpu: the model-fits-the-GPUs check does not apply"
        self.model, self.tokenizer, self.info = load_model(
            ref["spec"], dtype=ref["dtype"], device=device, trust_remote_code=ref["trust_remote_code"],
            max_memory=ref.get("max_memory"), offload_folder=ref.get("offload_folder"))
        if ref.get("name"):
            self.info.name = ref["name"]
        return self.hello()

    def hello(self) -> dict:
        from ..units import package_versions

        return {"info": self.info.to_dict() if self.info else None, "versions": package_versions(),
                "host": platform.node(), "pid": os.getpid(), "note": self.note}

    def _decode(self, inputs: dict, identity: dict):
        key = (identity["dataset_hash"], identity["vectors_hash"])
        if key not in self._inputs:
            from safetensors.torch import load as st_load

            from ...core.data import ABItem, dataset_hash
            from ..run import vectors_hash
            from ...core.vectors import SteeringVectors

            items = [ABItem(**dict(d, choices=tuple(d["choices"]))) for d in json.loads(inputs["items"])]
            if dataset_hash(items) != identity["dataset_hash"]:
                raise SteerscaleError("Ray worker: the items it received do not match the run's dataset hash")
            vecs = SteeringVectors(st_load(inputs["vectors"])["vectors"].float(), json.loads(inputs["vectors_meta"]))
            if vectors_hash(vecs) != identity["vectors_hash"]:
                raise SteerscaleError("Ray worker: the vectors it received do not match the run's vectors hash")
            vecs.check_model(self.model)
            self._inputs = {key: (items, vecs)}
        return self._inputs[key]

    def run(self, inputs: dict, identity: dict, config: dict, unit: dict, out_dir: str | None, store_mode: str,
            fault_hang: str | None = None) -> dict:
        from ..plan import Unit
        from ...config import SweepConfig
        from ..units import check_versions, package_versions, run_unit

        if self.model is None:
            raise SteerscaleError("Ray worker: run() before load()")
        if _claim(fault_hang):
            time.sleep(10**6)  # fault injection: a stuck unit
        check_versions(package_versions(), identity["versions"], f"Ray worker on host {platform.node()}")
        items, vecs = self._decode(inputs, identity)
        u = Unit(unit["index"], unit["n_shards"], unit["item_shard"], unit["n_item_shards"], unit["items"][0],
                 unit["items"][1], tuple(unit["layers"]), unit["owns_baseline"])
        ident = {k: v for k, v in identity.items() if k != "store_version"}
        store = open_worker_store(out_dir, ident) if store_mode == "shared" else _PointRecorder()
        report = run_unit(self.model, self.tokenizer, vecs, items, SweepConfig(**config), self.info, u, store)
        report["pid"] = os.getpid()
        if store_mode == "driver":
            report["points"] = [[k[1], k[2], k[3], rows] for k, rows in store.points.items()]
        return report


@register_backend("ray")
class RayBackend(Backend):
    """Ray Core actors, one per model replica; see the module docstring.

    address: ``"auto"`` (a running cluster), ``HOST:PORT``, ``"ray://host:10001"``, or None (an existing
    ``ray.init`` in this process, else a new local cluster); checked here, before anything starts.
    workers: actors to start (default: as many as the cluster's CPUs/GPUs fit). unit_timeout: seconds a
    load or a unit may take; unit_retries: fresh-actor retries per unit after a death or a timeout.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, gpus_per_worker: float = 0,
                 cpus_per_worker: int = 1, unit_timeout: float = 3600.0, unit_retries: int = 2,
                 max_memory: dict | None = None, offload_folder: str | None = None):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise SteerscaleError(f"--workers {workers!r}: expected a positive number of Ray workers "
                                  f"(leave it out for as many as fit)")
        if not unit_timeout > 0 or unit_retries < 0:
            raise SteerscaleError(f"unit_timeout {unit_timeout!r} / unit_retries {unit_retries!r}: expected a "
                                  f"positive number of seconds and a number of retries >= 0")
        self.address = check_address(address)
        self.ray = _ray()
        self.workers = workers
        self.gpus, self.cpus = gpus_per_worker, cpus_per_worker
        self.unit_timeout, self.unit_retries = float(unit_timeout), int(unit_retries)
        self.max_memory, self.offload_folder = max_memory, offload_folder
        self.actors: list = []  # loaded and healthy
        self._spawned: list = []  # every actor started (close() kills them all, loading or not)
        self._first_hello: dict | None = None
        self.dead = self.requeued = self.replaced = self.timed_out = 0
        self.n_slots = 0
        self.notes: list[str] = []
        self._rd: dict | None = None
        self.on_report = None  # called with each finished unit's report (tests use it to kill an actor mid-run)

    def describe(self) -> dict:
        return {"name": "ray", "address": self.address, "workers": self.n_slots,
                "gpus_per_worker": self.gpus, "cpus_per_worker": self.cpus, "actors_died": self.dead,
                "actors_replaced": self.replaced, "units_requeued": self.requeued, "units_timed_out": self.timed_out,
                "unit_timeout_s": self.unit_timeout, "unit_retries": self.unit_retries,
                "max_memory": {str(k): v for k, v in (self.max_memory or {}).items()} or None,
                "offload_folder": self.offload_folder, "notes": sorted(set(self.notes))}

    def connect(self) -> None:
        connect(self.ray, self.address)

    def planned_workers(self) -> int:
        """How many actors start() will start (joins the cluster; starts nothing)."""
        self.connect()
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

    # ---------------------------------------------------------------- actors
    def _spawn(self, pending: dict) -> None:
        """Start one actor and its load (tracked in `pending` as a 'load' entry)."""
        cls = self.ray.remote(SweepWorker).options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0)
        a = cls.remote(self.cpus)
        self._spawned.append(a)
        pending[a.load.remote(self._rd)] = ("load", a, None, time.time() + max(self.unit_timeout, MIN_LOAD_TIMEOUT))

    def _kill(self, a) -> None:
        try:
            self.ray.kill(a, no_restart=True)
        except Exception:  # already gone
            pass

    def _death(self, a, cause: str) -> None:
        self.dead += 1
        if a in self.actors:
            self.actors.remove(a)
        self._kill(a)
        self._last_cause = cause

    def _can_replace(self) -> bool:
        return self.replaced < self.n_slots * (self.unit_retries + 1)

    def start(self, ref: ModelRef | None) -> list[dict]:
        """Start the actors and load the model in each; an actor that dies or times out while loading is
        replaced (bounded); a load that fails with an error of its own (bad model, does not fit) stops the run."""
        if ref is None:
            raise SteerscaleError("--backend ray: the workers load the model themselves; give a ModelRef (--model)")
        self.n_slots = self.planned_workers()
        self._rd = {"spec": ref.spec, "dtype": ref.dtype, "device": ref.device, "name": ref.name,
                    "trust_remote_code": ref.trust_remote_code, "max_memory": self.max_memory,
                    "offload_folder": self.offload_folder, "fault_load_exit": os.environ.get(FAULT_LOAD_EXIT)}
        self._last_cause = ""
        pending: dict = {}
        for _ in range(self.n_slots):
            self._spawn(pending)
        hellos = []
        while pending:
            for _kind, a, _u, cause in self._wait(pending):
                if cause is None:
                    continue
                if self._can_replace():
                    self.replaced += 1
                    log.warning("Ray worker died or stalled while loading the model (%s); starting a replacement", cause)
                    self._spawn(pending)
            hellos.extend(self._loaded)
        if not hellos:
            raise SteerscaleError(f"no Ray worker could load the model {ref.spec}: {self._last_cause}"
                                  f"{auth_hint(self.address)}")
        self.notes.extend(h["note"] for h in hellos if h.get("note"))
        self._first_hello = hellos[0]
        return hellos

    def _wait(self, pending: dict):
        """Wait for the next result among `pending` (or the earliest deadline). Yields (kind, actor, unit,
        cause) for each entry that failed (cause: why) or finished (cause None; results in self._loaded /
        self._done). A worker's own error (SteerscaleError) is raised."""
        ray = self.ray
        self._loaded, self._done = [], []
        now = time.time()
        timeout = max(0.05, min(dl for (_, _, _, dl) in pending.values()) - now)
        done, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
        if not done:  # timed out: every entry past its deadline is given up, its actor killed
            now = time.time()
            for r in [r for r, (_, _, _, dl) in pending.items() if dl <= now]:
                kind, a, u, _ = pending.pop(r)
                self.timed_out += kind == "unit"
                what = f"unit {u.tag}" if u else "the model load"
                limit = self.unit_timeout if u else max(self.unit_timeout, MIN_LOAD_TIMEOUT)
                self._death(a, f"{what} gave no result within {limit:g} s (stuck; --unit-timeout)")
                yield kind, a, u, self._last_cause
            return
        kind, a, u, _ = pending.pop(done[0])
        try:
            res = ray.get(done[0])
        except ray.exceptions.RayTaskError as e:
            raise _unwrap(e) from None
        except ray.exceptions.RayActorError as e:
            self._death(a, _death_cause(e))
            yield kind, a, u, self._last_cause
            return
        if kind == "load":
            self.actors.append(a)
            self._loaded.append(res)
        else:
            self._done.append(res)
        yield kind, a, u, None

    def run(self, job: Job, units: list[Unit], store) -> list[dict]:
        from dataclasses import asdict

        from safetensors.torch import save as st_save

        ray = self.ray
        inputs = ray.put({"items": json.dumps([asdict(it) for it in job.items]),
                          "vectors": st_save({"vectors": job.vectors.vectors.contiguous()}),
                          "vectors_meta": json.dumps(getattr(job.vectors, "meta", {}))})
        config = asdict(job.config)
        hang = os.environ.get(FAULT_UNIT_HANG)
        queue, idle, pending, reports = deque(units), list(self.actors), {}, []
        failures: dict[int, int] = {}
        n_units = len(units)
        while queue or any(k == "unit" for k, *_ in pending.values()):
            while queue and idle:
                a, u = idle.pop(0), queue.popleft()
                r = a.run.remote(inputs, job.identity, config, u.to_dict(), job.out_dir, job.store_mode, hang)
                pending[r] = ("unit", a, u, time.time() + self.unit_timeout)
            if not pending:
                raise SteerscaleError(f"every Ray worker died ({self._last_cause}); {len(queue)} units not run "
                                      f"(finished points are kept: re-run the same command to continue)")
            for kind, a, u, cause in self._wait(pending):
                if cause is not None:
                    if u is not None:
                        failures[u.index] = failures.get(u.index, 0) + 1
                        if failures[u.index] > self.unit_retries:
                            raise SteerscaleError(
                                f"unit {u.tag} (items {u.item_start}-{u.item_stop - 1}, layers {list(u.layers)}) failed "
                                f"{failures[u.index]} times; last cause: {cause} (finished points are kept: re-run the "
                                f"same command to continue)")
                        log.warning("Ray worker failed on unit %s (%s); unit re-queued", u.tag, cause)
                        queue.appendleft(u)
                        self.requeued += 1
                    if (queue or pending) and self._can_replace():
                        self.replaced += 1
                        self._spawn(pending)
                    continue
                if kind == "load":  # a replacement: the same model and versions as the first workers
                    from .workers import check_workers
                    from ..units import package_versions

                    check_workers([self._first_hello, *self._loaded], package_versions())
                    idle.append(a)
                    continue
                rep = self._done[0]
                for layer, m, part, rows in rep.pop("points", []):
                    store.put(job.identity["model"]["name"], layer, m, rows, part=part)
                reports.append(rep)
                idle.append(a)
                it = rep["unit"]["items"]
                log.info("unit %s done on host %s (pid %s): items %d-%d, layers %s, %d points in %.1f s; %d of %d units "
                         "done", u.tag, rep.get("host", "?"), rep.get("pid"), it[0], it[1] - 1, rep["unit"]["layers"],
                         rep["points_computed"], rep["seconds"], len(reports), n_units)
                if self.on_report is not None:
                    self.on_report(rep)
        for r, (kind, a, _u, _dl) in pending.items():  # replacements still loading: not needed any more
            self._kill(a)
        return sorted(reports, key=lambda r: r["unit"]["index"])

    def close(self) -> None:
        for a in self._spawned:
            self._kill(a)
        self.actors, self._spawned = [], []


def _first_line(e) -> str:
    s = str(e).strip()
    return s.splitlines()[0][:300] if s else type(e).__name__


_CAUSES = (r"((?:ModuleNotFoundError|ImportError): [^\n]+)", r"(exit detail: [^\n]+)", r"((?:OutOfMemory|MemoryError)[^\n]*)",
           r"(The actor died because [^\n]+)", r"(The actor is dead because [^\n]+)")


def _death_cause(e) -> str:
    """The informative line of a RayActorError: a missing module, Ray's exit detail, an OOM, else its first line."""
    text = str(e)
    for pat in _CAUSES:
        m = re.search(pat, text)
        if m:
            line = m[1].split(" Some common causes")[0].strip()[:300]
            if "No module named 'steerscale" in line:
                line += " (steerscale is not installed on that node: install the same version on every node)"
            return line
    return _first_line(e)


def _unwrap(e) -> Exception:
    """The worker's own error: a SteerscaleError stays one (one line, exit 2); anything else says where."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, SteerscaleError):
        return SteerscaleError(str(cause))
    return SteerscaleError(f"Ray worker failed: {type(cause).__name__ if cause else 'error'}: "
                           f"{_first_line(cause or e)}")
