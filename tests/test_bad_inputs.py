"""The catalogue of bad inputs (docs/errors.md): each gives exit 2 and one line naming the file/field/value.

Most entries run `steerscale.cli.main([...])` in-process (fast); a few run the real command in a
subprocess to check the exit code and that no traceback is printed without --debug.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from steerscale import cli, store
from steerscale.vectors import SteeringVectors
from tinydir import caa, save_tiny_model, write_dataset

SRC = str(Path(__file__).resolve().parents[1] / "src")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Shared, read-only inputs: a tiny model dir (2 layers, hidden 32), datasets, good vectors."""
    d = tmp_path_factory.mktemp("bad")
    b = {"dir": d, "model": save_tiny_model(d / "model", layers=2, hidden=32)}
    b["data"] = write_dataset(d / "data.json", 4)
    b["vectors"] = SteeringVectors(torch.randn(2, 32), {"model": "model"}).save(d / "good.safetensors")
    return b


class Ctx:
    """Builds one bad input in a fresh folder."""

    def __init__(self, base, tmp: Path, monkeypatch):
        self.b, self.tmp, self.mp = base, tmp, monkeypatch

    def file(self, name, text=None, raw=None, obj=None) -> str:
        p = self.tmp / name
        if raw is not None:
            p.write_bytes(raw)
        else:
            p.write_text(json.dumps(obj) if obj is not None else text)
        return str(p)

    def vectors(self, tensor, name="v.safetensors", meta=None) -> str:
        p = self.tmp / name
        save_file({"vectors": tensor}, str(p), metadata=meta or {"steerscale": json.dumps({"model": "other-model"})})
        return str(p)

    def train(self, data, *extra):
        return ["train", "--model", str(self.b["model"]), "--data", data, "--out", str(self.tmp / "v.safetensors"),
                *extra]

    def sweep(self, *extra, model=None, vectors=None, data=None, out=None):
        args = ["sweep", "--model", str(model or self.b["model"]), "--data", str(data or self.b["data"]),
                "--layers", "0", "--multipliers=0,1", "--out", str(out or self.tmp / "run"), *extra]
        if vectors is not False:
            args += ["--vectors", str(vectors or self.b["vectors"])]
            if model is not None and vectors is None:  # the shared vectors were made on base["model"]
                args += ["--allow-foreign-vectors"]
        return args

    def model_copy(self, name="m2", **kw) -> Path:
        return save_tiny_model(self.tmp / name, layers=2, hidden=32, **kw)


