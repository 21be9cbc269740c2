"""The gradient screen (engines/screen.py) and the screened sweep (screening.py): the gradient equals a
central finite difference of the exact score; a planted direction ranks its layer first; a wrong screen is
caught by the spot check; screened-out layers are never measured; a killed run resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ARCH_CONFIGS, TinyTokenizer, make_model
from steerscale.core.prompts import encode_items
from steerscale.engines.naive import naive_scores
from steerscale.engines.screen import GradScreen
from steerscale.core.models import model_info
from steerscale.config import SweepConfig
from builders import varied_items

pytestmark = pytest.mark.usefixtures("one_thread")


def _exact(model, tok, vecs, enc, cfg, layer, m):
    """The exact score with m * vecs[layer] added (the naive engine's hook and evaluate.letter_scores' formula),
    in float64 end to end (ab_scores rounds its log-softmax to float32, too coarse for a finite difference)."""
    from steerscale.core.batching import pad_left
    from steerscale.core.evaluate import last_logits, letter_scores
    from steerscale.core.steering import steer

    out = []
    with torch.no_grad(), steer(model, vecs, [layer], m, positions=cfg.positions) as s:
        for e in enc:
            b = pad_left([e.prefix_ids], 0, [e.instruction_end])
            s.for_batch(b)
            out.append(letter_scores(torch.log_softmax(last_logits(model, b.model_inputs()).double(), -1), [e]).score)
    return np.concatenate(out)


def _fd(model, tok, vecs, enc, cfg, layer, h=1e-2):
    """Central finite difference with one Richardson step (error O(h^4)): h is large because the RMSNorm of
    most architectures computes in float32 even in a float64 model (transformers upcasts), which puts ~1e-7
    of rounding noise on every score; at h = 1e-2 that is ~1e-5 of the derivative."""
    def d(e):
        return (_exact(model, tok, vecs, enc, cfg, layer, e) - _exact(model, tok, vecs, enc, cfg, layer, -e)) / (2 * e)

    return (4 * d(h / 2) - d(h)) / 3


def _setup(arch, dtype=torch.float64, n=5):
    model = make_model(arch).to(dtype)
    tok = TinyTokenizer()
    info = model_info(model, name=f"tiny-{arch}")
    torch.manual_seed(1)
    vecs = torch.randn(info.n_layers, info.hidden_size, dtype=dtype)
    return model, tok, info, vecs, encode_items(tok, varied_items(n), "plain")


@pytest.mark.parametrize("arch", ["llama", "gemma2", "gpt2", "gpt_neox", "qwen3", "phi3"])
@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_gradient_equals_central_finite_difference(arch, positions):
    """float64, one item per batch (float64 eager attention turns fully masked padding rows into NaN, in the
    reference too; padding is covered by the next test): every layer's ds/dm within 1e-4 relative."""
    model, tok, info, vecs, enc = _setup(arch)
    cfg = SweepConfig(positions=positions, template="plain", batch_size=1).validate(info.n_layers)
    res = GradScreen().gradients(model, tok, vecs, enc, cfg)
    assert res.grad.shape == (info.n_layers, 5)
    fd = np.stack([_fd(model, tok, vecs, enc, cfg, layer) for layer in cfg.layers])
    scale = float(np.abs(fd).max())
    assert scale > 1e-3  # not trivially zero
    err = np.abs(res.grad - fd).max()
    assert err <= 1e-4 * scale, (err, scale)


@pytest.mark.parametrize("arch", list(ARCH_CONFIGS))
@pytest.mark.parametrize("positions", ["all", "instruction_end"])
def test_left_padded_batches_give_the_same_gradients(arch, positions):
    """Every registered architecture, float32: batches of 3 with left padding equal one item per batch; the
    unsteered scores of the screen's forward pass equal ab_scores; the work counter counts both passes."""
    from steerscale.core.evaluate import ab_scores

    model, tok, info, vecs, enc = _setup(arch, torch.float32)
    one = SweepConfig(positions=positions, template="plain", batch_size=1).validate(info.n_layers)
    three = SweepConfig(positions=positions, template="plain", batch_size=3).validate(info.n_layers)
    a = GradScreen().gradients(model, tok, vecs, enc, one)
    screen = GradScreen()
    b = screen.gradients(model, tok, vecs, enc, three)
    scale = float(np.abs(a.grad).max())
    assert scale > 1e-4
    assert np.abs(a.grad - b.grad).max() <= 1e-4 * scale
    assert np.abs(b.score - ab_scores(model, tok, enc, 3).score).max() < 1e-5
    st = screen.stats
    assert st.forward_calls == st.backward_calls == 2 and st.head_rows == 5
    assert st.forward_layer_tokens == st.backward_layer_tokens > 0
    assert all(not p.requires_grad for p in model.parameters())


