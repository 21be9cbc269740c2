"""The Ray backend on a local Ray cluster (skipped when Ray is not installed: pip install 'steerscale[ray]')."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

from steerscale import cli  # noqa: E402
from steerscale.backends import ModelRef, drive_sweep  # noqa: E402
from steerscale.backends.ray import RayBackend  # noqa: E402
from steerscale.data import load_dataset  # noqa: E402
from steerscale.sweep import SweepConfig  # noqa: E402
from steerscale.vectors import SteeringVectors  # noqa: E402
from tinydir import save_tiny_model, write_dataset  # noqa: E402

TABLES = ("items.csv", "aggregate.csv", "aggregate.json")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray")
    mdir = save_tiny_model(d / "model", layers=4, hidden=64)
    test = write_dataset(d / "test.json", 16)
    vec = d / "vec.safetensors"
    assert cli.main(["train", "--model", str(mdir), "--data", str(write_dataset(d / "train.json", 8)),
                     "--out", str(vec)]) == 0
    # the reference: the same 4-unit plan run in this process (local backend)
    ref = d / "local"
    assert cli.main(["sweep", "--model", str(mdir), "--vectors", str(vec), "--data", str(test), "--batch-size", "4",
                     "--multipliers=-1,0,1", "--shards", "4", "--out", str(ref)]) == 0
    return mdir, test, vec, ref


def run(setup, out, on_report=None, store_mode="shared"):
    mdir, test, vec, _ = setup
    backend = RayBackend(workers=2, cpus_per_worker=1)
    backend.on_report = on_report and (lambda rep: on_report(backend, rep))
    try:
        return drive_sweep(backend, ModelRef(str(mdir)), load_dataset(str(test)), SteeringVectors.load(vec),
                           SweepConfig(multipliers=[-1.0, 0.0, 1.0], batch_size=4), out, shards=4, store_mode=store_mode,
                           progress=False)
    finally:
        backend.close()


def test_two_actors_same_bytes_as_local_then_rerun_computes_nothing(cluster, setup, tmp_path):
    res = run(setup, tmp_path / "ray")
    assert res.manifest["plan"]["item_shards"] == 4 and len(res.manifest["backend"]["units_run"]) == 4
    assert len({r for r in res.manifest["backend"]["hosts"]}) == 1
    for f in TABLES:
        assert (tmp_path / "ray" / f).read_bytes() == (setup[3] / f).read_bytes(), f
    again = run(setup, tmp_path / "ray")
    assert again.manifest["resume"]["points_computed_now"] == 0 and again.manifest["backend"]["units_run"] == []


def test_killed_actor_units_are_requeued(cluster, setup, tmp_path):
    killed = []

    def kill_other(backend, rep):  # after the first finished unit, kill the actor that did not report it
        if not killed:
            victim = next(a for a in backend.actors if rep["pid"] != ray.get(a.hello.remote())["pid"])
            ray.kill(victim, no_restart=True)
            killed.append(victim)

    res = run(setup, tmp_path / "ray", kill_other)
    assert killed and res.manifest["backend"]["actors_died"] == 1 and res.manifest["backend"]["units_requeued"] >= 1
    for f in TABLES:
        assert (tmp_path / "ray" / f).read_bytes() == (setup[3] / f).read_bytes(), f
    assert not list((tmp_path / "ray" / "points").glob(".*.tmp"))
    man = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert sorted(man["backend"]["units_run"]) == [1, 2, 3, 4]


def test_store_driver_mode_same_bytes(cluster, setup, tmp_path):
    res = run(setup, tmp_path / "ray", store_mode="driver")  # workers return points, the driver writes them
    assert res.manifest["backend"]["store"] == "driver"
    for f in TABLES:
        assert (tmp_path / "ray" / f).read_bytes() == (setup[3] / f).read_bytes(), f
