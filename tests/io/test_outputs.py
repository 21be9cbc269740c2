"""io/outputs.py: folders built beside their target and put in place whole; leftovers of killed runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from steerscale.errors import SteerscaleError
from steerscale.io.outputs import build_folder, check_out_folder_target, clean_leftovers
from steerscale.io.store import host_name


def _files(folder):
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_build_folder_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    build_folder(target, lambda d: (d / "a.txt").write_text("one"))
    assert _files(target) == {"a.txt": "one"}
    with pytest.raises(SteerscaleError, match="folder exists and is not empty; pass --force"):
        build_folder(target, lambda d: (d / "b.txt").write_text("two"))

    def half_then_fail(d):
        (d / "b.txt").write_text("two")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        build_folder(target, half_then_fail, force=True)
    assert _files(target) == {"a.txt": "one"}  # the old folder, untouched
    build_folder(target, lambda d: (d / "b.txt").write_text("two"), force=True)
    assert _files(target) == {"b.txt": "two"}  # the new one whole, nothing of the old one kept
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left beside it


def test_target_inside_or_holding_a_source_is_refused(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    for bad in (src, src / "sub", tmp_path):
        with pytest.raises(SteerscaleError, match="is the source model folder"):
            check_out_folder_target(bad, force=True, sources=[src])
    assert check_out_folder_target(tmp_path / "edited", force=False, sources=[src]) == tmp_path / "edited"


def test_clean_leftovers_removes_only_dead_runs_of_this_host(tmp_path):
    target = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    names = {"dead": f".out.steerscale-new.{host_name()}.{dead_pid}.ab12",
             "alive": f".out.steerscale-old.{host_name()}.{os.getpid()}.cd34",
             "other-host": f".out.steerscale-new.elsewhere-{host_name()}.{dead_pid}.ef56",
             "not-ours": f".out.steerscale-draft.{host_name()}.{dead_pid}.0000"}
    for n in names.values():
        (tmp_path / n).mkdir()
    clean_leftovers(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(v for k, v in names.items() if k != "dead")