# ----------------------------------------------------------------------------- the screened sweep

from steerscale.sweep import screening
from steerscale.analysis.model import analyze, mark_screened
from steerscale.sweep.run import run_sweep
from steerscale.analysis.verdicts import check_depth_claim


def _world(n_layers=8, scale=0.3, seed=1):
    """A tiny Llama of `n_layers` layers with small random vectors (first order roughly holds at |m| <= 1)."""
    model = make_model("llama", num_hidden_layers=n_layers)
    info = model_info(model, name="tiny-screen")
    torch.manual_seed(seed)
    vecs = torch.randn(info.n_layers, info.hidden_size) * scale
    return model, TinyTokenizer(), info, vecs


def _cfg(**kw):
    return SweepConfig(**dict(dict(template="plain", batch_size=4, n_bootstrap=50), **kw))


def test_planted_direction_ranks_its_layer_first_and_only_measured_layers_are_reported():
    """Identity blocks (the residual is the embedding), unembedding = embedding: the letter direction A - B planted
    at layer 5 (noise elsewhere) is first in the screen's ranking for both signs; with K = 1 and no spot check only
    layer 5 is measured, and it is the peak of both signs, flagged as the best of 1 measured layer."""
    from builders import identity_llama, letter_items as planted_items

    torch.manual_seed(0)
    direction = torch.randn(32)
    model, tok = identity_llama(direction)
    info = model_info(model, name="tiny-planted")
    torch.manual_seed(2)
    vecs = torch.randn(info.n_layers, info.hidden_size) * 0.05
    vecs[2] += direction * 0.2
    items = planted_items(12, 1.0)
    res = run_sweep(model, tok, vecs, items, _cfg(screen="grad", confirm_top=1, spot_check=0), info=info,
                    progress=False)
    sc = res.manifest["screen"]
    for sign in ("negative", "positive"):
        assert sc["signs"][sign]["layers"][0]["layer"] == 2
        assert sc["signs"][sign]["confirmed"] == [2]
    assert sc["measured_layers"] == [2] and sc["not_measured"] == [0, 1, 3]
    assert sorted({r["layer"] for r in res.rows}) == [2] and sorted({r["layer"] for r in res.aggregate}) == [2]
    a = mark_screened(analyze(res.rows, n_boot=50), sc)
    assert {p.layer for p in a.peaks.values()} == {2}
    assert all(p.screened and p.n_measured == 1 for p in a.peaks.values())
    assert "best of 1 exactly measured layers" in check_depth_claim(a, "positive")["numbers"]
    assert a.peaks["positive"].delta > 0 > a.peaks["negative"].delta  # the planted direction moves p both ways


def test_screened_out_layers_are_never_measured_or_peaks():
    model, tok, info, vecs = _world()
    items = varied_items(12)
    res = run_sweep(model, tok, vecs, items, _cfg(screen="grad", confirm_top=2, spot_check=1), info=info,
                    progress=False)
    sc = res.manifest["screen"]
    measured = set(sc["measured_layers"])
    assert set(sc["not_measured"]) == set(range(8)) - measured and sc["not_measured"]
    assert {r["layer"] for r in res.rows} == measured == {r["layer"] for r in res.aggregate}
    a = analyze(res.rows, n_boot=50)
    assert {p.layer for p in a.peaks.values()} <= measured
    assert {e["layer"] for e in a.effects} <= measured
    assert res.manifest["resume"]["points_total"] == len(measured) * 3


