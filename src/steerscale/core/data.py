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
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from ..errors import SteerscaleError

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


def check_limit(limit, what: str = "limit") -> int | float | None:
    """None (no limit), a whole number of items >= 1, or a fraction in (0, 1) of the items; 0, negative
    numbers and fractions >= 1 (other than whole numbers) are refused (0 never meant 'all'). Text such as
    ``"16"`` or ``"0.25"`` (a CLI flag) is read as the number it spells."""
    if limit is None:
        return None
    if isinstance(limit, str):
        try:
            limit = float(limit) if any(c in limit for c in ".eE") else int(limit)
        except ValueError:
            raise SteerscaleError(f"{what} {limit}: expected a positive number of items or a fraction "
                                  f"in (0, 1) (leave it out to use all)") from None
    if isinstance(limit, float) and limit.is_integer() and limit >= 1:
        limit = int(limit)
    ok = (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1) or (
        isinstance(limit, float) and 0 < limit < 1)
    if not ok:
        raise SteerscaleError(f"{what} {limit!r}: expected a positive number of items or a fraction in (0, 1) "
                              f"(leave it out to use all)")
    return limit


def limit_count(limit, n: int) -> int:
    """How many of `n` items a checked `limit` keeps: all for None, at most n for N, x * n rounded half up (at
    least 1) for a fraction x."""
    limit = check_limit(limit)
    if limit is None:
        return n
    if isinstance(limit, float):
        return max(1, int(limit * n + 0.5))
    return min(limit, n)


SAMPLING = "seeded, stratified by matching letter (equal numbers per letter as far as each letter has items)"


