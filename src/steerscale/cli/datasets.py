"""Discovery and lm-eval habits: ``data list`` / ``list-data`` / ``--data list`` (the built-in datasets, their
sizes and letter balance) and ``--batch-size auto`` (resolved before loading on a CPU, after it elsewhere)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import Command


def _listing_args(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def _data_args(p) -> None:
    p.add_argument("action", choices=["list"], help="'list': the built-in datasets with sizes and letter balance")
    _listing_args(p)


def print_listing(args) -> int:
    from ..catalog import builtin_datasets, format_listing

    rows = builtin_datasets()
    print(json.dumps(rows, indent=2) if getattr(args, "json", False) else format_listing(rows))
    return 0


def asks_listing(argv: list[str]) -> bool:
    """--data list or --train-data list in `argv` (lm-eval's ``--tasks list``), unless a file named 'list' is in
    the working folder (then it is read as a dataset, as any file)."""
    from ..catalog import LIST_WORD

    for i, a in enumerate(argv):
        for flag in ("--data", "--train-data"):
            if a == f"{flag}={LIST_WORD}" or (a == flag and i + 1 < len(argv) and argv[i + 1] == LIST_WORD):
                return not Path(LIST_WORD).exists()
    return False


def batch_size_before_loading(args) -> None:
    """--batch-size auto: on a CPU device the CPU default now; elsewhere a placeholder now (the checks before
    loading see a number) and the size found after loading (``after_loading``, called by common.load)."""
    from ..autobatch import AUTO, CPU_DEFAULT

    if getattr(args, "batch_size", None) != AUTO:
        return
    args.batch_size = CPU_DEFAULT
    if str(getattr(args, "device", "cpu")).startswith("cpu"):
        print(f"steerscale {args.command}: --batch-size auto: {CPU_DEFAULT} (the CPU default; no memory limit "
              f"to find on a CPU)", file=sys.stderr)
    else:
        args.batch_size_pending = True


def after_loading(args, model) -> None:
    """The batch size of --batch-size auto on an accelerator, once the model is loaded."""
    if not getattr(args, "batch_size_pending", False):
        return
    from ..autobatch import auto_batch_size

    args.batch_size = auto_batch_size(model)
    args.batch_size_pending = False
    print(f"steerscale {args.command}: --batch-size auto: {args.batch_size} (largest that fits, by halving from "
          f"256 on out-of-memory)", file=sys.stderr)


COMMANDS = {
    "data": Command("built-in datasets: 'steerscale data list'", _data_args, print_listing,
                    "List the built-in datasets (A/B items, prompts, paragraphs, phrases) with their sizes and, for "
                    "A/B items, how many have the matching answer on each letter."),
    "list-data": Command("the built-in datasets with sizes and letter balance (= data list)", _listing_args,
                         print_listing),
}
