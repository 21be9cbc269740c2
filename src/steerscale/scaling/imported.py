"""Imported results (published numbers, other runs): reading and checking a results table, built-in tables,
and one scaling point per imported model."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np

from ..errors import SteerscaleError
from .points import DEFAULT_PROTOCOL, ScalingPoint

IMPORT_REQUIRED = ("model", "n_params", "layer", "multiplier", "score")
IMPORT_OPTIONAL = ("n_items", "ci_low", "ci_high", "source", "protocol")

# Published CAA numbers (Rimsky et al.), p(refusal) on its 50 A/B test items, no system prompt. Protocol "caa":
# vectors rescaled to the mean norm across 7 behaviours, steered from the instruction end, layers picked on the
# test items; comparable with runs that use the `caa` preset, not with the default protocol.
BUILTIN_TABLES = {
    "caa-llama2-chat": [
        {"model": "Llama-2-7b-chat (CAA)", "n_params": 6.74e9, "layer": None, "multiplier": 0, "score": 0.744, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-7b-chat (CAA)", "n_params": 6.74e9, "layer": 11, "multiplier": 1, "score": 0.928, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-7b-chat (CAA)", "n_params": 6.74e9, "layer": 13, "multiplier": -1, "score": 0.423, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-13b-chat (CAA)", "n_params": 13.0e9, "layer": None, "multiplier": 0, "score": 0.780, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-13b-chat (CAA)", "n_params": 13.0e9, "layer": 13, "multiplier": 1, "score": 0.885, "n_items": 50, "protocol": "caa"},
        {"model": "Llama-2-13b-chat (CAA)", "n_params": 13.0e9, "layer": 14, "multiplier": -1, "score": 0.559, "n_items": 50, "protocol": "caa"},
    ],
}
BUILTIN_NOTES = {"caa-llama2-chat": "CAA (Rimsky et al.) published p(refusal), 50 A/B items; layers as published"}

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_n_params(value, where: str) -> float:
    """A parameter count: a number (raw count, e.g. 6.74e9) or a string with a suffix ('7B', '135M')."""
    if isinstance(value, bool) or value is None or value == "":
        raise SteerscaleError(f"{where}: field 'n_params' is empty; expected a count like 6.74e9 or '7B'")
    if isinstance(value, str):
        s = value.strip().replace(",", "").replace("_", "")
        m = re.fullmatch(r"([0-9.eE+-]+)\s*([kKmMbBgGtT]?)", s)
        if not m:
            raise SteerscaleError(f"{where}: field 'n_params' is {value!r}; expected a count like 6.74e9 or '7B'")
        try:
            v = float(m.group(1)) * (_SUFFIX[m.group(2).lower()] if m.group(2) else 1.0)
        except ValueError:
            raise SteerscaleError(f"{where}: field 'n_params' is {value!r}; expected a count like 6.74e9 or '7B'") from None
    else:
        v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise SteerscaleError(f"{where}: field 'n_params' is {value!r}; expected a positive count")
    if v < 1e5:
        raise SteerscaleError(f"{where}: field 'n_params' is {value!r}, which reads as {v:g} parameters; "
                              f"for billions write {value}e9 or '{value}B'")
    return v


def _num(row: dict, key: str, where: str, required: bool, lo=None, hi=None, integer=False):
    v = row.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise SteerscaleError(f"{where}: field {key!r} is missing or empty")
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise SteerscaleError(f"{where}: field {key!r} is {v!r}; expected a number") from None
    if not np.isfinite(f):
        raise SteerscaleError(f"{where}: field {key!r} is {v!r}; expected a finite number")
    if integer and f != int(f):
        raise SteerscaleError(f"{where}: field {key!r} is {v!r}; expected a whole number")
    if (lo is not None and f < lo) or (hi is not None and f > hi):
        raise SteerscaleError(f"{where}: field {key!r} is {v!r}; expected a value in [{lo}, {hi}]")
    return int(f) if integer else f


def validate_table(records: list, name: str) -> list[dict]:
    if not isinstance(records, list):
        raise SteerscaleError(f"{name}: expected a list of rows, got {type(records).__name__}")
    if not records:
        raise SteerscaleError(f"{name}: no rows; expected columns {', '.join(IMPORT_REQUIRED)}")
    out = []
    for i, r in enumerate(records, 1):
        where = f"{name}: row {i}"
        if not isinstance(r, dict):
            raise SteerscaleError(f"{where}: expected an object with fields {', '.join(IMPORT_REQUIRED)}")
        for k in IMPORT_REQUIRED:
            if k not in r:
                raise SteerscaleError(f"{where}: missing field {k!r} (required: {', '.join(IMPORT_REQUIRED)})")
        model = str(r["model"]).strip()
        if not model:
            raise SteerscaleError(f"{where}: field 'model' is empty")
        m = _num(r, "multiplier", where, True)
        row = {
            "model": model, "n_params": parse_n_params(r["n_params"], where),
            "layer": _num(r, "layer", where, m != 0, lo=0, integer=True), "multiplier": m,
            "score": _num(r, "score", where, True, 0.0, 1.0),
            "n_items": _num(r, "n_items", where, False, lo=1, integer=True),
            "ci_low": _num(r, "ci_low", where, False, 0.0, 1.0), "ci_high": _num(r, "ci_high", where, False, 0.0, 1.0),
            "source": str(r.get("source") or name),
            "protocol": str(r.get("protocol") or DEFAULT_PROTOCOL).strip(),
        }
        if (row["ci_low"] is None) != (row["ci_high"] is None):
            raise SteerscaleError(f"{where}: give both 'ci_low' and 'ci_high' or neither")
        if row["ci_low"] is not None and not row["ci_low"] <= row["score"] <= row["ci_high"]:
            raise SteerscaleError(f"{where}: field 'score' {row['score']} is outside [ci_low, ci_high] = "
                                  f"[{row['ci_low']}, {row['ci_high']}]")
        out.append(row)
    by_model: dict[str, list[dict]] = {}
    for row in out:
        by_model.setdefault(row["model"], []).append(row)
    for model, rows in by_model.items():
        if len({r["protocol"] for r in rows}) > 1:
            raise SteerscaleError(f"{name}: model {model!r} has rows with different 'protocol'")
        if len({r["n_params"] for r in rows}) > 1:
            raise SteerscaleError(f"{name}: model {model!r} has rows with different 'n_params'")
        if not any(r["multiplier"] == 0 for r in rows):
            raise SteerscaleError(f"{name}: model {model!r} has no baseline row (multiplier 0); effects need one")
        if len({r["score"] for r in rows if r["multiplier"] == 0}) > 1:
            raise SteerscaleError(f"{name}: model {model!r} has baseline rows (multiplier 0) with different scores")
    return out


def load_results_table(source) -> list[dict]:
    """Read an imported results table: a built-in name (``caa-llama2-chat``), a CSV file with a header row,
    or a JSON file holding a list of row objects (or ``{"rows": [...]}``)."""
    if str(source) in BUILTIN_TABLES:
        return validate_table([dict(r, source=str(source)) for r in BUILTIN_TABLES[str(source)]], str(source))
    path = Path(source)
    if not path.is_file():
        raise SteerscaleError(f"{path}: no such file (expected a CSV or JSON results table, or one of "
                              f"{', '.join(BUILTIN_TABLES)})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SteerscaleError(f"{path}: not UTF-8 text") from None
    if not text.strip():
        raise SteerscaleError(f"{path}: file is empty; expected columns {', '.join(IMPORT_REQUIRED)}")
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SteerscaleError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            data = data["rows"]
        return validate_table(data, str(path))
    reader = csv.DictReader(io.StringIO(text, newline=""))  # quoted line breaks stay inside their cell
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [k for k in IMPORT_REQUIRED if k not in header]
    if missing:
        raise SteerscaleError(f"{path}: header lacks column(s) {', '.join(missing)} (found: {', '.join(header)})")
    rows = []
    for r in reader:
        if None in r:
            raise SteerscaleError(f"{path}: row {len(rows) + 1}: more fields than the header has columns")
        rows.append({k.strip(): v for k, v in r.items()})
    return validate_table(rows, str(path))


def imported_points(rows: list[dict], include_in_fit: bool = True, which: str = "max") -> list[ScalingPoint]:
    """One point per imported model: the largest movement s·Δ (p moved the way the multiplier asks) among its
    steered rows of the requested sign(s); a row that moved p the wrong way is never chosen over one that moved
    it the right way.

    The layer was chosen by whoever published it, usually on the same items: unlike our own peaks it is
    not held out, which the point's note says. Interval for Δ: from the rows' ci_low/ci_high when given
    (combined in quadrature, ignoring the pairing), else from n_items with the worst-case
    standard error sqrt(p(1−p)/n) of a mean of values in [0, 1]; else none. Not folded at 0.
    """
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    out = []
    for model, rs in by_model.items():
        base = next(r for r in rs if r["multiplier"] == 0)
        steered = [r for r in rs if r["multiplier"] != 0 and (which == "max" or
                   (which == "negative") == (r["multiplier"] < 0))]
        if not steered:
            continue
        move = lambda r: math.copysign(1.0, r["multiplier"]) * (r["score"] - base["score"])
        best = max(steered, key=move)
        y = move(best)
        se = None
        if best["ci_low"] is not None and base["ci_low"] is not None:
            se = math.hypot((best["ci_high"] - best["ci_low"]) / 3.92, (base["ci_high"] - base["ci_low"]) / 3.92)
        elif best["n_items"] and base["n_items"]:
            se = math.hypot(math.sqrt(best["score"] * (1 - best["score"]) / best["n_items"]),
                            math.sqrt(base["score"] * (1 - base["score"]) / base["n_items"]))
        lo = hi = None
        if se is not None:
            lo, hi = y - 1.96 * se, y + 1.96 * se
        out.append(ScalingPoint(model, base["n_params"] / 1e9, y, lo, hi, source=best["source"],
                                layer=best["layer"], multiplier=best["multiplier"], include_in_fit=include_in_fit,
                                note="imported; peak layer as published (not held out)",
                                protocol=best.get("protocol", DEFAULT_PROTOCOL)))
    return out


def imported_summary(rows: list[dict]) -> list[dict]:
    """Per imported model: baseline and each steered row's Δ (for tables beside our own results)."""
    out = []
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    for model, rs in by_model.items():
        base = next(r for r in rs if r["multiplier"] == 0)
        for r in sorted(rs, key=lambda r: r["multiplier"]):
            out.append({"model": model, "n_params_b": r["n_params"] / 1e9, "layer": r["layer"],
                        "multiplier": r["multiplier"], "score": r["score"], "delta": r["score"] - base["score"],
                        "n_items": r["n_items"], "source": r["source"],
                        "protocol": r.get("protocol", DEFAULT_PROTOCOL)})
    return out
