"""One source of configuration: dataclass fields give the CLI flags and the TOML keys; one vectors_for_run."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from steerscale import cli
from steerscale.core import vectors as vectors_mod
from steerscale.cli.options import numeric_list_flags
from steerscale.config import OpenEndedConfig, SweepConfig, VectorOptions
from steerscale.reproduce.config import OpenEndedSection, SweepSection
from steerscale.core.data import parse_item
from steerscale.errors import SteerscaleError
from steerscale.core.models import model_info
from steerscale.reproduce.config import load_config
from steerscale.reproduce.run import openended_config
from steerscale.core.steering import POSITIONS
from steerscale.core.vectors import vectors_for_run
from conftest import TinyTokenizer, make_model

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _subparsers():
    return cli.build_parser()._subparsers._group_actions[0].choices


def _action(parser, flag):
    return next(a for a in parser._actions if flag in a.option_strings)


def test_flags_take_default_help_and_choices_from_the_fields():
    subs = _subparsers()
    assert set(subs) == set(cli.SUBCOMMANDS)
    sweep, oe = subs["sweep"], subs["openended"]
    by_name = {f.name: f for f in fields(SweepConfig)}
    assert _action(sweep, "--multipliers").default == ",".join(f"{m:g}" for m in SweepConfig().multipliers)
    assert _action(sweep, "--positions").choices == list(POSITIONS)
    assert _action(sweep, "--positions").help == by_name["positions"].metadata["help"]
    assert _action(oe, "--multipliers").default == ",".join(f"{m:g}" for m in OpenEndedConfig().multipliers)
    assert _action(oe, "--max-new-tokens").default == OpenEndedConfig().max_new_tokens
    assert _action(oe, "--n-generate").default == OpenEndedConfig().n_generate
    for p in (sweep, oe):  # the vectors block is written once, so sweep and openended agree flag for flag
        for f in fields(VectorOptions):
            a = _action(p, "--" + f.name.replace("_", "-"))
            assert a.default == f.default and a.help == f.metadata["help"]
    # parsed back into the dataclass: the defaults round-trip
    args = sweep.parse_args(["--out", "x"])
    assert cli.options.config_from_args(SweepConfig, args) == SweepConfig(layers=None)


def test_numeric_list_flags_exist():
    flags = {s for p in _subparsers().values() for a in p._actions for s in a.option_strings}
    assert set(numeric_list_flags()) <= flags
    assert "--window-starts" in numeric_list_flags() and "--windows" not in numeric_list_flags()


def test_one_openended_default_for_api_cli_and_toml(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[openended]\n[[models]]\nspec = 'x'\n")
    c = load_config(cfg)
    api = OpenEndedConfig()
    for k in ("multipliers", "n_generate", "max_new_tokens", "n_logodds", "n_neutral", "ce_bound"):
        assert c.openended[k] == getattr(api, k), k
    oc = openended_config(c, c.models[0], 30)
    assert oc.multipliers == api.multipliers and oc.layers == list(range(30))
    # the demo sets its open-ended values explicitly, so the shared default does not change it
    demo = load_config().openended
    assert (demo["multipliers"], demo["n_generate"], demo["max_new_tokens"]) == ([-4.0, 0.0, 4.0], 2, 24)


@pytest.mark.parametrize("text,msg", [
    ("[sweep]\nbatch_size = '8'\n", r"c\.toml: \[sweep\]: batch_size '8': expected an integer >= 1"),
    ("[sweep]\ntemplate = 'alpaca'\n", r"\[sweep\]: template 'alpaca': expected one of chat, llama2, plain"),
    ("[sweep]\npositions = 'last'\n", r"\[sweep\]: positions 'last': expected one of all, instruction_end"),
    ("[sweep]\nsystem = 3\n", r"\[sweep\]: system 3: expected a string"),
    ("[run]\nseed = -1\n", r"c\.toml: \[run\] seed -1: expected an integer >= 0"),
    ("[run]\nval_fraction = 'half'\n", r"\[run\] val_fraction 'half': expected a number between 0 and 1"),
    ("[data]\ntrain_limit = 0\n", r"\[data\] train_limit 0: expected a positive number of items or a fraction in \(0, 1\)"),
    ("[data]\ntrain = 5\n", r"\[data\] train 5: expected a string"),
    ("[openended]\nharmful = ['a']\n", r"\[openended\]: harmful \['a'\]: expected a string"),
    ("[run]\nsede = 1\n", r"\[run\] unknown key 'sede' \(known: seed, n_bootstrap"),
])
def test_toml_errors_name_file_section_and_key(tmp_path, text, msg):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text + "[[models]]\nspec = 'x'\n")
    with pytest.raises(SteerscaleError, match=msg):
        load_config(cfg)


def test_model_override_is_a_sweep_section(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[[models]]\nspec = 'x'\nbatch_size = 0\n")
    with pytest.raises(SteerscaleError, match=r"\[\[models\]\] #1: batch_size 0: expected an integer >= 1"):
        load_config(cfg)
    assert {f.name for f in fields(SweepSection)} >= {"layers", "layer_stride", "multipliers", "engine"}
    assert {f.name for f in fields(OpenEndedSection)} >= {"harmful", "n_generate"}


def test_print_config_is_the_default_config(tmp_path):
    out = subprocess.run([sys.executable, "-m", "steerscale.cli", "reproduce", "--print-config"], capture_output=True,
                         text=True, env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    printed = tmp_path / "default.toml"
    printed.write_text(out.stdout)
    a, b = load_config(printed).to_dict(), load_config().to_dict()
    a.pop("path"), b.pop("path")
    assert a == b


def test_cli_option_bounds_come_from_the_fields(capsys):
    assert cli.main(["openended", "--max-new-tokens", "0", "--out", "/tmp/never-written"]) == 2
    assert "--max-new-tokens 0: expected a positive number of tokens" in capsys.readouterr().err
    assert cli.main(["ablation", "--batch-size", "0", "--out", "/tmp/never-written"]) == 2  # now checked there too
    assert "--batch-size 0: expected a positive integer" in capsys.readouterr().err


# ---------------------------------------------------------------- vectors_for_run: one resume behaviour


def _items(n=6):
    return [parse_item({"question": f"request number {i}?\n\nChoices:\n(A) no\n(B) yes",
                        "answer_matching_behavior": "(A)" if i % 2 else "(B)",
                        "answer_not_matching_behavior": "(B)" if i % 2 else "(A)"}, idx=i) for i in range(n)]


def test_vectors_for_run_reuses_refuses_and_retrains(tmp_path, monkeypatch):
    model, tok = make_model("llama"), TinyTokenizer()
    info = model_info(model, name="tiny")
    path = tmp_path / "vectors.safetensors"
    kw = dict(template="plain", info=info, progress=False)
    first = vectors_for_run(model, tok, _items(), path, dataset="d", **kw)
    assert path.is_file() and first.meta["dataset"] == "d"
    calls = []
    real = vectors_mod.train_vectors
    monkeypatch.setattr(vectors_mod, "train_vectors", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = vectors_for_run(model, tok, _items(), path, **kw)  # same setup: the file, no training
    assert calls == [] and torch.equal(again.vectors, first.vectors)
    with pytest.raises(SteerscaleError, match=r"trained with a different setup \(normalization: 'none' vs 'unit'"):
        vectors_for_run(model, tok, _items(), path, normalize="unit", **kw)
    with pytest.raises(SteerscaleError, match=r"dataset_hash: .*n_items: 6 vs 5"):
        vectors_for_run(model, tok, _items(5), path, **kw)
    other = make_model("llama", seed=1)  # same name and shape, other weights
    with pytest.raises(SteerscaleError, match=r"weights_fingerprint: "):
        vectors_for_run(other, tok, _items(), path, template="plain", info=model_info(other, name="tiny"),
                        progress=False)
    unit = vectors_for_run(model, tok, _items(), path, normalize="unit", on_mismatch="retrain", **kw)
    assert calls == [1] and unit.meta["normalization"] == "unit"
    assert torch.allclose(unit.norms(), torch.ones(unit.n_layers), atol=1e-5)
    assert vectors_mod.SteeringVectors.load(path).meta["normalization"] == "unit"


def test_vectors_for_run_refuses_another_answer_opening(tmp_path):
    """Vectors read after another answer opening (e.g. Llama-2's old '[/INST](') are not reused; files from
    before the opening was recorded count as '('."""
    model, tok = make_model("llama"), TinyTokenizer()
    kw = dict(template="plain", info=model_info(model, name="tiny"), progress=False)
    path = tmp_path / "vectors.safetensors"
    first = vectors_for_run(model, tok, _items(), path, **kw)
    assert first.meta["answer_opening"] == " ("  # the plain prompt ends in a space
    for old in ("(", None):
        meta = dict(first.meta, answer_opening=old) if old else {k: v for k, v in first.meta.items()
                                                                  if k != "answer_opening"}
        vectors_mod.SteeringVectors(first.vectors, meta).save(path)
        with pytest.raises(SteerscaleError, match=r"answer_opening: '\(' vs ' \('"):
            vectors_for_run(model, tok, _items(), path, **kw)
