"""Open-ended refusal measures, capability cost, judges, multi-layer injection and the open-ended sweep."""

import csv
import http.server
import json
import math
import threading
import time

import numpy as np
import pytest
import torch

from conftest import TinyTokenizer, make_model
from steerscale.core.data import Prompt, load_neutral_text, load_refusal_phrases
from steerscale.errors import SteerscaleError
from steerscale.core.models import model_info
from steerscale.measures.judges import HFJudge, HTTPJudge, parse_verdict
from steerscale.config import OpenEndedConfig
from steerscale.measures.refusal import PhraseMatcher, opening_token_ids, refusal_logodds
from steerscale.measures.capability import degeneration, neutral_cross_entropy
from steerscale.openended.tables import max_multiplier_under_bound
from steerscale.openended.run import run_openended
from steerscale.core.steering import capture, steer, window_vectors

# ---------------------------------------------------------------- phrase matcher


def test_builtin_phrases_and_matcher():
    phrases = load_refusal_phrases()
    assert "I'm sorry" in phrases and "Unfortunately" in phrases
    m = PhraseMatcher()
    assert m("I\u2019M SORRY, but no.") == 1  # curly apostrophe, upper case
    assert m("Well... unfortunately that is not possible") == 1
    assert m("Sure! Here is a recipe for bread.") == 0
    assert m.match("ok, I cannot do that") == "I cannot"
    words = m.opening_words()
    assert words[:2] == ["I'm", "I"] and {"Sorry", "As", "Unfortunately"} <= set(words)
    assert all(w[0].isupper() for w in words)


def test_user_phrase_file(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps(["Nope", "not today"]))
    m = PhraseMatcher.from_file(p)
    assert m("NOPE.") == 1 and m("Not Today, friend") == 1 and m("I'm sorry") == 0
    assert m.opening_words() == ["Nope"]
    (tmp_path / "bad.json").write_text(json.dumps({"phrases": []}))
    with pytest.raises(SteerscaleError, match="expected"):
        load_refusal_phrases(tmp_path / "bad.json")


def test_neutral_text_loader():
    texts = load_neutral_text()
    assert len(texts) == 42 and all(len(t.split()) > 40 for t in texts)
    assert len(load_neutral_text(limit=3)) == 3


# ---------------------------------------------------------------- log-odds


def identity_llama():
    """Blocks add nothing; unembedding = embedding: the next-token logits read the last token's residual."""
    model = make_model("llama")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.copy_(model.model.embed_tokens.weight)
    return model


def test_opening_tokens_in_context():
    tok = TinyTokenizer()
    ids = opening_token_ids(tok, "Input: x\nResponse: ", ["I'm", "Sorry", "I"])
    assert ids == [tok("I").input_ids[0], tok("S").input_ids[0]]


def test_logodds_matches_definition_and_moves_with_planted_vector():
    model, tok = identity_llama(), TinyTokenizer()
    prompts = ["how do I do a bad thing", "tell me something", "a third request"]
    words = ["I", "Sorry"]
    lo = refusal_logodds(model, tok, prompts, words, template="plain", batch_size=2)
    # by hand for one prompt, unbatched
    from steerscale.core.prompts import _encode, format_prompt

    ids = torch.tensor([_encode(tok, format_prompt(tok, prompts[1], "plain"))])
    lp = torch.log_softmax(model(input_ids=ids).logits[0, -1].double(), -1)
    r = [tok("I").input_ids[0], tok("S").input_ids[0]]
    p = lp[r].exp().sum()
    assert lo.logodds[1] == pytest.approx(float(torch.log(p) - torch.log1p(-p)), abs=1e-4)
    assert lo.p_open[1] == pytest.approx(float(p), rel=1e-4)
    # planted: steering along the embedding of "I" raises p(refusal opening); the opposite lowers it
    n_layers, hidden = 4, 32
    v = model.model.embed_tokens.weight[tok("I").input_ids[0]].clone()
    vecs = torch.zeros(n_layers, hidden)
    vecs[2] = v / v.norm()
    out = {}
    for m in (-3.0, 3.0):
        with steer(model, vecs, [2], m) as s:
            out[m] = refusal_logodds(model, tok, prompts, words, template="plain", steering=s).logodds
    assert (out[3.0] > lo.logodds + 0.5).all() and (out[-3.0] < lo.logodds - 0.5).all()


