"""Result files: tidy CSV and JSON tables written atomically, and the provenance every manifest records.

``write_csv`` writes one row per dict with a fixed column order and float formatting (``%.8g``), so the same
numbers always give the same bytes; string cells are defused against spreadsheet formula injection
(``guards.csv_cell``), numbers are never altered. ``versions()`` and ``git_revision()`` are the package
versions and source revision written into every manifest.

``manifest(kind, config, model_info, t0, **sections)`` builds the head every ``manifest.json`` starts with
(kind, time, command, revision, versions, model, config) followed by the caller's sections in order (the
sweep, merge, open-ended, interventions and showcase manifests all come from it);
``save_tables(out_dir, tables, manifest)`` is the one ``save``: the tables in the order given, then
``manifest.json`` last (a folder with a manifest is complete).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np

from .guards import csv_cell
from .store import atomic_write_text


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """The CSV text of `rows` (every CSV steerscale writes comes from here): lines end in LF, and a cell holding
    a comma, a quote, LF *or CR* is quoted, so any string reads back as written (the row count is right)."""
    buf = io.StringIO()
    # quoting is decided against CRLF (so a lone CR or LF in a cell is quoted); each row's CRLF becomes LF
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    lines = []
    for r in [None, *rows]:  # string cells are defused against spreadsheet formulas (guards.csv_cell)
        buf.seek(0)
        buf.truncate()
        if r is None:
            w.writeheader()
        else:
            w.writerow({k: csv_cell(_fmt(r.get(k))) if isinstance(r.get(k), str) else _fmt(r.get(k))
                        for k in columns})
        lines.append(buf.getvalue()[:-2] + "\n")
    return "".join(lines)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    atomic_write_text(path, csv_text(rows, columns))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.8g}"
    return v


def git_revision() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                           cwd=Path(__file__).resolve().parent)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    import torch
    import transformers

    from .._version import __version__

    return {
        "steerscale": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def manifest(kind: str, config: object, model_info, t0: float, *, flags: dict | None = None, command: bool = True,
             **sections) -> dict:
    """The manifest of a run: ``kind``, then `flags` (keys that say what kind of run it is, e.g. a merge's
    ``merged: True``), ``created_unix`` (`t0`, the run's start, to the millisecond), ``command`` (sys.argv;
    left out with ``command=False``: the showcase manifest has none), ``git_revision``, ``versions``,
    ``model`` (a ModelInfo's ``to_dict()``, or a dict as given), ``config`` (a dataclass's ``asdict``, or a
    dict as given), then `sections` in the order given. Every manifest steerscale writes starts here."""
    head = {"kind": kind, **(flags or {}), "created_unix": round(t0, 3)}
    if command:
        head["command"] = sys.argv
    return {
        **head,
        "git_revision": git_revision(),
        "versions": versions(),
        "model": model_info if isinstance(model_info, dict) else model_info.to_dict(),
        "config": asdict(config) if is_dataclass(config) else config,
        **sections,
    }


def save_tables(out_dir, tables: list[tuple[str, list[dict], list[str] | None]], manifest: dict) -> Path:
    """Write a result folder: each ``(file name, rows, columns)`` in order (``columns`` None: the rows as JSON,
    else CSV with those columns), then ``manifest.json`` last. Returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows, columns in tables:
        if columns is None:
            write_json(out / name, rows)
        else:
            write_csv(out / name, rows, columns)
    write_json(out / "manifest.json", manifest)
    return out
