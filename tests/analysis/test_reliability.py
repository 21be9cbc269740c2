"""Reliability measures (analysis.reliability): a planted direction gives split-half stability 1 and per-item
steerability of the right sign; a world where half the items are planted anti-steerable gives that fraction;
halves are letter-stratified; the default estimator is used as is; reproduce records it and reports it."""

import json

import numpy as np
import pytest
import torch

from steerscale.analysis.items import ItemTable
from steerscale.analysis.reliability import (Reliability, cosines, item_steerability, letter_balance,
                                             split_half_stability, stratified_halves)
from steerscale.core.data import parse_item, split_items
from steerscale.core.models import model_info
from steerscale.config import SweepConfig
from steerscale.sweep.run import run_sweep
from steerscale.core.vectors import SteeringVectors, train_vectors
from builders import identity_llama  # blocks add nothing; E[A] - E[B] = the planted direction

pytestmark = pytest.mark.usefixtures("one_thread")


def items(n, alternate=False, prefix="request"):
    """A matches the behaviour (or, with `alternate`, A on even and B on odd items)."""
    out = []
    for i in range(n):
        m, nm = ("(B)", "(A)") if alternate and i % 2 else ("(A)", "(B)")
        out.append(parse_item({"question": f"{prefix} {i} {'x' * (i % 3)}?\n\nChoices:\n(A) no\n(B) yes",
                               "answer_matching_behavior": m, "answer_not_matching_behavior": nm}, idx=i))
    return out


@pytest.fixture
def planted():
    torch.manual_seed(0)
    d = torch.randn(32) * 0.5
    model, tok = identity_llama(d)
    return model, tok, model_info(model, name="tiny-planted"), d


def test_letter_balance_and_stratified_halves():
    its = items(10, alternate=True) + items(4, prefix="more")  # 9 A / 5 B
    lb = letter_balance(its)
    assert lb.counts == {"A": 9, "B": 5} and lb.n == 14 and lb.imbalance == pytest.approx(4 / 14)
    a, b = stratified_halves(its, seed=3)
    assert letter_balance(a).counts == {"A": 4, "B": 2} or letter_balance(a).counts == {"A": 5, "B": 3}
    for letter in "AB":  # each letter split in two halves differing by at most one item
        na, nb = (sum(it.matching == letter for it in h) for h in (a, b))
        assert abs(na - nb) <= 1 and na + nb == lb.counts[letter]
    qa, qb = {it.question for it in a}, {it.question for it in b}
    assert qa | qb == {it.question for it in its} and not qa & qb
    assert stratified_halves(its, seed=3) == (a, b) and stratified_halves(its, seed=4) != (a, b)
    four = [parse_item({"question": "q?\n\nChoices:\n(A) a\n(B) b\n(C) c", "answer_matching_behavior": f"({x})",
                        "answer_not_matching_behavior": "(A)" if x != "A" else "(B)"}, idx=i)
            for i, x in enumerate("AAABCC")]
    assert letter_balance(four).imbalance == pytest.approx(3 / 6 - 1 / 6)


def test_planted_direction_split_half_is_one(planted):
    """Every training pair's difference is the planted direction (raw estimator, all A-matching): both halves'
    vectors are that direction, cosine 1 at every layer."""
    model, tok, info, d = planted
    sh = split_half_stability(model, tok, items(10), seed=0, template="plain", info=info, letter_balance="none")
    assert sh.layers == [0, 1, 2, 3] and sh.estimator == "none"
    assert sh.cosine == pytest.approx([1.0] * 4, abs=1e-5)
    assert sh.norm_a == pytest.approx([float(d.norm())] * 4, rel=1e-4) and sh.letters_a.counts == {"A": 5}


def test_split_half_uses_the_default_estimator_as_train_vectors_does():
    """On a random tiny model with mixed letters, the split-half cosine is that of train_vectors (its default
    estimator, balanced) on the two letter-stratified halves, computed directly."""
    from conftest import TinyTokenizer, make_model

    model, tok = make_model("llama", seed=2), TinyTokenizer()
    its = items(12, alternate=True)
    sh = split_half_stability(model, tok, its, seed=1, template="plain")
    a, b = split_items(its, 0.5, 1, strata=[it.matching for it in its])
    va, vb = (train_vectors(model, tok, h, template="plain", progress=False) for h in (a, b))
    assert va.meta["letter_balance"] == "balanced" and sh.estimator == "balanced"
    assert sh.cosine == pytest.approx(cosines(va.vectors, vb.vectors), abs=1e-6)
    assert sh.letters_a.counts == {"A": 3, "B": 3} == sh.letters_b.counts
    assert all(-1 - 1e-6 <= c <= 1 + 1e-6 for c in sh.cosine) and min(sh.cosine) < 0.999  # not trivially 1


def _sweep_table(model, tok, info, vec, test, mults=(-1.0, -0.5, 0.0, 0.5, 1.0)):
    v = SteeringVectors(vec.unsqueeze(0).repeat(4, 1).float(), {"model": info.name})
    res = run_sweep(model, tok, v, test, SweepConfig(layers=[1, 2], multipliers=list(mults), template="plain",
                                                     n_bootstrap=10), info=info, progress=False)
    return ItemTable.from_rows(res.rows)


