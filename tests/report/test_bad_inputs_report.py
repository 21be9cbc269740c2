"""Hostile text in reports: HTML and links escaped, bidi controls shown, atomic writes.

No catalogue case is raised in this stage; the bad-input tests' shared helpers are in tests/badinput.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from steerscale import cli
from steerscale.io import store
from badinput import Ctx, base, read_rows  # noqa: F401 (base: a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_report_md_escapes_html_and_writes_atomically(base, tmp_path, monkeypatch):
    import csv

    c = Ctx(base, tmp_path, monkeypatch)
    evil = "<script>alert(1)</script>"

    def rename(out):
        rows = read_rows(out / "m" / "items.csv")
        for r in rows:
            r["model"] = evil
        with open(out / "m" / "items.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    folder = Path(c.report_folder(rename))
    seen = []
    real = store._write_all
    monkeypatch.setattr(store, "_write_all", lambda f, data: (seen.append(Path(f.name).name), real(f, data)))
    assert cli.main(["report", str(folder)]) == 0
    md, html = (folder / "report.md").read_text(), (folder / "report.html").read_text()
    assert evil in (folder / "m" / "items.csv").read_text()
    assert "<script" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "<script" not in html
    for name in ("report.md", "report.html", "summary.json", "depth.png", "depth.svg"):
        assert any(s.startswith(f".{name}.") and s.endswith(".tmp") for s in seen), name  # via the atomic writer


def test_report_markdown_neutralises_links_and_bidi():
    from steerscale.io.guards import md_text
    from steerscale.report.document import Document, Paragraph, Table
    from steerscale.report.markdown import render_markdown

    name = "evil[click me](javascript:alert(1))\u202egpj.exe\u2066x\u200f"
    doc = Document(title=name, blocks=[Paragraph([name]), Table(["model"], [[name]])])
    md = render_markdown(doc, Path("."))
    assert not re.search(r"(?<!\\)\]\(javascript", md) and "\\](javascript" in md
    assert not any(ch in md for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
    assert "U+202E" in md
    assert md_text("[0.1, 0.2] and x") == "[0.1, 0.2] and x"  # intervals are left as they are
