"""The gradient screen's part of the findings report: per model, the screen beside the exact points.

:func:`screen_section` turns one sweep manifest's ``screen`` record (``screening.screen_record``) into a
document :class:`~.document.Section`: a sentence saying what was measured and what was not, and per sign a
table of every layer in screen order with its predicted movement, whether it was measured exactly, its exact
movement on the validation items and the exact/predicted ratio (screened-out layers: "not measured").
"""

from __future__ import annotations

from .document import Paragraph, Section, Table


def _num(x, fmt="{:+.4f}") -> str:
    return "not measured" if x is None else fmt.format(x)


def screen_section(model: str, screen: dict, anchor: str | None = None) -> Section:
    """The report section of one model's gradient screen (see the module docstring)."""
    measured, skipped = screen.get("measured_layers") or [], screen.get("not_measured") or []
    n_layers = len(measured) + len(skipped)
    found = screen.get("spot_findings") or []
    spot = ", ".join(map(str, screen.get("spot_layers") or [])) or "none"
    text = (f"{model}: the gradient screen (d(score)/dm at m = 0, one forward + one backward pass per batch on "
            f"{screen.get('n_val_items')} validation items) ranked all {n_layers} layers; the exact engine measured "
            f"{len(measured)} of them (the top {screen.get('confirm_top')} of each sign, and the spot-checked layers "
            f"{spot}). The other {len(skipped)} layers were not measured: they have no interval and are never a "
            f"peak, and each reported peak is the best of the {len(measured)} measured layers. ")
    if found:
        text += ("The spot check found screened-out layer(s) " + ", ".join(
            f"{f['layer']} ({f['sign']}: exact movement {f['exact_move']:+.4f} > {f['kth_confirmed_move']:+.4f}, the "
            f"K-th confirmed layer's; screen rank {f['screen_rank']})" for f in found)
            + " and widened K: the screen's ranking was wrong there.")
    else:
        text += "No spot-checked layer beat the K-th confirmed layer."
    text += (" The prediction is first order (m · gradient): it ranks layers but is not an effect size, and it is "
             "the same for +m and −m; the ratio column shows how far the exact movement departs from it.")
    blocks = [Paragraph(text)]
    for sign, rec in (screen.get("signs") or {}).items():
        rows = [[str(r["layer"]), str(r["screen_rank"]), f"{r['predicted_move']:+.4f}",
                 "confirmed" if r["confirmed"] else ("spot check" if r["spot_checked"] else
                                                     ("measured" if r["measured"] else "not measured")),
                 _num(r.get("exact_move_val")), _num(r.get("ratio"), "{:.2f}")]
                for r in rec["layers"]]
        blocks.append(Paragraph(f"{sign} steering, m = {rec['multiplier']:+g}: K = {rec['confirm_top_final']}"
                                + (" (widened by the spot check)" if rec.get("widened") else "")))
        blocks.append(Table(["layer", "screen rank", "predicted s·Δ (val)", "status", "exact s·Δ (val)",
                             "exact / predicted"], rows))
    return Section(f"Gradient screen: {model}", blocks=blocks, anchor=anchor or f"screen-{model}")
