"""The findings report of `steerscale reproduce` / `steerscale report`: figures, report.html, report.md, summary.json.

:func:`write_report` draws every figure (``report.plots``), builds one :class:`~.document.Document`
(:func:`findings_document`) and renders it twice: ``report.html`` (self-contained) and ``report.md`` (the short
version: blocks marked ``only="html"`` are left out). ``summary.json`` holds the same numbers as data. Every file
is written atomically.
"""

from __future__ import annotations

import json as _json
import math
from pathlib import Path

import numpy as np

from ..io.store import atomic_write_text
from .document import (ClaimsTable, Code, Details, Document, Em, Figure, Notes, Paragraph, Preformatted, Section,
                       Strong, Table, Verdict)
from .found import found_section
from .html import render_html
from .markdown import render_markdown
from .openended_section import openended_block, openended_section
from .plots import DEPTH_NOTE, plot_asymmetry, plot_depth, plot_heatmap, plot_model_sweep, plot_scaling
from .tables import (SPLIT_NOTE, fit_rows, imported_rows, model_rows, point_rows, run_rows, split_rows,
                     steerability_rows)

TITLE = "steerscale: activation steering findings"

INTRO_HTML = [
    "Contrastive Activation Addition (CAA) on refusal, checking the claims of ",
    Em("Scaling laws for activation steering with Llama 2 models and refusal mechanisms"),
    " (arXiv 2507.11771). Score: p(refusing letter) / (p(A) + p(B)) after '(' . Steering adds m × vector[L] to the "
    "output of decoder layer L. Effect Δ = p(L, m) − p(0). Plots use " + DEPTH_NOTE + "; tables also give "
    "layer / (n_layers − 1).",
]
INTRO_MD = ("CAA refusal steering vs the claims of arXiv 2507.11771. Δ = p(L, m) − p(0); peaks chosen on validation "
            f"items, reported on test items; plots use {DEPTH_NOTE}.")
RULES = [
    "Rules: a peak is the layer with the largest movement s·Δ in the multiplier's direction (s = sign of m; never "
    "|Δ|) on a seeded validation half of the items; its Δ is reported on the other half; layers that move p the "
    "wrong way are listed apart. ", Strong("Depth"), ": supported when the held-out effect moves p the intended way "
    "and the whole bootstrap interval of the chosen depth lies within 0.3–0.5; not supported when it lies wholly "
    "outside; inconclusive otherwise. ", Strong("Asymmetry"), ": by the interval of the difference in movement, in "
    "probability and in log-odds (both must agree). ", Strong("Scaling"), ": the exponential is supported only when "
    "its AICc (weighted by the points' standard errors) is at least 2 below the power law's, the log-linear's and "
    "the linear's, AIC agrees, and it decays; this needs at least 5 model sizes of one protocol.",
]
FOOTER_MD = ["Full numbers: ", Code("summary.json"), "; per-item rows: ", Code("<model>/items.csv"),
             "; self-contained report: ", Code("report.html"), "."]


def model_figures(analyses, folders: dict, figdir: Path) -> dict[str, list[Figure]]:
    """Per model: its layer sweep and heatmap, written into its folder (or `figdir`)."""
    out: dict[str, list[Figure]] = {}
    for a in analyses:
        base = Path(folders.get(a.model, figdir))
        p1 = plot_model_sweep(a, base / "layer_sweep")[0]
        p2 = plot_heatmap(a, base / "heatmap")[0]
        out.setdefault(a.model, []).extend([
            Figure(p1, f"{a.model}: p(refusal) against steered layer for each multiplier; bands are bootstrap 95% "
                       f"intervals over items; dashed = unsteered baseline."),
            Figure(p2, f"{a.model}: effect Δ on a layer × multiplier grid.")])
    return out


def cross_figures(analyses, scaling, imported, figdir: Path) -> list[Figure]:
    """Figures across models (written into `figdir`): depth (when there are analyses), asymmetry, scaling."""
    out = []
    if analyses:
        out.append(Figure(plot_depth(analyses, figdir / "depth")[0],
                          "Δ against relative depth (layer / n_layers) for every model; bands: paired bootstrap 95% "
                          "intervals; ★: peak chosen on validation items, plotted at its test-item Δ; shaded: 0.3–0.5."))
    out.append(Figure(plot_asymmetry(analyses, figdir / "asymmetry", imported)[0],
                      "Movement in the multiplier's direction (−Δ for −m, +Δ for +m) at each sign's held-out peak "
                      "(test items, 95% intervals; below 0 = the wrong way); published rows without intervals."))
    out.append(Figure(plot_scaling(scaling, figdir / "scaling")[0],
                      "Peak movement s·Δ against unique parameter count with our fits (band: bootstrap 95% of the "
                      "exponential) and the paper's curve (dashed)."))
    return out