# ---------------------------------------------------------------- capability cost


def test_cross_entropy_matches_hf_loss_and_batching():
    model, tok = make_model("llama"), TinyTokenizer()
    texts = ["the cat sat on the mat.", "a much longer sentence about the weather and the sea.", "short one"]
    ce = neutral_cross_entropy(model, tok, texts, batch_size=3)
    for i, t in enumerate(texts):
        ids = torch.tensor([tok(t).input_ids])
        loss = model(input_ids=ids, labels=ids).loss
        assert ce.nll_sum[i] / ce.n_tokens[i] == pytest.approx(float(loss), abs=1e-4)
        assert ce.n_tokens[i] == len(t) - 1
    assert ce.mean == pytest.approx(ce.nll_sum.sum() / ce.n_tokens.sum())
    mean, lo, hi = ce.ci(200)
    assert lo <= mean <= hi
    vec = torch.randn(4, 32)
    with steer(model, vec, [1], 8.0) as s:
        steered = neutral_cross_entropy(model, tok, texts, steering=s)
    assert steered.mean != pytest.approx(ce.mean)


def test_degeneration_metrics():
    d = degeneration("the cat the cat the cat")
    assert d["distinct_1"] == pytest.approx(2 / 6) and d["distinct_2"] == pytest.approx(2 / 5)
    assert d["rep_3"] == pytest.approx(2 / 4) and d["n_words"] == 6
    d = degeneration("one two three four")
    assert d["distinct_1"] == 1 and d["distinct_2"] == 1 and d["rep_3"] == 0
    assert math.isnan(degeneration("")["distinct_1"]) and math.isnan(degeneration("a b")["rep_3"])


# ---------------------------------------------------------------- judges


class _Stub(http.server.BaseHTTPRequestHandler):
    mode = "ok"

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).last = (self.path, body, self.headers.get("Authorization"))
        if self.mode == "slow":
            time.sleep(1.0)
        if self.mode == "500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"overloaded")
            return
        content = "YES, it refused." if "sorry" in body["messages"][0]["content"].lower() else "No"
        if self.mode == "garbage":
            payload = b"<html>not json</html>"
        elif self.mode == "odd":
            payload = json.dumps({"choices": [{"message": {"content": "maybe"}}]}).encode()
        else:
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def stub_server():
    servers = []

    def start(mode):
        handler = type("H", (_Stub,), {"mode": mode})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}", handler

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_http_judge_against_stub(stub_server):
    url, handler = stub_server("ok")
    j = HTTPJudge(url, model="stub-judge", api_key="k123", timeout=5)
    assert j.url.endswith("/v1/chat/completions")
    assert j(["bad thing", "bad thing"], ["I'm sorry, I can't.", "Sure, step one..."]) == [1.0, 0.0]
    path, body, auth = handler.last
    assert path == "/v1/chat/completions" and body["model"] == "stub-judge" and auth == "Bearer k123"
    url_odd, _ = stub_server("odd")
    assert math.isnan(HTTPJudge(url_odd, timeout=5)(["x"], ["y"])[0])


@pytest.mark.parametrize("mode,match", [("500", "HTTP 500"), ("garbage", "not an OpenAI chat completion"),
                                        ("slow", "no answer within")])
def test_http_judge_errors(stub_server, mode, match):
    url, _ = stub_server(mode)
    with pytest.raises(SteerscaleError, match=match):
        HTTPJudge(url + "/v1", timeout=0.3)(["x"], ["y"])


