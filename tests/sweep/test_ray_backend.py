"""The Ray backend on a local Ray cluster (skipped when Ray is not installed: pip install 'steerscale[ray]')."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from steerscale import cli  # noqa: E402
from steerscale.sweep.backends.base import ModelRef
from steerscale.sweep.run import default_shards, drive_sweep
from steerscale.sweep.backends import ray_connect
from steerscale.sweep.backends.ray import FAULT_LOAD_EXIT, FAULT_UNIT_HANG, RayBackend, open_worker_store
from steerscale.sweep.backends.resources import check_fit, count_file_params, parse_max_memory
from steerscale.errors import SteerscaleError  # noqa: E402
from steerscale.core.data import load_dataset
from steerscale.config import SweepConfig
from steerscale.core.vectors import SteeringVectors
from tinydir import save_tiny_model, write_dataset  # noqa: E402

TABLES = ("items.csv", "aggregate.csv", "aggregate.json")


@pytest.fixture(scope="module")
def cluster():
    # "local": always a new cluster of its own (never one a `ray start` on this machine left behind)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
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


def run(setup, out, on_report=None, store_mode="shared", **kw):
    mdir, test, vec, _ = setup
    backend = RayBackend(workers=2, cpus_per_worker=1, **kw)
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


def same_tables(a, b):
    for f in TABLES:
        assert (Path(a) / f).read_bytes() == (Path(b) / f).read_bytes(), f


def ray_cli(setup, out, *extra):
    mdir, test, vec, _ = setup
    return cli.main(["sweep", "--model", str(mdir), "--vectors", str(vec), "--data", str(test), "--batch-size", "4",
                     "--multipliers=-1,0,1", "--shards", "4", "--out", str(out), "--backend", "ray", "--workers", "2",
                     *extra])


def test_relative_out_from_another_directory_lands_there(cluster, setup, tmp_path, monkeypatch):
    # the Ray workers were started from this process's first directory; the driver now runs from another
    first = Path.cwd()
    name = f"rel-run-{os.getpid()}-{tmp_path.name}"
    monkeypatch.chdir(tmp_path)
    assert ray_cli(setup, name) == 0
    same_tables(tmp_path / name, setup[3])
    assert len(list((tmp_path / name / "points").glob("*.json"))) > 0
    assert not (first / name).exists()  # nothing landed where the workers run
    man = json.loads((tmp_path / name / "manifest.json").read_text())
    assert man["backend"]["out"] == str(tmp_path / name)


def test_worker_killed_while_loading_is_replaced(cluster, setup, tmp_path, monkeypatch):
    marker = tmp_path / "killed-one"
    monkeypatch.setenv(FAULT_LOAD_EXIT, str(marker))  # the first actor to load exits (os._exit) mid-load
    res = run(setup, tmp_path / "ray")
    assert marker.exists()
    b = res.manifest["backend"]
    assert b["actors_died"] == 1 and b["actors_replaced"] == 1 and b["model_loads"] == 2
    same_tables(tmp_path / "ray", setup[3])


def test_finished_rerun_starts_no_worker_and_loads_no_model(cluster, setup, tmp_path, monkeypatch, capsys):
    assert ray_cli(setup, tmp_path / "ray") == 0
    first = {f: (tmp_path / "ray" / f).read_bytes() for f in TABLES}
    manifest1 = json.loads((tmp_path / "ray" / "manifest.json").read_text())

    def no_start(self, ref):
        raise AssertionError("a finished run must not start workers or load a model")

    monkeypatch.setattr(RayBackend, "start", no_start)
    capsys.readouterr()
    assert ray_cli(setup, tmp_path / "ray") == 0
    assert {f: (tmp_path / "ray" / f).read_bytes() for f in TABLES} == first
    man = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert man["backend"]["model_loads"] == 0 and man["backend"]["units_run"] == []
    assert man["resume"]["points_computed_now"] == 0
    assert man["answer_scheme"] == manifest1["answer_scheme"] is not None
    assert "0 model loads" in capsys.readouterr().out
    # the same folder with another setup is still refused before any load (one line, exit 2)
    assert ray_cli(setup, tmp_path / "ray", "--seed", "5") == 2
    assert "different setup" in capsys.readouterr().err
    (tmp_path / "ray" / "manifest.json").unlink()  # no record of the model files: refused all the same
    assert ray_cli(setup, tmp_path / "ray", "--seed", "5") == 2
    assert "different setup (config.seed: 0 vs 5" in capsys.readouterr().err


def test_infeasible_plan_refused_before_any_worker_starts(setup, tmp_path, monkeypatch, capsys):
    def no_start(self, ref):
        raise AssertionError("an infeasible plan must be refused before any worker starts")

    monkeypatch.setattr(RayBackend, "start", no_start)
    monkeypatch.setattr(RayBackend, "planned_workers", lambda self: 2)
    assert ray_cli(setup, tmp_path / "o", "--shards", "1000") == 2  # (ray_cli's --shards 4 is overridden)
    assert "1000 shards: 16 items and 4 layers cannot be split that many ways" in capsys.readouterr().err


def test_default_plan_on_12_items_is_clamped_and_equals_serial(cluster, setup, tmp_path):
    mdir, _, vec, _ = setup
    data = write_dataset(tmp_path / "t12.json", 12)
    serial = tmp_path / "serial"
    assert cli.main(["sweep", "--model", str(mdir), "--vectors", str(vec), "--data", str(data), "--layers", "0-2",
                     "--multipliers=-1,0,1", "--out", str(serial)]) == 0
    out = tmp_path / "ray"
    assert cli.main(["sweep", "--model", str(mdir), "--vectors", str(vec), "--data", str(data), "--layers", "0-2",
                     "--multipliers=-1,0,1", "--out", str(out), "--backend", "ray", "--workers", "2"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["plan"]["n_shards"] == 3 and man["plan"]["layer_groups"] == 3  # 2 workers want 4; 3 is what fits
    same_tables(out, serial)  # layer groups give the serial run's bytes


def test_default_shards_clamps_to_what_the_plan_allows():
    assert default_shards(4, 12, [0, 1, 2], 4, "all", 8) == 3
    assert default_shards(4, 12, [0, 1, 2, 3], 4, "all", 8) == 4
    assert default_shards(8, 12, [0], 4, "all", 8) == 1
    assert default_shards(8, 5, [0, 1], 4, "instruction", 8) == 5
    assert default_shards(0, 5, [0], 4, "all", 8) == 1


@pytest.mark.slow
def test_stuck_unit_times_out_and_is_retried_on_a_fresh_worker(cluster, setup, tmp_path, monkeypatch):
    marker = tmp_path / "hung-one"
    monkeypatch.setenv(FAULT_UNIT_HANG, str(marker))  # the first unit to start sleeps for days
    res = run(setup, tmp_path / "ray", unit_timeout=30)
    assert marker.exists()
    b = res.manifest["backend"]
    assert b["units_timed_out"] == 1 and b["actors_replaced"] == 1 and b["units_requeued"] == 1
    same_tables(tmp_path / "ray", setup[3])


def test_unit_failing_every_retry_is_one_line_naming_unit_and_cause(cluster, setup, tmp_path, monkeypatch):
    marker = tmp_path / "hung-one"
    monkeypatch.setenv(FAULT_UNIT_HANG, str(marker))
    with pytest.raises(SteerscaleError, match=r"^unit (\dof4) \(items \d+-\d+, layers \[0, 1, 2, 3\]\) failed 1 times; "
                       r"last cause: unit \1 gave no result within 5 s \(stuck; --unit-timeout\)"):
        run(setup, tmp_path / "ray", unit_timeout=5, unit_retries=0)


# ------------------------------------------------------------------ no cluster needed

def test_worker_refuses_a_store_without_the_drivers_run_record(tmp_path):
    folder = tmp_path / "not-shared"
    ident = {"config": {}, "model": {"name": "m"}, "dataset_hash": "d", "vectors_hash": "v"}
    with pytest.raises(SteerscaleError, match=r"cannot see the run record .*run.json.* use --store driver"):
        open_worker_store(str(folder), ident)
    assert not folder.exists()  # the worker created nothing of its own
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(dict(ident, dataset_hash="other", store_version=2)))
    with pytest.raises(SteerscaleError, match="holds another run than the driver's"):
        open_worker_store(str(folder), ident)
    (folder / "run.json").write_text(json.dumps(dict(ident, store_version=2)))
    open_worker_store(str(folder), ident).close()


@pytest.mark.parametrize("address, fragment", [
    ("ray://head:10001", "ray:// addresses need Ray Client, which is not installed: pip install 'steerscale[ray]'"),
    ("not an address", "--address 'not an address': not an address; expected auto, HOST:PORT"),
    ("http://head:8265", "--address 'http://head:8265': a http URL is not a Ray cluster address"),
    ("head:99999", "--address 'head:99999': not an address"),
])
def test_bad_address_one_line_exit_2(setup, tmp_path, monkeypatch, capsys, address, fragment):
    monkeypatch.setattr(ray_connect, "_client_installed", lambda: False)
    assert ray_cli(setup, tmp_path / "o", "--address", address) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and err[0].startswith("steerscale sweep: error: ")
    assert not (tmp_path / "o" / "run.json").exists()


@pytest.mark.parametrize("flags, fragment", [
    (["--workers", "0"], "--workers 0: expected a positive number of Ray workers"),
    (["--workers", "-3"], "--workers -3: expected a positive number of Ray workers"),
    (["--unit-timeout", "0"], "--unit-timeout 0.0: expected a number of seconds >= 1"),
    (["--max-memory", "0=70GiB"], "--max-memory / --offload-folder apply to --device auto"),
    (["--device", "auto", "--max-memory", "0=lots"], "'0=lots' is not DEVICE=SIZE"),
])
def test_bad_ray_options_one_line_exit_2(setup, tmp_path, capsys, flags, fragment):
    assert ray_cli(setup, tmp_path / "o", *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_ray_only_option_without_ray_backend_refused(setup, tmp_path, capsys):
    mdir, test, vec, _ = setup
    assert cli.main(["sweep", "--model", str(mdir), "--vectors", str(vec), "--data", str(test), "--workers", "2",
                     "--out", str(tmp_path / "o")]) == 2
    assert "--workers is an option of --backend ray" in capsys.readouterr().err


def test_auth_token_trap_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t")

    class FakeRay:
        exceptions = ray.exceptions

        def is_initialized(self):
            return False

        def init(self, address=None, **kw):
            raise ConnectionError("Failed to connect to GCS at 10.0.0.1:6379")

    with pytest.raises(SteerscaleError) as e:
        ray_connect.connect(FakeRay(), "10.0.0.1:6379")
    msg = str(e.value)
    assert "could not join the Ray cluster at 10.0.0.1:6379" in msg and "auth_token exists" in msg
    assert "RAY_AUTH_MODE=disabled" in msg and "\n" not in msg
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user chose: no hint
    with pytest.raises(SteerscaleError) as e:
        ray_connect.connect(FakeRay(), "10.0.0.1:6379")
    assert "auth_token" not in str(e.value)


def test_model_fit_check_refuses_what_would_spill(setup):
    gib = 2**30
    with pytest.raises(SteerscaleError, match=r"70.00B parameters x 2 bytes \(bfloat16\) = 130.4 GiB of weights do not "
                       r"fit the 1 GPU\(s\) a Ray worker reserves \(80.0 GiB"):
        check_fit("llama-70b", 70_000_000_000, "bfloat16", [80 * gib], spill_allowed=False)
    assert check_fit("llama-70b", 70_000_000_000, "bfloat16", [80 * gib] * 2, spill_allowed=False) is None
    assert check_fit("llama-70b", 70_000_000_000, "bfloat16", [80 * gib], spill_allowed=True) is None
    assert "CPU-only" in check_fit("llama-70b", 70_000_000_000, "bfloat16", [], spill_allowed=False)
    assert "skipped" in check_fit("hub/id", None, "bfloat16", [80 * gib], spill_allowed=False)
    # the parameter count comes from the safetensors headers, no weights read, and equals the loaded model's
    from steerscale.core.models import load_model

    model, _, _ = load_model(str(setup[0]))
    assert count_file_params(str(setup[0])) == sum(p.numel() for p in model.state_dict().values())
    assert parse_max_memory("0=70GiB, 1=70GiB,cpu=200GiB") == {0: "70GiB", 1: "70GiB", "cpu": "200GiB"}
    with pytest.raises(SteerscaleError, match="device 0 given twice"):
        parse_max_memory("0=1GiB,0=2GiB")
