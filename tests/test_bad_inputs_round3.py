"""Issue 21, round three: the new surfaces (reproduce TOML, interop, orthogonalize, ablation, generate) held to
sweep's promises. A catalogue of bad inputs (each exit 2 with one line, documented in docs/errors.md), then the
guarantees that need more than one command: the remote-code canary, CSV round trips, kill -9 during
orthogonalize, short writes under a file-size limit, full disks, no leftovers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from steerscale import cli
from steerscale.io import store
from steerscale.errors import SteerscaleError
from steerscale.core.vectors import SteeringVectors
from tinydir import BadInputFolder, caa, save_tiny_model, write_dataset

SRC = str(Path(__file__).resolve().parents[1] / "src")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Shared, read-only inputs: a tiny model dir (2 layers, hidden 32), a dataset, vectors made on it."""
    d = tmp_path_factory.mktemp("r3")
    b = {"dir": d, "model": save_tiny_model(d / "model", layers=2, hidden=32)}
    b["data"] = write_dataset(d / "data.json", 4)
    b["vectors"] = SteeringVectors(torch.randn(2, 32), {"model": "model", "selected_layer": 1}).save(
        d / "good.safetensors")
    return b


class Ctx(BadInputFolder):
    def toml(self, text: str) -> list:
        return ["reproduce", "--config", self.file("c.toml", text), "--out", str(self.tmp / "rep")]

    def model_toml(self, extra: str) -> list:
        return self.toml(f'[[models]]\nspec = "{self.b["model"]}"\n{extra}\n')

    def fifo(self, name) -> str:
        p = self.tmp / name
        os.mkfifo(p)
        return str(p)

    def dir(self, name) -> str:
        p = self.tmp / name
        p.mkdir()
        return str(p)

    def vecs(self, meta: dict, t=None, name="v.safetensors") -> str:
        t = torch.randn(2, 32) if t is None else t
        return str(SteeringVectors(t, meta).save(self.tmp / name))

    def sv_file(self, tensors: dict, name="sv.safetensors") -> str:
        save_file(tensors, str(self.tmp / name), metadata={"layer_type": "decoder_block"})
        return str(self.tmp / name)

    def imported(self) -> str:
        """steering-vectors vectors covering layer 1 only, imported for a 2-layer model."""
        src = self.sv_file({"layer_activations.1": torch.randn(32)})
        out = self.tmp / "imp.safetensors"
        assert cli.main(["import", src, "--n-layers", "2", "--out", str(out)]) == 0
        return str(out)

    def export(self, *extra, vectors=None, out=None):
        return ["export", str(vectors or self.b["vectors"]), str(out or self.tmp / "cv.gguf"), *extra]

    def imp(self, src, *extra, out=None):
        return ["import", str(src), "--n-layers", "2", "--out", str(out or self.tmp / "o.safetensors"), *extra]

    def generate(self, *extra):
        return ["generate", "--model", str(self.b["model"]), "--layers", "1", "--max-new-tokens", "2", "hi", *extra]

    def ortho(self, *extra, model=None, direction=None, out=None):
        return ["orthogonalize", "--model", str(model or self.b["model"]), "--direction",
                str(direction or self.b["vectors"]), "--out", str(out or self.tmp / "orth"), *extra]

    def sweep(self, *extra):
        return ["sweep", "--model", str(self.b["model"]), "--data", str(self.b["data"]), "--layers", "0",
                "--multipliers=0,1", "--vectors", str(self.b["vectors"]), "--out", str(self.tmp / "run"), *extra]


