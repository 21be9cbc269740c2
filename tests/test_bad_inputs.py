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

from steerscale import cli
from steerscale.io import store
from steerscale.core.vectors import SteeringVectors
from tinydir import BadInputFolder, caa, save_tiny_model, write_dataset

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


class Ctx(BadInputFolder):
    """Builds one bad input in a fresh folder."""

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


def _none_meta() -> dict:
    """Metadata of a 'none' (raw-mean) vector whose letter-imbalance term is half of it at every layer."""
    from steerscale.core.letters import LetterFigures

    fig = LetterFigures("none", {"A": 3, "B": 1}, 4, 0.5, [1.0, 1.0], [0.1, 0.1], [1.0, 1.0], [0.9, 0.9], [0.5, 0.5])
    return {"steerscale": json.dumps({"model": "model", "letter": fig.to_meta()})}


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


# ---------------------------------------------------------------- round two (issue 14): builders


def _fifo(c: Ctx, name="fifo.json") -> str:
    p = c.tmp / name
    os.mkfifo(p)
    return str(p)


def _loop(c: Ctx, name="loop.json") -> str:
    p = c.tmp / name
    os.symlink(p, p)
    return str(p)


def _broken_link(c: Ctx, name="dangling.json") -> str:
    p = c.tmp / name
    os.symlink(c.tmp / "gone", p)
    return str(p)


def _unreadable(c: Ctx, path: str) -> str:
    """Tests run as root (permissions do not stop root): simulate EACCES where inputs are opened."""
    from steerscale.io import guards

    real = guards._open_fd

    def deny(p):
        if str(p) == path:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(p)

    c.mp.setattr(guards, "_open_fd", deny)
    return path


def _limit_env(c: Ctx, mb: str) -> None:
    c.mp.setenv("STEERSCALE_MAX_INPUT_MB", mb)


def _small_limit(c: Ctx):
    _limit_env(c, "0.0001")  # ~100 bytes
    return c.train(str(c.b["data"]))


def _bad_limit_env(c: Ctx):
    _limit_env(c, "lots")
    return c.train(str(c.b["data"]))


def _footnote(c: Ctx) -> str:
    q = "Question 0?\n(C) footnote: see the appendix\n\nChoices:\n(A) yes\n(B) no"
    return c.file("d.json", obj=[dict(caa(0), question=q, answer_matching_behavior="(C)")])


def _gpt2(c: Ctx) -> Path:
    return save_tiny_model(c.tmp / "gpt2", layers=2, hidden=32, model_type="gpt2")


def _long_question(c: Ctx, n=600) -> str:
    return c.file("long.json", obj=[dict(caa(0), question="x" * n + "\n\nChoices:\n(A) a\n(B) b")])


def _zero_layers(c: Ctx) -> str:
    d = c.model_copy("zero")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(cfg, num_hidden_layers=0)))
    return str(d)


def _chdir_with_models(c: Ctx, spec: str):
    (c.tmp / "models").mkdir()
    c.mp.chdir(c.tmp)
    return c.sweep(model=spec)


def _generate(c: Ctx, *extra, prompt="hello"):
    return ["generate", "--model", str(c.b["model"]), "--vectors", str(c.b["vectors"]), "--layers", "0",
            "--template", "plain", prompt, *extra]


def _openended(c: Ctx, *extra):
    return ["openended", "--model", str(c.b["model"]), "--vectors", str(c.b["vectors"]), "--template", "plain",
            "--layers", "0", "--multipliers=0,1", "--n-logodds", "2", "--n-generate", "0", "--n-neutral", "0",
            "--out", str(c.tmp / "oe"), *extra]


def _prompts(c: Ctx, records, name="p.json") -> str:
    return c.file(name, obj=records)


def _similarity(c: Ctx, *specs, out=None):
    return ["similarity", *specs, "--out", str(out or c.tmp / "sim")]


def _transfer(c: Ctx, *extra):
    return ["transfer", "--vectors", str(c.b["vectors"]), "--source-model", str(c.b["model"]), "--model",
            str(c.b["model"]), "--layers", "0", "--template", "plain", *extra]


