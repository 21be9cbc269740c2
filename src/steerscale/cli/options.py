"""Command-line options built from the config dataclasses, the text parsers they use, and their checks.

A dataclass field (steerscale.config) becomes a flag with ``add_fields``: ``batch_size`` -> ``--batch-size``,
with the field's default (lists as comma text), help, choices and type; ``config_from_args`` reads the
parsed flags back into the dataclass. ``check_options`` refuses every flag below its field's ``min``
before any model work (one line, exit 2), with the field's ``expected`` phrase.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING

from ..config import (
    AblationRecipe, ClusterOptions, JudgeOptions, ModelOptions, OpenEndedConfig, PromptOptions, SweepConfig,
    VectorOptions, _kind, problem,
)
from .fields import (
    AblationOptions, DataListOptions, ExportOptions, FolderOptions, GenerateOptions, GlobalOptions, ImportOptions,
    InfoOptions, ItemOptions, OpenEndedCommandOptions, OrthogonalizeOptions, OutputOptions, ReproduceOptions,
    ShardOptions, SimilarityOptions, TrainOptions, TransferOptions,
)
from ..reproduce.config import OpenEndedSection
from ..errors import SteerscaleError
from ..io.guards import MAX_LAYERS, short

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# every class whose fields are flags. `check_options` checks a flag by the FIRST class (in this order) that has
# a field of its name, so a name with bounds means the same option in each class (tests/cli/test_cli_fields.py).
CLI_CLASSES = (GlobalOptions, ModelOptions, PromptOptions, VectorOptions, SweepConfig, OpenEndedConfig, JudgeOptions,
               ItemOptions, OutputOptions, InfoOptions, TrainOptions, ShardOptions, ClusterOptions, FolderOptions,
               DataListOptions, SimilarityOptions, OpenEndedSection, OpenEndedCommandOptions, AblationRecipe,
               AblationOptions, OrthogonalizeOptions, ExportOptions, ImportOptions, TransferOptions, GenerateOptions,
               ReproduceOptions)


def _all_fields() -> dict:
    out = {}
    for cls in CLI_CLASSES:
        for f in fields(cls):
            out.setdefault(f.name, f)
    return out


FIELDS = _all_fields()


_LAYER_PART = re.compile(r"^(-?\d+)(?:-(-?\d+))?(?::(\d+))?$")


def parse_layers(text: str | None) -> list[int] | None:
    """'all', '13', '10-14', '0-29:3' (every 3rd), '3,5,7' or a mix like '0-3,10'; negative indices count from
    the end (-1 = the last layer, '-4--1' = the last four), resolved against the model's layer count later
    (SweepConfig.validate, steer). A range's two ends have the same sign."""
    if text is None or text.strip().lower() == "all":
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        m = _LAYER_PART.match(part.replace(" ", ""))
        try:
            if not m:
                raise ValueError
            big_int = lambda x: int(x) if len(x.lstrip("-")) <= 12 else MAX_LAYERS + 1  # noqa: E731
            a = big_int(m.group(1))
            b = big_int(m.group(2)) if m.group(2) is not None else a
            step = big_int(m.group(3)) if m.group(3) is not None else 1
            if step < 1:
                raise ValueError
        except ValueError:
            raise SteerscaleError(f"--layers {short(text)}: expected 'all', a layer, a range like 10-14, or a "
                                  f"comma list (0-29:3 is every 3rd layer, -1 the last)") from None
        # checked before expanding: '0-99999999' must not build a list of 10^8 layers
        big = [x for x in (a, b) if abs(x) >= MAX_LAYERS + (x < 0)]
        if big:
            raise SteerscaleError(f"--layers {short(text)}: layer {short(big[0], 20)} is beyond any model "
                                  f"(at most {MAX_LAYERS} layers)")
        if (a < 0) != (b < 0):
            raise SteerscaleError(f"--layers {short(text)}: range {part} mixes a layer counted from the start with "
                                  f"one counted from the end; give both ends alike, e.g. 10-29 or -5--1")
        out.extend(range(a, b + 1, step))
    if not out:
        raise SteerscaleError(f"--layers {short(text)}: selects no layers; expected e.g. 10-14 (low-high)")
    return out


def parse_floats(text: str, flag: str = "--multipliers") -> list[float]:
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise SteerscaleError(f"{flag} {short(text)}: {short(part.strip(), 40)} is not a number; "
                                  f"expected e.g. -1,0,1") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise SteerscaleError(f"{flag} {short(text)}: {short(part.strip(), 40)} is not a finite number")
        out.append(v)
    return out


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SteerscaleError(f"{flag} {text!r}: expected a comma list of integers, e.g. 0,6,12") from None


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def _cli_default(f, value):
    """A field's default as the flag's default: lists as comma text, layers None as 'all'."""
    how = f.metadata.get("cli")
    if how == "floats" and value is not None:
        return ",".join(f"{x:g}" for x in value)
    if how == "ints":
        return ",".join(str(x) for x in value) if value else None
    if how == "layers":
        return "all" if value is None else ",".join(map(str, value))
    return value


