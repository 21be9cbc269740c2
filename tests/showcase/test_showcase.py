"""The showcase panels: a planted direction gives a monotone dose-response with intervals; tables, manifest,
resumption, the open-ended and ablation panels, and the figures with their captions."""

import json
import sys

import numpy as np
import pytest
import torch

from conftest import TinyTokenizer, make_model
from steerscale.core.prompts import encode_items
from steerscale.core.data import parse_item, split_items
from steerscale.errors import SteerscaleError
from steerscale.core.evaluate import ab_scores
from steerscale.core.models import model_info
from steerscale.showcase.config import ShowcaseConfig
from steerscale.showcase.run import load_showcase, plot_showcase, run_showcase, showcase_complete
from steerscale.core.steering import steer
from steerscale.core.vectors import train_vectors
from builders import identity_llama  # blocks add nothing; E[A] - E[B] = the planted direction

MULTS = [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]


def items(n, prefix="request", alternate=False):
    """A matches the behaviour (or, with `alternate`, A on even and B on odd items)."""
    out = []
    for i in range(n):
        m, nm = ("(B)", "(A)") if alternate and i % 2 else ("(A)", "(B)")
        out.append(parse_item({"question": f"{prefix} number {i} {'x' * (i % 5)}?\n\nChoices:\n(A) no\n(B) yes",
                               "answer_matching_behavior": m, "answer_not_matching_behavior": nm}, idx=i))
    return out


@pytest.fixture
def planted(one_thread):
    torch.manual_seed(0)
    model, tok = identity_llama(torch.randn(32) * 0.5)
    info = model_info(model, name="tiny-planted")
    vecs = train_vectors(model, tok, items(8, "train"), template="plain", progress=False, info=info,
                         letter_balance="none")  # raw mean = the planted letter direction
    return model, tok, info, vecs


def cfg(**kw):
    base = dict(panels=["dose"], dose_layers=[2], dose_multipliers=MULTS, template="plain", n_bootstrap=300,
                batch_size=4)
    return ShowcaseConfig(**dict(base, **kw))


def test_planted_direction_gives_monotone_dose_response(planted, tmp_path):
    model, tok, info, vecs = planted
    test_items = items(12)
    res = run_showcase(model, tok, info, vecs, test_items, tmp_path, cfg(), progress=False)
    rows = sorted(res.tables["dose"], key=lambda r: r["multiplier"])
    assert [r["multiplier"] for r in rows] == MULTS and all(r["layer"] == 2 for r in rows)
    held_out = split_items(test_items, 0.5, 0)[1]
    assert all(r["n_items"] == len(held_out) for r in rows)  # measured on the held-out half only
    d = [r["delta_logodds"] for r in rows]
    p = [r["p"] for r in rows]
    assert all(b > a for a, b in zip(d, d[1:])) and all(b > a for a, b in zip(p, p[1:]))
    for r in rows:
        assert r["delta_logodds_low"] <= r["delta_logodds"] <= r["delta_logodds_high"]
        assert r["p_low"] <= r["p"] <= r["p_high"]
        if r["multiplier"] != 0:  # every item moves the planted way: the paired interval excludes 0
            assert np.sign(r["delta_logodds_low"]) == np.sign(r["delta_logodds_high"]) == np.sign(r["multiplier"])
        assert r["residual_fraction"] == pytest.approx(r["multiplier"], abs=1e-5)  # residual-normalised
        assert r["delta_letter_logodds"] == pytest.approx(r["delta_logodds"])  # A always matches here
    # the table equals a direct hooked measurement (naive path) on the held-out items
    mean_norm = torch.tensor(vecs.meta["mean_residual_norm"])
    v = vecs.normalized("residual", mean_norm)
    enc = encode_items(tok, held_out, "plain")
    base = ab_scores(model, tok, enc).logit_diff
    with steer(model, v, [2], 0.5) as s:
        direct = ab_scores(model, tok, enc, steering=s).logit_diff
    r05 = next(r for r in rows if r["multiplier"] == 0.5)
    assert r05["delta_logodds"] == pytest.approx(float((direct - base).mean()), abs=1e-5)
    assert r05["raw_multiplier"] == pytest.approx(0.5 * float(mean_norm[2] / vecs.vectors[2].norm()), rel=1e-5)