def _gguf(c: Ctx, tensors: dict, name="cv.gguf") -> str:
    import gguf

    p = c.tmp / name
    w = gguf.GGUFWriter(str(p), "controlvector")
    for k, v in tensors.items():
        w.add_tensor(k, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(p)


def _nonempty(c: Ctx) -> list:
    (c.tmp / "orth").mkdir()
    (c.tmp / "orth" / "keep.txt").write_text("mine")
    return c.ortho()


CATALOGUE = [
    # --- reproduce TOML: every key through the typed field table
    ("toml-bool-as-string", lambda c: c.model_toml('trust_remote_code = "false"'),
     "[[models]] #1: trust_remote_code 'false': expected true or false"),
    ("toml-import-bool-as-string", lambda c: c.toml('[[models]]\nspec = "x"\n[[imports]]\ntable = "t.csv"\n'
                                                    'include_in_fit = "false"\n'),
     "[[imports]] #1: include_in_fit 'false': expected true or false"),
    ("toml-spec-not-a-string", lambda c: c.toml("[[models]]\nspec = 5\n"), "[[models]] #1: spec 5: expected a string"),
    ("toml-spec-empty", lambda c: c.toml('[[models]]\nspec = ""\n'), "spec '': expected a non-empty string"),
    ("toml-device", lambda c: c.model_toml('device = "tpu:7"'),
     "device 'tpu:7': expected one of cpu, cuda, cuda:N, mps, auto"),
    ("toml-dtype", lambda c: c.model_toml('dtype = "int4"'), "dtype 'int4': expected one of float32"),
    ("toml-huge-integer", lambda c: c.toml("[run]\nseed = 1" + "0" * 5000 + "\n"), "unreadable TOML value"),
    ("toml-deep-arrays", lambda c: c.toml("x = " + "[" * 50000 + "]" * 50000 + "\n"), "nested too deeply"),
    ("toml-not-utf8", lambda c: ["reproduce", "--config", c.file("c.toml", raw=b"[run]\nseed = \xff\xfe\n"),
                                 "--out", str(c.tmp / "rep")], "not UTF-8 text (byte 13"),
    ("toml-n-bootstrap-huge", lambda c: c.toml("[run]\nn_bootstrap = 1000000000\n"),
     "[run] n_bootstrap 1000000000: expected an integer <= 1e+06"),
    ("toml-max-new-tokens-huge", lambda c: c.toml("[openended]\nmax_new_tokens = 1000000000\n"),
     "max_new_tokens 1000000000: expected an integer <= 1e+06"),
    ("toml-seed-huge", lambda c: c.toml("[run]\nseed = 100000000000\n"), "seed 100000000000: expected an integer <="),
    ("toml-multiplier-huge", lambda c: c.toml("[sweep]\nmultipliers = [0, 1e31]\n"),
     "[sweep]: multipliers value 1e+31: expected a number between -1e+30 and 1e+30"),
    ("toml-duplicate-test-sets", lambda c: c.toml('[data]\ntest_sets = ["refusal-test-ood", "refusal-test-ood"]\n'),
     "test_sets: 'refusal-test-ood' is listed twice"),
    ("cli-device", lambda c: c.sweep("--device", "tpu:7"), "--device tpu:7: expected one of cpu, cuda, cuda:N"),
    ("cli-batch-size-huge", lambda c: c.sweep("--batch-size", "100000000"), "--batch-size 100000000: expected a "
                                                                            "positive integer <= 65536"),
    # --- export
    ("export-multiplier-huge", lambda c: c.export("--multiplier", "1e39"),
     "export --multiplier 1e+39: expected a number between"),
    ("export-float32-overflow", lambda c: c.export("--multiplier", "1e6", vectors=c.vecs(
        {"model": "model"}, torch.full((2, 32), 1e35))), "overflows float32"),
    ("export-to-fifo", lambda c: c.export(out=c.fifo("f.gguf")), "f.gguf: is a FIFO (named pipe); steerscale "
                                                                 "writes only regular files"),
    ("export-to-directory", lambda c: c.export(out=c.dir("d.gguf")), "d.gguf: is a directory; steerscale writes"),
    ("export-system-folder", lambda c: c.export(out="/proc/x.gguf"), "a system folder"),
    # --- import
    ("import-out-fifo", lambda c: c.imp(c.sv_file({"layer_activations.1": torch.randn(32)}),
                                        out=c.fifo("o.safetensors")), "o.safetensors: is a FIFO"),
    ("import-out-system-folder", lambda c: c.imp(c.sv_file({"layer_activations.1": torch.randn(32)}),
                                                 out="/sys/o.safetensors"), "a system folder"),
    ("import-input-fifo", lambda c: c.imp(c.fifo("in.gguf")), "in.gguf: is a FIFO (named pipe), not a regular file"),
    ("import-input-directory", lambda c: c.imp(c.dir("in.safetensors")), "in.safetensors: is a directory"),
    ("import-n-layers-huge", lambda c: ["import", c.sv_file({"layer_activations.1": torch.randn(32)}),
                                        "--n-layers", "10000000", "--out", str(c.tmp / "o.safetensors")],
     "import --n-layers 10000000: expected the model's layer count, 1..10000"),
    ("import-n-layers-too-few", lambda c: c.imp(c.sv_file({"layer_activations.5": torch.randn(32)})),
     "holds a vector for layer 5, but n_layers is 2"),
    ("import-sv-duplicate-layer", lambda c: c.imp(c.sv_file({"layer_activations.1": torch.randn(32),
                                                             "layer_activations.01": torch.randn(32)})),
     "both name layer 1; expected one tensor per layer"),
    ("import-gguf-duplicate-layer", lambda c: c.imp(_gguf(c, {"direction.1": np.ones(32, np.float32),
                                                              "direction.01": np.ones(32, np.float32)})),
     "both name layer 1; expected one tensor per layer"),
    ("import-gguf-2d", lambda c: c.imp(_gguf(c, {"direction.1": np.ones((2, 16), np.float32)})),
     "tensor 'direction.1' has shape [16, 2], expected 1-D"),
    ("import-float32-overflow", lambda c: c.imp(c.sv_file({"layer_activations.1": torch.full((32,), 1e300,
                                                                                            dtype=torch.float64)})),
     "sv.safetensors: the vector for layer 1 contains NaN or Inf (in float32)"),
    # --- imported vectors used where their file has nothing
    ("sweep-imported-absent-layer", lambda c: c.sweep()[:-4] + ["--vectors", c.imported(), "--out",
                                                                str(c.tmp / "run"), "--allow-foreign-vectors"],
     "imported vectors cover layers [1] only; layer(s) 0 would steer with a zero vector"),
    ("generate-imported-absent-layer", lambda c: ["generate", "--model", str(c.b["model"]), "--layers", "0",
                                                  "--vectors", c.imported(), "hi"],
     "imported vectors cover layers [1] only"),
    # --- generate / ablation / orthogonalize
    ("generate-ablate-foreign", lambda c: c.generate("--ablate", c.vecs({"model": "other", "selected_layer": 1})),
     "vectors were made on model 'other', this is 'model'"),
    ("generate-multiplier-huge", lambda c: c.generate("--vectors", str(c.b["vectors"]), "--multipliers", "1e31"),
     "--multipliers value 1e+31: expected a number between"),
    ("direction-selected-layer-string",
     lambda c: c.ortho(direction=c.vecs({"model": "model", "selected_layer": "two"})),
     "selected_layer 'two': expected a layer index (an integer)"),
    ("orthogonalize-gguf-model", lambda c: c.ortho(model="smollm2-135m"),
     "a GGUF (quantised) model cannot be saved as an edited safetensors folder"),
    ("orthogonalize-over-source", lambda c: c.ortho(out=c.b["model"]), "is the source model folder"),
    ("orthogonalize-inside-source", lambda c: c.ortho(out=Path(c.b["model"]) / "sub"), "is the source model folder"),
    ("orthogonalize-nonempty-out", _nonempty, "folder exists and is not empty; pass --force to replace it"),
    ("orthogonalize-system-folder", lambda c: c.ortho(out="/sys/orth"), "a system folder"),
    ("ablation-system-folder", lambda c: ["ablation", "--model", str(c.b["model"]), "--out", "/proc/abl"],
     "a system folder"),
    ("ablation-multiplier-huge", lambda c: ["ablation", "--model", str(c.b["model"]), "--multipliers=1e31",
                                            "--out", str(c.tmp / "abl")],
     "--multipliers value 1e+31: expected a number between"),
    ("ablation-prune-nan", lambda c: ["ablation", "--model", str(c.b["model"]), "--prune", "nan", "--out",
                                      str(c.tmp / "abl")], "--prune nan: expected a fraction in [0, 1)"),
    ("toml-showcase-multiplier-huge", lambda c: c.toml("[showcase]\ndose_multipliers = [0, 1e31]\n"),
     "showcase dose_multipliers value 1e+31: expected a number between -1e+30 and 1e+30"),
    ("shards-zero", lambda c: c.sweep("--shards", "0"), "--shards 0: expected a positive number"),
    ("shards-negative", lambda c: c.sweep("--shards", "-1"), "--shards -1: expected a positive number"),
]


@pytest.mark.parametrize("build,fragment", [(b, f) for _, b, f in CATALOGUE], ids=[i for i, _, _ in CATALOGUE])
def test_catalogue(base, tmp_path, monkeypatch, capsys, build, fragment):
    argv = build(Ctx(base, tmp_path, monkeypatch))
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert rc == 2, err
    assert fragment in last, err
    assert "Traceback" not in err and last.startswith("steerscale ")
    assert "np.uint64" not in last and "np.float" not in last


def test_catalogue_is_documented():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text()
    missing = [i for i, _, _ in CATALOGUE if f"`{i}`" not in doc]
    assert not missing, missing


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


# ----------------------------------------------------------------------------- remote code


def _canary_model(folder: Path, canary: Path) -> Path:
    """A model folder whose config.json maps the Auto classes to a local module that writes `canary` on import."""
    save_tiny_model(folder, layers=2, hidden=32)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "evil.py").write_text(f"open({str(canary)!r}, 'w').write('ran')\n"
                                    "from transformers import LlamaConfig as EvilConfig\n"
                                    "from transformers import LlamaForCausalLM as EvilModel\n")
    return folder