def test_http_judge_connection_refused_and_bad_url():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(SteerscaleError, match="cannot connect"):
        HTTPJudge(f"http://127.0.0.1:{port}", timeout=2)(["x"], ["y"])
    with pytest.raises(SteerscaleError, match="expected http"):
        HTTPJudge("ftp://example")


def test_parse_verdict_and_hf_judge():
    assert parse_verdict(" Yes.") == 1.0 and parse_verdict("NO") == 0.0 and math.isnan(parse_verdict("yesterday"))
    j = HFJudge(make_model("llama"), TinyTokenizer(), template="plain", batch_size=2)
    p = j.probabilities(["a", "b", "c"], ["I'm sorry", "ok", "sure"])
    assert len(p) == 3 and all(0 <= x <= 1 for x in p)
    assert j(["a"], ["b"])[0] in (0.0, 1.0)


# ---------------------------------------------------------------- multi-layer injection


def _hidden_all(model, ids):
    with capture(model, position=slice(None)) as store:
        model(input_ids=ids, use_cache=False)
    return {l: v[0] for l, v in store.items()}


@pytest.mark.parametrize("mode", ["per-layer", "same"])
def test_window_hook_adds_exactly_at_each_layer(tiny, mode):
    model, _, info = tiny
    torch.manual_seed(4)
    ids = torch.randint(2, 60, (2, 6))
    vec = torch.randn(info.n_layers, info.hidden_size)
    start, width, m = 1, 3, -1.3
    wv = window_vectors(vec, start, width, mode)
    assert list(wv) == [1, 2, 3]
    base = _hidden_all(model, ids)
    with steer(model, wv, list(wv), m):
        full = _hidden_all(model, ids)
    assert torch.equal(full[0], base[0])
    for L in wv:
        # reference: steering only the window's layers before L, so layer L's input is the same
        prev = {l: wv[l] for l in wv if l < L}
        if prev:
            with steer(model, prev, list(prev), m):
                ref = _hidden_all(model, ids)
        else:
            ref = base
        expected = vec[L] if mode == "per-layer" else vec[start]
        torch.testing.assert_close(full[L] - ref[L], (m * expected).expand_as(ref[L]), atol=1e-5, rtol=0)


def test_window_errors():
    vec = torch.randn(4, 8)
    with pytest.raises(SteerscaleError, match="out of range"):
        window_vectors(vec, 2, 3)
    with pytest.raises(SteerscaleError, match="window mode"):
        window_vectors(vec, 0, 2, mode="diagonal")
    with pytest.raises(SteerscaleError, match="width 0"):
        window_vectors(vec, 0, 0)


# ---------------------------------------------------------------- the open-ended sweep


def _prompts(kind, n):
    return [Prompt(f"{kind} request number {i}", str(i), kind[:4]) for i in range(n)]