def _q8k_gguf(c: Ctx) -> str:
    import gguf

    p = c.tmp / "q8k.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_block_count(1)
    w.add_embedding_length(256)
    w.add_tensor("token_embd.weight", np.zeros((4, 256), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((1, 292), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(p)


def _pickle_only_model(c: Ctx) -> str:
    d = c.tmp / "pickled"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    return str(d)


def _model_with(c: Ctx, edit) -> str:
    d = c.model_copy()
    edit(d)
    return str(d)


def _bloom(c: Ctx) -> str:
    return str(save_tiny_model(c.tmp / "bloom", layers=2, hidden=32, model_type="bloom"))


def _truncated(c: Ctx) -> str:
    raw = Path(c.b["vectors"]).read_bytes()
    return c.file("trunc.safetensors", raw=raw[: len(raw) - 40])


def _unwritable(c: Ctx):
    real = store._write_all

    def deny(f, data):
        if ".steerscale-write-test" in f.name:
            raise PermissionError(errno.EACCES, "Permission denied")
        real(f, data)

    c.mp.setattr(store, "_write_all", deny)
    return c.sweep()


def _changed_config(c: Ctx):
    assert cli.main(c.sweep()) == 0
    return c.sweep("--positions", "instruction_end")


def _changed_vectors(c: Ctx):
    args = ["sweep", "--model", str(c.b["model"]), "--data", str(c.b["data"]), "--train-data", str(c.b["data"]),
            "--layers", "0", "--multipliers=0,1", "--out", str(c.tmp / "run")]
    assert cli.main(args) == 0
    return args + ["--normalize", "unit"]


def _other_vectors_same_folder(c: Ctx):
    assert cli.main(c.sweep()) == 0
    return c.sweep(vectors=c.vectors(torch.ones(2, 32), "v2.safetensors",
                                     meta={"steerscale": json.dumps({"model": "model"})}))


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    # --- datasets
    ("json-malformed", lambda c: c.train(c.file("bad.json", "[{")), "bad.json: invalid JSON at line 1 column"),
    ("jsonl-malformed-line", lambda c: c.train(c.file("bad.jsonl", json.dumps(caa(0)) + "\n{oops\n")),
     "bad.jsonl: line 2: invalid JSON"),
    ("missing-key", lambda c: c.train(c.file("d.json", obj=[{"question": caa(0)["question"],
                                                             "answer_matching_behavior": "(A)"}])),
     "d.json: item 0: missing key 'answer_not_matching_behavior'"),
    ("answer-not-a-choice", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), answer_matching_behavior="(E)")])),
     "item 0: field 'answer_matching_behavior' is '(E)', not one of the choices (A, B)"),
    ("answer-not-a-letter", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), answer_matching_behavior="yes")])),
     "field 'answer_matching_behavior' is 'yes'; expected a letter like '(A)'"),
    ("field-wrong-type", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), question=7)])),
     "item 0: field 'question' must be a string, got int"),
    ("empty-list", lambda c: c.train(c.file("d.json", "[]")), "d.json: dataset is empty"),
    ("empty-file", lambda c: c.train(c.file("d.json", "")), "d.json: file is empty"),
    ("duplicate-items", lambda c: c.train(c.file("d.json", obj=[caa(0), caa(1), caa(0)])),
     "d.json: item 2 duplicates item 0 (same question)"),
    ("not-utf8", lambda c: c.train(c.file("d.json", raw=b'[{"question": "caf\xe9"}]')),
     "d.json: not UTF-8 text (bad byte at offset 18)"),
    ("dataset-is-folder", lambda c: c.train(str(c.tmp)), "is a directory, expected a JSON or JSONL file"),
    ("dataset-missing", lambda c: c.train(str(c.tmp / "nope.json")), "nope.json: no such file"),
    ("letter-not-one-token", lambda c: c.sweep(model=c.model_copy(merges=[("(", "A")])),
     "answer letter 'A' (item 0) is not a single token after '('"),
    # --- vectors
    ("vectors-hidden-size", lambda c: c.sweep(vectors=c.vectors(torch.randn(2, 16))),
     "v.safetensors: vectors from other-model have 2 layers x hidden 16; this model has 2 layers x hidden 32"),
    ("vectors-layer-count", lambda c: c.sweep(vectors=c.vectors(torch.randn(5, 32))),
     "have 5 layers x hidden 32; this model has 2 layers"),
    ("vectors-corrupted", lambda c: c.sweep(vectors=c.file("v.safetensors", raw=os.urandom(64))),
     "v.safetensors: not a readable safetensors file"),
    ("vectors-truncated", lambda c: c.sweep(vectors=_truncated(c)), "trunc.safetensors: not a readable safetensors"),
    ("vectors-no-tensor", lambda c: c.sweep(vectors=(save_file({"x": torch.ones(2)}, str(c.tmp / "x.safetensors")),
                                                      str(c.tmp / "x.safetensors"))[1]),
     "x.safetensors: no 'vectors' tensor"),
    ("vectors-wrong-shape", lambda c: c.sweep(vectors=c.vectors(torch.ones(64))),
     "tensor 'vectors' has shape (64,)"),
    ("vectors-nan", lambda c: c.sweep(vectors=c.vectors(torch.full((2, 32), float("nan")))),
     "v.safetensors: tensor 'vectors' contains NaN or Inf"),
    ("vectors-inf", lambda c: c.sweep(vectors=c.vectors(torch.full((2, 32), float("inf")))), "contains NaN or Inf"),
    ("vectors-bad-metadata", lambda c: c.sweep(vectors=c.vectors(torch.ones(2, 32), meta={"steerscale": "{nope"})),
     "v.safetensors: metadata is not valid JSON"),
    ("vectors-missing", lambda c: c.sweep(vectors=c.tmp / "none.safetensors"), "none.safetensors: no such file"),
    # --- models
    ("model-path-missing", lambda c: c.sweep(model=c.tmp / "no-model"), "no-model: no such model folder"),
    ("model-dir-no-config", lambda c: c.sweep(model=c.tmp), "expected a directory with config.json"),
    ("model-pickle-only", lambda c: c.sweep(model=_pickle_only_model(c)),
     "weights are only in pickle files (pytorch_model.bin); steerscale loads safetensors only"),
    ("model-weights-corrupted", lambda c: c.sweep(model=_model_with(
        c, lambda d: (d / "model.safetensors").write_bytes(b"garbage" * 10))), "could not load"),
    ("model-type-unknown-to-transformers", lambda c: c.sweep(model=_model_with(
        c, lambda d: (d / "config.json").write_text(json.dumps(dict(json.loads((d / "config.json").read_text()),
                                                                     model_type="nosucharch"))))),
     "could not load (ValueError"),
    ("architecture-not-registered", lambda c: c.sweep(model=_bloom(c)),
     "unknown architecture 'bloom': known are"),
    ("gguf-missing", lambda c: c.sweep(model=c.tmp / "m.gguf"), "m.gguf: no such file (expected a .gguf file)"),
    ("gguf-unsupported-quant", lambda c: c.sweep(model=_q8k_gguf(c)),
     "tensor 'blk.0.attn_q.weight' uses quantisation Q8_K, which cannot be dequantised"),
    ("gguf-truncated", lambda c: c.sweep(model=c.file("t.gguf", raw=Path(_q8k_gguf(c)).read_bytes()[:100])),
     "t.gguf: not a readable GGUF file"),
    ("nan-in-activations", lambda c: c.sweep(model=c.model_copy(nan=True), vectors=False,
                                             *["--train-data", str(c.b["data"])]),
     "activations contain NaN or Inf"),
    # --- sweep options
    ("layers-out-of-range", lambda c: c.sweep("--layers", "0,99"), "layers [99]: out of range, this model has layers 0..1"),
    ("layers-not-a-number", lambda c: c.sweep("--layers", "x-y"), "--layers 'x-y': expected 'all', a layer"),
    ("layers-empty-range", lambda c: c.sweep("--layers", "5-2"), "--layers '5-2': selects no layers"),
    ("multiplier-not-numeric", lambda c: c.sweep("--multipliers=0,abc"), "--multipliers '0,abc': 'abc' is not a number"),
    ("multiplier-nan", lambda c: c.sweep("--multipliers=0,nan"), "'nan' is not a finite number"),
    ("batch-size-zero", lambda c: c.sweep("--batch-size", "0"), "--batch-size 0: expected a positive integer"),
    ("engine-unknown", lambda c: c.sweep("--engine", "warp"), "engine 'warp': expected one of"),
    # --- output folders
    ("out-under-a-file", lambda c: c.sweep(out=Path(c.file("afile", "x")) / "run"),
     "afile is a file, not a folder"),
    ("out-not-writable", _unwritable, "not writable: permission denied"),
    ("run-folder-other-config", _changed_config, "config.positions: \"all\" vs \"instruction_end\""),
    ("run-folder-other-vectors", _other_vectors_same_folder, "vectors_hash: "),
    ("run-folder-vectors-trained-differently", _changed_vectors,
     "vectors.safetensors: trained with a different setup (normalization: 'none' vs 'unit'"),
]


