"""The built-in datasets, listed: ``steerscale data list`` / ``steerscale list-data`` / ``--data list``.

For each name of ``data.BUILTIN``: what it holds (A/B items, prompts, paragraphs, phrases), how many, and for
A/B items the letter balance (how many items have the matching answer on each letter: an imbalanced set
makes the raw mean-difference vector carry the answer letter as well as the behaviour; DESIGN.md).
"""

from __future__ import annotations

from collections import Counter

from .data import BUILTIN, load_dataset, load_neutral_text, load_prompts, load_refusal_phrases

KINDS = {"refusal-train": "ab", "refusal-test": "ab", "refusal-test-ood": "ab", "harmful-prompts": "prompts",
         "harmless-prompts": "prompts", "neutral-text": "paragraphs", "refusal-phrases": "phrases"}
LIST_WORD = "list"  # --data list


def builtin_datasets() -> list[dict]:
    """One row per built-in dataset: name, kind, size, letters (matching letter -> items, A/B items only)."""
    rows = []
    for name in BUILTIN:
        kind = KINDS.get(name, "ab")
        if kind == "ab":
            items = load_dataset(name)
            rows.append({"name": name, "kind": "A/B items", "size": len(items),
                         "letters": dict(sorted(Counter(it.matching for it in items).items()))})
        elif kind == "prompts":
            rows.append({"name": name, "kind": "prompts", "size": len(load_prompts(name)), "letters": None})
        elif kind == "paragraphs":
            rows.append({"name": name, "kind": "paragraphs", "size": len(load_neutral_text(name)), "letters": None})
        else:
            rows.append({"name": name, "kind": "phrases", "size": len(load_refusal_phrases(name)), "letters": None})
    return rows


def format_listing(rows: list[dict]) -> str:
    lines = [f"{'name':18s} {'kind':11s} {'size':>5s}  matching letter (A/B items)"]
    for r in rows:
        bal = ""
        if r["letters"]:
            bal = ", ".join(f"{k}: {v}" for k, v in r["letters"].items())
        lines.append(f"{r['name']:18s} {r['kind']:11s} {r['size']:5d}  {bal}")
    lines.append("any CAA-format JSON/JSONL file works too (--data FILE)")
    return "\n".join(lines)
