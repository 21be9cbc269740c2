"""The backend contract (sweep/backends/base.py): the registry and its error, a third backend registered here
runs a sweep through ``drive_sweep`` to the same bytes as ``run_sweep``, and ``run_sweep`` is the local backend
driven by ``drive_sweep`` (same tables, manifest and engine work counters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from steerscale.config import SweepConfig
from steerscale.core.data import load_dataset
from steerscale.core.models import load_model
from steerscale.core.vectors import SteeringVectors
from steerscale.errors import SteerscaleError
from steerscale.io.results import manifest
from steerscale.sweep.backends.base import BACKENDS, Backend, ModelRef, get_backend, register_backend
from steerscale.sweep.backends.local import LocalBackend
from steerscale.sweep.run import drive_sweep, run_sweep
from tinydir import save_tiny_model, write_dataset

TABLES = ("items.csv", "aggregate.csv", "aggregate.json")
TIMINGS = ("created_unix", "timings_s")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny saved model, 10 items and random vectors; the model loaded in this process too."""
    d = tmp_path_factory.mktemp("backends")
    mdir = save_tiny_model(d / "model", layers=4, hidden=32)
    items = load_dataset(str(write_dataset(d / "test.json", 10)))
    model, tok, info = load_model(str(mdir))
    torch.manual_seed(3)
    vecs = SteeringVectors(torch.randn(info.n_layers, info.hidden_size) * 0.5)
    return mdir, items, vecs, model, tok, info


def _cfg(**kw):
    return SweepConfig(**dict(dict(multipliers=[-1.0, 0.0, 2.0], batch_size=4, n_bootstrap=100), **kw))


def _same_tables(a: Path, b: Path) -> None:
    for f in TABLES:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def _manifest(folder: Path) -> dict:
    m = json.loads((folder / "manifest.json").read_text())
    return {k: v for k, v in m.items() if k not in TIMINGS}


class ReverseBackend(Backend):
    """A third backend: loads the model itself and runs the units in this process, last unit first, each with a
    fresh engine, and only the unfinished ones (``reruns_finished_units`` False, as a remote backend)."""

    def __init__(self, tag: str = ""):
        self.tag, self.ran, self.closed = tag, [], False
        self.model = self.tokenizer = self.info = None

    def describe(self) -> dict:
        return {"name": self.name, "workers": 1, "tag": self.tag}

    def planned_workers(self) -> int:
        return 1

    def start(self, ref: ModelRef | None) -> list[dict]:
        from steerscale.sweep.units import package_versions

        self.model, self.tokenizer, self.info = load_model(ref.spec, dtype=ref.dtype, device=ref.device)
        return [{"info": self.info.to_dict(), "versions": package_versions(), "host": "reverse-host"}]

    def run(self, job, units, store) -> list[dict]:
        from steerscale.sweep.units import run_unit

        reports = []
        for u in reversed(units):
            self.ran.append(u.index)
            reports.append(run_unit(self.model, self.tokenizer, job.vectors, job.items, job.config, self.info, u,
                                    store))
        return sorted(reports, key=lambda r: r["unit"]["index"])

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def reverse(monkeypatch):
    """Registers ReverseBackend as ``--backend reverse`` for one test (the registry is restored after)."""
    register_backend("reverse")(ReverseBackend)
    yield
    del BACKENDS["reverse"]
    monkeypatch.setattr(ReverseBackend, "name", "")


def test_registry_holds_the_builtin_backends_and_an_unknown_name_lists_them():
    assert list(BACKENDS) == ["local", "ray"]
    assert all(issubclass(c, Backend) for c in BACKENDS.values())
    with pytest.raises(SteerscaleError) as e:
        get_backend("slurm")
    assert str(e.value) == "--backend 'slurm': expected one of local, ray"
    with pytest.raises(SteerscaleError, match="expected one of local, ray"):
        get_backend(None)
    assert isinstance(get_backend("local"), LocalBackend) and get_backend("local").name == "local"


def test_only_backends_can_register():
    with pytest.raises(SteerscaleError, match="is not a subclass of Backend"):
        register_backend("thing")(dict)
    assert "thing" not in BACKENDS


def test_import_steerscale_does_not_import_ray():
    code = "import sys, steerscale, steerscale.sweep.backends; assert 'ray' not in sys.modules, 'ray imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-800:]


def test_a_registered_third_backend_gives_run_sweeps_tables(world, reverse, tmp_path):
    mdir, items, vecs, model, tok, info = world
    cfg = _cfg()
    ref = run_sweep(model, tok, vecs, items, cfg, info=info, out_dir=tmp_path / "ref", progress=False, shards=3)
    with get_backend("reverse", tag="t") as backend:
        assert isinstance(backend, ReverseBackend) and backend.name == "reverse"
        res = drive_sweep(backend, ModelRef(str(mdir)), items, vecs, cfg, tmp_path / "rev", shards=3, progress=False)
    assert backend.closed and backend.ran == [3, 2, 1]
    _same_tables(tmp_path / "ref", tmp_path / "rev")
    assert res.rows == ref.rows and res.aggregate == ref.aggregate
    b = res.manifest["backend"]
    assert (b["name"], b["tag"], b["units_run"], b["hosts"], b["model_loads"]) == ("reverse", "t", [1, 2, 3],
                                                                                   ["reverse-host"], 1)
    with pytest.raises(SteerscaleError, match=r"expected one of local, ray, reverse"):
        get_backend("nope")
    # a unit lost since: only that unit is handed to the backend again, and the tables are the same bytes
    sorted((tmp_path / "rev" / "points").glob("*.json"))[0].unlink()  # every point file belongs to one unit
    (tmp_path / "rev" / "manifest.json").unlink()  # not a finished run any more: the workers start
    again = get_backend("reverse")
    drive_sweep(again, ModelRef(str(mdir)), items, vecs, cfg, tmp_path / "rev", shards=3, progress=False)
    assert len(again.ran) == 1
    _same_tables(tmp_path / "ref", tmp_path / "rev")


