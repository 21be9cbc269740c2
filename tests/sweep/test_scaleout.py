"""Past one process: the shard planner, a store shared by several writers, static shards and merge."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steerscale import cli
from steerscale.errors import SteerscaleError
from steerscale.sweep.plan import balance_layers, layer_cost, make_plan, parse_shard
from steerscale.io.store import ResultsStore
from tinydir import save_tiny_model, write_dataset

SRC = str(Path(__file__).resolve().parents[2] / "src")
TABLES = ("items.csv", "aggregate.csv", "aggregate.json")

pytestmark = pytest.mark.usefixtures("one_thread")


def env():
    e = dict(os.environ, OMP_NUM_THREADS="1")
    e["PYTHONPATH"] = SRC + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


# ------------------------------------------------------------------------------------------ planner


def test_plan_is_deterministic_and_covers_every_point_once():
    a = make_plan(100, list(range(30)), 30, "all", 12, batch_size=8)
    b = make_plan(100, list(range(30)), 30, "all", 12, batch_size=8)
    assert a == b
    assert (a.item_shards, a.layer_groups) == (12, 1)  # items first: 12 shards of >= 8 items
    c = make_plan(20, list(range(30)), 30, "all", 8, batch_size=8)
    assert (c.item_shards, c.layer_groups) == (2, 4)  # only 2 shards of >= 8 items: then layer groups
    seen = [(i, l) for u in c.units for i in range(u.item_start, u.item_stop) for l in u.layers]
    assert sorted(seen) == sorted((i, l) for i in range(20) for l in range(30))
    assert sum(u.owns_baseline for u in c.units) == c.item_shards
    assert all(29 in u.layers for u in c.units if u.owns_baseline)


def test_layer_groups_are_balanced_and_strided():
    groups = balance_layers(list(range(32)), 32, 4)
    costs = [sum(layer_cost(l, 32) for l in g) for g in groups]
    assert max(costs) - min(costs) <= layer_cost(0, 32)  # within one layer's cost
    contiguous = [tuple(range(8 * i, 8 * i + 8)) for i in range(4)]
    spread = [sum(layer_cost(l, 32) for l in g) for g in contiguous]
    assert max(costs) - min(costs) < (max(spread) - min(spread)) / 10  # far better than contiguous blocks
    assert all(max(g) - min(g) > len(g) for g in groups)  # strided: each group spans early and late layers


def test_instruction_end_splits_items_only_and_bad_counts_are_refused():
    p = make_plan(10, list(range(6)), 6, "instruction_end", 5, batch_size=8)
    assert (p.item_shards, p.layer_groups) == (5, 1)
    with pytest.raises(SteerscaleError, match="only 10 items"):
        make_plan(10, list(range(6)), 6, "instruction_end", 11)
    with pytest.raises(SteerscaleError, match="cannot be split"):
        make_plan(8, [0, 1], 6, "all", 3, batch_size=8)
    for bad in ("0/4", "5/4", "x", "3/"):
        with pytest.raises(SteerscaleError, match="--shard"):
            parse_shard(bad)
    assert parse_shard(" 3/16") == (3, 16)


# ------------------------------------------------------------------------------------------ store

WRITER = r"""
import sys, json
sys.path.insert(0, {src!r})
from steerscale.io.store import ResultsStore
folder, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for k in range(n):
    s = ResultsStore(folder, {{"run": "same"}}, lock="w" + me)   # opening must not disturb other writers
    rows = [{{"item": str(i), "score": i / 7}} for i in range(50)]
    s.put("m", k % 4, 1.0, rows)            # the same four points from every writer: same bytes
    s.put("m", 100 + int(me), float(k), rows)  # and points of its own
    s.close()