def test_a_wrong_screen_is_caught_by_the_spot_check(monkeypatch, caplog):
    """The screen forced to rank layers in the reverse of the exact order (the worst first): the spot check warns,
    K widens, and the final peaks equal the full exact sweep's."""
    model, tok, info, vecs = _world()
    items = varied_items(12)
    full = run_sweep(model, tok, vecs, items, _cfg(), info=info, progress=False)
    fa = analyze(full.rows, n_boot=50)
    val = screening.validation_indices(len(items), _cfg().validate(8))
    # exact validation movement under +1 per layer (the positive sign's multiplier)
    rows = [r for r in full.rows if r["multiplier"] == 1.0]
    base = {r["item"]: r["score"] for r in full.rows if r["multiplier"] == 0.0 and r["layer"] == 0}
    ids = [items[i].id for i in val]
    move = {l: np.mean([r["score"] - base[r["item"]] for r in rows if r["layer"] == l and r["item"] in ids])
            for l in range(8)}
    fake = {l: -rank for rank, l in enumerate(sorted(range(8), key=lambda l: move[l]))}  # best layer: lowest

    class WrongScreen(GradScreen):
        def gradients(self, model, tokenizer, vectors, encoded, config, layers=None):
            res = super().gradients(model, tokenizer, vectors, encoded, config, layers)
            res.grad = np.array([[fake[l]] * res.grad.shape[1] for l in res.layers], dtype=float)
            return res

    monkeypatch.setattr(screening, "GradScreen", WrongScreen)
    with caplog.at_level("WARNING"):
        res = run_sweep(model, tok, vecs, items, _cfg(screen="grad", confirm_top=2, spot_check=2), info=info,
                        progress=False)
    sc = res.manifest["screen"]
    assert sc["widened"] and sc["spot_findings"]
    assert any("spot check" in r.getMessage() for r in caplog.records)
    assert sc["signs"]["positive"]["confirm_top_final"] > 2
    sa = analyze(res.rows, n_boot=50)
    assert {s: p.layer for s, p in sa.peaks.items()} == {s: p.layer for s, p in fa.peaks.items()}


def test_a_killed_screened_run_resumes_without_recomputing(monkeypatch, tmp_path):
    model, tok, info, vecs = _world()
    items = varied_items(12)
    cfg = _cfg(screen="grad", confirm_top=2, spot_check=1)
    real_unit = screening.run_unit
    calls = {"screen": 0, "units": 0}

    def killed(*a, **k):
        raise KeyboardInterrupt  # killed after the screen was stored, before any exact point

    monkeypatch.setattr(screening, "run_unit", killed)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(model, tok, vecs, items, cfg, info=info, out_dir=tmp_path, progress=False)
    assert list(tmp_path.glob("points/*record-screen*")) and not list(tmp_path.glob("points/*__L*"))
    real_grad = GradScreen.gradients

    def counting(self, *a, **k):
        calls["screen"] += 1
        return real_grad(self, *a, **k)

    monkeypatch.setattr(GradScreen, "gradients", counting)
    monkeypatch.setattr(screening, "run_unit", real_unit)
    first = run_sweep(model, tok, vecs, items, cfg, info=info, out_dir=tmp_path, progress=False)
    assert calls["screen"] == 0 and first.manifest["screen"]["reused"]
    assert first.manifest["resume"]["points_computed_now"] > 0
    again = run_sweep(model, tok, vecs, items, cfg, info=info, out_dir=tmp_path, progress=False)
    assert calls["screen"] == 0 and again.manifest["resume"]["points_computed_now"] == 0
    assert again.rows == first.rows
    fresh = run_sweep(model, tok, vecs, items, cfg, info=info, progress=False)  # uninterrupted, in memory
    assert fresh.rows == first.rows and fresh.manifest["screen"]["gradient"] == first.manifest["screen"]["gradient"]


def test_the_screen_refuses_shards_and_needs_the_baseline():
    from steerscale.errors import SteerscaleError

    model, tok, info, vecs = _world(n_layers=4)
    items = varied_items(12)
    with pytest.raises(SteerscaleError, match="one process"):
        run_sweep(model, tok, vecs, items, _cfg(screen="grad"), info=info, progress=False, shards=2)
    with pytest.raises(SteerscaleError, match="must include 0"):
        run_sweep(model, tok, vecs, items, _cfg(screen="grad", multipliers=[-1.0, 1.0]), info=info, progress=False)


def test_run_identity_without_a_screen_is_unchanged():
    """Run folders and reproduce keys made before the screen existed stay valid: no screen fields then."""
    ident = SweepConfig().validate(4).identity()
    assert not {"screen", "confirm_top", "spot_check", "val_fraction"} & set(ident)
    assert {"screen", "confirm_top"} <= set(SweepConfig(screen="grad").validate(4).identity())


