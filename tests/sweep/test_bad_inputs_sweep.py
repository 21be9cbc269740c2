"""Bad inputs sweep/ refuses, and what a sweep guarantees with hostile runs: resumed points, locks, merges.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from steerscale import cli
from steerscale.io import store
from steerscale.core.vectors import SteeringVectors
from badinput import Ctx, SRC, base, catalogue_tests  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("sweep-screen-without-baseline", lambda c: c.sweep("--screen", "grad", "--multipliers=-1,1"),
     "--screen grad: multipliers must include 0"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)


def test_model_name_cannot_escape_the_run_folder(tmp_path):
    from conftest import TinyTokenizer, make_model
    from steerscale.core.models import model_info
    from steerscale.config import SweepConfig
    from steerscale.sweep.run import run_sweep
    from builders import make_items

    model = make_model("llama")
    info = model_info(model, name="../../escaped/x")
    vecs = SteeringVectors(torch.randn(info.n_layers, info.hidden_size))
    out = tmp_path / "a" / "b" / "run"
    run_sweep(model, TinyTokenizer(), vecs, make_items(2), SweepConfig(layers=[1], multipliers=[0, 1], template="plain"),
              info=info, out_dir=out, progress=False)
    inside = {p.resolve() for p in out.rglob("*")}
    everything = {p.resolve() for p in tmp_path.rglob("*")} - {out.parent.resolve(), out.parent.parent.resolve()}
    assert everything - inside == {out.resolve()}
    assert all("/" not in p.name and ".." not in p.name for p in (out / "points").iterdir())
    assert store.safe_name("../../x") != store.safe_name("x") and "/" not in store.safe_name("a/b")
    assert store.safe_name("llama-2-7b.Q4_K") == "llama-2-7b.Q4_K"


def test_point_with_empty_rows_is_recomputed(base, tmp_path, caplog):
    c = Ctx(base, tmp_path, None)
    argv = [str(a) for a in c.sweep("--layers", "0,1")]
    assert cli.main(argv) == 0
    ref = (tmp_path / "run" / "items.csv").read_bytes()
    p = next((tmp_path / "run" / "points").glob("*__L0001__m1.0.json"))
    rec = json.loads(p.read_text())
    rec.update(rows=[], sha256=store._rows_digest([]))
    p.write_text(json.dumps(rec))
    caplog.clear()
    assert cli.main(argv) == 0
    assert "recomputing" in caplog.text and (tmp_path / "run" / "items.csv").read_bytes() == ref


def test_saturating_multiplier_is_flagged(base, tmp_path, capsys):
    c = Ctx(base, tmp_path, None)
    argv = [a if not str(a).startswith("--multipliers") else "--multipliers=0,1e30" for a in c.sweep("--layers", "0,1")]
    assert cli.main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err
    assert "multiplier 1e+30: every item scores exactly" in err and "saturated" in err
    assert cli.main([str(a) for a in c.sweep(out=tmp_path / "ok")]) == 0
    assert "saturated" not in capsys.readouterr().err


def test_two_processes_on_one_out_one_is_refused(base, tmp_path):
    """Two sweeps started at once into one folder: one is refused (the store's lock), the other's tables are
    those of a run alone."""
    c = Ctx(base, tmp_path, None)
    zero = c.vectors(torch.zeros(2, 32), "zero.safetensors", meta={"steerscale": json.dumps({"model": "model"})})
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=SRC)
    cmds = [c.sweep("--layers", "0,1", "--multipliers=-1,0,1", "--engine", "naive"),
            c.sweep("--layers", "0,1", "--multipliers=-1,0,1", "--engine", "naive", vectors=zero)]
    procs = [subprocess.Popen([sys.executable, "-m", "steerscale.cli", *map(str, a)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in cmds]
    res = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in res)
    assert codes == [0, 2], res
    refused = [e for rc, e in res if rc == 2][0]
    # the loser meets either the writer's lock or the other setup's run.json (created exclusively)
    assert "in use by another process" in refused or "different setup" in refused, refused
    winner = [i for i, (rc, _) in enumerate(res) if rc == 0][0]
    alone = [str(tmp_path / "alone") if a == str(tmp_path / "run") else str(a) for a in cmds[winner]]
    assert cli.main(alone) == 0
    assert (tmp_path / "run" / "items.csv").read_bytes() == (tmp_path / "alone" / "items.csv").read_bytes()


def test_merge_after_edited_run_json_gives_advice_that_works(base, tmp_path, capsys):
    c = Ctx(base, tmp_path, None)
    out = tmp_path / "run"
    assert cli.main(c.sweep("--layers", "0,1", "--shards", "2")) == 0, capsys.readouterr().err
    record = out / "run.json"
    original = record.read_text()
    edited = json.loads(original)
    edited["dataset_hash"] = "0" * len(str(edited["dataset_hash"]))
    record.write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    capsys.readouterr()
    assert cli.main(["merge", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "changed after its points were written" in last and "restore the original run.json" in last
    record.write_text(original)  # the advice works
    assert cli.main(["merge", str(out)]) == 0, capsys.readouterr().err
