"""The engine contract: run_sweep/run_unit reach engines only through ``Engine``, and the model surgery the
fast engine uses (partial forward passes, the head hook, Steering's positions) lives in steering.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TinyTokenizer, make_model
from steerscale import engines
from steerscale.core.batching import pad_left
from steerscale.core.prompts import encode_items
from steerscale.engines import ENGINES, get_engine
from steerscale.engines.base import Engine
from steerscale.engines.naive import NaiveEngine, naive_scores
from steerscale.errors import SteerscaleError
from steerscale.core.evaluate import ab_scores, last_logits
from steerscale.core.models import get_layers, model_info
from steerscale.core.steering import StandIn, capture, contiguous_head, partial_forward, steer
from steerscale.config import SweepConfig
from steerscale.sweep.run import run_sweep
from builders import FIELDS, varied_items

pytestmark = pytest.mark.usefixtures("one_thread")


class CountingEngine(Engine):
    """A third engine that only implements the contract's one abstract method (the naive arithmetic)."""

    name = "counting"

    def __init__(self, progress: bool = False):
        super().__init__(progress)
        self.calls: list[tuple[int, tuple]] = []

    def score_layer(self, model, tokenizer, vectors, encoded, layer, multipliers, config):
        self.calls.append((layer, tuple(multipliers)))
        return naive_scores(model, tokenizer, vectors, encoded, layer, multipliers, config)


@pytest.fixture
def counting_registered(monkeypatch):
    monkeypatch.setitem(ENGINES, "counting", CountingEngine)
    made = []
    real = CountingEngine.__init__

    def init(self, *a, **k):
        real(self, *a, **k)
        made.append(self)

    monkeypatch.setattr(CountingEngine, "__init__", init)
    return made


def test_a_registered_engine_runs_through_the_contract(counting_registered, tmp_path):
    """A new engine is one class and one ENGINES entry: run_sweep validates the name, stores every point the
    engine yields, and its tables equal the naive engine's bit for bit (same arithmetic)."""
    model = make_model("llama")
    info = model_info(model, name="tiny")
    vecs = torch.randn(info.n_layers, info.hidden_size)
    items = varied_items(5)
    out = {}
    for name in ("naive", "counting"):
        cfg = SweepConfig(layers=[1, 3], multipliers=[-1, 0, 2], template="plain", batch_size=2, engine=name,
                          n_bootstrap=20)
        out[name] = run_sweep(model, TinyTokenizer(), vecs, items, cfg, info=info, out_dir=tmp_path / name,
                              progress=False)
    assert out["counting"].rows == out["naive"].rows and out["counting"].aggregate == out["naive"].aggregate
    (eng,) = counting_registered
    assert sorted(eng.calls) == [(1, (-1.0,)), (1, (2.0,)), (3, (-1.0,)), (3, (2.0,))]  # one point per call
    assert out["counting"].manifest["engine"] == {"name": "counting"}
    # resumed: every point is in the store, so the engine is asked for nothing
    cfg = SweepConfig(layers=[1, 3], multipliers=[-1, 0, 2], template="plain", batch_size=2, engine="counting",
                      n_bootstrap=20)
    again = run_sweep(model, TinyTokenizer(), vecs, items, cfg, info=info, out_dir=tmp_path / "counting",
                      progress=False)
    assert counting_registered[-1].calls == [] and again.rows == out["counting"].rows


def test_get_engine_names_and_errors():
    assert list(ENGINES) == ["fast", "naive"] and isinstance(get_engine("naive"), NaiveEngine)
    assert get_engine("fast", progress=True).progress is True
    with pytest.raises(SteerscaleError, match=r"^engine 'slow': expected one of fast, naive$"):
        get_engine("slow")
    with pytest.raises(SteerscaleError, match="engine 'slow'"):
        SweepConfig(engine="slow").validate(4)


def test_fast_layer_groups_share_passes_naive_goes_point_by_point():
    layers = list(range(30))
    groups = get_engine("fast").layer_groups(layers)
    assert [len(g) for g in groups] == [6] * 5 and sum(groups, []) == layers
    assert [len(g) for g in get_engine("fast").layer_groups([0, 1, 2])] == [1, 1, 1]
    assert get_engine("naive").layer_groups([4, 2]) == [[4], [2]]


def test_points_yields_every_requested_point_in_order():
    model, tok = make_model("qwen2"), TinyTokenizer()
    vecs = torch.randn(4, 32)
    enc = encode_items(tok, varied_items(4), "plain")
    cfg = SweepConfig(template="plain", batch_size=2, positions="instruction_end").validate(4)
    todo = {2: [-1.0, 1.5], 0: [1.5]}
    for name in ("fast", "naive"):
        got = list(get_engine(name).points(model, tok, vecs, enc, cfg, todo))
        assert [(l, m) for l, m, _ in got] == [(2, -1.0), (2, 1.5), (0, 1.5)]
        for l, m, s in got:
            ref = naive_scores(model, tok, vecs, enc, l, [m], cfg)[m]
            for f in FIELDS:
                assert np.max(np.abs(getattr(s, f) - getattr(ref, f))) <= 1e-5
    eng = get_engine("fast")
    list(eng.points(model, tok, vecs, enc, cfg, todo))
    assert eng.stats.prepare_s > 0 and eng.describe()["check"]["ran"]


