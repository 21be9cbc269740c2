"""70B inside one replica, on a CPU: accelerate's device_map with layers offloaded to disk (a stand-in for
a model split over several devices) keeps the fast engine equal to the naive reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TinyTokenizer, make_model
from steerscale.core.prompts import encode_items
from steerscale.engines.fast import FastEngine
from steerscale.engines.naive import naive_scores as naive_engine
from steerscale.core.models import model_info
from steerscale.config import SweepConfig
from steerscale.sweep.run import run_sweep
from builders import varied_items as make_items

accelerate = pytest.importorskip("accelerate")


def offloaded(tmp_path, arch="llama", split=None):
    """The tiny model with its decoder layers split over 'cpu' and 'disk' (accelerate dispatch_model)."""
    from accelerate import dispatch_model

    model = make_model(arch)
    n = len(model.model.layers)
    dm = {"model.embed_tokens": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    dm.update({f"model.layers.{i}": (split or (lambda i: "disk" if i % 2 else "cpu"))(i) for i in range(n)})
    ref = make_model(arch)  # the same weights, not dispatched
    return dispatch_model(model, device_map=dm, offload_dir=str(tmp_path / "offload")), ref


@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_fast_engine_equals_naive_with_disk_offload(tmp_path, positions, one_thread):
    model, plain = offloaded(tmp_path)
    assert any(getattr(m, "_hf_hook", None) is not None for m in model.model.layers)  # really dispatched
    tok = TinyTokenizer()
    items = make_items(12)
    vecs = torch.randn(4, 32) * 2
    cfg = SweepConfig(layers=[0, 1, 2, 3], multipliers=[-1.0, 0.0, 2.0], positions=positions, batch_size=4,
                      template="llama2")
    enc = encode_items(tok, items, cfg.template, cfg.system)
    eng = FastEngine()
    eng.prepare(model, tok, vecs, enc, cfg, cfg.multipliers)
    for layer in cfg.layers:
        fast = eng(model, tok, vecs, enc, layer, [-1.0, 2.0], cfg)
        naive_off = naive_engine(model, tok, vecs, enc, layer, [-1.0, 2.0], cfg)
        naive_plain = naive_engine(plain, tok, vecs, enc, layer, [-1.0, 2.0], cfg)
        for m in (-1.0, 2.0):
            for k in ("score", "logit_diff", "letter_mass"):
                a, b, c = (getattr(x[m], k) for x in (fast, naive_off, naive_plain))
                assert np.max(np.abs(a - b)) <= 1e-5, (layer, m, k)
                assert np.max(np.abs(b - c)) <= 1e-5, (layer, m, k)
    assert eng.stats.check is not None and eng.stats.check["ran"] and eng.stats.check["max_abs_diff"]["score"] <= 1e-4  # the run-time check ran and passed


@pytest.mark.parametrize("how", ["split", "max_memory"])
def test_sweep_on_offloaded_model_matches_plain(tmp_path, how, one_thread):
    if how == "split":
        model, plain = offloaded(tmp_path, split=lambda i: "disk" if i >= 2 else "cpu")
    else:  # accelerate decides: a CPU budget too small for the model sends the rest to disk
        from accelerate import dispatch_model, infer_auto_device_map

        model, plain = make_model("llama"), make_model("llama")
        dm = infer_auto_device_map(model, max_memory={"cpu": 60_000, "disk": 10**9},
                                   no_split_module_classes=["LlamaDecoderLayer"])
        assert "disk" in dm.values() and "cpu" in dm.values()
        model = dispatch_model(model, device_map=dm, offload_dir=str(tmp_path / "offload"))
    tok, items, vecs = TinyTokenizer(), make_items(10), torch.randn(4, 32) * 2
    cfg = SweepConfig(multipliers=[-1.0, 0.0, 1.0], batch_size=4, template="llama2")
    a = run_sweep(model, tok, vecs, items, cfg, info=model_info(model, name="t"), progress=False)
    b = run_sweep(plain, tok, vecs, items, cfg, info=model_info(plain, name="t"), progress=False)
    assert len(a.rows) == len(b.rows) == 4 * 3 * 10
    assert max(abs(x["score"] - y["score"]) for x, y in zip(a.rows, b.rows)) <= 1e-5
