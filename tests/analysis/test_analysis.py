"""Effects, intervals, held-out peaks, asymmetry and per-item slopes on synthetic per-item rows."""

import numpy as np
import pytest

from steerscale.analysis.items import ItemTable, read_items_csv
from steerscale.analysis.model import analyze
from steerscale.analysis import asymmetry, effects
from steerscale.analysis.verdicts import check_asymmetry_claim, check_depth_claim
from steerscale.analysis.peaks import find_peak, split_indices
from steerscale.analysis.effects import item_slopes, steerability
from steerscale.errors import SteerscaleError
from steerscale.sweep.tables import ITEM_COLUMNS
from steerscale.io.results import write_csv
from synth import bump, make_rows


def test_item_table_and_baseline():
    t = ItemTable.from_rows(make_rows(n_items=8, layers=[0, 3], n_layers=6))
    assert t.score.shape == (2, 3, 8) and t.layers == [0, 3] and t.multipliers == [-1.0, 0.0, 1.0]
    assert np.allclose(t.baseline, t.score[0, 1])
    assert t.depth(3) == 0.5 and t.depth_alt(3) == pytest.approx(0.6)


def test_delta_intervals_cover_truth_and_are_paired():
    true = 0.12
    hits = 0
    for seed in range(20):
        rows = make_rows(n_items=80, layers=[2], effect=lambda l, m: true * m, noise=0.04, seed=seed)
        eff = {r["multiplier"]: r for r in effects(ItemTable.from_rows(rows), n_boot=500, seed=seed)}
        hits += eff[1.0]["delta_low"] <= true <= eff[1.0]["delta_high"]
        # paired: the item baseline spread (0.3..0.7) cancels, so Δ's interval is much narrower than p's
        assert (eff[1.0]["delta_high"] - eff[1.0]["delta_low"]) < 0.7 * (eff[1.0]["p_high"] - eff[1.0]["p_low"])
        assert eff[0.0]["delta"] == 0 and eff[0.0]["delta_low"] == 0
    assert hits >= 16  # nominal 95%


def test_bootstrap_is_seeded():
    rows = make_rows(n_items=30, layers=[1, 2], effect=bump(1, 0.2))
    a = analyze(rows, n_boot=200, seed=3)
    b = analyze(rows, n_boot=200, seed=3)
    assert a.effects == b.effects and a.peaks == b.peaks


def test_peak_is_chosen_on_validation_and_reported_on_test():
    n = 40
    probe = ItemTable.from_rows(make_rows(n_items=n, layers=[0], n_layers=10))
    val, test = split_indices(probe, 0.5, seed=7)
    assert not set(val) & set(test) and len(val) + len(test) == n
    val_set = {f"i{i}" for i in val}
    # validation items peak at layer 2, test items at layer 7 (and far more strongly there)
    item_effect = lambda i, layer, m: m * (0.15 if layer == 2 else 0.0) if f"i{i}" in val_set else \
        m * (0.4 if layer == 7 else (0.05 if layer == 2 else 0.0))
    rows = make_rows(n_items=n, layers=range(10), item_effect=item_effect, noise=0.01, seed=1)
    a = analyze(rows, n_boot=300, seed=7)
    for sign in ("negative", "positive"):
        p = a.peaks[sign]
        assert p.layer == 2, "the layer must come from the validation items"
        t = ItemTable.from_rows(rows)
        j = t.multipliers.index(p.multiplier)
        test_delta = float((t.score[2, j, test] - t.baseline[test]).mean())
        assert p.delta == pytest.approx(test_delta), "the effect must come from the test items"
        assert abs(p.delta) < abs(p.delta_val)  # test items barely move at layer 2
        assert p.n_val == 20 and p.n_test == 20
    assert set(a.val_items) == val_set and not set(a.val_items) & set(a.test_items)
    # an all-items argmax would have said layer 7: the held-out rule did not
    eff = [r for r in a.effects if r["multiplier"] == 1.0]
    assert max(eff, key=lambda r: abs(r["delta"]))["layer"] == 7


def test_find_peak_rejects_overlap():
    t = ItemTable.from_rows(make_rows(n_items=10, layers=[0, 1]))
    with pytest.raises(SteerscaleError, match="overlap"):
        find_peak(t, 1, [0, 1, 2], [2, 3, 4])


