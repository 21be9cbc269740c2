"""One model identity from load_model to every file (issue 20): vectors trained through the Python API as the
README's tour does (no info=) are swept by the CLI without --allow-foreign-vectors, and no file records the
machine's absolute path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import steerscale as ss
from steerscale import cli
from steerscale.core.checks import check_foreign_vectors
from steerscale.core.models import model_info, recorded_spec
from tinydir import save_tiny_model, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _written_metadata(folder: Path) -> dict[str, str]:
    """Every JSON file's text and every safetensors file's metadata under `folder`."""
    out = {}
    for p in folder.rglob("*"):
        if p.suffix == ".json":
            out[str(p)] = p.read_text()
        elif p.suffix == ".safetensors":
            with safe_open(str(p), "pt") as f:
                out[str(p)] = json.dumps(f.metadata())
    return out


def _api_tour_then_cli_sweep(tmp_path, monkeypatch, spec_of):
    """The README's API tour (load_model, load_dataset, train_vectors without info=, save) and then
    `steerscale sweep --vectors` on the same model, from a working folder inside tmp_path."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    spec = spec_of(work)
    model, tok, info = ss.load_model(spec)
    train = ss.load_dataset(str(write_dataset(work / "train.json", 6)))
    vecs = ss.train_vectors(model, tok, train, template="chat")  # no info=: as the README writes it
    vecs.save("refusal.safetensors")
    assert model_info(model) == info  # what load_model returned, not a second identity
    write_dataset(work / "test.json", 4)
    argv = ["sweep", "--model", spec, "--vectors", "refusal.safetensors", "--data", "test.json",
            "--layers", "0,-1", "--multipliers=-1,0,1", "--out", "run"]
    assert cli.main(argv) == 0  # no --allow-foreign-vectors
    manifest = json.loads((work / "run" / "manifest.json").read_text())
    assert manifest["model"]["name"] == vecs.meta["model"] == info.name
    assert manifest["config"]["layers"] == [0, info.n_layers - 1]  # -1 = the last layer
    return work, info, vecs


def test_api_vectors_sweep_through_cli_with_an_absolute_path(tmp_path, monkeypatch):
    """The user gives load_model an absolute folder path (the notebook habit) and the CLI a relative one."""
    work, info, vecs = _api_tour_then_cli_sweep(
        tmp_path, monkeypatch, lambda work: str(save_tiny_model(work / "models" / "tiny", layers=3)))
    assert info.spec == os.path.join("models", "tiny") and info.name == "tiny"
    written = _written_metadata(work)
    assert any(p.endswith("refusal.safetensors") for p in written) and any(p.endswith("manifest.json") for p in written)
    leaks = [p for p, text in written.items() if str(tmp_path) in text]
    assert not leaks, leaks


def test_api_and_cli_given_the_same_relative_spec(tmp_path, monkeypatch):
    work, info, vecs = _api_tour_then_cli_sweep(
        tmp_path, monkeypatch, lambda work: (save_tiny_model(work / "tiny", layers=2), "tiny")[1])
    assert info.spec == "tiny" and vecs.meta["model_spec"] == "tiny"
    assert not [p for p, text in _written_metadata(work).items() if str(tmp_path) in text]


def test_fingerprint_decides_foreign_vectors(tmp_path):
    """Equal fingerprints are never foreign, whatever the names; different fingerprints are, even under one name."""
    model, _, info = ss.load_model(str(save_tiny_model(tmp_path / "a", layers=2)))
    same = ss.SteeringVectors(torch.zeros(2, 32), {"model": "/somewhere/else/a-copy",
                                                   "weights_fingerprint": info.weights_fingerprint})
    check_foreign_vectors(same, info, allow=False)  # no error
    other = ss.SteeringVectors(torch.zeros(2, 32), {"model": info.name, "weights_fingerprint": "0" * 20})
    with pytest.raises(ss.SteerscaleError, match="weights fingerprint is 0{20}, this model's"):
        check_foreign_vectors(other, info, allow=False)
    named = ss.SteeringVectors(torch.zeros(2, 32), {"model": "b"})  # no fingerprint: names decide
    with pytest.raises(ss.SteerscaleError, match="made on model 'b', this is 'a'"):
        check_foreign_vectors(named, info, allow=False)


def test_model_info_follows_the_weights(tmp_path):
    model, _, info = ss.load_model(str(save_tiny_model(tmp_path / "m", layers=2)))
    with torch.no_grad():
        next(model.parameters()).mul_(2)
    now = model_info(model)
    assert now.name == info.name and now.spec == info.spec
    assert now.weights_fingerprint != info.weights_fingerprint  # edited weights are other weights


def test_model_info_of_a_model_built_elsewhere_has_no_absolute_path(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = save_tiny_model(tmp_path / "mine", layers=2)
    model = AutoModelForCausalLM.from_pretrained(str(folder))  # not through load_model
    info = model_info(model)
    assert info.name == "mine" and str(tmp_path) not in json.dumps(info.to_dict())
    assert recorded_spec("smollm2-135m") == "smollm2-135m" and recorded_spec("org/model") == "org/model"


@pytest.mark.slow
def test_smollm2_api_vectors_are_not_foreign_to_the_cli(tmp_path, monkeypatch):
    """The issue's case: the README tour on SmolLM2 (spec 'smollm2-135m'), then the CLI on the same model."""
    monkeypatch.chdir(tmp_path)
    model, tok, info = ss.load_model("smollm2-135m")
    vecs = ss.train_vectors(model, tok, ss.load_dataset("refusal-train", limit=4), template="chat")
    vecs.save("refusal.safetensors")
    assert vecs.meta["model"] == info.name == "SmolLM2-135M-Instruct.Q4_1"
    assert cli.main(["sweep", "--vectors", "refusal.safetensors", "--limit", "2", "--layers", "-1",
                     "--multipliers=0,1", "--out", "run"]) == 0
    assert not [p for p, t in _written_metadata(tmp_path).items() if str(tmp_path) in t]
