"""Other behaviours: multi-choice CAA files end to end, cross-behaviour normalisation, cosine, transfer."""

import json

import pytest
import torch

from conftest import TinyTokenizer, make_config, make_model
from steerscale.core.data import load_dataset
from steerscale.errors import SteerscaleError
from steerscale.core.models import model_info
from steerscale.measures.transfer import transfer_effect
from steerscale.config import SweepConfig
from steerscale.sweep.run import run_sweep
from steerscale.core.vectors import (
    SteeringVectors, cosine_table, layer_cosine, map_layers, normalize_across_behaviours, train_vectors,
    transfer_vectors,
)


def test_three_choice_behaviour_file_train_and_sweep(tmp_path):
    recs = []
    for i in range(9):
        letters = "ABC"
        match, other = letters[i % 3], letters[(i + 1) % 3]
        recs.append({"question": f"item {i}: pick one\n\nChoices:\n(A) red\n(B) green\n(C) blue",
                     "answer_matching_behavior": f"({match})", "answer_not_matching_behavior": f"({other})"})
    path = tmp_path / "colour.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs))
    items = load_dataset(path)
    assert items[0].choices == ("A", "B", "C")
    model, tok = make_model("llama"), TinyTokenizer()
    info = model_info(model, name="tiny")
    vecs = train_vectors(model, tok, items[:6], template="plain", info=info, progress=False)
    assert vecs.vectors.shape == (4, 32) and vecs.norms().min() > 0
    res = run_sweep(model, tok, vecs, items[6:], SweepConfig(layers=[1], multipliers=[-2, 0, 2], template="plain",
                                                             n_bootstrap=50), info=info, progress=False)
    assert len(res.rows) == 9
    assert all(0 <= r["score"] <= 1 for r in res.rows)
    assert any(abs(a["delta"]) > 1e-4 for a in res.aggregate if a["multiplier"] != 0)


def test_normalize_across_behaviours():
    torch.manual_seed(0)
    a, b, c = (SteeringVectors(torch.randn(5, 8) * s, {"model": "m"}) for s in (1.0, 3.0, 0.2))
    out = normalize_across_behaviours({"a": a, "b": b, "c": c})
    target = torch.stack([a.norms(), b.norms(), c.norms()]).mean(0)
    for name, orig in (("a", a), ("b", b), ("c", c)):
        torch.testing.assert_close(out[name].norms(), target)
        cos = torch.nn.functional.cosine_similarity(out[name].vectors, orig.vectors, dim=-1)
        torch.testing.assert_close(cos, torch.ones(5))
        assert out[name].meta["normalization"] == "across-behaviours"
    with pytest.raises(SteerscaleError, match="differ in shape"):
        normalize_across_behaviours({"a": a, "x": SteeringVectors(torch.randn(4, 8))})


def test_cosine_tables():
    torch.manual_seed(0)
    v = SteeringVectors(torch.randn(4, 8))
    c = layer_cosine(v)
    torch.testing.assert_close(torch.diag(c), torch.ones(4))
    torch.testing.assert_close(c, c.T)
    w = SteeringVectors(-2 * v.vectors)
    rows = cosine_table({"v": v, "w": w})
    assert len(rows) == (2 * 4) ** 2
    same = [r["cosine"] for r in rows if r["behaviour_a"] == "v" and r["behaviour_b"] == "w" and r["layer_a"] == r["layer_b"]]
    assert same == pytest.approx([-1.0] * 4)
    with pytest.raises(SteerscaleError, match="hidden sizes differ"):
        cosine_table({"v": v, "x": SteeringVectors(torch.randn(4, 6))})


def test_layer_maps_and_transfer_vectors():
    assert map_layers(4, 4, "same") == [0, 1, 2, 3]
    assert map_layers(30, 4) == [0, 10, 19, 29]
    assert map_layers(4, 7) == [0, 1, 1, 2, 2, 3, 3]  # half rounds up
    with pytest.raises(SteerscaleError, match="same"):
        map_layers(30, 24, "same")
    v = SteeringVectors(torch.arange(4 * 8, dtype=torch.float32).view(4, 8), {"model": "src"})
    t = transfer_vectors(v, n_layers=7, hidden_size=8)
    assert t.vectors.shape == (7, 8) and torch.equal(t.vectors[-1], v.vectors[-1])
    assert t.meta["transferred_from"] == "src" and t.meta["source_layers"] == map_layers(4, 7)
    with pytest.raises(SteerscaleError, match="same hidden size"):
        transfer_vectors(v, n_layers=4, hidden_size=16)


def _deep_llama(n_layers, seed=1, hidden=32):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = make_config("llama")
    cfg.num_hidden_layers = n_layers
    cfg.hidden_size = hidden
    cfg.head_dim = hidden // cfg.num_attention_heads
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0, 0.2)
    return model


def test_transfer_effect_between_models():
    src, tgt, tok = make_model("llama"), _deep_llama(6), TinyTokenizer()
    torch.manual_seed(0)
    v = SteeringVectors(torch.randn(4, 32))
    prompts = ["how to do a thing", "another request"]
    r = transfer_effect((src, tok), (tgt, tok), v, [1, 3], 3.0, prompts, how="relative", template="plain")
    assert r["target_layers"] == [2, 5] and r["source_n_layers"] == 4 and r["target_n_layers"] == 6
    assert r["effect_source"] != 0 and r["ratio"] == pytest.approx(r["effect_target"] / r["effect_source"])
    same = transfer_effect((src, tok), (make_model("llama", seed=3), tok), v, [2], 3.0, prompts, how="same",
                           template="plain")
    assert same["target_layers"] == [2]
    with pytest.raises(SteerscaleError, match="'same'"):
        transfer_effect((src, tok), (tgt, tok), v, [1], 3.0, prompts, how="same", template="plain")
    with pytest.raises(SteerscaleError, match="hidden size"):
        transfer_effect((src, tok), (_deep_llama(4, hidden=16), tok), SteeringVectors(torch.randn(4, 32)), [1], 1.0,
                        prompts, template="plain")
