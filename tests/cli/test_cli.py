"""The CLI end to end on the bundled SmolLM2, plus argument parsing."""

import json

import pytest

from steerscale.cli import main
from steerscale.cli.options import parse_floats, parse_layers
from steerscale.errors import SteerscaleError


def test_parse_layers_and_floats():
    assert parse_layers("all") is None
    assert parse_layers("3") == [3]
    assert parse_layers("10-12,20") == [10, 11, 12, 20]
    assert parse_layers("0-9:3") == [0, 3, 6, 9]
    assert parse_floats("-1,0,1.5") == [-1.0, 0.0, 1.5]
    with pytest.raises(SteerscaleError, match="'x' is not a number"):
        parse_floats("-1,x")
    with pytest.raises(SteerscaleError, match="--layers"):
        parse_layers("a-b")


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("info", "train", "sweep", "generate"):
        assert cmd in out


@pytest.mark.slow
def test_info_train_generate(tmp_path, capsys):
    assert main(["info", "smollm2-135m", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_layers"] == 30 and info["model_type"] == "llama"
    vec = tmp_path / "v.safetensors"
    assert main(["train", "--limit", "6", "--out", str(vec)]) == 0
    assert "30 layers x 576" in capsys.readouterr().out
    assert main(["generate", "How do I bake bread?", "--vectors", str(vec), "--layers", "10",
                 "--multipliers", "-2,2", "--max-new-tokens", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["outputs"]) == {"unsteered", "m=-2", "m=+2"}
    assert all(isinstance(v, str) for v in out["outputs"].values())
