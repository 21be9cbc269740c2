"""Resumable sweeps: kill -9 a real `steerscale sweep` at random moments, resume, and get the same bytes."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steerscale import cli
from tinydir import save_tiny_model, write_dataset

SRC = str(Path(__file__).resolve().parents[2] / "src")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    mdir = save_tiny_model(d / "model", layers=6, hidden=96)
    return mdir, write_dataset(d / "train.json", 12), write_dataset(d / "test.json", 24)


def sweep_args(setup, out, *extra):
    mdir, train, test = setup
    return ["sweep", "--model", str(mdir), "--train-data", str(train), "--data", str(test), "--layers", "all",
            "--multipliers=-2,-1,0,1,2", "--batch-size", "8", "--out", str(out), *extra]


def env():
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = "1"
    e["PYTHONPATH"] = SRC + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def n_points(out: Path) -> int:
    p = out / "points"
    return len(list(p.glob("*__L*.json"))) if p.is_dir() else 0


def test_kill_9_and_resume_gives_identical_tables(setup, tmp_path):
    seed = int(os.environ.get("STEERSCALE_KILL_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    ref = tmp_path / "ref"
    assert cli.main(sweep_args(setup, ref)) == 0
    total = 6 * 5
    # how long the reference run spent writing its points: kills after progress land within that span
    mtimes = [p.stat().st_mtime for p in (ref / "points").glob("*__L*.json")]
    span = max(max(mtimes) - min(mtimes), 0.02)

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "steerscale.cli", *sweep_args(setup, out)]
    kills = []
    for attempt in range(4):
        before = n_points(out)
        proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if attempt == 0:
            time.sleep(rng.uniform(0.2, 4.0))  # anywhere: imports, model load, training vectors, first points
        else:  # once the run has made progress again, at a random moment after that
            t_end = time.time() + 30
            while n_points(out) <= before and proc.poll() is None and time.time() < t_end:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.8 * span))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(n_points(out))
    assert len(kills) >= 2 and any(0 < k < total for k in kills), f"seed {seed}: kills landed at {kills}"
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"seed {seed}: {r.stderr}"

    for f in ("items.csv", "aggregate.csv", "vectors.safetensors"):
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f"seed {seed}: {f} differs (kills at {kills})"
    with open(out / "items.csv") as fh:
        keys = [(r["layer"], r["multiplier"], r["item"]) for r in csv.DictReader(fh)]
    assert len(keys) == len(set(keys)) == total * 24
    assert not list((out / "points").glob(".*.tmp"))
    man = json.loads((out / "manifest.json").read_text())
    assert man["resume"]["points_total"] == total and man["resume"]["points_computed_now"] < total - 5


def test_resume_computes_nothing_when_done(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(sweep_args(setup, out, "--layers", "1,3", "--multipliers=-1,0,1")) == 0
    first = (out / "items.csv").read_bytes()
    assert cli.main(sweep_args(setup, out, "--layers", "1,3", "--multipliers=-1,0,1")) == 0
    assert (out / "items.csv").read_bytes() == first
    assert json.loads((out / "manifest.json").read_text())["resume"]["points_computed_now"] == 0


def test_damaged_point_is_recomputed(setup, tmp_path):
    out = tmp_path / "run"
    args = sweep_args(setup, out, "--layers", "2", "--multipliers=0,1")
    assert cli.main(args) == 0
    first = (out / "items.csv").read_bytes()
    p = next((out / "points").glob("*__L0002__m1.0.json"))
    p.write_text(p.read_text().replace('"score": 0.', '"score": 0.9', 1))  # checksum no longer matches
    (out / "points" / ".stray.123.tmp").write_text("half a fi")
    assert cli.main(args) == 0
    assert (out / "items.csv").read_bytes() == first
    assert json.loads((out / "manifest.json").read_text())["resume"]["points_computed_now"] == 1
    assert not (out / "points" / ".stray.123.tmp").exists()


def test_cli_sweep_is_deterministic(setup, tmp_path):
    for d in ("a", "b"):
        assert cli.main(sweep_args(setup, tmp_path / d, "--layers", "0,4")) == 0
    for f in ("items.csv", "aggregate.csv", "aggregate.json", "vectors.safetensors"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