def _limit_type(text: str):
    """--limit / --train-limit as a number (int, or float for a fraction); `check_options` checks it."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def add_fields(p, cls, names=None, positional=(), helps=None, **defaults) -> None:
    """Add the fields `names` (default all) of dataclass `cls` to parser `p` as flags (or positionals: a field
    whose ``positional`` metadata says so, or a name in `positional`, optional with its default); `defaults`
    replaces a field's default for this command (a value as the field holds it), `helps` (name -> text) a
    field's help. Each argparse action records its field (``action.field``, ``action.field_class``)."""
    by_name = {f.name: f for f in fields(cls)}
    for name in by_name if names is None else names:
        f = by_name[name]
        meta = f.metadata
        if name in defaults:
            value = defaults[name]
        else:
            value = f.default if f.default is not MISSING else f.default_factory()
        kw = {"default": _cli_default(f, value), "help": (helps or {}).get(name) or meta.get("help") or None}
        kind, _ = _kind(f)
        if kind == "bool":
            kw["action"] = "store_true"
        elif meta.get("auto"):  # a number or 'auto' (--batch-size auto)
            kw["type"] = int_or_auto
        elif meta.get("cli") is None and kind in ("int", "float"):
            kw["type"] = int if kind == "int" else float
        elif meta.get("cli") == "limit":
            kw["type"] = _limit_type
        if meta.get("choices") and meta.get("cli") != "later":
            kw["choices"] = list(meta["choices"])
        if meta.get("metavar"):
            kw["metavar"] = meta["metavar"]
        if meta.get("nargs"):
            kw["nargs"] = meta["nargs"]
        where = meta.get("positional")
        if name in positional or where == "?":
            action = p.add_argument(name, **dict(kw, nargs="?"))
        elif where:
            if kw["default"] is None:  # a required positional has no default
                del kw["default"]
            action = p.add_argument(name, **kw)
        else:
            if meta.get("required"):  # no default to show or fall back on
                kw.update(required=True, default=None)
            action = p.add_argument(flag_of(name), *([meta["short"]] if meta.get("short") else []), **kw)
        action.field, action.field_class = f, cls


def config_from_args(cls, args, **given):
    """An instance of `cls` from the parsed flags named like its fields (text lists parsed here; fields
    without a flag keep their defaults); `given` sets fields directly."""
    kw = {}
    for f in fields(cls):
        if f.name in given or not hasattr(args, f.name):
            continue
        v, how = getattr(args, f.name), f.metadata.get("cli")
        if how == "layers":
            v = parse_layers(v) if v is not None else None
        elif how == "floats":
            v = parse_floats(v, flag_of(f.name))
        elif how == "ints":
            v = parse_ints(v or "", flag_of(f.name))
        kw[f.name] = v
    return cls(**dict(kw, **given))


def check_options(args) -> None:
    """Every given flag whose field has a lower bound is checked before anything is loaded."""
    for name, f in FIELDS.items():
        if f.metadata.get("cli") == "limit" and getattr(args, name, None) is not None:
            from ..core.data import check_limit

            check_limit(getattr(args, name), flag_of(name))  # N >= 1 or a fraction in (0, 1)
            continue
        if all(f.metadata.get(k) is None for k in ("min", "max", "pattern")) or getattr(args, name, None) in (None, "auto"):
            continue
        value = getattr(args, name)
        why = problem(f, value, cli=True)
        if why:
            raise SteerscaleError(f"{flag_of(name)} {value}: expected {why}")


# ------------------------------------------------------------------------------------------------ option groups


def model_args(p, positional: bool = False) -> None:
    """--model (or a positional model), --dtype, --device, --trust-remote-code."""
    add_fields(p, ModelOptions, [f.name for f in fields(ModelOptions)], positional=("model",) if positional else ())


def prompt_args(p) -> None:
    """--template, --system, --batch-size."""
    add_fields(p, PromptOptions, [f.name for f in fields(PromptOptions)])


def vector_args(p) -> None:
    """Where the run's vectors come from: --vectors, --allow-foreign-vectors, --train-data, --train-limit,
    --normalize (vectors.vectors_for_run when --vectors is not given)."""
    add_fields(p, VectorOptions, [f.name for f in fields(VectorOptions)])


