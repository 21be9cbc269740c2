"""Scaling fits (recovery, too few points, model comparison) and imported results tables."""

import json

import numpy as np
import pytest

from steerscale.errors import SteerscaleError
from steerscale.scaling.laws import PAPER, exp_decay, paper_curve
from steerscale.scaling.points import ScalingPoint
from steerscale.scaling.comparison import check_scaling_claim, fit_scaling
from steerscale.scaling.fits import fit_model
from steerscale.scaling.imported import imported_points, load_results_table, parse_n_params

X = np.array([0.1, 0.3, 0.7, 1.5, 3.0, 7.0, 13.0, 30.0, 70.0])


def synth_points(a=0.08, b=0.6, c=0.42, se=0.02, seed=0):
    rng = np.random.default_rng(seed)
    y = exp_decay(X, a, b, c) + rng.normal(0, se, len(X))
    return [ScalingPoint(f"m{i}", float(x), float(v), float(v - 1.96 * se), float(v + 1.96 * se))
            for i, (x, v) in enumerate(zip(X, y))]


def test_recovers_known_parameters_within_intervals():
    truth = {"a": 0.08, "b": 0.6, "c": 0.42}
    res = fit_scaling(synth_points(**truth), n_boot=200, seed=1)
    e = res.fits["exp"]
    assert e.ok and e.n_boot_ok > 150
    for k, v in truth.items():
        lo, hi = e.intervals[k]
        assert lo <= v <= hi, (k, v, lo, hi)
        assert e.params[k] == pytest.approx(v, rel=0.5)
    assert res.best == "exp" and e.aic < res.fits["power"].aic and e.aic < res.fits["loglinear"].aic
    assert e.loo_rmse < res.fits["loglinear"].loo_rmse
    assert check_scaling_claim(res)["verdict"] == "supported"


def test_paper_curve():
    assert PAPER == {"a": 0.081, "b": 2.4, "c": 0.42}
    assert paper_curve(7.0) == pytest.approx(0.081 + 2.4 * np.exp(-2.94))


def test_too_few_points_claims_no_fit():
    pts = synth_points()[:2]
    res = fit_scaling(pts, n_boot=50)
    e = res.fits["exp"]
    assert e.status == "not enough points" and not e.params and not e.intervals
    assert "2 point(s) for 3 parameters" in e.message
    assert res.best is None
    claim = check_scaling_claim(res)
    assert claim["verdict"] == "inconclusive" and "not enough points" in claim["why"]
    assert fit_model("exp", [1.0], [0.2]).status == "not enough points"
    # exactly as many points as parameters: a curve, but no AIC, no LOO, and said so
    f = fit_model("exp", X[[0, 4, 8]], exp_decay(X[[0, 4, 8]], 0.1, 0.5, 0.4), n_boot=20)
    assert f.ok and f.aic is None and f.loo_rmse is None and "no residual degrees of freedom" in f.message
    assert check_scaling_claim(fit_scaling(synth_points()[:3], n_boot=20))["verdict"] == "inconclusive"


def test_growing_effect_is_not_supported():
    pts = [ScalingPoint(f"m{i}", float(x), 0.05 + 0.05 * np.log(x + 1), 0.04 + 0.05 * np.log(x + 1),
                        0.06 + 0.05 * np.log(x + 1)) for i, x in enumerate(X)]
    assert check_scaling_claim(fit_scaling(pts, n_boot=100))["verdict"] == "not supported"


def test_points_left_out_of_the_fit():
    pts = synth_points()
    pts[0].include_in_fit = False
    res = fit_scaling(pts, n_boot=20)
    assert res.fits["exp"].n_points == len(X) - 1 and len(res.paper_at_points) == len(X)


def test_builtin_caa_table():
    rows = load_results_table("caa-llama2-chat")
    pts = {p.model: p for p in imported_points(rows)}
    p7 = pts["Llama-2-7b-chat (CAA)"]
    assert p7.y == pytest.approx(0.744 - 0.423) and p7.layer == 13 and p7.multiplier == -1
    assert p7.n_params_b == pytest.approx(6.74) and p7.ci_low < p7.y < p7.ci_high
    pos = {p.model: p for p in imported_points(rows, which="positive")}
    assert pos["Llama-2-13b-chat (CAA)"].y == pytest.approx(0.885 - 0.780)