def test_report_section_shows_the_screen_beside_the_exact_points(monkeypatch):
    """The section names the measured and the unmeasured layers, the spot check's findings, and per measured layer
    the exact/predicted ratio; unmeasured layers read "not measured" in both renderings."""
    from steerscale.report.document import Document
    from steerscale.report.markdown import render_markdown
    from steerscale.report.screen_section import screen_section

    model, tok, info, vecs = _world()
    res = run_sweep(model, tok, vecs, varied_items(12), _cfg(screen="grad", confirm_top=2, spot_check=1), info=info,
                    progress=False)
    sc = res.manifest["screen"]
    md = render_markdown(Document("t", [screen_section("tiny-screen", sc)]), ".")
    assert f"measured {len(sc['measured_layers'])} of them" in md and "not measured" in md
    for r in sc["signs"]["positive"]["layers"]:
        if r["measured"] or r["spot_checked"]:  # spot-checked layers: exact at m_s only, not in the tables
            assert r["measured"] == (r["layer"] in {x["layer"] for x in res.rows})
            assert r["ratio"] == pytest.approx(r["exact_move_val"] / r["predicted_move"])
            assert f"{r['ratio']:.2f}" in md
        else:
            assert r["exact_move_val"] is None and r["ratio"] is None


@pytest.mark.slow
def test_smollm2_screen_ranks_layers_like_the_exact_sweep():
    """SmolLM2-135M-Instruct, vectors from the 200 built-in training items, the first 30 built-in test items: the
    screen's prediction m · d(score)/dm against the exact Δ of every layer at m = ±1 on the same items: Spearman
    rho >= 0.9, and the exact sign-aware peak within the screen's top 3."""
    from scipy.stats import spearmanr

    from steerscale import load_dataset, load_model, train_vectors

    model, tok, info = load_model("smollm2-135m")
    vecs = train_vectors(model, tok, load_dataset("refusal-train"), batch_size=8, info=info, progress=False)
    items = load_dataset("refusal-test", limit=30)
    cfg = SweepConfig(multipliers=[-1.0, 0.0, 1.0]).validate(info.n_layers)
    g = GradScreen().gradients(model, tok, vecs, encode_items(tok, items, cfg.template), cfg).grad.mean(1)
    res = run_sweep(model, tok, vecs, items, cfg, info=info, progress=False)
    base = {r["item"]: r["score"] for r in res.rows if r["multiplier"] == 0.0 and r["layer"] == 0}
    for m in (-1.0, 1.0):
        exact = np.array([np.mean([r["score"] - base[r["item"]] for r in res.rows
                                   if r["layer"] == l and r["multiplier"] == m]) for l in cfg.layers])
        rho = spearmanr(m * g, exact).statistic
        s = 1 if m > 0 else -1
        top3 = list(np.argsort(-s * m * g)[:3])
        assert rho >= 0.9, (m, rho)
        assert int(np.argmax(s * exact)) in top3, (m, int(np.argmax(s * exact)), top3)


def test_reproduce_reads_the_screen_from_its_sweep_section(tmp_path):
    """[sweep] screen / confirm_top / spot_check reach the SweepConfig (with [run]'s val_fraction and seed); the
    result key of a config without a screen is what it was before the screen existed (no screen keys in it)."""
    from steerscale.reproduce.run import config_hash, sweep_config
    from steerscale.reproduce.config import load_config

    base = '[run]\nval_fraction = 0.4\nseed = 3\n[[models]]\nspec = "smollm2-135m"\nname = "m"\n'
    plain = tmp_path / "plain.toml"
    plain.write_text(base)
    screened = tmp_path / "screened.toml"
    screened.write_text(base + '[sweep]\nscreen = "grad"\nconfirm_top = 4\nspot_check = 2\n')
    c0, c1 = load_config(plain), load_config(screened)
    sc = sweep_config(c1, c1.models[0].sweep, [0, 1, 2])
    assert (sc.screen, sc.confirm_top, sc.spot_check, sc.val_fraction, sc.seed) == ("grad", 4, 2, 0.4, 3)
    assert sweep_config(c0, c0.models[0].sweep, [0, 1]).screen == "none"
    assert config_hash(c0, c0.models[0]) != config_hash(c1, c1.models[0])
    m0 = c0.models[0]
    legacy = dict(m0.sweep)
    for k in ("screen", "confirm_top", "spot_check"):
        legacy.pop(k)
    m0_legacy = type(m0)(**dict(m0.__dict__, sweep=legacy))
    assert config_hash(c0, m0) == config_hash(c0, m0_legacy)
