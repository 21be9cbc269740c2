"""report/tables.py: cells for missing, undefined and infinite values, and rows in the header's order."""

from __future__ import annotations

from steerscale.report.tables import fmt, imported_rows, run_rows


def test_fmt_missing_undefined_infinite():
    assert fmt(None) == "—" and fmt(float("nan")) == "n/a" and fmt(float("inf")) == "∞"
    assert fmt(0.12345) == "0.123" and fmt(2, "{:+d}") == "+2"


def test_rows_follow_the_header_and_mark_what_is_missing():
    header, rows = imported_rows([{"model": "llama-7b", "n_params_b": 6.738, "layer": None, "multiplier": -1.0,
                                   "score": 0.41234, "delta": -0.05, "n_items": 50, "source": "paper.csv"}])
    assert dict(zip(header, rows[0])) == {"model": "llama-7b", "params (B)": "6.74", "layer": "—", "m": "-1",
                                          "score": "0.412", "Δ": "-0.050", "items": "50", "source": "paper.csv"}
    header, rows = run_rows([{"model": "m", "status": "ran", "folder": "out/m", "config_hash": "ab12",
                              "openended": "skipped"},
                             {"model": "n", "status": "ran", "folder": "out/n", "config_hash": "cd34", "seconds": 3,
                              "openended": "ran", "openended_seconds": 7}])
    assert [dict(zip(header, r))["seconds"] for r in rows] == ["—", 3]
    assert [dict(zip(header, r))["open-ended"] for r in rows] == ["skipped", "ran (7 s)"]