print("ok")
"""


def test_several_writer_processes_share_one_store(tmp_path):
    script = tmp_path / "w.py"
    script.write_text(WRITER.format(src=SRC))
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), str(i), "40"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    s = ResultsStore(tmp_path / "run", {"run": "same"})
    rows = [{"item": str(i), "score": i / 7} for i in range(50)]
    assert all(s.get("m", k, 1.0) == rows for k in range(4))
    assert all(s.get("m", 100 + i, float(k)) == rows for i in range(4) for k in range(40))
    assert not list((tmp_path / "run" / "points").glob(".*.tmp"))


def test_same_writer_is_refused_by_a_lock_released_on_exit(tmp_path):
    a = ResultsStore(tmp_path, {"x": 1}, lock="shard-1of2")
    b = ResultsStore(tmp_path, {"x": 1}, lock="shard-2of2")  # another shard of the run: fine
    with pytest.raises(SteerscaleError, match=r"in use by another process \(pid \d+, host "):
        ResultsStore(tmp_path, {"x": 1}, lock="shard-1of2")
    a.close()
    ResultsStore(tmp_path, {"x": 1}, lock="shard-1of2").close()
    b.close()
    # a process killed with the lock held: the kernel drops it
    p = subprocess.Popen([sys.executable, "-c", f"import sys, time; sys.path.insert(0, {SRC!r}); "
                          f"from steerscale.io.store import ResultsStore; s = ResultsStore({str(tmp_path)!r}, "
                          f"{{'x': 1}}, lock='run'); print('held', flush=True); time.sleep(60)"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(SteerscaleError, match="in use"):
        ResultsStore(tmp_path, {"x": 1}, lock="run")
    p.send_signal(signal.SIGKILL)
    p.wait()
    ResultsStore(tmp_path, {"x": 1}, lock="run").close()


def test_point_copied_over_another_is_rejected(tmp_path, caplog):
    s = ResultsStore(tmp_path, {"x": 1})
    s.put("m", 1, 1.0, [{"score": 0.1}])
    s.put("m", 2, 1.0, [{"score": 0.2}])
    shutil.copy(s._path("m", 1, 1.0), s._path("m", 2, 1.0))
    assert s.get("m", 2, 1.0) is None and "another point or run" in caplog.text
    s.close()
    other = ResultsStore(tmp_path / "other", {"x": 2})
    other.put("m", 1, 1.0, [{"score": 0.9}])
    shutil.copy(other._path("m", 1, 1.0), s._path("m", 1, 1.0))
    assert ResultsStore(tmp_path, {"x": 1}).get("m", 1, 1.0) is None  # a point of another run


def test_open_does_not_delete_other_writers_temps_driver_cleans_stale_ones(tmp_path):
    s = ResultsStore(tmp_path, {"x": 1})
    live = s.points / f".a.json.{_host()}.{os.getpid()}.abcd1234.tmp"  # this process: alive
    dead = s.points / f".b.json.{_host()}.999999999.abcd1234.tmp"
    far = s.points / ".c.json.otherhost.123.abcd1234.tmp"  # another host: only age counts
    for p in (live, dead, far):
        p.write_text("half")
    ResultsStore(tmp_path, {"x": 1}, lock="other")  # opening leaves every temp alone
    assert live.exists() and dead.exists() and far.exists()
    assert set(s.clean_stale_temps()) == {dead}
    old = time.time() - 2 * 3600
    os.utime(far, (old, old))
    assert set(s.clean_stale_temps()) == {far} and live.exists()


def _host():
    from steerscale.io.store import host_name

    return host_name()


# ------------------------------------------------------------------------------------------ shards + merge


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("scaleout")
    mdir = save_tiny_model(d / "model", layers=6, hidden=96)
    test = write_dataset(d / "test.json", 24)
    vec = d / "vec.safetensors"
    assert cli.main(["train", "--model", str(mdir), "--data", str(write_dataset(d / "train.json", 12)),
                     "--out", str(vec)]) == 0
    return mdir, test, vec


def sweep_args(setup, out, *extra, limit=24):
    mdir, test, vec = setup
    return ["sweep", "--model", str(mdir), "--vectors", str(vec), "--data", str(test), "--limit", str(limit),
            "--multipliers=-2,0,1", "--batch-size", "8", "--out", str(out), *extra]


def shard_cmd(setup, out, k, n, limit=24):
    return [sys.executable, "-m", "steerscale.cli", *sweep_args(setup, out, "--shard", f"{k}/{n}", limit=limit)]


def test_layer_group_shards_merge_byte_identical(setup, tmp_path):
    ref = tmp_path / "serial"
    assert cli.main(sweep_args(setup, ref, limit=8)) == 0  # 8 items = one batch: 3 shards are layer groups
    out = tmp_path / "sharded"
    procs = [subprocess.Popen(shard_cmd(setup, out, k, 3, limit=8), env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in (1, 2, 3)]  # at once, one folder
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-800:]
    plan = json.loads((out / "run.json").read_text())["plan"]
    assert (plan["item_shards"], plan["layer_groups"]) == (1, 3)
    assert cli.main(["merge", str(out)]) == 0
    for f in TABLES:
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_item_shards_merge_within_1e5_and_merge_names_missing_shards(setup, tmp_path, capsys):
    ref = tmp_path / "serial"
    assert cli.main(sweep_args(setup, ref)) == 0
    out = tmp_path / "sharded"
    assert cli.main(sweep_args(setup, out, "--shard", "2/3")) == 0
    assert cli.main(["merge", str(out)]) == 2
    assert "shards 1/3, 3/3 have missing" in capsys.readouterr().err
    for k in (1, 3):
        assert cli.main(sweep_args(setup, out, "--shard", f"{k}/3")) == 0
    assert cli.main(["merge", str(out)]) == 0
    a, b = read(ref / "items.csv"), read(out / "items.csv")
    assert [(r["layer"], r["multiplier"], r["item"]) for r in a] == [(r["layer"], r["multiplier"], r["item"]) for r in b]
    for col in ("score", "logit_diff", "letter_mass"):
        assert max(abs(float(x[col]) - float(y[col])) for x, y in zip(a, b)) <= 1e-5, col
    # the plan is part of the identity: a serial run into the sharded folder is refused
    assert cli.main(sweep_args(setup, out)) == 2
    assert "plan.n_shards: 3 vs 1" in capsys.readouterr().err


def test_shard_killed_with_sigkill_and_rerun(setup, tmp_path):
    ref = tmp_path / "ref"
    for k in (1, 2):
        assert cli.main(sweep_args(setup, ref, "--shard", f"{k}/2")) == 0
    assert cli.main(["merge", str(ref)]) == 0
    out = tmp_path / "run"
    assert cli.main(sweep_args(setup, out, "--shard", "2/2")) == 0
    p = subprocess.Popen(shard_cmd(setup, out, 1, 2), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t_end = time.time() + 120
    while p.poll() is None and time.time() < t_end and len(list((out / "points").glob("*i001of002__L*"))) < 3:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    # a second process for the same shard while the first runs is refused; after the kill it runs
    r = subprocess.run(shard_cmd(setup, out, 1, 2), env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-800:]
    assert cli.main(["merge", str(out)]) == 0
    for f in TABLES:
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f


# Process A runs the CLI with its store lock wrapped: once the lock is held it writes `held` and waits for `go`,
# so the second process certainly starts while the first holds the folder (a barrier, not a hope of overlap).
HOLD_LOCK = """
import sys, time
from pathlib import Path
import steerscale.io.store as st
held, go = Path(sys.argv[1]), Path(sys.argv[2])
orig = st.StoreLock.__init__
def wrapped(self, folder, name):
    orig(self, folder, name)
    held.write_text("1")
    t_end = time.time() + 120
    while not go.exists() and time.time() < t_end:
        time.sleep(0.01)