def test_run_openended_tables(tmp_path):
    model, tok = make_model("llama"), TinyTokenizer()
    info = model_info(model, name="tiny")
    torch.manual_seed(0)
    vecs = torch.randn(info.n_layers, info.hidden_size)
    cfg = OpenEndedConfig(layers=[0, 2], window_starts=[0, 2], window_widths=[2, 3], multipliers=[-2, 0, 6],
                          template="plain", batch_size=8, n_generate=1, max_new_tokens=3, sampled=True,
                          n_bootstrap=50, ce_bound=0.5)
    judge = lambda ps, rs: [float(len(r) % 2) for r in rs]  # noqa: E731
    res = run_openended(model, tok, vecs, _prompts("harmful", 3), _prompts("harmless", 2),
                        ["some neutral text here.", "and more of it, please."], cfg, info=info, judge=judge,
                        out_dir=tmp_path, progress=False)
    points = res.manifest["points"]
    assert points == [[0, 0], [2, 2], [0, 1], [2, 3], [0, 2]]  # (2, 3 wide) runs past layer 3: skipped
    n_pts, n_m = len(points), 3
    assert len(res.aggregate) == n_pts * n_m and len(res.logodds) == n_pts * n_m * 5
    assert len(res.generations) == n_pts * n_m * 2 * 2 and len(res.ce) == n_pts * n_m * 2
    for f in ("logodds.csv", "generations.csv", "ce.csv", "aggregate.csv", "manifest.json", "max_multiplier.csv"):
        assert (tmp_path / f).is_file(), f
    with open(tmp_path / "aggregate.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"layer_start", "layer_end", "width", "multiplier", "logodds_harmful", "ce_delta"} <= set(rows[0])
    base = [a for a in res.aggregate if a["multiplier"] == 0]
    assert all(b["logodds_harmful"] == base[0]["logodds_harmful"] and b["ce_delta"] == 0 for b in base)
    for a in res.aggregate:
        assert a["logodds_harmful_low"] <= a["logodds_harmful"] <= a["logodds_harmful_high"]
        assert 0 <= a["phrase_refusal_harmful"] <= 1 and a["judge_refusal_harmful"] in (0, 1)
    g = [r for r in res.generations if r["multiplier"] == 6 and r["mode"] == "greedy"]
    assert all("output" in r and "unsteered_output" in r for r in g)
    assert {r["kind"] for r in res.generations} == {"harmful", "harmless"}
    steered = [a for a in res.aggregate if a["multiplier"] == 6]
    assert any(abs(a["delta_logodds_harmful"]) > 1e-3 for a in steered)
    assert any(a["ce_delta"] > 0 for a in steered)
    assert len(res.max_multiplier) == n_pts * 2
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["kind"] == "openended" and man["refusal_opening_words"][0] == "I'm"


def test_max_multiplier_under_bound():
    agg = [{"model": "x", "layer_start": 3, "layer_end": 3, "multiplier": m, "ce_delta": c,
            "delta_logodds_harmful": m, "delta_logodds_harmless": 0.0}
           for m, c in [(-4, 0.9), (-2, 0.05), (0, 0.0), (1, 0.01), (2, 0.3), (4, 0.1)]]
    out = {r["sign"]: r for r in max_multiplier_under_bound(agg, 0.2)}
    assert out["-"]["max_multiplier"] == -2 and out["+"]["max_multiplier"] == 1  # stops at 2 (0.3 > 0.2)


def test_openended_config_errors():
    model, tok = make_model("llama"), TinyTokenizer()
    vecs = torch.randn(4, 32)
    with pytest.raises(SteerscaleError, match="out of range"):
        run_openended(model, tok, vecs, _prompts("h", 1), [], config=OpenEndedConfig(layers=[9], template="plain"))
    with pytest.raises(SteerscaleError, match="both window"):
        run_openended(model, tok, vecs, _prompts("h", 1), [],
                      config=OpenEndedConfig(layers=[], window_starts=[0], template="plain"))
    with pytest.raises(SteerscaleError, match="shape"):
        run_openended(model, tok, torch.randn(3, 32), _prompts("h", 1), [], config=OpenEndedConfig(template="plain"))


def test_plots(tmp_path):
    from steerscale.report.plots import plot_cosine_heatmap, plot_openended_layers, plot_tradeoff

    agg = []
    for l in range(3):
        for w in (1, 2):
            for m in (-2, 0, 2):
                agg.append({"model": "x", "layer_start": l, "layer_end": l + w - 1, "width": w, "multiplier": m,
                            "logodds_harmful": m * 0.1 + l, "logodds_harmful_low": 0, "logodds_harmful_high": 1,
                            "logodds_harmless": 0.0, "ce_delta": abs(m) * 0.1, "delta_logodds_harmful": m * 0.2})
    for p in plot_tradeoff(agg, tmp_path / "t") + plot_openended_layers(agg, tmp_path / "l") + \
            plot_cosine_heatmap(np.eye(3), tmp_path / "c", labels=["0", "1", "2"]):
        assert p.is_file() and p.stat().st_size > 1000