def sample_items(items: list, limit, seed: int = 0) -> list:
    """A seeded, letter-stratified subset of `items` of ``limit_count(limit, len(items))`` items, in their
    original order (never "the first N": a prefix of a CAA file can be 10 A-matching to 6 B-matching).

    Items with a ``matching`` letter (ABItem) are grouped by it; the count is shared out equally among the
    letters (a letter with too few items gives its remainder to the others, leftovers one each to the
    largest groups, ties by letter), and each group is sampled by a permutation seeded with `seed`. Other
    items (prompts) are one group. The same items and seed give the same subset; all items are kept
    unchanged when the limit covers them."""
    import numpy as np

    k = limit_count(limit, len(items))
    if k >= len(items):
        return list(items)
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(getattr(it, "matching", ""), []).append(i)
    letters = sorted(groups)
    take = {g: 0 for g in letters}
    left = k
    open_ = [g for g in letters]
    while left > 0 and open_:
        share = max(1, left // len(open_))
        for g in sorted(open_, key=lambda g: (-(len(groups[g]) - take[g]), g)):
            add = min(share, len(groups[g]) - take[g], left)
            take[g] += add
            left -= add
            if left == 0:
                break
        open_ = [g for g in open_ if take[g] < len(groups[g])]
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for g in letters:
        idx = groups[g]
        perm = rng.permutation(len(idx))
        chosen.extend(idx[j] for j in perm[: take[g]])
    return [items[i] for i in sorted(chosen)]


def sampling_record(limit, seed: int = 0) -> dict:
    """How a limited list of A/B items was drawn, for manifests and vector metadata."""
    if limit is None:
        return {"limit": None, "method": "all items"}
    return {"limit": check_limit(limit), "method": SAMPLING, "seed": int(seed)}


def _head(xs: list, limit) -> list:
    """The first ``limit_count(limit, len(xs))`` entries (prompt and text lists, which carry no letters)."""
    return xs[: limit_count(limit, len(xs))]


def letter_counts(items) -> dict[str, int]:
    """Items per matching letter, letters sorted: ``{"A": 97, "B": 103}``."""
    out: dict[str, int] = {}
    for it in items:
        out[it.matching] = out.get(it.matching, 0) + 1
    return dict(sorted(out.items()))


def _choice_lines(lines: list[str]) -> dict[str, int]:
    """Letter -> line index of the choice lines `choice_letters` reads."""
    header = [i for i, line in enumerate(lines) if _CHOICES_HEADER_RE.match(line.strip())]
    out: dict[str, int] = {}
    if header:
        for i in range(header[-1] + 1, len(lines)):
            m = _CHOICE_RE.match(lines[i].strip())
            if m:
                out[m.group(1)] = i
        return out
    for i in range(len(lines) - 1, -1, -1):
        if not lines[i].strip():
            continue
        m = _CHOICE_RE.match(lines[i].strip())
        if not m:
            break
        out[m.group(1)] = i
    return out


def swap_item(item: ABItem) -> ABItem:
    """The same item with the option texts of its matching and non-matching letters exchanged: the
    behaviour's answer moves to the other letter (``matching`` and ``not_matching`` swap), every other line
    stays. Its id is the original's with ``~swap`` appended (``--letter-balance swap``)."""
    lines = item.question.split("\n")
    where = _choice_lines(lines)
    a, b = where.get(item.matching), where.get(item.not_matching)
    if a is None or b is None:
        raise SteerscaleError(f"item {item.id!r}: choice lines for ({item.matching}) and ({item.not_matching}) "
                              f"not found; cannot swap its options")
    ta = _CHOICE_RE.match(lines[a].strip()).group(2)
    tb = _CHOICE_RE.match(lines[b].strip()).group(2)
    indent_a = lines[a][: len(lines[a]) - len(lines[a].lstrip())]
    indent_b = lines[b][: len(lines[b]) - len(lines[b].lstrip())]
    lines[a] = f"{indent_a}({item.matching}) {tb}".rstrip() if tb else f"{indent_a}({item.matching})"
    lines[b] = f"{indent_b}({item.not_matching}) {ta}".rstrip() if ta else f"{indent_b}({item.not_matching})"
    return ABItem("\n".join(lines), item.not_matching, item.matching, item.choices, f"{item.id}~swap", item.category)


def _check_unique_ids(path, ids: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, rid in enumerate(ids):
        if rid in seen:
            shown = rid if len(rid) <= 60 else rid[:60] + "..."
            raise SteerscaleError(f"{path}: item {i} has id {shown!r}, already used by item {seen[rid]}; "
                                  f"ids must be unique (they key the per-item rows)")
        seen[rid] = i


def _read_records(path: Path) -> list:
    from ..io.guards import loads_json, read_input_bytes

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


def load_dataset(source: str | Path, limit: int | float | None = None, allow_duplicates: bool = False,
                 seed: int = 0) -> list[ABItem]:
    """Load A/B items from a CAA JSON/JSONL file or a built-in name (``refusal-train``, ``refusal-test``).

    `limit` (N >= 1 items or a fraction in (0, 1)) keeps a seeded, letter-stratified subset in file order
    (``sample_items``, seeded by `seed`), never the first N."""
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
    return sample_items(items, limit, seed)


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
    return _head(out, limit)


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
    return _head(out, limit)


def _load_string_list(source, key: str) -> list[str]:
    """A JSON file holding {key: [non-empty strings]} or a plain list of strings (built-in name or path)."""
    from ..io.guards import loads_json, read_input_bytes

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
    return _head(texts, limit)


def load_refusal_phrases(source: str | Path | None = None) -> list[str]:
    """The refusal-phrase list (built-in ``refusal-phrases`` by default): {"phrases": [...]} or a JSON list."""
    return [p.strip() for p in _load_string_list("refusal-phrases" if source is None else source, "phrases")]


def dataset_hash(items) -> str:
    """Content hash of a list of items, for cache keys and manifests."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps(asdict(it) if hasattr(it, "__dataclass_fields__") else it, sort_keys=True).encode())
    return h.hexdigest()[:16]


def split_items(items, fraction: float = 0.5, seed: int = 0, strata: list | None = None):
    """Deterministic split into (validation, test) by a seeded permutation, each part in the original order.

    With `strata` (one label per item, e.g. each A/B item's matching letter) every stratum is split
    separately by the same rule (round(fraction * its size) to the first part), so both parts keep the
    letter shares; without it, one seeded permutation of all items (the split ``analysis.peaks`` and
    ``showcase`` share, which must stay the same for both)."""
    import numpy as np

    if strata is not None:
        if len(strata) != len(items):
            raise SteerscaleError(f"split_items: {len(strata)} strata for {len(items)} items")
        first: list[int] = []
        rng = np.random.default_rng(seed)
        for g in sorted(set(strata)):
            idx = [i for i, s in enumerate(strata) if s == g]
            perm = rng.permutation(len(idx))
            first.extend(idx[j] for j in perm[: int(round(len(idx) * fraction))])
        keep = set(first)
        return [items[i] for i in sorted(keep)], [items[i] for i in range(len(items)) if i not in keep]
    idx = np.random.default_rng(seed).permutation(len(items))
    k = int(round(len(items) * fraction))
    return [items[i] for i in sorted(idx[:k])], [items[i] for i in sorted(idx[k:])]