def test_a_letter_direction_moves_the_letter_not_the_behaviour(planted, tmp_path):
    """The planted vector is E_A - E_B: on items whose matching letter alternates it moves every item toward
    A, so the letter log-odds move with an interval excluding 0 while the behaviour's log-odds (A on half the
    items, B on the other half) barely move on average; the caption says so."""
    from steerscale.showcase.plots import dose_caption

    model, tok, info, vecs = planted
    res = run_showcase(model, tok, info, vecs, items(16, alternate=True), tmp_path, cfg(), progress=False)
    top = max(res.tables["dose"], key=lambda r: r["multiplier"])
    assert top["delta_letter_logodds_low"] > 0
    assert abs(top["delta_logodds"]) < top["delta_letter_logodds"] / 3
    assert dose_caption(res.tables["dose"]).startswith("Steering works on the letter, not the meaning")


def test_tables_manifest_and_resume(planted, tmp_path, monkeypatch):
    model, tok, info, vecs = planted
    run_showcase(model, tok, info, vecs, items(12), tmp_path, cfg(), progress=False)
    out = tmp_path / "showcase"
    for f in ("dose.csv", "dose_items.csv", "manifest.json"):
        assert (out / f).is_file()
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "showcase" and man["panels"]["dose"]["status"] == "ran"
    assert man["panels"]["dose"]["layers"] == [2] and man["panels"]["dose"]["engine"]["check"]["ran"]
    before = (out / "dose.csv").read_bytes()
    assert showcase_complete(tmp_path, cfg()) and not showcase_complete(tmp_path, cfg(dose_multipliers=[1.0]))

    sweep_mod = sys.modules["steerscale.sweep.run"]  # (steerscale.sweep is also the name of run_sweep)

    def boom(*a, **k):
        raise AssertionError("a complete panel was recomputed")

    monkeypatch.setattr(sweep_mod, "run_sweep", boom)
    again = run_showcase(model, tok, info, vecs, items(12), tmp_path, cfg(), progress=False)
    assert again.manifest["panels"]["dose"]["status"] == "reused" and (out / "dose.csv").read_bytes() == before
    with pytest.raises(AssertionError, match="recomputed"):  # another config is not reused
        run_showcase(model, tok, info, vecs, items(12), tmp_path, cfg(dose_multipliers=[-1.0, 1.0]), progress=False)
    monkeypatch.undo()
    (out / "dose.csv").unlink()  # a missing table is recomputed, to the same bytes
    run_showcase(model, tok, info, vecs, items(12), tmp_path, cfg(), progress=False)
    assert (out / "dose.csv").read_bytes() == before


def test_dose_layers_from_the_ab_sweep(planted, tmp_path):
    """Without dose_layers, the A/B sweep's peak layers (chosen on its validation items) are used and the
    panel measures on that sweep's test items."""
    from steerscale.analysis.model import analyze
    from steerscale.analysis.items import read_items_csv
    from steerscale.config import SweepConfig
    from steerscale.sweep.run import run_sweep

    model, tok, info, vecs = planted
    its = items(12)
    run_sweep(model, tok, vecs, its, SweepConfig(layers=[0, 1, 2, 3], template="plain", n_bootstrap=50), info=info,
              out_dir=tmp_path, progress=False)
    a = analyze(read_items_csv(tmp_path / "items.csv"), n_boot=10)
    res = run_showcase(model, tok, info, vecs, its, tmp_path, cfg(dose_layers=None), progress=False)
    assert showcase_complete(tmp_path, cfg(dose_layers=None))
    with open(tmp_path / "items.csv", "a") as f:  # another A/B sweep: the cheap check says incomplete
        f.write("\n")
    assert not showcase_complete(tmp_path, cfg(dose_layers=None))
    assert res.manifest["panels"]["dose"]["layers"] == sorted({p.layer for p in a.peaks.values()})
    assert res.manifest["panels"]["dose"]["items"] == a.test_items
    with pytest.raises(SteerscaleError, match="no A/B sweep"):
        run_showcase(model, tok, info, vecs, its, tmp_path / "empty", cfg(dose_layers=None), progress=False)


