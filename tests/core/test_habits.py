"""Habits users bring from steering-vectors, repeng and lm-evaluation-harness (issue 20): pair training,
``vec.apply``, negative layers, vector arithmetic, ``export_gguf`` with a model-type hint, ``--batch-size auto``,
"did you mean", ``--data list``, and the consistent CLI (``info --model``, ``train --train-data``, help)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import steerscale as ss
from steerscale import cli
from steerscale.core.autobatch import CPU_DEFAULT, auto_batch_size, choose_batch_size
from steerscale.cli.options import parse_layers
from steerscale.config import SweepConfig
from steerscale.core.interop import import_control_vector
from steerscale.core.models import model_info
from steerscale.core.pairs import train_from_pairs
from conftest import TinyTokenizer, make_model
from tinydir import save_tiny_model, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = [("I will not help with that request.", "Sure, here is how."), ("No.", "Yes, gladly!"),
         ("I cannot do this", "Here you go: step one")]


@pytest.fixture
def tiny():
    model = make_model("llama")
    return model, TinyTokenizer()


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


# ------------------------------------------------------------------------------------------- steering-vectors


def test_pairs_read_each_texts_last_token(tiny):
    """vector[L] = mean(pos - neg) of the output of layer L at each text's last token, computed here one text
    at a time with output_hidden_states (no padding), equals the batched, left-padded training to 1e-5."""
    model, tok = tiny
    vecs = ss.train_vectors(model, tok, PAIRS, batch_size=2)

    def last(text):  # the output of each decoder layer at the text's last token, by plain forward hooks
        got = {}
        hooks = [layer.register_forward_hook(lambda m, a, out, l=l: got.__setitem__(l, (out[0] if isinstance(
            out, tuple) else out)[0, -1].clone())) for l, layer in enumerate(model.model.layers)]
        try:
            with torch.no_grad():
                model(input_ids=torch.tensor([tok(text).input_ids]))
        finally:
            for h in hooks:
                h.remove()
        return torch.stack([got[l] for l in range(4)])

    want = torch.stack([last(p) - last(n) for p, n in PAIRS]).mean(0)
    torch.testing.assert_close(vecs.vectors, want, atol=1e-5, rtol=1e-5)
    assert vecs.meta["trained_from"] == "pairs" and vecs.meta["n_pairs"] == 3
    assert "no answer letters" in vecs.meta["letter_figures"] and vecs.meta["model_type"] == "llama"
    assert vecs.meta["weights_fingerprint"] == model_info(model).weights_fingerprint
    unit = ss.train_vectors(model, tok, PAIRS, normalize="unit")
    torch.testing.assert_close(unit.norms(), torch.ones(4), atol=1e-5, rtol=0)
    assert unit.meta["normalization"] == "unit"


def test_pair_vector_added_where_it_was_read_turns_negative_into_positive(tiny):
    """One pair: steering the negative text with +v at layer L (last layer given as -1) makes the output of layer
    L at its last token equal the positive text's, so the read place and the steering place agree."""
    model, tok = tiny
    pos, neg = PAIRS[0]
    vecs = train_from_pairs(model, tok, [(pos, neg)])

    def read(text):
        got = {}
        h = model.model.layers[3].register_forward_hook(lambda m, a, out: got.__setitem__(
            "x", (out[0] if isinstance(out, tuple) else out)[0, -1].clone()))
        try:
            with torch.no_grad():
                model(input_ids=torch.tensor([tok(text).input_ids]))
        finally:
            h.remove()
        return got["x"]

    target = read(pos)
    with vecs.apply(model, multiplier=1.0, layers=[-1]):  # the hook above runs after the steering hook
        steered = read(neg)
    torch.testing.assert_close(steered, target, atol=1e-5, rtol=1e-5)
    assert float((read(neg) - target).norm()) > 1.0  # unsteered, they differ


@pytest.mark.parametrize("bad, fragment", [
    ([("a", "")], "pair 0: the negative text is ''"),
    ([("a", "b"), ("c", 3)], "pair 1: the negative text is 3"),
])
def test_pairs_bad_input_is_one_line(tiny, bad, fragment):
    model, tok = tiny
    with pytest.raises(ss.SteerscaleError, match=fragment):
        ss.train_vectors(model, tok, bad)