@pytest.mark.parametrize("build,fragment", [pytest.param(b, f, id=i) for i, b, f in CATALOGUE])
def test_catalogue(base, tmp_path, monkeypatch, capsys, build, fragment):
    argv = build(Ctx(base, tmp_path, monkeypatch))
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # progress bars may come before it
    assert rc == 2, err
    assert fragment in last, err
    assert "Traceback" not in err and last.startswith("steerscale ")


def test_catalogue_is_documented():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text()
    missing = [i for i, _, _ in CATALOGUE if f"`{i}`" not in doc]
    assert not missing and len(CATALOGUE) >= 25


def run_cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "steerscale.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_real_command_exit_code_and_debug(base, tmp_path):
    c = Ctx(base, tmp_path, None)
    r = run_cli(*c.sweep(vectors=c.vectors(torch.randn(3, 32))))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("steerscale sweep: error: ")
    assert "have 3 layers x hidden 32; this model has 2 layers" in r.stderr
    r = run_cli("--debug", *c.train(c.file("bad.json", "[{")))
    assert r.returncode != 0 and "Traceback" in r.stderr and "SteerscaleError" in r.stderr


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


def test_eight_choices_end_to_end(base, tmp_path, capsys):
    """CAA's survival-instinct data has choices up to (H): trained on and swept end to end."""
    import csv

    data = write_dataset(tmp_path / "h.json", 6, n_choices=8)
    args = ["sweep", "--model", str(base["model"]), "--data", str(data), "--train-data", str(data),
            "--layers", "all", "--multipliers=-1,0,1", "--out", str(tmp_path / "run")]
    assert cli.main(args) == 0
    with open(tmp_path / "run" / "items.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 6
    assert all(0 <= float(r["score"]) <= 1 and 0 < float(r["letter_mass"]) <= 1 for r in rows)
    from steerscale.data import load_dataset

    assert load_dataset(data)[0].choices == tuple("ABCDEFGH")


def test_model_name_cannot_escape_the_run_folder(tmp_path):
    from conftest import TinyTokenizer, make_model
    from steerscale.models import model_info
    from steerscale.sweep import SweepConfig, run_sweep
    from test_sweep import make_items

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


def test_nothing_is_unpickled_and_remote_code_is_off(base, monkeypatch):
    src = Path(SRC) / "steerscale"
    for p in src.rglob("*.py"):
        text = p.read_text()
        assert "torch.load" not in text and "import pickle" not in text, p
    import transformers

    seen = {}
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(path, **kw):
        seen.update(kw)
        return real(path, **kw)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    from steerscale.models import load_model

    load_model(str(base["model"]))
    assert seen["use_safetensors"] is True and seen["trust_remote_code"] is False