def test_all_panels_and_figures(tmp_path, one_thread):
    """Open-ended (re-read from an open-ended sweep) and ablation panels beside the dose panel, then the figures."""
    from steerscale.core.data import Prompt
    from steerscale.config import OpenEndedConfig
    from steerscale.openended.run import run_openended

    model, tok = make_model("llama"), TinyTokenizer()
    info = model_info(model, name="tiny")
    vecs = train_vectors(model, tok, items(8, "train"), template="plain", progress=False, info=info,
                         letter_balance="none")
    pr = lambda k: [Prompt(f"{k} request number {i}", str(i)) for i in range(6)]  # noqa: E731
    oe = run_openended(model, tok, vecs, pr("harmful"), pr("harmless"), None,
                       OpenEndedConfig(layers=[0, 2, 3], multipliers=[-4, 0, 4], template="plain", n_generate=0,
                                       n_bootstrap=50), info=info, progress=False)
    oe.save(tmp_path / "openended")
    c = cfg(panels=["dose", "openended", "ablation"], dose_multipliers=[-0.5, 0.5], n_neutral=2, n_bootstrap=100,
            ablation_kl_threshold=None, ablation_induce_threshold=None)
    res = run_showcase(model, tok, info, vecs, items(8), tmp_path, c, progress=False)
    assert {p["status"] for p in res.manifest["panels"].values()} == {"ran"}
    oe_rows = res.tables["openended_layers"]
    assert sorted({(r["layer"], r["multiplier"]) for r in oe_rows}) == [(l, m) for l in (0, 2, 3) for m in (-4, 4)]
    src = {(a["layer_start"], a["multiplier"]): a for a in oe.aggregate}
    for r in oe_rows:
        assert r["delta_logodds_harmful"] == pytest.approx(src[(r["layer"], r["multiplier"])]["delta_logodds_harmful"])
    abl = {r["condition"]: r for r in res.tables["ablation"]}
    sel = res.tables["ablation_selection"]
    assert [r["layer"] for r in sel] == [0, 1]  # default candidates on 4 layers: refusal_direction prunes 2, 3
    chosen = [r for r in sel if r["selected"] == 1]
    assert len(chosen) == 1 and chosen[0]["ablation_logodds_harmful"] == min(r["ablation_logodds_harmful"] for r in sel)
    assert set(abl) == {"baseline", "ablation", "actadd-1", "actadd+1"}
    assert abl["ablation"]["layer"] == chosen[0]["layer"] == res.manifest["panels"]["ablation"]["layer"]
    diffs = res.manifest["panels"]["ablation"]["recipe"]["differences_from_reference"]  # every one named
    for word in ("last prompt token", "not filtered", "induce-refusal filter is off", "KL filter bound None"):
        assert any(word in d for d in diffs), word
    assert abl["ablation"]["n_harmful"] == 20 and abl["ablation"]["ce_delta"] != 0  # the built-in test split
    made = plot_showcase(tmp_path, tmp_path / "fig")
    assert [p.name for p, _ in made] == ["showcase_dose.png", "showcase_openended_layers.png", "showcase_ablation.png"]
    for p, caption in made:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 0 < p.stat().st_size < 150_000
        assert "[" in caption and "\n" not in caption  # an interval, on one line
    assert json.loads((tmp_path / "fig" / "captions.json").read_text())["showcase_dose.png"] == made[0][1]
    # a missing open-ended sweep is recorded as skipped, not an error
    res2 = run_showcase(model, tok, info, vecs, items(8), tmp_path / "other", cfg(panels=["openended"]),
                        progress=False)
    assert res2.manifest["panels"]["openended"]["status"].startswith("skipped")
    assert load_showcase(tmp_path / "other").tables == {}
    # a selection that filters every candidate skips the panel with the reason (the run goes on)
    res3 = run_showcase(model, tok, info, vecs, items(8), tmp_path / "third",
                        cfg(panels=["ablation"], ablation_kl_threshold=1e-12, n_neutral=0), progress=False)
    assert res3.manifest["panels"]["ablation"]["status"].startswith("skipped: layer selection: every candidate")
    # the same folder rebuilt with a choice that filters every candidate: the earlier panel's tables and figure go
    plot_showcase(tmp_path, tmp_path / "showcase")
    assert (tmp_path / "showcase" / "ablation.csv").is_file() and (tmp_path / "showcase" / "showcase_ablation.png").is_file()
    res4 = run_showcase(model, tok, info, vecs, items(8), tmp_path, cfg(panels=["dose", "openended", "ablation"],
                        dose_multipliers=[-0.5, 0.5], n_neutral=2, n_bootstrap=100, ablation_kl_threshold=1e-12),
                        progress=False)
    assert res4.manifest["panels"]["ablation"]["status"].startswith("skipped")
    assert "ablation" not in res4.tables and not (tmp_path / "showcase" / "ablation.csv").exists()
    assert not (tmp_path / "showcase" / "showcase_ablation.png").exists()
    assert [p.name for p, _ in plot_showcase(tmp_path, tmp_path / "showcase")] == [
        "showcase_dose.png", "showcase_openended_layers.png"]


