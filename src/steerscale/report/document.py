"""The report as data: one document model that `html.render_html` and `markdown.render_markdown` both render.

A :class:`Document` is a title and a list of blocks; a :class:`Section` is a heading with blocks (sections nest).
Blocks: :class:`Paragraph`, :class:`Table`, :class:`Figure`, :class:`Notes`, :class:`Verdicts` (verdict items of
one model), :class:`ClaimsTable` (the claim-by-claim verdict table), :class:`Details` (a folded block) and
:class:`Preformatted`. Inline text in a paragraph is a sequence of plain strings and :class:`Em`, :class:`Strong`
and :class:`Code` spans.

Contract:
- Every string in the model is *text*, never markup: each renderer escapes it for its format (HTML:
  ``html.escape``; Markdown: raw HTML neutralised by ``guards.md_text``, table pipes and link brackets escaped).
  There is no way to put raw HTML or Markdown into a document, so data (model names, prompts, generations,
  file names) cannot inject markup.
- ``only="html"`` / ``only="markdown"`` on a block or section shows it in that format alone (report.md is the
  short version of report.html: no rules paragraph, no manifest, no per-model steerability tables).
- Figures name a PNG on disk; HTML embeds it (base64, the report stays one self-contained file), Markdown links
  it relative to the report's folder. Figures are written by ``report.plots`` before the document is rendered.

To add a section to the findings report, build a :class:`Section` and pass it to ``write_report(...,
sections=[...])`` (inserted before the manifest), or call :meth:`Document.add` on a document of your own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

Only = Literal["html", "markdown"] | None
FORMATS = ("html", "markdown")


# ---------------------------------------------------------------- inline text


@dataclass(frozen=True)
class Em:
    """Emphasised text (HTML ``<em>``, Markdown ``*…*``)."""

    text: str


@dataclass(frozen=True)
class Strong:
    """Strong text (HTML ``<b>``, Markdown ``**…**``)."""

    text: str


@dataclass(frozen=True)
class Code:
    """A literal (a file name, a command): HTML ``<code>``, Markdown a code span. Must not hold a backtick."""

    text: str

    def __post_init__(self):
        if "`" in self.text:
            raise ValueError(f"Code span {self.text!r}: a backtick cannot be written in a Markdown code span")


Inline = Union[str, Em, Strong, Code]


# ---------------------------------------------------------------- blocks


@dataclass
class Paragraph:
    """A paragraph of inline text: a string, or a list of strings and Em / Strong / Code spans."""

    content: str | list[Inline]
    only: Only = None

    @property
    def parts(self) -> list[Inline]:
        return [self.content] if isinstance(self.content, str) else list(self.content)


@dataclass
class Table:
    """A table of text cells (each cell is shown with ``str()``).

    ``num_from``: columns from this index on are numeric (right-aligned in HTML); 1 by default (the first
    column names the row), a number past the last column for a table of text."""

    header: list[str]
    rows: list[list]
    num_from: int = 1
    only: Only = None


@dataclass
class Figure:
    """A figure: the PNG at `path` (already written) and its caption (also the image's alt text)."""

    path: Path
    caption: str
    only: Only = None


@dataclass
class Notes:
    """Warnings about the results (HTML: highlighted boxes; Markdown: quoted lines). Empty: nothing is shown."""

    items: list[str]
    only: Only = None


@dataclass
class Verdict:
    """One verdict on one claim: "supported" / "not supported" / "inconclusive", with the reason and the numbers."""

    verdict: str
    claim: str
    why: str
    numbers: str = ""
    model: str = ""


@dataclass
class Verdicts:
    """A list of verdicts, each with its badge (HTML) or in bold (Markdown)."""

    items: list[Verdict]
    only: Only = None


@dataclass
class ClaimsTable:
    """The claim-by-claim table: claim, model, verdict (a coloured badge in HTML), why, numbers."""

    items: list[Verdict]
    only: Only = None

    header = ("claim", "model", "verdict", "why", "numbers")


@dataclass
class Preformatted:
    """Preformatted text (HTML ``<pre>``, Markdown a fenced block)."""

    text: str
    only: Only = None


@dataclass
class Details:
    """A folded block (HTML ``<details>``): `summary` is shown, `blocks` unfold. Markdown shows the blocks."""

    summary: str
    blocks: list["Block"]
    only: Only = None


@dataclass
class Section:
    """A heading and its blocks.

    ``level``: heading level (2 = a top-level section under the title). ``anchor``: the HTML id (for links into
    the report; :meth:`Document.add` inserts before a section by its anchor). ``md_title``: the Markdown heading
    when it is shorter than the HTML one; ``md_heading=False`` shows the blocks in Markdown without a heading."""

    title: str
    blocks: list["Block"] = field(default_factory=list)
    level: int = 2
    anchor: str | None = None
    md_title: str | None = None
    md_heading: bool = True
    only: Only = None

    def add(self, block: "Block") -> "Section":
        self.blocks.append(block)
        return self


Block = Union[Paragraph, Table, Figure, Notes, Verdicts, ClaimsTable, Preformatted, Details, Section]


@dataclass
class Document:
    """The whole report: a title and its blocks, in order."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, block: Block, before: str | None = None) -> "Document":
        """Append `block`, or insert it before the top-level section whose anchor is `before` (appended when no
        section has that anchor)."""
        if before is not None:
            for i, b in enumerate(self.blocks):
                if isinstance(b, Section) and b.anchor == before:
                    self.blocks.insert(i, block)
                    return self
        self.blocks.append(block)
        return self

    def figures(self) -> list[Path]:
        """Every figure's PNG, in document order."""
        out: list[Path] = []

        def walk(blocks):
            for b in blocks:
                if isinstance(b, Figure):
                    out.append(Path(b.path))
                elif isinstance(b, (Section, Details)):
                    walk(b.blocks)

        walk(self.blocks)
        return out


def shown(block, fmt: str) -> bool:
    """Whether `block` appears in format `fmt` ("html" or "markdown")."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    only = getattr(block, "only", None)
    if only not in (None, *FORMATS):
        raise ValueError(f"{type(block).__name__}.only = {only!r}: expected None, 'html' or 'markdown'")
    return only is None or only == fmt
