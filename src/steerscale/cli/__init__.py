"""The `steerscale` command: one table of thin subcommands; each parses its flags, calls the API, prints.

``SUBCOMMANDS`` maps a name to its ``Command`` (help, build(parser), run(args), description); the flags of
options that have a config field are built from it (options.add_fields), so defaults, help and bounds
live once, in steerscale.config. Errors are one line and exit 2; a bug is one line and exit 1.

Modules: options (flags from dataclasses, text parsers, checks), common (model loading, run vectors,
printing), ab (info, train, sweep, generate), cluster (sharded/Ray sweeps, merge), reproduce (reproduce,
report), openended (openended, similarity, transfer), interventions (ablation, orthogonalize, export, import).
"""

from __future__ import annotations

import argparse
import logging
import sys

from .fields import GlobalOptions
from ..errors import SteerscaleError
from ..io.store import os_error
from . import ab, cluster, datasets, interventions, openended, reproduce
from .options import (HelpFormatter, Parser, add_fields, batch_size_before_loading, check_options,  # noqa: F401
                      join_negative_values, parse_floats, parse_ints, parse_layers, unrecognized_message)

EPILOG = "Run 'steerscale COMMAND --help' for each command's options. Add --debug for full tracebacks."

# name -> Command, in the order `steerscale --help` lists them
SUBCOMMANDS = {**ab.COMMANDS, **reproduce.COMMANDS, **cluster.COMMANDS, **openended.COMMANDS,
               **interventions.COMMANDS, **datasets.COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(
        prog="steerscale", formatter_class=HelpFormatter,
        description="Contrastive Activation Addition (CAA) steering: make vectors, sweep layers x multipliers, "
        "measure how the effect scales with model size.",
        epilog=EPILOG,
    )
    add_fields(ap, GlobalOptions)  # --debug, --quiet
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, c in SUBCOMMANDS.items():
        c.build(sub.add_parser(name, help=c.help, description=c.description, formatter_class=HelpFormatter))
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = join_negative_values(list(sys.argv[1:] if argv is None else argv))
    if datasets.asks_listing(argv):  # --data list / --train-data list, whatever else the command requires
        return datasets.print_listing(None)
    ap = build_parser()
    args, extra = ap.parse_known_args(argv)
    if extra:  # argparse's "unrecognized arguments", one line, with "did you mean" for mistyped flags
        sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
        print(unrecognized_message(sub, extra), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    try:
        check_options(args)  # every bounded option, before any file or model is read
        batch_size_before_loading(args)  # --batch-size auto: 8 on a CPU, else found after loading
        return SUBCOMMANDS[args.command].run(args)
    except SteerscaleError as e:
        if args.debug:
            raise
        print(f"steerscale {args.command}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:  # a file problem no stage caught: still one line, with the path
        if args.debug:
            raise
        print(f"steerscale {args.command}: error: {os_error(e.filename or '?', e, 'cannot access')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"steerscale {args.command}: interrupted (finished points are kept; re-run to continue)", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: say so, one line, exit 1
        if args.debug:
            raise
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        print(f"steerscale {args.command}: internal error: {type(e).__name__}: {first} "
              f"(re-run with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(msg: str, limit: int = 2000) -> str:
    """Error messages are one line of bounded length, whatever user value they quote."""
    msg = " ".join(msg.splitlines())
    return msg if len(msg) <= limit else f"{msg[:limit]}... ({len(msg) - limit} more characters)"
