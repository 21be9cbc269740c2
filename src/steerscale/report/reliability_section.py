"""The report's reliability section of one model (analysis.reliability): split-half stability, per-item
steerability at the peak layers and the test items' letter balance, as one small document section."""

from __future__ import annotations

import math
import statistics

from .document import Paragraph, Section, Table


def _f(x: float, d: int = 2, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.{d}f}" if sign else f"{x:.{d}f}"


def _letters(lb) -> str:
    counts = " / ".join(f"{n} {k}" for k, n in lb.counts.items())
    return f"{counts} (imbalance s̄ = {lb.imbalance:+.2f})"


def reliability_rows(rel, layers: list[int]) -> tuple[list[str], list[list]]:
    """Table of the measures at `layers` (e.g. the peak layers): split-half cosine, mean per-item log-odds slope
    with its interval, anti-steerable fraction with its interval."""
    head = ["layer", "split-half cos", "n items", "mean log-odds slope [95% CI]", "median slope",
            "anti-steerable (slope below 0) [95% CI]"]
    rows = []
    for layer in layers:
        s = rel.steer_at(layer)
        sh = rel.split_half.at(layer) if rel.split_half is not None and layer in rel.split_half.layers else None
        if s is None:
            continue
        rows.append([str(layer), _f(sh, 3), str(s.n_items),
                     f"{_f(s.mean_slope, 2, True)} [{_f(s.slope_low, 2, True)}, {_f(s.slope_high, 2, True)}]",
                     _f(s.median_slope, 2, True),
                     f"{s.frac_anti:.0%} [{s.frac_anti_low:.0%}, {s.frac_anti_high:.0%}]"])
    return head, rows


def reliability_section(rel, peak_layers: list[int], anchor: str) -> Section:
    """One model's section: what each measure is, the split-half range over all layers and its cost, the test
    items' letters, and the table at the peak layers."""
    text = [f"Reliability of the steering vector (after Tan et al. 2024). Per-item steerability: each test item's "
            f"least-squares slope of its log-odds (matching vs non-matching answer) in the multiplier; an item is "
            f"anti-steerable when its slope is below 0. Intervals: bootstrap 95% over items."]
    sh = rel.split_half
    if sh is not None:
        ok = [c for c in sh.cosine if not math.isnan(c)]
        rng = f"min {min(ok):.3f}, median {statistics.median(ok):.3f}, max {max(ok):.3f}" if ok else "n/a"
        text.append(f"Split-half stability: cosine between the vectors ({sh.estimator} estimator) of two seeded, "
                    f"letter-stratified halves of the training pairs ({_letters(sh.letters_a)} and "
                    f"{_letters(sh.letters_b)}), over the {len(sh.layers)} layers: {rng}; the two extra training "
                    f"passes took {sh.seconds:.0f} s.")
    else:
        text.append("Split-half stability: not measured ([run] split_half = false, or an older run).")
    if rel.test_letters is not None:
        text.append(f"Test items by matching letter: {_letters(rel.test_letters)}.")
    blocks = [Paragraph(" ".join(text))]
    head, rows = reliability_rows(rel, peak_layers)
    if rows:
        blocks.append(Table(head, rows))
    return Section(f"Reliability: {rel.model}", blocks=blocks, level=3, anchor=anchor)
