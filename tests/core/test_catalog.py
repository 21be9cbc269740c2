"""core/catalog.py: the built-in datasets listed with their real sizes and letter balance."""

from __future__ import annotations

from steerscale.core.catalog import builtin_datasets, format_listing
from steerscale.core.data import BUILTIN, load_dataset, load_prompts


def test_every_builtin_is_listed_with_its_size_and_letters():
    rows = builtin_datasets()
    assert [r["name"] for r in rows] == list(BUILTIN)
    by_name = {r["name"]: r for r in rows}
    train = load_dataset("refusal-train")
    assert by_name["refusal-train"]["kind"] == "A/B items" and by_name["refusal-train"]["size"] == len(train)
    assert sum(by_name["refusal-train"]["letters"].values()) == len(train)
    assert by_name["refusal-train"]["letters"] == {k: sum(it.matching == k for it in train)
                                                  for k in sorted({it.matching for it in train})}
    assert by_name["harmful-prompts"] == {"name": "harmful-prompts", "kind": "prompts",
                                          "size": len(load_prompts("harmful-prompts")), "letters": None}


def test_listing_has_a_line_per_dataset():
    rows = [{"name": "x", "kind": "A/B items", "size": 7, "letters": {"A": 3, "B": 4}},
            {"name": "y", "kind": "prompts", "size": 12, "letters": None}]
    lines = format_listing(rows).splitlines()
    assert len(lines) == 4 and lines[0].startswith("name")
    assert lines[1].split() == ["x", "A/B", "items", "7", "A:", "3,", "B:", "4"]
    assert lines[2].split() == ["y", "prompts", "12"]
    assert "--data FILE" in lines[3]
