"""The findings report's tables as (header, rows) of display strings, from analyses and the scaling result.

Each function returns ``(header, rows)``: cells are already formatted (3 decimals for probabilities, signed
effects, "—" for a missing value, "∞" / "n/a" for infinite / undefined ratios); renderers escape them.
"""

from __future__ import annotations

import math


def fmt(x, spec="{:.3f}") -> str:
    """`x` formatted with `spec`; "—" for None, "n/a" for NaN, "∞" for an infinity."""
    if x is None:
        return "—"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return spec.format(x)


def model_rows(analyses) -> tuple[list[str], list[list]]:
    """One row per model: size, baseline, each sign's held-out peak (layer, depth, test Δ) and the asymmetry ratio."""
    header = ["model", "params (B)", "layers", "items (val/test)", "baseline p(refusal) [95% CI]", "letter mass",
              "peak −m: layer (depth, alt)", "Δ(−m) test [95% CI]", "peak +m: layer (depth, alt)", "Δ(+m) test [95% CI]",
              "|Δ−|/|Δ+| [95% CI]"]
    rows = []
    for a in analyses:
        b = a.baseline
        r = [a.model, f"{a.n_params / 1e9:.3g}", a.n_layers, f"{a.n_items} ({len(a.val_items)}/{len(a.test_items)})",
             f"{b['p']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}]", f"{b['letter_mass']:.2f}"]
        for sign in ("negative", "positive"):
            p = a.peaks.get(sign)
            if p is None:
                r += ["—", "—"]
            else:
                r += [f"{p.layer} ({p.depth:.2f}, {p.depth_alt:.2f})", f"{p.delta:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}]"]
        s = a.asymmetry
        r.append(f"{fmt(s.ratio, '{:.2f}')} [{fmt(s.ratio_low, '{:.2f}')}, {fmt(s.ratio_high, '{:.2f}')}]" if s else "—")
        rows.append(r)
    return header, rows


SPLIT_NOTE = ("Peak layers are chosen on the main test set's validation items. refusal-test uses the training "
              "items' answer styles (new requests); refusal-test-ood asks the same requests with answers written in "
              "styles no training item uses, so a smaller effect there is the part tied to familiar wording. "
              "Movement s·Δ: how far p moved in the multiplier's direction.")


def split_rows(rows: list[dict]) -> tuple[list[str], list[list]]:
    """The effect at each peak on each test split (``analysis.effects_at_peaks`` rows)."""
    header = ["model", "test split", "sign", "layer", "m", "items", "Δ [95% CI]", "movement s·Δ [95% CI]",
              "log-odds movement [95% CI]"]
    out = []
    for r in rows:
        lo = (f"{r['logodds_move']:+.2f} [{r['logodds_move_low']:+.2f}, {r['logodds_move_high']:+.2f}]"
              if "logodds_move" in r else "—")
        out.append([r["model"], r["test_set"], r["sign"], r["layer"], f"{r['multiplier']:+g}", r["n_items"],
                    f"{r['delta']:+.3f} [{r['delta_low']:+.3f}, {r['delta_high']:+.3f}]",
                    f"{r['move']:+.3f} [{r['move_low']:+.3f}, {r['move_high']:+.3f}]", lo])
    return header, out


def fit_rows(scaling) -> tuple[list[str], list[list]]:
    """One row per fitted form (parameters, AICc, AIC, leave-one-out error), then the paper's published curve."""
    header = ["form", "status", "parameters [95% CI]", "AICc", "AIC", "LOO RMSE", "n points", "note"]
    rows = []
    for f in scaling.fits.values():
        ps = ", ".join(f"{k} = {v:.3g}" + (f" [{f.intervals[k][0]:.3g}, {f.intervals[k][1]:.3g}]" if k in f.intervals else "")
                       for k, v in f.params.items()) or "—"
        rows.append([f.formula, f.status, ps, fmt(f.aicc, "{:.2f}"), fmt(f.aic, "{:.2f}"), fmt(f.loo_rmse, "{:.3g}"),
                     f.n_points, f.message + (" (weighted by the points' standard errors)" if f.weighted else "")])
    rows.append(["paper: y = a + b·exp(−c·x)", "published", "a = 0.081, b = 2.4, c = 0.42", "—", "—", "—", 3,
                 "Llama-2 7B/13B/70B"])
    return header, rows


def point_rows(scaling) -> tuple[list[str], list[list]]:
    """One row per scaling point (ours and imported), with the paper's curve at its size."""
    header = ["model", "params (B)", "peak s·Δ [95% CI]", "layer", "m", "source", "protocol", "in fit",
              "paper's curve here", "note"]
    rows = []
    for p, pp in zip(scaling.points, scaling.paper_at_points):
        rows.append([p.model, f"{p.n_params_b:.3g}", f"{p.y:.3f} [{fmt(p.ci_low)}, {fmt(p.ci_high)}]",
                     fmt(p.layer, "{}"), fmt(p.multiplier, "{:+g}"), p.source, p.protocol,
                     "yes" if p.include_in_fit else "no",
                     f"{pp:.3f}", p.note])
    return header, rows


def steerability_rows(a) -> tuple[list[str], list[list]]:
    """Per layer of one model: the mean per-item slope of the score against the multiplier and its spread."""
    header = ["layer", "depth", "mean per-item slope [95% CI]", "median slope", "logit-diff slope", "items wrong way",
              "items right way"]
    rows = [[r["layer"], f"{r['depth']:.2f}", f"{r['slope']:+.3f} [{r['slope_low']:+.3f}, {r['slope_high']:+.3f}]",
             f"{r['slope_median']:+.3f}", f"{r['logit_slope']:+.3f}", f"{r['frac_wrong_way']:.0%}",
             f"{r['frac_right_way']:.0%}"] for r in a.steerability]
    return header, rows


def imported_rows(imported: list[dict]) -> tuple[list[str], list[list]]:
    """Imported results (``scaling.imported_summary`` rows): each steered row's score and Δ."""
    header = ["model", "params (B)", "layer", "m", "score", "Δ", "items", "source"]
    rows = [[r["model"], f"{r['n_params_b']:.3g}", fmt(r["layer"], "{}"), f"{r['multiplier']:+g}", f"{r['score']:.3f}",
             f"{r['delta']:+.3f}", fmt(r["n_items"], "{}"), r["source"]] for r in imported]
    return header, rows


def run_rows(runs: list[dict]) -> tuple[list[str], list[list]]:
    """The reproduce runs: model, status, folder, config hash, seconds, open-ended status."""
    header = ["model", "status", "folder", "config hash", "seconds", "open-ended"]
    rows = [[r["model"], r["status"], r["folder"], r["config_hash"], r.get("seconds", "—"),
             f"{r['openended']} ({r['openended_seconds']} s)" if r.get("openended_seconds") is not None
             else (r.get("openended") or "—")] for r in runs]
    return header, rows