@pytest.mark.parametrize("kw, match", [
    ({"panels": ["dose", "pictures"]}, "panels 'pictures'"),
    ({"dose_normalize": "max"}, "dose_normalize 'max'"),
    ({"dose_multipliers": [1.0, float("nan")]}, "dose_multipliers"),
    ({"dose_layers": [-1]}, "dose_layers"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"batch_size": 0}, "batch_size"),
])
def test_config_errors(kw, match):
    with pytest.raises(SteerscaleError, match=match):
        ShowcaseConfig(**kw).validate()
    with pytest.raises(SteerscaleError, match="unknown key 'layer'"):
        ShowcaseConfig.from_dict({"layer": 3})
    assert ShowcaseConfig().validate().dose_multipliers[3] == 0.0


SHOWCASE = """[showcase]
panels = ["dose", "openended", "ablation"]
dose_multipliers = [-0.5, 0.0, 0.5]
ablation_layer = 1
n_neutral = 2
"""


def test_reproduce_runs_the_showcase_resumes_and_reports_it_first(tmp_path, tiny_loader):  # noqa: F811
    """`[showcase]` in a reproduce config: panels built after the A/B and open-ended sweeps, reused on a re-run
    (no model load), shown in the report before the per-model tables; its keys are checked like any section."""
    from steerscale.errors import SteerscaleError
    from steerscale.reproduce.config import load_config
    from steerscale.reproduce.run import reproduce
    from builders import OPENENDED, tiny_config

    cfg = tiny_config(tmp_path, extra=OPENENDED.format(max_new_tokens=2) + SHOWCASE)
    out = tmp_path / "out"
    s1 = reproduce(cfg, out, progress=False)
    assert [r.get("showcase") for r in s1["runs"]] == ["ran", "ran"] and len(tiny_loader) == 2
    for sub in ("tiny-a", "tiny-b"):
        sc = out / sub / "showcase"
        man = json.loads((sc / "manifest.json").read_text())
        assert set(man["panels"]) == {"dose", "openended", "ablation"}
        assert man["config"]["template"] == "plain"  # the model's [sweep] settings, not the showcase defaults
        for p in man["panels"].values():
            assert p["status"].startswith(("ran", "skipped")), p
    html = (out / "report.html").read_text()
    assert "What this model shows: tiny a" in html
    assert html.index("What this model shows") < html.index("id='models'")
    # the same config again: nothing runs, the model is not loaded
    s2 = reproduce(cfg, out, progress=False)
    assert [r.get("showcase") for r in s2["runs"]] == ["reused", "reused"] and len(tiny_loader) == 2
    # keys the model's [sweep]/[run] settings own, and unknown keys, are refused with the file and key
    bad = tiny_config(tmp_path, extra="[showcase]\nbatch_size = 4\n")
    with pytest.raises(SteerscaleError, match=r"\[showcase\] key 'batch_size': set it in \[sweep\] or \[run\]"):
        load_config(bad)
    bad = tiny_config(tmp_path, extra="[showcase]\ndose_layer = 4\n")
    with pytest.raises(SteerscaleError, match=r"\[showcase\] unknown key 'dose_layer'"):
        load_config(bad)


