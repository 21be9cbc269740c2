"""Bad inputs that core/ refuses: datasets, prompts, vectors, model folders, letters, model-side checks (context,
layers, foreign vectors) and vectors in other tools' formats; and what core guarantees with them.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from steerscale import cli
from tinydir import caa, write_dataset
from badinput import Ctx, SRC, base, catalogue_tests  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
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
    ("letter-not-one-token", lambda c: c.sweep(model=c.model_copy(merges=[("(", "A")])),
     "answer letter 'A' (item 0) is not a single token after '('"),
    ("vectors-hidden-size", lambda c: c.sweep(vectors=c.vectors(torch.randn(2, 16))),
     "v.safetensors: vectors from other-model have 2 layers x hidden 16; this model has 2 layers x hidden 32"),
    ("vectors-layer-count", lambda c: c.sweep(vectors=c.vectors(torch.randn(5, 32))),
     "have 5 layers x hidden 32; this model has 2 layers"),
    ("vectors-no-tensor", lambda c: c.sweep(vectors=(save_file({"x": torch.ones(2)}, str(c.tmp / "x.safetensors")),
                                                      str(c.tmp / "x.safetensors"))[1]),
     "x.safetensors: no 'vectors' tensor"),
    ("vectors-wrong-shape", lambda c: c.sweep(vectors=c.vectors(torch.ones(64))),
     "tensor 'vectors' has shape (64,)"),
    ("model-path-missing", lambda c: c.sweep(model=c.tmp / "no-model"), "no-model: no such model folder"),
    ("model-dir-no-config", lambda c: c.sweep(model=c.tmp), "expected a directory with config.json"),
    ("model-pickle-only", lambda c: c.sweep(model=c.pickle_only_model()),
     "weights are only in pickle files (pytorch_model.bin); steerscale loads safetensors only"),
    ("model-weights-corrupted", lambda c: c.sweep(model=c.model_with(
        lambda d: (d / "model.safetensors").write_bytes(b"garbage" * 10))), "could not load"),
    ("model-type-unknown-to-transformers", lambda c: c.sweep(model=c.model_with(
        lambda d: (d / "config.json").write_text(json.dumps(dict(json.loads((d / "config.json").read_text()),
                                                                     model_type="nosucharch"))))),
     "could not load (ValueError"),
    ("architecture-not-registered", lambda c: c.sweep(model=c.bloom()),
     "unknown architecture 'bloom': known are"),
    ("gguf-missing", lambda c: c.sweep(model=c.tmp / "m.gguf"), "m.gguf: no such file (expected a .gguf file)"),
    ("gguf-unsupported-quant", lambda c: c.sweep(model=c.q8k_gguf()),
     "tensor 'blk.0.attn_q.weight' uses quantisation Q8_K, which cannot be dequantised"),
    ("gguf-truncated", lambda c: c.sweep(model=c.file("t.gguf", raw=Path(c.q8k_gguf()).read_bytes()[:100])),
     "t.gguf: not a readable GGUF file"),
    ("nan-in-activations", lambda c: c.sweep(model=c.model_copy(nan=True), vectors=False,
                                             *["--train-data", str(c.b["data"])]),
     "activations contain NaN or Inf"),
    ("run-folder-vectors-trained-differently", Ctx.changed_vectors,
     "vectors.safetensors: trained with a different setup (normalization: 'none' vs 'unit'"),
    ("id-wrong-type", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), id={"a": 1})])),
     "item 0: field 'id' must be a string or an integer, got dict"),
    ("duplicate-ids", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), id="x"), dict(caa(1), id="x")])),
     "d.json: item 1 has id 'x', already used by item 0; ids must be unique"),
    ("duplicate-ids-int-and-string", lambda c: c.train(c.file("d.json", obj=[dict(caa(0), id=3),
                                                                              dict(caa(1), id="3")])),
     "item 1 has id '3', already used by item 0"),
    ("footnote-is-not-a-choice", lambda c: c.train(c.footnote()),
     "item 0: field 'answer_matching_behavior' is '(C)', not one of the choices (A, B)"),
    ("choices-only-in-body", lambda c: c.train(c.file("d.json", obj=[dict(
        caa(0), question="Q?\n(A) one\n(B) two\nPlease think it over.")])),
     "item 0: field 'question' lists 0 choice(s)"),
    ("prompts-duplicate-ids", lambda c: c.openended("--harmful", c.prompts([{"id": 1, "prompt": "a"},
                                                                               {"id": 1, "prompt": "b"}])),
     "p.json: item 1 has id '1', already used by item 0"),
    ("model-mistyped-local-path", lambda c: c.chdir_with_models("models/typo"),
     "model path models/typo: no such model folder (not tried as a hub id"),
    ("model-dot-path", lambda c: c.sweep(model="./nothing-here"), "model path ./nothing-here: no such model folder"),
    ("model-home-path", lambda c: c.sweep(model="~/no-such-steerscale-model"), "no such model folder"),
    ("model-weights-file-name", lambda c: c.sweep(model="weights.safetensors"),
     "model path weights.safetensors: no such model folder"),
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
    ("transfer-limit-zero", lambda c: c.transfer("--limit", "0"), "--limit 0: expected a positive number"),
    # model-side checks (core/checks.py) and vectors in other tools' formats (core/interop.py)
    ("question-longer-than-context-llama", lambda c: c.train(c.long_question()),
     "long.json: item 0: 646 prompt tokens + 2 for '(' and the answer letter exceed this model's context of 512"),
    ("question-longer-than-context-gpt2", lambda c: c.sweep(model=c.gpt2(), data=c.long_question()),
     "item 0: 646 prompt tokens + 2 for '(' and the answer letter exceed this model's context of 512 tokens"),
    ("generate-prompt-longer-than-context", lambda c: c.generate_steered("--max-new-tokens", "100", prompt="y" * 480),
     "prompt: 498 prompt tokens + 100 to generate exceed this model's context of 512"),
    ("vectors-from-another-model", lambda c: c.sweep(vectors=c.vectors(torch.randn(2, 32))),
     "v.safetensors: vectors were made on model 'other-model', this is 'model' (same shape); "
     "pass --allow-foreign-vectors"),
    ("vectors-from-another-model-generate", lambda c: [*c.generate_steered()[:4], c.vectors(torch.randn(2, 32)),
                                                       *c.generate_steered()[5:]],
     "vectors were made on model 'other-model', this is 'model'"),
    ("vectors-from-another-model-openended", lambda c: c.openended("--vectors", c.vectors(torch.randn(2, 32))),
     "vectors were made on model 'other-model', this is 'model'"),
    ("model-zero-layers", lambda c: c.sweep(model=c.zero_layers()), "has 0 decoder layers; nothing to steer"),
    ("vectors-other-weights-fingerprint", lambda c: c.sweep(vectors=c.vectors(torch.randn(2, 32), meta={
        "steerscale": json.dumps({"model": "model", "weights_fingerprint": "0" * 20})})),
     "their weights fingerprint is 00000000000000000000, this model's"),
    ("export-float32-overflow", lambda c: c.export("--multiplier", "1e6", vectors=c.vecs(
        {"model": "model"}, torch.full((2, 32), 1e35))), "overflows float32"),
    ("import-n-layers-huge", lambda c: ["import", c.sv_file({"layer_activations.1": torch.randn(32)}),
                                        "--n-layers", "10000000", "--out", str(c.tmp / "o.safetensors")],
     "import --n-layers 10000000: expected the model's layer count, 1..10000"),
    ("import-n-layers-too-few", lambda c: c.imp(c.sv_file({"layer_activations.5": torch.randn(32)})),
     "holds a vector for layer 5, but n_layers is 2"),
    ("import-sv-duplicate-layer", lambda c: c.imp(c.sv_file({"layer_activations.1": torch.randn(32),
                                                             "layer_activations.01": torch.randn(32)})),
     "both name layer 1; expected one tensor per layer"),
    ("import-gguf-duplicate-layer", lambda c: c.imp(c.control_vector_gguf({"direction.1": np.ones(32, np.float32),
                                                              "direction.01": np.ones(32, np.float32)})),
     "both name layer 1; expected one tensor per layer"),
    ("import-gguf-2d", lambda c: c.imp(c.control_vector_gguf({"direction.1": np.ones((2, 16), np.float32)})),
     "tensor 'direction.1' has shape [16, 2], expected 1-D"),
    ("import-float32-overflow", lambda c: c.imp(c.sv_file({"layer_activations.1": torch.full((32,), 1e300,
                                                                                            dtype=torch.float64)})),
     "sv.safetensors: the vector for layer 1 contains NaN or Inf (in float32)"),
    ("sweep-imported-absent-layer", lambda c: c.sweep()[:-4] + ["--vectors", c.imported(), "--out",
                                                                str(c.tmp / "run"), "--allow-foreign-vectors"],
     "imported vectors cover layers [1] only; layer(s) 0 would steer with a zero vector"),
    ("generate-imported-absent-layer", lambda c: ["generate", "--model", str(c.b["model"]), "--layers", "0",
                                                  "--vectors", c.imported(), "hi"],
     "imported vectors cover layers [1] only"),
    ("generate-ablate-foreign", lambda c: c.generate("--ablate", c.vecs({"model": "other", "selected_layer": 1})),
     "vectors were made on model 'other', this is 'model'"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)


def _none_meta() -> dict:
    """Metadata of a 'none' (raw-mean) vector whose letter-imbalance term is half of it at every layer."""
    from steerscale.core.letters import LetterFigures

    fig = LetterFigures("none", {"A": 3, "B": 1}, 4, 0.5, [1.0, 1.0], [0.1, 0.1], [1.0, 1.0], [0.9, 0.9], [0.5, 0.5])
    return {"steerscale": json.dumps({"model": "model", "letter": fig.to_meta()})}


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


def test_choices_are_the_trailing_block(tmp_path):
    from steerscale.core.data import choice_letters, load_dataset

    assert choice_letters("Q?\n(C) footnote\n\nChoices:\n (A) yes\n (B) no") == ["A", "B"]
    assert choice_letters("Q?\n(C) footnote\nmore text\n(A) yes\n\n(B) no\n") == ["A", "B"]
    assert choice_letters("Q?\n(A) yes\n(B) no\nthink first") == []
    q = "Pick one. (C) is not an option here.\n(C) see footnote\n\nChoices:\n(A) yes\n(B) no"
    p = tmp_path / "d.json"
    p.write_text(json.dumps([dict(caa(0), question=q)]))
    assert load_dataset(p)[0].choices == ("A", "B")