def limit_arg(p, help: str | None = None, **default) -> None:
    add_fields(p, ItemOptions, ["limit"], helps={"limit": help}, **default)


def out_arg(p, help: str | None = None) -> None:
    """--out/-o (required), with `help` for what the command writes there (default "results folder")."""
    add_fields(p, OutputOptions, ["out"], helps={"out": help})


def json_arg(p) -> None:
    """--json: print JSON."""
    add_fields(p, OutputOptions, ["json"])


def numeric_list_flags() -> tuple[str, ...]:
    """Flags whose value may start with '-' (a negative number): comma lists of numbers, --multiplier."""
    lists = {flag_of(n) for n, f in FIELDS.items() if f.metadata.get("cli") in ("floats", "ints", "layers")}
    return tuple(sorted(lists | {"--multipliers", "--multiplier", "--layers", "--layer", "--direction-layer"}))


def join_negative_values(argv: list[str]) -> list[str]:
    """Let `--multipliers -1,0,1` work: argparse would take '-1,0,1' for an option."""
    flags = numeric_list_flags()
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in flags and i + 1 < len(argv) and re.match(r"^-[\d.]", argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


# ------------------------------------------------------------------------------------------------ parser habits


def int_or_auto(text: str):
    """--batch-size: a positive integer or 'auto' (autobatch: largest that fits on an accelerator)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive integer or 'auto'") from None


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with '(default X)' added to every option whose help does not already say its default."""

    def _get_help_string(self, action):
        h = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings or says_default(h, action):
            return h
        return f"{h} (default %(default)s)" if h else "(default %(default)s)"


def says_default(help_text: str, action) -> bool:
    """Whether `help_text` already names the action's default ('default X', 'default: X', "X (default" ...)."""
    d = str(action.default)
    return any(p in help_text for p in (f"default {d}", f"default: {d}", f"{d} (default", f"{d}' (default"))


def suggest(word: str, known) -> str | None:
    """The option or command a mistyped `word` most likely meant: underscores for hyphens first
    (``--train_limit`` -> ``--train-limit``), then the closest by difflib."""
    import difflib

    known = list(known)
    fixed = word.replace("_", "-")
    if fixed in known:
        return fixed
    close = difflib.get_close_matches(fixed, known, n=1, cutoff=0.6)
    return close[0] if close else None


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that say "did you mean ..." for a mistyped command or choice."""

    def error(self, message):
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            hint = suggest(m.group(1), re.findall(r"'([^']*)'", m.group(2)) or
                           [c.strip() for c in m.group(2).split(",")])
            if hint:
                message += f"; did you mean {hint!r}?"
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def unrecognized_message(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """The one-line error for arguments `parser` (a subcommand's) does not know, with a "did you mean" for each
    mistyped flag (``--train_limit 5`` -> ``--train-limit``)."""
    known = [s for a in parser._actions for s in a.option_strings]
    hints = []
    for tok in extra:
        if tok.startswith("--"):
            name = tok.split("=", 1)[0]
            hint = suggest(name, known)
            if hint:
                hints.append((name, hint))
    shown = " ".join(extra)
    text = f"unrecognized arguments: {shown if len(shown) <= 200 else shown[:200] + '...'}"
    if len(hints) == 1:
        text += f"; did you mean {hints[0][1]}?"
    elif hints:
        text += "; did you mean " + ", ".join(f"{h} (for {n})" for n, h in hints) + "?"
    return f"{parser.prog}: error: {text} (see '{parser.prog} --help')"


# ------------------------------------------------------------------------------------------------ --batch-size auto


def batch_size_before_loading(args) -> None:
    """--batch-size auto: on a CPU device the CPU default now; elsewhere a placeholder now (the checks before
    loading see a number) and the size found after loading (``after_loading``, called by common.load)."""
    from ..core.autobatch import AUTO, CPU_DEFAULT

    if getattr(args, "batch_size", None) != AUTO:
        return
    args.batch_size = CPU_DEFAULT
    if str(getattr(args, "device", "cpu")).startswith("cpu"):
        print(f"steerscale {args.command}: --batch-size auto: {CPU_DEFAULT} (the CPU default; no memory limit "
              f"to find on a CPU)", file=sys.stderr)
    else:
        args.batch_size_pending = True


def after_loading(args, model: PreTrainedModel) -> None:
    """The batch size of --batch-size auto on an accelerator, once the model is loaded."""
    if not getattr(args, "batch_size_pending", False):
        return
    from ..core.autobatch import auto_batch_size

    args.batch_size = auto_batch_size(model)
    args.batch_size_pending = False
    print(f"steerscale {args.command}: --batch-size auto: {args.batch_size} (largest that fits, by halving from "
          f"256 on out-of-memory)", file=sys.stderr)
