"""The fast sweep engine gives the naive engine's numbers (float32, 1e-5) on every architecture, with less work."""

import numpy as np
import pytest
import torch

from steerscale.cli import build_parser
from steerscale.core.prompts import encode_items
from steerscale.core.data import parse_item
from steerscale.core.evaluate import ab_scores
from steerscale.engines import ENGINES, get_engine
from steerscale.engines.base import EngineStats
from steerscale.engines.fast import FastEngine, sweep_points
from steerscale.engines.naive import NaiveEngine
from steerscale.engines.naive import naive_scores as naive_engine
from steerscale.core.models import get_layers, model_info
from steerscale.config import SweepConfig
from steerscale.sweep.run import run_sweep
from builders import FIELDS, varied_items

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def assert_same(a, b, where="", tol=None):
    """Scores and letter mass (in [0, 1]) to TOL absolute; logit_diff to TOL relative to its size (a log-odds of 20
    carries float32 rounding of ~1e-5 through one more softmax), never looser than TOL absolute below 1."""
    for f in FIELDS:
        d = float(np.max(np.abs(getattr(a, f) - getattr(b, f))))
        scale = max(1.0, float(np.max(np.abs(getattr(b, f))))) if f == "logit_diff" else 1.0
        t = (tol or {}).get(f, TOL) * scale
        assert d <= t, f"{where} {f}: max difference {d:.2e} (tolerance {t:.2e})"


@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_fast_matches_naive_every_layer_and_multiplier(tiny, positions):
    model, tok, info = tiny
    torch.manual_seed(3)
    vecs = torch.randn(info.n_layers, info.hidden_size)
    enc = encode_items(tok, varied_items(5), "plain")
    cfg = SweepConfig(positions=positions, template="plain", batch_size=3).validate(info.n_layers)
    mults = [-1.0, 2.0]
    stats = EngineStats()
    res, base = sweep_points(model, tok, vecs, enc, list(range(info.n_layers)), mults, positions, 3, stats=stats)
    assert_same(base, ab_scores(model, tok, enc, 3), "baseline")
    for layer in range(info.n_layers):
        ref = naive_engine(model, tok, vecs, enc, layer, mults, cfg)
        for m in mults:
            assert_same(res[(layer, m)], ref[m], f"{info.model_type} {positions} layer {layer} m {m}")
    assert all(type(l).__name__ != "StandIn" for l in get_layers(model)), "a decoder layer was not restored"
    if positions == "all":  # every item starts with "Input: q": those 8 tokens ran once per point, shared
        assert stats.extra["shared_prefix"] == len("Input: q")
    # work actually done, against the naive engine's (padded) layer x token count
    naive = sum(len(b) * max(len(enc[i].prefix_ids) for i in b) for b in (range(0, 3), range(3, 5)))
    naive *= info.n_layers * (1 + info.n_layers * len(mults))
    assert stats.layer_tokens < (0.75 if positions == "all" else 0.5) * naive


def test_run_sweep_fast_tables_equal_naive(tmp_path):
    from conftest import TinyTokenizer, make_model

    model = make_model("qwen2")
    info = model_info(model, name="tiny")
    vecs = torch.randn(info.n_layers, info.hidden_size)
    items = varied_items(6)
    for positions in ("all", "instruction_end"):
        out = {}
        for engine in ("naive", "fast"):
            cfg = SweepConfig(layers=[0, 2, 3], multipliers=[-2, 0, 1], positions=positions, template="plain",
                              batch_size=4, engine=engine, n_bootstrap=50)
            out[engine] = run_sweep(model, TinyTokenizer(), vecs, items, cfg, info=info, progress=False)
        a, b = out["naive"], out["fast"]
        assert len(a.rows) == len(b.rows) == 3 * 3 * 6
        for ra, rb in zip(a.rows, b.rows):
            assert {k: v for k, v in ra.items() if k not in FIELDS} == {k: v for k, v in rb.items() if k not in FIELDS}
            for f in FIELDS:
                assert abs(ra[f] - rb[f]) <= TOL
        assert [r["multiplier"] for r in a.aggregate] == [r["multiplier"] for r in b.aggregate]
        assert b.manifest["config"]["engine"] == "fast" and b.manifest["engine"]["layer_tokens"] > 0


def test_default_engine_is_fast_and_cli_lists_engines():
    assert SweepConfig().engine == "fast"
    assert isinstance(get_engine("fast"), FastEngine) and isinstance(get_engine("naive"), NaiveEngine)
    assert list(ENGINES) == ["fast", "naive"]
    sub = build_parser()._subparsers._group_actions[0].choices["sweep"]
    help_text = sub.format_help()
    assert "{fast,naive}" in help_text
    assert sub.parse_args(["--out", "x"]).engine == "fast"


def test_engine_contract_single_layer_calls():
    """Called one layer at a time without prepare(), the engine still returns exact scores."""
    from conftest import TinyTokenizer, make_model

    model = make_model("gemma2")
    info = model_info(model)
    vecs = torch.randn(info.n_layers, info.hidden_size)
    tok = TinyTokenizer()
    enc = encode_items(tok, varied_items(5), "plain")
    cfg = SweepConfig(layers=[1, 3], positions="instruction_end", template="plain", batch_size=2).validate(info.n_layers)
    eng = FastEngine()
    for layer in (3, 1):
        got = eng(model, tok, vecs, enc, layer, [1.5], cfg)
        assert_same(got[1.5], naive_engine(model, tok, vecs, enc, layer, [1.5], cfg)[1.5])
    assert_same(eng.baseline(model, tok, vecs, enc, cfg), ab_scores(model, tok, enc, 2))


