"""Bad inputs interventions/ refuses, and orthogonalize's folders under kill -9 and full disks.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import pytest
import torch

from steerscale import cli
from steerscale.core.vectors import SteeringVectors
from badinput import Ctx, base, catalogue_tests, run_cli  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("direction-selected-layer-string",
     lambda c: c.ortho(direction=c.vecs({"model": "model", "selected_layer": "two"})),
     "selected_layer 'two': expected a layer index (an integer)"),
    ("ablation-prune-nan", lambda c: ["ablation", "--model", str(c.b["model"]), "--prune", "nan", "--out",
                                      str(c.tmp / "abl")], "--prune nan: expected a fraction in [0, 1)"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_orthogonalize_kill_9_old_intact_or_new_complete(base, tmp_path, capsys):
    """SIGKILL at each stage of replacing an existing folder (--force): the folder is the old one intact or the
    new one complete with its record, never a mix; nothing but the target is left beside it. (The complete
    reference folders are made in-process; only the killed runs are subprocesses.)"""
    import shutil

    d_old = SteeringVectors(torch.randn(2, 32), {"model": "model", "selected_layer": 1}).save(tmp_path / "old.st")
    d_new = SteeringVectors(torch.randn(2, 32), {"model": "model", "selected_layer": 0}).save(tmp_path / "new.st")
    refs = {}
    for name, d in (("old", d_old), ("new", d_new)):
        rc = cli.main(["orthogonalize", "--model", str(base["model"]), "--direction", str(d), "--out",
                       str(tmp_path / name)])
        assert rc == 0, capsys.readouterr().err
        refs[name] = _digest(tmp_path / name)
    old, new = refs["old"], refs["new"]
    assert old != new and "steerscale_orthogonalize.json" in old
    target = tmp_path / "w" / "orth"
    for stage in ("orthogonalize-weights", "orthogonalize-tokenizer", "orthogonalize-directions", "folder-built",
                  "folder-exchanged"):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(tmp_path / "old", target)
        r = run_cli("orthogonalize", "--model", base["model"], "--direction", d_new, "--out", target, "--force",
                 env={"STEERSCALE_FAULT_POINT": stage})
        assert r.returncode == -9, (stage, r.returncode, r.stderr[-500:])
        got = _digest(target)
        want = new if stage == "folder-exchanged" else old
        assert got == want, stage
        rec = json.loads((target / "steerscale_orthogonalize.json").read_text())
        assert rec["direction_file"] == str(d_new if want is new else d_old)
        assert len(list(target.parent.iterdir())) == 2  # the target and the killed run's temporary folder
    # the next run cleans what the killed ones left beside the target
    rc = cli.main(["orthogonalize", "--model", str(base["model"]), "--direction", str(d_new), "--out", str(target),
                   "--force"])
    assert rc == 0, capsys.readouterr().err
    assert _digest(target) == new
    assert [p.name for p in target.parent.iterdir()] == ["orth"]


def test_orthogonalize_force_replaces_sharded_folder_whole(base, tmp_path, capsys):
    out = tmp_path / "orth"
    out.mkdir()
    (out / "model.safetensors.index.json").write_text("{}")
    (out / "model-00001-of-00002.safetensors").write_bytes(b"old")
    assert cli.main(Ctx(base, tmp_path, None).ortho("--force")) == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors.index.json" not in names and "model-00001-of-00002.safetensors" not in names
    assert {"model.safetensors", "steerscale_orthogonalize.json", "ablated_directions.safetensors"} <= names
    from steerscale.core.models import load_model

    load_model(str(out))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_orthogonalize_full_disk_leaves_no_folder(base, tmp_path, monkeypatch, capsys):
    from transformers import PreTrainedModel

    def full(self, folder, **kw):
        (Path(folder) / "model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", full)
    assert cli.main(Ctx(base, tmp_path, None).ortho()) == 2
    err = capsys.readouterr().err
    assert "disk is full" in err.strip().splitlines()[-1]
    assert not (tmp_path / "orth").exists() and list(tmp_path.iterdir()) == []