def test_csv_and_json_import(tmp_path):
    f = tmp_path / "pub.csv"
    f.write_text("model,n_params,layer,multiplier,score,n_items,ci_low,ci_high\n"
                 "big,70B,,0,0.8,50,0.75,0.85\nbig,70B,30,-1,0.7,50,0.65,0.75\nbig,70B,30,1,0.85,50,0.8,0.9\n")
    rows = load_results_table(f)
    assert len(rows) == 3 and rows[0]["n_params"] == 70e9 and rows[0]["layer"] is None
    (p,) = imported_points(rows)
    assert p.y == pytest.approx(0.1) and p.ci_low < 0.1 < p.ci_high and p.source == str(f)
    j = tmp_path / "pub.json"
    j.write_text(json.dumps({"rows": [{"model": "x", "n_params": 1.3e9, "layer": None, "multiplier": 0, "score": 0.5},
                                      {"model": "x", "n_params": 1.3e9, "layer": 4, "multiplier": -2, "score": 0.3}]}))
    (q,) = imported_points(load_results_table(j))
    assert q.y == pytest.approx(0.2) and q.ci_low is None


BAD = [
    ("model,n_params,layer,score\nx,7B,1,0.5\n", r"bad\.csv: header lacks column\(s\) multiplier"),
    ("model,n_params,layer,multiplier,score\nx,7B,,0,0.5\nx,7B,3,1,high\n", r"bad\.csv: row 2: field 'score' is 'high'; expected a number"),
    ("model,n_params,layer,multiplier,score\nx,7,,0,0.5\n", r"row 1: field 'n_params' is '7'.*write 7e9 or '7B'"),
    ("model,n_params,layer,multiplier,score\nx,seven,,0,0.5\n", r"row 1: field 'n_params' is 'seven'"),
    ("model,n_params,layer,multiplier,score\nx,7B,,0,1.5\n", r"row 1: field 'score' is '1.5'; expected a value in \[0.0, 1.0\]"),
    ("model,n_params,layer,multiplier,score\nx,7B,,1,0.5\n", r"row 1: field 'layer' is missing or empty"),
    ("model,n_params,layer,multiplier,score\nx,7B,3,1,0.5\n", r"model 'x' has no baseline row \(multiplier 0\)"),
    ("model,n_params,layer,multiplier,score\n,7B,,0,0.5\n", r"row 1: field 'model' is empty"),
    ("model,n_params,layer,multiplier,score\nx,7B,,0,0.5,9\n", r"row 1: more fields than the header"),
    ("model,n_params,layer,multiplier,score,ci_low\nx,7B,,0,0.5,0.4\n", r"row 1: give both 'ci_low' and 'ci_high'"),
    ("model,n_params,layer,multiplier,score\nx,7B,2.5,1,0.5\nx,7B,,0,0.5\n", r"row 1: field 'layer' is '2.5'; expected a whole number"),
    ("", r"bad\.csv: file is empty"),
]


@pytest.mark.parametrize("text,msg", BAD)
def test_import_errors_name_file_row_and_field(tmp_path, text, msg):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(SteerscaleError, match=msg) as e:
        load_results_table(f)
    assert "\n" not in str(e.value)


def test_import_json_errors(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('[{"model": "x", "n_params": 7e9, "layer": 1, "multiplier": 0}]')
    with pytest.raises(SteerscaleError, match=r"bad\.json: row 1: missing field 'score'"):
        load_results_table(f)
    f.write_text("[{")
    with pytest.raises(SteerscaleError, match=r"bad\.json: invalid JSON at line 1"):
        load_results_table(f)
    f.write_text('{"model": "x"}')
    with pytest.raises(SteerscaleError, match=r"bad\.json: expected a list of rows, got dict"):
        load_results_table(f)
    with pytest.raises(SteerscaleError, match=r"nope\.csv: no such file.*caa-llama2-chat"):
        load_results_table(tmp_path / "nope.csv")


def test_parse_n_params():
    assert parse_n_params("135M", "w") == 135e6 and parse_n_params("6.74e9", "w") == 6.74e9
    assert parse_n_params(13_000_000_000, "w") == 13e9 and parse_n_params("1,300,000,000", "w") == 1.3e9