def test_layers_restored_after_an_error():
    from conftest import TinyTokenizer, make_model

    model = make_model("llama")
    before = list(get_layers(model))
    vecs = torch.randn(4, 32)
    enc = encode_items(TinyTokenizer(), varied_items(3), "plain")

    def boom(*a, **k):
        raise RuntimeError("boom")

    model.lm_head.forward = boom
    with pytest.raises(RuntimeError, match="boom"):
        sweep_points(model, TinyTokenizer(), vecs, enc, [1], [1.0])
    assert list(get_layers(model)) == before


def test_shared_prefix_off_is_bit_for_bit_naive():
    """Without the shared prefix and length sorting, all-positions tails are the naive engine's operations."""
    from conftest import TinyTokenizer, make_model

    model, tok = make_model("llama"), TinyTokenizer()
    vecs = torch.randn(4, 32)
    enc = encode_items(tok, varied_items(5), "plain")
    cfg = SweepConfig(template="plain", batch_size=3).validate(4)
    stats = EngineStats()
    res, base = sweep_points(model, tok, vecs, enc, [1, 2], [-1.0, 1.0], "all", 3, stats=stats, share_prefix=False)
    assert stats.extra["shared_prefix"] == 0
    zero = {f: 0.0 for f in FIELDS}
    assert_same(base, ab_scores(model, tok, enc, 3), "baseline", zero)
    for layer in (1, 2):
        ref = naive_engine(model, tok, vecs, enc, layer, [-1.0, 1.0], cfg)
        for m in (-1.0, 1.0):
            assert_same(res[(layer, m)], ref[m], f"layer {layer} m {m}", zero)


def test_no_shared_prefix_when_a_sliding_window_is_shorter_than_the_prompts():
    """A sliding-window cache cannot be extended past its window: the engine then runs whole prompts."""
    from conftest import TinyTokenizer, make_model

    model = make_model("mistral", sliding_window=12)  # prompts are 25-34 tokens
    tok = TinyTokenizer()
    vecs = torch.randn(4, 32)
    enc = encode_items(tok, varied_items(5), "plain")
    cfg = SweepConfig(template="plain", batch_size=3).validate(4)
    stats = EngineStats()
    res, _ = sweep_points(model, tok, vecs, enc, [1], [2.0], "all", 3, stats=stats)
    assert stats.extra["shared_prefix"] == 0
    assert_same(res[(1, 2.0)], naive_engine(model, tok, vecs, enc, 1, [2.0], cfg)[2.0], "sliding window")


def test_bfloat16_runs_close_to_float32():
    from conftest import TinyTokenizer, make_model

    model = make_model("llama")
    tok = TinyTokenizer()
    vecs = torch.randn(4, 32) * 0.3
    enc = encode_items(tok, varied_items(4), "plain")
    r32, b32 = sweep_points(model, tok, vecs, enc, [0, 2], [-1.0, 1.0], "all", 2)
    model.to(torch.bfloat16)
    r16, b16 = sweep_points(model, tok, vecs, enc, [0, 2], [-1.0, 1.0], "all", 2)
    for k in r32:
        assert np.isfinite(r16[k].score).all()
        assert np.max(np.abs(r16[k].score - r32[k].score)) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_fast_matches_naive_on_smollm2(positions):
    """The bundled SmolLM2-135M-Instruct (chat template, built-in data): a few layers and items."""
    from steerscale import load_dataset, load_model
    from steerscale.core.vectors import SteeringVectors

    global _SMOL
    if "_SMOL" not in globals():
        _SMOL = load_model("smollm2-135m")
    model, tok, info = _SMOL
    torch.manual_seed(0)
    vecs = SteeringVectors(torch.randn(info.n_layers, info.hidden_size) * 2.0)
    items = load_dataset("refusal-test", limit=4)
    enc = encode_items(tok, items, "chat")
    layers, mults = [0, 15, 29], [-1.0, 1.0]
    cfg = SweepConfig(layers=layers, multipliers=mults, positions=positions, batch_size=2).validate(info.n_layers)
    stats = EngineStats()
    res, base = sweep_points(model, tok, vecs, enc, layers, mults, positions, 2, stats=stats)
    if positions == "all":  # the chat template's system turn, common to every item, ran once per point
        assert stats.extra["shared_prefix"] == 24
    # The suffix runs against a KV cache (the shared prefix; in instruction-end mode the unsteered
    # prompt): other matmul shapes, other float32 rounding. logit_diff, a difference of
    # log-probabilities of magnitude ~1-10, then differs by up to ~2e-5.
    tol = {"logit_diff": 5e-5}
    assert_same(base, ab_scores(model, tok, enc, 2), "baseline", tol)
    moved = 0.0
    for layer in layers:
        ref = naive_engine(model, tok, vecs, enc, layer, mults, cfg)
        for m in mults:
            assert_same(res[(layer, m)], ref[m], f"smollm2 {positions} layer {layer} m {m}", tol)
            moved = max(moved, float(np.max(np.abs(ref[m].score - base.score))))
    assert moved > 1e-3  # the vectors do change the scores, so the comparison means something
