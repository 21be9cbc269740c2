"""Plots (PNG and SVG) and the findings report (self-contained HTML, Markdown, summary.json).

Layout: ``document`` (the report as data: sections, paragraphs, tables, figures, verdicts), ``html`` and
``markdown`` (its two renderers), ``plots`` (every plot, written atomically), ``tables`` (the findings tables
as display strings), ``openended_section`` (the open-ended part) and ``findings`` (``write_report``: figures,
one document, report.html, report.md, summary.json). The names below are this package's public API (they were
the names of the old ``report.py`` module).
"""

from .document import (ClaimsTable, Code, Details, Document, Em, Figure, Notes, Paragraph, Preformatted, Section,
                       Strong, Table, Verdict, Verdicts)
from .findings import findings_document, write_report
from .html import VERDICT_STYLE, render_html
from .markdown import render_markdown
from .openended_section import openended_block, openended_section
from .plots import (DEPTH_NOTE, SIGN_COLORS, effects_as_aggregate, plot_asymmetry, plot_cosine_heatmap, plot_depth,
                    plot_heatmap, plot_layer_sweep, plot_model_sweep, plot_openended_layers, plot_scaling,
                    plot_tradeoff, save_figure)
from .tables import SPLIT_NOTE

__all__ = [
    "ClaimsTable", "Code", "Details", "Document", "Em", "Figure", "Notes", "Paragraph", "Preformatted", "Section",
    "Strong", "Table", "Verdict", "Verdicts", "findings_document", "write_report", "VERDICT_STYLE", "render_html",
    "render_markdown", "openended_block", "openended_section", "DEPTH_NOTE", "SIGN_COLORS", "effects_as_aggregate",
    "plot_asymmetry", "plot_cosine_heatmap", "plot_depth", "plot_heatmap", "plot_layer_sweep", "plot_model_sweep",
    "plot_openended_layers", "plot_scaling", "plot_tradeoff", "save_figure", "SPLIT_NOTE",
]