def _report_folder(c: Ctx, edit=None) -> str:
    """A 'steerscale reproduce' output folder built from one tiny sweep (model name 'm'), optionally damaged."""
    from steerscale.reproduce.config import load_config

    cfg = c.tmp / "cfg.toml"
    cfg.write_text(f'[run]\nn_bootstrap = 20\n[data]\ntrain = "{c.b["data"]}"\ntest = "{c.b["data"]}"\n'
                   f'[sweep]\ntemplate = "plain"\n[[models]]\nspec = "{c.b["model"]}"\nname = "m"\n')
    out = c.tmp / "rep"
    out.mkdir()
    (out / "reproduce_config.json").write_text(json.dumps(load_config(cfg).to_dict(), default=str))
    assert cli.main(c.sweep("--layers", "0,1", "--multipliers=-1,0,1", "--template", "plain", out=out / "m")) == 0
    if edit:
        edit(out)
    return str(out)


def _edit_scores(out: Path, value: str, at_zero: bool = False) -> None:
    import csv

    with open(out / "m" / "items.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if float(r["multiplier"]) == 0.0 or not at_zero:
            r["score"] = value
            break
    with open(out / "m" / "items.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


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
    # --- round two (issue 14): input files that are not plain, small, readable files
    ("dataset-fifo", lambda c: c.train(_fifo(c)), "fifo.json: is a FIFO (named pipe), not a regular file"),
    ("dataset-device", lambda c: c.train("/dev/zero"), "/dev/zero: is a character device, not a regular file"),
    ("dataset-symlink-loop", lambda c: c.train(_loop(c)), "loop.json: symbolic link loop"),
    ("dataset-broken-symlink", lambda c: c.train(_broken_link(c)), "dangling.json: broken symbolic link"),
    ("dataset-unreadable", lambda c: c.train(_unreadable(c, c.file("d.json", obj=[caa(0), caa(1)]))),
     "d.json: cannot read: permission denied"),
    ("dataset-over-size-limit", _small_limit, "data.json: 580 bytes is over the input limit of 104 bytes; raise it "
                                              "with STEERSCALE_MAX_INPUT_MB=<megabytes>"),
    ("input-limit-env-invalid", _bad_limit_env, "STEERSCALE_MAX_INPUT_MB='lots': expected a positive number"),
    ("json-nested-too-deep", lambda c: c.train(c.file("deep.json", "[" * 100_000 + "]" * 100_000)),
     "deep.json: JSON nested too deeply to read"),
    ("jsonl-nested-too-deep", lambda c: c.train(c.file("deep.jsonl", json.dumps(caa(0)) + "\n" + "[" * 100_000)),
     "deep.jsonl: line 2: JSON nested too deeply"),
    ("json-huge-integer-id", lambda c: c.train(c.file("d.json", '[{"id": ' + "7" * 5000 + "}]")),
     "d.json: unreadable JSON value (Exceeds the limit (4300 digits) for integer string conversion"),
    ("id-wrong-type", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), id={"a": 1})])),
     "item 0: field 'id' must be a string or an integer, got dict"),
    ("duplicate-ids", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), id="x"), dict(caa(1), id="x")])),
     "d.json: item 1 has id 'x', already used by item 0; ids must be unique"),
    ("duplicate-ids-int-and-string", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), id=3),
                                                                              dict(caa(1), id="3")])),
     "item 1 has id '3', already used by item 0"),
    ("footnote-is-not-a-choice", lambda c: c.train(_footnote(c)),
     "item 0: field 'answer_matching_behavior' is '(C)', not one of the choices (A, B)"),
    ("choices-only-in-body", lambda c: c.train(c.file("d.json", obj=[dict(
        caa(0), question="Q?\n(A) one\n(B) two\nPlease think it over.")])),
     "item 0: field 'question' lists 0 choice(s)"),
    ("prompts-duplicate-ids", lambda c: _openended(c, "--harmful", _prompts(c, [{"id": 1, "prompt": "a"},
                                                                               {"id": 1, "prompt": "b"}])),
     "p.json: item 1 has id '1', already used by item 0"),
    ("prompts-fifo", lambda c: _openended(c, "--harmless", _fifo(c, "h.json")), "h.json: is a FIFO (named pipe)"),
    ("phrases-nested-too-deep", lambda c: _openended(c, "--phrases", c.file("ph.json", "[" * 100_000)),
     "ph.json: JSON nested too deeply"),
    ("neutral-device", lambda c: _openended(c, "--neutral", "/dev/zero", "--n-neutral", "2"),
     "/dev/zero: is a character device"),
    ("question-longer-than-context-llama", lambda c: c.train(_long_question(c)),
     "long.json: item 0: 646 prompt tokens + 2 for '(' and the answer letter exceed this model's context of 512"),
    ("question-longer-than-context-gpt2", lambda c: c.sweep(model=_gpt2(c), data=_long_question(c)),
     "item 0: 646 prompt tokens + 2 for '(' and the answer letter exceed this model's context of 512 tokens"),
    ("generate-prompt-longer-than-context", lambda c: _generate(c, "--max-new-tokens", "100", prompt="y" * 480),
     "prompt: 498 prompt tokens + 100 to generate exceed this model's context of 512"),
    # --- vectors paths
    ("vectors-is-directory", lambda c: c.sweep(vectors=c.tmp), "is a directory, expected a .safetensors file"),
    ("vectors-fifo", lambda c: c.sweep(vectors=_fifo(c, "v.safetensors")), "v.safetensors: is a FIFO (named pipe)"),
    ("vectors-symlink-loop", lambda c: c.sweep(vectors=_loop(c, "v.safetensors")),
     "v.safetensors: symbolic link loop"),
    ("vectors-unreadable", lambda c: c.sweep(vectors=_unreadable(c, c.vectors(torch.ones(2, 32)))),
     "v.safetensors: cannot read: permission denied"),
    ("vectors-from-another-model", lambda c: c.sweep(vectors=c.vectors(torch.randn(2, 32))),
     "v.safetensors: vectors were made on model 'other-model', this is 'model' (same shape); "
     "pass --allow-foreign-vectors"),
    ("vectors-from-another-model-generate", lambda c: [*_generate(c)[:4], c.vectors(torch.randn(2, 32)),
                                                       *_generate(c)[5:]],
     "vectors were made on model 'other-model', this is 'model'"),
    ("vectors-from-another-model-openended", lambda c: _openended(c, "--vectors", c.vectors(torch.randn(2, 32))),
     "vectors were made on model 'other-model', this is 'model'"),
    # --- model specs
    ("model-mistyped-local-path", lambda c: _chdir_with_models(c, "models/typo"),
     "model path models/typo: no such model folder (not tried as a hub id"),
    ("model-dot-path", lambda c: c.sweep(model="./nothing-here"), "model path ./nothing-here: no such model folder"),
    ("model-home-path", lambda c: c.sweep(model="~/no-such-steerscale-model"), "no such model folder"),
    ("model-weights-file-name", lambda c: c.sweep(model="weights.safetensors"),
     "model path weights.safetensors: no such model folder"),
    ("model-zero-layers", lambda c: c.sweep(model=_zero_layers(c)), "has 0 decoder layers; nothing to steer"),
    # --- options checked before any model work
    ("limit-zero", lambda c: c.train(str(c.b["data"]), "--limit", "0"),
     "--limit 0: expected a positive number of items or a fraction in (0, 1) (leave it out to use all)"),
    ("limit-negative", lambda c: c.sweep("--limit", "-1"), "--limit -1: expected a positive number of items"),
    ("limit-fraction-over-one", lambda c: c.sweep("--limit", "1.5"), "--limit 1.5: expected a positive number of "
     "items or a fraction in (0, 1)"),
    ("letter-never-matches",
     lambda c: c.train(c.file("a.json", obj=[caa(0, match=0, nomatch=1), caa(1, match=0, nomatch=1)])),
     "letter-balanced estimator: the items' letter pairs (A>B; matching letters A: 2) cannot separate the "
     "behaviour from the answer letters (a letter never matches"),
    ("letter-imbalanced-none-vectors", lambda c: c.sweep(vectors=c.vectors(torch.randn(2, 32), meta=_none_meta())),
     "letter-imbalance term is 50% of the vector at layer 0 (over 10% at 1 swept layer(s)); train with "
     "--letter-balance balanced, or pass --allow-letter-imbalance"),
    ("train-limit-zero", lambda c: c.sweep("--train-limit", "0", vectors=False), "--train-limit 0: expected a positive"),
    ("transfer-limit-zero", lambda c: _transfer(c, "--limit", "0"), "--limit 0: expected a positive number"),
    ("seed-negative", lambda c: c.sweep("--seed", "-5"), "--seed -5: expected an integer >= 0"),
    ("batch-size-negative", lambda c: c.train(str(c.b["data"]), "--batch-size", "-3"),
     "--batch-size -3: expected a positive integer"),
    ("layers-huge-range", lambda c: c.sweep("--layers", "0-99999999"),
     "--layers '0-99999999': layer 99999999 is beyond any model (at most 10000 layers)"),
    ("layers-huge-number", lambda c: c.sweep("--layers", "0-99999999999"), "layer 99999999999 is beyond any model"),
    ("layers-5000-digit-number", lambda c: c.sweep("--layers", "1" * 5000), "is beyond any model"),
    ("layers-long-range-short-message", lambda c: c.sweep("--layers", "0-9999"),
     "layers [2, 3, 4, 5, ..., 9999] (9998 layers): out of range, this model has layers 0..1"),
    ("multipliers-huge-text", lambda c: c.sweep("--multipliers=" + "x" * 100_000), "more characters)"),
    ("generate-max-new-tokens-zero", lambda c: _generate(c, "--max-new-tokens", "0"),
     "--max-new-tokens 0: expected a positive number of tokens"),
    ("generate-max-new-tokens-negative", lambda c: _generate(c, "--max-new-tokens", "-1"),
     "--max-new-tokens -1: expected a positive number of tokens"),
    ("generate-layer-out-of-range", lambda c: [*_generate(c)[:6], "7", *_generate(c)[7:]],
     "--layers '7': layer 7 is out of range, this model has layers 0..1"),
    ("openended-n-generate-negative", lambda c: _openended(c, "--n-generate", "-2"), "--n-generate -2: expected"),
    ("openended-n-logodds-zero", lambda c: _openended(c, "--n-logodds", "0"), "--n-logodds 0: expected a positive"),
    ("openended-judge-timeout-zero", lambda c: _openended(c, "--judge-timeout", "0"),
     "--judge-timeout 0.0: expected a positive number of seconds"),
    ("openended-temperature-nan", lambda c: _openended(c, "--temperature", "nan"), "--temperature nan: expected"),
    ("openended-ce-bound-negative", lambda c: _openended(c, "--ce-bound=-1"), "--ce-bound -1.0: expected a number >= 0"),
    ("openended-windows-past-the-model", lambda c: _openended(c)[:7] + _openended(c)[9:] + [
        "--window-starts", "99999999999", "--window-widths", "2"], "no layers or windows to sweep"),
    ("judge-url-not-http", lambda c: _openended(c, "--judge-url", "file:///etc/passwd"),
     "judge url 'file:///etc/passwd': expected http:// or https://"),
    ("judge-key-env-unset", lambda c: _openended(c, "--judge-url", "http://127.0.0.1:9", "--judge-key-env",
                                                 "STEERSCALE_TEST_UNSET_KEY"), "that environment variable is not set"),
    ("transfer-multiplier-inf", lambda c: _transfer(c, "--multiplier", "inf"), "--multiplier inf: expected a finite"),
    # --- outputs: regular files only, inside sensible folders
    ("train-out-dev-null", lambda c: c.train(str(c.b["data"]))[:-1] + ["/dev/null"],
     "--out /dev/null: is a character device; steerscale writes only regular files"),
    ("train-out-fifo", lambda c: c.train(str(c.b["data"]))[:-1] + [_fifo(c, "out.safetensors")],
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
    ("sweep-out-fifo", lambda c: c.sweep(out=_fifo(c, "outfifo")), "outfifo: is a FIFO (named pipe), not a folder"),
    ("sweep-screen-with-shards", lambda c: c.sweep("--screen", "grad", "--shards", "2"),
     "--screen grad runs in one process"),
    ("sweep-screen-without-baseline", lambda c: c.sweep("--screen", "grad", "--multipliers=-1,1"),
     "--screen grad: multipliers must include 0"),
    ("sweep-confirm-top-zero", lambda c: c.sweep("--screen", "grad", "--confirm-top", "0"),
     "--confirm-top 0: expected a positive number of layers"),
    ("openended-out-dev-null", lambda c: _openended(c)[:-2] + ["--out", "/dev/null"], "a system folder"),
    ("similarity-out-root", lambda c: _similarity(c, str(c.b["vectors"]), out="/"), "--out /: the filesystem root"),
    ("similarity-empty-name", lambda c: _similarity(c, "=" + str(c.b["vectors"])), "empty name; use NAME=FILE"),
    ("reproduce-out-root", lambda c: ["reproduce", "--out", "/"], "--out /: the filesystem root"),
    ("reproduce-config-fifo", lambda c: ["reproduce", "--config", _fifo(c, "cfg.toml"), "--out", str(c.tmp / "r")],
     "cfg.toml: is a FIFO (named pipe), not a regular file; expected a TOML config file"),
    ("reproduce-only-unknown", lambda c: ["reproduce", "--out", str(c.tmp / "r"), "--only", "nope"],
     "--only 'nope': no model of that name in the config (expected one of"),
    # --- report on a damaged reproduce folder
    ("report-folder-missing", lambda c: ["report", str(c.tmp / "nope")], "nope: no such folder"),
    ("report-corrupt-config", lambda c: ["report", _report_folder(
        c, lambda o: (o / "reproduce_config.json").write_text("{"))],
     "reproduce_config.json: corrupt or not written by 'steerscale reproduce' (JSONDecodeError"),
    ("report-config-wrong-shape", lambda c: ["report", _report_folder(
        c, lambda o: (o / "reproduce_config.json").write_text('{"path": 1}'))],
     "reproduce_config.json: corrupt or not written by 'steerscale reproduce' (KeyError"),
    ("report-corrupt-manifest", lambda c: ["report", _report_folder(
        c, lambda o: (o / "m" / "manifest.json").write_text("[1, 2"))], "manifest.json: corrupt (JSONDecodeError"),
    ("report-score-above-one", lambda c: ["report", _report_folder(c, lambda o: _edit_scores(o, "7.5"))],
     "items.csv: row 2: score 7.5 is not a probability in [0, 1]"),
    ("report-score-negative", lambda c: ["report", _report_folder(c, lambda o: _edit_scores(o, "-3"))],
     "items.csv: row 2: score -3.0 is not a probability in [0, 1]"),
    ("report-inf-score-at-zero", lambda c: ["report", _report_folder(c, lambda o: _edit_scores(o, "inf", True))],
     "score inf is not a probability in [0, 1]"),
    # --- issue 20: habits (did you mean, negative layers, one model identity)
    ("flag-with-underscores", lambda c: c.sweep("--train_limit", "3"),
     "unrecognized arguments: --train_limit 3; did you mean --train-limit?"),
    ("info-model-given-twice", lambda c: ["info", str(c.b["model"]), "--model", str(c.tmp / "other")],
     "info: the model is given twice"),
    ("layers-mixed-sign-range", lambda c: c.sweep("--layers", "0--1"),
     "range 0--1 mixes a layer counted from the start with one counted from the end"),
    ("layers-negative-out-of-range", lambda c: c.sweep("--layers", "-3"),
     "layers [-3]: out of range, this model has layers 0..1"),
    ("vectors-other-weights-fingerprint", lambda c: c.sweep(vectors=c.vectors(torch.randn(2, 32), meta={
        "steerscale": json.dumps({"model": "model", "weights_fingerprint": "0" * 20})})),
     "their weights fingerprint is 00000000000000000000, this model's"),
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
    assert not missing and len(CATALOGUE) >= 75


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
            "--layers", "all", "--multipliers=-1,0,1", "--out", str(tmp_path / "run"), "--letter-balance", "swap"]
    assert cli.main(args) == 0  # swap: six items whose letter pairs (A>B, B>C, ...) do not overlap
    with open(tmp_path / "run" / "items.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 6
    assert all(0 <= float(r["score"]) <= 1 and 0 < float(r["letter_mass"]) <= 1 for r in rows)
    from steerscale.core.data import load_dataset

    assert load_dataset(data)[0].choices == tuple("ABCDEFGH")


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
    from steerscale.core.models import load_model

    load_model(str(base["model"]))
    assert seen["use_safetensors"] is True and seen["trust_remote_code"] is False


# ---------------------------------------------------------------- round two (issue 14): guarantees


def _rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_duplicate_multipliers_are_merged_with_a_note(base, tmp_path, caplog):
    c = Ctx(base, tmp_path, None)
    assert cli.main([str(a) for a in c.sweep(out=tmp_path / "ref")]) == 0  # --multipliers=0,1
    for i, spec in enumerate(["0,0,1,1,1.0", "-0,0,1", "0,-0.0,1,+1"]):
        argv = [a if not a.startswith("--multipliers") else f"--multipliers={spec}"
                for a in map(str, c.sweep(out=tmp_path / f"dup{i}"))]
        caplog.clear()
        assert cli.main(argv) == 0
        assert "repeated values count once" in caplog.text
        for f in ("items.csv", "aggregate.csv"):
            assert (tmp_path / f"dup{i}" / f).read_bytes() == (tmp_path / "ref" / f).read_bytes(), (spec, f)


def test_choices_are_the_trailing_block(tmp_path):
    from steerscale.core.data import choice_letters, load_dataset

    assert choice_letters("Q?\n(C) footnote\n\nChoices:\n (A) yes\n (B) no") == ["A", "B"]
    assert choice_letters("Q?\n(C) footnote\nmore text\n(A) yes\n\n(B) no\n") == ["A", "B"]
    assert choice_letters("Q?\n(A) yes\n(B) no\nthink first") == []
    q = "Pick one. (C) is not an option here.\n(C) see footnote\n\nChoices:\n(A) yes\n(B) no"
    p = tmp_path / "d.json"
    p.write_text(json.dumps([dict(caa(0), question=q)]))
    assert load_dataset(p)[0].choices == ("A", "B")


def test_csv_cells_are_defused_and_numbers_untouched(base, tmp_path):
    ids = ["=cmd|' /C calc'!A0", "+SUM(A1)", "@x", "a\x00b", "-0.5", "\tlead"]
    data = [dict(caa(i), id=x, category="-cat" if i == 0 else "=1+1") for i, x in enumerate(ids)]
    p = tmp_path / "d.json"
    p.write_text(json.dumps(data))
    c = Ctx(base, tmp_path, None)
    assert cli.main([str(a) for a in c.sweep("--multipliers=-1,0,1", data=p)]) == 0
    rows = _rows(tmp_path / "run" / "items.csv")
    got = [r["item"] for r in rows[: len(ids)]]
    assert got == ["'=cmd|' /C calc'!A0", "'+SUM(A1)", "'@x", "a\\0b", "-0.5", "'\tlead"]
    assert {r["category"] for r in rows} == {"'-cat", "'=1+1"}
    assert {r["multiplier"] for r in rows} == {"-1", "0", "1"}  # numbers are never escaped
    assert all(float(r["score"]) >= 0 for r in rows) and "\x00" not in (tmp_path / "run" / "items.csv").read_text()
    from steerscale.io.guards import csv_cell

    assert csv_cell(-0.5) == -0.5 and csv_cell("-1e-3") == "-1e-3" and csv_cell("-x") == "'-x"


def test_report_md_escapes_html_and_writes_atomically(base, tmp_path, monkeypatch):
    import csv

    c = Ctx(base, tmp_path, monkeypatch)
    evil = "<script>alert(1)</script>"

    def rename(out):
        rows = _rows(out / "m" / "items.csv")
        for r in rows:
            r["model"] = evil
        with open(out / "m" / "items.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    folder = Path(_report_folder(c, rename))
    seen = []
    real = store._write_all
    monkeypatch.setattr(store, "_write_all", lambda f, data: (seen.append(Path(f.name).name), real(f, data)))
    assert cli.main(["report", str(folder)]) == 0
    md, html = (folder / "report.md").read_text(), (folder / "report.html").read_text()
    assert evil in (folder / "m" / "items.csv").read_text()
    assert "<script" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "<script" not in html
    for name in ("report.md", "report.html", "summary.json", "depth.png", "depth.svg"):
        assert any(s.startswith(f".{name}.") and s.endswith(".tmp") for s in seen), name  # via the atomic writer


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


def test_similarity_names_cannot_escape_the_output_folder(base, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "sim"
    v = str(base["vectors"])
    assert cli.main(["similarity", f"../../x={v}", f"{tmp_path}/abs={v}", f"ok={v}", "--normalize-across",
                     "--out", str(out)]) == 0
    outside = {p for p in tmp_path.rglob("*") if out not in p.parents and p != out} - {
        tmp_path / "a", tmp_path / "a" / "b"}
    assert not outside, outside
    names = {p.name for p in out.iterdir()}
    assert "ok.normalized.safetensors" in names and len([n for n in names if n.endswith(".normalized.safetensors")]) == 3
    assert {r["behaviour_a"] for r in _rows(out / "cosine.csv")} >= {"../../x", "ok"}


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


# ---------------------------------------------------------------- the judge's HTTP client: bounded, no redirects


@pytest.fixture
def http_servers():
    import http.server
    import threading
    import time

    servers, hits = [], []

    class H(http.server.BaseHTTPRequestHandler):
        mode = "ok"
        target = ""

        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append((self.mode, "GET", self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(json.dumps({"choices": [{"message": {"content": "YES"}}]}).encode())

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hits.append((self.mode, "POST", self.headers.get("Authorization")))
            t_end = time.monotonic() + 8  # every loop below is bounded
            try:
                if self.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", self.target)
                    self.end_headers()
                elif self.mode == "404":
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b"no such route")
                elif self.mode == "drip":
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    while time.monotonic() < t_end:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
                elif self.mode == "drip-headers":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    while time.monotonic() < t_end:
                        self.wfile.write(b"X: y\r\n")
                        self.wfile.flush()
                        time.sleep(0.1)
                elif self.mode == "endless":
                    self.send_response(200)
                    self.end_headers()
                    chunk = b"x" * 65536
                    while time.monotonic() < t_end:
                        self.wfile.write(chunk)
                else:
                    body = json.dumps({"choices": [{"message": {"content": "NO"}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
            except OSError:
                pass  # the client hung up: expected

    def start(mode, target=""):
        handler = type("H2", (H,), {"mode": mode, "target": target})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start, hits
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("mode,fragment", [
    ("drip", "no answer within 1 s (the whole call, reply included)"),
    ("drip-headers", "no answer within 1 s"),
    ("endless", "reply longer than the limit of 100000 bytes"),
    ("404", "HTTP 404"),
])
def test_judge_call_is_bounded(http_servers, mode, fragment):
    import time

    from steerscale.errors import SteerscaleError
    from steerscale.measures.judges import HTTPJudge

    start, _ = http_servers
    judge = HTTPJudge(start(mode), api_key="secret", timeout=1.0, max_bytes=100_000)
    t0 = time.monotonic()
    with pytest.raises(SteerscaleError, match=re_escape(fragment)):
        judge(["p"], ["r"])
    assert time.monotonic() - t0 < 3.0


def re_escape(s):
    import re

    return re.escape(s)


def test_judge_redirect_is_not_followed_and_key_never_resent(http_servers):
    from steerscale.errors import SteerscaleError
    from steerscale.measures.judges import HTTPJudge

    start, hits = http_servers
    other = start("elsewhere")
    judge = HTTPJudge(start("redirect", target=other + "/steal"), api_key="secret", timeout=2.0)
    with pytest.raises(SteerscaleError, match="HTTP 302 redirect to .*/steal; redirects are not followed"):
        judge(["p"], ["r"])
    assert [h for h in hits if h[0] == "elsewhere"] == []  # nothing reached the other host
    ok = HTTPJudge(start("ok"), api_key="secret", timeout=2.0)
    assert ok(["p"], ["r"]) == [0.0] and hits[-1] == ("ok", "POST", "Bearer secret")


# ---------------------------------------------------------------- lost work: openended and reproduce resume


def _oe_setup():
    from conftest import TinyTokenizer, make_model
    from steerscale.core.data import Prompt
    from steerscale.core.models import model_info
    from steerscale.config import OpenEndedConfig

    model, tok = make_model("llama"), TinyTokenizer()
    info = model_info(model, name="tiny")
    torch.manual_seed(0)
    vecs = torch.randn(info.n_layers, info.hidden_size)
    cfg = OpenEndedConfig(layers=[0, 2], window_starts=[0], window_widths=[2], multipliers=[-2, 0, 2],
                          template="plain", n_generate=1, max_new_tokens=3, n_bootstrap=20, n_logodds=2)
    prompts = [Prompt(f"please do thing {i}", str(i)) for i in range(2)]
    return model, tok, info, vecs, cfg, prompts, ["neutral words here.", "more neutral text."]


def test_openended_judge_failure_keeps_the_work_and_resume_is_identical(tmp_path, monkeypatch):
    from steerscale.openended import run as openended
    from steerscale.errors import SteerscaleError

    model, tok, info, vecs, cfg, prompts, neutral = _oe_setup()
    good = lambda ps, rs: [float(len(r) % 2) for r in rs]  # noqa: E731
    kw = dict(info=info, progress=False)
    openended.run_openended(model, tok, vecs, prompts, prompts, neutral, cfg, judge=good, out_dir=tmp_path / "ref",
                            **kw)
    calls = {"judge": 0, "measure": 0}
    n_points = 1 + 3 * 2  # baseline + 3 points x 2 steered multipliers

    def failing(ps, rs):
        calls["judge"] += 1
        if calls["judge"] == n_points:  # the very last judge call
            raise SteerscaleError("judge endpoint: HTTP 503")
        return good(ps, rs)

    failing.name = good.name = "test-judge"
    with pytest.raises(SteerscaleError, match="HTTP 503"):
        openended.run_openended(model, tok, vecs, prompts, prompts, neutral, cfg, judge=failing,
                                out_dir=tmp_path / "run", **kw)
    stored = list((tmp_path / "run" / "points").glob("*.json"))
    assert len(stored) == n_points + (n_points - 1)  # every measurement, and every verdict but the last
    real = openended.refusal_logodds

    def counting(*a, **k):
        calls["measure"] += 1
        return real(*a, **k)

    from steerscale.openended import run as openended_run

    monkeypatch.setattr(openended_run, "refusal_logodds", counting)  # the run's measure, where it is looked up
    calls["judge"] = 0
    openended.run_openended(model, tok, vecs, prompts, prompts, neutral, cfg, judge=failing,
                            out_dir=tmp_path / "run", **kw)
    assert calls == {"judge": 1, "measure": 0}  # only the missing verdict
    for f in ("aggregate.csv", "logodds.csv", "generations.csv", "ce.csv"):
        assert (tmp_path / "run" / f).read_bytes() == (tmp_path / "ref" / f).read_bytes(), f


def _reproduce_setup(tmp_path) -> Path:
    save_tiny_model(tmp_path / "model", layers=4, hidden=64)
    write_dataset(tmp_path / "train.json", 8)
    write_dataset(tmp_path / "test.json", 16)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[run]\nn_bootstrap = 20\n[data]\ntrain = "train.json"\ntest = "test.json"\n'
                   '[sweep]\ntemplate = "plain"\nmultipliers = [-2.0, -1.0, 0.0, 1.0, 2.0]\nengine = "naive"\n'
                   'batch_size = 4\n[[models]]\nspec = "model"\nname = "tiny"\n')
    return cfg


def test_reproduce_resumes_after_kill_9_with_identical_tables(tmp_path):
    import signal
    import time

    cfg = _reproduce_setup(tmp_path)
    ref = tmp_path / "ref"
    r = run_cli("reproduce", "--config", cfg, "--out", ref)
    assert r.returncode == 0, r.stderr
    total = 4 * 5
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=SRC)
    proc = subprocess.Popen([sys.executable, "-m", "steerscale.cli", "reproduce", "--config", str(cfg), "--out",
                             str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pts = out / "tiny" / "points"
    t_end = time.time() + 120
    while time.time() < t_end and proc.poll() is None and len(list(pts.glob("*__L*.json"))) < 0.75 * total:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(pts.glob("*__L*.json")))
    assert 0.5 * total <= done < total
    r = run_cli("reproduce", "--config", cfg, "--out", out)
    assert r.returncode == 0, r.stderr
    man = json.loads((out / "tiny" / "manifest.json").read_text())
    steered_missing = len([1 for L in range(4) for m in (-2.0, -1.0, 1.0, 2.0)
                           if not (pts / f"tiny__L{L:04d}__m{m!r}.json").exists()])
    assert man["resume"]["points_computed_now"] <= total - done  # only what was missing
    assert steered_missing == 0
    for f in ("items.csv", "aggregate.csv"):
        assert (out / "tiny" / f).read_bytes() == (ref / "tiny" / f).read_bytes(), f


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