def test_pairs_refuse_a_template(tiny):
    model, tok = tiny
    with pytest.raises(ss.SteerscaleError, match="template not used"):
        ss.train_vectors(model, tok, PAIRS, template="chat")


def test_apply_equals_steer_and_always_removes_its_hooks(tiny):
    model, tok = tiny
    vecs = ss.SteeringVectors(torch.randn(4, 32), {"model": "tiny"})
    ids = torch.tensor([tok("a question").input_ids])
    base = _logits(model, ids)
    with vecs.apply(model, multiplier=2.0, layers=[-1, 1]):
        got = _logits(model, ids)
    with ss.steer(model, vecs, [3, 1], 2.0):
        want = _logits(model, ids)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert not torch.allclose(got, base)
    with vecs.apply(model, multiplier=2.0):  # layers=None: every layer of the vectors
        every = _logits(model, ids)
    with ss.steer(model, vecs, [0, 1, 2, 3], 2.0):
        torch.testing.assert_close(every, _logits(model, ids), atol=0, rtol=0)
    with pytest.raises(RuntimeError, match="boom"):
        with vecs.apply(model, multiplier=5.0):
            raise RuntimeError("boom")
    torch.testing.assert_close(_logits(model, ids), base, atol=0, rtol=0)  # hooks gone, even after the error
    with pytest.raises(ss.SteerscaleError, match="layer -5 out of range"):
        with vecs.apply(model, layers=[-5]):
            pass


def test_negative_layers_everywhere(tiny):
    model, _ = tiny
    vecs = ss.SteeringVectors(torch.randn(4, 32), {})
    torch.testing.assert_close(vecs[-1], vecs[3])
    assert SweepConfig(layers=[-1, 0]).validate(4).layers == [0, 3]
    assert parse_layers("-1") == [-1] and parse_layers("-4--1") == [-4, -3, -2, -1]
    assert SweepConfig(layers=parse_layers("-4--1:2")).validate(30).layers == [26, 28]
    with pytest.raises(ss.SteerscaleError, match="mixes a layer counted from the start"):
        parse_layers("10--1")
    with pytest.raises(ss.SteerscaleError, match="out of range"):
        SweepConfig(layers=[-5]).validate(4)


# ------------------------------------------------------------------------------------------- repeng


def _v(seed=0, fp="f" * 20, n=4, h=32):
    g = torch.Generator().manual_seed(seed)
    return ss.SteeringVectors(torch.randn(n, h, generator=g), {"model": "m", "model_type": "llama",
                                                                "weights_fingerprint": fp, "dataset_hash": "d"})


def test_arithmetic_values_and_metadata():
    a, b = _v(0), _v(1)
    t = a.vectors, b.vectors
    for got, want in [(-a, -t[0]), (2 * a, 2 * t[0]), (a * 2, 2 * t[0]), (a / 2, t[0] / 2), (a + b, t[0] + t[1]),
                      (a - b, t[0] - t[1]), (0.5 * (a + b), (t[0] + t[1]) / 2)]:
        torch.testing.assert_close(got.vectors, want, atol=1e-6, rtol=1e-6)
        assert got.meta["weights_fingerprint"] == "f" * 20 and got.meta["model_type"] == "llama"
        assert "dataset_hash" not in got.meta  # one training run's keys do not describe a combination
    s = a - b
    from steerscale.core.vector_ops import vectors_hash

    assert [o["hash"] for o in s.meta["operands"]] == [vectors_hash(a), vectors_hash(b)]
    assert s.meta["operation"] == f"{vectors_hash(a)[:8]} - {vectors_hash(b)[:8]}"
    assert (2 * a).meta["operation"].startswith("2 * ")


