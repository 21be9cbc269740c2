"""Verdicts in simulated worlds with a known truth (issue 10 section 4): signed peaks, the symmetric depth rule,
asymmetry in log-odds, the AICc scaling verdict and protocols. Seeds are fixed; rates are counted over 40 worlds."""

from collections import Counter

import numpy as np
import pytest

from steerscale.analysis.model import analyze
from steerscale.analysis.verdicts import check_asymmetry_claim, check_depth_claim
from steerscale.scaling.points import ScalingPoint, point_from_analysis
from steerscale.scaling.comparison import check_scaling_claim, fit_protocol, fit_scaling
from steerscale.scaling.laws import exp_decay
from steerscale.scaling.imported import imported_points, load_results_table
from synth import make_rows

SEEDS = range(40)


def test_sign_blind_case_fixed():
    # true positive effect +0.08 at layer 12 of 30; layer 26 breaks the format: Δ = −0.20 under either sign
    eff = lambda layer, m: 0.08 * m if layer == 12 else (-0.20 if layer == 26 else 0.0)
    a = analyze(make_rows(n_items=80, layers=range(30), n_layers=30, effect=eff, noise=0.03), n_boot=300)
    pos = a.peaks["positive"]
    assert pos.layer == 12 and pos.delta > 0 and pos.right_way
    assert [r["layer"] for r in a.wrong_way["positive"]] == [26]
    assert any("wrong way" in n and "26" in n for n in a.notes)
    assert check_depth_claim(a, "positive")["verdict"] == "supported"  # depth 0.40
    assert "26" in check_depth_claim(a, "positive")["why"]
    # under −m, layer 26 lowers p: the intended direction, so there it is the negative peak
    assert a.peaks["negative"].layer == 26 and not a.wrong_way["negative"]
    pt = point_from_analysis(a, "positive")
    assert pt.layer == 12 and pt.y == pytest.approx(pos.delta) and pt.y > 0


def test_peak_that_only_moves_the_wrong_way_is_never_a_supported_peak():
    eff = lambda layer, m: -0.15 if layer == 5 else 0.0  # both signs lower p at layer 5; nothing raises it
    a = analyze(make_rows(n_items=80, layers=range(10), effect=eff, noise=0.03), n_boot=300)
    pos = a.peaks["positive"]
    assert pos.layer != 5 and not pos.right_way
    assert check_depth_claim(a, "positive")["verdict"] == "inconclusive"
    pt = point_from_analysis(a, "positive")
    assert pt.ci_low < 0 < pt.ci_high or pt.y <= 0  # signed, interval as measured (not folded at 0)
    assert [r["layer"] for r in a.wrong_way["positive"]] == [5]


def test_no_peak_world_depth_is_inconclusive():
    verdicts = Counter()
    for seed in SEEDS:
        rows = make_rows(n_items=60, layers=range(30), n_layers=30, effect=lambda l, m: 0.1 * m, noise=0.05, seed=seed)
        a = analyze(rows, n_boot=200, seed=seed)
        verdicts.update(check_depth_claim(a, s)["verdict"] for s in ("negative", "positive"))
    assert verdicts["inconclusive"] >= 0.95 * 80, verdicts


def test_depth_rule_is_symmetric_on_real_peaks():
    bump = lambda c: (lambda layer, m: 0.25 * m * float(np.exp(-0.5 * ((layer - c) / 1.0) ** 2)))
    got = {}
    for c in (12, 27, 3):
        a = analyze(make_rows(n_items=80, layers=range(30), n_layers=30, effect=bump(c), noise=0.03), n_boot=300)
        got[c] = {s: check_depth_claim(a, s)["verdict"] for s in ("negative", "positive")}
    assert got[12] == {"negative": "supported", "positive": "supported"}
    assert got[27] == {"negative": "not supported", "positive": "not supported"}
    assert got[3] == {"negative": "not supported", "positive": "not supported"}


def _base_near(p):
    return (p - 0.02, p + 0.02)


def test_asymmetry_in_log_odds_exposes_headroom():
    # baseline ~0.74: −m takes 0.25 off, +m adds 0.20 (of the 0.26 it can add): bigger in probability, smaller in
    # log-odds -> not "supported"
    eff = lambda layer, m: (-0.25 if m < 0 else 0.20) if layer == 2 else 0.0
    a = analyze(make_rows(n_items=100, layers=range(5), effect=eff, noise=0.02, base_range=_base_near(0.74)),
                n_boot=400)
    s = a.asymmetry
    assert s.baseline == pytest.approx(0.74, abs=0.02)
    assert s.diff_low > 0 and s.logodds_diff_high < 0
    assert s.logodds_positive > s.logodds_negative > 0
    c = check_asymmetry_claim(a)
    assert c["verdict"] == "inconclusive" and "headroom" in c["why"] and "log-odds" in c["numbers"]
    # from a 0.5 baseline the same-size moves are symmetric in both scales: a real asymmetry is supported
    eff2 = lambda layer, m: (-0.30 if m < 0 else 0.10) if layer == 2 else 0.0
    a2 = analyze(make_rows(n_items=100, layers=range(5), effect=eff2, noise=0.02, base_range=_base_near(0.5)),
                 n_boot=400)
    assert check_asymmetry_claim(a2)["verdict"] == "supported"
    assert a2.asymmetry.logodds_diff_low > 0