def test_steering_is_given_the_batch():
    """Steering.for_batch: instruction_end starts at each row's instruction end; neutral text everywhere."""
    b = pad_left([[5, 6, 7], [5, 6, 7, 8, 9]], 0, [1, 2])
    model = make_model("llama")
    vec = torch.randn(4, 32)
    with steer(model, vec, [1], 1.0, positions="instruction_end") as s:
        assert s.for_batch(b) is s and s.start.tolist() == [3, 2]  # padded coordinates
        s.for_batch(b, instruction=False)
        assert s.start.tolist() == [0, 0]
    with steer(model, vec, [1], 1.0, positions="all") as s:
        s.for_batch(b)
        assert s.start is None
    with steer(model, vec, [1], 1.0, positions="instruction_end") as s:
        with pytest.raises(SteerscaleError, match="for_batch"):
            model(**b.model_inputs(), use_cache=False)


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt2"])
def test_partial_forward_from_a_layer_equals_the_full_pass(arch):
    model = make_model(arch)
    layers = get_layers(model)
    before = list(layers)
    b = pad_left([[3, 4, 5, 6], [7, 8]], 0)
    inputs = b.model_inputs()
    with torch.no_grad():
        full = last_logits(model, inputs)
        with capture(model, position=slice(None)) as store:
            model(**inputs, use_cache=False)
        h1 = store[1][0]
        as_tuple = engines.hfcompat.layer_returns_tuple(engines.partial.base_model(model), layers, "cpu")
        with partial_forward(layers, start_at=2, residual=h1, as_tuple=as_tuple):
            assert isinstance(layers[0], StandIn) and isinstance(layers[1], StandIn) and layers[2] is before[2]
            part = last_logits(model, inputs)
        assert list(layers) == before
        torch.testing.assert_close(part, full, atol=1e-5, rtol=1e-5)
        # stop_after: the layers after it pass their input through, so the last hidden state is layer 1's
        with partial_forward(layers, stop_after=1, as_tuple=as_tuple):
            assert isinstance(layers[3], StandIn) and layers[0] is before[0]
        assert list(layers) == before
        with pytest.raises(RuntimeError, match="cached residual"):
            with partial_forward(layers, start_at=1, residual=h1[:1], as_tuple=as_tuple):
                last_logits(model, inputs)
        assert list(layers) == before, "layers are put back after an error"


def test_contiguous_head_same_logits_and_removed():
    model = make_model("llama")
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]])
    with torch.no_grad():
        plain = model(input_ids=ids, logits_to_keep=1).logits
        with contiguous_head(model):
            assert len(model.get_output_embeddings()._forward_pre_hooks) == 1
            hooked = model(input_ids=ids, logits_to_keep=1).logits
    assert len(model.get_output_embeddings()._forward_pre_hooks) == 0
    torch.testing.assert_close(hooked, plain, atol=1e-6, rtol=1e-6)


def test_ab_scores_with_instruction_end_steering_moves_only_from_the_instruction_end():
    """The evaluate path hands every batch to Steering: scores differ from unsteered, and equal the fast engine's."""
    model, tok = make_model("qwen2"), TinyTokenizer()
    torch.manual_seed(0)
    vecs = torch.randn(4, 32) * 3
    enc = encode_items(tok, varied_items(5), "plain")
    cfg = SweepConfig(template="plain", batch_size=2, positions="instruction_end").validate(4)
    base = ab_scores(model, tok, enc, 2)
    with steer(model, vecs, [1], 2.0, positions="instruction_end") as s:
        steered = ab_scores(model, tok, enc, 2, steering=s)
    assert np.max(np.abs(steered.score - base.score)) > 1e-3
    fast = get_engine("fast")(model, tok, vecs, enc, 1, [2.0], cfg)[2.0]
    assert np.max(np.abs(fast.score - steered.score)) <= 1e-5


def test_progress_is_weighted_by_each_engines_cost():
    """The sweep's progress bar counts cost, not layers: with the fast engine a point at layer 0 reruns every later
    layer and one at the last layer almost none (docs/cost_model.md), so a per-layer count gives a first ETA that
    is several times too long; the naive engine's points all cost one pass."""
    from steerscale.engines.fast import FastEngine
    from steerscale.engines.naive import NaiveEngine

    fast, naive = FastEngine(), NaiveEngine()
    assert [fast.layer_cost(l, 30) for l in (0, 15, 29)] == [1.0, 0.5, 1 / 30]
    assert {naive.layer_cost(l, 30) for l in range(30)} == {1.0}
    early = sum(fast.layer_cost(l, 30) for l in range(10))
    late = sum(fast.layer_cost(l, 30) for l in range(20, 30))
    assert early > 3.5 * late  # the first third of the layers holds most of the work
