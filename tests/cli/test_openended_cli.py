"""CLI subcommands of the open-ended work (tiny model patched in; no downloads)."""

import json

import pytest
import torch

from conftest import TinyTokenizer, make_model
from steerscale import cli
from steerscale.core.models import model_info
from steerscale.core.vectors import SteeringVectors


@pytest.fixture
def patched_load(monkeypatch):
    model = make_model("llama")
    info = model_info(model, name="tiny")
    monkeypatch.setattr(cli.common, "LOADER", lambda args: (model, TinyTokenizer(), info))
    return model, info


def test_cli_openended(tmp_path, patched_load, capsys):
    model, info = patched_load
    torch.manual_seed(0)
    vp = SteeringVectors(torch.randn(info.n_layers, info.hidden_size), {"model": "tiny"}).save(tmp_path / "v.safetensors")
    out = tmp_path / "res"
    rc = cli.main(["openended", "--vectors", str(vp), "--template", "plain", "--layers", "1,3",
                   "--window-starts", "0", "--window-widths", "2", "--multipliers=-2,0,2", "--n-logodds", "3",
                   "--n-generate", "1", "--max-new-tokens", "4", "--n-neutral", "2", "--ce-bound", "0.5",
                   "--out", str(out)])
    assert rc == 0
    for f in ("aggregate.csv", "logodds.csv", "generations.csv", "ce.csv", "manifest.json", "max_multiplier.csv",
              "tradeoff.png", "tradeoff.svg", "openended_layers.png"):
        assert (out / f).is_file(), f
    agg = json.loads((out / "aggregate.json").read_text())
    assert {(a["layer_start"], a["layer_end"]) for a in agg} == {(1, 1), (3, 3), (0, 1)}
    assert "unsteered: refusal log-odds harmful" in capsys.readouterr().out


def test_cli_openended_bad_window(tmp_path, patched_load, capsys):
    _, info = patched_load
    vp = SteeringVectors(torch.randn(info.n_layers, info.hidden_size)).save(tmp_path / "v.safetensors")
    rc = cli.main(["openended", "--vectors", str(vp), "--template", "plain", "--window-starts", "0",
                   "--out", str(tmp_path / "r")])
    assert rc == 2 and "both window" in capsys.readouterr().err


def test_cli_similarity(tmp_path, capsys):
    torch.manual_seed(0)
    a = SteeringVectors(torch.randn(4, 8)).save(tmp_path / "refusal.safetensors")
    b = SteeringVectors(torch.randn(4, 8) * 5).save(tmp_path / "b.safetensors")
    rc = cli.main(["similarity", str(a), f"syco={b}", "--normalize-across", "--out", str(tmp_path / "s")])
    assert rc == 0
    s = tmp_path / "s"
    assert (s / "cosine.csv").is_file() and (s / "cosine_layers_refusal.png").is_file()
    assert (s / "cosine_refusal_vs_syco.svg").is_file()
    na = SteeringVectors.load(s / "refusal.normalized.safetensors")
    nb = SteeringVectors.load(s / "syco.normalized.safetensors")
    torch.testing.assert_close(na.norms(), nb.norms())
    lines = (s / "cosine.csv").read_text().splitlines()
    assert len(lines) == 1 + (2 * 4) ** 2