def test_planted_direction_steers_every_item_the_right_way(planted):
    model, tok, info, d = planted
    tab = _sweep_table(model, tok, info, d, items(8))  # A matches everywhere; the vector is E_A - E_B
    for s in item_steerability(tab, n_boot=200, seed=0):
        assert s.frac_anti == 0 and s.frac_anti_high == 0 and s.mean_slope > 0 and s.slope_low > 0
    for s in item_steerability(_sweep_table(model, tok, info, -d, items(8)), n_boot=200):
        assert s.frac_anti == 1 and s.mean_slope < 0 and s.slope_high < 0


def test_half_planted_anti_steerable_gives_one_half(planted):
    """A vector along the letter direction on items whose matching letter alternates: the B-matching half is
    anti-steerable by construction (its log-odds fall as m rises); exactly those items have slope < 0."""
    model, tok, info, d = planted
    test = items(12, alternate=True)
    tab = _sweep_table(model, tok, info, d, test)
    from steerscale.analysis.effects import item_slopes

    g = item_slopes(tab)[1]
    b_items = np.array([it.matching == "B" for it in test])
    assert (g[:, b_items] < 0).all() and (g[:, ~b_items] > 0).all()
    for s in item_steerability(tab, n_boot=500, seed=0):
        assert s.frac_anti == 0.5 and s.frac_anti_low < 0.5 < s.frac_anti_high and s.n_items == 12
        assert s.slope_low <= s.mean_slope <= s.slope_high


def test_simulated_world_fraction_and_interval():
    """A simulated table: log-odds = base + slope x m with 30 of 100 items anti-steerable."""
    rng = np.random.default_rng(0)
    n, mults = 100, [-1.0, 0.0, 1.0]
    slope = np.where(np.arange(n) < 30, -0.5, 1.0) + rng.normal(0, 0.05, n)
    rows = [{"model": "sim", "n_params": 1, "n_layers": 2, "layer": 1, "depth": 0.5, "multiplier": m, "item": f"i{i}",
             "category": "", "score": 0.5, "logit_diff": 0.2 + slope[i] * m, "letter_mass": 1.0}
            for m in mults for i in range(n)]
    (s,) = item_steerability(ItemTable.from_rows(rows), n_boot=1000, seed=0)
    assert s.frac_anti == 0.3 and s.frac_anti_low < 0.3 < s.frac_anti_high and s.frac_anti_high - s.frac_anti_low < 0.25
    assert s.mean_slope == pytest.approx(slope.mean()) and s.median_slope == pytest.approx(np.median(slope))
    rel = Reliability("sim", steerability=[s], test_letters=letter_balance(items(4)))
    assert Reliability.from_dict(json.loads(json.dumps(rel.to_dict()))) == rel


def test_reproduce_records_split_half_and_reports_reliability(tmp_path, tiny_loader):  # noqa: F811
    from steerscale.reproduce.run import reproduce
    from builders import tiny_config

    cfg = tiny_config(tmp_path)
    out = tmp_path / "out"
    s1 = reproduce(cfg, out, progress=False)
    assert all(r["split_half_seconds"] >= 0 for r in s1["runs"])
    rec = json.loads((out / "tiny-a" / "split_half.json").read_text())
    assert rec["split_half"]["estimator"] == "balanced" and rec["forward_passes"] == 2 * 8
    rel = Reliability.from_dict(json.loads((out / "tiny-a" / "reliability.json").read_text()))
    assert rel.split_half.layers == [0, 1, 2, 3] and [s.layer for s in rel.steerability] == [0, 2]
    assert rel.test_letters.n == 8
    md = (out / "report.md").read_text()
    assert "Reliability: tiny a" in md and "Split-half stability: cosine" in md and "anti-steerable" in md
    # same config again: nothing is trained again (no model load)
    s2 = reproduce(cfg, out, progress=False)
    assert "split_half_seconds" not in s2["runs"][0] and len(tiny_loader) == 2
    # split_half = false: not measured, and the report says so
    off = tmp_path / "off.toml"
    off.write_text(cfg.read_text().replace("[run]\n", "[run]\nsplit_half = false\n"))
    reproduce(off, tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2" / "tiny-a" / "split_half.json").exists()
    assert "Split-half stability: not measured" in (tmp_path / "out2" / "report.md").read_text()


def test_report_states_the_vectors_letter_content():
    """The reliability section says what the vector is made of: estimator, counts, the imbalance term's share, and
    a plain warning when more than 10% of the vector is the answer-letter direction."""
    from steerscale.core.letters import LetterFigures
    from steerscale.report.reliability_section import letter_text

    balanced = LetterFigures("balanced", {"A": 6, "B": 4}, 10, 0.2, [50.0, 60.0], [1.0, 2.0], [1.0, 2.0],
                             [0.05, -0.1], [0.0, 0.0])
    text = letter_text(balanced, [1])
    assert "estimator balanced" in text and "6 A / 4 B" in text and "at most 0.0% of |v|" in text
    assert "layer 1: |l| 60, |r| 2, |v| 2, cos(v, l) -0.10" in text and "More than 10%" not in text
    raw = LetterFigures("none", {"A": 6, "B": 4}, 10, 0.2, [50.0, 60.0], [1.0, 2.0], [10.0, 12.0],
                        [0.99, 0.98], [1.0, 1.0])
    assert "at most 100.0% of |v|" in letter_text(raw, [0]) and "More than 10%" in letter_text(raw, [0])
    assert "not recorded" in letter_text(None, [0])
