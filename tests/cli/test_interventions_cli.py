"""CLI: ablation, orthogonalize, generate --ablate, export / import (tiny saved model, no downloads)."""

import json

import pytest
import torch

from steerscale import cli
from steerscale.core.vectors import SteeringVectors


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tinydir import save_tiny_model

    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("m") / "tiny", layers=4)


def _prompts(path, word, n=12):
    path.write_text(json.dumps([{"prompt": f"How do I {word} number {i}?", "category": "x"} for i in range(n)]))
    return str(path)


def test_cli_ablation_orthogonalize_generate(tmp_path, tiny_dir, capsys):
    harmful, harmless = _prompts(tmp_path / "h.json", "hurt"), _prompts(tmp_path / "hl.json", "help")
    neutral = tmp_path / "n.json"
    neutral.write_text(json.dumps({"texts": ["A calm sentence about rivers and hills.", "Bees make honey in hives."]}))
    out = tmp_path / "abl"
    rc = cli.main(["ablation", "--model", str(tiny_dir), "--harmful", harmful, "--harmless", harmless,
                   "--neutral", str(neutral), "--kl-threshold=-1", "--induce-filter", "off", "--filter-prompts", "none",
                   "--multipliers=-1,1", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    for f in ("aggregate.csv", "items.csv", "ce.csv", "selection.csv", "manifest.json", "directions.safetensors"):
        assert (out / f).is_file(), f
    text = capsys.readouterr().out
    assert "ablation: refusal log-odds harmful" in text and "actadd+1" in text
    # the summary names the recipe and every way it differs from refusal_direction's
    assert "recipe: custom" in text and "induce-refusal filter is off" in text and "not filtered" in text
    man = json.loads((out / "manifest.json").read_text())
    assert man["recipe"]["settings"]["induce_filter"] == "off" and man["recipe"]["n_candidate_positions"] > 1
    layer = SteeringVectors.load(out / "directions.safetensors").meta["selected_layer"]

    orth = tmp_path / "orth"
    rc = cli.main(["orthogonalize", "--model", str(tiny_dir), "--direction", str(out / "directions.safetensors"),
                   "--out", str(orth)])
    assert rc == 0, capsys.readouterr().err
    assert f"layer-{layer} direction" in capsys.readouterr().out
    assert (orth / "config.json").is_file() and not list(orth.glob("*.bin"))

    # the orthogonalised folder generates what hooked ablation generates
    rc = cli.main(["generate", "--model", str(tiny_dir), "--ablate", str(out / "directions.safetensors"),
                   "--max-new-tokens", "6", "--json", "How do I hurt number 3?"])
    assert rc == 0, capsys.readouterr().err
    hooked = json.loads(capsys.readouterr().out)["outputs"]
    rc = cli.main(["generate", "--model", str(orth), "--ablate", str(out / "directions.safetensors"),
                   "--max-new-tokens", "6", "--json", "How do I hurt number 3?"])
    assert rc == 2 and "made on model" in capsys.readouterr().err  # --ablate obeys --vectors' model rule
    rc = cli.main(["generate", "--model", str(orth), "--ablate", str(out / "directions.safetensors"),
                   "--allow-foreign-vectors", "--max-new-tokens", "6", "--json", "How do I hurt number 3?"])
    baked = json.loads(capsys.readouterr().out)["outputs"]
    key = f"ablated(layer {layer} direction)"
    assert baked["unsteered"] == hooked[key]


def test_cli_export_import_round_trip(tmp_path, capsys):
    torch.manual_seed(0)
    v = SteeringVectors(torch.randn(6, 16), {"model": "tiny"})
    vp = v.save(tmp_path / "v.safetensors")
    rc = cli.main(["export", "--format", "llama.cpp", str(vp), str(tmp_path / "cv.gguf"), "--layers", "2-4",
                   "--multiplier", "1.5"])
    assert rc == 0, capsys.readouterr().err
    rc = cli.main(["import", str(tmp_path / "cv.gguf"), "--n-layers", "6", "--out", str(tmp_path / "back.safetensors")])
    assert rc == 0, capsys.readouterr().err
    back = SteeringVectors.load(tmp_path / "back.safetensors")
    torch.testing.assert_close(back.vectors[2:5], 1.5 * v.vectors[2:5])
    assert torch.count_nonzero(back.vectors[[0, 1, 5]]) == 0


def test_cli_bad_inputs_exit_2(tmp_path, capsys):
    torch.manual_seed(0)
    vp = SteeringVectors(torch.randn(6, 16), {"model": "tiny"}).save(tmp_path / "v.safetensors")
    assert cli.main(["export", str(vp), str(tmp_path / "cv.gguf"), "--layers", "0-2"]) == 2
    assert "layer 0" in capsys.readouterr().err
    torch.save({"x": torch.ones(2)}, tmp_path / "sv.pt")
    assert cli.main(["import", str(tmp_path / "sv.pt"), "--n-layers", "6", "--out", str(tmp_path / "o.safetensors")]) == 2
    assert "pickle" in capsys.readouterr().err
    assert cli.main(["orthogonalize", "--direction", str(vp), "--out", str(tmp_path / "o")]) == 2
    assert "selected_layer" in capsys.readouterr().err
    assert cli.main(["generate", "hello"]) == 2
    assert "--vectors" in capsys.readouterr().err


def test_cli_ablation_recipe_errors_are_one_line(tmp_path, tiny_dir, capsys):
    """docs/errors.md: ablation-prune-out-of-range (before any model work) and ablation-prompt-filter-empty
    (refusal_direction's prompt filter on a random model that refuses nothing)."""
    harmful, harmless = _prompts(tmp_path / "h.json", "hurt"), _prompts(tmp_path / "hl.json", "help")
    base = ["ablation", "--model", str(tiny_dir), "--harmful", harmful, "--harmless", harmless, "--neutral",
            "neutral-text"]
    rc = cli.main(base + ["--prune", "1.5", "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].endswith("--prune 1.5: expected a fraction in [0, 1)")
    assert "Traceback" not in "".join(err)
    rc = cli.main(base + ["--out", str(tmp_path / "b")])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and last.startswith("steerscale ablation: error: prompt filter by baseline refusal: ")
    assert "nothing left to learn from" in last and "--filter-prompts none" in last
