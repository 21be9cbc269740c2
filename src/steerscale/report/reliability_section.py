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


def letter_text(fig, peak_layers: list[int]) -> str:
    """What the model's vector is made of (its ``meta["letter"]``, ``letters.LetterFigures``), in one paragraph."""
    if fig is None:
        return ("The vector's letter content: not recorded (an imported file or one written before the letter "
                "estimators); its share of the answer-letter direction is unknown (docs/letter.md).")
    cos = [c for c in fig.cos_letter if c is not None]
    at = []
    for l in peak_layers:
        if 0 <= l < len(fig.vector_norm):
            ln, bn, c = fig.letter_norm[l], fig.behaviour_norm[l], fig.cos_letter[l]
            at.append(f"layer {l}: |l| {ln:.3g}, |r| {bn:.3g}, |v| {fig.vector_norm[l]:.3g}"
                      + (f", cos(v, l) {c:+.2f}" if c is not None else "") if ln is not None and bn is not None
                      else f"layer {l}: |v| {fig.vector_norm[l]:.3g}")
    counts = " / ".join(f"{n} {m}" for m, n in fig.counts.items())
    share = ("not measurable (a letter never matches)" if math.isinf(fig.max_share)
             else f"at most {100 * fig.max_share:.1f}% of |v|")
    text = (f"The vector's letter content (docs/letter.md): estimator {fig.estimator}; training pairs by matching "
            f"letter {counts} (imbalance s̄ = {fig.imbalance:+.3f}); the imbalance term s̄·l is "
            f"{share} over the layers; cos(v, l) "
            f"{f'{min(cos):+.2f} to {max(cos):+.2f}' if cos else 'not estimable'}")
    text += f"; at the peak layers, {'; '.join(at)}." if at else "."
    if fig.max_share > 0.10:
        text += " More than 10% of this vector is the answer-letter direction: it steers the letter, not only the behaviour."
    return text


def reliability_section(rel, peak_layers: list[int], anchor: str, letters=None) -> Section:
    """One model's section: what each measure is, the split-half range over all layers and its cost, the test
    items' letters, the vector's letter content (`letters`: its ``LetterFigures`` or None), and the table at the
    peak layers."""
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
    blocks = [Paragraph(" ".join(text)), Paragraph(letter_text(letters, peak_layers))]
    head, rows = reliability_rows(rel, peak_layers)
    if rows:
        blocks.append(Table(head, rows))
    return Section(f"Reliability: {rel.model}", blocks=blocks, level=3, anchor=anchor)