def test_depth_and_claim():
    rows = make_rows(n_items=80, layers=range(10), n_layers=10, effect=bump(4, 0.3, 1.0), noise=0.03)
    a = analyze(rows, n_boot=300)
    p = a.peaks["negative"]
    assert p.layer == 4 and p.depth == 0.4 and p.depth_alt == pytest.approx(4 / 9)
    assert p.ci_high < 0 and p.selection_stability > 0.8
    assert check_depth_claim(a, "negative")["verdict"] == "supported"
    rows = make_rows(n_items=80, layers=range(10), n_layers=10, effect=bump(9, 0.3, 0.7), noise=0.03)
    assert check_depth_claim(analyze(rows, n_boot=300), "negative")["verdict"] == "not supported"
    rows = make_rows(n_items=80, layers=range(10), n_layers=10, noise=0.03)  # no effect anywhere
    assert check_depth_claim(analyze(rows, n_boot=300), "positive")["verdict"] == "inconclusive"


def test_asymmetry_interval_covers_truth():
    eff = lambda layer, m: (0.3 if m < 0 else 0.1) * m if layer == 3 else 0.0
    hits = 0
    for seed in range(10):
        a = analyze(make_rows(n_items=120, layers=range(6), effect=eff, noise=0.1, seed=seed), n_boot=400, seed=seed)
        s = a.asymmetry
        assert s.layer_negative == 3 and s.layer_positive == 3
        hits += s.ratio_low <= 3.0 <= s.ratio_high
        assert s.diff_low > 0 and check_asymmetry_claim(a)["verdict"] == "supported"
    assert hits >= 8
    sym = analyze(make_rows(n_items=60, layers=range(4), effect=lambda l, m: 0.2 * m if l == 1 else 0.0, noise=0.1))
    assert sym.asymmetry.ratio_low < 1 < sym.asymmetry.ratio_high
    assert check_asymmetry_claim(sym)["verdict"] == "inconclusive"


def test_asymmetry_with_zero_positive_effect_is_infinite_not_an_error():
    t = ItemTable.from_rows(make_rows(n_items=20, layers=[0, 1], effect=lambda l, m: -0.2 if m < 0 else 0.0, noise=0))
    val, test = split_indices(t)
    s = asymmetry(t, find_peak(t, -1, val, test), find_peak(t, 1, val, test), test)
    assert s.ratio == float("inf") and s.ratio_high == float("inf") and s.diff > 0


def test_slopes_and_wrong_way_fraction():
    # items 0..9 move the wrong way (refusal falls with +m), the rest the right way
    ie = lambda i, layer, m: (-0.1 if i < 10 else 0.2) * m
    t = ItemTable.from_rows(make_rows(n_items=40, layers=[0, 1], item_effect=ie, noise=0.0))
    s, g = item_slopes(t)
    assert s.shape == (2, 40)
    assert np.allclose(s[0, :10], -0.1, atol=1e-9) and np.allclose(s[0, 10:], 0.2, atol=1e-9)
    st = steerability(t, n_boot=100)
    assert st[0]["frac_wrong_way"] == 0.25 and st[0]["frac_right_way"] == 0.75
    assert st[0]["slope"] == pytest.approx(0.125) and (g[0, 10:] > 0).all()


def test_errors_name_the_problem(tmp_path):
    rows = [r for r in make_rows(n_items=6, layers=[0, 1]) if r["multiplier"] != 0]
    with pytest.raises(SteerscaleError, match="no rows at multiplier 0"):
        ItemTable.from_rows(rows)
    rows = make_rows(n_items=6, layers=[0, 1])[:-1]
    with pytest.raises(SteerscaleError, match="missing; the sweep is incomplete"):
        ItemTable.from_rows(rows)
    with pytest.raises(SteerscaleError, match="2 models"):
        ItemTable.from_rows(make_rows(n_items=4, layers=[0]) + make_rows(n_items=4, layers=[0], model="other"))
    with pytest.raises(SteerscaleError, match="at least 4"):
        analyze(make_rows(n_items=3, layers=[0]))


def test_reads_items_csv(tmp_path):
    rows = make_rows(n_items=12, layers=[0, 2])
    write_csv(tmp_path / "items.csv", rows, ITEM_COLUMNS)
    back = read_items_csv(tmp_path / "items.csv")
    a, b = analyze(rows, n_boot=100), analyze(back, n_boot=100)
    assert a.peaks["negative"].delta == pytest.approx(b.peaks["negative"].delta, abs=1e-6)
    with pytest.raises(SteerscaleError, match="no such file"):
        read_items_csv(tmp_path / "nope.csv")