def test_random_direction_controls_beside_the_dose_panel(planted, tmp_path):
    """K seeded random directions of the vector's norm at each dose layer, at the same multipliers and items:
    their rows are in dose_control.csv; the planted direction beats them all and the caption says so."""
    from steerscale.showcase.control import random_directions
    from steerscale.showcase.plots import dose_caption

    model, tok, info, vecs = planted
    res = run_showcase(model, tok, info, vecs, items(12), tmp_path, cfg(dose_controls=3), progress=False)
    dose, ctl = res.tables["dose"], res.tables["dose_control"]
    assert len(ctl) == 3 * len(dose) and {r["direction"] for r in ctl} == {"random-0", "random-1", "random-2"}
    for r in ctl:  # same norm as the vector at that layer: the same residual fraction and raw multiplier
        v = next(x for x in dose if x["layer"] == r["layer"] and x["multiplier"] == r["multiplier"])
        assert r["residual_fraction"] == pytest.approx(v["residual_fraction"], abs=1e-5)
        assert r["raw_multiplier"] == pytest.approx(v["raw_multiplier"], rel=1e-4)
        assert r["n_items"] == v["n_items"]
        if r["multiplier"] != 0:  # the planted direction moves the answer further than any random direction
            assert abs(v["delta_logodds"]) > abs(r["delta_logodds"])
    assert res.manifest["panels"]["dose"]["controls"]["n_random_directions"] == 3
    rd = random_directions(vecs.vectors, [2], 1, 0)
    assert float(rd[2].norm()) == pytest.approx(float(vecs.vectors[2].norm()), rel=1e-5) and float(rd[1].norm()) == 0
    torch.testing.assert_close(rd, random_directions(vecs.vectors, [2], 1, 0))  # seeded
    cap = dose_caption(dose, controls=ctl)
    assert "3 random directions of the same norm" in cap and "beats their range at -1 and +1" in cap
    assert "its move of the letter beats theirs at -1 and +1" in cap  # all items A-matching: letter = behaviour
    # a vector no stronger than the controls: the caption says it does not beat them
    weak = [dict(r, delta_logodds=0.0, delta_logodds_low=-0.1, delta_logodds_high=0.1) for r in dose]
    assert "does not beat their range" in dose_caption(weak, controls=ctl)
    weak = [dict(r, delta_letter_logodds=0.0) for r in weak]
    assert "its move of the letter does not beat theirs" in dose_caption(weak, controls=ctl)
    figs = plot_showcase(res, tmp_path / "figs")
    assert figs and figs[0][1] == cap
    # dose_controls = 0: no control table
    res0 = run_showcase(model, tok, info, vecs, items(12), tmp_path / "none", cfg(dose_controls=0), progress=False)
    assert "dose_control" not in res0.tables