@pytest.mark.parametrize("make, fragment", [
    (lambda: _v(0) + _v(1, n=5), "shapes differ (4 layers x 32 vs 5 layers x 32)"),
    (lambda: _v(0) - _v(1, fp="0" * 20), "made on different models (weights fingerprints"),
    (lambda: _v(0) * "2", "expected a finite number"),
    (lambda: _v(0) * float("nan"), "expected a finite number"),
    (lambda: _v(0) / 0, "division by zero"),
    (lambda: _v(0) + 1.0, "expected other steering vectors"),
])
def test_arithmetic_refusals_are_one_line(make, fragment):
    with pytest.raises(ss.SteerscaleError) as e:
        make()
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_export_gguf_round_trip_with_the_model_type(tiny, tmp_path):
    model, tok = tiny
    vecs = ss.train_vectors(model, tok, PAIRS)
    out = (3 * vecs).export_gguf(tmp_path / "cv.gguf", layers=[1, -1])
    back = import_control_vector(out, n_layers=4)
    assert back.meta["model_hint"] == "llama" and back.meta["layers_present"] == [1, 3]
    torch.testing.assert_close(back.vectors[[1, 3]], 3 * vecs.vectors[[1, 3]], atol=1e-5, rtol=1e-5)


def test_export_model_hint_is_a_type_never_the_name(tmp_path):
    named = ss.SteeringVectors(torch.randn(3, 8), {"model": "SmolLM2-135M-Instruct.Q4_1"})
    back = import_control_vector(named.export_gguf(tmp_path / "a.gguf"), n_layers=3)
    assert back.meta["model_hint"] == "unknown"
    back = import_control_vector(named.export_gguf(tmp_path / "b.gguf", model_hint="llama"), n_layers=3)
    assert back.meta["model_hint"] == "llama"


def test_ab_training_through_the_api_records_the_model_type(tmp_path):
    model, tok, info = ss.load_model(str(save_tiny_model(tmp_path / "m", layers=2)))
    vecs = ss.train_vectors(model, tok, ss.load_dataset(str(write_dataset(tmp_path / "d.json", 4))))
    assert vecs.meta["model_type"] == "llama"


# ------------------------------------------------------------------------------------------- lm-eval


class _FakeAccelerator(torch.nn.Module):
    """A 'model' on a non-CPU device whose forward runs out of memory above `fits` rows."""

    def __init__(self, fits: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, device="meta"))
        self.fits, self.tried = fits, []

        class Cfg:
            max_position_embeddings = 64

            def get_text_config(self):
                return self

        self.config = Cfg()

    def forward(self, input_ids, **kw):
        self.tried.append(tuple(input_ids.shape))
        if input_ids.shape[0] > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_batch_size_auto_halves_on_out_of_memory():
    fake = _FakeAccelerator(fits=40)
    assert auto_batch_size(fake) == 32
    assert [b for b, _ in fake.tried] == [256, 128, 64, 32] and {t for _, t in fake.tried} == {64}
    assert choose_batch_size(lambda b: None, start=16) == 16
    with pytest.raises(ValueError):  # not an out-of-memory error: not swallowed
        choose_batch_size(lambda b: (_ for _ in ()).throw(ValueError("bug")))
    with pytest.raises(RuntimeError, match="out of memory"):  # nothing fits
        choose_batch_size(lambda b: (_ for _ in ()).throw(RuntimeError("CUDA error: out of memory")), start=4)
    assert auto_batch_size(make_model("llama")) == CPU_DEFAULT  # a CPU: the default, no probing


