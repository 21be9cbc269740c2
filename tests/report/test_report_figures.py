"""Issue 20 figures: no interval is clipped, a zero line, and the paper's curve only inside its fitted range."""

from types import SimpleNamespace

import pytest

from steerscale.report import plots
from steerscale.scaling.comparison import fit_scaling
from steerscale.scaling.points import ScalingPoint


@pytest.fixture
def figs(monkeypatch):
    """Capture each figure a plot function saves (the files are still written)."""
    got = []
    orig = plots.save_figure

    def keep(fig, path):
        got.append((fig, [a.get_ylim() for a in fig.axes], [t.get_text() for a in fig.axes for t in a.texts],
                    [a.get_title() for a in fig.axes], [a.get_legend_handles_labels()[1] for a in fig.axes],
                    [[ln.get_ydata() for ln in a.lines] for a in fig.axes]))
        return orig(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return got


def test_interval_ylim_contains_every_end_and_zero():
    lo, hi = plots.interval_ylim([0.4, 0.9, 1.7, float("nan"), None])
    assert lo < 0 < 0.4 and hi > 1.7
    lo, hi = plots.interval_ylim([-0.6, -0.2])
    assert lo < -0.6 and hi > 0


def _peak(move, lo, hi):
    return SimpleNamespace(move=move, move_ci=(lo, hi))


def test_asymmetry_limits_contain_wide_intervals(tmp_path, figs):
    # an interval far above the estimate (the old 1.3 × max(estimate) limit clipped it) and one below zero
    a = SimpleNamespace(model="tiny", asymmetry=SimpleNamespace(move_negative=0.10, move_positive=0.05, ratio=2.0,
                                                                ratio_low=0.5, ratio_high=float("inf")),
                        peaks={"negative": _peak(0.10, -0.30, 0.80), "positive": _peak(0.05, -0.02, 0.12)})
    plots.plot_asymmetry([a], tmp_path / "asym")
    (y0, y1), = figs[-1][1]
    assert y0 < -0.30 and y1 > 0.80
    assert len(set(figs[-1][4][0])) == len(figs[-1][4][0]) == 2  # distinct legend labels per sign
    assert any(all(v == 0 for v in ys) for ys in figs[-1][5][0])  # the zero line


def test_scaling_small_model_paper_curve_only_in_range(tmp_path, figs):
    pts = [ScalingPoint("SmolLM2-135M", 0.135, 0.12, -0.05, 0.45), ScalingPoint("Qwen-0.5B", 0.5, -0.08, -0.20, 0.04)]
    res = fit_scaling(pts, n_boot=20)
    plots.plot_scaling(res, tmp_path / "scaling")
    fig, ylims, texts, titles, labels, _ = figs[-1]
    (y0, y1), = ylims
    assert y0 < -0.20 and y1 > 0.45
    note = plots.paper_extrapolation_note(0.135)
    assert note in texts and "extrapolation" in note and "0.135B" in note
    paper_line = next(ln for ln in fig.axes[0].lines if ln.get_label().startswith("paper"))
    xs = paper_line.get_xdata()
    assert min(xs) >= 7.0 and max(xs) <= 70.0
    assert "no fit" in titles[0] or "our fits" in titles[0]
    if not any(f.ok for f in res.fits.values()):
        assert "our fits" not in titles[0]


def test_scaling_in_range_has_no_extrapolation_note(tmp_path, figs):
    res = fit_scaling([ScalingPoint("A-7B", 7.0, 0.5, 0.3, 0.7), ScalingPoint("B-13B", 13.0, 0.3, 0.1, 0.5)], n_boot=20)
    plots.plot_scaling(res, tmp_path / "scaling")
    assert not any("extrapolation" in t for t in figs[-1][2])


def test_showcase_openended_legend_tells_every_series_apart(tmp_path, monkeypatch):
    from matplotlib.colors import to_hex

    from steerscale.showcase import plots as showcase_plots

    got = []
    orig = showcase_plots._save_png
    monkeypatch.setattr(showcase_plots, "_save_png", lambda fig, path: (got.append(
        [(ln.get_label(), to_hex(ln.get_color()), ln.get_linestyle(), ln.get_marker()) for ln in fig.axes[0].lines
         if not ln.get_label().startswith("_")]), orig(fig, path))[1])
    rows = [{"model": "tiny", "layer": layer, "multiplier": m,
             **{f"delta_logodds_{s}{e}": v for s in ("harmful", "harmless")
                for e, v in (("", 0.1 * m), ("_low", 0.1 * m - 0.2), ("_high", 0.1 * m + 0.2))}}
            for layer in (1, 2) for m in (-4.0, -2.0, 2.0, 4.0)]
    showcase_plots.plot_openended(rows, tmp_path / "oe.png")
    series = got[-1]
    assert len(series) == 8
    assert len({s[0] for s in series}) == 8  # labels
    assert len({s[1] for s in series}) == 8  # colours
    minus4, plus4 = (next(s for s in series if s[0] == f"harmful prompts, m = {m}") for m in ("-4", "+4"))
    assert minus4[1] != plus4[1] and minus4[2] != plus4[2] and minus4[3] != plus4[3]


def test_found_box_at_the_top_from_the_numbers(tmp_path):
    """The "What this run found" box: above the claims in both formats, the largest effect with its interval,
    inconclusive claims with their reason, and the small-sample note when an interval rests on < 10 items."""
    from synth import bump, make_rows

    from steerscale.analysis.model import analyze
    from steerscale.analysis.verdicts import check_asymmetry_claim, check_depth_claim
    from steerscale.report.findings import write_report

    a = analyze(make_rows(n_items=12, layers=[0, 2, 4], n_layers=6, effect=bump(2, 0.3), model="m"), n_boot=50)
    scaling = fit_scaling([ScalingPoint("m", 0.135, a.peaks["positive"].move)], n_boot=10)
    claims = [check_depth_claim(a), check_asymmetry_claim(a)]
    paths = write_report(tmp_path / "out", [a], scaling, claims)
    html, md = paths["html"].read_text(), paths["md"].read_text()
    assert html.index("What this run found") < html.index("<h2 id='claims'>")
    assert md.index("## What this run found") < md.index("## Claims")
    best = max(a.peaks.values(), key=lambda p: abs(p.move))
    lo, hi = best.move_ci
    assert f"{best.move:+.3f} [{lo:+.3f}, {hi:+.3f}]" in md
    for c in claims:
        if c["verdict"] == "inconclusive":
            assert c["why"].split(";")[0] in md
    assert best.n_test < 10 and "small sample" in md  # 12 items split in halves: 6 test items
