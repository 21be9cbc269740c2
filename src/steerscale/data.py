"""Contrastive A/B items: loading (CAA JSON/JSONL), built-in data, hashes and splits (prompt formats and
answer tokens: ``prompts.py``, re-exported here).

CAA format: ``{"question": "<text>\\n\\nChoices:\\n(A) ...\\n(B) ...",
"answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}``.
Any number of choices (A)..(Z) is supported; the behaviour score normalises over
all of an item's choice letters.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from .errors import SteerscaleError
from .prompts import (  # noqa: F401  (prompt formats and answer tokens live in prompts.py; re-exported)
    SCHEME_DEFINITIONS, SCHEMES, TEMPLATES, Encoded, _encode, answer_scheme, answer_tokens, encode_item, encode_items,
    format_prompt, tokenizer_name,
)

BUILTIN = {
    "refusal-train": "refusal_train.json",
    "refusal-test": "refusal_test.json",
    "refusal-test-ood": "refusal_test_ood.json",  # same requests, answers in styles training never uses
    "harmful-prompts": "harmful_prompts.json",
    "harmless-prompts": "harmless_prompts.json",
    "neutral-text": "neutral_text.json",
    "refusal-phrases": "refusal_phrases.json",
}
_CHOICE_RE = re.compile(r"^\(([A-Z])\)\s?(.*)$")
_CHOICES_HEADER_RE = re.compile(r"^choices\s*:?$", re.IGNORECASE)
_ANSWER_RE = re.compile(r"^\s*\(?([A-Z])\)?\s*$")


@dataclass(frozen=True)
class ABItem:
    """One contrastive multiple-choice item. `matching` is the letter showing the behaviour."""

    question: str
    matching: str
    not_matching: str
    choices: tuple[str, ...]  # letters in order, e.g. ("A", "B")
    id: str = ""
    category: str = ""

    def to_caa(self) -> dict:
        d = {
            "question": self.question,
            "answer_matching_behavior": f"({self.matching})",
            "answer_not_matching_behavior": f"({self.not_matching})",
        }
        if self.category:
            d["category"] = self.category
        return d


def _where(source: str, idx: int | None) -> str:
    return f"{source}" if idx is None else f"{source}: item {idx}"


def parse_item(obj, source: str = "<data>", idx: int | None = None) -> ABItem:
    """Validate one CAA record and turn it into an ABItem."""
    where = _where(source, idx)
    if not isinstance(obj, dict):
        raise SteerscaleError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("question", "answer_matching_behavior", "answer_not_matching_behavior"):
        if key not in obj:
            raise SteerscaleError(f"{where}: missing key {key!r}")
        if not isinstance(obj[key], str):
            raise SteerscaleError(f"{where}: field {key!r} must be a string, got {type(obj[key]).__name__}")
    q = obj["question"]
    if not q.strip():
        raise SteerscaleError(f"{where}: field 'question' is empty")
    letters = choice_letters(q)
    if len(letters) < 2:
        raise SteerscaleError(
            f"{where}: field 'question' lists {len(letters)} choice(s); expected lines '(A) ...', '(B) ...'"
        )
    if len(set(letters)) != len(letters):
        raise SteerscaleError(f"{where}: field 'question' repeats a choice letter ({', '.join(letters)})")
    answers = []
    for key in ("answer_matching_behavior", "answer_not_matching_behavior"):
        m = _ANSWER_RE.match(obj[key])
        if not m:
            raise SteerscaleError(f"{where}: field {key!r} is {obj[key]!r}; expected a letter like '(A)'")
        if m.group(1) not in letters:
            raise SteerscaleError(
                f"{where}: field {key!r} is {obj[key]!r}, not one of the choices ({', '.join(letters)})"
            )
        answers.append(m.group(1))
    if answers[0] == answers[1]:
        raise SteerscaleError(f"{where}: matching and non-matching answers are both ({answers[0]})")
    rid = obj.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int))):
        raise SteerscaleError(f"{where}: field 'id' must be a string or an integer, got {type(rid).__name__}")
    return ABItem(
        question=q,
        matching=answers[0],
        not_matching=answers[1],
        choices=tuple(letters),
        id=str(obj.get("id", idx if idx is not None else "")),
        category=str(obj.get("category", "")),
    )


def choice_letters(question: str) -> list[str]:
    """The choice letters of a CAA question: the '(X) ...' lines after its last 'Choices:' line, or, without
    such a line, the block of '(X) ...' lines that ends the question (blank lines allowed). A '(C) footnote'
    line in the body of the question is not a choice."""
    lines = question.splitlines()
    header = [i for i, line in enumerate(lines) if _CHOICES_HEADER_RE.match(line.strip())]
    if header:
        return [m.group(1) for line in lines[header[-1] + 1 :] if (m := _CHOICE_RE.match(line.strip()))]
    letters: list[str] = []
    for line in reversed(lines):
        if not line.strip():
            continue
        m = _CHOICE_RE.match(line.strip())
        if not m:
            break
        letters.insert(0, m.group(1))
    return letters


def check_limit(limit, what: str = "limit") -> int | None:
    """None (no limit) or a positive integer; 0 and negative limits are refused (0 never meant 'all')."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SteerscaleError(f"{what} {limit!r}: expected a positive number of items (leave it out for all)")
    return limit


