"""Every fast run checks one point of its first batch against the naive engine and stops on a mismatch."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from steerscale import cli
from steerscale.core import steering
from steerscale.engines import hfcompat, partial
from steerscale.engines.check import CHECK_TOL, _maxdiff
from steerscale.errors import SteerscaleError
from steerscale.core.models import register_architecture
from steerscale.config import SweepConfig
from steerscale.sweep.run import run_sweep
from builders import varied_items
from tinydir import save_tiny_model, write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(arch="llama"):
    from conftest import TinyTokenizer, make_model

    torch.manual_seed(1)
    return make_model(arch), TinyTokenizer(), torch.randn(4, 32), varied_items(6)


def _cfg(positions="all", **kw):
    return SweepConfig(**dict(dict(layers=[0, 1, 3], multipliers=[-2, 0, 1], positions=positions, template="plain",
                                   batch_size=4, n_bootstrap=10), **kw))


def _no_prefix_cache(monkeypatch):
    """What transformers 4.x did with ``cache=``: the KV cache is silently dropped, suffixes run alone."""
    monkeypatch.setattr(hfcompat, "cache_kwargs", lambda module, cache: {})


@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_check_runs_in_every_fast_run_and_is_recorded(positions):
    model, tok, vecs, items = _setup()
    res = run_sweep(model, tok, vecs, items, _cfg(positions), progress=False)
    check = res.manifest["engine"]["check"]
    assert check["ran"] and check["items"] == 4 and check["dtype"] == "float32"
    assert check["layer"] in (0, 1, 3) and check["multiplier"] == -2.0  # the largest |m|
    assert 0 <= check["max_abs_diff"]["score"] <= 1e-5 and check["tolerance"] == CHECK_TOL["float32"]


def test_check_also_runs_on_an_architecture_the_tests_do_not_cover():
    model, tok, vecs, items = _setup()
    model.config.model_type = "tinyllama_custom"
    register_architecture("tinyllama_custom", "model.layers")
    res = run_sweep(model, tok, vecs, items, _cfg(), progress=False)
    assert res.manifest["engine"]["check"]["ran"]


@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_a_lost_prefix_cache_stops_the_run(monkeypatch, tmp_path, positions):
    model, tok, vecs, items = _setup()
    _no_prefix_cache(monkeypatch)
    with pytest.raises(SteerscaleError) as e:
        run_sweep(model, tok, vecs, items, _cfg(positions), out_dir=tmp_path / "run", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "fast engine check failed" in msg and "--engine naive" in msg
    assert "'llama'" in msg and "transformers " in msg and "torch " in msg and "differ from the naive" in msg
    assert not [p for p in (tmp_path / "run" / "points").rglob("*") if p.is_file()], "a wrong point was stored"


def test_wrong_steering_stops_the_run_no_fallback(monkeypatch):
    """A stand-in layer that gets the steered residual wrong (the old test's fallback case) now stops the run."""
    model, tok, vecs, items = _setup("qwen2")
    monkeypatch.setattr(steering.StandIn, "forward",
                        lambda self, h, *a, **k: h if self.value is None else 0 * self.value)
    with pytest.raises(SteerscaleError, match=r"fast engine check failed.*layer \d, multiplier -2.*'qwen2'"):
        run_sweep(model, tok, vecs, items, _cfg(), progress=False)


def test_baseline_only_sweep_is_checked_too(monkeypatch):
    model, tok, vecs, items = _setup()
    res = run_sweep(model, tok, vecs, items, _cfg("instruction_end", multipliers=[0]), progress=False)
    assert res.manifest["engine"]["check"]["ran"] and res.manifest["engine"]["check"]["layer"] is None
    _no_prefix_cache(monkeypatch)
    with pytest.raises(SteerscaleError, match="at unsteered"):
        run_sweep(model, tok, vecs, items, _cfg("instruction_end", multipliers=[0]), progress=False)


def test_an_error_on_the_first_batch_is_one_line_suggesting_naive(monkeypatch):
    model, tok, vecs, items = _setup()

    def boom(self, *a, **k):
        raise RuntimeError("stand-in does not fit\nsecond line")

    monkeypatch.setattr(partial.PartialRunner, "tail", boom)
    with pytest.raises(SteerscaleError) as e:
        run_sweep(model, tok, vecs, items, _cfg(), progress=False)
    assert "\n" not in str(e.value) and "RuntimeError: stand-in does not fit" in str(e.value)
    assert "--engine naive" in str(e.value)


def test_cli_exits_2_with_the_check_message(monkeypatch, tmp_path, capsys):
    model = save_tiny_model(tmp_path / "model", layers=3, hidden=32)
    data = write_dataset(tmp_path / "data.json", 6)
    args = ["sweep", "--model", str(model), "--data", str(data), "--train-data", str(data), "--layers", "0-2",
            "--multipliers=-1,0,1", "--out", str(tmp_path / "run")]
    _no_prefix_cache(monkeypatch)
    assert cli.main(args + ["--positions", "instruction_end"]) == 2
    err = [l[l.index("steerscale "):] for l in re.split(r"[\r\n]", capsys.readouterr().err) if "steerscale " in l]
    assert len(err) == 1 and err[0].startswith("steerscale sweep: error: fast engine check failed")
    assert "--engine naive" in err[0] and "Traceback" not in err[0]
    # the suggested way out works
    assert cli.main(args + ["--positions", "instruction_end", "--engine", "naive", "--out", str(tmp_path / "n")]) == 0


def test_half_precision_runs_pass_their_check():
    model, tok, vecs, items = _setup()
    res = run_sweep(model.to(torch.bfloat16), tok, vecs, items, _cfg(), progress=False)
    check = res.manifest["engine"]["check"]
    assert check["dtype"] == "bfloat16" and check["tolerance"] == CHECK_TOL["bfloat16"]


def test_maxdiff_treats_nan_honestly():
    a, b = np.array([0.5, np.nan, 0.2]), np.array([0.5, np.nan, 0.25])
    assert _maxdiff(a, b) == pytest.approx(0.05)
    assert _maxdiff(np.array([0.5, np.nan]), np.array([0.5, 0.4])) == np.inf