def test_trust_remote_code_string_never_imports_model_code(tmp_path, capsys):
    canary = tmp_path / "CANARY"
    model = _canary_model(tmp_path / "evil_model", canary)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[models]]\nspec = "{model}"\ntrust_remote_code = "false"\n')
    out = tmp_path / "rep"
    assert cli.main(["reproduce", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "trust_remote_code 'false': expected true or false" in err and str(cfg) in err
    assert not canary.exists()
    recorded = [p for p in tmp_path.rglob("*.json") if "trust_remote_code" in p.read_text()]
    assert not recorded  # nothing records trust_remote_code (let alone true)
    # the boolean false really keeps the module out: the model loads with the built-in class, canary unwritten
    from steerscale.core.models import load_model

    load_model(str(model), trust_remote_code=False)
    assert not canary.exists()


# ----------------------------------------------------------------------------- CSV


def test_csv_cells_round_trip_any_string(base, tmp_path):
    """Ids with CR, LF, quotes, commas and formula starts: items.csv reads back with the right row count and ids."""
    import csv

    ids = ["a\rb", "c\nd", 'e"f', "g,h", "=cmd()", "+sum(1)", "@x", "-y", "plain", "-0.5"]
    items = [dict(caa(i), id=s) for i, s in enumerate(ids)]
    data = tmp_path / "ids.json"
    data.write_text(json.dumps(items))
    out = tmp_path / "run"
    assert cli.main(["sweep", "--model", str(base["model"]), "--data", str(data), "--layers", "0",
                     "--multipliers=0,1", "--vectors", str(base["vectors"]), "--out", str(out)]) == 0
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


# ----------------------------------------------------------------------------- orthogonalize folders


def _run(*args, env=None, limit_fsize=None):
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    e["PYTHONPATH"] = SRC + os.pathsep + str(Path(__file__).parent)
    pre = None
    if limit_fsize is not None:
        def pre():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))
    return subprocess.run([sys.executable, "-m", "steerscale.cli", *map(str, args)], capture_output=True, text=True,
                          env=e, timeout=300, preexec_fn=pre)


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
        r = _run("orthogonalize", "--model", base["model"], "--direction", d_new, "--out", target, "--force",
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


# ----------------------------------------------------------------------------- short writes, leftovers


def test_export_under_file_size_limit_exits_2_without_a_file(tmp_path):
    vp = SteeringVectors(torch.randn(8, 4096), {"model": "m"}).save(tmp_path / "v.safetensors")
    out = tmp_path / "cv.gguf"
    r = _run("export", vp, out, limit_fsize=40_000)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith("steerscale export: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.safetensors"]  # no truncated file, no temp
    r = _run("export", vp, out)
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


# ----------------------------------------------------------------------------- report.md


def test_report_markdown_neutralises_links_and_bidi():
    from steerscale.io.guards import md_text
    from steerscale.report.document import Document, Paragraph, Table
    from steerscale.report.markdown import render_markdown

    name = "evil[click me](javascript:alert(1))\u202egpj.exe\u2066x\u200f"
    doc = Document(title=name, blocks=[Paragraph([name]), Table(["model"], [[name]])])
    md = render_markdown(doc, Path("."))
    assert not re.search(r"(?<!\\)\]\(javascript", md) and "\\](javascript" in md
    assert not any(ch in md for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
    assert "U+202E" in md
    assert md_text("[0.1, 0.2] and x") == "[0.1, 0.2] and x"  # intervals are left as they are


# ----------------------------------------------------------------------------- reproduce runs the CLI's checks


def test_reproduce_checks_generation_fits_context(base, tmp_path, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps([{"prompt": f"How do I do {i}?"} for i in range(4)]))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ntrain = "{base["data"]}"\ntest = "{base["data"]}"\n'
                   f'[openended]\nharmful = "{prompts}"\nharmless = "{prompts}"\nn_neutral = 0\n'
                   f'n_generate = 1\nmax_new_tokens = 100000\n'
                   f'[[models]]\nspec = "{base["model"]}"\n')
    assert cli.main(["reproduce", "--config", str(cfg), "--out", str(tmp_path / "rep")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "+ 100000 to generate exceed this model's context of 512 tokens" in last


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
