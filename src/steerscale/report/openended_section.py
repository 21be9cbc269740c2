"""The open-ended part of the findings report: per model, its figures, verdicts, table and example generations.

:func:`openended_section` reads one model's open-ended results (``openended.read_openended`` plus "folder"),
writes its two figures into that folder, and returns the section's content and its summary.json entry;
:func:`openended_block` turns that content into a document :class:`~.document.Section`.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..analysis.verdicts import _ci_str, _fmt_num, check_openended
from .document import Figure, Paragraph, Section, Table, Verdict, Verdicts
from .plots import plot_openended_layers, plot_tradeoff


def openended_section(oe: dict) -> dict:
    """One model's open-ended sweep (openended.read_openended plus "folder"): figures (written into the folder),
    verdicts, a layer x multiplier table and example generations. Returns {"title", "figures": [(png, caption)],
    "intro", "verdicts", "table": (header, rows), "examples": (header, rows), "summary"}."""
    agg, folder, man = oe["aggregate"], Path(oe["folder"]), oe["manifest"]
    model = agg[0]["model"]
    bound = man.get("config", {}).get("ce_bound")
    figs = [(plot_tradeoff(agg, folder / "tradeoff")[0],
             f"{model}: change in refusal log-odds on harmful prompts against the CE increase on neutral text, one "
             f"marker per steered layer and multiplier (label: layer).")]
    if any(r["width"] == 1 for r in agg):
        figs.append((plot_openended_layers(agg, folder / "openended_layers")[0],
                     f"{model}: refusal log-odds on harmful and harmless prompts and CE increase against the steered "
                     f"layer, one line per multiplier (bands: bootstrap 95% over prompts / paragraphs)."))
    verdicts = check_openended(agg, bound)
    base = next(r for r in agg if r["multiplier"] == 0)
    greedy = [g for g in oe["generations"] if g.get("mode", "greedy") == "greedy"]
    n_gen = {k: sum(g["kind"] == k for g in greedy if g["multiplier"] == 0 and g["layer_start"] == base["layer_start"]
                    and g["layer_end"] == base["layer_end"]) for k in ("harmful", "harmless")}
    intro = (f"Unsteered: refusal log-odds at the first response token {_ci_str(base, 'logodds_harmful')} on "
             f"{base.get('n_harmful')} harmful prompts, {_ci_str(base, 'logodds_harmless')} on {base.get('n_harmless')} "
             f"harmless prompts; phrase refusal in greedy generations {_fmt_num(base.get('phrase_refusal_harmful'), '{:.2f}')}"
             f" (harmful, n = {n_gen['harmful']}) and {_fmt_num(base.get('phrase_refusal_harmless'), '{:.2f}')} "
             f"(harmless, n = {n_gen['harmless']}); CE on {man.get('prompts', {}).get('n_neutral', '?')}"
             f" neutral paragraphs {_ci_str(base, 'ce', '{:.3f}')} nats/token. "
             f"Steering adds m × vector[L] (the A/B sweep's vectors) to the output of layer L at "
             f"{'every position' if man.get('config', {}).get('positions', 'all') == 'all' else 'positions from the instruction end'}"
             f"; Δ = steered − unsteered on the same prompts (paired bootstrap 95%); difference = Δ harmful − Δ "
             f"harmless (the two prompt sets resampled independently).")
    header = ["layer", "depth", "m", "Δ log-odds harmful [95% CI]", "Δ log-odds harmless [95% CI]",
              "difference [95% CI]", f"phrase refusal harmful / harmless (n = {n_gen['harmful']} / {n_gen['harmless']})",
              "CE increase (nats/token) [95% CI]"] + ([f"CE ≤ {bound:g}"] if bound is not None else [])
    rows = []
    for r in sorted((r for r in agg if r["multiplier"] != 0), key=lambda r: (r["width"], r["layer_start"], r["multiplier"])):
        layer = str(r["layer_start"]) if r["width"] == 1 else f"{r['layer_start']}–{r['layer_end']}"
        rows.append([layer, f"{r['depth']:.2f}", f"{r['multiplier']:+g}", _ci_str(r, "delta_logodds_harmful"),
                     _ci_str(r, "delta_logodds_harmless"), _ci_str(r, "delta_logodds_contrast"),
                     f"{_fmt_num(r.get('phrase_refusal_harmful'), '{:.2f}')} / "
                     f"{_fmt_num(r.get('phrase_refusal_harmless'), '{:.2f}')}", _ci_str(r, "ce_delta", "{:+.3f}")]
                    + (["yes" if r.get("ce_delta", math.nan) <= bound else "no"] if bound is not None else []))
    examples = ([], [])
    if verdicts and greedy:
        layer = next((v for v in verdicts if v["sign"] == "positive"), verdicts[0])["layer"]
        ms = [v["multiplier"] for v in verdicts]
        out = {(g["kind"], g["prompt_id"], g["multiplier"]): g for g in greedy
               if g["layer_start"] == layer and g["layer_end"] == layer}
        ex_header = ["kind", "prompt", "unsteered (m = 0)"] + [f"layer {layer}, m = {m:+g}" for m in ms]
        ex_rows = []
        for kind in ("harmful", "harmless"):
            ids = list(dict.fromkeys(g["prompt_id"] for g in greedy if g["kind"] == kind))[:2]
            for pid in ids:
                first = out.get((kind, pid, ms[0]))
                if first is not None:
                    ex_rows.append([kind, first["prompt"], first["unsteered_output"]]
                                   + [out[(kind, pid, m)]["output"] if (kind, pid, m) in out else "—" for m in ms])
        examples = (ex_header, ex_rows)
    summary = {"model": model, "folder": str(folder), "ce_bound": bound, "verdicts": verdicts,
               "baseline": {k: base.get(k) for k in ("logodds_harmful", "logodds_harmless", "phrase_refusal_harmful",
                                                     "phrase_refusal_harmless", "ce")},
               "rows": [{k: r.get(k) for k in ("layer_start", "layer_end", "multiplier", "delta_logodds_harmful",
                                                "delta_logodds_harmful_low", "delta_logodds_harmful_high",
                                                "delta_logodds_harmless", "delta_logodds_harmless_low",
                                                "delta_logodds_harmless_high", "delta_logodds_contrast",
                                                "delta_logodds_contrast_low", "delta_logodds_contrast_high",
                                                "phrase_refusal_harmful", "phrase_refusal_harmless", "ce_delta",
                                                "ce_delta_low", "ce_delta_high")}
                        for r in agg if r["multiplier"] != 0],
               "timings_s": man.get("timings_s")}
    return {"title": f"{model}: open-ended refusal and capability cost", "figures": figs, "intro": intro,
            "verdicts": verdicts, "table": (header, rows), "examples": examples, "summary": summary}


def openended_block(sec: dict) -> Section:
    """The document section of one model's open-ended results (`sec` from :func:`openended_section`): intro,
    verdicts, figures, the layer x multiplier table and, when there are any, the example generations."""
    out = Section(sec["title"], level=3)
    out.add(Paragraph(sec["intro"]))
    out.add(Verdicts([Verdict(v["verdict"], v["claim"], v["why"], v["numbers"], v.get("model", ""))
                      for v in sec["verdicts"]]))
    for p, cap in sec["figures"]:
        out.add(Figure(p, cap))
    out.add(Table(*sec["table"]))
    if sec["examples"][1]:
        out.add(Section("Example generations (greedy), unsteered and steered side by side", level=4, md_heading=False,
                        blocks=[Paragraph("Example generations (greedy):", only="markdown"),
                                Table(*sec["examples"], num_from=99)]))
    return out
