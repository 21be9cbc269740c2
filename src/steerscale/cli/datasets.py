"""Discovery, an lm-eval habit: ``data list`` / ``list-data`` / ``--data list`` (the built-in datasets, their
sizes and letter balance)."""

from __future__ import annotations

import json
from pathlib import Path

from .fields import DataListOptions
from .common import Command
from .options import add_fields, json_arg


def _listing_args(p) -> None:
    json_arg(p)


def _data_args(p) -> None:
    add_fields(p, DataListOptions)  # action: list
    _listing_args(p)


def print_listing(args) -> int:
    from ..core.catalog import builtin_datasets, format_listing

    rows = builtin_datasets()
    print(json.dumps(rows, indent=2) if getattr(args, "json", False) else format_listing(rows))
    return 0


def asks_listing(argv: list[str]) -> bool:
    """--data list or --train-data list in `argv` (lm-eval's ``--tasks list``), unless a file named 'list' is in
    the working folder (then it is read as a dataset, as any file)."""
    from ..core.catalog import LIST_WORD

    for i, a in enumerate(argv):
        for flag in ("--data", "--train-data"):
            if a == f"{flag}={LIST_WORD}" or (a == flag and i + 1 < len(argv) and argv[i + 1] == LIST_WORD):
                return not Path(LIST_WORD).exists()
    return False


COMMANDS = {
    "data": Command("built-in datasets: 'steerscale data list'", _data_args, print_listing,
                    "List the built-in datasets (A/B items, prompts, paragraphs, phrases) with their sizes and, for "
                    "A/B items, how many have the matching answer on each letter."),
    "list-data": Command("the built-in datasets with sizes and letter balance (= data list)", _listing_args,
                         print_listing),
}
