"""Verdicts on the paper's claims, from analysed results: supported / not supported / inconclusive.

Every rule here is symmetric: "supported" and "not supported" each need the evidence (an interval)
to lie on their side; anything else is "inconclusive". Simulated worlds with a known truth test
these rules (tests/analysis/test_verdicts.py). The functions are re-exported by ``steerscale.analysis``.
Each returns ``{"claim", "model", "verdict", "why", "numbers"}``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no runtime import: analysis re-exports this module
    from .model import ModelAnalysis

DEPTH_CLAIM = 0.4
DEPTH_TOLERANCE = 0.1
DEPTH_BAND = (DEPTH_CLAIM - DEPTH_TOLERANCE, DEPTH_CLAIM + DEPTH_TOLERANCE)
_EPS = 1e-9


def check_depth_claim(a: "ModelAnalysis", sign: str = "negative") -> dict:
    """Paper: the effect peaks at about 40% depth (depth = L / n_layers in 0.3–0.5).

    Symmetric rule on the bootstrap interval of the *selected* depth (the peak re-chosen on resampled
    validation items): supported when the held-out effect moves p the intended way (test interval of
    s·Δ above 0) and the whole depth interval lies within 0.3–0.5; not supported when the effect is real
    and the whole depth interval lies outside the band; inconclusive otherwise (including every case
    where the chosen layer does not move p the intended way, and a world with the same effect at every
    layer, whose selected depth wanders over all layers)."""
    claim = f"{sign} steering peaks at ~40% depth"
    p = a.peaks.get(sign)
    if p is None:
        return {"claim": claim, "model": a.model, "verdict": "inconclusive",
                "why": f"no {sign} multiplier swept", "numbers": ""}
    lo_b, hi_b = DEPTH_BAND
    nums = (f"{sign} peak at layer {p.layer} of {a.n_layers} (depth {p.depth:.2f} = L/n_layers, "
            f"{p.depth_alt:.2f} = L/(n_layers−1); depth interval [{p.depth_ci_low:.2f}, {p.depth_ci_high:.2f}]; "
            f"chosen in {p.selection_stability:.0%} of validation resamples); test Δ = {p.delta:+.3f} "
            f"[{p.ci_low:+.3f}, {p.ci_high:+.3f}] on {p.n_test} items")
    if p.in_sample:
        nums += " (in-sample: layer chosen on the same items)"
    if getattr(p, "screened", False):
        nums += f"; layer: {p.selection_text}"
    if not p.right_way:
        verdict = "inconclusive"
        why = ("the chosen layer moves p the wrong way on test items" if p.significant else
               "the effect at the chosen layer is not distinguishable from 0 on test items")
    elif p.depth_ci_low >= lo_b - _EPS and p.depth_ci_high <= hi_b + _EPS:
        verdict, why = "supported", f"the depth interval lies within {lo_b:.1f}–{hi_b:.1f}"
    elif p.depth_ci_high < lo_b - _EPS or p.depth_ci_low > hi_b + _EPS:
        verdict, why = "not supported", f"the depth interval lies outside {lo_b:.1f}–{hi_b:.1f}"
    else:
        verdict, why = "inconclusive", (f"the depth interval [{p.depth_ci_low:.2f}, {p.depth_ci_high:.2f}] "
                                        f"overlaps {lo_b:.1f}–{hi_b:.1f} without lying inside it")
    wrong = a.wrong_way.get(sign) if getattr(a, "wrong_way", None) else None
    if wrong:
        why += f"; layer(s) {', '.join(str(r['layer']) for r in wrong)} move p the wrong way (reported apart)"
    return {"claim": claim, "model": a.model, "verdict": verdict, "why": why, "numbers": nums}


def check_asymmetry_claim(a: "ModelAnalysis") -> dict:
    """Paper: negative steering is stronger than positive.

    Compares the movement in each multiplier's direction (−Δ(−m) vs +Δ(+m), each at its own peak, test
    items) in probability *and* in log-odds of the mean score. Supported when the negative peak moves p
    the intended way and the difference's interval is above 0 on both scales; not supported when it is
    below 0 on both; inconclusive otherwise, in particular when probability says "stronger" but log-odds
    does not: then the gap may be only the headroom the baseline leaves (from 0.74, +m can add at most
    0.26)."""
    s = a.asymmetry
    claim = "negative steering is stronger than positive"
    if s is None:
        return {"claim": claim, "model": a.model, "verdict": "inconclusive", "why": "no ±m pair swept", "numbers": ""}
    m = s.magnitude
    nums = (f"movement under −{m:g}: {s.move_negative:+.3f} (layer {s.layer_negative}), under +{m:g}: "
            f"{s.move_positive:+.3f} (layer {s.layer_positive}), from baseline {s.baseline:.3f}; ratio "
            f"{_fmt_ratio(s.ratio)} [{_fmt_ratio(s.ratio_low)}, {_fmt_ratio(s.ratio_high)}]; difference "
            f"{s.diff:+.3f} [{s.diff_low:+.3f}, {s.diff_high:+.3f}]; in log-odds {s.logodds_negative:+.2f} vs "
            f"{s.logodds_positive:+.2f}, difference {s.logodds_diff:+.2f} [{s.logodds_diff_low:+.2f}, "
            f"{s.logodds_diff_high:+.2f}] on {s.n_test} test items")
    if getattr(a, "screen", None):
        nums += ("; both peaks are the best of the exactly measured layers (gradient screen; exact points only: the "
                 "screen's first-order prediction is symmetric in m and says nothing about asymmetry)")
    neg = a.peaks.get("negative")
    p_above, p_below = s.diff_low > 0, s.diff_high < 0
    l_above, l_below = s.logodds_diff_low > 0, s.logodds_diff_high < 0
    if p_above and l_above and neg is not None and neg.right_way:
        verdict, why = "supported", "the difference's interval is above 0 in probability and in log-odds"
    elif p_below and l_below:
        verdict, why = "not supported", "positive steering moves p further (interval below 0 on both scales)"
    elif p_above and not l_above:
        verdict, why = "inconclusive", ("stronger in probability but not in log-odds: the gap may be the headroom "
                                        f"the baseline {s.baseline:.2f} leaves to each direction")
    elif p_above:
        verdict, why = "inconclusive", "negative steering does not move p the intended way on test items"
    else:
        verdict, why = "inconclusive", "the difference's interval includes 0 on at least one scale"
    return {"claim": claim, "model": a.model, "verdict": verdict, "why": why, "numbers": nums}


def _fmt_ratio(x: float) -> str:
    return "∞" if math.isinf(x) else ("n/a" if math.isnan(x) else f"{x:.2f}")


# ---------------------------------------------------------------- open-ended refusal (openended.run_openended)


def _ci_str(r: dict, key: str, fmt: str = "{:+.2f}") -> str:
    """'value [low, high]' of an aggregate column (value alone when the row has no interval)."""
    v = r.get(key)
    if v is None or v != v:
        return "n/a"
    lo, hi = r.get(f"{key}_low"), r.get(f"{key}_high")
    if lo is None or hi is None:
        return fmt.format(v)
    return f"{fmt.format(v)} [{_fmt_num(lo, fmt)}, {_fmt_num(hi, fmt)}]"


def _fmt_num(x, fmt: str) -> str:
    return "n/a" if x is None or x != x else fmt.format(x)


def _beyond_zero(r: dict, key: str, sign: int) -> bool:
    """The interval of `key` lies entirely on the `sign` side of 0."""
    lo, hi = r.get(f"{key}_low"), r.get(f"{key}_high")
    return (lo is not None and lo == lo and lo > 0) if sign > 0 else (hi is not None and hi == hi and hi < 0)


def check_openended(aggregate: list[dict], ce_bound: float | None = None) -> list[dict]:
    """Per multiplier sign (its largest |m|, single-layer points): does steering move the refusal log-odds on
    harmful prompts more than on harmless ones, in the multiplier's direction, and at what cross-entropy cost?

    The layer examined is the one with the largest change on harmful prompts in the multiplier's direction,
    chosen on the same prompts (optimistic). Supported when the interval of (Δ harmful − Δ harmless) at that
    layer lies on the multiplier's side of 0, not supported when it lies on the other side, else inconclusive.
    The CE increase there is "under" the bound when its whole interval is <= the bound, "over" when above it.
    """
    rows = [r for r in aggregate if r["width"] == 1]
    base = next((r for r in rows if r["multiplier"] == 0), {})
    out = []
    for sign, name in ((-1, "negative"), (1, "positive")):
        ms = {r["multiplier"] for r in rows if r["multiplier"] * sign > 0}
        if not ms:
            continue
        m = max(ms, key=abs)
        rs = [r for r in rows if r["multiplier"] == m]
        best = max(rs, key=lambda r: -math.inf if math.isnan(r["delta_logodds_harmful"])
                   else sign * r["delta_logodds_harmful"])
        direction = "up" if sign > 0 else "down"
        claim = f"{name} steering (m = {m:+g}) moves open-ended refusal {direction} on harmful prompts more than on harmless"
        if _beyond_zero(best, "delta_logodds_contrast", sign):
            verdict, why = "supported", "the interval of the difference lies on the multiplier's side of 0"
        elif _beyond_zero(best, "delta_logodds_contrast", -sign):
            verdict, why = "not supported", "harmless prompts move more (the difference's interval is on the other side of 0)"
        else:
            verdict, why = "inconclusive", "the interval of the difference includes 0"
        n_sel = sum(_beyond_zero(r, "delta_logodds_contrast", sign) for r in rs)
        ce_verdict = None
        if ce_bound is not None and best.get("ce_delta") == best.get("ce_delta"):
            lo, hi = best.get("ce_delta_low", best["ce_delta"]), best.get("ce_delta_high", best["ce_delta"])
            ce_verdict = "under" if hi <= ce_bound else ("over" if lo > ce_bound else "straddles")
        n_under = sum(r.get("ce_delta", math.nan) <= ce_bound for r in rs) if ce_bound is not None else None
        why = (f"at layer {best['layer_start']} (largest change on harmful prompts, chosen on these same prompts): "
               f"{why}; harmful moved more than harmless at {n_sel} of {len(rs)} layers")
        if ce_verdict:
            how = {"under": "is under", "over": "is over", "straddles": "straddles"}[ce_verdict]
            why += (f"; CE increase at that layer {how} the bound {ce_bound:g} nats/token (its interval)"
                    + f", and its point estimate is within the bound at {n_under} of {len(rs)} layers")
        nums = (f"layer {best['layer_start']}, m = {m:+g}: Δ refusal log-odds harmful {_ci_str(best, 'delta_logodds_harmful')}"
                f" (n = {best.get('n_harmful', '?')}), harmless {_ci_str(best, 'delta_logodds_harmless')} "
                f"(n = {best.get('n_harmless', '?')}), difference {_ci_str(best, 'delta_logodds_contrast')}; "
                f"CE increase {_ci_str(best, 'ce_delta', '{:+.3f}')} nats/token; phrase refusal on harmful "
                f"generations {_fmt_num(base.get('phrase_refusal_harmful'), '{:.2f}')} unsteered → "
                f"{_fmt_num(best.get('phrase_refusal_harmful'), '{:.2f}')}")
        out.append({"claim": claim, "model": best["model"], "sign": name, "multiplier": m, "layer": best["layer_start"],
                    "verdict": verdict, "ce_bound": ce_bound, "ce_verdict": ce_verdict, "n_layers_selective": n_sel,
                    "n_layers_under_bound": n_under, "n_layers": len(rs), "why": why, "numbers": nums})
    return out
