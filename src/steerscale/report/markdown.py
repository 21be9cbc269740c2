"""A document (``report.document``) as Markdown.

Contract: every string of the document goes through ``guards.md_text`` (``<``, ``>``, ``&`` become entities, so
raw HTML in a model name or a generation shows as text; newlines become spaces, so a cell or a line cannot
end early; a ``]`` that would close a link is escaped, so ``[x](javascript:...)`` is text; bidi controls show as
code points); table cells also escape ``|``, image alt text escapes ``[``/``]``. Figures link their PNG relative
to the report's folder. Each block is followed by one blank line; a title of level n is n ``#``.
"""

from __future__ import annotations

from pathlib import Path

from ..io.guards import md_text as _m
from ..io.guards import no_bidi
from .document import (ClaimsTable, Code, Details, Document, Em, Figure, Notes, Paragraph, Preformatted, Section,
                       Strong, Table, Verdicts, shown)


def _inline(parts) -> str:
    out = []
    for p in parts:
        if isinstance(p, Em):
            out.append(f"*{_m(p.text)}*")
        elif isinstance(p, Strong):
            out.append(f"**{_m(p.text)}**")
        elif isinstance(p, Code):
            out.append(f"`{no_bidi(p.text)}`")  # a code span shows its text literally; Code refuses backticks
        else:
            out.append(_m(p))
    return "".join(out)


def _alt(caption) -> str:
    """Image alt text: HTML escaped, brackets escaped so a caption cannot close the link."""
    return _m(str(caption).replace("[", "\\[").replace("]", "\\]"))


def _cell(c) -> str:
    return _m(c).replace("|", "\\|")


def table_md(header, rows) -> str:
    out = ["| " + " | ".join(_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _rel(path, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


def _block(b, base: Path) -> list[str]:
    """The lines of one block, ending with a blank line (nothing when it is not shown in Markdown)."""
    if not shown(b, "markdown"):
        return []
    if isinstance(b, Section):
        lines = [f"{'#' * b.level} {_m(b.md_title or b.title)}", ""] if b.md_heading else []
        for c in b.blocks:
            lines += _block(c, base)
        return lines
    if isinstance(b, Paragraph):
        return [_inline(b.parts), ""]
    if isinstance(b, Table):
        return [table_md(b.header, b.rows), ""]
    if isinstance(b, Figure):
        return [f"![{_alt(b.caption)}]({_rel(b.path, base)})", ""]
    if isinstance(b, Notes):
        return [f"> {_m(n)}" for n in b.items] + [""] if b.items else []
    if isinstance(b, Verdicts):
        return [f"- **{_m(v.verdict)}**: {_m(v.claim)}: {_m(v.why)}. ({_m(v.numbers)})" for v in b.items] + [""]
    if isinstance(b, ClaimsTable):
        return [table_md(b.header, [[v.claim, v.model, v.verdict, v.why, v.numbers] for v in b.items]), ""]
    if isinstance(b, Preformatted):
        fence = "`" * max(3, _longest_run(b.text, "`") + 1)
        return [fence, no_bidi(b.text), fence, ""]
    if isinstance(b, Details):
        lines = [_m(b.summary), ""]
        for c in b.blocks:
            lines += _block(c, base)
        return lines
    raise TypeError(f"report.md: cannot render a {type(b).__name__}")


def _longest_run(s: str, ch: str) -> int:
    best = run = 0
    for c in s:
        run = run + 1 if c == ch else 0
        best = max(best, run)
    return best


def render_markdown(doc: Document, base) -> str:
    """The Markdown text: the title as ``#``, then every block shown in Markdown. `base`: the folder the file is
    written to (figure links are relative to it)."""
    base = Path(base)
    lines = [f"# {_m(doc.title)}", ""]
    for b in doc.blocks:
        lines += _block(b, base)
    return "\n".join(lines)
