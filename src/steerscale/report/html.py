"""A document (``report.document``) as one self-contained HTML page.

Contract: every string of the document is escaped with ``html.escape`` (text and attribute values alike), so
no model name, prompt, generation or file name can add markup; figures are embedded as base64 PNG data URIs
(the page loads nothing: no links, scripts or style sheets outside it). Each block is one line of the page.
"""

from __future__ import annotations

import base64
import html as _html
from pathlib import Path

from .document import (ClaimsTable, Code, Details, Document, Em, Figure, Notes, Paragraph, Preformatted, Section,
                       Strong, Table, Verdict, Verdicts, shown)

VERDICT_STYLE = {"supported": "#1e8449", "not supported": "#b03a2e", "inconclusive": "#9a7d0a"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-weight:600;padding:.1em .45em;border-radius:.3em;color:#fff;white-space:nowrap}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;margin:.6em 0}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em;max-height:30em}
"""


def _e(x) -> str:
    return _html.escape(str(x))


def data_uri(path) -> str:
    """The PNG at `path` as a data URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _inline(parts) -> str:
    out = []
    for p in parts:
        if isinstance(p, Em):
            out.append(f"<em>{_e(p.text)}</em>")
        elif isinstance(p, Strong):
            out.append(f"<b>{_e(p.text)}</b>")
        elif isinstance(p, Code):
            out.append(f"<code>{_e(p.text)}</code>")
        else:
            out.append(_e(p))
    return "".join(out)


def table_html(header, rows, num_from: int = 1) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if j >= num_from else ""}">{_e(c)}</td>' for j, c in enumerate(r)) + "</tr>"
        for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _badge(verdict: str) -> str:
    return (f"<span class='verdict' style='background:{VERDICT_STYLE.get(verdict, '#555')}'>"
            f"{_e(verdict)}</span>")


def _claims(t: ClaimsTable) -> list[str]:
    lines = ["<table><thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in t.header) + "</tr></thead><tbody>"]
    lines += [f"<tr><td>{_e(v.claim)}</td><td>{_e(v.model)}</td><td>{_badge(v.verdict)}</td><td>{_e(v.why)}</td>"
              f"<td>{_e(v.numbers)}</td></tr>" for v in t.items]
    return lines + ["</tbody></table>"]


def _verdict(v: Verdict) -> str:
    return f"<p>{_badge(v.verdict)} {_e(v.claim)}: {_e(v.why)}.<br><small>{_e(v.numbers)}</small></p>"


def _block(b) -> list[str]:
    """The lines of one block (nothing when it is not shown in HTML)."""
    if not shown(b, "html"):
        return []
    if isinstance(b, Section):
        lines = [f"<h{b.level}" + (f" id='{_e(b.anchor)}'" if b.anchor else "") + f">{_e(b.title)}</h{b.level}>"]
        for c in b.blocks:
            lines += _block(c)
        return lines
    if isinstance(b, Paragraph):
        return [f"<p>{_inline(b.parts)}</p>"]
    if isinstance(b, Table):
        return [table_html(b.header, b.rows, b.num_from)]
    if isinstance(b, Figure):
        return [f"<figure><img src='{data_uri(b.path)}' alt='{_e(b.caption)}'><figcaption>{_e(b.caption)}"
                f"</figcaption></figure>"]
    if isinstance(b, Notes):
        return [f"<div class='note'>{_e(n)}</div>" for n in b.items]
    if isinstance(b, Verdicts):
        return [_verdict(v) for v in b.items]
    if isinstance(b, ClaimsTable):
        return _claims(b)
    if isinstance(b, Preformatted):
        return [f"<pre>{_e(b.text)}</pre>"]
    if isinstance(b, Details):
        inner = "".join(line for c in b.blocks for line in _block(c))
        return [f"<details><summary>{_e(b.summary)}</summary>{inner}</details>"]
    raise TypeError(f"report.html: cannot render a {type(b).__name__}")


def render_html(doc: Document) -> str:
    """The page: head (title, inline CSS), the title as <h1>, then every block shown in HTML."""
    lines = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(doc.title)}</title>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head><body>",
             f"<h1>{_e(doc.title)}</h1>"]
    for b in doc.blocks:
        lines += _block(b)
    lines.append("</body></html>")
    return "\n".join(lines)