st.StoreLock.__init__ = wrapped
from steerscale import cli
sys.exit(cli.main(sys.argv[3:]))
"""


def test_two_processes_on_one_out_one_is_refused_other_is_right(setup, tmp_path):
    ref = tmp_path / "ref"
    assert cli.main(sweep_args(setup, ref)) == 0
    out = tmp_path / "run"
    held, go = tmp_path / "held", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(held), str(go), *sweep_args(setup, out)],
                             env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_end = time.time() + 120
    while not held.exists() and first.poll() is None and time.time() < t_end:
        time.sleep(0.01)
    assert held.exists(), first.communicate()[1][-800:]
    second = subprocess.run([sys.executable, "-m", "steerscale.cli", *sweep_args(setup, out)], env=env(),
                            capture_output=True, text=True, timeout=300)
    go.write_text("1")
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-800:]
    assert second.returncode == 2, second.stderr[-800:]
    assert "(shard-1of1) is in use by another process (pid" in second.stderr
    for f in TABLES:
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f
    # a static --shard 1/1 run is the same writer: refused while the serial run holds the lock
    from steerscale.io.store import ResultsStore as RS

    ident = json.loads((out / "run.json").read_text())
    ident.pop("store_version")
    held = RS(out, ident, lock="shard-1of1")
    assert cli.main(sweep_args(setup, out, "--shard", "1/1")) == 2
    held.close()


def test_local_backend_driver_same_bytes_as_run_sweep(setup, tmp_path):
    from steerscale.sweep.backends.base import ModelRef
    from steerscale.sweep.run import drive_sweep
    from steerscale.sweep.backends.local import LocalBackend
    from steerscale.core.data import load_dataset
    from steerscale.config import SweepConfig
    from steerscale.core.vectors import SteeringVectors

    mdir, test, vec = setup
    ref = tmp_path / "ref"
    assert cli.main(sweep_args(setup, ref, "--shards", "3")) == 0
    cfg = SweepConfig(multipliers=[-2.0, 0.0, 1.0], batch_size=8)
    res = drive_sweep(LocalBackend(), ModelRef(str(mdir)), load_dataset(str(test)), SteeringVectors.load(vec), cfg,
                      tmp_path / "local", shards=3, progress=False)
    assert res.manifest["backend"]["units_run"] == [1, 2, 3]
    for f in TABLES:
        assert (tmp_path / "local" / f).read_bytes() == (ref / f).read_bytes(), f