def test_cli_batch_size_auto_is_recorded_in_the_manifest(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    save_tiny_model(tmp_path / "m", layers=2)
    write_dataset(tmp_path / "d.json", 4)
    assert cli.main(["sweep", "--model", "m", "--data", "d.json", "--train-data", "d.json", "--layers", "-1",
                     "--multipliers=0,1", "--batch-size", "auto", "--out", "run"]) == 0
    assert f"--batch-size auto: {CPU_DEFAULT}" in capsys.readouterr().err
    config = json.loads((tmp_path / "run" / "manifest.json").read_text())["config"]
    assert config["batch_size"] == CPU_DEFAULT and config["layers"] == [1]  # --layers -1: the last of 2 layers
    with pytest.raises(SystemExit) as e:
        cli.main(["sweep", "--batch-size", "many", "--out", "run"])
    assert e.value.code == 2 and "expected a positive integer or 'auto'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["sweep", "--train_limit", "5", "--out", "x"], "did you mean --train-limit?"),
    (["sweep", "--multiplers=0,1", "--out", "x"], "did you mean --multipliers?"),
    (["swep", "--out", "x"], "invalid choice: 'swep'"),
    (["sweep", "--positions", "instruction-end", "--out", "x"], "did you mean 'instruction_end'?"),
])
def test_did_you_mean_one_line_exit_2(argv, fragment, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors (bad command or choice) exit from the parser
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


def test_data_listing_sizes_and_letter_balance(capsys):
    from collections import Counter

    outs = []
    for argv in (["data", "list"], ["list-data"], ["sweep", "--data", "list"], ["train", "--train-data=list"]):
        assert cli.main(argv) == 0
        outs.append(capsys.readouterr().out)
    assert len(set(outs)) == 1
    train = Counter(it.matching for it in ss.load_dataset("refusal-train"))
    line = next(l for l in outs[0].splitlines() if l.startswith("refusal-train "))
    assert f"{sum(train.values())}  A: {train['A']}, B: {train['B']}" in line
    assert cli.main(["data", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["harmful-prompts"]["size"] == len(ss.load_prompts("harmful-prompts"))


# ------------------------------------------------------------------------------------------- CLI consistency


def test_info_model_flag_and_deprecated_positional(tmp_path, capsys):
    m = str(save_tiny_model(tmp_path / "m", layers=2))
    assert cli.main(["info", "--model", m, "--json"]) == 0
    flag = json.loads(capsys.readouterr().out)
    assert cli.main(["info", m, "--json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out) == flag and "positional MODEL is deprecated; use --model" in cap.err
    assert cli.main(["info", m, "--model", str(tmp_path / "other")]) == 2
    assert "the model is given twice" in capsys.readouterr().err


def test_train_data_flag_and_deprecated_data(tmp_path, capsys):
    m = str(save_tiny_model(tmp_path / "m", layers=2))
    d = str(write_dataset(tmp_path / "d.json", 6))
    assert cli.main(["train", "--model", m, "--train-data", d, "--train-limit", "4", "--out",
                     str(tmp_path / "a.safetensors")]) == 0
    assert cli.main(["train", "--model", m, "--data", d, "--limit", "4", "--out", str(tmp_path / "b.safetensors")]) == 0
    err = capsys.readouterr().err
    assert "train --data is deprecated; use --train-data" in err and "train --limit is deprecated" in err
    a, b = (ss.SteeringVectors.load(tmp_path / f"{x}.safetensors") for x in "ab")
    torch.testing.assert_close(a.vectors, b.vectors, atol=0, rtol=0)
    assert a.meta["n_items"] == 4 and a.meta["dataset"] == d


def test_every_flag_has_help_and_shows_its_default():
    from steerscale.cli.options import HelpFormatter, says_default

    ap = cli.build_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    missing, no_default = [], []
    for name, p in sub.choices.items():
        fmt = HelpFormatter(p.prog)
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            if not a.help:
                missing.append(f"{name} {a.option_strings or a.dest}")
            if a.option_strings and a.default not in (None, False, argparse.SUPPRESS):
                shown = fmt._get_help_string(a) % {"default": a.default}  # what --help prints
                if not says_default(shown, a):
                    no_default.append(f"{name} {a.option_strings[0]} ({a.default})")
    assert not missing, missing
    assert not no_default, no_default
    sweep_help = " ".join(sub.choices["sweep"].format_help().split())
    assert "0-29:3" in sweep_help and "'-1' (last)" in sweep_help
    assert "(default 8)" in " ".join(sub.choices["ablation"].format_help().split())  # --batch-size


def test_negative_layers_in_transfer(tmp_path, capsys):
    m = str(save_tiny_model(tmp_path / "m", layers=3))
    vp = ss.SteeringVectors(torch.randn(3, 32), {"model": "m"}).save(tmp_path / "v.safetensors")
    assert cli.main(["transfer", "--vectors", str(vp), "--source-model", m, "--model", m, "--layers", "-1",
                     "--template", "plain", "--limit", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["source_layers"] == [2] and r["target_layers"] == [2]