def test_a_backend_that_cannot_screen_refuses_before_writing_anything(world, reverse, tmp_path):
    mdir, items, vecs, *_ = world
    with pytest.raises(SteerscaleError, match="--screen grad runs in one process"):
        drive_sweep(get_backend("reverse"), ModelRef(str(mdir)), items, vecs, _cfg(screen="grad"), tmp_path / "s",
                    shards=1, progress=False)
    assert not (tmp_path / "s" / "run.json").exists()


@pytest.mark.parametrize("shards", [1, 3])
def test_run_sweep_is_the_local_backend_driven_by_drive_sweep(world, tmp_path, shards):
    """Same table bytes, same manifest (but the driver's backend record), same engine work counters: for a
    model handed in (run_sweep) and for one the local backend loads from its reference."""
    mdir, items, vecs, model, tok, info = world
    cfg = _cfg(engine="fast")
    a = run_sweep(model, tok, vecs, items, cfg, info=info, out_dir=tmp_path / "run_sweep", progress=False,
                  shards=shards)
    b = drive_sweep(LocalBackend(), ModelRef(str(mdir)), items, vecs, cfg, tmp_path / "driven", shards=shards,
                    progress=False)
    _same_tables(tmp_path / "run_sweep", tmp_path / "driven")
    ma, mb = _manifest(tmp_path / "run_sweep"), _manifest(tmp_path / "driven")
    assert "backend" not in ma and mb.pop("backend")["units_run"] == list(range(1, shards + 1))
    assert ma == mb
    assert a.manifest["engine"]["layer_tokens"] > 0 and a.manifest["engine"] == b.manifest["engine"]
    # in memory (no folder): the same rows, nothing written
    c = run_sweep(model, tok, vecs, items, cfg, info=info, progress=False, shards=shards)
    assert (c.rows, c.aggregate) == (a.rows, a.aggregate) and c.manifest["engine"] == a.manifest["engine"]


def test_run_sweep_resumed_on_a_finished_folder_computes_nothing_and_keeps_its_bytes(world, tmp_path):
    mdir, items, vecs, model, tok, info = world
    first = run_sweep(model, tok, vecs, items, _cfg(), info=info, out_dir=tmp_path, progress=False, shards=2)
    before = {f: (tmp_path / f).read_bytes() for f in TABLES}
    again = run_sweep(model, tok, vecs, items, _cfg(), info=info, out_dir=tmp_path, progress=False, shards=2)
    assert {f: (tmp_path / f).read_bytes() for f in TABLES} == before
    assert again.manifest["resume"]["points_computed_now"] == 0 < first.manifest["resume"]["points_computed_now"]
    assert again.manifest["answer_scheme"] == first.manifest["answer_scheme"] is not None
    assert again.manifest["engine"]["name"] == "fast" and again.manifest["engine"]["layer_tokens"] == 0


def test_manifest_head_order_flags_and_no_command():
    m = manifest("sweep", {"a": 1}, {"name": "m"}, 12.34567, flags={"merged": True}, plan={"n": 1})
    assert list(m) == ["kind", "merged", "created_unix", "command", "git_revision", "versions", "model", "config",
                       "plan"]
    assert (m["merged"], m["created_unix"], m["command"]) == (True, 12.346, sys.argv)
    s = manifest("showcase", {"a": 1}, {"name": "m"}, 1.0, command=False, panels={})
    assert list(s) == ["kind", "created_unix", "git_revision", "versions", "model", "config", "panels"]


def test_one_engine_over_units_never_takes_one_units_items_for_anothers(world, tmp_path, monkeypatch):
    """The local backend hands every unit one engine (its work counters add up). Units of equal size get item
    lists of equal length, and a list freed after one unit may get the next one's ``id``: the fast engine must
    not take that for the same items and return the previous unit's scores. ``id`` is made constant here, the
    worst case of that reuse; the tables must equal a one-unit run's."""
    import steerscale.engines.fast as fast

    mdir, items, vecs, model, tok, info = world
    cfg = _cfg(layers=[1, 2])
    one = run_sweep(model, tok, vecs, items[:8], cfg, info=info, progress=False)
    ids = run_sweep(model, tok, vecs, items[:8], cfg, info=info, progress=False, shards=2)
    monkeypatch.setattr(fast, "id", lambda obj: 0, raising=False)
    two = run_sweep(model, tok, vecs, items[:8], cfg, info=info, progress=False, shards=2)
    assert two.manifest["plan"]["item_shards"] == 2
    assert two.rows == one.rows and two.aggregate == one.aggregate
    assert two.manifest["engine"] == ids.manifest["engine"]  # the second unit's work was done, and counted
