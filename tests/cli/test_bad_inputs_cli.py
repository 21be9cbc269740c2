"""Bad inputs that cli/ refuses: flags and option values checked before any model work; the real command's exit code and
--debug.

The catalogue's cases are those whose error this stage's code raises (the innermost steerscale frame); each exits 2
with one line naming the file/field/value, and each has a row in docs/errors.md naming this file. The shared inputs
and builders are in tests/badinput.py.
"""

from __future__ import annotations

import pytest
import torch

from steerscale import cli
from badinput import (  # noqa: F401 (base: a fixture)
    Ctx, base, catalogue_tests, read_rows, run_catalogue, run_cli,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# (id, build(ctx) -> argv, expected fragment of the one-line message)
CATALOGUE = [
    ("layers-not-a-number", lambda c: c.sweep("--layers", "x-y"), "--layers 'x-y': expected 'all', a layer"),
    ("layers-empty-range", lambda c: c.sweep("--layers", "5-2"), "--layers '5-2': selects no layers"),
    ("multiplier-not-numeric", lambda c: c.sweep("--multipliers=0,abc"), "--multipliers '0,abc': 'abc' is not a number"),
    ("multiplier-nan", lambda c: c.sweep("--multipliers=0,nan"), "'nan' is not a finite number"),
    ("batch-size-zero", lambda c: c.sweep("--batch-size", "0"), "--batch-size 0: expected a positive integer"),
    ("seed-negative", lambda c: c.sweep("--seed", "-5"), "--seed -5: expected an integer >= 0"),
    ("batch-size-negative", lambda c: c.train(str(c.b["data"]), "--batch-size", "-3"),
     "--batch-size -3: expected a positive integer"),
    ("layers-huge-range", lambda c: c.sweep("--layers", "0-99999999"),
     "--layers '0-99999999': layer 99999999 is beyond any model (at most 10000 layers)"),
    ("layers-huge-number", lambda c: c.sweep("--layers", "0-99999999999"), "layer 99999999999 is beyond any model"),
    ("layers-5000-digit-number", lambda c: c.sweep("--layers", "1" * 5000), "is beyond any model"),
    ("multipliers-huge-text", lambda c: c.sweep("--multipliers=" + "x" * 100_000), "more characters)"),
    ("generate-max-new-tokens-zero", lambda c: c.generate_steered("--max-new-tokens", "0"),
     "--max-new-tokens 0: expected a positive number of tokens"),
    ("generate-max-new-tokens-negative", lambda c: c.generate_steered("--max-new-tokens", "-1"),
     "--max-new-tokens -1: expected a positive number of tokens"),
    ("generate-layer-out-of-range", lambda c: [*c.generate_steered()[:6], "7", *c.generate_steered()[7:]],
     "--layers '7': layer 7 is out of range, this model has layers 0..1"),
    ("openended-n-generate-negative", lambda c: c.openended("--n-generate", "-2"), "--n-generate -2: expected"),
    ("openended-n-logodds-zero", lambda c: c.openended("--n-logodds", "0"), "--n-logodds 0: expected a positive"),
    ("openended-judge-timeout-zero", lambda c: c.openended("--judge-timeout", "0"),
     "--judge-timeout 0.0: expected a positive number of seconds"),
    ("openended-temperature-nan", lambda c: c.openended("--temperature", "nan"), "--temperature nan: expected"),
    ("openended-ce-bound-negative", lambda c: c.openended("--ce-bound=-1"), "--ce-bound -1.0: expected a number >= 0"),
    ("judge-key-env-unset", lambda c: c.openended("--judge-url", "http://127.0.0.1:9", "--judge-key-env",
                                                 "STEERSCALE_TEST_UNSET_KEY"), "that environment variable is not set"),
    ("sweep-screen-with-shards", lambda c: c.sweep("--screen", "grad", "--shards", "2"),
     "--screen grad runs in one process"),
    ("sweep-confirm-top-zero", lambda c: c.sweep("--screen", "grad", "--confirm-top", "0"),
     "--confirm-top 0: expected a positive number of layers"),
    ("similarity-empty-name", lambda c: c.similarity("=" + str(c.b["vectors"])), "empty name; use NAME=FILE"),
    ("report-folder-missing", lambda c: ["report", str(c.tmp / "nope")], "nope: no such folder"),
    ("flag-with-underscores", lambda c: c.sweep("--train_limit", "3"),
     "unrecognized arguments: --train_limit 3; did you mean --train-limit?"),
    ("info-model-given-twice", lambda c: ["info", str(c.b["model"]), "--model", str(c.tmp / "other")],
     "info: the model is given twice"),
    ("layers-mixed-sign-range", lambda c: c.sweep("--layers", "0--1"),
     "range 0--1 mixes a layer counted from the start with one counted from the end"),
    ("cli-device", lambda c: c.sweep("--device", "tpu:7"), "--device tpu:7: expected one of cpu, cuda, cuda:N"),
    ("cli-batch-size-huge", lambda c: c.sweep("--batch-size", "100000000"), "--batch-size 100000000: expected a "
                                                                            "positive integer <= 65536"),
    ("orthogonalize-gguf-model", lambda c: c.ortho(model="smollm2-135m"),
     "a GGUF (quantised) model cannot be saved as an edited safetensors folder"),
    ("shards-zero", lambda c: c.sweep("--shards", "0"), "--shards 0: expected a positive number"),
    ("shards-negative", lambda c: c.sweep("--shards", "-1"), "--shards -1: expected a positive number"),
]


test_catalogue, test_catalogue_is_documented = catalogue_tests(CATALOGUE, __file__)


def test_a_case_in_another_stages_file_is_refused(base, tmp_path, monkeypatch, capsys):
    """The stage check of the catalogue runner fires: an empty dataset is core's error, not cli's."""
    with pytest.raises(AssertionError, match="raised in core/: the case belongs in tests/core/test_bad_inputs_core.py"):
        run_catalogue(Ctx(base, tmp_path, monkeypatch), capsys, lambda c: c.train(c.file("d.json", "[]")),
                      "dataset is empty", __file__)


def test_real_command_exit_code_and_debug(base, tmp_path):
    c = Ctx(base, tmp_path, None)
    r = run_cli(*c.sweep(vectors=c.vectors(torch.randn(3, 32))))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("steerscale sweep: error: ")
    assert "have 3 layers x hidden 32; this model has 2 layers" in r.stderr
    r = run_cli("--debug", *c.train(c.file("bad.json", "[{")))
    assert r.returncode != 0 and "Traceback" in r.stderr and "SteerscaleError" in r.stderr


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
    assert {r["behaviour_a"] for r in read_rows(out / "cosine.csv")} >= {"../../x", "ok"}
