"""Bad inputs that io/ refuses: input files that are not plain, small, readable files; outputs that are not regular
files or sit in system folders; vectors files; full disks and short writes.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from steerscale import cli
from steerscale.io import store
from steerscale.errors import SteerscaleError
from steerscale.core.vectors import SteeringVectors
from tinydir import caa
from badinput import Ctx, base, catalogue_tests, read_rows, run_cli  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("dataset-is-folder", lambda c: c.train(str(c.tmp)), "is a directory, expected a JSON or JSONL file"),
    ("dataset-missing", lambda c: c.train(str(c.tmp / "nope.json")), "nope.json: no such file"),
    ("vectors-corrupted", lambda c: c.sweep(vectors=c.file("v.safetensors", raw=os.urandom(64))),
     "v.safetensors: not a readable safetensors file"),
    ("vectors-truncated", lambda c: c.sweep(vectors=c.truncated()), "trunc.safetensors: not a readable safetensors"),
    ("vectors-nan", lambda c: c.sweep(vectors=c.vectors(torch.full((2, 32), float("nan")))),
     "v.safetensors: tensor 'vectors' contains NaN or Inf"),
    ("vectors-inf", lambda c: c.sweep(vectors=c.vectors(torch.full((2, 32), float("inf")))), "contains NaN or Inf"),
    ("vectors-bad-metadata", lambda c: c.sweep(vectors=c.vectors(torch.ones(2, 32), meta={"steerscale": "{nope"})),
     "v.safetensors: metadata is not valid JSON"),
    ("vectors-missing", lambda c: c.sweep(vectors=c.tmp / "none.safetensors"), "none.safetensors: no such file"),
    ("out-under-a-file", lambda c: c.sweep(out=Path(c.file("afile", "x")) / "run"),
     "afile is a file, not a folder"),
    ("out-not-writable", Ctx.unwritable, "not writable: permission denied"),
    ("run-folder-other-config", Ctx.changed_config, "config.positions: \"all\" vs \"instruction_end\""),
    ("run-folder-other-vectors", Ctx.other_vectors_same_folder, "vectors_hash: "),
    ("dataset-fifo", lambda c: c.train(c.fifo()), "fifo.json: is a FIFO (named pipe), not a regular file"),
    ("dataset-device", lambda c: c.train("/dev/zero"), "/dev/zero: is a character device, not a regular file"),
    ("dataset-symlink-loop", lambda c: c.train(c.loop()), "loop.json: symbolic link loop"),
    ("dataset-broken-symlink", lambda c: c.train(c.broken_link()), "dangling.json: broken symbolic link"),
    ("dataset-unreadable", lambda c: c.train(c.unreadable(c.file("d.json", obj=[caa(0), caa(1)]))),
     "d.json: cannot read: permission denied"),
    ("dataset-over-size-limit", Ctx.small_limit, "data.json: 580 bytes is over the input limit of 104 bytes; raise it "
                                              "with STEERSCALE_MAX_INPUT_MB=<megabytes>"),
    ("input-limit-env-invalid", Ctx.bad_limit_env, "STEERSCALE_MAX_INPUT_MB='lots': expected a positive number"),
    ("json-nested-too-deep", lambda c: c.train(c.file("deep.json", "[" * 100_000 + "]" * 100_000)),
     "deep.json: JSON nested too deeply to read"),
    ("jsonl-nested-too-deep", lambda c: c.train(c.file("deep.jsonl", json.dumps(caa(0)) + "\n" + "[" * 100_000)),
     "deep.jsonl: line 2: JSON nested too deeply"),
    ("json-huge-integer-id", lambda c: c.train(c.file("d.json", '[{"id": ' + "7" * 5000 + "}]")),
     "d.json: unreadable JSON value (Exceeds the limit (4300 digits) for integer string conversion"),
    ("prompts-fifo", lambda c: c.openended("--harmless", c.fifo("h.json")), "h.json: is a FIFO (named pipe)"),
    ("phrases-nested-too-deep", lambda c: c.openended("--phrases", c.file("ph.json", "[" * 100_000)),
     "ph.json: JSON nested too deeply"),
    ("neutral-device", lambda c: c.openended("--neutral", "/dev/zero", "--n-neutral", "2"),
     "/dev/zero: is a character device"),
    ("vectors-is-directory", lambda c: c.sweep(vectors=c.tmp), "is a directory, expected a .safetensors file"),
    ("vectors-fifo", lambda c: c.sweep(vectors=c.fifo("v.safetensors")), "v.safetensors: is a FIFO (named pipe)"),
    ("vectors-symlink-loop", lambda c: c.sweep(vectors=c.loop("v.safetensors")),
     "v.safetensors: symbolic link loop"),
    ("vectors-unreadable", lambda c: c.sweep(vectors=c.unreadable(c.vectors(torch.ones(2, 32)))),
     "v.safetensors: cannot read: permission denied"),
    ("train-out-dev-null", lambda c: c.train(str(c.b["data"]))[:-1] + ["/dev/null"],
     "--out /dev/null: is a character device; steerscale writes only regular files"),
    ("train-out-fifo", lambda c: c.train(str(c.b["data"]))[:-1] + [c.fifo("out.safetensors")],
     "out.safetensors: is a FIFO (named pipe); steerscale writes only regular files"),
    ("train-out-directory", lambda c: c.train(str(c.b["data"]))[:-1] + [str(c.tmp)],
     "is a directory; steerscale writes only regular files"),
    ("train-out-symlink-to-device", lambda c: c.train(str(c.b["data"]))[:-1] + [
        (os.symlink("/dev/null", c.tmp / "v.safetensors"), str(c.tmp / "v.safetensors"))[1]],
     "is a character device; steerscale writes only regular files"),
    ("train-cache-dir-system-folder", lambda c: c.train(str(c.b["data"]), "--cache-dir", "/proc/steerscale"),
     "--cache-dir /proc/steerscale: a system folder"),
    ("sweep-out-root", lambda c: c.sweep(out="/"), "--out /: the filesystem root; give a folder of its own"),
    ("sweep-out-system-folder", lambda c: c.sweep(out="/etc"), "--out /etc: a system folder"),
    ("sweep-out-under-dev", lambda c: c.sweep(out="/dev/shm/steerscale-run"), "a system folder"),
    ("sweep-out-fifo", lambda c: c.sweep(out=c.fifo("outfifo")), "outfifo: is a FIFO (named pipe), not a folder"),
    ("openended-out-dev-null", lambda c: c.openended()[:-2] + ["--out", "/dev/null"], "a system folder"),
    ("similarity-out-root", lambda c: c.similarity(str(c.b["vectors"]), out="/"), "--out /: the filesystem root"),
    ("reproduce-out-root", lambda c: ["reproduce", "--out", "/"], "--out /: the filesystem root"),
    ("reproduce-config-fifo", lambda c: ["reproduce", "--config", c.fifo("cfg.toml"), "--out", str(c.tmp / "r")],
     "cfg.toml: is a FIFO (named pipe), not a regular file; expected a TOML config file"),
    ("export-to-fifo", lambda c: c.export(out=c.fifo("f.gguf")), "f.gguf: is a FIFO (named pipe); steerscale "
                                                                 "writes only regular files"),
    ("export-to-directory", lambda c: c.export(out=c.dir("d.gguf")), "d.gguf: is a directory; steerscale writes"),
    ("export-system-folder", lambda c: c.export(out="/proc/x.gguf"), "a system folder"),
    ("import-out-fifo", lambda c: c.imp(c.sv_file({"layer_activations.1": torch.randn(32)}),
                                        out=c.fifo("o.safetensors")), "o.safetensors: is a FIFO"),
    ("import-out-system-folder", lambda c: c.imp(c.sv_file({"layer_activations.1": torch.randn(32)}),
                                                 out="/sys/o.safetensors"), "a system folder"),
    ("import-input-fifo", lambda c: c.imp(c.fifo("in.gguf")), "in.gguf: is a FIFO (named pipe), not a regular file"),
    ("import-input-directory", lambda c: c.imp(c.dir("in.safetensors")), "in.safetensors: is a directory"),
    ("orthogonalize-over-source", lambda c: c.ortho(out=c.b["model"]), "is the source model folder"),
    ("orthogonalize-inside-source", lambda c: c.ortho(out=Path(c.b["model"]) / "sub"), "is the source model folder"),
    ("orthogonalize-nonempty-out", Ctx.nonempty_orth_out, "folder exists and is not empty; pass --force to replace it"),
    ("orthogonalize-system-folder", lambda c: c.ortho(out="/sys/orth"), "a system folder"),
    ("ablation-system-folder", lambda c: ["ablation", "--model", str(c.b["model"]), "--out", "/proc/abl"],
     "a system folder"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)


def test_disk_full_keeps_finished_points(base, tmp_path, monkeypatch, capsys):
    c = Ctx(base, tmp_path, monkeypatch)
    args = [str(a) for a in c.sweep("--layers", "0,1", "--multipliers=-1,0,1")]
    real, n = store._write_all, {"points": 0}

    def fill_up(f, data):
        if "__L" in f.name:
            n["points"] += 1
            if n["points"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data)

    monkeypatch.setattr(store, "_write_all", fill_up)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "disk is full (no space left on device)" in err and "re-run the same command" in err
    pts = sorted(p.name for p in (tmp_path / "run" / "points").iterdir())
    assert len([p for p in pts if "__L" in p]) == 3 and not [p for p in pts if p.endswith(".tmp")]
    monkeypatch.setattr(store, "_write_all", real)
    assert cli.main(args) == 0
    assert cli.main([a if a != str(tmp_path / "run") else str(tmp_path / "fresh") for a in args]) == 0
    assert (tmp_path / "run" / "items.csv").read_bytes() == (tmp_path / "fresh" / "items.csv").read_bytes()


def test_csv_cells_are_defused_and_numbers_untouched(base, tmp_path):
    ids = ["=cmd|' /C calc'!A0", "+SUM(A1)", "@x", "a\x00b", "-0.5", "\tlead"]
    data = [dict(caa(i), id=x, category="-cat" if i == 0 else "=1+1") for i, x in enumerate(ids)]
    p = tmp_path / "d.json"
    p.write_text(json.dumps(data))
    c = Ctx(base, tmp_path, None)
    assert cli.main([str(a) for a in c.sweep("--multipliers=-1,0,1", data=p)]) == 0
    rows = read_rows(tmp_path / "run" / "items.csv")
    got = [r["item"] for r in rows[: len(ids)]]
    assert got == ["'=cmd|' /C calc'!A0", "'+SUM(A1)", "'@x", "a\\0b", "-0.5", "'\tlead"]
    assert {r["category"] for r in rows} == {"'-cat", "'=1+1"}
    assert {r["multiplier"] for r in rows} == {"-1", "0", "1"}  # numbers are never escaped
    assert all(float(r["score"]) >= 0 for r in rows) and "\x00" not in (tmp_path / "run" / "items.csv").read_text()
    from steerscale.io.guards import csv_cell

    assert csv_cell(-0.5) == -0.5 and csv_cell("-1e-3") == "-1e-3" and csv_cell("-x") == "'-x"


def test_output_device_is_never_replaced(base, tmp_path):
    import stat

    c = Ctx(base, tmp_path, None)
    targets = [t for t in ("/dev/null", "/dev/full") if os.path.exists(t)]
    if os.geteuid() == 0:  # root (CI): a character device of our own, so the test never depends on the host's /dev
        own = tmp_path / "null-device"
        os.mknod(own, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        targets.append(str(own))
    assert targets, "no character device to test with: neither /dev/null nor /dev/full exists and not root"
    for target in targets:
        assert cli.main(c.train(str(c.b["data"]))[:-1] + [target]) == 2
        assert stat.S_ISCHR(os.stat(target).st_mode), target


def test_disk_full_while_plotting_names_the_file(base, tmp_path, monkeypatch, capsys):
    c = Ctx(base, tmp_path, monkeypatch)
    real = store._write_all

    def full(f, data):
        if ".svg" in f.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data)

    monkeypatch.setattr(store, "_write_all", full)
    assert cli.main([str(a) for a in c.sweep()]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{tmp_path / 'run' / 'layer_sweep.svg'}: disk is full (no space left on device)" in err
    assert not list((tmp_path / "run").glob("*.svg")) and not list((tmp_path / "run").glob(".*.tmp"))


def test_refused_outputs_are_left_alone(base, tmp_path):
    """A FIFO or a directory given as the output is never replaced, and nothing is left beside it."""
    c = Ctx(base, tmp_path, None)
    fifo = c.fifo("f.gguf")
    assert cli.main(c.export(out=fifo)) == 2
    assert Path(fifo).is_fifo()
    d = c.dir("d.safetensors")
    assert cli.main(c.imp(c.sv_file({"layer_activations.1": torch.randn(32)}), out=d)) == 2
    assert Path(d).is_dir() and not any(Path(d).iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.safetensors", "f.gguf", "sv.safetensors"]


def test_csv_cells_round_trip_any_string(base, tmp_path):
    """Ids with CR, LF, quotes, commas and formula starts: items.csv reads back with the right row count and ids."""
    import csv

    ids = ["a\rb", "c\nd", 'e"f', "g,h", "=cmd()", "+sum(1)", "@x", "-y", "plain", "-0.5"]
    items = [dict(caa(i), id=s) for i, s in enumerate(ids)]
    data = tmp_path / "ids.json"
    data.write_text(json.dumps(items))
    out = tmp_path / "run"
    assert cli.main(["sweep", "--model", str(base["model"]), "--data", str(data), "--layers", "0",
                     "--multipliers=0,1", "--vectors", str(base["direction"]), "--out", str(out)]) == 0
    with open(out / "items.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ids) * 2
    got = {r["item"] for r in rows}
    assert {s for s in ids if s[0] not in "=+@-"} <= got
    assert {"'=cmd()", "'+sum(1)", "'@x", "'-y", "-0.5"} <= got  # formulas stay defused, numbers not
    assert all(r["score"] not in ("", None) for r in rows)


def test_csv_text_matches_plain_rows():
    from steerscale.io.results import csv_text

    assert csv_text([{"a": 1.5, "b": "x"}, {"a": None, "b": "y z"}], ["a", "b"]) == "a,b\n1.5,x\n,y z\n"


def test_export_under_file_size_limit_exits_2_without_a_file(tmp_path):
    vp = SteeringVectors(torch.randn(8, 4096), {"model": "m"}).save(tmp_path / "v.safetensors")
    out = tmp_path / "cv.gguf"
    r = run_cli("export", vp, out, limit_fsize=40_000)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith("steerscale export: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.safetensors"]  # no truncated file, no temp
    r = run_cli("export", vp, out)
    assert r.returncode == 0 and out.stat().st_size > 7 * 4096 * 4  # direction.1 .. direction.7


def test_import_short_write_is_refused(base, tmp_path, monkeypatch, capsys):
    """A write the library reports as complete but that did not reach the disk whole is caught by the size check."""
    c = Ctx(base, tmp_path, monkeypatch)
    src = c.sv_file({"layer_activations.1": torch.randn(32)})

    def short(f, data):
        f.write(data[: len(data) // 2])
        f.flush()
        if os.fstat(f.fileno()).st_size != len(data):
            raise OSError(errno.ENOSPC, "No space left on device (short write)")

    monkeypatch.setattr(store, "_write_all", short)
    assert cli.main(c.imp(src)) == 2
    assert "disk is full" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sv.safetensors"]


def test_failed_write_probe_leaves_nothing(tmp_path, monkeypatch):
    from steerscale.errors import SteerscaleError

    real = store._write_all

    def full(f, data):
        f.write(data[:1])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_all", full)
    with pytest.raises(SteerscaleError, match="disk is full"):
        store.check_writable_folder(tmp_path / "out")
    monkeypatch.setattr(store, "_write_all", real)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("folder,refused", [("/etc/steerscale-run", True), ("/usr/local/steerscale-run", True),
                                            ("/usr", True), ("/sys/x", True), ("/var/tmp/steerscale-run", False),
                                            ("results/run1", False)])
def test_no_output_below_system_folders(folder, refused):
    """Not only the system folders themselves: nothing below /etc, /usr, /bin, ... is an output folder."""
    from steerscale.io.guards import check_output_folder

    if refused:
        with pytest.raises(SteerscaleError, match="a system folder"):
            check_output_folder(folder)
    else:
        assert check_output_folder(folder) == Path(folder)
