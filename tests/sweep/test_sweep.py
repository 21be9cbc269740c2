"""Sweep tables: shapes, baseline, intervals, determinism."""

import csv
import json

import numpy as np
import pytest
import torch

from steerscale.core.data import parse_item
from steerscale.errors import SteerscaleError
from steerscale.stats import mean_ci
from steerscale.config import SweepConfig
from steerscale.sweep.run import run_sweep
from steerscale.core.vectors import SteeringVectors
from builders import make_items


def test_sweep_tables(tiny, tmp_path):
    model, tok, info = tiny
    torch.manual_seed(0)
    vecs = SteeringVectors(torch.randn(info.n_layers, info.hidden_size))
    cfg = SweepConfig(layers=[0, 2], multipliers=[-1, 0, 1], template="plain", batch_size=3, n_bootstrap=200)
    res = run_sweep(model, tok, vecs, make_items(5), cfg, info=info, out_dir=tmp_path, progress=False)
    assert len(res.rows) == 2 * 3 * 5 and len(res.aggregate) == 2 * 3
    with open(tmp_path / "items.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and set(rows[0]) >= {"model", "n_params", "n_layers", "layer", "depth", "multiplier", "score"}
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["config"]["layers"] == [0, 2] and man["model"]["n_layers"] == info.n_layers
    for a in res.aggregate:
        assert a["ci_low"] <= a["score"] <= a["ci_high"]
        assert 0 <= a["score"] <= 1
    base = [a for a in res.aggregate if a["multiplier"] == 0]
    assert base[0]["score"] == base[1]["score"] and base[0]["delta"] == 0
    steered = [a for a in res.aggregate if a["multiplier"] != 0]
    assert any(abs(a["delta"]) > 1e-4 for a in steered)


def test_sweep_is_deterministic(tmp_path):
    from conftest import TinyTokenizer, make_model
    from steerscale.core.models import model_info

    model = make_model("llama")
    info = model_info(model, name="tiny")
    vecs = SteeringVectors(torch.randn(info.n_layers, info.hidden_size))
    cfg = SweepConfig(layers=[1], template="plain")
    for d in ("a", "b"):
        run_sweep(model, TinyTokenizer(), vecs, make_items(4), cfg, info=info, out_dir=tmp_path / d, progress=False)
    for f in ("items.csv", "aggregate.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_sweep_config_errors(tiny):
    model, tok, info = tiny
    vecs = SteeringVectors(torch.randn(info.n_layers, info.hidden_size))
    with pytest.raises(SteerscaleError, match=r"layers \[99\]: out of range"):
        run_sweep(model, tok, vecs, make_items(2), SweepConfig(layers=[99], template="plain"), progress=False)
    with pytest.raises(SteerscaleError, match="engine 'warp'"):
        run_sweep(model, tok, vecs, make_items(2), SweepConfig(engine="warp", template="plain"), progress=False)
    with pytest.raises(SteerscaleError, match="multipliers value nan: expected a finite number"):
        run_sweep(model, tok, vecs, make_items(2), SweepConfig(multipliers=[float("nan")], template="plain"), progress=False)


def test_mean_ci_is_seeded_and_covers():
    x = np.random.default_rng(0).normal(0.3, 1, 400)
    a, b = mean_ci(x, 500, seed=1), mean_ci(x, 500, seed=1)
    assert a == b and a[1] < 0.3 < a[2]