def findings_document(analyses, scaling, claims, model_figs: dict[str, list[Figure]], cross: list[Figure],
                      imported=None, config: dict | None = None, manifests=None, runs=None, oe_sections=(),
                      test_sets=None, title: str = TITLE) -> Document:
    """The report as a document (nothing is written): intro, claims, models (with their figures), all models
    (figures, scaling points, fits, imported results), open-ended sections, manifest (anchor "manifest")."""
    doc = Document(title)
    doc.add(Paragraph(INTRO_HTML, only="html"))
    doc.add(Paragraph(INTRO_MD, only="markdown"))
    doc.add(found_section(analyses, claims))  # "What this run found", above the verdict badges
    notes = [f"{a.model}: {n}" for a in analyses for n in a.notes] + list(scaling.notes)
    doc.add(Section("Claims, one by one", anchor="claims", md_title="Claims", blocks=[
        ClaimsTable([Verdict(c["verdict"], c["claim"], c["why"], c.get("numbers", ""), c.get("model", ""))
                     for c in claims]),
        Paragraph(RULES, only="html"),
        Notes(notes)]))

    models = Section("Models", anchor="models", blocks=[Table(*model_rows(analyses))])
    th, tr = split_rows(test_sets or [])
    if tr:
        models.add(Section("Effect at the peak on each test split", level=3,
                           blocks=[Paragraph(SPLIT_NOTE), Table(th, tr)]))
    for name, figs in model_figs.items():
        sec = Section(name, level=3, md_heading=False, blocks=list(figs))
        a = next(x for x in analyses if x.model == name)
        if a.steerability:
            sec.add(Details("Per-item steerability by layer (slope of the item's score against the multiplier; "
                            "'wrong way' = refusal falls as m rises)", [Table(*steerability_rows(a))], only="html"))
        models.add(sec)
    doc.add(models)

    across = Section("All models", anchor="across", blocks=list(cross))
    across.add(Section("Scaling points", level=3, blocks=[Table(*point_rows(scaling))]))
    fh, fr = fit_rows(scaling)
    across.add(Section("Fits", level=3, blocks=[Table(fh, fr, num_from=3)]))
    if imported:
        across.add(Section("Imported results", level=3, only="html", blocks=[Table(*imported_rows(imported))]))
    doc.add(across)

    if oe_sections:
        doc.add(Section("Open-ended refusal and capability cost", anchor="openended",
                        blocks=[openended_block(s) for s in oe_sections]))

    manifest = Section("Manifest", anchor="manifest", only="html")
    if runs:
        manifest.add(Table(*run_rows(runs)))
    man = {"config": config, "models": manifests or {}}
    manifest.add(Details("manifest.json of every model and the configuration",
                         [Preformatted(_json.dumps(man, indent=2, default=str))]))
    doc.add(manifest)
    doc.add(Paragraph(FOOTER_MD, only="markdown"))
    return doc


def write_report(out_dir, analyses, scaling, claims, folders=None, manifests=None, imported=None,
                 config: dict | None = None, runs=None, openended=None, title: str = TITLE,
                 test_sets: list[dict] | None = None, sections: list[Section] | None = None,
                 sections_before: str = "manifest") -> dict:
    """Figures (PNG+SVG), one self-contained report.html (PNGs embedded as base64), report.md and summary.json.

    `openended`: model -> openended.read_openended(folder) plus "folder", for the open-ended section.
    `test_sets`: rows of the effect at each peak on each test split (reproduce._split_rows), for a table.
    `sections`: extra document sections (their figures already written), shown before the section anchored
    `sections_before` (default: the manifest; reproduce puts the showcase before "models").
    Returns {"html", "md": paths, "figures": every figure's PNG in report order, "openended": summaries}."""
    out = Path(out_dir)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    model_figs = model_figures(analyses, folders or {}, figdir)
    cross = cross_figures(analyses, scaling, imported, figdir)
    oes = [openended_section(oe) for oe in (openended or {}).values()]
    doc = findings_document(analyses, scaling, claims, model_figs, cross, imported=imported, config=config,
                            manifests=manifests, runs=runs, oe_sections=oes, test_sets=test_sets, title=title)
    for s in sections or []:
        doc.add(s, before=sections_before)
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, render_html(doc))
    atomic_write_text(md_path, render_markdown(doc, out))

    summary = {"claims": claims, "models": [a.to_dict() for a in analyses], "scaling": scaling.to_dict(),
               "imported": imported or [], "openended": [sec["summary"] for sec in oes]}
    atomic_write_text(out / "summary.json", _json.dumps(_finite(summary), indent=2, default=_jsonable) + "\n")
    return {"html": html_path, "md": md_path, "figures": doc.figures(), "openended": summary["openended"]}


def _finite(o):
    """Strict JSON: infinities become the strings "inf"/"-inf", NaN becomes null."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        o = float(o)
        if math.isnan(o):
            return None
        if math.isinf(o):
            return "inf" if o > 0 else "-inf"
    return o


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)