def test_asymmetry_uses_signed_movement():
    # +m lowers p (the wrong way) by 0.1, −m lowers it by 0.1: |Δ| would call them equal
    eff = lambda layer, m: -0.1 if layer == 1 else 0.0
    a = analyze(make_rows(n_items=80, layers=range(3), effect=eff, noise=0.02), n_boot=300)
    s = a.asymmetry
    assert s.move_negative > 0.08 and s.move_positive <= 0.01
    assert s.ratio == float("inf") or s.ratio > 5


X5 = np.array([0.135, 0.5, 1.7, 7.0, 70.0])
X9 = np.array([0.1, 0.3, 0.7, 1.5, 3.0, 7.0, 13.0, 30.0, 70.0])


def _points(f, x, se, seed):
    rng = np.random.default_rng(seed)
    y = f(x) + rng.normal(0, se, len(x))
    return [ScalingPoint(f"m{i}", float(v), float(w), float(w - 1.96 * se), float(w + 1.96 * se))
            for i, (v, w) in enumerate(zip(x, y))]


def _verdicts(f, x, se=0.02):
    return Counter(check_scaling_claim(fit_scaling(_points(f, x, se, s), n_boot=0, seed=s))["verdict"] for s in SEEDS)


@pytest.mark.parametrize("x", [X5, X9], ids=["5 points", "9 points"])
def test_power_law_world_is_not_called_exponential(x):
    v = _verdicts(lambda x: 0.3 * x ** -0.25, x)
    assert v["supported"] <= 4, v  # >= 90% of seeds not "supported"
    assert v["not supported"] >= 20, v  # and the rival form is usually named


def test_log_linear_world_is_not_called_exponential():
    v = _verdicts(lambda x: 0.2 - 0.03 * np.log(x), X9)
    assert v["supported"] <= 4, v


def test_exponential_world_with_enough_points_is_supported():
    # measured rates (40 seeds, se 0.02): 9 points 37/40 supported; 5 points 6/40 (AICc cannot tell 3 parameters
    # from 2 on 5 points); 4 points always inconclusive. Never "not supported" in more than 10% of seeds.
    v9 = _verdicts(lambda x: exp_decay(x, 0.08, 0.3, 0.42), X9)
    assert v9["supported"] >= 30 and v9["not supported"] <= 4, v9
    v5 = _verdicts(lambda x: exp_decay(x, 0.08, 0.3, 0.42), X5)
    assert v5["not supported"] <= 4, v5
    v4 = _verdicts(lambda x: exp_decay(x, 0.08, 0.3, 0.42), X5[[0, 1, 3, 4]])
    assert v4 == Counter({"inconclusive": 40})


def test_weighted_fit_discounts_an_uncertain_point():
    pts = _points(lambda x: exp_decay(x, 0.08, 0.3, 0.42), X9, 0.01, 0)
    pts[0] = ScalingPoint("noisy", pts[0].n_params_b, pts[0].y + 0.3, pts[0].y + 0.3 - 1.0, pts[0].y + 0.3 + 1.0)
    e = fit_scaling(pts, n_boot=0).fits["exp"]
    assert e.weighted and e.params["a"] == pytest.approx(0.08, abs=0.03)
    assert e.params["b"] == pytest.approx(0.3, abs=0.1)


def test_fits_use_one_protocol_only():
    caa = imported_points(load_results_table("caa-llama2-chat"))
    assert {p.protocol for p in caa} == {"caa"}
    ours = _points(lambda x: exp_decay(x, 0.08, 0.3, 0.42), X9, 0.02, 0)
    for p in ours:
        p.source = "sweep"
    assert fit_protocol(ours + caa) == "steerscale-default"
    res = fit_scaling(ours + caa, n_boot=0)
    assert res.fits["exp"].n_points == len(X9)
    left = [p for p in res.points if p.protocol == "caa"]
    assert left and all(not p.include_in_fit and "not fitted" in p.note for p in left)
    assert all(p.include_in_fit for p in caa), "the caller's points are not modified"
    assert fit_scaling(caa, n_boot=0).protocol == "caa"  # imported alone: fitted among themselves


def test_scaling_sign_is_chosen_on_validation_and_reported_signed():
    eff = lambda layer, m: (0.05 * m if m > 0 else 0.2 * m) if layer == 3 else 0.0
    a = analyze(make_rows(n_items=80, layers=range(6), effect=eff, noise=0.02), n_boot=200)
    p = point_from_analysis(a, "max")
    assert p.multiplier < 0 and p.y == pytest.approx(-a.peaks["negative"].delta)
    assert a.peak_for("max") is a.peaks["negative"]
    lo, hi = a.peaks["negative"].move_ci
    assert (p.ci_low, p.ci_high) == (lo, hi) and lo < p.y < hi
