"""The "What this run found" box at the top of the findings report: a few lines built from the numbers.

:func:`found_section` takes the model analyses and the claim verdicts and returns a :class:`Section` (anchor
"found") that both renderers show before the claim-by-claim verdicts: the largest measured peak effects with
their 95% intervals (on the test items, ranked by |s·Δ|), then what is inconclusive and why (one line per
inconclusive claim, the first clause of its reason), and a small-sample note where an interval rests on fewer
than :data:`SMALL_N` items. Nothing in it is written by hand: every number is read from the analyses.
"""

from __future__ import annotations

from .document import Notes, Paragraph, Section

SMALL_N = 10  # an interval on fewer units than this gets a visible note
TOP = 3  # largest effects listed
MAX_INCONCLUSIVE = 4  # inconclusive claims listed (the rest counted)


def _effect_line(a, p) -> str:
    lo, hi = p.move_ci
    side = ("moves the intended way (interval excludes 0)" if lo > 0 else
            "moves the wrong way (interval excludes 0)" if hi < 0 else "interval includes 0")
    return (f"{a.model}, m = {p.multiplier:+g} at layer {p.layer} (depth {p.depth:.2f}): movement s·Δ p = "
            f"{p.move:+.3f} [{lo:+.3f}, {hi:+.3f}] on {p.n_test} test items: {side}"
            + (f" (small sample: fewer than {SMALL_N} items)" if p.n_test < SMALL_N else ""))


def found_section(analyses, claims: list[dict]) -> Section:
    """The box: largest effects with intervals, what is inconclusive and why, small-sample notes."""
    peaks = [(a, p) for a in analyses for p in a.peaks.values() if p is not None]
    peaks.sort(key=lambda ap: -abs(ap[1].move))
    blocks = []
    if peaks:
        blocks.append(Paragraph("Largest measured effects (95% intervals):"))
        blocks.extend(Paragraph(f"• {_effect_line(a, p)}") for a, p in peaks[:TOP])
    else:
        blocks.append(Paragraph("No peak was measured (no ±m pair swept)."))
    inc = [c for c in claims if c.get("verdict") == "inconclusive"]
    if inc:
        lines = [f"{c['claim']}" + (f" ({c['model']})" if c.get("model") else "") + ": "
                 + str(c.get("why", "")).split(";")[0] for c in inc[:MAX_INCONCLUSIVE]]
        more = f"; and {len(inc) - MAX_INCONCLUSIVE} more (see the claims below)" if len(inc) > MAX_INCONCLUSIVE else ""
        blocks.append(Paragraph(f"Inconclusive ({len(inc)} of {len(claims)} claims): " + "; ".join(lines) + more + "."))
    decided = [c for c in claims if c.get("verdict") in ("supported", "not supported")]
    if decided:
        blocks.append(Paragraph("Decided: " + "; ".join(f"{c['claim']}" + (f" ({c['model']})" if c.get("model") else "")
                                                        + f": {c['verdict']}" for c in decided) + "."))
    small = sorted({p.n_test for _, p in peaks if p.n_test < SMALL_N})
    if small:
        blocks.append(Notes([f"small sample: the peak intervals rest on {', '.join(map(str, small))} test item(s) "
                             f"(fewer than {SMALL_N}); read them as rough"]))
    return Section("What this run found", anchor="found", md_title="What this run found", blocks=blocks)