def _check_unique_ids(path, ids: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, rid in enumerate(ids):
        if rid in seen:
            shown = rid if len(rid) <= 60 else rid[:60] + "..."
            raise SteerscaleError(f"{path}: item {i} has id {shown!r}, already used by item {seen[rid]}; "
                                  f"ids must be unique (they key the per-item rows)")
        seen[rid] = i


def _read_records(path: Path) -> list:
    from .guards import loads_json, read_input_bytes

    raw = read_input_bytes(path, "a JSON or JSONL file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SteerscaleError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    if not text.strip():
        raise SteerscaleError(f"{path}: file is empty; expected a JSON list of items")
    if path.suffix == ".jsonl" or (not text.lstrip().startswith("[") and "\n{" in text.strip()):
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(loads_json(line, f"{path}: line {n}"))
            except json.JSONDecodeError as e:
                raise SteerscaleError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
        return records
    try:
        data = loads_json(text, path)
    except json.JSONDecodeError as e:
        raise SteerscaleError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise SteerscaleError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    return data


def builtin_path(name: str) -> Path:
    if name not in BUILTIN:
        raise SteerscaleError(f"unknown built-in dataset {name!r}: known are {', '.join(BUILTIN)}")
    return Path(str(resources.files("steerscale") / "builtin" / BUILTIN[name]))


def load_dataset(source: str | Path, limit: int | None = None, allow_duplicates: bool = False) -> list[ABItem]:
    """Load A/B items from a CAA JSON/JSONL file or a built-in name (``refusal-train``, ``refusal-test``)."""
    check_limit(limit)
    path = builtin_path(str(source)) if str(source) in BUILTIN else Path(source)
    records = _read_records(path)
    if not records:
        raise SteerscaleError(f"{path}: dataset is empty; expected at least one item")
    items = [parse_item(r, str(path), i) for i, r in enumerate(records)]
    _check_unique_ids(path, [it.id for it in items])
    if not allow_duplicates:
        seen: dict[str, int] = {}
        for i, it in enumerate(items):
            if it.question in seen:
                raise SteerscaleError(
                    f"{path}: item {i} duplicates item {seen[it.question]} (same question)"
                )
            seen[it.question] = i
    return items[:limit] if limit else items


def load_prompts(source: str | Path, limit: int | None = None) -> list[str]:
    """Open-ended prompts: a JSON list of strings or of {"prompt": ...} objects (or JSONL)."""
    check_limit(limit)
    path = builtin_path(str(source)) if str(source) in BUILTIN else Path(source)
    records = _read_records(path)
    out = []
    for i, r in enumerate(records):
        p = r.get("prompt") if isinstance(r, dict) else r
        if not isinstance(p, str) or not p.strip():
            raise SteerscaleError(f"{path}: item {i}: expected a non-empty string or an object with 'prompt'")
        out.append(p)
    if not out:
        raise SteerscaleError(f"{path}: no prompts; expected at least one")
    return out[:limit] if limit else out


@dataclass(frozen=True)
class Prompt:
    """One open-ended prompt with its id (position in the file unless the record has 'id') and category."""

    text: str
    id: str = ""
    category: str = ""


def load_prompt_records(source: str | Path, limit: int | None = None) -> list[Prompt]:
    """Like `load_prompts`, keeping each prompt's id and category (for per-prompt result rows)."""
    check_limit(limit)
    path = builtin_path(str(source)) if str(source) in BUILTIN else Path(source)
    records = _read_records(path)
    texts = load_prompts(source)  # validates
    out = []
    for i, (r, t) in enumerate(zip(records, texts)):
        rid = str(r.get("id", i)) if isinstance(r, dict) else str(i)
        cat = str(r.get("category", "")) if isinstance(r, dict) else ""
        out.append(Prompt(t, rid, cat))
    _check_unique_ids(path, [p.id for p in out])
    return out[:limit] if limit else out


def _load_string_list(source, key: str) -> list[str]:
    """A JSON file holding {key: [non-empty strings]} or a plain list of strings (built-in name or path)."""
    from .guards import loads_json, read_input_bytes

    path = builtin_path(str(source)) if str(source) in BUILTIN else Path(source)
    try:
        obj = loads_json(read_input_bytes(path, "a JSON file").decode("utf-8-sig"), path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SteerscaleError(f"{path}: not valid JSON text ({e})") from None
    values = obj.get(key) if isinstance(obj, dict) else obj
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise SteerscaleError(f"{path}: expected {{\"{key}\": [non-empty strings]}} or a JSON list of strings")
    return values


def load_neutral_text(source: str | Path = "neutral-text", limit: int | None = None) -> list[str]:
    """Paragraphs for language-modelling cross-entropy: {"texts": [...]} or a JSON list of strings."""
    check_limit(limit)
    texts = _load_string_list(source, "texts")
    return texts[:limit] if limit else texts


def load_refusal_phrases(source: str | Path | None = None) -> list[str]:
    """The refusal-phrase list (built-in ``refusal-phrases`` by default): {"phrases": [...]} or a JSON list."""
    return [p.strip() for p in _load_string_list("refusal-phrases" if source is None else source, "phrases")]


def dataset_hash(items) -> str:
    """Content hash of a list of items, for cache keys and manifests."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps(asdict(it) if hasattr(it, "__dataclass_fields__") else it, sort_keys=True).encode())
    return h.hexdigest()[:16]


def split_items(items, fraction: float = 0.5, seed: int = 0):
    """Deterministic split into (validation, test) by a seeded permutation."""
    import numpy as np

    idx = np.random.default_rng(seed).permutation(len(items))
    k = int(round(len(items) * fraction))
    return [items[i] for i in sorted(idx[:k])], [items[i] for i in sorted(idx[k:])]
