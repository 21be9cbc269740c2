"""The contract every sweep backend meets, the job it is handed, and the name -> class registry.

A backend is *where* the work units of a sweep run; ``sweep.run.drive_sweep`` is the one driver of every
sweep (identity and plan, shard locks, stale temporaries, version checks, tables, manifest, save) and
talks to backends only through ``Backend``:

    backend.planned_workers()        -> int       workers start() will start (the default shard count is 2x)
    backend.start(model_ref)         -> [hello]   load the model where the work runs; one hello per worker:
                                                  {"info": ModelInfo dict, "versions": ..., "host": ...}
    backend.run(job, units, store)   -> [report]  compute the units (``units.run_unit`` on the worker), one
                                                  report per unit, each unit's points in `store`
    backend.screen(job, store, where)             ``--screen grad`` (in-process backends only)
    backend.describe()               -> dict      the manifest's ``backend`` record (name, workers, ...)
    backend.close()                               release the workers (also on leaving ``with backend:``)

Backends register themselves where they are defined (``@register_backend("local")``); ``BACKENDS`` maps each
``--backend`` name to its class and ``get_backend(name, **kw)`` makes one. Importing the package
``steerscale.sweep.backends`` registers the built-in ones (``local``, ``ray``); Ray itself is imported only
when a Ray backend is made.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ...errors import SteerscaleError
from ...registry import Registry

if TYPE_CHECKING:
    from ...config import SweepConfig
    from ...core.data import ABItem
    from ...core.vectors import SteeringVectors
    from ..plan import Unit


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
    """What every unit of one sweep needs besides the model (the same for every unit and every worker)."""

    config: SweepConfig  # validated (``SweepConfig.validate``)
    identity: dict  # the run identity (run.json without its store version)
    items: list[ABItem]
    vectors: SteeringVectors
    out_dir: str | None  # the run folder (absolute for remote workers); None: points in memory
    store_mode: str = "shared"  # "shared": workers write the store; "driver": they return points
    progress: bool = False
    extra: dict = field(default_factory=dict)


class Backend(abc.ABC):
    """Where a sweep's units run (see the module docstring for the contract).

    Subclasses set ``name`` (the ``--backend`` value, given by ``register_backend``) and implement
    ``describe``, ``planned_workers``, ``start`` and ``run``. Every worker runs ``units.run_unit``, so a unit
    gives the same points (and bytes) on every backend. Errors are SteerscaleError with a one-line message.

    ``can_screen``: True when ``screen`` runs ``--screen grad`` (in-process backends); the driver refuses a
    screened config on any other backend before it opens the run folder.

    ``reruns_finished_units``: False (the default), the driver hands ``run`` only the units whose points are
    not all in the store (a remote worker would be sent work that does nothing); True, every unit of the
    plan: ``run_unit`` computes nothing for a finished unit, but its report still carries the run's answer
    scheme and engine record (the in-process backend, where that costs only tokenising).
    """

    name: str = ""
    can_screen: bool = False
    reruns_finished_units: bool = False

    @abc.abstractmethod
    def describe(self) -> dict:
        """The manifest's ``backend`` record: at least ``name`` and ``workers``."""

    @abc.abstractmethod
    def planned_workers(self) -> int:
        """How many workers ``start`` will start (may join a cluster; starts nothing)."""

    @abc.abstractmethod
    def start(self, ref: ModelRef | None) -> list[dict]:
        """Load the model on every worker and return one hello per worker (``workers.check_workers`` checks
        that they agree). `ref` None: the backend already holds a model loaded in this process."""

    @abc.abstractmethod
    def run(self, job: Job, units: list[Unit], store) -> list[dict]:
        """Compute `units` (``units.run_unit`` on the workers) so that their points are in `store` (written
        by the workers, or here from what they return); one report per unit, in unit order."""

    def screen(self, job: Job, store, where: str) -> tuple[list[dict], list[dict], list[dict], dict]:
        """``--screen grad`` (``screening.screened_sweep``): (unit reports, item rows, aggregate rows, the
        manifest's screen record). Only called when ``can_screen``; default: refused."""
        raise SteerscaleError(screen_refused(job.config.screen))

    def close(self) -> None:
        """Release the workers (default: nothing to release)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def screen_refused(screen: str) -> str:
    """The one line that refuses ``--screen`` where the units do not all run in this process."""
    return (f"--screen {screen} runs in one process (the exact layers follow from the screen): --shard, --shards "
            f"and cluster backends cannot run it; sweep without the screen")


BACKENDS: Registry[type[Backend]] = Registry("backend", Backend, label="--backend")  # steerscale/registry.py


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make `cls` the backend ``--backend name`` (sets ``cls.name``); only a Backend can be one."""
    return BACKENDS.register(name)


def get_backend(name: str, **kw) -> Backend:
    """A new backend by its ``--backend`` name; `kw` go to its constructor; an unknown name is one line naming the
    valid keys."""
    return BACKENDS.create(name, **kw)
